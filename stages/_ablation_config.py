"""The `ablation` stage's options (stages/ablation.py): its arms, token budget, seeds, reference
sets and tasks, and the training settings every arm shares, `pretrain`'s (train/loop.py
TrainConfig) with a **preset** for their defaults:

- `cpu` (the default): a 64-wide, 2-layer model (about 0.6M parameters with a 4k vocabulary), 1M
  tokens per arm and seed: about a minute and a half per training on one core.
- `dclm-400m`: about DCLM's 400M-1x scale, ~0.4B parameters with a 50k vocabulary, 8.2B tokens;
- `fineweb-1.8b`: about FineWeb's ablation scale, ~1.8B parameters, 28B tokens.

The GPU presets' costs are in docs/ablation.md. An option set in the config wins over its preset's
value (`model:` is merged key by key).
"""
from __future__ import annotations

import glob
import os
import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from crawl2model.pipeline.stage import StageConfig
from crawl2model.train.loop import ModelSettings, TrainConfig

ARM_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")  # a folder name
TRAIN_FIELDS = tuple(name for name in TrainConfig.model_fields if name not in ("steps", "tokens", "seed"))
GPU = {"seq_len": 2048, "gpus": 1, "cpus": 8, "lr": 3e-3, "warmup_steps": 2000, "weight_decay": 0.033,
       "log_interval": 10, "eval_interval": 1000, "checkpoint_interval": 1000}
PRESETS = {
    "cpu": {},  # the defaults below
    "dclm-400m": {**GPU, "model": {"dim": 1024, "n_layers": 24, "n_heads": 16}, "batch_size": 16, "grad_accum": 32,
                  "budget": 8_200_000_000},  # 1M tokens a step
    "fineweb-1.8b": {**GPU, "model": {"dim": 2048, "n_layers": 24, "n_heads": 32, "hidden_dim": 8192},
                     "batch_size": 8, "grad_accum": 64, "lr": 6e-4, "budget": 28_000_000_000},
}


class AblationModel(ModelSettings):
    """The CPU preset's model."""

    dim: int = Field(64, ge=8)
    n_layers: int = Field(2, ge=1)
    n_heads: int = Field(4, ge=1)


class AblationConfig(StageConfig, TrainConfig):
    arms: dict[str, str]  # arm name -> the upstream stage whose kept documents it trains on
    preset: Literal["cpu", "dclm-400m", "fineweb-1.8b"] = "cpu"  # training defaults; GPU ones: docs/ablation.md
    budget: int = Field(1_000_000, ge=1)  # training tokens of every arm and seed (its data repeats when smaller)
    seeds: int = Field(1, ge=1)  # trainings per arm: seeds `seed`, `seed + 1`, ...
    seed: int | None = None  # of the first training, of the val split and of the cloze tasks; unset: the run's
    tokenizer: str | None = None  # a tokenizer.json; unset: the one the nearest train_tokenizer upstream makes
    trained_by: str | None = None  # that train_tokenizer stage (set when the config is loaded)
    val_fraction: float = Field(0.05, ge=0, lt=1)  # of each arm's documents, held out: its own val bits per byte
    reference: dict[str, list[str]]  # reference sets: {name: [files or globs]} or [files] (each a set, by file name)
    tasks: str | None = None  # multiple-choice tasks (JSONL: context, choices, answer); unset: cloze from `reference`
    cloze_tasks: int = Field(200, ge=1)  # how many cloze tasks to make, at most, when `tasks` is unset
    cloze_choices: int = Field(4, ge=2)
    cpus: int = Field(1, ge=1)  # per training (and scoring) task: Ray's CPUs for it, and torch's threads
    gpus: int = Field(0, ge=0, le=1)
    # TrainConfig's fields, with the CPU preset's defaults; its length is `budget`, not steps or tokens
    steps: None = Field(None, exclude=True)
    tokens: None = Field(None, exclude=True)
    model: AblationModel = AblationModel()
    seq_len: int = Field(128, ge=2)
    batch_size: int = Field(16, ge=1)
    lr: float = Field(3e-3, gt=0)
    warmup_steps: int = Field(20, ge=0)
    eval_interval: int = Field(100, ge=1)
    log_interval: int = Field(1, ge=1)  # every step's loss goes to ablation.json
    checkpoint_interval: int = Field(200, ge=1)

    @model_validator(mode="before")
    @classmethod
    def _preset(cls, values):
        if not isinstance(values, dict):
            return values
        if values.get("steps") is not None or values.get("tokens") is not None:
            raise ValueError("an ablation's length is `budget` (training tokens of every arm and seed), "
                             "not `steps` or `tokens`")
        preset = PRESETS.get(values.get("preset", "cpu"), {})
        merged = {**preset, **values}
        if "model" in preset and isinstance(values.get("model"), dict):
            merged["model"] = {**preset["model"], **values["model"]}
        return merged

    @field_validator("arms")
    @classmethod
    def _arms(cls, arms: dict[str, str]) -> dict[str, str]:
        if not arms:
            raise ValueError("name at least one arm: {arm name: the stage whose kept documents it trains on}")
        bad = [name for name in arms if not ARM_NAME.match(name)]
        if bad:
            raise ValueError(f"arm names are folder names (letters, digits, _ . -): {', '.join(map(repr, bad))}")
        return arms

    @field_validator("reference", mode="before")
    @classmethod
    def _named_sets(cls, value):
        """[files] (or one file): each file its own set, named by its file name; {name: file or [files]}."""
        if isinstance(value, str):
            value = [value]
        if isinstance(value, list):
            names = [reference_name(path) for path in value if isinstance(path, str)]
            if len(set(names)) != len(names):
                raise ValueError("two reference files have one name: give them as {name: [files]}")
            value = dict(zip(names, value)) if len(names) == len(value) else value
        if isinstance(value, dict):
            value = {name: [paths] if isinstance(paths, str) else paths for name, paths in value.items()}
        return value

    @field_validator("reference")
    @classmethod
    def _some_reference(cls, sets: dict[str, list[str]]) -> dict[str, list[str]]:
        if not sets or not all(sets.values()):
            raise ValueError("name at least one reference set (text, JSONL or Parquet files of clean text outside "
                             "every arm): an arm's own held-out text favours that arm, so it cannot compare them")
        return {name: [found for path in paths for found in expanded(absolute(path), f"set {name}")]
                for name, paths in sets.items()}

    @field_validator("tasks", "tokenizer")
    @classmethod
    def _absolute(cls, value: str | None) -> str | None:
        return None if value is None else absolute(value)

    @model_validator(mode="after")
    def _length(self) -> AblationConfig:  # replaces TrainConfig's (steps or tokens): the length is `budget`
        return self

    def train_config(self, index: int) -> TrainConfig:
        """The pretraining settings of the `index`-th seed (the same for every arm)."""
        return TrainConfig.model_validate({**self.model_dump(mode="json", include=set(TRAIN_FIELDS)),
                                           "tokens": self.budget, "seed": (self.seed or 0) + index})


def absolute(path: str) -> str:
    """Phase tasks run in another directory: a local path is made absolute when the config loads."""
    return path if "://" in path else os.path.abspath(path)


def expanded(path: str, where: str) -> list[str]:
    """A local glob pattern (`data/inaugural/*.txt`) as the files it matches, sorted; another path as it is."""
    if "://" in path or not glob.has_magic(path):
        return [path]
    found = sorted(glob.glob(path))
    if not found:
        raise ValueError(f"{where}: no file matches {path}")
    return found


def reference_name(path: str) -> str:
    name = path.rstrip("/").rsplit("/", 1)[-1]
    for suffix in (".gz", ".bz2", ".xz", ".zst", ".jsonl", ".txt", ".parquet"):
        name = name.removesuffix(suffix)
    return name
