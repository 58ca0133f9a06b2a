"""Word splitting and stop words per language, defined once for every filter.

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

import re
from itertools import compress, count


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
# Abbreviations spaCy keeps with their period (its English exceptions). A single letter keeps it
# too, and so does an initialism ending in a capital (U.S.); d.h. splits as d.h|. there as well.
_ABBREVIATIONS = ("Adm Ak Ala Apr Ariz Ark Aug Bros Calif Co Colo Conn Corp Dec Del Dr Feb Fla Ga Gen Gov Ia Id "
                  "Ill Inc Ind Jan Jr Jul Jun Kan Kans Ky La Ltd Mar Mass Md Messrs Mich Minn Miss Mo Mont Mr Mrs "
                  "Ms Mt Neb Nebr Nev Nov Oct Okla Ore Pa Prof Rep Rev Sen Sep Sept St Tenn Va Wash Wis co vs "
                  "Ph.D a.m p.m e.g i.e E.g I.e v.s").split()
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


def lines(text: str) -> list[str]:
    """Non-empty lines, stripped."""
    return [line.strip() for line in text.split("\n") if line.strip()]
