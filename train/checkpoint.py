"""Checkpoints: everything a run needs to continue exactly where it stopped.

A checkpoint is a folder `step-000123/` holding `state.pt` (model, optimizer, scheduler, data
loader position, RNG states, step) and `config.json` (the training and model config). It is
written under a temporary name and renamed, so a folder that exists is whole. Loading uses
`torch.load(weights_only=True)`: a checkpoint can hold tensors and plain values, never code.
"""
from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path

import numpy as np
import torch

STATE = "state.pt"


def run_checkpoints(run_dir: str | Path, kind: str) -> Path:
    """Where a run keeps the checkpoints of its `kind` of training (pretrain, sft, dpo)."""
    return Path(run_dir) / "checkpoints" / kind


def step_dir(root: str | Path, step: int) -> Path:
    return Path(root) / f"step-{step:06d}"


def latest(root: str | Path) -> Path | None:
    """The newest whole checkpoint under `root`, or None."""
    found = sorted(p for p in Path(root).glob("step-*") if (p / STATE).exists() and not p.name.endswith(".tmp"))
    return found[-1] if found else None


def rng_state() -> dict:
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state()[1].tolist(),
             "python": list(random.getstate()[1])}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(("MT19937", np.array(state["numpy"], dtype=np.uint32), 624, 0, 0.0))
    random.setstate((3, tuple(state["python"]), None))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save(root: str | Path, step: int, state: dict, config: dict) -> Path:
    """Write `state` (tensors and plain values) and `config` as the checkpoint of `step`."""
    final = step_dir(root, step)
    temporary = final.with_name(final.name + ".tmp")
    shutil.rmtree(temporary, ignore_errors=True)
    temporary.mkdir(parents=True)
    torch.save({**state, "step": step, "rng": rng_state()}, temporary / STATE)
    (temporary / "config.json").write_text(json.dumps(config, indent=2, default=str))
    if final.exists():
        shutil.rmtree(final)
    os.replace(temporary, final)
    return final


def load(path: str | Path, map_location="cpu") -> tuple[dict, dict]:
    """(state, config) of a checkpoint folder; ValueError naming the file when it is not whole."""
    path = Path(path)
    if not (path / STATE).exists():
        raise ValueError(f"{path}: not a checkpoint (no {STATE}); checkpoints are folders named step-NNNNNN")
    try:
        state = torch.load(path / STATE, map_location=map_location, weights_only=True)
        config = json.loads((path / "config.json").read_text())
    except (RuntimeError, EOFError, OSError, ValueError, KeyError) as error:  # cut or foreign files
        raise ValueError(f"{path}: corrupt checkpoint ({type(error).__name__}: {str(error)[:200]})") from None
    return state, config
