"""The filters' text toolkit (stages/_text.py): its tables are the references' own, and each is
defined once for the filters that use it."""
from __future__ import annotations

import pytest

from crawl2model.stages import _text
from crawl2model.stages._text import (
    ABBREVIATIONS,
    PUNCTUATION,
    SENTENCE_END,
    TERMINAL_PUNCTUATION,
    fold,
    nfkc_casefold,
    split_words,
)


def test_punctuation_tables_are_datatrove_and_spacy_tables():
    text = pytest.importorskip("datatrove.utils.text")
    sentencizer = pytest.importorskip("spacy.pipeline.sentencizer")

    assert set(TERMINAL_PUNCTUATION) == text.TERMINAL_PUNCTUATION and len(TERMINAL_PUNCTUATION) == 159
    assert set(PUNCTUATION) == text.PUNCTUATION_SET and PUNCTUATION.startswith(text.PUNCTUATION)
    assert SENTENCE_END == set(sentencizer.Sentencizer.default_punct_chars) and len(SENTENCE_END) == 128


def test_abbreviations_are_spacy_english_exceptions_ending_in_a_period():
    english = pytest.importorskip("spacy.lang.en")

    rules = english.English().tokenizer.rules
    assert ABBREVIATIONS == {key for key, tokens in rules.items() if key.endswith(".") and len(tokens) == 1}


def test_word_splitting_lists_the_abbreviations_its_general_rules_do_not_cover():
    assert "Dr" in _text._ABBREVIATIONS and "Ph.D" in _text._ABBREVIATIONS and "e.g" in _text._ABBREVIATIONS
    assert "D.C" not in _text._ABBREVIATIONS and "a" not in _text._ABBREVIATIONS  # the regex's initialisms and letters
    assert len(_text._ABBREVIATIONS) == 77
    assert split_words("Dr. Who met Mr. X at 5 p.m. in D.C., e.g. with a Ph.D. Messrs. and vs. ok.") == [
        "Dr.", "Who", "met", "Mr.", "X", "at", "5", "p.m.", "in", "D.C.", ",", "e.g.", "with", "a", "Ph.D.",
        "Messrs.", "and", "vs.", "ok", "."]


def test_normalisations():
    assert nfkc_casefold("ＳＣＨＥＩSSE Scheiße") == "scheisse scheisse"  # full width, sharp s
    assert fold("Scheiße, Page 12!") == "scheiße  page 00 "  # lower case (ß stays), punctuation, digits
    assert fold("a+b=c $5 ©x") == "a b c  0  x"  # symbols too
