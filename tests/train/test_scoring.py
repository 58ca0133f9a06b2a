"""Scoring (train/scoring.py): bits per byte and multiple-choice accuracy checked against values
computed by hand, with models whose predictions are known: a bigram table (its logits depend on the
current token alone, wherever a window starts) and a Llama whose output weights are zero (uniform)."""
from __future__ import annotations

import json
import math

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from crawl2model.model.llama import Llama, LlamaConfig
from crawl2model.model.special_tokens import EOS, SPECIAL_TOKENS
from crawl2model.train.scoring import (Task, bits_per_byte, choice_logprobs, choice_tokens, multiple_choice, read_tasks,
                                       read_texts, write_tasks)

WORDS = "the quick brown fox jumps over a lazy dog while seven red owls sing loudly x longword".split()
TEXT = "the quick brown fox jumps over a lazy dog"  # every word once: each token has one successor


def word_tokenizer():
    """One token per whitespace-separated word of WORDS (and the special tokens): token counts known."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {token: i for i, token in enumerate([*SPECIAL_TOKENS, "[UNK]", *WORDS])}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return tokenizer


class Bigram(torch.nn.Module):
    """Llama's interface (`config`, `forward(tokens) -> (logits, loss)`), its logits a row of a table
    picked by the current token; dropout on them in training mode, so that scoring outside eval
    mode shows."""

    def __init__(self, table: torch.Tensor, max_seq_len: int = 64):
        super().__init__()
        self.config = LlamaConfig(vocab_size=table.shape[0], dim=8, n_layers=1, n_heads=1, max_seq_len=max_seq_len)
        self.table = torch.nn.Parameter(table.clone())
        self.dropout = torch.nn.Dropout(0.5)
        self.seen: list[list[list[int]]] = []  # the inputs of each call, batch by batch

    def forward(self, tokens, targets=None):
        assert tokens.shape[1] <= self.config.max_seq_len, "a window longer than the model's context"
        self.seen.append(tokens.tolist())
        return self.dropout(self.table[tokens]), None


def ids(tokenizer, text: str) -> list[int]:
    return tokenizer.encode(text, add_special_tokens=False).ids


def by_hand(table: torch.Tensor, tokens: list[int], scored: int | None = None) -> float:
    """Summed log-probability of the last `scored` tokens (default: all but the first) under a bigram table."""
    logp = table.log_softmax(-1)
    pairs = list(zip(tokens, tokens[1:]))
    return sum(float(logp[a, b]) for a, b in pairs[len(pairs) - (len(pairs) if scored is None else scored):])


def certain_table(tokenizer, text: str, vocab: int) -> torch.Tensor:
    """A bigram table sure of each successor in `text` (between EOS tokens)."""
    table = torch.zeros(vocab, vocab)
    framed = [tokenizer.token_to_id(EOS), *ids(tokenizer, text), tokenizer.token_to_id(EOS)]
    for a, b in zip(framed, framed[1:]):
        table[a, b] = 40.0
    return table


def uniform_llama(vocab: int, max_seq_len: int = 16, dropout: float = 0.0) -> Llama:
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=vocab, dim=16, n_layers=1, n_heads=2, max_seq_len=max_seq_len, dropout=dropout)
    model = Llama(config)
    with torch.no_grad():
        model.output.weight.zero_()  # logits all 0: every token has probability 1/vocab
    return model


@pytest.fixture(scope="module")
def bpe():
    from crawl2model.stages.train_tokenizer import TrainTokenizerConfig, train_bpe

    corpus = ["The scoring of a model is the same for every arm. " * 3, "Bits per byte do not care how text is cut."]
    return train_bpe(iter(corpus), TrainTokenizerConfig(vocab_size=300))


# --- bits per byte ---------------------------------------------------------------------------------


def test_bits_per_byte_is_the_summed_loss_over_bytes_whatever_the_windows():
    tokenizer = word_tokenizer()
    vocab = tokenizer.get_vocab_size()
    table = torch.randn(vocab, vocab, generator=torch.Generator().manual_seed(0))
    texts = [TEXT, "", "seven red owls sing loudly while the fox jumps over the dog x", "longword"]
    eos = tokenizer.token_to_id(EOS)
    framed = [[eos, *ids(tokenizer, text), eos] for text in texts if text]
    nats = -sum(by_hand(table, tokens) for tokens in framed)
    size = sum(len(text.encode()) for text in texts)
    for seq_len in (None, 1, 2, 3, 7, 1000):
        for batch_size in (1, 3, 8):
            score = bits_per_byte(Bigram(table, max_seq_len=16), tokenizer, texts, seq_len, batch_size)
            assert score.bits_per_byte == pytest.approx(nats / math.log(2) / size, rel=1e-6), (seq_len, batch_size)
            assert (score.tokens, score.bytes, score.documents) == (sum(len(t) - 1 for t in framed), size, 3)
            assert score.nats == pytest.approx(nats, rel=1e-6)


def test_a_certain_model_scores_near_zero_on_its_text_and_more_on_other_text():
    tokenizer = word_tokenizer()
    model = Bigram(certain_table(tokenizer, TEXT, tokenizer.get_vocab_size()))
    assert bits_per_byte(model, tokenizer, [TEXT]).bits_per_byte < 1e-6
    assert bits_per_byte(model, tokenizer, ["a lazy dog jumps over the quick brown fox"]).bits_per_byte > 0.5


def test_a_uniform_model_scores_log2_vocab_per_token_exactly(bpe):
    texts = ["Bits per byte do not care how text is cut, nor which tokenizer cut it.", "Ünïcödé: 3 bytes → here.",
             "The scoring of a model is the same for every arm. " * 4]
    vocab = bpe.get_vocab_size()
    tokens = sum(len(ids(bpe, text)) + 1 for text in texts)  # the text's tokens and its closing EOS
    size = sum(len(text.encode("utf-8")) for text in texts)
    for seq_len in (None, 5):
        score = bits_per_byte(uniform_llama(vocab), bpe, texts, seq_len=seq_len, batch_size=2)
        assert score.tokens == tokens and score.bytes == size and score.documents == 3
        assert score.bits_per_byte == pytest.approx(math.log2(vocab) * tokens / size, rel=1e-6)


def test_scoring_is_deterministic_without_grad_and_restores_the_mode(bpe):
    model = uniform_llama(bpe.get_vocab_size(), dropout=0.5)
    with torch.no_grad():
        model.output.weight.normal_(generator=torch.Generator().manual_seed(1))  # not uniform: dropout would show
    model.train()
    first = bits_per_byte(model, bpe, ["Bits per byte do not care how text is cut."], seq_len=4)
    assert bits_per_byte(model, bpe, ["Bits per byte do not care how text is cut."], seq_len=4) == first
    assert model.training and all(p.grad is None for p in model.parameters())
    bigram = Bigram(torch.randn(bpe.get_vocab_size(), bpe.get_vocab_size())).train()
    tasks = [Task("Bits per", (" byte", " model"), 0)]
    assert multiple_choice(bigram, bpe, tasks) == multiple_choice(bigram, bpe, tasks) and bigram.training


def test_scoring_refuses_another_tokenizer_and_no_text(bpe):
    tokenizer = word_tokenizer()
    with pytest.raises(ValueError, match="not the tokenizer the model was trained with"):
        bits_per_byte(uniform_llama(bpe.get_vocab_size()), tokenizer, [TEXT])
    with pytest.raises(ValueError, match="every text is empty"):
        bits_per_byte(uniform_llama(tokenizer.get_vocab_size()), tokenizer, ["", ""])


# --- multiple choice -------------------------------------------------------------------------------


def test_multiple_choice_picks_the_memorised_continuation():
    tokenizer = word_tokenizer()
    model = Bigram(certain_table(tokenizer, TEXT, tokenizer.get_vocab_size()))
    tasks = [Task("the quick brown", (" owls sing loudly", " fox jumps over", " dog while seven"), 1),
             Task("jumps over a", (" lazy dog", " red owls"), 0),
             Task("the quick brown fox jumps ", ("seven red owls", "over a lazy dog", "sing", "x x"), 1)]
    assert multiple_choice(model, tokenizer, tasks) == {"acc": 1.0, "acc_norm": 1.0, "n": 3}


def test_choice_logprobs_score_exactly_each_choices_tokens_after_a_cut_context():
    tokenizer = word_tokenizer()
    vocab = tokenizer.get_vocab_size()
    table = torch.randn(vocab, vocab, generator=torch.Generator().manual_seed(2))
    eos = tokenizer.token_to_id(EOS)
    tasks = [Task("the quick brown fox jumps over a lazy dog while seven red", (" owls sing", " x", " dog a b"), 0),
             Task("", (" the", "longword longword"), 1), Task("a lazy  ", ("dog", " fox quick"), 0)]
    expected = [[by_hand(table, [eos, *ids(tokenizer, t.context), *ids(tokenizer, c)], len(ids(tokenizer, c)))
                 for c in t.choices] for t in tasks]
    for max_seq_len in (64, 4):  # 4: the long context is cut from the left; a bigram's scores stay the same
        model = Bigram(table, max_seq_len)
        got = choice_logprobs(model, tokenizer, tasks, batch_size=2)
        assert got == [pytest.approx(row, rel=1e-6) for row in expected], max_seq_len
    rows = [row for batch in model.seen for row in batch]
    assert rows[0] == ids(tokenizer, "while seven red owls")  # 4 inputs: the cut context's end, the choice's start
    assert all(row[0] == eos for row in rows[3:])  # the short contexts, whole, after an EOS


def test_a_contexts_trailing_space_is_scored_with_the_choice(bpe):
    """As lm-evaluation-harness: "scoring " + "of" is scored as "scoring" + " of", the space on
    the word it belongs to in a byte-level BPE; each part encoded on its own."""
    assert choice_tokens(bpe, "The scoring  ", "of a") == (ids(bpe, "The scoring"), ids(bpe, "  of a"))
    assert choice_tokens(bpe, "The scoring", " of a") == (ids(bpe, "The scoring"), ids(bpe, " of a"))


def test_a_choice_too_long_for_the_model_is_an_error():
    tokenizer = word_tokenizer()
    model = Bigram(torch.zeros(tokenizer.get_vocab_size(), tokenizer.get_vocab_size()), max_seq_len=2)
    with pytest.raises(ValueError, match="task 1: a choice of 3 tokens does not fit"):
        choice_logprobs(model, tokenizer, [Task("a", (" dog", " fox"), 0), Task("a", (" dog", " the lazy dog"), 0)])


def test_acc_norm_divides_by_the_choices_bytes():
    """Uniform: a choice's log-likelihood is -ln(vocab) per token. " x" (1 token, 2 bytes) beats
    " longword longword" (2 tokens, 18 bytes) in total, and loses per byte."""
    tokenizer = word_tokenizer()
    tasks = [Task("the dog", (" x", " longword longword"), 1), Task("the fox", (" longword longword", " x"), 1)]
    assert multiple_choice(uniform_llama(tokenizer.get_vocab_size()), tokenizer, tasks) == {
        "acc": 0.5, "acc_norm": 0.5, "n": 2}
    assert multiple_choice(uniform_llama(tokenizer.get_vocab_size()), tokenizer, tasks[:1]) == {
        "acc": 0.0, "acc_norm": 1.0, "n": 1}


# --- files -----------------------------------------------------------------------------------------


def test_read_tasks_reports_every_bad_row_with_its_line(tmp_path):
    good = {"context": "a", "choices": [" b", " c"], "answer": 1}
    rows = [json.dumps(good), "", "{not json", json.dumps({"context": "a", "choices": [" b", " c"]}),
            json.dumps({**good, "answer": 2}), json.dumps({**good, "answer": True}),
            json.dumps({**good, "choices": " b"}),
            json.dumps({**good, "choices": [" b", ""]}), json.dumps([1, 2]), json.dumps(good)]
    path = tmp_path / "tasks.jsonl"
    path.write_text("\n".join(rows) + "\n")
    with pytest.raises(ValueError) as caught:
        read_tasks(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: 7 bad rows: ")
    for number, what in [(3, "not JSON"), (4, "no answer"), (5, "answer 2 is not an index"), (6, "answer True"),
                         (7, "choices is not a list"), (8, "a choice is not a non-empty string"),
                         (9, "not a JSON object")]:
        assert f"line {number}: {what}" in message
    path.write_text("\n".join(["[]"] * 12) + "\n")
    with pytest.raises(ValueError, match=r"12 bad rows: line 1: .*line 10: [^;]*; \.\.\.$"):
        read_tasks(path)


def test_tasks_written_read_back(tmp_path):
    tasks = [Task("Il était", (" une fois", " deux fois"), 0), Task("", (" a", " b", " c"), 2)]
    write_tasks(tasks, tmp_path / "tasks.jsonl")
    assert read_tasks(tmp_path / "tasks.jsonl") == tasks
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(ValueError, match="no tasks"):
        read_tasks(tmp_path / "empty.jsonl")


def test_read_texts_reads_three_formats(tmp_path):
    (tmp_path / "a.txt").write_text("One whole document.\n\nStill the same one.\n", encoding="utf-8")
    (tmp_path / "b.jsonl").write_text(json.dumps({"text": "Row one."}) + "\n\n" + json.dumps({"text": ""}) + "\n"
                                      + json.dumps({"text": "Row two é."}) + "\n", encoding="utf-8")
    pq.write_table(pa.table({"text": ["Cell one.", None, "Cell two."], "id": [1, 2, 3]}), tmp_path / "c.parquet")
    assert read_texts([tmp_path / "a.txt", str(tmp_path / "b.jsonl"), tmp_path / "c.parquet"]) == [
        "One whole document.\n\nStill the same one.\n", "Row one.", "Row two é.", "Cell one.", "Cell two."]


def test_read_texts_errors_name_the_file(tmp_path):
    (tmp_path / "a.csv").write_text("text\nx\n")
    with pytest.raises(ValueError, match=r"a\.csv: reference texts are \.txt, \.jsonl or \.parquet"):
        read_texts([tmp_path / "a.csv"])
    (tmp_path / "b.jsonl").write_text(json.dumps({"body": "x"}) + "\n{\n")
    with pytest.raises(ValueError, match=r"b\.jsonl: 2 bad rows: line 1: not an object .*; line 2: not JSON"):
        read_texts([tmp_path / "b.jsonl"])
    pq.write_table(pa.table({"body": ["x"]}), tmp_path / "c.parquet")
    with pytest.raises(ValueError, match=r"c\.parquet: no `text` column"):
        read_texts([tmp_path / "c.parquet"])
    with pytest.raises(FileNotFoundError, match="no such file"):
        read_texts([tmp_path / "missing.txt"])
