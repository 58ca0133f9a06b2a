"""The DPO loss against values worked out by hand, and the chat template it trains on."""
from __future__ import annotations

import math

import pytest
import torch

from crawl2model.model.llama import Llama, LlamaConfig
from crawl2model.train.chat import IGNORE, ChatTokens, hh_dialogue, split_pair
from crawl2model.train.dpo import dpo_loss, reference_logps, sequence_logps


def test_the_loss_of_fixed_log_probabilities_by_hand():
    policy_chosen, policy_rejected = torch.tensor([-10.0, -4.0]), torch.tensor([-12.0, -3.0])
    ref_chosen, ref_rejected = torch.tensor([-11.0, -4.0]), torch.tensor([-11.0, -4.0])
    loss, metrics = dpo_loss(policy_chosen, policy_rejected, ref_chosen, ref_rejected, beta=0.1)
    # margins: 0.1 * ((1) - (-1)) = 0.2 and 0.1 * ((0) - (1)) = -0.1
    expected = (-math.log(1 / (1 + math.exp(-0.2))) - math.log(1 / (1 + math.exp(0.1)))) / 2
    assert float(loss) == pytest.approx(expected, abs=1e-6)
    assert metrics["rewards/chosen"] == pytest.approx(0.05) and metrics["rewards/rejected"] == pytest.approx(0.0)
    assert metrics["rewards/margins"] == pytest.approx(0.05) and metrics["rewards/accuracies"] == 0.5
    smoothed, _ = dpo_loss(policy_chosen, policy_rejected, ref_chosen, ref_rejected, beta=0.1, label_smoothing=0.2)
    by_hand = sum(-0.8 * math.log(1 / (1 + math.exp(-m))) - 0.2 * math.log(1 / (1 + math.exp(m))) for m in (0.2, -0.1)) / 2
    assert float(smoothed) == pytest.approx(by_hand, abs=1e-6)


def test_the_loss_is_log_2_when_policy_equals_reference_and_the_reference_gets_no_gradient():
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=50, dim=16, n_layers=1, n_heads=2, max_seq_len=32)
    policy, reference = Llama(config), Llama(config)
    reference.load_state_dict(policy.state_dict())
    ids = torch.randint(0, 50, (4, 12))
    labels = ids.clone()
    labels[:, :5] = IGNORE  # the prompt
    chosen, rejected = sequence_logps(policy, ids[:2], labels[:2]), sequence_logps(policy, ids[2:], labels[2:])
    loss, _ = dpo_loss(chosen, rejected, reference_logps(reference, ids[:2], labels[:2]),
                       reference_logps(reference, ids[2:], labels[2:]))
    assert loss.item() == pytest.approx(math.log(2), abs=1e-6)
    loss.backward()
    assert all(p.grad is None for p in reference.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in policy.parameters())


def test_sequence_log_probabilities_count_only_labelled_tokens():
    torch.manual_seed(0)
    model = Llama(LlamaConfig(vocab_size=20, dim=16, n_layers=1, n_heads=2, max_seq_len=16)).eval()
    ids = torch.randint(0, 20, (1, 8))
    labels = torch.full_like(ids, IGNORE)
    labels[0, 5:] = ids[0, 5:]
    with torch.no_grad():
        logits, _ = model(ids)
        by_hand = sum(float(torch.log_softmax(logits[0, t - 1], -1)[ids[0, t]]) for t in range(5, 8))
        assert float(sequence_logps(model, ids, labels)[0]) == pytest.approx(by_hand, abs=1e-5)


def test_the_chat_template_learns_only_the_assistant(tmp_path):
    from crawl2model.stages.train_tokenizer import TrainTokenizerConfig, train_bpe

    tokenizer = train_bpe(iter([["hello there, how are you?"] * 20]), TrainTokenizerConfig(vocab_size=300))
    chat = ChatTokens(tokenizer)
    ids, labels = chat.encode([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hello"},
                               {"role": "assistant", "content": "hi"}])
    learned = [i for i, label in zip(ids, labels) if label != IGNORE]
    assert learned == chat.text("hi") + [chat.end]
    assert ids[0] == chat.marker["system"] and ids.count(chat.end) == 3
    prompt, _ = chat.encode([{"role": "user", "content": "hello"}], generation_prompt=True)
    assert prompt[-1] == chat.marker["assistant"]
    with pytest.raises(ValueError, match="needs a role"):
        chat.encode([{"role": "robot", "content": "x"}])


def test_hh_dialogues_split_into_prompt_and_responses():
    chosen = "\n\nHuman: Hi there\n\nAssistant: Hello!\n\nHuman: Help me?\n\nAssistant: Sure, how?"
    rejected = "\n\nHuman: Hi there\n\nAssistant: Hello!\n\nHuman: Help me?\n\nAssistant: No."
    prompt, good, bad = split_pair(chosen, rejected)
    assert prompt.endswith("Help me?\n\nAssistant:") and (good, bad) == ("Sure, how?", "No.")
    assert hh_dialogue(prompt + " " + good) == [
        {"role": "user", "content": "Hi there"}, {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": "Help me?"}, {"role": "assistant", "content": "Sure, how?"}]
