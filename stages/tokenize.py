"""`tokenize`: every document its parent kept, encoded with the run's tokenizer into memory-mappable
token shards (format: train/tokens.py) under `{train,val}/` of the stage's artifact folder.

Phases (see pipeline/global_stage.py):

1. `encode`, per shard: `encode_batch` of the texts, `<|endoftext|>` appended to each; each
   document gets a seeded key that picks its split (`val_fraction` of them go to `val`) and the
   partition it is shuffled to, so token shards mix documents from the whole corpus.
2. `write`, per partition: documents in key order, cut into Arrow IPC shards of about
   `shard_tokens` tokens each.
3. `index`, once: `index.json` with every shard's token and document counts, the dtype,
   vocabulary size, EOS id and the tokenizer's sha256 (the trainer checks it against its model),
   and a copy of the tokenizer beside it, so the folder is whole on its own.

The tokenizer is the one the nearest `train_tokenizer` stage upstream made, or any tokenizer.json
given as `tokenizer:` (its contents are part of the stage's fingerprint).
"""
from __future__ import annotations

import math
import os

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from crawl2model.pipeline import storage
from crawl2model.pipeline.global_stage import PARTITION, GlobalStage, Phase, PhaseContext
from crawl2model.pipeline.sampling import seeded_keys
from crawl2model.pipeline.stage import StageConfig
from crawl2model.model.special_tokens import EOS
from crawl2model.train.tokens import INDEX, TOKENIZER, token_type, write_shard

SPLITS = ("train", "val")


class TokenizeConfig(StageConfig):
    tokenizer: str | None = None  # a tokenizer.json; unset: the one the nearest train_tokenizer upstream makes
    trained_by: str | None = None  # that train_tokenizer stage (set when the config is loaded)
    eos: str = EOS  # appended to every document
    val_fraction: float = Field(0.005, ge=0, lt=1)  # documents held out for validation loss
    shard_tokens: int = Field(2**25, ge=1, lt=2**31)  # tokens per shard, about (the last of a partition is smaller)
    seed: int | None = None  # of the split and the shuffle; unset: the run's seed


class Tokenize(GlobalStage):
    type_name = "tokenize"
    Config = TokenizeConfig
    requires = ("id", "text")
    packages = ("tokenizers",)
    makes_artifact = True
    rows_per_partition = 200_000  # documents (each with its tokens) one write task holds

    def partitions(self, documents: int, cpus: int) -> int:
        """From the corpus size alone: which documents share a shard must not depend on the cluster."""
        return max(1, math.ceil(documents / self.rows_per_partition))

    @classmethod
    def bind(cls, config: TokenizeConfig, upstream) -> TokenizeConfig:
        return bind_tokenizer(config, upstream, "this one")

    @classmethod
    def data_files(cls, config: TokenizeConfig) -> list[str]:
        """A tokenizer from outside the run; one trained in it is covered by its stage's fingerprint."""
        return [config.tokenizer] if config.tokenizer and config.trained_by is None else []

    def phases(self) -> list[Phase]:
        return [Phase("encode", "shards", columns=("id", "text")), Phase("write", "partitions", reads="encode"),
                Phase("index", "once")]

    def _load(self):
        from tokenizers import Tokenizer

        path = self.config.tokenizer
        if path is None or not storage.exists(path):
            raise FileNotFoundError(f"no tokenizer at {path}: list a train_tokenizer stage before this one, "
                                    "or set `tokenizer:` to a tokenizer.json")
        tokenizer = Tokenizer.from_file(storage.local_copy(path))
        if tokenizer.token_to_id(self.config.eos) is None:
            raise ValueError(f"the tokenizer at {path} has no token {self.config.eos!r} (eos)")
        return tokenizer

    def encode(self, table: pa.Table, ctx: PhaseContext) -> pa.Table:
        os.environ.setdefault("RAYON_NUM_THREADS", "1")  # one core per Ray task: the runner parallelises
        tokenizer = self._load()
        dtype = token_type(tokenizer.get_vocab_size())
        eos = np.array([tokenizer.token_to_id(self.config.eos)], dtype.to_pandas_dtype())
        texts = table.column("text").to_pylist()
        encode = getattr(tokenizer, "encode_batch_fast", tokenizer.encode_batch)  # no character offsets: 12% faster
        encoded = [np.asarray(e.ids, dtype.to_pandas_dtype()) for e in encode(texts, add_special_tokens=False)]
        lengths = np.array([len(ids) + 1 for ids in encoded], np.int64)
        values = np.concatenate([part for ids in encoded for part in (ids, eos)]) if encoded else np.zeros(0, eos.dtype)
        keys = seeded_keys(table.column("id"), self.config.seed)
        is_val = keys < np.uint64(int(self.config.val_fraction * 2**64))
        return pa.table({
            "key": keys,
            "split": pa.array(np.where(is_val, "val", "train")),
            "text_bytes": pc.binary_length(table.column("text")).cast(pa.int64()),
            "input_ids": pa.LargeListArray.from_arrays(np.concatenate(([0], np.cumsum(lengths))), pa.array(values, dtype)),
            PARTITION: (keys % np.uint64(ctx.partitions)).astype(np.int32),
        })

    def write(self, table: pa.Table, ctx: PhaseContext) -> pa.Table:
        """Token shards of this partition, documents in key order; a row per shard written."""
        if table.num_rows == 0:
            return pa.table({})
        table = table.take(pc.sort_indices(table, [("key", "ascending")]))
        rows = []
        for split in SPLITS:
            part = table.filter(pc.equal(table.column("split"), split))
            ids = part.column("input_ids").combine_chunks()
            lengths = pc.list_value_length(ids).to_numpy()
            ends = np.cumsum(lengths)
            start, number = 0, 0
            while start < part.num_rows:  # cut after the document that reaches shard_tokens
                done = int(ends[start - 1]) if start else 0
                stop = min(int(np.searchsorted(ends, done + self.config.shard_tokens)) + 1, part.num_rows)
                name = f"{split}/part-{ctx.partition:05d}-{number:05d}.arrow"
                chunk = ids.slice(start, stop - start).cast(pa.list_(ids.type.value_type))
                info = write_shard(storage.join(ctx.artifact_dir, name), chunk)
                rows.append({"split": split, "path": name, "documents": stop - start,
                             "tokens": int(lengths[start:stop].sum()), "sha256": info.sha256,
                             "text_bytes": int(pc.sum(part.column("text_bytes").slice(start, stop - start)).as_py())})
                start, number = stop, number + 1
        return pa.Table.from_pylist(rows)

    def index(self, table: pa.Table, ctx: PhaseContext) -> pa.Table:
        written = ctx.read("write")
        rows = sorted(written.to_pylist(), key=lambda r: r["path"]) if written.num_rows else []
        tokenizer = self._load()
        copy = storage.write_file(storage.join(ctx.artifact_dir, TOKENIZER), storage.read_bytes(self.config.tokenizer))
        splits = {}
        for split in SPLITS:
            entries = [{k: r[k] for k in ("path", "tokens", "documents", "text_bytes", "sha256")}
                       for r in rows if r["split"] == split]
            splits[split] = {key: sum(e[key] for e in entries) for key in ("tokens", "documents", "text_bytes")}
            splits[split]["shards"] = entries
        storage.write_json(storage.join(ctx.artifact_dir, INDEX), {
            "tokenizer": TOKENIZER, "tokenizer_sha256": copy.sha256,
            "vocab_size": tokenizer.get_vocab_size(), "dtype": str(token_type(tokenizer.get_vocab_size())),
            "eos_id": tokenizer.token_to_id(self.config.eos), "seed": self.config.seed,
            "val_fraction": self.config.val_fraction, "splits": splits})
        return pa.table({"tokens": [splits["train"]["tokens"] + splits["val"]["tokens"]]})


def bind_tokenizer(config, upstream, where: str):
    """`config` with the tokenizer the nearest train_tokenizer upstream makes (`tokenizer`, and
    `trained_by` naming that stage), unless it names one itself; `where`: the stage, in the error."""
    from crawl2model.stages.train_tokenizer import TrainTokenizer

    if config.tokenizer is not None:
        return config
    found = next((node for node in upstream if issubclass(node.cls, TrainTokenizer)), None)
    if found is None:
        raise ValueError(f"no tokenizer: put a train_tokenizer stage before {where}, or set `tokenizer:`")
    return config.model_copy(update={"tokenizer": TrainTokenizer.tokenizer_file(found.artifact_dir),
                                     "trained_by": found.name})
