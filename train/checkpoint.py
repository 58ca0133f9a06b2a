"""Checkpoints: everything a run needs to continue exactly where it stopped.

A checkpoint is a folder `step-000123/` (a local path or an fsspec URL) holding `config.json` (the
training and model config, and the sha256 of the tokenizer), `tokenizer.json` (a copy of the
tokenizer the model was trained with, so the checkpoint is whole on its own), `shards/` (the
model and optimizer state as torch.distributed.checkpoint writes it: each rank its own part, no
rank ever holding the whole; a job of another world size or mesh reads the parts it needs) and
`state.pt` (scheduler, data loader position, RNG states, step; or, from `save`, the weights
themselves). `state.pt` is written last, atomically: a folder that has it is whole. Loading uses
`torch.load(weights_only=True)`: a checkpoint can hold tensors and plain values, never code.
"""
from __future__ import annotations

import io
import json
import os
import pickle
import posixpath
import random
import tempfile
import warnings

import numpy as np
import torch

from crawl2model.pipeline import storage
from crawl2model.train.tokens import TOKENIZER

STATE = "state.pt"
SHARDS = "shards"
# torch.distributed.checkpoint warns at every save and load of a single process, which is how one
# process is meant to use it
warnings.filterwarnings("ignore", "torch.distributed is disabled, unavailable or uninitialized", UserWarning)


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


def load_state(path: str, map_location="cpu") -> tuple[dict, dict]:
    """(state.pt, config.json) of a checkpoint folder; ValueError naming the file when it is not whole."""
    path = str(path)
    if not storage.exists(storage.join(path, STATE)):
        raise ValueError(f"{path}: not a checkpoint (no {STATE}); checkpoints are folders named step-NNNNNN")
    try:
        state = torch.load(storage.local_copy(storage.join(path, STATE)), map_location=map_location, weights_only=True)
        config = json.loads(storage.read_bytes(storage.join(path, "config.json")) or b"")
    except (RuntimeError, EOFError, OSError, ValueError, KeyError, pickle.UnpicklingError) as error:  # cut or foreign
        raise ValueError(f"{path}: corrupt checkpoint ({type(error).__name__}: {str(error)[:200]})") from None
    return state, config


def load(path: str, map_location="cpu") -> tuple[dict, dict]:
    """(state, config) of a checkpoint folder, whole in this process: state.pt's, with the
    `model` and `optimizer` of its shards when it has them (the optimizer's keys flat, as
    torch's `flatten_optimizer_state_dict` names them)."""
    state, config = load_state(path, map_location)
    shards = _shards(path)
    if shards:
        from torch.distributed.checkpoint.format_utils import dcp_to_torch_save

        with tempfile.TemporaryDirectory() as scratch:
            whole = os.path.join(scratch, "whole.pt")
            dcp_to_torch_save(_local_folder(shards, scratch), whole)
            state = {**state, **torch.load(whole, map_location=map_location, weights_only=True)}
    return state, config


def load_weights(path: str, model) -> None:
    """The model weights of checkpoint `path` into `model` (one process, whole): from its shards,
    reading the model's part alone, or from state.pt."""
    import torch.distributed.checkpoint as dcp

    shards = _shards(path)
    if shards:
        state = {"model": model.state_dict()}
        dcp.load(state, storage_reader=_reader(shards), no_dist=True)
        model.load_state_dict(state["model"])
    else:
        model.load_state_dict(load_state(path)[0]["model"])


_OPTIONS = dict(flatten_optimizer_state_dict=True)  # optimizer state by parameter name: stages of a pipeline
# name disjoint parts, so their param_groups never collide in the shared metadata


def model_and_optimizer(model, optimizer) -> dict:
    """This rank's part of the model and optimizer state, by parameter name (sharded tensors as
    DTensors); also what `load_sharded` fills."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_state_dict

    model_state, optimizer_state = get_state_dict(model, optimizer, options=StateDictOptions(**_OPTIONS))
    return {"model": model_state, "optimizer": optimizer_state}


def save_sharded(root: str, step: int, model, optimizer, state: dict, config: dict, tokenizer: str | None,
                 main: bool) -> str:
    """Every rank writes its part of the model and optimizer into `shards/` (a collective call);
    then the first rank writes the rest, `state.pt` last. Returns the folder."""
    import torch.distributed.checkpoint as dcp

    folder = step_dir(root, step)
    dcp.save(model_and_optimizer(model, optimizer), storage_writer=_writer(storage.join(folder, SHARDS)),
             no_dist=not torch.distributed.is_initialized())
    if main:
        save(root, step, state, config, tokenizer)
    if torch.distributed.is_initialized():
        torch.distributed.barrier()  # no rank goes on (or ends the job) before the checkpoint is whole
    return folder


def load_sharded(path: str, model, optimizer) -> None:
    """Fill `model` and `optimizer` from the shards of checkpoint `path`, resharded to this job's
    mesh (each rank reads what it holds)."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_state_dict

    shards = _shards(path)
    if not shards:
        raise ValueError(f"{path}: holds no {SHARDS}/ (weights only, or an older format): start a new folder from it")
    state = model_and_optimizer(model, optimizer)
    dcp.load(state, storage_reader=_reader(shards), no_dist=not torch.distributed.is_initialized())
    set_state_dict(model, optimizer, model_state_dict=state["model"], optim_state_dict=state["optimizer"],
                   options=StateDictOptions(**_OPTIONS))


def _shards(path: str) -> str | None:
    """The `shards/` folder of checkpoint `path`, when it holds a whole one (its metadata is
    written last); else None."""
    shards = storage.join(str(path), SHARDS)
    return shards if storage.exists(storage.join(shards, ".metadata")) else None


def _writer(path: str):
    """torch.distributed.checkpoint's writer for a local folder or an fsspec URL, whose metadata
    leaves out the folder's path and a random save id: the same training writes the same bytes
    in any folder."""
    from torch.distributed.checkpoint import FileSystemWriter
    from torch.distributed.checkpoint._fsspec_filesystem import FsspecWriter

    base = FileSystemWriter if storage.is_local(path) else FsspecWriter

    class Writer(base):
        def storage_meta(self):
            return None

    return Writer(storage.filesystem(path)[1] if storage.is_local(path) else path, overwrite=True)  # a step saved
    # again (a job killed between its shards and its state.pt) replaces what the first left


def _reader(path: str):
    from torch.distributed.checkpoint import FileSystemReader
    from torch.distributed.checkpoint._fsspec_filesystem import FsspecReader

    return FileSystemReader(storage.filesystem(path)[1]) if storage.is_local(path) else FsspecReader(path)


def _local_folder(path: str, scratch: str) -> str:
    """`path` as a local folder: itself, or a copy of an object store's under `scratch`."""
    if storage.is_local(path):
        return storage.filesystem(path)[1]
    fs, inner = storage.filesystem(path)
    target = os.path.join(scratch, SHARDS)
    fs.get(inner.rstrip("/") + "/", target, recursive=True)
    return target


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
