"""Stages that must see the whole corpus before they can judge one document (deduplication,
classifier and tokenizer training), written as a few phases, each a pure function over Arrow.

A phase runs as many independent tasks; each writes Parquet under `<stage>/phases/<phase>/` and
then a done record, so memory stays bounded by one task's share and a killed run redoes only the
tasks that were running. A phase runs

- over `shards`: once per input shard, given the shard (its `columns`). Rows it returns with a
  `partition` column are shuffled: written to one file per partition.
- over `partitions`: once per partition of the phase it `reads`, given every row sent there by
  every shard (e.g. all documents sharing a band key).
- `once`: one task, for the small global step (connected components of all candidate edges).

Then `judge` runs once per input shard, like `process` of a plain stage: it returns the shard with
a `drop_reason` column and any new columns. Phases read earlier phases through `PhaseContext`,
and never see Ray: the runner schedules them.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Callable, ClassVar, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from crawl2model.pipeline import storage
from crawl2model.pipeline.stage import Stage

PARTITION = "partition"  # the column that sends a row of a shards phase to a partition


@dataclass(frozen=True)
class Phase:
    name: str
    over: Literal["shards", "partitions", "once"]
    reads: str = ""  # over partitions: the phase whose shuffled rows it gets
    columns: tuple[str, ...] | None = None  # over shards: the input columns it needs (None: all)


@dataclass(frozen=True)
class PhaseContext:
    """Where a phase task stands: the stage's phase directory, the partition count, and which input
    shard or partition it works on. Shard `i` is the i-th input shard in sorted order, so
    `(shard << 32) | row` names a document uniquely and compactly."""

    phases_dir: str
    partitions: int
    units: tuple[str, ...]  # the input shards' unit names, sorted
    inputs: tuple[str, ...] = ()  # their paths
    artifact_dir: str = ""  # where a stage that makes an artifact (a tokenizer, token shards) puts it
    stage: str = ""  # the stage's name in the run
    shard: int = -1
    partition: int = -1
    # the run's progress, told (stage, event) by the runner's reporter: fire and forget, never fails
    tell: Callable[[str, dict], None] | None = field(default=None, compare=False, repr=False)

    def say(self, event: dict) -> None:
        """Tell the run's progress what this task is doing, when a runner listens (progress.Progress.event:
        `{"step": 30, "steps": 60, "loss": 3.2, "tokens_per_s": 9000}`, `{"note": text}`, `{"message": text}`
        for a line the user sees after the run)."""
        if self.tell is not None:
            self.tell(self.stage, event)

    def for_unit(self, unit: str) -> PhaseContext:
        return replace(self, shard=self._shard_of(unit))

    @cached_property
    def _index(self) -> dict[str, int]:
        """Each unit's place in `units`, built once per context: a search of the tuple per unit
        made a phase's jobs quadratic (86 s for 100,000 shards). A frozen dataclass takes it: a
        cached_property writes the instance's __dict__ itself."""
        index: dict[str, int] = {}
        for i, name in enumerate(self.units):
            index.setdefault(name, i)
        return index

    def _shard_of(self, unit: str) -> int:
        if unit not in self._index:
            raise ValueError(f"{unit!r} is not among the stage's input shards")
        return self._index[unit]

    def __getstate__(self) -> dict:
        """Pickled without the index (a copy sent to a task builds its own, if it needs one)."""
        return {k: v for k, v in self.__dict__.items() if k != "_index"}

    def document_keys(self, rows: int) -> np.ndarray:
        """The int64 names `(shard << 32) | row` of this shard's documents; `key >> 32` is the shard."""
        return (np.int64(self.shard) << np.int64(32)) | np.arange(rows, dtype=np.int64)

    def read(self, phase: str, *, partition: int | None = None, columns: list[str] | None = None,
             filter: pc.Expression | None = None) -> pa.Table:
        """The rows an earlier phase wrote (all of them, or one partition's), optionally filtered;
        a table with no columns when it wrote none."""
        directory = storage.join(self.phases_dir, phase)
        if partition is not None:
            directory = storage.join(directory, partition_name(partition))
        files = storage.list_files(directory, ".parquet", recursive=True)
        return storage.read_parquet_files(files, columns, filter) if files else pa.table({})


def phase_jobs(phase: Phase, context: PhaseContext, shards_in: list[tuple[str, str]]) -> list[tuple]:
    """The tasks of a phase, as (context, unit, input path) for `worker.run_phase_task`; `shards_in`
    lists the stage's input shards as (unit, path), sorted by unit."""
    if phase.over == "shards":
        return [(context.for_unit(unit), unit, path) for unit, path in shards_in]
    if phase.over == "partitions":
        return [(replace(context, partition=p), partition_name(p), None) for p in range(context.partitions)]
    return [(context, "all", None)]


def partition_name(partition: int) -> str:
    return f"p{partition:05d}"


def phase_output(phase_dir: str, unit: str, table: pa.Table) -> list[storage.FileInfo]:
    """Write what a phase task returned: one file, or one per partition when it has a `partition`
    column (rows keep their order within a partition). Empty outputs write nothing."""
    if table.num_rows == 0:
        return []
    if PARTITION not in table.column_names:
        return [storage.write_parquet(storage.join(phase_dir, f"{unit}.parquet"), table)]
    order = pc.sort_indices(table, [(PARTITION, "ascending")])  # stable
    table = table.take(order)
    keys = table.column(PARTITION).to_numpy()
    bounds = np.flatnonzero(np.diff(keys)) + 1
    written = []
    for start, stop in zip([0, *bounds], [*bounds, len(keys)]):
        part = table.slice(start, stop - start).drop_columns([PARTITION])
        path = storage.join(phase_dir, partition_name(int(keys[start])), f"{unit}.parquet")
        written.append(storage.write_parquet(path, part))
    return written


class GlobalStage(Stage):
    """Base class of stages that see the whole corpus: implement `phases` and `judge`, and a method
    per phase named as the phase: `def signatures(self, table, ctx) -> pa.Table`.

    Phase methods over shards get the shard's table; over partitions, the rows sent to that
    partition; once, an empty table. All get a PhaseContext to read earlier phases.
    """

    rows_per_partition: ClassVar[int] = 2_000_000  # rows of shuffled data one partition task holds
    shuffle_rows_per_doc: ClassVar[float] = 1.0  # rows a document sends into the shuffle
    makes_artifact: ClassVar[bool] = False  # True: its phases make files under `ctx.artifact_dir`
    # (a tokenizer, token shards, a model) and it removes nothing: it has no judge step, and its
    # documents out are its documents in (the same files, not copies)

    def phases(self) -> list[Phase]:
        raise NotImplementedError

    def judge(self, table: pa.Table, ctx: PhaseContext) -> pa.Table:
        """The shard with `drop_reason` (null = keep) and any new columns; one row per input row."""
        raise NotImplementedError

    def process(self, batch: pa.Table) -> pa.Table:
        raise TypeError(f"{type(self).__name__} judges whole shards after its phases; the runner calls judge()")

    def partitions(self, documents: int, cpus: int) -> int:
        """How many partitions the shuffle uses: enough that each holds about `rows_per_partition`
        rows, and at least one per core so the reduce runs in parallel. Results do not depend on it."""
        needed = math.ceil(documents * self.shuffle_rows_per_doc / self.rows_per_partition)
        return max(1, min(4096, max(needed, cpus)))
