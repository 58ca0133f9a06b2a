"""The `pipeline` command as a user types it: status, inspect, validate, and its error exits."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from crawl2model.cli import app
from crawl2model.catalog import load_config
from crawl2model.pipeline.runner import run

cli = CliRunner()


@pytest.fixture(scope="module")
def finished_run(local_ray, tmp_path_factory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("cli")
    docs = tmp / "docs.jsonl"
    docs.write_text("".join(json.dumps({"text": t, "topic": "demo"}) + "\n"
                            for t in ["a short one", "a rather longer document about rivers and boats"]))
    config = tmp / "crawl.yaml"
    config.write_text(yaml.safe_dump({"name": "cli", "output_dir": str(tmp / "out"), "input": {"jsonl": [str(docs)]},
                                      "stages": [{"name": "short", "type": "example_stages:Short", "min_chars": 20}]}))
    run(*load_config(config), show_progress=False)
    return config, tmp / "out"


def test_status_lists_stages_with_counts(finished_run):
    _, out = finished_run
    result = cli.invoke(app, ["status", str(out)])
    assert result.exit_code == 0
    lines = {line.split()[1]: line for line in result.output.splitlines() if line.startswith("│")}
    assert "done" in lines["short"] and " 2 " in lines["short"] and " 1 " in lines["short"]


def test_inspect_shows_documents_and_reasons(finished_run):
    _, out = finished_run
    kept = cli.invoke(app, ["inspect", str(out), "short", "-n", "5"])
    assert kept.exit_code == 0 and "rivers and boats" in kept.output and "topic=demo" in kept.output
    removed = cli.invoke(app, ["inspect", str(out), "short", "--removed"])
    assert removed.exit_code == 0
    assert "removed: short:chars<20" in removed.output and "a short one" in removed.output


def test_validate_and_a_rerun_that_is_all_cached(finished_run):
    config, _ = finished_run
    assert "ok; stages: read, short" in cli.invoke(app, ["validate", str(config)]).output
    rerun = cli.invoke(app, ["run", str(config), "--no-progress"])
    assert rerun.exit_code == 0 and rerun.output.count("done (cached)") == 2


def test_errors_exit_with_code_2_and_say_why(finished_run, tmp_path):
    config, out = finished_run
    forced = cli.invoke(app, ["run", str(config), "--force", "shrot"])
    assert forced.exit_code == 2 and "no stage named 'shrot'" in forced.output
    assert cli.invoke(app, ["status", str(tmp_path)]).exit_code == 2
    unknown = cli.invoke(app, ["inspect", str(out), "nope"])
    assert unknown.exit_code == 2 and "stage 'nope' has no stats" in unknown.output


def test_classifiers_train_then_eval(labelled_texts, tmp_path):
    rows = labelled_texts(400)
    data = tmp_path / "train.jsonl"
    data.write_text("".join(json.dumps({"body": r["text"], "kind": r["label"]}) + "\n" for r in rows))
    held_out = tmp_path / "held_out.ft"  # fastText's own format: __label__name text
    held_out.write_text("".join(f"__label__{r['label']} {r['text']}\n" for r in labelled_texts(100, seed=9)))
    config = tmp_path / "train.yaml"
    config.write_text(yaml.safe_dump({"output": str(tmp_path / "m" / "model.bin"), "positive": "hq", "epochs": 20,
                                      "buckets": 20000, "dim": 16,
                                      "sources": [{"files": [str(data)], "text_column": "body", "label_column": "kind"}]}))
    trained = cli.invoke(app, ["classifiers", "train", str(config)])
    assert trained.exit_code == 0, trained.output
    assert "ROC AUC" in trained.output and (tmp_path / "m" / "model.json").exists()
    evaluated = cli.invoke(app, ["classifiers", "eval", str(tmp_path / "m" / "model.bin"), str(held_out), "--unit", "line"])
    assert evaluated.exit_code == 0, evaluated.output
    assert "scoring label 'hq' on 100 examples" in evaluated.output
    auc = float(evaluated.output.split("ROC AUC: ")[1].split()[0])
    assert auc > 0.9


def test_classifiers_errors_exit_with_code_2(tmp_path):
    config = tmp_path / "train.yaml"
    config.write_text("positive: hq\nsources: [{input: true, label: x}]\n")
    result = cli.invoke(app, ["classifiers", "train", str(config)])
    output = " ".join(result.output.split())  # rich wraps long lines
    assert result.exit_code == 2 and "output: required key is missing" in output
    assert "outside a run give `files`" in output
    result = cli.invoke(app, ["classifiers", "eval", str(tmp_path / "none.bin"), str(config), "--label", "x"])
    assert result.exit_code == 2 and "model file not found" in " ".join(result.output.split())
