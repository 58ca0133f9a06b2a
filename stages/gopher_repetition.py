"""Gopher repetition rules (Rae et al. 2021, table A1; as FineWeb ran them through datatrove).

A document that repeats itself is removed: by the share of its paragraphs and lines that repeat an
earlier one (by count, and by characters), by the characters its most frequent 2-, 3- and 4-gram
covers, and by the characters of 5- to 10-grams that repeat an earlier n-gram. Every fraction of
characters is over the whole text. Measures follow datatrove's GopherRepetitionFilter, with two
differences that only fix its quirks: lines are split from the stripped text (a leading and a
trailing newline made two empty "duplicate" lines there), and n-grams are compared word by word
(there "ab c" and "a bc" were the same 5-gram once the words were joined without spaces).
Line and paragraph rules apply to every language; n-gram rules only where words mean something
(`has_rules`), since a script without spaces splits into characters.
"""
from __future__ import annotations

import re
from itertools import count
from typing import ClassVar

import numpy as np

from crawl2model.stages._filter import DocumentFilter, FilterConfig, above
from crawl2model.stages._text import has_rules, split_words

_PARAGRAPH_BREAK = re.compile(r"\n{2,}")
_LINE_BREAK = re.compile(r"\n+")


class GopherRepetitionConfig(FilterConfig):
    dup_line_frac: float | None = 0.3
    dup_para_frac: float | None = 0.3
    dup_line_char_frac: float | None = 0.2
    dup_para_char_frac: float | None = 0.2
    # n -> the most characters the single most frequent n-gram may cover (None: no rule for that n)
    top_n_grams: dict[int, float | None] = {2: 0.2, 3: 0.18, 4: 0.16}
    # n -> the most characters that n-grams repeating an earlier one may cover
    dup_n_grams: dict[int, float | None] = {5: 0.15, 6: 0.14, 7: 0.13, 8: 0.12, 9: 0.11, 10: 0.10}


class GopherRepetition(DocumentFilter):
    type_name = "gopher_repetition"
    Config: ClassVar[type[GopherRepetitionConfig]] = GopherRepetitionConfig
    edges = {"chars": [0, 1, 100, 500, 1_000, 5_000, 10_000, 100_000, 1_000_000, 10_000_000]}

    def measure(self, text: str, language: str) -> dict[str, float]:
        if not text.strip():  # nothing to repeat: named "empty" (datatrove called "\n \n" a duplicate line)
            return {"chars": 0}
        measures = {"chars": len(text)}
        for kind, parts in (("para", _PARAGRAPH_BREAK.split(text.strip())), ("line", _LINE_BREAK.split(text.strip()))):
            repeats, repeated_chars = duplicates(parts)
            measures[f"dup_{kind}_frac"] = repeats / len(parts)
            measures[f"dup_{kind}_char_frac"] = repeated_chars / len(text)
        if has_rules(language):
            measures.update(self.n_gram_measures(split_words(text, language), len(text)))
        return measures

    def n_gram_measures(self, words: list[str], chars: int) -> dict[str, float]:
        c = self.config
        grams = NGrams(words)
        measures = {f"top_{n}_gram": grams.top_chars(n) / chars for n in c.top_n_grams}
        measures.update({f"dup_{n}_gram": grams.repeated_chars(n) / chars for n in c.dup_n_grams})
        return measures

    def judge(self, measures: dict[str, float]) -> str | None:
        if measures["chars"] == 0:
            return "empty"
        c = self.config
        rules = [
            above(measures, "dup_para_frac", c.dup_para_frac),
            above(measures, "dup_para_char_frac", c.dup_para_char_frac),
            above(measures, "dup_line_frac", c.dup_line_frac),
            above(measures, "dup_line_char_frac", c.dup_line_char_frac),
            *(above(measures, f"top_{n}_gram", frac) for n, frac in c.top_n_grams.items()),
            *(above(measures, f"dup_{n}_gram", frac) for n, frac in c.dup_n_grams.items()),
        ]
        return next((rule for rule in rules if rule), None)


def duplicates(parts: list[str]) -> tuple[int, int]:
    """How many parts repeat an earlier one, and their characters: every copy after the first."""
    distinct = set(parts)
    return len(parts) - len(distinct), sum(map(len, parts)) - sum(map(len, distinct))


class NGrams:
    """The n-grams of one document as integers: equal n-grams get equal ids, so counting and
    finding repeats runs in numpy instead of over joined strings."""

    def __init__(self, words: list[str]):
        vocabulary = dict(zip(dict.fromkeys(words), count()))  # word -> id in order of first use, all in C
        self.ids = np.fromiter(map(vocabulary.__getitem__, words), np.int64, len(words))
        self.lengths = np.cumsum([0, *map(len, words)])  # characters of words[i:j] = lengths[j] - lengths[i]
        self._grams = {1: self.ids}

    def grams(self, n: int) -> np.ndarray:
        """Id of the n-gram starting at each position: (id of its first n-1 words, its last word)
        pairs renumbered, built up from the (n-1)-grams."""
        if n not in self._grams:
            shorter, last = self.grams(n - 1)[:-1], self.ids[n - 1:]
            _, self._grams[n] = np.unique(shorter * (len(self.ids) + 1) + last, return_inverse=True)
        return self._grams[n]

    def chars(self, n: int) -> np.ndarray:
        """Characters of the words of the n-gram at each position, spaces between them left out."""
        return self.lengths[n:] - self.lengths[:-n]

    def top_chars(self, n: int) -> int:
        """Characters covered by the most frequent n-gram, counted as datatrove does: its length
        with single spaces between words, times its count; of equally frequent ones, the first."""
        if len(self.ids) < n:
            return 0
        grams = self.grams(n)
        counts = np.bincount(grams)
        first = np.argmax(counts[grams] == counts.max())  # position of the first of the most frequent
        return int((self.chars(n)[first] + n - 1) * counts.max())

    def repeated_chars(self, n: int) -> int:
        """Characters of n-grams that repeat an earlier one, scanning left to right and jumping
        past each repeat (so overlapping repeats count once), as datatrove does. Only positions
        of n-grams that occur more than once can repeat or be repeated, so only they are walked."""
        if len(self.ids) < n:
            return 0
        grams = self.grams(n)
        chars = self.chars(n)
        walk = np.flatnonzero(np.bincount(grams)[grams] > 1)
        seen, total, resume = set(), 0, 0  # resume: the next position the scan looks at
        for i, gram in zip(walk.tolist(), grams[walk].tolist()):
            if i < resume:  # jumped over by an earlier repeat
                continue
            if gram in seen:
                total += int(chars[i])
                resume = i + n
            else:
                seen.add(gram)
                resume = i + 1
        return total
