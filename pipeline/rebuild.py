"""A finished stage's kept documents, shard by shard, whether it wrote them or handed them on in
memory (`materialize: final`, plan.kept_in_memory).

A stage that handed its kept documents to the next one wrote none of them, but nothing of them is
lost: each was either kept by the last stage they were handed to (its kept shard) or removed by one
of the stages in between (their removed shards, written by every stage). Those stages only add
columns, except where one changed or dropped a column of what it was handed: it wrote what it
changed by id (its `changes` shard: changed_values), which is undone here. So a stage's shard is
rebuilt as the documents still kept at the end, then those each later stage removed, in the order
of the stages, with the stage's own columns. The reader, whose html its child drops, is read again
from the input file.
"""
from __future__ import annotations

import difflib
import json
from typing import Iterator

import pyarrow as pa
import pyarrow.compute as pc
import yaml

from crawl2model.pipeline import records, storage
from crawl2model.pipeline.plan import SOURCE
from crawl2model.pipeline.records import DoneRecord, Manifest, ShardOutput
from crawl2model.pipeline.stage import REMOVAL_COLUMNS
from crawl2model.pipeline.summary import manifest_path, stage_files

PATCH = ":patch"  # a changes column `<text column>:patch` holds line_patch()es, not whole old values


class RebuildError(ValueError):
    """The documents cannot be rebuilt: a stage after it has not finished, or the input changed."""


def kept_shards(run_dir: str, stage: str, manifest: Manifest | None = None) -> Iterator[pa.Table]:
    """Each kept shard of a finished stage, in the order of its listing (or of its units)."""
    manifest = manifest or records.read(manifest_path(run_dir), Manifest)
    entry = manifest and manifest.stages.get(stage)
    if entry is None or entry.status != "done":
        raise RebuildError(f"stage '{stage}' has not finished in {run_dir}")
    if not entry.kept_in:
        for info in stage_files(run_dir, entry).kept:
            yield storage.read_parquet(storage.absolute(info.path, run_dir))
        return
    outputs = _outputs(run_dir, stage, entry.fingerprint)
    if stage == SOURCE:
        yield from _read_again(run_dir, outputs)
        return
    for output in outputs:
        yield _rebuilt(run_dir, output, [(name, manifest.stages[name].fingerprint) for name in entry.kept_in])


def _outputs(run_dir: str, stage: str, fingerprint: str) -> list[ShardOutput]:
    folder = storage.join(run_dir, "stages", stage, "_done")
    found = (records.read(path, DoneRecord) for path in storage.list_files(folder, ".json"))
    done = sorted((r for r in found if r and r.fingerprint == fingerprint), key=lambda r: r.unit)
    return [output for record in done for output in record.outputs]


def _rebuilt(run_dir: str, output: ShardOutput, later: list[tuple[str, str]]) -> pa.Table:
    """One shard of a stage that handed it on: what `later` (the stages it was handed through, in
    order, with their fingerprints) kept at the end and removed, each put back as it was handed on."""
    outputs = []
    for name, fingerprint in later:
        record = records.read(storage.join(run_dir, "stages", name, "_done", f"{output.unit}.json"), DoneRecord)
        if record is None or record.fingerprint != fingerprint:
            raise RebuildError(f"stage '{name}' has no finished shard {output.unit}, which holds documents before it")
        outputs.append(record.outputs[0])
    parts = [(len(outputs) - 1, outputs[-1].kept)] + [(j, o.removed) for j, o in enumerate(outputs) if o.removed]
    changes = [o.changes and storage.read_parquet(storage.absolute(o.changes.path, run_dir)) for o in outputs]
    tables = []
    for j, info in parts:
        table = storage.read_parquet(storage.absolute(info.path, run_dir))
        for old in reversed(changes[:j + 1]):  # undo the latest change first
            if old is not None:
                table = undo_changes(table, old)
        tables.append(table.select(output.columns))
    return pa.concat_tables(tables)


def changed_values(before: pa.Table, after: pa.Table) -> pa.Table | None:
    """What a stage changed of the documents handed to it in memory, so that the stage before it
    can be rebuilt: the `id`, and for each column it changed, for the rows where any differs, the
    old value, or for a text column it edited (C4 drops lines), a line patch that turns the new
    text back into the old; None when it changed nothing. `after`: its output, a row per row of
    `before`. A column it dropped is kept whole."""
    changed, differs = {}, None
    for column in [c for c in before.column_names if c != "id" and c not in REMOVAL_COLUMNS]:
        old = before.column(column)
        new = after.column(column) if column in after.column_names else None
        if new is not None and new.type == old.type and new.equals(old):
            continue
        if new is None or new.type != old.type:
            row_differs = pa.array([True] * before.num_rows)
        else:
            same = pc.or_kleene(pc.equal(old, new), pc.and_(pc.is_null(old), pc.is_null(new)))
            row_differs = pc.invert(pc.fill_null(same, False))
        changed[column] = new
        differs = row_differs if differs is None else pc.or_(differs, row_differs)
    if not changed:
        return None
    rows, after_rows = before.filter(differs), after.filter(differs)
    columns = {"id": rows.column("id")}
    for column, new in changed.items():
        if new is not None and pa.types.is_string(new.type) and new.type == before.schema.field(column).type:
            columns[column + PATCH] = pa.array(map(line_patch, rows.column(column).to_pylist(),
                                                   after_rows.column(column).to_pylist()), pa.string())
        else:
            columns[column] = rows.column(column)
    return pa.table(columns)


def line_patch(old: str | None, new: str | None) -> str | None:
    """JSON that apply_patch turns `new` back into `old` with: the runs of lines they share, as
    [first, end) line numbers of `new`, and the rest of `old` as text. None: `old` was None."""
    if old is None:
        return None
    ours, theirs = old.splitlines(keepends=True), (new or "").splitlines(keepends=True)
    ops = [[j1, j2] if tag == "equal" else "".join(ours[i1:i2])
           for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, ours, theirs).get_opcodes()]
    return json.dumps([op for op in ops if op != ""], ensure_ascii=False)


def apply_patch(new: str | None, patch: str | None) -> str | None:
    if patch is None:
        return None
    lines = (new or "").splitlines(keepends=True)
    return "".join("".join(lines[op[0]:op[1]]) if isinstance(op, list) else op for op in json.loads(patch))


def undo_changes(table: pa.Table, old: pa.Table) -> pa.Table:
    """`table` with what `old` (a changes shard) says it was, by id, and the columns it lacks."""
    at = pc.index_in(table.column("id"), value_set=old.column("id"))
    has_old = pc.is_valid(at)
    for name in old.column_names[1:]:
        values = old.column(name).combine_chunks().take(at)
        column = name.removesuffix(PATCH)
        if name.endswith(PATCH):
            now = table.column(column)
            values = pa.array(map(apply_patch, now.to_pylist(), values.to_pylist()), now.type)
            values = pc.if_else(has_old, values, now)
        elif column in table.column_names:
            now = table.column(column)
            values = pc.if_else(has_old, values.cast(now.type), now)
        if column in table.column_names:
            table = table.set_column(table.column_names.index(column), column, values)
        else:
            table = table.append_column(column, values)
    return table


def _read_again(run_dir: str, outputs: list[ShardOutput]) -> Iterator[pa.Table]:
    """The reader's shards (`outputs`, in unit order), read again from the input files as the run's
    config.yaml lists them (from the directory the run was started in, where a relative input
    pattern names its files), each file once."""
    from collections import Counter

    from crawl2model.pipeline.config import RunConfig
    from crawl2model.pipeline.sources import list_input_files, read_chunks

    raw = yaml.safe_load(storage.read_bytes(storage.join(run_dir, "config.yaml")) or b"{}")
    config = RunConfig.model_validate({**raw, "output_dir": run_dir, "stages": []})
    files = {f.index: f for f in list_input_files(config.input, config.seed, run_dir)}
    chunks, at = iter(()), None  # the chunks of the file being read, and its index
    for output in outputs:
        index, number = (int(part) for part in output.unit.split("-"))
        if index != at:
            chunks, at = (enumerate(read_chunks(files[index], config.input, Counter())) if index in files else iter(())), index
        chunk = next((c for k, c in chunks if k == number), None)
        if chunk is None or chunk.kept.num_rows != output.docs_out:
            raise RebuildError(f"the input file of shard {output.unit} of '{SOURCE}' is not the one the run read "
                               "(it changed, or moved); run the stage with `materialize: all` to keep its shards")
        yield chunk.kept
