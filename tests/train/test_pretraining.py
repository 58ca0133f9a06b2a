"""Pretraining on real token shards: it learns, it resumes exactly, data-parallel ranks add up to
one process, and bad inputs stop it with a message that says what is wrong."""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from crawl2model.train import checkpoint
from crawl2model.train.loop import TrainConfig, TrainingError
from crawl2model.train.pretrain import load_model, train
from crawl2model.train.tokens import load_index

pytestmark = pytest.mark.shared
ROOT = Path(__file__).resolve().parents[2]
TRAIN_YAML = """
model: {dim: 64, n_layers: 2, n_heads: 4, n_kv_heads: 2}
seq_len: 64
batch_size: 16
steps: 200
lr: 0.003
warmup_steps: 20
eval_interval: 100
log_interval: 1
checkpoint_interval: 100
"""


def config(**changes) -> TrainConfig:
    return TrainConfig.model_validate({**yaml.safe_load(TRAIN_YAML), **changes})


def losses(out: Path) -> dict[int, float]:
    return {row["step"]: row["loss"] for row in map(json.loads, (out / "metrics.jsonl").read_text().splitlines())}


def unigram_entropy(tokens_dir: Path) -> float:
    """The loss of the best model that ignores context: what a model whose attention or positions
    are broken cannot beat."""
    stream = np.concatenate([shard.tokens for shard in load_index(tokens_dir).open("train")])
    p = np.bincount(stream) / len(stream)
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())


def test_the_loss_falls_well_below_what_context_free_guessing_reaches(shakespeare_tokens, tmp_path):
    summary = train(shakespeare_tokens, tmp_path, config(), log=lambda _: None)
    floor = unigram_entropy(shakespeare_tokens)
    print(f"\nafter 200 steps: loss {summary['loss']:.3f}, val {summary['val_loss']:.3f}; unigram entropy {floor:.3f}, "
          f"ln(vocab) {math.log(512):.3f}; {summary['tokens_per_s']:,} tokens/s")
    assert summary["val_loss"] < floor - 0.6 and summary["loss"] < floor - 0.6
    assert Path(checkpoint.latest(tmp_path)).name == "step-000200"
    model, saved = load_model(checkpoint.latest(tmp_path))
    assert saved["model"]["vocab_size"] == 512 and model.config.n_kv_heads == 2


def run_module(*args: str, env: dict | None = None, launcher: list[str] | None = None) -> None:
    command = [*(launcher or [sys.executable, "-m"]), "train.pretrain", *args]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, env={**os.environ, **(env or {})})
    assert result.returncode == 0, result.stderr[-3000:]


def test_resuming_from_a_checkpoint_in_a_new_process_continues_exactly(shakespeare_tokens, tmp_path, same_state):
    """40 steps straight, against a job stopped after step 20 (the schedule still set for 40) and
    resumed in a new process. The model has dropout, so the random numbers of steps 21 to 40 are
    the straight run's only when the checkpoint's RNG state is restored."""
    settings = yaml.safe_load(TRAIN_YAML) | {"steps": 40, "warmup_steps": 5, "checkpoint_interval": 100,
                                             "eval_interval": 1000}
    settings["model"] = settings["model"] | {"dropout": 0.1}
    (tmp_path / "train.yaml").write_text(yaml.safe_dump(settings))
    common = [str(shakespeare_tokens), "--config", str(tmp_path / "train.yaml")]
    run_module(*common, "--out", str(tmp_path / "straight"))
    run_module(*common, "--out", str(tmp_path / "resumed"), "--stop-at", "20")
    assert Path(checkpoint.latest(tmp_path / "resumed")).name == "step-000020"
    run_module(*common, "--out", str(tmp_path / "resumed"))
    straight, resumed = losses(tmp_path / "straight"), losses(tmp_path / "resumed")
    assert [straight[s] for s in range(21, 41)] == [resumed[s] for s in range(21, 41)]
    assert [straight[s] for s in range(1, 21)] == [resumed[s] for s in range(1, 21)]
    # metrics.jsonl rounds losses to 6 places; the state they come from is compared whole: weights,
    # optimizer moments, scheduler, loader position and RNG state after step 40, bit for bit
    (ours, saved), (theirs, _) = (checkpoint.load(folder / "step-000040") for folder in (tmp_path / "straight",
                                                                                          tmp_path / "resumed"))
    assert saved["model"]["dropout"] == 0.1
    assert same_state(ours, theirs)


TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m"]


def test_two_data_parallel_processes_equal_one_with_the_whole_batch(shakespeare_tokens, tmp_path):
    """DDP and FSDP (fully_shard) on 2 CPU processes (gloo), half the batch each; FSDP also
    stopped at step 5 and resumed from its checkpoint."""
    settings = yaml.safe_load(TRAIN_YAML) | {"steps": 10, "eval_interval": 1000, "checkpoint_interval": 5}
    (tmp_path / "one.yaml").write_text(yaml.safe_dump(settings))
    run_module(str(shakespeare_tokens), "--config", str(tmp_path / "one.yaml"), "--out", str(tmp_path / "one"))
    one = losses(tmp_path / "one")
    for parallel in ("ddp", "fsdp"):
        (tmp_path / f"{parallel}.yaml").write_text(yaml.safe_dump(settings | {"batch_size": 8, "parallel": parallel}))
        if parallel == "fsdp":  # the first 5 steps, then a new job that resumes
            run_module(str(shakespeare_tokens), "--config", str(tmp_path / f"{parallel}.yaml"), "--out",
                       str(tmp_path / parallel), "--stop-at", "5", launcher=TORCHRUN, env={"OMP_NUM_THREADS": "1"})
        run_module(str(shakespeare_tokens), "--config", str(tmp_path / f"{parallel}.yaml"), "--out",
                   str(tmp_path / parallel), launcher=TORCHRUN, env={"OMP_NUM_THREADS": "1"})
        two = losses(tmp_path / parallel)
        assert np.allclose([one[s] for s in range(1, 11)], [two[s] for s in range(1, 11)], rtol=1e-4), parallel


def test_bad_inputs_stop_with_a_clear_message(shakespeare_tokens, tmp_path):
    with pytest.raises(FileNotFoundError, match="run a `tokenize` stage first"):
        train(tmp_path / "nothing", tmp_path / "out", config())
    with pytest.raises(ValueError, match="give `steps` or `tokens`"):
        TrainConfig.model_validate({"steps": 10, "tokens": 1000})
    train(shakespeare_tokens, tmp_path / "small", config(steps=2, checkpoint_interval=1), log=lambda _: None)
    state = Path(checkpoint.latest(tmp_path / "small")) / checkpoint.STATE
    state.write_bytes(state.read_bytes()[:1000])  # the newest checkpoint cut: training goes on from the one before
    lines = []
    train(shakespeare_tokens, tmp_path / "small", config(steps=2, checkpoint_interval=1), log=lines.append)
    assert any(line.startswith("skipping") and "step-000002: corrupt checkpoint" in line for line in lines)
    assert any(line.startswith("resumed from") and line.split()[2].endswith("step-000001") for line in lines)
    for path in checkpoint.steps(tmp_path / "small"):
        (Path(path) / checkpoint.STATE).write_bytes(b"cut")
    with pytest.raises(ValueError, match="no checkpoint in .* can be read: .*corrupt checkpoint"):
        train(shakespeare_tokens, tmp_path / "small", config(steps=2, checkpoint_interval=1), log=lambda _: None)
    with pytest.raises(TrainingError, match="step 2: the loss is nan"):
        train(shakespeare_tokens, tmp_path / "nan", config(steps=3, lr=float("inf")), log=lambda _: None)


def test_train_generate_and_export_from_the_command_line(shakespeare_tokens, tmp_path, reference_generate, same_text):
    from tokenizers import Tokenizer
    from typer.testing import CliRunner

    from crawl2model.cli import app

    cli = CliRunner()
    (tmp_path / "train.yaml").write_text(yaml.safe_dump(yaml.safe_load(TRAIN_YAML) | {"steps": 30}))
    trained = cli.invoke(app, ["train", str(shakespeare_tokens), "--config", str(tmp_path / "train.yaml"),
                               "--out", str(tmp_path / "ckpt")])
    assert trained.exit_code == 0, trained.output
    step = checkpoint.latest(tmp_path / "ckpt")
    tokenizer = str(shakespeare_tokens / "tokenizer.json")
    greedy = [cli.invoke(app, ["generate", str(step), "ROMEO:", "--tokenizer", tokenizer, "--temperature", "0",
                               "--max-new-tokens", "12"]) for _ in range(2)]
    assert greedy[0].exit_code == 0 and greedy[0].output == greedy[1].output and greedy[0].output.startswith("ROMEO:")
    # what the trained model predicts, worked out with its forward pass alone
    model, _ = load_model(step)
    encoder = Tokenizer.from_file(tokenizer)
    eos = encoder.token_to_id("<|endoftext|>")
    expected = reference_generate(model, encoder.encode("ROMEO:").ids, 12, eos_id=eos)
    assert len(set(expected)) >= 3, encoder.decode(expected)  # not something a constant token could print
    assert same_text(greedy[0].output, "ROMEO:" + encoder.decode(expected)), (greedy[0].output, encoder.decode(expected))
    sampled = {}
    for seed in (1, 2):  # at temperature 1, top_p 0.95 (the default): the seed's draws, and two seeds two texts
        sampled[seed] = cli.invoke(app, ["generate", str(step), "ROMEO:", "--tokenizer", tokenizer, "--temperature",
                                         "1", "--seed", str(seed), "--max-new-tokens", "12"])
        draws = reference_generate(model, encoder.encode("ROMEO:").ids, 12, eos_id=eos, temperature=1.0, top_p=0.95,
                                   seed=seed)
        assert sampled[seed].exit_code == 0 and same_text(sampled[seed].output, "ROMEO:" + encoder.decode(draws))
    assert sampled[1].output != sampled[2].output
    exported = cli.invoke(app, ["export", str(step), str(tmp_path / "hf"), "--tokenizer", tokenizer])
    assert exported.exit_code == 0 and (tmp_path / "hf" / "model.safetensors").exists()
    bad = cli.invoke(app, ["generate", str(tmp_path), "x", "--tokenizer", tokenizer])
    assert bad.exit_code == 2 and "not a checkpoint" in bad.output
    from crawl2model.stages.train_tokenizer import TrainTokenizerConfig, train_bpe

    train_bpe(iter([["another corpus, another vocabulary"] * 50]), TrainTokenizerConfig(vocab_size=300)).save(
        str(tmp_path / "other.json"))
    other = cli.invoke(app, ["generate", str(step), "x", "--tokenizer", str(tmp_path / "other.json")])
    assert other.exit_code == 2 and "is not the tokenizer" in " ".join(other.output.split())


def test_accumulating_two_half_batches_equals_one_whole_batch(shakespeare_tokens, tmp_path):
    whole = train(shakespeare_tokens, tmp_path / "whole", config(steps=6, eval_interval=1000), log=lambda _: None)
    halves = train(shakespeare_tokens, tmp_path / "halves", config(steps=6, eval_interval=1000, batch_size=8,
                                                                   grad_accum=2), log=lambda _: None)
    assert whole["loss"] == pytest.approx(halves["loss"], rel=1e-5)
    assert list(losses(tmp_path / "whole").values()) == pytest.approx(list(losses(tmp_path / "halves").values()), rel=1e-5)


def test_a_loss_spike_stops_training_naming_the_step(shakespeare_tokens, tmp_path):
    with pytest.raises(TrainingError, match=r"step 21: the loss jumped to .* its mean over the last 20 steps"):
        train(shakespeare_tokens, tmp_path, config(steps=30, spike_factor=0.5), log=lambda _: None)


def test_shards_of_another_tokenizer_or_none_at_all(shakespeare_tokens, tmp_path):
    train(shakespeare_tokens, tmp_path / "run", config(steps=2), log=lambda _: None)
    saved = Path(checkpoint.latest(tmp_path / "run")) / "config.json"
    settings = json.loads(saved.read_text())
    settings["model"]["vocab_size"] = 1000  # as if trained on shards of a 1000-token vocabulary
    saved.write_text(json.dumps(settings))
    with pytest.raises(ValueError, match="vocabulary of 1,000, the token shards 512: they come from different"):
        train(shakespeare_tokens, tmp_path / "run", config(steps=4), log=lambda _: None)
    empty = tmp_path / "empty"
    empty.mkdir()
    index = json.loads((shakespeare_tokens / "index.json").read_text())
    index["splits"]["train"]["shards"] = []
    (empty / "index.json").write_text(json.dumps(index))
    with pytest.raises(ValueError, match="the 'train' split has no tokens"):
        train(empty, tmp_path / "out", config())
