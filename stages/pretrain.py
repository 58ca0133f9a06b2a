"""`pretrain`: a Llama-style decoder trained on the token shards the `tokenize` stage before it
wrote (train/pretrain.py does the work; `pipeline train` runs the same outside a run).

With `workers: 1`, one Ray task with the `cpus` and `gpus` it asks for trains the model; with more,
Ray Train starts that many workers (each with `cpus` and `gpus`) as one data-parallel job (DDP or
FSDP, `parallel:`), the same code `torchrun` runs. Checkpoints go to the stage's artifact folder
(`stages/<name>/artifact/step-NNNNNN/`) and `metrics.jsonl` beside them; a killed run resumes
from the newest checkpoint, exactly. The token shards are those of the nearest `tokenize` stage
upstream, or the folder given as `tokens_dir:` (`tokens:` is the training budget, as in `pipeline
train`). The stage removes nothing.
"""
from __future__ import annotations

import pyarrow as pa
from pydantic import Field, field_validator, model_validator

from crawl2model.pipeline import storage
from crawl2model.pipeline.global_stage import PhaseContext
from crawl2model.pipeline.stage import Resources, StageConfig
from crawl2model.stages._training import TrainingStage, summary_table, told
from crawl2model.train.loop import TrainConfig, total_steps


class PretrainConfig(StageConfig, TrainConfig):
    tokens_dir: str | None = None  # a tokens folder; unset: the artifact of the nearest tokenize stage upstream
    cpus: int = Field(1, ge=1)  # per worker: Ray's CPUs for it, and torch's threads on a CPU
    gpus: int = Field(0, ge=0, le=1)  # per worker: 1 runs it on a GPU
    workers: int = Field(1, ge=1)  # more than 1: a Ray Train job of this many workers, in the mesh of `parallel`

    @model_validator(mode="after")
    def _mesh(self) -> PretrainConfig:
        """The layout, checked against the model, the batch and the workers before any work."""
        problems = self.parallel.check(self.model, self.batch_size, self.workers)
        if problems:
            raise ValueError(f"parallel: {'; '.join(problems)}")
        return self

    @field_validator("tokens", mode="before")
    @classmethod
    def _a_budget(cls, value):
        if isinstance(value, str) and not value.strip().isdigit():
            raise ValueError("`tokens` is the training budget (a number of tokens); a folder of token shards "
                             f"is `tokens_dir` (got {value!r})")
        return value


class Pretrain(TrainingStage):
    type_name = "pretrain"
    Config = PretrainConfig

    @classmethod
    def steps(cls, config: PretrainConfig) -> int:
        return total_steps(config, 1)

    @classmethod
    def bind(cls, config: PretrainConfig, upstream) -> PretrainConfig:
        from crawl2model.stages.tokenize import Tokenize

        if config.tokens_dir is not None:
            from crawl2model.train.tokens import INDEX

            if not storage.exists(storage.join(config.tokens_dir, INDEX)):
                raise ValueError(f"tokens_dir: {config.tokens_dir} is not a tokens folder (no {INDEX}; a `tokenize` "
                                 "stage writes one into its artifact folder)")
            return config
        found = next((node for node in upstream if issubclass(node.cls, Tokenize)), None)
        if found is None:
            raise ValueError("nothing to train on: put a `tokenize` stage before pretrain, or set `tokens_dir:`")
        return config.model_copy(update={"tokens_dir": found.artifact_dir})

    @classmethod
    def resources_for(cls, config: PretrainConfig) -> Resources:
        """One worker: the task itself trains. Several: the task only waits on Ray Train's workers."""
        return Resources(cpus=config.cpus, gpus=config.gpus) if config.workers == 1 else Resources(cpus=0)

    def train(self, table: pa.Table, ctx: PhaseContext) -> pa.Table:
        job = {"tokens": self.config.tokens_dir, "out": ctx.artifact_dir, "cpus": self.config.cpus,
               "settings": self.config.model_dump(mode="json", exclude={"cpus", "gpus", "workers", "tokens_dir"})}
        if self.config.workers == 1:
            summary = train_worker({**job, "say": ctx.say})
        else:
            from ray.train import RunConfig, ScalingConfig
            from ray.train.torch import TorchTrainer

            trainer = TorchTrainer(train_worker, train_loop_config={**job, "say": ctx.say}, run_config=RunConfig(
                **ray_train_storage(storage.join(ctx.phases_dir, "ray-train")), name="pretrain"),
                scaling_config=ScalingConfig(num_workers=self.config.workers, use_gpu=self.config.gpus > 0,
                                             resources_per_worker={"CPU": self.config.cpus}))
            trainer.fit()
            summary = read_summary(job["out"])
        return summary_table(summary)


def train_worker(job: dict) -> dict:
    """One worker's training (the whole of it, alone): also Ray Train's loop per worker. `say`: the
    run's progress (rank 0 tells its steps)."""
    import torch

    from crawl2model.train.pretrain import train

    torch.set_num_threads(job["cpus"])
    return train(job["tokens"], job["out"], TrainConfig.model_validate(job["settings"]), **told(job.get("say")))


def ray_train_storage(path: str) -> dict:
    """RunConfig's `storage_path` (and `storage_filesystem`) for `path`: a local folder as it is;
    an fsspec URL (`s3://...`) through the file system every other file of the run goes through
    (fsspec's, with its configuration: endpoint, credentials), not the one pyarrow would make of the
    URL on its own (AWS's, by default)."""
    if storage.is_local(path):
        return {"storage_path": path}
    import pyarrow.fs

    fs, inner = storage.filesystem(path)
    return {"storage_path": inner, "storage_filesystem": pyarrow.fs.PyFileSystem(pyarrow.fs.FSSpecHandler(fs))}


def read_summary(out: str) -> dict:
    """The last line of metrics.jsonl: what rank 0 logged at the end."""
    import json

    return json.loads((storage.read_bytes(storage.join(out, "metrics.jsonl")) or b"").decode().splitlines()[-1])
