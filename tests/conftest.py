"""Shared fixtures: where the real data lives, and one local Ray for the tests that need it."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"


def pytest_collection_modifyitems(config, items):
    """Tests marked `shared` skip only when ../shared/data is absent."""
    if SHARED_DATA.is_dir():
        return
    skip = pytest.mark.skip(reason=f"real data not found at {SHARED_DATA}")
    for item in items:
        if "shared" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    return SHARED_DATA


@pytest.fixture(scope="session")
def local_ray():
    """One embedded Ray (2 CPUs) for the whole session; the runner reuses it instead of starting its own."""
    import ray

    paths = [str(ROOT / "tests" / "pipeline"), os.environ.get("PYTHONPATH", "")]
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, paths))  # test stages, for workers and subprocesses
    sys.path.insert(0, paths[0])
    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING",
             runtime_env={"env_vars": {"PYTHONPATH": os.environ["PYTHONPATH"]}})
    yield ray
    ray.shutdown()


def kill_session(process: subprocess.Popen) -> None:
    """SIGKILL a process started with start_new_session=True and everything it started (Ray's
    raylet, GCS, workers), as a crash or an out-of-memory kill would."""
    session = os.getsid(process.pid)
    for pid in [int(p) for p in os.listdir("/proc") if p.isdigit()]:
        try:
            if os.getsid(pid) == session:
                os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    process.wait()


@pytest.fixture(scope="session")
def killer():
    return kill_session
