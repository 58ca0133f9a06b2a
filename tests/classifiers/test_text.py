"""The preprocessing training and scoring share."""
from __future__ import annotations

import pyarrow as pa

from crawl2model.classifiers.text import paragraphs, preprocess


def test_lower_case_punctuation_split_and_whitespace_folded():
    text = "Hello, World!\nSecond\tline\u00a0here\u2028(über-cool) 3.5%"
    prepared = preprocess([text]).to_pylist()[0]
    assert prepared.split(" ") == [w for w in prepared.split(" ") if w.strip() == w]  # no other whitespace is left
    assert prepared.split() == "hello , world ! second line here ( über - cool ) 3 . 5 %".split()


def test_null_blank_and_punctuation_only_texts():
    prepared = preprocess([None, "", "  \n\t ", "..."]).to_pylist()
    assert prepared[:3] == [None, "", ""] and prepared[3].split() == [".", ".", "."]


def test_reads_at_most_max_chars():
    assert preprocess(["abcdef ghij"], max_chars=4).to_pylist() == ["abcd"]
    assert preprocess(pa.chunked_array([["A"], ["B"]], pa.large_string())).to_pylist() == ["a", "b"]


def test_paragraphs_are_the_non_blank_lines_with_their_document():
    lines, owner = paragraphs(pa.array(["one\n\n  \ntwo", None, "", "three"]))
    assert lines.to_pylist() == ["one", "two", "three"] and owner.tolist() == [0, 0, 3]
