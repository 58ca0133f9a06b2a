"""Tests for exact_dedup (stages/exact_dedup.py): document dedup on normalised text, line dedup
against the curation fixtures' expected output, and how the two combine."""
from __future__ import annotations

import pyarrow as pa
import pytest

from crawl2model.pipeline.config import ConfigError

from crawl2model.catalog import parse_config


def by_id(table: pa.Table | None, column: str) -> dict:
    return dict(zip(table.column("id").to_pylist(), table.column(column).to_pylist())) if table is not None else {}


@pytest.mark.shared
def test_line_dedup_gives_the_fixtures_expected_output(shared_data, run_global):
    root = shared_data / "curation-fixtures"
    names = [f"doc{i}" for i in range(1, 6)]
    given = [(root / "documents_with_line_duplicates" / f"{n}.txt").read_text(encoding="utf-8") for n in names]
    expected = {n: (root / "documents_line_deduplicated" / f"{n}.txt").read_text(encoding="utf-8") for n in names}
    tables = [pa.table({"id": names[:3], "text": given[:3]}), pa.table({"id": names[3:], "text": given[3:]})]
    kept, removed, _ = run_global("exact_dedup", {"documents": False, "lines": True, "max_line_repeats": 1}, tables)
    assert by_id(kept, "text") == {n: t for n, t in expected.items() if t}  # byte for byte
    assert by_id(removed, "drop_reason") == {n: "exact_dedup:empty_after_line_dedup" for n, t in expected.items() if not t}


def test_documents_equal_after_normalisation_keep_the_smallest_id(run_global):
    tables = [pa.table({"id": ["b", "c", "x"], "text": ["Hello, World!\nPage 2", "hello world page 7", "other"]}),
              pa.table({"id": ["a", "d"], "text": ["HELLO   world -- page 9", "unrelated text"]})]
    kept, removed, stage_dir = run_global("exact_dedup", {}, tables)
    assert sorted(kept.column("id").to_pylist()) == ["a", "d", "x"]
    assert by_id(removed, "duplicate_of") == {"b": "a", "c": "a"}
    assert set(by_id(removed, "drop_reason").values()) == {"exact_duplicate"}
    assert by_id(kept, "text")["a"] == "HELLO   world -- page 9"  # judged on normalised text, kept as written

    kept, removed, _ = run_global("exact_dedup", {"normalize": False}, tables, name="raw")
    assert kept.num_rows == 5 and removed is None


def test_a_duplicated_page_does_not_make_its_own_lines_frequent(run_global):
    page = "Welcome to the shop\nWe sell bread\nOpen daily"
    texts = [page, page, "Another page\nOpen daily", "Third page\nOpen daily"]
    table = pa.table({"id": ["p1", "p2", "p3", "p4"], "text": texts})
    kept, removed, stage_dir = run_global("exact_dedup", {"lines": True, "max_line_repeats": 2}, [table])
    assert by_id(removed, "drop_reason") == {"p2": "exact_duplicate"}
    assert by_id(kept, "text") == {"p1": "Welcome to the shop\nWe sell bread\n",
                                   "p3": "Another page\n", "p4": "Third page\n"}  # "Open daily" x3 > 2


def test_blank_and_punctuation_only_lines_are_never_removed(run_global):
    texts = ["one\n\n---\nalpha", "two\n\n---\nbeta", "three\n\n---\ngamma"]
    table = pa.table({"id": ["a", "b", "c"], "text": texts})
    kept, removed, _ = run_global("exact_dedup", {"documents": False, "lines": True}, [table])
    assert by_id(kept, "text") == dict(zip(["a", "b", "c"], texts)) and removed is None


def test_a_stage_with_nothing_to_do_is_a_config_error(tmp_path):
    (tmp_path / "in.jsonl").write_text('{"id": "a", "text": "b"}\n')
    with pytest.raises(ConfigError, match="nothing to do"):
        parse_config({"name": "t", "output_dir": str(tmp_path), "input": {"jsonl": [str(tmp_path / "in.jsonl")]},
                      "stages": [{"name": "d", "type": "exact_dedup", "documents": False}]})
