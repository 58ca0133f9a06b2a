"""Tests for the WARC/ARC reader (pipeline/warc.py): real files from public test suites, and bad input made here.

The expected counts below were derived from the files themselves (warcio run directly, zcat/zlib member
by member, the raw headers), not from the reader's output; comments say where a file needs explaining.
"""
from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import random
import tracemalloc
from collections import Counter
from functools import lru_cache
from pathlib import Path

import pyarrow as pa
import pytest
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from crawl2model.pipeline.warc import SCHEMA, UnreadableFile, iter_warc_rows

MB = 2**20

# file -> (HTML documents, removed rows by reason). Removed rows are one per HTTP response, plus a
# read:malformed_file row when a file breaks off.
EXPECTED = {
    # 299 responses: 94 are 2xx text/html; 46 more text/html are 3xx/4xx; 38 dns: records; one empty 2xx
    "aut-ia2008/example.warc.gz": (94, {"read:not_html": 157, "read:http_status": 47, "read:empty": 1}),
    "aut-ia2008/example.arc.gz": (94, {"read:not_html": 157, "read:http_status": 47, "read:empty": 1}),
    "aut-ia2008/example.txt.warc.gz": (0, {"read:not_html": 2}),  # two plain-text fixtures
    "aut-ia2008/issue-493.warc": (4, {"read:http_status": 1, "read:not_html": 5}),
    "aut-ia2008/issue-514.warc": (1, {"read:http_status": 1}),
    "dolma/sample-0000.warc.gz": (22, {}),
    "dolma/sample-0001.warc.gz": (15, {}),
    "jwarc/cc.warc.gz": (1, {}),
    "resiliparse/block-sized-records.warc.gz": (0, {}),  # three records of WARC-Type: unknown
    "resiliparse/clipped.warc.gz": (0, {"read:truncated": 1}),  # one response, its gzip member cut off
    "resiliparse/clueweb-quirk.warc.gz": (29, {}),
    "resiliparse/warcfile.warc.gz": (16, {}),
    "resiliparse/warcfile.warc.lz4": (16, {}),
    # 37 of these have WARC-Target-URIs like hard::x.html, so warcio leaves their HTTP head unparsed
    "trafilatura-eval-990.warc.gz": (1032, {}),
    "ukwa/BL-20140325121225068-00000-32090_opera_8443.warc.gz": (32, {"read:not_html": 28, "read:http_status": 5}),
    "ukwa/BL-20140325122341434-00000-32090_opera_8443.warc.gz": (6, {"read:not_html": 3, "read:http_status": 1}),
    "ukwa/IAH-urls-wget.warc.gz": (2, {"read:http_status": 9, "read:not_html": 5}),
    "ukwa/flashfrozen-jwat-recompressed.warc.gz": (2, {"read:not_html": 36, "read:empty": 1}),
    # ARC lengths -1 and 'abc' (malformed), and one of 1 byte (a lone newline: empty)
    "warcio-edgecases/bad.arc": (0, {"read:malformed_record": 2, "read:empty": 1}),
    "warcio-edgecases/example-bad-non-chunked.warc.gz": (1, {}),  # one gzip member around the whole file
    "warcio-edgecases/example-bad.warc.gz.bad": (1, {"read:http_status": 1}),  # whole-file gzip too; a 302
    "warcio-edgecases/example-digest.warc": (0, {}),  # request records only
    "warcio-edgecases/example-iana.org-chunked.warc": (1, {}),
    "warcio-edgecases/example-resource.warc.gz": (0, {}),  # a resource record, not an HTTP response
    "warcio-edgecases/example-space-in-target-uri.warc.gz": (0, {}),
    # the ARC length is 12 bytes over the file's end, but the HTTP body (Content-Length 1270) is whole
    "warcio-edgecases/example-space-in-url.arc": (1, {}),
    # Content-Length cuts the last 2 bytes of the gzip-encoded body's trailer; the page is whole
    "warcio-edgecases/example-trunc.warc": (1, {}),
    "warcio-edgecases/example-wget-bad-target-uri.warc.gz": (1, {}),
    # gzip members split mid-record (header | HTML | request): read as one gzip stream it is a fine WARC
    "warcio-edgecases/example-wrong-chunks.warc.gz": (1, {}),
    "warcio-edgecases/example.arc": (1, {}),
    "warcio-edgecases/example.arc.gz": (1, {}),
    "warcio-edgecases/example.warc": (1, {}),
    "warcio-edgecases/example.warc.gz": (1, {}),
    "warcio-edgecases/post-test.warc.gz": (0, {"read:not_html": 3}),  # application/json
    "whirlwind-cc/whirlwind.warc.gz": (1, {}),
    "whirlwind-cc/whirlwind.warc.wat.gz": (0, {}),
    "whirlwind-cc/whirlwind.warc.wet.gz": (0, {}),
}
# a text file beside the crawls: warcio would read its lines as ARC headers; the reader refuses it
UNREADABLE = {"SOURCE.txt": "neither WARC/ nor an ARC filedesc:// header"}


def read(path, max_record_bytes: int = 32 * MB, counts: Counter | None = None) -> list[dict]:
    counts = Counter() if counts is None else counts
    return list(iter_warc_rows(str(path), lambda: open(path, "rb"), max_record_bytes=max_record_bytes, counts=counts))


def read_bytes(data: bytes, name: str = "made.warc", **kwargs) -> list[dict]:
    return list(iter_warc_rows(name, lambda: io.BytesIO(data), max_record_bytes=kwargs.get("max_record_bytes", 32 * MB),
                               counts=kwargs.get("counts", Counter())))


@lru_cache(maxsize=None)
def scan(shared_data: Path, name: str) -> dict:
    """One read of a real file, kept as a summary (not the pages) for the tests below."""
    counts: Counter = Counter()
    rows = read(shared_data / "warc" / name, counts=counts)
    docs = [r for r in rows if r["drop_reason"] is None]
    pa.Table.from_pylist(docs, schema=SCHEMA)  # the documents fit the output schema
    return {
        "documents": len(docs),
        "removed": dict(Counter(r["drop_reason"] for r in rows if r["drop_reason"] is not None)),
        "ids": [r["id"] for r in rows],
        "urls": [r.get("url") for r in rows],
        "records": counts,
        "content_types": Counter(r["content_type"] for r in docs),
        "doc_keys": sorted((r["url"], str(r["fetch_date"]), hashlib.sha1(r["html"].encode()).hexdigest()) for r in docs),
        "html_starts": {r["html"].lstrip()[:5].lower() for r in docs},
        "replacement_chars": sum(r["html"].count("\ufffd") for r in docs),
        "details": [(r["drop_reason"], r["drop_detail"]) for r in rows if r["drop_reason"] is not None],
    }


def find_doc(shared_data: Path, name: str, url: str) -> dict:
    return next(r for r in read(shared_data / "warc" / name) if r["url"] == url)


# --- real files ---------------------------------------------------------------------------------

@pytest.mark.shared
def test_the_table_covers_every_file(shared_data):
    on_disk = {str(p.relative_to(shared_data / "warc")) for p in (shared_data / "warc").rglob("*") if p.is_file()}
    assert on_disk == set(EXPECTED) | set(UNREADABLE)


@pytest.mark.shared
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_counts_per_file(shared_data, name):
    documents, removed = EXPECTED[name]
    result = scan(shared_data, name)
    assert (result["documents"], result["removed"]) == (documents, removed)
    assert all(detail for reason, detail in result["details"] if reason != "read:empty")  # each says why


@pytest.mark.shared
@pytest.mark.parametrize("name", sorted(UNREADABLE))
def test_unreadable_files_say_why(shared_data, name):
    with pytest.raises(UnreadableFile, match=UNREADABLE[name]):
        read(shared_data / "warc" / name)


@pytest.mark.shared
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_ids_are_stable_and_unique_and_urls_bare(shared_data, name):
    result = scan(shared_data, name)
    assert [r["id"] for r in read(shared_data / "warc" / name)] == result["ids"]  # ARC ids too (no random uuid)
    assert len(set(result["ids"])) == len(result["ids"])
    assert not any(url and (url.startswith("<") or url.endswith(">") or " " in url) for url in result["urls"])


@pytest.mark.shared
def test_trafilatura_eval_all_responses_are_html(shared_data):
    result = scan(shared_data, "trafilatura-eval-990.warc.gz")
    assert result["records"]["response"] == 1032
    assert result["content_types"] == {"text/html": 1032}  # the 37 unparsed heads are parsed by the reader
    assert {start[0] for start in result["html_starts"]} == {"<"}  # the page, not "HTTP/1.1 200 OK"


@pytest.mark.shared
def test_ia2008_arc_and_warc_give_the_same_documents(shared_data):
    arc, warc = scan(shared_data, "aut-ia2008/example.arc.gz"), scan(shared_data, "aut-ia2008/example.warc.gz")
    assert arc["records"]["response"] == warc["records"]["response"] == 299
    assert arc["doc_keys"] == warc["doc_keys"]
    assert arc["content_types"] == {"text/html": 94}


@pytest.mark.shared
def test_lz4_reads_like_gzip(shared_data):
    lz4, gz = scan(shared_data, "resiliparse/warcfile.warc.lz4"), scan(shared_data, "resiliparse/warcfile.warc.gz")
    assert lz4["ids"] == gz["ids"] and lz4["doc_keys"] == gz["doc_keys"]
    assert lz4["records"] == gz["records"]


@pytest.mark.shared
def test_whole_file_gzip_gives_its_html(shared_data):
    doc = find_doc(shared_data, "warcio-edgecases/example-bad-non-chunked.warc.gz", "http://example.com/")
    assert doc["drop_reason"] is None and "<title>Example Domain</title>" in doc["html"]


@pytest.mark.shared
def test_clipped_file_ends_in_a_truncated_row(shared_data):
    (row,) = read(shared_data / "warc/resiliparse/clipped.warc.gz")
    assert row["drop_reason"] == "read:truncated" and "missing" in row["drop_detail"]


@pytest.mark.shared
def test_wet_and_wat_have_no_documents(shared_data):
    assert scan(shared_data, "whirlwind-cc/whirlwind.warc.wet.gz")["records"]["conversion"] == 1
    assert scan(shared_data, "whirlwind-cc/whirlwind.warc.wat.gz")["records"]["metadata"] == 1


@pytest.mark.shared
@pytest.mark.parametrize("name, url, expected", [
    ("resiliparse/warcfile.warc.gz", "http://01spb.ru/company/", "О компании"),  # windows-1251
    ("resiliparse/clueweb-quirk.warc.gz", "http://www.uraharajuku.st/shopdetail/001005000005/019/000/order/",
     "ブリーフケース"),  # EUC-JP
])
def test_pages_in_other_scripts_decode(shared_data, name, url, expected):
    doc = find_doc(shared_data, name, url)
    assert expected in doc["html"] and "\ufffd" not in doc["html"]


@pytest.mark.shared
@pytest.mark.parametrize("name", ["resiliparse/warcfile.warc.gz", "resiliparse/clueweb-quirk.warc.gz"])
def test_no_replacement_characters(shared_data, name):
    assert scan(shared_data, name)["replacement_chars"] == 0


# --- input made here ------------------------------------------------------------------------------

def html_page(n: int) -> bytes:
    return f"<!DOCTYPE html><html><head><title>Page {n}</title></head><body><p>Text {n}</p></body></html>".encode()


def write_warc(records: list[tuple[str, bytes, str]], gzip_records: bool = False, status: str = "200 OK",
               starts: list[int] | None = None) -> bytes:
    """A WARC of responses (url, payload, content type), made with warcio; `starts` gets record offsets."""
    out = io.BytesIO()
    writer = WARCWriter(out, gzip=gzip_records)
    for url, payload, content_type in records:
        http = StatusAndHeaders(status, [("Content-Type", content_type), ("Content-Length", str(len(payload)))],
                                protocol="HTTP/1.1")
        if starts is not None:
            starts.append(out.tell())
        writer.write_record(writer.create_warc_record(url, "response", payload=io.BytesIO(payload), http_headers=http))
    return out.getvalue()


def pages(count: int) -> list[tuple[str, bytes, str]]:
    return [(f"http://example.com/{n}", html_page(n), "text/html; charset=utf-8") for n in range(count)]


def test_random_garbage_is_unreadable(tmp_path):
    path = tmp_path / "garbage.warc"
    path.write_bytes(random.Random(7).randbytes(20000))
    with pytest.raises(UnreadableFile, match="not a readable WARC/ARC file"):
        read(path)


def test_gzip_garbage_is_unreadable(tmp_path):
    path = tmp_path / "garbage.warc.gz"
    path.write_bytes(b"\x1f\x8b" + random.Random(8).randbytes(20000))
    with pytest.raises(UnreadableFile):
        read(path)


def test_empty_file_gives_no_rows(tmp_path):
    path = tmp_path / "empty.warc.gz"
    path.write_bytes(b"")
    counts: Counter = Counter()
    assert read(path, counts=counts) == [] and not counts


@pytest.mark.parametrize("gzip_records", [False, True])
@pytest.mark.parametrize("cut", ["body", "header"])
def test_last_record_cut_off(tmp_path, gzip_records, cut):
    starts: list[int] = []
    whole = write_warc(pages(3), gzip_records, starts=starts)
    start = starts[-1]
    end = start + (len(whole) - start) * 3 // 4 if cut == "body" else start + 60
    path = tmp_path / ("cut.warc.gz" if gzip_records else "cut.warc")
    path.write_bytes(whole[:end])
    rows = read(path)
    assert [r["drop_reason"] for r in rows] == [None, None, "read:truncated"]
    assert [r["url"] for r in rows[:2]] == ["http://example.com/0", "http://example.com/1"]


def test_corrupt_gzip_member_stops_the_file_with_a_reason():
    starts: list[int] = []
    data = bytearray(write_warc(pages(3), gzip_records=True, starts=starts))
    data[starts[1] + 100] ^= 0xFF  # inside the second record's deflate data
    rows = read_bytes(bytes(data), name="corrupt.warc.gz")
    assert [r["drop_reason"] for r in rows] == [None, "read:malformed_file"]
    assert "decompressing" in rows[1]["drop_detail"]


def test_huge_response_is_removed_without_being_held(tmp_path):
    big = b"<html><body>" + random.Random(9).randbytes(10 * MB).hex().encode() + b"</body></html>"  # ~20 MB
    path = tmp_path / "big.warc"
    path.write_bytes(write_warc([("http://example.com/big", big, "text/html"), *pages(1)]))
    del big
    tracemalloc.start()
    try:
        rows = read(path, max_record_bytes=MB)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert [r["drop_reason"] for r in rows] == ["read:too_large", None]
    assert peak < 4 * MB


def test_non_html_response_is_not_html():
    png = b"\x89PNG\r\n\x1a\n" + bytes(200)
    (row,) = read_bytes(write_warc([("http://example.com/a.png", png, "image/png")]))
    assert row["drop_reason"] == "read:not_html" and row["drop_detail"] == "image/png"


def test_http_error_status_is_removed():
    (row,) = read_bytes(write_warc(pages(1), status="404 Not Found"))
    assert row["drop_reason"] == "read:http_status" and row["drop_detail"] == "HTTP 404"


def raw_record(url: str, block: bytes, number: int, content_type: str = "application/http; msgtype=response") -> bytes:
    """A WARC response record written by hand (warcio's writer would parse and fix the block)."""
    head = (f"WARC/1.0\r\nWARC-Type: response\r\nWARC-Record-ID: <urn:uuid:00000000-0000-0000-0000-{number:012d}>\r\n"
            f"WARC-Target-URI: {url}\r\nWARC-Date: 2024-01-01T00:00:00Z\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(block)}\r\n\r\n")
    return head.encode() + block + b"\r\n\r\n"


def http_block(payload: bytes, *headers: str) -> bytes:
    return "\r\n".join(["HTTP/1.1 200 OK", "Content-Type: text/html", *headers, "", ""]).encode() + payload


def _compress(kind: str, plain: bytes, starts: list[int]) -> bytes:
    import lz4.frame
    import zstandard

    if kind == "zstd-per-record":  # one frame per record, as WARC tools write them
        bounds = [*starts, len(plain)]
        return b"".join(zstandard.ZstdCompressor().compress(plain[a:b]) for a, b in zip(bounds, bounds[1:]))
    compress = {"zstd": zstandard.ZstdCompressor().compress, "bz2": lambda data: bz2.compress(data, 1),
                "lz4": lz4.frame.compress, "gzip-whole-file": gzip.compress}[kind]
    return compress(plain)


COMPRESSIONS = ["zstd", "zstd-per-record", "bz2", "lz4", "gzip-whole-file"]


@pytest.mark.parametrize("kind", COMPRESSIONS)
def test_compressed_warc_reads_like_the_plain_one(kind):
    starts: list[int] = []
    plain = write_warc(pages(3) + [("http://example.com/x.png", b"\x89PNG", "image/png")], starts=starts)
    expected = read_bytes(plain)
    assert [r["drop_reason"] for r in expected] == [None, None, None, "read:not_html"]
    assert read_bytes(_compress(kind, plain, starts)) == expected  # offsets too: they count decompressed bytes


@pytest.mark.parametrize("kind", COMPRESSIONS)
def test_cut_compressed_warc_keeps_what_comes_before_the_cut(kind):
    """The stream decoders raise EOFError at a cut, which warcio takes for a clean end of file: the
    cut must show as a read:truncated row, and the blocks before it must still give their pages."""
    starts: list[int] = []
    plain = write_warc(pages(600), starts=starts)  # ~300 kB: several lz4/zstd/bz2 blocks
    data = _compress(kind, plain, starts)
    rows = read_bytes(data[: len(data) * 4 // 5])
    docs = [r for r in rows if r["drop_reason"] is None]
    assert 100 < len(docs) < 600 and [d["url"] for d in docs] == [f"http://example.com/{n}" for n in range(len(docs))]
    assert [r["drop_reason"] for r in rows[len(docs):]] == ["read:truncated"]


def test_http_head_under_a_non_http_uri_is_parsed():
    """warcio parses HTTP heads only under http(s): URIs; a chunked, gzip-encoded page under another
    URI must still come out as HTML (the trafilatura eval file has such URIs)."""
    page = html_page(1)
    encoded = gzip.compress(page)
    chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(encoded), encoded)
    data = raw_record("hard::page.html", http_block(chunked, "Content-Encoding: gzip", "Transfer-Encoding: chunked"), 1)
    (row,) = read_bytes(data)
    assert row["drop_reason"] is None and row["html"] == page.decode() and row["content_type"] == "text/html"


def test_bad_http_head_costs_one_record():
    data = (raw_record("http://example.com/0", http_block(html_page(0)), 0)
            + raw_record("http://example.com/bad", b"NOT HTTP AT ALL\r\n\r\n<html></html>", 1)
            + raw_record("http://example.com/2", http_block(html_page(2)), 2))
    rows = read_bytes(data)
    assert [r["drop_reason"] for r in rows] == [None, "read:malformed_record", None]
    assert "Expected Status Line" in rows[1]["drop_detail"]


def test_record_without_content_length_ends_the_file():
    data = raw_record("http://example.com/0", http_block(html_page(0)), 0) + b"WARC/1.0\r\nWARC-Type: response\r\n"
    rows = read_bytes(data)
    assert [r["drop_reason"] for r in rows] == [None, "read:truncated"]
