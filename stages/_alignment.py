"""What the `sft` and `dpo` stages share: where their model starts, and the tokenizer they use.

The start is the last checkpoint of the nearest training stage upstream (`dpo` after `sft` starts
from the fine-tuned model, else from `pretrain`), or any checkpoint folder given as `start:`. The
tokenizer is the run's (`<run>/tokenizer/tokenizer.json`, made by `train_tokenizer`), or
`tokenizer:`. Both are resolved when the config is loaded (`bind`), so the stage re-runs when
what it starts from changes.
"""
from __future__ import annotations

from pathlib import Path

from pipeline import shards


def final_checkpoint(run_dir: str, kind: str, steps: int) -> str:
    return shards.join(run_dir, "checkpoints", kind, f"step-{steps:06d}")


def bind_start(config, upstream, run_dir: str, kinds: dict):
    """`config` with `start` and `tokenizer` filled from the stages upstream; `kinds` maps a
    training stage class to (its checkpoint folder name, a function of its config giving its
    step count)."""
    from stages.train_tokenizer import TrainTokenizer

    update = {}
    if config.start is None:
        found = next(((name, cls, options) for name, cls, options in upstream if cls in kinds), None)
        if found is None:
            raise ValueError(f"nothing to start from: put one of {', '.join(c.type_name for c in kinds)} before this "
                             "stage, or set `start:` to a checkpoint folder")
        folder, steps = kinds[found[1]]
        update["start"] = final_checkpoint(run_dir, folder, steps(found[2]))
    elif not (Path(config.start) / "state.pt").exists():
        raise ValueError(f"start: {config.start} is not a checkpoint folder (no state.pt)")
    if config.tokenizer is None:
        if not any(issubclass(cls, TrainTokenizer) for _, cls, _ in upstream):
            raise ValueError("no tokenizer: put a train_tokenizer stage before this one, or set `tokenizer:`")
        update["tokenizer"] = shards.join(run_dir, "tokenizer", "tokenizer.json")
    return config.model_copy(update=update)
