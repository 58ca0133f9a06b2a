"""`train_tokenizer`: a byte-level BPE tokenizer (Hugging Face `tokenizers`) trained on the
documents its parent stage kept, or a seeded sample of them.

Phases (see pipeline/global_stage.py):

1. `keys`, per shard (when sampling): a seeded random key and the UTF-8 size of each document.
2. `choose`, once (when sampling): the documents with the smallest keys, up to `sample_documents`
   documents or `sample_bytes` bytes, whichever comes first. The sample depends on the seed and
   the document ids only, not on how documents fell into shards.
3. `train`, once: the texts, streamed shard by shard, through HF's BPE trainer. It writes
   `tokenizer.json` (loadable by `tokenizers.Tokenizer.from_file` and by
   `transformers.PreTrainedTokenizerFast(tokenizer_file=...)`) and `info.json` in the stage's
   artifact folder, where a `tokenize` stage after it finds them.

The stage removes nothing: its documents out are its documents in.

Special tokens get the first ids, in the listed order: `<|endoftext|>` (0) ends every document in
the token shards, and the chat tokens are reserved for the alignment stages' chat template.
"""
from __future__ import annotations

import time

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field, field_validator

from crawl2model.pipeline import storage
from crawl2model.pipeline.global_stage import GlobalStage, Phase, PhaseContext
from crawl2model.pipeline.sampling import seeded_keys
from crawl2model.model.special_tokens import EOS, SPECIAL_TOKENS
from crawl2model.pipeline.stage import StageConfig
from crawl2model.train.tokens import TOKENIZER


class TrainTokenizerConfig(StageConfig):
    vocab_size: int = Field(32768, ge=260)  # including the 256 byte tokens and the special tokens
    special_tokens: list[str] = list(SPECIAL_TOKENS)
    min_frequency: int = Field(2, ge=0)  # a pair seen fewer times is never merged
    max_token_length: int | None = Field(None, ge=1)  # longest token in characters (None: no limit)
    sample_documents: int | None = Field(None, ge=1)  # train on a seeded sample of this many documents
    sample_bytes: int | None = Field(None, ge=1)  # ... or of this many bytes of text (both: the smaller)
    seed: int | None = None  # of the sample; unset: the run's seed

    @field_validator("special_tokens")
    @classmethod
    def _eos_first(cls, tokens: list[str]) -> list[str]:
        if not tokens or tokens[0] != EOS:
            raise ValueError(f"the first special token must be {EOS} (it ends every document)")
        if len(set(tokens)) != len(tokens):
            raise ValueError("special tokens must be distinct")
        return tokens


def new_tokenizer():
    """An empty byte-level BPE: GPT-2's pre-tokenisation and byte alphabet, no prefix space."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    return tokenizer


def train_bpe(texts, config: TrainTokenizerConfig):
    """Train on an iterator of strings (or of lists of strings); returns the tokenizer."""
    from tokenizers import pre_tokenizers, trainers

    tokenizer = new_tokenizer()
    trainer = trainers.BpeTrainer(vocab_size=config.vocab_size, min_frequency=config.min_frequency,
                                  special_tokens=config.special_tokens, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  max_token_length=config.max_token_length)
    tokenizer.train_from_iterator(texts, trainer)
    return tokenizer


class TrainTokenizer(GlobalStage):
    type_name = "train_tokenizer"
    Config = TrainTokenizerConfig
    requires = ("id", "text")
    packages = ("tokenizers",)
    makes_artifact = True

    @staticmethod
    def tokenizer_file(artifact_dir: str) -> str:
        return storage.join(artifact_dir, TOKENIZER)

    @property
    def sampled(self) -> bool:
        return self.config.sample_documents is not None or self.config.sample_bytes is not None

    def phases(self) -> list[Phase]:
        return ([Phase("keys", "shards", columns=("id", "text")), Phase("choose", "once")] if self.sampled else []) + [
            Phase("train", "once")]

    def keys(self, table: pa.Table, ctx: PhaseContext) -> pa.Table:
        return pa.table({"key": seeded_keys(table.column("id"), self.config.seed),
                         "doc": ctx.document_keys(table.num_rows),
                         "bytes": pc.binary_length(table.column("text")).cast(pa.int64())})

    def choose(self, table: pa.Table, ctx: PhaseContext) -> pa.Table:
        keys = ctx.read("keys")
        if keys.num_rows == 0:
            return pa.table({})
        keys = keys.take(pc.sort_indices(keys, [("key", "ascending"), ("doc", "ascending")]))
        count = keys.num_rows if self.config.sample_documents is None else min(keys.num_rows, self.config.sample_documents)
        if self.config.sample_bytes is not None:  # up to and including the document that reaches the budget
            reach = np.searchsorted(np.cumsum(keys.column("bytes").to_numpy()), self.config.sample_bytes)
            count = min(count, int(reach) + 1)
        chosen = keys.slice(0, count)
        doc = chosen.column("doc").to_numpy()
        result = pa.table({"doc": doc, "shard": (doc >> 32).astype(np.int32)})
        return result.take(pc.sort_indices(result, [("doc", "ascending")]))

    def _texts(self, ctx: PhaseContext):
        """The training texts in shard order, as lists of up to 1000 strings."""
        for shard, path in enumerate(ctx.inputs):
            texts = storage.read_parquet(path, columns=["text"]).column("text")
            if self.sampled:
                chosen = ctx.read("choose", columns=["doc"], filter=pc.field("shard") == shard)
                if chosen.num_rows == 0:
                    continue
                texts = texts.take(pa.array(chosen.column("doc").to_numpy() & 0xFFFFFFFF))
            self.counters["documents"] += len(texts)
            self.counters["bytes"] += int(pc.sum(pc.binary_length(texts)).as_py() or 0)
            texts = texts.to_pylist()
            for start in range(0, len(texts), 1000):  # HF's trainer takes batches of 1000 best
                yield texts[start:start + 1000]

    def train(self, table: pa.Table, ctx: PhaseContext) -> pa.Table:
        started = time.time()
        tokenizer = train_bpe(self._texts(ctx), self.config)
        data = tokenizer.to_str().encode()
        info = storage.write_file(self.tokenizer_file(ctx.artifact_dir), data, tokenizer.get_vocab_size())
        storage.write_json(storage.join(ctx.artifact_dir, "info.json"), {
            "sha256": info.sha256, "vocab_size": tokenizer.get_vocab_size(), "special_tokens": self.config.special_tokens,
            "documents": self.counters["documents"], "bytes": self.counters["bytes"],
            "train_seconds": round(time.time() - started, 3)})
        return pa.table({"path": [TOKENIZER], "sha256": [info.sha256], "vocab_size": [tokenizer.get_vocab_size()]})
