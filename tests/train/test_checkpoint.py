"""Checkpoints (train/checkpoint.py) carry the tokenizer their model was trained with: `pipeline
generate` and `pipeline export` use it, and refuse another one."""
from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from crawl2model.cli import app
from crawl2model.model.llama import Llama, LlamaConfig
from crawl2model.stages.train_tokenizer import TrainTokenizerConfig, train_bpe
from crawl2model.train import checkpoint

TEXTS = [f"the {i}th cat sat on the {i % 5}th mat, and then it slept" for i in range(200)]


@pytest.fixture
def saved(tmp_path):
    """A checkpoint of a tiny model with the tokenizer it was made for, and another tokenizer of
    the same size."""
    paths = {}
    for name, texts in (("own", TEXTS), ("other", [t.upper() for t in TEXTS])):
        paths[name] = str(tmp_path / f"{name}.json")
        train_bpe(texts, TrainTokenizerConfig(vocab_size=300)).save(paths[name])
    model = Llama(LlamaConfig(vocab_size=300, dim=16, n_layers=1, n_heads=2, max_seq_len=32))
    folder = checkpoint.save(str(tmp_path / "ckpt"), 5, {"model": model.state_dict()},
                             {"model": model.config.to_dict()}, tokenizer=paths["own"])
    return folder, paths


def test_a_checkpoint_holds_its_tokenizer_and_names_it(saved):
    folder, paths = saved
    own = open(paths["own"], "rb").read()
    assert open(checkpoint.tokenizer_file(folder), "rb").read() == own
    config = json.loads(open(f"{folder}/config.json").read())
    import hashlib

    assert config["tokenizer_sha256"] == hashlib.sha256(own).hexdigest()
    assert checkpoint.tokenizer_file(folder, paths["own"]) == paths["own"]  # the same one, given: fine
    with pytest.raises(ValueError, match="is not the tokenizer .* was trained with"):
        checkpoint.tokenizer_file(folder, paths["other"])
    assert checkpoint.latest(folder.rsplit("/", 1)[0]) == folder


def test_generate_and_export_refuse_another_tokenizer(saved, tmp_path):
    folder, paths = saved
    for command in (["generate", folder, "the cat", "--max-new-tokens", "3", "--tokenizer", paths["other"]],
                    ["export", folder, str(tmp_path / "hf"), "--tokenizer", paths["other"]]):
        result = CliRunner().invoke(app, command, terminal_width=400)
        assert result.exit_code == 2 and "is not the tokenizer" in " ".join(result.output.split()), result.output
    result = CliRunner().invoke(app, ["generate", folder, "the cat", "--max-new-tokens", "3", "--temperature", "0"])
    assert result.exit_code == 0 and result.output.startswith("the cat")
    result = CliRunner().invoke(app, ["export", folder, str(tmp_path / "hf")])
    assert result.exit_code == 0 and (tmp_path / "hf" / "tokenizer.json").read_bytes() == open(paths["own"], "rb").read()
