"""fineweb_quality: each rule at its threshold, bad input, and agreement with datatrove's FineWebQualityFilter."""
from __future__ import annotations


import pyarrow as pa
import pytest

from crawl2model.stages._text import TERMINAL_PUNCTUATION
from crawl2model.stages.fineweb_quality import FineWebQuality, FineWebQualityConfig


def reasons(texts, **options):
    stage = FineWebQuality(FineWebQualityConfig(**options))
    return stage.process(pa.table({"text": texts})).column("drop_reason").to_pylist()


def prose(i: int) -> str:
    """A unique line of 8 words, longer than 30 characters, without final punctuation."""
    return f"Line number {i} says something rather long about topic {i}"


def test_line_punct_ratio_threshold():
    # 3 of 25 lines punctuated = 0.12 passes; 2 of 25 = 0.08 does not
    at = "\n".join(prose(i) + ("." if i < 3 else "") for i in range(25))
    below = "\n".join(prose(i) + ("." if i < 2 else "") for i in range(25))
    assert reasons([at, below]) == [None, "fineweb_quality:line_punct_ratio<0.12"]
    assert reasons([below], line_punct_thr=0.08) == [None]
    none = "\n".join(prose(i) for i in range(25))
    assert reasons([none], line_punct_exclude_zero=True) == [None]  # a share of exactly 0 passes
    assert reasons([none]) == ["fineweb_quality:line_punct_ratio<0.12"]


def test_stop_chars_are_datatrove_terminal_punctuation_and_lines_are_not_stripped():
    from datatrove.utils.text import TERMINAL_PUNCTUATION as DATATROVE

    assert set(TERMINAL_PUNCTUATION) == DATATROVE
    assert reasons(["\n".join(prose(i) + "。" for i in range(5))]) == [None]
    assert reasons(["\n".join(prose(i) + ". " for i in range(5))]) == ["fineweb_quality:line_punct_ratio<0.12"]
    assert reasons(["\n".join(prose(i) + ";" for i in range(5))], stop_chars=";") == [None]


def test_short_line_ratio_threshold():
    short = [f"Short line {i:03d}." for i in range(100)]  # 16 characters
    long_ = [prose(i) + "." for i in range(100)]
    at = "\n".join(short[:67] + long_[:33])  # 0.67 passes
    above = "\n".join(short[:68] + long_[:32])
    assert reasons([at, above]) == [None, "fineweb_quality:short_line_ratio>0.67"]
    # a line of exactly short_line_length characters is short, one more is not
    thirty, thirty_one = "x" * 29 + ".", "x" * 30 + "."
    doc = lambda line: "\n".join([line] + long_[:2])  # 1 of 3 lines
    assert reasons([doc(thirty), doc(thirty_one)], short_line_thr=0.3) == ["fineweb_quality:short_line_ratio>0.3", None]


def test_char_dup_ratio_threshold():
    lines = [f"{prose(i)} and more words to fill the line up to a hundred characters"[:99] + "." for i in range(100)]
    assert all(len(line) == 100 for line in lines)
    at = "\n".join(lines[:98] + [lines[98], lines[98]])  # 100 of 10,000 characters repeated: 0.01 passes
    longer = lines[98] + "x"
    above = "\n".join(lines[:98] + [longer, longer])  # 101 of 10,002
    assert reasons([at, above]) == [None, "fineweb_quality:char_dup_ratio>0.01"]
    assert reasons([above], char_duplicates_ratio=0.0101) == [None]


def test_list_ratio_threshold():
    lines = [f"Word{i} other." for i in range(10)]  # 3 tokens each: 30 words
    at = "\n".join(lines)  # 9 newlines / 30 words = 0.3 passes
    above = at + "\n"  # 10 / 30
    options = {"short_line_thr": 1.0}
    assert reasons([at, above], **options) == [None, "fineweb_quality:list_ratio>0.3"]
    assert reasons([above], new_line_ratio=0.34, **options) == [None]


def test_empty_and_rule_order():
    assert reasons(["", "\n  \n\t\n", None]) == ["fineweb_quality:empty"] * 3
    # breaks every rule: the first in datatrove's order is named
    assert reasons(["a\na\na\n\n\n\n"]) == ["fineweb_quality:line_punct_ratio<0.12"]


def test_bad_input_and_histograms():
    stage = FineWebQuality()
    texts = ["", "x" * 5_000_000, "!?.,;:\n...\n!!!", "Englisch und 中文 und русский текст, عربى.\n" * 3, None]
    out = stage.process(pa.table({"text": texts}))
    assert out.num_rows == len(texts) and out.column("text").to_pylist() == texts
    assert set(stage.histograms) == {"lines", "line_punct_ratio", "short_line_ratio", "char_dup_ratio", "list_ratio"}
    assert sum(stage.histograms["lines"]["counts"]) == len(texts)
    assert isinstance(stage.measure("bad \ud800 surrogate.\n" * 3, "en")["list_ratio"], float)
    # invalid UTF-8 in an Arrow column (a lone surrogate written through) is read as U+FFFD
    broken = pa.array([b"a \xed\xa0\x80 b."], pa.binary()).view(pa.string())
    out = FineWebQuality().process(pa.table({"text": broken}))
    assert out.to_pylist() == [{"text": "a \ufffd\ufffd\ufffd b.", "drop_reason": "fineweb_quality:short_line_ratio>0.67",
                               "drop_detail": "short_line_ratio=1 > 0.67"}]


def test_language_column_is_used():
    # as English each line is one word and a 。: 9 newlines / 20 words; as Chinese, one word a character
    text = "\n".join(f"第{i}个" + "一二三四五六七八九十" * 3 + "。" for i in range(10))
    out = FineWebQuality().process(pa.table({"text": [text, text], "language": ["en", "zh"]}))
    assert out.column("drop_reason").to_pylist() == ["fineweb_quality:list_ratio>0.3", None]


@pytest.mark.shared
def test_agrees_with_datatrove(extracted_pages, compare_with_datatrove):
    from datatrove.pipeline.filters.fineweb_quality_filter import FineWebQualityFilter

    texts = [t or "" for t in extracted_pages.column("text").to_pylist()]
    *_, rate = compare_with_datatrove("fineweb_quality", FineWebQuality(), FineWebQualityFilter(), texts)
    assert rate >= 0.99



def test_drop_detail_names_the_measured_value_and_threshold():
    below = "\n".join(prose(i) + ("." if i < 2 else "") for i in range(25))  # 2 of 25 lines punctuated
    at = "\n".join(prose(i) + ("." if i < 3 else "") for i in range(25))
    out = FineWebQuality().process(pa.table({"text": [below, at, ""]}))
    assert out.column("drop_detail").to_pylist() == ["line_punct_ratio=0.08 < 0.12", None, None]  # empty: nothing measured
