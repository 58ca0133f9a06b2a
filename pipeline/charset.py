"""Decoding page bytes as browsers do: BOM, HTTP charset, <meta charset>, UTF-8, then detection."""
from __future__ import annotations

import codecs
import re

_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([\w.:-]+)""", re.I)
# labels browsers decode as a superset (WHATWG Encoding): pages rely on the extra characters
_WHATWG_ALIASES = {"iso-8859-1": "cp1252", "latin-1": "cp1252", "latin1": "cp1252", "ascii": "cp1252",
                   "us-ascii": "cp1252", "iso-8859-9": "cp1254", "tis-620": "cp874", "iso-8859-11": "cp874",
                   "shift_jis": "cp932", "shift-jis": "cp932", "sjis": "cp932", "x-sjis": "cp932",
                   "windows-31j": "cp932", "euc-kr": "cp949", "big5": "big5hkscs", "gb2312": "gb18030",
                   "gbk": "gb18030", "x-user-defined": "cp1252"}


def decode_html(body: bytes, declared: str | None) -> tuple[str, str]:
    """Decode page bytes: BOM, HTTP charset, <meta charset>, strict UTF-8, then detection.
    Undecodable bytes become U+FFFD rather than failing the document."""
    for bom, name in ((codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16")):
        if body.startswith(bom):
            return body.decode(name, "replace").lstrip("\ufeff"), name
    meta = _META_CHARSET.search(body[:4096])
    meta_codec = _codec(meta.group(1).decode("ascii", "ignore") if meta else None)
    if meta_codec and meta_codec.startswith(("utf-16", "utf-32")):
        meta_codec = "utf-8"  # a <meta> readable as ASCII bytes is not UTF-16 (as browsers rule)
    declared_codecs = [c for c in (_codec(declared), meta_codec) if c]
    for name in [*declared_codecs, "utf-8"]:
        try:
            return body.decode(name), name
        except UnicodeDecodeError:
            pass  # a wrong declaration is common: try the next, then detection
    if declared_codecs:  # a few bad bytes in a declared page: keep the declaration, mark the bytes
        text = body.decode(declared_codecs[0], "replace")
        if text.count("\ufffd") <= max(1, len(text) // 100):  # one bad byte in a short page is still no reason
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
        info = codecs.lookup(name)
    except LookupError:
        return None
    # base64, hex, zlib, rot13, ... are codecs but not text encodings: bytes.decode refuses them
    return info.name if getattr(info, "_is_text_encoding", True) else None
