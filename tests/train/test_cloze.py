"""Cloze tasks (train/cloze.py): the right choice is the sentence that follows the context, the
wrong ones are other sentences, and a seed makes the same tasks."""
from __future__ import annotations

from crawl2model.train.cloze import FAR, cloze_tasks, sentences

COLOURS = ["red", "green", "blue", "amber", "violet", "ochre"]


def documents(count: int = 6, length: int = 9) -> list[str]:
    """Documents of distinct sentences (each names its document and place), a short one after
    every third: short sentences are never context nor choice, so no task starts before one."""
    return [" ".join(f"Document {d} sentence {i} is about {COLOURS[i % 6]} things."
                     + (f" Short {i}!" if i % 3 == 2 else "") for i in range(length)) for d in range(count)]


def following(texts: list[str], min_chars: int = 20) -> dict[str, str]:
    """Each long sentence's next sentence in its document."""
    return {a: b for text in texts for a, b in zip(sentences(text), sentences(text)[1:]) if len(a) >= min_chars}


def test_sentences_end_at_stops_before_a_capital_and_at_line_breaks():
    text = ('It rained. "Go home," she said! Did he? 3 cats came (slowly.) Then\nA heading\n\n'
            'v1.2 is out. e.g. not here.')
    assert sentences(text) == ["It rained.", '"Go home," she said!', "Did he?", "3 cats came (slowly.)", "Then",
                               "A heading", "v1.2 is out. e.g. not here."]  # no capital: no end


def test_the_answer_is_the_sentence_that_follows_the_context():
    texts = documents()
    tasks = cloze_tasks(texts, 20, choices=4, seed=3)
    after = following(texts)
    assert len(tasks) == 20
    for task in tasks:
        assert len(task.choices) == 4 and all(choice.startswith(" ") for choice in task.choices)
        right = after[task.context]
        assert task.choices[task.answer] == f" {right}"
        wrong = [c.strip() for i, c in enumerate(task.choices) if i != task.answer]
        assert right not in wrong and len(set(wrong)) == 3
        assert all(len(c) >= 20 for c in wrong)  # "Short 3!" is never a choice
        document = task.context.split()[1]
        assert all(c.split()[1] != document for c in wrong)  # from other documents
    assert len({task.answer for task in tasks}) > 1  # the right choice is not always in one place


def test_tasks_are_the_same_for_a_seed_and_differ_between_seeds():
    texts = documents()
    assert cloze_tasks(texts, 10, seed=1) == cloze_tasks(texts, 10, seed=1)
    assert cloze_tasks(texts, 10, seed=1) != cloze_tasks(texts, 10, seed=2)


def test_n_is_the_most_made_and_short_sentences_are_skipped():
    texts = documents(count=3, length=6)  # per document 4 long pairs: (0, 1), (1, 2), (3, 4), (4, 5)
    assert len(cloze_tasks(texts, 5)) == 5
    tasks = cloze_tasks(texts, 100)
    assert len(tasks) == 12 and len({task.context for task in tasks}) == 12
    assert not any("Short" in task.context or "Short" in " ".join(task.choices) for task in tasks)
    assert not any(task.context.split()[3] in ("2", "5") for task in tasks)  # followed by a short one
    assert cloze_tasks(["Too short. Also short. Tiny."], 10) == []


def test_distractors_are_distinct_and_never_the_answer_even_when_it_repeats():
    texts = ["First long sentence of document A. Second long sentence of document A.",
             "The only long sentence of document B.", "The only long sentence of document C.",
             "Second long sentence of document A."]  # web text repeats itself: the answer again, elsewhere
    for seed in range(10):
        [task] = cloze_tasks(texts, 10, choices=3, seed=seed)
        assert sorted(task.choices) == [" Second long sentence of document A.",
                                        " The only long sentence of document B.",
                                        " The only long sentence of document C."]
    assert cloze_tasks(texts, 10, choices=4) == []  # not enough distinct distractors: no task


def test_one_document_draws_distractors_far_from_the_answer():
    text = " ".join(f"Sentence number {i} of the only document." for i in range(3 * FAR))
    for task in cloze_tasks([text], 30, choices=3, seed=0):
        place = int(task.choices[task.answer].split()[2])
        assert place == int(task.context.split()[2]) + 1
        assert all(abs(int(c.split()[2]) - place) >= FAR for i, c in enumerate(task.choices) if i != task.answer)


def test_context_sentences_join_the_sentences_before_the_answer():
    texts = ["First long sentence of the text. Second long sentence of the text. Third long sentence here.",
             "Another document with a long sentence. And a second long one too."]
    task = next(t for t in cloze_tasks(texts, 10, choices=2, context_sentences=2)
                if "Third long sentence here." in t.choices[t.answer])
    assert task.context == "First long sentence of the text. Second long sentence of the text."
