"""Cloze tasks made from held-out text: which of several sentences comes next?

A task's context is a sentence (or a few in a row), its right choice the sentence that follows it
in the document, and its wrong choices sentences drawn from other documents (or from far away in
the same one, when there is one document). Made from clean text the arms were not trained on,
they give an ablation a multiple-choice score (train/scoring.py) without an external benchmark;
the same seed makes the same tasks, so every arm is scored on the same ones.
"""
from __future__ import annotations

import random
import re

from crawl2model.train.scoring import Task

# A sentence ends at . ! or ? (and any closing quotes or brackets), before whitespace and a
# capital, digit or opening quote. A regex, not a trained splitter: no new dependency, and its
# mistakes (after "Mr.", "e.g.") only make some tasks odd, the same tasks for every arm.
SENTENCE_END = re.compile(r"[.!?][\"'”’)\]]*(\s+)(?=[\"'“‘(\[]?[A-Z0-9])")  # group 1: the gap between two
FAR = 20  # sentences apart, at least, for a distractor drawn from the task's own document
DRAWS = 100  # tries at drawing each distractor before a task is given up


def sentences(text: str) -> list[str]:
    """The sentences of a text, in order; a line break ends one too (headings, list items)."""
    found = []
    for line in text.splitlines():
        start = 0
        for end in SENTENCE_END.finditer(line):
            found.append(line[start:end.start(1)])
            start = end.end(1)
        found.append(line[start:])
    return [sentence.strip() for sentence in found if sentence.strip()]


def cloze_tasks(texts: list[str], n: int, choices: int = 4, seed: int = 0, min_chars: int = 20,
                context_sentences: int = 1) -> list[Task]:
    """Up to `n` tasks (fewer when the texts hold fewer usable sentence pairs), the same for a seed.
    Sentences shorter than `min_chars` are never context nor choice. Choices start with a space:
    they continue the context's last sentence as running text does."""
    if choices < 2:
        raise ValueError(f"a task needs at least 2 choices, not {choices}")
    rng = random.Random(seed)
    documents = [sentences(text) for text in texts]
    pool = [(d, i) for d, found in enumerate(documents) for i, sentence in enumerate(found)
            if len(sentence) >= min_chars]
    starts = [(d, i) for d, i in pool if i + 1 < len(documents[d]) and len(documents[d][i + 1]) >= min_chars]
    rng.shuffle(starts)
    tasks = []
    for d, i in starts:
        if len(tasks) == n:
            break
        wrong = _distractors(documents, pool, (d, i + 1), choices - 1, rng)
        if wrong is None:
            continue
        right = documents[d][i + 1]
        options = [right, *wrong]
        rng.shuffle(options)
        context = " ".join(documents[d][max(0, i + 1 - context_sentences):i + 1])
        tasks.append(Task(context, tuple(f" {option}" for option in options), options.index(right)))
    return tasks


def _distractors(documents: list[list[str]], pool: list[tuple[int, int]], true: tuple[int, int], count: int,
                 rng: random.Random) -> list[str] | None:
    """`count` distinct sentences of the pool, none equal to the true one (web text repeats itself),
    each from another document or at least FAR sentences from the true one; None when the draws
    run out."""
    right = documents[true[0]][true[1]]
    found: list[str] = []
    for _ in range(DRAWS * count):
        if len(found) == count:
            break
        d, i = pool[rng.randrange(len(pool))]
        sentence = documents[d][i]
        if (d != true[0] or abs(i - true[1]) >= FAR) and sentence != right and sentence not in found:
            found.append(sentence)
    return found if len(found) == count else None
