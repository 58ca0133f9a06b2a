"""Supervised fine-tuning: conversations encoded with the chat template, packed, and trained with
the loop pretraining uses (train/loop.py: schedule, clipping, checkpoints, exact resume).

A row is `{"prompt", "response"}`, `{"messages": [{"role", "content"}, ...]}`, TRL's
`{"prompt", "completion"}` (strings or message lists), or an HH-RLHF pair, whose `chosen` dialogue
is the conversation (JSONL, or .jsonl.gz; see `encode_example`). Only the assistant's
tokens are learned: every other label is -100. Examples are packed back to back into
rows of `max_len + 1` tokens (inputs and shifted labels), so no step is spent on padding; an
example longer than a row is cut at its end and counted.
"""
from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import torch

from crawl2model.model.special_tokens import PAD
from crawl2model.pipeline import storage
from crawl2model.train.chat import IGNORE, ChatTokens, as_messages, encode_jsonl, hh_dialogue
from crawl2model.train.data import RowLoader
from crawl2model.train.loop import Distributed, TrainConfig, evaluate, fit, run_distributed


def encode_example(row: dict, chat: ChatTokens) -> tuple[list[int], list[int]]:
    """(ids, labels) of a row: `messages` (OpenAI's SFT form, whose `"weight": 0` assistant turns
    are not learned, and TRL's conversational one), an HH `chosen` dialogue, or `prompt` with
    `response` or `completion` (TRL's form), each a string or a list of messages."""
    if isinstance(row.get("messages"), list):
        messages = row["messages"]
    elif isinstance(row.get("chosen"), str) and "\n\nAssistant:" in row["chosen"]:
        messages = hh_dialogue(row["chosen"])
    elif "prompt" in row and ("response" in row or "completion" in row):
        reply = row["response"] if "response" in row else row["completion"]
        messages = as_messages(row["prompt"], "user") + as_messages(reply, "assistant")
    else:
        raise ValueError("needs `messages`, `prompt` and `response` (or `completion`), or an HH `chosen` dialogue")
    if not any(m.get("role") == "assistant" and str(m.get("content", "")).strip() for m in messages):
        raise ValueError("no assistant text to learn")
    return chat.encode(messages)


def read_examples(paths: list[str | Path], chat: ChatTokens) -> tuple[list[tuple[list[int], list[int]]], Counter]:
    """Encoded examples and what was skipped, by reason (with `file:line` for the first ones)."""
    examples, problems = encode_jsonl(paths, lambda row: encode_example(row, chat))
    return examples, Counter(f"{where}: {reason[:100]}" for where, reason in problems)


def pack(examples: list[tuple[list[int], list[int]]], max_len: int, pad: int) -> tuple[torch.Tensor, torch.Tensor, int]:
    """(inputs, labels), each (rows, max_len): examples back to back, labels shifted by one so
    labels[t] is the token after inputs[t]; and how many examples were cut to fit a row."""
    rows, current, cut = [], ([], []), 0
    for ids, labels in examples:
        if len(ids) > max_len + 1:
            ids, labels, cut = ids[:max_len + 1], labels[:max_len + 1], cut + 1
        if len(current[0]) + len(ids) > max_len + 1:
            rows.append(current)
            current = ([], [])
        current = (current[0] + ids, current[1] + labels)
    if current[0]:
        rows.append(current)
    inputs, targets = [], []
    for ids, labels in rows:
        ids = ids + [pad] * (max_len + 1 - len(ids))
        labels = labels + [IGNORE] * (max_len + 1 - len(labels))
        inputs.append(ids[:-1])
        targets.append(labels[1:])
    return torch.tensor(inputs), torch.tensor(targets), cut


def train_sft(start: str | Path, data: list[str | Path], tokenizer_file: str | Path, out_dir: str | Path,
              config: TrainConfig, *, val_fraction: float = 0.05, log=print, stop_at: int | None = None,
              report=None) -> dict:
    """Fine-tune the model of checkpoint `start` on the conversations in `data` (config.seq_len is
    the packed row length; config.model is unused: the model is the checkpoint's). Resumes from
    the newest checkpoint in `out_dir`; returns the last step's summary. `report`: the progress
    callback of `loop.fit`, also told `{"message": ...}` of the examples skipped or cut."""
    from tokenizers import Tokenizer

    from crawl2model.train.pretrain import load_model

    tokenizer = Tokenizer.from_file(storage.local_copy(str(tokenizer_file)))
    chat = ChatTokens(tokenizer)

    def job(dist: Distributed, device: str) -> dict:
        model, saved = load_model(start, device)
        if tokenizer.get_vocab_size() != model.config.vocab_size:
            raise ValueError(f"{tokenizer_file} has {tokenizer.get_vocab_size():,} tokens, the model "
                             f"{model.config.vocab_size:,}: another tokenizer")
        if config.seq_len > model.config.max_seq_len:
            raise ValueError(f"seq_len {config.seq_len} is longer than the model's {model.config.max_seq_len}")
        examples, skipped = read_examples(data, chat)
        if skipped:
            log(f"skipped {sum(skipped.values())} examples: {list(skipped)[:5]}")
            if report and dist.main:
                report({"message": f"skipped {sum(skipped.values()):,} examples: {'; '.join(list(skipped)[:3])}"})
        random.Random(config.seed).shuffle(examples)
        held = int(len(examples) * val_fraction)
        pad = tokenizer.token_to_id(PAD) or 0
        inputs, labels, cut = pack(examples[held:], config.seq_len, pad)
        log(f"{len(examples) - held} training examples in {len(inputs)} rows of {config.seq_len} ({cut} cut)")
        if cut and report and dist.main:
            report({"message": f"{cut:,} of {len(examples) - held:,} training examples cut to {config.seq_len} tokens"})
        loader = RowLoader(inputs, labels, config.batch_size, seed=config.seed, rank=dist.layout.dp_rank,
                           world=dist.layout.dp, name="sft examples")
        validate = None
        if held:
            val_inputs, val_labels, _ = pack(examples[:held], config.seq_len, pad)
            validate = lambda trained, autocast: evaluate(  # noqa: E731
                trained, RowLoader(val_inputs, val_labels, 1, shuffle=False), config, autocast, device)
        meta = {"model": model.config.to_dict(), "aligned": "sft", "tokenizer_sha256": saved.get("tokenizer_sha256")}
        return fit(model, loader, str(out_dir), config, dist, device, log, validate=validate, meta=meta,
                   tokenizer=str(tokenizer_file), stop_at=stop_at, report=report)

    return run_distributed(config, job)
