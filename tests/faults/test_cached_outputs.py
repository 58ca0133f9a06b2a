"""A cache serves only what its records say: a finished stage whose file was cut, swapped or
deleted runs again (from scratch), and the run says why."""
from __future__ import annotations

import hashlib
import shutil

import pytest
import yaml

from crawl2model.catalog import load_config
from crawl2model.pipeline.runner import run

pytestmark = pytest.mark.ray


def sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_cut_or_swapped_shard_is_not_served_from_the_cache(local_ray, tmp_path, capsys):
    path = tmp_path / "crawl.yaml"
    path.write_text(yaml.safe_dump({"name": "v", "output_dir": str(tmp_path / "run"), "seed": 4,
                                    "input": {"sample": {"documents": 40, "files": 1}, "docs_per_shard": 10},
                                    "stages": [{"name": "extract", "type": "extract"}]}))
    run(*load_config(path), show_progress=False)
    kept = sorted((tmp_path / "run/stages/extract/kept").glob("*.parquet"))
    first, second = kept[0], kept[1]
    expected = sha(first)

    first.write_bytes(first.read_bytes()[:100])  # cut: the size says so
    again = run(*load_config(path), show_progress=False)
    assert again.stages["read"].cached and again.stages["extract"].cached is False and sha(first) == expected
    assert f"extract: runs again: stages/extract/kept/{first.name} has 100 bytes" in capsys.readouterr().err

    shutil.copyfile(second, first)  # a whole, readable shard, but another one
    assert run(*load_config(path), show_progress=False).stages["extract"].cached is False and sha(first) == expected

    data = bytearray(first.read_bytes())  # one byte changed: the size is right, only the sha256 tells
    data[len(data) // 2] ^= 0xFF
    first.write_bytes(bytes(data))
    assert run(*load_config(path), show_progress=False, verify=False).stages["extract"].cached  # sizes only
    again = run(*load_config(path), show_progress=False)
    assert again.stages["extract"].cached is False and sha(first) == expected
    assert "is not the file its stage wrote (its sha256 differs)" in capsys.readouterr().err

    first.unlink()
    assert run(*load_config(path), show_progress=False).stages["extract"].cached is False and sha(first) == expected
    assert run(*load_config(path), show_progress=False).stages["extract"].cached  # whole again: from the cache
