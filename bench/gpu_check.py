"""GPU check: a GPT-2-small-shaped Llama trained through the project's own `fit`, its tokens/s and MFU.

    python bench/gpu_check.py [--steps 50] [--batch 32 --grad-accum 2] [--peak-flops 989e12] [--out F.json]
    python bench/gpu_check.py --tiny          # or GPU_CHECK_TINY=1: a CPU smoke test of this script

The model is model/llama.py's `Llama` at GPT-2 small's shape: dim 768, 12 layers, 12 heads,
vocabulary 50304, sequence length 1024, tied embeddings (as GPT-2's; 123,587,328 parameters;
untied would be 162.2M, with the same training FLOPs per token since `flops_per_token` leaves
the lookup out). It trains on seeded random tokens from an in-memory loader (no token files, no
downloads) through `crawl2model.train.loop.fit` under `run_distributed`, as train/pretrain.py
calls it: bf16 autocast, fused AdamW (fit picks fused on CUDA), `compile: true`. So what is timed
is the real trainer's GPU path: its per-step loss read-back, clipping, scheduler and metrics.

Timing: from fit's own metrics.jsonl (log_interval 1, so one line per step). fit times each step
with perf_counter around the micro-batches, clipping, the optimizer and scheduler step and a
`torch.cuda.synchronize()`, and logs tokens_per_s and mfu from it. The first `--warmup` steps
(compilation, allocator warm-up) are left out; tokens/s over the rest is their tokens over the
sum of their step times, and MFU is that times `model.flops_per_token(seq_len)` over the peak
(loop.py's PEAK_BF16_FLOPS through `_peak_flops`, or `--peak-flops`), which is how fit computes
its per-step mfu. As a cross-check the wall clock between fit's log lines of the first and last
timed steps is also reported (it adds what fit does between steps: the metrics line and the log).

Target: MFU >= 45% on an H100 or H200 at this 124M shape. The last line printed says whether it
was met; the exit status does not depend on it (0 unless something broke).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

if sys.path and sys.path[0] == os.path.dirname(os.path.abspath(__file__)):
    sys.path.pop(0)  # run as a script, bench/tokenize.py would shadow the standard library's `tokenize`
ROOT = Path(__file__).resolve().parents[1]

import torch

TARGET_MFU = 0.45  # on H100/H200, at the 124M shape
FULL = {"dim": 768, "n_layers": 12, "n_heads": 12, "vocab": 50304, "seq_len": 1024, "steps": 50, "batch": 32,
        "grad_accum": 2}
TINY = {"dim": 64, "n_layers": 2, "n_heads": 4, "vocab": 512, "seq_len": 64, "steps": 3, "batch": 4, "grad_accum": 1}


def _import_project() -> None:
    """Make `crawl2model.train` importable from this checkout when the project is not installed
    (a bare GPU machine): its subpackages live in the repository's top-level folders
    (pyproject's package-dir), so they are looked for there too."""
    import importlib.util

    if importlib.util.find_spec("crawl2model") is None:
        sys.path.insert(0, str(ROOT))
    import crawl2model

    try:
        found = importlib.util.find_spec("crawl2model.train") is not None
    except ModuleNotFoundError:
        found = False
    if not found:
        crawl2model.__path__.append(str(ROOT))  # crawl2model.train -> ROOT/train, .model -> ROOT/model, ...


class SyntheticLoader:
    """Seeded random tokens, made in memory: the loader interface `fit` uses (`next_batch`,
    `state_dict`, `load_state_dict`, `steps_per_epoch`). Batch n is drawn from `seed` and n alone,
    so a state (the batch count) resumes exactly."""

    def __init__(self, vocab_size: int, seq_len: int, batch_size: int, seed: int = 0):
        self.vocab_size, self.seq_len, self.batch_size, self.seed = vocab_size, seq_len, batch_size, seed
        self.steps_per_epoch = 2**31  # endless: evaluate() takes min(eval_batches, this)
        self.step = 0
        self.generator = torch.Generator()

    def next_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        self.generator.manual_seed(self.seed * 1_000_003 + self.step)
        self.step += 1
        rows = torch.randint(0, self.vocab_size, (self.batch_size, self.seq_len + 1), generator=self.generator)
        return rows[:, :-1], rows[:, 1:]

    def state_dict(self) -> dict:
        return {"step": self.step, "seed": self.seed, "synthetic": True}

    def load_state_dict(self, state: dict) -> None:
        if state.get("seed") != self.seed or not state.get("synthetic"):
            raise ValueError(f"the saved loader state is of other data: {state}")
        self.step = int(state["step"])


def parse(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tiny", action="store_true", default=os.environ.get("GPU_CHECK_TINY", "") not in ("", "0"),
                        help="dim 64, 2 layers, seq 64, 3 steps, no compile, CPU allowed (also GPU_CHECK_TINY=1)")
    parser.add_argument("--steps", type=int, help="steps in all, warm-up included (default 50; tiny 3)")
    parser.add_argument("--warmup", type=int, help="first steps left out of the timing (default min(10, steps/5), at least 1)")
    parser.add_argument("--batch", type=int, help="sequences per micro-batch (default 32; tiny 4)")
    parser.add_argument("--grad-accum", type=int, help="micro-batches per step (default 2; tiny 1)")
    parser.add_argument("--no-compile", action="store_true", help="eager mode (the check itself compiles)")
    parser.add_argument("--device", default="auto", help="TrainConfig.device (default auto: cuda when present)")
    parser.add_argument("--peak-flops", type=float, help="the device's dense bf16 peak in FLOP/s (default: loop.py's table)")
    parser.add_argument("--out", help="where the JSON of the figures goes (default $OUT/gpu_check.json, else ./gpu_check.json)")
    args = parser.parse_args(argv)
    shape = TINY if args.tiny else FULL
    args.steps = args.steps or shape["steps"]
    args.batch = args.batch or shape["batch"]
    args.grad_accum = args.grad_accum or shape["grad_accum"]
    args.warmup = args.warmup if args.warmup is not None else min(10, max(1, args.steps // 5))
    if not 1 <= args.warmup < args.steps:
        parser.error(f"--warmup ({args.warmup}) must be at least 1 and below --steps ({args.steps})")
    args.compile = not (args.tiny or args.no_compile)
    args.shape = shape
    if args.out is None:
        args.out = os.path.join(os.environ["OUT"], "gpu_check.json") if os.environ.get("OUT") else "gpu_check.json"
    return args


def main(argv=None) -> int:
    args = parse(argv)
    _import_project()
    from crawl2model.model.llama import Llama, LlamaConfig
    from crawl2model.train import loop
    from crawl2model.train.loop import TrainConfig, fit, run_distributed

    if not args.tiny and args.device in ("auto", "cuda") and not torch.cuda.is_available():
        print("gpu_check: no CUDA device; the 124M check needs one (--tiny runs a CPU smoke test)", file=sys.stderr)
        return 2
    shape = args.shape
    config = TrainConfig(
        model={"dim": shape["dim"], "n_layers": shape["n_layers"], "n_heads": shape["n_heads"], "tie_embeddings": True},
        seq_len=shape["seq_len"], batch_size=args.batch, grad_accum=args.grad_accum, steps=args.steps,
        warmup_steps=args.warmup, precision="auto" if args.tiny else "bf16", log_interval=1,
        eval_interval=10**9, checkpoint_interval=args.steps + 1,  # only the last step's checkpoint (fit always writes it)
        spike_factor=None, device=args.device, compile=args.compile, peak_flops=args.peak_flops, seed=0)

    marks: dict[int, float] = {}  # step -> perf_counter when fit logged it (the step's end)
    lines: list[str] = []

    def log(line: str) -> None:
        if line.startswith("step "):
            marks[int(line.split()[1])] = time.perf_counter()
        lines.append(line)
        if args.tiny or not line.startswith("step ") or int(line.split()[1]) in (1, args.warmup, args.steps) \
                or int(line.split()[1]) % 10 == 0:
            print(f"  fit: {line}", flush=True)

    info: dict = {}

    def job(dist, device):
        model_config = LlamaConfig(vocab_size=shape["vocab"], max_seq_len=config.seq_len, **config.model.model_dump())
        torch.manual_seed(config.seed)
        model = Llama(model_config).to(device)  # as train/pretrain.py builds it
        loader = SyntheticLoader(shape["vocab"], config.seq_len, config.batch_size, seed=config.seed)
        info.update(device=device, params=model.num_params(), flops_per_token=model.flops_per_token(config.seq_len),
                    peak=config.peak_flops or loop._peak_flops(device), model_config=model_config.to_dict())
        print(f"model: Llama dim {shape['dim']}, {shape['n_layers']} layers, {shape['n_heads']} heads, vocabulary "
              f"{shape['vocab']}, seq_len {config.seq_len}, tied embeddings: {model.num_params():,} parameters; "
              f"{info['flops_per_token'] / 1e6:,.1f} MFLOP per token trained", flush=True)
        print(f"training: {args.steps} steps ({args.warmup} warm-up) of {config.batch_size} x {config.seq_len} x "
              f"{config.grad_accum} accumulated on {device}, "
              f"{'bf16 autocast' if config.precision == 'bf16' else 'precision ' + config.precision}, "
              f"{'fused ' if device.startswith('cuda') else ''}AdamW, compile {config.compile}", flush=True)
        with tempfile.TemporaryDirectory(prefix="gpu-check-") as out_dir:
            started = time.perf_counter()
            summary = fit(model, loader, out_dir, config, dist, device, log,
                          meta={"model": model_config.to_dict(), "data": "synthetic"})
            info["fit_s"] = time.perf_counter() - started
            info["started"] = started
            rows = [json.loads(line) for line in Path(out_dir, "metrics.jsonl").read_text().splitlines()]
        if device.startswith("cuda"):
            info["max_memory_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
        return summary, rows

    summary, rows = run_distributed(config, job)
    device, peak, fpt = info["device"], info["peak"], info["flops_per_token"]
    tokens_per_step = config.seq_len * config.batch_size * config.grad_accum
    timed = [row for row in rows if row["step"] > args.warmup]
    if len(timed) != args.steps - args.warmup:
        raise RuntimeError(f"metrics.jsonl holds {len(timed)} timed steps, expected {args.steps - args.warmup}")
    step_s = [tokens_per_step / row["tokens_per_s"] for row in timed]
    tokens_per_s = tokens_per_step * len(timed) / sum(step_s)
    wall = marks[args.steps] - marks[args.warmup]
    tokens_per_s_wall = tokens_per_step * len(timed) / wall
    mfu = fpt * tokens_per_s / peak if peak else None
    mfu_wall = fpt * tokens_per_s_wall / peak if peak else None
    step_mfu = sorted(row["mfu"] for row in timed if row.get("mfu") is not None)
    gpu = torch.cuda.get_device_name(device) if device.startswith("cuda") else None
    on_target_gpu = bool(gpu) and any(name in gpu for name in ("H100", "H200"))
    full_shape = not args.tiny and info["params"] == 123_587_328
    target_met = (mfu >= TARGET_MFU) if (mfu is not None and on_target_gpu and full_shape) else None
    result = {
        "check": "gpu_check", "tiny": args.tiny, "device": device, "gpu": gpu,
        "torch": torch.__version__, "cuda": torch.version.cuda, "cuda_available": torch.cuda.is_available(),
        "params": info["params"], "tie_embeddings": True, "model": info["model_config"],
        "flops_per_token": fpt, "seq_len": config.seq_len, "batch_size": config.batch_size,
        "grad_accum": config.grad_accum, "tokens_per_step": tokens_per_step, "steps": args.steps,
        "warmup_steps": args.warmup, "timed_steps": len(timed), "compile": config.compile,
        "precision": "bf16 autocast" if config.precision == "bf16" else config.precision,
        "fused_adamw": device.startswith("cuda"),
        "timing": "fit's metrics.jsonl: timed steps' tokens over the sum of their step times (fit's perf_counter "
                  "around each step, cuda-synchronized); wall: between fit's log lines of the last warm-up and last step",
        "tokens_per_s": round(tokens_per_s, 1), "tokens_per_s_wall": round(tokens_per_s_wall, 1),
        "mfu": None if mfu is None else round(mfu, 4), "mfu_wall": None if mfu_wall is None else round(mfu_wall, 4),
        "mfu_step_median": step_mfu[len(step_mfu) // 2] if step_mfu else None,
        "step_ms_median": round(1000 * sorted(step_s)[len(step_s) // 2], 2),
        "peak_flops": peak, "peak_flops_source": "--peak-flops" if args.peak_flops else ("loop.PEAK_BF16_FLOPS" if peak else None),
        "target": f"MFU >= {TARGET_MFU:.0%} on H100/H200 at the 124M shape", "target_mfu": TARGET_MFU,
        "target_met": target_met,
        "warmup_s": round(marks[args.warmup] - info["started"], 2),  # fit's start (model wrap, compile) to the warm-up's end
        "after_last_step_s": round(info["started"] + info["fit_s"] - marks[args.steps], 2),  # the last checkpoint
        "fit_s": round(info["fit_s"], 2), "final_loss": summary.get("loss"),
        "max_memory_gib": round(info["max_memory_gib"], 2) if "max_memory_gib" in info else None,
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "steps_log": rows,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"figures written to {args.out}")

    where = gpu or f"{device} ({torch.get_num_threads()} threads)"
    if mfu is None:
        mfu_text = "MFU n/a (no peak for this device: give --peak-flops)"
    else:
        mfu_text = f"MFU {mfu:.1%} of {peak / 1e12:,.4g} TFLOP/s (wall {mfu_wall:.1%})"
    verdict = {True: "MET", False: "NOT MET", None: "n/a here (" + ("tiny smoke test" if args.tiny else
                                                                  "not an H100/H200" if not on_target_gpu else
                                                                  "not the 124M shape" if not full_shape else
                                                                  "no MFU") + ")"}[target_met]
    print(f"GPU CHECK: {info['params'] / 1e6:.1f}M params, {config.batch_size}x{config.seq_len}x{config.grad_accum} "
          f"tokens/step, {len(timed)} timed steps on {where}: {tokens_per_s:,.0f} tokens/s (wall {tokens_per_s_wall:,.0f}), "
          f"{mfu_text}; target MFU >= {TARGET_MFU:.0%} on H100/H200 at 124M: {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
