"""Gopher quality rules (Rae et al. 2021, appendix A; as FineWeb ran them through datatrove).

A document is removed when it has too few or too many words, words too short or too long on
average, too many `#` or ellipses per word, mostly bullet lines or lines ending in an ellipsis,
too few words with a letter, or fewer than `min_stop_words` of its language's stop words.
Every threshold can be set; None turns its rule off. Measures follow datatrove's
GopherQualityFilter, so the FineWeb defaults mean the same here:
- word counts and mean length use words with a character that is not punctuation;
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
from crawl2model.stages._text import STOP_WORDS, has_rules, split_words

# datatrove's PUNCTUATION_SET (its punctuation and its sentence-ending marks of every script): a
# token made only of these is a symbol, not a word
_PUNCTUATION = ("!/—”:％１〈&(、━\\【#%「」，】；+^]~“《„';’{|∶´[=-`*．（–？！：$～«〉,><》)?）。…@_.\"}►»"
                + "".join(map(chr, [*range(9), *range(11, 13), *range(13, 32), *range(127, 160)])) + (
    "։؝؞؟۔܀܁܂߹࠷࠹࠽࠾।॥၊။።፧፨᙮᜵᜶។៕៖៙៚᠃᠉᥄᥅᪨᪩᪪᪫᭚᭛᭞᭟᭽᭾᰻᰼᱾᱿‼‽⁇⁈⁉⸮⸼⹓⹔꓿꘎꘏꛳꛷꡶꡷꣎꣏꤯꧈꧉꩝꩞꩟"
    "꫰꫱꯫﹒﹖﹗｡"
    "\U00010a56\U00010a57\U00010f55\U00010f56\U00010f57\U00010f58\U00010f59\U00010f86"
    "\U00010f87\U00010f88\U00010f89\U00011047\U00011048\U000110be\U000110bf\U000110c0"
    "\U000110c1\U00011141\U00011142\U00011143\U000111c5\U000111c6\U000111cd\U000111de"
    "\U000111df\U00011238\U00011239\U0001123b\U0001123c\U000112a9\U0001144b\U0001144c"
    "\U000115c2\U000115c3\U000115c9\U000115ca\U000115cb\U000115cc\U000115cd\U000115ce"
    "\U000115cf\U000115d0\U000115d1\U000115d2\U000115d3\U000115d4\U000115d5\U000115d6"
    "\U000115d7\U00011641\U00011642\U0001173c\U0001173d\U0001173e\U00011944\U00011946"
    "\U00011a42\U00011a43\U00011a9b\U00011a9c\U00011c41\U00011c42\U00011ef7\U00011ef8"
    "\U00011f43\U00011f44\U00016a6e\U00016a6f\U00016af5\U00016b37\U00016b38\U00016b44"
    "\U00016e98\U0001bc9f\U0001da88"))
_SYMBOLS_ONLY = re.compile(f"[{re.escape(_PUNCTUATION)}]+")
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
