"""Inputs of a run: which files, in which order, and how each becomes shards of documents.

Files are listed sorted within each kind (warc, jsonl, parquet), so shard names and contents never
depend on the file system's listing order. Each file is cut into chunks of `docs_per_shard`
documents; rows that cannot be documents travel beside them as removed rows with a reason.
"""
from __future__ import annotations

import json
import os

from collections import Counter
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any, Iterator

import fsspec
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pydantic import BaseModel, ConfigDict, Field, model_validator

from crawl2model.pipeline import warc
from crawl2model.pipeline.compressed import Budget, FileLimit
from crawl2model.pipeline.jsonl import LineTooLong, read_jsonl
from crawl2model.pipeline.stage import DROP_DETAIL, DROP_REASON, REMOVAL_COLUMNS
from crawl2model.pipeline import storage
from crawl2model.pipeline.storage import expand_inputs

KINDS = ("warc", "jsonl", "parquet")
RESERVED_COLUMNS = REMOVAL_COLUMNS  # columns the pipeline writes itself; an input's own are renamed input_<name>


class SampleInput(BaseModel):
    """The built-in sample crawl, generated under <output_dir>/sample from the run seed."""

    model_config = ConfigDict(extra="forbid")

    documents: int = Field(default=240, ge=1)
    files: int = Field(default=4, ge=1)

    @model_validator(mode="after")
    def _room_for_the_special_pages(self) -> SampleInput:
        """What the generator (pipeline/sample.py) needs, checked before a run starts it."""
        from crawl2model.pipeline.sample import MIN_DOCUMENTS

        if self.documents < MIN_DOCUMENTS:
            raise ValueError(f"documents: at least {MIN_DOCUMENTS} (the sample's junk, duplicate and "
                             f"odd-encoding pages need room), got {self.documents}")
        if self.files > self.documents:
            raise ValueError(f"files: at most one per document ({self.documents}), got {self.files}")
        return self


class InputConfig(BaseModel):
    """`input:` of crawl.yaml: what the reader (the implicit first stage, `read`) reads."""

    model_config = ConfigDict(extra="forbid")
    warc: list[str] = []  # globs or URLs of WARC/ARC files (gzip, lz4, zstd or plain)
    jsonl: list[str] = []  # JSON lines with a text column
    parquet: list[str] = []  # Parquet with a text column
    sample: SampleInput | None = None
    text_column: str = "text"
    id_column: str = "id"  # used as the document id when present, else one is derived
    docs_per_shard: int = Field(default=500, ge=1)
    max_record_bytes: int = Field(default=32 * 2**20, ge=1024)  # larger WARC records and JSON lines are removed
    # a WARC file that decompresses to more, or takes longer to read, ends there with a removed row
    # saying so: a decompression bomb or a stalled stream costs one file, not the run
    max_file_bytes: int = Field(default=64 * 2**30, ge=1024)
    max_file_seconds: float = Field(default=3600, gt=0)
    strict: bool = False  # an unreadable input file stops the run instead of being skipped
    storage_options: dict[str, Any] = {}  # passed to fsspec for remote inputs (s3://, gs://, https://)



@dataclass(frozen=True)
class InputFile:
    index: int
    kind: str  # one of KINDS
    path: str  # where it is read from: an absolute local path, or a URL
    source: str = ""  # how its rows name it (the `source` column; see source_name); empty: `path`


@dataclass
class Chunk:
    """One shard's worth of a file: the documents, and the rows that could not be documents."""

    kept: pa.Table
    removed: pa.Table | None


def list_input_files(inputs: InputConfig, seed: int, output_dir: str) -> list[InputFile]:
    """The input files, in order, each with the name its rows carry (called in the driver, in the
    directory the run was started from: a relative pattern's files are named from there)."""
    files = []
    if inputs.sample is not None:
        from crawl2model.pipeline.sample import write_sample_crawl

        sample_dir = storage.join(output_dir, "sample")
        for path in write_sample_crawl(sample_dir, seed=seed, documents=inputs.sample.documents,
                                       files=inputs.sample.files):
            files.append(("warc", str(path), source_name(str(path), sample_dir, output_dir)))
    for kind in KINDS:
        named: dict[str, str] = {}
        for pattern in getattr(inputs, kind):  # a file two patterns list is named by the first
            for path in expand_inputs([pattern], inputs.storage_options):
                named.setdefault(path, source_name(path, pattern, output_dir))
        files += [(kind, path, named[path]) for path in sorted(named)]  # as expand_inputs orders them
    return [InputFile(i, kind, path, source) for i, (kind, path, source) in enumerate(files)]


def source_name(path: str, pattern: str, run_dir: str) -> str:
    """How the rows of the input file at `path` (listed by `pattern`) name it in `source`.

    Paths inside outputs are relative to the run or the input's own name, never absolute, so that
    one config run into two output directories writes the same bytes, and a reader can still find
    the file:
    - a file inside the run directory (the generated sample): its path relative to the run,
      `sample/sample-00000.warc.gz`;
    - a URL (`s3://`, `https://`): the URL, which names the file the same from every machine;
    - a local file listed by a relative pattern (`data/*.warc.gz`): its path relative to the
      directory the run was started from, as the pattern spells it, `data/crawl-0.warc.gz`;
    - a local file listed by an absolute pattern (`/mnt/cc/*/x-*.warc.gz`): its name, under the
      folders that the pattern's wildcards matched, `seg1/x-00.warc.gz` (the pattern, in the
      run's config.yaml, gives the folders before them).
    Document ids hash the file's name alone (and the offset), whichever of these applies."""
    inside = storage.relative(path, run_dir)
    if inside != path:
        return inside
    if not storage.is_local(pattern):
        return path
    pattern = os.path.expanduser(pattern.removeprefix("file://"))
    if not os.path.isabs(pattern):
        return os.path.relpath(path)
    wild = min((i for i in (pattern.find(c) for c in storage.GLOB_CHARS) if i >= 0), default=len(pattern))
    fixed = os.path.dirname(pattern[:wild])  # the folders before the first wildcard (or the file's own)
    return os.path.relpath(path, os.path.abspath(fixed or "/"))


def source_columns(inputs: InputConfig) -> set[str]:
    """Columns the reader will give, known before reading: WARC's fixed schema, else the file's."""
    columns: set[str] | None = None
    if inputs.warc or inputs.sample:
        columns = set(warc.SCHEMA.names)
    for kind in ("jsonl", "parquet"):
        for path in expand_inputs(getattr(inputs, kind), inputs.storage_options)[:1]:
            names = set(_peek_columns(kind, path, inputs)) | {"id", "source"}
            if inputs.text_column in names:
                names = (names - {inputs.text_column}) | {"text"}
            columns = names if columns is None else columns & names
    return columns or set()


def parquet_text_problem(path: str, inputs: InputConfig) -> str | None:
    """What is wrong with a Parquet input's text column (not text), known from its schema alone;
    None when it is fine, absent, or the file cannot be opened (the reader reports that)."""
    try:
        schema = _parquet_file(path, inputs).schema_arrow
    except (OSError, pa.ArrowException):
        return None
    if inputs.text_column not in schema.names:
        return None  # the stages that need text say so
    kind = schema.field(inputs.text_column).type
    if not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
        return f"column '{inputs.text_column}' of {path} is {kind}, not text; set text_column to the column of text"
    return None


def _parquet_file(path: str, inputs: InputConfig) -> pq.ParquetFile:
    """Opened by pyarrow through the filesystem (a Python file object can abort the interpreter at exit)."""
    fs, local = fsspec.core.url_to_fs(path, **inputs.storage_options)
    return pq.ParquetFile(local, filesystem=fs)


def _peek_columns(kind: str, path: str, inputs: InputConfig) -> list[str]:
    if kind == "parquet":
        return _parquet_file(path, inputs).schema_arrow.names
    for number, row in read_jsonl(path, storage_options=inputs.storage_options):
        if number > 1000:
            break
        if isinstance(row, dict):  # the first object line: malformed ones are the reader's to report
            return list(row)
    return []


def read_chunks(file: InputFile, inputs: InputConfig, counts: Counter[str]) -> Iterator[Chunk]:
    """Shards of one input file. Raises warc.UnreadableFile for a file that cannot be read at all."""
    def open_binary():
        return fsspec.open(file.path, "rb", **inputs.storage_options).open()

    fs, path = fsspec.core.url_to_fs(file.path, **inputs.storage_options)
    if fs.size(path) == 0:  # nothing to read is worth saying: a cut download, a failed copy
        raise warc.UnreadableFile("an empty file (0 bytes)")
    if file.kind == "warc":  # bytes come from file.path; the rows name the file by its source
        rows = warc.iter_warc_rows(file.source or file.path, open_binary, max_record_bytes=inputs.max_record_bytes,
                                   counts=counts, max_file_bytes=inputs.max_file_bytes,
                                   max_file_seconds=inputs.max_file_seconds)
        yield from _chunk_rows(rows, inputs.docs_per_shard, warc.SCHEMA)
    elif file.kind == "jsonl":
        yield from _chunk_rows(_jsonl_rows(file, inputs, counts), inputs.docs_per_shard, None)
    else:
        yield from _parquet_chunks(file, inputs)


def _chunk_rows(rows: Iterator[dict[str, Any]], size: int, schema: pa.Schema | None) -> Iterator[Chunk]:
    kept: list[dict] = []
    removed: list[dict] = []
    for row in rows:
        if row.get(DROP_REASON) is None:
            row.pop(DROP_REASON, None)
            row.pop(DROP_DETAIL, None)
            kept.append(row)
        else:
            removed.append(row)
        if len(kept) == size:
            yield _to_chunk(kept, removed, schema)
            kept, removed = [], []
    if kept or removed:
        yield _to_chunk(kept, removed, schema)


def _to_chunk(kept: list[dict], removed: list[dict], schema: pa.Schema | None) -> Chunk:
    if schema is None:  # JSON lines: the columns of every row, not only the first
        return Chunk(kept=_rows_table(kept), removed=_rows_table(removed) if removed else None)
    removed_schema = schema.append(pa.field(DROP_REASON, pa.string())).append(pa.field(DROP_DETAIL, pa.string()))
    return Chunk(kept=pa.Table.from_pylist(kept, schema=schema),
                 removed=pa.Table.from_pylist(removed, schema=removed_schema) if removed else None)


def _rows_table(rows: list[dict]) -> pa.Table:
    """Rows as a table with every key any row has (absent: null). A key whose values are of
    mixed types (a number here, a string there) becomes a string column of their JSON, so nothing
    is lost and no row fails the shard."""
    names = list(dict.fromkeys(key for row in rows for key in row))
    columns = {}
    for name in names:
        values = [row.get(name) for row in rows]
        try:
            columns[name] = pa.array(values)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            columns[name] = pa.array([v if v is None or isinstance(v, str) else json.dumps(v) for v in values],
                                     pa.string())
    return pa.table(columns) if names else pa.table({})


def _jsonl_rows(file: InputFile, inputs: InputConfig, counts: Counter[str]) -> Iterator[dict[str, Any]]:
    name, source = PurePosixPath(file.path).name, file.source or file.path
    number = 0
    budget = Budget(max_seconds=inputs.max_file_seconds)  # a line is at most max_record_bytes: memory is bounded
    try:
        for number, row in read_jsonl(file.path, errors="replace", storage_options=inputs.storage_options,
                                      max_line=inputs.max_record_bytes):
            counts["lines"] += 1
            budget.spend(0)
            key = f"{name}:{number}"
            if not isinstance(row, dict):
                error = row if isinstance(row, ValueError) else "a line must hold a JSON object"
                reason = "read:too_large" if isinstance(row, LineTooLong) else "read:bad_json"
                yield {"id": warc.doc_id(key), "source": source, DROP_REASON: reason,
                       DROP_DETAIL: f"line {number}: {error}"[:300]}
                continue
            yield _as_document(row, key, source, inputs)
    except FileLimit as limit:
        yield {"id": warc.doc_id(f"{name}:after:{number}"), "source": source, DROP_REASON: limit.reason,
               DROP_DETAIL: f"after line {number}: {limit}"}
    except (OSError, EOFError, ValueError) as error:  # a cut .gz, a broken stream: keep what came before it
        if number == 0:
            raise warc.UnreadableFile(f"not a readable JSON lines file: {type(error).__name__}: {error}"[:300]) from None
        yield {"id": warc.doc_id(f"{name}:after:{number}"), "source": source, DROP_REASON: "read:malformed_file",
               DROP_DETAIL: f"after line {number}: {type(error).__name__}: {error}"[:300]}


def _as_document(row: dict[str, Any], key: str, source: str, inputs: InputConfig) -> dict[str, Any]:
    for reserved in RESERVED_COLUMNS:  # the user's own column of that name travels as input_<name>
        if reserved in row:
            row[f"input_{reserved}"] = row.pop(reserved)
    text = row.pop(inputs.text_column, None)
    doc_id = row.pop(inputs.id_column, None)
    doc_id = str(doc_id) if doc_id is not None else warc.doc_id(key)
    if not isinstance(text, str):
        return {"id": doc_id, "source": source, DROP_REASON: "read:no_text",
                DROP_DETAIL: f"{key}: '{inputs.text_column}' is {type(text).__name__}"}
    return {"id": doc_id, "text": text, "source": source, **row}


def _parquet_chunks(file: InputFile, inputs: InputConfig) -> Iterator[Chunk]:
    name, source = PurePosixPath(file.path).name, file.source or file.path
    try:
        batches = _parquet_file(file.path, inputs).iter_batches(batch_size=inputs.docs_per_shard)
    except (OSError, pa.ArrowException) as error:  # not Parquet, or cut before its footer
        raise warc.UnreadableFile(f"not a readable Parquet file: {error}"[:300]) from None
    start = 0
    while True:
        try:
            batch = next(batches, None)
        except (OSError, pa.ArrowException) as error:  # a damaged row group: keep the batches before it
            removed = pa.table({"id": [warc.doc_id(f"{name}:after:{start}")], "source": [source],
                                DROP_REASON: ["read:malformed_file"], DROP_DETAIL: [f"after row {start}: {error}"[:300]]})
            yield Chunk(kept=pa.table({}), removed=removed)
            return
        if batch is None:
            return
        table = pa.Table.from_batches([batch])
        reserved = [c for c in RESERVED_COLUMNS if c in table.column_names]
        if reserved:  # the user's own column of that name travels as input_<name>
            table = table.rename_columns([f"input_{c}" if c in reserved else c for c in table.column_names])
        if inputs.text_column != "text":
            table = table.rename_columns(["text" if c == inputs.text_column else c for c in table.column_names])
        given = table.column(inputs.id_column).cast(pa.string()) if inputs.id_column in table.column_names else None
        if given is None or given.null_count:  # derived ids where the file gives none
            derived = pa.array([warc.doc_id(f"{name}:{start + i}") for i in range(table.num_rows)], pa.string())
            given = derived if given is None else pc.coalesce(given, derived)
        if inputs.id_column in table.column_names:
            table = table.drop_columns([inputs.id_column])
        table = table.append_column("id", given)
        table = table.append_column("source", pa.array([source] * table.num_rows, pa.string()))
        start += table.num_rows
        yield Chunk(kept=table, removed=None)
