"""Tests for tokenize (stages/tokenize.py) and the token shard reader (train/tokens.py): counts in
index.json, zero-copy memory mapping, every document back by decoding, determinism, bad input."""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from tokenizers import Tokenizer

from crawl2model.model.special_tokens import EOS
from crawl2model.stages.train_tokenizer import TrainTokenizerConfig, train_bpe
from crawl2model.train.tokens import load_index, open_shard, token_type

TEXTS = [f"Document {i}: {'the quick brown fox ' * (i % 7 + 1)}jumps over {i * 13} lazy dogs. Ünïcödé 文字 {i}"
         for i in range(300)]


@pytest.fixture(scope="module")
def tokenizer_file(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("tokenizer") / "tokenizer.json"
    train_bpe(TEXTS, TrainTokenizerConfig(vocab_size=400)).save(str(path))
    return str(path)


def tokenize(run_global, tokenizer_file: str, name: str, shards_in: int = 3, **options):
    tables = [pa.table({"id": [f"d{i:04d}" for i in range(k, len(TEXTS), shards_in)], "text": TEXTS[k::shards_in]})
              for k in range(shards_in)]
    options = {"tokenizer": tokenizer_file, "shard_tokens": 1500, "val_fraction": 0.1, "seed": 7, **options}
    _, _, stage_dir = run_global("tokenize", options, tables, name=name)
    return load_index(Path(stage_dir) / "artifact")


def mapped_ranges(path: str) -> list[tuple[int, int]]:
    """Address ranges where this process maps `path` (from /proc/self/maps)."""
    ranges = []
    for line in Path("/proc/self/maps").read_text().splitlines():
        if line.endswith(str(Path(path).resolve())):
            start, end = (int(x, 16) for x in line.split()[0].split("-"))
            ranges.append((start, end))
    return ranges


def test_index_counts_are_the_shards_row_lengths_and_every_document_comes_back(run_global, tokenizer_file):
    index = tokenize(run_global, tokenizer_file, "a")
    tokenizer = Tokenizer.from_file(tokenizer_file)
    decoded = []
    for split in ("train", "val"):
        entry = index.data["splits"][split]
        assert len(entry["shards"]) >= (2 if split == "train" else 1)
        for shard_entry, shard in zip(entry["shards"], index.open(split)):
            lengths = np.diff(shard.offsets)
            assert shard_entry["tokens"] == lengths.sum() == len(shard.tokens)
            assert shard_entry["documents"] == shard.documents
            assert shard.tokens.dtype == np.uint16 and index.dtype == "uint16"
            ends = shard.tokens[shard.offsets[1:] - 1]
            assert (ends == tokenizer.token_to_id(EOS)).all()  # every document ends with EOS
            decoded += [tokenizer.decode(shard.tokens[a:b - 1].tolist(), skip_special_tokens=False)
                        for a, b in zip(shard.offsets[:-1], shard.offsets[1:])]
        assert entry["tokens"] == sum(s["tokens"] for s in entry["shards"])
    assert sorted(decoded) == sorted(TEXTS)
    assert 10 <= index.data["splits"]["val"]["documents"] <= 60  # 10% of 300, seeded
    expected = hashlib.sha256(Path(tokenizer_file).read_bytes()).hexdigest()
    assert index.tokenizer_sha256 == expected  # the tokenizer used, and its copy beside the shards
    assert hashlib.sha256(Path(index.tokenizer).read_bytes()).hexdigest() == expected
    assert index.data["tokenizer"] == "tokenizer.json"  # relative: no path of this machine in the index


def test_reading_a_shard_maps_it_and_copies_nothing(run_global, tokenizer_file):
    index = tokenize(run_global, tokenizer_file, "b")
    path = Path(index.root) / index.shards("train")[0]["path"]
    shard = open_shard(path)
    ranges = mapped_ranges(str(path))
    assert ranges, "the shard is not memory-mapped"
    for array in (shard.tokens, shard.offsets):
        address = array.__array_interface__["data"][0]
        assert any(start <= address < end for start, end in ranges)
        assert not array.flags.owndata


def test_two_runs_write_the_same_bytes_and_the_seed_changes_the_order(run_global, tokenizer_file):
    first, second = tokenize(run_global, tokenizer_file, "c"), tokenize(run_global, tokenizer_file, "d", shards_in=5)
    assert [s["sha256"] for s in first.shards("train")] == [s["sha256"] for s in second.shards("train")]
    other = tokenize(run_global, tokenizer_file, "e", seed=8)
    assert [s["sha256"] for s in other.shards("train")] != [s["sha256"] for s in first.shards("train")]


def test_wide_vocabularies_use_uint32():
    assert token_type(65536) == pa.uint16() and token_type(65537) == pa.uint32()


def test_missing_tokenizer_and_files_that_are_not_shards_are_clear_errors(run_global, tmp_path):
    with pytest.raises(FileNotFoundError, match="train_tokenizer stage"):
        tokenize(run_global, None, "f")
    (tmp_path / "junk.arrow").write_bytes(b"not arrow at all")
    with pytest.raises(ValueError, match="not a token shard"):
        open_shard(tmp_path / "junk.arrow")
    with pytest.raises(FileNotFoundError, match="tokenize"):
        load_index(tmp_path)


@pytest.mark.ray
def test_train_tokenizer_then_tokenize_in_a_pipeline_run(local_ray, tmp_path):
    import yaml
    from transformers import PreTrainedTokenizerFast
    from typer.testing import CliRunner

    from crawl2model.cli import app
    from crawl2model.catalog import load_config
    from crawl2model.pipeline.runner import run

    config = {"name": "tok", "output_dir": str(tmp_path / "run"), "seed": 5,
              "input": {"sample": {"documents": 120, "files": 2}, "docs_per_shard": 16},
              "stages": [{"name": "extract", "type": "extract", "max_html_bytes": 1_000_000},
                         {"name": "bpe", "type": "train_tokenizer", "vocab_size": 800, "sample_documents": 60},
                         {"name": "tokenize", "type": "tokenize", "shard_tokens": 4000},
                         {"name": "langid", "type": "langid", "after": "bpe"}]}
    path = tmp_path / "crawl.yaml"
    path.write_text(yaml.safe_dump(config))
    manifest = run(*load_config(path), show_progress=False)
    stages = manifest.stages
    assert stages["tokenize"].docs_in == stages["bpe"].docs_in == stages["extract"].docs_out
    assert stages["langid"].docs_in == stages["extract"].docs_out  # through bpe, which removes nothing
    made = {f.path for f in stages["tokenize"].artifact}
    assert {"stages/tokenize/artifact/index.json", "stages/tokenize/artifact/tokenizer.json"} <= made

    index = load_index(tmp_path / "run")
    assert index.data["splits"]["train"]["documents"] + index.data["splits"]["val"]["documents"] == \
        stages["extract"].docs_out
    fast = PreTrainedTokenizerFast(tokenizer_file=str(tmp_path / "run/stages/bpe/artifact/tokenizer.json"))
    ours = Tokenizer.from_file(str(tmp_path / "run/stages/bpe/artifact/tokenizer.json"))
    sentence = "Ein Satz, une phrase, a sentence: 12345 ✓"
    assert fast(sentence)["input_ids"] == ours.encode(sentence).ids and fast.decode(fast(sentence)["input_ids"]) == sentence

    printed = CliRunner().invoke(app, ["tokens", "stats", str(tmp_path / "run")], terminal_width=200)
    assert printed.exit_code == 0 and "train" in printed.output and "uint16" in printed.output
    again = run(*load_config(path), show_progress=False)
    assert all(entry.cached for entry in again.stages.values())
