"""The phase machinery of global stages (pipeline/global_stage.py, worker.run_phase_task), without
Ray: shuffled outputs, reading earlier phases, and tasks that a resumed run does not redo."""
from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from crawl2model.pipeline import storage
from crawl2model.pipeline.global_stage import PARTITION, GlobalStage, Phase, PhaseContext, phase_jobs, phase_output
from crawl2model.pipeline.plan import StageNode
from crawl2model.pipeline.stage import StageConfig
from crawl2model.pipeline.worker import run_phase_task


def test_a_shuffled_output_is_one_file_per_partition_in_row_order(tmp_path):
    table = pa.table({"value": [5, 1, 4, 2, 3], PARTITION: pa.array([1, 0, 1, 3, 0], pa.int32())})
    written = phase_output(str(tmp_path), "00007", table)
    assert [f.path.split(str(tmp_path))[1] for f in written] == [
        "/p00000/00007.parquet", "/p00001/00007.parquet", "/p00003/00007.parquet"]
    assert storage.read_parquet(written[1].path).to_pydict() == {"value": [5, 4]}  # no partition column, order kept
    assert phase_output(str(tmp_path), "00008", table.slice(0, 0)) == []
    assert phase_output(str(tmp_path), "all", table.drop_columns([PARTITION]))[0].rows == 5


def test_a_context_reads_a_phase_whole_by_partition_or_filtered(tmp_path):
    context = PhaseContext(str(tmp_path), 2, ("a", "b"))
    for unit, values in (("a", [1, 2, 3]), ("b", [4, 5])):
        phase_output(str(tmp_path / "counts"), unit,
                     pa.table({"value": values, PARTITION: pa.array([v % 2 for v in values], pa.int32())}))
    assert sorted(context.read("counts").column("value").to_pylist()) == [1, 2, 3, 4, 5]
    assert sorted(context.read("counts", partition=1).column("value").to_pylist()) == [1, 3, 5]
    assert context.read("counts", filter=pc.field("value") > 3).num_rows == 2
    assert context.read("nothing").num_rows == 0
    assert context.for_unit("b").shard == 1


class Totals(GlobalStage):
    """Counts words across the corpus, then removes documents whose first word is rare."""

    type_name = "totals"
    calls: list[str] = []

    def phases(self):
        return [Phase("words", "shards", columns=("text",)), Phase("sums", "partitions", reads="words")]

    def words(self, table, ctx):
        Totals.calls.append(f"words:{ctx.shard}")
        words = [t.split()[0] for t in table.column("text").to_pylist()]
        return pa.table({"word": words, PARTITION: pa.array([len(w) % ctx.partitions for w in words], pa.int32())})

    def sums(self, table, ctx):
        Totals.calls.append(f"sums:{ctx.partition}")
        if table.num_rows == 0:
            return table
        return table.group_by("word").aggregate([("word", "count")])


def test_finished_tasks_are_not_redone_and_a_new_fingerprint_redoes_them(tmp_path):
    inputs = [(f"{i:05d}", storage.write_parquet(str(tmp_path / f"in/{i}.parquet"),
                                                 pa.table({"text": ["a b", "bb c", "a d"][i:]})).path) for i in range(3)]
    context = PhaseContext(str(tmp_path / "phases"), 2, tuple(u for u, _ in inputs))
    task = StageNode("t", Totals, StageConfig(), run_dir=str(tmp_path), fingerprint="fp1")
    phase = Totals().phases()[0]
    first = [run_phase_task(task, phase.name, *job) for job in phase_jobs(phase, context, inputs)]
    assert Totals.calls == ["words:0", "words:1", "words:2"] and sum(r.rows_out for r in first) == 6
    again = [run_phase_task(task, phase.name, *job) for job in phase_jobs(phase, context, inputs)]
    assert again == first and len(Totals.calls) == 3  # done records answer; nothing recomputed
    changed = StageNode("t", Totals, StageConfig(), run_dir=str(tmp_path), fingerprint="fp2")
    run_phase_task(changed, phase.name, *phase_jobs(phase, context, inputs)[0])
    assert Totals.calls[-1] == "words:0"
    sums = Totals().phases()[1]
    for job in phase_jobs(sums, context, inputs):
        run_phase_task(task, sums.name, *job)
    counts = context.read("sums")
    assert dict(zip(counts.column("word").to_pylist(), counts.column("word_count").to_pylist())) == {"a": 4, "bb": 2}


def test_partitions_grow_with_the_corpus_and_cover_the_cores():
    stage = Totals()
    assert stage.partitions(10, cpus=4) == 4
    assert stage.partitions(10_000_000, cpus=2) == 5
    assert stage.partitions(10**12, cpus=2) == 4096
