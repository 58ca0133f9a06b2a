"""decode_html on hand-made bytes: declarations in HTTP and <meta>, detection, bad bytes, BOMs."""
from __future__ import annotations

from crawl2model.pipeline.charset import decode_html


RUSSIAN = ("<html><body><p>Съешь же ещё этих мягких французских булок, да выпей чаю. Широкая электрификация "
           "южных губерний даст мощный толчок подъёму сельского хозяйства.</p></body></html>")


def test_decode_windows_1252_declared_in_http():
    page = "<html><body>Café déjà vu – “quotes”</body></html>"
    assert decode_html(page.encode("cp1252"), "windows-1252") == (page, "cp1252")


def test_decode_shift_jis_declared_only_in_meta():
    page = '<html><head><meta charset="Shift_JIS"></head><body>日本語のページです。①</body></html>'  # ① is cp932 only
    text, charset = decode_html(page.encode("cp932"), None)
    assert text == page and charset == "cp932"


def test_decode_koi8_r_undeclared_is_detected():
    text, charset = decode_html(RUSSIAN.encode("koi8-r"), None)
    assert text == RUSSIAN and charset == "koi8-r"


def test_decode_utf8_with_one_invalid_byte_keeps_utf8():
    body = "<html><body>naïve</body></html>".encode().replace(b">na", b">\xffna")
    text, charset = decode_html(body, "utf-8")
    assert charset == "utf-8" and text == "<html><body>\ufffdnaïve</body></html>"


def test_decode_utf8_bom_wins_over_declaration():
    assert decode_html(b"\xef\xbb\xbf<html>\xc3\xa9</html>", "iso-8859-1") == ("<html>é</html>", "utf-8")


def test_decode_meta_utf16_on_ascii_bytes_means_utf8():
    page = '<html><head><meta charset="utf-16"></head><body>é</body></html>'
    assert decode_html(page.encode(), None) == (page, "utf-8")
