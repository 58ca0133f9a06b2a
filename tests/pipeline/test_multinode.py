"""`pipeline run --address` on a real three-node Ray cluster, with the run's inputs and output on a
real S3 server (SeaweedFS).

The head node (`ray start --head`) runs beside the driver, as a head node usually does. Each of
the two worker nodes is `ray start --address` inside its own user, mount and UTS namespace
(`unshare -Urmu`), with a private tmpfs over /tmp and /dev/shm and a host name of its own: like a
second machine, it cannot read anything the driver has under /tmp (every test's folder), and the
done records it writes name it. All three are separate raylets with their own resources.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml

from crawl2model.catalog import load_config
from crawl2model.diff.compare import compare
from crawl2model.pipeline.runner import run
from tests.conftest import ROOT, free_port, kill_session

pytestmark = [pytest.mark.ray, pytest.mark.slow]
BIN = Path(sys.executable).parent
WORKERS = ("crawl-node-1", "crawl-node-2")


class Cluster:
    """A head node here and worker nodes in namespaces of their own, all on 127.0.0.1."""

    def __init__(self, env: dict[str, str]):
        self.env = env
        self.temp_dir = tempfile.mkdtemp(prefix="ray-", dir="/tmp")  # Ray's socket paths must stay short
        self.address = f"127.0.0.1:{free_port()}"
        self.processes: dict[str, subprocess.Popen] = {}
        self._start("head", ["--head", f"--port={self.address.split(':')[1]}", "--include-dashboard=false",
                             f"--temp-dir={self.temp_dir}", "--num-cpus=1"])
        for name in WORKERS:
            self.add_worker(name)

    def _start(self, name: str, args: list[str], namespace: str | None = None) -> None:
        command = [str(BIN / "ray"), "start", *args, "--node-ip-address=127.0.0.1", "--disable-usage-stats",
                   "--block", f"--dashboard-agent-listen-port={free_port()}"]
        if namespace is not None:  # private /tmp and /dev/shm, its own host name; the network is shared
            command = ["unshare", "-Urmu", "sh", "-c", "mount -t tmpfs tmpfs /tmp && mount -t tmpfs tmpfs /dev/shm"
                       f" && hostname {namespace} && exec \"$@\"", "sh", *command]
        self.processes[name] = subprocess.Popen(command, start_new_session=True, env=self.env,
                                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.wait_for_nodes(len(self.processes))

    def add_worker(self, name: str) -> None:
        self._start(name, [f"--address={self.address}", "--num-cpus=2"], namespace=name)

    def restart(self, name: str) -> None:
        """Stop what is left of a node, wait until the cluster has dropped it, and start it again."""
        kill_session(self.processes[name])
        self.wait_for_nodes(len(self.processes) - 1)
        self.add_worker(name)

    def wait_for_nodes(self, count: int, timeout: float = 90) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            status = subprocess.run([str(BIN / "ray"), "status", f"--address={self.address}"], capture_output=True,
                                    text=True, env=self.env)
            active = status.stdout.split("Active:")[-1].split("Pending:")[0]
            if status.returncode == 0 and active.count(" node_") == count:
                return
            time.sleep(1)
        raise RuntimeError(f"the cluster did not reach {count} nodes within {timeout:.0f} s")

    def raylet(self, name: str) -> int:
        """The pid of a node's raylet: the process named so in that node's process session."""
        session = self.processes[name].pid
        for pid in (int(p) for p in os.listdir("/proc") if p.isdigit()):
            try:
                if os.getsid(pid) == session and Path(f"/proc/{pid}/comm").read_text().strip() == "raylet":
                    return pid
            except (OSError, ProcessLookupError):
                continue
        raise LookupError(f"no raylet for node {name}")

    def stop(self) -> None:
        for process in self.processes.values():
            kill_session(process)
        shutil.rmtree(self.temp_dir, ignore_errors=True)


@pytest.fixture(scope="module")
def cluster(object_store):
    if subprocess.run(["unshare", "-Urmu", "true"], capture_output=True).returncode != 0:
        pytest.skip("user namespaces (unshare -Urmu) are not allowed here")
    env = {**os.environ, **object_store["env"], "RAY_AUTH_MODE": "token"}
    cluster = Cluster(env)
    yield cluster
    cluster.stop()


def pipeline(cluster: Cluster, config: Path, *args: str, wait: bool = True):
    """`pipeline run CONFIG --address` in its own process session, as a user runs it (not on a
    terminal: its progress comes in plain lines)."""
    env = {**cluster.env, "CRAWL2MODEL_CACHE": str(config.parent / "cache")}
    command = [str(BIN / "pipeline"), "run", str(config), "--address", cluster.address, *args]
    if not wait:
        return subprocess.Popen(command, env=env, start_new_session=True, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=1500)


def done_records(fs, run: str) -> dict[str, bytes]:
    """Every done record of a run on the object store (units' and phase tasks'), by key."""
    return {path: fs.cat(path) for path in fs.find(run) if "/_done/" in path and path.endswith(".json")}


def wait_for(condition, what: str, process: subprocess.Popen, timeout: float = 300) -> None:
    """Wait for `condition` while `process` runs; fail with its output if it ends first."""
    deadline = time.time() + timeout
    while not condition():
        if process.poll() is not None:
            out, err = process.communicate()
            raise AssertionError(f"the run ended ({process.returncode}) before {what}:\n{out[-2000:]}\n{err[-3000:]}")
        if time.time() > deadline:
            raise TimeoutError(f"waited {timeout:.0f} s for {what}")
        time.sleep(0.2)


def test_the_sample_crawl_on_three_nodes_matches_a_local_run(cluster, s3_here, demo_run, tmp_path):
    """examples/crawl.yaml through pretraining with its output (and so its generated input) on S3:
    every stage's shards, the tokenizer, token shards and checkpoint are those of the session's
    embedded local run, and the done records name each of the three nodes."""

    local_dir, _ = demo_run
    raw = yaml.safe_load((ROOT / "examples" / "crawl.yaml").read_text())
    object_store = s3_here
    bucket_run = f"{object_store['bucket']}/multinode/demo"
    raw["output_dir"] = f"s3://{bucket_run}"
    config = tmp_path / "crawl.yaml"
    config.write_text(yaml.safe_dump(raw))

    started = time.time()
    result = pipeline(cluster, config, "--until", "pretrain")
    assert result.returncode == 0, result.stderr[-3000:]
    print(f"three-node run through pretrain: {time.time() - started:.0f} s")

    diff = compare(str(local_dir), raw["output_dir"])
    ran = [stage for stage in diff.stages if stage.status_b == "done"]
    assert [s.stage for s in ran] == [s.stage for s in diff.stages][:len(ran)] and ran[-1].stage == "pretrain"
    assert [s.stage for s in ran if not s.identical] == []  # shards, removed rows, tokenizer, token shards
    fs, shards = object_store["fs"], "stages/pretrain/artifact/step-000060/shards"
    names = sorted(path.name for path in (local_dir / shards).iterdir())  # the model and optimizer, as written
    assert names == sorted(path.rsplit("/", 1)[1] for path in fs.ls(f"{bucket_run}/{shards}", detail=False))
    assert all(fs.cat(f"{bucket_run}/{shards}/{name}") == (local_dir / shards / name).read_bytes() for name in names)
    for tokens in ("stages/tokenize/artifact/index.json", "stages/bpe/artifact/tokenizer.json"):
        assert fs.cat(f"{bucket_run}/{tokens}") == (local_dir / tokens).read_bytes()

    hosts = {json.loads(data).get("host") for data in done_records(fs, bucket_run).values()}
    assert hosts == {socket.gethostname(), *WORKERS}  # every node did some of the work


def test_a_local_output_dir_the_nodes_cannot_see_is_refused_before_any_work(cluster, tmp_path):
    out = tmp_path / "out"
    config = tmp_path / "local.yaml"
    config.write_text(yaml.safe_dump({"name": "local", "output_dir": str(out),
                                      "input": {"sample": {"documents": 40, "files": 2}},
                                      "stages": [{"name": "extract", "type": "extract"}]}))
    result = pipeline(cluster, config)
    error = result.stderr
    print(error)
    assert result.returncode == 2, error[-3000:]
    assert "2 of 3 Ray nodes cannot reach this run's files" in error, error[-3000:]
    assert all(f"{name} (" in error for name in WORKERS) and f"output_dir {out} (not there)" in error
    assert "object store (s3://" in error and "mounted at the same path on every node" in error
    assert len(error.strip().splitlines()) <= 3  # one line, and where the log is
    manifest = json.loads((out / "manifest.json").read_text())
    assert {entry["status"] for entry in manifest["stages"].values()} == {"pending"}
    assert not list(out.glob("stages/*/_done/*.json")) and not list(out.glob(".probe-*"))


@pytest.fixture(scope="module")
def reference(local_ray, tmp_path_factory):
    """An undisturbed embedded local run of the config the kill tests run on the cluster."""
    folder = tmp_path_factory.mktemp("reference")
    config = kill_config(folder, str(folder / "run"))
    run(*load_config(config), show_progress=False)
    return str(folder / "run")


def kill_config(folder: Path, output_dir: str) -> Path:
    """The sample crawl in 24 shards through extraction and language ID."""
    path = folder / "kill.yaml"
    path.write_text(yaml.safe_dump({
        "name": "kill", "output_dir": output_dir, "seed": 11,
        "input": {"sample": {"documents": 240, "files": 4}, "docs_per_shard": 10},
        "stages": [{"name": "extract", "type": "extract"}, {"name": "langid", "type": "langid"}]}))
    return path


def killed_mid_extract(cluster: Cluster, object_store, tmp_path: Path, name: str, kill):
    """Start the kill config on the cluster, wait until extract has finished a few of its shards,
    snapshot every done record, call `kill(process)`. Returns (the run's URL, the snapshot, the
    `pipeline run` process, its config)."""
    fs, bucket_run = object_store["fs"], f"{object_store['bucket']}/multinode/{name}"
    config = kill_config(tmp_path, f"s3://{bucket_run}")
    process = pipeline(cluster, config, wait=False)
    done = f"{bucket_run}/stages/extract/_done"
    wait_for(lambda: fs.exists(done) and len(fs.ls(done, refresh=True)) >= 3, "extract's first shards", process)
    before = done_records(fs, bucket_run)
    assert len([p for p in before if "/extract/" in p]) < 24  # mid-stage
    kill(process)
    return f"s3://{bucket_run}", before, process, config


def assert_undisturbed(object_store, remote: str, reference: str, before: dict[str, bytes]) -> None:
    """The run's files are those of the undisturbed run, and each done record written before the
    kill is still the same bytes: no finished shard was done again."""
    diff = compare(reference, remote)
    assert diff.identical, [s.stage for s in diff.stages if not s.identical]
    after = done_records(object_store["fs"], remote.removeprefix("s3://"))
    assert {path: after.get(path) for path in before} == before


def test_a_worker_node_killed_mid_stage_ends_as_an_undisturbed_run(cluster, s3_here, reference, tmp_path):
    """SIGKILL of a worker node's raylet takes its workers and the blocks in its object store with
    it; the run goes on on the other two nodes."""
    def kill_node(_):
        os.kill(cluster.raylet(WORKERS[0]), signal.SIGKILL)

    remote, before, process, _ = killed_mid_extract(cluster, s3_here, tmp_path, "node-killed", kill_node)
    try:
        _, err = process.communicate(timeout=900)
        assert process.returncode == 0, err[-3000:]
    finally:  # the node back, for the tests after this one
        cluster.restart(WORKERS[0])
    assert_undisturbed(s3_here, remote, reference, before)


def test_the_driver_killed_mid_stage_resumes_to_an_undisturbed_run(cluster, s3_here, reference, tmp_path):
    """SIGKILL of `pipeline run` itself: the cluster drops its tasks, and the same command again
    takes over the run's lock, keeps every finished shard and does the rest."""
    remote, before, _, config = killed_mid_extract(cluster, s3_here, tmp_path, "driver-killed", kill_session)
    result = pipeline(cluster, config)
    assert result.returncode == 0, result.stderr[-3000:]
    said = result.stdout + result.stderr
    assert "stage extract: resumes, " in said, said[-2000:]
    assert_undisturbed(s3_here, remote, reference, before)
