"""Training throughput: our trainer vs a minimal plain PyTorch loop, same model, batch and data.

    python bench/train.py [--steps 30] [--dim 384 --layers 6]      # ~10M parameters by default
    python bench/train.py --device cuda --dim 768 --layers 12 --heads 12 --seq-len 1024 [--compile]

Both train the same Llama (model/llama.py) with AdamW on the same batches of tiny Shakespeare
(../shared/data/tinyshakespeare) tokenized by a BPE trained here. The plain loop is what a user
would write by hand: random windows from one in-memory tensor, forward, backward, step. Ours is
train/pretrain.py: memory-mapped shards, the seeded loader, the schedule, clipping, metrics and
NaN checks (checkpoints and validation off for the timing). The first 5 steps of each are warm-up.
On a GPU both use bf16 autocast and fused AdamW, and ours reports its MFU (model FLOPs per second
over the GPU's dense bf16 peak).
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

if sys.path and sys.path[0] == os.path.dirname(os.path.abspath(__file__)):
    sys.path.pop(0)  # run as a script, bench/tokenize.py would shadow the standard library's `tokenize`
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

SHAKESPEARE = Path(__file__).resolve().parents[2] / "shared/data/tinyshakespeare/input.txt"


def make_tokens(folder: Path, text: Path = SHAKESPEARE) -> Path:
    """Token shards of tiny Shakespeare, written by the real tokenize stage's phases."""
    import re

    import pyarrow as pa

    from crawl2model.pipeline import storage
    from crawl2model.pipeline.global_stage import PhaseContext
    from crawl2model.pipeline.plan import StageNode
    from crawl2model.pipeline.worker import run_phases
    from crawl2model.stages.tokenize import Tokenize
    from crawl2model.stages.train_tokenizer import TrainTokenizerConfig, train_bpe

    speeches = [s.strip() for s in re.split(r"\n\s*\n", text.read_text()) if s.strip()]
    train_bpe(iter([speeches]), TrainTokenizerConfig(vocab_size=4096)).save(str(folder / "tokenizer.json"))
    table = pa.table({"id": [f"s{i}" for i in range(len(speeches))], "text": speeches})
    inputs = [("00000", storage.write_parquet(str(folder / "in.parquet"), table).path)]
    node = StageNode("tokenize", Tokenize, Tokenize.Config(tokenizer=str(folder / "tokenizer.json"), val_fraction=0.01,
                                                           seed=0), run_dir=str(folder), fingerprint="bench")
    context = PhaseContext(f"{node.directory}/phases", 1, ("00000",), (inputs[0][1],), node.artifact_dir, node.name)
    run_phases(node, context, inputs)
    return Path(node.artifact_dir)


def plain_loop(tokens: Path, args) -> float:
    """Tokens per second of a hand-written loop over the same model and batch size."""
    import numpy as np

    from crawl2model.model.llama import Llama, LlamaConfig
    from crawl2model.train.tokens import load_index

    from contextlib import nullcontext

    index = load_index(tokens)
    stream = torch.from_numpy(np.concatenate([s.tokens for s in index.open("train")]).astype(np.int64))
    torch.manual_seed(0)
    model = Llama(LlamaConfig(vocab_size=index.vocab_size, dim=args.dim, n_layers=args.layers, n_heads=args.heads,
                              max_seq_len=args.seq_len)).to(args.device)
    cuda = args.device.startswith("cuda")
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-4, fused=cuda)
    trained = torch.compile(model) if args.compile else model
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if cuda else nullcontext()
    started = None
    for step in range(args.steps + 5):
        if step == 5:
            if cuda:
                torch.cuda.synchronize()
            started = time.perf_counter()
        starts = torch.randint(0, len(stream) - args.seq_len - 1, (args.batch,))
        rows = torch.stack([stream[s:s + args.seq_len + 1] for s in starts.tolist()]).to(args.device)
        with autocast:
            _, loss = trained(rows[:, :-1], rows[:, 1:])
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    if cuda:
        torch.cuda.synchronize()
    return args.steps * args.batch * args.seq_len / (time.perf_counter() - started), model.num_params()


def ours(tokens: Path, out: Path, args) -> tuple[float, float | None]:
    """Tokens per second of train/pretrain.py, and its mean MFU over the timed steps (GPU only)."""
    import json

    from crawl2model.train.loop import TrainConfig
    from crawl2model.train.pretrain import train

    config = TrainConfig(model={"dim": args.dim, "n_layers": args.layers, "n_heads": args.heads}, seq_len=args.seq_len,
                         batch_size=args.batch, steps=args.steps + 5, warmup_steps=5, log_interval=1,
                         eval_interval=10**9, checkpoint_interval=10**9, spike_factor=None, device=args.device,
                         compile=args.compile)
    marks = []
    train(tokens, out, config, log=lambda _: marks.append(time.perf_counter()))
    times = marks[5:-1]  # one log line per step, written as it ends; the last step also validates
    logged = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()][5:-1]
    mfu = [row["mfu"] for row in logged if row.get("mfu") is not None]
    return (len(times) - 1) * args.batch * args.seq_len / (times[-1] - times[0]), (sum(mfu) / len(mfu) if mfu else None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--layers", type=int, default=6)
    parser.add_argument("--heads", type=int, default=6)
    parser.add_argument("--seq-len", type=int, default=256)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--device", default="cpu", help="cpu, or cuda (bf16 autocast, fused AdamW, MFU)")
    parser.add_argument("--compile", action="store_true", help="torch.compile both models")
    parser.add_argument("--text", type=Path, default=SHAKESPEARE, help="the text the BPE and the shards are made of")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-train-") as tmp:
        tokens = make_tokens(Path(tmp), args.text)
        plain, params = plain_loop(tokens, args)
        our, mfu = ours(tokens, Path(tmp) / "out", args)
    where = torch.cuda.get_device_name() if args.device.startswith("cuda") else f"{torch.get_num_threads()} threads"
    print(f"{params / 1e6:.1f}M parameters, batch {args.batch} x {args.seq_len} tokens, {args.steps} timed steps, "
          f"{where}{', compiled' if args.compile else ''}")
    print(f"\n{'system':<36} {'tokens/s':>10} {'vs plain loop':>14} {'MFU':>6}")
    print(f"{'plain PyTorch loop':<36} {plain:>10,.0f} {1:>13.2f}x")
    print(f"{'crawl2model train/pretrain.py':<36} {our:>10,.0f} {our / plain:>13.2f}x "
          f"{f'{mfu:.1%}' if mfu is not None else '':>6}")


if __name__ == "__main__":
    main()
