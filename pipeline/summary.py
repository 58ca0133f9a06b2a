"""What a finished stage leaves about itself: its stats.json (its done records, and its phases',
summed), the listing of every shard it wrote (files.parquet), and its manifest entry, which names
that listing and lists its artifact files; and the manifest itself. Nothing here knows Ray."""
from __future__ import annotations

import io
from typing import NamedTuple

import pyarrow as pa
import pyarrow.parquet as pq

from crawl2model.pipeline import records, storage
from crawl2model.pipeline.plan import StageNode
from crawl2model.pipeline.records import FileInfo, Listing, Manifest, ManifestEntry, StageStats

LISTING = "files.parquet"  # in the stage's folder: every shard it wrote (kept and removed), one row each
KINDS = ("kept", "removed", "changes")
LISTING_SCHEMA = pa.schema([("kind", pa.string()), ("path", pa.string()), ("rows", pa.int64()),
                            ("bytes", pa.int64()), ("sha256", pa.string())])


class ListingError(ValueError):
    """A stage's listing is missing, or not the file its manifest entry names."""


class StageFiles(NamedTuple):
    """A finished stage's files (paths relative to the run): its shards, as its listing holds
    them, and its artifact files, as its manifest entry does."""

    kept: list[FileInfo]
    removed: list[FileInfo]
    artifact: list[FileInfo]
    changes: list[FileInfo] = []  # what it changed of the documents a stage before it handed on in memory

    def every(self) -> list[FileInfo]:
        return [*self.kept, *self.removed, *self.changes, *self.artifact]


def finish(node: StageNode) -> tuple[StageStats, ManifestEntry]:
    """A finished stage's stats.json and the listing of its shards, written, and its manifest
    entry, which names that listing: its done records (and, for a global stage, its phases'
    records) summed, read once."""
    done = node.done_records()
    by_phase = _phase_records(node) if node.is_global else {}
    every = [*done, *(r for phase in by_phase.values() for r in phase)]  # what its phases counted too
    outputs = [o for r in done for o in r.outputs]
    stats = StageStats(
        stage=node.name, type=node.type_name, fingerprint=node.fingerprint, shards=len(outputs),
        docs_in=records.summed(done, "docs_in"), docs_out=records.summed(done, "docs_out"),
        removed_by_reason=records.merge_counts([r.removed_by_reason for r in done]),
        bytes_in=records.summed(done, "bytes_in"), bytes_out=records.summed(done, "bytes_out"),
        wall_seconds=round(max((r.finished for r in every), default=0) - min((r.started for r in every), default=0), 3),
        cpu_seconds=round(sum(r.finished - r.started for r in every), 3),
        counters=records.merge_counts([r.counters for r in every]),
        histograms=records.merge_histograms([r.histograms for r in every]))
    if node.is_global:
        stats.phases = {p.name: _phase_stats(by_phase[p.name]) for p in node.build().phases() if p.name in by_phase}
    if node.makes_artifact:
        stats.artifact = _artifact_files(node)
    if node.is_source:
        stats.files = len(done)
        stats.files_skipped = [records.SkippedFile(path=r.input or "", reason=r.skipped) for r in done if r.skipped]
    records.write(storage.join(node.directory, "stats.json"), stats)
    listing = write_listing(node.run_dir, node.name, [o.kept for o in outputs if o.kept],
                            [o.removed for o in outputs if o.removed], [o.changes for o in outputs if o.changes])
    entry = ManifestEntry(type=node.type_name, after=list(node.after), fingerprint=node.fingerprint, status="done",
                          cached=False, docs_in=stats.docs_in, docs_out=stats.docs_out, wall_seconds=stats.wall_seconds,
                          listing=listing, artifact=stats.artifact or [], kept_in=list(node.kept_in))
    return stats, entry


def write_listing(run_dir: str, stage: str, kept: list[FileInfo], removed: list[FileInfo],
                  changes: list[FileInfo] = ()) -> Listing:
    """Write `stages/<stage>/files.parquet` (the files' paths relative to `run_dir`): a row per
    shard (kind, path, rows, bytes, sha256), sorted by kind and path, with fixed Parquet options
    (the same shards list as the same bytes); returns what the manifest entry says of it."""
    rows = sorted((kind, info.path, info.rows, info.bytes, info.sha256)
                  for kind, infos in zip(KINDS, (kept, removed, changes)) for info in infos)
    table = pa.table([pa.array([row[i] for row in rows], field.type) for i, field in enumerate(LISTING_SCHEMA)],
                     schema=LISTING_SCHEMA)
    written = storage.write_parquet(storage.join(run_dir, "stages", stage, LISTING), table).relative_to(run_dir)
    return Listing(path=written.path, bytes=written.bytes, sha256=written.sha256, shards=len(kept),
                   removed=len(removed), files=len(rows), files_bytes=sum(row[3] for row in rows))


def stage_files(run_dir: str, entry: ManifestEntry) -> StageFiles:
    """The files a finished stage wrote: its shards, from the listing its manifest entry names, and
    its artifact files, from the entry; the one reader of them. An entry without a listing (not
    finished, or written by an older version, which listed its shards inline) has no shards.
    Raises ListingError when the listing is missing or is not the file the entry names (its size
    or sha256 differ)."""
    listing = entry.listing
    if listing is None:
        return StageFiles([], [], list(entry.artifact))
    data = storage.read_bytes(storage.absolute(listing.path, run_dir))
    if data is None:
        raise ListingError(f"{listing.path} is missing")
    if len(data) != listing.bytes:
        raise ListingError(f"{listing.path} has {len(data):,} bytes, the manifest {listing.bytes:,}")
    if storage.sha256_bytes(data) != listing.sha256:
        raise ListingError(f"{listing.path} is not the listing its stage wrote (its sha256 differs)")
    columns = pq.read_table(io.BytesIO(data)).to_pydict()
    found: dict[str, list[FileInfo]] = {kind: [] for kind in KINDS}
    for kind, path, rows, size, sha256 in zip(*(columns[name] for name in LISTING_SCHEMA.names)):
        found[kind].append(FileInfo.model_construct(path=path, rows=rows, bytes=size, sha256=sha256))
    return StageFiles(found["kept"], found["removed"], list(entry.artifact), found["changes"])


def _artifact_files(node: StageNode) -> list[FileInfo]:
    """The files a stage made under its artifact folder, with their sizes (sha256 left empty:
    hashing a model's checkpoints again would read them all)."""
    fs, root = storage.filesystem(node.artifact_dir)
    if not fs.exists(root):
        return []
    found = fs.find(root, detail=True)
    return [FileInfo(path=storage.relative(storage.join(node.artifact_dir, storage.relative(path, root)), node.run_dir),
                     rows=0, bytes=int(info.get("size") or 0), sha256="")
            for path, info in sorted(found.items()) if ".tmp" not in path.rsplit("/", 1)[-1]]


def _phase_records(node: StageNode) -> dict[str, list[records.PhaseRecord]]:
    """The done records of a global stage's phase tasks, by phase."""
    found: dict[str, list[records.PhaseRecord]] = {}
    for path in storage.list_files(storage.join(node.directory, "phases"), ".json", recursive=True):
        phase_dir, done, _ = path.rpartition("/_done/")
        record = records.read(path, records.PhaseRecord) if done else None
        if record and record.fingerprint == node.fingerprint:
            found.setdefault(phase_dir.rsplit("/", 1)[1], []).append(record)
    return found


def _phase_stats(done: list[records.PhaseRecord]) -> records.PhaseStats:
    """One phase's tasks, rows in and out, files and bytes written, and summed task seconds."""
    return records.PhaseStats(tasks=len(done), rows_in=records.summed(done, "rows_in"),
                              rows_out=records.summed(done, "rows_out"), files=sum(len(r.files) for r in done),
                              bytes=sum(f.bytes for r in done for f in r.files),
                              cpu_seconds=round(sum(r.finished - r.started for r in done), 3))


def manifest_path(run_dir: str) -> str:
    return storage.join(run_dir, "manifest.json")


def write_manifest(run_dir: str, manifest: Manifest, **fields) -> None:
    """Write the manifest, stamped with the time and the versions of the packages that ran."""
    for key, value in fields.items():
        setattr(manifest, key, value)
    manifest.updated = records.now()
    manifest.packages = package_versions()
    records.write(manifest_path(run_dir), manifest)


def package_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for name in ("crawl2model", "ray", "pyarrow", "trafilatura", "warcio", "pydantic", "numpy"):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            pass
    return found


def outputs(run_dir: str, manifest: Manifest) -> list[tuple[str, str]]:
    """Where a run's results are, as (what, path): the kept documents of its last curation stage,
    and each artifact stage's folder, or its newest checkpoint (`step-NNNNNN`) where it has some.
    The manifest says it all: no listing is read."""
    found = []
    curated = [name for name, entry in manifest.stages.items()
               if entry.listing and entry.listing.shards and not entry.artifact]
    if curated:
        found.append(("kept documents", storage.join(run_dir, "stages", curated[-1], "kept")))
    for name, entry in manifest.stages.items():
        if not entry.artifact:
            continue
        folder = storage.join(run_dir, "stages", name, "artifact")
        steps = sorted({part for f in entry.artifact for part in f.path.split("/")[3:4] if part.startswith("step-")})
        found.append((f"{name} ({entry.type})", storage.join(folder, steps[-1]) if steps else folder))
    return found
