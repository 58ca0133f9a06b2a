"""`quality_classifier`: adds `quality_score`, the probability that a document is of the quality
its classifier was trained to find (e.g. reference text rather than a random crawl page, as in
DCLM and FineWeb-Edu), and removes documents scoring below `min_score`
(`quality_classifier:score<0.5`), unless `action: annotate`. See stages/_scoring.py for the model,
the label and paragraph scoring."""
from __future__ import annotations

import numpy as np
from pydantic import Field

from crawl2model.stages._filter import fmt
from crawl2model.stages._scoring import ScoreConfig, ScoreStage


class QualityClassifierConfig(ScoreConfig):
    min_score: float = Field(0.5, ge=0.0, le=1.0)


class QualityClassifier(ScoreStage):
    type_name = "quality_classifier"
    Config = QualityClassifierConfig
    provides = ("quality_score",)
    score_column = "quality_score"

    def rejects(self, scores: np.ndarray) -> tuple[np.ndarray, str]:
        return scores < self.config.min_score, f"score<{fmt(self.config.min_score)}"
