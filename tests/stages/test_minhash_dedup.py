"""Tests for minhash_dedup (stages/minhash_dedup.py, stages/_minhash.py): signatures against
datasketch, the curation fixtures' licences, precision and recall on real pages with planted
near-duplicates, determinism under reshuffled shards, and a run under real local Ray."""
from __future__ import annotations

import json
import random
from itertools import combinations
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import yaml
from datasketch import MinHash

from crawl2model.pipeline import storage
from crawl2model.pipeline.config import ConfigError
from crawl2model.catalog import load_config, parse_config
from crawl2model.pipeline.runner import run
from crawl2model.pipeline.summary import stage_files
from crawl2model.stages import _minhash
from crawl2model.stages._text import fold

LICENCES = ["pytorch_license", "rails_mit_license", "react_mit_license"]


def documents(texts: list[str], prefix: str = "d") -> pa.Table:
    return pa.table({"id": [f"{prefix}{i:04d}" for i in range(len(texts))], "text": texts})


def shingle_set(text: str, n: int = 5) -> set[tuple[str, ...]]:
    """The definition the stage implements, written plainly: word n-grams of the normalised text."""
    words = fold(text).split()
    return {tuple(words[i:i + n]) for i in range(max(len(words) - n + 1, 1))} if words else set()


def true_jaccard(a: set, b: set) -> float:
    return len(a & b) / len(a | b) if a | b else 1.0


def test_normalize_folds_case_punctuation_digits_and_width():
    assert fold("Hello, World! Page 12 of ２０") == "hello  world  page 00 of 00"
    assert fold("l’été — déjà\n\tvu").split() == ["l", "été", "déjà", "vu"]


def test_signatures_are_datasketch_minhash_of_the_same_shingle_hashes():
    texts = ["The quick brown fox jumps over the lazy dog " * 3, "one two", "", "Ünïcödé wörds, ünïcödé wörds " * 50,
             "word " * 10_000, "a" * 300 + " long words " + "b" * 70]
    hashes, offsets = _minhash.shingle_hashes(texts, 5)
    sigs = _minhash.signatures(hashes, offsets, 128, 7)
    assert list(np.diff(offsets)[:3]) == [23, 1, 0]  # 27 words -> 23 shingles; 2 words -> 1; none -> 0
    for i in range(len(texts)):
        reference = MinHash(num_perm=128, seed=7, scheme="affine32", hashfunc=int)
        values = hashes[offsets[i]:offsets[i + 1]].tolist()
        if values:
            reference.update_batch(values)
        assert np.array_equal(reference.hashvalues, sigs[i]), i
    a, b = MinHash(num_perm=128, seed=7, scheme="affine32", hashvalues=sigs[0]), MinHash(
        num_perm=128, seed=7, scheme="affine32", hashvalues=sigs[3])
    assert a.jaccard(b) == np.mean(sigs[0] == sigs[3])


def test_shingle_hashes_do_not_depend_on_batching():
    texts = [f"document {i} has words " * (i % 7 + 1) for i in range(300)]
    together, offsets = _minhash.shingle_hashes(texts, 3)
    for i in (0, 57, 299):
        alone, _ = _minhash.shingle_hashes([texts[i]], 3)
        assert np.array_equal(alone, together[offsets[i]:offsets[i + 1]])
    assert len({*together[offsets[0]:offsets[1]].tolist()}) == len(shingle_set(texts[0], 3))


def test_lsh_parameters_follow_the_threshold_and_can_be_set(tmp_path):
    (tmp_path / "in.jsonl").write_text('{"id": "a", "text": "b"}\n')
    run_config = {"name": "t", "output_dir": str(tmp_path), "input": {"jsonl": [str(tmp_path / "in.jsonl")]}}
    stage_config = parse_config({**run_config, "stages": [{"name": "d", "type": "minhash_dedup"}]})[1][0].config
    bands, rows = stage_config.lsh()
    assert bands * rows <= 128
    p = 1 - (1 - 0.8 ** rows) ** bands
    assert p > 0.9, (bands, rows, p)  # a pair at the threshold is likely a candidate (it is checked later)
    for bad, hint in [({"bands": 10}, "both bands and rows"), ({"bands": 20, "rows": 10}, "exceeds num_perm"),
                      ({"threshold": 1.5}, "threshold")]:
        with pytest.raises(ConfigError, match=hint):
            parse_config({**run_config, "stages": [{"name": "d", "type": "minhash_dedup", **bad}]})


@pytest.mark.shared
def test_the_two_mit_licences_collapse_and_the_pytorch_licence_stays(shared_data, run_global):
    root = shared_data / "curation-fixtures" / "documents_with_fuzzy_duplicates"
    texts = [(root / f"{name}.txt").read_text(encoding="utf-8") for name in LICENCES]
    table = pa.table({"id": LICENCES, "text": texts})
    kept, removed, _ = run_global("minhash_dedup", {"threshold": 0.8, "ngram": 5}, [table])
    assert sorted(kept.column("id").to_pylist()) == ["pytorch_license", "rails_mit_license"]
    assert removed.column("id").to_pylist() == ["react_mit_license"]
    assert removed.column("drop_reason").to_pylist() == ["minhash_duplicate"]
    assert removed.column("duplicate_of").to_pylist() == ["rails_mit_license"]
    kept_text = dict(zip(kept.column("id").to_pylist(), kept.column("text").to_pylist()))
    assert kept_text["rails_mit_license"] == texts[1]  # byte-identical to its input
    assert dict(zip(kept.column("id").to_pylist(), kept.column("minhash_cluster_size").to_pylist())) == {
        "pytorch_license": 1, "rails_mit_license": 2}
    assert "duplicate_of" not in kept.column_names


def edit_words(words: list[str], rate: float, rng: random.Random, vocabulary: list[str]) -> list[str]:
    """Substitute, delete or insert words, each at `rate / 3` per word."""
    out = []
    for word in words:
        roll = rng.random()
        if roll < rate / 3:
            out.append(rng.choice(vocabulary))
        elif roll < 2 * rate / 3:
            continue
        elif roll < rate:
            out += [word, rng.choice(vocabulary)]
        else:
            out.append(word)
    return out


@pytest.fixture(scope="module")
def near_duplicates(extracted_pages) -> tuple[list[str], list[str]]:
    """Real pages (60+ words) and copies of some with word edits at rates that put their true
    Jaccard on both sides of 0.8; ids are shuffled so originals do not always win."""
    rng = random.Random(11)
    pages = [t for t, r in zip(extracted_pages.column("text").to_pylist(), extracted_pages.column("drop_reason").to_pylist())
             if r is None and len(t.split()) >= 60]
    pages = rng.sample(pages, 220)
    vocabulary = sorted({w for t in pages[:50] for w in t.split()})
    texts = list(pages)
    for page in pages[:150]:
        for _ in range(rng.choice([1, 1, 2])):
            texts.append(" ".join(edit_words(page.split(), rng.uniform(0.0, 0.04), rng, vocabulary)))
    ids = [f"doc-{n:04d}" for n in rng.sample(range(10_000), len(texts))]
    return ids, texts


@pytest.mark.shared
def test_precision_and_recall_of_pairs_on_real_pages_with_planted_duplicates(near_duplicates, run_global):
    ids, texts = near_duplicates
    sets = [shingle_set(t) for t in texts]
    truth = {frozenset((ids[i], ids[j])) for i, j in combinations(range(len(texts)), 2)
             if true_jaccard(sets[i], sets[j]) >= 0.8}
    band = sum(1 for i, j in combinations(range(len(texts)), 2) if 0.7 <= true_jaccard(sets[i], sets[j]) < 0.9)
    assert len(truth) > 100 and band > 30  # the set really tests the threshold
    tables = [pa.table({"id": ids[i::4], "text": texts[i::4]}) for i in range(4)]
    kept, removed, stage_dir = run_global("minhash_dedup", {"threshold": 0.8}, tables)
    pairs = storage.read_parquet_files(storage.list_files(f"{stage_dir}/phases/verify", ".parquet", recursive=True))
    found = {frozenset(p) for p in zip(pairs.column("a_id").to_pylist(), pairs.column("b_id").to_pylist())}
    precision, recall = len(found & truth) / len(found), len(found & truth) / len(truth)
    print(f"\n{len(texts)} docs, {len(truth)} true pairs >= 0.8, {len(found)} found: "
          f"precision {precision:.3f}, recall {recall:.3f}; removed {removed.num_rows}")
    assert precision >= 0.95 and recall >= 0.95
    # every removed document names a kept one, and is truly close to something in its cluster
    kept_ids = set(kept.column("id").to_pylist())
    assert set(removed.column("duplicate_of").to_pylist()) <= kept_ids
    assert kept.num_rows + removed.num_rows == len(texts)


@pytest.mark.shared
def test_the_kept_set_does_not_depend_on_shard_order(near_duplicates, run_global):
    ids, texts = near_duplicates
    order = list(range(len(texts)))
    random.Random(5).shuffle(order)
    first = [pa.table({"id": ids[i::3], "text": texts[i::3]}) for i in range(3)]
    second = [pa.table({"id": [ids[k] for k in order[i::5]], "text": [texts[k] for k in order[i::5]]}) for i in range(5)]
    kept_a, removed_a, _ = run_global("minhash_dedup", {}, first, partitions=2, name="a")
    kept_b, removed_b, _ = run_global("minhash_dedup", {}, second, partitions=7, name="b")
    assert sorted(kept_a.column("id").to_pylist()) == sorted(kept_b.column("id").to_pylist())
    assert sorted(zip(removed_a.column("id").to_pylist(), removed_a.column("duplicate_of").to_pylist())) == sorted(
        zip(removed_b.column("id").to_pylist(), removed_b.column("duplicate_of").to_pylist()))


def test_documents_without_words_and_tiny_documents(run_global):
    table = documents(["", "   \n", "!!! ???", "short one", "short one", "Short, one!", "another text entirely here"])
    kept, removed, stage_dir = run_global("minhash_dedup", {}, [table])
    assert sorted(removed.column("id").to_pylist()) == ["d0004", "d0005"]
    assert set(removed.column("duplicate_of").to_pylist()) == {"d0003"}
    stats = json.loads(Path(stage_dir, "phases", "signatures", "_done", "00000.json").read_text())
    assert stats["counters"]["documents_without_shingles"] == 3  # empty texts never match each other here


@pytest.mark.ray
@pytest.mark.shared
def test_a_run_under_local_ray_with_several_shards_and_two_workers(near_duplicates, local_ray, tmp_path):
    ids, texts = near_duplicates
    for i in range(4):
        with open(tmp_path / f"part-{i}.jsonl", "w", encoding="utf-8") as fh:
            for k in range(i, len(ids), 4):
                fh.write(json.dumps({"id": ids[k], "text": texts[k]}) + "\n")
    config = {"name": "dedup", "output_dir": str(tmp_path / "run"), "input": {"jsonl": [str(tmp_path / "*.jsonl")],
              "docs_per_shard": 30}, "stages": [{"name": "near", "type": "minhash_dedup"},
                                                {"name": "exact", "type": "exact_dedup", "lines": True, "max_line_repeats": 5}]}
    path = tmp_path / "crawl.yaml"
    path.write_text(yaml.safe_dump(config))
    manifest = run(*load_config(path), show_progress=False)
    near = manifest.stages["near"]
    assert manifest.stages["read"].listing.shards >= 8 and near.status == "done"
    stats = json.loads((tmp_path / "run/stages/near/stats.json").read_text())
    assert stats["phases"]["signatures"]["tasks"] >= 8 and stats["phases"]["candidates"]["tasks"] >= 2
    assert stats["removed_by_reason"]["minhash_duplicate"] == near.docs_in - near.docs_out > 50
    assert sum(stats["histograms"]["cluster_size"]["counts"]) == stats["counters"]["clusters"]
    files = stage_files(str(tmp_path / "run"), near)
    removed = storage.read_parquet_files([str(tmp_path / "run" / f.path) for f in files.removed])
    kept = storage.read_parquet_files([str(tmp_path / "run" / f.path) for f in files.kept])
    assert set(removed.column("duplicate_of").to_pylist()) <= set(kept.column("id").to_pylist())
    assert manifest.stages["exact"].docs_in == near.docs_out
    again = run(*load_config(path), show_progress=False)  # nothing changed: nothing runs
    assert all(entry.cached for entry in again.stages.values())
