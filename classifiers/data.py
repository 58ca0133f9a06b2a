"""Labelled examples for training and evaluating a classifier, from files or from a run's documents.

A source is one entry of `sources:`. It gives examples from `files` (JSONL, Parquet, CSV or plain
text; gzip and other compressions by extension), from `input` (the documents the train stage
receives in a run), or from `sample` (demonstration texts generated from the seed, see
pipeline/sample_data.py). Each example's label is the source's `label`, or a row's `label_column`
value (renamed through `labels`, e.g. Davidson's classes `{0: toxic, 1: toxic, 2: clean}`), or,
in plain text without either, a fastText `__label__name` prefix. `max_documents` keeps a seeded
sample, chosen by a hash of the text, so it does not depend on file order.
"""
from __future__ import annotations

import os
import re
from pathlib import PurePath
from typing import Any, Iterator, Literal

import fsspec
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from crawl2model.classifiers.fasttext_file import LABEL_PREFIX
from crawl2model.pipeline.jsonl import read_jsonl
from crawl2model.pipeline.sample_data import TextKind, texts
from crawl2model.pipeline.sampling import seeded_order

Format = Literal["auto", "jsonl", "parquet", "csv", "text"]
_SUFFIXES = {".jsonl": "jsonl", ".json": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet", ".csv": "csv"}
_LABEL = re.compile(r"\S+")
EXAMPLES = pa.schema([("text", pa.string()), ("label", pa.string())])  # what every source gives
SAMPLE_TEXTS = 500  # generated texts of a `sample` source without max_documents


class ExampleSource(BaseModel):
    model_config = ConfigDict(extra="forbid")
    files: list[str] = []  # globs of local paths or fsspec URLs
    input: bool = False  # in a run: the documents this stage receives (sample them with max_documents)
    sample: TextKind | None = None  # generated demonstration texts: reference, toxic or polite
    label: str | None = None  # every example of this source has this label
    label_column: str | None = None  # or each row names its label in this column
    labels: dict[str, str] = {}  # with label_column: raw value -> label; other values are an error
    text_column: str = "text"
    format: Format = "auto"  # auto: by extension (.jsonl/.json, .parquet, .csv; anything else is text)
    unit: Literal["file", "line"] = "file"  # plain text: a whole file is one example, or each line
    max_documents: int | None = Field(None, ge=1)  # a seeded sample of at most this many examples

    @field_validator("label")
    @classmethod
    def _one_token(cls, value: str | None) -> str | None:
        if value is not None and not _LABEL.fullmatch(value):
            raise ValueError(f"a label is one word without spaces (fastText reads it as one token), got {value!r}")
        return value

    @field_validator("labels", mode="before")
    @classmethod
    def _keys_as_written(cls, value):
        """YAML reads `{0: toxic}` with an int key; the column's values are compared as text."""
        return {str(raw): label for raw, label in value.items()} if isinstance(value, dict) else value

    @field_validator("labels")
    @classmethod
    def _mapped_tokens(cls, value: dict[str, str]) -> dict[str, str]:
        for label in value.values():
            cls._one_token(label)
        return value

    @model_validator(mode="after")
    def _one_origin_one_label(self) -> ExampleSource:
        if sum((bool(self.files), self.input, self.sample is not None)) != 1:
            raise ValueError("give one of `files`, `input: true` (the documents of the run) or `sample` "
                             "(generated texts)")
        if self.label is not None and self.label_column is not None:
            raise ValueError("give `label` (one label for the whole source) or `label_column`, not both")
        if self.labels and self.label_column is None:
            raise ValueError("`labels` renames the values of `label_column`; set label_column too")
        if (self.input or self.sample) and self.label is None:
            raise ValueError("documents of the run and generated texts carry no label: set `label` for the source")
        return self

    def paths(self) -> list[str]:
        """The files, globs expanded and sorted; ValueError naming a pattern that matches nothing."""
        paths = []
        for pattern in self.files:
            found = _expand(pattern)
            if not found:
                raise ValueError(f"no file matches {pattern!r}")
            paths += found
        return sorted(set(paths))

    def check(self) -> None:
        """Before any work: the files exist, and tabular ones have the named columns."""
        for path in self.paths():
            kind = file_format(path, self.format)
            if kind == "text":
                if self.label is None and self.unit == "file":
                    raise ValueError(f"{path}: plain text needs `label`, or `unit: line` with __label__ prefixes")
                continue
            columns = _columns(path, kind)
            for key, column in (("text_column", self.text_column), ("label_column", self.label_column)):
                if column is not None and column not in columns:
                    raise ValueError(f"{path}: no column {column!r} ({key}); it has: {', '.join(columns)}")
            if self.label is None and self.label_column is None:
                raise ValueError(f"{path}: set `label` or `label_column`")


def _expand(pattern: str) -> list[str]:
    """Files matching a glob: a local path, a URL, or a chained URL into an archive
    (`zip://state_union/*.txt::corpora/state_union.zip`), whose chain is kept."""
    from crawl2model.pipeline.storage import expand_inputs

    if "::" not in pattern:
        return expand_inputs([pattern], {})
    fs, inner = fsspec.core.url_to_fs(pattern)
    head, _, chain = pattern.partition("::")
    chain = chain if "://" in chain else os.path.abspath(chain)  # workers may start in another directory
    return sorted(f"{head.split('://')[0]}://{match}::{chain}" for match in fs.glob(inner) if fs.isfile(match))


def file_format(path: str, format: Format) -> str:
    if format != "auto":
        return format
    suffixes = PurePath(path.split("::")[0].split("://")[-1]).suffixes
    suffixes = suffixes[:-1] if suffixes and suffixes[-1] in (".gz", ".bz2", ".xz", ".zst", ".lz4") else suffixes
    return _SUFFIXES.get(suffixes[-1] if suffixes else "", "text")


def read_source(source: ExampleSource, seed: int) -> pa.Table:
    """The examples of a file or sample source as a table (text, label); blank texts are skipped."""
    if source.sample is not None:
        generated = texts(source.sample, source.max_documents or SAMPLE_TEXTS, seed)
        return pa.table({"text": generated, "label": [source.label] * len(generated)}, schema=EXAMPLES)
    tables = [_read_file(path, source) for path in source.paths()]
    table = pa.concat_tables(tables) if tables else EXAMPLES.empty_table()
    table = table.filter(pc.greater(pc.utf8_length(pc.utf8_trim_whitespace(table.column("text").fill_null(""))), 0))
    return sample(table, source.max_documents, seed, "text")


def sample(table: pa.Table, limit: int | None, seed: int, key_column: str) -> pa.Table:
    """At most `limit` rows: those with the smallest seeded keys of `key_column`, in key order."""
    if limit is None or table.num_rows <= limit:
        return table
    chosen, _ = seeded_order(table.column(key_column), seed, limit)
    return table.take(chosen)


def _read_file(path: str, source: ExampleSource) -> pa.Table:
    kind = file_format(path, source.format)
    if kind == "text":
        return _text_examples(path, source)
    table = _read_table(path, kind)
    texts = table.column(source.text_column).cast(pa.string())
    if source.label is not None:
        return pa.table({"text": texts, "label": pa.array([source.label] * len(texts), pa.string())})
    raw = table.column(source.label_column).cast(pa.string()).to_pylist()
    return pa.table({"text": texts, "label": pa.array(_labels(raw, source, path), pa.string())})


def _labels(raw: list[str | None], source: ExampleSource, path: str) -> list[str]:
    if source.labels:
        unknown = sorted({str(value) for value in raw if value not in source.labels})
        if unknown:
            raise ValueError(f"{path}: {source.label_column} values {unknown[:10]} are not in `labels` "
                             f"(which maps {sorted(source.labels)})")
        return [source.labels[value] for value in raw]
    bad = next((i for i, value in enumerate(raw) if value is None or not _LABEL.fullmatch(value)), None)
    if bad is not None:
        raise ValueError(f"{path}: row {bad}: label {raw[bad]!r} is not one word (map values with `labels`)")
    return raw


def _text_examples(path: str, source: ExampleSource) -> pa.Table:
    with fsspec.open(path, "rt", compression="infer", encoding="utf-8", errors="replace") as handle:
        content = handle.read()
    texts = [content] if source.unit == "file" else [line for line in content.split("\n") if line.strip()]
    if source.label is not None:
        return pa.table({"text": texts, "label": [source.label] * len(texts)})
    labels = []
    for number, line in enumerate(texts, 1):  # fastText's own format: __label__name text
        first, _, rest = line.partition(" ")
        if not first.startswith(LABEL_PREFIX) or first == LABEL_PREFIX:
            raise ValueError(f"{path}: example {number} has no __label__ prefix and the source no `label`")
        labels.append(first.removeprefix(LABEL_PREFIX))
        texts[number - 1] = rest
    return pa.table({"text": pa.array(texts, pa.string()), "label": pa.array(labels, pa.string())})


def _read_table(path: str, kind: str) -> pa.Table:
    import pyarrow.csv
    import pyarrow.parquet as pq

    if kind == "jsonl":
        rows = []
        for number, row in _json_lines(path):
            if not isinstance(row, dict):
                raise ValueError(f"{path}: line {number} is not a JSON object")
            rows.append(row)
        return pa.Table.from_pylist(rows)
    with fsspec.open(path, "rb", compression="infer") as handle:
        if kind == "parquet":
            return pq.read_table(handle)
        return pyarrow.csv.read_csv(handle, parse_options=pyarrow.csv.ParseOptions(newlines_in_values=True))


def _columns(path: str, kind: str) -> list[str]:
    import pyarrow.csv
    import pyarrow.parquet as pq

    if kind == "jsonl":
        for _, row in _json_lines(path):  # the first line names the columns
            return list(row) if isinstance(row, dict) else []
        return []
    with fsspec.open(path, "rb", compression="infer") as handle:
        if kind == "parquet":
            return pq.read_schema(handle).names
        return pyarrow.csv.open_csv(handle).schema.names


def _json_lines(path: str) -> Iterator[tuple[int, Any]]:
    """(line number, value) of each line of a JSONL file; ValueError at the first that is not JSON."""
    for number, row in read_jsonl(path):
        if isinstance(row, ValueError):
            raise ValueError(f"{path}: line {number} is not JSON ({row})") from None
        yield number, row
