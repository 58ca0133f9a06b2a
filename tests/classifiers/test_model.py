"""Loading a classifier: the label it scores, and models that live on remote storage."""
from __future__ import annotations

import shutil

import fsspec
import pytest

from crawl2model.classifiers.model import Classifier, metadata_path
from crawl2model.pipeline.storage import local_copy


def test_the_scored_label_is_the_trained_positive_or_the_one_asked_for(hq_model, tmp_path):
    assert Classifier.load(hq_model).label == "hq"
    assert Classifier.load(hq_model, label="lq").label == "lq"
    bare = tmp_path / "model.bin"  # the same model without its model.json: two labels, none chosen
    shutil.copy(hq_model, bare)
    with pytest.raises(ValueError, match=r"say which label to score; it has the model's labels"):
        Classifier.load(str(bare))
    with pytest.raises(ValueError, match="label 'spam' is not one of"):
        Classifier.load(str(bare), label="spam")


def test_a_remote_model_is_fetched_once_per_version(hq_model):
    data = open(hq_model, "rb").read()
    with fsspec.open("memory://models/model.bin", "wb") as handle:
        handle.write(data)
    first = local_copy("memory://models/model.bin")
    assert open(first, "rb").read() == data and local_copy("memory://models/model.bin") == first
    with fsspec.open("memory://models/model.bin", "wb") as handle:
        handle.write(data[:-8])  # another version of the file: another copy
    assert local_copy("memory://models/model.bin") != first
    assert metadata_path("memory://models/model.bin") == "memory://models/model.json"
    assert metadata_path("/runs/x/model.ftz") == "/runs/x/model.json"
