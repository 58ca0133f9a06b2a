"""Labelled examples from every supported kind of file, and the errors a user can act on."""
from __future__ import annotations

import gzip
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pydantic import ValidationError

from crawl2model.classifiers.data import ExampleSource, read_source


def read(**options) -> pa.Table:
    source = ExampleSource(**options)
    source.check()
    return read_source(source, seed=0)


def test_jsonl_parquet_and_csv_with_a_label_column(tmp_path):
    rows = [{"body": "first text", "kind": 0}, {"body": "second text", "kind": 2}, {"body": "  ", "kind": 2}]
    (tmp_path / "a.jsonl.gz").write_bytes(gzip.compress("".join(json.dumps(r) + "\n" for r in rows).encode()))
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "b.parquet")
    (tmp_path / "c.csv").write_text('body,kind\n"first text",0\n"second\ntext",2\n')
    for name in ("a.jsonl.gz", "b.parquet", "c.csv"):
        table = read(files=[str(tmp_path / name)], text_column="body", label_column="kind",
                     labels={0: "toxic", 2: "clean"})
        assert table.column("label").to_pylist() == ["toxic", "clean"], name  # the blank text is skipped
        assert table.column("text").to_pylist()[0] == "first text"


def test_plain_text_by_file_by_line_and_in_fasttext_format(tmp_path):
    (tmp_path / "one.txt").write_text("A whole\nfile.\n")
    (tmp_path / "two.txt").write_text("Another file.")
    assert read(files=[str(tmp_path / "*.txt")], label="hq").column("text").to_pylist() == ["A whole\nfile.\n",
                                                                                            "Another file."]
    assert read(files=[str(tmp_path / "one.txt")], label="hq", unit="line").num_rows == 2
    (tmp_path / "train.ft").write_text("__label__hq good text here\n\n__label__lq bad\n")
    table = read(files=[str(tmp_path / "train.ft")], unit="line")
    assert table.to_pylist() == [{"text": "good text here", "label": "hq"}, {"text": "bad", "label": "lq"}]
    (tmp_path / "unlabelled.ft").write_text("no label here\n")
    with pytest.raises(ValueError, match="example 1 has no __label__ prefix"):
        read(files=[str(tmp_path / "unlabelled.ft")], unit="line")


def test_a_seeded_sample_does_not_depend_on_file_order(tmp_path):
    texts = [f"text number {i}" for i in range(100)]
    (tmp_path / "a.txt").write_text("\n".join(texts))
    (tmp_path / "b.txt").write_text("\n".join(reversed(texts)))
    first = read(files=[str(tmp_path / "a.txt")], label="x", unit="line", max_documents=10)
    second = read(files=[str(tmp_path / "b.txt")], label="x", unit="line", max_documents=10)
    assert first.num_rows == 10 and first.column("text").to_pylist() == second.column("text").to_pylist()


def test_archives_are_read_through_chained_urls(tmp_path):
    import zipfile

    with zipfile.ZipFile(tmp_path / "corpus.zip", "w") as archive:
        archive.writestr("corpus/a.txt", "first")
        archive.writestr("corpus/b.txt", "second")
    table = read(files=[f"zip://corpus/*.txt::{tmp_path / 'corpus.zip'}"], label="hq")
    assert table.column("text").to_pylist() == ["first", "second"]


def test_mistakes_are_named(tmp_path):
    (tmp_path / "a.jsonl").write_text('{"text": "x", "label": "a b"}\nnot json\n')
    with pytest.raises(ValidationError, match="give one of `files`, `input: true`"):
        ExampleSource(label="x")
    with pytest.raises(ValidationError, match="carry no label"):
        ExampleSource(input=True)
    with pytest.raises(ValidationError, match="one word"):
        ExampleSource(files=["x"], label="two words")
    with pytest.raises(ValueError, match="no file matches"):
        ExampleSource(files=[str(tmp_path / "missing*.jsonl")], label="x").check()
    with pytest.raises(ValueError, match="no column 'body'"):
        ExampleSource(files=[str(tmp_path / "a.jsonl")], text_column="body", label="x").check()
    with pytest.raises(ValueError, match="line 2 is not JSON"):
        read_source(ExampleSource(files=[str(tmp_path / "a.jsonl")], label="x"), 0)
    (tmp_path / "b.jsonl").write_text('{"text": "x", "label": "a b"}\n')
    with pytest.raises(ValueError, match="row 0: label 'a b' is not one word"):
        read_source(ExampleSource(files=[str(tmp_path / "b.jsonl")], label_column="label"), 0)
    with pytest.raises(ValueError, match=r"values \['a b'\] are not in `labels`"):
        read_source(ExampleSource(files=[str(tmp_path / "b.jsonl")], label_column="label", labels={"c": "d"}), 0)
