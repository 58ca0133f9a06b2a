"""The pretrain stage inside real runs: from a generated crawl to checkpoints, cached when nothing
changed, and the same losses from one Ray task as from two Ray Train workers with half the batch."""
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


def crawl_config(tmp_path: Path, name: str, **pretrain) -> Path:
    config = {"name": name, "output_dir": str(tmp_path / name), "seed": 3, "input": {"sample": {"documents": 60, "files": 2}},
              "stages": [{"name": "extract", "type": "extract"}, {"name": "bpe", "type": "train_tokenizer", "vocab_size": 400},
                         {"name": "tokenize", "type": "tokenize", "val_fraction": 0.1}, {**PRETRAIN, **pretrain}]}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def losses(run_dir: Path) -> list[float]:
    lines = (run_dir / "checkpoints" / "pretrain" / "metrics.jsonl").read_text().splitlines()
    return [json.loads(line)["loss"] for line in lines]


def test_one_task_and_two_ray_train_workers_train_the_same_model(local_ray, tmp_path):
    manifest = run(*load_config(crawl_config(tmp_path, "one", batch_size=4)), show_progress=False)
    artifact = manifest["stages"]["pretrain"]["artifacts"][0]
    assert artifact.endswith("checkpoints/pretrain/step-000008/state.pt") and Path(artifact).exists()
    again = run(*load_config(crawl_config(tmp_path, "one", batch_size=4)), show_progress=False)
    assert again["stages"]["pretrain"]["cached"]
    run(*load_config(crawl_config(tmp_path, "two", batch_size=2, workers=2)), show_progress=False)
    one, two = losses(tmp_path / "one"), losses(tmp_path / "two")
    assert len(one) == len(two) == 8 and one == pytest.approx(two, rel=1e-4)


def test_pretrain_needs_token_shards_before_it(tmp_path):
    with pytest.raises(ConfigError, match="put a `tokenize` stage before it"):
        parse_config({"name": "x", "output_dir": str(tmp_path), "input": {"sample": {}},
                      "stages": [{"name": "extract", "type": "extract"}, PRETRAIN]})


def test_a_stage_asking_for_a_gpu_the_cluster_lacks_stops_before_any_work(local_ray, tmp_path):
    from crawl2model.pipeline.runner import PlanError

    with pytest.raises(PlanError, match="stage 'pretrain' asks for 1 GPUs per worker; the Ray cluster has 0"):
        run(*load_config(crawl_config(tmp_path, "gpu", gpus=1)), show_progress=False)
    assert not (tmp_path / "gpu" / "stages" / "extract" / "kept").exists()
