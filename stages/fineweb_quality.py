"""FineWeb's quality rules: how prose-like the lines of a document are.

Four rules, in datatrove's order and with its defaults (FineWebQualityFilter): too few lines end in
terminal punctuation (`line_punct_ratio<0.12`), too many lines are short (`short_line_ratio>0.67`),
too many characters sit in repeated lines (`char_dup_ratio>0.01`), too many newlines per word
(`list_ratio>0.3`). A document without a non-blank line is removed as `empty`. Lines are the
non-blank lines of `text.split("\n")`, unstripped, as datatrove has them; words are `split_words`
(words and punctuation tokens, as datatrove's spaCy tokenizer counts them, within a few per cent).
"""
from __future__ import annotations

from typing import ClassVar

from crawl2model.stages._filter import COUNT_EDGES, RATIO_EDGES, DocumentFilter, FilterConfig
from crawl2model.stages._text import TERMINAL_PUNCTUATION, split_words


class FineWebQualityConfig(FilterConfig):
    line_punct_thr: float = 0.12  # remove below this share of lines ending in a stop char
    line_punct_exclude_zero: bool = False  # true: a share of exactly 0 passes (datatrove's option)
    stop_chars: str = TERMINAL_PUNCTUATION  # characters that end a "punctuated" line (any one of them)
    short_line_thr: float = 0.67  # remove above this share of short lines
    short_line_length: int = 30  # a line of at most this many characters is short
    char_duplicates_ratio: float = 0.01  # remove above this share of characters in repeated lines
    new_line_ratio: float = 0.3  # remove above this many newlines per word


class FineWebQuality(DocumentFilter):
    """FineWeb's line-level quality rules (datatrove's FineWebQualityFilter, same defaults)."""

    type_name = "fineweb_quality"
    Config: ClassVar[type[FineWebQualityConfig]] = FineWebQualityConfig
    edges: ClassVar[dict[str, list[float]]] = {
        "lines": COUNT_EDGES,
        "line_punct_ratio": RATIO_EDGES,
        "short_line_ratio": RATIO_EDGES,
        "char_dup_ratio": [0, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1],
        "list_ratio": [0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.75, 1, 2, 5],
    }

    def __init__(self, config: FineWebQualityConfig | None = None):
        super().__init__(config)
        self._stop_chars = tuple(self.config.stop_chars)

    def measure(self, text: str, language: str) -> dict[str, float]:
        lines = [line for line in text.split("\n") if line.strip()]
        if not lines:
            return {"lines": 0}
        short = self.config.short_line_length
        seen, duplicate_chars = set(), 0
        for line in lines:  # characters in every repeat of a line after its first
            if line in seen:
                duplicate_chars += len(line)
            else:
                seen.add(line)
        words = len(split_words(text, language))
        return {
            "lines": len(lines),
            "line_punct_ratio": sum(line.endswith(self._stop_chars) for line in lines) / len(lines),
            "short_line_ratio": sum(len(line) <= short for line in lines) / len(lines),
            "char_dup_ratio": duplicate_chars / (len(text) - text.count("\n")),
            "list_ratio": text.count("\n") / max(words, 1),
        }

    def judge(self, measures: dict[str, float]) -> str | None:
        c = self.config
        if measures["lines"] == 0:
            return "empty"
        ratio = measures["line_punct_ratio"]
        if ratio < c.line_punct_thr and not (ratio == 0 and c.line_punct_exclude_zero):
            return f"line_punct_ratio<{c.line_punct_thr}"
        if measures["short_line_ratio"] > c.short_line_thr:
            return f"short_line_ratio>{c.short_line_thr}"
        if measures["char_dup_ratio"] > c.char_duplicates_ratio:
            return f"char_dup_ratio>{c.char_duplicates_ratio}"
        if measures["list_ratio"] > c.new_line_ratio:
            return f"list_ratio>{c.new_line_ratio}"
        return None
