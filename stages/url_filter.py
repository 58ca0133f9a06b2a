"""`url_filter`: remove documents whose URL is on a block list of domains or contains a blocked substring.

Block lists come from files (`domains_files`, `substrings_files`: one entry a line, blank lines and
`#` comments ignored) and inline lists (`domains`, `substrings`). Files are checked when the config
is read and loaded once per worker in `setup()`; nothing is downloaded.

Domains. A listed domain blocks itself and every subdomain: `example.com` blocks `example.com` and
`a.b.example.com`, not `badexample.com` nor `example.com.evil.org`. The most specific listed
domain is reported: `url_filter:domain=example.com`. Domain list lines may also be hosts-file lines
(`0.0.0.0 example.com`), wildcards (`*.example.com`, `.example.com`) or URLs (their host is taken).
Hosts and entries are compared in one canonical form: lower case, trailing dots removed,
internationalised names in ASCII (`bücher.de` and `xn--bcher-kva.de` are the same entry, UTS #46
mapping via `idna`), so a block list written either way matches URLs written either way.

URLs are parsed leniently: with or without a scheme (`example.com/path`, `//example.com`), with
user info, a port, an IPv6 literal, upper case or percent-escapes in the host. An IP address is
matched only whole (a listed `10.0.0.1`), never by suffix.

Substrings. Matched case-insensitively anywhere in the URL, as written and percent-decoded, with
an internationalised host also in Unicode; reported as `url_filter:substring=<entry>` (the
leftmost match). Domains are checked first.

A removed document's `drop_detail` says what matched: the host and the listed domain it falls under
(`host=www.example.com under example.com`), or the substring and the form of the URL it was found in
(`'casino' in the url percent-decoded`).

Documents with no `url` column, a null or empty url, or a url with no host (`mailto:`, garbage)
pass and are counted (`passed:no_url_column`, `passed:no_url`, `passed:no_host`).

Compared with datatrove's URLFilter: that one downloads its integrated lists, needs tldextract
(and the public suffix list) and only blocks a listed registered domain or exact host, asserting
on a missing url; here any listed ancestor domain blocks, no suffix list is needed, and a missing
url passes. Its banned/soft-banned URL *words* are left out: substrings cover the blunt case.
"""
from __future__ import annotations

import ipaddress
import re
from bisect import bisect_right
from itertools import accumulate
from pathlib import Path
from typing import Annotated, ClassVar
from urllib.parse import unquote, urlsplit

import pyarrow as pa
from pydantic import AfterValidator, Field, model_validator

from crawl2model.pipeline.stage import DROP_DETAIL, DROP_REASON, Stage, StageConfig
from crawl2model.stages._trie import trie_pattern

try:
    import idna
except ImportError:  # Python's own IDNA 2003 codec is the fallback
    idna = None

_SCHEME = re.compile(r"^([a-z][a-z0-9+.\-]*):", re.IGNORECASE)
_HOSTLESS_SCHEMES = {"mailto", "javascript", "data", "tel", "sms", "about", "urn", "blob", "magnet", "news",
                     "geo", "callto", "skype", "sip", "xmpp", "cid", "mid"}
_DOTS = re.compile("[\u3002\uff0e\uff61]")  # ideographic and full-width full stops separate labels too
_HOST_CHARS = re.compile(r"^[^\s/\\?#@]+$")


def _existing_file(value: str) -> str:
    path = Path(value).expanduser()
    if not path.is_file():
        raise ValueError(f"no such file '{value}' (relative paths start at the current directory, {Path.cwd()})")
    return str(path.resolve())


def _nonempty(value: str) -> str:
    if not value.strip():
        raise ValueError("an empty entry would match every URL")
    return value


def _domain(value: str) -> str:
    if not parse_domain_entry(value):
        raise ValueError(f"not a domain: {value!r} (write it as example.com)")
    return value


ListFile = Annotated[str, AfterValidator(_existing_file)]


def _label_ascii(label: str) -> str:
    if label.isascii():
        return label.lower()
    try:
        return idna.encode(label, uts46=True).decode("ascii")
    except Exception:  # not valid IDNA 2008 (or no idna package): try IDNA 2003
        try:
            return label.encode("idna").decode("ascii").lower()
        except UnicodeError:
            return label.lower()  # not valid IDNA: compared as written, in lower case


def canonical_host(host: str) -> str:
    """`WWW.Bücher.DE.` -> `www.xn--bcher-kva.de`; '' when nothing host-like is left."""
    host = _DOTS.sub(".", unquote(host.strip())).strip(".").lower()
    if not host or not _HOST_CHARS.match(host):
        return ""
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return ".".join(_label_ascii(label) for label in host.split(".") if label)


def unicode_host(host: str) -> str:
    if "xn--" not in host:
        return host
    try:
        return idna.decode(host) if idna else host.encode("ascii").decode("idna")
    except Exception:
        return host


def url_host(url: str) -> str:
    """The canonical host of a URL, '' when it has none (or cannot be parsed)."""
    url = url.strip().replace("\\", "/")  # browsers read http:\\host\\ as http://host/
    if not url:
        return ""
    if "://" not in url[:64] and not url.startswith("//"):
        scheme = _SCHEME.match(url)
        # `mailto:x@y`, `javascript:...` name no host; `example.com:8080/x`, `user:pw@host/` do
        if scheme and scheme.group(1).lower() in _HOSTLESS_SCHEMES:
            return ""
        url = "//" + url
    try:
        netloc = urlsplit(url).netloc
    except ValueError:  # an unbalanced IPv6 bracket and the like
        return ""
    host = netloc.rpartition("@")[2]
    if host.startswith("["):
        host = host[:host.find("]") + 1] if "]" in host else ""
    else:
        host = host.partition(":")[0]
    return canonical_host(host)


def parse_domain_entry(line: str) -> str:
    """A domain list line -> canonical domain ('' for none): `example.com`, `*.example.com`,
    `.example.com`, `0.0.0.0 example.com` (hosts file), `https://example.com/x` (its host)."""
    line = line.split("#", 1)[0].strip()
    parts = line.split()
    if len(parts) == 2 and _is_ip(parts[0]):
        line = parts[1]
    elif len(parts) != 1:
        return ""
    line = line.lstrip("*").lstrip(".")
    return url_host(line) if ("/" in line or ":" in line) and not _is_ip(line) else canonical_host(line)


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
        return True
    except ValueError:
        return False


def read_entries(path: str) -> list[str]:
    lines = Path(path).read_text(encoding="utf-8", errors="replace").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def substring_regex(entries: list[str]) -> re.Pattern | None:
    """One regex over all substrings, the longest entry tried first at each position."""
    return re.compile(trie_pattern(entries), re.DOTALL) if entries else None


class UrlFilterConfig(StageConfig):
    domains: list[Annotated[str, AfterValidator(_domain)]] = Field(default_factory=list)
    domains_files: list[ListFile] = Field(default_factory=list)
    substrings: list[Annotated[str, AfterValidator(_nonempty)]] = Field(default_factory=list)
    substrings_files: list[ListFile] = Field(default_factory=list)

    @model_validator(mode="after")
    def _something_to_block(self) -> "UrlFilterConfig":
        if not (self.domains or self.domains_files or self.substrings or self.substrings_files):
            raise ValueError("url_filter blocks nothing: give domains, domains_files, substrings or substrings_files")
        return self


class UrlFilter(Stage):
    type_name = "url_filter"
    Config: ClassVar[type[UrlFilterConfig]] = UrlFilterConfig
    requires = ()  # without a url column every document passes (and is counted)
    packages = ("idna",)

    @classmethod
    def data_files(cls, config: UrlFilterConfig) -> list[str]:
        return [*config.domains_files, *config.substrings_files]

    def setup(self) -> None:
        config = self.config
        domains = list(config.domains) + [line for path in config.domains_files for line in read_entries(path)]
        self.domains = {d for d in map(parse_domain_entry, domains) if d}
        substrings = list(config.substrings) + [line for path in config.substrings_files for line in read_entries(path)]
        self.substrings = substring_regex(sorted({s.strip().lower() for s in substrings if s.strip()}))

    def blocked_domain(self, host: str) -> str | None:
        """The most specific listed domain that is `host` or one of its parents."""
        if host in self.domains:
            return host
        if _is_ip(host):
            return None
        labels = host.split(".")
        for i in range(1, len(labels)):
            parent = ".".join(labels[i:])
            if parent in self.domains:
                return parent
        return None

    def blocked_substring(self, url: str, host: str) -> str | None:
        found = self.find_substring(url, host)
        return found and found[0]

    def find_substring(self, url: str, host: str) -> tuple[str, str] | None:
        """(the leftmost listed substring in the url, the form of the url it was found in)."""
        if self.substrings is None:
            return None
        lowered = url.lower()
        forms = {"url": lowered}
        decoded = unquote(lowered, errors="replace")
        if decoded != lowered:
            forms["url percent-decoded"] = decoded
        unicode = unicode_host(host)
        if unicode != host:
            forms["url with its host in Unicode"] = decoded.replace(host, unicode)
        joined = "\n".join(forms.values())
        match = self.substrings.search(joined)
        if match is None:
            return None
        starts = list(accumulate(len(form) + 1 for form in forms.values()))  # where each next form starts
        return match.group(), list(forms)[bisect_right(starts, match.start())]

    def judge(self, url) -> str | None:
        """The reason to remove the document with this url, or None."""
        verdict = self.verdict(url)
        return verdict and verdict[0]

    def verdict(self, url) -> tuple[str, str] | None:
        """(the reason to remove the document with this url, what matched), or None."""
        if isinstance(url, bytes):
            url = url.decode("utf-8", errors="replace")
        elif url is not None and not isinstance(url, str):
            url = str(url)
        if not url or not url.strip():
            self.counters["passed:no_url"] += 1
            return None
        host = url_host(url)
        domain = self.blocked_domain(host) if host else None
        if domain:
            return f"{self.type_name}:domain={domain}", f"host={host}" + (" is listed" if host == domain else f" under {domain}")
        found = self.find_substring(url.strip(), host)
        if found:
            substring, form = found
            return f"{self.type_name}:substring={substring}", f"{substring!r} in the {form}"
        if not host:
            self.counters["passed:no_host"] += 1
        return None

    def process(self, batch: pa.Table) -> pa.Table:
        if "url" not in batch.column_names:
            self.counters["passed:no_url_column"] += batch.num_rows
            nulls = pa.nulls(batch.num_rows, pa.string())
            return batch.append_column(DROP_REASON, nulls).append_column(DROP_DETAIL, nulls)
        verdicts = [self.verdict(url) or (None, None) for url in batch.column("url").to_pylist()]
        reasons, details = zip(*verdicts) if verdicts else ((), ())
        return (batch.append_column(DROP_REASON, pa.array(reasons, pa.string()))
                .append_column(DROP_DETAIL, pa.array(details, pa.string())))
