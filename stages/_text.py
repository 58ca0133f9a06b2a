"""Word splitting and stop words per language, defined once for every filter.

Words are split the way the FineWeb/Gopher implementations count them: word tokens *and*
punctuation tokens, so ratios such as "share of words with a letter" mean the same here as there.
A language without rules (no stop-word list, a script without spaces) is reported by `has_rules`,
and a filter passes such documents through, counting them in its stats.
"""
from __future__ import annotations

import re

# a word (letters, digits, joined by ' ’ - or .), or a run of other non-space characters
_TOKEN = re.compile(r"\w+(?:['’\-.]\w+)*|[^\w\s]+", re.UNICODE)
_NO_SPACES = {"zh", "ja", "th", "lo", "km", "my", "bo"}  # scripts written without spaces between words

# The most frequent function words of each language (Gopher's English list; the others chosen the
# same way, written here). A document of real prose holds several of them.
STOP_WORDS: dict[str, frozenset[str]] = {
    "en": frozenset(["the", "be", "to", "of", "and", "that", "have", "with"]),
    "de": frozenset(["der", "die", "und", "in", "den", "von", "zu", "das", "mit", "sich", "des", "auf", "ist"]),
    "fr": frozenset(["le", "la", "de", "et", "les", "des", "en", "un", "une", "du", "est", "que", "pour"]),
    "es": frozenset(["el", "la", "de", "que", "y", "en", "los", "del", "se", "las", "por", "un", "para"]),
    "it": frozenset(["il", "di", "che", "e", "la", "per", "un", "in", "del", "non", "una", "della", "sono"]),
    "nl": frozenset(["de", "het", "en", "van", "een", "in", "is", "dat", "op", "te", "zijn", "voor", "met"]),
    "pt": frozenset(["de", "a", "o", "que", "e", "do", "da", "em", "um", "para", "com", "uma", "os"]),
    "ru": frozenset(["и", "в", "не", "на", "что", "с", "по", "это", "как", "к", "из", "для", "он"]),
}


def split_words(text: str, language: str = "en") -> list[str]:
    """Tokens of `text`: words and punctuation runs. Languages written without spaces are split
    per character of their script (a crude but stable unit; filters skip them by default)."""
    if language in _NO_SPACES:
        return [t for t in re.findall(r"\w|[^\w\s]+", text)]
    return _TOKEN.findall(text)


def has_rules(language: str) -> bool:
    """Whether word-based rules (stop words, word lengths) mean anything for this language."""
    return language in STOP_WORDS


def lines(text: str) -> list[str]:
    """Non-empty lines, stripped."""
    return [line.strip() for line in text.split("\n") if line.strip()]
