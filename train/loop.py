"""The training loop every trainer here shares (pretraining, SFT), and its settings.

AdamW (decoupled weight decay on matrices only), linear warmup then cosine decay to `min_lr`,
gradient clipping and accumulation, bf16 autocast where the device has it, periodic validation,
and a clear stop naming the step when the loss turns NaN or jumps. Checkpoints hold the model,
optimizer, scheduler, loader position and RNG states: a run resumes from the newest one and
continues exactly. One process, or data-parallel (DDP or FSDP) under torchrun or Ray Train: the
rank and world size come from the environment they set.
"""
from __future__ import annotations

import json
import math
import os
import time
from contextlib import nullcontext
from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator

from crawl2model.model.llama import Llama
from crawl2model.pipeline import storage
from crawl2model.train import checkpoint

PEAK_BF16_FLOPS = {"H100": 989e12, "H200": 989e12, "A100": 312e12, "L4": 121e12, "A10": 125e12}  # dense


class ModelSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    dim: int = Field(256, ge=8)
    n_layers: int = Field(4, ge=1)
    n_heads: int = Field(4, ge=1)
    n_kv_heads: int | None = None
    hidden_dim: int | None = None
    tie_embeddings: bool = False
    rope_theta: float = 10000.0
    dropout: float = Field(0.0, ge=0, lt=1)  # training only; its masks come from the RNG a checkpoint restores


class TrainConfig(BaseModel):
    """`pretrain:` options (a stage in crawl.yaml, or the file given to `pipeline train --config`)."""

    model_config = ConfigDict(extra="forbid")
    model: ModelSettings = ModelSettings()
    seq_len: int = Field(256, ge=2)
    batch_size: int = Field(8, ge=1)  # sequences per step and rank, before accumulation
    grad_accum: int = Field(1, ge=1)
    steps: int | None = Field(None, ge=1)  # or `tokens`: a budget, turned into steps
    tokens: int | None = Field(None, ge=1)
    lr: float = Field(3e-4, gt=0)
    min_lr: float | None = None  # end of the cosine (default: lr / 10)
    warmup_steps: int = Field(100, ge=0)
    weight_decay: float = Field(0.1, ge=0)
    betas: tuple[float, float] = (0.9, 0.95)
    grad_clip: float | None = 1.0
    precision: Literal["auto", "fp32", "bf16"] = "auto"  # auto: bf16 autocast on a GPU that has it
    eval_interval: int = Field(100, ge=1)
    eval_batches: int = Field(8, ge=1)
    log_interval: int = Field(10, ge=1)
    checkpoint_interval: int = Field(500, ge=1)
    spike_factor: float | None = 3.0  # stop when the loss exceeds this many times its recent mean
    seed: int = 0
    device: str = "auto"  # auto: cuda when present, else cpu
    compile: bool = False  # torch.compile the model
    parallel: Literal["ddp", "fsdp"] = "ddp"  # under torchrun with more than one process
    peak_flops: float | None = None  # of one device, for MFU (default: known GPUs in bf16)

    @model_validator(mode="after")
    def _length(self) -> TrainConfig:
        if (self.steps is None) == (self.tokens is None):
            raise ValueError("give `steps` or `tokens` (a budget), one of them")
        return self


REPORT_SECONDS = 2.0  # the longest a `report` callback waits for a step between logged ones
_REPORTED = ("step", "loss", "tokens_per_s", "val_loss")


class TrainingError(RuntimeError):
    """The loss went bad: NaN, infinite, or a spike. The message names the step."""


def total_steps(config: TrainConfig, world: int) -> int:
    if config.steps is not None:
        return config.steps
    return max(1, config.tokens // (config.batch_size * config.grad_accum * world * config.seq_len))


def learning_rate(config: TrainConfig, step: int, steps: int) -> float:
    """Linear warmup to `lr`, then a cosine down to `min_lr` at the last step."""
    low = config.min_lr if config.min_lr is not None else config.lr / 10
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    progress = (step - config.warmup_steps) / max(1, steps - config.warmup_steps)
    return low + 0.5 * (config.lr - low) * (1 + math.cos(math.pi * min(progress, 1.0)))


def optimizer_for(model: torch.nn.Module, config: TrainConfig, fused: bool) -> torch.optim.AdamW:
    """AdamW with weight decay on matrices (linear and embedding weights), none on norms."""
    decay = [p for p in model.parameters() if p.requires_grad and p.dim() >= 2]
    other = [p for p in model.parameters() if p.requires_grad and p.dim() < 2]
    return torch.optim.AdamW([{"params": decay, "weight_decay": config.weight_decay},
                              {"params": other, "weight_decay": 0.0}], lr=config.lr, betas=config.betas, fused=fused)


class Distributed:
    """Rank and world size under torchrun (one process otherwise), and the process group."""

    def __init__(self, device: str):
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        if self.world > 1 and not torch.distributed.is_initialized():
            torch.distributed.init_process_group("nccl" if device.startswith("cuda") else "gloo")

    @property
    def main(self) -> bool:
        return self.rank == 0

    def mean(self, value: float, device) -> float:
        if self.world == 1:
            return value
        tensor = torch.tensor([value], device=device)
        torch.distributed.all_reduce(tensor)
        return float(tensor) / self.world

    def close(self) -> None:
        if self.world > 1 and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def pick_device(config: TrainConfig, local_rank: int) -> str:
    """`auto`: this rank's GPU when there is one, else the CPU; a bare `cuda` is this rank's GPU."""
    if config.device == "auto":
        return f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu"
    return f"cuda:{local_rank}" if config.device == "cuda" else config.device


def wrap(model: Llama, config: TrainConfig, dist: Distributed, device: str) -> torch.nn.Module:
    """The model across ranks: DDP, or FSDP (torch's fully_shard, a block at a time); itself alone."""
    if dist.world > 1 and config.parallel == "fsdp":
        from torch.distributed.fsdp import fully_shard

        for block in model.layers:
            fully_shard(block)
        return fully_shard(model)
    if dist.world > 1:
        return torch.nn.parallel.DistributedDataParallel(model, device_ids=[dist.local_rank] if device.startswith("cuda") else None)
    return model


def run_distributed(config: TrainConfig, job) -> dict:
    """Call `job(dist, device)` with this process's rank and device (torchrun's, Ray Train's, or
    a single process's), and leave the process group as it was found."""
    dist = None
    checkpoint.seed_rngs(config.seed)
    try:
        device = pick_device(config, int(os.environ.get("LOCAL_RANK", "0")))
        dist = Distributed(device)
        if device.startswith("cuda"):
            torch.cuda.set_device(device)
        return job(dist, device)
    finally:
        if dist is not None:
            dist.close()


def fit(model: Llama, loader, out_dir: str, config: TrainConfig, dist: Distributed, device: str, log, *,
        validate=None, meta: dict, tokenizer: str | None = None, stop_at: int | None = None, report=None) -> dict:
    """The training loop every trainer here shares: `loader` gives (inputs, targets) batches and
    saves its position (TokenLoader's interface); `validate(model, autocast)` gives a loss.
    Resumes from the newest checkpoint in `out_dir` (a local path or an fsspec URL), which must
    have been trained with the same settings; `meta` goes into every checkpoint's config, and a
    copy of the `tokenizer` file into its folder. `stop_at` ends this call after that step, with a
    checkpoint, as if the job were stopped there (the schedule still runs to the configured length).
    `report`, when given, is called on the first rank with `{"step", "steps", "loss", "tokens_per_s"}`
    (and `val_loss` when validated) at each logged step and at least every REPORT_SECONDS: a run's
    progress (the pipeline's training stages forward it to the driver)."""
    out_dir = str(out_dir)
    model.train()
    parallel = wrap(model, config, dist, device)
    optimizer = optimizer_for(parallel, config, fused=device.startswith("cuda"))
    steps = total_steps(config, dist.world)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: learning_rate(config, s, steps) / config.lr)
    start = _resume(out_dir, parallel, optimizer, scheduler, loader, config, meta, log)
    trained = torch.compile(parallel) if config.compile else parallel
    bf16 = config.precision == "bf16" or (config.precision == "auto" and device.startswith("cuda")
                                          and torch.cuda.is_bf16_supported())
    autocast = torch.autocast(device.split(":")[0], dtype=torch.bfloat16) if bf16 else nullcontext()
    peak = config.peak_flops or _peak_flops(device)
    tokens_per_step = config.seq_len * config.batch_size * config.grad_accum  # per rank
    flops_per_step = model.flops_per_token(config.seq_len) * tokens_per_step
    metrics = MetricsLog(storage.join(out_dir, "metrics.jsonl"), resumed_at=start) if dist.main else None
    recent: list[float] = []
    summary: dict = {"step": start}
    reported = time.monotonic()
    if report and dist.main:
        report({"step": start, "steps": steps})
    try:
        for step in range(start, min(steps, stop_at or steps)):
            started = time.perf_counter()
            loss = _step(trained, optimizer, loader, config, autocast, dist, device)
            scheduler.step()
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            seconds = time.perf_counter() - started
            loss = dist.mean(loss, device)
            _check(loss, recent, step, config)
            summary = {"step": step + 1, "loss": round(loss, 6), "lr": optimizer.param_groups[0]["lr"],
                       "tokens_per_s": round(tokens_per_step * dist.world / seconds),
                       "mfu": round(flops_per_step / seconds / peak, 4) if peak else None}
            if validate and ((step + 1) % config.eval_interval == 0 or step + 1 == steps):
                summary["val_loss"] = round(dist.mean(validate(trained, autocast), device), 6)
            logged = (step + 1) % config.log_interval == 0 or "val_loss" in summary or step == start
            if metrics and logged:
                metrics.write(summary)
                log(" ".join(f"{k} {v}" for k, v in summary.items()))
            if report and dist.main and (logged or step + 1 == steps or time.monotonic() - reported >= REPORT_SECONDS):
                reported = time.monotonic()
                report({"steps": steps, **{k: v for k, v in summary.items() if k in _REPORTED}})
            if (step + 1) % config.checkpoint_interval == 0 or step + 1 in (steps, stop_at):
                if metrics:  # before the checkpoint: a job resumed from it finds every step up to it logged
                    metrics.flush()
                _save(out_dir, step + 1, parallel, optimizer, scheduler, loader, {"train": config.model_dump(mode="json"),
                                                                                  **meta}, dist, tokenizer)
    finally:
        if metrics:
            metrics.close()
    return summary


def _step(model, optimizer, loader, config, autocast, dist, device) -> float:
    """One optimizer step over `grad_accum` micro-batches; returns the mean loss."""
    total = 0.0
    for micro in range(config.grad_accum):
        inputs, targets = (t.to(device, non_blocking=True) for t in loader.next_batch())
        sync = micro == config.grad_accum - 1 or dist.world == 1 or config.parallel != "ddp"
        with (nullcontext() if sync else model.no_sync()), autocast:
            _, loss = model(inputs, targets)
        (loss / config.grad_accum).backward()
        total += float(loss.detach()) / config.grad_accum
    if config.grad_clip:
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return total


def _check(loss: float, recent: list[float], step: int, config: TrainConfig) -> None:
    if not math.isfinite(loss):
        raise TrainingError(f"step {step + 1}: the loss is {loss}; lower lr, check the data, or resume from the "
                            "last checkpoint with other settings")
    if config.spike_factor and len(recent) >= 20 and loss > config.spike_factor * (sum(recent) / len(recent)):
        raise TrainingError(f"step {step + 1}: the loss jumped to {loss:.4f}, {loss / (sum(recent) / len(recent)):.1f}x "
                            f"its mean over the last {len(recent)} steps (spike_factor {config.spike_factor})")
    recent.append(loss)
    del recent[:-50]


@torch.no_grad()
def evaluate(model, loader, config: TrainConfig, autocast, device: str) -> float:
    """Mean loss over the first `eval_batches` batches of an unshuffled loader (the same each time)."""
    model.eval()
    losses = []
    for _ in range(min(config.eval_batches, loader.steps_per_epoch)):
        inputs, targets = loader.next_batch()
        with autocast:
            _, loss = model(inputs.to(device), targets.to(device))
        losses.append(float(loss))
    model.train()
    return sum(losses) / len(losses)


_FULL = dict(full_state_dict=True, cpu_offload=True)  # whole tensors on the CPU, whatever the sharding


# settings that may change between a checkpoint and the job that resumes it: they change how a
# job runs or reports, not what it computes
_RESUMABLE_CHANGES = {"eval_interval", "eval_batches", "log_interval", "checkpoint_interval", "device", "compile",
                      "peak_flops", "spike_factor", "parallel"}


def _resume(out_dir: str, model, optimizer, scheduler, loader, config: TrainConfig, meta: dict, log) -> int:
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_state_dict

    path, state, saved, problems = None, None, None, []
    for path in reversed(checkpoint.steps(out_dir)):  # the newest that loads: a cut one falls back to the one before
        try:
            state, saved = checkpoint.load(path)
            break
        except ValueError as error:
            log(f"skipping {error}")
            problems.append(str(error))
    if state is None:
        if problems:
            raise ValueError(f"no checkpoint in {out_dir} can be read: {'; '.join(problems)}")
        return 0
    vocab_size = meta["model"]["vocab_size"]
    if saved["model"]["vocab_size"] != vocab_size:
        raise ValueError(f"{path}: the checkpoint's model has a vocabulary of {saved['model']['vocab_size']:,}, "
                         f"the token shards {vocab_size:,}: they come from different tokenizers")
    if saved.get("tokenizer_sha256") and meta.get("tokenizer_sha256") not in (None, saved["tokenizer_sha256"]):
        raise ValueError(f"{path} was trained with another tokenizer (sha256 {saved['tokenizer_sha256'][:12]}, this "
                         f"data's {meta['tokenizer_sha256'][:12]}): train into another folder")
    before, now = saved.get("train", {}), config.model_dump(mode="json")
    changed = sorted(k for k in now if k not in _RESUMABLE_CHANGES and before.get(k, now[k]) != now[k])
    if changed:
        raise ValueError(f"{path} was trained with other settings ({', '.join(f'{k}: {before[k]} -> {now[k]}' for k in changed)}); "
                         f"resume with the same settings, or train into another folder")
    set_state_dict(model, optimizer, model_state_dict=state["model"], optim_state_dict=state["optimizer"],
                   options=StateDictOptions(full_state_dict=True))
    scheduler.load_state_dict(state["scheduler"])
    loader.load_state_dict(state["loader"])
    checkpoint.set_rng_state(state["rng"])
    log(f"resumed from {path} at step {state['step']}")
    return int(state["step"])


def _save(out_dir: str, step, model, optimizer, scheduler, loader, saved_config: dict, dist, tokenizer) -> None:
    """Every rank gathers the whole state (FSDP needs them all); the first writes it. The loader
    state is the same on every rank but for the rank, which the resumed job sets again."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_state_dict

    model_state, optimizer_state = get_state_dict(model, optimizer, options=StateDictOptions(**_FULL))
    if dist.main:
        checkpoint.save(out_dir, step, {"model": model_state, "optimizer": optimizer_state,
                                        "scheduler": scheduler.state_dict(), "loader": loader.state_dict()},
                        saved_config, tokenizer)
    if dist.world > 1:
        torch.distributed.barrier()


class MetricsLog:
    """metrics.jsonl: appended line by line on a local disk; elsewhere (an object store, which
    cannot append) kept in memory and written whole at each checkpoint (`flush`, before the
    checkpoint's own files). `resumed_at`: the step a job starts from (0: from scratch); the lines
    of later steps, logged by a job killed after its last checkpoint, are dropped (and a line cut
    by the kill): this job logs those steps again. None keeps every line."""

    def __init__(self, path: str, resumed_at: int | None = None):
        self.path = path
        self.local = storage.is_local(path)
        lines = kept = None
        if resumed_at is not None or not self.local:
            lines = (storage.read_bytes(path) or b"").decode(errors="replace").splitlines(keepends=True)
            kept = lines if resumed_at is None else [line for line in lines if _logged_step(line) <= resumed_at]
        if self.local:
            local = storage.filesystem(path)[1]
            os.makedirs(os.path.dirname(local) or ".", exist_ok=True)
            if kept != lines:
                storage.write_bytes_atomic(path, "".join(kept).encode())
            self.file = open(local, "a")
        else:
            self.lines = kept

    def write(self, row: dict) -> None:
        line = json.dumps(row) + "\n"
        if self.local:
            self.file.write(line)
            self.file.flush()
        else:
            self.lines.append(line)

    def flush(self) -> None:
        if not self.local:
            storage.write_bytes_atomic(self.path, "".join(self.lines).encode())

    def close(self) -> None:
        if self.local:
            self.file.close()
        else:
            self.flush()


def _logged_step(line: str) -> float:
    """The step of a metrics.jsonl line; infinite for a line that is not whole (cut by a kill)."""
    try:
        return int(json.loads(line)["step"]) if line.endswith("\n") else math.inf
    except (ValueError, KeyError, TypeError):
        return math.inf


def _peak_flops(device: str) -> float | None:
    if not device.startswith("cuda"):
        return None
    name = torch.cuda.get_device_name(device)
    return next((flops for key, flops in PEAK_BF16_FLOPS.items() if key in name), None)
