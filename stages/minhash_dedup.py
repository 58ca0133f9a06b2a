"""`minhash_dedup`: remove near-duplicate documents with MinHash LSH, on corpora larger than memory.

Phases (each writes Parquet under `stages/<name>/phases/<phase>/`, see pipeline/global_stage.py):

1. `signatures`, per shard: text normalised (NFKC, lower case, punctuation and digits folded),
   word n-gram shingles, MinHash signatures (stages/_minhash.py), one row per document and band:
   the band's key, shuffled by key.
2. `candidates`, per partition: documents that share a band key are candidate pairs: every pair
   of a bucket of up to 50 documents (so the exact check sees them all), else a star to the
   smallest id (enough to connect them).
3. `shingles`, per shard (with `verify`): the shingle hashes of each document in a candidate pair,
   sent to the partition that checks the pair.
4. `verify`, per partition (with `verify`): the exact Jaccard similarity of every pair; pairs
   below `threshold` are dropped.
5. `clusters`, once: connected components of the remaining pairs. Memory grows with the number
   of duplicate documents, not with the corpus.

Then each shard is judged: a document whose cluster has a smaller id is removed with
`drop_reason: minhash_duplicate` and `duplicate_of: <the id kept>`. Every document gets
`minhash_cluster_size` (1 when it has no duplicate). The smallest id wins, so reruns and
reshuffled inputs keep the same documents.

Bands and rows default to what datasketch's MinHashLSH picks for `threshold`, tilted toward
recall when candidates are verified (see `_minhash.lsh_params`); set both to override.
"""
from __future__ import annotations


import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field, model_validator

from crawl2model.pipeline.global_stage import PARTITION, GlobalStage, Phase, PhaseContext
from crawl2model.pipeline.stage import DROP_REASON, DUPLICATE_OF, StageConfig
from crawl2model.stages import _minhash

CLUSTER_EDGES = [2, 3, 4, 5, 10, 20, 50, 100, 1000, 10000]
_ALL_PAIRS_UP_TO = 50  # bucket size up to which every pair is a candidate


class MinHashConfig(StageConfig):
    threshold: float = Field(0.8, gt=0, le=1)  # Jaccard similarity of shingle sets that makes a duplicate
    ngram: int = Field(5, ge=1)  # words per shingle
    num_perm: int = Field(128, ge=2, le=1024)  # MinHash permutations
    bands: int | None = Field(None, ge=1)
    rows: int | None = Field(None, ge=1)
    seed: int = 1  # permutations, as datasketch's MinHash(seed=...)
    verify: bool = True  # check each candidate pair's exact Jaccard before it joins a cluster

    @model_validator(mode="after")
    def _bands_and_rows(self):
        if (self.bands is None) != (self.rows is None):
            raise ValueError("set both bands and rows, or neither (then they follow threshold)")
        if self.bands is not None and self.bands * self.rows > self.num_perm:
            raise ValueError(f"bands x rows = {self.bands * self.rows} exceeds num_perm = {self.num_perm}")
        return self

    def lsh(self) -> tuple[int, int]:
        return (self.bands, self.rows) if self.bands else _minhash.lsh_params(self.threshold, self.num_perm, self.verify)


def _spread(keys: np.ndarray, partitions: int) -> np.ndarray:
    return (_minhash.fmix64(keys.astype(np.uint64)) % np.uint64(partitions)).astype(np.int32)


class MinHashDedup(GlobalStage):
    type_name = "minhash_dedup"
    Config = MinHashConfig
    requires = ("id", "text")
    provides = ("minhash_cluster_size",)
    packages = ("datasketch",)

    def __init__(self, config=None):
        super().__init__(config)
        self.bands, self.rows = self.config.lsh()
        self.shuffle_rows_per_doc = self.bands

    def phases(self) -> list[Phase]:
        phases = [Phase("signatures", "shards", columns=("id", "text")),
                  Phase("candidates", "partitions", reads="signatures")]
        if self.config.verify:
            phases += [Phase("shingles", "shards", columns=("text",)), Phase("verify", "partitions", reads="shingles")]
        return phases + [Phase("clusters", "once")]

    def signatures(self, table: pa.Table, ctx: PhaseContext) -> pa.Table:
        hashes, offsets = _minhash.shingle_hashes(table.column("text").to_pylist(), self.config.ngram)
        sigs = _minhash.signatures(hashes, offsets, self.config.num_perm, self.config.seed)
        keys = _minhash.band_keys(sigs, self.bands, self.rows)
        present = np.flatnonzero(np.diff(offsets) > 0)  # a text without words has no near-duplicate
        self.counters["documents_without_shingles"] += table.num_rows - len(present)
        band_keys = keys[present].ravel()
        documents = np.repeat(present, self.bands)
        return pa.table({
            "band": np.tile(np.arange(self.bands, dtype=np.int16), len(present)),
            "key": band_keys,
            "doc": ctx.document_keys(table.num_rows)[documents],
            "id": table.column("id").take(documents),
            PARTITION: (band_keys % np.uint64(ctx.partitions)).astype(np.int32),
        })

    def candidates(self, table: pa.Table, ctx: PhaseContext) -> pa.Table:
        if table.num_rows == 0:
            return pa.table({})
        table = table.take(pc.sort_indices(table, [("band", "ascending"), ("key", "ascending"), ("id", "ascending")]))
        band, key = table.column("band").to_numpy(), table.column("key").to_numpy()
        starts = np.flatnonzero(np.concatenate(([True], (band[1:] != band[:-1]) | (key[1:] != key[:-1]))))
        sizes = np.diff(np.append(starts, table.num_rows))
        left, right = [starts[sizes == 2]], [starts[sizes == 2] + 1]
        for start, size in zip(starts[sizes > 2], sizes[sizes > 2]):
            if size <= _ALL_PAIRS_UP_TO:
                i, j = np.triu_indices(size, 1)
            else:
                i, j = np.zeros(size - 1, np.int64), np.arange(1, size)
            left.append(start + i)
            right.append(start + j)
        pairs = _pairs(table, np.concatenate(left), np.concatenate(right))
        self.counters["candidate_pairs"] += pairs.num_rows
        if self.config.verify:  # all copies of a pair meet in the partition of its first document
            pairs = pairs.append_column(PARTITION, pa.array(_spread(pairs.column("a").to_numpy(), ctx.partitions)))
        return pairs

    def shingles(self, table: pa.Table, ctx: PhaseContext) -> pa.Table:
        """Each document of a candidate pair, with its shingle hashes, once per partition it is checked in."""
        shard = pc.field("a_shard") == ctx.shard
        pairs = ctx.read("candidates", columns=["a", "b"], filter=shard | (pc.field("b_shard") == ctx.shard))
        if pairs.num_rows == 0:
            return pa.table({})  # an empty output writes no file
        a, b = pairs.column("a").to_numpy(), pairs.column("b").to_numpy()
        target = _spread(a, ctx.partitions)
        docs = np.concatenate([a, b])
        sends = np.unique(np.stack([docs, np.concatenate([target, target])]), axis=1)
        mine = sends[:, (sends[0] >> 32) == ctx.shard]
        rows = (mine[0] & 0xFFFFFFFF).astype(np.int64)
        hashes, offsets = _minhash.shingle_hashes(table.column("text").take(rows).to_pylist(), self.config.ngram)
        return pa.table({"doc": mine[0], "shingles": pa.ListArray.from_arrays(offsets.astype(np.int32), hashes),
                         PARTITION: mine[1].astype(np.int32)})

    def verify(self, table: pa.Table, ctx: PhaseContext) -> pa.Table:
        pairs = ctx.read("candidates", partition=ctx.partition)
        if pairs.num_rows == 0:
            return pairs
        pairs = _unique_pairs(pairs)
        offsets = table.column("shingles").combine_chunks().offsets.to_numpy()
        values = pc.list_flatten(table.column("shingles")).to_numpy()
        where = {doc: i for i, doc in enumerate(table.column("doc").to_pylist())}
        similarity = np.array([
            _minhash.jaccard(values[offsets[where[a]]:offsets[where[a] + 1]], values[offsets[where[b]]:offsets[where[b] + 1]])
            for a, b in zip(pairs.column("a").to_pylist(), pairs.column("b").to_pylist())])
        keep = similarity >= self.config.threshold
        self.counters["pairs_verified"] += int(keep.sum())
        self.counters["pairs_rejected"] += int((~keep).sum())
        self.observe("pair_jaccard", similarity, [0, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 1.0])
        return pairs.append_column("jaccard", pa.array(similarity)).filter(pa.array(keep))

    def clusters(self, table: pa.Table, ctx: PhaseContext) -> pa.Table:
        """Connected components of the pairs; per document: its cluster's smallest id and size."""
        from scipy.sparse import coo_matrix
        from scipy.sparse.csgraph import connected_components

        pairs = ctx.read("verify" if self.config.verify else "candidates", columns=["a", "a_id", "b", "b_id"])
        if pairs.num_rows == 0:
            return pa.table({})
        ends = np.concatenate([pairs.column("a").to_numpy(), pairs.column("b").to_numpy()])
        docs, index = np.unique(ends, return_inverse=True)
        half = pairs.num_rows
        graph = coo_matrix((np.ones(half, np.int8), (index[:half], index[half:])), shape=(len(docs), len(docs)))
        _, component = connected_components(graph, directed=False)
        ids = pa.concat_arrays([pairs.column("a_id").combine_chunks(), pairs.column("b_id").combine_chunks()])
        first = np.unique(index, return_index=True)[1]  # an id for each distinct document
        nodes = pa.table({"doc": docs, "id": ids.take(first), "component": component})
        by_id = nodes.take(pc.sort_indices(nodes, [("component", "ascending"), ("id", "ascending")]))
        comp = by_id.column("component").to_numpy()
        heads = np.flatnonzero(np.concatenate(([True], comp[1:] != comp[:-1])))
        sizes = np.diff(np.append(heads, len(comp)))
        self.observe("cluster_size", sizes, CLUSTER_EDGES)
        self.counters["clusters"] += len(heads)
        result = pa.table({
            "doc": by_id.column("doc"),
            "shard": (by_id.column("doc").to_numpy() >> 32).astype(np.int32),
            "cluster": by_id.column("id").take(np.repeat(heads, sizes)),
            "size": np.repeat(sizes, sizes).astype(np.int32),
        })
        return result.take(pc.sort_indices(result, [("doc", "ascending")]))  # by shard: row groups filter well

    def judge(self, table: pa.Table, ctx: PhaseContext) -> pa.Table:
        members = ctx.read("clusters", columns=["doc", "cluster", "size"], filter=pc.field("shard") == ctx.shard)
        size = np.ones(table.num_rows, np.int32)
        kept_as = pa.nulls(table.num_rows, pa.string())
        if members.num_rows:
            rows = members.column("doc").to_numpy() & 0xFFFFFFFF
            size[rows] = members.column("size").to_numpy()
            position = np.full(table.num_rows, -1)
            position[rows] = np.arange(len(rows))
            clusters = members.column("cluster").take(pa.array(position, mask=position < 0))
            kept_as = pc.if_else(pc.equal(clusters, table.column("id")), None, clusters)
        duplicate = pc.is_valid(kept_as)
        reason = pc.if_else(duplicate, "minhash_duplicate", pa.scalar(None, pa.string()))
        return (table.append_column("minhash_cluster_size", pa.array(size))
                .append_column(DROP_REASON, reason).append_column(DUPLICATE_OF, kept_as))


_PAIRS = pa.schema([("a", pa.int64()), ("a_id", pa.string()), ("a_shard", pa.int32()),
                    ("b", pa.int64()), ("b_id", pa.string()), ("b_shard", pa.int32())])


def _pairs(table: pa.Table, left: np.ndarray, right: np.ndarray) -> pa.Table:
    """Pairs of rows (a, b) of `table`, a before b in id order, with their ids and shards."""
    columns = {}
    for side, rows in (("a", pa.array(left, pa.int64())), ("b", pa.array(right, pa.int64()))):
        doc = table.column("doc").take(rows)
        columns.update({side: doc, f"{side}_id": table.column("id").take(rows),
                        f"{side}_shard": pc.cast(pc.shift_right(doc, 32), pa.int32())})
    return pa.table(columns, schema=_PAIRS)


def _unique_pairs(pairs: pa.Table) -> pa.Table:
    """One row per (a, b): a pair found in several bands was sent once per band."""
    a, b = pairs.column("a").to_numpy(), pairs.column("b").to_numpy()
    order = np.lexsort((b, a))
    first = np.concatenate(([True], (a[order][1:] != a[order][:-1]) | (b[order][1:] != b[order][:-1])))
    return pairs.take(order[first])
