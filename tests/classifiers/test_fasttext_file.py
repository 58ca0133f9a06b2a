"""Model files: labels read from the header, and a clear error for anything that is not a whole
fastText model (langid's tests check the lid.176 cases)."""
from __future__ import annotations

import pyarrow as pa
import pytest

from crawl2model.classifiers.fasttext_file import check_model_file, load_model
from crawl2model.classifiers.train import FastTextSettings, train


@pytest.fixture(scope="module")
def model_files(tmp_path_factory, labelled_texts):
    root = tmp_path_factory.mktemp("models")
    table = pa.Table.from_pylist(labelled_texts(300)).select(["text", "label"])
    for name, quantize in (("model.bin", False), ("model.ftz", True)):
        train(table, FastTextSettings(positive="hq", buckets=5000, dim=16, quantize=quantize), str(root / name))
    return root


@pytest.mark.parametrize("name", ["model.bin", "model.ftz"])
def test_labels_come_from_the_header(model_files, name):
    assert sorted(check_model_file(model_files / name)) == ["hq", "lq"]
    assert sorted(label.removeprefix("__label__") for label in load_model(model_files / name).get_labels()) == ["hq", "lq"]


@pytest.mark.parametrize("name", ["model.bin", "model.ftz"])
def test_cut_or_padded_models_are_refused(model_files, name, tmp_path):
    data = (model_files / name).read_bytes()
    for broken in (data[:len(data) // 2], data[:-1], data + b"\0"):
        path = tmp_path / name
        path.write_bytes(broken)
        with pytest.raises(ValueError, match="truncated or corrupt"):
            check_model_file(path)
        with pytest.raises(ValueError, match="truncated or corrupt"):
            load_model(path)


def test_missing_and_foreign_files(tmp_path):
    with pytest.raises(ValueError, match="model file not found"):
        check_model_file(tmp_path / "nope.bin")
    (tmp_path / "notes.txt").write_text("not a model")
    with pytest.raises(ValueError, match="bad header"):
        check_model_file(tmp_path / "notes.txt")
    with pytest.raises(ValueError, match="not a file"):
        check_model_file(tmp_path)
