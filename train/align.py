"""DPO from a pretrained (or SFT) checkpoint on preference pairs, trained by the loop pretraining
and SFT use (train/loop.py's `fit` with DPO's objective): data parallelism (DDP or FSDP), bf16
autocast, device choice, checkpoints and exact resume come with it.

The reference is a frozen copy of the starting checkpoint (a resumed job loads it from `start`
again); its log-probabilities are computed under no_grad, per batch, or once for every pair
with `precompute_reference` and stored with the run (`reference_logps.pt`, keyed by the pairs'
tokens and the reference's weights). Pairs are split into training and held-out sets by a seeded
permutation; each step takes the next `batch_size` training pairs per rank of a seeded order.
metrics.jsonl logs the loss and the rewards (chosen, rejected, margins, accuracies), and on the
held-out pairs every `eval_interval` steps (`val/...`).

    pipeline align dpo START PAIRS... --config dpo.yaml --out DIR
    torchrun --nproc_per_node 2 -m crawl2model.train.align START PAIRS... --config dpo.yaml --out DIR
"""
from __future__ import annotations

import copy
import hashlib
import io
import random
from pathlib import Path

import numpy as np
import torch
from pydantic import Field

from crawl2model.model.special_tokens import PAD
from crawl2model.pipeline import storage
from crawl2model.train.chat import ChatTokens
from crawl2model.train.data import EpochLoader
from crawl2model.train.dpo import dpo_loss, reference_logps, sequence_logps
from crawl2model.train.loop import Distributed, TrainConfig, fit, run_distributed
from crawl2model.train.preferences import Pair, collate, read_pairs
from crawl2model.train.pretrain import load_model

REFERENCE = "reference_logps.pt"


class DPOConfig(TrainConfig):
    """`dpo:` options: the loop's (`model` unused: the model is the checkpoint's), DPO's defaults
    and its own. tokens/s counts each pair as 2 x max_len tokens (padded or not)."""

    steps: int | None = Field(100, ge=1)
    batch_size: int = Field(8, ge=1)  # pairs per step and rank
    lr: float = Field(5e-6, gt=0)
    warmup_steps: int = Field(10, ge=0)
    weight_decay: float = Field(0.0, ge=0)
    betas: tuple[float, float] = (0.9, 0.999)
    eval_interval: int = Field(50, ge=1)
    beta: float = Field(0.1, gt=0)
    label_smoothing: float = Field(0.0, ge=0, lt=0.5)
    max_len: int = Field(512, ge=8)
    precompute_reference: bool = False
    val_fraction: float = Field(0.1, ge=0, lt=1)


def train_dpo(start: str | Path, data: list[str | Path], tokenizer_file: str | Path, out_dir: str | Path,
              config: DPOConfig, log=print, report=None, stop_at: int | None = None) -> dict:
    """Align the model of checkpoint `start` on the pairs in `data`; writes checkpoints and
    metrics.jsonl to `out_dir`, resuming from the newest there; returns the last step's summary
    (with the held-out `val/...` metrics). `report`, when given, is told `{"message": ...}` of the
    pairs used, truncated and skipped, and each logged step as `loop.fit` tells its own."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(storage.local_copy(str(tokenizer_file)))
    chat = ChatTokens(tokenizer)

    def job(dist: Distributed, device: str) -> dict:
        policy, saved = load_model(start, device)
        if tokenizer.get_vocab_size() != policy.config.vocab_size:
            raise ValueError(f"{tokenizer_file} has {tokenizer.get_vocab_size():,} tokens, the model "
                             f"{policy.config.vocab_size:,}: another tokenizer")
        max_len = min(config.max_len, policy.config.max_seq_len)
        pairs, pairs_read = read_pairs(data, chat, max_len)
        log(f"{pairs_read.used} pairs ({pairs_read.truncated} truncated); skipped {dict(pairs_read.skipped)} "
            f"{pairs_read.problems[:5]}")
        if report and dist.main:
            skipped = sum(pairs_read.skipped.values())
            reasons = ", ".join(f"{reason}: {count:,}" for reason, count in pairs_read.skipped.most_common(3))
            report({"message": f"{pairs_read.used:,} pairs used ({pairs_read.truncated:,} truncated to {max_len} "
                               f"tokens); {skipped:,} skipped" + (f" ({reasons})" if reasons else "")})
        order = list(range(len(pairs)))
        random.Random(config.seed).shuffle(order)
        held = max(1, int(len(pairs) * config.val_fraction)) if config.val_fraction else 0
        val, train = [pairs[i] for i in order[:held]], [pairs[i] for i in order[held:]]
        reference = copy.deepcopy(policy).requires_grad_(False).eval()
        pad = tokenizer.token_to_id(PAD) or 0
        table = None
        if config.precompute_reference:
            table = stored_reference(storage.join(str(out_dir), REFERENCE), reference, train, pad, config.batch_size,
                                     device, dist.main)
        loader = PairLoader(train, pad, table, config.batch_size, seed=config.seed, rank=dist.layout.dp_rank,
                            world=dist.layout.dp)
        validate = (lambda model, autocast: evaluate(model, reference, val, pad, config, autocast, device)) if val else None
        meta = {"model": policy.config.to_dict(), "aligned": "dpo", "tokenizer_sha256": saved.get("tokenizer_sha256")}
        return fit(policy, loader, str(out_dir), config.model_copy(update={"seq_len": 2 * max_len}), dist, device, log,
                   validate=validate, meta=meta, tokenizer=str(tokenizer_file), stop_at=stop_at, report=report,
                   objective=lambda model, batch: dpo_objective(model, batch, reference, config))

    return run_distributed(config, job)


def dpo_objective(model, batch, reference, config: DPOConfig) -> tuple[torch.Tensor, dict]:
    """The DPO loss of a batch (ids and labels of its chosen sequences, then its rejected ones;
    and the reference's log-probabilities when precomputed), and its reward metrics."""
    ids, labels, ref = batch
    logps = sequence_logps(model, ids, labels)
    if ref is None:
        ref = reference_logps(reference, ids, labels)
    n = len(ids) // 2
    return dpo_loss(logps[:n], logps[n:], ref[:n], ref[n:], config.beta, config.label_smoothing)


class PairLoader(EpochLoader):
    """Batches of preference pairs (train/data.py's epochs, ranks and resumable state):
    (ids, labels, reference log-probabilities or None)."""

    def __init__(self, pairs: list[Pair], pad: int, reference: torch.Tensor | None, batch_size: int, seed: int = 0,
                 rank: int = 0, world: int = 1):
        self.pairs, self.pad, self.reference = pairs, pad, reference
        super().__init__(len(pairs), batch_size, seed, rank, world, True, "preference pairs")

    def _batch(self, indices: np.ndarray):
        ids, labels = collate([self.pairs[i] for i in indices], self.pad)
        index = torch.from_numpy(np.asarray(indices, dtype=np.int64))
        ref = None if self.reference is None else torch.cat([self.reference[index, 0], self.reference[index, 1]])
        return ids, labels, ref


def stored_reference(path: str, reference, pairs: list[Pair], pad: int, batch: int, device: str, main: bool) -> torch.Tensor:
    """The reference's (chosen, rejected) log-probabilities of every pair, (pairs, 2): read from
    `path` when its key (the pairs' tokens and the reference's weights) is this job's, else
    computed (and written by the main rank)."""
    key = hashlib.sha256()
    for pair in pairs:
        for part in (pair.prompt, pair.chosen, pair.rejected, pair.chosen_labels or [], pair.rejected_labels or []):
            key.update(np.asarray([*part, -1], dtype=np.int64).tobytes())
    for name, tensor in sorted(reference.state_dict().items()):
        key.update(name.encode() + tensor.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    stored = storage.read_bytes(path)
    if stored is not None:
        saved = torch.load(io.BytesIO(stored), weights_only=True)
        if saved["key"] == key.hexdigest():
            return saved["logps"]
    table = []
    for first in range(0, len(pairs), batch):
        chunk = pairs[first:first + batch]
        ids, labels = collate(chunk, pad)
        logps = reference_logps(reference, ids.to(device), labels.to(device)).cpu()
        table.append(torch.stack([logps[:len(chunk)], logps[len(chunk):]], dim=1))
    logps = torch.cat(table)
    if main:
        buffer = io.BytesIO()
        torch.save({"key": key.hexdigest(), "logps": logps}, buffer)
        storage.write_bytes_atomic(path, buffer.getvalue())
    return logps


@torch.no_grad()
def evaluate(policy, reference, pairs: list[Pair], pad: int, config: DPOConfig, autocast, device: str) -> dict[str, float]:
    """DPO loss and rewards over the held-out pairs."""
    policy.eval()
    totals, count = {}, 0
    for first in range(0, len(pairs), config.batch_size):
        chunk = pairs[first:first + config.batch_size]
        ids, labels = (t.to(device) for t in collate(chunk, pad))
        with autocast:
            loss, values = dpo_objective(policy, (ids, labels, None), reference, config)
        for key, value in {"loss": float(loss), **values}.items():
            totals[key] = totals.get(key, 0.0) + value * len(chunk)
        count += len(chunk)
    policy.train()
    return {key: value / count for key, value in totals.items()}


def main(argv: list[str] | None = None) -> None:
    """`python -m crawl2model.train.align START PAIRS... --config dpo.yaml --out DIR` (torchrun-able)."""
    import argparse

    import yaml

    from crawl2model.train import checkpoint

    parser = argparse.ArgumentParser(description="Align a checkpoint with DPO on preference pairs.")
    parser.add_argument("start", help="the checkpoint folder to align")
    parser.add_argument("data", nargs="+", help="JSONL preference pairs")
    parser.add_argument("--config", required=True, help="YAML of DPOConfig options")
    parser.add_argument("--out", required=True, help="checkpoint folder to write")
    parser.add_argument("--tokenizer", help="tokenizer.json (default: the checkpoint's own)")
    parser.add_argument("--stop-at", type=int, help="stop (with a checkpoint) after this step; resume later")
    args = parser.parse_args(argv)
    config = DPOConfig.model_validate(yaml.safe_load(Path(args.config).read_text()) or {})
    train_dpo(args.start, args.data, checkpoint.tokenizer_file(args.start, args.tokenizer), args.out, config,
              stop_at=args.stop_at)


if __name__ == "__main__":
    main()
