"""Training a fastText classifier from labelled examples, with a held-out evaluation.

The split is seeded and by content: an example goes to validation when a keyed hash of its
preprocessed text falls below `val_fraction`, so identical texts land on the same side and the
split does not depend on the order of files. Training examples are ordered by that hash too (a
seeded shuffle). With `threads: 1` (the default) the same examples, settings and seed give the
same model file, byte for byte: fastText trains in a fresh process (see `_in_fresh_process`).
"""
from __future__ import annotations

import hashlib
import os
import tempfile
import time
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from crawl2model.classifiers import metrics
from crawl2model.classifiers.data import EXAMPLES, ExampleSource, read_source
from crawl2model.classifiers.fasttext_file import load_model
from crawl2model.classifiers.model import Classifier, metadata_path
from crawl2model.classifiers.text import VERSION, preprocess
from crawl2model.pipeline import storage
from crawl2model.pipeline.sampling import seeded_order

FORMAT = "crawl2model-classifier/1"


class FastTextSettings(BaseModel):
    """fastText's supervised hyper-parameters (its own defaults, except where noted) and the split."""

    model_config = ConfigDict(extra="forbid")
    positive: str  # the label whose probability is the score (e.g. hq, toxic)
    val_fraction: float = Field(0.1, ge=0.0, lt=1.0)  # held out for the evaluation report
    seed: int | None = None  # of the split, the order and fastText; in a run, unset means the run's seed
    epochs: int = Field(5, ge=1)
    lr: float = Field(0.1, gt=0.0)
    word_ngrams: int = Field(2, ge=1)  # fastText's default is 1; word pairs help classification
    dim: int = Field(64, ge=16)  # fastText's default is 100; below 16, training gave NaN now and then
    min_count: int = Field(1, ge=1)
    minn: int = Field(0, ge=0)  # character n-grams from minn to maxn letters (0: none); they help with misspellings
    maxn: int = Field(0, ge=0)
    buckets: int = Field(200_000, ge=1)  # hashed n-gram rows (fastText: 2M; 2M x dim floats is 0.5 GB at dim 64)
    loss: Literal["softmax", "ova", "hs", "ns"] = "softmax"
    quantize: bool = False  # a compressed .ftz (smaller, slightly less accurate)
    threads: int = Field(1, ge=1)  # more train faster, but fastText's threads race: not reproducible
    max_chars: int = Field(100_000, ge=1)  # characters of each example read

    @model_validator(mode="after")
    def _ngram_range(self) -> FastTextSettings:
        if self.maxn < self.minn:
            raise ValueError(f"maxn ({self.maxn}) must be at least minn ({self.minn})")
        return self


class TrainingConfig(FastTextSettings):
    """The settings and where the labelled examples come from (classifiers/data.py)."""

    sources: list[ExampleSource] = Field(min_length=1)

    @field_validator("sources")
    @classmethod
    def _sources_readable(cls, sources: list[ExampleSource]) -> list[ExampleSource]:
        problems = []
        for i, source in enumerate(sources):
            try:
                source.check()
            except ValueError as error:
                problems.append(f"sources[{i}]: {error}")
        if problems:
            raise ValueError("; ".join(problems))
        return sources


class TrainingJob(TrainingConfig):
    """`pipeline classifiers train CONFIG`: a classifier trained outside a run, from files."""

    output: str  # the model file to write (.bin, or .ftz with quantize); model.json goes beside it

    @field_validator("sources")
    @classmethod
    def _files_only(cls, sources: list[ExampleSource]) -> list[ExampleSource]:
        if any(source.input for source in sources):
            raise ValueError("`input: true` takes the documents of a run; outside a run give `files`")
        return sources


def load_job(path: str) -> TrainingJob:
    """Read and check a training config; raises pipeline.config.ConfigError listing the problems."""
    import yaml
    from pydantic import ValidationError

    from crawl2model.pipeline.config import ConfigError, describe_errors

    try:
        raw = yaml.safe_load(open(path, encoding="utf-8"))
        return TrainingJob.model_validate(raw if raw is not None else {})
    except FileNotFoundError:
        raise ConfigError(path, ["config file not found"]) from None
    except yaml.YAMLError as error:
        raise ConfigError(path, [f"not valid YAML ({error})"]) from None
    except ValidationError as error:
        raise ConfigError(path, describe_errors(error, TrainingJob)) from None


def file_examples(config: TrainingConfig) -> pa.Table:
    """The examples of every file source, in the order of `sources`; each source samples with
    its own seed (seed + its position)."""
    tables = [read_source(source, (config.seed or 0) + i) for i, source in enumerate(config.sources) if not source.input]
    return pa.concat_tables(tables) if tables else EXAMPLES.empty_table()


def train(examples: pa.Table, settings: FastTextSettings, model_path: str, extra: dict | None = None) -> dict:
    """Train on `examples` (columns text, label), evaluate on the held-out split, and write the
    model to `model_path` and its metadata beside it; returns the metadata."""
    started = time.time()
    lines, held_out, counts = _split(examples, settings)
    train_lines = [line for line, out in zip(lines, held_out) if not out]
    if not train_lines:
        raise ValueError("no example left for training after the validation split; lower val_fraction")
    with tempfile.TemporaryDirectory() as tmp:
        train_file, local = os.path.join(tmp, "train.txt"), os.path.join(tmp, "model")
        with open(train_file, "w", encoding="utf-8") as handle:
            handle.writelines(train_lines)
        _in_fresh_process(_fit, train_file, local, settings.model_dump(), settings.seed or 0)
        model = load_model(local)
        with open(local, "rb") as handle:
            info = storage.write_file(model_path, handle.read(), 0)
    held = [line for line, out in zip(lines, held_out) if out]
    scores = Classifier(model_path, settings.positive, settings.max_chars, model).score_prepared(
        [line.split(" ", 1)[1].rstrip("\n") for line in held])
    truth = [line.startswith(f"__label__{settings.positive} ") for line in held]
    metadata = {
        "format": FORMAT, "model": os.path.basename(model_path), "sha256": info.sha256, "bytes": info.bytes,
        "labels": sorted(counts), "positive": settings.positive,
        "preprocessing": {"version": VERSION, "max_chars": settings.max_chars},
        "settings": settings.model_dump(mode="json"),
        "data": {"sha256": hashlib.sha256("".join(lines).encode()).hexdigest(), "examples": counts,
                 "train": len(train_lines), "validation": len(held), "skipped_empty": examples.num_rows - len(lines)},
        "metrics": metrics.report(truth, scores) if held else None,
        "fasttext": _version("fasttext-modern"), "train_seconds": round(time.time() - started, 3), **(extra or {}),
    }
    storage.write_json(metadata_path(model_path), metadata, sort_keys=False)
    return metadata


def _split(examples: pa.Table, settings: FastTextSettings) -> tuple[list[str], np.ndarray, dict[str, int]]:
    """The examples as fastText lines (`__label__x text`) in seeded order, which of them are held
    out, and the count of each label; texts empty after preprocessing are left out."""
    texts = preprocess(examples.column("text"), settings.max_chars)
    present = pc.greater(pc.utf8_length(texts.fill_null("")), 0)
    texts, labels = texts.filter(present), examples.column("label").combine_chunks().filter(present)
    counts = {str(k): int(v) for k, v in zip(*np.unique(labels.to_numpy(zero_copy_only=False), return_counts=True))}
    if settings.positive not in counts or len(counts) < 2:
        raise ValueError(f"training needs examples of the positive label {settings.positive!r} and of at least one "
                         f"other label; the sources gave {counts or 'no examples'}")
    order, keys = seeded_order(texts, settings.seed or 0)
    lines = [f"__label__{label} {text}\n" for label, text in zip(labels.take(order).to_pylist(),
                                                                 texts.take(order).to_pylist())]
    return lines, keys[order] < np.uint64(settings.val_fraction * 2**64), counts


def _fit(train_file: str, model_file: str, settings: dict, seed: int) -> None:
    """fastText training, run in a fresh process (see `_in_fresh_process`)."""
    import fasttext

    _fresh_pages()
    model = fasttext.train_supervised(
        input=train_file, epoch=settings["epochs"], lr=settings["lr"], wordNgrams=settings["word_ngrams"],
        dim=settings["dim"], minCount=settings["min_count"], minn=settings["minn"], maxn=settings["maxn"],
        bucket=settings["buckets"], loss=settings["loss"], thread=settings["threads"], seed=seed, verbose=0)
    if settings["quantize"]:
        model.quantize(input=train_file, qnorm=True, retrain=True, thread=settings["threads"], verbose=0)
    model.save_model(model_file)


def _in_fresh_process(function, *args) -> None:
    """Run `function(*args)` in a new Python process and wait for it.

    fastText 0.9.3 reads memory it never wrote while it trains: run twice in one process on the
    same examples with the same seed, it gave different models, or failed with "Encountered NaN"
    (small models most: dim 8-32 with a few thousand buckets, 3 runs of 4 differing). Each fresh
    process starts from the same state and gave the same model every time; the cost is a second
    or so of start-up per model."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    # an executor, not a Pool: if fastText kills its process, this raises instead of waiting forever
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        pool.submit(function, *args).result()


def _fresh_pages() -> None:
    """Serve this process's larger allocations from new pages, which the kernel zeroes: with one
    thread, fastText initialises only the first tenth of its input matrix and expects the rest to
    be zero, while this build leaves it as it finds it. glibc uses new pages above its mmap
    threshold; a fixed low threshold also stops glibc from raising it as memory is freed."""
    import ctypes
    import ctypes.util

    try:
        ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt(-3, 4096)  # M_MMAP_THRESHOLD
    except (OSError, AttributeError):  # not glibc
        pass


def _version(package: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return "?"
