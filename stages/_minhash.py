"""Vectorised MinHash: text -> normalised words -> word n-gram shingles -> signatures -> LSH band keys.

Signatures are bit-identical to datasketch's `MinHash(num_perm, seed, scheme="affine32")` fed the
same 32-bit shingle hashes (tests check it): the permutations are datasketch's own. What differs
is speed. datasketch hashes each shingle in a Python loop and builds one matrix per document; here a
whole batch is hashed with numpy (words once each, n-grams from word hashes), and the permutation
matrix is built in cache-sized blocks, transposed so the min per document is a contiguous reduce.
Words are those of `fold` (stages/_text.py), which exact_dedup's document keys share.
Large fresh numpy arrays cost page faults on every call, so work goes in blocks of bounded size.
"""
from __future__ import annotations

import functools
import hashlib

import numpy as np

from crawl2model.stages._text import fold

_M64 = np.uint64(0x9E3779B97F4A7C15)  # odd multiplier that chains word hashes into an n-gram hash
_BLOCK_BYTES = 1 << 20  # text hashed per block
_BLOCK_SHINGLES = 8192  # shingles per permutation block: (num_perm x 8192) uint32 stays in cache


def fmix32(h: np.ndarray) -> np.ndarray:
    """MurmurHash3's 32-bit finalizer (datasketch pre-mixes values with it)."""
    h = h ^ (h >> np.uint32(16))
    h = h * np.uint32(0x85EBCA6B)
    h = h ^ (h >> np.uint32(13))
    h = h * np.uint32(0xC2B2AE35)
    return h ^ (h >> np.uint32(16))


def fmix64(h: np.ndarray) -> np.ndarray:
    h = h ^ (h >> np.uint64(33))
    h = h * np.uint64(0xFF51AFD7ED558CCD)
    h = h ^ (h >> np.uint64(33))
    h = h * np.uint64(0xC4CEB9FE1A85EC53)
    return h ^ (h >> np.uint64(33))


_LOW_BYTES = np.array([(1 << (8 * k)) - 1 for k in range(8)] + [2**64 - 1], np.uint64)  # keep the first k bytes
_LONG_WORD = 64  # longer words are hashed one by one (rare: URLs, base64, junk)


def _word_hashes(blob: bytes) -> tuple[np.ndarray, np.ndarray]:
    """Start offsets and 64-bit hashes of the space-separated words of a normalised UTF-8 blob.

    A word is read 8 bytes at a time through an overlapping uint64 view of the blob, so the cost
    is per word, not per byte."""
    data = np.frombuffer(blob + bytes(8), np.uint8)
    in_word = np.concatenate(([False], data[: len(blob)] != 32, [False])).view(np.int8)
    change = np.diff(in_word)
    starts, ends = np.flatnonzero(change == 1), np.flatnonzero(change == -1)
    lengths = (ends - starts).astype(np.uint64)
    eight = np.lib.stride_tricks.as_strided(data, shape=(len(blob) + 1, 8), strides=(1, 1)).view(np.uint64)[:, 0]
    h = lengths * _M64
    for k in range(0, min(int(lengths.max(initial=0)), _LONG_WORD), 8):
        part = np.flatnonzero(lengths > k)
        chunk = eight[starts[part] + k] & _LOW_BYTES[np.minimum(lengths[part] - np.uint64(k), np.uint64(8))]
        h[part] = (h[part] ^ chunk) * _M64
    for index in np.flatnonzero(lengths > _LONG_WORD):
        word = blob[starts[index]:ends[index]]
        h[index] = int.from_bytes(hashlib.blake2b(word, digest_size=8).digest(), "little")
    return starts, fmix64(h)


def shingle_hashes(texts: list[str], ngram: int) -> tuple[np.ndarray, np.ndarray]:
    """32-bit hashes of the word n-grams of each text, and per-text offsets into them
    (text i has hashes[offsets[i]:offsets[i+1]]). A text of fewer than `ngram` words is one
    shingle of all its words; a text with no words has none."""
    encoded = [fold(t).encode() for t in texts]
    hashes, counts = [], np.zeros(len(texts), np.int64)
    start = 0
    while start < len(encoded):  # blocks of about _BLOCK_BYTES, whole documents
        stop, size = start, 0
        while stop < len(encoded) and (stop == start or size + len(encoded[stop]) < _BLOCK_BYTES):
            size += len(encoded[stop]) + 1
            stop += 1
        block_hashes, block_counts = _block_shingles(encoded[start:stop], ngram)
        hashes.append(block_hashes)
        counts[start:stop] = block_counts
        start = stop
    offsets = np.concatenate(([0], np.cumsum(counts)))
    return (np.concatenate(hashes) if hashes else np.zeros(0, np.uint32)), offsets


def _block_shingles(encoded: list[bytes], ngram: int) -> tuple[np.ndarray, np.ndarray]:
    doc_starts = np.cumsum([0] + [len(e) + 1 for e in encoded[:-1]])
    starts, words = _word_hashes(b" ".join(encoded))
    doc_of_word = np.searchsorted(doc_starts, starts, side="right") - 1
    word_counts = np.bincount(doc_of_word, minlength=len(encoded))
    first_word = np.cumsum(word_counts) - word_counts
    counts = np.where(word_counts >= ngram, word_counts - ngram + 1, (word_counts > 0).astype(np.int64))
    total = int(counts.sum())
    shingle_doc = np.repeat(np.arange(len(encoded)), counts)
    first = np.repeat(first_word, counts) + np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)
    doc_end = (first_word + word_counts)[shingle_doc]
    h = np.zeros(total, np.uint64)
    padded = np.append(words, np.uint64(0))  # index len(words) reads 0: past the end of a short text
    for k in range(ngram):
        index = np.where(first + k < doc_end, first + k, len(words))
        h = h * _M64 + padded[index]
    return (fmix64(h) >> np.uint64(32)).astype(np.uint32), counts


@functools.lru_cache(maxsize=8)
def permutations(num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """datasketch's affine32 permutations h -> a*h + b (mod 2^32), as (num_perm, 1) columns."""
    from datasketch import MinHash

    a, b = MinHash(num_perm=num_perm, seed=seed, scheme="affine32").permutations
    return a.astype(np.uint32)[:, None], b.astype(np.uint32)[:, None]


def signatures(hashes: np.ndarray, offsets: np.ndarray, num_perm: int, seed: int) -> np.ndarray:
    """(documents, num_perm) uint32 MinHash signatures; a document with no shingles is all 2^32-1."""
    a, b = permutations(num_perm, seed)
    counts = np.diff(offsets)
    out = np.full((len(counts), num_perm), np.iinfo(np.uint32).max, np.uint32)
    mixed = fmix32(hashes)
    doc_of = np.repeat(np.arange(len(counts)), counts)
    block = np.empty((num_perm, _BLOCK_SHINGLES), np.uint32)
    for lo in range(0, len(mixed), _BLOCK_SHINGLES):
        hi = min(lo + _BLOCK_SHINGLES, len(mixed))
        values = block[:, : hi - lo]
        np.multiply(a, mixed[lo:hi], out=values)
        np.add(values, b, out=values)
        docs = doc_of[lo:hi]
        segment = np.flatnonzero(np.diff(docs, prepend=-1))  # where each document's run begins
        mins = np.minimum.reduceat(values, segment, axis=1).T
        rows = docs[segment]
        out[rows] = np.minimum(out[rows], mins)
    return out


@functools.lru_cache(maxsize=32)
def lsh_params(threshold: float, num_perm: int, verified: bool) -> tuple[int, int]:
    """Bands and rows for `threshold` as datasketch's MinHashLSH picks them, weighing a spurious
    candidate against a missed duplicate. When candidates are verified afterwards a spurious one
    costs only a check, so a miss weighs 19 times more (at 0.8 and 128 permutations: 16 bands of
    8 rows, which finds 95% of pairs at exactly 0.8 instead of 40%)."""
    from datasketch.lsh import _optimal_param

    return _optimal_param(threshold, num_perm, *((0.05, 0.95) if verified else (0.5, 0.5)))


def band_keys(sigs: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """(documents, bands) uint64: one hash per band of `rows` signature values; documents that
    share a band key are candidate duplicates."""
    values = sigs[:, : bands * rows].reshape(len(sigs), bands, rows).astype(np.uint64)
    h = np.broadcast_to(np.arange(bands, dtype=np.uint64), (len(sigs), bands)).copy()
    for j in range(rows):
        h = h * _M64 + values[:, :, j]
    return fmix64(h)


def jaccard(left: np.ndarray, right: np.ndarray) -> float:
    """Exact Jaccard similarity of two shingle-hash sets."""
    a, b = np.unique(left), np.unique(right)
    if len(a) == 0 and len(b) == 0:
        return 1.0
    shared = len(np.intersect1d(a, b, assume_unique=True))
    return shared / (len(a) + len(b) - shared)
