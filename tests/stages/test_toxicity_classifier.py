"""toxicity_classifier: removes documents scoring above max_score; per paragraph, one toxic
paragraph is enough by default (the shared machinery is tested with quality_classifier)."""
from __future__ import annotations

import pyarrow as pa

from crawl2model.stages.toxicity_classifier import ToxicityClassifier, ToxicityClassifierConfig


def test_removes_above_max_score_and_one_bad_paragraph_suffices(hq_model, labelled_texts):
    rows = labelled_texts(4, seed=5)  # hq, lq, hq, lq: score "lq" as the toxic label
    texts = [rows[0]["text"], rows[1]["text"], f"{rows[2]['text']}\n{rows[3]['text']}"]
    by_document = ToxicityClassifier(ToxicityClassifierConfig(model=hq_model, label="lq"))
    out = by_document(pa.table({"text": texts}))  # set up on first use
    assert out.column("drop_reason").to_pylist()[:2] == [None, "toxicity_classifier:score>0.5"]
    by_paragraph = ToxicityClassifier(ToxicityClassifierConfig(model=hq_model, label="lq", granularity="paragraph"))
    assert by_paragraph.config.aggregate == "max"
    scores = by_paragraph(pa.table({"text": texts})).column("toxicity_score").to_pylist()
    assert scores[2] == max(by_document.classifier.score([rows[2]["text"], rows[3]["text"]]))


def test_drop_detail_names_the_score_and_the_threshold(hq_model, labelled_texts):
    rows = labelled_texts(4, seed=5)
    out = ToxicityClassifier(ToxicityClassifierConfig(model=hq_model, label="lq"))(pa.table({"text": [rows[0]["text"], rows[1]["text"]]}))
    score = out.column("toxicity_score").to_pylist()[1]
    assert out.column("drop_detail").to_pylist() == [None, f"toxicity_score={score:.3g} > 0.5"]
