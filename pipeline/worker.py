"""What runs inside a Ray worker: one stage over one shard, the reader over one input file, or one
task of a global stage's phase.

A unit of work reads a shard, applies the stage batch by batch, writes `kept/part-<unit>.parquet`
and `removed/part-<unit>.parquet`, then a `_done/<unit>.json` record with its counts. The record is
written last, so its presence means the unit is complete: a resumed run skips such units. A stage
that hands its kept documents on in memory (`materialize: final`) takes and gives them as Arrow
IPC bytes instead of a path, and writes its removed documents and what it changed (rebuild).
Nothing here knows Ray; the runner wraps these callables into Ray Data operators, and passes
`report`, called with (stage, record) as each unit finishes, so progress moves as work is done.
"""
from __future__ import annotations

import functools
import socket
import time
from collections import Counter
from contextlib import contextmanager
from typing import Callable, Iterator

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from crawl2model.pipeline import records, storage
from crawl2model.pipeline.global_stage import PhaseContext, phase_jobs, phase_output
from crawl2model.pipeline.plan import SOURCE, StageNode
from crawl2model.pipeline.rebuild import changed_values
from crawl2model.pipeline.records import DoneRecord, PhaseRecord, ShardOutput
from crawl2model.pipeline.stage import DROP_DETAIL, DROP_REASON, REMOVAL_COLUMNS, Stage

Report = Callable[[str, DoneRecord], None]  # (stage name, what a unit did)
STAGE_ATTRIBUTE = "crawl2model_stage"  # on an error a worker raises: the stage it ran (see tag_stage)
UNIT_ATTRIBUTE = "crawl2model_unit"  # and the shard, input file or task it was on (see tag_unit)


@contextmanager
def tag_stage(name: str, report: Report | None = None):
    """Tag an error raised inside with the stage that ran, so the runner can tell which stage of a
    chain failed, and hand it to `report.failed` when the report has one: Ray Data wraps the
    error of a map task in its own and loses it on the way to the driver (pickling drops
    `__cause__`), so the runner learns it through its reporter. The innermost tag wins."""
    try:
        yield
    except Exception as error:
        if STAGE_ATTRIBUTE not in vars(error):
            vars(error)[STAGE_ATTRIBUTE] = name
            failed = getattr(report, "failed", None)
            if failed is not None:
                failed(name, error)
        raise


@contextmanager
def tag_unit(unit: str):
    """Tag an error raised inside with the unit (shard, input file, task) it was raised on, for the
    one line that says where a run failed. Used inside tag_stage, so the tag travels with the error."""
    try:
        yield
    except Exception as error:
        vars(error).setdefault(UNIT_ATTRIBUTE, unit)
        raise


def apply_stage(stage: Stage, table: pa.Table, name: str) -> pa.Table:
    """Run the stage over `table` in batches: a row out per row in (split_removed splits them).

    A batch whose processing raises is retried one row at a time, and rows that still raise are
    removed with reason `<name>:error`, so one bad document never fails the run.
    """
    outputs = []
    for start in range(0, max(table.num_rows, 1), stage.batch_size):
        batch = table.slice(start, stage.batch_size)
        try:
            outputs.append(_checked(stage(batch), batch))
        except Exception:
            outputs += [_process_row(stage, batch.slice(i, 1), name) for i in range(batch.num_rows)]
    return pa.concat_tables(outputs, promote_options="default") if outputs else table


def split_removed(result: pa.Table) -> tuple[pa.Table, pa.Table]:
    """(kept, removed) by the drop_reason column; kept rows lose the drop columns."""
    if DROP_REASON not in result.column_names:
        return result, result.slice(0, 0).append_column(DROP_REASON, pa.array([], pa.string()))
    dropped = pc.is_valid(result.column(DROP_REASON))
    kept = result.filter(pc.invert(dropped)).drop_columns([c for c in REMOVAL_COLUMNS if c in result.column_names])
    return kept, result.filter(dropped)


def _checked(output: pa.Table, batch: pa.Table) -> pa.Table:
    if output.num_rows != batch.num_rows:
        raise RuntimeError(f"process() returned {output.num_rows} rows for {batch.num_rows}; "
                           "filters mark rows with drop_reason instead of removing them")
    return output


def _process_row(stage: Stage, row: pa.Table, name: str) -> pa.Table:
    try:
        return _checked(stage(row), row)
    except Exception as error:
        detail = f"{type(error).__name__}: {error}"[:300]
        return row.append_column(DROP_REASON, pa.array([f"{name}:error"])).append_column(DROP_DETAIL, pa.array([detail]))


def content_bytes(table: pa.Table) -> int:
    """UTF-8 bytes of the document content (text, or html before extraction)."""
    column = "text" if "text" in table.column_names else ("html" if "html" in table.column_names else None)
    if column is None or table.num_rows == 0:
        return 0
    return int(pc.sum(pc.binary_length(table.column(column))).as_py() or 0)


def reason_counts(removed: pa.Table | None) -> dict[str, int]:
    if removed is None or removed.num_rows == 0:
        return {}
    counts = pc.value_counts(removed.column(DROP_REASON)).to_pylist()
    return {item["values"]: item["counts"] for item in counts}


def write_unit(node: StageNode, unit: str, kept: pa.Table, removed: pa.Table | None,
               changes: pa.Table | None = None) -> ShardOutput:
    """One shard's kept Parquet (unless the stage hands it on in memory), its removed and its
    `changes` (see changed_values), with its counts; paths relative to the run."""
    def write(kind: str, table: pa.Table | None):
        if table is None or (kind != "kept" and table.num_rows == 0):
            return None
        return storage.write_parquet(storage.join(node.directory, kind, f"part-{unit}.parquet"), table).relative_to(node.run_dir)

    return ShardOutput(unit=unit, kept=write("kept", kept if node.materialized else None), removed=write("removed", removed),
                       changes=write("changes", changes), columns=[] if node.materialized else kept.column_names,
                       docs_in=kept.num_rows + (removed.num_rows if removed is not None else 0), docs_out=kept.num_rows,
                       bytes_out=content_bytes(kept), removed_by_reason=reason_counts(removed))


def to_ipc(table: pa.Table) -> bytes:
    """A table as Arrow IPC stream bytes: how a chain hands kept documents on in memory. Its types
    are those the next stage would read back from Parquet (a timestamp in seconds comes back in
    milliseconds), so what a stage writes is the same bytes in both modes."""
    schema = _as_parquet_reads(table.schema)
    table = table if schema == table.schema else table.cast(schema)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


@functools.lru_cache(maxsize=64)
def _as_parquet_reads(schema: pa.Schema) -> pa.Schema:
    sink = pa.BufferOutputStream()
    pq.write_table(schema.empty_table(), sink)
    return pq.read_schema(pa.BufferReader(sink.getvalue()))


def from_ipc(data: bytes) -> pa.Table:
    return pa.ipc.open_stream(pa.py_buffer(data)).read_all()


def handed_rows(rows: list[tuple[str, str, bytes]]) -> pa.Table:
    """The rows one operator hands the next, one per unit: (unit, path of its kept shard, or ""
    with the kept documents themselves as IPC bytes; both empty: the unit's documents are written
    already, by the last stage they were handed to)."""
    units, paths, tables = zip(*rows) if rows else ((), (), ())
    return pa.table({"unit": pa.array(units, pa.string()), "path": pa.array(paths, pa.string()),
                     "table": pa.array(tables, pa.large_binary())})


class StageWorker:
    """Runs one stage over whole shards. One per Ray actor (stages with setup) or per task.
    A global stage (given its phase `context`) judges each whole shard after its phases ran.
    A stage that hands its kept documents on in memory is given `end`, the stage that writes
    them: a unit that stage has done is passed over."""

    def __init__(self, node: StageNode, context: PhaseContext | None = None, report: Report | None = None,
                 end: StageNode | None = None):
        self.node = node
        self.context = context
        self.report = report
        self.end = end
        with tag_stage(node.name, report):  # a model that fails to load fails this stage
            self.stage = node.build().ready()  # an actor loads its model before the first shard comes

    def run_unit(self, unit: str, input_path: str, handed: bytes = b"") -> tuple[DoneRecord | None, pa.Table | None]:
        """The unit's done record, and its kept documents when the stage hands them on in memory.
        Its input is the shard at `input_path`, or the documents `handed` in memory. A stage that
        hands on in memory runs again unless `end` has the unit (nothing else holds its kept), and
        so does every stage handing to it; (None, None): `end` has it."""
        if self.node.materialized:
            done = self.node.finished(unit)
            if done:
                return done, None
        elif self.end is not None and self.end.finished(unit):
            return None, None
        started = time.time()
        table = from_ipc(handed) if handed else storage.read_parquet(self.node.path(input_path))
        self.stage.counters.clear()
        self.stage.histograms.clear()
        if self.context is not None:
            result = self.stage.judge(table, self.context.for_unit(unit))
        else:
            result = apply_stage(self.stage, table, self.node.name)
        kept, removed = split_removed(result)
        changes = changed_values(table, result) if handed and self.node.after != (SOURCE,) else None
        record = DoneRecord(
            fingerprint=self.node.fingerprint, unit=unit, input=input_path,
            outputs=[write_unit(self.node, unit, kept, removed, changes)],
            docs_in=table.num_rows, docs_out=kept.num_rows, removed_by_reason=reason_counts(removed),
            bytes_in=content_bytes(table), bytes_out=content_bytes(kept),
            counters=dict(self.stage.counters), histograms=self.stage.histograms,
            host=socket.gethostname(), started=started, finished=time.time())
        records.write(self.node.done_path(unit), record)
        if self.report:
            self.report(self.node.name, record)
        return record, None if self.node.materialized else kept

    def __call__(self, batch: pa.Table) -> pa.Table:
        """Ray Data entry point: each row names a unit and its input (handed_rows)."""
        rows = []
        handed = batch.column("table").to_pylist() if "table" in batch.column_names else [b""] * batch.num_rows
        with tag_stage(self.node.name, self.report):
            for unit, path, data in zip(batch.column("unit").to_pylist(), batch.column("path").to_pylist(), handed):
                if not path and not data:  # written already by the last stage it was handed to
                    rows.append((unit, "", b""))
                    continue
                with tag_unit(f"shard {unit}"):
                    record, kept = self.run_unit(unit, path, data)
                if record is None:
                    rows.append((unit, "", b""))
                elif kept is None:
                    rows.append((unit, record.outputs[0].kept.path, b""))
                else:
                    rows.append((unit, "", to_ipc(kept)))
        return handed_rows(rows)


class ChainWorker:
    """Neighbouring stages of a chain in one worker (runner._groups): each shard goes through
    them in turn, in this process; the first is given the global stage's `context`, if any."""

    def __init__(self, nodes: list[StageNode], context: PhaseContext | None = None, report: Report | None = None,
                 ends: list[StageNode | None] = ()):
        ends = list(ends) or [None] * len(nodes)
        self.workers = [StageWorker(node, context if i == 0 else None, report, end)
                        for i, (node, end) in enumerate(zip(nodes, ends))]

    def __call__(self, batch: pa.Table) -> pa.Table:
        for worker in self.workers:
            batch = worker(batch)
        return batch


def run_chain_task(batch: pa.Table, nodes: list[StageNode], context: PhaseContext | None = None,
                   report: Report | None = None, ends: list[StageNode | None] = ()) -> pa.Table:
    """Task-pool entry point for stages without setup: fresh workers per call are cheap."""
    return ChainWorker(nodes, context, report, ends)(batch)


class SourceWorker:
    """The implicit `read` stage: one input file in, one shard per `docs_per_shard` documents out.

    Its unit is a file (`00003`); its shards are `00003-00000`, `00003-00001`, ... A file that
    cannot be read is recorded with its reason and skipped, unless the input is `strict`. Given
    `end`, it hands its shards on in memory, as StageWorker does.
    """

    def __init__(self, node: StageNode, report: Report | None = None, end: StageNode | None = None):
        self.node = node
        self.report = report
        self.end = end

    def run_file(self, index: int, kind: str, path: str, source: str = "") -> Iterator[tuple[ShardOutput, pa.Table | None]]:
        """Yield each shard's output (and its kept documents, when handed on in memory) as soon as
        it is written, so the next stage starts on it while the file is still being read; the done
        record comes last. `source` names the file in the rows and records (sources.source_name),
        never an absolute path of this machine. Handing on in memory, a file is read again unless
        `end` has every shard of it."""
        from crawl2model.pipeline.sources import InputFile, read_chunks
        from crawl2model.pipeline.warc import UnreadableFile

        unit = f"{index:05d}"
        done = self.node.finished(unit)
        if done and (self.node.materialized or all(self.end.finished(o.unit) for o in done.outputs)):
            yield from ((output, None) for output in done.outputs)
            return
        started, counts, outputs, skipped = time.time(), Counter(), [], None
        try:
            for number, chunk in enumerate(read_chunks(InputFile(index, kind, path, source), self.node.config, counts)):
                output = write_unit(self.node, f"{unit}-{number:05d}", chunk.kept, chunk.removed)
                outputs.append(output)
                yield output, None if self.node.materialized else chunk.kept
        except UnreadableFile as error:
            if self.node.config.strict:
                raise
            skipped = str(error)
        bytes_out = sum(o.bytes_out for o in outputs)
        record = DoneRecord(
            fingerprint=self.node.fingerprint, unit=unit, input=source or storage.relative(path, self.node.run_dir),
            outputs=outputs, docs_in=sum(o.docs_in for o in outputs), docs_out=sum(o.docs_out for o in outputs),
            removed_by_reason=records.merge_counts([o.removed_by_reason for o in outputs]),
            bytes_in=bytes_out, bytes_out=bytes_out, counters={f"records:{k}": v for k, v in counts.items()},
            skipped=skipped, host=socket.gethostname(), started=started, finished=time.time())
        records.write(self.node.done_path(unit), record)
        if self.report:
            self.report(self.node.name, record)

    def __call__(self, batch: pa.Table) -> Iterator[pa.Table]:
        """Ray Data entry point: a row per input file in, a row per shard out, each as it is written."""
        columns = [batch.column(name).to_pylist() for name in ("index", "kind", "path", "source")]
        with tag_stage(self.node.name, self.report):
            for index, kind, path, source in zip(*columns):
                with tag_unit(f"input file {source or path}"):
                    for output, kept in self.run_file(int(index), str(kind), str(path), str(source)):
                        if output.kept is not None:
                            yield handed_rows([(output.unit, output.kept.path, b"")])
                        elif kept is None or self.end.finished(output.unit):
                            yield handed_rows([(output.unit, "", b"")])
                        else:
                            yield handed_rows([(output.unit, "", to_ipc(kept))])


def run_source_task(batch: pa.Table, node: StageNode, report: Report | None = None,
                    end: StageNode | None = None) -> Iterator[pa.Table]:
    """Task-pool entry point of the reader."""
    yield from SourceWorker(node, report, end)(batch)


def run_phase_task(node: StageNode, phase_name: str, ctx: PhaseContext, unit: str, input_path: str | None) -> PhaseRecord:
    """One task of one phase of a global stage: read its input, call the phase method, write its
    output, then its done record. A task already done under this fingerprint returns its record."""
    with tag_stage(node.name), tag_unit(f"{phase_name} {unit}"):
        return _run_phase_task(node, phase_name, ctx, unit, input_path)


def _run_phase_task(node: StageNode, phase_name: str, ctx: PhaseContext, unit: str, input_path: str | None) -> PhaseRecord:
    stage = node.build()
    phase = next(p for p in stage.phases() if p.name == phase_name)
    phase_dir = storage.join(ctx.phases_dir, phase.name)
    done_path = storage.join(phase_dir, "_done", f"{unit}.json")
    record = records.read(done_path, PhaseRecord)
    if record and record.fingerprint == node.fingerprint:
        return record
    started = time.time()
    if phase.over == "shards":
        table = storage.read_parquet(input_path, columns=list(phase.columns) if phase.columns else None)
    elif phase.over == "partitions":
        table = ctx.read(phase.reads, partition=ctx.partition)
    else:
        table = pa.table({})
    output = getattr(stage, phase.name)(table, ctx)
    files = [f.relative_to(node.run_dir) for f in phase_output(phase_dir, unit, output)]
    record = PhaseRecord(fingerprint=node.fingerprint, unit=unit, rows_in=table.num_rows, rows_out=output.num_rows,
                         files=files, counters=dict(stage.counters), histograms=stage.histograms,
                         host=socket.gethostname(), started=started, finished=time.time())
    records.write(done_path, record)
    return record


def run_phases(node: StageNode, context: PhaseContext, shards_in: list[tuple[str, str]]) -> None:
    """Every phase of a global stage, task after task, in this process (as the runner does on Ray):
    for tests and benchmarks. `shards_in` lists its input shards as (unit, path), sorted."""
    for phase in node.build().phases():
        for job in phase_jobs(phase, context, shards_in):
            run_phase_task(node, phase.name, *job)
