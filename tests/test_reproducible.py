"""One config run into two output directories writes the same bytes; and a run's console shows
its progress and results, not Ray's messages about itself.

The rule (README, "What a run leaves"): paths inside outputs are relative to the run or the input's
own name, never absolute; and nothing but the config and the inputs decides what a stage writes,
the model's weights and losses included (on a CPU). Wall-clock measurements are the one exception:
the files that hold them are listed in TIMINGS, with the keys that hold them, and are compared with
only those keys left out.
"""
from __future__ import annotations

import fnmatch
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
import yaml

from crawl2model.catalog import load_config
from crawl2model.diff.compare import compare
from crawl2model.pipeline.runner import run
from crawl2model.pipeline.sources import source_name

ROOT = Path(__file__).resolve().parents[1]

# Files that hold wall-clock times (globs under the run directory), and their keys that hold them.
TIMINGS = {
    # when the manifest was written; each stage's seconds; and whether the last invocation took a
    # stage from the cache (a state of the run, not an output)
    "manifest.json": {"updated", "wall_seconds", "cached"},
    "stages/*/stats.json": {"wall_seconds", "cpu_seconds"},  # cpu_seconds: summed task seconds, per phase too
    "stages/*/_done/*.json": {"started", "finished"},  # a unit's done record (the resume bookkeeping)
    "stages/*/phases/*/_done/*.json": {"started", "finished"},  # a global stage's phase task record
    "stages/*/artifact/info.json": {"train_seconds"},  # train_tokenizer: how long training took
    "stages/*/artifact/model.json": {"train_seconds"},  # train_classifier: how long training took
    "stages/*/artifact/metrics.jsonl": {"tokens_per_s", "mfu"},  # a trainer's speed per logged step
}
# A record that lists one of those files (manifest, stats.json, a phase's done record) gives its
# size and sha256, which follow its timings: those two are left out of such a file's entry.
LISTED = {"bytes", "sha256"}
# Ray's own messages during the run (runner.ray_messages_to): session paths and times of this
# machine, not an output of the config
NOT_OUTPUTS = ("logs/*",)


def timing_keys(relative: str) -> set[str] | None:
    """The timing keys of a file, or None when it holds no timing and must be byte-identical."""
    found = [keys for pattern, keys in TIMINGS.items() if fnmatch.fnmatchcase(relative, pattern)]
    return set().union(*found) if found else None


def without(value, keys: set[str]):
    """`value` (parsed JSON) with `keys` removed at every depth, and the size and hash of each
    file entry (`{"path", "rows", "bytes", "sha256"}`) that names a file with timings."""
    if isinstance(value, dict):
        if isinstance(value.get("path"), str) and timing_keys(value["path"]) is not None:
            keys = keys | LISTED
        return {k: without(v, keys) for k, v in value.items() if k not in keys}
    if isinstance(value, list):
        return [without(v, keys) for v in value]
    return value


def parsed_without(path: Path, keys: set[str]):
    if path.suffix == ".jsonl":
        return [without(json.loads(line), keys) for line in path.read_text().splitlines()]
    return without(json.loads(path.read_text()), keys)


def files(run_dir: Path) -> list[str]:
    return sorted(str(p.relative_to(run_dir)) for p in run_dir.rglob("*") if p.is_file()
                  and not any(fnmatch.fnmatchcase(str(p.relative_to(run_dir)), g) for g in NOT_OUTPUTS))


def differences(run_a: Path, run_b: Path) -> list[str]:
    """Every way the two runs' files differ, beyond the timing keys of the timing files."""
    listed_a, listed_b = files(run_a), files(run_b)
    found = [f"only in {run_a.name}: {f}" for f in sorted(set(listed_a) - set(listed_b))]
    found += [f"only in {run_b.name}: {f}" for f in sorted(set(listed_b) - set(listed_a))]
    for relative in sorted(set(listed_a) & set(listed_b)):
        a, b = run_a / relative, run_b / relative
        if a.read_bytes() == b.read_bytes():
            continue
        keys = timing_keys(relative)
        if keys is None:
            found.append(f"differs: {relative}")
        elif parsed_without(a, keys) != parsed_without(b, keys):
            found.append(f"differs beyond its timings {sorted(keys)}: {relative}")
    return found


def absolute_paths(run_dir: Path, needle: str) -> list[str]:
    """The files of a run that hold `needle` (an absolute path): in their bytes, and, in Parquet,
    whose compression could hide it, in any text value."""
    found = []
    for relative in files(run_dir):
        path = run_dir / relative
        if needle.encode() in path.read_bytes():
            found.append(relative)
        elif path.suffix == ".parquet":
            table = pq.read_table(path)
            texts = [v for column in table.columns if pa.types.is_string(column.type)
                     for v in column.to_pylist() if v]
            if any(needle in v for v in texts):
                found.append(relative)
    return found


def load_state(path: Path) -> dict:
    return torch.load(io.BytesIO(path.read_bytes()), map_location="cpu", weights_only=False)


def assert_same_state(a, b, where: str = "") -> None:
    """Every tensor equal (torch.equal: same shape, dtype and values), every other value equal."""
    assert type(a) is type(b), where
    if isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for key in a:
            assert_same_state(a[key], b[key], f"{where}/{key}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same_state(x, y, f"{where}[{i}]")
    elif isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and torch.equal(a, b), where
    else:
        assert a == b, where


@pytest.mark.ray
@pytest.mark.slow
def test_one_config_in_two_directories_writes_the_same_bytes(demo_run, tmp_path):
    """The session's run of examples/crawl.yaml (every stage), and the same config run again into
    a directory of another path length."""
    run_a, _ = demo_run
    run_b = tmp_path / "deeper" / "dir" / "b"
    config = yaml.safe_load((run_a.parent / "crawl.yaml").read_text())
    config["output_dir"] = str(run_b)
    path = tmp_path / "b.yaml"
    path.write_text(yaml.safe_dump(config))
    manifest = run(*load_config(path), show_progress=False)
    assert all(entry.status == "done" for entry in manifest.stages.values())

    assert differences(run_a, run_b) == []
    assert [s.stage for s in compare(str(run_a), str(run_b)).stages if not s.identical] == []  # pipeline diff agrees
    for run_dir in (run_a, run_b):
        assert absolute_paths(run_dir, str(run_dir)) == [], run_dir
    # what the rule serves: the reader names the generated sample by its path inside the run
    sources = pq.read_table(run_a / "stages/read/kept", columns=["source"]).column("source").unique().to_pylist()
    assert sorted(sources) == sorted(f"sample/{p.name}" for p in (run_a / "sample").iterdir())
    # and the models, tensor by tensor (equal bytes say so too; this says where, if not)
    checkpoints = sorted(run_a.glob("stages/*/artifact/step-*/state.pt"))
    assert {p.parts[-4] for p in checkpoints} >= {"pretrain", "sft", "dpo"}
    for state in checkpoints:
        assert_same_state(load_state(state), load_state(run_b / state.relative_to(run_a)), str(state.relative_to(run_a)))
    for stage in ("pretrain", "sft", "dpo"):
        metrics = [(run / f"stages/{stage}/artifact/metrics.jsonl").read_text().splitlines() for run in (run_a, run_b)]
        losses = [[json.loads(line).get("loss") for line in lines] for lines in metrics]
        assert losses[0] and losses[0] == losses[1], stage


def test_sources_are_named_relative_to_the_run_or_by_the_pattern(tmp_path, monkeypatch):
    """The `source` column never holds an absolute path of this machine (sources.source_name)."""
    run_dir, data = tmp_path / "run", tmp_path / "data" / "seg1"
    monkeypatch.chdir(tmp_path)
    inside = str(run_dir / "sample" / "sample-00000.warc.gz")
    outside = str(data / "x-00.warc.gz")
    assert source_name(inside, str(run_dir / "sample"), str(run_dir)) == "sample/sample-00000.warc.gz"
    assert source_name(outside, "data/*/*.warc.gz", str(run_dir)) == "data/seg1/x-00.warc.gz"  # as written
    assert source_name(outside, str(tmp_path / "data" / "*" / "x-*.warc.gz"), str(run_dir)) == "seg1/x-00.warc.gz"
    assert source_name(outside, str(data / "x-00.warc.gz"), str(run_dir)) == "x-00.warc.gz"  # no wildcard
    assert source_name(outside, f"file://{tmp_path}/data/**", str(run_dir)) == "seg1/x-00.warc.gz"
    url = "s3://commoncrawl/crawl-data/CC-MAIN-2024-22/x.warc.gz"
    assert source_name(url, "s3://commoncrawl/crawl-data/*/x.warc.gz", str(run_dir)) == url
    run_dir.mkdir()
    monkeypatch.chdir(run_dir)  # a relative pattern's files are named from where the run started
    assert source_name(outside, "../data/*/x-00.warc.gz", str(run_dir)) == "../data/seg1/x-00.warc.gz"


# How Ray's own messages look: its Python loggers' lines, its C++ core worker's, forwarded worker output
RAY_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+\s+(DEBUG|INFO|WARNING|ERROR)\s"
                      r"|^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ [DIWEF] \d+ \d+\]|^\((raylet|pid=|\w+ pid=)")


@pytest.mark.ray
@pytest.mark.slow
def test_a_run_prints_its_results_and_leaves_rays_messages_in_its_log(tmp_path):
    """`pipeline run` as a user runs it (its own embedded Ray): Ray's notices (token authentication,
    Ray Data's "progress bars disabled" and dataset logs, the core worker's note on actor arguments)
    land in <run>/logs/ray.log, not on the console."""
    config = tmp_path / "crawl.yaml"
    config.write_text(yaml.safe_dump({
        "name": "quiet", "output_dir": str(tmp_path / "run"), "seed": 3, "ray": {"num_cpus": 2},
        "input": {"sample": {"documents": 40, "files": 1}},
        "stages": [{"name": "extract", "type": "extract"},
                   {"name": "langid", "type": "langid"}]}))  # a stage with setup: a Ray Data actor pool
    done = subprocess.run([sys.executable, "-m", "crawl2model.cli", "run", str(config), "--no-progress"],
                          capture_output=True, text=True, timeout=600, cwd=tmp_path,
                          env={k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"})
    assert done.returncode == 0, done.stderr[-3000:]
    assert "langid" in done.stdout  # the results table
    printed = [line for line in (done.stdout + done.stderr).splitlines() if RAY_LINE.search(line)]
    assert printed == []
    log = (tmp_path / "run" / "logs" / "ray.log").read_text()
    assert "Progress bars disabled" in log  # from Ray Data's Python logger
    assert "core_worker.cc" in log  # from the driver's C++ core worker, through file descriptor 2
