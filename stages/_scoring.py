"""What `quality_classifier` and `toxicity_classifier` share: score every document with a fastText
classifier, then keep, drop or only annotate.

The model is a file (`model:`, e.g. from `pipeline classifiers train`) or the one a
`train_classifier` stage before this one makes (`trained_by:`, by default the nearest such stage
upstream). The score is the probability of one label (`label:`, by default the positive label the
model was trained with), over the whole document or per paragraph (non-blank line) with an
aggregate. A document with nothing to read (empty, whitespace, punctuation only) gets a null score
and, when filtering, the reason `<type>:empty`. A document removed by its score says so in
`drop_detail`: `quality_score=0.312 < 0.5`. The model is loaded once per worker.
"""
from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field, model_validator

from crawl2model.classifiers.fasttext_file import check_model_file
from crawl2model.classifiers.model import Classifier, read_metadata
from crawl2model.classifiers.text import paragraphs
from crawl2model.pipeline import storage
from crawl2model.pipeline.stage import DROP_DETAIL, DROP_REASON, Stage, StageConfig
from crawl2model.stages._filter import RATIO_EDGES, detail, split_rule, valid_text

Aggregate = Literal["mean", "max", "min", "length_weighted"]


class ScoreConfig(StageConfig):
    model: str | None = None  # a fastText model file; null: the model of `trained_by`
    trained_by: str | None = None  # a train_classifier stage upstream (default: the nearest one)
    label: str | None = None  # the label whose probability is the score (default: the model's positive label)
    action: Literal["filter", "annotate"] = "filter"  # annotate: add the score, remove nothing
    granularity: Literal["document", "paragraph"] = "document"
    aggregate: Aggregate = "length_weighted"  # of paragraph scores: length_weighted by characters
    max_chars: int = Field(100_000, ge=1)  # characters of a document (or paragraph) the model reads

    @model_validator(mode="after")
    def _model_file(self) -> ScoreConfig:
        """A model from a file is checked now, before any work; one trained in the run (bound by
        `bind`, with `trained_by` set) does not exist yet."""
        if self.model is None or self.trained_by is not None:
            return self
        if "://" not in self.model:
            self.model = str(Path(self.model).expanduser().absolute())  # workers may start elsewhere
        labels = check_model_file(storage.local_copy(self.model))
        label = self.label or read_metadata(self.model).get("positive") or (labels[0] if len(labels) == 1 else None)
        if label is None:
            raise ValueError(f"set `label` to the label to score, one of the model's labels {labels}")
        if label not in labels:
            raise ValueError(f"label {label!r} is not one of the model's labels {labels}")
        self.label = label
        return self


class ScoreStage(Stage):
    """Subclasses name their column and say which scores they reject (`rejects`)."""

    Config: ClassVar[type[ScoreConfig]] = ScoreConfig
    requires = ("text",)
    packages = ("fasttext-modern",)
    score_column: ClassVar[str] = ""
    batch_size = 1024

    def rejects(self, scores: np.ndarray) -> tuple[np.ndarray, str]:
        """Which scores (none NaN) remove their document, and the rule, as `score<0.5`."""
        raise NotImplementedError

    @classmethod
    def bind(cls, config: ScoreConfig, upstream) -> ScoreConfig:
        from crawl2model.stages.train_classifier import TrainClassifier

        if config.model is not None:
            if config.trained_by is not None:
                raise ValueError("give `model` (a file) or `trained_by` (a train_classifier stage), not both")
            return config
        trainers = [node for node in upstream if issubclass(node.cls, TrainClassifier)]
        if config.trained_by is not None:
            trainers = [node for node in trainers if node.name == config.trained_by]
            if not trainers:
                raise ValueError(f"trained_by: '{config.trained_by}' is not a train_classifier stage this one "
                                 "reads from (directly or through the stages in `after:`)")
        if not trainers:
            raise ValueError("no model: set `model:` to a fastText model file, or put a train_classifier "
                             "stage before this one")
        found = trainers[0]
        return config.model_copy(update={"model": TrainClassifier.model_path(found.config, found.artifact_dir),
                                         "trained_by": found.name, "label": config.label or found.config.positive})

    @classmethod
    def data_files(cls, config: ScoreConfig) -> list[str]:
        """A model file from outside the run: replacing it re-runs the stage. One trained in the run
        is covered by the train stage's fingerprint, which is upstream of this one."""
        return [config.model] if config.model and config.trained_by is None else []

    def setup(self) -> None:
        self.classifier = Classifier.load(self.config.model, self.config.label, self.config.max_chars)

    def process(self, batch: pa.Table) -> pa.Table:
        batch = valid_text(batch)
        scores = self.score(batch.column("text").combine_chunks())
        empty = np.isnan(scores)
        self.counters["scored"] += int((~empty).sum())
        self.counters["empty"] += int(empty.sum())
        self.observe(self.score_column, scores[~empty], RATIO_EDGES)
        column = pa.array(scores, pa.float64(), mask=empty)
        if self.score_column in batch.column_names:  # scored twice (two quality stages): the later one wins
            batch = batch.drop_columns([self.score_column])
        batch = batch.append_column(self.score_column, column)
        if self.config.action == "annotate":
            return batch
        rejected, rule = self.rejects(np.where(empty, 0.5, scores))
        reasons = np.where(empty, f"{self.type_name}:empty", np.where(rejected, f"{self.type_name}:{rule}", None))
        self.counters[f"rule:{rule}"] += int((rejected & ~empty).sum())
        return (batch.append_column(DROP_REASON, pa.array(reasons.tolist(), pa.string()))
                .append_column(DROP_DETAIL, pa.array(self.details(scores, rejected & ~empty, rule), pa.string())))

    def details(self, scores: np.ndarray, rejected: np.ndarray, rule: str) -> list[str | None]:
        """drop_detail of each document: its score against the threshold where the score removed
        it (`quality_score=0.312 < 0.5`), else None; built for those rows only."""
        found = [None] * len(scores)
        parts = split_rule(rule)
        if parts is None:  # a subclass's rule that names no threshold
            return found
        _, op, threshold = parts
        for i in np.flatnonzero(rejected).tolist():
            found[i] = detail(self.score_column, float(scores[i]), op, threshold)
        return found

    def score(self, texts: pa.Array) -> np.ndarray:
        """One score per document: of its whole text, or its paragraphs' scores aggregated."""
        if self.config.granularity == "document":
            return self.classifier.score(texts)
        lines, owner = paragraphs(texts)
        scores = self.classifier.score(lines)
        keep = ~np.isnan(scores)
        owner, scores = owner[keep], scores[keep]
        weights = pc.utf8_length(lines).to_numpy(zero_copy_only=False)[keep].astype(float)
        return aggregate(self.config.aggregate, owner, scores, weights, len(texts))


def aggregate(how: Aggregate, owner: np.ndarray, scores: np.ndarray, weights: np.ndarray, size: int) -> np.ndarray:
    """Per document, the `how` of the scores of its paragraphs (`owner` is each one's document);
    NaN for a document without any."""
    counted = np.bincount(owner, minlength=size) > 0
    if how in ("max", "min"):
        result = np.full(size, -np.inf if how == "max" else np.inf)
        (np.maximum if how == "max" else np.minimum).at(result, owner, scores)
    else:
        weights = weights if how == "length_weighted" else np.ones_like(scores)
        total = np.bincount(owner, weights=weights, minlength=size)
        result = np.bincount(owner, weights=weights * scores, minlength=size) / np.where(total > 0, total, 1)
    return np.where(counted, result, np.nan)
