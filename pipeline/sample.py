"""A small, deterministic sample crawl for the README demo and the tests.

`write_sample_crawl` writes a few gzipped WARC files that look like a slice of a real
web crawl, so the whole pipeline runs end to end with no network and no third-party
data. All randomness comes from one `random.Random(seed)`; WARC dates and record ids are
drawn from it as well, so equal arguments give byte-identical files.

What the sample contains, and which pipeline stage each part exercises:

* articles in ten languages (about 40% English) inside realistic boilerplate (header and
  nav menus, cookie banner, sidebar, footer): text extraction and language id;
* exact duplicates (same body at a second URL) and near duplicates (a few words changed,
  another site's boilerplate), about 10% of the pages: deduplication;
* junk pages (empty, navigation only, lorem ipsum, keyword spam, script only, very
  short): quality filters;
* windows-1252, shift_jis and koi8-r pages, declared in the HTTP header or only in
  <meta charset>, and one page with invalid UTF-8: charset handling;
* png, json and css responses, one revisit and one metadata record: record filtering;
* one page of about 1.5 MB: size limits.

Each file starts with a warcinfo record, and about half the responses are preceded by
their request record. The article text is built from short sentences written for this
module (see `SENTENCES`); `languages_in` tells which of those lists a text used.
"""

from __future__ import annotations

import itertools
import json
import random
import re
import struct
import unicodedata
import uuid
import zlib
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from io import BytesIO
from pathlib import Path

from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from crawl2model.pipeline.sample_text import SENTENCES


LANGUAGE_WEIGHTS = {"en": 6, "de": 1, "fr": 1, "es": 1, "it": 1, "nl": 1, "pt": 1, "ru": 1, "zh": 1, "ja": 1}
SITES = {
    "en": ["daily-harbor.example", "green-kitchen-notes.example", "riverside-gazette.example"],
    "de": ["stadtblatt-nord.example", "kiez-kurier.example"], "fr": ["journal-du-bourg.example"],
    "es": ["diario-del-valle.example"], "it": ["cronaca-del-borgo.example"], "nl": ["dagblad-de-polder.example"],
    "pt": ["jornal-da-serra.example"], "ru": ["gorodskie-vesti.example"], "zh": ["chengshi-ribao.example"],
    "ja": ["machi-shimbun.example"],
}
NEAR_DUPLICATE_HOSTS = ["news-roundup.example", "morning-digest.example"]
COOKIE_BANNER_TEXT = ("We use cookies to give you the best experience on our website. "
                      "By continuing to browse you accept our cookie policy.")
NAV_ITEMS = ["Home", "News", "Local", "Sport", "Culture", "Food", "Travel", "Opinion", "Contact"]
SECTIONS = ["news", "local", "life", "food", "travel", "culture", "sport"]
AUTHORS = ["A. Lindqvist", "M. Okafor", "J. Moreau", "S. Tanaka", "L. Rossi", "K. de Vries", "P. Novak"]
SERVERS = ["nginx/1.24.0", "Apache/2.4.58 (Ubuntu)", "cloudflare", "openresty/1.21.4.3"]
ENCODED_PAGES = [("fr", "windows-1252", "header"), ("es", "windows-1252", "meta"), ("ja", "shift_jis", "header"),
                 ("ja", "shift_jis", "meta"), ("ru", "koi8-r", "header"), ("ru", "koi8-r", "meta")]
LOREM_WORDS = "lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor incididunt".split()
SPAM_KEYWORDS = ["cheap flights", "best hotel deals", "discount watches", "buy now", "free shipping", "top price"]
CRAWL_START = datetime(2024, 3, 1, 6, 0, 0, tzinfo=timezone.utc)
LARGE_PAGE_BYTES = 1_500_000
SPECIAL_PAGES = 6 + len(ENCODED_PAGES) + 1 + 3 + 1  # junk, encodings, invalid utf-8, non-HTML, large
MIN_DOCUMENTS = 40


@dataclass
class Article:
    lang: str
    title: str
    paragraphs: list[str]


@dataclass
class Page:
    url: str
    body: bytes
    content_type: str = "text/html; charset=utf-8"
    kind: str = "article"
    article: Article | None = None


def languages_in(text: str) -> set[str]:
    """Languages whose sample sentences occur in `text` (which sentence lists a page used)."""
    return {lang for lang, sentences in SENTENCES.items() if any(s in text for s in sentences)}


# ---------------------------------------------------------------- text and HTML

def _paragraph(rng: random.Random, lang: str) -> str:
    joiner = "" if lang in ("zh", "ja") else " "
    return joiner.join(rng.sample(SENTENCES[lang], rng.randint(2, 4)))


def _headline(rng: random.Random, lang: str) -> str:
    return rng.choice(SENTENCES[lang]).rstrip(".。")


def _compose_article(rng: random.Random, lang: str) -> Article:
    """A headline and 3-5 paragraphs of distinct sentences: real prose does not repeat itself
    (repetition is what the junk and duplicate pages are for)."""
    pool = SENTENCES[lang]
    chosen = rng.sample(pool, min(len(pool), rng.randint(8, 14)))
    headline, body = chosen[0].rstrip(".。"), chosen[1:]
    joiner = "" if lang in ("zh", "ja") else " "
    cuts = sorted(rng.sample(range(1, len(body)), min(len(body) - 1, rng.randint(2, 4))))
    paragraphs = [joiner.join(body[a:b]) for a, b in zip([0, *cuts], [*cuts, len(body)])]
    return Article(lang, headline, paragraphs)


def _site_name(host: str) -> str:
    return host.split(".")[0].replace("-", " ").title()


def _slug(title: str) -> str:
    ascii_title = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode().lower()
    return "-".join(re.findall(r"[a-z0-9]+", ascii_title)[:6]) or "article"


def _article_url(rng: random.Random, host: str, article: Article, index: int) -> str:
    section, month = rng.choice(SECTIONS), rng.randint(1, 12)
    return f"https://{host}/{section}/2024/{month:02d}/{_slug(article.title)}-{index}.html"


def _render_html(rng: random.Random, article: Article, host: str, meta_charset: str | None = "utf-8") -> str:
    name = _site_name(host)
    nav = "".join(f'<li><a href="/{item.lower()}/">{item}</a></li>' for item in rng.sample(NAV_ITEMS, 6))
    related = "".join(f'<li><a href="/news/{rng.randint(1000, 9999)}.html">{_headline(rng, article.lang)}</a></li>'
                      for _ in range(3))
    paragraphs = "\n".join(f"<p>{p}</p>" for p in article.paragraphs)
    meta = f'<meta charset="{meta_charset}">' if meta_charset else ""
    return f"""<!DOCTYPE html>
<html lang="{article.lang}">
<head>{meta}<title>{article.title} | {name}</title>
<meta name="viewport" content="width=device-width, initial-scale=1"><link rel="stylesheet" href="/static/css/main.css">
</head>
<body>
<div id="cookie-banner" class="cookie-consent"><p>{COOKIE_BANNER_TEXT}</p><button>Accept all</button><button>Settings</button></div>
<header class="site-header"><a class="logo" href="/">{name}</a><nav class="main-menu"><ul>{nav}</ul></nav></header>
<main>
<article>
<h1>{article.title}</h1>
<p class="byline">{rng.choice(AUTHORS)} &middot; {rng.randint(2, 9)} min read</p>
{paragraphs}
</article>
<aside class="sidebar"><h3>Most read</h3><ul>{related}</ul>
<div class="newsletter"><h3>Newsletter</h3><p>Get our best stories in your inbox every morning.</p>
<form><input type="email" placeholder="you@example.com"><button>Subscribe</button></form></div></aside>
</main>
<footer class="site-footer"><ul><li><a href="/privacy">Privacy policy</a></li><li><a href="/terms">Terms of use</a></li>
<li><a href="/imprint">Imprint</a></li><li><a href="/contact">Contact</a></li></ul>
<p>&copy; 2024 {name}. All rights reserved.</p></footer>
<script src="/static/js/app.js"></script>
</body>
</html>
"""


def _simple_html(title: str, body: str, head: str = "") -> bytes:
    return f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>{title}</title>{head}</head>' \
           f"<body>{body}</body></html>\n".encode()


# ---------------------------------------------------------------- page kinds

# Main content: news and blog pages in ten languages, for extraction and language id.
def _article_page(rng: random.Random, lang: str, index: int) -> Page:
    article = _compose_article(rng, lang)
    host = rng.choice(SITES[lang])
    body = _render_html(rng, article, host).encode("utf-8")
    return Page(_article_url(rng, host, article, index), body, article=article)


# Exact duplicate: the same bytes served again under tracking parameters, for exact dedup.
def _exact_duplicate(rng: random.Random, page: Page) -> Page:
    variant = rng.choice(["?utm_source=newsletter&utm_medium=email", "?ref=homepage", "?amp=1"])
    return Page(page.url + variant, page.body, page.content_type, "exact_duplicate", page.article)


# Near duplicate: a syndicated copy, a few words changed and another site's boilerplate, for fuzzy dedup.
def _near_duplicate(rng: random.Random, page: Page, index: int) -> Page:
    words = [paragraph.split(" ") for paragraph in page.article.paragraphs]
    for _ in range(3):
        paragraph = rng.choice(words)
        paragraph[rng.randrange(len(paragraph))] = rng.choice(rng.choice(words))
    copy = Article(page.article.lang, page.article.title, [" ".join(p) for p in words])
    host = rng.choice(NEAR_DUPLICATE_HOSTS)
    body = _render_html(rng, copy, host).encode("utf-8")
    return Page(_article_url(rng, host, copy, index), body, kind="near_duplicate", article=copy)


# Legacy charsets, declared in the HTTP header or only in <meta>: decoders must honour both.
def _encoded_page(rng: random.Random, lang: str, charset: str, declared_in: str, index: int) -> Page:
    article = _compose_article(rng, lang)
    host = rng.choice(SITES[lang])
    html = _render_html(rng, article, host, meta_charset=charset if declared_in == "meta" else None)
    content_type = f"text/html; charset={charset}" if declared_in == "header" else "text/html"
    return Page(_article_url(rng, host, article, index), html.encode(charset), content_type,
                f"encoding_{charset}", article)


# Invalid UTF-8 under a utf-8 label: decoding must degrade gracefully, not crash.
def _invalid_utf8_page(rng: random.Random, index: int) -> Page:
    page = _article_page(rng, "de", index)
    broken = b"</h1>\n<p>Heute im Angebot: \xff\xfe Kaffee \xc3\x28 und Kuchen.</p>"
    return Page(page.url, page.body.replace(b"</h1>", broken, 1), page.content_type, "invalid_utf8", page.article)


# Empty body: the fetch succeeded but there is nothing to extract.
def _empty_page(rng: random.Random) -> Page:
    return Page("https://daily-harbor.example/feed/empty", b"", kind="junk_empty")


# Navigation only: menus and footer without content, which must not become a document.
def _navigation_only_page(rng: random.Random) -> Page:
    links = "".join(f'<li><a href="/{s}/">{s.title()}</a></li>' for s in rng.sample(SECTIONS, len(SECTIONS)))
    body = f"<header><nav><ul>{links}</ul></nav></header><footer><p>&copy; 2024 Riverside Gazette</p></footer>"
    return Page("https://riverside-gazette.example/sections/", _simple_html("Sections", body), kind="junk_navigation")


# Lorem ipsum: unfinished template filler, for quality filters.
def _lorem_ipsum_page(rng: random.Random) -> Page:
    paragraphs = "".join(f"<p>{' '.join(rng.choice(LOREM_WORDS) for _ in range(60)).capitalize()}.</p>"
                         for _ in range(5))
    return Page("https://lorem-shop.example/product/sample", _simple_html("Product", paragraphs), kind="junk_lorem")


# Keyword spam: repetitive SEO text, for repetition filters.
def _keyword_spam_page(rng: random.Random) -> Page:
    text = ", ".join(rng.choice(SPAM_KEYWORDS) for _ in range(300))
    return Page("https://best-deals-now.example/", _simple_html("Cheap flights best deals", f"<p>{text}</p>"),
                kind="junk_spam")


# Script only: a single-page app shell with no text rendered on the server.
def _script_only_page(rng: random.Random) -> Page:
    script = f"<script>window.__STATE__={{\"build\":{rng.randint(1000, 9999)}}};document.write('loading');</script>"
    return Page("https://app-shell.example/", _simple_html("App", script, head=script), kind="junk_script")


# Very short: a placeholder with too few words to be a document.
def _very_short_page(rng: random.Random) -> Page:
    return Page("https://coming-soon.example/", _simple_html("Soon", "<p>Coming soon.</p>"), kind="junk_short")


# Non-HTML responses, which the pipeline must skip by content type.
def _png_response(rng: random.Random, size: int = 16) -> Page:
    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))
    rows = b"".join(b"\x00" + bytes(rng.randrange(256) for _ in range(size * 3)) for _ in range(size))
    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0))
           + chunk(b"IDAT", zlib.compress(rows, 9)) + chunk(b"IEND", b""))
    return Page("https://daily-harbor.example/static/img/logo.png", png, "image/png", "image")


def _json_response(rng: random.Random) -> Page:
    data = {"page": 2, "items": [{"id": rng.randint(1, 10**6), "title": _headline(rng, "en")} for _ in range(3)]}
    body = json.dumps(data, sort_keys=True).encode()
    return Page("https://daily-harbor.example/api/v1/articles?page=2", body, "application/json; charset=utf-8", "json")


def _css_response(rng: random.Random) -> Page:
    body = b"body{font-family:Georgia,serif;margin:0}.cookie-consent{position:fixed;bottom:0}.sidebar{float:right}\n"
    return Page("https://daily-harbor.example/static/css/main.css", body, "text/css", "css")


# Large page: about 1.5 MB of HTML, for size limits.
def _large_page(rng: random.Random, index: int) -> Page:
    paragraphs, size = [], 0
    while size < LARGE_PAGE_BYTES:
        paragraphs.append(_paragraph(rng, "en"))
        size += len(paragraphs[-1]) + 8
    article = Article("en", "Community notes: the complete archive", paragraphs)
    host = "riverside-gazette.example"
    return Page(_article_url(rng, host, article, index), _render_html(rng, article, host).encode(), kind="large",
                article=article)


# ---------------------------------------------------------------- plan and write

def _plan_pages(rng: random.Random, documents: int) -> list[Page]:
    """Exactly `documents` response pages, shuffled; the special pages are a fixed set."""
    ids = itertools.count()
    duplicates = max(1, round(documents * 0.05))
    count = documents - SPECIAL_PAGES - 2 * duplicates
    langs = list(LANGUAGE_WEIGHTS) + rng.choices(list(LANGUAGE_WEIGHTS), list(LANGUAGE_WEIGHTS.values()),
                                                 k=count - len(LANGUAGE_WEIGHTS))
    rng.shuffle(langs)
    articles = [_article_page(rng, lang, next(ids)) for lang in langs]
    spaced = [page for page in articles if page.article.lang not in ("zh", "ja")]
    pages = list(articles)
    pages += [_exact_duplicate(rng, page) for page in rng.sample(articles, duplicates)]
    pages += [_near_duplicate(rng, page, next(ids)) for page in rng.sample(spaced, duplicates)]
    pages += [_encoded_page(rng, *spec, next(ids)) for spec in ENCODED_PAGES]
    pages += [_invalid_utf8_page(rng, next(ids)), _large_page(rng, next(ids))]
    pages += [make(rng) for make in (_empty_page, _navigation_only_page, _lorem_ipsum_page, _keyword_spam_page,
                                     _script_only_page, _very_short_page, _png_response, _json_response, _css_response)]
    rng.shuffle(pages)
    assert len(pages) == documents
    return pages


class _SampleWarcWriter:
    """Writes records whose ids and dates come from the sample's RNG and clock, not uuid4/now."""

    def __init__(self, stream, rng: random.Random, now: datetime):
        self.writer = WARCWriter(stream, gzip=True)
        self.rng, self.now = rng, now

    def _record_id(self) -> str:
        return f"<urn:uuid:{uuid.UUID(int=self.rng.getrandbits(128), version=4)}>"

    def _warc_headers(self, record_id: str | None = None, **extra: str) -> dict[str, str]:
        return {"WARC-Record-ID": record_id or self._record_id(),
                "WARC-Date": self.now.strftime("%Y-%m-%dT%H:%M:%SZ"), **extra}

    def _write(self, uri: str, record_type: str, payload: bytes, http_headers=None, **warc_headers):
        record = self.writer.create_warc_record(uri, record_type, payload=BytesIO(payload), length=len(payload),
                                                http_headers=http_headers,
                                                warc_headers_dict=self._warc_headers(**warc_headers))
        self.writer.write_record(record)
        return record

    def warcinfo(self, filename: str, seed: int) -> None:
        fields = {"software": "crawl2model sample generator", "format": "WARC File Format 1.0",
                  "isPartOf": f"crawl2model-sample-{seed}", "description": "Synthetic sample crawl; see pipeline/sample.py"}
        payload = "".join(f"{k}: {v}\r\n" for k, v in fields.items()).encode()
        self._write("", "warcinfo", payload, **{"WARC-Filename": filename})

    def _response_headers(self, page: Page) -> StatusAndHeaders:
        host = page.url.split("/")[2]
        return StatusAndHeaders("200 OK", [
            ("Content-Type", page.content_type), ("Content-Length", str(len(page.body))),
            ("Date", format_datetime(self.now, usegmt=True)), ("Server", SERVERS[zlib.crc32(host.encode()) % 4])],
            protocol="HTTP/1.1")

    def page(self, page: Page):
        """Optionally the request, then the response; returns the response record."""
        self.now += timedelta(seconds=self.rng.randint(1, 20))
        response_id = self._record_id()
        if self.rng.random() < 0.5:
            host, path = re.match(r"https://([^/]+)(/.*)", page.url).groups()
            request = StatusAndHeaders(f"GET {path} HTTP/1.1", [
                ("Host", host), ("User-Agent", "crawl2model-sample/1.0"), ("Accept", "text/html,*/*;q=0.8")],
                is_http_request=True)
            self._write(page.url, "request", b"", request, **{"WARC-Concurrent-To": response_id})
        return self._write(page.url, "response", page.body, self._response_headers(page), record_id=response_id)

    def revisit_and_metadata(self, page: Page, original) -> None:
        """A later identical fetch of `page` (revisit) and crawler notes about it (metadata)."""
        refers_to_date = original.rec_headers.get_header("WARC-Date")
        self.now += timedelta(hours=6)
        revisit = self.writer.create_revisit_record(
            page.url, original.rec_headers.get_header("WARC-Payload-Digest"), page.url, refers_to_date,
            http_headers=self._response_headers(page), warc_headers_dict=self._warc_headers(
                **{"WARC-Refers-To": original.rec_headers.get_header("WARC-Record-ID")}))
        self.writer.write_record(revisit)
        notes = f"via: https://{page.url.split('/')[2]}/\r\nfetchTimeMs: {self.rng.randint(40, 900)}\r\n".encode()
        self._write(page.url, "metadata", notes,
                    **{"WARC-Concurrent-To": original.rec_headers.get_header("WARC-Record-ID")})


def write_sample_crawl(out_dir: str | Path, *, seed: int = 1234, documents: int = 240, files: int = 4) -> list[str]:
    """Write files `sample-00000.warc.gz` ... into out_dir (a local folder or an fsspec URL) and
    return their paths, sorted.

    Exactly `documents` response records are spread evenly over `files` files.
    """
    import io

    from crawl2model.pipeline import storage

    if documents < MIN_DOCUMENTS:
        raise ValueError(f"documents must be at least {MIN_DOCUMENTS}, got {documents}")
    if not 1 <= files <= documents:
        raise ValueError(f"files must be between 1 and documents, got {files}")
    rng = random.Random(seed)
    pages = _plan_pages(rng, documents)
    now, paths = CRAWL_START, []
    for n in range(files):
        path = storage.join(str(out_dir), f"sample-{n:05d}.warc.gz")
        stream = io.BytesIO()
        writer = _SampleWarcWriter(stream, rng, now)
        writer.warcinfo(path.rsplit("/", 1)[1], seed)
        for i, page in enumerate(pages[n * documents // files:(n + 1) * documents // files]):
            response = writer.page(page)
            if n == 0 and i == 0:
                writer.revisit_and_metadata(page, response)
        now = writer.now
        storage.write_bytes_atomic(path, stream.getvalue())
        paths.append(path)
    return sorted(paths)
