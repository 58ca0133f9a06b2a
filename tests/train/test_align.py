"""DPO on real preference pairs (Anthropic HH-RLHF) with a tiny model pretrained in the test, and
the pairs a user gets wrong."""
from __future__ import annotations

import gzip
import json

import pytest

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
