"""The run's special tokens (model/special_tokens.py) and the chat template built from them (train/chat.py)."""
from __future__ import annotations

import pytest

from crawl2model.model.special_tokens import SPECIAL_TOKENS
from crawl2model.train.chat import ChatTokens


def tokenizer(special: list[str]):
    from tokenizers import Tokenizer, models, pre_tokenizers

    tok = Tokenizer(models.WordLevel({"[UNK]": 0, "hi": 1, "terse": 2}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.add_special_tokens(special)
    return tok


def test_the_special_tokens_are_the_ones_trained_tokenizers_hold():
    # pinned: every tokenizer a run trained holds these strings, at these first ids
    assert SPECIAL_TOKENS == ("<|endoftext|>", "<|pad|>", "<|system|>", "<|user|>", "<|assistant|>", "<|end|>")


def test_each_role_is_framed_by_its_own_marker_and_end():
    tok = tokenizer(list(SPECIAL_TOKENS))
    ids, _ = ChatTokens(tok).encode([{"role": "system", "content": "terse"}, {"role": "user", "content": "hi"}],
                                    generation_prompt=True)
    assert [tok.id_to_token(i) for i in ids] == [
        "<|system|>", "terse", "<|end|>", "<|user|>", "hi", "<|end|>", "<|assistant|>"]


def test_a_tokenizer_without_the_chat_tokens_is_refused_naming_them():
    with pytest.raises(ValueError, match=r"has no <\|user\|>, <\|end\|>: train it with the train_tokenizer stage"):
        ChatTokens(tokenizer(["<|endoftext|>", "<|pad|>", "<|system|>", "<|assistant|>"]))
