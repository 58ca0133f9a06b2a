"""Where a run's results are, as `pipeline run` prints them at its end; and the listing of a
stage's shards, which its manifest entry names."""
from __future__ import annotations

import pytest

from crawl2model.pipeline import storage
from crawl2model.pipeline.records import FileInfo, Manifest, ManifestEntry
from crawl2model.pipeline.summary import ListingError, StageFiles, outputs, stage_files, write_listing


def info(path: str, size: int = 1) -> FileInfo:
    return FileInfo(path=path, bytes=size, rows=0, sha256="")


def entry(type_name: str, shards: int = 0, artifact: list[str] = ()) -> ManifestEntry:
    listing = {"path": "stages/x/files.parquet", "bytes": 1, "sha256": "", "shards": shards, "files": shards}
    return ManifestEntry(status="done", fingerprint="f", type=type_name, listing=listing,
                         artifact=[info(p) for p in artifact])


def test_the_last_curation_stage_and_every_artifact_with_its_newest_checkpoint():
    manifest = Manifest(stages={
        "read": entry("read", shards=1),
        "dedup": entry("minhash_dedup", shards=1),
        "bpe": entry("train_tokenizer", shards=1, artifact=["stages/bpe/artifact/tokenizer.json"]),
        "pretrain": entry("pretrain", artifact=["stages/pretrain/artifact/step-000030/state.pt",
                                                "stages/pretrain/artifact/step-000060/state.pt",
                                                "stages/pretrain/artifact/metrics.jsonl"]),
    })
    assert outputs("runs/demo", manifest) == [
        ("kept documents", "runs/demo/stages/dedup/kept"),
        ("bpe (train_tokenizer)", "runs/demo/stages/bpe/artifact"),
        ("pretrain (pretrain)", "runs/demo/stages/pretrain/artifact/step-000060"),
    ]


def test_a_run_on_an_object_store_names_its_urls():
    manifest = Manifest(stages={"read": entry("read", shards=1)})
    assert outputs("s3://bucket/run", manifest) == [("kept documents", "s3://bucket/run/stages/read/kept")]


def test_a_listing_is_written_once_read_back_whole_and_checked(tmp_path):
    root = str(tmp_path)
    kept = [FileInfo(path=f"stages/f/kept/part-{i:05d}.parquet", rows=10 + i, bytes=100 + i, sha256=f"{i:064x}")
            for i in (2, 0, 1)]
    removed = [FileInfo(path="stages/f/removed/part-00001.parquet", rows=3, bytes=50, sha256="e" * 64)]
    listing = write_listing(root, "f", kept, removed)
    assert (listing.path, listing.shards, listing.removed, listing.files, listing.files_bytes) == (
        "stages/f/files.parquet", 3, 1, 4, 353)
    assert listing.sha256 == storage.sha256_of(f"{root}/{listing.path}")
    again = write_listing(root, "f", list(reversed(kept)), removed)
    assert again == listing  # sorted by path, fixed options: the same shards, the same bytes
    artifact = [info("stages/f/artifact/model.bin", 7)]
    done = ManifestEntry(status="done", fingerprint="f", listing=listing, artifact=artifact)
    assert stage_files(root, done) == StageFiles(sorted(kept, key=lambda f: f.path), removed, artifact)

    import duckdb  # a user opens it as any Parquet

    assert duckdb.sql(f"select count(*) from '{root}/{listing.path}' where kind = 'kept'").fetchall() == [(3,)]

    # an entry of an older version (its shards inline, ignored now) has no listing: it lists no shards
    old = ManifestEntry.model_validate({"status": "done", "fingerprint": "f", "kept": [kept[0].model_dump()]})
    assert old.listing is None and stage_files(root, old) == StageFiles([], [], [])

    write_listing(root, "f", kept[:2], removed)  # another listing in its place
    with pytest.raises(ListingError, match="files.parquet has .* bytes, the manifest|its sha256 differs"):
        stage_files(root, done)
    (tmp_path / listing.path).unlink()
    with pytest.raises(ListingError, match="stages/f/files.parquet is missing"):
        stage_files(root, done)
