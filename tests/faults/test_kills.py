"""Processes killed mid-run, as a crash or the out-of-memory killer would: the run ends (by itself,
or when started again) in output byte-identical to an undisturbed run, and no unit finished
before the kill is done again. (Killing the whole run, driver and Ray, is in
tests/pipeline/test_runner.py; a node of a cluster, in tests/pipeline/test_cluster.py.)"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import yaml

from crawl2model.catalog import load_config
from crawl2model.pipeline.runner import run
from crawl2model.pipeline.sample import write_sample_crawl

pytestmark = [pytest.mark.ray, pytest.mark.slow]


def config(tmp_path: Path, crawl: list[str], out: str) -> Path:
    path = tmp_path / f"{out}.yaml"
    path.write_text(yaml.safe_dump({
        "name": "kills", "output_dir": str(tmp_path / out), "seed": 1, "input": {"warc": crawl, "docs_per_shard": 4},
        "stages": [{"name": "extract", "type": "extract"},
                   {"name": "slow", "type": "example_stages:Slow", "seconds": 0.3}]}))
    return path


def start(path: Path) -> subprocess.Popen:
    """`pipeline run` in a process session of its own (the local_ray fixture puts the test stages
    on PYTHONPATH, so the subprocess and its workers import them)."""
    return subprocess.Popen([sys.executable, "-m", "crawl2model.cli", "run", str(path), "--no-progress"],
                            start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def wait_for_done(folder: Path, count: int, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline and len(list(folder.glob("*.json"))) < count:
        time.sleep(0.05)
    assert len(list(folder.glob("*.json"))) >= count, "the run did not get going"


def stage_workers(process: subprocess.Popen) -> list[psutil.Process]:
    """The Ray workers of a run that are running a stage now: Ray names a busy worker after its
    task (`ray::MapBatches(run_chain_task)->...`), an idle one `ray::IDLE`."""
    session = os.getsid(process.pid)
    found = []
    for candidate in psutil.process_iter(["cmdline"]):
        try:
            title = " ".join(candidate.info["cmdline"] or [])
            if os.getsid(candidate.pid) == session and title.startswith("ray::MapBatches("):
                found.append(candidate)
        except (psutil.Error, ProcessLookupError):
            continue
    return found


def outputs(run_dir: Path) -> dict[str, bytes]:
    return {str(p.relative_to(run_dir)): p.read_bytes() for p in sorted((run_dir / "stages").rglob("*.parquet"))}


def test_a_killed_worker_is_replaced_and_the_run_ends_as_an_undisturbed_one(local_ray, killer, tmp_path):
    crawl = [str(p) for p in write_sample_crawl(tmp_path / "crawl", seed=7, documents=120, files=3)]
    process = start(config(tmp_path, crawl, "killed"))
    try:
        done = tmp_path / "killed/stages/slow/_done"
        wait_for_done(done, 3)
        before = {p.name: p.stat().st_mtime_ns for p in done.glob("*.json")}
        deadline = time.time() + 60
        while not (workers := stage_workers(process)) and time.time() < deadline and process.poll() is None:
            time.sleep(0.02)  # between two tasks, no worker runs a stage
        assert workers, "no Ray worker running a stage"
        for worker in workers:
            worker.send_signal(signal.SIGKILL)
        output, _ = process.communicate(timeout=300)
    finally:
        if process.poll() is None:
            killer(process)
    assert process.returncode == 0, output.decode()[-2000:]
    assert {p.name: p.stat().st_mtime_ns for p in done.glob("*.json") if p.name in before} == before

    straight_config, nodes = load_config(config(tmp_path, crawl, "straight"))
    run(straight_config, nodes, show_progress=False)
    assert outputs(tmp_path / "killed") == outputs(tmp_path / "straight")
    assert len(outputs(tmp_path / "straight")) > 30


def test_ctrl_c_stops_the_run_says_how_to_resume_and_the_rerun_redoes_nothing(local_ray, killer, tmp_path):
    crawl = [str(p) for p in write_sample_crawl(tmp_path / "crawl", seed=7, documents=120, files=3)]
    path = config(tmp_path, crawl, "stopped")
    process = start(path)
    try:
        done = tmp_path / "stopped/stages/slow/_done"
        wait_for_done(done, 2)
        process.send_signal(signal.SIGINT)  # what Ctrl-C sends: to the driver
        output, _ = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            killer(process)
    text = output.decode()
    assert process.returncode == 130, text[-2000:]
    assert f"stopped. What finished is kept: `pipeline run {path}` resumes where this run stopped." in text
    assert "Traceback" not in text
    manifest = json.loads((tmp_path / "stopped/manifest.json").read_text())
    assert {entry["status"] for entry in manifest["stages"].values()} <= {"done", "pending"}  # nothing failed
    before = {p.name: p.stat().st_mtime_ns for p in done.glob("*.json")}

    again = subprocess.run([sys.executable, "-m", "crawl2model.cli", "run", str(path), "--no-progress"],
                           capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-2000:]
    assert {p.name: p.stat().st_mtime_ns for p in done.glob("*.json") if p.name in before} == before
