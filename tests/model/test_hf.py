"""The Hugging Face export's chat template: transformers' `apply_chat_template` on the exported
folder gives the ids our chat template (train/chat.py) gives, so a model SFT or DPO trained is
prompted the same way there."""
from __future__ import annotations

import pytest
import torch

from crawl2model.model.hf import export_hf
from crawl2model.model.llama import Llama, LlamaConfig
from crawl2model.train.chat import ChatTokens

SYSTEM = {"role": "system", "content": "You are terse."}
CONVERSATIONS = {
    "system, user, assistant": [SYSTEM, {"role": "user", "content": "How are you?"},
                                {"role": "assistant", "content": "Fine, thanks."}],
    "multi-turn": [{"role": "user", "content": "hello there"}, {"role": "assistant", "content": "hello!"},
                   {"role": "user", "content": "how are you?"}, {"role": "assistant", "content": "well"},
                   {"role": "user", "content": "and then?"}],
    "unicode and spaces": [SYSTEM, {"role": "user", "content": "  héllo wörld, 日本語 🙂  "},
                           {"role": "assistant", "content": " \n\tÇa va ?\n\n"}],
    "empty text and markers as text": [{"role": "user", "content": ""},
                                       {"role": "assistant", "content": "a <|end|> in the text<|user|>"}],
}


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """(folder, ChatTokens): a tiny Llama exported with a BPE trained here, which holds the chat markers."""
    from crawl2model.stages.train_tokenizer import TrainTokenizerConfig, train_bpe

    folder = tmp_path_factory.mktemp("hf")
    tokenizer = train_bpe(iter([["hello there, how are you? You are terse. Fine, thanks. héllo wörld"] * 20]),
                          TrainTokenizerConfig(vocab_size=300))
    tokenizer.save(str(folder / "tokenizer.json"))
    torch.manual_seed(0)
    model = Llama(LlamaConfig(vocab_size=tokenizer.get_vocab_size(), dim=32, n_layers=1, n_heads=4, max_seq_len=64))
    return export_hf(model, folder / "export", folder / "tokenizer.json"), ChatTokens(tokenizer)


@pytest.mark.parametrize("generation_prompt", [False, True])
@pytest.mark.parametrize("name", list(CONVERSATIONS))
def test_apply_chat_template_gives_our_ids(exported, name, generation_prompt):
    from transformers import AutoTokenizer

    folder, chat = exported
    theirs = AutoTokenizer.from_pretrained(folder)
    messages = CONVERSATIONS[name]
    ids = theirs.apply_chat_template(messages, tokenize=True, add_generation_prompt=generation_prompt,
                                     return_dict=False)
    assert ids == chat.encode(messages, generation_prompt=generation_prompt)[0]
    text = theirs.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation_prompt)
    assert theirs(text, add_special_tokens=False)["input_ids"] == ids


def test_the_markers_are_special_tokens_and_generation_stops_at_a_turns_end(exported):
    from jinja2.exceptions import TemplateError
    from transformers import AutoTokenizer, GenerationConfig

    folder, chat = exported
    theirs = AutoTokenizer.from_pretrained(folder)
    assert {"<|system|>", "<|user|>", "<|assistant|>", "<|end|>"} <= set(theirs.all_special_tokens)
    assert theirs.decode(chat.encode(CONVERSATIONS["multi-turn"])[0], skip_special_tokens=True) == (
        "hello therehello!how are you?welland then?")
    assert chat.end in GenerationConfig.from_pretrained(folder).eos_token_id
    with pytest.raises(TemplateError, match="a role is one of system, user, assistant, not tool"):
        theirs.apply_chat_template([{"role": "tool", "content": "x"}], tokenize=False)


def test_a_tokenizer_without_the_markers_gets_no_chat_template(tmp_path):
    import json

    from tokenizers import Tokenizer

    from crawl2model.stages.train_tokenizer import TrainTokenizerConfig, train_bpe

    tokenizer = train_bpe(iter([["plain text only"] * 20]),
                          TrainTokenizerConfig(vocab_size=270, special_tokens=["<|endoftext|>"]))
    tokenizer.save(str(tmp_path / "tokenizer.json"))
    model = Llama(LlamaConfig(vocab_size=tokenizer.get_vocab_size(), dim=32, n_layers=1, n_heads=4, max_seq_len=64))
    folder = export_hf(model, tmp_path / "export", tmp_path / "tokenizer.json")
    assert "chat_template" not in json.loads((folder / "tokenizer_config.json").read_text())
    assert not (folder / "generation_config.json").exists()
    assert Tokenizer.from_file(str(folder / "tokenizer.json")).token_to_id("<|end|>") is None
