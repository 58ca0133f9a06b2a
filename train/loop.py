"""The training loop every trainer here shares (pretraining, SFT, DPO: an objective each), and its settings.

AdamW (decoupled weight decay on matrices only), linear warmup then cosine decay to `min_lr`,
gradient clipping and accumulation, bf16 autocast where the device has it, periodic validation,
and a clear stop naming the step when the loss turns NaN or jumps. Checkpoints hold the model,
optimizer, scheduler, loader position and RNG states: a run resumes from the newest one and
continues exactly, at any world size or mesh. One process, or a mesh of data, tensor and pipeline
parallel ranks (train/parallel.py) under torchrun or Ray Train: the rank and world size come from
the environment they set.
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
from crawl2model.train.parallel import (Layout, ParallelConfig, Pipeline, clip_grad_norm, held_weights, layout_for,
                                        parallelize)

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
    parallel: ParallelConfig = ParallelConfig()  # the mesh of a job of several processes (train/parallel.py)
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


def total_steps(config: TrainConfig, replicas: int) -> int:
    """`steps`, or the steps a `tokens` budget buys with `replicas` data-parallel replicas."""
    if config.steps is not None:
        return config.steps
    return max(1, config.tokens // (config.batch_size * config.grad_accum * replicas * config.seq_len))


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
    """Rank and world size under torchrun (one process otherwise), the process group, and this
    process's place in the mesh `parallel` asks for (`layout`: its data-parallel rank, its
    pipeline stage)."""

    def __init__(self, device: str, parallel: ParallelConfig | None = None):
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        if self.world > 1 and not torch.distributed.is_initialized():
            torch.distributed.init_process_group("nccl" if device.startswith("cuda") else "gloo")
        self.layout: Layout = layout_for(parallel or ParallelConfig(), self.world, device)

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


def run_distributed(config: TrainConfig, job) -> dict:
    """Call `job(dist, device)` with this process's rank and device (torchrun's, Ray Train's, or
    a single process's), and leave the process group as it was found."""
    dist = None
    checkpoint.seed_rngs(config.seed)
    try:
        device = pick_device(config, int(os.environ.get("LOCAL_RANK", "0")))
        dist = Distributed(device, config.parallel)
        if device.startswith("cuda"):
            torch.cuda.set_device(device)
        return job(dist, device)
    finally:
        if dist is not None:
            dist.close()


def language_modeling(model, batch) -> tuple[torch.Tensor, dict]:
    """Pretraining's and SFT's objective: the mean next-token loss of (inputs, targets)."""
    inputs, targets = batch
    return model(inputs, targets)[1], {}


def fit(model: Llama, loader, out_dir: str, config: TrainConfig, dist: Distributed, device: str, log, *,
        validate=None, meta: dict, tokenizer: str | None = None, stop_at: int | None = None, report=None,
        objective=language_modeling) -> dict:
    """The training loop every trainer here shares: `loader` gives batches and saves its position
    (train/data.py's EpochLoader interface); `objective(model, batch)` gives the loss to minimise
    and metrics to log beside it (language modeling, or DPO's); `validate(model, autocast)` gives a
    held-out loss, or a dict of metrics with a "loss" (logged as `val/<name>`).
    The model is spread over the job's processes as `config.parallel` asks (train/parallel.py;
    a pipeline runs language modeling only). Resumes from the newest checkpoint in `out_dir` (a
    local path or an fsspec URL), which must have been trained with the same settings, at any
    world size and mesh; `meta` goes into every checkpoint's config, and a copy of the `tokenizer`
    file into its folder. `stop_at` ends this call after that step, with a checkpoint, as if the
    job were stopped there (the schedule still runs to the configured length). `report`, when
    given, is called on the first rank with `{"step", "steps", "loss", "tokens_per_s"}` (and
    `val_loss` when validated) at each logged step and at least every REPORT_SECONDS: a run's
    progress (the pipeline's training stages forward it to the driver)."""
    out_dir, layout = str(out_dir), dist.layout
    problems = config.parallel.check(model.config, config.batch_size)
    if layout.pp > 1 and (objective is not language_modeling or config.compile):
        problems.append("a pipeline (pp > 1) trains language modeling (pretraining, SFT) without compile")
    if problems:
        raise ValueError(f"parallel: {'; '.join(problems)}")
    flops_per_token, weights = model.flops_per_token(config.seq_len), model.num_params()  # whole, before a pipeline cuts it
    model.train()
    parallel = parallelize(model, config.parallel, layout, device)
    pipeline = Pipeline(parallel, config.parallel, layout, device, config.grad_accum) if layout.pp > 1 else None
    if dist.world > 1:
        log(f"mesh pp {layout.pp} x dp {layout.dp} x tp {layout.tp}: rank {dist.rank} holds "
            f"{held_weights(parallel):,} of the model's {weights:,} weights")
    optimizer = optimizer_for(parallel, config, fused=device.startswith("cuda"))
    steps = total_steps(config, layout.dp)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: learning_rate(config, s, steps) / config.lr)
    global_batch = config.batch_size * config.grad_accum * layout.dp
    meta = {**meta, "global_batch": global_batch}
    start = _resume(out_dir, parallel, optimizer, scheduler, loader, config, meta, log)
    trained = torch.compile(parallel) if config.compile else parallel
    bf16 = config.precision == "bf16" or (config.precision == "auto" and device.startswith("cuda")
                                          and torch.cuda.is_bf16_supported())
    autocast = torch.autocast(device.split(":")[0], dtype=torch.bfloat16) if bf16 else nullcontext()
    peak = config.peak_flops or _peak_flops(device)
    flops_per_step = flops_per_token * global_batch * config.seq_len
    metrics = MetricsLog(storage.join(out_dir, "metrics.jsonl"), resumed_at=start) if dist.main else None
    if validate and pipeline:
        validate = None
        log("no validation with pp > 1: the held-out loss needs the whole model in one process")
    step_once = _pipeline_step if pipeline else _step
    recent: list[float] = []
    summary: dict = {"step": start}
    reported = time.monotonic()
    if report and dist.main:
        report({"step": start, "steps": steps})
    try:
        for step in range(start, min(steps, stop_at or steps)):
            started = time.perf_counter()
            loss, values = step_once(pipeline or trained, optimizer, loader, config, autocast, dist, device, objective)
            scheduler.step()
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            seconds = time.perf_counter() - started
            loss = dist.mean(loss, device)
            _check(loss, recent, step, config)
            summary = {"step": step + 1, "loss": round(loss, 6), "lr": optimizer.param_groups[0]["lr"],
                       **{k: round(dist.mean(v, device), 6) for k, v in values.items()},
                       "tokens_per_s": round(global_batch * config.seq_len / seconds),
                       "mfu": round(flops_per_step / seconds / (peak * dist.world), 4) if peak else None}
            if validate and ((step + 1) % config.eval_interval == 0 or step + 1 == steps):
                summary.update(_validated(validate(trained, autocast), dist, device))
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
                checkpoint.save_sharded(out_dir, step + 1, parallel, optimizer, {
                    "scheduler": scheduler.state_dict(), "loader": loader.state_dict()},
                    {"train": config.model_dump(mode="json"), **meta}, tokenizer, dist.main)
    finally:
        if metrics:
            metrics.close()
    return summary


def _validated(result, dist: Distributed, device: str) -> dict:
    """A validation's loss (a float), or its metrics (a dict with a "loss"), as summary keys."""
    if not isinstance(result, dict):
        return {"val_loss": round(dist.mean(result, device), 6)}
    result = {k: round(dist.mean(v, device), 6) for k, v in result.items()}
    return {"val_loss": result["loss"], **{f"val/{k}": v for k, v in result.items()}}


def _step(model, optimizer, loader, config, autocast, dist, device, objective) -> tuple[float, dict]:
    """One optimizer step over `grad_accum` micro-batches; returns the mean loss and metrics."""
    total, values = 0.0, {}
    ddp = isinstance(getattr(model, "_orig_mod", model), torch.nn.parallel.DistributedDataParallel)
    for micro in range(config.grad_accum):
        batch = _to(loader.next_batch(), device)
        sync = micro == config.grad_accum - 1 or not ddp
        with (nullcontext() if sync else model.no_sync()), autocast:
            loss, metrics = objective(model, batch)
        (loss / config.grad_accum).backward()
        total += float(loss.detach()) / config.grad_accum
        for key, value in metrics.items():
            values[key] = values.get(key, 0.0) + value / config.grad_accum
    _update(model.parameters(), optimizer, config, dist)
    return total, values


def _pipeline_step(pipeline: Pipeline, optimizer, loader, config, autocast, dist, device, objective) -> tuple[float, dict]:
    """One optimizer step of a pipeline stage: each of `grad_accum` batches runs the schedule."""
    total = 0.0
    for _ in range(config.grad_accum):
        inputs, targets = _to(loader.next_batch(), device)
        with autocast:
            total += pipeline.step(inputs, targets)  # the schedule's loss is already / grad_accum
    _update([p for group in optimizer.param_groups for p in group["params"]], optimizer, config, dist)
    return total, {}


def _update(parameters, optimizer, config: TrainConfig, dist: Distributed) -> None:
    if config.grad_clip:
        clip_grad_norm(list(parameters), config.grad_clip, dist.layout)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def _to(batch, device: str) -> list:
    return [t.to(device, non_blocking=True) if isinstance(t, torch.Tensor) else t for t in batch]


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


# settings that may change between a checkpoint and the job that resumes it: they change how a
# job runs or reports, not what it computes. batch_size may change with the number of replicas
# when their product, the global batch, does not (checked apart).
_RESUMABLE_CHANGES = {"eval_interval", "eval_batches", "log_interval", "checkpoint_interval", "device", "compile",
                      "peak_flops", "spike_factor", "parallel", "batch_size"}


def _resume(out_dir: str, model, optimizer, scheduler, loader, config: TrainConfig, meta: dict, log) -> int:
    """Load the newest readable checkpoint in `out_dir` into this job, whatever mesh wrote it;
    returns its step (0: none)."""
    path, state, saved, problems = None, None, None, []
    for path in reversed(checkpoint.steps(out_dir)):  # the newest that loads: a cut one falls back to the one before
        try:
            state, saved = checkpoint.load_state(path)
            break
        except ValueError as error:
            log(f"skipping {error}")
            problems.append(str(error))
    if state is None:
        if problems:
            raise ValueError(f"no checkpoint in {out_dir} can be read: {'; '.join(problems)}")
        return 0
    _same_training(path, saved, config, meta)
    checkpoint.load_sharded(path, model, optimizer)
    scheduler.load_state_dict(state["scheduler"])
    loader.load_state_dict(state["loader"])
    checkpoint.set_rng_state(state["rng"])
    log(f"resumed from {path} at step {state['step']}")
    return int(state["step"])


def _same_training(path: str, saved: dict, config: TrainConfig, meta: dict) -> None:
    """ValueError unless checkpoint `path` (its config.json: `saved`) trained what this job trains."""
    vocab_size = meta["model"]["vocab_size"]
    if saved["model"]["vocab_size"] != vocab_size:
        raise ValueError(f"{path}: the checkpoint's model has a vocabulary of {saved['model']['vocab_size']:,}, "
                         f"the token shards {vocab_size:,}: they come from different tokenizers")
    if saved.get("tokenizer_sha256") and meta.get("tokenizer_sha256") not in (None, saved["tokenizer_sha256"]):
        raise ValueError(f"{path} was trained with another tokenizer (sha256 {saved['tokenizer_sha256'][:12]}, this "
                         f"data's {meta['tokenizer_sha256'][:12]}): train into another folder")
    before, now = saved.get("train", {}), config.model_dump(mode="json")
    changed = [f"{k}: {before[k]} -> {now[k]}" for k in sorted(now)
               if k not in _RESUMABLE_CHANGES and before.get(k, now[k]) != now[k]]
    if saved.get("global_batch", meta["global_batch"]) != meta["global_batch"]:
        changed.append(f"global batch (batch_size x grad_accum x dp): {saved['global_batch']} -> {meta['global_batch']}")
    if changed:
        raise ValueError(f"{path} was trained with other settings ({', '.join(changed)}); resume with the same "
                         f"settings, or train into another folder")


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
