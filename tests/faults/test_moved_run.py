"""A run moved to another place (a bigger disk) resumes there: its done records and manifest
hold paths relative to the run, so nothing is redone and nothing is read from the old place."""
from __future__ import annotations

import shutil

import pytest
import yaml

from crawl2model.catalog import load_config
from crawl2model.pipeline.runner import run
from crawl2model.pipeline.sample import write_sample_crawl

pytestmark = pytest.mark.ray


def run_in(tmp_path, crawl, out, **options):
    path = tmp_path / "crawl.yaml"
    path.write_text(yaml.safe_dump({
        "name": "moved", "output_dir": str(out), "input": {"warc": crawl, "docs_per_shard": 10},
        "stages": [{"name": "extract", "type": "extract"}, {"name": "exact_dedup", "type": "exact_dedup"}]}))
    config, nodes = load_config(path)
    return run(config, nodes, show_progress=False, **options)


def test_a_moved_run_resumes_from_its_new_place_with_nothing_redone(local_ray, tmp_path):
    crawl = [str(p) for p in write_sample_crawl(tmp_path / "crawl", seed=3, documents=60, files=2)]
    first = run_in(tmp_path, crawl, tmp_path / "old", until="extract")
    assert set(first.stages) == {"read", "extract"}

    shutil.move(tmp_path / "old", tmp_path / "new")
    done = sorted((tmp_path / "new/stages/extract/_done").glob("*.json"))
    before = {p: p.stat().st_mtime_ns for p in done}
    moved = run_in(tmp_path, crawl, tmp_path / "new")
    assert moved.stages["read"].cached and moved.stages["extract"].cached
    assert moved.stages["exact_dedup"].status == "done" and moved.stages["exact_dedup"].docs_out > 0
    assert {p: p.stat().st_mtime_ns for p in done} == before
    assert not (tmp_path / "old").exists()  # nothing was written to, or read from, the old place
