"""Preference pairs for DPO, read from JSONL and encoded with the chat template.

A row is one of these forms (a message is `{"role", "content"}`, role system, user or assistant):

- `{"prompt", "chosen", "rejected"}`, chosen and rejected strings; the prompt a user turn (string)
  or a list of messages.
- TRL's conversational form: the same keys, chosen and rejected lists of messages (usually one
  assistant message each).
- TRL's implicit prompt: `{"chosen", "rejected"}`, two whole conversations (lists of messages)
  whose common leading messages, up to an assistant turn both continue with, are the prompt.
- OpenAI's preference fine-tuning form: `{"input": {"messages"}, "preferred_output",
  "non_preferred_output"}`, the outputs lists of assistant messages (other keys of `input`, tools
  and parallel_tool_calls, are ignored).
- HH-RLHF's dialogue form: `{"chosen", "rejected"}` strings whose common prefix, up to the last
  "\\n\\nAssistant:", is the prompt.

Each becomes (prompt messages, chosen messages, rejected messages): the prompt is encoded with the
generation prompt `<|assistant|>`, a response from its first (assistant) message on, ending in
`<|end|>`. A response of several messages learns only its assistant text (its other messages are
context, as in SFT). String responses are stripped; message text is kept as it is. Rows that cannot
be used are counted with their line number and reason, never fatal: malformed JSON, an unknown
form, chosen equal to rejected, an empty response. A pair longer than `max_len` keeps the end of
its prompt and, when it must, the start of its responses.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import torch

from crawl2model.train.chat import IGNORE, ChatTokens, as_messages, encode_jsonl, hh_dialogue, split_pair


@dataclass
class Pair:
    """Token ids of a prompt and its two responses. A response's labels are its ids (all learned)
    unless it holds non-assistant messages: then `chosen_labels`/`rejected_labels` mask them."""
    prompt: list[int]
    chosen: list[int]
    rejected: list[int]
    chosen_labels: list[int] | None = None
    rejected_labels: list[int] | None = None


@dataclass
class PairReport:
    used: int = 0
    truncated: int = 0
    skipped: Counter = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)  # "file:line: reason", the first 20

    def skip(self, where: str, reason: str) -> None:
        self.skipped[reason] += 1
        if len(self.problems) < 20:
            self.problems.append(f"{where}: {reason}")


def read_pairs(paths: list[str | Path], chat: ChatTokens, max_len: int) -> tuple[list[Pair], PairReport]:
    report = PairReport()
    pairs, problems = encode_jsonl(paths, lambda row: encode_pair(row, chat, max_len, report))
    for where, reason in problems:
        report.skip(where, reason.split(";")[0][:120])
    report.used = len(pairs)
    return pairs, report


def encode_pair(row: dict, chat: ChatTokens, max_len: int, report: PairReport) -> Pair:
    prompt, chosen, rejected = conversation(row)
    if chosen == rejected:
        raise ValueError("chosen equals rejected")
    prompt_ids, _ = chat.encode(prompt, generation_prompt=True)
    responses = [response(chat, messages) for messages in (chosen, rejected)]
    if not (assistant_text(chosen) and assistant_text(rejected)):
        raise ValueError("empty response")
    longest = max(len(ids) for ids, _ in responses)
    if len(prompt_ids) + longest > max_len:  # keep the prompt's end, at least half of max_len of it
        report.truncated += 1
        keep = max(max_len - longest, max_len // 2)
        prompt_ids = prompt_ids[-keep:]
        responses = [(ids[:max_len - len(prompt_ids)], labels[:max_len - len(prompt_ids)]) for ids, labels in responses]
    (chosen_ids, chosen_labels), (rejected_ids, rejected_labels) = responses
    return Pair(prompt_ids, chosen_ids, rejected_ids, masked(chosen_ids, chosen_labels),
                masked(rejected_ids, rejected_labels))


def conversation(row) -> tuple[list[dict], list[dict], list[dict]]:
    """(prompt, chosen, rejected) messages of a row in any of the forms, told apart by their keys."""
    if not isinstance(row, dict):
        raise ValueError("not a pair: a row is a JSON object")
    if "preferred_output" in row or "non_preferred_output" in row:
        return openai_pair(row)
    if isinstance(row.get("chosen"), list) or isinstance(row.get("rejected"), list):
        return trl_pair(row)
    if not isinstance(row.get("chosen"), str) or not isinstance(row.get("rejected"), str):
        raise ValueError("not a pair: needs `chosen` and `rejected`, or OpenAI's `preferred_output` and "
                         "`non_preferred_output`")
    return plain_pair(row) if "prompt" in row else hh_pair(row["chosen"], row["rejected"])


def answer(text: str) -> list[dict]:
    return [{"role": "assistant", "content": text.strip()}]


def plain_pair(row: dict) -> tuple[list[dict], list[dict], list[dict]]:
    return as_messages(row["prompt"], "user"), answer(row["chosen"]), answer(row["rejected"])


def hh_pair(chosen: str, rejected: str) -> tuple[list[dict], list[dict], list[dict]]:
    text, chosen, rejected = split_pair(chosen, rejected)
    return [m for m in hh_dialogue(text) if m["content"] or m["role"] != "assistant"], answer(chosen), answer(rejected)


def trl_pair(row: dict) -> tuple[list[dict], list[dict], list[dict]]:
    """TRL's conversational pair: explicit `prompt`, or the leading messages both conversations share."""
    chosen, rejected = (messages(row.get(key), key) for key in ("chosen", "rejected"))
    if "prompt" in row:
        return as_messages(row["prompt"], "user"), chosen, rejected
    for cut in range(common_length(chosen, rejected), 0, -1):
        if all(len(c) > cut and c[cut].get("role") == "assistant" for c in (chosen, rejected)):
            return chosen[:cut], chosen[cut:], rejected[cut:]
    raise ValueError("the two conversations share no leading messages before an assistant turn")


def openai_pair(row: dict) -> tuple[list[dict], list[dict], list[dict]]:
    """OpenAI's preference fine-tuning row; `input`'s tools and parallel_tool_calls do not change the text."""
    source = row.get("input")
    if not isinstance(source, dict):
        raise ValueError("OpenAI pair: needs `input` with `messages`")
    return (messages(source.get("messages"), "input.messages"),
            messages(row.get("preferred_output"), "preferred_output"),
            messages(row.get("non_preferred_output"), "non_preferred_output"))


def messages(value, name: str) -> list[dict]:
    if not isinstance(value, list) or not value or not all(isinstance(m, dict) for m in value):
        raise ValueError(f"`{name}` is not a list of messages")
    return value


def common_length(a: list, b: list) -> int:
    """How many leading items `a` and `b` share."""
    count = 0
    while count < min(len(a), len(b)) and a[count] == b[count]:
        count += 1
    return count


def assistant_text(messages: list[dict]) -> bool:
    """Whether the (already encoded, so valid) messages hold assistant text to learn."""
    return any(m["role"] == "assistant" and m["content"].strip() for m in messages)


def response(chat: ChatTokens, messages: list[dict]) -> tuple[list[int], list[int]]:
    """(ids, labels) of a response: its messages encoded after the prompt's `<|assistant|>`, so
    without the first message's own marker."""
    if messages[0].get("role") != "assistant":
        raise ValueError(f"a response starts with an assistant message, not {messages[0].get('role')!r}")
    ids, labels = chat.encode(messages)
    return ids[1:], labels[1:]


def masked(ids: list[int], labels: list[int]) -> list[int] | None:
    """The labels, when some positions are not learned; None when they are all the ids."""
    return None if labels == ids else labels


def collate(pairs: list[Pair], pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    """ids and labels of every chosen sequence, then every rejected one, right-padded."""
    rows = [(p.prompt + ids, [IGNORE] * len(p.prompt) + (labels or ids))
            for side in ("chosen", "rejected") for p in pairs
            for ids, labels in [(getattr(p, side), getattr(p, f"{side}_labels"))]]
    width = max(len(ids) for ids, _ in rows)
    ids = torch.tensor([i + [pad] * (width - len(i)) for i, _ in rows])
    labels = torch.tensor([label + [IGNORE] * (width - len(label)) for _, label in rows])
    return ids, labels
