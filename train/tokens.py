"""Token shards: the format the `tokenize` stage writes and the trainer reads.

A shard is an Arrow IPC file with one row per document, `input_ids: list<uint16>` (or uint32 when
the vocabulary does not fit 16 bits), written as one uncompressed record batch. Memory-mapped, its
flat values buffer is the token stream and its offsets buffer the document boundaries: the reader
hands out numpy views of the mapped file, so opening a 10 GB shard reads nothing until a token is
touched. `tokens/index.json` lists every shard of the `train` and `val` splits with its token and
document counts, the dtype and the tokenizer's hash; `tokenizer.json` beside it is the tokenizer
itself. Token shards on an object store are read through local copies named by their sha256.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from crawl2model.pipeline import storage

INDEX = "index.json"
TOKENIZER = "tokenizer.json"


def token_type(vocab_size: int) -> pa.DataType:
    return pa.uint16() if vocab_size <= 2**16 else pa.uint32()


def write_shard(path: str, documents: pa.Array) -> storage.FileInfo:
    """Write a list<uint16|uint32> array as a token shard (atomically, like every file of a run)."""
    table = pa.table({"input_ids": documents})
    sink = pa.BufferOutputStream()
    with pa.ipc.new_file(sink, table.schema, options=pa.ipc.IpcWriteOptions(compression=None)) as writer:
        writer.write_table(table, max_chunksize=max(1, table.num_rows))  # one batch: one flat buffer
    return storage.write_file(path, sink.getvalue().to_pybytes(), table.num_rows)


@dataclass(frozen=True)
class TokenShard:
    """One memory-mapped shard: `tokens` is the flat stream, document i is
    `tokens[offsets[i]:offsets[i + 1]]`. Both are views of the mapped file."""

    path: str
    tokens: np.ndarray
    offsets: np.ndarray

    @property
    def documents(self) -> int:
        return len(self.offsets) - 1


def open_shard(path: str | Path) -> TokenShard:
    """Map a shard and view its buffers; raises ValueError naming the file when it is not one."""
    try:
        table = pa.ipc.open_file(pa.memory_map(str(path), "r")).read_all()
    except (OSError, pa.ArrowInvalid) as error:
        raise ValueError(f"{path}: not a token shard ({error})") from None
    if table.column_names != ["input_ids"] or not pa.types.is_list(table.schema.field("input_ids").type):
        raise ValueError(f"{path}: not a token shard (columns {table.schema})")
    column = table.column("input_ids")
    if column.num_chunks != 1:
        column = pa.chunked_array([column.combine_chunks()])  # written by another tool: copy once
    documents = column.chunk(0)
    return TokenShard(str(path), documents.values.to_numpy(zero_copy_only=True),
                      documents.offsets.to_numpy(zero_copy_only=True))


@dataclass(frozen=True)
class TokenIndex:
    """index.json of a tokens folder: the shards of each split and what the trainer must check."""

    root: str  # the folder (a local path or an fsspec URL)
    data: dict

    @property
    def dtype(self) -> str:
        return self.data["dtype"]

    @property
    def vocab_size(self) -> int:
        return self.data["vocab_size"]

    @property
    def tokenizer_sha256(self) -> str:
        return self.data["tokenizer_sha256"]

    @property
    def tokenizer(self) -> str:
        """The tokenizer the shards were made with (a copy beside the index)."""
        return storage.join(self.root, TOKENIZER)

    def shards(self, split: str) -> list[dict]:
        return self.data["splits"].get(split, {}).get("shards", [])

    def open(self, split: str) -> list[TokenShard]:
        return [open_shard(storage.local_copy(storage.join(self.root, entry["path"]), entry.get("sha256")))
                for entry in self.shards(split)]


def find_tokens(directory: str | Path) -> str:
    """The tokens folder `directory` is, or the one a run directory holds (the artifact of its
    tokenize stage); an error naming the choices when a run holds several."""
    directory = str(directory).rstrip("/")
    if storage.exists(storage.join(directory, INDEX)):
        return directory
    found = sorted(path.rsplit("/", 1)[0] for path in storage.list_files(storage.join(directory, "stages"), INDEX,
                                                                           recursive=True)
                   if path.endswith(f"/artifact/{INDEX}"))
    if not found:
        raise FileNotFoundError(f"no {INDEX} in {directory} (nor in a stage of the run there): run a `tokenize` "
                                "stage first")
    if len(found) > 1:
        raise FileNotFoundError(f"{directory} holds token shards of several stages; name one of: {', '.join(found)}")
    return found[0]


def load_index(directory: str | Path) -> TokenIndex:
    """The index of a tokens folder, or of the run directory that holds one."""
    root = find_tokens(directory)
    return TokenIndex(root, json.loads(storage.read_bytes(storage.join(root, INDEX))))
