"""What runs inside a Ray worker: one stage over one shard, or the reader over one input file.

A unit of work reads a shard, applies the stage batch by batch, writes `kept/part-<unit>.parquet`
and `removed/part-<unit>.parquet`, then a `_done/<unit>.json` record with its counts. The record is
written last, so its presence means the unit is complete: a resumed run skips such units.
Nothing here knows Ray; the runner wraps these callables into Ray Data operators.
"""
from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any, Iterator

import pyarrow as pa
import pyarrow.compute as pc

from crawl2model.pipeline import storage
from crawl2model.pipeline.global_stage import PhaseContext, phase_jobs, phase_output
from crawl2model.pipeline.stage import DROP_DETAIL, DROP_REASON, REMOVAL_COLUMNS, Stage
from crawl2model.catalog import resolve_stage


@dataclass(frozen=True)
class StageTask:
    """Everything a worker needs to run one stage; small and picklable."""

    name: str
    stage_type: str  # built-in name or import path
    options: dict[str, Any]
    fingerprint: str
    stage_dir: str

    def build(self) -> Stage:
        cls = resolve_stage(self.stage_type)
        return cls(cls.Config.model_validate(self.options))

    def done_path(self, unit: str) -> str:
        return storage.join(self.stage_dir, "_done", f"{unit}.json")

    def finished(self, unit: str) -> dict[str, Any] | None:
        """The done record of a unit finished under this fingerprint, else None."""
        record = storage.read_json(self.done_path(unit))
        return record if record and record.get("fingerprint") == self.fingerprint else None


def apply_stage(stage: Stage, table: pa.Table, name: str) -> tuple[pa.Table, pa.Table]:
    """Run `stage.process` over `table` in batches; split the result into (kept, removed).

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
    return split_removed(pa.concat_tables(outputs, promote_options="default") if outputs else table)


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


def write_unit(task: StageTask, unit: str, kept: pa.Table, removed: pa.Table | None) -> dict[str, Any]:
    kept_info = storage.write_parquet(storage.join(task.stage_dir, "kept", f"part-{unit}.parquet"), kept)
    removed_info = None
    if removed is not None and removed.num_rows:
        removed_info = storage.write_parquet(storage.join(task.stage_dir, "removed", f"part-{unit}.parquet"), removed)
    return {"unit": unit, "kept": kept_info.to_dict(), "removed": removed_info and removed_info.to_dict()}


class StageWorker:
    """Runs one stage over whole shards. One per Ray actor (stages with setup) or per task.
    A global stage (given its phase `context`) judges each whole shard after its phases ran."""

    def __init__(self, task: StageTask, context: PhaseContext | None = None):
        self.task = task
        self.context = context
        self.stage = task.build()
        self.stage.setup()

    def run_unit(self, unit: str, input_path: str) -> dict[str, Any]:
        done = self.task.finished(unit)
        if done:
            return done
        started = time.time()
        table = storage.read_parquet(input_path)
        self.stage.counters.clear()
        self.stage.histograms.clear()
        if self.context is not None:
            kept, removed = split_removed(self.stage.judge(table, self.context.for_unit(unit)))
        else:
            kept, removed = apply_stage(self.stage, table, self.task.name)
        record = {
            "fingerprint": self.task.fingerprint, "unit": unit, "input": input_path,
            "outputs": [write_unit(self.task, unit, kept, removed)],
            "docs_in": table.num_rows, "docs_out": kept.num_rows, "removed_by_reason": reason_counts(removed),
            "bytes_in": content_bytes(table), "bytes_out": content_bytes(kept),
            "counters": dict(self.stage.counters), "histograms": self.stage.histograms,
            "started": started, "finished": time.time(),
        }
        storage.write_json(self.task.done_path(unit), record)
        return record

    def __call__(self, batch: dict[str, list]) -> dict[str, list]:
        """Ray Data entry point: each row names a unit and the shard it reads."""
        rows = [self._advance(row, self.run_unit(row["unit"], row["path"])) for row in _rows(batch)]
        return _columns(rows)

    def _advance(self, row: dict[str, Any], record: dict[str, Any]) -> dict[str, Any]:
        report = json.loads(row["report"])
        report[self.task.name] = summary(record)
        return {"unit": row["unit"], "path": record["outputs"][0]["kept"]["path"], "report": json.dumps(report)}


def run_stage_task(batch: dict[str, list], task: StageTask, context: PhaseContext | None = None) -> dict[str, list]:
    """Task-pool entry point for stages without setup: a fresh worker per call is cheap."""
    return StageWorker(task, context)(batch)


def summary(record: dict[str, Any]) -> dict[str, Any]:
    """The counts the driver shows while the run goes (the full record stays on disk)."""
    return {key: record.get(key, 0) for key in ("docs_in", "docs_out", "bytes_in", "bytes_out")}


def _rows(batch: dict[str, list]) -> Iterator[dict[str, Any]]:
    keys = list(batch)
    for values in zip(*(batch[k] for k in keys)):
        yield dict(zip(keys, values))


def _columns(rows: list[dict[str, Any]]) -> dict[str, list]:
    return {key: [row[key] for row in rows] for key in ("unit", "path", "report")}


def merge_histograms(records: list[dict[str, Any]]) -> dict[str, dict[str, list]]:
    """Sum the histograms of several units (their edges are fixed per metric)."""
    total: dict[str, dict[str, list]] = {}
    for record in records:
        for metric, entry in (record.get("histograms") or {}).items():
            into = total.setdefault(metric, {"edges": entry["edges"], "counts": [0] * len(entry["counts"])})
            into["counts"] = [a + b for a, b in zip(into["counts"], entry["counts"])]
    return dict(sorted(total.items()))


def merge_counts(records: list[dict[str, Any]], key: str) -> dict[str, int]:
    total: Counter[str] = Counter()
    for record in records:
        total.update(record.get(key) or {})
    return dict(sorted(total.items()))


class SourceWorker:
    """The implicit `read` stage: one input file in, one shard per `docs_per_shard` documents out.

    Its unit is a file (`00003`); its shards are `00003-00000`, `00003-00001`, ... A file that
    cannot be read is recorded with its reason and skipped, unless the input is `strict`.
    """

    def __init__(self, task: StageTask, inputs: dict[str, Any]):
        from crawl2model.pipeline.sources import InputConfig

        self.task = task
        self.inputs = InputConfig.model_validate(inputs)

    def run_file(self, index: int, kind: str, path: str) -> Iterator[dict[str, Any]]:
        """Yield each shard's output (with its own counts) as soon as it is written, so the next
        stage starts on it while the file is still being read; the done record comes last."""
        from crawl2model.pipeline.sources import InputFile, read_chunks
        from crawl2model.pipeline.warc import UnreadableFile

        unit = f"{index:05d}"
        done = self.task.finished(unit)
        if done:
            yield from done["outputs"]
            return
        started, counts, outputs, skipped = time.time(), Counter(), [], None
        try:
            for number, chunk in enumerate(read_chunks(InputFile(index, kind, path), self.inputs, counts)):
                output = write_unit(self.task, f"{unit}-{number:05d}", chunk.kept, chunk.removed)
                removed = chunk.removed.num_rows if chunk.removed is not None else 0
                output.update(docs_in=chunk.kept.num_rows + removed, docs_out=chunk.kept.num_rows,
                              bytes_out=content_bytes(chunk.kept), removed_by_reason=reason_counts(chunk.removed))
                outputs.append(output)
                yield output
        except UnreadableFile as error:
            if self.inputs.strict:
                raise
            skipped = str(error)
        bytes_out = sum(o["bytes_out"] for o in outputs)
        record = {
            "fingerprint": self.task.fingerprint, "unit": unit, "input": path, "outputs": outputs,
            "docs_in": sum(o["docs_in"] for o in outputs), "docs_out": sum(o["docs_out"] for o in outputs),
            "removed_by_reason": merge_counts(outputs, "removed_by_reason"), "bytes_in": bytes_out,
            "bytes_out": bytes_out, "counters": {f"records:{k}": v for k, v in counts.items()},
            "skipped": skipped, "started": started, "finished": time.time(),
        }
        storage.write_json(self.task.done_path(unit), record)

    def __call__(self, batch: dict[str, list]) -> Iterator[dict[str, list]]:
        """Ray Data entry point: a row per input file in, a row per shard out, each as it is written."""
        for row in _rows(batch):
            for output in self.run_file(int(row["index"]), str(row["kind"]), str(row["path"])):
                report = json.dumps({self.task.name: summary(output)})
                yield {"unit": [output["unit"]], "path": [output["kept"]["path"]], "report": [report]}


def run_source_task(batch: dict[str, list], task: StageTask, inputs: dict[str, Any]) -> Iterator[dict[str, list]]:
    """Task-pool entry point of the reader."""
    yield from SourceWorker(task, inputs)(batch)


def run_phase_task(task: StageTask, phase_name: str, ctx: PhaseContext, unit: str, input_path: str | None) -> dict:
    """One task of one phase of a global stage: read its input, call the phase method, write its
    output, then its done record. A task already done under this fingerprint returns its record."""
    stage = task.build()
    phase = next(p for p in stage.phases() if p.name == phase_name)
    phase_dir = storage.join(ctx.phases_dir, phase.name)
    done_path = storage.join(phase_dir, "_done", f"{unit}.json")
    record = storage.read_json(done_path)
    if record and record.get("fingerprint") == task.fingerprint:
        return record
    started = time.time()
    if phase.over == "shards":
        table = storage.read_parquet(input_path, columns=list(phase.columns) if phase.columns else None)
    elif phase.over == "partitions":
        table = ctx.read(phase.reads, partition=ctx.partition)
    else:
        table = pa.table({})
    output = getattr(stage, phase.name)(table, ctx)
    files = phase_output(phase_dir, unit, output)
    record = {"fingerprint": task.fingerprint, "unit": unit, "rows_in": table.num_rows, "rows_out": output.num_rows,
              "files": [f.to_dict() for f in files], "counters": dict(stage.counters), "histograms": stage.histograms,
              "started": started, "finished": time.time()}
    storage.write_json(done_path, record)
    return record


def run_phases(task: StageTask, context: PhaseContext, shards_in: list[tuple[str, str]]) -> None:
    """Every phase of a global stage, task after task, in this process (as the runner does on Ray):
    for tests and benchmarks. `shards_in` lists its input shards as (unit, path), sorted."""
    for phase in task.build().phases():
        for job in phase_jobs(phase, context, shards_in):
            run_phase_task(task, phase.name, *job)
