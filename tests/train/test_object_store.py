"""Training on an object store (a real S3 server, SeaweedFS): token shards read through local
copies named by their sha256, checkpoints and metrics written to the store, and a killed job that
resumes from the checkpoints it finds there, ending where an undisturbed one ends, tensor for
tensor. Once as the `pretrain` stage of a `pipeline run` whose output_dir is on the store (the
whole process session killed: driver, Ray and the training task), once as `pipeline train` reading
that run's token shards and writing to another prefix of the store. And Ray Train (`workers:`
above 1) keeps its own files on the run's file system too."""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from crawl2model.pipeline import storage

STEPS = 16  # a checkpoint every 2: the kill lands after the first, well before the last
TRAIN = {"model": {"dim": 32, "n_layers": 1, "n_heads": 2}, "seq_len": 32, "batch_size": 4, "steps": STEPS,
         "warmup_steps": 1, "checkpoint_interval": 2, "eval_interval": 8, "log_interval": 1, "seed": 2}


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "crawl2model.cli", *args]


def wait_for(fs, path: str, process: subprocess.Popen, log: Path, timeout: float = 300) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline and process.poll() is None and not fs.exists(path):
        time.sleep(0.02)
    assert fs.exists(path), f"{path} never appeared (exit status {process.poll()}): {log.read_text()[-3000:]}"


def checkpoints(fs, folder: str) -> dict[str, tuple]:
    """Every file of the checkpoints under `folder` (a bucket path): its ETag and LastModified."""
    fs.invalidate_cache()
    return {path[len(folder) + 1:]: (info["ETag"], info["LastModified"])
            for path, info in fs.find(folder, detail=True).items() if "/step-" in path and ".tmp-" not in path}


def steps_logged(fs, folder: str) -> list[int]:
    return [json.loads(line)["step"] for line in fs.cat(f"{folder}/metrics.jsonl").decode().splitlines()]


def final_state(fs, folder: str) -> dict:
    import torch

    with fs.open(f"{folder}/step-{STEPS:06d}/state.pt") as fh:
        return torch.load(fh, weights_only=True)


@pytest.fixture(scope="module")
def store(object_store, killer, tmp_path_factory):
    """A `pipeline run` (sample crawl to pretrain) with output_dir on the store, its process session
    SIGKILLed once the training has written a checkpoint there, and run again to the end. Returns
    what was seen before and after."""
    fs, bucket = object_store["fs"], object_store["bucket"]
    root = tmp_path_factory.mktemp("object-store")
    env = {**os.environ, **object_store["env"], storage.CACHE_ENV: str(root / "cache"),
           "OMP_NUM_THREADS": "1"}  # torch's threads as the stage sets them (cpus: 1): the same floats
    run = f"{bucket}/train/run"
    config = root / "run.yaml"
    config.write_text(yaml.safe_dump({
        "name": "store", "output_dir": f"s3://{run}", "seed": 2, "input": {"sample": {"documents": 40, "files": 2}},
        "stages": [{"name": "extract", "type": "extract"},
                   {"name": "bpe", "type": "train_tokenizer", "vocab_size": 300},
                   {"name": "tokenize", "type": "tokenize", "val_fraction": 0.1},
                   {"name": "pretrain", "type": "pretrain", **TRAIN}]}))
    artifact = f"{run}/stages/pretrain/artifact"
    started = time.perf_counter()
    log = root / "killed.log"
    with open(log, "wb") as output:
        process = subprocess.Popen(cli("run", str(config), "--no-progress"), env=env, start_new_session=True,
                                   stdout=output, stderr=subprocess.STDOUT)
    try:
        wait_for(fs, f"{artifact}/step-000002/state.pt", process, log)
    finally:
        if process.poll() is None:
            killer(process)
    killed_at = time.perf_counter() - started
    before = checkpoints(fs, artifact)
    cache = root / "cache"
    cached = {str(p.relative_to(cache)): (p.stat().st_ino, p.stat().st_mtime_ns) for p in cache.rglob("*") if p.is_file()}
    started = time.perf_counter()
    again = subprocess.run(cli("run", str(config), "--no-progress"), env=env, capture_output=True, text=True,
                           timeout=600)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    print(f"\nkilled after {killed_at:.1f} s, rerun {time.perf_counter() - started:.1f} s")
    return {"fs": fs, "bucket": bucket, "run": run, "artifact": artifact, "env": env, "root": root,
            "before": before, "cached": cached}


@pytest.fixture(scope="module")
def straight(store):
    """The same training, undisturbed: `pipeline train` on the run's token shards (read from the
    store) into another prefix of it."""
    settings = store["root"] / "train.yaml"
    settings.write_text(yaml.safe_dump(TRAIN))
    out = f"{store['bucket']}/train/straight"
    started = time.perf_counter()
    done = subprocess.run(cli("train", f"s3://{store['run']}", "--config", str(settings), "--out", f"s3://{out}"),
                          env=store["env"], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    print(f"\nstraight `pipeline train` {time.perf_counter() - started:.1f} s")
    return {"out": out, "settings": settings, "output": done.stdout}


@pytest.mark.ray  # `pipeline run` starts its own Ray, in its own process
@pytest.mark.slow
def test_a_killed_run_on_the_store_resumes_from_its_checkpoints_there(store, straight, same_state):
    fs, artifact, before = store["fs"], store["artifact"], store["before"]
    written = sorted({name.split("/")[0] for name in before if name.endswith("/state.pt")})
    assert written and f"step-{STEPS:06d}" not in written, f"not killed mid-training: {written}"
    print(f"\nthe run was killed after {written[-1]}")
    after = checkpoints(fs, artifact)
    assert {name: after[name] for name in before if name.endswith("/state.pt")} == \
        {name: stamp for name, stamp in before.items() if name.endswith("/state.pt")}  # kept, not written again
    assert f"step-{STEPS:06d}/state.pt" in after
    assert steps_logged(fs, artifact) == list(range(1, STEPS + 1))  # continued, each step logged once
    assert same_state(final_state(fs, artifact), final_state(fs, straight["out"]))

    index = json.loads(fs.cat(f"{artifact.replace('pretrain', 'tokenize')}/index.json"))
    shards = [entry for split in index["splits"].values() for entry in split["shards"]]
    cache = store["root"] / "cache"
    assert {f"{entry['sha256']}/{Path(entry['path']).name}" for entry in index["splits"]["train"]["shards"]} <= \
        set(store["cached"])  # the killed run had its training shards copied
    for entry in shards:  # each shard copied once, named by its sha256, and read from there by the resumed run
        copy = cache / entry["sha256"] / Path(entry["path"]).name
        assert hashlib.sha256(copy.read_bytes()).hexdigest() == entry["sha256"]
        if f"{entry['sha256']}/{copy.name}" in store["cached"]:
            stat = copy.stat()
            assert store["cached"][f"{entry['sha256']}/{copy.name}"] == (stat.st_ino, stat.st_mtime_ns)
    assert not list(cache.rglob("*.part"))


@pytest.mark.ray  # `pipeline run` starts its own Ray, in its own process
@pytest.mark.slow
def test_pipeline_train_reads_a_run_on_the_store_and_resumes_from_its_checkpoints_there(store, straight, killer,
                                                                                         same_state):
    """`pipeline train` on the token shards of the run on the store, into another prefix of it:
    killed once it has written a checkpoint there, then started again, it says it resumed from
    that checkpoint and ends as the undisturbed `pipeline train` did."""
    fs, root = store["fs"], store["root"]
    out = f"{store['bucket']}/train/resumed"
    command = cli("train", f"s3://{store['run']}", "--config", str(straight["settings"]), "--out", f"s3://{out}")
    log = root / "train-killed.log"
    with open(log, "wb") as output:
        process = subprocess.Popen(command, env=store["env"], start_new_session=True, stdout=output,
                                   stderr=subprocess.STDOUT)
    try:
        wait_for(fs, f"{out}/step-000002/state.pt", process, log)
    finally:
        if process.poll() is None:
            killer(process)
    before = checkpoints(fs, out)
    written = sorted(name.split("/")[0] for name in before if name.endswith("/state.pt"))
    assert f"step-{STEPS:06d}" not in written, f"not killed mid-training: {written}"
    print(f"\n`pipeline train` was killed after {written[-1]}")

    again = subprocess.run(command, env=store["env"], capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert f"resumed from s3://{out}/{written[-1]} at step {int(written[-1][5:])}" in again.stdout, again.stdout
    after = checkpoints(fs, out)
    assert {name: after[name] for name in before if name.endswith("/state.pt")} == \
        {name: stamp for name, stamp in before.items() if name.endswith("/state.pt")}
    assert steps_logged(fs, out) == list(range(1, STEPS + 1))
    assert same_state(final_state(fs, out), final_state(fs, straight["out"]))
    assert "resumed" not in straight["output"]


def test_ray_train_keeps_its_files_on_the_file_system_of_the_run():
    """`workers:` above 1 (Ray Train): its storage_path under an fsspec URL goes through fsspec's
    file system, configured as the run's (pyarrow's own, made from the URL, would be AWS's)."""
    import pickle

    from crawl2model.stages.pretrain import ray_train_storage

    assert ray_train_storage("/runs/demo/phases/ray-train") == {"storage_path": "/runs/demo/phases/ray-train"}
    options = ray_train_storage("memory://store/run/phases/ray-train")
    filesystem = pickle.loads(pickle.dumps(options["storage_filesystem"]))  # as Ray ships it to its controller
    with filesystem.open_output_stream(f"{options['storage_path']}/marker") as fh:
        fh.write(b"ray train")
    assert storage.read_bytes("memory://store/run/phases/ray-train/marker") == b"ray train"
