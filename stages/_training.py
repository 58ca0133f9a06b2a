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
"""
from __future__ import annotations


from crawl2model.pipeline import storage
from crawl2model.pipeline.global_stage import GlobalStage, Phase
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
