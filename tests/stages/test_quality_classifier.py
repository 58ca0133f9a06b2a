"""quality_classifier, and what it shares with toxicity_classifier (stages/_scoring.py): scores,
thresholds, annotate, paragraphs, bad input, and the model checked before any work."""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from pydantic import ValidationError

from crawl2model.stages._scoring import aggregate
from crawl2model.stages.quality_classifier import QualityClassifier, QualityClassifierConfig


def stage(model: str, **options) -> QualityClassifier:
    quality = QualityClassifier(QualityClassifierConfig(model=model, **options))
    quality.setup()
    return quality


def test_scores_and_removes_below_min_score(hq_model, labelled_texts):
    rows = labelled_texts(200, seed=7)
    out = stage(hq_model, min_score=0.5).process(pa.table({"text": [r["text"] for r in rows]}))
    scores = np.array(out.column("quality_score").to_pylist())
    truth = np.array([r["label"] == "hq" for r in rows])
    assert scores[truth].mean() > 0.7 and scores[~truth].mean() < 0.3
    reasons = out.column("drop_reason").to_pylist()
    assert all((reason == "quality_classifier:score<0.5") == (score < 0.5) for reason, score in zip(reasons, scores))


def test_annotate_keeps_everything(hq_model, labelled_texts):
    texts = [r["text"] for r in labelled_texts(20)]
    out = stage(hq_model, action="annotate").process(pa.table({"text": texts}))
    assert "drop_reason" not in out.column_names and out.column("quality_score").null_count == 0


def test_empty_and_invalid_utf8_documents(hq_model):
    bad = pa.array([b"caf\xe9 au lait", b"", None, b"  \n ", b"..."], pa.binary()).cast(pa.string(), safe=False)
    out = stage(hq_model).process(pa.table({"text": bad}))
    assert out.column("quality_score").to_pylist()[0] is not None  # read with U+FFFD, scored
    assert out.column("quality_score").to_pylist()[1:4] == [None, None, None]
    assert out.column("drop_reason").to_pylist()[1:4] == ["quality_classifier:empty"] * 3


def test_a_huge_document_is_read_only_up_to_max_chars(hq_model, labelled_texts):
    text = labelled_texts(1)[0]["text"]
    huge = text + " " + "filler " * 3_000_000  # ~21 MB
    scores = stage(hq_model, max_chars=len(text)).process(pa.table({"text": [text, huge]})).column("quality_score")
    assert scores[0].as_py() == pytest.approx(scores[1].as_py())


def test_paragraph_scores_and_their_aggregates(hq_model, labelled_texts):
    rows = labelled_texts(4, seed=3)  # hq, lq, hq, lq
    mixed = f"{rows[0]['text']}\n\n{rows[1]['text']}"
    texts = pa.table({"text": [mixed, rows[2]["text"], "\n\n"]})
    document = stage(hq_model, action="annotate").classifier.score([rows[0]["text"], rows[1]["text"]])
    results = {how: stage(hq_model, action="annotate", granularity="paragraph", aggregate=how).process(texts)
               .column("quality_score").to_pylist() for how in ("max", "min", "mean", "length_weighted")}
    assert results["max"][0] == pytest.approx(document.max()) and results["min"][0] == pytest.approx(document.min())
    assert results["mean"][0] == pytest.approx(document.mean())
    assert all(result[2] is None for result in results.values())


def test_aggregate_by_hand():
    owner, scores, weights = np.array([0, 0, 2]), np.array([0.2, 0.8, 0.5]), np.array([1.0, 3.0, 2.0])
    assert aggregate("length_weighted", owner, scores, weights, 3)[0] == pytest.approx(0.65)
    assert aggregate("mean", owner, scores, weights, 3)[0] == pytest.approx(0.5)
    assert np.isnan(aggregate("max", owner, scores, weights, 3)[1])


def test_model_problems_are_config_errors(hq_model, tmp_path):
    with pytest.raises(ValidationError, match="model file not found"):
        QualityClassifierConfig(model=str(tmp_path / "missing.bin"))
    cut = tmp_path / "cut.bin"
    cut.write_bytes(open(hq_model, "rb").read()[:1000])
    with pytest.raises(ValidationError, match="truncated or corrupt"):
        QualityClassifierConfig(model=str(cut))
    with pytest.raises(ValidationError, match=r"label 'spam' is not one of the model's labels"):
        QualityClassifierConfig(model=hq_model, label="spam")
    assert QualityClassifierConfig(model=hq_model).label == "hq"  # from model.json
    assert QualityClassifierConfig(model=hq_model, label="lq").label == "lq"


def test_drop_detail_names_the_score_and_the_threshold(hq_model, labelled_texts):
    rows = labelled_texts(40, seed=7)
    out = stage(hq_model, min_score=0.5).process(pa.table({"text": [r["text"] for r in rows] + [""]}))
    scores, details = out.column("quality_score").to_pylist(), out.column("drop_detail").to_pylist()
    assert details[-1] is None  # empty: no score to show
    for score, detail in zip(scores[:-1], details):
        assert detail == (f"quality_score={score:.3g} < 0.5" if score < 0.5 else None)
    assert any(details)
