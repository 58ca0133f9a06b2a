"""Checkpoints: everything a run needs to continue exactly where it stopped.

A checkpoint is a folder `step-000123/` (a local path or an fsspec URL) holding `config.json` (the
training and model config, and the sha256 of the tokenizer), `tokenizer.json` (a copy of the
tokenizer the model was trained with, so the checkpoint is whole on its own) and `state.pt`
(model, optimizer, scheduler, data loader position, RNG states, step). `state.pt` is written
last, atomically: a folder that has it is whole. Loading uses `torch.load(weights_only=True)`: a
checkpoint can hold tensors and plain values, never code.
"""
from __future__ import annotations

import io
import json
import pickle
import posixpath
import random

import numpy as np
import torch

from crawl2model.pipeline import storage
from crawl2model.train.tokens import TOKENIZER

STATE = "state.pt"


def step_dir(root: str, step: int) -> str:
    return storage.join(str(root), f"step-{step:06d}")


def steps(root: str) -> list[str]:
    """The checkpoints under `root` (folders with a state.pt), oldest first."""
    return sorted(path.rsplit("/", 1)[0] for path in storage.list_files(str(root), STATE, recursive=True)
                  if posixpath.basename(path.rsplit("/", 1)[0]).startswith("step-"))


def latest(root: str) -> str | None:
    """The newest checkpoint under `root`, or None."""
    found = steps(root)
    return found[-1] if found else None


def seed_rngs(seed: int) -> None:
    """Seed every generator whose state a checkpoint keeps (rng_state). Torch's drives training;
    Python's and NumPy's are seeded too, so that a checkpoint's bytes depend on the seed alone and
    not on what ran before in the process (a Ray worker runs many tasks)."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)


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


def save(root: str, step: int, state: dict, config: dict, tokenizer: str | None = None) -> str:
    """Write `state` (tensors and plain values), `config` and a copy of the `tokenizer` file as the
    checkpoint of `step`; returns its folder."""
    folder = step_dir(root, step)
    if tokenizer is not None:
        data = storage.read_bytes(tokenizer)
        if data is None:
            raise ValueError(f"{tokenizer}: no such tokenizer file")
        storage.write_bytes_atomic(storage.join(folder, TOKENIZER), data)
        config = {**config, "tokenizer_sha256": storage.sha256_bytes(data)}
    storage.write_bytes_atomic(storage.join(folder, "config.json"), json.dumps(config, indent=2, default=str).encode())
    buffer = io.BytesIO()
    torch.save({**state, "step": step, "rng": rng_state()}, buffer)
    storage.write_bytes_atomic(storage.join(folder, STATE), buffer.getvalue())
    return folder


def load(path: str, map_location="cpu") -> tuple[dict, dict]:
    """(state, config) of a checkpoint folder; ValueError naming the file when it is not whole."""
    path = str(path)
    if not storage.exists(storage.join(path, STATE)):
        raise ValueError(f"{path}: not a checkpoint (no {STATE}); checkpoints are folders named step-NNNNNN")
    try:
        state = torch.load(storage.local_copy(storage.join(path, STATE)), map_location=map_location, weights_only=True)
        config = json.loads(storage.read_bytes(storage.join(path, "config.json")) or b"")
    except (RuntimeError, EOFError, OSError, ValueError, KeyError, pickle.UnpicklingError) as error:  # cut or foreign
        raise ValueError(f"{path}: corrupt checkpoint ({type(error).__name__}: {str(error)[:200]})") from None
    return state, config


def tokenizer_file(path: str, given: str | None = None) -> str:
    """A local path to the tokenizer of checkpoint `path`: its own copy, or `given`, which must be
    the same tokenizer (by sha256) as the one the checkpoint was trained with."""
    saved = json.loads(storage.read_bytes(storage.join(str(path), "config.json")) or b"{}")
    expected = saved.get("tokenizer_sha256")
    if given is None:
        own = storage.join(str(path), TOKENIZER)
        if not storage.exists(own):
            raise ValueError(f"{path} holds no {TOKENIZER} (an older checkpoint): give --tokenizer")
        return storage.local_copy(own, expected)
    actual = storage.sha256_of(given)
    if expected and actual != expected:
        raise ValueError(f"{given} is not the tokenizer {path} was trained with (sha256 {actual[:12]}, the "
                         f"checkpoint's {expected[:12]}); leave out --tokenizer to use the checkpoint's own")
    return storage.local_copy(given)
