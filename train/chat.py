"""The chat template shared by SFT, DPO and generation, built from the special tokens the tokenizer
stage reserves:

    <|system|>You are terse.<|end|><|user|>Hi<|end|><|assistant|>Hello.<|end|>

Each message is its role's marker, its text, and `<|end|>`. Only assistant text and its `<|end|>`
are learned (labels), unless the message has OpenAI's `"weight": 0`; markers, system and user text
are context (label -100). A prompt for generation ends with `<|assistant|>`, and generation stops at
`<|end|>`. model/hf.py's `chat_template` is the same template for Hugging Face's `apply_chat_template`.

Conversations (SFT) and preference pairs (DPO) come as JSON lines: `encode_jsonl` reads both.
"""
from __future__ import annotations

import re
from pathlib import Path

from crawl2model.model.special_tokens import END, ROLE_MARKERS
from crawl2model.pipeline.jsonl import read_jsonl

MARKERS = ROLE_MARKERS  # each role's marker token
ROLES = tuple(MARKERS)
IGNORE = -100  # the label of a position that is not learned (cross-entropy's ignore_index)


class ChatTokens:
    """A tokenizers.Tokenizer and the ids of the chat markers; ValueError when it lacks them."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        missing = [t for t in [*MARKERS.values(), END] if tokenizer.token_to_id(t) is None]
        if missing:
            raise ValueError(f"the tokenizer has no {', '.join(missing)}: train it with the train_tokenizer stage, "
                             "which reserves the chat tokens")
        self.marker = {role: tokenizer.token_to_id(token) for role, token in MARKERS.items()}
        self.end = tokenizer.token_to_id(END)

    def text(self, text: str) -> list[int]:
        return self.tokenizer.encode(text, add_special_tokens=False).ids

    def encode(self, messages: list[dict], generation_prompt: bool = False) -> tuple[list[int], list[int]]:
        """(ids, labels) of a conversation; with `generation_prompt`, ending in `<|assistant|>`."""
        ids, labels = [], []
        for number, message in enumerate(messages):
            role, content = message.get("role"), message.get("content")
            if role not in ROLES or not isinstance(content, str):
                raise ValueError(f"message {number}: needs a role ({', '.join(ROLES)}) and text content, got {message!r}")
            body = self.text(content) + [self.end]
            learned = role == "assistant" and message.get("weight", 1) != 0
            ids += [self.marker[role], *body]
            labels += [IGNORE, *(body if learned else [IGNORE] * len(body))]
        if generation_prompt:
            ids.append(self.marker["assistant"])
            labels.append(IGNORE)
        return ids, labels


def as_messages(value, role: str) -> list[dict]:
    """A chat turn given as a string (one message of `role`) or as a list of messages."""
    if isinstance(value, str):
        return [{"role": role, "content": value}]
    if isinstance(value, list) and value and all(isinstance(m, dict) for m in value):
        return value
    raise ValueError(f"needs a string or a list of messages, got {type(value).__name__}")


def encode_jsonl(paths: list[str | Path], encode) -> tuple[list, list[tuple[str, str]]]:
    """`encode(row)` of every JSON line of the files (pipeline/jsonl.py: compressed by extension),
    and, for the lines that are not JSON (or not UTF-8) or that `encode` refuses (ValueError,
    TypeError, AttributeError), their (`file:line`, reason): a bad line is reported, never fatal."""
    encoded, problems = [], []
    for path in paths:
        for number, row in read_jsonl(path):
            if isinstance(row, ValueError):
                problems.append((f"{path}:{number}", str(row)))
                continue
            try:
                encoded.append(encode(row))
            except (ValueError, TypeError, AttributeError) as error:
                problems.append((f"{path}:{number}", str(error)))
    return encoded, problems


def hh_dialogue(text: str) -> list[dict]:
    """Anthropic HH-RLHF's "\\n\\nHuman: ...\\n\\nAssistant: ..." as chat messages."""
    parts = re.split(r"\n\n(Human|Assistant):", "\n\n" + text.lstrip("\n"))
    messages = []
    for speaker, content in zip(parts[1::2], parts[2::2]):
        messages.append({"role": "user" if speaker == "Human" else "assistant", "content": content.strip()})
    return messages


def split_pair(chosen: str, rejected: str) -> tuple[str, str, str]:
    """(prompt, chosen response, rejected response) of a dialogue pair that shares its prefix: the
    prompt runs to the last "\\n\\nAssistant:" both have in common."""
    common = 0
    for a, b in zip(chosen, rejected):
        if a != b:
            break
        common += 1
    cut = chosen.rfind("\n\nAssistant:", 0, common + 1)
    if cut < 0:
        raise ValueError("the two dialogues share no \\n\\nAssistant: turn")
    cut += len("\n\nAssistant:")
    return chosen[:cut], chosen[cut:].strip(), rejected[cut:].strip()
