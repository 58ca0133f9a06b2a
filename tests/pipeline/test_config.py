"""Config errors: each kind of mistake is reported with its key path and a hint, before any work."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from crawl2model.pipeline.config import ConfigError

from crawl2model.catalog import load_config, parse_config

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def warc_file(tmp_path: Path) -> str:
    from crawl2model.pipeline.sample import write_sample_crawl

    return str(write_sample_crawl(tmp_path / "crawl", documents=40, files=1)[0])


def base(warc_file: str, **changes) -> dict:
    config = {"name": "t", "output_dir": "out", "input": {"warc": [warc_file]},
              "stages": [{"name": "extract", "type": "extract"}]}
    config.update(changes)
    return config


def problems(raw) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(raw, source="crawl.yaml")
    return caught.value.problems


def only(raw) -> str:
    found = problems(raw)
    assert len(found) == 1, found
    return found[0]


def test_the_example_config_is_valid():
    config, nodes = load_config(ROOT / "examples" / "crawl.yaml")
    assert config.name == "demo" and [s.name for s in nodes] == [
        "extract", "langid", "gopher_repetition", "gopher_quality", "c4_quality", "fineweb_quality", "exact_dedup",
        "minhash_dedup", "quality_model", "quality", "toxicity_model", "toxicity", "bpe", "tokenize", "pretrain",
        "sft", "dpo"]


def test_the_common_crawl_example_is_valid_but_for_its_remote_files(warc_file, tmp_path):
    """Its inputs are on S3 (not reachable here): local stand-ins check every other key."""
    raw = yaml.safe_load((ROOT / "examples" / "commoncrawl.yaml").read_text())
    assert raw["input"]["warc"][0].startswith("s3://commoncrawl/") and raw["output_dir"].startswith("s3://")
    (tmp_path / "reference.jsonl").write_text(json.dumps({"text": "A paragraph of good prose."}) + "\n")
    (tmp_path / "toxicity.csv").write_text("text,label\nyou fool,1\nthank you,0\n")
    raw["input"].update(warc=[warc_file], storage_options={})
    raw["output_dir"] = str(tmp_path / "out")
    stages = {stage["name"]: stage for stage in raw["stages"]}
    stages["quality_model"]["sources"][0]["files"] = [str(tmp_path / "reference.jsonl")]
    stages["toxicity_model"]["sources"][0]["files"] = [str(tmp_path / "toxicity.csv")]
    config, nodes = parse_config(raw, source="commoncrawl.yaml")
    assert nodes[-1].name == "pretrain" and nodes[-1].config.workers == 8


def test_unknown_top_level_key_suggests_the_right_one(warc_file):
    raw = base(warc_file)
    raw["outptu_dir"] = raw.pop("output_dir")
    found = problems(raw)
    assert any(p.startswith("outptu_dir: unknown key; did you mean 'output_dir'?") for p in found), found
    assert any(p == "output_dir: required key is missing" for p in found), found


def test_nested_unknown_key(warc_file):
    assert only(base(warc_file, ray={"adress": "x"})).startswith("ray.adress: unknown key; did you mean 'address'?")


def test_wrong_type_names_key_and_value(warc_file):
    message = only(base(warc_file, seed="twelve"))
    assert message.startswith("seed: ") and "'twelve'" in message


def test_out_of_range_value(warc_file):
    raw = base(warc_file)
    raw["input"]["docs_per_shard"] = 0
    assert only(raw).startswith("input.docs_per_shard: ")


def test_unknown_stage_type_suggests_a_known_one(warc_file):
    message = only(base(warc_file, stages=[{"name": "x", "type": "extrct"}]))
    assert message.startswith("stages[0].type: unknown stage type 'extrct'; did you mean 'extract'?")


def test_unknown_stage_option(warc_file):
    message = only(base(warc_file, stages=[{"name": "x", "type": "extract", "engin": "trafilatura"}]))
    assert message.startswith("stages[0].engin: unknown key; did you mean 'engine'?")


def test_bad_stage_option_value(warc_file):
    message = only(base(warc_file, stages=[{"name": "x", "type": "extract", "engine": "magic"}]))
    assert message.startswith("stages[0].engine: ") and "'magic'" in message


def test_stage_import_path_that_does_not_import(warc_file):
    message = only(base(warc_file, stages=[{"name": "x", "type": "nopkg_here.module:Stage"}]))
    assert message.startswith("stages[0].type: cannot import module 'nopkg_here.module'")


def test_stage_import_path_that_is_not_a_stage(warc_file):
    message = only(base(warc_file, stages=[{"name": "x", "type": "json:JSONDecoder"}]))
    assert message.startswith("stages[0].type: 'JSONDecoder' in module 'json' is not a crawl2model.pipeline.stage.Stage")


def test_after_names_an_unknown_stage(warc_file):
    message = only(base(warc_file, stages=[{"name": "extract", "type": "extract", "after": "reed"}]))
    assert message.startswith("stages[0].after: 'reed' is not a stage listed before this one; did you mean 'read'?")


def test_duplicate_and_reserved_stage_names(warc_file):
    found = problems(base(warc_file, stages=[{"name": "read", "type": "extract"}]))
    assert any(p.startswith("stages[0].name: 'read' is used twice (or is the reserved name") for p in found), found


def test_missing_input_files(warc_file):
    message = only(base(warc_file, input={"warc": ["no/such/dir/*.warc.gz"]}))
    assert message.startswith("input.warc[0]: no file matches 'no/such/dir/*.warc.gz'")


def test_no_input_at_all(warc_file):
    assert only(base(warc_file, input={})).startswith("input: no input given")


def test_stage_that_needs_a_column_its_input_lacks(tmp_path):
    jsonl = tmp_path / "docs.jsonl"
    jsonl.write_text(json.dumps({"text": "hello", "label": 1}) + "\n")
    message = only({"name": "t", "output_dir": "out", "input": {"jsonl": [str(jsonl)]},
                    "stages": [{"name": "extract", "type": "extract"}]})
    assert message.startswith("stages[0] (extract): needs column(s) html")


def test_invalid_yaml_gives_line_number(tmp_path):
    path = tmp_path / "crawl.yaml"
    path.write_text("name: t\nstages: [\n  {name: a\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert "line " in caught.value.problems[0] and "not valid YAML" in caught.value.problems[0]


def test_all_problems_are_reported_together(warc_file):
    raw = base(warc_file, seed="x", bogus=1, stages=[{"name": "a", "type": "nope"},
                                                     {"name": "b", "type": "extract", "after": "zz"},
                                                     {"type": "extract"},  # no name
                                                     {"name": "d", "type": "gopher_quality", "min_doc_words": "many"}])
    found = problems(raw)  # the top level's, every entry's, the options' and the DAG's: one pass
    assert [p.split(":")[0] for p in found] == ["seed", "bogus", "stages[2].name", "stages[0].type",
                                                "stages[3].min_doc_words", "stages[1].after"], found


def test_a_stage_after_one_with_a_problem_is_still_checked(warc_file, tmp_path):
    raw = base(warc_file, stages=[{"name": "e", "type": "extract", "favor": "speed"},
                                  {"name": "t", "type": "tokenize", "tokenizer": str(tmp_path / "none.json")}])
    found = problems(raw)
    assert found[0].startswith("stages[0].favor:")
    assert found[1] == f"stages[1].tokenizer: no file '{tmp_path / 'none.json'}'"  # its own option, not what it binds


@pytest.mark.parametrize("stages", [[], None])
def test_a_run_without_stages_is_refused(warc_file, stages):
    raw = base(warc_file, stages=stages)
    if stages is None:
        del raw["stages"]
    assert only(raw).startswith("stages: no stages; list at least one")


def test_a_sample_smaller_than_the_generator_needs_is_refused(warc_file):
    from crawl2model.pipeline.sample import MIN_DOCUMENTS

    raw = base(warc_file, input={"sample": {"documents": MIN_DOCUMENTS - 1}})
    assert only(raw) == (f"input.sample: documents: at least {MIN_DOCUMENTS} (the sample's junk, duplicate and "
                         f"odd-encoding pages need room), got {MIN_DOCUMENTS - 1}")
    raw["input"]["sample"] = {"documents": MIN_DOCUMENTS, "files": MIN_DOCUMENTS + 1}
    assert only(raw).startswith("input.sample: files: at most one per document")


@pytest.mark.parametrize("stage, key", [
    ({"type": "tokenize", "tokenizer": "{missing}"}, "tokenizer"),
    ({"type": "sft", "data": ["{missing}"], "steps": 2}, "data"),
    ({"type": "dpo", "data": ["{missing}"], "steps": 2}, "data"),
    ({"type": "train_classifier", "positive": "hq",
      "sources": [{"files": ["{missing}"], "label": "hq"}, {"sample": "toxic", "label": "lq"}]}, "sources"),
    ({"type": "langid", "model": "{missing}"}, "model"),
    ({"type": "quality_classifier", "model": "{missing}"}, "model"),
    ({"type": "badwords", "lists_dir": "{missing}"}, "lists_dir"),
    ({"type": "pretrain", "tokens_dir": "{missing}", "steps": 2}, "tokens_dir"),
    ({"type": "sft", "start": "{missing}", "sample": 10, "steps": 2}, "start"),
])
def test_a_missing_file_named_by_a_stage_is_reported_before_any_work(warc_file, tmp_path, stage, key):
    missing = str(tmp_path / "absent" / "file")
    options = {k: (v.replace("{missing}", missing) if isinstance(v, str) else v) for k, v in stage.items()}
    options = yaml.safe_load(yaml.safe_dump(options).replace("'{missing}'", repr(missing)))
    found = [p for p in problems(base(warc_file, stages=[{"name": "extract", "type": "extract"}, {"name": "s", **options}]))
             if missing in p]  # sft and dpo also say they have nothing to start from
    assert len(found) == 1 and found[0].startswith("stages[1]") and key in found[0].split(missing)[0], found


def test_cli_reports_config_errors_before_starting_ray(tmp_path, warc_file):
    path = tmp_path / "crawl.yaml"
    path.write_text(yaml.safe_dump(base(warc_file, stages=[{"name": "x", "type": "extrct"}])))
    # in a fresh interpreter, so that "Ray was never imported" is something the test can see
    script = ("import sys; from typer.testing import CliRunner; from crawl2model.cli import app; "
              f"r = CliRunner().invoke(app, ['run', {str(path)!r}]); "
              "print(r.exit_code, 'ray' in sys.modules); print(r.output)")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.stdout.startswith("2 False"), result.stdout + result.stderr
    assert "stages[0].type: unknown stage type 'extrct'" in result.stdout


def test_a_stage_name_is_a_plain_folder_name_inside_the_run(warc_file):
    """A name is its folder under stages/, cleared when the stage re-runs: one that leads out of
    the run directory (`..`, `a/b`, `../../victim`) would delete or write another folder."""
    names = ["..", ".", "../../victim", "a/b", "with space", "", "ok.name-1_x"]
    found = problems(base(warc_file, stages=[{"name": n, "type": "extract", "after": "read"} for n in names]))
    assert [p.split(":")[0] for p in found] == [f"stages[{i}].name" for i in range(6)]
    assert "cannot name a stage" in found[0] and "should match pattern" in found[2]


def test_pretrain_takes_a_token_budget_and_names_the_folder_option(warc_file):
    stages = [{"name": "extract", "type": "extract"}, {"name": "tokenize", "type": "tokenize", "tokenizer": warc_file},
              {"name": "pretrain", "type": "pretrain", "tokens": 20000}]
    config, nodes = parse_config(base(warc_file, stages=stages), source="crawl.yaml")
    assert nodes[-1].config.tokens == 20000 and nodes[-1].config.tokens_dir.endswith("stages/tokenize/artifact")
    stages[-1]["tokens"] = "runs/old/stages/tokenize/artifact"
    assert "a folder of token shards is `tokens_dir`" in only(base(warc_file, stages=stages))


def test_a_training_layout_the_model_or_the_workers_cannot_take_is_reported_before_any_work(warc_file):
    stage = {"name": "pretrain", "type": "pretrain", "tokens_dir": "x", "steps": 2, "workers": 2,
             "model": {"n_heads": 4}, "parallel": {"tp": 3}}
    found = problems(base(warc_file, stages=[stage]))
    assert any(p.startswith("stages[0]") and "tp 3 must divide n_heads (4)" in p
               and "dp 1 x tp 3 x pp 1 is 3 processes, but the job has 2" in p for p in found), found
