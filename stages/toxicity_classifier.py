"""`toxicity_classifier`: adds `toxicity_score`, the probability that a document is toxic (hate
speech, insults, obscenity: what its classifier was trained on), and removes documents scoring
above `max_score` (`toxicity_classifier:score>0.5`), unless `action: annotate`. Per paragraph,
the default aggregate is `max`: one toxic paragraph makes a toxic document. See
stages/_scoring.py for the model, the label and paragraph scoring."""
from __future__ import annotations

import numpy as np
from pydantic import Field

from crawl2model.stages._filter import fmt
from crawl2model.stages._scoring import Aggregate, ScoreConfig, ScoreStage


class ToxicityClassifierConfig(ScoreConfig):
    max_score: float = Field(0.5, ge=0.0, le=1.0)
    aggregate: Aggregate = "max"


class ToxicityClassifier(ScoreStage):
    type_name = "toxicity_classifier"
    Config = ToxicityClassifierConfig
    provides = ("toxicity_score",)
    score_column = "toxicity_score"

    def rejects(self, scores: np.ndarray) -> tuple[np.ndarray, str]:
        return scores > self.config.max_score, f"score>{fmt(self.config.max_score)}"
