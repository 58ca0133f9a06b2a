"""DPO on real preference pairs (Anthropic HH-RLHF) with a tiny model pretrained in the test, and
the pairs a user gets wrong."""
from __future__ import annotations

import gzip
import json

import pytest

from crawl2model.train import checkpoint
from crawl2model.train.align import DPOConfig, train_dpo
from crawl2model.train.chat import ChatTokens
from crawl2model.train.preferences import read_pairs

pytestmark = pytest.mark.shared


def test_dpo_on_hh_rlhf_raises_held_out_reward_accuracy(pretrained, shared_data, tmp_path):
    start, tokenizer = pretrained
    data = [shared_data / "preference-hh-rlhf" / "harmless-base-test.jsonl.gz"]
    config = DPOConfig(steps=80, batch_size=8, lr=1e-3, warmup_steps=5, max_len=128, val_fraction=0.1,
                       eval_interval=80, log_interval=20, precompute_reference=True)
    held_out = train_dpo(start, data, tokenizer, tmp_path, config, log=print)
    print(held_out)
    assert held_out["val/rewards/accuracies"] > 0.5 and held_out["val/rewards/margins"] > 0
    assert (tmp_path / "step-000080" / "state.pt").exists()


def test_bad_pairs_are_counted_with_their_line_numbers(pretrained, tmp_path):
    from tokenizers import Tokenizer

    chat = ChatTokens(Tokenizer.from_file(str(pretrained[1])))
    rows = ['{"prompt": "Hi", "chosen": "Hello", "rejected": "Go away"}', "{not json",
            '{"prompt": "Hi", "chosen": "Same", "rejected": "Same"}', '{"prompt": "Hi", "chosen": "", "rejected": "x"}',
            json.dumps({"prompt": "word " * 500, "chosen": "fine", "rejected": "bad"}),
            '{"chosen": "\\n\\nHuman: Hi\\n\\nAssistant: Hello", "rejected": "\\n\\nHuman: Hi\\n\\nAssistant: Bye"}']
    path = tmp_path / "pairs.jsonl.gz"
    path.write_bytes(gzip.compress("\n".join(rows).encode()))
    pairs, report = read_pairs([path], chat, max_len=64)
    assert report.used == len(pairs) == 3 and report.truncated == 1
    assert report.skipped == {"chosen equals rejected": 1, "empty response": 1,
                              "Expecting property name enclosed in double quotes: line 1 column 2 (char 1)": 1}
    assert [p.split(": ", 1)[0].rsplit(":", 1)[1] for p in report.problems] == ["2", "3", "4"]
    assert all(len(p.prompt) + max(len(p.chosen), len(p.rejected)) <= 64 for p in pairs)


def test_align_commands_and_chat_generation(pretrained, shared_data, tmp_path, reference_generate, same_text):
    from tokenizers import Tokenizer
    from typer.testing import CliRunner

    from crawl2model.cli import app

    start, tokenizer = pretrained
    hh = str(shared_data / "preference-hh-rlhf" / "harmless-base-test.jsonl.gz")
    cli = CliRunner()
    (tmp_path / "sft.yaml").write_text("seq_len: 128\nbatch_size: 8\nsteps: 5\nwarmup_steps: 1\n")
    sft = cli.invoke(app, ["align", "sft", str(start), hh, "--config", str(tmp_path / "sft.yaml"), "--out",
                           str(tmp_path / "sft"), "--tokenizer", str(tokenizer)])
    assert sft.exit_code == 0, sft.output
    (tmp_path / "dpo.yaml").write_text("steps: 4\nbatch_size: 4\nmax_len: 96\neval_interval: 4\nwarmup_steps: 1\n")
    dpo = cli.invoke(app, ["align", "dpo", str(tmp_path / "sft" / "step-000005"), hh, "--config", str(tmp_path / "dpo.yaml"),
                           "--out", str(tmp_path / "dpo"), "--tokenizer", str(tokenizer)])
    assert dpo.exit_code == 0, dpo.output
    answer = cli.invoke(app, ["generate", str(tmp_path / "dpo" / "step-000004"), "Hello?", "--tokenizer",
                              str(tokenizer), "--temperature", "0", "--max-new-tokens", "8"])
    assert answer.exit_code == 0 and "Hello?" not in answer.output  # a chat answer, not a continuation
    # the answer is what the aligned model predicts after the chat template's user turn, worked out
    # with its forward pass alone, up to its end-of-turn token
    from crawl2model.train.pretrain import load_model

    model, _ = load_model(tmp_path / "dpo" / "step-000004")
    chat = ChatTokens(Tokenizer.from_file(str(tokenizer)))
    prompt, _ = chat.encode([{"role": "user", "content": "Hello?"}], generation_prompt=True)
    expected = reference_generate(model, prompt, 8, eos_id=chat.end)
    assert len(set(expected) - {chat.end}) >= 2, expected  # an answer a constant token could not give
    assert same_text(answer.output, chat.tokenizer.decode(expected)), (answer.output, chat.tokenizer.decode(expected))
    sampled = {}
    for seed in (1, 2):  # sampled (temperature 1, top_p 0.95): the seed's draws, and two seeds two answers
        sampled[seed] = cli.invoke(app, ["generate", str(tmp_path / "dpo" / "step-000004"), "Hello?", "--tokenizer",
                                         str(tokenizer), "--temperature", "1", "--seed", str(seed), "--max-new-tokens", "8"])
        draws = reference_generate(model, prompt, 8, eos_id=chat.end, temperature=1.0, top_p=0.95, seed=seed)
        assert sampled[seed].exit_code == 0 and same_text(sampled[seed].output, chat.tokenizer.decode(draws))
    assert sampled[1].output != sampled[2].output
    bad = cli.invoke(app, ["align", "dpo", str(start), hh, "--config", str(tmp_path / "sft.yaml"), "--out", str(tmp_path)])
    assert bad.exit_code == 2 and "seq_len" in " ".join(bad.output.split())  # an SFT option given to DPO


DPO_SETTINGS = {"steps": 6, "batch_size": 8, "lr": 1e-3, "warmup_steps": 1, "max_len": 96, "val_fraction": 0.02,
                "log_interval": 1, "checkpoint_interval": 100}


def dpo_losses(out) -> list[float]:
    return [row["loss"] for row in map(json.loads, (out / "metrics.jsonl").read_text().splitlines())]


@pytest.mark.slow
def test_dpo_on_two_data_parallel_processes_gives_the_losses_of_one(pretrained, shared_data, tmp_path):
    """DPO runs on the loop pretraining uses, so torchrun's 2 processes (half the pairs of a step
    each, gloo) train what 1 process trains."""
    import os
    import subprocess
    import sys

    import numpy as np
    import yaml

    start, tokenizer = pretrained
    hh = str(shared_data / "preference-hh-rlhf" / "harmless-base-test.jsonl.gz")
    for name, processes, batch in (("one", 1, 8), ("ddp", 2, 4)):
        (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump({**DPO_SETTINGS, "batch_size": batch}))
        launcher = [sys.executable, "-m"] if processes == 1 else [
            sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(processes), "-m"]
        done = subprocess.run([*launcher, "crawl2model.train.align", str(start), hh, "--config", str(tmp_path / f"{name}.yaml"),
                               "--out", str(tmp_path / name), "--tokenizer", str(tokenizer)], capture_output=True, text=True,
                              env={**os.environ, "OMP_NUM_THREADS": "1"})
        assert done.returncode == 0, done.stderr[-3000:]
    one, ddp = dpo_losses(tmp_path / "one"), dpo_losses(tmp_path / "ddp")
    assert len(one) == 6 and np.allclose(one, ddp, rtol=1e-4), (one, ddp)
    assert one[0] == pytest.approx(0.693147) and all(abs(loss - 0.693147) > 1e-3 for loss in one[1:])  # log 2 at
    # the start (policy = reference), then the policy moves: the ranks' updates are real ones


def test_dpo_stopped_and_resumed_equals_a_straight_run(pretrained, shared_data, tmp_path, same_state):
    """Stopped after step 3 (with a checkpoint) and resumed by a new call: the same losses, rewards
    and final state, bit for bit, as 6 straight steps; the precomputed reference log-probabilities
    are read back from the run, not computed again."""
    start, tokenizer = pretrained
    hh = [shared_data / "preference-hh-rlhf" / "harmless-base-test.jsonl.gz"]
    config = DPOConfig(**DPO_SETTINGS, precompute_reference=True)
    quiet = dict(log=lambda _: None)
    train_dpo(start, hh, tokenizer, tmp_path / "straight", config, **quiet)
    train_dpo(start, hh, tokenizer, tmp_path / "resumed", config, stop_at=3, **quiet)
    stored = (tmp_path / "resumed" / "reference_logps.pt").stat().st_mtime_ns
    lines = []
    train_dpo(start, hh, tokenizer, tmp_path / "resumed", config, log=lines.append)
    assert any(line.startswith("resumed from") and line.endswith("at step 3") for line in lines)
    assert (tmp_path / "resumed" / "reference_logps.pt").stat().st_mtime_ns == stored
    rows = [[json.loads(line) for line in (tmp_path / name / "metrics.jsonl").read_text().splitlines()]
            for name in ("straight", "resumed")]
    drop = ("tokens_per_s", "mfu")
    assert [{k: v for k, v in r.items() if k not in drop} for r in rows[0]] == \
           [{k: v for k, v in r.items() if k not in drop} for r in rows[1]]
    assert "rewards/accuracies" in rows[0][-1] and "val/rewards/margins" in rows[0][-1]
    (ours, _), (theirs, _) = (checkpoint.load(tmp_path / name / "step-000006") for name in ("straight", "resumed"))
    assert same_state(ours, theirs)


def test_openai_and_trl_preference_files_train_as_the_same_pairs_in_plain_rows(pretrained, shared_data, tmp_path):
    """40 HH-RLHF pairs written three ways (plain rows with a message-list prompt, OpenAI's
    preference fine-tuning form, TRL's conversational form): each file trains, with the same losses."""
    from crawl2model.train.chat import hh_dialogue, split_pair

    start, tokenizer = pretrained
    with gzip.open(shared_data / "preference-hh-rlhf" / "harmless-base-test.jsonl.gz", "rt") as lines:
        dialogues = [json.loads(next(lines)) for _ in range(40)]
    forms = {"plain": [], "openai": [], "trl": []}
    for row in dialogues:
        prompt, chosen, rejected = split_pair(row["chosen"], row["rejected"])
        messages = [m for m in hh_dialogue(prompt) if m["content"] or m["role"] != "assistant"]
        answer = lambda text: [{"role": "assistant", "content": text}]  # noqa: E731
        forms["plain"].append({"prompt": messages, "chosen": chosen, "rejected": rejected})
        forms["openai"].append({"input": {"messages": messages}, "preferred_output": answer(chosen),
                                "non_preferred_output": answer(rejected)})
        forms["trl"].append({"prompt": messages, "chosen": answer(chosen), "rejected": answer(rejected)})
    config = DPOConfig(steps=3, batch_size=8, lr=1e-3, warmup_steps=1, max_len=96, val_fraction=0, log_interval=1)
    losses = {}
    for form, rows in forms.items():
        (tmp_path / f"{form}.jsonl").write_text("\n".join(map(json.dumps, rows)))
        train_dpo(start, [tmp_path / f"{form}.jsonl"], tokenizer, tmp_path / form, config, log=lambda _: None)
        losses[form] = dpo_losses(tmp_path / form)
    assert len(losses["plain"]) == 3 and losses["openai"] == losses["plain"] == losses["trl"], losses
