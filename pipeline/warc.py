"""Reading web crawls: WARC and ARC files, gzip (per record or whole file), LZ4, zstd or plain.

`iter_warc_rows` yields one row per HTTP response: a document (drop_reason None) when it is a
readable HTML page, else a removed row whose drop_reason says why (not_html, truncated, too_large,
...). A file that breaks mid-way yields a removed row for the break and stops; a file that cannot
be read at all raises `UnreadableFile`, which the caller reports and skips (or not, when strict).
"""
from __future__ import annotations

import bz2
import codecs
import gzip
import hashlib
import re
from collections import Counter
from datetime import datetime, timezone
from pathlib import PurePosixPath
from typing import IO, Any, Callable, Iterator

import pyarrow as pa
from warcio.archiveiterator import ArchiveIterator
from warcio.exceptions import ArchiveLoadFailed
from warcio.statusandheaders import StatusAndHeadersParser

SCHEMA = pa.schema([
    ("id", pa.string()),
    ("url", pa.string()),
    ("fetch_date", pa.timestamp("s", tz="UTC")),
    ("source", pa.string()),
    ("offset", pa.int64()),
    ("warc_record_id", pa.string()),
    ("content_type", pa.string()),
    ("charset", pa.string()),
    ("html", pa.string()),
])

HTML_TYPES = ("text/html", "application/xhtml+xml")
MAGIC = {b"\x04\x22\x4d\x18": "lz4", b"\x28\xb5\x2f\xfd": "zstd", b"BZh": "bz2", b"\x1f\x8b": "gzip"}


class UnreadableFile(Exception):
    """The file is not a WARC/ARC file any installed library can read; the message says why."""


def doc_id(key: str) -> str:
    """Stable 128-bit document id (hex) from the WARC record id or `file:offset`."""
    return hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


def iter_warc_rows(path: str, open_binary: Callable[[], IO[bytes]], *, max_record_bytes: int,
                   counts: Counter[str]) -> Iterator[dict[str, Any]]:
    """Rows of SCHEMA plus `drop_reason`/`drop_detail`; `counts` gets records by type."""
    seen = 0
    for decompress in _readers(open_binary):
        try:
            with open_binary() as raw:
                stream = decompress(raw)
                iterator = ArchiveIterator(stream, arc2warc=True)
                for index, record in enumerate(iterator):
                    if index < seen:  # already yielded before a retry with another decoder
                        continue
                    seen += 1
                    counts[record.rec_type] += 1
                    if record.rec_type == "response":
                        yield _response_row(record, path, iterator, max_record_bytes)
            return
        except (ArchiveLoadFailed, OSError, EOFError, ValueError) as error:
            message = " ".join(str(error).split())
            if "non-chunked gzip" in message and seen <= 1:
                continue  # one gzip stream around the whole file: read it again through gzip
            if seen == 0:
                raise UnreadableFile(f"not a readable WARC/ARC file: {message[:200]}") from None
            yield _removed(path, None, "read:malformed_file", f"stopped after {seen} records: {message[:300]}")
            return


def _readers(open_binary: Callable[[], IO[bytes]]) -> list[Callable[[IO[bytes]], IO[bytes]]]:
    """Decoders to try in order, chosen from the file's magic bytes."""
    with open_binary() as fh:
        head = fh.read(4)
    kind = next((name for magic, name in MAGIC.items() if head.startswith(magic)), "plain")
    if kind == "lz4":
        import lz4.frame

        return [lambda fh: lz4.frame.open(fh, "rb")]
    if kind == "zstd":
        import zstandard

        return [lambda fh: zstandard.ZstdDecompressor().stream_reader(fh, read_across_frames=True)]
    if kind == "bz2":
        return [lambda fh: bz2.open(fh, "rb")]
    if kind == "gzip":  # warcio reads per-record gzip itself; a whole-file gzip needs a stream
        return [lambda fh: fh, lambda fh: gzip.open(fh, "rb")]
    return [lambda fh: fh]


def _response_row(record, path: str, iterator: ArchiveIterator, max_record_bytes: int) -> dict[str, Any]:
    try:
        http, body, error = *_read_http(record, max_record_bytes), None
        missing = getattr(record.raw_stream, "limit", 0)  # bytes Content-Length promised but the file lacks
    except Exception as exc:  # chunked encoding errors, bad content-encoding, ...
        http, body, error, missing = None, b"", exc, 0
    headers = record.rec_headers
    offset = iterator.get_record_offset()  # only after the body: asking earlier skips over it
    row = {
        "url": (headers.get_header("WARC-Target-URI") or "").strip("<>"),
        "fetch_date": _parse_date(headers.get_header("WARC-Date")),
        "source": path,
        "offset": offset,
        "warc_record_id": headers.get_header("WARC-Record-ID"),
    }
    row["id"] = doc_id(row["warc_record_id"] or f"{PurePosixPath(path).name}:{offset}")
    if error is not None:
        return {**row, "drop_reason": "read:malformed_record", "drop_detail": f"{type(error).__name__}: {error}"[:300]}
    if body is None:
        return {**row, "drop_reason": "read:too_large", "drop_detail": f"record over {max_record_bytes} bytes"}
    if missing > 0:
        return {**row, "drop_reason": "read:truncated", "drop_detail": f"{missing} bytes missing"}
    status = http.get_statuscode() if http else "200"
    if status and not status.startswith("2"):
        return {**row, "drop_reason": "read:http_status", "drop_detail": f"HTTP {status}"}
    content_type, declared = _content_type(headers, http)
    row["content_type"] = content_type or None
    if not body.strip():
        return {**row, "drop_reason": "read:empty", "drop_detail": None}
    if not _is_html(content_type, body):
        return {**row, "drop_reason": "read:not_html", "drop_detail": content_type or "no content type"}
    row["html"], row["charset"] = decode_html(body, declared)
    return {**row, "drop_reason": None, "drop_detail": None}


def _read_http(record, max_record_bytes: int):
    """HTTP headers and body (None when over the limit). Parses the header block itself when
    warcio did not (records whose WARC Content-Type does not say application/http)."""
    body = record.content_stream().read(max_record_bytes + 1)
    if len(body) > max_record_bytes:
        return record.http_headers, None
    http = record.http_headers
    if http is None and body.startswith(b"HTTP/"):
        head, _, body = body.partition(b"\r\n\r\n")
        import io

        http = StatusAndHeadersParser(["HTTP/1.0", "HTTP/1.1", "HTTP/2", "HTTP/2.0"]).parse(io.BytesIO(head + b"\r\n\r\n"))
    return http, body


def _content_type(headers, http) -> tuple[str, str | None]:
    """(media type, declared charset); the crawler's identified type wins over the server's."""
    raw = (http.get_header("Content-Type") if http else None) or ""
    media = raw.split(";")[0].strip().lower()
    identified = (headers.get_header("WARC-Identified-Payload-Type") or "").split(";")[0].strip().lower()
    match = re.search(r"charset\s*=\s*[\"']?([\w.:-]+)", raw, re.I)
    return identified or media, match.group(1) if match else None


def _is_html(content_type: str, body: bytes) -> bool:
    if content_type in HTML_TYPES:
        return True
    if content_type and not content_type.startswith(("text/plain", "application/octet-stream", "unk")):
        return False
    head = body[:1024].lstrip().lower()  # no or a generic type: sniff the markup
    return head.startswith((b"<!doctype html", b"<html", b"<head", b"<body")) or b"<html" in head


_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([\w.:-]+)""", re.I)
_WHATWG_ALIASES = {"iso-8859-1": "cp1252", "latin-1": "cp1252", "latin1": "cp1252", "ascii": "cp1252",
                   "us-ascii": "cp1252", "x-sjis": "shift_jis", "gb2312": "gb18030", "gbk": "gb18030"}


def decode_html(body: bytes, declared: str | None) -> tuple[str, str]:
    """Decode page bytes: BOM, HTTP charset, <meta charset>, strict UTF-8, then detection.
    Undecodable bytes become U+FFFD rather than failing the document."""
    for bom, name in ((codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16")):
        if body.startswith(bom):
            return body.decode(name, "replace").lstrip("\ufeff"), name
    meta = _META_CHARSET.search(body[:4096])
    declared_codecs = [c for c in (_codec(declared), _codec(meta.group(1).decode("ascii", "ignore") if meta else None)) if c]
    for name in [*declared_codecs, "utf-8"]:
        try:
            return body.decode(name), name
        except UnicodeDecodeError:
            pass  # a wrong declaration is common: try the next, then detection
    if declared_codecs:  # a few bad bytes in a declared page: keep the declaration, mark the bytes
        text = body.decode(declared_codecs[0], "replace")
        if text.count("\ufffd") <= len(text) // 100:
            return text, declared_codecs[0]
    from charset_normalizer import from_bytes

    best = from_bytes(body[:65536]).best()
    name = _codec(best.encoding if best else None) or "utf-8"
    return body.decode(name, "replace"), name


def _codec(name: str | None) -> str | None:
    if not name:
        return None
    name = _WHATWG_ALIASES.get(name.lower(), name.lower())
    try:
        return codecs.lookup(name).name
    except LookupError:
        return None


def _parse_date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        try:
            parsed = datetime.strptime(value.strip()[:14], "%Y%m%d%H%M%S")  # ARC dates
        except ValueError:
            return None
    return parsed.replace(tzinfo=parsed.tzinfo or timezone.utc)


def _removed(path: str, offset: int | None, reason: str, detail: str) -> dict[str, Any]:
    return {"id": doc_id(f"{PurePosixPath(path).name}:{offset}:{reason}"), "source": path, "offset": offset,
            "drop_reason": reason, "drop_detail": detail}
