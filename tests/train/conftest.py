"""Token shards of tiny Shakespeare, made the way a run makes them: a BPE trained in the test and
the real `tokenize` stage."""
from __future__ import annotations

import re
from pathlib import Path

import pyarrow as pa
import pytest


@pytest.fixture(scope="session")
def shakespeare_tokens(shared_data, tmp_path_factory) -> Path:
    """<dir>/tokens of tiny Shakespeare (speeches as documents), vocabulary 512."""
    from crawl2model.pipeline import storage
    from crawl2model.pipeline.global_stage import PhaseContext
    from crawl2model.pipeline.worker import StageTask, run_phases
    from crawl2model.stages.train_tokenizer import TrainTokenizerConfig, train_bpe

    root = tmp_path_factory.mktemp("shakespeare")
    text = (shared_data / "tinyshakespeare" / "input.txt").read_text(encoding="utf-8")
    speeches = [s.strip() for s in re.split(r"\n\s*\n", text) if s.strip()]
    tokenizer = train_bpe(iter([speeches]), TrainTokenizerConfig(vocab_size=512))
    tokenizer.save(str(root / "tokenizer.json"))
    table = pa.table({"id": [f"s{i:05d}" for i in range(len(speeches))], "text": speeches})
    half = table.num_rows // 2
    inputs = [(f"{i:05d}", storage.write_parquet(str(root / "in" / f"{i:05d}.parquet"), t).path)
              for i, t in enumerate([table.slice(0, half), table.slice(half)])]
    task = StageTask("tokenize", "tokenize", {"tokenizer": str(root / "tokenizer.json"), "val_fraction": 0.05,
                                              "shard_tokens": 100_000, "seed": 0}, "test", str(root / "stage"))
    context = PhaseContext(str(root / "stage" / "phases"), 2, tuple(u for u, _ in inputs), tuple(p for _, p in inputs),
                           str(root), "tokenize")
    run_phases(task, context, inputs)
    return root / "tokens"


@pytest.fixture(scope="session")
def pretrained(shakespeare_tokens, tmp_path_factory):
    """(checkpoint, tokenizer.json) of a tiny model pretrained on tiny Shakespeare (150 steps)."""
    from crawl2model.train.loop import TrainConfig
    from crawl2model.train.pretrain import train

    out = tmp_path_factory.mktemp("pretrained")
    config = TrainConfig(model={"dim": 64, "n_layers": 2, "n_heads": 4}, seq_len=128, batch_size=16, steps=150,
                         lr=3e-3, warmup_steps=20, eval_interval=1000, checkpoint_interval=150)
    train(shakespeare_tokens, out, config, log=lambda _: None)
    return out / "step-000150", shakespeare_tokens.parent / "tokenizer.json"
