"""Shard IO: every file of a run is written under a temporary name and renamed when complete,
so a killed run never leaves a half-written shard that a resumed run would trust.

Paths are local paths or fsspec URLs; the same code writes to a laptop disk or an object store.
"""
from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import asdict, dataclass
from typing import Any

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq

GLOB_CHARS = "*?["
PARQUET_OPTIONS = {"compression": "zstd", "row_group_size": 10_000}  # fixed options: same bytes on every run


@dataclass(frozen=True)
class FileInfo:
    path: str
    rows: int
    bytes: int
    sha256: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def join(*parts: str) -> str:
    return "/".join(p.rstrip("/") for p in parts)


def _fs(path: str) -> tuple[fsspec.AbstractFileSystem, str]:
    return fsspec.core.url_to_fs(path)


def write_bytes_atomic(path: str, data: bytes) -> None:
    fs, local = _fs(path)
    fs.makedirs(local.rsplit("/", 1)[0], exist_ok=True)
    temporary = f"{local}.tmp-{uuid.uuid4().hex[:8]}"
    with fs.open(temporary, "wb") as fh:
        fh.write(data)
    fs.mv(temporary, local)


def write_file(path: str, data: bytes, rows: int) -> FileInfo:
    write_bytes_atomic(path, data)
    return FileInfo(path=path, rows=rows, bytes=len(data), sha256=hashlib.sha256(data).hexdigest())


def write_parquet(path: str, table: pa.Table) -> FileInfo:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, **PARQUET_OPTIONS)
    return write_file(path, sink.getvalue().to_pybytes(), table.num_rows)


def read_parquet(path: str, columns: list[str] | None = None) -> pa.Table:
    fs, local = _fs(path)
    # pyarrow opens it through the filesystem itself: reading from a Python file object instead
    # can abort the interpreter at exit (a reader thread outliving it)
    return pq.read_table(local, columns=columns, filesystem=fs)


def write_json(path: str, obj: Any, sort_keys: bool = True) -> None:
    write_bytes_atomic(path, (json.dumps(obj, indent=2, sort_keys=sort_keys, default=str) + "\n").encode())


def read_json(path: str) -> Any | None:
    """The parsed file, or None when it does not exist."""
    fs, local = _fs(path)
    if not fs.exists(local):
        return None
    with fs.open(local, "rb") as fh:
        return json.loads(fh.read())


def exists(path: str) -> bool:
    fs, local = _fs(path)
    return fs.exists(local)


def read_parquet_files(paths: list[str], columns: list[str] | None = None, filter=None) -> pa.Table:
    """Many Parquet files (of one filesystem) as one table; `filter` is a pyarrow expression
    pushed down to the row groups."""
    import pyarrow.dataset as ds

    fs, _ = _fs(paths[0])
    dataset = ds.dataset([_fs(p)[1] for p in paths], format="parquet", filesystem=fs)
    return dataset.to_table(columns=columns, filter=filter)


def list_files(directory: str, suffix: str, recursive: bool = False) -> list[str]:
    """Finished files (no temporaries) in a directory (and its subdirectories), sorted by path."""
    fs, local = _fs(directory)
    if not fs.exists(local):
        return []
    found = fs.find(local) if recursive else fs.ls(local, detail=False)
    names = sorted(p for p in found if p.endswith(suffix))
    protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    return names if protocol == "file" else [fs.unstrip_protocol(p) for p in names]


def remove_tree(path: str) -> None:
    fs, local = _fs(path)
    if fs.exists(local):
        fs.rm(local, recursive=True)


def expand_inputs(patterns: list[str], storage_options: dict[str, Any]) -> list[str]:
    """Local paths or fsspec URLs, with globs expanded, sorted and without repeats."""
    found: set[str] = set()
    for pattern in patterns:
        fs, path = fsspec.core.url_to_fs(pattern, **storage_options)
        protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
        matches = fs.glob(path) if any(c in path for c in GLOB_CHARS) else ([path] if fs.exists(path) else [])
        for match in matches:
            if fs.isfile(match):
                found.add(match if protocol == "file" else fs.unstrip_protocol(match))
    return sorted(found)
