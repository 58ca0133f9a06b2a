"""Tests for the badwords stage (stages/badwords.py): exact decisions on hand-built documents with
the real LDNOOBW lists (../shared/data/badwords), list parsing and config checks on temporary
lists, and bad input."""
from __future__ import annotations

import time

import pyarrow as pa
import pytest
from pydantic import ValidationError

from crawl2model.pipeline.stage import DROP_REASON

from crawl2model.catalog import resolve_stage
from crawl2model.stages.badwords import BadWords, BadWordsConfig

FILLER = "river"  # in no list


@pytest.fixture(scope="module")
def lists(shared_data):
    return str(shared_data / "badwords")


@pytest.fixture(scope="module")
def stage(lists):
    stage = BadWords(BadWordsConfig(lists_dir=lists))
    stage.setup()
    return stage


def run(stage: BadWords, texts, languages=None) -> list:
    columns = {"text": texts}
    if languages is not None:
        columns["language"] = languages
    out = stage(pa.table(columns))  # set up on first use
    assert out.num_rows == len(texts)
    return out.column(DROP_REASON).to_pylist()


def doc(bad: str, bad_times: int, words: int) -> str:
    """`words` words, `bad_times` of them the (one-word) `bad`."""
    return " ".join([bad] * bad_times + [FILLER] * (words - bad_times)) + "."


def test_resolves_by_type_name():
    assert resolve_stage("badwords") is BadWords


@pytest.mark.shared
def test_ratio_just_above_and_just_below_the_threshold(stage):
    assert stage.config.max_badword_ratio == 0.01
    below_or_equal = doc("ass", 1, 100)   # 1/100 = 0.01: not above
    above = doc("ass", 1, 99)             # 1/99 > 0.01
    assert run(stage, [below_or_equal, above]) == [None, "badwords:ratio>0.01"]


@pytest.mark.shared
def test_threshold_is_configurable_and_named_in_the_reason(lists):
    stage = BadWords(BadWordsConfig(lists_dir=lists, max_badword_ratio=0.05))
    assert run(stage, [doc("ass", 5, 100), doc("ass", 6, 100)]) == [None, "badwords:ratio>0.05"]
    strict = BadWords(BadWordsConfig(lists_dir=lists, max_badword_ratio=0))  # C4's rule: any one word
    assert run(strict, [doc("ass", 1, 1000), doc("river", 1, 1000)]) == ["badwords:ratio>0", None]


@pytest.mark.shared
def test_phrases_match_across_whitespace_and_count_all_their_words(stage):
    ratio, hits = stage.measure("2 Girls\n  1\tcup " + " ".join([FILLER] * 96), "en")
    assert hits == {"2 girls 1 cup": 1}
    assert ratio == pytest.approx(4 / 100)
    # the phrase's words alone are no match ("big" and "black" separately)
    assert stage.measure("big dogs and black cats", "en")[1] == {}
    assert stage.measure("a big black dog", "en")[1] == {"big black": 1}


@pytest.mark.shared
def test_word_boundaries_not_substrings(stage):
    for text in ["class", "classic assist", "bass grass", "passage", "assassin", "Glasses"]:
        assert stage.measure(text, "en") == (0.0, {}), text
    ratio, hits = stage.measure("ass, ass. (ass) ass-kicker 'ass'", "en")
    assert hits == {"ass": 5}
    # the longest entry wins: "asshole" is one hit, not "ass"
    assert stage.measure("asshole", "en")[1] == {"asshole": 1}


@pytest.mark.shared
def test_case_insensitive_and_normalised(stage):
    assert stage.measure("ASS Ass aSs", "en")[1] == {"ass": 3}
    assert stage.measure("ＡＳＳ", "en")[1] == {"ass": 1}  # full-width letters (NFKC)
    # German: ß case-folds to ss, so all spellings meet the listed "scheiße"
    assert stage.measure("Scheiße SCHEISSE scheisse", "de")[1] == {"scheisse": 3}


@pytest.mark.shared
def test_language_column_drives_the_list(stage):
    german = doc("scheiße", 2, 10)
    assert run(stage, [german, german, german, german], ["de", "en", None, "de_DE"]) == [
        "badwords:ratio>0.01", None, None, "badwords:ratio>0.01"]  # null -> config language (en)


@pytest.mark.shared
def test_config_language_is_used_without_a_language_column(lists):
    german = doc("scheiße", 2, 10)
    assert run(BadWords(BadWordsConfig(lists_dir=lists)), [german]) == [None]
    assert run(BadWords(BadWordsConfig(lists_dir=lists, language="de")), [german]) == ["badwords:ratio>0.01"]


@pytest.mark.shared
def test_language_without_a_list_passes_and_is_counted(lists):
    stage = BadWords(BadWordsConfig(lists_dir=lists))
    assert run(stage, [doc("ass", 5, 10)] * 3, ["xx", "sw", "en"]) == [None, None, "badwords:ratio>0.01"]
    assert stage.counters["passed:no_list_for:xx"] == 1
    assert stage.counters["passed:no_list_for:sw"] == 1
    assert run(BadWords(BadWordsConfig(lists_dir=lists, language="sw")), [doc("ass", 5, 10)]) == [None]


@pytest.mark.shared
def test_regional_tags_use_their_own_list_or_the_language(stage):
    assert stage._language_key("fr-CA-u-sd-caqc") == "fr-ca-u-sd-caqc"
    assert stage._language_key("fr-CA") == "fr"
    assert stage._language_key("EN") == "en"


@pytest.mark.shared
def test_languages_without_spaces_match_substrings(stage):
    ratio, hits = stage.measure("这是三级片的广告", "zh")  # no spaces: inside a run of characters
    assert hits == {"三级片": 1}
    assert ratio == pytest.approx(3 / 8)  # a "word" is a character of the script
    assert stage.measure("ตัวอย่างกระหรี่ข้อความ", "th")[1] == {"กระหรี่": 1}
    # Latin entries of the Japanese list still need Latin word boundaries
    assert stage.measure("smile smtp", "ja")[1] == {}
    assert stage.measure("これはsmです", "ja")[1] == {"sm": 1}
    assert stage.measure("sm女王", "ja")[1] == {"sm女王": 1}  # the longest entry


@pytest.mark.shared
def test_stats_count_words_and_observe_the_ratio(lists):
    stage = BadWords(BadWordsConfig(lists_dir=lists, top_words=2))
    run(stage, ["ass ass ass penis penis nude " + doc(FILLER, 0, 100), doc(FILLER, 0, 50), ""])
    assert stage.counters["flagged_words"] == 6
    assert stage.counters["docs_with_badwords"] == 1
    assert {k: v for k, v in stage.counters.items() if k.startswith("word:")} == {"word:ass": 3, "word:penis": 2}
    histogram = stage.histograms["badword_ratio"]
    assert sum(histogram["counts"]) == 3
    assert 0.01 in histogram["edges"]
    assert histogram["counts"][histogram["edges"].index(0.05)] == 1  # 6/106
    none = BadWords(BadWordsConfig(lists_dir=lists, top_words=0))
    run(none, ["ass " * 10])
    assert not [k for k in none.counters if k.startswith("word:")]


@pytest.mark.shared
def test_bad_input_does_not_crash(stage):
    texts = ["", None, "   \n\t ", "!!! ??? ...", "ass " + "x" * 5_000_000, "ass " * 1_000_000]
    started = time.perf_counter()
    reasons = run(stage, texts, ["en", "en", "en", None, "en", ""])
    assert reasons == [None, None, None, None, "badwords:ratio>0.01", "badwords:ratio>0.01"]
    assert time.perf_counter() - started < 10
    # lone surrogates cannot enter an Arrow table, but measuring such a string must still work
    assert stage.measure("\ud800 ass \udfff", "en")[1] == {"ass": 1}
    assert run(stage, ["ass", "ass"], [" ", "??"]) == ["badwords:ratio>0.01", None]  # blank: the default


def test_list_files_comments_phrases_and_symbols(tmp_path):
    (tmp_path / "en.txt").write_text("# a comment\n\nFoo Bar\nbaz\r\n🖕\nbaz\n13.\n", encoding="utf-8")
    (tmp_path / "README.md").write_text("not a list: readme\n")
    (tmp_path / "LICENSE").write_text("license\n")
    stage = BadWords(BadWordsConfig(lists_dir=str(tmp_path)))
    stage.setup()
    assert set(stage.patterns) == {"en"}
    assert stage.measure("foo   BAR and baz", "en")[1] == {"foo bar": 1, "baz": 1}
    assert stage.measure("readme license comment bazaar", "en")[1] == {}
    assert stage.measure("hello🖕 13.5", "en")[1] == {"🖕": 1, "13.": 1}  # symbol ends need no boundary
    # combining marks belong to their word: "baz" + combining acute is another word
    assert stage.measure("baz\u0301", "en")[1] == {}


def test_lists_dir_is_required_and_must_exist(tmp_path):
    with pytest.raises(ValidationError) as error:
        BadWordsConfig()
    assert error.value.errors()[0]["loc"] == ("lists_dir",)
    with pytest.raises(ValidationError) as error:
        BadWordsConfig(lists_dir=str(tmp_path / "nowhere"))
    assert error.value.errors()[0]["loc"] == ("lists_dir",)
    assert "no such directory" in str(error.value)
    with pytest.raises(ValidationError, match="holds no word list"):
        BadWordsConfig(lists_dir=str(tmp_path))
    with pytest.raises(ValidationError):
        BadWordsConfig(lists_dir=str(tmp_path), max_badword_ratio=1.5)
    with pytest.raises(ValidationError, match="extra"):
        BadWordsConfig(lists_dir=str(tmp_path), max_ratio=0.1)


@pytest.mark.shared
def test_drop_detail_names_the_ratio_the_limit_and_the_words(stage):
    out = stage(pa.table({"text": [doc("ass", 1, 100), doc("ass", 2, 99), "2 girls 1 cup and ass " + doc(FILLER, 0, 60)]}))
    assert out.column("drop_detail").to_pylist() == [
        None,
        "ratio=0.0202 > 0.01; flagged: ass×2",  # 2 / 99
        "ratio=0.0758 > 0.01; flagged: 2 girls 1 cup, ass",  # 5 of 66 words: the phrase counts all its words
    ]
