"""Batches for the trainer: packed windows from the token shards of a run.

The shards of a split, in index order, are one token stream (every document already ends in
`<|endoftext|>`). Window w is the `seq_len + 1` tokens from `w * seq_len`: inputs are its first
`seq_len`, targets its last. Each epoch visits every window once in an order drawn from
`seed + epoch`; a step takes the next `batch_size * world` of them, rank r the r-th run of
`batch_size`, so the ranks of a data-parallel job together see what one process with the whole
batch would. The loader's state is (epoch, step in epoch): saved in a checkpoint, it resumes
mid-epoch on the next batch.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from train.tokens import TokenShard, load_index


class TokenLoader:
    def __init__(self, shards: list[TokenShard], seq_len: int, batch_size: int, seed: int = 0,
                 rank: int = 0, world: int = 1, shuffle: bool = True, name: str = "tokens"):
        self.shards, self.seq_len, self.batch_size = shards, seq_len, batch_size
        self.seed, self.rank, self.world, self.shuffle = seed, rank, world, shuffle
        self.starts = np.cumsum([0] + [len(s.tokens) for s in shards])  # where each shard begins in the stream
        self.windows = (int(self.starts[-1]) - 1) // seq_len
        self.steps_per_epoch = self.windows // (batch_size * world)
        if self.steps_per_epoch == 0:
            raise ValueError(f"{name}: {int(self.starts[-1]):,} tokens make {self.windows:,} windows of {seq_len + 1} "
                             f"tokens, fewer than one batch ({batch_size} x {world} ranks)")
        self.epoch, self.step = 0, 0
        self._order = None

    @classmethod
    def from_dir(cls, directory: str | Path, split: str, seq_len: int, batch_size: int, **options) -> TokenLoader:
        """The loader of one split of a tokens directory (or of a run directory holding one)."""
        index = load_index(directory)
        shards = index.open(split)
        if not shards or not any(len(s.tokens) for s in shards):
            raise ValueError(f"{index.root}: the '{split}' split has no tokens")
        return cls(shards, seq_len, batch_size, name=f"{index.root} ({split})", **options)

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "step": self.step, "seed": self.seed, "windows": self.windows}

    def load_state_dict(self, state: dict) -> None:
        if state["windows"] != self.windows or state["seed"] != self.seed:
            raise ValueError(f"the saved loader state is of other data ({state['windows']:,} windows, seed "
                             f"{state['seed']}; these shards make {self.windows:,}, seed {self.seed})")
        self.epoch, self.step, self._order = state["epoch"], state["step"], None

    def _window_order(self) -> np.ndarray:
        if self._order is None:
            self._order = (np.random.default_rng(self.seed + self.epoch).permutation(self.windows) if self.shuffle
                           else np.arange(self.windows))
        return self._order

    def _read(self, start: int, length: int) -> np.ndarray:
        """`length` tokens of the stream from `start`, across shard boundaries."""
        parts, shard = [], int(np.searchsorted(self.starts, start, side="right")) - 1
        while length > 0:
            offset = start - int(self.starts[shard])
            piece = self.shards[shard].tokens[offset:offset + length]
            parts.append(piece)
            start, length, shard = start + len(piece), length - len(piece), shard + 1
        return np.concatenate(parts) if len(parts) > 1 else parts[0]

    def next_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(inputs, targets), each (batch_size, seq_len) int64, and advance."""
        if self.step == self.steps_per_epoch:
            self.epoch, self.step, self._order = self.epoch + 1, 0, None
        first = (self.step * self.world + self.rank) * self.batch_size
        windows = self._window_order()[first:first + self.batch_size]
        rows = np.stack([self._read(int(w) * self.seq_len, self.seq_len + 1) for w in windows]).astype(np.int64)
        self.step += 1
        batch = torch.from_numpy(rows)
        return batch[:, :-1], batch[:, 1:]
