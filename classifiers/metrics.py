"""How good a binary classifier is on held-out examples: ROC AUC, precision, recall and F1 at a
threshold, the threshold with the best F1, and a threshold curve to choose another."""
from __future__ import annotations

import numpy as np

CURVE = [round(0.05 * i, 2) for i in range(1, 20)]  # 0.05 ... 0.95


def at_threshold(positive: np.ndarray, scores: np.ndarray, threshold: float) -> dict[str, float]:
    """Precision, recall, F1 and the share of examples called positive, when `score >= threshold`
    calls an example positive."""
    from sklearn.metrics import precision_recall_fscore_support

    called = scores >= threshold
    precision, recall, f1, _ = precision_recall_fscore_support(positive, called, average="binary", zero_division=0)
    return {"threshold": threshold, "precision": round(float(precision), 4), "recall": round(float(recall), 4),
            "f1": round(float(f1), 4), "positive_rate": round(float(called.mean()) if len(called) else 0.0, 4)}


def report(positive: np.ndarray, scores: np.ndarray) -> dict:
    """Everything above for examples labelled `positive` (bool) with `scores` (the probability of
    the positive label). AUC is None when the examples hold only one class."""
    from sklearn.metrics import precision_recall_curve, roc_auc_score

    positive, scores = np.asarray(positive, bool), np.asarray(scores, float)
    result = {"examples": int(len(positive)), "positives": int(positive.sum()), "roc_auc": None,
              "at_0.5": at_threshold(positive, scores, 0.5), "best_f1": None,
              "curve": [at_threshold(positive, scores, t) for t in CURVE]}
    if 0 < positive.sum() < len(positive):
        result["roc_auc"] = round(float(roc_auc_score(positive, scores)), 4)
        precision, recall, thresholds = precision_recall_curve(positive, scores)
        f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-12)
        best = int(np.argmax(f1[:-1]))  # the last point has no threshold
        result["best_f1"] = at_threshold(positive, scores, float(thresholds[best]))
    return result


def describe(result: dict) -> str:
    """The report as a few readable lines."""
    auc = "n/a (one class only)" if result["roc_auc"] is None else f"{result['roc_auc']:.4f}"
    lines = [f"examples: {result['examples']} ({result['positives']} positive)   ROC AUC: {auc}"]
    for name in ("at_0.5", "best_f1"):
        point = result[name]
        if point:
            lines.append(f"{'best F1' if name == 'best_f1' else 'at 0.5'}: threshold {point['threshold']:.3f}  "
                         f"precision {point['precision']:.3f}  recall {point['recall']:.3f}  f1 {point['f1']:.3f}")
    lines.append("threshold  precision  recall  f1     called positive")
    lines += [f"{p['threshold']:<9.2f}  {p['precision']:<9.3f}  {p['recall']:<6.3f}  {p['f1']:<5.3f}  {p['positive_rate']:.1%}"
              for p in result["curve"]]
    return "\n".join(lines)
