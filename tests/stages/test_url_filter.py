"""Tests for the url_filter stage (stages/url_filter.py): domain and substring block lists, inline
and from files, on hand-built URLs, and bad input."""
from __future__ import annotations

import pyarrow as pa
import pytest
from pydantic import ValidationError

from crawl2model.pipeline.stage import DROP_REASON

from crawl2model.catalog import resolve_stage
from crawl2model.stages.url_filter import UrlFilter, UrlFilterConfig, canonical_host, url_host


@pytest.fixture
def stage():
    stage = UrlFilter(UrlFilterConfig(domains=["example.com", "Bücher.de.", "10.0.0.1"],
                                      substrings=["casino", "/WP-Admin/"]))
    stage.setup()
    return stage


def run(stage: UrlFilter, urls) -> list:
    out = stage(pa.table({"text": ["t"] * len(urls), "url": pa.array(urls, pa.string())}))  # set up on first use
    assert out.num_rows == len(urls)
    return out.column(DROP_REASON).to_pylist()


def test_resolves_by_type_name():
    assert resolve_stage("url_filter") is UrlFilter


@pytest.mark.parametrize("url", [
    "http://example.com/", "https://example.com", "http://a.example.com/x", "http://a.b.example.com/x?y=1#z",
    "example.com", "example.com/path", "//example.com/x", "EXAMPLE.COM", "HTTP://WWW.Example.Com/Path",
    "http://example.com:8080/x", "example.com:443", "http://user:pw@example.com/", "user:pw@a.example.com:99/",
    "http://example.com./", "http://www.example.com../x", " http://example.com \n", "http://ex%61mple.com/",
    "http:\\\\example.com\\x",
])
def test_domain_and_its_subdomains_are_blocked(stage, url):
    assert run(stage, [url]) == ["url_filter:domain=example.com"]


@pytest.mark.parametrize("url", [
    "http://badexample.com/", "http://example.com.evil.org/", "http://example.co/", "http://examplecom.net",
    "http://evil.org/?next=example.com", "http://evil.org/example.com", "http://notexample.com:80",
])
def test_lookalikes_are_not_blocked(stage, url):
    assert run(stage, [url]) == [None]


@pytest.mark.parametrize("url", [
    "http://bücher.de/", "http://BÜCHER.DE/", "http://xn--bcher-kva.de/", "https://shop.bücher.de/a",
    "http://www.bücher。de/",  # ideographic full stop
])
def test_international_domain_names_in_either_form(stage, url):
    assert run(stage, [url]) == ["url_filter:domain=xn--bcher-kva.de"]


def test_ip_addresses_match_whole_only(stage):
    assert run(stage, ["http://10.0.0.1/x", "http://10.0.0.1:8000", "http://110.0.0.1/", "http://10.0.0.10/"]) == [
        "url_filter:domain=10.0.0.1", "url_filter:domain=10.0.0.1", None, None]


def test_substrings_case_insensitive_and_percent_decoded(stage):
    assert run(stage, ["http://a.org/CASINO-royale", "http://a.org/wp-admin/x", "http://a.org/%63asino",
                       "http://a.org/wp-admin", "http://casino.org"]) == [
        "url_filter:substring=casino", "url_filter:substring=/wp-admin/", "url_filter:substring=casino",
        None, "url_filter:substring=casino"]


def test_domain_wins_over_substring(stage):
    assert run(stage, ["http://example.com/casino"]) == ["url_filter:domain=example.com"]


def test_most_specific_listed_domain_is_reported():
    stage = UrlFilter(UrlFilterConfig(domains=["example.com", "ads.example.com"]))
    assert run(stage, ["http://x.ads.example.com/", "http://www.example.com/"]) == [
        "url_filter:domain=ads.example.com", "url_filter:domain=example.com"]


def test_lists_from_files(tmp_path):
    domains = tmp_path / "domains.txt"
    domains.write_text("# hosts file and plain lines\n\n0.0.0.0 tracker.org\n*.wild.net\n.dot.io\n"
                       "https://Listed.COM/some/page\nplain.org  # trailing comment\nnot a domain line at all\n",
                       encoding="utf-8")
    substrings = tmp_path / "substrings.txt"
    substrings.write_text("# comment\nPorn\n\n/bad-path/\n", encoding="utf-8")
    stage = UrlFilter(UrlFilterConfig(domains_files=[str(domains)], substrings_files=[str(substrings)],
                                      domains=["inline.org"], substrings=["inline-sub"]))
    assert run(stage, ["http://a.tracker.org/", "http://x.wild.net", "http://wild.net", "http://dot.io",
                       "http://listed.com/other", "http://plain.org", "http://inline.org", "http://a.b/PORN",
                       "http://a.b/bad-path/x", "http://a.b/inline-sub", "http://a.b/fine"]) == [
        "url_filter:domain=tracker.org", "url_filter:domain=wild.net", "url_filter:domain=wild.net",
        "url_filter:domain=dot.io", "url_filter:domain=listed.com", "url_filter:domain=plain.org",
        "url_filter:domain=inline.org", "url_filter:substring=porn", "url_filter:substring=/bad-path/",
        "url_filter:substring=inline-sub", None]


def test_missing_url_column_and_null_urls_pass_and_are_counted(stage):
    out = stage.process(pa.table({"text": ["a", "b"]}))
    assert out.column(DROP_REASON).to_pylist() == [None, None]
    assert stage.counters["passed:no_url_column"] == 2
    assert run(stage, [None, "", "   "]) == [None, None, None]
    assert stage.counters["passed:no_url"] == 3


@pytest.mark.parametrize("url", [
    "mailto:someone@example.com", "javascript:void(0)", "data:text/html,example.com", "http://[abc", "http://",
    "%%%%", "http://exa mple.com", "://", "http://[::1", "\x00\x01", "http://" + "a." * 5000 + "org",
    "x" * 5_000_000, "http://xn--zzzz-.com", "http://\ufffd\ufffd.com", "file:///etc/passwd", "http://:80/",
    "ht!tp://example.com", "http://-.com", "http://a..b", "urn:isbn:0451450523",
])
def test_garbage_urls_do_not_crash(stage, url):
    # None of these has a listed domain for its host, nor a listed substring: each passes. Those
    # naming example.com name it outside a host: the address of a mail (`mailto:`, hostless as
    # documented), the payload of a `data:` URL, and after a scheme that is no scheme (`ht!tp:`:
    # WHATWG's parser rejects the URL, urlsplit reads it all as a path).
    assert run(stage, [url]) == [None]
    assert not stage.counters.keys() - {"passed:no_host"}


@pytest.mark.parametrize("url, reason", [
    ("http://example.com/%%%%", "url_filter:domain=example.com"), ("http://[abc.example.com", None),
    ("http://\ufffd\ufffd.example.com/", "url_filter:domain=example.com"),
    ("http://xn--zzzz-.example.com/", "url_filter:domain=example.com"),
    ("http://" + "a." * 5000 + "example.com/", "url_filter:domain=example.com"),
    ("http://" + "a." * 5000 + "org/casino", "url_filter:substring=casino"),
])
def test_garbage_around_a_listed_host_still_reports_it(stage, url, reason):
    """Garbage in the rest of a URL, or in the labels of a subdomain, leaves the verdict
    unambiguous: a subdomain of a listed domain is blocked whatever its own labels are (a label
    that is no valid IDNA is compared as written); an unclosed IPv6 bracket leaves no host."""
    assert run(stage, [url]) == [reason]


def test_hostless_urls_are_counted_but_substrings_still_apply(stage):
    assert run(stage, ["mailto:x@example.com", "javascript:casino()"]) == [None, "url_filter:substring=casino"]
    assert stage.counters["passed:no_host"] == 1


def test_judge_tolerates_odd_values(stage):
    # a lone surrogate (no Arrow string can hold one) in a label of a subdomain of a listed domain:
    # whatever that label is, the host is under example.com; under a lookalike it is not
    assert stage.judge("\ud800.example.com") == "url_filter:domain=example.com"
    assert stage.judge("http://\ud800.example.com/\udfff") == "url_filter:domain=example.com"
    assert stage.judge("http://\ud800.badexample.com/") is None
    assert stage.judge("http://\ud800.org/casino\udfff") == "url_filter:substring=casino"
    assert stage.judge(b"http://example.com") == "url_filter:domain=example.com"
    assert stage.judge(12) is None


def test_host_parsing():
    assert url_host("HTTP://User@WWW.Example.COM.:8080/a?b#c") == "www.example.com"
    assert url_host("http://[2001:db8::1]:80/") == "2001:db8::1"
    assert url_host("mailto:x@y.org") == ""
    assert canonical_host("Bücher.DE.") == "xn--bcher-kva.de"


def test_config_checks_files_and_entries(tmp_path):
    with pytest.raises(ValidationError) as error:
        UrlFilterConfig(domains_files=[str(tmp_path / "missing.txt")])
    assert error.value.errors()[0]["loc"] == ("domains_files", 0)
    assert "no such file" in str(error.value)
    with pytest.raises(ValidationError) as error:
        UrlFilterConfig(domains=["a.org"], substrings_files=[str(tmp_path)])  # a directory
    assert error.value.errors()[0]["loc"] == ("substrings_files", 0)
    with pytest.raises(ValidationError) as error:
        UrlFilterConfig(substrings=[" "])
    assert error.value.errors()[0]["loc"] == ("substrings", 0)
    with pytest.raises(ValidationError) as error:
        UrlFilterConfig(domains=["ok.org", "not a domain"])
    assert error.value.errors()[0]["loc"] == ("domains", 1)
    with pytest.raises(ValidationError, match="blocks nothing"):
        UrlFilterConfig()
    with pytest.raises(ValidationError, match="extra"):
        UrlFilterConfig(domains=["a.org"], domain_files=["x"])


def test_drop_detail_says_what_matched(stage):
    out = stage(pa.table({"url": ["http://a.b.example.com/x", "http://example.com", "http://a.org/%63asino",
                                  "http://a.org/CASINO", "http://fine.org/"]}))
    assert out.column("drop_detail").to_pylist() == [
        "host=a.b.example.com under example.com", "host=example.com is listed",
        "'casino' in the url percent-decoded", "'casino' in the url", None]
    no_urls = stage(pa.table({"text": ["t"]}))
    assert no_urls.column("drop_detail").to_pylist() == [None]
