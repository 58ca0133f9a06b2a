"""The runner under real local Ray: outputs, stats, manifest, caching, resume, --force, --until."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from crawl2model.catalog import load_config
from crawl2model.pipeline.runner import run
from crawl2model.pipeline.sample import write_sample_crawl
from crawl2model.pipeline.summary import stage_files

pytestmark = pytest.mark.ray
ROOT = Path(__file__).resolve().parents[2]


def write_config(tmp_path: Path, config: dict, name: str = "crawl.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(config))
    return path


def run_config(path: Path, **options):
    config, nodes = load_config(path)
    return run(config, nodes, show_progress=False, **options)


def shard_hashes(run_dir: Path, manifest) -> dict[str, str]:
    """Every output shard, by its path under the run directory, with its content hash."""
    found = {}
    for entry in manifest.stages.values():
        files = stage_files(str(run_dir), entry)
        for info in files.kept + files.removed:
            assert info.path.startswith("stages/")  # relative to the run directory
            found[info.path] = info.sha256
    return found


def mtimes(directory: Path) -> dict[str, float]:
    return {str(p): p.stat().st_mtime_ns for p in directory.rglob("*.parquet")}


@pytest.fixture(scope="module")
def crawl(tmp_path_factory) -> list[str]:
    return [str(p) for p in write_sample_crawl(tmp_path_factory.mktemp("crawl"), seed=7, documents=120, files=3)]


def test_example_runs_end_to_end_and_then_is_cached(demo_run, tmp_path):
    """The README's main command: every stage from the sample crawl to a DPO checkpoint."""
    run_dir, manifest = demo_run
    example = yaml.safe_load((ROOT / "examples" / "crawl.yaml").read_text())
    assert all(entry.status == "done" for entry in manifest.stages.values())
    assert list(manifest.stages) == ["read", *(stage["name"] for stage in example["stages"])]

    read, extract = manifest.stages["read"], manifest.stages["extract"]
    assert read.docs_in == example["input"]["sample"]["documents"]
    assert extract.docs_in == read.docs_out
    stats = json.loads((run_dir / "stages/extract/stats.json").read_text())
    assert stats["docs_in"] == stats["docs_out"] + sum(stats["removed_by_reason"].values())
    assert stats["removed_by_reason"]["extract:too_large"] == 1  # the sample's 1.5 MB page
    read_stats = json.loads((run_dir / "stages/read/stats.json").read_text())
    assert read_stats["removed_by_reason"]["read:not_html"] == 3  # png, json, css
    assert read_stats["counters"]["records:revisit"] == 1

    kept_dir = run_dir / "stages/extract/kept"
    by_pandas = pd.read_parquet(kept_dir)
    by_polars = pl.read_parquet(str(kept_dir / "*.parquet"))
    by_duckdb = duckdb.sql(f"select count(distinct id) from '{kept_dir}/*.parquet'").fetchall()[0][0]
    assert len(by_pandas) == by_polars.height == by_duckdb == extract.docs_out
    assert "html" not in by_pandas.columns and by_pandas["text"].str.len().min() > 0
    removed = pd.read_parquet(run_dir / "stages/extract/removed")
    assert set(removed["drop_reason"]) == set(stats["removed_by_reason"])
    # the sample plants 12 exact and 12 near duplicates (5% of 240 each); the filters keep them all
    exact, near = manifest.stages["exact_dedup"], manifest.stages["minhash_dedup"]
    assert exact.docs_in - exact.docs_out == 12 and near.docs_in - near.docs_out == 12

    # classifiers trained in the run on generated labelled texts, then applied
    for model, auc in (("quality_model", 0.6), ("toxicity_model", 0.95)):  # quality: prose against the crawl
        metrics = json.loads((run_dir / f"stages/{model}/artifact/model.json").read_text())["metrics"]  # made of
        assert metrics["roc_auc"] > auc, (model, metrics)  # the same sentences, so only somewhat apart
    scored = pd.read_parquet(run_dir / "stages/quality/kept")
    assert scored["quality_score"].between(0, 1).all()
    tokens = json.loads((run_dir / "stages/tokenize/artifact/index.json").read_text())
    assert sum(tokens["splits"][s]["documents"] for s in ("train", "val")) == manifest.stages["toxicity"].docs_out
    for stage, steps in (("pretrain", 60), ("sft", 30), ("dpo", 30)):
        assert (run_dir / f"stages/{stage}/artifact/step-{steps:06d}/state.pt").exists()

    before = mtimes(run_dir)
    again = run_config(run_dir.parent / "crawl.yaml")
    assert all(entry.cached for entry in again.stages.values())
    assert mtimes(run_dir) == before


def test_the_manifest_names_each_stages_listing_and_a_changed_listing_runs_the_stage_again(local_ray, tmp_path,
                                                                                           capsys):
    """The manifest lists no shard: each finished stage lists its shards once, in its folder, and
    the manifest names that listing (path, size, sha256, counts). A listing that is missing or
    changed, or an entry of an older version (its shards inline), is stale: its stage runs again."""
    run_dir = tmp_path / "run"
    path = write_config(tmp_path, {"name": "l", "output_dir": str(run_dir), "seed": 4,
                                   "input": {"sample": {"documents": 40, "files": 1}, "docs_per_shard": 10},
                                   "stages": [{"name": "extract", "type": "extract"}]})
    manifest = run_config(path)
    text = (run_dir / "manifest.json").read_text()
    assert "kept/part-" not in text and "removed/part-" not in text
    listing = manifest.stages["extract"].listing
    assert listing.path == "stages/extract/files.parquet" and listing.shards == 4
    files = stage_files(str(run_dir), manifest.stages["extract"])
    assert listing.files == len(files.kept) + len(files.removed) and listing.files_bytes == sum(
        f.bytes for f in files.every()) and [f.path for f in files.kept] == sorted(
        f"stages/extract/kept/{p.name}" for p in (run_dir / "stages/extract/kept").glob("*.parquet"))
    assert pd.read_parquet(run_dir / listing.path).columns.tolist() == ["kind", "path", "rows", "bytes", "sha256"]

    listed = run_dir / listing.path
    original = listed.read_bytes()
    listed.unlink()
    again = run_config(path)
    assert again.stages["read"].cached and again.stages["extract"].cached is False
    assert "extract: runs again: stages/extract/files.parquet is missing" in capsys.readouterr().err
    assert listed.read_bytes() == original  # the same shards, listed again

    pq.write_table(pq.read_table(listed).slice(1), listed)  # a shard fewer listed
    assert run_config(path).stages["extract"].cached is False
    assert "extract: runs again: stages/extract/files.parquet has " in capsys.readouterr().err

    raw = json.loads((run_dir / "manifest.json").read_text())  # as an older version wrote it
    for entry in raw["stages"].values():
        del entry["listing"]
        entry["kept"] = [{"path": f.path, "rows": f.rows, "bytes": f.bytes, "sha256": f.sha256} for f in files.kept]
    (run_dir / "manifest.json").write_text(json.dumps(raw))
    again = run_config(path)
    assert not again.stages["read"].cached and not again.stages["extract"].cached
    assert "lists no files (written by an older version)" in capsys.readouterr().err
    assert run_config(path).stages["extract"].cached and listed.read_bytes() == original


@pytest.mark.parametrize("materialize", ["all", "final"])  # final: read and extract hand their shards on in memory
def test_killed_run_resumes_to_the_same_shards(local_ray, killer, tmp_path, crawl, materialize):
    def config(out: str) -> dict:
        return {"name": "kill", "output_dir": str(tmp_path / out), "seed": 1, "materialize": materialize,
                "input": {"warc": crawl, "docs_per_shard": 4},
                "stages": [{"name": "extract", "type": "extract"},
                           {"name": "slow", "type": "example_stages:Slow", "seconds": 0.3}]}

    killed = write_config(tmp_path, config("killed"), "killed.yaml")
    process = subprocess.Popen([sys.executable, "-m", "crawl2model.cli", "run", str(killed), "--no-progress"],
                               start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    done_dir = tmp_path / "killed/stages/slow/_done"
    deadline = time.time() + 120
    while time.time() < deadline and len(list(done_dir.glob("*.json"))) < 3:
        time.sleep(0.05)
    killer(process)
    finished_before = {p.name: p.stat().st_mtime_ns for p in done_dir.glob("*.json")}
    assert 3 <= len(finished_before) < 30, "the run was not killed part-way"

    resumed = run_config(killed)
    assert {p.name: p.stat().st_mtime_ns for p in done_dir.glob("*.json") if p.name in finished_before} == finished_before
    straight = run_config(write_config(tmp_path, config("straight"), "straight.yaml"))
    assert shard_hashes(tmp_path / "killed", resumed) == shard_hashes(tmp_path / "straight", straight)
    assert len(shard_hashes(tmp_path / "straight", straight)) > 30


def test_force_until_and_changed_options(local_ray, tmp_path, crawl):
    raw = {"name": "f", "output_dir": str(tmp_path / "out"), "input": {"warc": crawl, "docs_per_shard": 50},
           "stages": [{"name": "extract", "type": "extract"},
                      {"name": "short", "type": "example_stages:Short", "min_chars": 200}]}
    path = write_config(tmp_path, raw)

    first = run_config(path, until="extract")
    assert set(first.stages) == {"read", "extract"}

    second = run_config(path, force=("extract",))
    assert second.stages["read"].cached and second.stages["short"].status == "done"
    assert second.stages["extract"].cached is False  # re-run, not taken from cache

    raw["stages"][1]["min_chars"] = 500
    third = run_config(write_config(tmp_path, raw))
    assert third.stages["read"].cached and third.stages["extract"].cached
    assert third.stages["short"].cached is False
    assert third.stages["short"].docs_out < second.stages["short"].docs_out
    reasons = pd.read_parquet(tmp_path / "out/stages/short/removed")["drop_reason"]
    assert set(reasons) == {"short:chars<500"}

    with pytest.raises(ValueError, match="no stage named 'nope'"):
        run_config(path, force=("nope",))


def test_user_columns_travel_and_bad_documents_are_quarantined(local_ray, tmp_path):
    docs = tmp_path / "docs.jsonl"
    rows = [{"text": f"document number {i} " * 3, "label": i % 3, "origin": f"src-{i}"} for i in range(30)]
    rows[7]["text"] = "this one goes boom"
    lines = [json.dumps(r) for r in rows]
    lines.insert(3, "{not json")
    docs.write_text("\n".join(lines) + "\n")
    raw = {"name": "j", "output_dir": str(tmp_path / "out"), "input": {"jsonl": [str(docs)], "docs_per_shard": 8},
           "stages": [{"name": "flaky", "type": "example_stages:Flaky"},
                      {"name": "shout", "type": "example_stages:Shout"},
                      {"name": "short", "type": "example_stages:Short", "min_chars": 60}]}
    manifest = run_config(write_config(tmp_path, raw))

    read_removed = pd.read_parquet(tmp_path / "out/stages/read/removed")
    assert list(read_removed["drop_reason"]) == ["read:bad_json"] and "line 4" in read_removed["drop_detail"][0]
    flaky_removed = pd.read_parquet(tmp_path / "out/stages/flaky/removed")
    assert list(flaky_removed["origin"]) == ["src-7"] and flaky_removed["drop_reason"][0] == "flaky:error"
    assert manifest.stages["flaky"].docs_out == 29

    kept = pd.read_parquet(tmp_path / "out/stages/short/kept").sort_values("origin")
    expected = pd.DataFrame([r for r in rows if "boom" not in r["text"]]).sort_values("origin")
    expected = expected[expected["text"].str.len() + 1 >= 60]
    assert list(kept["origin"]) == list(expected["origin"]) and list(kept["label"]) == list(expected["label"])
    assert all(t.endswith("!") and t[:-1] == t[:-1].upper() for t in kept["text"])
    short_removed = pd.read_parquet(tmp_path / "out/stages/short/removed")
    assert {"label", "origin", "chars", "drop_reason"} <= set(short_removed.columns)


def test_branching_dag_and_parquet_input(local_ray, tmp_path):
    table = pa.table({"doc": [f"id-{i}" for i in range(20)], "body": [("x" * i) for i in range(20)]})
    pq.write_table(table, tmp_path / "docs.parquet")
    raw = {"name": "d", "output_dir": str(tmp_path / "out"),
           "input": {"parquet": [str(tmp_path / "docs.parquet")], "text_column": "body", "id_column": "doc",
                     "docs_per_shard": 6},
           "stages": [{"name": "long", "type": "example_stages:Short", "min_chars": 10},
                      {"name": "longer", "type": "example_stages:Short", "min_chars": 15, "after": "long"},
                      {"name": "loud", "type": "example_stages:Shout", "after": "long"},
                      {"name": "both", "type": "example_stages:Flaky", "after": ["longer", "loud"]}]}
    manifest = run_config(write_config(tmp_path, raw))
    assert [manifest.stages[s].docs_out for s in ("long", "longer", "loud", "both")] == [10, 5, 10, 15]
    both = pd.read_parquet(tmp_path / "out/stages/both/kept")
    assert sorted(both["id"]) == sorted([f"id-{i}" for i in range(15, 20)] + [f"id-{i}" for i in range(10, 20)])


def test_unreadable_input_is_skipped_or_fatal_when_strict(local_ray, tmp_path, crawl):
    garbage = tmp_path / "garbage.warc.gz"
    garbage.write_bytes(os.urandom(4096))
    raw = {"name": "g", "output_dir": str(tmp_path / "out"), "input": {"warc": [crawl[0], str(garbage)]},
           "stages": [{"name": "extract", "type": "extract"}]}
    manifest = run_config(write_config(tmp_path, raw))
    stats = json.loads((tmp_path / "out/stages/read/stats.json").read_text())
    assert [s["path"] for s in stats["files_skipped"]] == [garbage.name]  # its absolute pattern's file: by name
    assert manifest.stages["extract"].docs_out > 0

    raw["input"]["strict"] = True
    raw["output_dir"] = str(tmp_path / "strict")
    with pytest.raises(Exception, match="not a readable WARC/ARC file"):
        run_config(write_config(tmp_path, raw))
    assert json.loads((tmp_path / "strict/manifest.json").read_text())["stages"]["read"]["status"] == "failed"


def test_a_changed_data_file_reruns_its_stage(local_ray, tmp_path):
    docs = tmp_path / "docs.jsonl"
    docs.write_text("".join(json.dumps({"text": f"page {i}", "url": f"https://site{i % 3}.example/p"}) + "\n"
                            for i in range(12)))
    blocked = tmp_path / "blocked.txt"
    blocked.write_text("site0.example\n")
    raw = {"name": "u", "output_dir": str(tmp_path / "out"), "input": {"jsonl": [str(docs)]},
           "stages": [{"name": "urls", "type": "url_filter", "domains_files": [str(blocked)]}]}
    path = write_config(tmp_path, raw)
    assert run_config(path).stages["urls"].docs_out == 8

    blocked.write_text("site0.example\nsite1.example\n")  # same options, new contents
    again = run_config(path)
    assert again.stages["read"].cached and "cached" not in again.stages["urls"]
    assert again.stages["urls"].docs_out == 4
