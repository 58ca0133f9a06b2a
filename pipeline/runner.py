"""The runner: the only module that knows Ray.

It plans which stages run (fingerprints against the manifest, `--until`, `--force`), turns each
chain of stages into one streaming Ray Data pipeline (an operator per run of neighbouring stages
asking for the same resources: a task pool, or an actor pool when one has `setup()`), shows
progress, and writes stats.json and manifest.json as stages finish. Shards flow between stages by
path (each writes its Parquet and passes on the name) or, under `materialize: final`, in memory.
"""
from __future__ import annotations

import atexit
import json
import logging
import os
import shutil
import socket
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterator

import yaml

from crawl2model.pipeline import records, storage
from crawl2model.pipeline.cluster import UnreachableError, check_nodes_reach
from crawl2model.pipeline.config import RunConfig, source_node
from crawl2model.pipeline.global_stage import PhaseContext, phase_jobs
from crawl2model.pipeline.lock import RunLock
from crawl2model.pipeline.plan import (SOURCE, StageNode, ancestors, descendants, digest, fingerprinted, kept_in_memory,
                                       segments, source_inputs)
from crawl2model.pipeline.progress import Progress
from crawl2model.pipeline.records import DoneRecord, FileInfo, Manifest, ManifestEntry, ShardOutput, StageStats
from crawl2model.pipeline.summary import ListingError, finish, manifest_path, stage_files, write_manifest
from crawl2model.pipeline.sources import InputFile, list_input_files
from crawl2model.pipeline.failures import failed_stage, one_line
from crawl2model.pipeline.ray_log import ray_messages_to
from crawl2model.pipeline.reporting import Report, Reporter, drain, draining
from crawl2model.pipeline.worker import ChainWorker, run_chain_task, run_phase_task, run_source_task, tag_stage

log = logging.getLogger(__name__)


class PlanError(ValueError):
    """The run cannot go as asked: --until or --force names no stage, or a stage asks for more
    CPUs or GPUs than the cluster has."""


@dataclass
class Plan:
    nodes: list[StageNode]  # the reader first, then the stages in DAG order, fingerprinted
    to_run: set[str]
    cached: set[str]
    forced: set[str]  # named by --force, and everything after them; and stages whose outputs failed verification
    files: list[InputFile]
    stale: dict[str, str]  # a finished stage that re-runs because a file it wrote changed: why
    inputs: dict[str, dict] = field(default_factory=dict)  # per stage: what its fingerprint hashed (plan.fingerprinted)

    def node(self, name: str) -> StageNode:
        return next(n for n in self.nodes if n.name == name)


@dataclass(frozen=True)
class _Unit:
    """A shard a chain's first stage reads: its unit name and the parent's kept file."""

    unit: str
    kept: FileInfo


def run(config: RunConfig, nodes: list[StageNode], *, address: str | None = None, until: str | None = None,
        force: tuple[str, ...] = (), show_progress: bool = True, verify: bool = True) -> Manifest:
    """Run (or resume) the pipeline; returns the manifest. `nodes` come from `load_config`.
    `verify`: check the sha256 of every file a cached stage wrote (its size is always checked)."""
    with RunLock(config.output_dir):
        return _run(config, nodes, address, until, force, show_progress, verify)


def _run(config: RunConfig, nodes: list[StageNode], address: str | None, until: str | None,
         force: tuple[str, ...], show_progress: bool, verify: bool) -> Manifest:
    manifest = records.read(manifest_path(config.output_dir), Manifest) or Manifest()
    plan = make_plan(config, nodes, manifest, until=until, force=force, verify=verify)
    progress = Progress(enabled=show_progress)
    for name, why in plan.stale.items():
        progress.console.print(f"{name}: runs again: {why}", highlight=False, markup=False, soft_wrap=True)
    _prepare_dirs(plan)
    # The config as run, but for output_dir: the file lies in it, and that absolute path would make
    # one config run into two directories write different bytes (paths in outputs are never absolute)
    as_run = yaml.safe_dump(config.model_dump(mode="json", exclude={"output_dir"}), sort_keys=False)
    storage.write_bytes_atomic(storage.join(config.output_dir, "config.yaml"),
                               f"# output_dir: the folder this file is in\n{as_run}".encode())
    previous, manifest.stages = manifest.stages, {}
    for node in plan.nodes:  # listed in DAG order; `cached` says whether this invocation re-ran it
        if node.name in plan.to_run:
            manifest.stages[node.name] = ManifestEntry(status="pending", fingerprint=node.fingerprint)
        elif node.name in previous:
            manifest.stages[node.name] = previous[node.name].model_copy(update={"cached": node.name in plan.cached})
    _write_manifest(config, manifest)
    _announce(plan, manifest, progress)
    if not plan.to_run:
        return manifest

    with ray_messages_to(config.output_dir):
        started_ray = connect(config, address, user_code_paths(plan.nodes))
        try:
            import ray

            _check_feasible([n for n in plan.nodes if n.name in plan.to_run], ray.cluster_resources())
            _check_reach(config, plan)
            for chain in segments(plan.nodes, plan.to_run):
                _run_chain(config, plan, chain, manifest, progress)
        except BaseException as error:
            _record_failure(config, manifest, error)
            raise
        finally:
            progress.stop()
            if started_ray:
                import ray

                ray.shutdown()
    return manifest


def _announce(plan: Plan, manifest: Manifest, progress: Progress) -> None:
    """Say which stages the cache serves, and which resume with how much of their work done (after
    _prepare_dirs: a stage's folder holds only its own fingerprint's records)."""
    for node in plan.nodes:
        if node.name in plan.cached:
            entry = manifest.stages.get(node.name)
            progress.cached(node.name, entry and entry.docs_in, entry and entry.docs_out)
        elif node.name in plan.to_run:
            done = node.done_records()
            tasks = sum("/_done/" in path for path in storage.list_files(storage.join(node.directory, "phases"), ".json",
                                                                         recursive=True)) if node.is_global else 0
            if not done and not tasks:
                continue
            total = None
            if node.is_source:
                total = len(plan.files)
            elif all(parent in plan.cached for parent in node.after):
                total = len(_input_units(node, plan))
            progress.resumed(node.name, units=len(done), total=total, tasks=tasks,
                             docs_in=sum(r.docs_in for r in done), docs_out=sum(r.docs_out for r in done),
                             shards=sum(len(r.outputs) for r in done))


def make_plan(config: RunConfig, nodes: list[StageNode], manifest: Manifest, *, until: str | None = None,
              force: tuple[str, ...] = (), verify: bool = True) -> Plan:
    """Which stages run: those wanted (--until), not forced, and not finished under the same
    fingerprint with every file they recorded still there, at its recorded size (and sha256,
    with `verify`). A stage whose files changed runs again from scratch."""
    names = [SOURCE, *(n.name for n in nodes)]
    for name in [*force, *([until] if until else [])]:
        if name not in names:
            raise PlanError(f"no stage named '{name}'; stages: {', '.join(names)}")
    files = list_input_files(config.input, config.seed, config.output_dir)
    nodes = kept_in_memory([source_node(config), *nodes])
    inputs = {SOURCE: {"inputs": source_inputs(config.input, config.seed, config.output_dir, files)}}
    if not nodes[0].materialized:
        inputs[SOURCE]["inputs"]["kept"] = "in memory"
    nodes = fingerprinted(nodes, digest(inputs[SOURCE]["inputs"]), inputs)
    by_name = {n.name: n for n in nodes}
    if until and by_name[until].kept_in:  # its documents are written with those of the last stage it feeds
        until = by_name[until].kept_in[-1]
    wanted = ancestors(nodes, until) if until else set(names)
    forced = descendants(nodes, set(force))
    fingerprints = {n.name: n.fingerprint for n in nodes}
    cached, stale, hashes = set(), {}, {}
    for name in sorted(wanted - forced):
        entry = manifest.stages.get(name)
        if entry and entry.status == "done" and entry.fingerprint == fingerprints[name]:
            why = _changed_file(entry, config.output_dir, hashes if verify else None)
            if why is None:
                cached.add(name)
            else:
                stale[name] = why
    for node in reversed(nodes):  # a stage that runs reads what a cached parent kept in memory: it runs too
        if node.name in wanted - cached:
            cached -= {parent for parent in node.after if by_name[parent].kept_in}
    return Plan(nodes, wanted - cached, cached, forced | set(stale), files, stale, inputs)


def _changed_file(entry: ManifestEntry, run_dir: str, hashes: dict[str, str] | None) -> str | None:
    """Why a finished stage's files are not what its listing says, or None when they are: the
    listing is the file its manifest entry names, and each file it lists exists at its recorded
    size and, unless `hashes` is None, its recorded sha256 (`hashes` remembers the files already
    hashed: stages that pass their input on list their parent's). An entry without a listing (one
    an older version wrote, with its files inline) is stale: the stage runs again."""
    if entry.listing is None:
        return "its manifest entry lists no files (written by an older version)"
    try:
        files = stage_files(run_dir, entry)
    except ListingError as error:
        return str(error)
    for info in files.every():
        path = storage.absolute(info.path, run_dir)
        size = storage.size(path)
        if size is None:
            return f"{info.path} is missing"
        if size != info.bytes:
            return f"{info.path} has {size:,} bytes, its record {info.bytes:,}"
        if hashes is not None and info.sha256:
            if path not in hashes:
                hashes[path] = storage.sha256_of(path)
            if hashes[path] != info.sha256:
                return f"{info.path} is not the file its stage wrote (its sha256 differs)"
    return None


def _prepare_dirs(plan: Plan) -> None:
    """Clear a stage's directory when its fingerprint changed or it is forced; keep it to resume.
    Its artifact (a tokenizer, a model) is inside: a stage that re-runs never starts from an old one.
    The marker keeps what the fingerprint hashed, so `pipeline diff` can say why two runs differ
    (a cached stage's marker written by an older version, without it, gets it now)."""
    for name in plan.to_run | plan.cached:
        node = plan.node(name)
        marker = storage.join(node.directory, "_fingerprint.json")
        previous = storage.read_json(marker) or {}
        wanted = json.loads(json.dumps({"fingerprint": node.fingerprint, **plan.inputs.get(name, {})}, default=str))
        if name in plan.to_run and (name in plan.forced or previous.get("fingerprint") != node.fingerprint):
            storage.remove_tree(node.directory)
            previous = {}
        if previous != wanted and previous.get("fingerprint") in (None, node.fingerprint):
            storage.write_json(marker, wanted)


def connect(config: RunConfig, address: str | None, code_paths: list[str] = ()) -> bool:
    """Join the cluster at --address / RAY_ADDRESS / ray.address, or start an embedded local Ray.
    Returns whether this call started Ray (and so should stop it)."""
    import ray

    if ray.is_initialized():
        return False
    address = address or os.environ.get("RAY_ADDRESS") or config.ray.address
    if address:
        ray.init(address=address, runtime_env=config.ray.runtime_env or None, logging_level=logging.WARNING)
    else:  # local workers import user stages from where the driver found them, and nothing else from here
        env = dict(config.ray.runtime_env)
        paths = [*filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep)), *code_paths]
        env["env_vars"] = {"PYTHONPATH": os.pathsep.join(dict.fromkeys(paths)), **env.get("env_vars", {})}
        # Listen on loopback only: Ray's gRPC servers (GCS, raylet, object manager, driver, workers) bind
        # 127.0.0.1 only when the node IP is 127.0.0.1, else 0.0.0.0, and its agents bind the node IP. On
        # Linux ray.init turns a given 127.0.0.1 into the outward IP unless ENABLE_RAY_CLUSTER is off (as
        # on macOS/Windows). Only this driver reads it, during init; Ray's processes get the IP as an argument.
        from unittest import mock

        from ray._private import ray_constants

        with mock.patch.object(ray_constants, "ENABLE_RAY_CLUSTER", False), _in_an_empty_directory():
            ray.init(num_cpus=config.ray.num_cpus, runtime_env=env, include_dashboard=False,
                     logging_level=logging.WARNING, _node_ip_address="127.0.0.1")
    return True


@contextmanager
def _in_an_empty_directory() -> Iterator[None]:
    """Ray puts the directory it is started from first on every worker's sys.path, and makes it
    the workers' working directory: a file there named as a library (trafilatura.py) would
    shadow it inside the workers. So Ray starts from an empty directory of its own (removed at
    exit); user stage folders reach the workers through PYTHONPATH (user_code_paths), and stages
    make the paths they are given absolute."""
    home, empty = os.getcwd(), tempfile.mkdtemp(prefix="crawl2model-ray-")
    atexit.register(shutil.rmtree, empty, True)
    os.chdir(empty)
    try:
        yield
    finally:
        os.chdir(home)


def user_code_paths(nodes: list[StageNode]) -> list[str]:
    """The folders a user's stage modules (`mymodule:MyStage`, not installed) were imported from.
    Workers get these on their path, not the whole current directory: a file there named as a
    library (trafilatura.py) must not shadow it."""

    found = set()
    for node in nodes:
        if node.cls is None or node.cls.__module__.split(".")[0] == "crawl2model":
            continue
        file = getattr(sys.modules.get(node.cls.__module__), "__file__", None)
        if not file or "site-packages" in file:
            continue
        depth = node.cls.__module__.count(".") + (1 if file.endswith("__init__.py") else 0)
        found.add(str(Path(file).resolve().parents[depth]))
    return sorted(found)


def _run_chain(config: RunConfig, plan: Plan, chain: list[StageNode], manifest: Manifest, progress: Progress) -> None:
    import ray
    import ray.data
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False  # ours (pipeline.progress) counts documents per stage
    context.target_max_block_size = 1  # a block per shard row: else Ray Data packs a file's shards into
    # one block and a single task extracts them one after another while the other cores idle
    cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
    first = chain[0]
    for node in chain:
        manifest.stages[node.name].status = "running"
    _write_manifest(config, manifest)
    # on the driver's node: a worker node that dies must not take the run's progress with it
    here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
    reporter = ray.remote(num_cpus=0)(Reporter).options(scheduling_strategy=here).remote()
    report = Report(reporter)
    units = [] if first.is_source else _input_units(first, plan)
    # totals: the reader's input files; a chain fed by shards, its shards, one unit each in every
    # stage; after the reader, the shards it wrote (Progress knows them when it ends)
    progress.start([n.name for n in chain], {first.name: len(plan.files)} if first.is_source
                   else {n.name: len(units) for n in chain})

    with draining(reporter, progress):
        if first.is_source:
            items = [{"index": f.index, "kind": f.kind, "path": f.path, "source": f.source} for f in plan.files]
            dataset = ray.data.from_items(items, override_num_blocks=max(1, len(items)))
            # The reader asks no CPU of Ray: it is light (decompression, I/O) next to the stages it
            # feeds, so both cores extract while it reads; at most one reader per core runs at once.
            dataset = dataset.map_batches(run_source_task, batch_size=1, num_cpus=0, batch_format="pyarrow",
                                          compute=ray.data.TaskPoolStrategy(size=max(1, min(len(items), cpus))),
                                          fn_kwargs={"node": first, "report": report, "end": _end(plan, first)})
            rest, count = chain[1:], len(items)
        else:
            items = [{"unit": u.unit, "path": u.kept.path} for u in units]
            dataset = ray.data.from_items(items, override_num_blocks=max(1, len(items)))
            rest, count = chain, len(items)
        phase_context = _run_phases(plan, first, units, cpus, progress, report) if first.is_global else None
        if first.makes_artifact:  # it removes nothing: its documents out are its documents in, by reference
            _pass_through(first, units, phase_context.artifact_dir)
            rest, count = [], 0
        groups = _groups(rest)
        pools = sum(any(node.needs_setup for node in group) for group in groups)
        for group in groups:  # a chain's only actor pool starts at full size, but not above its count of inputs
            dataset = _add_stages(dataset, group, cpus, report, phase_context if group[0] is first else None,
                                  min_actors=count if pools == 1 else 1, ends=[_end(plan, node) for node in group])

        try:
            if count:  # the reporter is drained on a timer (reporting.draining): each stage's counts move as it
                for _ in dataset.iter_batches(batch_size=1, batch_format="numpy"):  # finishes a shard
                    pass
        except Exception as error:  # Ray Data's error has lost the worker's: raise it from the one reported
            cause = ray.get(reporter.first_error.remote())
            if cause is None:
                raise
            raise error from cause
    drain(reporter, progress)
    for node in chain:
        progress.done(node.name, _finish_stage(config, node, manifest))


def _pass_through(node: StageNode, units: list[_Unit], artifact_dir: str) -> None:
    """The done record of a stage that makes an artifact: its outputs are its inputs' files."""
    now = time.time()
    outputs = [ShardOutput(unit=u.unit, kept=u.kept, docs_in=u.kept.rows, docs_out=u.kept.rows) for u in units]
    rows = sum(u.kept.rows for u in units)
    records.write(node.done_path("all"), DoneRecord(fingerprint=node.fingerprint, unit="all", outputs=outputs,
                                                   docs_in=rows, docs_out=rows, host=socket.gethostname(),
                                                   started=now, finished=now))


def _check_feasible(nodes: list[StageNode], cluster: dict[str, float]) -> None:
    """Ray waits forever on a task no node can hold: say so before any stage starts."""
    for node in nodes:
        asks = _remote_options(node)
        for key, resource in (("num_cpus", "CPU"), ("num_gpus", "GPU")):
            if asks.get(key, 0) > cluster.get(resource, 0):
                raise PlanError(f"stage '{node.name}' asks for {asks[key]:g} {resource}s per worker; the Ray "
                                f"cluster has {cluster.get(resource, 0):g} (set its cpus/gpus options lower)")


def _check_reach(config: RunConfig, plan: Plan) -> None:
    """Every node of a cluster reaches the output directory, the first input file of each folder,
    and the files the stages to run name (cluster.check_nodes_reach)."""
    first: dict[str, str] = {}
    for file in plan.files:
        first.setdefault(file.path.rsplit("/", 1)[0], file.path)
    named = {path for node in plan.nodes if node.name in plan.to_run and node.cls is not None
             for path in node.cls.data_files(node.config)}
    try:
        check_nodes_reach(config.output_dir, sorted({*first.values(), *named}))
    except UnreachableError as error:
        raise PlanError(str(error)) from None


def _remote_options(node: StageNode) -> dict[str, Any]:
    resources = node.resources
    remote = {"num_cpus": resources.cpus, "num_gpus": resources.gpus or None,
              "memory": resources.memory_gb * 2**30 or None}
    return {k: v for k, v in remote.items() if v is not None}


def _end(plan: Plan, node: StageNode) -> StageNode | None:
    """The stage that writes the documents `node` hands on in memory (None: it writes its own)."""
    return plan.node(node.kept_in[-1]) if node.kept_in else None


def _groups(chain: list[StageNode]) -> list[list[StageNode]]:
    """The chain's stages cut into runs of neighbours that ask for the same resources: each run is
    one Ray Data operator (worker.ChainWorker), a shard going through its stages in one process.
    Ray Data fuses neighbouring task stages by itself, but not a stage with setup (an actor) with
    the stages after it, whose tasks then wait for the actors' CPUs until the last shard is done."""
    groups: list[list[StageNode]] = []
    for node in chain:
        if groups and _remote_options(groups[-1][-1]) == _remote_options(node):
            groups[-1].append(node)
        else:
            groups.append([node])
    return groups


def _add_stages(dataset, nodes: list[StageNode], cpus: int, report: Report, context: PhaseContext | None = None,
                min_actors: int = 1, ends: list[StageNode | None] = ()):
    """Stages as one Ray Data operator: a task per shard, or an actor pool when one of them has
    setup, from `min_actors` actors up to one per CPU they ask for. Growing a pool from one actor
    delayed the second by 1.7 s of a 9 s run, so a chain's only pool starts larger; several pools
    in one chain start at one actor each, so each gets one before any grows."""
    import ray.data

    remote = _remote_options(nodes[0])
    arguments = {"nodes": nodes, "context": context, "report": report, "ends": list(ends)}
    if any(node.needs_setup for node in nodes):
        workers = max(1, int(cpus // max(remote["num_cpus"], 1e-3)))
        pool = ray.data.ActorPoolStrategy(min_size=max(1, min(min_actors, workers)), max_size=workers)
        return dataset.map_batches(ChainWorker, batch_size=1, compute=pool, batch_format="pyarrow", **remote,
                                   fn_constructor_kwargs=arguments)
    return dataset.map_batches(run_chain_task, batch_size=1, batch_format="pyarrow", **remote, fn_kwargs=arguments)


def _run_phases(plan: Plan, node: StageNode, units: list[_Unit], cpus: int, progress: Progress,
                report: Report | None = None) -> PhaseContext:
    """Run a global stage's phases, one after another, each as parallel Ray tasks; returns the
    context its judge step needs. The partition count is chosen once and kept, so a resumed run
    (even on another cluster) shuffles into the same files. Its tasks tell the progress through
    `report` (ctx.say: a training's steps); a stage that makes an artifact shows what it made (its
    last phase's one-row summary: a vocabulary, a model file, tokens, a last loss)."""
    import ray

    stage = node.build()
    phases_dir = storage.join(node.directory, "phases")
    layout_path = storage.join(phases_dir, "_partitions.json")
    layout = storage.read_json(layout_path)
    if not layout:
        layout = {"partitions": stage.partitions(sum(u.kept.rows for u in units), cpus)}
        storage.write_json(layout_path, layout)
    shards_in = [(u.unit, node.path(u.kept.path)) for u in units]
    context = PhaseContext(phases_dir, layout["partitions"], tuple(u for u, _ in shards_in),
                           tuple(p for _, p in shards_in), node.artifact_dir, node.name,
                           tell=report.tell if report is not None else None)
    # The context names every input shard: put once in the object store, each task gets a reference
    # to it and its own shard or partition (pickled into each task, it made N tasks cost N^2 bytes)
    shared = [ray.put(context)]
    remote = ray.remote(_phase_task).options(**_remote_options(node))
    done: list[records.PhaseRecord] = []
    for phase in stage.phases():
        jobs = phase_jobs(phase, context, shards_in)
        pending = [remote.remote(node, phase.name, shared, ctx.shard, ctx.partition, unit, path)
                   for ctx, unit, path in jobs]
        done = []
        while pending:
            progress.note(node.name, f"{phase.name} {len(jobs) - len(pending)}/{len(jobs)}")
            ready, pending = ray.wait(pending, num_returns=1)
            done += ray.get(ready)
    progress.note(node.name, "")
    if node.makes_artifact and len(done) == 1 and len(done[0].files) == 1:
        try:
            rows = storage.read_parquet(node.path(done[0].files[0].path)).slice(0, 1).to_pylist()
            if rows:
                progress.event(node.name, {"made": rows[0]})
        except Exception as problem:  # noqa: BLE001 - only what the table shows
            log.debug("could not read what stage %s made: %s", node.name, problem)
    return context


_SHARED_CONTEXT: dict[str, PhaseContext] = {}  # in a worker: the phase context it last fetched, by its reference


def _phase_task(node: StageNode, phase_name: str, shared: list, shard: int, partition: int, unit: str,
                input_path: str | None) -> records.PhaseRecord:
    """A phase task on Ray: worker.run_phase_task with the stage's context, fetched from the object
    store once per worker process (`shared` holds its reference, in a list so that Ray passes the
    reference and not the value), and set to this task's shard or partition."""
    import ray

    key = shared[0].hex()
    if key not in _SHARED_CONTEXT:
        _SHARED_CONTEXT.clear()
        _SHARED_CONTEXT[key] = ray.get(shared[0])
    context = replace(_SHARED_CONTEXT[key], shard=shard, partition=partition)
    return run_phase_task(node, phase_name, context, unit, input_path)


def _input_units(node: StageNode, plan: Plan) -> list[_Unit]:
    """The shards a chain's first stage reads: its parents' kept shards, in sorted order."""
    units = []
    assert all(plan.node(parent).materialized for parent in node.after), f"{node.name} reads shards no stage wrote"
    for index, parent in enumerate(node.after):
        prefix = f"p{index}-" if len(node.after) > 1 else ""
        units += [_Unit(prefix + output.unit, output.kept)
                  for record in plan.node(parent).done_records() for output in record.outputs]
    return sorted(units, key=lambda u: u.unit)


def _finish_stage(config: RunConfig, node: StageNode, manifest: Manifest) -> StageStats:
    with tag_stage(node.name):
        stats, manifest.stages[node.name] = finish(node)
    _write_manifest(config, manifest)
    return stats


def _record_failure(config: RunConfig, manifest: Manifest, error: BaseException) -> None:
    """A run that stops on an error leaves no stage `running` in its manifest: the stage whose
    worker raised is `failed`, with the error in one line, and the others of its chain, stopped
    with it, are `pending` again (when the failing stage is not known, every running stage is
    failed; after a Ctrl-C, none is). Best effort: a manifest that cannot be written (on the disk that just filled up)
    is only logged, so that `error` is the one the run ends with."""
    stage, message = failed_stage(error), one_line(error)
    stopped = isinstance(error, KeyboardInterrupt)  # Ctrl-C: nothing failed, the running stages wait
    for name, entry in manifest.stages.items():
        if entry.status == "running":
            if not stopped and (stage is None or stage == name):
                entry.status, entry.error = "failed", message
            else:
                entry.status = "pending"
    try:
        _write_manifest(config, manifest)
    except Exception as problem:  # noqa: BLE001 - the run's own error is the one to raise
        log.warning("could not record the failure in %s: %s", manifest_path(config.output_dir), one_line(problem))


def _write_manifest(config: RunConfig, manifest: Manifest) -> None:
    write_manifest(config.output_dir, manifest, name=config.name,  # the config as config.yaml holds it
                   config_fingerprint=digest(config.model_dump(mode="json", exclude={"output_dir"})))
