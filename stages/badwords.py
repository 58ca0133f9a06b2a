"""`badwords`: remove documents dense in words from an LDNOOBW-style list of bad words.

Lists: one file per language code in `lists_dir` (`en`, `fr-CA-u-sd-caqc`, or `en.txt`), one word
or phrase per line, UTF-8; blank lines and lines starting with `#` are ignored; other files there
(README.md, LICENSE, SOURCE.txt) are not lists. No list ships with the project: `lists_dir` is
required (for example the LDNOOBW lists in ../shared/data/badwords).

Matching. Text and list entries are NFKC-normalised and case-folded alike (so `SCHEISSE`,
`Scheiße` and a full-width `ｓｅｘ` match). A phrase matches across any run of whitespace. An
entry matches only as whole words: the characters on both sides of it must not be word characters
(letters, digits, `_`, combining marks), so `ass` matches in "ass." and "ass-kicker" but not in
"class" or "assist". An entry that starts or ends with a non-word character (`🖕`, `13.`) needs no
boundary on that side.

Languages written without spaces (ja, zh, th, lo, km, my, bo): word boundaries do not exist, so
entries in those scripts match as substrings (C4 and datatrove do the same); Latin-script entries
of their lists (ja `sm`, `xx`, `3p`) still need Latin word boundaries, so `sm` does not fire in
"smile".

The measure is the share of flagged words: words inside matches / words of the document, both
counted with `split_words` (word tokens only, punctuation runs excluded; for languages without
spaces a "word" is a character of the script). A document is removed when the share is above
`max_badword_ratio`, with reason `badwords:ratio>0.01` and, in `drop_detail`, the share and the
words that made it (`ratio=0.0312 > 0.01; flagged: ass×3, bastard`).

One compiled regular expression per language, built in `setup()` from a character trie of the
entries (so the engine walks shared prefixes once instead of trying ~400 alternatives at every
position).
"""
from __future__ import annotations

import re
import unicodedata
from collections import Counter
from pathlib import Path

import pyarrow as pa
from pydantic import Field, field_validator

from crawl2model.pipeline.stage import DROP_DETAIL, DROP_REASON, Stage, StageConfig
from crawl2model.stages._filter import detail
from crawl2model.stages._text import NO_SPACES, nfkc_casefold, split_words
from crawl2model.stages._trie import trie_pattern

# Share of flagged words per document, finer than the filters' RATIO_EDGES near 0 (a few words in a
# hundred is already much); fixed edges (plus the threshold) so workers' histograms add up.
BADWORD_RATIO_EDGES = [0.0, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0]
_LIST_NAME = re.compile(r"^[A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{1,8})*(?:\.txt)?$")
DETAIL_WORDS = 3  # flagged words named in a removed document's drop_detail, most frequent first


# Scripts written without spaces: within them every position is a boundary (substring matching).
_UNSPACED_SCRIPTS = ("\u0e00-\u0eff"      # Thai, Lao
                     "\u0f00-\u0fff"      # Tibetan
                     "\u1000-\u109f"      # Myanmar
                     "\u1780-\u17ff"      # Khmer
                     "\u2e80-\u2fdf\u3000-\u9fff\uf900-\ufaff\uff66-\uff9f"  # CJK, kana, half-width kana
                     "\U00020000-\U0003ffff")


def word_class(spaced: bool) -> str:
    """A regex for one word character; for languages without spaces, word characters of other scripts only."""
    return r"\w" if spaced else f"(?![{_UNSPACED_SCRIPTS}])\\w"


class Matcher:
    r"""All entries of one list as one regex, matching whole words only.

    An entry that starts with a word character needs a non-word character (or the start) before
    it, one that ends with a word character a non-word character (or the end) after it; an entry
    starting or ending with a symbol (`🖕`, `13.`) needs nothing on that side. Entries are tried
    longest first (`sm女王` before `sm`). `\w` does not cover combining marks (Devanagari vowel
    signs, Arabic harakat), which belong to the word they sit on: a match next to one is
    rejected afterwards.
    """

    def __init__(self, entries: list[str], spaced: bool):
        word = word_class(spaced)
        self.word = re.compile(word)
        groups: dict[bool, list[str]] = {}
        for entry in entries:
            groups.setdefault(bool(self.word.match(entry[0])), []).append(entry)
        branches = []
        for needs_start in (True, False):
            if groups.get(needs_start):
                branches.append((f"(?<!{word})" if needs_start else "") + self._trie_pattern(groups[needs_start], word))
        self.regex = re.compile("|".join(branches), re.DOTALL)

    def _trie_pattern(self, entries: list[str], word: str) -> str:
        # a space in a phrase matches any whitespace; after an entry's last word character, no word character
        return trie_pattern(entries, lambda char: r"\s+" if char == " " else re.escape(char),
                            lambda last: f"(?!{word})" if self.word.match(last) else "")

    def findall(self, text: str) -> list[str]:
        found = []
        for match in self.regex.finditer(text):
            hit, start, end = match.group(), match.start(), match.end()
            if start and _is_mark(text[start - 1]) and self.word.match(hit[0]):
                continue
            if end < len(text) and _is_mark(text[end]) and self.word.match(hit[-1]):
                continue
            found.append(hit)
        return found


def _is_mark(char: str) -> bool:
    return unicodedata.category(char)[0] == "M"


def read_list(path: Path) -> list[str]:
    """Normalised entries of a list file: whitespace collapsed, duplicates, blanks and # comments dropped."""
    entries = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        entry = " ".join(nfkc_casefold(line).split())
        if entry and not entry.startswith("#"):
            entries.append(entry)
    return sorted(set(entries))


def list_files(directory: Path) -> dict[str, Path]:
    """Language code (lower case, `.txt` removed) -> list file."""
    found = {}
    for path in sorted(directory.iterdir()):
        if path.is_file() and _LIST_NAME.match(path.name):
            found[path.name.removesuffix(".txt").lower().replace("_", "-")] = path
    return found


def _is_word(token: str) -> bool:
    return token[0].isalnum() or token[0] == "_"


def count_words(text: str, language: str) -> int:
    return sum(1 for token in split_words(text, language) if _is_word(token))


class BadWordsConfig(StageConfig):
    # Directory of lists, one file per language code. Required: no list ships with the project.
    lists_dir: str
    # Above this share of flagged words a document is removed. 0.01 = more than 1 word in 100:
    # an article quoting a slur or naming a body part a few times stays (C4's "any one word" rule
    # removed such text wholesale, notably medical text and text about minorities); pornographic
    # and hate pages, where listed words are a few percent of the text, go.
    max_badword_ratio: float = Field(default=0.01, ge=0.0, le=1.0)
    # Assumed when the input has no `language` column (no langid stage before) or a null there.
    language: str = "en"
    # How many of the most frequent flagged words each shard reports as `word:<w>` counters
    # (0: none); the total is always counted as `flagged_words`.
    top_words: int = Field(default=20, ge=0)

    @field_validator("lists_dir")
    @classmethod
    def _lists_dir_exists(cls, value: str) -> str:
        path = Path(value).expanduser()
        if not path.is_dir():
            raise ValueError(f"no such directory '{value}' (relative paths start at the current "
                             f"directory, {Path.cwd()}); it must hold one word list per language code, e.g. 'en'")
        if not list_files(path):
            raise ValueError(f"'{value}' holds no word list (files named by language code: en, de, ...)")
        return str(path.resolve())


class BadWords(Stage):
    type_name = "badwords"
    Config = BadWordsConfig
    requires = ("text",)

    @classmethod
    def data_files(cls, config: BadWordsConfig) -> list[str]:
        return [str(path) for path in list_files(Path(config.lists_dir)).values()]

    def setup(self) -> None:
        self.patterns: dict[str, Matcher] = {}
        for language, path in list_files(Path(self.config.lists_dir)).items():
            primary = language.split("-")[0]
            entries = read_list(path)
            if entries:
                self.patterns[language] = Matcher(entries, spaced=primary not in NO_SPACES)

    def _language_key(self, language: str) -> str | None:
        """The list for a language: the exact tag, else its primary subtag (`fr-CA` -> `fr`)."""
        tag = language.strip().lower().replace("_", "-")
        if tag in self.patterns:
            return tag
        primary = tag.split("-")[0]
        return primary if primary in self.patterns else None

    def measure(self, text: str, language: str) -> tuple[float, Counter]:
        """(share of flagged words, flagged entries counted) for one document."""
        pattern = self.patterns[language]
        text = nfkc_casefold(text)
        hits = Counter(" ".join(m.split()) for m in pattern.findall(text))
        if not hits:
            return 0.0, hits
        words = count_words(text, language)
        flagged = sum(max(count_words(hit, language), 1) * n for hit, n in hits.items())  # an emoji entry: 1
        return (min(flagged / words, 1.0) if words else 0.0), hits

    def process(self, batch: pa.Table) -> pa.Table:
        limit = self.config.max_badword_ratio
        reason = f"{self.type_name}:ratio>{limit:g}"
        texts = batch.column("text").to_pylist()
        languages = (batch.column("language").to_pylist() if "language" in batch.column_names
                     else [None] * batch.num_rows)
        reasons, details, ratios, words = [], [], [], Counter()
        for text, language in zip(texts, languages):
            language = (language or "").strip() or self.config.language
            key = self._language_key(language)
            if key is None:
                self.counters[f"passed:no_list_for:{language}"] += 1
                reasons.append(None)
                details.append(None)
                continue
            ratio, hits = self.measure(text or "", key)
            ratios.append(ratio)
            words.update(hits)
            if hits:
                self.counters["docs_with_badwords"] += 1
            removed = ratio > limit
            reasons.append(reason if removed else None)
            details.append(self.explain(ratio, hits) if removed else None)  # built for removed rows only
        self.counters["flagged_words"] += sum(words.values())
        self._count_top_words(words)
        self.observe("badword_ratio", ratios, sorted(set(BADWORD_RATIO_EDGES) | {limit}))
        return (batch.append_column(DROP_REASON, pa.array(reasons, pa.string()))
                .append_column(DROP_DETAIL, pa.array(details, pa.string())))

    def explain(self, ratio: float, hits: Counter) -> str:
        """drop_detail: the share against the limit, then the words that made it, so a list entry
        that fires wrongly (a place name, a medical term) shows in `pipeline inspect`."""
        flagged = ", ".join(word if n == 1 else f"{word}×{n}" for word, n in hits.most_common(DETAIL_WORDS))
        more = ", …" if len(hits) > DETAIL_WORDS else ""
        return f"{detail('ratio', ratio, '>', f'{self.config.max_badword_ratio:g}')}; flagged: {flagged}{more}"

    def _count_top_words(self, words: Counter) -> None:
        """Add this batch's words to `word:<w>` counters, then keep only the `top_words` largest
        (stats stay small; a word evicted in one batch and seen again restarts from its new count,
        so the counts of rare words are lower bounds)."""
        if not self.config.top_words:
            return
        for word, n in words.items():
            self.counters[f"word:{word}"] += n
        keys = [k for k in self.counters if k.startswith("word:")]
        if len(keys) > self.config.top_words:
            keys.sort(key=lambda k: (-self.counters[k], k))
            for k in keys[self.config.top_words:]:
                del self.counters[k]
