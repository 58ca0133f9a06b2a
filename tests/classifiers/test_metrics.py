"""The evaluation report against values worked out by hand."""
from __future__ import annotations

import numpy as np

from crawl2model.classifiers.metrics import at_threshold, describe, report


def test_values_at_a_threshold():
    positive = np.array([True, True, True, False, False])
    scores = np.array([0.9, 0.6, 0.2, 0.7, 0.1])
    point = at_threshold(positive, scores, 0.5)  # called positive: 0.9, 0.6 (right) and 0.7 (wrong)
    assert point == {"threshold": 0.5, "precision": round(2 / 3, 4), "recall": round(2 / 3, 4),
                     "f1": round(2 / 3, 4), "positive_rate": 0.6}


def test_auc_counts_correctly_ordered_pairs():
    positive = np.array([True, True, True, False, False])
    scores = np.array([0.9, 0.6, 0.2, 0.7, 0.1])
    # 6 (positive, negative) pairs; the positive scores higher in 4: 0.9>0.7, 0.9>0.1, 0.6>0.1, 0.2>0.1
    result = report(positive, scores)
    assert result["roc_auc"] == round(4 / 6, 4)
    # best F1 at 0.2: all three positives and the 0.7 negative called positive, P 3/4, R 1, F1 6/7
    assert result["best_f1"]["threshold"] == 0.2 and result["best_f1"]["f1"] == round(6 / 7, 4)
    assert len(result["curve"]) == 19 and result["curve"][0]["threshold"] == 0.05
    assert "ROC AUC: 0.6667" in describe(result)


def test_one_class_has_no_auc():
    result = report(np.array([True, True]), np.array([0.2, 0.9]))
    assert result["roc_auc"] is None and result["best_f1"] is None
    assert "n/a" in describe(result)
