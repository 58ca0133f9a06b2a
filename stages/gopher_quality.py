"""Gopher quality rules (Rae et al. 2021, appendix A; as FineWeb ran them through datatrove).

A document is removed when it has too few or too many words, words too short or too long on
average, too many `#` or ellipses per word, mostly bullet lines or lines ending in an ellipsis,
too few words with a letter, or fewer than `min_stop_words` of its language's stop words.
Every threshold can be set; None turns its rule off. Measures follow datatrove's
GopherQualityFilter, so the FineWeb defaults mean the same here:
- word counts and mean length use words with a character that is not punctuation
  (datatrove's PUNCTUATION_SET, `PUNCTUATION` in stages/_text.py);
  the ratios divide by all tokens, punctuation included (`split_words`);
- line ratios divide by every line of `str.splitlines()`, blank ones included;
- stop words are matched case-sensitively, each counted once.
Languages without word rules (`has_rules`) pass, counted by the base.
"""
from __future__ import annotations

import math
import re
from typing import ClassVar

from crawl2model.stages._filter import COUNT_EDGES, DocumentFilter, FilterConfig, above, below
from crawl2model.stages._text import PUNCTUATION, STOP_WORDS, has_rules, split_words

_SYMBOLS_ONLY = re.compile(f"[{re.escape(PUNCTUATION)}]+")  # a token made only of these is a symbol, not a word
_BULLETS = ("•", "-")
_ELLIPSES = ("...", "…")


class GopherQualityConfig(FilterConfig):
    min_doc_words: int | None = 50
    max_doc_words: int | None = 100_000
    min_avg_word_length: float | None = 3
    max_avg_word_length: float | None = 10
    max_symbol_word_ratio: float | None = 0.1  # for `#` and for ellipses, each
    max_bullet_lines_ratio: float | None = 0.9
    max_ellipsis_lines_ratio: float | None = 0.3
    min_alpha_words_ratio: float | None = 0.8  # datatrove's `max_non_alpha_words_ratio`, named for what it is
    min_stop_words: int | None = 2
    stop_words: list[str] | None = None  # None: the language's list in stages/_text.py


class GopherQuality(DocumentFilter):
    type_name = "gopher_quality"
    Config: ClassVar[type[GopherQualityConfig]] = GopherQualityConfig
    edges = {
        "words": COUNT_EDGES,
        "avg_word_length": [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12, 15, 20, 50],
        "stop_words": [0, 1, 2, 3, 4, 5, 6, 8, 10, 13],
    }

    def __init__(self, config: GopherQualityConfig | None = None):
        super().__init__(config)
        own = self.config.stop_words
        self._stop_words = {lang: frozenset(own) if own is not None else words for lang, words in STOP_WORDS.items()}

    def applies_to(self, language: str) -> bool:
        return has_rules(language)

    def measure(self, text: str, language: str) -> dict[str, float]:
        tokens = split_words(text, language)
        words = [t for t in tokens if not _SYMBOLS_ONLY.fullmatch(t)]
        n_tokens = max(len(tokens), 1)  # an empty document breaks the word-count rule, not a division
        lines = text.splitlines() or [""]
        return {
            "words": len(words),
            "avg_word_length": sum(map(len, words)) / len(words) if words else math.nan,
            "hash_ratio": text.count("#") / n_tokens,
            "ellipsis_ratio": (text.count("...") + text.count("…")) / n_tokens,
            "bullet_lines": sum(line.lstrip().startswith(_BULLETS) for line in lines) / len(lines),
            "ellipsis_lines": sum(line.rstrip().endswith(_ELLIPSES) for line in lines) / len(lines),
            "alpha_words": sum(has_letter(t) for t in tokens) / n_tokens if tokens else 0.0,
            "stop_words": len(self._stop_words.get(language, frozenset()).intersection(tokens)),
        }

    def judge(self, measures: dict[str, float]) -> str | None:
        c = self.config
        rules = (
            below(measures, "words", c.min_doc_words),
            above(measures, "words", c.max_doc_words),
            below(measures, "avg_word_length", c.min_avg_word_length),
            above(measures, "avg_word_length", c.max_avg_word_length),
            above(measures, "hash_ratio", c.max_symbol_word_ratio),
            above(measures, "ellipsis_ratio", c.max_symbol_word_ratio),
            above(measures, "bullet_lines", c.max_bullet_lines_ratio),
            above(measures, "ellipsis_lines", c.max_ellipsis_lines_ratio),
            below(measures, "alpha_words", c.min_alpha_words_ratio),
            below(measures, "stop_words", c.min_stop_words),
        )
        return next((rule for rule in rules if rule), None)


def has_letter(token: str) -> bool:
    # str.isalpha on the token first: most tokens are all letters, and the test is in C
    return token.isalpha() or any(ch.isalpha() for ch in token)
