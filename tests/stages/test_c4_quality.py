"""c4_quality: each rule at its threshold, the line edits, bad input, agreement with datatrove's C4QualityFilter."""
from __future__ import annotations

import time

import pyarrow as pa
import pytest

from crawl2model.stages.c4_quality import C4Quality, C4QualityConfig, count_sentences

FIVE = "One sentence here. Two sentence here. Three here. Four here. Five here."


def run(texts, **options):
    stage = C4Quality(C4QualityConfig(**options))
    out = stage.process(pa.table({"text": texts}))
    return out.column("text").to_pylist(), out.column("drop_reason").to_pylist(), stage


def reasons(texts, **options):
    return run(texts, **options)[1]


def test_line_edits_exact_text_and_counters():
    text = "\n".join([
        "  Title without punctuation",
        FIVE,
        "Too short.",
        "",
        "This line trails off...",
        "Enable JavaScript to see this page.",
        "We use cookies, read our Privacy Policy.",
        "A cited claim is here.[1] And another[citation needed] one [edit].",
        "x" * 1001 + " is too long a word.",
        "\tIt ends with a quote: \"yes it does\"  \n",
    ])
    texts, why, stage = run([text])
    assert why == [None]
    assert texts == [f'{FIVE}\nA cited claim is here. And another one .\nIt ends with a quote: "yes it does"']
    counters = {k: v for k, v in stage.counters.items() if k.startswith("lines")}
    assert counters == {"lines": 10, "lines_kept": 3, "lines_dropped:no_terminal_punctuation": 3,
                        "lines_dropped:too_few_words": 1, "lines_dropped:javascript": 1,
                        "lines_dropped:policy": 1, "lines_dropped:too_long_word": 1}
    assert stage.counters["chars_removed"] == len(text) - len(texts[0])


def test_min_num_sentences_threshold():
    four = "One sentence here. Two sentence here. Three here. Four here."
    texts, why, _ = run([FIVE, four])
    assert why == [None, "c4_quality:sentences<5"]
    assert texts == [FIVE, four]  # a removed document keeps its text
    assert reasons([four], min_num_sentences=4) == [None]
    assert reasons(["No sentence at all"], min_num_sentences=-1) == [None]
    assert run(["No sentence at all"], min_num_sentences=-1)[0] == [""]


def test_min_words_per_line_threshold():
    three, two = "Three words here.", "Two words."
    assert run([f"{FIVE}\n{three}\n{two}"])[0] == [f"{FIVE}\n{three}"]
    assert run([f"{FIVE}\n{three}\n{two}"], min_words_per_line=2)[0] == [f"{FIVE}\n{three}\n{two}"]
    assert run([f"{FIVE}\n{three}"], min_words_per_line=4)[0] == [FIVE]


def test_max_word_length_threshold():
    at, above = "y" * 1000 + " is long but allowed.", "y" * 1001 + " is one too long."
    assert run([f"{FIVE}\n{at}\n{above}"])[0] == [f"{FIVE}\n{at}"]
    assert run([f"{FIVE}\n{above}"], max_word_length=-1)[0] == [f"{FIVE}\n{above}"]


def test_terminal_punctuation():
    lines = ["It ends with a period.", "Does it end with a question?", "It ends with a bang!",
             'It ends with "a quote"', "It ends with 'a quote'", "It has no end", "It trails off...",
             "It ends with a colon:", "It ends in a parenthesis (see.)"]
    kept = run(["\n".join([FIVE] + lines)])[0][0].split("\n")[1:]
    assert kept == lines[:5]
    assert run([f"{FIVE}\nIt has no end"], filter_no_terminal_punct=False)[0] == [f"{FIVE}\nIt has no end"]
    assert run([f"{FIVE}\nIt ends with a colon:"], terminal_punctuation=[":"], min_num_sentences=-1)[0] == ["It ends with a colon:"]


def test_lorem_ipsum_and_curly_bracket_remove_the_document():
    assert reasons([f"{FIVE}\nLorem ipsum dolor sit amet.", f"{FIVE}\nThe code is {{ here }}."]) == [
        "c4_quality:lorem_ipsum", "c4_quality:curly_bracket"]
    # as in datatrove, only lines that survived the line rules before it are looked at
    assert reasons([f"{FIVE}\nLorem ipsum dolor sit amet", f"{FIVE}\n{{ x }}", f"{FIVE}\nLorem ipsum."]) == [None] * 3
    assert reasons([f"{FIVE}\nLorem ipsum dolor sit amet."], filter_lorem_ipsum=False) == [None]
    assert reasons([f"{FIVE}\nThe code is {{ here }}."], filter_curly_bracket=False) == [None]
    # a javascript line is removed before the bracket rule sees it
    assert reasons([f"{FIVE}\nThe javascript code is {{ here }}."]) == [None]


def test_javascript_policy_and_citation_options():
    js, policy = "Please enable javascript now.", "This site uses cookies today."
    assert run([f"{FIVE}\n{js}\n{policy}"], filter_javascript=False, filter_policy=False)[0] == [f"{FIVE}\n{js}\n{policy}"]
    assert run([f"{FIVE}\nOur own banned phrase here."], policy_substrings=["BANNED phrase"])[0] == [FIVE]
    assert run([f"{FIVE}\nCited here.[12]"], remove_citations=False)[0] == [FIVE]  # ends in ]
    assert run([f"{FIVE}\nCited here now.[12]"])[0] == [f"{FIVE}\nCited here now."]


@pytest.mark.parametrize("line, count", [
    ("", 0), ("No punctuation", 1), ("Hello world.", 1), ("Hello. World.", 2), ("Is it?! Yes.", 2),
    ("Mr. Smith went home. He left.", 2), ("e.g. this one. And more.", 2), ("Wait... what is it?", 1),
    ('He said "hi." Then left.', 2), ("end.The next one.", 2), ("1. Introduction here.", 2),
    ("Price is 3.5 USD. OK.", 2), ("Lives in the U.S. now.", 1), ("Die z.B. lange Liste.", 1),
    ("Hello. | World.", 2), ("Dans la nuit. 中文。", 2), ("Michael Shadlen, Ph.D.", 1),
])
def test_count_sentences_as_spacy_does(line, count):
    assert count_sentences(line) == count


def test_bad_input_and_histograms():
    stage = C4Quality()
    texts = ["", None, "x" * 5_000_000, ("word " * 300_000).strip() + ".", "!?.\n...\n!!! ???",
             "Englisch und 中文 und русский текст. عربى. " * 3, "Dans la nuit. " * 10]
    start = time.perf_counter()
    out = stage.process(pa.table({"text": texts}))
    assert time.perf_counter() - start < 10
    why = out.column("drop_reason").to_pylist()
    assert why == ["c4_quality:sentences<5"] * 5 + [None, None]
    assert out.column("text").to_pylist()[1] is None
    assert {"sentences", "lines_kept_ratio"} <= set(stage.histograms)
    assert sum(stage.histograms["sentences"]["counts"]) == len(texts)
    assert stage.clean("Bad \ud800 surrogate here. " * 5)[1] is None
    broken = pa.array([b"a \xed\xa0\x80 b."], pa.binary()).view(pa.string())
    assert C4Quality().process(pa.table({"text": broken})).to_pylist() == [
        {"text": "a \ufffd\ufffd\ufffd b.", "drop_reason": "c4_quality:sentences<5", "drop_detail": "sentences=1 < 5"}]


@pytest.mark.shared
def test_agrees_with_datatrove(extracted_pages, compare_with_datatrove):
    from datatrove.pipeline.filters.c4_filters import C4QualityFilter

    texts = [t or "" for t in extracted_pages.column("text").to_pylist()]
    out, theirs, documents, rate = compare_with_datatrove("c4_quality", C4Quality(), C4QualityFilter(), texts)
    ours, edited = out.column("drop_reason").to_pylist(), out.column("text").to_pylist()
    other_text = [i for i in range(len(texts)) if ours[i] is None and theirs[i] is True and edited[i] != documents[i].text]
    print(f"{len(other_text)} kept with other text than datatrove's")
    assert rate >= 0.99
    assert len(other_text) <= 0.01 * len(texts)
    for i, why in enumerate(ours):  # reasons name the same rule
        if why and theirs[i] is not True:
            assert why.split(":")[1].split("<")[0] in {"sentences" if theirs[i][1] == "too_few_sentences" else theirs[i][1]}



def test_languages_without_rules_pass_and_are_counted():
    japanese = "博物館では古い写真の展示が始まりました。市議会は図書館の開館時間を延長しました。"
    stage = C4Quality()
    out = stage.process(pa.table({"text": [japanese, japanese], "language": ["ja", "en"]}))
    assert out.column("drop_reason").to_pylist() == [None, "c4_quality:sentences<5"]
    assert out.column("text").to_pylist()[0] == japanese
    assert stage.counters["passed:no_rules_for:ja"] == 1


def test_drop_detail_names_the_sentences_or_the_line():
    four = "One sentence here. Two sentence here. Three here. Four here."
    long_line = "Some words come first. " * 10 + "Then the code {{ x: 1 }} closes it."
    out = C4Quality().process(pa.table({"text": [FIVE, four, f"{FIVE}\nLorem ipsum dolor sit amet.", f"{FIVE}\n{long_line}"]}))
    details = out.column("drop_detail").to_pylist()
    assert details[:3] == [None, "sentences=4 < 5", "line: 'Lorem ipsum dolor sit amet.'"]
    # a long line is cut around what the rule found, so the bracket stays in view
    assert details[3].startswith("line: '…") and "{ x: 1 }" in details[3] and len(details[3]) < 100
