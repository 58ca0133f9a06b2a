"""C4's quality rules: keep the lines that read like sentences, remove pages that do not.

Line by line, in datatrove's order and with its defaults (C4QualityFilter, after the C4 paper and
tensorflow-datasets' c4_utils), a line is removed when it
  holds a word longer than `max_word_length`          (lines_dropped:too_long_word)
  does not end in . ? ! " ' , or ends in ...            (lines_dropped:no_terminal_punctuation)
  has fewer than `min_words_per_line` words            (lines_dropped:too_few_words)
  mentions javascript                                  (lines_dropped:javascript)
  mentions terms of use, privacy / cookie policy ...    (lines_dropped:policy)
and the whole document is removed when a kept line says "lorem ipsum" (`c4_quality:lorem_ipsum`)
or holds a curly bracket (`c4_quality:curly_bracket`), or when the kept lines hold fewer than
`min_num_sentences` sentences (`c4_quality:sentences<5`). Wikipedia-style citations ([1], [edit],
[citation needed]) are cut from every line first. A kept document's `text` is replaced by its kept
lines, stripped and joined by "\n"; a removed document keeps its text as it came, to be inspected,
and says why in `drop_detail`: the sentences counted (`sentences=3 < 5`), or the line that holds
lorem ipsum or the curly bracket.
Lines are `str.splitlines()`, words are whitespace-separated, and sentences are counted as spaCy's
Sentencizer counts them on its English tokens (datatrove's choice), by `count_sentences` below.
"""
from __future__ import annotations

import re
import unicodedata
from collections import Counter
from typing import ClassVar, NamedTuple

import pyarrow as pa

from crawl2model.pipeline.stage import DROP_DETAIL, DROP_REASON, Stage, StageConfig
from crawl2model.stages._filter import COUNT_EDGES, RATIO_EDGES, document_languages, rule_detail, valid_text
from crawl2model.stages._text import ABBREVIATIONS, SENTENCE_END, has_rules

CITATION = re.compile(r"\[\d*]|\[edit]|\[citation needed]")
POLICY_SUBSTRINGS = ("terms of use", "privacy policy", "cookie policy", "uses cookies", "use of cookies", "use cookies")
QUOTED_LINE_CHARS = 80  # of the line a document rule fired on, quoted in drop_detail


class Cleaned(NamedTuple):
    text: str  # the kept lines (a removed document's text as it came)
    rule: str | None  # the rule that removes the document
    sentences: int | None  # counted in the kept lines; None when a document rule stopped the count
    line: str | None = None  # the line that holds lorem ipsum or the curly bracket


class C4QualityConfig(StageConfig):
    language: str = "en"  # assumed when the input has no `language` column (no langid stage before)
    remove_citations: bool = True  # cut [1], [edit], [citation needed] from lines
    filter_no_terminal_punct: bool = True  # remove lines not ending in one of `terminal_punctuation`
    terminal_punctuation: tuple[str, ...] = (".", "?", "!", '"', "'")  # a line ending in "..." has none
    min_num_sentences: int = 5  # remove documents whose kept lines hold fewer sentences; -1: off
    min_words_per_line: int = 3  # remove lines with fewer whitespace-separated words; -1: off
    max_word_length: int = 1000  # remove lines with a longer word; -1: off
    filter_lorem_ipsum: bool = True  # remove documents with "lorem ipsum" in a kept line
    filter_javascript: bool = True  # remove lines mentioning "javascript"
    filter_curly_bracket: bool = True  # remove documents with "{" in a kept line
    filter_policy: bool = True  # remove lines holding one of `policy_substrings` (lower-cased)
    policy_substrings: tuple[str, ...] = POLICY_SUBSTRINGS


class C4Quality(Stage):
    """C4's line filter and document rules (datatrove's C4QualityFilter, same defaults); edits `text`."""

    type_name = "c4_quality"
    Config: ClassVar[type[C4QualityConfig]] = C4QualityConfig
    provides = ("text",)  # rewritten: the kept lines only

    def __init__(self, config: C4QualityConfig | None = None):
        super().__init__(config)
        self._end = tuple(self.config.terminal_punctuation)
        self._policy = [p.lower() for p in self.config.policy_substrings]

    def clean(self, text: str, counts: Counter | None = None) -> Cleaned:
        """The edited text, the rule that removes the document (or None), the sentences counted and
        the line a document rule fired on. `counts` gathers the line outcomes."""
        c = self.config
        counts = counts if counts is not None else Counter()
        kept, sentences = [], 0
        for line in text.splitlines():
            line = line.strip()
            words = line.split()
            counts["lines"] += 1
            if c.max_word_length != -1 and any(len(word) > c.max_word_length for word in words):
                counts["lines_dropped:too_long_word"] += 1
                continue
            if c.remove_citations:
                line = CITATION.sub("", line)
            if c.filter_no_terminal_punct and (not line.endswith(self._end) or line.endswith("...")):
                counts["lines_dropped:no_terminal_punctuation"] += 1
                continue
            if len(words) < c.min_words_per_line:
                counts["lines_dropped:too_few_words"] += 1
                continue
            lower = line.lower()
            if c.filter_lorem_ipsum and "lorem ipsum" in lower:
                return Cleaned(text, "lorem_ipsum", None, line)
            if c.filter_javascript and "javascript" in lower:
                counts["lines_dropped:javascript"] += 1
                continue
            if c.filter_curly_bracket and "{" in line:
                return Cleaned(text, "curly_bracket", None, line)
            if c.filter_policy and any(p in lower for p in self._policy):
                counts["lines_dropped:policy"] += 1
                continue
            if c.min_num_sentences != -1:
                sentences += count_sentences(line)
            kept.append(line)
            counts["lines_kept"] += 1
        if sentences < c.min_num_sentences:
            return Cleaned(text, f"sentences<{c.min_num_sentences}", sentences)
        return Cleaned("\n".join(kept).strip(), None, sentences)

    def process(self, batch: pa.Table) -> pa.Table:
        batch = valid_text(batch)
        texts, reasons, details, sentences, kept_share = [], [], [], [], []
        for text, language in zip(batch.column("text").to_pylist(), document_languages(batch, self.config.language)):
            if not has_rules(language):  # C4's sentence and punctuation rules assume a spaced, European script
                self.counters[f"passed:no_rules_for:{language}"] += 1
                texts.append(text)
                reasons.append(None)
                details.append(None)
                continue
            counts = Counter()
            edited, rule, count, line = self.clean(text or "", counts)
            texts.append(None if text is None else edited)
            reasons.append(f"{self.type_name}:{rule}" if rule else None)
            details.append(self.explain(rule, count, line) if rule else None)  # built for removed rows only
            if rule:
                self.counters[f"rule:{rule}"] += 1
            else:
                self.counters["chars_removed"] += len(text or "") - len(edited)
            if count is not None:
                sentences.append(count)
            if counts["lines"]:
                kept_share.append(counts["lines_kept"] / counts["lines"])
            self.counters.update(counts)
        self.observe("sentences", sentences, COUNT_EDGES)
        self.observe("lines_kept_ratio", kept_share, RATIO_EDGES)
        batch = batch.set_column(batch.column_names.index("text"), "text", pa.array(texts, batch.schema.field("text").type))
        return (batch.append_column(DROP_REASON, pa.array(reasons, pa.string()))
                .append_column(DROP_DETAIL, pa.array(details, pa.string())))

    def explain(self, rule: str, sentences: int | None, line: str | None) -> str | None:
        """drop_detail: the sentences counted against the minimum, or the part of the kept line that
        holds what the rule forbids."""
        if line is None:
            return rule_detail(rule, {"sentences": sentences})
        forbidden = "{" if rule == "curly_bracket" else "lorem ipsum"
        return f"line: {excerpt(line, line.lower().find(forbidden))}"


def excerpt(line: str, at: int) -> str:
    """About QUOTED_LINE_CHARS of `line` around position `at`, quoted: a minified script on one
    line does not fill the detail, and what the rule found stays in view."""
    start = max(0, min(at - QUOTED_LINE_CHARS // 3, len(line) - QUOTED_LINE_CHARS))
    end = start + QUOTED_LINE_CHARS
    return repr(("…" if start else "") + line[start:end] + ("…" if end < len(line) else ""))


_SENTENCE_END_RE = re.compile("[" + re.escape("".join(sorted(SENTENCE_END))) + "]")
_INFIX_PERIOD = re.compile(r"(?<=[^\W\d_])\.(?=[^\W\d_])")  # letter.letter; split when lower.Upper


def _lower(ch):
    return ch.islower() or (ch.isalpha() and not ch.isupper())  # spaCy counts caseless scripts as both


def _upper(ch):
    return ch.isupper() or (ch.isalpha() and not ch.islower())


def _abbreviation_before(s, end):
    """Whether the letters ending at s[end - 1], plus the period at s[end], form a tokenizer exception."""
    start, limit = end, max(0, end - 8)  # the longest exception, Messrs., has 6 characters before its period
    while start > limit and (s[start - 1].isalpha() or s[start - 1] == "."):
        start -= 1
    if start > 0 and s[start - 1].isalnum():
        return False
    return s[start:end + 1] in ABBREVIATIONS


def _punct(ch):
    return unicodedata.category(ch)[0] == "P"


def _chunk_classes(chunk, out):
    """spaCy-like tokens of one whitespace-free chunk, as classes: 'P' (sentence end), 'p' (other punctuation), 'w'."""
    if not any(ch.isalnum() for ch in chunk):
        i = 0
        while i < len(chunk):
            ch = chunk[i]
            if ch == "." and chunk.startswith("..", i):
                j = i
                while j < len(chunk) and chunk[j] == ".":
                    j += 1
                out.append("p"); i = j; continue
            out.append("P" if ch in SENTENCE_END else "p" if _punct(ch) else "w")
            i += 1
        return
    start, end = 0, len(chunk)
    while start < end and _punct(chunk[start]) and chunk[start] != "." and chunk[start] not in "-/@\\":
        out.append("P" if chunk[start] in SENTENCE_END else "p"); start += 1
    if chunk.startswith("..", start):  # ellipsis prefix
        while start < end and chunk[start] == ".":
            start += 1
        out.append("p")
    suffix = []
    while end > start and chunk[start:end] not in ABBREVIATIONS:
        ch = chunk[end - 1]
        if ch == ".":
            if end - 2 >= start and chunk[end - 2] == ".":
                while end > start and chunk[end - 1] == ".":
                    end -= 1
                suffix.append("p"); continue
            prev = chunk[end - 2] if end - 2 >= start else ""
            if _abbreviation_before(chunk, end - 1):
                break
            if prev and (prev.isdigit() or _lower(prev) or prev in "%²-+" or _punct(prev)
                         or (_upper(prev) and end - 3 >= start and _upper(chunk[end - 3]))):
                suffix.append("P"); end -= 1; continue
            break
        if _punct(ch) and ch not in "-/@\\":
            suffix.append("P" if ch in SENTENCE_END else "p"); end -= 1; continue
        break
    core = chunk[start:end]
    if core in ABBREVIATIONS:
        out.append("w")
    elif core:
        parts = 0
        for m in _INFIX_PERIOD.finditer(core):
            a, b = core[m.start() - 1], core[m.start() + 1]
            if _lower(a) and _upper(b) and not _abbreviation_before(core, m.start()):
                parts += 1
        out.append("w")
        out.extend(["P", "w"] * parts)
    out.extend(reversed(suffix))


def count_sentences(line):
    """Sentences in `line` as spaCy's Sentencizer counts them on the English tokenizer's tokens:
    1 + the number of sentence-ending tokens followed, after any punctuation, by another token."""
    line = line.strip()
    if not line:
        return 0
    if _SENTENCE_END_RE.search(line) is None:
        return 1
    classes = []
    for m in re.finditer(r"\S+|\s+", line):
        token = m.group()
        if token[0].isspace():
            if token != " ":
                classes.append("w")
        else:
            _chunk_classes(token, classes)
    count, seen = 1, False
    for c in classes:
        if c == "P":
            seen = True
        elif seen and c == "w":
            count += 1; seen = False
    return count
