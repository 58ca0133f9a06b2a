"""Batches for the trainer: packed windows from the token shards of a run.

The shards of a split, in index order, are one token stream (every document already ends in
`<|endoftext|>`). Window w is the `seq_len + 1` tokens from `w * seq_len`: inputs are its first
`seq_len`, targets its last. Each epoch visits every window once in an order drawn from
`seed + epoch`; a step takes the next `batch_size * world` of them, rank r the r-th run of
`batch_size`, so the ranks of a data-parallel job together see what one process with the whole
batch would. The loader's state is (epoch, step in epoch): saved in a checkpoint, it resumes
mid-epoch on the next batch. `RowLoader` does the same over rows built beforehand (SFT's packed
conversations, with their own masked targets).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from crawl2model.train.tokens import TokenShard, load_index


class EpochLoader:
    """What every loader here shares: `count` items visited once per epoch in an order drawn from
    `seed + epoch`; a step takes the next `batch_size * world`, rank r the r-th run of
    `batch_size`; the state is (epoch, step). Subclasses say how to build a batch (`_batch`)."""

    def __init__(self, count: int, batch_size: int, seed: int, rank: int, world: int, shuffle: bool, name: str):
        self.count, self.batch_size, self.seed, self.rank, self.world, self.shuffle = count, batch_size, seed, rank, world, shuffle
        self.steps_per_epoch = count // (batch_size * world)
        if self.steps_per_epoch == 0:
            raise ValueError(f"{name}: {count:,} rows, fewer than one batch ({batch_size} x {world} ranks)")
        self.epoch, self.step, self._order = 0, 0, None

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "step": self.step, "seed": self.seed, "windows": self.count}

    def load_state_dict(self, state: dict) -> None:
        if state["windows"] != self.count or state["seed"] != self.seed:
            raise ValueError(f"the saved loader state is of other data ({state['windows']:,} rows, seed "
                             f"{state['seed']}; this data makes {self.count:,}, seed {self.seed})")
        self.epoch, self.step, self._order = state["epoch"], state["step"], None

    def _ordered(self) -> np.ndarray:
        if self._order is None:
            self._order = (np.random.default_rng(self.seed + self.epoch).permutation(self.count) if self.shuffle
                           else np.arange(self.count))
        return self._order

    def next_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(inputs, targets), each (batch_size, length) int64, and advance."""
        if self.step == self.steps_per_epoch:
            self.epoch, self.step, self._order = self.epoch + 1, 0, None
        first = (self.step * self.world + self.rank) * self.batch_size
        self.step += 1
        return self._batch(self._ordered()[first:first + self.batch_size])

    def _batch(self, indices: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError


class TokenLoader(EpochLoader):
    """Packed windows of a token stream (the shards of a split, concatenated)."""

    def __init__(self, shards: list[TokenShard], seq_len: int, batch_size: int, seed: int = 0,
                 rank: int = 0, world: int = 1, shuffle: bool = True, name: str = "tokens"):
        self.shards, self.seq_len = shards, seq_len
        self.starts = np.cumsum([0] + [len(s.tokens) for s in shards])  # where each shard begins in the stream
        self.windows = (int(self.starts[-1]) - 1) // seq_len
        super().__init__(self.windows, batch_size, seed, rank, world, shuffle,
                         f"{name}: {int(self.starts[-1]):,} tokens in windows of {seq_len + 1}")

    @classmethod
    def from_dir(cls, directory: str | Path, split: str, seq_len: int, batch_size: int, **options) -> TokenLoader:
        """The loader of one split of a tokens directory (or of a run directory holding one)."""
        index = load_index(directory)
        shards = index.open(split)
        if not shards or not any(len(s.tokens) for s in shards):
            raise ValueError(f"{index.root}: the '{split}' split has no tokens")
        return cls(shards, seq_len, batch_size, name=f"{index.root} ({split})", **options)

    def _read(self, start: int, length: int) -> np.ndarray:
        """`length` tokens of the stream from `start`, across shard boundaries."""
        parts, shard = [], int(np.searchsorted(self.starts, start, side="right")) - 1
        while length > 0:
            offset = start - int(self.starts[shard])
            piece = self.shards[shard].tokens[offset:offset + length]
            parts.append(piece)
            start, length, shard = start + len(piece), length - len(piece), shard + 1
        return np.concatenate(parts) if len(parts) > 1 else parts[0]

    def _batch(self, indices: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        rows = np.stack([self._read(int(w) * self.seq_len, self.seq_len + 1) for w in indices]).astype(np.int64)
        batch = torch.from_numpy(rows)
        return batch[:, :-1], batch[:, 1:]


class RowLoader(EpochLoader):
    """Rows built beforehand, with their own targets (SFT's packed conversations)."""

    def __init__(self, inputs: torch.Tensor, targets: torch.Tensor, batch_size: int, seed: int = 0,
                 rank: int = 0, world: int = 1, shuffle: bool = True, name: str = "rows"):
        self.inputs, self.targets = inputs, targets
        super().__init__(len(inputs), batch_size, seed, rank, world, shuffle, name)

    def _batch(self, indices: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        index = torch.from_numpy(np.asarray(indices, dtype=np.int64))
        return self.inputs[index], self.targets[index]
