"""`materialize: final`: stages of a chain hand their kept documents on in memory, the run writes
each chain's last kept shards and every stage's removed ones, and any stage's documents are rebuilt
from those (pipeline.rebuild) as they would have been written."""
from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest
import yaml
from typer.testing import CliRunner

from crawl2model.catalog import load_config
from crawl2model.cli import app
from crawl2model.pipeline.plan import SOURCE
from crawl2model.pipeline.rebuild import RebuildError, undo_changes, apply_patch, changed_values, kept_shards, line_patch
from crawl2model.pipeline.runner import run
from crawl2model.pipeline.summary import stage_files

CURATION = ["extract", "langid", "gopher_repetition", "gopher_quality", "c4_quality", "fineweb_quality",
            "exact_dedup", "minhash_dedup"]
IN_MEMORY = [SOURCE, *CURATION[:5]]  # fineweb_quality feeds a global stage: it writes the chain's documents


def curation(out: Path, materialize: str, **stage_options) -> dict:
    stages = [{"name": name, "type": name, **stage_options.get(name, {})} for name in CURATION]
    stages[0]["max_html_bytes"] = 1_000_000
    return {"name": "m", "output_dir": str(out), "seed": 3, "materialize": materialize,
            "input": {"sample": {"documents": 240, "files": 4}, "docs_per_shard": 32}, "stages": stages}


def run_yaml(tmp_path: Path, raw: dict, **options):
    path = tmp_path / f"{Path(raw['output_dir']).name}.yaml"
    path.write_text(yaml.safe_dump(raw))
    config, nodes = load_config(path)
    return run(config, nodes, show_progress=False, **options)


def written(run_dir: Path, manifest) -> dict[str, str]:
    """Every shard a run lists (kept, removed, changes), with its sha256."""
    found = {}
    for entry in manifest.stages.values():
        for info in stage_files(str(run_dir), entry).every():
            found[info.path] = info.sha256
    return found


def by_id(tables) -> pa.Table:
    table = pa.concat_tables(list(tables))
    return table.take(pc.sort_indices(table, [("id", "ascending")]))


def parquet_bytes(run_dir: Path) -> int:
    return sum(p.stat().st_size for p in (run_dir / "stages").rglob("*.parquet") if p.name != "files.parquet")


@pytest.fixture(scope="module")
def both(local_ray, tmp_path_factory):
    """The curation run with `materialize: all` and with `final`."""
    tmp = tmp_path_factory.mktemp("materialize")
    return {mode: (tmp / mode, run_yaml(tmp, curation(tmp / mode, mode))) for mode in ("all", "final")}


@pytest.mark.ray
def test_final_writes_the_chains_last_shards_and_every_removal_as_all_does(both):
    (all_dir, every), (final_dir, final) = both["all"], both["final"]
    for stage in IN_MEMORY:
        assert final.stages[stage].kept_in and not every.stages[stage].kept_in
        assert not (final_dir / "stages" / stage / "kept").exists()
    assert final.stages[SOURCE].kept_in == CURATION[:6]
    ours, theirs = written(final_dir, final), written(all_dir, every)
    shared = {path: sha for path, sha in ours.items() if "/changes/" not in path}
    assert shared.items() <= theirs.items()  # the same bytes, where both write a file
    assert {p for p in theirs if p not in shared} == {p for p in theirs if p.split("/")[1] in IN_MEMORY and "/kept/" in p}
    assert {p.split("/")[1] for p in ours if "/changes/" in p} == {"c4_quality"}  # the stage that edits text
    assert [final.stages[s].docs_out for s in final.stages] == [every.stages[s].docs_out for s in every.stages]


@pytest.mark.ray
def test_every_stage_kept_in_memory_is_rebuilt_as_all_wrote_it(both):
    all_dir, (final_dir, final) = both["all"][0], both["final"]
    for stage in IN_MEMORY:
        rebuilt = list(kept_shards(str(final_dir), stage))
        shards = list(kept_shards(str(all_dir), stage))
        assert sum(t.num_rows for t in rebuilt) == final.stages[stage].docs_out > 0
        if stage == SOURCE:  # read again from the input files: shard by shard, in order
            assert [t.to_pydict() for t in rebuilt] == [t.to_pydict() for t in shards]
        else:
            assert by_id(rebuilt).equals(by_id(shards)), stage


@pytest.mark.ray
def test_bytes_written(both):
    """Final writes what all does, less the kept shards of the stages that hand theirs on, plus what
    C4 changed of the text handed to it: within 1.3x of each chain's last kept shards, the removed
    shards and the dedup stages' working files together."""
    all_dir, (final_dir, final) = both["all"][0], both["final"]
    files = {stage: stage_files(str(final_dir), entry) for stage, entry in final.stages.items()}
    in_memory = sum(p.stat().st_size for stage in IN_MEMORY for p in (all_dir / "stages" / stage / "kept").iterdir())
    changes = sum(info.bytes for f in files.values() for info in f.changes)
    assert parquet_bytes(final_dir) == parquet_bytes(all_dir) - in_memory + changes
    kept_and_removed = sum(info.bytes for f in files.values() for info in f.kept + f.removed)
    phases = sum(p.stat().st_size for p in (final_dir / "stages").glob("*/phases/**/*.parquet"))
    assert parquet_bytes(final_dir) <= 1.3 * (kept_and_removed + phases)
    assert parquet_bytes(final_dir) < 0.6 * parquet_bytes(all_dir)


@pytest.mark.ray
def test_inspect_shows_a_stage_kept_in_memory(both):
    final_dir, final = both["final"]
    result = CliRunner().invoke(app, ["inspect", str(final_dir), "langid", "-n", "2"])
    assert result.exit_code == 0, result.output
    first = next(kept_shards(str(final_dir), "langid")).column("id")[0].as_py()
    assert f"{final.stages['langid'].docs_out:,} kept" in result.output and first in result.output


@pytest.mark.ray
def test_a_changed_option_at_the_end_of_a_chain_runs_the_stages_that_hand_it_documents(both, tmp_path):
    final_dir = both["final"][0]
    changed = run_yaml(final_dir.parent, curation(final_dir, "final", fineweb_quality={"line_punct_thr": 0.3}))
    assert not any(changed.stages[s].cached for s in [*IN_MEMORY, "fineweb_quality"])
    assert all(changed.stages[s].kept_in for s in IN_MEMORY)
    reference = run_yaml(tmp_path, curation(tmp_path / "all", "all", fineweb_quality={"line_punct_thr": 0.3}))
    for stage in IN_MEMORY[1:]:
        assert by_id(kept_shards(str(final_dir), stage)).equals(by_id(kept_shards(str(tmp_path / "all"), stage)))
    assert changed.stages["minhash_dedup"].docs_out == reference.stages["minhash_dedup"].docs_out


def test_what_a_stage_hands_on_in_memory(tmp_path):
    from crawl2model.pipeline.config import parse_config
    from crawl2model.catalog import resolve_stage
    from crawl2model.pipeline.config import source_node
    from crawl2model.pipeline.plan import kept_in_memory

    raw = curation(tmp_path / "out", "final", langid={"materialize": "all"})
    config, nodes = parse_config(raw, "test", resolve_stage)
    planned = {n.name: n.kept_in for n in kept_in_memory([source_node(config), *nodes])}
    assert planned[SOURCE] == ("extract", "langid") and planned["extract"] == ("langid",)
    assert planned["langid"] == () and planned["gopher_repetition"] == ("gopher_quality", "c4_quality", "fineweb_quality")
    assert planned["fineweb_quality"] == () and planned["exact_dedup"] == ()  # the next is global
    raw = {**curation(tmp_path / "out", "all"), "stages": [{"name": "extract", "type": "extract", "materialize": "final"},
                                                           {"name": "langid", "type": "langid"}]}
    config, nodes = parse_config(raw, "test", resolve_stage)
    assert [n.kept_in for n in kept_in_memory([source_node(config), *nodes])] == [(), ("langid",), ()]


def test_a_stage_whose_documents_another_reads_keeps_them_on_disk():
    from crawl2model.catalog import resolve_stage
    from crawl2model.pipeline.plan import StageNode, kept_in_memory
    from crawl2model.pipeline.stage import Stage

    class ReadsLangid(Stage):  # as an ablation whose arm is langid
        @classmethod
        def reads_documents_of(cls, config):
            return ["langid"]

    def node(name, cls, after):
        return StageNode(name, cls, cls.Config(), (after,) if after else (), materialize="final")

    extract, langid = resolve_stage("extract"), resolve_stage("langid")
    nodes = [StageNode(SOURCE, None, None, materialize="final"), node("extract", extract, SOURCE),
             node("langid", langid, "extract"), node("short", langid, "langid"), node("arms", ReadsLangid, "short")]
    assert [n.kept_in for n in kept_in_memory(nodes)] == [("extract", "langid"), ("langid",), (), ("arms",), ()]


def test_a_rebuild_needs_the_stages_that_hold_the_documents(tmp_path):
    with pytest.raises(RebuildError, match="has not finished"):
        next(kept_shards(str(tmp_path), "langid"))


@pytest.mark.parametrize("old, new", [("a\nb\nc\n", "a\nc\n"), ("kept\n", "kept\n"), ("one line", "another"),
                                      ("a\r\nb\u2028c", "b\u2028c"), ("", ""), ("text", None), (None, "x"),
                                      ("a\nb", "a\nb\nadded\n")])
def test_a_line_patch_gives_the_old_text_back(old, new):
    assert apply_patch(new, line_patch(old, new)) == old


def test_changes_hold_what_a_stage_changed_and_only_that():
    before = pa.table({"id": ["a", "b", "c"], "text": ["x\ny\nz\n", "same", None], "n": [1, 2, 3]})
    after = pa.table({"id": ["a", "b", "c"], "text": ["x\nz\n", "same", "new"], "score": [0.1, 0.2, 0.3]})
    changes = changed_values(before, after)
    assert changes.column_names == ["id", "text:patch", "n"] and changes.column("id").to_pylist() == ["a", "b", "c"]
    assert changed_values(before, before.append_column("score", pa.array([1, 2, 3]))) is None
    assert undo_changes(after, changes).select(before.column_names).equals(before)
