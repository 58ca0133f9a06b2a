"""extract: the main text of each HTML page, with trafilatura, or Resiliparse (`engine:
resiliparse`, the extractor DCLM chose: 8.75x faster here, the same recall, lower precision;
bench/README.md).

Boilerplate (menus, footers, cookie banners) is left out. A page larger than `max_html_bytes` is
removed unread, and each page gets `timeout_seconds` so one pathological page cannot stall a
worker. The `html` column is replaced by `text`.
"""
from __future__ import annotations

from typing import Literal

import pyarrow as pa
from pydantic import Field, model_validator

from crawl2model.pipeline.limits import DocumentTimeout, time_limit
from crawl2model.pipeline.stage import DROP_DETAIL, DROP_REASON, Stage, StageConfig


TRAFILATURA_ONLY = ("favor", "fast", "include_tables", "deduplicate")


class ExtractConfig(StageConfig):
    engine: Literal["trafilatura", "resiliparse"] = "trafilatura"
    favor: Literal["balanced", "precision", "recall"] = "balanced"  # trafilatura's
    fast: bool = False  # skip trafilatura's fallback extractors: faster, lower recall
    include_comments: bool = False
    include_tables: bool = True  # trafilatura's (Resiliparse keeps tables' text)
    deduplicate: bool = False  # trafilatura's in-document duplicate-segment removal
    min_chars: int = Field(default=1, ge=1)  # shorter extractions are removed as empty
    max_html_bytes: int = Field(default=2_000_000, ge=1)
    timeout_seconds: float = Field(default=10.0, gt=0)

    @model_validator(mode="after")
    def _options_of_the_engine(self) -> ExtractConfig:
        named = [name for name in TRAFILATURA_ONLY if name in self.model_fields_set]
        if self.engine != "trafilatura" and named:
            raise ValueError(f"{', '.join(named)}: trafilatura's options, not {self.engine}'s")
        return self


class Extract(Stage):
    type_name = "extract"
    Config = ExtractConfig
    requires = ("html",)
    provides = ("text",)
    consumes = ("html",)
    packages = ("trafilatura", "resiliparse")
    batch_size = 64

    def process(self, batch: pa.Table) -> pa.Table:
        htmls = batch.column("html").to_pylist()
        urls = batch.column("url").to_pylist() if "url" in batch.column_names else [None] * batch.num_rows
        results = [self.extract_one(html, url) for html, url in zip(htmls, urls)]
        texts, reasons, details = (list(column) for column in zip(*results)) if results else ([], [], [])
        out = batch.drop_columns(["html"])
        out = out.append_column("text", pa.array(texts, pa.string()))
        out = out.append_column(DROP_REASON, pa.array(reasons, pa.string()))
        return out.append_column(DROP_DETAIL, pa.array(details, pa.string()))

    def extract_one(self, html: str | None, url: str | None) -> tuple[str | None, str | None, str | None]:
        """(text, drop_reason, drop_detail) for one page."""
        c = self.config
        if not html:
            return None, "extract:empty_html", None
        size = len(html.encode("utf-8", "surrogatepass"))
        if size > c.max_html_bytes:
            return None, "extract:too_large", f"{size} bytes > max_html_bytes {c.max_html_bytes}"
        try:
            with time_limit(c.timeout_seconds):
                text = (trafilatura_extract if c.engine == "trafilatura" else resiliparse_extract)(html, url, c)
        except DocumentTimeout:
            self.counters["timeouts"] += 1
            return None, "extract:timeout", f"over {c.timeout_seconds}s"
        except Exception as error:  # lxml parser errors on broken markup
            return None, "extract:error", f"{type(error).__name__}: {error}"[:300]
        if not text or len(text.strip()) < c.min_chars:
            return None, "extract:no_text", None
        return text, None, None


def trafilatura_extract(html: str, url: str | None, c: ExtractConfig) -> str | None:
    import trafilatura

    return trafilatura.extract(
        html, url=url, fast=c.fast, favor_precision=c.favor == "precision", favor_recall=c.favor == "recall",
        include_comments=c.include_comments, include_tables=c.include_tables, deduplicate=c.deduplicate,
        output_format="txt")


def resiliparse_extract(html: str, url: str | None, c: ExtractConfig) -> str | None:
    """Resiliparse's main-content extraction, without images' alt texts or link targets."""
    from resiliparse.extract.html2text import extract_plain_text
    from resiliparse.parse.html import HTMLTree

    return extract_plain_text(HTMLTree.parse(html), main_content=True, alt_texts=False, links=False,
                              comments=c.include_comments)
