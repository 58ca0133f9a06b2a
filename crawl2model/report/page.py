"""The page around the sections: HTML helpers, the style sheet, the table of contents.

Everything a run holds (stage names, reasons, URLs, crawled text) goes through `esc`: crawled text
can contain any markup, and here it must stay text. Nothing is loaded from elsewhere: no script,
no font, no style sheet, no image but the inline SVG.
"""
from __future__ import annotations

import html
from dataclasses import dataclass

TEXT_CHARS = 600  # characters of a document's text shown


@dataclass
class Section:
    id: str
    title: str
    body: str | None  # None: the run has nothing for it
    absent: str = "not in this run"


def esc(value) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def short(text: str | None, chars: int = TEXT_CHARS) -> str:
    text = text or ""
    return text if len(text) <= chars else text[:chars].rstrip() + " …"


def number(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:,.4g}" if abs(value) < 1000 else f"{value:,.0f}"
    return f"{value:,}" if isinstance(value, int) else esc(value)


def table(headers: list[str], rows: list[list], caption: str | None = None) -> str:
    """A table; numbers right-aligned and with thousands separators, everything else escaped."""
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(
        f'<td class="n">{number(cell)}</td>' if isinstance(cell, (int, float)) and not isinstance(cell, bool)
        else f"<td>{esc(cell)}</td>" for cell in row) + "</tr>" for row in rows)
    title = f"<caption>{esc(caption)}</caption>" if caption else ""
    return f"<table>{title}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def facts(pairs: list[tuple[str, object]]) -> str:
    """A line of key figures: `vocabulary 2,048 · bytes per token 3.7`."""
    return '<p class="facts">' + " · ".join(f"{esc(k)} <b>{number(v)}</b>" for k, v in pairs if v is not None) + "</p>"


def document(row: dict) -> str:
    """One document: its id, URL, reason (if removed), other short fields, and the start of its text."""
    reason = row.get("drop_reason")
    head = f'<span class="id">{esc(row.get("id"))}</span> {esc(row.get("url") or row.get("source") or "")}'
    tags = f'<span class="reason">{esc(reason)}</span>' if reason else '<span class="kept">kept</span>'
    detail = f' <span class="detail">{esc(row["drop_detail"])}</span>' if row.get("drop_detail") else ""
    skip = {"id", "url", "text", "html", "drop_reason", "drop_detail", "source", "offset", "warc_record_id", "fetch_date"}
    extra = ", ".join(f"{k}={_brief(v)}" for k, v in row.items() if k not in skip and v is not None)
    body = row.get("text") if row.get("text") is not None else row.get("html")
    return (f'<div class="doc"><div class="meta">{tags}{detail} {head}</div>'
            f'<div class="extra">{esc(extra)}</div><pre>{esc(short(body)) or "(no text)"}</pre></div>')


def _brief(value) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    text = str(value)
    return text if len(text) <= 60 else text[:60] + "…"


def page(title: str, subtitle: str, sections: list[Section], key: str = "") -> str:
    """The whole page; `key` (see write.report_key) goes in a meta tag, so a rerun can tell
    whether the page on disk is still this run's."""
    contents = "".join(f'<li><a href="#{s.id}">{esc(s.title)}</a>{"" if s.body else " <i>(not in this run)</i>"}</li>'
                       for s in sections)
    parts = [f'<section id="{s.id}"><h2>{esc(s.title)}</h2>'
             f'{s.body if s.body else f"<p class=absent>{esc(s.absent)}</p>"}</section>' for s in sections]
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f'<meta name="crawl2model-report" content="{esc(key)}">'
            f"<title>{esc(title)}</title><style>{CSS}</style></head><body><main>"
            f"<header><h1>{esc(title)}</h1><p>{subtitle}</p></header>"
            f'<nav id="contents"><h2>Contents</h2><ol>{contents}</ol></nav>'
            + "\n".join(parts) + "</main></body></html>\n")


CSS = """
body{margin:0;background:#f4f5f7;color:#1f2933;font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif}
main{max-width:1040px;margin:0 auto;padding:24px}
header h1{margin:0 0 4px;font-size:26px}header p{margin:0;color:#52606d}
nav,section{background:#fff;border:1px solid #e4e7eb;border-radius:8px;padding:14px 20px;margin:16px 0}
nav ol{columns:3;margin:0;padding-left:20px}nav i{color:#9aa5b1}
h2{margin:0 0 10px;font-size:19px;border-bottom:2px solid #3b6ea8;padding-bottom:4px}
h3{font-size:15px;margin:16px 0 6px}
a{color:#3b6ea8}svg{max-width:100%;height:auto;display:block;margin:6px 0}
table{border-collapse:collapse;margin:8px 0;font-size:13px}caption{text-align:left;color:#52606d;padding:2px 0}
th,td{border-bottom:1px solid #e4e7eb;padding:3px 10px;text-align:left}th{background:#f4f5f7}
td.n{text-align:right;font-variant-numeric:tabular-nums}
.facts{color:#3e4c59}.absent{color:#9aa5b1;font-style:italic}.note{color:#52606d;font-size:12px}
.doc{border:1px solid #e4e7eb;border-radius:6px;margin:8px 0;padding:6px 10px;background:#fbfbfc}
.doc .meta{font-size:12px;word-break:break-all}.doc .extra{font-size:11px;color:#7b8794;word-break:break-all}
.doc pre{white-space:pre-wrap;word-wrap:break-word;margin:4px 0 0;font:12px/1.4 ui-monospace,monospace;
  max-height:14em;overflow:auto}
.id{font-family:ui-monospace,monospace;color:#7b8794}
.reason{background:#fde8e4;color:#a33b24;border-radius:4px;padding:0 5px}
.kept{background:#e3f1e8;color:#2f7a4b;border-radius:4px;padding:0 5px}.detail{color:#a33b24}
.pair{display:grid;grid-template-columns:1fr 1fr;gap:8px}mark{background:#ffe58f}
details{margin:6px 0}summary{cursor:pointer;font-weight:600}
"""
