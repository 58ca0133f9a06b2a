"""The runner: the only module that knows Ray.

It plans which stages run (fingerprints against the manifest, `--until`, `--force`), turns each
chain of stages into one streaming Ray Data pipeline (a task pool per stage, an actor pool for
stages with `setup()`), shows progress, and writes stats.json and manifest.json as stages finish.
Shards flow between operators by path: each operator writes its Parquet and passes on the name.
"""
from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from typing import Any

import yaml

from crawl2model.pipeline import dag, storage
from crawl2model.pipeline.config import SOURCE, RunConfig, StageSpec
from crawl2model.pipeline.global_stage import PhaseContext, phase_jobs
from crawl2model.pipeline.progress import Progress
from crawl2model.pipeline.sources import InputFile, list_input_files
from crawl2model.pipeline.worker import (StageTask, StageWorker, merge_counts, merge_histograms, run_phase_task, run_source_task,
                             run_stage_task)


class PlanError(ValueError):
    """The run cannot go as asked: --until or --force names no stage, or a stage asks for more
    CPUs or GPUs than the cluster has."""


@dataclass
class Plan:
    nodes: list[dag.Node]
    fingerprints: dict[str, str]
    to_run: set[str]
    cached: set[str]
    forced: set[str]  # named by --force, and everything after them
    files: list[InputFile]
    tasks: dict[str, StageTask] = field(default_factory=dict)


def run(config: RunConfig, specs: list[StageSpec], *, address: str | None = None, until: str | None = None,
        force: tuple[str, ...] = (), show_progress: bool = True) -> dict[str, Any]:
    """Run (or resume) the pipeline; returns the manifest. Config must come from `load_config`."""
    manifest = _load_manifest(config)
    plan = make_plan(config, specs, manifest, until=until, force=force)
    _prepare_dirs(config, plan)
    storage.write_bytes_atomic(storage.join(config.output_dir, "config.yaml"),
                              yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False).encode())
    previous = manifest["stages"]
    manifest["stages"] = {}
    for node in plan.nodes:  # listed in DAG order; `cached` says whether this invocation re-ran it
        if node.name in plan.to_run:
            manifest["stages"][node.name] = {"status": "pending", "fingerprint": plan.fingerprints[node.name]}
        elif node.name in previous:
            manifest["stages"][node.name] = {**previous[node.name], "cached": node.name in plan.cached}
    _write_manifest(config, manifest)
    if not plan.to_run:
        return manifest

    started_ray = connect(config, address)
    progress = Progress(enabled=show_progress)
    try:
        import ray

        _check_feasible([node for node in plan.nodes if node.name in plan.to_run], ray.cluster_resources())
        for chain in dag.segments(plan.nodes, plan.to_run):
            _run_chain(config, plan, chain, manifest, progress)
    except BaseException:
        for entry in manifest["stages"].values():
            if entry.get("status") in ("pending", "running"):
                entry["status"] = "failed" if entry["status"] == "running" else "pending"
        _write_manifest(config, manifest)
        raise
    finally:
        progress.stop()
        if started_ray:
            import ray

            ray.shutdown()
    return manifest


def make_plan(config: RunConfig, specs: list[StageSpec], manifest: dict[str, Any], *, until: str | None = None,
              force: tuple[str, ...] = ()) -> Plan:
    """Which stages run: those wanted (--until), not forced, and not finished under the same fingerprint."""
    nodes = dag.build_nodes(specs)
    names = [n.name for n in nodes]
    for name in [*force, *([until] if until else [])]:
        if name not in names:
            raise PlanError(f"no stage named '{name}'; stages: {', '.join(names)}")
    files = list_input_files(config.input, config.seed, config.output_dir)
    fps = dag.fingerprints(nodes, dag.source_fingerprint(config, files))
    wanted = dag.ancestors(nodes, until) if until else set(names)
    forced = dag.descendants(nodes, set(force))
    cached = {n for n in wanted if n not in forced and _is_cached(manifest["stages"].get(n), fps[n])}
    plan = Plan(nodes, fps, wanted - cached, cached, forced, files)
    for node in nodes:
        plan.tasks[node.name] = StageTask(node.name, node.stage_type, node.options, fps[node.name],
                                          dag.stage_dir(config, node.name))
    return plan


def _is_cached(entry: dict | None, fingerprint: str) -> bool:
    if not entry or entry.get("status") != "done" or entry.get("fingerprint") != fingerprint:
        return False
    return all(storage.exists(f["path"]) for f in entry.get("kept", [])) and all(
        storage.exists(path) for path in entry.get("artifacts", []))


def _prepare_dirs(config: RunConfig, plan: Plan) -> None:
    """Clear a stage's directory when its fingerprint changed or it is forced; keep it to resume."""
    for name in plan.to_run:
        directory = dag.stage_dir(config, name)
        marker = storage.join(directory, "_fingerprint.json")
        previous = storage.read_json(marker)
        if name in plan.forced or not previous or previous.get("fingerprint") != plan.fingerprints[name]:
            storage.remove_tree(directory)
            storage.write_json(marker, {"fingerprint": plan.fingerprints[name]})


def connect(config: RunConfig, address: str | None) -> bool:
    """Join the cluster at --address / RAY_ADDRESS / ray.address, or start an embedded local Ray.
    Returns whether this call started Ray (and so should stop it)."""
    import ray

    if ray.is_initialized():
        return False
    address = address or os.environ.get("RAY_ADDRESS") or config.ray.address
    if address:
        ray.init(address=address, runtime_env=config.ray.runtime_env or None, logging_level=logging.WARNING)
    else:  # local workers import user stages from the current directory, as the driver does
        env = dict(config.ray.runtime_env)
        paths = [os.getcwd(), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
        env["env_vars"] = {"PYTHONPATH": os.pathsep.join(paths), **env.get("env_vars", {})}
        ray.init(num_cpus=config.ray.num_cpus, runtime_env=env, include_dashboard=False,
                 logging_level=logging.WARNING)
    return True


def _run_chain(config: RunConfig, plan: Plan, chain: list[dag.Node], manifest: dict, progress: Progress) -> None:
    import ray
    import ray.data

    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False  # ours (pipeline.progress) counts documents per stage
    context.target_max_block_size = 1  # a block per shard row: else Ray Data packs a file's shards into
    # one block and a single task extracts them one after another while the other cores idle
    for handler in logging.getLogger("ray.data").handlers:  # its console chatter, not its log file
        if "File" not in type(handler).__name__:
            handler.setLevel(logging.WARNING)
    cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
    first = chain[0]
    for node in chain:
        manifest["stages"][node.name]["status"] = "running"
    _write_manifest(config, manifest)

    if first.name == SOURCE:
        items = [{"index": f.index, "kind": f.kind, "path": f.path} for f in plan.files]
        dataset = ray.data.from_items(items, override_num_blocks=max(1, len(items)))
        # The reader asks no CPU of Ray: it is light (decompression, I/O) next to the stages it
        # feeds, so both cores extract while it reads; at most one reader per core runs at once.
        dataset = dataset.map_batches(
            run_source_task, batch_size=1, num_cpus=0,
            compute=ray.data.TaskPoolStrategy(size=max(1, min(len(items), cpus))),
            fn_kwargs={"task": plan.tasks[SOURCE], "inputs": config.input.model_dump(mode="json")})
        rest = chain[1:]
    else:
        items = _input_units(first, plan)
        dataset = ray.data.from_items(items, override_num_blocks=max(1, len(items)))
        rest = chain
    progress.start([n.name for n in chain])
    started = time.time()
    context = _run_phases(config, plan, first, items, cpus, progress) if first.is_global else None
    if not first.judges:  # its artifact is made; it passes its parent's documents on untouched
        rows = sum(item["rows"] for item in items)
        storage.write_json(plan.tasks[first.name].done_path("all"), {
            "fingerprint": plan.tasks[first.name].fingerprint, "unit": "all", "outputs": [], "docs_in": rows,
            "docs_out": rows, "bytes_in": 0, "bytes_out": 0, "started": started, "finished": time.time()})
        items, rest = [], []
    pools = sum(node.needs_setup for node in rest)
    for node in rest:  # a chain's only actor pool starts at full size, but not above its count of inputs
        dataset = _add_stage(dataset, node, plan.tasks[node.name], cpus, context if node is first else None,
                             min_actors=len(items) if pools == 1 else 1)

    if items:
        for batch in dataset.iter_batches(batch_size=1, batch_format="numpy"):
            progress.update(str(batch["report"][0]))
    for node in chain:
        _finish_stage(config, plan, node, manifest)
        progress.done(node.name)


def _check_feasible(nodes: list[dag.Node], cluster: dict[str, float]) -> None:
    """Ray waits forever on a task no node can hold: say so before any stage starts."""
    for node in nodes:
        if node.name == SOURCE:
            continue
        asks = _remote_options(node)
        for key, resource in (("num_cpus", "CPU"), ("num_gpus", "GPU")):
            if asks.get(key, 0) > cluster.get(resource, 0):
                raise PlanError(f"stage '{node.name}' asks for {asks[key]:g} {resource}s per worker; the Ray "
                                f"cluster has {cluster.get(resource, 0):g} (set its cpus/gpus options lower)")


def _remote_options(node: dag.Node) -> dict[str, Any]:
    from crawl2model.catalog import resolve_stage

    cls = resolve_stage(node.stage_type)
    resources = cls.resources_for(cls.Config.model_validate(node.options))
    remote = {"num_cpus": resources.cpus, "num_gpus": resources.gpus or None,
              "memory": resources.memory_gb * 2**30 or None}
    return {k: v for k, v in remote.items() if v is not None}


def _add_stage(dataset, node: dag.Node, task: StageTask, cpus: int, context: PhaseContext | None = None,
               min_actors: int = 1):
    """The stage as a Ray Data operator: a task per shard, or an actor pool for a stage with setup,
    from `min_actors` actors up to one per CPU it asks for. Growing a pool from one actor delayed
    the second by 1.7 s of a 9 s run, so a chain's only pool starts larger; several pools in one
    chain start at one actor each, so each gets one before any grows."""
    import ray.data

    remote = _remote_options(node)
    if node.needs_setup:
        workers = max(1, int(cpus // max(remote["num_cpus"], 1e-3)))
        pool = ray.data.ActorPoolStrategy(min_size=max(1, min(min_actors, workers)), max_size=workers)
        return dataset.map_batches(StageWorker, batch_size=1, fn_constructor_kwargs={"task": task, "context": context},
                                   compute=pool, **remote)
    return dataset.map_batches(run_stage_task, batch_size=1, fn_kwargs={"task": task, "context": context}, **remote)


def _run_phases(config: RunConfig, plan: Plan, node: dag.Node, items: list[dict], cpus: int,
                progress: Progress) -> PhaseContext:
    """Run a global stage's phases, one after another, each as parallel Ray tasks; returns the
    context its judge step needs. The partition count is chosen once and kept, so a resumed run
    (even on another cluster) shuffles into the same files."""
    import ray

    task = plan.tasks[node.name]
    stage = task.build()
    phases_dir = storage.join(task.stage_dir, "phases")
    layout_path = storage.join(phases_dir, "_partitions.json")
    layout = storage.read_json(layout_path)
    if not layout:
        layout = {"partitions": stage.partitions(sum(item["rows"] for item in items), cpus)}
        storage.write_json(layout_path, layout)
    context = PhaseContext(phases_dir, layout["partitions"], tuple(item["unit"] for item in items),
                           tuple(item["path"] for item in items), config.output_dir, node.name)
    remote = ray.remote(run_phase_task).options(**_remote_options(node))
    for phase in stage.phases():
        jobs = phase_jobs(phase, context, [(item["unit"], item["path"]) for item in items])
        pending = [remote.remote(task, phase.name, *job) for job in jobs]
        while pending:
            progress.note(node.name, f"{phase.name} {len(jobs) - len(pending)}/{len(jobs)}")
            ready, pending = ray.wait(pending, num_returns=1)
            ray.get(ready)
    progress.note(node.name, "")
    return context


def _input_units(node: dag.Node, plan: Plan) -> list[dict[str, str]]:
    """The shards a chain's first stage reads: its parents' kept shards, in sorted order (through
    a parent that makes an artifact, what that parent read)."""
    by_name = {n.name: n for n in plan.nodes}
    items = []
    for index, parent in enumerate(node.after):
        prefix = f"p{index}-" if len(node.after) > 1 else ""
        if not by_name[parent].judges:
            items += [{**item, "unit": prefix + item["unit"]} for item in _input_units(by_name[parent], plan)]
            continue
        for record in _done_records(plan.tasks[parent]):
            for output in record["outputs"]:
                items.append({"unit": prefix + output["unit"], "path": output["kept"]["path"],
                              "rows": output["kept"]["rows"], "report": "{}"})
    return sorted(items, key=lambda item: item["unit"])


def _done_records(task: StageTask) -> list[dict[str, Any]]:
    records = (storage.read_json(p) for p in storage.list_files(storage.join(task.stage_dir, "_done"), ".json"))
    return sorted((r for r in records if r and r.get("fingerprint") == task.fingerprint), key=lambda r: r["unit"])


def _finish_stage(config: RunConfig, plan: Plan, node: dag.Node, manifest: dict) -> None:
    task = plan.tasks[node.name]
    records = _done_records(task)
    outputs = [o for r in records for o in r["outputs"]]
    stats = {
        "stage": node.name, "type": node.stage_type, "fingerprint": task.fingerprint,
        "shards": len(outputs),
        "docs_in": sum(r["docs_in"] for r in records), "docs_out": sum(r["docs_out"] for r in records),
        "removed_by_reason": merge_counts(records, "removed_by_reason"),
        "bytes_in": sum(r["bytes_in"] for r in records), "bytes_out": sum(r["bytes_out"] for r in records),
        "wall_seconds": round(max((r["finished"] for r in records), default=0)
                              - min((r["started"] for r in records), default=0), 3),
        "cpu_seconds": round(sum(r["finished"] - r["started"] for r in records), 3),
        "counters": merge_counts(records, "counters"),
        "histograms": merge_histograms(records),
    }
    if node.is_global:  # what its phases did, and what they counted
        by_phase = _phase_records(task)
        stats["phases"] = {p.name: _phase_stats(by_phase[p.name]) for p in task.build().phases() if p.name in by_phase}
        every = [*records, *(r for phase in by_phase.values() for r in phase)]
        stats["counters"], stats["histograms"] = merge_counts(every, "counters"), merge_histograms(every)
    if node.name == SOURCE:
        stats["files"] = len(records)
        stats["files_skipped"] = [{"path": r["input"], "reason": r["skipped"]} for r in records if r.get("skipped")]
    storage.write_json(storage.join(task.stage_dir, "stats.json"), stats)
    manifest["stages"][node.name] = {
        "type": node.stage_type, "after": list(node.after), "fingerprint": task.fingerprint, "status": "done",
        "docs_in": stats["docs_in"], "docs_out": stats["docs_out"], "wall_seconds": stats["wall_seconds"],
        "kept": [o["kept"] for o in outputs], "removed": [o["removed"] for o in outputs if o["removed"]],
    }
    if node.is_global:
        from crawl2model.catalog import resolve_stage

        cls = resolve_stage(node.stage_type)
        manifest["stages"][node.name]["artifacts"] = cls.artifacts(cls.Config.model_validate(node.options),
                                                                  config.output_dir, node.name)
    _write_manifest(config, manifest)


def _phase_records(task: StageTask) -> dict[str, list[dict[str, Any]]]:
    """The done records of a global stage's phase tasks, by phase."""
    found: dict[str, list[dict[str, Any]]] = {}
    for path in storage.list_files(storage.join(task.stage_dir, "phases"), ".json", recursive=True):
        phase_dir, _, name = path.rpartition("/_done/")
        record = storage.read_json(path) if name else None
        if record and record.get("fingerprint") == task.fingerprint:
            found.setdefault(phase_dir.rsplit("/", 1)[1], []).append(record)
    return found


def _phase_stats(records: list[dict[str, Any]]) -> dict[str, Any]:
    """One phase's tasks, rows in and out, files and bytes written, and summed task seconds."""
    return {"tasks": len(records), "rows_in": sum(r["rows_in"] for r in records),
            "rows_out": sum(r["rows_out"] for r in records), "files": sum(len(r["files"]) for r in records),
            "bytes": sum(f["bytes"] for r in records for f in r["files"]),
            "cpu_seconds": round(sum(r["finished"] - r["started"] for r in records), 3)}


def _load_manifest(config: RunConfig) -> dict[str, Any]:
    manifest = storage.read_json(storage.join(config.output_dir, "manifest.json")) or {"stages": {}}
    manifest.setdefault("stages", {})
    return manifest


def _write_manifest(config: RunConfig, manifest: dict[str, Any]) -> None:
    manifest.update(name=config.name, config_fingerprint=dag.config_fingerprint(config),
                    updated=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), packages=package_versions())
    storage.write_json(storage.join(config.output_dir, "manifest.json"), manifest, sort_keys=False)  # stages in DAG order


def package_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for name in ("crawl2model", "ray", "pyarrow", "trafilatura", "warcio", "pydantic", "numpy"):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            pass
    return found
