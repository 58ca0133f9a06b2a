"""train_classifier: examples from files and from the run's own documents, the model it writes,
how apply stages find it, and the three stages in real `pipeline run`s."""
from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest
import yaml

from crawl2model.classifiers.model import read_metadata
from crawl2model.pipeline.config import ConfigError
from crawl2model.catalog import load_config, parse_config
from crawl2model.pipeline.runner import run

ROOT = Path(__file__).resolve().parents[2]


def documents(rows: list[dict]) -> pa.Table:
    return pa.table({"id": [r["id"] for r in rows], "text": [r["text"] for r in rows]})


def labelled_file(tmp_path: Path, rows: list[dict], name: str = "labelled.jsonl") -> Path:
    path = tmp_path / name
    path.write_text("".join(json.dumps({"text": r["text"], "label": r["label"]}) + "\n" for r in rows))
    return path


def test_trains_on_files_and_a_seeded_sample_of_its_input(run_global, labelled_texts, tmp_path):
    rows = labelled_texts(800)
    reference = labelled_file(tmp_path, [r for r in rows[:400] if r["label"] == "hq"])
    crawl = [{**r, "id": f"crawl-{i}"} for i, r in enumerate(rows[400:]) if r["label"] == "lq"]  # 200 documents
    options = {"positive": "hq", "seed": 5, "buckets": 20_000, "dim": 16, "epochs": 20,
               "sources": [{"files": [str(reference)], "label": "hq"},
                           {"input": True, "label": "lq", "max_documents": 150}]}
    _, _, stage_dir = run_global("train_classifier", options, [documents(crawl[:70]), documents(crawl[70:])],
                                 name="quality_model")
    metadata = read_metadata(f"{stage_dir}/artifact/model.bin")
    assert metadata["data"]["examples"] == {"hq": 200, "lq": 150} and metadata["trained_by"] == "quality_model"
    assert metadata["metrics"]["roc_auc"] > 0.9
    # the same documents in other shards: the same sample, so the same model
    _, _, other = run_global("train_classifier", options, [documents(crawl[:20]), documents(crawl[20:120]),
                                                           documents(crawl[120:])], name="other")
    assert read_metadata(f"{other}/artifact/model.bin")["sha256"] == metadata["sha256"]


def stages_config(tmp_path: Path, labelled: Path, *stages: dict, crawl: Path | None = None) -> dict:
    return {"name": "t", "output_dir": str(tmp_path / "run"), "input": {"jsonl": [str(crawl or labelled)]},
            "stages": [{"name": "quality_model", "type": "train_classifier", "positive": "hq", "buckets": 20000,
                        "dim": 16, "sources": [{"files": [str(labelled)], "label_column": "label"}]}, *stages]}


def test_an_apply_stage_finds_the_model_trained_before_it(labelled_texts, tmp_path):
    labelled = labelled_file(tmp_path, labelled_texts(50))
    config, specs = parse_config(stages_config(tmp_path, labelled, {"name": "q", "type": "quality_classifier"}))
    bound = specs[-1].config
    assert bound.trained_by == "quality_model" and bound.label == "hq"
    assert bound.model == f"{config.output_dir}/stages/quality_model/artifact/model.bin"


@pytest.mark.parametrize("stage, message", [
    ({"name": "q", "type": "quality_classifier", "trained_by": "nope"}, "'nope' is not a train_classifier stage"),
    ({"name": "q", "type": "quality_classifier", "after": "read"}, "no model: set `model:`"),
    ({"name": "q", "type": "quality_classifier", "model": "m.bin", "trained_by": "quality_model"}, "not both"),
    ({"name": "q", "type": "quality_classifier", "model": "missing.bin"}, "model file not found"),
    ({"name": "q", "type": "quality_classifier", "max_score": 0.5}, "unknown key"),
])
def test_apply_stage_mistakes_are_config_errors(labelled_texts, tmp_path, stage, message):
    labelled = labelled_file(tmp_path, labelled_texts(50))
    with pytest.raises(ConfigError, match=message):
        parse_config(stages_config(tmp_path, labelled, stage))


def test_a_missing_training_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match=r"stages\[0\]\.sources: sources\[0\]: no file matches"):
        parse_config(stages_config(tmp_path, tmp_path / "absent.jsonl"))


@pytest.mark.ray
def test_a_changed_training_set_reruns_what_scores_with_it(local_ray, labelled_texts, tmp_path):
    labelled = labelled_file(tmp_path, labelled_texts(300))
    crawl = labelled_file(tmp_path, labelled_texts(300, seed=2), "crawl.jsonl")
    path = tmp_path / "crawl.yaml"
    path.write_text(yaml.safe_dump(stages_config(tmp_path, labelled, {"name": "q", "type": "quality_classifier"},
                                                 {"name": "after_q", "type": "fineweb_quality"}, crawl=crawl)))
    first = run(*load_config(path), show_progress=False)
    assert first.stages["q"].docs_out < first.stages["q"].docs_in == 300
    again = run(*load_config(path), show_progress=False)
    assert all(entry.cached for entry in again.stages.values())
    labelled_file(tmp_path, labelled_texts(300, seed=1))  # new training examples, same file name
    third = run(*load_config(path), show_progress=False)
    assert third.stages["read"].cached
    assert not any(third.stages[name].cached for name in ("quality_model", "q", "after_q"))


@pytest.mark.ray
@pytest.mark.shared
def test_classifier_stages_in_a_run_on_the_990_page_warc(local_ray, tmp_path):
    """examples/classifiers.yaml: a quality model trained on speeches against this crawl, a
    toxicity model on Davidson; every kept document has both scores, and the toxicity drops are
    exactly the documents above the threshold."""
    example = yaml.safe_load((ROOT / "examples" / "classifiers.yaml").read_text())
    example["output_dir"] = str(tmp_path / "run")
    example["input"]["warc"] = [str(ROOT.parent / "shared/data/warc/trafilatura-eval-990.warc.gz")]
    for stage in example["stages"]:
        for source in stage.get("sources", []):
            source["files"] = [f.replace("../shared", str(ROOT.parent / "shared")) for f in source.get("files", [])]
        if stage["name"] == "toxicity":
            stage["max_score"] = 0.5  # low enough that some pages go, to count them
    path = tmp_path / "classifiers.yaml"
    path.write_text(yaml.safe_dump(example))
    manifest = run(*load_config(path), show_progress=False)
    run_dir = tmp_path / "run"
    for name in ("quality_model", "toxicity_model"):
        assert manifest.stages[name].artifact and (run_dir / "stages" / name / "artifact/model.json").exists()
    assert read_metadata(str(run_dir / "stages/quality_model/artifact/model.bin"))["metrics"]["roc_auc"] > 0.95
    stage_dir = run_dir / "stages" / "toxicity"
    kept = duckdb.sql(f"select quality_score, toxicity_score from '{stage_dir}/kept/*.parquet'").df()
    removed = duckdb.sql(f"select toxicity_score, drop_reason from '{stage_dir}/removed/*.parquet'").df()
    stats = json.loads((stage_dir / "stats.json").read_text())
    print(f"\n{stats['docs_in']} scored; toxicity removed {len(removed)}; "
          f"quality scores {kept.quality_score.describe().round(3).to_dict()}")
    assert kept.quality_score.notna().all() and kept.toxicity_score.notna().all()
    assert (kept.toxicity_score <= 0.5).all() and (removed.toxicity_score > 0.5).all() and len(removed) > 0
    assert stats["removed_by_reason"] == {"toxicity_classifier:score>0.5": len(removed)}
    assert stats["docs_in"] == manifest.stages["quality"].docs_out == len(kept) + len(removed)
