"""Scoring a trained model the same way whatever data or tokenizer it was trained on: the part of
an ablation (one small model per data arm, equal token budgets) that compares the arms.

Two measures, both computed in float32 under no_grad with the model in eval mode (its mode is
restored afterwards), deterministic for a given model and input:

- `bits_per_byte` of reference texts: the summed next-token negative log-likelihood, in bits, over
  the UTF-8 bytes of the texts. Per byte, not per token, so models with different tokenizers
  compare (a tokenizer that makes fewer, longer tokens does not look better for it).
- `multiple_choice` accuracy: for each task, the choice the model finds likeliest after the
  context (`acc`), and likeliest per byte of the choice (`acc_norm`, as lm-evaluation-harness).

Texts are framed as the `tokenize` stage frames documents for training (stages/tokenize.py): no
BOS, `<|endoftext|>` after each document. Here the EOS also goes before each text, where the
previous document's EOS stood in training, so a text's first token is predicted from the same
context the model learned to start documents from.

Tasks come as JSON lines `{"context": str, "choices": [str, ...], "answer": int}` (`read_tasks`,
`write_tasks`); reference texts as .txt, .jsonl or .parquet files (`read_texts`).
"""
from __future__ import annotations

import json
import math
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from crawl2model.model.special_tokens import EOS
from crawl2model.pipeline import storage
from crawl2model.pipeline.jsonl import read_jsonl

IGNORE = -100  # a target that is not scored (cross-entropy's ignore_index)
MAX_PROBLEMS = 10  # bad rows listed in an error (all are counted)
JSONL_SUFFIXES = (".jsonl", ".jsonl.gz", ".jsonl.bz2", ".jsonl.xz", ".jsonl.zst")  # read_jsonl decompresses


@dataclass(frozen=True)
class Score:
    """Bits per byte of a set of texts, and what it was computed from."""

    bits_per_byte: float
    nats: float  # summed negative log-likelihood of every predicted token
    tokens: int  # predicted tokens: each text's own, and the EOS that ends it
    bytes: int  # UTF-8 bytes of the texts
    documents: int  # texts scored (empty ones are skipped: they have no bytes)


@dataclass(frozen=True)
class Task:
    """A multiple-choice task: which of `choices` follows `context`; `answer` is the right one's index."""

    context: str
    choices: tuple[str, ...]
    answer: int


# --- the model's log-likelihoods -------------------------------------------------------------------


@contextmanager
def evaluating(model: torch.nn.Module):
    """The model in eval mode (no dropout) inside, in the mode it came in after."""
    training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(training)


def eos_id(tokenizer) -> int:
    token = tokenizer.token_to_id(EOS)
    if token is None:
        raise ValueError(f"the tokenizer has no {EOS}: it is not one the train_tokenizer stage made")
    return token


def check_vocabulary(model, tokenizer) -> None:
    if tokenizer.get_vocab_size() != model.config.vocab_size:
        raise ValueError(f"the tokenizer has {tokenizer.get_vocab_size():,} tokens, the model "
                         f"{model.config.vocab_size:,}: it is not the tokenizer the model was trained with")


@torch.no_grad()
def summed_logprobs(model, rows: list[tuple[list[int], int]], batch_size: int = 8, device=None) -> list[float]:
    """For each row (tokens, scored): the summed log-probability (nats) of its last `scored`
    tokens, each given every token before it in the row. Rows must fit the model's context
    (at most max_seq_len + 1 tokens: the last is only predicted)."""
    device = device or next(model.parameters()).device
    with evaluating(model):
        return [value for start in range(0, len(rows), batch_size)
                for value in _batch_logprobs(model, rows[start:start + batch_size], device)]


def _batch_logprobs(model, rows: list[tuple[list[int], int]], device) -> list[float]:
    width = max(len(tokens) for tokens, _ in rows) - 1
    # padding goes on the right, where causal attention keeps it from every scored position
    inputs = torch.zeros(len(rows), width, dtype=torch.long)
    targets = torch.full((len(rows), width), IGNORE, dtype=torch.long)
    for row, (tokens, scored) in enumerate(rows):
        inputs[row, :len(tokens) - 1] = torch.tensor(tokens[:-1])
        targets[row, len(tokens) - 1 - scored:len(tokens) - 1] = torch.tensor(tokens[len(tokens) - scored:])
    logits, _ = model(inputs.to(device))
    # flat (tokens, vocabulary): a third of the time of the class axis moved to dim 1 by a transpose
    nll = F.cross_entropy(logits.float().flatten(0, 1), targets.to(device).flatten(), ignore_index=IGNORE,
                          reduction="none")
    return (-nll.view(len(rows), width).double().sum(1)).tolist()


# --- bits per byte ---------------------------------------------------------------------------------


def windows(ids: list[int], length: int) -> list[list[int]]:
    """Cuts of `ids` of at most `length` + 1 tokens, each starting on the last token of the one
    before: the model reads at most `length` tokens at once, and every token but the first is
    predicted exactly once. Disjoint windows (no sliding overlap): a token early in a window sees
    less context, which costs all arms alike, and each token is read once instead of many times."""
    return [ids[start:start + length + 1] for start in range(0, len(ids) - 1, length)]


def bits_per_byte(model, tokenizer, texts: list[str], seq_len: int | None = None, batch_size: int = 8,
                  device=None) -> Score:
    """Bits per UTF-8 byte of `texts` under the model: each text tokenized whole, between EOS
    tokens, and read in windows of at most `seq_len` tokens (default and at most: the model's
    max_seq_len). `device`: where the model is (default: where its parameters are)."""
    context = min(model.config.max_seq_len if seq_len is None else seq_len, model.config.max_seq_len)
    if context < 1:
        raise ValueError(f"seq_len must be at least 1, not {seq_len}")
    check_vocabulary(model, tokenizer)
    texts = [text for text in texts if text]
    size = sum(len(text.encode("utf-8")) for text in texts)
    if not size:
        raise ValueError("no text to score: every text is empty")
    eos = eos_id(tokenizer)
    rows = [(window, len(window) - 1)
            for encoding in tokenizer.encode_batch(texts, add_special_tokens=False)
            for window in windows([eos, *encoding.ids, eos], context)]
    nats = -sum(summed_logprobs(model, rows, batch_size, device))
    tokens = sum(scored for _, scored in rows)
    return Score(bits_per_byte=nats / math.log(2) / size, nats=nats, tokens=tokens, bytes=size, documents=len(texts))


# --- multiple choice -------------------------------------------------------------------------------


def choice_tokens(tokenizer, context: str, choice: str) -> tuple[list[int], list[int]]:
    """(context tokens, choice tokens), encoded apart, so that the choice's tokens are exactly its
    own and the context's the same for every choice, whatever the tokenizer would merge across the
    boundary. Trailing whitespace of the context moves to the choice first, as lm-evaluation-harness
    does: a byte-level BPE attaches a space to the word after it (" Paris"), so that is where it is
    scored. (lm-evaluation-harness encodes context + choice whole and slices the context off, which
    can leave a choice's first token merged with the context's last; apart, it cannot.)"""
    spaces = len(context) - len(context.rstrip())
    if spaces:
        context, choice = context[:-spaces], context[-spaces:] + choice
    return (tokenizer.encode(context, add_special_tokens=False).ids,
            tokenizer.encode(choice, add_special_tokens=False).ids)


def choice_row(context: list[int], choice: list[int], max_seq_len: int) -> tuple[list[int], int]:
    """The row that scores `choice` after `context`, cut from the left to fit the model (at most
    max_seq_len inputs); the choice itself is never cut."""
    if not choice:
        raise ValueError("a choice encodes to no tokens")
    if len(choice) > max_seq_len:
        raise ValueError(f"a choice of {len(choice)} tokens does not fit the model's context ({max_seq_len})")
    return [*context, *choice][-(max_seq_len + 1):], len(choice)


def choice_logprobs(model, tokenizer, tasks: list[Task], batch_size: int = 8, device=None) -> list[list[float]]:
    """The summed log-probability (nats) of each choice of each task, given its context (after an EOS,
    a document's start)."""
    check_vocabulary(model, tokenizer)
    eos, limit = eos_id(tokenizer), model.config.max_seq_len
    rows, sizes = [], []
    for number, task in enumerate(tasks):
        for choice in task.choices:
            context, ids = choice_tokens(tokenizer, task.context, choice)
            try:
                rows.append(choice_row([eos, *context], ids, limit))
            except ValueError as error:
                raise ValueError(f"task {number}: {error}") from None
        sizes.append(len(task.choices))
    flat = iter(summed_logprobs(model, rows, batch_size, device))
    return [[next(flat) for _ in range(size)] for size in sizes]


def accuracy(tasks: list[Task], logprobs: list[list[float]]) -> dict:
    """`acc`: the share of tasks whose likeliest choice is the answer; `acc_norm`: the same with each
    choice's log-likelihood divided by its length in UTF-8 bytes (lm-evaluation-harness divides by
    characters; the same for ASCII), which keeps long choices from losing for their length alone.
    A tie goes to the first choice."""
    if not tasks:
        raise ValueError("no tasks to score")
    right = right_norm = 0
    for task, values in zip(tasks, logprobs, strict=True):
        per_byte = [value / max(1, len(choice.encode("utf-8"))) for value, choice in zip(values, task.choices)]
        right += _argmax(values) == task.answer
        right_norm += _argmax(per_byte) == task.answer
    return {"acc": right / len(tasks), "acc_norm": right_norm / len(tasks), "n": len(tasks)}


def _argmax(values: list[float]) -> int:
    return max(range(len(values)), key=lambda i: (values[i], -i))


def multiple_choice(model, tokenizer, tasks: list[Task], batch_size: int = 8, device=None) -> dict:
    """{"acc", "acc_norm", "n"} of the model on `tasks` (see `accuracy`)."""
    return accuracy(tasks, choice_logprobs(model, tokenizer, tasks, batch_size, device))


# --- files -----------------------------------------------------------------------------------------


def task_problem(row) -> str | None:
    """What is wrong with a parsed task row, or None."""
    if not isinstance(row, dict):
        return f"not a JSON object but {type(row).__name__}"
    missing = [key for key in ("context", "choices", "answer") if key not in row]
    if missing:
        return f"no {', '.join(missing)}"
    choices = row["choices"]
    if not isinstance(row["context"], str):
        return "context is not a string"
    if not isinstance(choices, list) or len(choices) < 2:
        return "choices is not a list of at least 2"
    if not all(isinstance(choice, str) and choice.strip() for choice in choices):
        return "a choice is not a non-empty string"
    answer = row["answer"]
    if isinstance(answer, bool) or not isinstance(answer, int) or not 0 <= answer < len(choices):
        return f"answer {answer!r} is not an index of the {len(choices)} choices"
    return None


def _raise_problems(path, problems: list[str], what: str) -> None:
    if problems:
        listed = "; ".join(problems[:MAX_PROBLEMS]) + ("; ..." if len(problems) > MAX_PROBLEMS else "")
        raise ValueError(f"{path}: {len(problems)} bad {what}: {listed}")


def read_tasks(path: str | Path) -> list[Task]:
    """The tasks of a JSONL file (compressed by extension, as read_jsonl reads); ValueError naming
    the file and every bad line (the first MAX_PROBLEMS listed), or when there is no task."""
    tasks, problems = [], []
    for number, row in read_jsonl(path):
        problem = f"not JSON ({row})" if isinstance(row, ValueError) else task_problem(row)
        if problem:
            problems.append(f"line {number}: {problem}")
        else:
            tasks.append(Task(row["context"], tuple(row["choices"]), row["answer"]))
    _raise_problems(path, problems, "rows")
    if not tasks:
        raise ValueError(f"{path}: no tasks")
    return tasks


def write_tasks(tasks: list[Task], path: str | Path) -> None:
    """Tasks as the JSON lines read_tasks reads, written atomically."""
    lines = (json.dumps({"context": t.context, "choices": list(t.choices), "answer": t.answer}, ensure_ascii=False)
             for t in tasks)
    storage.write_bytes_atomic(str(path), "".join(f"{line}\n" for line in lines).encode("utf-8"))


def read_texts(paths: list[str | Path]) -> list[str]:
    """The documents of reference files: a .txt file is one document, whole (bits per byte wants
    documents as the model saw them in training, and windows cut a long one anyway; a set of many
    documents comes as .jsonl or .parquet); a .jsonl (or .jsonl.gz, ...) file's rows' `text`; a
    .parquet file's `text` column. Empty documents are left out: they have no bytes to score."""
    texts = []
    for path in map(str, paths):
        if path.endswith(".txt"):
            found = [(storage.read_bytes(path) or b"").decode("utf-8")] if storage.exists(path) else None
        elif path.endswith(JSONL_SUFFIXES):
            found = _jsonl_texts(path)
        elif path.endswith(".parquet"):
            found = _parquet_texts(path) if storage.exists(path) else None
        else:
            raise ValueError(f"{path}: reference texts are .txt, .jsonl or .parquet files")
        if found is None:
            raise FileNotFoundError(f"{path}: no such file")
        texts += [text for text in found if text]
    return texts


def _jsonl_texts(path: str) -> list[str]:
    texts, problems = [], []
    for number, row in read_jsonl(path):
        if isinstance(row, dict) and isinstance(row.get("text"), str):
            texts.append(row["text"])
        else:
            problems.append(f"line {number}: " + (f"not JSON ({row})" if isinstance(row, ValueError)
                                                  else "not an object with a string `text`"))
    _raise_problems(path, problems, "rows")
    return texts


def _parquet_texts(path: str) -> list[str]:
    try:
        column = storage.read_parquet(path, columns=["text"]).column("text")
    except (KeyError, ValueError) as error:  # pyarrow: "No match for FieldRef.Name(text)"
        raise ValueError(f"{path}: no `text` column ({error})") from None
    return [text for text in column.to_pylist() if text is not None]
