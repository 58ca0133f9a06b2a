"""Preference pairs for DPO, read from JSONL and encoded with the chat template.

A row is `{"prompt", "chosen", "rejected"}` (the prompt a user turn, or a list of chat messages),
or HH-RLHF's dialogue form `{"chosen", "rejected"}` whose common prefix, up to the last
"\\n\\nAssistant:", is the prompt. Rows that cannot be used are counted with their line number and
reason, never fatal: malformed JSON, chosen equal to rejected, an empty response. A pair longer
than `max_len` keeps the end of its prompt and, when it must, the start of its responses.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import torch

from crawl2model.train.chat import IGNORE, ChatTokens, encode_jsonl, hh_dialogue, split_pair


@dataclass
class Pair:
    prompt: list[int]
    chosen: list[int]
    rejected: list[int]


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
    if not isinstance(row, dict) or not isinstance(row.get("chosen"), str) or not isinstance(row.get("rejected"), str):
        raise ValueError("not a pair: needs string `chosen` and `rejected`")
    if "prompt" in row:
        prompt = row["prompt"]
        messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else list(prompt)
        chosen, rejected = row["chosen"].strip(), row["rejected"].strip()
    else:
        text, chosen, rejected = split_pair(row["chosen"], row["rejected"])
        messages = [m for m in hh_dialogue(text) if m["content"] or m["role"] != "assistant"]
    if chosen == rejected:
        raise ValueError("chosen equals rejected")
    if not chosen or not rejected:
        raise ValueError("empty response")
    prompt_ids, _ = chat.encode(messages, generation_prompt=True)
    responses = [chat.text(text) + [chat.end] for text in (chosen, rejected)]
    longest = max(map(len, responses))
    if len(prompt_ids) + longest > max_len:  # keep the prompt's end, at least half of max_len of it
        report.truncated += 1
        keep = max(max_len - longest, max_len // 2)
        prompt_ids = prompt_ids[-keep:]
        responses = [r[:max_len - len(prompt_ids)] for r in responses]
    return Pair(prompt_ids, *responses)


def collate(pairs: list[Pair], pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    """ids and labels of every chosen sequence, then every rejected one, right-padded."""
    rows = [(p.prompt + response, [IGNORE] * len(p.prompt) + response)
            for response_of in ("chosen", "rejected") for p in pairs for response in [getattr(p, response_of)]]
    width = max(len(ids) for ids, _ in rows)
    ids = torch.tensor([i + [pad] * (width - len(i)) for i, _ in rows])
    labels = torch.tensor([label + [IGNORE] * (width - len(label)) for _, label in rows])
    return ids, labels
