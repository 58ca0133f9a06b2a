"""The filters' text toolkit, each idea defined once: punctuation tables, abbreviations,
normalisation, word splitting, and stop words per language.

Punctuation: `TERMINAL_PUNCTUATION` (every Unicode sentence terminator, datatrove's; FineWeb's
line rule), `PUNCTUATION` (datatrove's punctuation set, those terminators included; Gopher's
symbol test) and `SENTENCE_END` (spaCy's sentence ends, the terminators less a few newer ones;
C4's sentence count). `ABBREVIATIONS`: spaCy's English exceptions that keep their period (C4's
sentence count; word splitting below). Normalisation: `nfkc_casefold` (badwords matching) and
`fold` (dedup keys: punctuation and digits folded too).

Words are split the way the FineWeb/Gopher implementations count them: word tokens *and*
punctuation tokens, so ratios such as "share of words with a letter" mean the same here as there.
Those implementations (datatrove) split with spaCy's tokenizer. `split_words` is one regular
expression that reproduces the spaCy splits that move such measures (punctuation one character
per token; hyphens between words, English clitics and units after numbers split off; numbers,
abbreviations and URLs kept whole) at a tenth of the cost, without loading spaCy.
A language without rules (no stop-word list, a script without spaces) is reported by `has_rules`,
and a filter passes such documents through, counting them in its stats.
"""
from __future__ import annotations

import functools
import re
import sys
import unicodedata
from itertools import compress, count

import numpy as np

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
# datatrove's PUNCTUATION_SET as one string: its PUNCTUATION (ASCII and CJK marks, control
# characters), then the terminators it lacks
_DATATROVE_PUNCTUATION = ("!/—”:％１〈&(、━\\【#%「」，】；+^]~“《„';’{|∶´[=-`*．（–？！：$～«〉,><》)?）。…@_.\"}►»"
                          + "".join(map(chr, [*range(9), *range(11, 13), *range(13, 32), *range(127, 160)])))
PUNCTUATION = _DATATROVE_PUNCTUATION + "".join(c for c in TERMINAL_PUNCTUATION if c not in _DATATROVE_PUNCTUATION)
# spaCy's Sentencizer.default_punct_chars: the terminators less those its list predates
SENTENCE_END = frozenset(TERMINAL_PUNCTUATION) - frozenset(
    "\u061d\u061e\u0837\u0839\u083d\u083e\u17d4\u17d5\u17d6\u17d9\u17da\u1b7d\u1b7e\u2e53\u2e54\U00010f55"
    "\U00010f56\U00010f57\U00010f58\U00010f59\U00010f86\U00010f87\U00010f88\U00010f89\U00011944\U00011946"
    "\U00011ef7\U00011ef8\U00011f43\U00011f44\U00016e98")

# spaCy's English tokenizer exceptions that end in a period: it keeps the period on these tokens
ABBREVIATIONS = frozenset("""Adm. Ak. Ala. Apr. Ariz. Ark. Aug. Bros. Calif. Co. Colo. Conn. Corp. D.C. Dec. Del. Dr. E.G.
E.g. Feb. Fla. Ga. Gen. Gov. I.E. I.e. Ia. Id. Ill. Inc. Ind. Jan. Jr. Jul. Jun. Kan. Kans. Ky. La. Ltd. Mar. Mass. Md.
Messrs. Mich. Minn. Miss. Mo. Mont. Mr. Mrs. Ms. Mt. N.C. N.D. N.H. N.J. N.M. N.Y. Neb. Nebr. Nev. Nov. Oct. Okla. Ore.
Pa. Ph.D. Prof. Rep. Rev. S.C. Sen. Sep. Sept. St. Tenn. Va. Wash. Wis. a.m. co. e.g. i.e. p.m. v.s. vs. ._.""".split()  # noqa: SIM905
                          + [f"{c}." for c in "abcdefghijklmnopqrstuvwxyzäöü"])


def nfkc_casefold(text: str) -> str:
    """NFKC, then case folding: `Ｓｃｈｅｉßｅ` and `SCHEISSE` become `scheisse` alike."""
    return unicodedata.normalize("NFKC", text).casefold()


@functools.lru_cache(maxsize=1)
def _fold_tables() -> tuple[dict[int, str], np.ndarray]:
    """Punctuation, symbols, separators and control characters become spaces; decimal digits
    become '0'; so 'Page 12!' and 'page 7' normalise to the same words. As a `str.translate` table
    (fast on ASCII text) and as a lookup array over all code points (fast on any text)."""
    table, lookup = {}, np.arange(sys.maxunicode + 1, dtype=np.uint32)
    for code in range(sys.maxunicode + 1):
        category = unicodedata.category(chr(code))
        if category[0] in "PSZ" or category == "Cc":
            table[code], lookup[code] = " ", 32
        elif category == "Nd":
            table[code], lookup[code] = "0", 48
    return str.maketrans(table), lookup


def fold(text: str) -> str:
    """NFKC, lower case, punctuation and symbols folded to spaces, digits to 0: what deduplication
    compares (minhash shingles, exact_dedup's document keys)."""
    text = unicodedata.normalize("NFKC", text).lower()
    table, lookup = _fold_tables()
    if text.isascii():
        return text.translate(table)
    # str.translate looks each non-ASCII character up in a dict: 3x slower than this
    codes = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), np.uint32)
    return lookup[codes].tobytes().decode("utf-32-le", "surrogatepass")


def _marks() -> str:
    r"""Combining marks as a character-class body. Python's \w leaves them out, which would cut
    words of Indic scripts, and decomposed (NFD) accents, into pieces at every vowel sign."""
    import unicodedata

    # the Basic Multilingual Plane only: its classes compile to one bitmap, and matching stays fast
    codes = [c for c in range(0x10000) if unicodedata.category(chr(c)).startswith("M")]
    ranges, start = [], codes[0]
    for prev, code in zip(codes, codes[1:] + [-1]):
        if code != prev + 1:
            ranges.append(f"\\u{start:04x}" + (f"-\\u{prev:04x}" if prev > start else ""))
            start = code
    return "".join(ranges)


_W = rf"\w{_marks()}"  # a word character, marks included: use as [{_W}] or [^{_W}]
_URL = r"(?:https?://|www\.)[^\s<>\"'()\[\]]*[^\s<>\"'()\[\].,;:!?]"  # trailing punctuation left out
# Abbreviations spaCy keeps with their period (`ABBREVIATIONS`, without it). A single letter keeps
# it too, and so does an initialism ending in a capital (U.S.), listed or not: the second and
# third branches below take those; d.h. splits as d.h|. there as well.
_ABBREVIATIONS = sorted(a.removesuffix(".") for a in ABBREVIATIONS
                        if a[0].isalpha() and not re.fullmatch(r"[^\W\d_]\.|(?:[A-Z]\.)+", a))
_ABBREVIATION = (r"(?=\w(?:\w|\.\w){0,5}\.)"  # all need a period within a few letters: most words fail here, fast
                 rf"(?:(?<![{_W}])(?:{'|'.join(re.escape(a) for a in _ABBREVIATIONS)})\.(?![{_W}.])"
                 rf"|(?:[^\W\d_a-z]\.)+[A-Z]\.(?![{_W}.])"
                 rf"|(?<![{_W}])[^\W\d_]\.(?![^\W_A-Z]|\.))")
# units spaCy splits from the number before them (5|km, 10|am); longest first
_UNITS = sorted("km km² km³ m m² m³ dm dm² dm³ cm cm² cm³ mm mm² mm³ ha µm nm yd in ft kg g mg µg t lb oz m/s "
                "km/h kmh mph hPa Pa mbar mb MB kb KB gb GB tb TB T G M K am pm a.m. p.m. км км² км³ м м² м³ "
                "дм дм² дм³ см см² см³ мм мм² мм³ нм кг г мг м/с км/ч кПа Па мбар Кб КБ кб Мб МБ мб Гб ГБ гб Тб ТБ тб"
                .split(), key=len, reverse=True)
_NUMBER_BEFORE_UNIT = (rf"(?=[-+]?\d)[-+]?\d+(?:[.,]\d+)*"
                       rf"(?=(?:{'|'.join(re.escape(u) for u in _UNITS)})(?![{_W}]))")
# a word starts with - ~ @ (-foo, ~foo, @user) or + before a digit (+49) when nothing joins it to the left
_PREFIX = rf"(?:(?<![{_W}-])-+|(?<![{_W}])[~@]|(?<![{_W}])\+(?=\d))?"
# Joins inside one token, as spaCy's infix rules leave them: a period unless lower.Upper (foo.bar,
# 3.5, but end.The), a comma unless between letters (1,000), : < > = / unless a letter follows
# (10:30, x=5, 2/5), a hyphen from a letter to a digit (B-52), a plus after a letter, an @.
_JOIN = (r"\.(?!(?<=[a-z]\.)[A-Z])|,(?!(?<=[^\W\d_],)[^\W\d_])|[:<>=/](?![^\W\d_])"
         r"|(?<=[^\W\d_])-(?=\d)|(?<=[^\W\d_])\+|@")
_SUFFIX = rf"(?:(?:-+|~)(?![{_W}]))?"  # a trailing hyphen or tilde stays on the word (Fleisch- und)
# English clitics spaCy splits off the word before them: do|n't, it|'s, they|'re, I|'m
_CLITIC = rf"(?i:n['’]t|['’](?:s|re|ve|ll|d|m))(?![{_W}])"
_APOSTROPHE = rf"['’](?!(?i:s|re|ve|ll|d|m)(?![{_W}]))"  # inside a word when no clitic follows: o'clock


def _tokens(join: str, clitics: bool) -> re.Pattern:
    word = rf"{_PREFIX}[{_W}]+(?:(?:{join})[{_W}]+)*{_SUFFIX}"
    return re.compile("|".join([
        _URL, _ABBREVIATION, _NUMBER_BEFORE_UNIT,
        *([rf"[{_W}]+?(?=n['’]t(?![{_W}]))"] if clitics else []),  # the word before n't: do|n't, ca|n't
        word, *([_CLITIC] if clitics else []),
        rf"\.{{2,}}|-{{2,}}|[^{_W}\s]",  # an ellipsis or a dash run is one token; other punctuation one per character
    ]))


_TOKEN = _tokens(f"{_JOIN}|{_APOSTROPHE}", clitics=True)
_TOKEN_OTHER = _tokens(f"{_JOIN}|['’]", clitics=False)  # elsewhere a word keeps its apostrophes

# Clitics written without the apostrophe, which spaCy splits as if it were there: dont -> do|nt,
# in lower case or capitalised only (ID and DONT stay whole there)
_SPELLED_CLITICS = {form: tuple(map(len, parts)) for parts in (w.split("|") for w in (
    "ai|nt are|nt can|not ca|nt ca|nt|ve could|nt could|nt|ve could|ve dare|nt did|nt did|nt|ve does|nt "
    "does|nt|ve do|nt do|nt|ve gon|na got|ta had|nt had|nt|ve has|nt have|nt he|d he|d|ve he|ll|ve he|s how|d "
    "how|d|ve how|ll how|ll|ve how|re how|s how|ve i|d i|d|ve i|ll|ve i|m i|m|a is|nt it|d it|d|ve it|ll it|ll|ve "
    "i|ve may|nt may|nt|ve might|nt might|nt|ve might|ve must|nt must|nt|ve must|ve need|nt need|nt|ve not|ve "
    "ought|nt ought|nt|ve sha|nt sha|nt|ve she|d|ve she|ll|ve she|s should|nt should|nt|ve should|ve that|d "
    "that|d|ve that|ll that|ll|ve that|s there|d there|d|ve there|ll there|ll|ve there|re there|s there|ve "
    "these|d these|d|ve these|ll these|ll|ve these|re these|ve they|d they|d|ve they|ll they|ll|ve they|re "
    "they|ve this|d this|d|ve this|ll this|ll|ve this|s those|d those|d|ve those|ll those|ll|ve those|re "
    "those|ve was|nt we|d we|d|ve we|ll|ve were|nt we|ve what|d what|d|ve what|ll what|ll|ve what|re what|s "
    "what|ve when|d when|d|ve when|ll when|ll|ve when|re when|s when|ve where|d where|d|ve where|ll where|ll|ve "
    "where|re where|s where|ve who|d who|d|ve who|ll who|ll|ve who|s who|ve why|d why|d|ve why|ll why|ll|ve "
    "why|re why|s why|ve wo|nt wo|nt|ve would|nt would|nt|ve would|ve y|all you|d you|d|ve you|ll you|ll|ve "
    "you|re you|ve").split()) for form in ("".join(parts), "".join(parts).capitalize())}

NO_SPACES = {"zh", "ja", "th", "lo", "km", "my", "bo"}  # scripts written without spaces between words
_PER_CHARACTER = re.compile(r"\w|[^\w\s]+")

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
    """Tokens of `text`: words and punctuation. Languages written without spaces are split
    per character of their script (a crude but stable unit; filters skip them by default)."""
    if language in NO_SPACES:
        return _PER_CHARACTER.findall(text)
    if language != "en":
        return _TOKEN_OTHER.findall(text)
    return _split_spelled_clitics(_TOKEN.findall(text))


def _split_spelled_clitics(tokens: list[str]) -> list[str]:
    # found with C-level map/compress (no Python loop over every token), then split in place
    hits = list(compress(count(), map(_SPELLED_CLITICS.__contains__, tokens)))
    for i in reversed(hits):
        token, start, parts = tokens[i], 0, []
        for length in _SPELLED_CLITICS[token]:
            parts.append(token[start:start + length])
            start += length
        tokens[i:i + 1] = parts
    return tokens


def has_rules(language: str) -> bool:
    """Whether word-based rules (stop words, word lengths) mean anything for this language."""
    return language in STOP_WORDS
