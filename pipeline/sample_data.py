"""Labelled demonstration data, generated from a seed like the sample crawl: reference prose and
comments (toxic or polite) for the classifiers, conversations for SFT, preference pairs for DPO.

It lets the embedded default (examples/crawl.yaml) run every stage without a download. It is a
demonstration, not training data: the real-data configs (examples/classifiers.yaml,
examples/align.yaml) read real corpora instead. The English sentences are the sample crawl's own.
"""
from __future__ import annotations

import random
from typing import Literal

from crawl2model.pipeline.sample_text import SENTENCES

TextKind = Literal["reference", "toxic", "polite"]

TOPICS = ["the library", "the market", "the new cycling lane", "the train timetable", "the park",
          "the museum", "the weather", "the football club", "the swimming pool", "the book fair"]
INSULTS = ["idiot", "moron", "clown", "loser", "fool", "joke of a writer"]
SCORN = ["garbage", "pathetic", "worthless", "stupid", "a waste of everyone's time", "utter trash"]
THANKS = ["Thank you for", "Thanks a lot for", "I really enjoyed", "Many thanks for", "Great to read"]
PRAISE = ["clear and helpful", "well written", "useful for our family", "a pleasure to read", "very informative"]

# (question, a helpful answer) about the sample's own topics: the chosen side of a preference
QUESTIONS = [
    ("When is the library open?", "The city council has voted to extend the library's opening hours, so it now "
                                  "opens earlier and closes later on weekdays."),
    ("How do I make bread taste better?", "Let the dough rest overnight in the fridge; the slow rise gives the "
                                          "bread a deeper flavour."),
    ("Will it rain this week?", "Forecasters expect heavy rain in the north of the county until Thursday evening, "
                                "so take an umbrella."),
    ("What is a cheap meal for a family?", "A soup of lentils, carrots and cumin costs very little and feeds a "
                                           "whole family."),
    ("When can I plant tomatoes outside?", "Wait until the last frost has passed, then plant them in a sunny spot."),
    ("How do I get to the villages in the valley?", "The bus company runs connections to the valley villages, and "
                                                    "it has promised more of them soon."),
    ("Is the swimming pool open?", "The pool on Mill Street is closed for renovation and reopens next month."),
    ("How can older people stay well in the heat?", "Doctors advise drinking enough water and resting in the shade "
                                                    "during the hot afternoons."),
]
UNHELPFUL = ["I don't know and I don't care.", "Figure it out yourself.", "Why would I tell you that?",
             "That is a stupid question.", "Ask someone else, I am busy."]


def texts(kind: TextKind, count: int, seed: int) -> list[str]:
    """`count` texts of one kind: reference prose (paragraphs of the sample's English sentences),
    or a reader's comment on a local news article, toxic or polite."""
    rng = random.Random(f"{kind}:{seed}")
    if kind == "reference":
        return [" ".join(rng.sample(SENTENCES["en"], rng.randint(3, 6))) for _ in range(count)]
    if kind == "toxic":
        return [f"Your piece on {rng.choice(TOPICS)} is {rng.choice(SCORN)}. Only a {rng.choice(INSULTS)} "
                f"would write this, you {rng.choice(INSULTS)}." for _ in range(count)]
    return [f"{rng.choice(THANKS)} the piece on {rng.choice(TOPICS)}. It was {rng.choice(PRAISE)}; "
            f"{rng.choice(SENTENCES['en'])}" for _ in range(count)]


def conversations(count: int, seed: int) -> list[dict]:
    """SFT examples: a user's question and the assistant's helpful answer, as `messages`."""
    rng = random.Random(f"conversations:{seed}")
    rows = []
    for _ in range(count):
        question, answer = rng.choice(QUESTIONS)
        rows.append({"messages": [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]})
    return rows


def preference_pairs(count: int, seed: int) -> list[dict]:
    """DPO examples: a question, its helpful answer (chosen) and a rude or off-topic one (rejected)."""
    rng = random.Random(f"preferences:{seed}")
    rows = []
    for _ in range(count):
        question, answer = rng.choice(QUESTIONS)
        rejected = rng.choice(UNHELPFUL) if rng.random() < 0.5 else rng.choice([a for q, a in QUESTIONS if q != question])
        rows.append({"prompt": question, "chosen": answer, "rejected": rejected})
    return rows
