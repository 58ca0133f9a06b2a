"""The bad inputs of the fault suite, made on demand: each function writes one file into `folder`
and returns its path. Run as a script to write them all into a folder for a look by hand:

    python tests/faults/bad_inputs.py /tmp/bad
"""
from __future__ import annotations

import gzip
import json
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq


def jsonl_columns_after_the_first_row(folder: Path) -> Path:
    """Row 1 has only id and text; later rows bring `label` and `lang`."""
    path = folder / "late-columns.jsonl"
    rows = [{"id": "a", "text": "first"}, {"id": "b", "text": "second", "label": "x"},
            {"id": "c", "text": "third", "lang": "en", "label": "y"}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def jsonl_mixed_types(folder: Path) -> Path:
    """One column that is a number in one row, a string in another, an object in a third."""
    path = folder / "mixed.jsonl"
    rows = [{"id": "a", "text": "one", "score": 1}, {"id": "b", "text": "two", "score": "high"},
            {"id": "c", "text": "three", "score": {"v": 3}}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def jsonl_reserved_columns(folder: Path) -> Path:
    """A user's own `drop_reason` column on a good document, and a document without text."""
    path = folder / "reserved.jsonl"
    rows = [{"id": "keep-me", "text": "a fine document", "drop_reason": "the user's own note"},
            {"id": "no-text", "body": "the text is under another key"}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def jsonl_gzip_cut(folder: Path, documents: int = 50) -> Path:
    """A .jsonl.gz cut in the middle of its gzip stream."""
    path = folder / "cut.jsonl.gz"
    data = gzip.compress("".join(json.dumps({"id": f"d{i}", "text": f"document {i} " * 20}) + "\n"
                                 for i in range(documents)).encode())
    path.write_bytes(data[: len(data) * 2 // 3])
    return path


def parquet_int_text(folder: Path) -> Path:
    path = folder / "int-text.parquet"
    pq.write_table(pa.table({"id": ["a", "b"], "text": [1, 2]}), path)
    return path


def parquet_cut(folder: Path) -> Path:
    """A Parquet file missing its last bytes (and so its footer)."""
    whole = folder / "whole.parquet"
    pq.write_table(pa.table({"id": [f"d{i}" for i in range(100)], "text": ["x" * 50] * 100}), whole)
    path = folder / "cut.parquet"
    data = whole.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    whole.unlink()
    return path


def html_with_a_codec_that_is_no_text_encoding(label: str = "base64") -> bytes:
    return f'<html><head><meta charset="{label}"></head><body><p>Café au lait.</p></body></html>'.encode()


ALL = [jsonl_columns_after_the_first_row, jsonl_mixed_types, jsonl_reserved_columns, jsonl_gzip_cut,
       parquet_int_text, parquet_cut]

if __name__ == "__main__":
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    for make in ALL:
        print(make(out))
