"""`sft` and `dpo` as stages of a real run (examples/align.yaml), and what they start from."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from crawl2model.pipeline.config import ConfigError

from crawl2model.catalog import load_config, parse_config
from crawl2model.pipeline.runner import run

ROOT = Path(__file__).resolve().parents[2]
HH = str(ROOT.parent / "shared/data/preference-hh-rlhf/harmless-base-test.jsonl.gz")


@pytest.mark.ray
@pytest.mark.shared
def test_the_align_example_runs_pretrain_then_sft_then_dpo(local_ray, tmp_path):
    example = yaml.safe_load((ROOT / "examples" / "align.yaml").read_text())
    example["output_dir"] = str(tmp_path / "run")
    for stage in example["stages"]:
        if "data" in stage:
            stage["data"] = [HH]
    path = tmp_path / "align.yaml"
    path.write_text(yaml.safe_dump(example))
    config, nodes = load_config(path)
    by_name = {node.name: node.config for node in nodes}
    assert by_name["sft"].start == str(tmp_path / "run/stages/pretrain/artifact/step-000060")
    assert by_name["dpo"].start == str(tmp_path / "run/stages/sft/artifact/step-000040")
    manifest = run(config, nodes, show_progress=False)
    for name, steps in (("sft", 40), ("dpo", 40)):
        assert f"stages/{name}/artifact/step-{steps:06d}/state.pt" in {f.path for f in manifest.stages[name].artifact}
    last = json.loads((tmp_path / "run/stages/dpo/artifact/metrics.jsonl").read_text().splitlines()[-1])
    assert {"val/rewards/accuracies", "val/rewards/margins", "rewards/chosen", "rewards/rejected"} <= set(last)


def stages(tmp_path, *entries) -> dict:
    return {"name": "x", "output_dir": str(tmp_path), "input": {"sample": {}},
            "stages": [{"name": "extract", "type": "extract"}, *entries]}


def test_an_alignment_stage_needs_something_to_start_from(tmp_path):
    with pytest.raises(ConfigError, match="nothing to start from: put one of sft, pretrain before"):
        parse_config(stages(tmp_path, {"name": "dpo", "type": "dpo", "data": [HH]}))
    with pytest.raises(ConfigError, match="is not a checkpoint folder"):
        parse_config(stages(tmp_path, {"name": "sft", "type": "sft", "data": [HH], "steps": 1,
                                       "start": str(tmp_path), "tokenizer": "t.json"}))
    with pytest.raises(ConfigError, match="longer than the pretrained model's 64"):
        parse_config(stages(tmp_path, {"name": "bpe", "type": "train_tokenizer"}, {"name": "tok", "type": "tokenize"},
                            {"name": "pretrain", "type": "pretrain", "steps": 1, "seq_len": 64},
                            {"name": "sft", "type": "sft", "data": [HH], "steps": 1, "seq_len": 128}))
