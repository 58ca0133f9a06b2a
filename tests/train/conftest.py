"""Token shards of tiny Shakespeare, made the way a run makes them: a BPE trained in the test and
the real `tokenize` stage."""
from __future__ import annotations

import re
from pathlib import Path

import pyarrow as pa
import pytest


@pytest.fixture(scope="session")
def shakespeare_tokens(shared_data, tmp_path_factory) -> Path:
    """The token shards of tiny Shakespeare (speeches as documents), vocabulary 512: the artifact
    folder of a tokenize stage, with tokenizer.json beside its index.json."""
    from crawl2model.pipeline import storage
    from crawl2model.pipeline.global_stage import PhaseContext
    from crawl2model.pipeline.plan import StageNode
    from crawl2model.pipeline.worker import run_phases
    from crawl2model.stages.tokenize import Tokenize
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
    options = Tokenize.Config(tokenizer=str(root / "tokenizer.json"), val_fraction=0.05, shard_tokens=100_000, seed=0)
    node = StageNode("tokenize", Tokenize, options, run_dir=str(root), fingerprint="test")
    context = PhaseContext(f"{node.directory}/phases", 2, tuple(u for u, _ in inputs), tuple(p for _, p in inputs),
                           node.artifact_dir, node.name)
    run_phases(node, context, inputs)
    return Path(node.artifact_dir)


@pytest.fixture(scope="session")
def pretrained(shakespeare_tokens, tmp_path_factory):
    """(checkpoint, tokenizer.json) of a tiny model pretrained on tiny Shakespeare (150 steps)."""
    from crawl2model.train.loop import TrainConfig
    from crawl2model.train.pretrain import train

    out = tmp_path_factory.mktemp("pretrained")
    config = TrainConfig(model={"dim": 64, "n_layers": 2, "n_heads": 4}, seq_len=128, batch_size=16, steps=150,
                         lr=3e-3, warmup_steps=20, eval_interval=1000, checkpoint_interval=150)
    train(shakespeare_tokens, out, config, log=lambda _: None)
    return out / "step-000150", shakespeare_tokens / "tokenizer.json"


def _same_state(a, b) -> bool:
    """Whether two checkpoint states are equal, bit for bit: weights, optimizer, scheduler, loader
    position, step, and torch's RNG states (CPU and CUDA), the ones training draws from. Python's and
    NumPy's global generators are left out: nothing seeds them, so every process has its own."""
    def torch_rng(state: dict) -> dict:
        assert "torch" in state["rng"], state["rng"].keys()
        return {**state, "rng": {k: v for k, v in state["rng"].items() if k in ("torch", "cuda")}}

    return _equal(torch_rng(a), torch_rng(b))


def _equal(a, b) -> bool:
    """Nested dicts and lists of tensors and plain values, equal bit for bit."""
    import torch

    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return isinstance(b, (list, tuple)) and len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


@pytest.fixture(scope="session")
def same_state():
    """_same_state: whether two checkpoint states are equal, bit for bit."""
    return _same_state


@pytest.fixture
def with_dropout(tmp_path):
    """A function copying a checkpoint folder into tmp_path with its model's dropout set to `rate`
    (the weights as they were): a start for fine-tuning whose steps draw random numbers."""
    import json
    import shutil

    def copy(folder: str | Path, rate: float) -> Path:
        folder = Path(folder)
        target = tmp_path / f"start-dropout-{rate}" / folder.name
        shutil.copytree(folder, target)
        saved = json.loads((target / "config.json").read_text())
        saved["model"]["dropout"] = rate
        (target / "config.json").write_text(json.dumps(saved, indent=2))
        return target

    return copy
