"""One run at a time per output directory (pipeline/lock.py): a second run is refused with who
holds the directory, a lock whose holder is gone is taken over, and object stores lock through a
conditional put."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from crawl2model.pipeline.lock import LockedError, RunLock


def test_a_second_run_is_refused_and_told_who_holds_the_directory(tmp_path):
    with RunLock(str(tmp_path)):
        with pytest.raises(LockedError, match=f"pid {os.getpid()} on"):
            RunLock(str(tmp_path)).acquire()
    with RunLock(str(tmp_path)):  # released: free again
        pass
    assert not (tmp_path / "run.lock").exists()


def test_the_lock_of_a_dead_process_is_taken_over(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    holder = json.loads(RunLock(str(tmp_path))._content())
    (tmp_path / "run.lock").write_text(json.dumps({**holder, "pid": int(dead.stdout), "token": "gone"}))
    with RunLock(str(tmp_path)) as lock:
        assert json.loads((tmp_path / "run.lock").read_text())["token"] == lock.token


def test_a_lock_not_refreshed_within_its_lease_is_taken_over(tmp_path):
    (tmp_path / "run.lock").write_text(json.dumps({"host": "elsewhere", "pid": 1, "token": "old", "heartbeat": 0}))
    with pytest.raises(LockedError):
        RunLock(str(tmp_path), lease=1e12).acquire()
    with RunLock(str(tmp_path), lease=60) as lock:
        assert json.loads((tmp_path / "run.lock").read_text())["token"] == lock.token


def test_a_run_refuses_a_locked_directory_before_any_work(tmp_path):
    from crawl2model.catalog import parse_config
    from crawl2model.pipeline.runner import run

    config, nodes = parse_config({"name": "x", "output_dir": str(tmp_path / "out"), "input": {"sample": {}},
                                  "stages": [{"name": "extract", "type": "extract"}]})
    with RunLock(config.output_dir):
        with pytest.raises(LockedError, match="another run holds"):
            run(config, nodes, show_progress=False)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == []  # no manifest, no stage folder


@pytest.mark.slow
def test_object_stores_lock_with_a_conditional_put(object_store, monkeypatch):
    monkeypatch.setenv("FSSPEC_S3", object_store["env"]["FSSPEC_S3"])
    import fsspec.config

    fsspec.config.set_conf_env(fsspec.config.conf)
    run_dir = f"s3://{object_store['bucket']}/locked"
    with RunLock(run_dir):
        with pytest.raises(LockedError, match="another run holds"):
            RunLock(run_dir).acquire()
    assert not object_store["fs"].exists(f"{object_store['bucket']}/locked/run.lock")
