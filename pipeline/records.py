"""What a run writes about itself, typed: a file written, a unit of work done, a stage's stats, the
manifest. Each is a pydantic model, written and read here alone.

Paths inside records are relative to the run directory (`stages/extract/kept/part-00000-00000.parquet`),
so a run directory can move (to a bigger disk, to an object store) and still resume, and two runs of
one config in two places write the same bytes.

A record that cannot be read (a zero-length file left by a power cut, a foreign JSON) counts as
absent: the unit it describes is done again.
"""
from __future__ import annotations

import json
import logging
import time
from collections import Counter
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from crawl2model.pipeline import storage
from crawl2model.pipeline.storage import FileInfo

log = logging.getLogger(__name__)

Histograms = dict[str, dict[str, list]]  # metric -> {"edges": [...], "counts": [...]}


class Record(BaseModel):
    model_config = ConfigDict(extra="ignore")


class ShardOutput(Record):
    """What one unit wrote for one output shard: the kept documents and, if any, the removed."""

    unit: str
    kept: FileInfo | None = None  # None: handed on in memory (plan.kept_in_memory); `columns` names its columns
    removed: FileInfo | None = None
    changes: FileInfo | None = None  # the values of its input's columns it changed or dropped (see rebuild)
    columns: list[str] = []
    docs_in: int = 0  # the reader counts per shard (its unit, a file, yields several)
    docs_out: int = 0
    bytes_out: int = 0
    removed_by_reason: dict[str, int] = {}


class DoneRecord(Record):
    """`_done/<unit>.json`: written after the unit's files, so its presence means they are whole."""

    fingerprint: str
    unit: str
    input: str | None = None  # the shard (relative) or input file the unit read
    outputs: list[ShardOutput] = []
    docs_in: int = 0
    docs_out: int = 0
    removed_by_reason: dict[str, int] = {}
    bytes_in: int = 0
    bytes_out: int = 0
    counters: dict[str, int] = {}
    histograms: Histograms = {}
    skipped: str | None = None  # the reader: why the file could not be read at all
    host: str = ""  # the machine that did it: on a cluster, which node wrote these files
    started: float = 0.0
    finished: float = 0.0


class PhaseRecord(Record):
    """A global stage's phase task done: `phases/<phase>/_done/<unit>.json`."""

    fingerprint: str
    unit: str
    rows_in: int
    rows_out: int
    files: list[FileInfo] = []
    counters: dict[str, int] = {}
    histograms: Histograms = {}
    host: str = ""
    started: float = 0.0
    finished: float = 0.0


class PhaseStats(Record):
    tasks: int
    rows_in: int
    rows_out: int
    files: int
    bytes: int
    cpu_seconds: float


class SkippedFile(Record):
    path: str
    reason: str


class StageStats(Record):
    """`stages/<name>/stats.json`: what a stage did, summed over its units (and phases)."""

    stage: str
    type: str
    fingerprint: str
    shards: int = 0
    docs_in: int = 0
    docs_out: int = 0
    removed_by_reason: dict[str, int] = {}
    bytes_in: int = 0
    bytes_out: int = 0
    wall_seconds: float = 0.0
    cpu_seconds: float = 0.0
    counters: dict[str, int] = {}
    histograms: Histograms = {}
    phases: dict[str, PhaseStats] | None = None
    files: int | None = None  # the reader: input files read
    files_skipped: list[SkippedFile] | None = None
    artifact: list[FileInfo] | None = None  # a stage that makes a model, a tokenizer, token shards


class Listing(Record):
    """Where a finished stage lists its shards, once: `stages/<name>/files.parquet` (read with
    summary.stage_files), named here with its size and sha256 (so the manifest, and the report's
    key, change when any shard listed does) and what it counts. The manifest stays a few hundred
    bytes per stage however many shards a stage wrote."""

    path: str  # relative to the run directory
    bytes: int
    sha256: str
    shards: int = 0  # kept shards
    removed: int = 0  # shards of removed documents
    files: int = 0  # all the files listed
    files_bytes: int = 0  # and their bytes together


class ManifestEntry(Record):
    status: Literal["pending", "running", "done", "failed"] = "pending"
    fingerprint: str
    cached: bool | None = None  # set on a finished stage: whether this invocation served it from the cache
    type: str | None = None
    after: list[str] = []
    docs_in: int | None = None
    docs_out: int | None = None
    wall_seconds: float | None = None
    # a finished stage's shards, listed in a file of their own. An entry written by an older version
    # listed them inline (`kept`, `removed`): those are ignored, it reads as a stage without a
    # listing, and so as stale: the stage runs again (no migration)
    listing: Listing | None = None
    # the files under its artifact folder (a tokenizer, a model's checkpoints): a few per stage,
    # however large the corpus, so listed here (with their sizes; sha256 left empty)
    artifact: list[FileInfo] = []
    # a stage that handed its kept documents on in memory: the stages whose files hold them (rebuild)
    kept_in: list[str] = []
    error: str | None = None  # a failed stage: why, in one line


class Manifest(Record):
    """`manifest.json`: per stage, in DAG order, its fingerprint, status and, once done, where its
    files are listed."""

    name: str = ""
    config_fingerprint: str = ""
    updated: str = ""
    packages: dict[str, str] = {}
    stages: dict[str, ManifestEntry] = Field(default_factory=dict)


R = TypeVar("R", bound=Record)


def write(path: str, record: Record) -> None:
    """Atomically, and synced to disk before the rename: a record is whole or absent."""
    data = record.model_dump(mode="json", exclude_none=True)
    sort = not isinstance(record, Manifest)  # the manifest keeps its stages in DAG order
    storage.write_bytes_atomic(path, (json.dumps(data, indent=2, sort_keys=sort) + "\n").encode(), sync=True)


def read(path: str, model: type[R]) -> R | None:
    """The record at `path`, or None when it is absent or unreadable (with a warning)."""
    data = storage.read_bytes(path)
    if data is None:
        return None
    try:
        return model.model_validate(json.loads(data))
    except (ValueError, ValidationError) as error:
        log.warning("ignoring unreadable %s (%s): the work it records is done again", path, str(error)[:200])
        return None


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def merge_counts(counts: list[dict[str, int]]) -> dict[str, int]:
    total: Counter[str] = Counter()
    for item in counts:
        total.update(item)
    return dict(sorted(total.items()))


def merge_histograms(histograms: list[Histograms]) -> Histograms:
    """Sum the histograms of several units (their edges are fixed per metric)."""
    total: Histograms = {}
    for item in histograms:
        for metric, entry in item.items():
            into = total.setdefault(metric, {"edges": entry["edges"], "counts": [0] * len(entry["counts"])})
            into["counts"] = [a + b for a, b in zip(into["counts"], entry["counts"])]
    return dict(sorted(total.items()))


def summed(records: list[Any], key: str) -> int:
    return sum(getattr(r, key) for r in records)
