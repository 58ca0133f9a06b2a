"""Seeded sampling, defined once: a random-looking key per string, and the rows in order of it.

Sorting by a keyed hash of a value (a document id, a text) gives a sample or an order that depends
on the seed and the values only, never on shards, files or their order: the classifier's examples
(classifiers/data.py), its held-out split (classifiers/train.py), the train_classifier stage's
sample of the run's documents, and the tokenizer stages' samples all draw this way.
"""
from __future__ import annotations

import hashlib

import numpy as np
import pyarrow as pa


def seeded_keys(values: pa.Array | pa.ChunkedArray | list[str], seed: int) -> np.ndarray:
    """A random-looking uint64 per string (a document id, a text), the same wherever it appears:
    sorting by it gives a seeded sample or order that does not depend on shards or files."""
    salt = str(seed).encode()
    values = values.to_pylist() if isinstance(values, (pa.Array, pa.ChunkedArray)) else values
    return np.array([int.from_bytes(hashlib.blake2b(v.encode(), digest_size=8, key=salt).digest(), "little")
                     for v in values], np.uint64)


def seeded_order(values: pa.Array | pa.ChunkedArray | list[str], seed: int,
                 limit: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(the row indices in order of their seeded keys, at most `limit` of them; every row's key).
    The sort is stable: rows with the same value keep their order. The first `limit` rows of the
    order are the seeded sample."""
    keys = seeded_keys(values, seed)
    order = np.argsort(keys, kind="stable")
    return (order if limit is None else order[:limit]), keys
