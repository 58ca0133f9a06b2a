"""A full disk, for real: a write that fails leaves no temporary file, says which file and that the
disk is full (its errno kept), and a run that fails on it ends with that one line, its manifest
saying which stage failed and why, not `running`.

The disk is a 1 MiB tmpfs mounted inside a user and mount namespace (`unshare -Urm`, no root
needed where unprivileged user namespaces are allowed), so the kernel itself answers ENOSPC;
where that is not allowed, those tests skip and /dev/full (every write to it fails with ENOSPC)
stands in for the full disk of the temporary file."""
from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import pytest
import yaml

from crawl2model.pipeline import storage

ROOT = Path(__file__).resolve().parents[2]


def _namespaces_work() -> bool:
    """Whether this user can mount a tmpfs in a user and mount namespace of its own."""
    if shutil.which("unshare") is None or not sys.platform.startswith("linux"):
        return False
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        try:
            probe = subprocess.run(["unshare", "-Urm", "mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", folder],
                                   capture_output=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            return False
    return probe.returncode == 0


needs_namespaces = pytest.mark.skipif(not _namespaces_work(), reason="cannot mount a tmpfs in a user namespace "
                                      "here (unshare -Urm; unprivileged user namespaces may be off)")


def on_a_tiny_disk(disk: Path, command: str, size: str = "1m", timeout: float = 60,
                   pythonpath: str = "") -> subprocess.CompletedProcess:
    """Run `command` (sh) with a `size` tmpfs mounted on `disk`, in a namespace of its own: the
    tmpfs goes away with it, so `command` copies out whatever is to be looked at afterwards."""
    disk.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}  # its own Ray, not the tests'
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [pythonpath, env.get("PYTHONPATH", "")]))
    return subprocess.run(["unshare", "-Urm", "sh", "-c", f"mount -t tmpfs -o size={size} tmpfs '{disk}' && {command}"],
                          capture_output=True, text=True, timeout=timeout, env=env)


WRITE_ON_A_FULL_DISK = textwrap.dedent("""
    import json, os, sys
    from crawl2model.pipeline import storage

    disk, target, sync = sys.argv[1], sys.argv[2], sys.argv[3] == "sync"
    storage.write_bytes_atomic(target, b"the old content", sync=sync)
    try:
        storage.write_bytes_atomic(target, os.urandom(2 << 20), sync=sync)  # 2 MiB on a 1 MiB disk
        raised = None
    except OSError as error:
        raised = {"type": type(error).__name__, "errno": error.errno, "message": str(error),
                  "cause": error.__cause__ is not None and error.__cause__.errno}
    files = sorted(os.path.relpath(os.path.join(d, f), disk) for d, _, fs in os.walk(disk) for f in fs)
    old = open(storage.filesystem(target)[1], "rb").read().decode()
    print(json.dumps({"raised": raised, "files": files, "old": old}))
""")


@needs_namespaces
@pytest.mark.parametrize("how", ["sync", "fsspec", "file-url"])
def test_an_atomic_write_on_a_full_disk_removes_its_temporary_and_names_the_file(tmp_path, how):
    """Locally with fsync (records), locally through fsspec (shards), and through a file:// URL."""
    disk = tmp_path / "disk"
    target = f"{'file://' if how == 'file-url' else ''}{disk}/stages/extract/kept/part-00003.parquet"
    script = tmp_path / "write.py"
    script.write_text(WRITE_ON_A_FULL_DISK)
    done = on_a_tiny_disk(disk, f"exec '{sys.executable}' '{script}' '{disk}' '{target}' "
                                f"{'sync' if how == 'sync' else 'plain'}")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["files"] == ["stages/extract/kept/part-00003.parquet"]  # no part-00003.parquet.tmp-*
    assert result["old"] == "the old content"  # the file written before is whole, as it was
    assert result["raised"] == {"type": "OSError", "errno": errno.ENOSPC, "cause": errno.ENOSPC,
                                "message": f"[Errno 28] no space left on device while writing {target}"}


@pytest.mark.parametrize("sync", [True, False])
def test_a_write_that_fails_with_enospc_on_dev_full_leaves_no_temporary(tmp_path, monkeypatch, sync):
    """Where no tmpfs can be mounted: the temporary name the write will take is made a link to
    /dev/full, so the kernel fails the write with ENOSPC as on a full disk."""
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full here")
    target = tmp_path / "stages" / "extract" / "kept" / "part-00003.parquet"
    target.parent.mkdir(parents=True)
    monkeypatch.setattr(storage, "uuid", types.SimpleNamespace(uuid4=lambda: types.SimpleNamespace(hex="0123456789ab")))
    os.symlink("/dev/full", f"{target}.tmp-01234567")
    with pytest.raises(OSError) as raised:
        storage.write_bytes_atomic(str(target), b"x" * 100_000, sync=sync)
    assert os.listdir(target.parent) == []  # the temporary (here the link) is gone, and no file came of it
    assert os.path.exists("/dev/full")
    assert str(raised.value) == f"[Errno 28] no space left on device while writing {target}"
    assert raised.value.errno == errno.ENOSPC and raised.value.__cause__.errno == errno.ENOSPC


def test_a_manifest_that_cannot_be_written_does_not_hide_the_runs_error(tmp_path, caplog):
    """Recording a failure is best effort: the run directory here is under a file, so the manifest
    cannot be written; the stage is marked failed in memory, the problem logged, nothing raised."""
    from crawl2model.catalog import parse_config
    from crawl2model.pipeline.records import Manifest, ManifestEntry
    from crawl2model.pipeline.runner import _record_failure

    (tmp_path / "file").write_text("not a folder")
    config, _ = parse_config({"name": "x", "output_dir": str(tmp_path / "file" / "run"),
                              "input": {"sample": {"documents": 40}}, "stages": [{"name": "extract", "type": "extract"}]})
    manifest = Manifest(stages={"read": ManifestEntry(status="running", fingerprint="f")})
    error = OSError(errno.ENOSPC, f"no space left on device while writing {tmp_path}/x.parquet")
    _record_failure(config, manifest, error)
    assert manifest.stages["read"].status == "failed"
    assert manifest.stages["read"].error == f"no space left on device while writing {tmp_path}/x.parquet"
    assert "could not record the failure" in caplog.text


RUN_ON_A_FULL_DISK = """
    cd '{tmp}' && '{python}' -m crawl2model.cli run crawl.yaml --no-progress > stdout.txt 2> stderr.txt
    code=$?
    cp -a '{disk}/.' '{tmp}/after/'
    exit $code
"""


@needs_namespaces
@pytest.mark.ray
@pytest.mark.slow
def test_a_run_that_fills_the_disk_says_which_file_and_leaves_no_temporaries(tmp_path):
    """A whole `pipeline run` (its own Ray) whose output_dir is a 1 MiB disk and whose shards need
    about 3 MiB: it ends with a non-zero code and one error line naming the stage, the unit, the
    file and the full disk, then what to do; no temporary file anywhere, and a manifest where the
    failing stage failed, with the same error."""
    import random
    import string

    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = random.Random(5)  # letters at random: zstd cannot squeeze them under the disk's size
    texts = ["".join(rng.choice(string.ascii_letters + " ") for _ in range(2000)) for _ in range(800)]
    pq.write_table(pa.table({"id": [f"d{i}" for i in range(800)], "text": texts}), tmp_path / "docs.parquet")
    disk, after = tmp_path / "disk", tmp_path / "after"
    after.mkdir()
    output_dir = disk / "run"
    (tmp_path / "crawl.yaml").write_text(yaml.safe_dump({
        "name": "full", "output_dir": str(output_dir), "ray": {"num_cpus": 2},
        "input": {"parquet": [str(tmp_path / "docs.parquet")], "docs_per_shard": 50},
        "stages": [{"name": "loud", "type": "example_stages:Shout"}]}))
    done = on_a_tiny_disk(disk, RUN_ON_A_FULL_DISK.format(tmp=tmp_path, python=sys.executable, disk=disk),
                          timeout=300, pythonpath=str(ROOT / "tests" / "pipeline"))  # example_stages
    stderr = (tmp_path / "stderr.txt").read_text()
    lines = stderr.strip().splitlines()
    last = next((line for line in lines if line.startswith("error: ")), lines[-1])
    assert done.returncode not in (0, 124, 137), done.stderr + stderr[-3000:]
    left = [p.relative_to(after) for p in after.rglob("*") if ".tmp-" in p.name]
    assert left == [], f"temporary files left: {left}"
    assert last.startswith("error: stage '") and ": no space left on device while writing " in last, stderr[-3000:]
    assert lines[lines.index(last) + 1].startswith("  free some space, then `pipeline run ")
    written = last.split(" while writing ", 1)[1]
    assert written.startswith(f"{output_dir}/stages/") and written.endswith(".parquet")

    assert (after / "run" / "manifest.json").exists()  # the run wrote it before the disk filled
    stages = json.loads((after / "run" / "manifest.json").read_text())["stages"]
    assert "running" not in [s["status"] for s in stages.values()], stages
    failed = {name: s for name, s in stages.items() if s["status"] == "failed"}
    (name, entry), = failed.items()
    assert last.startswith(f"error: stage '{name}' failed on ") and last.endswith(f": {entry['error']}")
