"""The one JSONL reader (pipeline/jsonl.py) and what its callers make of bad lines: the run's
reader removes them with a reason, classifier data stops naming the line, SFT/DPO data counts them."""
from __future__ import annotations

import gzip
import json
from collections import Counter

from crawl2model.pipeline import sources
from crawl2model.pipeline.jsonl import read_jsonl
from crawl2model.train.chat import encode_jsonl

LINES = [b'{"text": "one"}', b"", b"  \t", b"{not json", b"[1, 2]", b'{"text": "caf\xc3\xa9 \xff"}', b'{"text": "two"}\r']


def write(path, lines=LINES, prefix=b""):
    data = prefix + b"\n".join(lines) + b"\n"
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
    return path


def test_numbers_count_blank_lines_and_bad_lines_come_as_errors(tmp_path):
    for name in ("a.jsonl", "a.jsonl.gz"):  # compressed by extension
        got = list(read_jsonl(write(tmp_path / name)))
        assert [number for number, _ in got] == [1, 4, 5, 6, 7]
        assert got[0][1] == {"text": "one"} and got[2][1] == [1, 2] and got[4][1] == {"text": "two"}
        assert isinstance(got[1][1], json.JSONDecodeError) and "line 1 column 2" in str(got[1][1])
        assert isinstance(got[3][1], UnicodeDecodeError) and "byte 0xff" in str(got[3][1])  # strict: its own error


def test_replace_reads_bytes_that_are_not_utf8_as_replacement_characters(tmp_path):
    got = dict(read_jsonl(write(tmp_path / "a.jsonl"), errors="replace"))
    assert got[6] == {"text": "café \ufffd"}


def test_strict_accepts_a_byte_order_mark(tmp_path):
    path = write(tmp_path / "bom.jsonl", [b'{"text": "one"}'], prefix=b"\xef\xbb\xbf")
    assert list(read_jsonl(path)) == [(1, {"text": "one"})]


def test_the_runs_reader_removes_bad_lines_with_their_number(tmp_path):
    path = str(write(tmp_path / "docs.jsonl"))
    inputs = sources.InputConfig(jsonl=[path])
    counts = Counter()
    [chunk] = sources.read_chunks(sources.InputFile(0, "jsonl", path), inputs, counts)
    assert chunk.kept.column("text").to_pylist() == ["one", "café \ufffd", "two"]
    assert chunk.removed.column("drop_reason").to_pylist() == ["read:bad_json"] * 2
    assert chunk.removed.column("drop_detail").to_pylist() == [
        "line 4: Expecting property name enclosed in double quotes: line 1 column 2 (char 1)",
        "line 5: a line must hold a JSON object"]
    assert counts["lines"] == 5
    assert sources._peek_columns("jsonl", path, inputs) == ["text"]


def test_chat_data_reports_bad_lines_and_goes_on(tmp_path):
    path = write(tmp_path / "chat.jsonl")
    encoded, problems = encode_jsonl([path], lambda row: row["text"])
    assert encoded == ["one", "two"]
    assert [where for where, _ in problems] == [f"{path}:{n}" for n in (4, 5, 6)]
    assert "byte 0xff" in problems[2][1]  # not UTF-8: reported, not fatal
