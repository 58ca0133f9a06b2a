"""Pretraining a Llama from the token shards of a run: one process, or data-parallel under torchrun.

    pipeline train runs/demo --config train.yaml              # or: python -m crawl2model.train.pretrain ...
    torchrun --nproc_per_node 2 -m crawl2model.train.pretrain runs/demo --config train.yaml

The loop, its settings and checkpoints are train/loop.py's; this module builds the model from the
shards' vocabulary and feeds it packed windows (train/data.py). Logs go to `metrics.jsonl` in the
output folder: loss, learning rate, tokens/s and MFU.
"""
from __future__ import annotations

from pathlib import Path

import torch

from crawl2model.model.llama import Llama, LlamaConfig
from crawl2model.pipeline import storage
from crawl2model.train import checkpoint
from crawl2model.train.data import TokenLoader
from crawl2model.train.loop import Distributed, TrainConfig, evaluate, fit, run_distributed
from crawl2model.train.tokens import load_index


def train(tokens_dir: str | Path, out_dir: str | Path, config: TrainConfig, *, log=print,
          stop_at: int | None = None, report=None) -> dict:
    """Train (or resume) on the token shards in `tokens_dir`, writing checkpoints and metrics.jsonl
    to `out_dir` (`stop_at`: end this call after that step). Returns the last step's summary.
    `report`: the progress callback of `loop.fit`."""
    def job(dist: Distributed, device: str) -> dict:
        index = load_index(tokens_dir)
        tokens = index.root
        loader = TokenLoader.from_dir(tokens, "train", config.seq_len, config.batch_size, seed=config.seed,
                                      rank=dist.layout.dp_rank, world=dist.layout.dp)
        has_val = any(entry["tokens"] for entry in index.shards("val"))
        model_config = LlamaConfig(vocab_size=index.vocab_size, max_seq_len=config.seq_len, **config.model.model_dump())
        torch.manual_seed(config.seed)
        model = Llama(model_config).to(device)
        validate = (lambda trained, autocast: evaluate(trained, TokenLoader.from_dir(
            tokens, "val", config.seq_len, 1, shuffle=False), config, autocast, device)) if has_val else None
        meta = {"model": model_config.to_dict(), "tokenizer_sha256": index.tokenizer_sha256}
        return fit(model, loader, str(out_dir), config, dist, device, log, validate=validate, meta=meta,
                   tokenizer=index.tokenizer, stop_at=stop_at, report=report)

    return run_distributed(config, job)


def load_model(path: str, device: str = "cpu") -> tuple[Llama, dict]:
    """The model of a checkpoint folder (weights only), and the checkpoint's config."""
    _, saved = checkpoint.load_state(path)
    model = Llama(LlamaConfig(**saved["model"]))
    checkpoint.load_weights(path, model)
    return model.to(device).eval(), saved


def main(argv: list[str] | None = None) -> None:
    """`python -m crawl2model.train.pretrain TOKENS_OR_RUN_DIR --config train.yaml [--out DIR]` (torchrun-able)."""
    import argparse

    import yaml

    parser = argparse.ArgumentParser(description="Pretrain a Llama on a run's token shards.")
    parser.add_argument("tokens", help="a run's output_dir, or its tokens/ folder")
    parser.add_argument("--config", required=True, help="YAML of TrainConfig options")
    parser.add_argument("--out", help="checkpoint folder (default: <run>/train)")
    parser.add_argument("--stop-at", type=int, help="stop (with a checkpoint) after this step; resume later")
    args = parser.parse_args(argv)
    config = TrainConfig.model_validate(yaml.safe_load(Path(args.config).read_text()) or {})
    train(args.tokens, args.out or default_out(args.tokens), config, stop_at=args.stop_at)


def default_out(tokens: str | Path) -> str:
    """`<run>/train` for the token shards of a run's tokenize stage (`<run>/stages/<name>/artifact`)."""
    root = load_index(tokens).root
    if "/stages/" not in root or not root.endswith("/artifact"):
        raise ValueError(f"{tokens} is not the token shards of a run: give --out")
    return storage.join(root.rsplit("/stages/", 1)[0], "train")


if __name__ == "__main__":
    main()
