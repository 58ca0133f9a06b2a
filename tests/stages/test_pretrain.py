"""The pretrain stage inside real runs: from a generated crawl to checkpoints, cached when nothing
changed and trained again from scratch when anything its fingerprint covers changed (never resumed
from another configuration's checkpoint), resumed after a kill from its own checkpoint, two
tokenizers and models side by side in one run, and the same losses from one Ray task as from two
Ray Train workers with half the batch."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from crawl2model.pipeline.config import ConfigError

from crawl2model.catalog import load_config, parse_config
from crawl2model.pipeline.runner import run

pytestmark = pytest.mark.ray
ROOT = Path(__file__).resolve().parents[2]
PRETRAIN = {"name": "pretrain", "type": "pretrain", "model": {"dim": 32, "n_layers": 1, "n_heads": 2}, "seq_len": 64,
            "batch_size": 4, "steps": 8, "warmup_steps": 2, "eval_interval": 4, "log_interval": 1,
            "checkpoint_interval": 4}


def crawl_config(tmp_path: Path, name: str, vocab_size: int = 400, extract: dict | None = None, **pretrain) -> Path:
    config = {"name": name, "output_dir": str(tmp_path / name), "seed": 3, "input": {"sample": {"documents": 60, "files": 2}},
              "stages": [{"name": "extract", "type": "extract", **(extract or {})},
                         {"name": "bpe", "type": "train_tokenizer", "vocab_size": vocab_size},
                         {"name": "tokenize", "type": "tokenize", "val_fraction": 0.1}, {**PRETRAIN, **pretrain}]}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def losses(run_dir: Path, stage: str = "pretrain") -> list[float]:
    lines = (run_dir / "stages" / stage / "artifact" / "metrics.jsonl").read_text().splitlines()
    return [json.loads(line)["loss"] for line in lines]


def final(run_dir: Path, stage: str = "pretrain", step: int = 8) -> Path:
    return run_dir / "stages" / stage / "artifact" / f"step-{step:06d}"


def test_one_task_and_two_ray_train_workers_train_the_same_model(local_ray, tmp_path):
    manifest = run(*load_config(crawl_config(tmp_path, "one", batch_size=4)), show_progress=False)
    made = {f.path for f in manifest.stages["pretrain"].artifact}
    assert "stages/pretrain/artifact/step-000008/state.pt" in made and (final(tmp_path / "one") / "state.pt").exists()
    again = run(*load_config(crawl_config(tmp_path, "one", batch_size=4)), show_progress=False)
    assert again.stages["pretrain"].cached
    run(*load_config(crawl_config(tmp_path, "two", batch_size=2, workers=2)), show_progress=False)
    one, two = losses(tmp_path / "one"), losses(tmp_path / "two")
    assert len(one) == len(two) == 8 and one == pytest.approx(two, rel=1e-4)


def test_pretrain_needs_token_shards_before_it(tmp_path):
    with pytest.raises(ConfigError, match="put a `tokenize` stage before pretrain"):
        parse_config({"name": "x", "output_dir": str(tmp_path), "input": {"sample": {}},
                      "stages": [{"name": "extract", "type": "extract"}, PRETRAIN]})


def test_a_stage_asking_for_a_gpu_the_cluster_lacks_stops_before_any_work(local_ray, tmp_path):
    from crawl2model.pipeline.runner import PlanError

    with pytest.raises(PlanError, match="stage 'pretrain' asks for 1 GPUs per worker; the Ray cluster has 0"):
        run(*load_config(crawl_config(tmp_path, "gpu", gpus=1)), show_progress=False)
    assert not (tmp_path / "gpu" / "stages" / "extract" / "kept").exists()


@pytest.mark.slow
def test_a_training_stage_never_serves_a_model_its_fingerprint_does_not_cover(local_ray, tmp_path):
    """The stale-artifact cases: each change re-trains from scratch, in the stage's own folder."""
    def train(**changes) -> list[float]:
        manifest = run(*load_config(crawl_config(tmp_path, "r", **changes)), show_progress=False)
        assert manifest.stages["pretrain"].status == "done"
        return losses(tmp_path / "r")

    def saved(key: str):
        return json.loads((final(tmp_path / "r") / "config.json").read_text())[key]

    first = train()
    assert len(first) == 8  # one line per step: a run, not a resumed one appended to another
    stamp = (final(tmp_path / "r") / "state.pt").stat().st_mtime_ns
    cached = run(*load_config(crawl_config(tmp_path, "r")), show_progress=False)  # unchanged: from the cache
    assert cached.stages["pretrain"].cached and (final(tmp_path / "r") / "state.pt").stat().st_mtime_ns == stamp

    forced = run(*load_config(crawl_config(tmp_path, "r")), force=("pretrain",), show_progress=False)
    assert forced.stages["pretrain"].cached is False and forced.stages["tokenize"].cached
    assert losses(tmp_path / "r") == first  # trained again, from scratch: the same numbers, 8 of them
    assert (final(tmp_path / "r") / "state.pt").stat().st_mtime_ns != stamp

    faster = train(lr=0.01)  # a changed training option trains with it
    assert len(faster) == 8 and faster != first and saved("train")["lr"] == 0.01

    wider = train(lr=0.01, vocab_size=500)  # a changed tokenizer: a new model, no vocabulary mismatch
    assert len(wider) == 8 and saved("model")["vocab_size"] == 500

    other = train(lr=0.01, vocab_size=500, extract={"favor": "precision"})  # a changed upstream stage
    assert len(other) == 8 and saved("model")["vocab_size"] == 500


@pytest.mark.slow
def test_a_killed_training_resumes_from_its_own_checkpoint(local_ray, killer, tmp_path):
    import subprocess
    import sys
    import time

    long = {"steps": 120, "checkpoint_interval": 10, "eval_interval": 60}
    killed = crawl_config(tmp_path, "killed", **long)
    process = subprocess.Popen([sys.executable, "-m", "crawl2model.cli", "run", str(killed), "--no-progress"],
                               start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    early = final(tmp_path / "killed", step=20) / "state.pt"
    deadline = time.time() + 300
    while time.time() < deadline and not early.exists():
        time.sleep(0.05)
    killer(process)
    assert early.exists() and not (final(tmp_path / "killed", step=120) / "state.pt").exists(), "not killed mid-training"
    stamp = early.stat().st_mtime_ns

    run(*load_config(killed), show_progress=False)
    assert early.stat().st_mtime_ns == stamp  # resumed after it, not redone
    run(*load_config(crawl_config(tmp_path, "straight", **long)), show_progress=False)
    resumed, straight = losses(tmp_path / "killed"), losses(tmp_path / "straight")
    assert resumed[-1] == straight[-1] and resumed[-8:] == straight[-8:]  # exactly where it would have been


def test_two_tokenizers_and_two_models_side_by_side_in_one_run(local_ray, tmp_path):
    small = {**PRETRAIN, "steps": 4, "checkpoint_interval": 4, "eval_interval": 4}
    config = {"name": "two", "output_dir": str(tmp_path / "two"), "seed": 3,
              "input": {"sample": {"documents": 60, "files": 2}},
              "stages": [{"name": "extract", "type": "extract"},
                         {"name": "bpe_a", "type": "train_tokenizer", "vocab_size": 300},
                         {"name": "tok_a", "type": "tokenize", "val_fraction": 0.1},
                         {**small, "name": "model_a"},
                         {"name": "bpe_b", "type": "train_tokenizer", "vocab_size": 450, "after": "extract"},
                         {"name": "tok_b", "type": "tokenize", "val_fraction": 0.1},
                         {**small, "name": "model_b"}]}
    path = tmp_path / "two.yaml"
    path.write_text(yaml.safe_dump(config))
    manifest = run(*load_config(path), show_progress=False)
    for suffix, vocab in (("a", 300), ("b", 450)):
        index = json.loads((tmp_path / f"two/stages/tok_{suffix}/artifact/index.json").read_text())
        saved = json.loads((final(tmp_path / "two", f"model_{suffix}", 4) / "config.json").read_text())
        assert index["vocab_size"] == saved["model"]["vocab_size"] == vocab
        assert manifest.stages[f"tok_{suffix}"].docs_in == manifest.stages["extract"].docs_out
