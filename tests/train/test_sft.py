"""SFT data: the loss sees only the assistant's tokens, asserted on a constructed batch."""
from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from crawl2model.model.llama import Llama, LlamaConfig
from crawl2model.stages.train_tokenizer import TrainTokenizerConfig, train_bpe
from crawl2model.train.chat import IGNORE, ChatTokens
from crawl2model.train.sft import pack, read_examples


@pytest.fixture(scope="module")
def chat() -> ChatTokens:
    return ChatTokens(train_bpe(iter([["what is the capital of france? paris is."] * 30]),
                                TrainTokenizerConfig(vocab_size=300)))


def test_the_loss_is_masked_on_everything_but_the_answer(chat, tmp_path):
    path = tmp_path / "sft.jsonl"
    path.write_text(json.dumps({"prompt": "what is the capital of france?", "response": "paris"}) + "\n"
                    + json.dumps({"messages": [{"role": "system", "content": "be brief"},
                                               {"role": "user", "content": "capital?"},
                                               {"role": "assistant", "content": "paris is."}]}) + "\n"
                    + "not json\n" + json.dumps({"prompt": "x", "response": ""}) + "\n")
    examples, skipped = read_examples([path], chat)
    assert len(examples) == 2 and len(skipped) == 2 and any(":3:" in key for key in skipped)
    inputs, labels, cut = pack(examples, max_len=64, pad=0)
    assert inputs.shape == labels.shape == (1, 64) and cut == 0
    learned = labels[labels != IGNORE].tolist()
    assert learned == chat.text("paris") + [chat.end] + chat.text("paris is.") + [chat.end]
    # the loss over the batch equals the loss over those answer positions alone
    torch.manual_seed(0)
    model = Llama(LlamaConfig(vocab_size=300, dim=16, n_layers=1, n_heads=2, max_seq_len=64))
    logits, loss = model(inputs, labels)
    keep = labels != IGNORE
    assert loss.item() == pytest.approx(F.cross_entropy(logits[keep], labels[keep]).item(), rel=1e-6)


def test_an_example_longer_than_a_row_is_cut_and_counted(chat):
    long = chat.encode([{"role": "user", "content": "what is " * 50}, {"role": "assistant", "content": "paris"}])
    inputs, labels, cut = pack([long, long], max_len=32, pad=0)
    assert cut == 2 and inputs.shape == (2, 32)


@pytest.mark.shared
def test_sft_on_hh_dialogues_learns_and_resumes_exactly(pretrained, shared_data, tmp_path, with_dropout, same_state):
    """Chosen HH-RLHF dialogues as conversations: the loss on assistant tokens falls, and a job
    stopped after 10 of 20 steps and resumed in a second call gives the losses of 20 straight.
    The model has dropout: steps 11 to 20 draw the straight run's random numbers only when the
    checkpoint's RNG state is restored."""
    import gzip

    from crawl2model.train import checkpoint
    from crawl2model.train.chat import hh_dialogue
    from crawl2model.train.loop import TrainConfig
    from crawl2model.train.sft import train_sft

    start, tokenizer = pretrained
    start = with_dropout(start, 0.1)
    rows = [json.loads(line) for line in gzip.open(shared_data / "preference-hh-rlhf" / "harmless-base-test.jsonl.gz", "rt")]
    data = tmp_path / "sft.jsonl"
    data.write_text("".join(json.dumps({"messages": hh_dialogue(row["chosen"])}) + "\n" for row in rows[:600]))
    settings = dict(model={}, seq_len=128, batch_size=8, steps=20, lr=1e-3, warmup_steps=2, eval_interval=20,
                    log_interval=1, checkpoint_interval=10)
    straight = train_sft(start, [data], tokenizer, tmp_path / "straight", TrainConfig(**settings), log=lambda _: None)
    train_sft(start, [data], tokenizer, tmp_path / "resumed", TrainConfig(**settings), log=lambda _: None, stop_at=10)
    train_sft(start, [data], tokenizer, tmp_path / "resumed", TrainConfig(**settings), log=lambda _: None)
    def losses(folder):
        return {row["step"]: row["loss"] for row in map(json.loads, (folder / "metrics.jsonl").read_text().splitlines())}
    first, second = losses(tmp_path / "straight"), losses(tmp_path / "resumed")
    assert [first[s] for s in range(11, 21)] == [second[s] for s in range(11, 21)]
    assert [first[s] for s in range(1, 11)] == [second[s] for s in range(1, 11)]
    # the losses above are rounded to 6 places; the state after step 20 is compared bit for bit
    (ours, saved), (theirs, _) = (checkpoint.load(folder / "step-000020") for folder in (tmp_path / "straight",
                                                                                          tmp_path / "resumed"))
    assert saved["model"]["dropout"] == 0.1 and same_state(ours, theirs)
    assert straight["loss"] < first[1] - 0.5 and "val_loss" in straight
