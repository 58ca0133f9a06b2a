"""Two finished runs compared stage by stage into a typed `RunDiff` (see the package's docstring)."""
from __future__ import annotations

from typing import Any

import pyarrow as pa
import yaml
from pydantic import BaseModel, computed_field

from crawl2model.pipeline import records, storage
from crawl2model.pipeline.plan import SOURCE
from crawl2model.pipeline.records import FileInfo, Manifest, ManifestEntry, StageStats
from crawl2model.pipeline.summary import ListingError, StageFiles, manifest_path, stage_files

_COLUMNS = ("id", "url", "drop_reason", "drop_detail")  # all a stage's Parquet is read for
# Artifact files that also hold wall-clock measurements (a trainer's tokens/s, training seconds):
# their sizes differ between two identical runs, and what else they hold follows from the files
# beside them (a checkpoint, a model), which are compared
TIMED = ("metrics.jsonl", "info.json", "model.json")


class NotARun(ValueError):
    """A directory holding no manifest.json: not a run's output_dir; or one a stage's file listing
    is missing from (or changed in): not a whole one."""


class Change(BaseModel):
    """One thing that differs: its key (`options.min_doc_words`, `input:extract`, ...) and its two values."""

    key: str
    a: Any = None
    b: Any = None


class Counts(BaseModel):
    docs_in: int | None = None
    docs_out: int | None = None
    removed_by_reason: dict[str, int] = {}


class FileChange(BaseModel):
    """An output file of the stage whose bytes differ (None: the file is in one run only)."""

    path: str
    a: FileInfo | None = None
    b: FileInfo | None = None
    # Parquet in both runs: the columns whose footers differ (per row group: values, sizes, min and
    # max), read from the footers alone; [] when they agree and the difference lies inside pages
    columns: list[str] | None = None


class Document(BaseModel):
    id: str
    url: str | None = None
    drop_reason: str | None = None  # of the run that removed it
    drop_detail: str | None = None


class KeptChange(BaseModel):
    """Documents (by id) kept by the stage in one run and removed in the other, with the removing
    run's reason; and those kept in one run that the other's stage never received."""

    removed_in_b: int = 0  # kept in A, removed in B
    removed_in_a: int = 0  # kept in B, removed in A
    absent_in_b: int = 0  # kept in A, not among B's input
    absent_in_a: int = 0
    examples_removed_in_b: list[Document] = []
    examples_removed_in_a: list[Document] = []


class StageDiff(BaseModel):
    stage: str
    status_a: str | None = None  # None: the run has no such stage
    status_b: str | None = None
    fingerprint_a: str | None = None
    fingerprint_b: str | None = None
    why: list[Change] = []  # what the two fingerprints hashed differently
    counts_a: Counts | None = None
    counts_b: Counts | None = None
    files: list[FileChange] = []
    documents: KeptChange | None = None

    @computed_field
    @property
    def identical(self) -> bool:
        return (self.status_a == self.status_b and self.fingerprint_a == self.fingerprint_b
                and self.counts_a == self.counts_b and not self.files)


class RunDiff(BaseModel):
    run_a: str
    run_b: str
    packages: list[Change] = []  # versions of the libraries each run ran with (manifest.json)
    stages: list[StageDiff] = []

    @computed_field
    @property
    def identical(self) -> bool:
        return all(stage.identical for stage in self.stages)


class _Run:
    """What one run recorded, read once."""

    def __init__(self, run_dir: str):
        self.dir = run_dir.rstrip("/")
        manifest = records.read(manifest_path(self.dir), Manifest)
        if manifest is None:
            raise NotARun(f"no manifest.json in {run_dir}; is it a run's output_dir?")
        self.manifest = manifest
        self.config = yaml.safe_load(storage.read_bytes(storage.join(self.dir, "config.yaml")) or b"{}") or {}
        self._listed: dict[str, StageFiles] = {}

    def entry(self, stage: str) -> ManifestEntry | None:
        return self.manifest.stages.get(stage)

    def marker(self, stage: str) -> dict:
        """The stage's _fingerprint.json when it belongs to the fingerprint its manifest records."""
        entry = self.entry(stage)
        found = storage.read_json(storage.join(self.dir, "stages", stage, "_fingerprint.json"))
        return found if entry and isinstance(found, dict) and found.get("fingerprint") == entry.fingerprint else {}

    def counts(self, stage: str) -> Counts | None:
        entry = self.entry(stage)
        if entry is None:
            return None
        stats = records.read(storage.join(self.dir, "stages", stage, "stats.json"), StageStats)
        if stats is None or stats.fingerprint != entry.fingerprint:
            return Counts(docs_in=entry.docs_in, docs_out=entry.docs_out)
        return Counts(docs_in=stats.docs_in, docs_out=stats.docs_out, removed_by_reason=stats.removed_by_reason)

    def listed(self, stage: str) -> StageFiles:
        """The stage's files, as its listing holds them (read once); none for a stage not done."""
        if stage not in self._listed:
            entry = self.entry(stage)
            try:
                self._listed[stage] = stage_files(self.dir, entry) if entry else StageFiles([], [], [])
            except ListingError as error:
                raise NotARun(f"{self.dir}: stage {stage}: {error}") from error
        return self._listed[stage]

    def files(self, stage: str) -> dict[str, FileInfo]:
        """The files the stage wrote itself (a stage that makes an artifact lists its parent's
        shards as its own output: those are compared at the parent)."""
        own = f"stages/{stage}/"
        every = self.listed(stage).every()
        return {f.path: f for f in every if f.path.startswith(own) and f.path.rsplit("/", 1)[-1] not in TIMED}

    def configured(self, stage: str) -> dict:
        """The stage's options as written in the run's config.yaml (defaults not filled in)."""
        if stage == SOURCE:
            return self.config.get("input") or {}
        entry = next((s for s in self.config.get("stages") or [] if s.get("name") == stage), {})
        return {k: v for k, v in entry.items() if k not in ("name", "type", "after")}


def compare(run_a: str, run_b: str, examples: int = 5) -> RunDiff:
    """Compare two finished runs stage by stage. Raises NotARun for a directory that is not a run."""
    a, b = _Run(run_a), _Run(run_b)
    return RunDiff(run_a=run_a, run_b=run_b, packages=_changes("", a.manifest.packages, b.manifest.packages),
                   stages=[_stage(name, a, b, examples) for name in _in_run_order(list(a.manifest.stages),
                                                                                   list(b.manifest.stages))])


def _in_run_order(a: list[str], b: list[str]) -> list[str]:
    """A's stages in order, each stage only B has placed after the stage B lists before it."""
    order = list(a)
    for i, name in enumerate(b):
        if name not in order:
            order.insert(order.index(b[i - 1]) + 1 if i else 0, name)
    return order


def _stage(name: str, a: _Run, b: _Run, examples: int) -> StageDiff:
    entry_a, entry_b = a.entry(name), b.entry(name)
    result = StageDiff(stage=name, status_a=entry_a and entry_a.status, status_b=entry_b and entry_b.status,
                       fingerprint_a=entry_a and entry_a.fingerprint, fingerprint_b=entry_b and entry_b.fingerprint,
                       counts_a=a.counts(name), counts_b=b.counts(name))
    if entry_a is None or entry_b is None:
        return result
    if entry_a.fingerprint != entry_b.fingerprint:
        result.why = _why(name, a, b)
    files_a, files_b = a.files(name), b.files(name)
    result.files = [FileChange(path=path, a=files_a.get(path), b=files_b.get(path))
                    for path in sorted(files_a.keys() | files_b.keys())
                    if _differ(files_a.get(path), files_b.get(path))]
    for change in result.files:
        if change.a and change.b and change.path.endswith(".parquet"):
            change.columns = _columns(storage.absolute(change.path, a.dir), storage.absolute(change.path, b.dir))
    if any(f.path.endswith(".parquet") for f in result.files):
        result.documents = _kept_change(name, a, b, examples)
    return result


def _differ(a: FileInfo | None, b: FileInfo | None) -> bool:
    """By sha256 where both runs recorded it; else (an artifact: hashing checkpoints again would read
    them all) by size."""
    if a is None or b is None:
        return True
    return a.sha256 != b.sha256 if a.sha256 and b.sha256 else a.bytes != b.bytes


def _columns(path_a: str, path_b: str) -> list[str]:
    """The columns of two Parquet files whose footers differ: what each row group holds of them
    (values, compressed and plain sizes, statistics); offsets are left out, as they move whenever
    an earlier column grows."""
    import pyarrow.parquet as pq

    def footer(path: str) -> dict[str, list]:
        fs, local = storage.filesystem(path)
        meta, found = pq.read_metadata(local, filesystem=fs), {}
        for group in range(meta.num_row_groups):
            for i in range(meta.num_columns):
                column = meta.row_group(group).column(i).to_dict()
                found.setdefault(column["path_in_schema"], []).append(
                    [column.get(k) for k in ("num_values", "total_compressed_size", "total_uncompressed_size",
                                             "statistics")])
        return found

    a, b = footer(path_a), footer(path_b)
    return [column for column in [*a, *(c for c in b if c not in a)] if a.get(column) != b.get(column)]


def _why(name: str, a: _Run, b: _Run) -> list[Change]:
    """What the two fingerprints hashed differently, from what each stage kept beside its
    fingerprint; of a run made before that was kept, its config.yaml's options and its parents'
    fingerprints (in the manifest) are all there is to compare."""
    marker_a, marker_b = a.marker(name), b.marker(name)
    inputs_a, inputs_b = marker_a.get("inputs"), marker_b.get("inputs")
    parents_a, parents_b = a.entry(name).after, b.entry(name).after
    if parents_a != parents_b:
        found = [Change(key="after", a=parents_a, b=parents_b)]
    else:  # an upstream stage's fingerprint changed: its output, so this stage's input, did
        found = [Change(key=f"input:{parent}", a=a.entry(parent).fingerprint, b=b.entry(parent).fingerprint)
                 for parent in parents_a if a.entry(parent) and b.entry(parent)
                 and a.entry(parent).fingerprint != b.entry(parent).fingerprint]
    if not (isinstance(inputs_a, dict) and isinstance(inputs_b, dict)):
        found = _changes("input." if name == SOURCE else "options.", a.configured(name), b.configured(name)) + found
        return found or [Change(key="code or data files (not recorded by this run's version)")]
    if name == SOURCE:
        return [*_changes("input.", inputs_a.get("inputs", {}), inputs_b.get("inputs", {})),
                *_input_files(inputs_a.get("files", []), inputs_b.get("files", [])),
                *([Change(key="code (the reader's modules)")] if inputs_a.get("code") != inputs_b.get("code") else [])]
    found = (_changes("", {"type": inputs_a.get("type")}, {"type": inputs_b.get("type")})
             + _changes("options.", inputs_a.get("options", {}), inputs_b.get("options", {}))
             + _changes("data:", dict(inputs_a.get("data", [])), dict(inputs_b.get("data", []))) + found)
    if inputs_a.get("code") != inputs_b.get("code"):
        parts_a, parts_b = marker_a.get("code_parts", {}), marker_b.get("code_parts", {})
        parts = (_changes("code:", parts_a.get("sources", {}), parts_b.get("sources", {}))
                 + _changes("package:", parts_a.get("packages", {}), parts_b.get("packages", {})))
        found += parts or [Change(key="code", a=inputs_a.get("code"), b=inputs_b.get("code"))]
    return found


def _input_files(a: list, b: list) -> list[Change]:
    """The reader's input files ([kind, path, size, modified]; the sample crawl: ["sample", seed])
    that differ, by path: added, gone, or of another size or modification time."""
    def by_path(items: list) -> dict[str, Any]:
        return {("sample seed" if item[0] == "sample" else f"file:{item[1]}"):
                (item[1] if item[0] == "sample" else {"bytes": item[2], "modified": item[3]}) for item in items}

    return _changes("", by_path(a), by_path(b))


def _changes(prefix: str, a: dict, b: dict) -> list[Change]:
    """The keys whose values differ, nested dicts flattened to dotted keys."""
    flat_a, flat_b = _flat(a, prefix), _flat(b, prefix)
    return [Change(key=key, a=flat_a.get(key), b=flat_b.get(key))
            for key in sorted(flat_a.keys() | flat_b.keys()) if flat_a.get(key) != flat_b.get(key)]


def _flat(value: dict, prefix: str) -> dict[str, Any]:
    found = {}
    for key, item in value.items():
        if isinstance(item, dict) and item:
            found.update(_flat(item, f"{prefix}{key}."))
        else:
            found[f"{prefix}{key}"] = item
    return found


def _kept_change(name: str, a: _Run, b: _Run, examples: int) -> KeptChange:
    """Joined by id in Arrow, not in Python objects: a stage may hold millions of documents."""
    import pyarrow.compute as pc

    kept_a, removed_a = _documents(a, name)
    kept_b, removed_b = _documents(b, name)
    lost = removed_b.filter(pc.is_in(removed_b["id"], kept_a["id"])).sort_by("id")
    won = removed_a.filter(pc.is_in(removed_a["id"], kept_b["id"])).sort_by("id")

    def absent(kept, *other) -> int:  # kept in one run, neither kept nor removed in the other
        seen = pc.unique(pa.chunked_array([t["id"].combine_chunks() for t in other], pa.string()))
        return len(kept) - pc.sum(pc.is_in(kept["id"], seen)).as_py() if len(kept) else 0

    def shown(table) -> list[Document]:
        rows = table.slice(0, examples).to_pylist()
        return [Document(**{k: v for k, v in row.items() if v is not None}) for row in rows]

    return KeptChange(removed_in_b=len(lost), removed_in_a=len(won), absent_in_b=absent(kept_a, kept_b, removed_b),
                      absent_in_a=absent(kept_b, kept_a, removed_a), examples_removed_in_b=shown(lost),
                      examples_removed_in_a=shown(won))


def _documents(run: _Run, name: str) -> tuple[pa.Table, pa.Table]:
    """The stage's own kept and removed documents: their id, url and removal columns only, the id
    as text (a user's id column may be a number)."""
    import pyarrow.parquet as pq

    listed, found = run.listed(name), ([], [])
    for side, files in ((0, listed.kept), (1, listed.removed)):
        for info in files:
            if not info.path.startswith(f"stages/{name}/"):
                continue
            path = storage.absolute(info.path, run.dir)
            fs, local = storage.filesystem(path)
            names = pq.read_schema(local, filesystem=fs).names
            if "id" in names:
                table = storage.read_parquet(path, [c for c in _COLUMNS if c in names])
                found[side].append(pa.table({c: table[c].cast(pa.string()) if c in names else
                                             pa.nulls(len(table), pa.string()) for c in _COLUMNS}))
    empty = pa.table({c: pa.array([], pa.string()) for c in _COLUMNS})
    return pa.concat_tables([empty, *found[0]]), pa.concat_tables([empty, *found[1]])
