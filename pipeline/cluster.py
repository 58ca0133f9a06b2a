"""Before a run on a cluster does any work: can every node reach the run's files?

A worker on another machine cannot read a path on the driver's disk, and a folder of the same
name on its own disk would be worse: it would take half of the run's shards where nobody looks.
So the driver writes a probe of random bytes into the output directory, and one task on each
node reads it back and checks the input files and data files the run names; when a node cannot,
the run is refused before any stage starts. Part of the runner (it knows Ray); a run on the
driver's own node alone is not checked.
"""
from __future__ import annotations

import os
import socket
import uuid

from crawl2model.pipeline import storage

ANSWER_SECONDS = 120  # a node that cannot run a tiny task within this is as good as unreachable


class UnreachableError(ValueError):
    """A node of the cluster cannot reach a file or folder the run needs."""


def check_nodes_reach(run_dir: str, files: list[str]) -> None:
    """Raise UnreachableError, naming the nodes and what they miss, unless every live node of the
    connected cluster reads the probe written into `run_dir` and finds each of `files` at the size
    the driver sees."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    nodes = sorted((n for n in ray.nodes() if n["Alive"]), key=lambda n: n["NodeID"])
    if [n["NodeID"] for n in nodes] == [ray.get_runtime_context().get_node_id()]:
        return
    probe, token = storage.join(run_dir, f".probe-{uuid.uuid4().hex[:12]}"), uuid.uuid4().hex
    storage.write_bytes_atomic(probe, token.encode())
    sizes = {path: storage.size(path) for path in files}
    look = ray.remote(num_cpus=0, max_retries=0)(what_this_node_misses)
    try:
        asked = [look.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False))
                 .remote(probe, token, sizes) for n in nodes]
        ready, _ = ray.wait(asked, num_returns=len(asked), timeout=ANSWER_SECONDS)
        alive = {n["NodeID"] for n in ray.nodes() if n["Alive"]}  # one lost meanwhile takes no work: not asked
        nodes, asked = zip(*[(n, a) for n, a in zip(nodes, asked) if a in ready or n["NodeID"] in alive])
        answers = [ray.get(a) if a in ready else (n["NodeManagerHostname"], ["did not answer"])
                   for n, a in zip(nodes, asked)]
    finally:
        storage.remove_tree(probe)
    missing = {f"{host} ({node['NodeID'][:8]})": what for node, (host, what) in zip(nodes, answers) if what}
    if missing:
        output = "output_dir" if storage.is_local(run_dir) else "the object store"
        raise UnreachableError(
            f"{len(missing)} of {len(nodes)} Ray nodes cannot reach this run's files: "
            + "; ".join(f"{node}: {', '.join(what)}" for node, what in missing.items())
            + f". Every node must reach {output} and the inputs: use an object store (s3://bucket/run) "
            "or a file system mounted at the same path on every node")


def what_this_node_misses(probe: str, token: str, sizes: dict[str, int | None]) -> tuple[str, list[str]]:
    """(this node's name, what it cannot reach: the output directory, then each file) -- run on
    every node by check_nodes_reach."""
    missing = []
    try:
        seen = storage.read_bytes(probe)
    except Exception as error:  # noqa: BLE001 - any failure to read it (no credentials, no route) is the answer
        seen = f"{type(error).__name__}: {error}"
    if seen != token.encode():
        why = "not there" if seen is None else "another folder at that path" if isinstance(seen, bytes) else seen
        missing.append(f"output_dir {_shown(probe.rsplit('/', 1)[0])} ({why})")
    for path, size in sizes.items():
        try:
            found = storage.size(path)
        except Exception as error:  # noqa: BLE001
            found = f"{type(error).__name__}: {error}"
        if found != size:
            why = "not there" if found is None else f"{found:,} bytes, not {size:,}" if isinstance(found, int) else found
            missing.append(f"{_shown(path)} ({why})")
    return socket.gethostname(), missing


def _shown(path: str) -> str:
    return path if "://" in path else os.path.normpath(path)
