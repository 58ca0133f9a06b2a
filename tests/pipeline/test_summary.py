"""Where a run's results are, as `pipeline run` prints them at its end."""
from __future__ import annotations

from crawl2model.pipeline.records import FileInfo, Manifest, ManifestEntry
from crawl2model.pipeline.summary import outputs


def entry(type_name: str, kept: list[str] = (), artifact: list[str] = ()) -> ManifestEntry:
    return ManifestEntry(status="done", fingerprint="f", type=type_name, kept=[FileInfo(path=p, bytes=1, rows=0, sha256="") for p in kept],
                         artifact=[FileInfo(path=p, bytes=1, rows=0, sha256="") for p in artifact])


def test_the_last_curation_stage_and_every_artifact_with_its_newest_checkpoint():
    manifest = Manifest(stages={
        "read": entry("read", kept=["stages/read/kept/part-00000-00000.parquet"]),
        "dedup": entry("minhash_dedup", kept=["stages/dedup/kept/part-00000-00000.parquet"]),
        "bpe": entry("train_tokenizer", kept=["stages/dedup/kept/part-00000-00000.parquet"],
                     artifact=["stages/bpe/artifact/tokenizer.json"]),
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
    manifest = Manifest(stages={"read": entry("read", kept=["stages/read/kept/part-00000-00000.parquet"])})
    assert outputs("s3://bucket/run", manifest) == [("kept documents", "s3://bucket/run/stages/read/kept")]
