"""`pretrain`: a Llama-style decoder trained on the token shards the `tokenize` stage before it
wrote (train/pretrain.py does the work; `pipeline train` runs the same outside a run).

One Ray task with the `cpus` and `gpus` it asks for trains the model and writes checkpoints to
`<run>/checkpoints/pretrain/step-NNNNNN/` and `metrics.jsonl` beside them. A killed run resumes from
the newest checkpoint, exactly. The stage removes nothing: stages after it read what its parent kept.
"""
from __future__ import annotations

import pyarrow as pa
from pydantic import Field

from pipeline import shards
from pipeline.global_stage import GlobalStage, Phase, PhaseContext
from pipeline.stage import Resources, StageConfig
from train.pretrain import TrainConfig, total_steps


class PretrainConfig(StageConfig, TrainConfig):
    cpus: int = Field(1, ge=1)  # the Ray task's CPUs (and torch's threads on a CPU)
    gpus: int = Field(0, ge=0, le=1)  # 1: the task runs on a GPU node (several GPUs: torchrun, see README)


def checkpoint_root(run_dir: str) -> str:
    return shards.join(run_dir, "checkpoints", "pretrain")


class Pretrain(GlobalStage):
    type_name = "pretrain"
    Config = PretrainConfig
    requires = ()
    packages = ("torch",)
    judges = False

    @classmethod
    def bind(cls, config: PretrainConfig, upstream, run_dir: str) -> PretrainConfig:
        from stages.tokenize import Tokenize

        if not any(issubclass(stage, Tokenize) for _, stage, _ in upstream):
            raise ValueError("pretrain trains on <run>/tokens: put a `tokenize` stage before it")
        return config

    @classmethod
    def resources_for(cls, config: PretrainConfig) -> Resources:
        return Resources(cpus=config.cpus, gpus=config.gpus)

    @classmethod
    def artifacts(cls, config: PretrainConfig, run_dir: str, name: str) -> list[str]:
        return [shards.join(checkpoint_root(run_dir), f"step-{total_steps(config, 1):06d}", "state.pt")]

    def phases(self) -> list[Phase]:
        return [Phase("train", "once")]

    def train(self, table: pa.Table, ctx: PhaseContext) -> pa.Table:
        import torch

        from train.pretrain import TrainConfig, train

        torch.set_num_threads(self.config.cpus)
        settings = TrainConfig.model_validate(self.config.model_dump(exclude={"cpus", "gpus"}))
        summary = train(shards.join(ctx.run_dir, "tokens"), checkpoint_root(ctx.run_dir), settings, log=lambda _: None)
        return pa.table({key: [value] for key, value in summary.items() if value is not None})
