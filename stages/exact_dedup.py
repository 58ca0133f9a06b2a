"""`exact_dedup`: remove documents whose text repeats another's, and optionally lines repeated
across the corpus (navigation, cookie notices, "Our servers have detected...").

Phases (see pipeline/global_stage.py; each writes Parquet, so memory stays bounded):

1. `hashes`, per shard: a 64-bit hash of each document's text, normalised (NFKC, lower case,
   punctuation and digits folded, spacing collapsed) unless `normalize: false`; shuffled by hash.
2. `duplicates`, per partition: documents with the same hash; all but the smallest id are duplicates.
3. `line_counts`, per shard (with `max_line_repeats`): how often each line occurs in the shard's
   documents that are not duplicates (a duplicated page would otherwise make all its lines repeat).
4. `frequent_lines`, per partition: lines occurring more than `max_line_repeats` times in all.
   Lines are compared as written, surrounding spaces aside.

Then each shard is judged: duplicates are removed with `drop_reason: exact_duplicate` and
`duplicate_of: <the id kept>`; frequent lines are cut from the others' text (lines without a
letter or digit are never counted), and a document left with no text is removed
(`exact_dedup:empty_after_line_dedup`).
"""
from __future__ import annotations

import hashlib

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field, model_validator

from crawl2model.pipeline.global_stage import PARTITION, GlobalStage, Phase, PhaseContext
from crawl2model.pipeline.stage import DROP_REASON, DUPLICATE_OF, StageConfig
from crawl2model.stages._text import fold


class ExactDedupConfig(StageConfig):
    documents: bool = True  # remove documents whose text equals a document with a smaller id
    lines: bool = False  # remove lines repeated more than max_line_repeats times across the corpus
    max_line_repeats: int = Field(1, ge=1)
    normalize: bool = True  # compare documents' normalised text; false: the exact characters

    @model_validator(mode="after")
    def _something_to_do(self):
        if not (self.documents or self.lines):
            raise ValueError("nothing to do: set documents, lines, or both")
        return self


def _hash(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")


class ExactDedup(GlobalStage):
    type_name = "exact_dedup"
    Config = ExactDedupConfig
    requires = ("id", "text")

    def phases(self) -> list[Phase]:
        phases = []
        if self.config.documents:
            phases += [Phase("hashes", "shards", columns=("id", "text")), Phase("duplicates", "partitions", reads="hashes")]
        if self.config.lines:
            phases += [Phase("line_counts", "shards", columns=("text",)),
                       Phase("frequent_lines", "partitions", reads="line_counts")]
        return phases

    def _key(self, text: str) -> str:
        return " ".join(fold(text).split()) if self.config.normalize else text

    @staticmethod
    def _line_keys(text: str) -> list[int | None]:
        """A hash per line, as written but for surrounding spaces (folding digits would merge
        "Chapter 1" with "Chapter 2"); None for a line without a letter or digit."""
        return [_hash(line.strip()) if any(c.isalnum() for c in line) else None for line in text.splitlines()]

    def hashes(self, table: pa.Table, ctx: PhaseContext) -> pa.Table:
        keys = np.array([_hash(self._key(t)) for t in table.column("text").to_pylist()], np.uint64)
        return pa.table({"key": keys, "doc": ctx.document_keys(table.num_rows), "id": table.column("id"),
                         PARTITION: (keys % np.uint64(ctx.partitions)).astype(np.int32)})

    def duplicates(self, table: pa.Table, ctx: PhaseContext) -> pa.Table:
        """Every document whose text hash a smaller id shares, with that id."""
        if table.num_rows == 0:
            return pa.table({})  # an empty output writes no file
        table = table.take(pc.sort_indices(table, [("key", "ascending"), ("id", "ascending")]))
        key = table.column("key").to_numpy()
        first = np.concatenate(([True], key[1:] != key[:-1]))
        head = np.maximum.accumulate(np.where(first, np.arange(len(key)), 0))
        repeat = np.flatnonzero(~first)
        self.counters["duplicate_groups"] += len(np.unique(head[repeat]))
        doc = table.column("doc").to_numpy()[repeat]
        result = pa.table({"doc": doc, "shard": (doc >> 32).astype(np.int32),
                           DUPLICATE_OF: table.column("id").take(head[repeat])})
        return result.take(pc.sort_indices(result, [("doc", "ascending")]))

    def _duplicates_of(self, ctx: PhaseContext) -> pa.Table:
        if not self.config.documents:
            return pa.table({})
        return ctx.read("duplicates", columns=["doc", DUPLICATE_OF], filter=pc.field("shard") == ctx.shard)

    def line_counts(self, table: pa.Table, ctx: PhaseContext) -> pa.Table:
        duplicates = self._duplicates_of(ctx)
        skip = set((duplicates.column("doc").to_numpy() & 0xFFFFFFFF).tolist()) if duplicates.num_rows else set()
        keys = [k for row, text in enumerate(table.column("text").to_pylist()) if row not in skip
                for k in self._line_keys(text) if k is not None]
        values, counts = np.unique(np.array(keys, np.uint64), return_counts=True)
        return pa.table({"key": values, "count": counts.astype(np.int64),
                         PARTITION: (values % np.uint64(ctx.partitions)).astype(np.int32)})

    def frequent_lines(self, table: pa.Table, ctx: PhaseContext) -> pa.Table:
        if table.num_rows == 0:
            return pa.table({})
        totals = table.group_by("key").aggregate([("count", "sum")]).rename_columns(["key", "count"])
        frequent = totals.filter(pc.greater(totals.column("count"), self.config.max_line_repeats))
        self.counters["frequent_lines"] += frequent.num_rows
        return frequent.take(pc.sort_indices(frequent, [("key", "ascending")]))

    def judge(self, table: pa.Table, ctx: PhaseContext) -> pa.Table:
        reason = np.full(table.num_rows, None, object)
        kept_as = np.full(table.num_rows, None, object)
        duplicates = self._duplicates_of(ctx)
        if duplicates.num_rows:
            rows = duplicates.column("doc").to_numpy() & 0xFFFFFFFF
            reason[rows] = "exact_duplicate"
            kept_as[rows] = duplicates.column(DUPLICATE_OF).to_pylist()
        texts = table.column("text").to_pylist()
        if self.config.lines:
            frequent = ctx.read("frequent_lines", columns=["key"])
            frequent = set(frequent.column("key").to_pylist()) if frequent.num_rows else set()
            for row, text in enumerate(texts):
                if reason[row] is None and frequent:
                    texts[row] = self._cut_lines(text, frequent)
                    if not texts[row].strip():
                        reason[row] = "exact_dedup:empty_after_line_dedup"
        return (table.set_column(table.column_names.index("text"), "text", pa.array(texts, pa.string()))
                .append_column(DROP_REASON, pa.array(reason, pa.string()))
                .append_column(DUPLICATE_OF, pa.array(kept_as, pa.string())))

    def _cut_lines(self, text: str, frequent: set[int]) -> str:
        """The text without its frequent lines; line endings of the other lines are kept as they were."""
        lines = text.splitlines(keepends=True)
        keys = self._line_keys(text)
        kept = [line for line, key in zip(lines, keys) if key is None or key not in frequent]
        if len(kept) < len(lines):
            self.counters["lines_removed"] += len(lines) - len(kept)
            self.counters["documents_edited"] += 1
        return "".join(kept)
