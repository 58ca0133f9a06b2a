"""A trained classifier: a fastText model file and, beside it, its metadata (`model.json` for
`model.bin`: labels, the positive label, preprocessing, hyper-parameters, a fingerprint of the
training data and the held-out metrics). Models trained elsewhere load too, without metadata."""
from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from crawl2model.classifiers.fasttext_file import LABEL_PREFIX, check_model_file, load_model
from crawl2model.classifiers.text import preprocess
from crawl2model.pipeline import storage


def metadata_path(model_path: str) -> str:
    """model.json beside model.bin (or .ftz), for a local path or a URL alike."""
    return os.path.splitext(model_path)[0] + ".json"


def read_metadata(model_path: str) -> dict:
    """The metadata saved beside a model trained here; {} for a model from elsewhere."""
    return storage.read_json(metadata_path(model_path)) or {}


@dataclass
class Classifier:
    """Scores texts with a fastText model: the probability of one label (`label`, by default the
    positive label recorded at training)."""

    path: str
    label: str
    max_chars: int = 100_000
    model: object = field(default=None, repr=False)

    @classmethod
    def load(cls, path: str, label: str | None = None, max_chars: int = 100_000) -> Classifier:
        local = storage.local_copy(path)  # fastText reads local files only
        labels = check_model_file(local)
        label = label or read_metadata(path).get("positive") or (labels[0] if len(labels) == 1 else None)
        if label is None or label not in labels:
            wanted = f"label {label!r} is not one of" if label else "say which label to score; it has"
            raise ValueError(f"{path}: {wanted} the model's labels {labels}")
        return cls(path, label, max_chars, load_model(local))

    def score_prepared(self, texts: list[str]) -> np.ndarray:
        """The label's probability for texts already through `preprocess`; NaN for an empty one."""
        scores = np.full(len(texts), np.nan)
        index = [i for i, text in enumerate(texts) if text]
        if index:
            wanted = LABEL_PREFIX + self.label
            labels, probabilities = self.model.f.multilinePredict([texts[i] + "\n" for i in index], -1, 0.0, "replace")
            for i, names, values in zip(index, labels, probabilities):
                scores[i] = next((min(float(p), 1.0) for name, p in zip(names, values) if name == wanted), 0.0)
        return scores

    def score(self, texts: pa.Array | list[str]) -> np.ndarray:
        """The label's probability for each raw text (NaN where nothing is left to read)."""
        return self.score_prepared(preprocess(texts, self.max_chars).to_pylist())
