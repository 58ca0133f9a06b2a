"""A run as the report reads it: its manifest, its config copy, each stage's stats, and bounded
samples of its shards.

A sample is a few rows from the start of a few files spread over a stage's output, never whole
shards, so the report takes the same time and memory for a run of 240 pages as for one of
billions; sections that show one say how many documents it holds.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from functools import cached_property

import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from crawl2model.pipeline import records, storage
from crawl2model.pipeline.records import Manifest, ManifestEntry, StageStats
from crawl2model.pipeline.summary import ListingError, StageFiles, manifest_path, stage_files
from crawl2model.pipeline.storage import FileInfo

log = logging.getLogger(__name__)

SAMPLE_FILES = 8  # files of a stage's output a sample reads from, spread over the list
SAMPLE_ROWS = 2000  # rows a sample holds at most


@dataclass
class StageView:
    name: str
    type: str
    entry: ManifestEntry
    stats: StageStats | None
    options: dict = field(default_factory=dict)  # the stage's item of `stages:` in config.yaml
    root: str = ""  # the run directory

    @property
    def makes_artifact(self) -> bool:
        """A tokenizer, token shards, a model: its documents out are its documents in."""
        return bool(self.entry.artifact)

    @cached_property
    def files(self) -> StageFiles:
        """Its files, its shards' listing read on first use; no shards when it has no listing, or
        one that is missing or changed (the report still renders, without samples of them)."""
        try:
            return stage_files(self.root, self.entry)
        except ListingError as error:
            log.warning("stage %s: %s", self.name, error)
            return StageFiles([], [], list(self.entry.artifact))

    def option(self, name: str, default=None):
        """An option as configured, else the stage type's default (None when the type is unknown)."""
        if name in self.options:
            return self.options[name]
        from crawl2model.catalog import resolve_stage

        try:
            found = resolve_stage(self.type).Config.model_fields.get(name)
        except Exception:  # noqa: BLE001 - a custom type that no longer imports: the report still renders
            return default
        return default if found is None or found.default is None else found.default


class Run:
    def __init__(self, root: str):
        self.root = root.rstrip("/") or root
        manifest = records.read(manifest_path(self.root), Manifest)
        if manifest is None:
            raise FileNotFoundError(f"no manifest.json in {root}; is it a run's output_dir?")
        self.manifest = manifest
        raw = storage.read_bytes(storage.join(self.root, "config.yaml"))
        self.config: dict = (yaml.safe_load(raw) if raw else None) or {}
        options = {item.get("name"): item for item in self.config.get("stages") or [] if isinstance(item, dict)}
        self.stages = [StageView(name, options.get(name, {}).get("type") or entry.type or name, entry,
                                 records.read(self.path("stages", name, "stats.json"), StageStats),
                                 options.get(name, {}), self.root)
                       for name, entry in manifest.stages.items()]

    def path(self, *parts: str) -> str:
        return storage.join(self.root, *parts)

    def of_type(self, *types: str) -> list[StageView]:
        return [stage for stage in self.stages if stage.type in types]

    def document_stages(self) -> list[StageView]:
        """The stages that judge documents (the reader, extraction, filters, dedup, scoring), in DAG order."""
        return [stage for stage in self.stages if not stage.makes_artifact and stage.entry.status == "done"]

    def artifact(self, stage: StageView, name: str) -> str | None:
        """The path of an artifact file of `stage` (e.g. `index.json`), if the manifest lists one."""
        suffix = f"/artifact/{name}"
        found = [info.path for info in stage.entry.artifact if info.path.endswith(suffix)]
        return storage.absolute(found[0], self.root) if found else None

    def artifact_json(self, stage: StageView, name: str):
        path = self.artifact(stage, name)
        return storage.read_json(path) if path else None

    def artifact_lines(self, stage: StageView, name: str) -> list[dict]:
        """A JSON-lines artifact (metrics.jsonl) as a list; a line cut by a killed run is left out."""
        path = self.artifact(stage, name)
        data = storage.read_bytes(path) if path else None
        rows = []
        for line in (data or b"").decode("utf-8", "replace").splitlines():
            try:
                rows.append(json.loads(line))
            except ValueError:
                continue
        return [row for row in rows if isinstance(row, dict)]

    def sample(self, files: list[FileInfo], columns: list[str] | None = None, rows: int = SAMPLE_ROWS,
               max_files: int = SAMPLE_FILES) -> pa.Table | None:
        """Up to `rows` rows: the first rows of up to `max_files` files spread evenly over `files`
        (the columns of `columns` that they have; all when None). None when there are none."""
        files = [info for info in files if info.rows]
        if not files:
            return None
        count = min(max_files, len(files))
        picked = [files[round(i * (len(files) - 1) / max(1, count - 1))] for i in range(count)]
        per_file = max(1, rows // len(picked))
        tables = []
        for info in picked:
            fs, path = storage.filesystem(storage.absolute(info.path, self.root))
            # opened through the file system, as storage.read_parquet does: a Python file object
            # can leave a reader thread that aborts the interpreter at exit
            parquet = pq.ParquetFile(path, filesystem=fs)
            names = None if columns is None else [c for c in columns if c in parquet.schema_arrow.names]
            batch = next(parquet.iter_batches(batch_size=per_file, columns=names), None)  # one row group at most
            if batch is not None:
                tables.append(pa.Table.from_batches([batch]))
        return pa.concat_tables(tables, promote_options="permissive") if tables else None

    def rows_of(self, files: list[FileInfo], ids: set[str], columns: list[str]) -> dict[str, dict]:
        """The rows with these ids among the first `SAMPLE_FILES` files (bounded, so may miss some)."""
        import pyarrow.compute as pc

        paths = [storage.absolute(info.path, self.root) for info in files if info.rows][:SAMPLE_FILES]
        if not ids or not paths:
            return {}
        table = storage.read_parquet_files(paths, columns=columns, filter=pc.field("id").isin(sorted(ids)))
        return {row["id"]: row for row in table.to_pylist()}
