"""`pipeline run --address` against a real Ray cluster started with `ray start --head`, as
deploy/README.md describes, next to the tests' own embedded Ray."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml

from crawl2model.catalog import load_config
from crawl2model.pipeline.records import ManifestEntry
from crawl2model.pipeline.cluster import what_this_node_misses
from crawl2model.pipeline.runner import run
from crawl2model.pipeline.sample import write_sample_crawl
from crawl2model.pipeline.summary import stage_files
from tests.conftest import free_port

pytestmark = pytest.mark.ray
BIN = Path(sys.executable).parent


ENV = {**os.environ, "RAY_AUTH_MODE": "token"}  # `ray start` clusters want a token from every client


@pytest.fixture
def cluster(killer):
    """A one-node cluster in its own process session, torn down by killing that session."""
    port = free_port()
    temp_dir = tempfile.mkdtemp(prefix="ray-", dir="/tmp")  # Ray's socket paths must stay short
    process = subprocess.Popen(
        [str(BIN / "ray"), "start", "--head", f"--port={port}", "--num-cpus=2", "--include-dashboard=false",
         "--disable-usage-stats", "--block", f"--temp-dir={temp_dir}"],
        start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV)
    address = f"127.0.0.1:{port}"
    deadline = time.time() + 60
    while time.time() < deadline:
        status = subprocess.run([str(BIN / "ray"), "status", f"--address={address}"], capture_output=True, env=ENV)
        if status.returncode == 0 and b"Node status" in status.stdout:
            break
        time.sleep(1)
    else:
        killer(process)
        pytest.fail("ray start --head did not come up within 60 s")
    yield address
    killer(process)
    shutil.rmtree(temp_dir, ignore_errors=True)


def test_run_on_a_cluster_gives_the_same_shards(local_ray, cluster, tmp_path):
    crawl = [str(p) for p in write_sample_crawl(tmp_path / "crawl", seed=3, documents=60, files=2)]

    def config(out: str) -> Path:
        path = tmp_path / f"{out}.yaml"
        path.write_text(yaml.safe_dump({"name": out, "output_dir": str(tmp_path / out),
                                        "input": {"warc": crawl, "docs_per_shard": 10},
                                        "stages": [{"name": "extract", "type": "extract"}]}))
        return path

    result = subprocess.run([str(BIN / "pipeline"), "run", str(config("remote")), "--address", cluster,
                             "--no-progress"], capture_output=True, text=True, timeout=300, env=ENV)
    assert result.returncode == 0, result.stderr[-3000:]
    remote = yaml.safe_load((tmp_path / "remote/manifest.json").read_text())

    embedded_config, nodes = load_config(config("embedded"))
    embedded = run(embedded_config, nodes, show_progress=False)
    for stage in ("read", "extract"):
        remote_entry = ManifestEntry.model_validate(remote["stages"][stage])
        assert [f.sha256 for f in stage_files(str(tmp_path / "remote"), remote_entry).kept] == \
               [f.sha256 for f in stage_files(str(tmp_path / "embedded"), embedded.stages[stage]).kept]
        assert remote_entry.listing.sha256 == embedded.stages[stage].listing.sha256  # listed to the byte
    assert remote["stages"]["extract"]["docs_out"] > 40


def test_a_node_says_what_it_cannot_reach(tmp_path):
    """What the task each node runs before a run on a cluster answers (the cluster itself:
    tests/pipeline/test_multinode.py): the probe's own bytes, not just a file at its path."""
    probe, data = tmp_path / "run" / ".probe-1", tmp_path / "words.txt"
    probe.parent.mkdir()
    probe.write_text("token")
    data.write_text("ok")
    host, missing = what_this_node_misses(str(probe), "token", {str(data): 2})
    assert host == socket.gethostname() and missing == []
    _, missing = what_this_node_misses(str(probe), "another", {str(data): 3, str(tmp_path / "gone"): 1})
    assert missing == [f"output_dir {tmp_path / 'run'} (another folder at that path)",
                       f"{data} (2 bytes, not 3)", f"{tmp_path / 'gone'} (not there)"]
    _, missing = what_this_node_misses(str(tmp_path / "elsewhere" / ".probe-1"), "token", {})
    assert missing == [f"output_dir {tmp_path / 'elsewhere'} (not there)"]
