"""A local run's embedded Ray must not be reachable from the network: every TCP port that Ray's
processes (GCS, raylet, object manager, agents, the driver, the workers) listen on is on loopback.

Ray starts in a subprocess (its own session, so every process it starts can be found, and the
session's `local_ray` stays untouched), runs a task and an actor so that workers listen too, and
waits while this test lists the listening sockets of the whole session."""
from __future__ import annotations

import ipaddress
import os
import subprocess
import sys
import textwrap

import pytest

psutil = pytest.importorskip("psutil")

pytestmark = pytest.mark.ray

DRIVER = textwrap.dedent("""
    import sys
    from types import SimpleNamespace

    import ray

    from crawl2model.pipeline.config import RayConfig
    from crawl2model.pipeline.runner import connect

    assert connect(SimpleNamespace(ray=RayConfig(num_cpus=2)), None)

    @ray.remote
    def task():
        return 1

    @ray.remote
    class Actor:
        def ping(self):
            return 1

    actor = Actor.remote()
    assert ray.get([task.remote(), task.remote(), actor.ping.remote()]) == [1, 1, 1]
    print("ready", flush=True)
    sys.stdin.readline()  # until the test has looked
    ray.shutdown()
""")


def _on_loopback(host: str) -> bool:
    address = ipaddress.ip_address(host.split("%")[0])
    mapped = getattr(address, "ipv4_mapped", None)  # [::ffff:127.0.0.1], how gRPC binds 127.0.0.1
    return (mapped or address).is_loopback


def _listeners(session: int) -> list[tuple[str, int, str, int]]:
    found = []
    for process in psutil.process_iter(["pid", "name"]):
        try:
            if os.getsid(process.pid) != session:
                continue
            found += [(c.laddr.ip, c.laddr.port, process.info["name"], process.pid)
                      for c in process.net_connections("tcp") if c.status == psutil.CONN_LISTEN]
        except (psutil.Error, ProcessLookupError, PermissionError):
            continue
    return found


def test_local_ray_listens_on_loopback_only(killer):
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}  # a local run
    driver = subprocess.Popen([sys.executable, "-c", DRIVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, env=env, start_new_session=True)
    try:
        lines = []
        for line in driver.stdout:
            lines.append(line)
            if line.strip() == "ready":
                break
        else:
            pytest.fail("the driver did not start Ray:\n" + "".join(lines[-40:]))
        listeners = _listeners(os.getsid(driver.pid))
        driver.stdin.write("\n")
        driver.stdin.flush()
        driver.wait(timeout=60)
    finally:
        if driver.poll() is None:
            killer(driver)

    names = {name for _, _, name, _ in listeners}
    assert {"gcs_server", "raylet"} <= names, f"Ray's listeners were not found: {listeners}"
    exposed = [entry for entry in listeners if not _on_loopback(entry[0])]
    assert not exposed, f"listening beyond loopback (host, port, process, pid): {exposed}"
