"""DPO from a pretrained (or SFT) checkpoint on preference pairs.

The reference is a frozen copy of the starting checkpoint; its log-probabilities are computed
under no_grad, once per pair when `precompute_reference` is set. Pairs are split into training and
held-out sets by a seeded permutation; each step takes the next `batch_size` training pairs of a
seeded order. metrics.jsonl logs the loss and the rewards (chosen, rejected, margins,
accuracies), and on the held-out pairs every `eval_interval` steps.
"""
from __future__ import annotations

import copy
import random
import time
from pathlib import Path

import torch
from pydantic import BaseModel, ConfigDict, Field

from crawl2model.model.special_tokens import PAD
from crawl2model.pipeline import storage
from crawl2model.train import checkpoint
from crawl2model.train.chat import ChatTokens
from crawl2model.train.dpo import dpo_loss, reference_logps, sequence_logps
from crawl2model.train.preferences import Pair, collate, read_pairs
from crawl2model.train.loop import REPORT_SECONDS, MetricsLog, learning_rate
from crawl2model.train.pretrain import load_model


class DPOConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    steps: int = Field(100, ge=1)
    batch_size: int = Field(8, ge=1)  # pairs per step
    lr: float = Field(5e-6, gt=0)
    min_lr: float | None = None
    warmup_steps: int = Field(10, ge=0)
    weight_decay: float = Field(0.0, ge=0)
    grad_clip: float | None = 1.0
    beta: float = Field(0.1, gt=0)
    label_smoothing: float = Field(0.0, ge=0, lt=0.5)
    max_len: int = Field(512, ge=8)
    precompute_reference: bool = False
    val_fraction: float = Field(0.1, ge=0, lt=1)
    eval_interval: int = Field(50, ge=1)
    log_interval: int = Field(10, ge=1)
    seed: int = 0


def train_dpo(start: str | Path, data: list[str | Path], tokenizer_file: str | Path, out_dir: str | Path,
              config: DPOConfig, log=print, report=None) -> dict:
    """Align the model of checkpoint `start` on the pairs in `data`; writes the last checkpoint
    and metrics.jsonl to `out_dir`; returns the last held-out metrics. `report`, when given, is told
    `{"message": ...}` of the pairs used, truncated and skipped, and each logged step as `loop.fit`
    tells its own (`{"step", "steps", "loss", "tokens_per_s"}`)."""
    from tokenizers import Tokenizer

    out_dir = str(out_dir)
    tokenizer = Tokenizer.from_file(storage.local_copy(str(tokenizer_file)))
    chat = ChatTokens(tokenizer)
    policy, saved = load_model(start)
    if tokenizer.get_vocab_size() != policy.config.vocab_size:
        raise ValueError(f"{tokenizer_file} has {tokenizer.get_vocab_size():,} tokens, the model "
                         f"{policy.config.vocab_size:,}: another tokenizer")
    pairs, pairs_read = read_pairs(data, chat, min(config.max_len, policy.config.max_seq_len))
    log(f"{pairs_read.used} pairs ({pairs_read.truncated} truncated); skipped {dict(pairs_read.skipped)} "
        f"{pairs_read.problems[:5]}")
    if report:
        skipped = sum(pairs_read.skipped.values())
        reasons = ", ".join(f"{reason}: {count:,}" for reason, count in pairs_read.skipped.most_common(3))
        report({"message": f"{pairs_read.used:,} pairs used ({pairs_read.truncated:,} truncated to {config.max_len} "
                           f"tokens); {skipped:,} skipped" + (f" ({reasons})" if reasons else "")})
    order = list(range(len(pairs)))
    random.Random(config.seed).shuffle(order)
    held = max(1, int(len(pairs) * config.val_fraction)) if config.val_fraction else 0
    val, train = [pairs[i] for i in order[:held]], [pairs[i] for i in order[held:]]
    if len(train) < config.batch_size:
        raise ValueError(f"{len(train)} training pairs, fewer than one batch of {config.batch_size}")
    reference = copy.deepcopy(policy).requires_grad_(False).eval()
    pad = tokenizer.token_to_id(PAD) or 0
    cached = _reference_table(reference, train, pad, config.batch_size) if config.precompute_reference else None
    policy.train()
    checkpoint.seed_rngs(config.seed)  # torch's for dropout; all of them for the checkpoint's bytes
    optimizer = torch.optim.AdamW(policy.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: learning_rate(config, s, config.steps) / config.lr)
    shuffle = random.Random(config.seed + 1)
    batches = _batches(len(train), config.batch_size, shuffle)
    result: dict = {}
    metrics = MetricsLog(storage.join(out_dir, "metrics.jsonl"), resumed_at=0)  # a DPO job always starts
    # from step 0 (below): the lines of a killed one are dropped, not logged twice
    reported = time.monotonic()
    if report:
        report({"step": 0, "steps": config.steps})
    try:
        for step in range(config.steps):
            started = time.perf_counter()
            chosen_index = next(batches)
            batch = [train[i] for i in chosen_index]
            ids, labels = collate(batch, pad)
            logps = sequence_logps(policy, ids, labels)
            ref = (torch.stack([cached[i] for i in chosen_index]).T.reshape(-1) if cached is not None
                   else reference_logps(reference, ids, labels))
            n = len(batch)
            loss, values = dpo_loss(logps[:n], logps[n:], ref[:n], ref[n:], config.beta, config.label_smoothing)
            loss.backward()
            if config.grad_clip:
                torch.nn.utils.clip_grad_norm_(policy.parameters(), config.grad_clip)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            seconds = time.perf_counter() - started
            row = {"step": step + 1, "loss": round(loss.item(), 6), **{k: round(v, 6) for k, v in values.items()}}
            if val and ((step + 1) % config.eval_interval == 0 or step + 1 == config.steps):
                result = {f"val/{k}": round(v, 6) for k, v in evaluate(policy, reference, val, pad, config).items()}
                row.update(result)
            logged = (step + 1) % config.log_interval == 0 or step + 1 == config.steps or "val/loss" in row
            if logged:
                metrics.write(row)
                log(" ".join(f"{k} {v}" for k, v in row.items()))
            if report and (logged or time.monotonic() - reported >= REPORT_SECONDS):
                reported = time.monotonic()
                report({"step": step + 1, "steps": config.steps, "loss": row["loss"],
                        "tokens_per_s": round(ids.numel() / seconds),
                        **({"val_loss": row["val/loss"]} if "val/loss" in row else {})})
    finally:
        metrics.close()
    checkpoint.save(out_dir, config.steps, {"model": policy.state_dict()},
                    {**saved, "dpo": config.model_dump(mode="json"), "aligned": "dpo"}, str(tokenizer_file))  # weights only:
    # a DPO job is short; a killed one starts again from `start` (the reference must be that model)
    return result


def _batches(size: int, batch: int, rng: random.Random):
    """Index lists of `batch` training pairs: a new seeded order every pass."""
    while True:
        order = list(range(size))
        rng.shuffle(order)
        for first in range(0, size - batch + 1, batch):
            yield order[first:first + batch]


def _reference_table(reference, pairs: list[Pair], pad: int, batch: int) -> list[torch.Tensor]:
    """The reference's (chosen, rejected) log-probabilities of every pair, computed once."""
    table = []
    for first in range(0, len(pairs), batch):
        chunk = pairs[first:first + batch]
        ids, labels = collate(chunk, pad)
        logps = reference_logps(reference, ids, labels)
        table += [torch.stack([logps[i], logps[len(chunk) + i]]) for i in range(len(chunk))]
    return table


@torch.no_grad()
def evaluate(policy, reference, pairs: list[Pair], pad: int, config: DPOConfig) -> dict[str, float]:
    """DPO loss and rewards over the held-out pairs."""
    policy.eval()
    totals, count = {}, 0
    for first in range(0, len(pairs), config.batch_size):
        chunk = pairs[first:first + config.batch_size]
        ids, labels = collate(chunk, pad)
        logps, ref = sequence_logps(policy, ids, labels), reference_logps(reference, ids, labels)
        n = len(chunk)
        loss, values = dpo_loss(logps[:n], logps[n:], ref[:n], ref[n:], config.beta, config.label_smoothing)
        for key, value in {"loss": float(loss), **values}.items():
            totals[key] = totals.get(key, 0.0) + value * n
        count += n
    policy.train()
    return {key: value / count for key, value in totals.items()}
