"""Tensor, pipeline and composed parallelism on CPU processes (gloo): every layout trains the
losses one process trains, and a sharded checkpoint of one layout resumes in another."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from crawl2model.model.llama import Llama, LlamaConfig
from crawl2model.train.loop import TrainConfig
from crawl2model.train.parallel import ParallelConfig, layout_for
from crawl2model.train.pretrain import load_model

ROOT = Path(__file__).resolve().parents[2]
SETTINGS = {"model": {"dim": 64, "n_layers": 2, "n_heads": 4, "n_kv_heads": 2}, "seq_len": 64, "batch_size": 16,
            "steps": 10, "lr": 0.003, "warmup_steps": 2, "eval_interval": 1000, "log_interval": 1,
            "checkpoint_interval": 5, "precision": "fp32",
            "grad_clip": 0.05,  # below every step's norm: each layout must add up the whole model's
            # CPU processes (gloo), unless bench/gpu_check.sh finds a GPU for each (NCCL)
            "device": "cuda" if os.environ.get("PARALLEL_TEST_DEVICE") == "cuda" else "cpu"}
LAYOUTS = {  # name: (processes, settings)
    "one": (1, {}),
    "tp2": (2, {"parallel": {"tp": 2}}),
    "pp2-gpipe": (2, {"parallel": {"pp": 2, "schedule": "gpipe"}}),
    "pp2-1f1b": (2, {"parallel": {"pp": 2, "schedule": "1f1b", "microbatches": 4}}),
    "dp2xtp2": (4, {"batch_size": 8, "parallel": {"dp": 2, "tp": 2, "fsdp": True}}),  # half the batch per replica
    "pp2xdp2": (4, {"batch_size": 8, "parallel": {"pp": 2, "dp": 2, "fsdp": True, "microbatches": 2}}),
}


def train(tokens: Path, out: Path, processes: int, settings: dict) -> str:
    """`python -m train.pretrain` in `processes` processes (torchrun); returns what they printed."""
    (out.parent / f"{out.name}.yaml").write_text(yaml.safe_dump({**SETTINGS, **settings}))
    launcher = [sys.executable, "-m"] if processes == 1 else [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(processes), "-m"]
    result = subprocess.run([*launcher, "train.pretrain", str(tokens), "--config", str(out.parent / f"{out.name}.yaml"),
                             "--out", str(out)], cwd=ROOT, capture_output=True, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def losses(out: Path) -> list[float]:
    return [row["loss"] for row in map(json.loads, (out / "metrics.jsonl").read_text().splitlines())]


@pytest.fixture(scope="module")
def runs(shakespeare_tokens, tmp_path_factory):
    """Each layout's 10 steps on tiny Shakespeare, run once when a test first asks: (folder, stdout)."""
    root, done = tmp_path_factory.mktemp("layouts"), {}

    def run(name: str) -> tuple[Path, str]:
        if name not in done:
            processes, settings = LAYOUTS[name]
            done[name] = root / name, train(shakespeare_tokens, root / name, processes, settings)
        return done[name]
    return run


@pytest.mark.shared
@pytest.mark.slow
@pytest.mark.parametrize("layout", ["tp2", "pp2-gpipe", "pp2-1f1b", "dp2xtp2", "pp2xdp2"])
def test_a_layout_trains_the_losses_of_one_process(runs, layout):
    (one, _), (out, printed) = runs("one"), runs(layout)
    assert np.allclose(losses(out), losses(one), rtol=1e-4), (losses(out), losses(one))
    held = [line for line in printed.splitlines() if line.startswith("mesh ")]
    total = Llama(LlamaConfig(vocab_size=512, max_seq_len=64, **SETTINGS["model"])).num_params()
    mine = int(held[0].split(" holds ")[1].split()[0].replace(",", ""))
    assert held and mine < 0.8 * total, held  # the ranks share the weights: none holds them all
    # the ranks' shards of the last checkpoint make the model one process trains, read whole in one process
    ours, theirs = (load_model(folder / "step-000010")[0].state_dict() for folder in (out, one))
    assert ours.keys() == theirs.keys() and all(torch.allclose(ours[k], theirs[k], atol=1e-4) for k in ours)


@pytest.mark.shared
@pytest.mark.slow
@pytest.mark.parametrize("saved, resumed", [("tp2", "one"), ("one", "pp2-1f1b"), ("dp2xtp2", "tp2")])
def test_a_sharded_checkpoint_resumes_in_another_layout(runs, tmp_path, shakespeare_tokens, saved, resumed):
    """Step 5 of one layout, resumed to step 10 in another, gives the losses of straight runs."""
    (source, _), (one, _) = runs(saved), runs("one")
    shutil.copytree(source / "step-000005", tmp_path / "out" / "step-000005")
    printed = train(shakespeare_tokens, tmp_path / "out", *LAYOUTS[resumed])
    assert f"resumed from {tmp_path / 'out' / 'step-000005'} at step 5" in printed
    assert np.allclose(losses(tmp_path / "out"), losses(one)[5:], rtol=1e-4)


def test_layouts_the_model_or_the_job_cannot_take_are_refused_with_every_reason():
    model = LlamaConfig(vocab_size=64, dim=32, n_layers=2, n_heads=4, n_kv_heads=2, tie_embeddings=True)
    problems = ParallelConfig(tp=4, pp=3, microbatches=5).check(model, batch_size=8, world=8)
    assert len(problems) == 5, problems
    assert "tp 4 must divide n_heads (4) and n_kv_heads (2)" in problems[0]
    assert "pp 3 stages need at least as many layers" in problems[1] and "tie_embeddings" in problems[2]
    assert "batch_size 8 must be a multiple of microbatches (5)" in problems[3]
    assert "dp 1 x tp 4 x pp 3 is 12 processes, but the job has 8" in problems[4]
    assert ParallelConfig(tp=2).check(LlamaConfig(vocab_size=64, dim=32, n_heads=4, n_kv_heads=2), 8, world=2) == []
    with pytest.raises(ValueError, match=r"dp 1 x tp 2 x pp 1 is 2 processes, but the job has 1"):
        layout_for(ParallelConfig(tp=2), 1, "cpu")
    with pytest.raises(ValueError, match="set fsdp: true"):
        layout_for(ParallelConfig(dp=2, tp=2), 4, "cpu")


def test_the_settings_before_meshes_still_read():
    assert TrainConfig(steps=1, parallel="ddp").parallel == ParallelConfig()
    assert TrainConfig(steps=1, parallel="fsdp").parallel == ParallelConfig(fsdp=True)
    assert TrainConfig(steps=1, parallel={"tp": 2}).parallel.tp == 2
    with pytest.raises(ValueError, match="'zero' is not a parallel layout"):
        TrainConfig(steps=1, parallel="zero")
