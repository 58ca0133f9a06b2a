"""What the training stages (`pretrain`, `sft`, `dpo`) share: one `train` task with the CPUs and
GPU its options ask for, checkpoints in `<run>/checkpoints/<kind>/step-NNNNNN/`, the last of which
is the stage's artifact, and nothing removed (stages after one read what its parent kept).

`sft` and `dpo` also share where their model starts and the tokenizer they use: the last
checkpoint of the nearest training stage upstream they name (`dpo` after `sft` starts from the
fine-tuned model, else from `pretrain`), or any checkpoint folder given as `start:`; the run's
tokenizer, or `tokenizer:`. Both are resolved when the config is loaded (`bind`), so the stage
re-runs when what it starts from changes.
"""
from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from crawl2model.pipeline.global_stage import GlobalStage, Phase
from crawl2model.pipeline.stage import Resources
from crawl2model.train import checkpoint


class TrainingStage(GlobalStage):
    """Subclasses set `checkpoints` (the kind) and `steps(config)`, and implement `train`."""

    checkpoints: ClassVar[str] = ""
    requires = ()
    packages = ("torch",)
    judges = False

    @classmethod
    def steps(cls, config) -> int:
        raise NotImplementedError

    @classmethod
    def final_checkpoint(cls, config, run_dir: str) -> str:
        return str(checkpoint.step_dir(checkpoint.run_checkpoints(run_dir, cls.checkpoints), cls.steps(config)))

    @classmethod
    def resources_for(cls, config) -> Resources:
        return Resources(cpus=config.cpus, gpus=getattr(config, "gpus", 0))  # dpo has no `gpus`: it runs on a CPU

    @classmethod
    def artifacts(cls, config, run_dir: str, name: str) -> list[str]:
        return [f"{cls.final_checkpoint(config, run_dir)}/{checkpoint.STATE}"]

    def phases(self) -> list[Phase]:
        return [Phase("train", "once")]


def bind_start(config, upstream, run_dir: str, kinds: tuple[type[TrainingStage], ...]):
    """`config` with `start` and `tokenizer` filled from the stages upstream: the final checkpoint
    of the nearest stage of one of `kinds`, and the run's tokenizer."""
    from crawl2model.stages.train_tokenizer import TrainTokenizer, tokenizer_file

    update = {}
    if config.start is None:
        found = next(((cls, options) for _, cls, options in upstream if cls in kinds), None)
        if found is None:
            raise ValueError(f"nothing to start from: put one of {', '.join(c.type_name for c in kinds)} before this "
                             "stage, or set `start:` to a checkpoint folder")
        update["start"] = found[0].final_checkpoint(found[1], run_dir)
    elif not (Path(config.start) / checkpoint.STATE).exists():
        raise ValueError(f"start: {config.start} is not a checkpoint folder (no {checkpoint.STATE})")
    if config.tokenizer is None:
        if not any(issubclass(cls, TrainTokenizer) for _, cls, _ in upstream):
            raise ValueError("no tokenizer: put a train_tokenizer stage before this one, or set `tokenizer:`")
        update["tokenizer"] = tokenizer_file(run_dir)
    return config.model_copy(update=update)
