"""All of a run's IO through one storage layer (pipeline/storage.py): files written atomically to
a local path or an fsspec URL, local copies named by content for the libraries that need a local
file, and whole runs (token shards, tokenizer, checkpoints) on storage that is not a local disk:
fsspec's in-memory file system in this process, and a real S3 server (SeaweedFS) across the
processes of a run."""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pytest
import yaml

from crawl2model.pipeline import storage
from crawl2model.pipeline.records import ManifestEntry
from crawl2model.pipeline.summary import stage_files

TEXTS = [f"Line {i} of a text about {'rivers' if i % 2 else 'mountains'} and {i * 7} other things." for i in range(400)]


def test_a_remote_file_is_copied_once_and_named_by_its_content(tmp_path, monkeypatch):
    monkeypatch.setenv(storage.CACHE_ENV, str(tmp_path / "cache"))
    info = storage.write_file("memory://store/a/model.bin", b"weights", rows=1)
    assert info.sha256 == hashlib.sha256(b"weights").hexdigest() and storage.read_bytes(info.path) == b"weights"
    local = storage.local_copy(info.path, info.sha256)
    assert local == str(tmp_path / "cache" / info.sha256 / "model.bin") and Path(local).read_bytes() == b"weights"
    assert storage.local_copy(info.path, info.sha256) == local  # served from the cache
    with pytest.raises(ValueError, match="sha256"):
        storage.local_copy(info.path, "0" * 64)  # a copy that is not what the record says is refused
    assert storage.local_copy(str(tmp_path / "x")) == str(tmp_path / "x")  # a local file is itself
    assert storage.list_files("memory://store/a", ".bin") == ["memory://store/a/model.bin"]


def test_paths_in_records_are_relative_to_the_run():
    assert storage.relative("s3://b/run/stages/x/kept/p.parquet", "s3://b/run") == "stages/x/kept/p.parquet"
    assert storage.absolute("stages/x/kept/p.parquet", "s3://b/run") == "s3://b/run/stages/x/kept/p.parquet"
    assert storage.absolute("/data/in.warc.gz", "/runs/demo") == "/data/in.warc.gz"


def test_tokenize_and_pretrain_on_an_in_memory_file_system(run_global, tmp_path, monkeypatch):
    """The tokenize stage's phases and the trainer, with every file on `memory://`: token shards
    read through local copies, checkpoints and metrics written and read back through fsspec, and a
    resumed job that continues from the checkpoint it finds there."""
    from crawl2model.stages.train_tokenizer import TrainTokenizerConfig, train_bpe
    from crawl2model.train import checkpoint
    from crawl2model.train.loop import TrainConfig
    from crawl2model.train.pretrain import load_model, train
    from crawl2model.train.tokens import load_index

    monkeypatch.setenv(storage.CACHE_ENV, str(tmp_path / "cache"))
    storage.write_bytes_atomic("memory://mem/tokenizer.json",
                               train_bpe(TEXTS, TrainTokenizerConfig(vocab_size=300)).to_str().encode())
    tables = [pa.table({"id": [f"d{i}" for i in range(k, 400, 2)], "text": TEXTS[k::2]}) for k in range(2)]
    run_global("tokenize", {"tokenizer": "memory://mem/tokenizer.json", "val_fraction": 0.1, "seed": 1}, tables,
               name="tok", run_dir="memory://mem/run")
    index = load_index("memory://mem/run")  # found through the run directory, on the memory file system
    assert index.root == "memory://mem/run/stages/tok/artifact" and not list(Path(tmp_path).glob("stages"))
    settings = TrainConfig(model={"dim": 32, "n_layers": 1, "n_heads": 2}, seq_len=32, batch_size=4, steps=6,
                           warmup_steps=1, checkpoint_interval=3, eval_interval=3, log_interval=1)
    out = "memory://mem/ckpt"
    train(index.root, out, settings, log=lambda _: None, stop_at=3)
    assert checkpoint.latest(out) == "memory://mem/ckpt/step-000003"
    summary = train(index.root, out, settings, log=lambda _: None)
    assert summary["step"] == 6 and checkpoint.latest(out) == "memory://mem/ckpt/step-000006"
    lines = storage.read_bytes(f"{out}/metrics.jsonl").decode().splitlines()
    assert [json.loads(line)["step"] for line in lines] == [1, 2, 3, 4, 5, 6]
    model, saved = load_model(checkpoint.latest(out))
    assert model.config.vocab_size == 300 and saved["tokenizer_sha256"] == index.tokenizer_sha256
    assert Path(checkpoint.tokenizer_file(checkpoint.latest(out))).read_bytes() == \
        storage.read_bytes("memory://mem/tokenizer.json")


@pytest.mark.ray
@pytest.mark.slow
def test_a_run_on_s3_matches_a_local_run(object_store, tmp_path):
    """The sample crawl through extract, a tokenizer, token shards and pretraining, once with
    output_dir on a real S3 server and once on the local disk: the same documents, token shards
    and model. Each run is the `pipeline` command in its own process, with its own embedded Ray."""

    def config(output_dir: str) -> Path:
        path = tmp_path / f"{'s3' if output_dir.startswith('s3') else 'local'}.yaml"
        path.write_text(yaml.safe_dump({
            "name": "s3", "output_dir": output_dir, "seed": 2, "input": {"sample": {"documents": 40, "files": 2}},
            "stages": [{"name": "extract", "type": "extract"},
                       {"name": "bpe", "type": "train_tokenizer", "vocab_size": 300},
                       {"name": "tokenize", "type": "tokenize", "val_fraction": 0.1},
                       {"name": "pretrain", "type": "pretrain", "model": {"dim": 32, "n_layers": 1, "n_heads": 2},
                        "seq_len": 32, "batch_size": 4, "steps": 4, "warmup_steps": 1, "checkpoint_interval": 2,
                        "eval_interval": 2}]}))
        return path

    env = {**os.environ, **object_store["env"], storage.CACHE_ENV: str(tmp_path / "cache")}
    remote = f"s3://{object_store['bucket']}/runs/demo"
    for output_dir in (remote, str(tmp_path / "local")):
        done = subprocess.run([sys.executable, "-m", "crawl2model.cli", "run", str(config(output_dir)), "--no-progress"],
                              env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]

    fs = object_store["fs"]
    bucket_run = f"{object_store['bucket']}/runs/demo"
    manifest = json.loads(fs.cat(f"{bucket_run}/manifest.json"))
    local = json.loads((tmp_path / "local/manifest.json").read_text())
    assert [s["status"] for s in manifest["stages"].values()] == ["done"] * 5
    assert [(s["docs_in"], s["docs_out"]) for s in manifest["stages"].values()] == [
        (s["docs_in"], s["docs_out"]) for s in local["stages"].values()]
    for stage in ("read", "extract"):  # the same documents, to the byte (`source` names the sample inside each run)
        listing = manifest["stages"][stage]["listing"]
        assert listing == local["stages"][stage]["listing"]  # the listing's bytes, so every shard's path, rows, sha256
        assert fs.cat(f"{bucket_run}/{listing['path']}") == (tmp_path / "local" / listing["path"]).read_bytes()
        kept = stage_files(str(tmp_path / "local"), ManifestEntry.model_validate(local["stages"][stage])).kept
        assert len(kept) == listing["shards"] > 0
        for entry in kept:
            assert fs.cat(f"{bucket_run}/{entry.path}") == (tmp_path / "local" / entry.path).read_bytes()
    index = json.loads(fs.cat(f"{bucket_run}/stages/tokenize/artifact/index.json"))
    assert index == json.loads((tmp_path / "local/stages/tokenize/artifact/index.json").read_text())
    assert index["splits"]["train"]["shards"]  # and every shard's sha256 in it is the same
    shards = "stages/pretrain/artifact/step-000004/shards"
    names = sorted(path.name for path in (tmp_path / "local" / shards).iterdir())  # the model and optimizer, as written
    assert names == sorted(path.rsplit("/", 1)[1] for path in fs.ls(f"{bucket_run}/{shards}", detail=False))
    assert all(fs.cat(f"{bucket_run}/{shards}/{n}") == (tmp_path / "local" / shards / n).read_bytes() for n in names)
    assert not fs.exists(f"{bucket_run}/run.lock")  # released at the end
    assert b"Progress bars disabled" in fs.cat(f"{bucket_run}/logs/ray.log")  # Ray's messages, copied up at the end
