"""Preference pairs (and SFT conversations) in the forms users have them: OpenAI's and TRL's rows
give the pairs of the plain `prompt`/`chosen`/`rejected` rows they mean, and bad rows of each form
are counted with their line numbers."""
from __future__ import annotations

import gzip
import json

import pytest

from crawl2model.train.chat import IGNORE, ChatTokens
from crawl2model.train.preferences import collate, read_pairs
from crawl2model.train.sft import encode_example

SYSTEM = {"role": "system", "content": "Answer in one word."}
# (prompt messages, chosen text, rejected text): the second one is cut to max_len
MEANT = [([{"role": "user", "content": "What is the capital of France?"}], "Paris.", "London, I think."),
         ([SYSTEM, {"role": "user", "content": "Say hello " * 20}], "Hello.", "No."),
         ([{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello! How can I help?"},
           {"role": "user", "content": "Name a colour, in français."}], "Rouge 🙂", "I won't.")]


def user(text: str) -> dict:
    return {"role": "user", "content": text}


def assistant(text: str) -> dict:
    return {"role": "assistant", "content": text}


def plain(prompt, chosen, rejected) -> dict:
    return {"prompt": prompt, "chosen": chosen, "rejected": rejected}


def openai(prompt, chosen, rejected) -> dict:
    return {"input": {"messages": prompt, "tools": [], "parallel_tool_calls": True},
            "preferred_output": [assistant(chosen)], "non_preferred_output": [assistant(rejected)]}


def trl(prompt, chosen, rejected) -> dict:
    return {"prompt": prompt, "chosen": [assistant(chosen)], "rejected": [assistant(rejected)]}


def trl_implicit(prompt, chosen, rejected) -> dict:
    return {"chosen": prompt + [assistant(chosen)], "rejected": prompt + [assistant(rejected)]}


@pytest.fixture(scope="module")
def chat() -> ChatTokens:
    from crawl2model.stages.train_tokenizer import TrainTokenizerConfig, train_bpe

    text = "What is the capital of France? Paris. Hello! How can I help? Say hello. Name a colour."
    return ChatTokens(train_bpe(iter([[text] * 30]), TrainTokenizerConfig(vocab_size=300)))


def write(path, rows: list) -> list:
    path.write_text("".join((row if isinstance(row, str) else json.dumps(row)) + "\n" for row in rows))
    return [path]


@pytest.mark.parametrize("form", [openai, trl, trl_implicit])
def test_openai_and_trl_rows_give_the_pairs_of_plain_rows(chat, tmp_path, form):
    expected, expected_report = read_pairs(write(tmp_path / "plain.jsonl", [plain(*m) for m in MEANT]), chat, 64)
    assert expected_report.used == 3 and expected_report.truncated == 1 and not expected_report.skipped
    pairs, report = read_pairs(write(tmp_path / "form.jsonl", [form(*m) for m in MEANT]), chat, 64)
    assert pairs == expected and (report.used, report.truncated, report.skipped) == (3, 1, {})
    first = pairs[0]
    assert first.prompt == chat.encode(MEANT[0][0], generation_prompt=True)[0]
    assert first.chosen == chat.text("Paris.") + [chat.end] and first.chosen_labels is None


def test_a_response_of_several_messages_learns_only_its_assistant_text(chat, tmp_path):
    chosen = [user("Hi"), assistant("Hello!"), user("Colour?"), assistant("Rouge")]
    rejected = [user("Hi"), assistant("Go away.")]
    pairs, report = read_pairs(write(tmp_path / "turns.jsonl", [{"chosen": chosen, "rejected": rejected}]), chat, 64)
    assert report.used == 1
    pair = pairs[0]
    assert pair.prompt == chat.encode([user("Hi")], generation_prompt=True)[0]
    ids, labels = chat.encode(chosen[1:])
    assert pair.chosen == ids[1:] and pair.chosen_labels == labels[1:] and pair.rejected_labels is None
    batch_ids, batch_labels = collate(pairs, pad=1)
    learned = [label for label in batch_labels[0].tolist() if label != IGNORE]
    assert learned == chat.text("Hello!") + [chat.end] + chat.text("Rouge") + [chat.end]
    assert batch_ids[0, :len(pair.prompt) + len(pair.chosen)].tolist() == pair.prompt + pair.chosen


def test_bad_rows_of_each_form_are_counted_with_their_line_numbers(chat, tmp_path):
    prompt = [user("Hi")]
    rows = [openai(prompt, "Hello", "Bye"),
            {"input": "Hi", "preferred_output": [assistant("a")], "non_preferred_output": [assistant("b")]},
            {"input": {"messages": prompt}, "preferred_output": "Hello", "non_preferred_output": [assistant("b")]},
            openai(prompt, "Same", "Same"),
            {"prompt": prompt, "chosen": [assistant("Hello")], "rejected": "Bye"},
            {"prompt": prompt, "chosen": [user("Hello")], "rejected": [assistant("Bye")]},
            {"prompt": prompt, "chosen": [assistant("a"), {"role": "robot", "content": "x"}],
             "rejected": [assistant("b")]},
            trl(prompt, " ", "Bye"),
            {"chosen": [user("Hi"), assistant("a")], "rejected": [user("Yo"), assistant("b")]},
            [1, 2], {"question": "Hi", "answer": "Hello"}, "{not json",
            trl_implicit(prompt, "Hello", "Bye")]
    pairs, report = read_pairs(write(tmp_path / "bad.jsonl", rows), chat, 64)
    assert report.used == len(pairs) == 2
    reasons = {int(p.split(": ", 1)[0].rsplit(":", 1)[1]): p.split(": ", 1)[1] for p in report.problems}
    assert reasons == {
        2: "OpenAI pair: needs `input` with `messages`",
        3: "`preferred_output` is not a list of messages",
        4: "chosen equals rejected",
        5: "`rejected` is not a list of messages",
        6: "a response starts with an assistant message, not 'user'",
        7: "message 1: needs a role (system, user, assistant) and text content, got {'role': 'robot', 'content': 'x'}",
        8: "empty response",
        9: "the two conversations share no leading messages before an assistant turn",
        10: "not a pair: a row is a JSON object",
        11: "not a pair: needs `chosen` and `rejected`, or OpenAI's `preferred_output` and `non_preferred_output`",
        12: "Expecting property name enclosed in double quotes: line 1 column 2 (char 1)"}
    assert sum(report.skipped.values()) == 11


def test_a_file_of_mixed_forms_gives_each_rows_pair(chat, tmp_path):
    hh = {"chosen": "\n\nHuman: What is the capital of France?\n\nAssistant: Paris.",
          "rejected": "\n\nHuman: What is the capital of France?\n\nAssistant: London, I think."}
    rows = [hh] + [form(*meant) for form, meant in zip([openai, trl, trl_implicit, plain], MEANT + MEANT[:1])]
    path = tmp_path / "mixed.jsonl.gz"
    path.write_bytes(gzip.compress("".join(json.dumps(row) + "\n" for row in rows).encode()))
    pairs, report = read_pairs([path], chat, 64)
    alone = [read_pairs(write(tmp_path / f"{n}.jsonl", [row]), chat, 64)[0] for n, row in enumerate(rows)]
    assert report.used == 5 and report.truncated == 1 and pairs == [p for ps in alone for p in ps]
    assert pairs[0] == pairs[1] == pairs[4]  # HH's dialogue, OpenAI's row and the plain row of one question


def test_sft_reads_trl_prompt_completion_and_openai_weights(chat):
    conversation = [SYSTEM, user("Capital of France?"), assistant("Paris.")]
    expected = chat.encode(conversation)
    assert encode_example({"prompt": conversation[:2], "completion": conversation[2:]}, chat) == expected
    strings = {"prompt": "Capital of France?", "completion": "Paris."}
    assert encode_example(strings, chat) == chat.encode(conversation[1:])
    assert encode_example({"messages": conversation, "tools": []}, chat) == expected
    weighted = [user("Hi"), {**assistant("Hello"), "weight": 0}, user("Capital?"), {**assistant("Paris."), "weight": 1}]
    ids, labels = encode_example({"messages": weighted}, chat)
    assert [i for i, label in zip(ids, labels) if label != IGNORE] == chat.text("Paris.") + [chat.end]
    with pytest.raises(ValueError, match="needs a string or a list of messages"):
        encode_example({"prompt": 3, "completion": "x"}, chat)
