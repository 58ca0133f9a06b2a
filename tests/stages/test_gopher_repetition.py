"""gopher_repetition: each rule just inside and just outside its threshold, bad input, the curation
fixtures, and agreement with datatrove's GopherRepetitionFilter on the 990 extracted eval pages."""
from __future__ import annotations

import math
import random

import pyarrow as pa
import pytest

from crawl2model.stages.gopher_repetition import GopherRepetition, GopherRepetitionConfig, NGrams

DEFAULTS = GopherRepetitionConfig()


def reasons(texts, language=None, **options):
    stage = GopherRepetition(GopherRepetitionConfig(**options))
    table = pa.table({"text": texts} if language is None else {"text": texts, "language": [language] * len(texts)})
    return stage.process(table).column("drop_reason").to_pylist()


def unique_words(prefix: str, n: int) -> list[str]:
    """n distinct words of 4 characters that share no n-gram with anything else."""
    return [f"{prefix}{i:03d}" for i in range(n)]


def padded(body: str, length: int, separator: str = "\n") -> str:
    """`body` followed by a fresh line (or paragraph) of one long word, to exactly `length` characters."""
    assert length >= len(body) + len(separator) + 1
    return body + separator + "z" * (length - len(body) - len(separator))


def at_and_over(repeated_chars: int, threshold: float, body: str, separator: str = "\n") -> tuple[str, str]:
    """`body` padded so that `repeated_chars` make `threshold` of it or just less, and with one
    character less, just more."""
    length = math.ceil(repeated_chars / threshold - 1e-9)
    assert repeated_chars / length <= threshold < repeated_chars / (length - 1)  # the construction is right
    return padded(body, length, separator), padded(body, length - 1, separator)


def test_duplicate_paragraphs_by_count():
    # 20 paragraphs, 6 or 7 of them repeats of a short one: 0.3 passes, 0.35 does not
    def doc(repeats: int) -> str:
        unique = [" ".join(unique_words(f"p{i}", 40)) for i in range(20 - repeats - 1)]
        return "\n\n".join([*unique, *["Read more"] * (repeats + 1)])

    assert reasons([doc(6), doc(7)]) == [None, "gopher_repetition:dup_para_frac>0.3"]
    assert reasons([doc(7)], dup_para_frac=None, dup_line_frac=None) == [None]


@pytest.mark.parametrize("separator, rule", [("\n\n", "dup_para_char_frac>0.2"), ("\n", "dup_line_char_frac>0.2")])
def test_duplicate_characters_of_paragraphs_and_lines(separator, rule):
    # one long paragraph (or line) twice among 10 others: its second copy is exactly 20% of the text, or more
    repeated = "r" * 300  # one word: no repeated n-gram of words
    parts = [" ".join(unique_words(f"p{i}", 5)) for i in range(10)]
    body = separator.join([*parts[:5], repeated, *parts[5:], repeated])
    at, over = at_and_over(len(repeated), 0.2, body, separator)
    assert reasons([at, over]) == [None, f"gopher_repetition:{rule}"]


def test_duplicate_lines_by_count():
    # 20 lines in one paragraph, 6 or 7 repeats of a short one
    def doc(repeats: int) -> str:
        unique = [" ".join(unique_words(f"l{i}", 40)) for i in range(20 - repeats - 1)]
        return "\n".join([*unique, *["Share"] * (repeats + 1)])

    assert reasons([doc(6), doc(7)]) == [None, "gopher_repetition:dup_line_frac>0.3"]


@pytest.mark.parametrize("n", [2, 3, 4])
def test_top_n_gram(n):
    # one n-gram 10 times between distinct words; counted with the spaces inside it, as datatrove does
    gram = " ".join(f"g{i}x" for i in range(n))  # 3-letter words
    body = " ".join(f"{gram} {u}" for u in unique_words("u", 10))
    threshold = DEFAULTS.top_n_grams[n]
    at, over = at_and_over(10 * len(gram), threshold, body)
    only_this = {"top_n_grams": {n: threshold}, "dup_n_grams": {}}
    assert reasons([at, over], **only_this) == [None, f"gopher_repetition:top_{n}_gram>{threshold}"]
    assert reasons([over]) == [f"gopher_repetition:top_{n}_gram>{threshold}"]  # the defaults name it too
    assert reasons([over], top_n_grams={n: None}, dup_n_grams={}) == [None]


@pytest.mark.parametrize("n", [5, 6, 7, 8, 9, 10])
def test_duplicated_n_grams(n):
    # an n-word phrase 3 times between distinct words: 2 repeats of 3n letters (spaces not counted)
    phrase = " ".join(f"d{i}x" for i in range(n))
    body = " ".join(f"{phrase} {u}" for u in unique_words("u", 3))
    threshold = DEFAULTS.dup_n_grams[n]
    at, over = at_and_over(2 * 3 * n, threshold, body)
    only_this = {"top_n_grams": {}, "dup_n_grams": {n: threshold}}
    assert reasons([at, over], **only_this) == [None, f"gopher_repetition:dup_{n}_gram>{threshold:g}"]


def test_duplicated_10_grams_under_defaults():
    # a repeated 10-gram repeats its 5- to 9-grams too; with 11% of the text in repeats only the
    # 10-gram rule (0.10) fires, the shorter ones allowing more
    phrase = " ".join(f"d{i}x" for i in range(10))
    body = " ".join(f"{phrase} {u}" for u in unique_words("u", 2))
    doc = padded(body, round(30 / 0.11))
    assert reasons([doc]) == ["gopher_repetition:dup_10_gram>0.1"]


def test_overlapping_repeats_count_once():
    # "a a a a ..." : each repeated 5-gram is skipped past, so the repeats cover the text once
    words = ["abc"] * 25
    assert NGrams(words).repeated_chars(5) == 60  # 5 grams of 5 words: the first new, 4 repeats of 15 letters
    assert NGrams(words).top_chars(2) == 24 * 7


def test_matches_datatrove_functions():
    # the vectorised counts against datatrove's own functions, on random texts of few distinct words
    from datatrove.pipeline.filters.gopher_repetition_filter import (
        find_all_duplicate,
        find_top_duplicate,
        get_n_grams,
    )

    rng = random.Random(7)
    for _ in range(500):
        words = [rng.choice(["a", "bb", "ccc", "a b", "dd"]) for _ in range(rng.randint(0, 80))]
        words = [w.replace(" ", "") for w in words]  # tokens never hold spaces
        grams = NGrams(words)
        for n in (2, 3, 4):
            assert grams.top_chars(n) == (find_top_duplicate(get_n_grams(words, n)) if len(words) >= n else 0)
        for n in range(5, 11):
            assert grams.repeated_chars(n) == find_all_duplicate(words, n)


def test_languages():
    # without word rules (zh) only lines and paragraphs are judged
    chinese = "\n".join(["这是一个句子，这是一个句子。"] * 2 + [f"第{i}行不同的内容" for i in range(8)])
    assert reasons([chinese], language="zh") == [None]  # 1 repeat in 10 lines; characters repeat a lot
    assert reasons(["\n".join(["重复的行"] * 5 + ["别的"] * 2)], language="zh") == ["gopher_repetition:dup_line_frac>0.3"]
    stage = GopherRepetition()
    stage.process(pa.table({"text": [chinese], "language": ["zh"]}))
    assert "top_2_gram" not in stage.histograms and "dup_line_frac" in stage.histograms


def test_bad_input_no_crash_and_histograms():
    from datatrove.data import Document
    from datatrove.pipeline.filters import GopherRepetitionFilter

    rng = random.Random(1)
    vocabulary = [f"w{i}" for i in range(50_000)]
    cases = {
        "empty": ("", "empty"),
        "whitespace": (" \n\n \n", "empty"),
        "line_5mb": (" ".join(rng.choice(vocabulary) for _ in range(900_000))[:5_000_000], None),
        "same_word": ("spam " * 100_000, "top_2_gram>0.2"),
        "punctuation": ("!!! ??? ... ,,, ;;; --- ((( ))) ''' \"\"\" ### @@@ " * 20, "dup_5_gram>0.15"),
        "mixed_scripts": ("The café мир 世界和平 مرحبا नमस्ते 🙂 and " + " ".join(unique_words("m", 60)), None),
        "replacement_chars": ("\ufffd" * 100, "top_2_gram>0.2"),
    }
    stage = GopherRepetition()
    got = stage.process(pa.table({"text": [text for text, _ in cases.values()]})).column("drop_reason").to_pylist()
    assert got == [reason and f"gopher_repetition:{reason}" for _, reason in cases.values()]
    reference = GopherRepetitionFilter()  # the same verdicts there (long texts aside: too slow through spaCy)
    for name, (text, reason) in cases.items():
        if len(text) < 100_000 and name != "whitespace":  # there a duplicate " " line
            assert (reference.filter(Document(text=text, id=name)) is True) == (reason is None), name
    assert {"dup_para_frac", "dup_line_char_frac", "top_2_gram", "top_4_gram", "dup_5_gram", "dup_10_gram"} <= set(stage.histograms)
    assert sum(stage.histograms["chars"]["counts"]) == len(cases)
    assert sum(stage.histograms["dup_5_gram"]["counts"]) == len(cases) - 2  # blank texts are not measured


def test_invalid_utf8_and_lone_surrogates():
    raw = pa.array([b"\xed\xa0\x80\n" * 10, " ".join(unique_words("s", 60)).encode() + b" \xed\xa0\x80"], pa.binary())
    column = pa.Array.from_buffers(pa.string(), len(raw), raw.buffers())
    assert GopherRepetition().process(pa.table({"text": column})).column("drop_reason").to_pylist() == [
        "gopher_repetition:dup_line_frac>0.3", None]
    stage = GopherRepetition()
    assert stage.judge(stage.measure("\ud800 " + " ".join(unique_words("s", 60)), "en")) is None


@pytest.mark.shared
def test_curation_fixtures(judge_curation_fixtures):
    from datatrove.pipeline.filters import GopherRepetitionFilter

    wiki, cc, datatrove_keeps_cc = judge_curation_fixtures(GopherRepetition(), GopherRepetitionFilter())
    assert wiki is None
    assert (cc is None) == datatrove_keeps_cc


@pytest.mark.shared
def test_agreement_with_datatrove(extracted_pages, compare_with_datatrove):
    from datatrove.pipeline.filters import GopherRepetitionFilter

    texts = [t or "" for t in extracted_pages.column("text").to_pylist()]
    *_, rate = compare_with_datatrove("gopher_repetition", GopherRepetition(), GopherRepetitionFilter(), texts)
    assert rate >= 0.99



def test_drop_detail_names_the_measured_value_and_threshold():
    stage = GopherRepetition()
    doc = "\n\n".join([*(" ".join(unique_words(f"p{i}", 40)) for i in range(12)), *["Read more"] * 8])
    out = stage.process(pa.table({"text": [doc, " ".join(unique_words("k", 60)), ""]}))
    assert out.column("drop_reason").to_pylist() == ["gopher_repetition:dup_para_frac>0.3", None, "gopher_repetition:empty"]
    # 7 repeats of 20 paragraphs; an empty text has nothing measured to show
    assert out.column("drop_detail").to_pylist() == ["dup_para_frac=0.35 > 0.3", None, None]
