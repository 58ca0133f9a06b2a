"""Training throughput: our trainer vs a minimal plain PyTorch loop, same model, batch and data.

    python bench/train.py [--steps 30] [--dim 384 --layers 6]      # ~10M parameters by default

Both train the same Llama (model/llama.py) with AdamW on the same batches of tiny Shakespeare
(../shared/data/tinyshakespeare) tokenized by a BPE trained here. The plain loop is what a user
would write by hand: random windows from one in-memory tensor, forward, backward, step. Ours is
train/pretrain.py: memory-mapped shards, the seeded loader, the schedule, clipping, metrics and
NaN checks (checkpoints and validation off for the timing). The first 5 steps of each are warm-up.
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


def make_tokens(folder: Path) -> Path:
    """Token shards of tiny Shakespeare, written by the real tokenize stage's phases."""
    import re

    import pyarrow as pa

    from pipeline import shards
    from pipeline.global_stage import PhaseContext
    from pipeline.worker import StageTask, run_phases
    from stages.train_tokenizer import TrainTokenizerConfig, train_bpe

    speeches = [s.strip() for s in re.split(r"\n\s*\n", SHAKESPEARE.read_text()) if s.strip()]
    train_bpe(iter([speeches]), TrainTokenizerConfig(vocab_size=4096)).save(str(folder / "tokenizer.json"))
    table = pa.table({"id": [f"s{i}" for i in range(len(speeches))], "text": speeches})
    inputs = [("00000", shards.write_parquet(str(folder / "in.parquet"), table).path)]
    task = StageTask("tokenize", "tokenize", {"tokenizer": str(folder / "tokenizer.json"), "val_fraction": 0.01,
                                              "seed": 0}, "bench", str(folder / "stage"))
    context = PhaseContext(str(folder / "stage/phases"), 1, ("00000",), (inputs[0][1],), str(folder), "tokenize")
    run_phases(task, context, inputs)
    return folder / "tokens"


def plain_loop(tokens: Path, args) -> float:
    """Tokens per second of a hand-written loop over the same model and batch size."""
    import numpy as np

    from model.llama import Llama, LlamaConfig
    from train.tokens import load_index

    index = load_index(tokens)
    stream = torch.from_numpy(np.concatenate([s.tokens for s in index.open("train")]).astype(np.int64))
    torch.manual_seed(0)
    model = Llama(LlamaConfig(vocab_size=index.vocab_size, dim=args.dim, n_layers=args.layers, n_heads=args.heads,
                              max_seq_len=args.seq_len))
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-4)
    started = None
    for step in range(args.steps + 5):
        if step == 5:
            started = time.perf_counter()
        starts = torch.randint(0, len(stream) - args.seq_len - 1, (args.batch,))
        rows = torch.stack([stream[s:s + args.seq_len + 1] for s in starts.tolist()])
        _, loss = model(rows[:, :-1], rows[:, 1:])
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return args.steps * args.batch * args.seq_len / (time.perf_counter() - started), model.num_params()


def ours(tokens: Path, out: Path, args) -> float:
    from train.loop import TrainConfig
    from train.pretrain import train

    config = TrainConfig(model={"dim": args.dim, "n_layers": args.layers, "n_heads": args.heads}, seq_len=args.seq_len,
                         batch_size=args.batch, steps=args.steps + 5, warmup_steps=5, log_interval=1,
                         eval_interval=10**9, checkpoint_interval=10**9, spike_factor=None)
    marks = []
    train(tokens, out, config, log=lambda _: marks.append(time.perf_counter()))
    times = marks[5:]  # one log line per step, written as it ends
    return (len(times) - 1) * args.batch * args.seq_len / (times[-1] - times[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--layers", type=int, default=6)
    parser.add_argument("--heads", type=int, default=6)
    parser.add_argument("--seq-len", type=int, default=256)
    parser.add_argument("--batch", type=int, default=16)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-train-") as tmp:
        tokens = make_tokens(Path(tmp))
        plain, params = plain_loop(tokens, args)
        our = ours(tokens, Path(tmp) / "out", args)
    print(f"{params / 1e6:.1f}M parameters, batch {args.batch} x {args.seq_len} tokens, {args.steps} timed steps, "
          f"{torch.get_num_threads()} threads")
    print(f"\n{'system':<36} {'tokens/s':>10} {'vs plain loop':>14}")
    print(f"{'plain PyTorch loop':<36} {plain:>10,.0f} {1:>13.2f}x")
    print(f"{'crawl2model train/pretrain.py':<36} {our:>10,.0f} {our / plain:>13.2f}x")


if __name__ == "__main__":
    main()
