"""How the driver's own work grows with a crawl's size, without Ray: loading the config, planning,
resuming, finishing a stage and the manifest, for 1,000 to 100,000 input files; and how many
files dedup's shuffle writes per shard at a snapshot's partition count.

    python bench/plan_scale.py                              # 1,000, 10,000, 100,000 files (~20 min)
    python bench/plan_scale.py --files 1000,10000 --no-profile   # a quick look (~1 min)
    python bench/plan_scale.py --fs memory                  # inputs and run on fsspec's memory://

Each size runs in a child process (a clean peak RSS). The inputs are N empty files
(`<root>/cc/seg-XXX/warc/CC-MAIN-...-NNNNN.warc.gz`, 1,000 per folder, like a snapshot's segments)
listed by one glob, on tmpfs (/dev/shm) by default, or N one-byte objects on `memory://`. The
config reads them into `extract -> quality (gopher_quality) -> dedup (minhash_dedup)`. Steps,
each timed alone (time.perf_counter), then repeated under tracemalloc for its peak of Python
allocations, and, at --profile's size, under cProfile:

  load config    crawl2model.catalog.load_config (validation expands the glob)
  plan (first)   what `runner._run` does before Ray starts, mirrored here: read the manifest,
                 make_plan, _prepare_dirs, write config.yaml and the pending manifest, _announce
  -- then, untimed, every unit of `read` (a file: --shards-per-file shards) and of `extract`
     (a shard) gets a done record, written with records.write as workers write them, and an
     empty kept and removed Parquet file per shard (paths as workers name them) --
  resume         the same driver start again: every unit of read and extract is done
                 (_announce lists and reads every done record)
  finish         summary.finish(read), then (extract), each followed by the manifest's write,
                 as `_run_chain` does at a chain's end; the sizes of the manifest and of
                 extract's listing of its shards (files.parquet) are reported
  rerun, verify  the driver start with read and extract done in the manifest: make_plan checks
                 the size and sha256 of every file they wrote (the files are empty: this is the
                 per-file cost; the bytes' cost is sha256's rate, measured separately)
  rerun, no verify  the same with verify=False (sizes only)
  next units     runner._input_units of `quality`: the shards its chain reads (extract's records)
  dedup jobs     global_stage.phase_jobs of dedup's `signatures` phase over extract's shards (the
                 tasks `_run_phases` submits), the pickled size of the PhaseContext (put in the
                 object store once) and of one task's own arguments

Filesystem calls are counted per step (the outermost fsspec call: info, isfile, exists, ls, glob,
_open, ...; records written with sync go through os directly and are not counted).

The shuffle section needs no input files: one shard of `--shuffle-docs` synthetic documents goes
through minhash_dedup's `signatures` and exact_dedup's `hashes` phases with the partition count
each stage picks for 1e6, 1e8 and 3e9 documents, written by `phase_output` to a temporary folder:
files and bytes per shard.

Results: a table on stdout and bench/results/plan_scale.json.
"""
from __future__ import annotations

import os
import sys

if sys.path and os.path.realpath(sys.path[0]) == os.path.dirname(os.path.realpath(__file__)):
    sys.path.pop(0)  # bench/tokenize.py would shadow the standard library's tokenize, which numpy and Ray import

import argparse
import cProfile
import functools
import hashlib
import io
import json
import pickle
import platform
import pstats
import resource
import shutil
import subprocess
import tempfile
import threading
import time
import tracemalloc
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "plan_scale.json"
SNAPSHOT = {"files": 90_000, "pages": 3_000_000_000, "compressed_tb": 100}
STAGES = [{"name": "extract", "type": "extract"},
          {"name": "quality", "type": "gopher_quality"},
          {"name": "dedup", "type": "minhash_dedup"}]
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
DOCS_PER_SHARD = 500  # the default (sources.InputConfig.docs_per_shard)


# ---------------------------------------------------------------- counting filesystem calls

CALLS: dict[str, int] = {}
_depth = threading.local()
COUNTED = ("info", "isfile", "isdir", "exists", "size", "ls", "glob", "find", "walk", "_open", "mv", "makedirs",
           "rm", "cat_file", "pipe_file")


def count_calls(fs_class) -> None:
    """Count the outermost call of each of COUNTED on `fs_class` (exists -> info is one call)."""
    for name in COUNTED:
        method = getattr(fs_class, name, None)
        if method is None:
            continue

        def wrapper(self, *args, __method=method, __name=name, **kwargs):
            depth = getattr(_depth, "value", 0)
            if depth == 0:
                CALLS[__name] = CALLS.get(__name, 0) + 1
            _depth.value = depth + 1
            try:
                return __method(self, *args, **kwargs)
            finally:
                _depth.value = depth

        setattr(fs_class, name, functools.wraps(method)(wrapper))


# ---------------------------------------------------------------- the child: one size

def make_inputs(fs_kind: str, root: str, files: int, listed: bool) -> list[str]:
    """N empty input files (one byte on memory://), 1,000 per folder; the config's `warc:`, one
    glob or (`listed`) every file by name, as a snapshot's warc.paths.gz gives them."""
    paths = []
    if fs_kind == "memory":
        import fsspec

        memory = fsspec.filesystem("memory")
        for i in range(files):
            paths.append(f"memory://cc/seg-{i // 1000:03d}/warc/CC-MAIN-20240301-{i:05d}.warc.gz")
            memory.pipe_file(paths[-1], b"\0")
        return paths if listed else ["memory://cc/*/warc/*.warc.gz"]
    for i in range(files):
        folder = os.path.join(root, "cc", f"seg-{i // 1000:03d}", "warc")
        if i % 1000 == 0:
            os.makedirs(folder, exist_ok=True)
        paths.append(os.path.join(folder, f"CC-MAIN-20240301-{i:05d}.warc.gz"))
        open(paths[-1], "wb").close()
    return paths if listed else [os.path.join(root, "cc", "*", "warc", "*.warc.gz")]


def driver_start(config, nodes, verify: bool = True):
    """What runner._run does before it connects to Ray (kept in step with it by hand)."""
    from crawl2model.pipeline import records, storage
    from crawl2model.pipeline.progress import Progress
    from crawl2model.pipeline.records import Manifest, ManifestEntry
    from crawl2model.pipeline.runner import _announce, _prepare_dirs, _write_manifest, make_plan
    from crawl2model.pipeline.summary import manifest_path

    manifest = records.read(manifest_path(config.output_dir), Manifest) or Manifest()
    plan = make_plan(config, nodes, manifest, verify=verify)
    _prepare_dirs(plan)
    as_run = yaml.safe_dump(config.model_dump(mode="json", exclude={"output_dir"}), sort_keys=False)
    storage.write_bytes_atomic(storage.join(config.output_dir, "config.yaml"),
                               f"# output_dir: the folder this file is in\n{as_run}".encode())
    previous, manifest.stages = manifest.stages, {}
    for node in plan.nodes:
        if node.name in plan.to_run:
            manifest.stages[node.name] = ManifestEntry(status="pending", fingerprint=node.fingerprint)
        elif node.name in previous:
            manifest.stages[node.name] = previous[node.name].model_copy(update={"cached": node.name in plan.cached})
    _write_manifest(config, manifest)
    _announce(plan, manifest, Progress(enabled=False))
    return plan, manifest


def write_done_records(plan, shards_per_file: int, fs_kind: str) -> dict:
    """Every unit of read (a file) and of extract (a shard) done, as workers leave them: an empty
    kept and removed file per shard, and a done record per unit (records.write)."""
    from crawl2model.pipeline import records, storage
    from crawl2model.pipeline.records import DoneRecord, FileInfo, ShardOutput

    def touch(path: str) -> None:
        if fs_kind == "memory":
            storage.write_bytes_atomic(path, b"")
        else:
            open(path, "wb").close()

    def output(node, unit: str) -> ShardOutput:
        kept = storage.join(node.directory, "kept", f"part-{unit}.parquet")
        removed = storage.join(node.directory, "removed", f"part-{unit}.parquet")
        touch(kept)
        touch(removed)
        return ShardOutput(unit=unit, kept=FileInfo(path=kept, rows=450, bytes=0, sha256=EMPTY_SHA256).relative_to(node.run_dir),
                           removed=FileInfo(path=removed, rows=50, bytes=0, sha256=EMPTY_SHA256).relative_to(node.run_dir),
                           docs_in=500, docs_out=450, bytes_out=450 * 20_000, removed_by_reason={f"{node.name}:reason": 50})

    started = time.perf_counter()
    read, extract = plan.node("read"), plan.node("extract")
    for node in (read, extract):
        if fs_kind != "memory":
            for folder in ("kept", "removed", "_done"):
                os.makedirs(storage.join(node.directory, folder), exist_ok=True)
    units = 0
    for index, file in enumerate(plan.files):
        outputs = [output(read, f"{index:05d}-{k:05d}") for k in range(shards_per_file)]
        now = time.time()
        records.write(read.done_path(f"{index:05d}"), DoneRecord(
            fingerprint=read.fingerprint, unit=f"{index:05d}", input=file.source or file.path, outputs=outputs,
            docs_in=500 * len(outputs), docs_out=450 * len(outputs), removed_by_reason={"read:not_html": 50 * len(outputs)},
            bytes_in=len(outputs) * 9_000_000, bytes_out=len(outputs) * 9_000_000,
            counters={"records:response": 500 * len(outputs), "records:request": 500 * len(outputs),
                      "records:metadata": 500 * len(outputs)}, started=now, finished=now + 60))
        for shard in outputs:
            done = output(extract, shard.unit)
            records.write(extract.done_path(shard.unit), DoneRecord(
                fingerprint=extract.fingerprint, unit=shard.unit, input=shard.kept.path, outputs=[done],
                docs_in=500, docs_out=450, removed_by_reason={"extract:no_text": 50}, bytes_in=9_000_000,
                bytes_out=450 * 5_000, counters={"timeouts": 0}, started=now, finished=now + 10))
            units += 1
    return {"seconds": round(time.perf_counter() - started, 2), "read_units": len(plan.files), "extract_units": units}


def rss_mb() -> float:
    """The process's peak RSS so far (ru_maxrss: KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(name: str, step, profile: bool) -> dict:
    """Time `step` alone, then run it again under tracemalloc (peak) and, if asked, cProfile."""
    CALLS.clear()
    started = time.perf_counter()
    extra = step() or {}
    seconds = time.perf_counter() - started
    calls = dict(sorted(CALLS.items()))
    result = {"step": name, "seconds": round(seconds, 4), "fs_calls": calls, "rss_peak_mb": round(rss_mb(), 1), **extra}
    tracemalloc.start()
    tracemalloc.reset_peak()
    step()
    result["traced_peak_mb"] = round(tracemalloc.get_traced_memory()[1] / 2**20, 2)
    tracemalloc.stop()
    if profile:
        profiler = cProfile.Profile()
        profiler.enable()
        step()
        profiler.disable()
        result["profile"] = top_costs(profiler)
    return result


def top_costs(profiler: cProfile.Profile, count: int = 25) -> list[dict]:
    """The functions with the most time of their own (tottime), with their calls and cumulative time."""
    stats = pstats.Stats(profiler, stream=io.StringIO())
    rows = []
    for (file, line, function), (_, calls, own, cumulative, _) in stats.stats.items():
        where = file.replace(str(ROOT) + "/", "").split("site-packages/")[-1]
        rows.append({"function": f"{where}:{line}({function})", "calls": calls, "tottime": round(own, 4),
                     "cumtime": round(cumulative, 4)})
    by_own = sorted(rows, key=lambda r: -r["tottime"])[:count]
    by_cumulative = sorted(rows, key=lambda r: -r["cumtime"])[:count]
    return {"tottime": by_own, "cumtime": by_cumulative}


def child(files: int, shards_per_file: int, fs_kind: str, root: str, profile: bool, listed: bool) -> dict:
    import fsspec

    from crawl2model.catalog import load_config
    from crawl2model.pipeline import global_stage, storage
    from crawl2model.pipeline.runner import _input_units
    from crawl2model.pipeline.summary import finish, manifest_path

    count_calls(type(fsspec.filesystem("memory" if fs_kind == "memory" else "file")))
    started = time.perf_counter()
    patterns = make_inputs(fs_kind, root, files, listed)
    made = time.perf_counter() - started
    run_dir = "memory://run" if fs_kind == "memory" else os.path.join(root, "run")
    config_path = Path(root if fs_kind != "memory" else tempfile.mkdtemp()) / "crawl.yaml"
    config_path.write_text(yaml.safe_dump({"name": "cc-scale", "output_dir": run_dir, "input": {"warc": patterns},
                                           "stages": STAGES}, sort_keys=False))
    steps, state = [], {}

    def load():
        state["config"], state["nodes"] = load_config(config_path)

    steps.append(measure("load config", load, profile))

    def first_plan():
        state["plan"], state["manifest"] = driver_start(state["config"], state["nodes"])
        return {"to_run": len(state["plan"].to_run)}

    steps.append(measure("plan (first)", first_plan, profile))
    written = write_done_records(state["plan"], shards_per_file, fs_kind)

    def resume():
        state["plan"], state["manifest"] = driver_start(state["config"], state["nodes"])

    steps.append(measure("resume", resume, profile))
    from crawl2model.pipeline.runner import _write_manifest

    def finish_stages():
        manifest = state["manifest"].model_copy(deep=False)
        manifest.stages = dict(manifest.stages)
        for name in ("read", "extract"):
            manifest.stages[name] = finish(state["plan"].node(name))[1]
            _write_manifest(state["config"], manifest)
        state["finished"] = manifest
        return {"manifest_bytes": storage.size(manifest_path(run_dir)),
                "stats_bytes": storage.size(storage.join(state["plan"].node("extract").directory, "stats.json")),
                "listing_bytes": storage.size(storage.join(state["plan"].node("extract").directory, "files.parquet"))}

    steps.append(measure("finish read+extract", finish_stages, profile))

    def rerun(verify: bool):
        def step():
            state["plan"], state["manifest"] = driver_start(state["config"], state["nodes"], verify=verify)
            return {"cached": sorted(state["plan"].cached)}
        return step

    steps.append(measure("rerun, verify", rerun(True), profile))
    steps.append(measure("rerun, no verify", rerun(False), profile))

    def next_units():
        state["units"] = _input_units(state["plan"].node("quality"), state["plan"])
        return {"units": len(state["units"])}

    steps.append(measure("next units", next_units, profile))

    dedup = state["plan"].node("dedup")
    phase = dedup.build().phases()[0]  # its imports are not what this step measures

    def dedup_jobs():
        shards_in = [(u.unit, dedup.path(u.kept.path)) for u in state["units"]]  # as runner._run_phases
        context = global_stage.PhaseContext(storage.join(dedup.directory, "phases"), 4096, tuple(u for u, _ in shards_in),
                                            tuple(p for _, p in shards_in), dedup.artifact_dir, dedup.name)
        jobs = global_stage.phase_jobs(phase, context, shards_in)
        ctx, unit, path = jobs[-1]  # the context goes to the object store once; a task gets its shard and paths
        return {"jobs": len(jobs), "context_bytes": len(pickle.dumps(context)),
                "task_args_bytes": len(pickle.dumps((ctx.shard, ctx.partition, unit, path)))}

    steps.append(measure("dedup jobs", dedup_jobs, profile))
    return {"files": files, "shards": written["extract_units"], "shards_per_file": shards_per_file, "fs": fs_kind,
            "inputs": "listed" if listed else "glob", "config_bytes": config_path.stat().st_size,
            "make_inputs_seconds": round(made, 2), "write_records_seconds": written["seconds"],
            "rss_peak_mb": round(rss_mb(), 1), "steps": steps}


# ---------------------------------------------------------------- dedup's shuffle, per shard

def shuffle(docs: int) -> list[dict]:
    """Files and bytes one shard's shuffle writes, at the partition count each stage picks for
    a corpus of 1e6, 1e8 and 3e9 documents."""
    import numpy as np
    import pyarrow as pa

    from crawl2model.pipeline.global_stage import PhaseContext, phase_output
    from crawl2model.pipeline.warc import doc_id
    from crawl2model.stages.exact_dedup import ExactDedup, ExactDedupConfig
    from crawl2model.stages.minhash_dedup import MinHashConfig, MinHashDedup

    rng = np.random.default_rng(0)
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))  # not digits: the stages fold them all to 0
    vocabulary = ["".join(rng.choice(letters, size=int(rng.integers(2, 10)))) for _ in range(20_000)]
    texts = [" ".join(rng.choice(vocabulary, size=int(rng.integers(100, 1500)))) for _ in range(docs)]
    table = pa.table({"id": [doc_id(f"doc:{i}") for i in range(docs)], "text": texts})
    results = []
    for stage in (MinHashDedup(MinHashConfig()), ExactDedup(ExactDedupConfig())):
        phase = stage.phases()[0]
        for corpus in (1e6, 1e8, 3e9):
            partitions = stage.partitions(int(corpus), 64)
            folder = tempfile.mkdtemp(prefix="plan-scale-shuffle-")
            try:
                context = PhaseContext(folder, partitions, ("00000-00000",), shard=0)
                started = time.perf_counter()
                output = getattr(stage, phase.name)(table, context)
                written = phase_output(os.path.join(folder, phase.name), "00000-00000", output)
                seconds = time.perf_counter() - started
            finally:
                shutil.rmtree(folder, ignore_errors=True)
            total = sum(f.bytes for f in written)
            results.append({"stage": stage.type_name, "phase": phase.name, "corpus_docs": int(corpus),
                            "partitions": partitions, "docs_per_shard": docs, "rows": output.num_rows,
                            "rows_per_doc": round(output.num_rows / docs, 2), "files": len(written),
                            "bytes": total, "bytes_per_doc": round(total / docs, 1),
                            "bytes_per_file": round(total / max(len(written), 1)), "seconds": round(seconds, 3)})
    return results


def sha256_rate() -> float:
    """sha256 MB/s of one core (hashlib, 4 MiB blocks, as storage.sha256_of reads)."""
    block = os.urandom(2**22)
    digest, started = hashlib.sha256(), time.perf_counter()
    for _ in range(64):
        digest.update(block)
    return round(256 / (time.perf_counter() - started), 1)


# ---------------------------------------------------------------- the table

def growth(runs: list[dict], name: str, key: str = "seconds") -> tuple[float, float]:
    """Between the two largest sizes: the cost per added shard (marginal), and the exponent k of
    cost ~ shards^k (1: linear, 2: quadratic)."""
    import math

    (small, large) = [(r["shards"], next(s for s in r["steps"] if s["step"] == name)[key]) for r in runs[-2:]]
    marginal = (large[1] - small[1]) / (large[0] - small[0])
    exponent = math.log(max(large[1], 1e-9) / max(small[1], 1e-9)) / math.log(large[0] / small[0])
    return marginal, exponent


def table(runs: list[dict]) -> str:
    names = [s["step"] for s in runs[0]["steps"]]
    head = "".join(f"{r['files']:>9,} files, MB" for r in runs)
    lines = [f"{'step':<20}{head}" + ("   per shard   exponent" if len(runs) > 1 else "")]
    for name in names:
        rows = [next(s for s in r["steps"] if s["step"] == name) for r in runs]
        cells = "".join(f"{s['seconds']:>11.3f} s {s['traced_peak_mb']:>5.0f}" for s in rows)
        if len(runs) > 1:
            marginal, exponent = growth(runs, name)
            cells += f"   {marginal * 1e6:7.1f} us   {exponent:6.2f}"
        lines.append(f"{name:<20}{cells}")
    lines.append(f"{'manifest bytes':<20}" + "".join(
        f"{next(s for s in r['steps'] if s['step'] == 'finish read+extract')['manifest_bytes']:>21,}" for r in runs))
    lines.append(f"{'listing bytes':<20}" + "".join(
        f"{next(s for s in r['steps'] if s['step'] == 'finish read+extract').get('listing_bytes') or 0:>21,}"
        for r in runs))
    lines.append(f"{'peak RSS MB':<20}" + "".join(f"{r['rss_peak_mb']:>21,.0f}" for r in runs))
    lines.append("")
    lines.append(f"{'fs calls':<20}" + "".join(f"{r['files']:>15,} files" for r in runs))
    for name in names:
        rows = [next(s for s in r["steps"] if s["step"] == name) for r in runs]
        lines.append(f"{name:<20}" + "".join(f"{sum(s['fs_calls'].values()):>21,}" for s in rows)
                     + "   " + ", ".join(f"{k} {v:,}" for k, v in rows[-1]["fs_calls"].items()))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", default="1000,10000,100000")
    parser.add_argument("--shards-per-file", type=int, default=1)
    parser.add_argument("--fs", choices=("local", "memory"), default="local")
    parser.add_argument("--inputs", choices=("glob", "listed"), default="glob",
                        help="the config names the files by one glob, or each by name")
    parser.add_argument("--root", default="/dev/shm" if os.path.isdir("/dev/shm") else None,
                        help="where the input files and the run go (default: tmpfs)")
    parser.add_argument("--profile", type=int, default=None, help="cProfile the steps at this size (default: the largest)")
    parser.add_argument("--no-profile", action="store_true")
    parser.add_argument("--shuffle-docs", type=int, default=DOCS_PER_SHARD)
    parser.add_argument("--out", default=str(RESULTS))
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--child-root", help=argparse.SUPPRESS)
    parser.add_argument("--child-profile", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.shards_per_file, args.fs, args.child_root, args.child_profile,
                               args.inputs == "listed")))
        return

    sizes = [int(s) for s in args.files.split(",") if s]
    profile_at = None if args.no_profile else (args.profile or max(sizes))
    runs = []
    for files in sizes:
        root = tempfile.mkdtemp(prefix="plan-scale-", dir=args.root)
        try:
            command = [sys.executable, __file__, "--child", str(files), "--child-root", root, "--fs", args.fs,
                       "--inputs", args.inputs,
                       "--shards-per-file", str(args.shards_per_file)] + (["--child-profile"] if files == profile_at else [])
            started = time.perf_counter()
            done = subprocess.run(command, capture_output=True, text=True, cwd=root)
            if done.returncode:
                sys.exit(f"{files} files failed:\n{done.stderr[-4000:]}")
            runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(f"{files:,} files: {time.perf_counter() - started:.0f} s in all", file=sys.stderr, flush=True)
        finally:
            shutil.rmtree(root, ignore_errors=True)
    shuffled = shuffle(args.shuffle_docs)
    rate = sha256_rate()
    print(table(runs))
    print(f"\nsha256: {rate:,.0f} MB/s on one core")
    print(f"\ndedup shuffle, one shard of {args.shuffle_docs} documents")
    print(f"{'stage/phase':<28}{'corpus':>8}{'parts':>7}{'rows/doc':>9}{'files':>7}{'bytes/doc':>10}{'bytes/file':>11}")
    for s in shuffled:
        print(f"{s['stage'] + '/' + s['phase']:<28}{s['corpus_docs']:>8.0e}{s['partitions']:>7}{s['rows_per_doc']:>9}"
              f"{s['files']:>7}{s['bytes_per_doc']:>10,.0f}{s['bytes_per_file']:>11,}")
    for run in runs:
        for step in run["steps"]:
            if "profile" in step:
                print(f"\ncProfile, {run['files']:,} files, {step['step']} ({step['seconds']:.2f} s timed alone): "
                      "top own time")
                for row in step["profile"]["tottime"][:8]:
                    print(f"  {row['tottime']:8.3f} s {row['calls']:>10,}  {row['function']}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    load = os.getloadavg()
    out.write_text(json.dumps({
        "measured": time.strftime("%Y-%m-%d %H:%M"), "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                                                                  "loadavg_at_end": [round(x, 2) for x in load]},
        "args": {k: v for k, v in vars(args).items() if not k.startswith("child")}, "snapshot": SNAPSHOT,
        "sha256_mb_per_s": rate, "runs": runs, "shuffle": shuffled}, indent=1) + "\n")
    print(f"\nwritten: {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
