"""Storage: every byte a run reads or writes goes through here, to a local path or an fsspec URL
(`s3://bucket/run`, `gs://...`, `memory://...`) alike.

Every file is written under a temporary name and renamed when complete, so a killed run never
leaves a half-written file that a resumed run would trust. Where a library can read only a local
file (memory-mapped token shards, `Tokenizer.from_file`, fastText), `local_copy` gives one: the file
itself when it is local, else a copy in a local cache named by its content hash (or, when that is
not known beforehand, by its size and version), made once per machine.
"""
from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import tempfile
import uuid
from typing import Any

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import BaseModel

log = logging.getLogger(__name__)

GLOB_CHARS = "*?["
PARQUET_OPTIONS = {"compression": "zstd", "row_group_size": 10_000}  # fixed options: same bytes on every run
CACHE_ENV = "CRAWL2MODEL_CACHE"  # where local copies of remote files go (default: the temp dir)


class FileInfo(BaseModel):
    """A file written: where, how many rows, bytes, and its sha256."""

    path: str
    rows: int
    bytes: int
    sha256: str

    def relative_to(self, root: str) -> FileInfo:
        return self.model_copy(update={"path": relative(self.path, root)})


def join(*parts: str) -> str:
    return "/".join(p.rstrip("/") for p in parts)


def is_local(path: str) -> bool:
    return "://" not in path or path.startswith("file://")


def relative(path: str, root: str) -> str:
    """`path` relative to the run directory `root` (unchanged when it lies elsewhere)."""
    prefix = root.rstrip("/") + "/"
    return path[len(prefix):] if path.startswith(prefix) else path


def absolute(path: str, root: str) -> str:
    """A path from a record (relative to `root`, or already absolute or a URL) made whole."""
    if "://" in path or os.path.isabs(path):
        return path
    return join(root, path)


def filesystem(path: str) -> tuple[fsspec.AbstractFileSystem, str]:
    """The file system of a path or URL, and the path within it. A plain local path (no protocol,
    no chain, not `data:`) gets what `url_to_fs` would give, without parsing it as a URL: a run's
    driver asks this of every record and file it reads, millions of times at a crawl's scale."""
    if isinstance(path, str) and "://" not in path and "::" not in path and not path.startswith("data:"):
        fs = fsspec.filesystem("file")
        return fs, fs._strip_protocol(path)
    return fsspec.core.url_to_fs(path)


def write_bytes_atomic(path: str, data: bytes, sync: bool = False) -> None:
    """Write to a temporary name, then rename. `sync`: on a local disk, flush the file to the
    device before the rename, so a power cut leaves the old file or the new one, never an empty one.
    When the write or the rename fails, the temporary file is removed and the OSError raised names
    `path` (and says so when the disk is full), its errno kept."""
    fs, local = filesystem(path)
    temporary = f"{local}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        fs.makedirs(local.rsplit("/", 1)[0], exist_ok=True)
        if sync and is_local(path):
            with open(temporary, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(temporary, local)
        else:
            with fs.open(temporary, "wb") as fh:
                fh.write(data)
            fs.mv(temporary, local)
    except BaseException as error:  # a full disk, a lost connection, a KeyboardInterrupt: no temporary stays
        _remove_quietly(fs, temporary)
        if isinstance(error, OSError) and error.errno is not None:
            raise OSError(error.errno, f"{write_error_reason(error)} while writing {path}") from error
        raise


WRITE_ERRORS = {errno.ENOSPC: "no space left on device", errno.EDQUOT: "disk quota exceeded"}


def write_error_reason(error: OSError) -> str:
    """Why a write failed, in words: 'no space left on device' for ENOSPC."""
    reason = WRITE_ERRORS.get(error.errno) or (os.strerror(error.errno) if error.errno else str(error))
    return reason[:1].lower() + reason[1:]


def _remove_quietly(fs: fsspec.AbstractFileSystem, path: str) -> None:
    """Remove a temporary file if it is there; a failure to remove it must not hide the error
    that made it one to remove."""
    try:
        if fs.exists(path):
            fs.rm(path)
    except Exception as error:  # noqa: BLE001 - the first error is the one to report
        log.warning("could not remove the temporary file %s: %s", path, error)


def read_bytes(path: str) -> bytes | None:
    """The file's bytes, or None when it does not exist."""
    fs, local = filesystem(path)
    try:
        with fs.open(local, "rb") as fh:
            return fh.read()
    except FileNotFoundError:
        return None


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_of(path: str) -> str:
    digest = hashlib.sha256()
    fs, local = filesystem(path)
    with fs.open(local, "rb") as fh:
        for block in iter(lambda: fh.read(2**22), b""):
            digest.update(block)
    return digest.hexdigest()


def local_copy(path: str, sha256: str | None = None) -> str:
    """A local path holding the bytes of `path`: itself when local; else a cached copy, named by
    `sha256` when given (and checked against it), or by the file's size and version."""
    fs, remote = filesystem(path)
    if is_local(path):
        return remote
    if sha256 is None:
        info = fs.info(remote)
        version = [path, info.get("size"), info.get("mtime") or info.get("ETag") or info.get("LastModified")]
        key = "v-" + hashlib.sha256(repr(version).encode()).hexdigest()[:32]
    else:
        key = sha256
    copy = os.path.join(os.environ.get(CACHE_ENV) or os.path.join(tempfile.gettempdir(), "crawl2model-cache"),
                        key, os.path.basename(remote.rstrip("/")))
    if os.path.exists(copy):
        return copy
    os.makedirs(os.path.dirname(copy), exist_ok=True)
    part = f"{copy}.{os.getpid()}.{uuid.uuid4().hex[:6]}.part"  # workers on one machine may fetch it at once
    digest = hashlib.sha256()
    try:
        with fs.open(remote, "rb") as source, open(part, "wb") as target:
            for block in iter(lambda: source.read(2**22), b""):
                digest.update(block)
                target.write(block)
        if sha256 is not None and digest.hexdigest() != sha256:
            raise ValueError(f"{path}: its sha256 is {digest.hexdigest()[:16]}..., the record says {sha256[:16]}...")
        os.replace(part, copy)
    except BaseException as error:
        _remove_quietly(fsspec.filesystem("file"), part)
        if isinstance(error, OSError) and error.errno in WRITE_ERRORS:  # the local disk's, not the source's
            raise OSError(error.errno, f"{write_error_reason(error)} while writing {copy}") from error
        raise
    log.info("local copy of %s at %s", path, copy)
    return copy


def write_file(path: str, data: bytes, rows: int = 0) -> FileInfo:
    write_bytes_atomic(path, data)
    return FileInfo(path=path, rows=rows, bytes=len(data), sha256=sha256_bytes(data))


def write_parquet(path: str, table: pa.Table) -> FileInfo:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, **PARQUET_OPTIONS)
    return write_file(path, sink.getvalue().to_pybytes(), table.num_rows)


def read_parquet(path: str, columns: list[str] | None = None) -> pa.Table:
    fs, local = filesystem(path)
    # pyarrow opens it through the filesystem itself: reading from a Python file object instead
    # can abort the interpreter at exit (a reader thread outliving it)
    return pq.read_table(local, columns=columns, filesystem=fs)


def write_json(path: str, obj: Any, sort_keys: bool = True) -> FileInfo:
    return write_file(path, (json.dumps(obj, indent=2, sort_keys=sort_keys, default=str) + "\n").encode())


def read_json(path: str) -> Any | None:
    """The parsed file, or None when it does not exist."""
    data = read_bytes(path)
    return None if data is None else json.loads(data)


def size(path: str) -> int | None:
    """The file's size in bytes, or None when it does not exist."""
    fs, local = filesystem(path)
    try:
        return fs.size(local)
    except FileNotFoundError:
        return None


def exists(path: str) -> bool:
    fs, local = filesystem(path)
    return fs.exists(local)


def read_parquet_files(paths: list[str], columns: list[str] | None = None, filter=None) -> pa.Table:
    """Many Parquet files (of one filesystem) as one table; `filter` is a pyarrow expression
    pushed down to the row groups."""
    import pyarrow.dataset as ds

    fs, _ = filesystem(paths[0])
    dataset = ds.dataset([filesystem(p)[1] for p in paths], format="parquet", filesystem=fs)
    return dataset.to_table(columns=columns, filter=filter)


def list_files(directory: str, suffix: str, recursive: bool = False) -> list[str]:
    """Finished files (no temporaries) in a directory (and its subdirectories), sorted by path and
    spelt as `directory` is (a local path, or a URL of its file system)."""
    fs, local = filesystem(directory)
    fs.invalidate_cache(local)  # an object store's cached listing misses what other workers wrote since
    if not fs.exists(local):
        return []
    found = fs.find(local) if recursive else fs.ls(local, detail=False)
    root = local.rstrip("/") + "/"
    tails = sorted(p[len(root):] for p in found if p.startswith(root) and p.endswith(suffix) and ".tmp-" not in p)
    return [join(directory, tail) for tail in tails]


def remove_tree(path: str) -> None:
    fs, local = filesystem(path)
    if fs.exists(local):
        fs.rm(local, recursive=True)


def expand_inputs(patterns: list[str], storage_options: dict[str, Any]) -> list[str]:
    """Local paths or fsspec URLs, with globs expanded, sorted and without repeats: the files, not
    the folders. A glob's matches are told apart by its own listing, not by a call per match (a
    request per object on an object store); only a match listed as neither file nor folder (a
    local symbolic link) is asked where it leads. A path without a wildcard costs one call."""
    found: set[str] = set()
    for pattern in patterns:
        fs, path = fsspec.core.url_to_fs(pattern, **storage_options)
        protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
        if any(c in path for c in GLOB_CHARS):
            matches = [match for match, info in fs.glob(path, detail=True).items()
                       if info.get("type") == "file" or (info.get("type") != "directory" and fs.isfile(match))]
        else:
            matches = [path] if fs.isfile(path) else []  # False too for what does not exist
        for match in matches:
            found.add(match if protocol == "file" else fs.unstrip_protocol(match))
    return sorted(found)
