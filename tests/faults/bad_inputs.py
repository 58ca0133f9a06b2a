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


def warc_response(number: int, length_error: int = 0) -> bytes:
    """One WARC response record of a small HTML page, written by hand so that its Content-Length
    can be made wrong by `length_error` bytes."""
    page = f"<!DOCTYPE html><html><head><title>Page {number}</title></head><body><p>Text {number}.</p></body></html>"
    block = f"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n{page}".encode()
    head = (f"WARC/1.0\r\nWARC-Type: response\r\nWARC-Record-ID: <urn:uuid:00000000-0000-0000-0000-{number:012d}>\r\n"
            f"WARC-Target-URI: http://example.com/{number}\r\nWARC-Date: 2024-01-01T00:00:00Z\r\n"
            f"Content-Type: application/http; msgtype=response\r\nContent-Length: {len(block) + length_error}\r\n\r\n")
    return head.encode() + block + b"\r\n\r\n"


def warc_length_overrun(folder: Path) -> Path:
    """Five records; the second's Content-Length is 300 bytes too large, so it reaches into the third."""
    path = folder / "overrun.warc"
    path.write_bytes(b"".join(warc_response(n, 300 if n == 1 else 0) for n in range(5)))
    return path


def warc_length_past_the_end(folder: Path) -> Path:
    """Two records; the last claims a gigabyte the file does not have."""
    path = folder / "past-end.warc"
    path.write_bytes(warc_response(0) + warc_response(1, 2**30))
    return path


def warc_zeros_after_a_record(folder: Path, zeros: int = 64 * 2**20) -> Path:
    """A record's gzip member, then one gzip member of `zeros` zero bytes (no newline in them)."""
    path = folder / "zeros.warc.gz"
    path.write_bytes(gzip.compress(warc_response(0)) + gzip.compress(bytes(zeros), 1))
    return path


def bomb(folder: Path, codec: str, copies: int = 400) -> Path:
    """A whole-file bz2 or zstd bomb: one small frame of 8 MB of zeros, `copies` times (~3 GB)."""
    import bz2

    import zstandard

    frame = bz2.compress(bytes(8 * 2**20)) if codec == "bz2" else zstandard.ZstdCompressor().compress(bytes(8 * 2**20))
    path = folder / f"bomb.warc.{codec}"
    path.write_bytes(frame * copies)
    return path


def jsonl_long_line(folder: Path) -> Path:
    """A good line, a line of 3 MB, a good line."""
    path = folder / "long-line.jsonl"
    rows = [{"id": "a", "text": "short"}, {"id": "b", "text": "x" * 3 * 2**20}, {"id": "c", "text": "short too"}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def html_with_a_codec_that_is_no_text_encoding(label: str = "base64") -> bytes:
    return f'<html><head><meta charset="{label}"></head><body><p>Café au lait.</p></body></html>'.encode()


ALL = [jsonl_columns_after_the_first_row, jsonl_mixed_types, jsonl_reserved_columns, jsonl_gzip_cut,
       parquet_int_text, parquet_cut, warc_length_overrun, warc_length_past_the_end, warc_zeros_after_a_record,
       lambda folder: bomb(folder, "bz2"), lambda folder: bomb(folder, "zstd"), jsonl_long_line]

if __name__ == "__main__":
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    for make in ALL:
        print(make(out))
