"""The generated demonstration data (pipeline/sample_data.py): seeded, and of the shapes the
classifier, SFT and DPO readers take."""
from __future__ import annotations

import pytest
from pydantic import ValidationError

from crawl2model.classifiers.data import ExampleSource, read_source
from crawl2model.pipeline.sample_data import conversations, preference_pairs, texts
from crawl2model.stages.dpo import DPOStageConfig
from crawl2model.stages.sft import SFTConfig


@pytest.mark.parametrize("kind", ["reference", "toxic", "polite"])
def test_texts_are_seeded(kind):
    assert texts(kind, 20, seed=1) == texts(kind, 20, seed=1) != texts(kind, 20, seed=2)
    assert len(set(texts(kind, 50, seed=1))) > 25  # varied, not one text repeated


def test_pairs_prefer_the_helpful_answer_and_conversations_alternate_roles():
    for pair in preference_pairs(50, seed=3):
        assert set(pair) == {"prompt", "chosen", "rejected"} and pair["chosen"] != pair["rejected"]
    for row in conversations(20, seed=3):
        assert [m["role"] for m in row["messages"]] == ["user", "assistant"]


def test_a_sample_source_gives_labelled_examples():
    table = read_source(ExampleSource(sample="toxic", label="toxic", max_documents=30), seed=0)
    assert table.num_rows == 30 and set(table.column("label").to_pylist()) == {"toxic"}


@pytest.mark.parametrize("options, message", [
    ({"sample": "toxic"}, "set `label`"),
    ({"sample": "toxic", "label": "x", "input": True}, "give one of"),
    ({"sample": "rude", "label": "x"}, "reference"),
])
def test_a_sample_source_is_checked(options, message):
    with pytest.raises(ValidationError, match=message):
        ExampleSource(**options)


@pytest.mark.parametrize("config", [SFTConfig, DPOStageConfig])
def test_alignment_stages_take_data_or_sample(config):
    steps = {"steps": 5}
    assert config(sample=10, **steps).sample == 10 and config(data=["pairs.jsonl"], **steps).data == ["pairs.jsonl"]
    for options in ({}, {"sample": 10, "data": ["pairs.jsonl"]}):
        with pytest.raises(ValidationError, match="give `data`"):
            config(**options, **steps)
