"""`pipeline diff RUN_A RUN_B` on real runs: two runs of one config are identical (exit 0); a
changed filter threshold is named, with the stage after it changed through its input, and the
documents one run kept and the other removed are listed with their reasons (exit 1)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from crawl2model.catalog import load_config
from crawl2model.cli import app
from crawl2model.diff.compare import Change, compare
from crawl2model.diff.text import render
from crawl2model.pipeline.plan import digest
from crawl2model.pipeline.runner import run
from crawl2model.pipeline.sample import write_sample_crawl

cli = CliRunner()
STAGES = ["read", "extract", "gopher", "c4"]


def run_into(tmp: Path, out: str, crawl: list[str], min_doc_words: int = 50) -> Path:
    config = {"name": "diff", "output_dir": str(tmp / out), "seed": 3, "input": {"warc": crawl, "docs_per_shard": 20},
              "stages": [{"name": "extract", "type": "extract"},
                         {"name": "gopher", "type": "gopher_quality", "min_doc_words": min_doc_words},
                         {"name": "c4", "type": "c4_quality"}]}
    path = tmp / f"{out}.yaml"
    path.write_text(yaml.safe_dump(config))
    run(*load_config(path), show_progress=False)
    return tmp / out


@pytest.fixture(scope="module")
def two_runs(local_ray, tmp_path_factory) -> tuple[Path, Path, list[str]]:
    """Two runs of one config in two output_dirs, over one sample crawl."""
    tmp = tmp_path_factory.mktemp("diff")
    crawl = [str(p) for p in write_sample_crawl(tmp / "crawl", seed=5, documents=60, files=2)]
    return run_into(tmp, "a", crawl), run_into(tmp, "b", crawl), crawl


@pytest.fixture(scope="module")
def changed(two_runs, tmp_path_factory) -> Path:
    """The second run, rerun with a stricter gopher threshold (read and extract stay cached)."""
    _, b, crawl = two_runs
    tmp = tmp_path_factory.mktemp("changed")
    shutil.copytree(b, tmp / "changed")
    return run_into(tmp, "changed", crawl, min_doc_words=150)


@pytest.mark.ray
def test_two_runs_of_one_config_are_identical(two_runs):
    a, b, _ = two_runs
    result = cli.invoke(app, ["diff", str(a), str(b)])
    assert result.exit_code == 0, result.output
    summary = {line.split()[0]: line.split(None, 1)[1] for line in result.output.splitlines()
               if line.split() and line.split()[0] in STAGES}
    assert summary == {name: "identical" for name in STAGES}
    diff = compare(str(a), str(b))
    assert [s.stage for s in diff.stages] == STAGES and diff.identical
    assert all(not s.files and not s.why and s.documents is None for s in diff.stages)
    # what each fingerprint hashed is kept beside it, and is what it hashed
    for stage in STAGES:
        marker = json.loads((a / "stages" / stage / "_fingerprint.json").read_text())
        assert digest(marker["inputs"]) == marker["fingerprint"]


@pytest.mark.ray
def test_a_changed_threshold_is_named_with_the_documents_it_flipped(two_runs, changed):
    a = two_runs[0]
    result = cli.invoke(app, ["diff", str(a), str(changed)])
    assert result.exit_code == 1, result.output
    summary = {line.split()[0]: line.split(None, 1)[1] for line in result.output.splitlines()
               if line.split() and line.split()[0] in STAGES}
    assert summary["read"] == summary["extract"] == "identical"
    assert summary["gopher"].startswith("differs: fingerprint (options.min_doc_words)")
    assert summary["c4"].startswith("differs: fingerprint (input:gopher)")
    assert "    options.min_doc_words: 50 -> 150" in result.output.splitlines()

    diff = compare(str(a), str(changed))
    gopher, c4 = diff.stages[2], diff.stages[3]
    assert gopher.why == [Change(key="options.min_doc_words", a=50, b=150)]
    assert [c.key for c in c4.why] == ["input:gopher"]
    # the documents gopher kept in A and removed in the changed run, found here from the Parquet itself
    kept_a = pd.read_parquet(a / "stages/gopher/kept", columns=["id"])
    removed_b = pd.read_parquet(changed / "stages/gopher/removed", columns=["id", "url", "drop_reason"])
    flipped = removed_b[removed_b["id"].isin(kept_a["id"])].sort_values("id")
    assert len(flipped) > 0 and set(flipped["drop_reason"]) == {"gopher_quality:words<150"}
    assert gopher.documents.removed_in_b == len(flipped) and gopher.documents.removed_in_a == 0
    assert [(d.id, d.url, d.drop_reason) for d in gopher.documents.examples_removed_in_b] == \
        list(flipped[["id", "url", "drop_reason"]].itertuples(index=False, name=None))[:5]
    for d in gopher.documents.examples_removed_in_b:
        assert d.drop_detail.startswith("words=") and d.drop_detail.endswith(" < 150")  # the value it measured
        assert f"    removed in B: {d.id} {d.url}  gopher_quality:words<150 ({d.drop_detail})" in result.output.splitlines()
    # c4 removes none of them: they never reach it in the changed run
    assert c4.documents.absent_in_b == len(flipped) and c4.documents.removed_in_b == 0
    assert gopher.counts_b.removed_by_reason["gopher_quality:words<150"] > 0
    assert c4.counts_a.docs_in - c4.counts_b.docs_in == len(flipped)

    as_json = cli.invoke(app, ["diff", str(a), str(changed), "--json"])
    assert as_json.exit_code == 1
    assert json.loads(as_json.output) == json.loads(diff.model_dump_json())


@pytest.mark.ray
def test_runs_without_recorded_inputs_are_told_apart_by_their_config(two_runs, changed, tmp_path):
    """Runs made before the fingerprint's inputs were kept: config.yaml and the manifest say why."""
    old_a, old_b = tmp_path / "old_a", tmp_path / "old_b"
    shutil.copytree(two_runs[0], old_a)
    shutil.copytree(changed, old_b)
    for run_dir in (old_a, old_b):
        for marker in run_dir.glob("stages/*/_fingerprint.json"):
            marker.write_text(json.dumps({"fingerprint": json.loads(marker.read_text())["fingerprint"]}))
    diff = compare(str(old_a), str(old_b))
    assert diff.stages[2].why == [Change(key="options.min_doc_words", a=50, b=150)]
    assert [c.key for c in diff.stages[3].why] == ["input:gopher"]


def test_a_folder_that_is_not_a_run_exits_2(tmp_path):
    result = cli.invoke(app, ["diff", str(tmp_path), str(tmp_path)])
    assert result.exit_code == 2 and "no manifest.json" in result.output


def test_render_says_which_stage_is_only_in_one_run():
    from crawl2model.diff.compare import RunDiff, StageDiff

    diff = RunDiff(run_a="x", run_b="y", stages=[StageDiff(stage="dedup", status_b="done", fingerprint_b="f")])
    assert not diff.identical and "dedup  only in B" in render(diff)
