"""What the training stages (`pretrain`, `sft`, `dpo`) share: one `train` task with the CPUs and
GPU its options ask for, checkpoints in the stage's artifact folder (`stages/<name>/artifact/
step-NNNNNN/`, each with the tokenizer it was trained with), the last of which the stages after it
start from, and nothing removed.

Because the checkpoints live in the stage's own folder, a stage that re-runs (a changed option,
a changed tokenizer or upstream stage, `--force`) starts from scratch, and one that was killed
resumes from its own newest checkpoint.

`sft` and `dpo` also share where their model starts: the last checkpoint of the nearest training
stage upstream of the kinds they name (`dpo` after `sft` starts from the fine-tuned model, else
from `pretrain`), or any checkpoint folder given as `start:`. It is resolved when the config is
loaded (`bind`), so the stage re-runs when what it starts from changes. Their tokenizer is the
start checkpoint's own, unless `tokenizer:` names one.

A training's progress reaches the driver through `ctx.say` (`told`): each step, its loss and
tokens/s, its log lines as notes, and what the user must read (DPO's skipped and truncated pairs).
"""
from __future__ import annotations

import json
from typing import Callable

import pyarrow as pa
from pydantic import BaseModel, Field, model_validator

from crawl2model.pipeline import storage
from crawl2model.pipeline.global_stage import GlobalStage, Phase, PhaseContext
from crawl2model.pipeline.stage import Resources
from crawl2model.train import checkpoint


class TrainingStage(GlobalStage):
    """Subclasses set `steps(config)` and implement `train`."""

    requires = ()
    packages = ("torch",)
    makes_artifact = True

    @classmethod
    def steps(cls, config) -> int:
        raise NotImplementedError

    @classmethod
    def final_checkpoint(cls, config, artifact_dir: str) -> str:
        return checkpoint.step_dir(artifact_dir, cls.steps(config))

    @classmethod
    def resources_for(cls, config) -> Resources:
        return Resources(cpus=config.cpus, gpus=getattr(config, "gpus", 0))  # dpo has no `gpus`: it runs on a CPU

    def phases(self) -> list[Phase]:
        return [Phase("train", "once")]


def bind_start(config, upstream, kinds: tuple[type[TrainingStage], ...]):
    """`config` with `start` filled from the stages upstream: the final checkpoint of the nearest
    stage of one of `kinds`."""
    if config.start is not None:
        if not storage.exists(storage.join(config.start, checkpoint.STATE)):
            raise ValueError(f"start: {config.start} is not a checkpoint folder (no {checkpoint.STATE})")
        return config
    found = next((node for node in upstream if node.cls in kinds), None)
    if found is None:
        raise ValueError(f"nothing to start from: put one of {', '.join(c.type_name for c in kinds)} before this "
                         "stage, or set `start:` to a checkpoint folder")
    return config.model_copy(update={"start": found.cls.final_checkpoint(found.config, found.artifact_dir)})


class DataOrSample(BaseModel):
    """`sft` and `dpo` read their examples from `data` files, or, in the embedded demonstration,
    from `sample` rows generated from the seed (pipeline/sample_data.py)."""

    data: list[str] = []  # JSONL (or .jsonl.gz) files
    sample: int | None = Field(None, ge=1)  # or this many generated demonstration rows instead

    @model_validator(mode="after")
    def _one_of_them(self):
        if bool(self.data) == (self.sample is not None):
            raise ValueError("give `data` (JSONL files) or `sample` (a number of generated rows), not both or neither")
        return self


def data_paths(config, ctx: PhaseContext, generate: Callable[[int, int], list[dict]]) -> list[str]:
    """The stage's data files; generated rows are written into its artifact folder first, as
    `sample-data.jsonl`, so that what the model was trained on can be read."""
    if config.sample is None:
        return list(config.data)
    path = storage.join(ctx.artifact_dir, "sample-data.jsonl")
    rows = generate(config.sample, config.seed or 0)
    storage.write_bytes_atomic(path, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows).encode())
    return [path]


def told(say: Callable[[dict], None] | None) -> dict:
    """A trainer's `log` and `report` keywords that tell the run's progress (`PhaseContext.say`):
    its log lines as notes, its steps and messages as they are."""
    if say is None:
        return {"log": lambda _: None}
    return {"log": lambda text: say({"note": text}), "report": say}


SPEED = ("tokens_per_s", "mfu")  # wall-clock measures in a trainer's metrics


def summary_table(summary: dict) -> pa.Table:
    """A training phase's table: the last metrics line, but for its speed, a wall-clock measure
    (metrics.jsonl keeps it) that would make the phase's bytes, and so stats.json, differ between
    two runs of one config."""
    return pa.table({key: [value] for key, value in summary.items() if value is not None and key not in SPEED})
