"""Reading web crawls: WARC and ARC files, gzip (per record or whole file), LZ4, zstd, bz2 or plain.

`iter_warc_rows` yields one row per HTTP response: a document (drop_reason None) when it is a
readable HTML page, else a removed row whose drop_reason says why (not_html, truncated, too_large,
...). A record whose Content-Length runs into the next record costs that record only. A file that
breaks mid-way yields a removed row for the break and stops; so does one past its size or time
limit; a file that cannot be read at all raises `UnreadableFile`, which the caller reports and
skips (or not, when strict).
"""
from __future__ import annotations

import hashlib
import re
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timezone
from io import BytesIO
from pathlib import PurePosixPath
from typing import IO, Any, Callable, Iterator

import pyarrow as pa
from warcio.archiveiterator import ArchiveIterator
from warcio.statusandheaders import StatusAndHeadersParser
from warcio.utils import BUFF_SIZE

from crawl2model.pipeline.charset import decode_html
from crawl2model.pipeline.compressed import Budget, FileLimit, MemberReader, StreamCut, decoders, read_errors

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


class UnreadableFile(Exception):
    """The file is not a WARC/ARC file any installed library can read; the message says why."""


def doc_id(key: str) -> str:
    """Stable 128-bit document id (hex) from the WARC record id or `file:offset`."""
    return hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


def iter_warc_rows(path: str, open_binary: Callable[[], IO[bytes]], *, max_record_bytes: int,
                   counts: Counter[str], max_file_bytes: int | None = None,
                   max_file_seconds: float | None = None) -> Iterator[dict[str, Any]]:
    """Rows of SCHEMA plus `drop_reason`/`drop_detail`; `counts` gets records by type. The bytes
    come from `open_binary`; `path` only names the file: it is the rows' `source`, and its last
    part (the file's name) goes into the ids of records without a WARC-Record-ID.

    A gzip file is read member by member first (warcio's way, which keeps compressed offsets); if
    that breaks, it is read again as one gzip stream, skipping the records already yielded. A file
    that decompresses to over `max_file_bytes` or takes over `max_file_seconds` ends with a row
    that says so."""
    progress = _Progress()
    readers = decoders(open_binary)
    budget = Budget(max_file_bytes, max_file_seconds)
    for attempt, decompress in enumerate(readers):
        retry_left = attempt + 1 < len(readers)
        budget.used = 0  # bytes are counted per reading; time over all of them
        try:
            yield from _read_records(path, open_binary, decompress, progress, max_record_bytes, counts, retry_left,
                                     budget)
            return
        except FileLimit as limit:
            yield _removed(path, None, limit.reason, f"stopped after {progress.done} records: {limit}")
            return
        except read_errors() as error:
            if retry_left:
                continue  # one gzip stream around the whole file, or records split across members
            message = " ".join(str(error).split())[:300] or type(error).__name__
            message = "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in message)  # NULs and such, as \x00
            if progress.done == 0:
                raise UnreadableFile(f"not a readable WARC/ARC file: {message[:200]}") from None
            cut = isinstance(error, (EOFError, StreamCut))
            if cut and progress.last_reason == "read:truncated":
                return  # the stream ended inside the last record, and its row says so already
            reason = "read:truncated" if cut else "read:malformed_file"
            yield _removed(path, None, reason, f"stopped after {progress.done} records: {message[:300]}")
            return


@dataclass
class _Progress:
    done: int = 0  # records counted (and their rows yielded), over all readers tried
    last_reason: str | None = None  # drop_reason of the last row yielded


def _read_records(path: str, open_binary: Callable[[], IO[bytes]], decompress, progress: _Progress,
                  max_record_bytes: int, counts: Counter[str], retry_left: bool,
                  budget: Budget) -> Iterator[dict[str, Any]]:
    held = None  # a truncated row kept back while another reader may still read that record whole
    with open_binary() as raw:
        # no_record_parse: the HTTP head is parsed per record in _read_http, so a bad one costs
        # that record only (warcio's own parse error would end the iteration of the whole file)
        iterator = ArchiveIterator(decompress(raw), no_record_parse=True)
        iterator.reader = reader = MemberReader(iterator.fh, block_size=BUFF_SIZE)  # in place of warcio's
        reader.budget = budget
        for index, record in enumerate(iterator):
            if held is not None:  # the file goes on after it: the record really is cut short
                yield _emit(held, "response", progress, counts)
                held = None
            if index < progress.done:  # already yielded before a retry with another decoder
                continue
            if index == 0 and record.format == "arc" and record.rec_type != "arc_header":
                # warcio reads any line of five words as an ARC header: a text file would give rows
                raise UnreadableFile("not a readable WARC/ARC file: it begins with neither WARC/ nor an ARC "
                                     "filedesc:// header")
            if record.format == "warc" and record.length is None:
                yield _no_length(record, path, iterator, progress)
                return
            rec_type = "warcinfo" if record.rec_type == "arc_header" else record.rec_type
            if rec_type == "response":
                row = _response_row(record, path, iterator, reader, max_record_bytes)
            else:
                row = None
                if _read_block(record, reader, keep=0).overrun:
                    counts["length_overrun"] += 1
            if row is not None and retry_left and row["drop_reason"] == "read:truncated":
                held = row  # reading gzip member by member ends a record at its member's end: maybe not cut
                continue
            row = _emit(row, rec_type, progress, counts)
            if row is not None:
                yield row
    if held is not None:
        yield _emit(held, "response", progress, counts)
    elif reader.cut_short and progress.last_reason != "read:truncated":
        progress.last_reason = "read:truncated"
        detail = f"the last gzip member is cut short, after {progress.done} records"
        yield _removed(path, None, "read:truncated", detail)


def _no_length(record, path: str, iterator: ArchiveIterator, progress: _Progress) -> dict[str, Any]:
    """A WARC record without Content-Length ends the reading: warcio would take the rest of the file
    as its block. Nothing after its header means the file was cut inside that header."""
    rest = record.raw_stream.read(1)
    reason = "read:malformed_file" if rest else "read:truncated"
    detail = f"record without Content-Length after {progress.done} records"
    detail += "" if rest else ": the file ends in its header"
    progress.last_reason = reason
    return _removed(path, iterator.offset, reason, detail)


def _emit(row: dict[str, Any] | None, rec_type: str, progress: _Progress, counts: Counter[str]):
    """Count a record as done (its row, if any, is about to be yielded)."""
    counts[rec_type] += 1
    progress.done += 1
    if row is not None:
        progress.last_reason = row["drop_reason"]
    return row


def _response_row(record, path: str, iterator: ArchiveIterator, reader: MemberReader,
                  max_record_bytes: int) -> dict[str, Any]:
    http, body, problem = None, None, None  # body stays None for a record over the limit
    try:
        declared = _header(record, "length", "Content-Length")
        if declared is not None and not declared.strip().isdigit():  # warcio reads such a record as empty
            raise ValueError(f"invalid record length {declared!r}")
        block = _read_block(record, reader, keep=max_record_bytes)
        if block.overrun:
            problem = ("read:malformed_record", f"its Content-Length {record.length} runs into the next record, "
                                                f"{block.size} bytes into its block")
        elif block.data is None and block.size < record.length:  # not kept, and not whole either
            problem = ("read:truncated", f"{record.length - block.size} bytes missing")
        elif block.data is not None:
            http, body = _read_http(record, block, max_record_bytes)
            missing = _missing_bytes(record, http, body, block) if body is not None else 0
            if missing:
                problem = ("read:truncated", f"{missing} bytes missing")
    except FileLimit:
        raise
    except (EOFError, StreamCut) as exc:  # a compressed stream that ends inside the record
        problem = ("read:truncated", f"the file ends inside the record {exc}".strip()[:300])
    except Exception as exc:  # a bad HTTP head, chunked encoding errors, bad content-encoding, ...
        problem = ("read:malformed_record", f"{type(exc).__name__}: {exc}"[:300])
    try:
        offset = iterator.get_record_offset()  # only after the body: asking earlier skips over it
    except (EOFError, StreamCut):  # the file is cut right after this record: the next read tells
        offset = iterator.offset
    # ARC records have no id (warcio's arc2warc would invent a random one: ids would change per read)
    record_id = None if record.format == "arc" else record.rec_headers.get_header("WARC-Record-ID")
    row = {"url": _record_url(record), "fetch_date": _parse_date(_header(record, "archive-date", "WARC-Date")),
           "source": path, "offset": offset, "warc_record_id": record_id}
    row["id"] = doc_id(row["warc_record_id"] or f"{PurePosixPath(path).name}:{offset}")
    if problem is not None:
        return {**row, "drop_reason": problem[0], "drop_detail": problem[1]}
    if body is None:
        return {**row, "drop_reason": "read:too_large", "drop_detail": f"record over {max_record_bytes} bytes"}
    status = http.get_statuscode() if http else "200"
    if status and not status.startswith("2"):
        return {**row, "drop_reason": "read:http_status", "drop_detail": f"HTTP {status}"}
    content_type, declared = _content_type(record, http)
    row["content_type"] = content_type or None
    if not body.strip():
        return {**row, "drop_reason": "read:empty", "drop_detail": None}
    if not _is_html(content_type, body):
        return {**row, "drop_reason": "read:not_html", "drop_detail": content_type or "no content type"}
    row["html"], row["charset"] = decode_html(body, declared)
    return {**row, "drop_reason": None, "drop_detail": None}


def _header(record, arc_name: str, warc_name: str) -> str | None:
    return record.rec_headers.get_header(arc_name if record.format == "arc" else warc_name)


def _record_url(record) -> str:
    url = _header(record, "uri", "WARC-Target-URI") or ""
    return url.strip().strip("<>").replace(" ", "%20")  # as warcio normalises WARC URIs (dolma wraps them in <>)


HTTP_PROTOCOLS = ["HTTP/1.0", "HTTP/1.1", "HTTP/2", "HTTP/2.0"]
HTTP_SCHEMES = ("http:", "https:")


@dataclass
class _Block:
    data: bytes | None  # the block, or None when it was longer than the bytes asked to keep
    size: int  # its bytes in the file
    overrun: bool  # whether its Content-Length ran into the next record (then it ends where that begins)


RECORD_START = re.compile(rb"\r?\n\r?\nWARC/(?:1\.[01]|0\.1[78])\r?\n")
HEAD_END = re.compile(rb"\r?\n\r?\n")
START_LINE = 16  # at most the bytes of RECORD_START
MAX_HEAD = 16 * 2**10  # a record head longer than this is taken for text, not a record
BLOCK_READ = 2**18


def _read_block(record, reader: MemberReader, keep: int) -> _Block:
    """Read a record's block to its end, keeping it if it is at most `keep` bytes.

    A block that holds the start of another record (a blank line, a WARC version line, a head with
    WARC-Type and Content-Length) was given a Content-Length too large: it ends there, and the bytes
    from there on go back to the reader, so that the records it swallowed are read as records.
    (A WARC file crawled as a page, uncompressed, would be read as the records it holds.)"""
    stream, kept, size, pending = record.raw_stream, [], 0, b""
    keeping = (record.length or 0) <= keep
    while True:
        chunk = stream.read(BLOCK_READ)
        pending += chunk
        start = _next_record_start(pending, complete=not chunk)
        if start is None:
            continue  # a record's head may begin here: read on before deciding
        if start >= 0:
            reader.push_back(pending[start:])
            stream.limit = 0
            body, pending = pending[:start], b""
        else:  # all but a tail that could begin a record's start line is the block's
            cut = len(pending) if not chunk else max(0, len(pending) - START_LINE)
            body, pending = pending[:cut], pending[cut:]
        size += len(body)
        if keeping:
            kept.append(body)
        if start >= 0 or not chunk:
            return _Block(b"".join(kept) if keeping else None, size, overrun=start >= 0)


def _next_record_start(data: bytes, complete: bool) -> int | None:
    """Where in `data` the next record begins (at the blank line before it); -1 if nowhere; None
    if that cannot be told until more is read (a start line whose head is not yet whole)."""
    at = data.find(b"\nWARC/")  # bytes.find is fast; the regex is run only where it may match
    while at >= 0:
        match = RECORD_START.search(data, max(0, at - 3), at + 16)
        at = data.find(b"\nWARC/", at + 1)
        if match is None:
            continue
        end = HEAD_END.search(data, match.end() - 2)
        if end is None:
            if not complete and len(data) - match.start() < MAX_HEAD:
                return None
            continue
        head = data[match.end() - 2:end.start()]
        if re.search(rb"\nWARC-Type:", head, re.I) and re.search(rb"\nContent-Length:\s*\d", head, re.I):
            return match.start()
    return -1


def _read_http(record, block: _Block, max_record_bytes: int):
    """HTTP head and body, from the block read; the body is None when it decodes to over the limit."""
    record.raw_stream = BytesIO(block.data)
    if _has_http_head(record):
        # set on the record so that content_stream() undoes chunking and gzip/deflate
        record.http_headers = StatusAndHeadersParser(HTTP_PROTOCOLS).parse(record.raw_stream)
    body = record.content_stream().read(max_record_bytes + 1)
    return record.http_headers, (body if len(body) <= max_record_bytes else None)


def _has_http_head(record) -> bool:
    """Whether the block starts with an HTTP status line and headers: an http(s) URI (warcio's
    rule), or a WARC Content-Type saying application/http whatever the URI (`hard::page.html`)."""
    if record.length == 0:
        return False
    uri = _record_url(record)
    if record.format == "arc":  # ARC's content type is the payload's
        return uri.startswith(HTTP_SCHEMES)
    return (record.content_type or "").lower().startswith("application/http") or uri.startswith(HTTP_SCHEMES)


def _missing_bytes(record, http, body: bytes, block: _Block) -> int:
    """Bytes the record's length promised but the file lacks; 0 when the HTTP body is whole anyway
    (an ARC writer that miscounted the record length, while HTTP's Content-Length is met)."""
    missing = (record.length or 0) - block.size
    if missing and http and not (http.get_header("Content-Encoding") or http.get_header("Transfer-Encoding")):
        declared = (http.get_header("Content-Length") or "").strip()
        if declared.isdigit() and len(body) >= int(declared):
            return 0
    return missing


def _content_type(record, http) -> tuple[str, str | None]:
    """(media type, declared charset); the crawler's identified type wins over the server's.
    Without an HTTP head the record's own type is the payload's (dns:, resource-like responses)."""
    raw = (http.get_header("Content-Type") if http else record.content_type) or ""
    media = raw.split(";")[0].strip().lower()
    identified = (record.rec_headers.get_header("WARC-Identified-Payload-Type") or "").split(";")[0].strip().lower()
    match = re.search(r"charset\s*=\s*[\"']?([\w.:-]+)", raw, re.I)
    return identified or media, match.group(1) if match else None


def _is_html(content_type: str, body: bytes) -> bool:
    if content_type in HTML_TYPES:
        return True
    if content_type and not content_type.startswith(("text/plain", "application/octet-stream", "unk")):
        return False
    head = body[:1024].lstrip().lower()  # no or a generic type: sniff the markup
    return head.startswith((b"<!doctype html", b"<html", b"<head", b"<body")) or b"<html" in head


def _parse_date(value: str | None) -> datetime | None:
    value = (value or "").strip()
    if not value:
        return None
    try:
        if value.isdigit():  # ARC dates; fromisoformat would read some digit strings as other dates
            parsed = datetime.strptime(value[:14], "%Y%m%d%H%M%S")
        else:
            parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed.replace(tzinfo=parsed.tzinfo or timezone.utc)


def _removed(path: str, offset: int | None, reason: str, detail: str) -> dict[str, Any]:
    return {"id": doc_id(f"{PurePosixPath(path).name}:{offset}:{reason}"), "source": path, "offset": offset,
            "drop_reason": reason, "drop_detail": detail}
