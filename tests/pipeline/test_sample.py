"""Tests for the deterministic sample crawl (pipeline/sample.py)."""

import re

from pathlib import Path

import pytest
import trafilatura
from warcio.archiveiterator import ArchiveIterator

from crawl2model.pipeline.sample import COOKIE_BANNER_TEXT, SENTENCES, languages_in, write_sample_crawl


def read_records(paths):
    """(file name, record type, url, HTTP Content-Type, payload bytes, record headers) for every record."""
    records = []
    for path in paths:
        with open(path, "rb") as stream:
            for record in ArchiveIterator(stream):
                content_type = record.http_headers.get_header("Content-Type") if record.http_headers else None
                records.append((path.name, record.rec_type, record.rec_headers.get_header("WARC-Target-URI"),
                                content_type, record.content_stream().read(), record.rec_headers))
    return records


def declared_charset(content_type, body):
    match = re.search(r"charset=([\w-]+)", content_type or "") or re.search(rb'<meta charset="([\w-]+)"', body)
    if not match:
        return None
    charset = match.group(1)
    return (charset.decode() if isinstance(charset, bytes) else charset).lower()


@pytest.fixture(scope="module")
def crawl(tmp_path_factory):
    return [Path(p) for p in write_sample_crawl(tmp_path_factory.mktemp("crawl"))]


@pytest.fixture(scope="module")
def responses(crawl):
    return [r for r in read_records(crawl) if r[1] == "response"]


def test_writes_sorted_named_files(crawl):
    assert [p.name for p in crawl] == [f"sample-{n:05d}.warc.gz" for n in range(4)]
    assert not list(crawl[0].parent.glob("*.tmp"))


def test_deterministic(crawl, tmp_path):
    again = [Path(p) for p in write_sample_crawl(tmp_path / "again")]
    assert [p.read_bytes() for p in again] == [p.read_bytes() for p in crawl]
    other = [Path(p) for p in write_sample_crawl(tmp_path / "other", seed=99)]
    assert [p.read_bytes() for p in other] != [p.read_bytes() for p in crawl]


def test_gzip_headers_carry_no_timestamp(crawl):
    for path in crawl:
        assert path.read_bytes()[4:8] == b"\x00\x00\x00\x00"


def test_every_file_reads_fully_and_starts_with_warcinfo(crawl):
    records = read_records(crawl)
    for path in crawl:
        types = [r[1] for r in records if r[0] == path.name]
        assert types[0] == "warcinfo" and types.count("warcinfo") == 1
    types = [r[1] for r in records]
    assert types.count("revisit") == 1 and types.count("metadata") == 1
    assert types.count("request") > 0


def test_requests_precede_their_responses(crawl):
    records = read_records(crawl)
    for i, (_, rec_type, url, _, _, headers) in enumerate(records):
        if rec_type == "request":
            response = records[i + 1]
            assert response[1] == "response" and response[2] == url
            assert headers.get_header("WARC-Concurrent-To") == response[5].get_header("WARC-Record-ID")


def test_response_count_is_exact(responses, tmp_path):
    assert len(responses) == 240
    small = read_records([Path(p) for p in write_sample_crawl(tmp_path, seed=7, documents=50, files=3)])
    assert sum(r[1] == "response" for r in small) == 50


def test_too_few_documents_is_an_error(tmp_path):
    with pytest.raises(ValueError):
        write_sample_crawl(tmp_path, documents=10)


def test_content_mix(responses):
    languages, charsets, content_types = set(), set(), set()
    for _, _, _, content_type, body, _ in responses:
        content_types.add((content_type or "").split(";")[0])
        charset = declared_charset(content_type, body)
        charsets.add(charset)
        if content_type.startswith("text/html"):
            languages |= languages_in(body.decode(charset or "utf-8", errors="replace"))
    assert len(languages) >= 8
    assert {"windows-1252", "shift_jis", "koi8-r"} <= charsets
    assert {"image/png", "application/json", "text/css"} <= content_types
    assert any(len(body) > 1_000_000 for *_, body, _ in responses)
    assert any(body == b"" for *_, body, _ in responses)


def test_legacy_charsets_decode_to_sample_sentences(responses):
    expected = {"windows-1252": {"fr", "es"}, "shift_jis": {"ja"}, "koi8-r": {"ru"}}
    for _, _, _, content_type, body, _ in responses:
        charset = declared_charset(content_type, body)
        if charset in expected:
            assert languages_in(body.decode(charset)) <= expected[charset]
            assert languages_in(body.decode(charset))


def test_invalid_utf8_page_exists(responses):
    def is_invalid(body):
        try:
            body.decode("utf-8")
        except UnicodeDecodeError:
            return True
        return False
    invalid = [r for r in responses if r[3] == "text/html; charset=utf-8" and is_invalid(r[4])]
    assert len(invalid) == 1


def test_trafilatura_extracts_article_not_cookie_banner(responses):
    english = [body for _, _, _, content_type, body, _ in responses
               if content_type == "text/html; charset=utf-8" and len(body) < 100_000
               and languages_in(body.decode("utf-8", errors="replace")) == {"en"} and b"<article>" in body]
    assert english
    text = trafilatura.extract(english[0].decode("utf-8"))
    assert text and any(sentence in text for sentence in SENTENCES["en"])
    assert COOKIE_BANNER_TEXT not in text and "cookie" not in text.lower()
