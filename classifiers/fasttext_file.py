"""fastText model files: checked before anything loads them, then loaded with a clear error.

fastText itself, given a truncated file, grows a string until memory runs out before it fails, and
a wrong path surfaces as a bare C++ exception. So a model file is walked first (header, dictionary,
then the sizes of its matrices, without reading them): a missing, foreign or cut file is a
ValueError naming the path, raised when the config is loaded, before any work starts. The walk
also yields the model's labels, so a config can be checked against them.
"""
from __future__ import annotations

import mmap
import os
import struct
from pathlib import Path

LABEL_PREFIX = "__label__"
_MAGIC = 793712314  # first int32 of every fastText .bin/.ftz file, followed by the format version


def check_model_file(path: str | Path) -> list[str]:
    """Raise ValueError unless `path` is a whole fastText model file; returns its labels (without
    the `__label__` prefix), in the model's order."""
    path = Path(path)
    if not path.exists():
        raise ValueError(f"model file not found: {path} (relative paths start at the current directory, "
                         f"{os.getcwd()})")
    if not path.is_file():
        raise ValueError(f"model path is not a file: {path}")
    try:
        with open(path, "rb") as handle:
            header = handle.read(8)
            if len(header) < 8 or struct.unpack("<i", header[:4])[0] != _MAGIC:
                raise ValueError(f"not a fastText model file (bad header): {path}; expected a .bin or .ftz "
                                 "model written by fastText's save_model")
            with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
                (end, labels), size = _walk(data), len(data)
    except OSError as error:
        raise ValueError(f"model file cannot be read: {path} ({error.strerror or error})") from None
    except struct.error:
        raise ValueError(f"fastText model file is truncated or corrupt: {path} (the file ends early)") from None
    except _Corrupt as error:
        raise ValueError(f"fastText model file is truncated or corrupt: {path} ({error})") from None
    if end != size:
        raise ValueError(f"fastText model file is truncated or corrupt: {path} (its header describes "
                         f"{end:,} bytes, the file has {size:,})")
    return labels


def load_model(path: str | Path):
    """The fastText model at `path`, checked first. Use its low-level `.f` methods: fasttext 0.9.3's
    Python `predict` fails under NumPy 2 ("Unable to avoid copy")."""
    import fasttext

    check_model_file(path)
    try:
        return fasttext.load_model(str(path))
    except (ValueError, MemoryError, RuntimeError) as error:  # std::bad_alloc and friends
        raise ValueError(f"cannot load fastText model {path}: {type(error).__name__}: {error}") from None


class _Corrupt(Exception):
    pass


def _walk(data) -> tuple[int, list[str]]:
    """Where a fastText model (format version 12) written by `save_model` ends, and its labels."""
    version = struct.unpack_from("<i", data, 4)[0]
    if version != 12:
        raise _Corrupt(f"unsupported fastText format version {version}")
    pos = 8 + 12 * 4 + 8  # Args: 12 int32 and one double
    size, _, _, _, pruned = struct.unpack_from("<iiiqq", data, pos)  # dictionary: size, nwords, nlabels, ntokens, pruneidx
    pos += 28
    if size < 0:
        raise _Corrupt("negative dictionary size")
    labels = []
    for _ in range(size):  # entries: word, NUL, int64 count, int8 type (1: a label)
        nul = data.find(b"\0", pos)
        if nul < 0:
            raise _Corrupt("the dictionary ends early")
        if _byte(data, nul + 9) == 1:
            labels.append(data[pos:nul].decode("utf-8", "replace").removeprefix(LABEL_PREFIX))
        pos = nul + 10
    pos += 8 * max(pruned, 0)
    for _ in range(2):  # input matrix, then output matrix, each after its "quantized" flag
        quantized = _byte(data, pos)
        pos = _matrix_end(data, pos + 1, quantized)
    return pos, labels


def _byte(data, pos: int) -> int:
    if pos >= len(data):
        raise _Corrupt("the file ends early")
    return data[pos]


def _matrix_end(data, pos: int, quantized: int) -> int:
    if not quantized:
        rows, columns = struct.unpack_from("<qq", data, pos)
        if rows < 0 or columns < 0:
            raise _Corrupt("negative matrix size")
        return pos + 16 + 4 * rows * columns
    norms = _byte(data, pos)  # QuantMatrix: qnorm flag, m, n, codesize, codes, quantizer, [norm codes, quantizer]
    rows, _, codes = struct.unpack_from("<qqi", data, pos + 1)
    if rows < 0 or codes < 0:
        raise _Corrupt("negative matrix size")
    pos = _quantizer_end(data, pos + 21 + codes)
    if norms:
        pos = _quantizer_end(data, pos + rows)
    return pos


def _quantizer_end(data, pos: int) -> int:
    dim = struct.unpack_from("<i", data, pos)[0]  # ProductQuantizer: dim, nsubq, dsub, lastdsub, centroids
    if dim < 0:
        raise _Corrupt("negative quantizer size")
    return pos + 16 + 4 * dim * 256
