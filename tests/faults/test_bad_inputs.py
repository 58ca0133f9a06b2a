"""Bad inputs end as a removed row with its reason and location, a skipped file with its reason, or
a config error before any work; never a crashed run and never silent loss (the faults of the
audit in issue "Nothing lost, nothing escaped" that this suite covers so far)."""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

import bad_inputs
from crawl2model.pipeline.charset import decode_html
from crawl2model.pipeline.sources import InputConfig, InputFile, read_chunks
from crawl2model.pipeline.warc import UnreadableFile


def read(path: Path, kind: str, **options):
    """(kept rows, removed rows) of one input file, as the reader shards it."""
    chunks = list(read_chunks(InputFile(0, kind, str(path)), InputConfig(**options), Counter()))
    kept = [row for c in chunks for row in c.kept.to_pylist()]
    removed = [row for c in chunks if c.removed is not None for row in c.removed.to_pylist()]
    return kept, removed


def test_jsonl_columns_that_first_appear_after_the_first_row_are_kept(tmp_path):
    kept, _ = read(bad_inputs.jsonl_columns_after_the_first_row(tmp_path), "jsonl")
    assert [(r["id"], r.get("label"), r.get("lang")) for r in kept] == [("a", None, None), ("b", "x", None),
                                                                       ("c", "y", "en")]


def test_a_jsonl_column_of_mixed_types_becomes_text_and_nothing_is_lost(tmp_path):
    kept, removed = read(bad_inputs.jsonl_mixed_types(tmp_path), "jsonl")
    assert [r["score"] for r in kept] == ["1", "high", '{"v": 3}'] and removed == []


def test_a_users_drop_reason_column_travels_and_removed_rows_keep_the_users_id(tmp_path):
    kept, removed = read(bad_inputs.jsonl_reserved_columns(tmp_path), "jsonl")
    assert [(r["id"], r["input_drop_reason"]) for r in kept] == [("keep-me", "the user's own note")]
    assert [(r["id"], r["drop_reason"]) for r in removed] == [("no-text", "read:no_text")]


def test_a_cut_jsonl_gz_keeps_the_documents_before_the_cut(tmp_path):
    kept, removed = read(bad_inputs.jsonl_gzip_cut(tmp_path), "jsonl")
    assert 10 < len(kept) < 50 and [r["id"] for r in kept] == [f"d{i}" for i in range(len(kept))]
    assert [r["drop_reason"] for r in removed] == ["read:malformed_file"]
    assert removed[0]["drop_detail"].startswith(f"after line {len(kept)}")


def test_a_cut_parquet_file_is_skipped_with_its_reason(tmp_path):
    with pytest.raises(UnreadableFile, match="not a readable Parquet file"):
        read(bad_inputs.parquet_cut(tmp_path), "parquet")


def test_a_parquet_text_column_that_is_not_text_is_a_config_error(tmp_path):
    from crawl2model.catalog import parse_config
    from crawl2model.pipeline.config import ConfigError

    path = bad_inputs.parquet_int_text(tmp_path)
    with pytest.raises(ConfigError, match=r"input.parquet\[0\]: column 'text' of .* is int64, not text"):
        parse_config({"name": "x", "output_dir": str(tmp_path / "out"), "input": {"parquet": [str(path)]}})


def test_a_content_length_too_large_costs_its_record_only(tmp_path):
    kept, removed = read(bad_inputs.warc_length_overrun(tmp_path), "warc")
    assert [r["url"] for r in kept] == [f"http://example.com/{n}" for n in (0, 2, 3, 4)]
    assert all("WARC/1.0" not in r["html"] for r in kept)
    assert [(r["url"], r["drop_reason"]) for r in removed] == [("http://example.com/1", "read:malformed_record")]
    assert "runs into the next record" in removed[0]["drop_detail"]
    assert [r["offset"] for r in kept] == [n * len(bad_inputs.warc_response(0)) for n in (0, 2, 3, 4)]


def test_a_content_length_past_the_end_of_the_file_is_truncated(tmp_path):
    kept, removed = read(bad_inputs.warc_length_past_the_end(tmp_path), "warc", max_record_bytes=2**20)
    assert [r["url"] for r in kept] == ["http://example.com/0"]
    assert [r["drop_reason"] for r in removed] == ["read:truncated"]


def test_a_gigabyte_line_of_zeros_after_a_record_ends_the_file_quickly(tmp_path):
    import time
    import tracemalloc

    path = bad_inputs.warc_zeros_after_a_record(tmp_path)
    started = time.monotonic()
    tracemalloc.start()
    try:
        kept, removed = read(path, "warc")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert [r["url"] for r in kept] == ["http://example.com/0"]
    assert [r["drop_reason"] for r in removed] == ["read:malformed_file"]
    assert peak < 32 * 2**20 and time.monotonic() - started < 60  # before: 4.1 GB after 580 s (of 1 GB)


@pytest.mark.parametrize("codec", ["bz2", "zstd"])
def test_a_decompression_bomb_stops_at_the_files_limit(tmp_path, codec):
    import tracemalloc

    path = bad_inputs.bomb(tmp_path, codec, copies=40)  # 320 MB of zeros from a few kB
    tracemalloc.start()
    try:
        with pytest.raises(UnreadableFile, match="not a readable WARC/ARC file"):  # zeros are no WARC
            read(path, "warc")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 32 * 2**20


@pytest.mark.parametrize("codec", ["bz2", "zstd"])
def test_a_file_past_its_decompressed_size_limit_ends_with_a_row(tmp_path, codec):
    import bz2

    import zstandard

    records = b"".join(bad_inputs.warc_response(n) for n in range(3000))  # ~1.1 MB
    compress = bz2.compress if codec == "bz2" else zstandard.ZstdCompressor().compress
    path = tmp_path / f"big.warc.{codec}"
    path.write_bytes(compress(records))
    kept, removed = read(path, "warc", max_file_bytes=2**19)
    assert 0 < len(kept) < 3000 and [r["drop_reason"] for r in removed] == ["read:too_large"]
    assert f"stopped after {len(kept)} records: the file decompresses to over 524288 bytes" in removed[0]["drop_detail"]


def test_a_file_past_its_time_limit_ends_with_a_row(tmp_path):
    path = bad_inputs.warc_length_overrun(tmp_path)
    kept, removed = read(path, "warc", max_file_seconds=1e-9)
    assert kept == [] and [r["drop_reason"] for r in removed] == ["read:timeout"]


def test_an_over_long_jsonl_line_is_a_removed_row(tmp_path):
    kept, removed = read(bad_inputs.jsonl_long_line(tmp_path), "jsonl", max_record_bytes=2**20)
    assert [r["id"] for r in kept] == ["a", "c"]
    assert [(r["drop_reason"], r["drop_detail"]) for r in removed] == [
        ("read:too_large", f"line 2: a line of over {2**20} characters")]


@pytest.mark.parametrize("label", ["base64", "hex", "zlib", "rot13", "uu"])
def test_a_charset_that_is_a_codec_but_no_text_encoding_is_ignored(label):
    page = bad_inputs.html_with_a_codec_that_is_no_text_encoding(label)
    assert decode_html(page, None) == (page.decode("utf-8"), "utf-8")
    assert decode_html(page, label)[0] == page.decode("utf-8")  # as the HTTP header's charset too


def test_an_unreadable_done_record_counts_as_not_done(tmp_path, caplog):
    from crawl2model.pipeline import records

    (tmp_path / "empty.json").write_bytes(b"")  # what a power cut can leave
    assert records.read(str(tmp_path / "empty.json"), records.DoneRecord) is None
    assert "ignoring unreadable" in caplog.text and "empty.json" in caplog.text


def test_a_stage_type_is_checked_before_its_module_runs(capsys):
    from crawl2model.catalog import resolve_stage

    with pytest.raises(LookupError, match="'X' in module 'this' is not"):
        resolve_stage("this:X")  # the module `this` prints the Zen of Python when imported
    assert "Beautiful is better" not in capsys.readouterr().out
    with pytest.raises(LookupError, match="is a base class"):
        resolve_stage("crawl2model.pipeline.stage:Stage")


def test_inspect_prints_crawled_text_as_text_not_markup(tmp_path):
    import pyarrow as pa
    from typer.testing import CliRunner

    from crawl2model.cli import app
    from crawl2model.pipeline import storage

    stage = tmp_path / "stages" / "extract"
    storage.write_json(str(stage / "stats.json"), {"docs_in": 1, "docs_out": 1, "wall_seconds": 0, "removed_by_reason": {}})
    storage.write_parquet(str(stage / "kept" / "part-0.parquet"),
                          pa.table({"id": ["x"], "url": ["http://e.com/[/]?a=[red]"], "text": ["[bold]not bold[/]"],
                                    "note": [":smile: [/]"]}))
    result = CliRunner().invoke(app, ["inspect", str(tmp_path), "extract"], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "http://e.com/[/]?a=[red]" in result.output and "[bold]not bold[/]" in result.output
    assert "note=:smile: [/]" in result.output


@pytest.mark.parametrize("kind", ["warc", "jsonl", "parquet"])
def test_an_empty_input_file_is_skipped_with_its_reason(tmp_path, kind):
    empty = tmp_path / f"empty.{kind}"
    empty.write_bytes(b"")
    with pytest.raises(UnreadableFile, match=r"an empty file \(0 bytes\)"):
        read(empty, kind)


@pytest.mark.ray
def test_the_end_of_a_run_names_every_input_file_it_skipped(local_ray, tmp_path):
    import os

    import yaml
    from typer.testing import CliRunner

    from crawl2model.cli import app
    from crawl2model.pipeline.sample import write_sample_crawl

    crawl = write_sample_crawl(tmp_path / "crawl", documents=40, files=1)
    (tmp_path / "garbage.warc.gz").write_bytes(os.urandom(2048))
    (tmp_path / "empty.warc.gz").write_bytes(b"")
    config = tmp_path / "crawl.yaml"
    config.write_text(yaml.safe_dump({"name": "s", "output_dir": str(tmp_path / "out"),
                                      "input": {"warc": [*crawl, str(tmp_path / "*.warc.gz")]},
                                      "stages": [{"name": "extract", "type": "extract"}]}))
    result = CliRunner().invoke(app, ["run", str(config), "--no-progress"], terminal_width=300)
    assert result.exit_code == 0, result.output
    assert "2 input files skipped" in result.output
    # named as the rows name them (sources.source_name): by the name under the pattern's folder
    assert "empty.warc.gz: an empty file (0 bytes)" in result.output
    assert "garbage.warc.gz: not a readable WARC/ARC file" in result.output
