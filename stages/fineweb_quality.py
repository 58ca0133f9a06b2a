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
from crawl2model.stages._text import split_words

# datatrove.utils.text.TERMINAL_PUNCTUATION (every Unicode sentence terminator), as one string
TERMINAL_PUNCTUATION = (
    "!.?\u0589\u061d\u061e\u061f\u06d4\u0700\u0701\u0702\u07f9\u0837\u0839\u083d\u083e\u0964"
    "\u0965\u104a\u104b\u1362\u1367\u1368\u166e\u1735\u1736\u17d4\u17d5\u17d6\u17d9\u17da\u1803"
    "\u1809\u1944\u1945\u1aa8\u1aa9\u1aaa\u1aab\u1b5a\u1b5b\u1b5e\u1b5f\u1b7d\u1b7e\u1c3b\u1c3c"
    "\u1c7e\u1c7f\u203c\u203d\u2047\u2048\u2049\u2e2e\u2e3c\u2e53\u2e54\u3002\ua4ff\ua60e\ua60f"
    "\ua6f3\ua6f7\ua876\ua877\ua8ce\ua8cf\ua92f\ua9c8\ua9c9\uaa5d\uaa5e\uaa5f\uaaf0\uaaf1\uabeb"
    "\ufe52\ufe56\ufe57\uff01\uff0e\uff1f\uff61\U00010a56\U00010a57\U00010f55\U00010f56"
    "\U00010f57\U00010f58\U00010f59\U00010f86\U00010f87\U00010f88\U00010f89\U00011047\U00011048"
    "\U000110be\U000110bf\U000110c0\U000110c1\U00011141\U00011142\U00011143\U000111c5\U000111c6"
    "\U000111cd\U000111de\U000111df\U00011238\U00011239\U0001123b\U0001123c\U000112a9\U0001144b"
    "\U0001144c\U000115c2\U000115c3\U000115c9\U000115ca\U000115cb\U000115cc\U000115cd\U000115ce"
    "\U000115cf\U000115d0\U000115d1\U000115d2\U000115d3\U000115d4\U000115d5\U000115d6\U000115d7"
    "\U00011641\U00011642\U0001173c\U0001173d\U0001173e\U00011944\U00011946\U00011a42\U00011a43"
    "\U00011a9b\U00011a9c\U00011c41\U00011c42\U00011ef7\U00011ef8\U00011f43\U00011f44\U00016a6e"
    "\U00016a6f\U00016af5\U00016b37\U00016b38\U00016b44\U00016e98\U0001bc9f\U0001da88"
)


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
