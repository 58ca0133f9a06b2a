"""Progress that tells the truth: counts per stage as that stage finishes a unit, each stage's own
time, rate and ETA, a training's steps, plain lines where stderr is no terminal, and a rerun that
says what is cached and what resumes."""
from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest
import yaml
from rich.console import Console

from crawl2model.pipeline.progress import Progress, duration, made
from crawl2model.pipeline.records import StageStats


class Clock:
    def __init__(self, now: float = 1000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


def plain(clock: Clock, interval: float = 10.0, enabled: bool = True) -> tuple[Progress, io.StringIO]:
    out = io.StringIO()
    console = Console(file=out, force_terminal=False, width=200)
    return Progress(enabled, console=console, clock=clock, interval=interval), out


def stats(stage: str, docs_in: int, docs_out: int, shards: int, files: int | None = None) -> StageStats:
    return StageStats(stage=stage, type=stage, fingerprint="f", shards=shards, docs_in=docs_in, docs_out=docs_out,
                      files=files, wall_seconds=99.0)


def test_counts_move_per_stage_as_it_finishes_a_unit_and_totals_follow_the_reader():
    clock = Clock(1000.0)
    progress, _ = plain(clock)
    progress.start(["read", "extract", "langid"], {"read": 2})
    assert progress.status("read")["units"] == 0 and progress.status("read")["total"] == 2
    assert progress.status("extract")["status"] == "waiting" and progress.status("extract")["total"] is None

    progress.add("read", 40, 38, shards=2, started=1000.0, finished=1002.0)
    progress.add("extract", 20, 15, started=1002.0, finished=1003.0)  # before anything leaves the chain's end
    assert progress.status("read")["units"] == 1 and progress.status("read")["docs_in"] == 40
    extract = progress.status("extract")
    assert (extract["units"], extract["docs_in"], extract["docs_out"]) == (1, 20, 15)
    assert extract["total"] is None  # the reader has more files to read: its shards are not all known
    assert progress.status("langid")["units"] == 0

    progress.add("read", 30, 30, shards=1, started=1000.5, finished=1004.0)  # the reader is through: 3 shards
    assert progress.status("extract")["total"] == 3 and progress.status("langid")["total"] is None
    clock.now = 1004.0
    progress.done("read", stats("read", 70, 68, shards=3, files=2))
    assert progress.status("read")["units"] == 2 and progress.status("read")["status"] == "done"
    assert progress.status("read")["seconds"] == pytest.approx(4.0)  # its own: from the chain's start to its last file


def test_own_time_rate_and_eta_of_a_stage():
    clock = Clock(1000.0)
    progress, _ = plain(clock)
    progress.start(["extract", "langid"], {"extract": 10, "langid": 10})
    clock.now = 1004.0
    progress.add("extract", 100, 90, started=1000.0, finished=1002.0)
    progress.add("extract", 100, 80, started=1001.0, finished=1004.0)
    extract = progress.status("extract")
    assert extract["seconds"] == pytest.approx(4.0)
    assert extract["docs_per_s"] == pytest.approx(50.0)  # 200 docs over its own 4 s
    assert extract["eta"] == pytest.approx(16.0)  # 8 units left at 2 units per 4 s
    # the second stage's time starts at its own first unit, not at the run's or the chain's start
    progress.add("langid", 90, 90, started=1003.0, finished=1004.0)
    langid = progress.status("langid")
    assert langid["seconds"] == pytest.approx(1.0) and langid["eta"] == pytest.approx(9.0)
    assert langid["docs_per_s"] == pytest.approx(90.0)
    assert progress.status("extract")["units"] == 2  # counts of one stage do not move another's


def test_a_stage_time_is_its_own_from_its_first_unit_to_its_last():
    clock = Clock(1000.0)
    progress, out = plain(clock, interval=1.0)
    progress.start(["read", "extract"], {"read": 2})
    clock.now = 1008.0  # the chain's workers are starting: the reader's time counts since the chain started
    assert progress.status("read")["seconds"] == pytest.approx(8.0) and progress.status("read")["eta"] is None
    progress.add("read", 10, 10, started=1009.0, finished=1010.0)
    clock.now = 1010.0
    assert progress.status("read")["seconds"] == pytest.approx(1.0)  # from its first file's start
    progress.add("read", 10, 10, started=1009.5, finished=1011.0)
    clock.now = 1020.0  # through: its time stops at its last file, though its stats come at the chain's end
    assert progress.status("read")["seconds"] == pytest.approx(2.0) and progress.status("read")["eta"] is None
    progress.note("dedup", "signatures 3/8")  # a global stage's phases: what it does, before any unit
    progress.tick()
    assert "stage dedup: signatures 3/8, 0.0 s" in out.getvalue().splitlines()
    assert "stage read: 2/2 files, 20 in, 20 kept, 10 docs/s, 2.0 s" in out.getvalue().splitlines()


def test_plain_lines_every_interval_and_one_when_a_stage_finishes():
    clock = Clock(1000.0)
    progress, out = plain(clock, interval=10.0)
    progress.start(["extract", "dedup"], {"extract": 4, "dedup": 4})
    progress.add("extract", 1000, 900, started=1000.0, finished=1002.0)
    clock.now = 1005.0
    progress.tick()
    assert out.getvalue() == ""  # not yet due
    clock.now = 1010.0
    progress.tick()
    lines = out.getvalue().splitlines()
    assert lines == ["stage extract: 1/4 units, 1,000 in, 900 kept, 100 docs/s, 10.0 s, ETA 30.0 s"]
    clock.now = 1012.3
    progress.add("dedup", 1234, 1100, started=1000.0, finished=1012.3)
    progress.done("dedup", stats("dedup", 1234, 1100, shards=4))
    assert out.getvalue().splitlines()[-1] == "stage dedup: done, 1,234 in, 1,100 kept, 12.3 s"
    clock.now = 1019.0
    progress.tick()
    assert len(out.getvalue().splitlines()) == 2  # the interval counts from the last lines
    clock.now = 1020.0
    progress.tick()
    assert out.getvalue().splitlines()[-1].startswith("stage extract: 1/4 units")  # a finished stage is quiet
    progress.stop()
    assert "\x1b[" not in out.getvalue()  # no live table, no terminal codes


def test_a_terminal_gets_a_live_table_and_no_plain_lines():
    out = io.StringIO()
    progress = Progress(console=Console(file=out, force_terminal=True, width=200), clock=Clock(1000.0))
    progress.start(["extract"], {"extract": 2})
    assert progress.live is not None
    progress.add("extract", 10, 9, started=1000.0, finished=1001.0)
    progress.event("extract", {"message": "a note the user must read"})
    progress.done("extract", stats("extract", 10, 9, shards=2))
    progress.stop()
    text = out.getvalue()
    assert "extract" in text and "stage extract: done" not in text
    assert text.rstrip().endswith("extract: a note the user must read")  # after the table


def test_the_table_keeps_the_running_stages_in_sight_on_a_small_terminal():
    out = io.StringIO()
    progress = Progress(console=Console(file=out, force_terminal=True, width=80, height=12), clock=Clock(1000.0))
    for index in range(12):
        progress.start([f"stage{index}"], {f"stage{index}": 1})
        progress.add(f"stage{index}", 10, 9, started=1000.0, finished=1001.0)
        progress.done(f"stage{index}", stats(f"stage{index}", 10, 9, shards=1))
    progress.start(["pretrain"], {"pretrain": 1})
    progress.event("pretrain", {"step": 3, "steps": 8, "loss": 5.0, "time": 1000.0})
    render = Console(file=io.StringIO(), width=80, height=12)
    render.print(progress._table())
    lines = render.file.getvalue().splitlines()
    assert len(lines) <= 12 and lines[-1].startswith("pretrain") and "step 3/8 loss 5.0000" in lines[-1]
    assert len(lines) == 11 and lines[3].startswith("(6 stages) ") and lines[4].startswith("stage6 "), lines
    render.print(progress._table(whole=True))  # the last one, left on the screen: every stage
    assert "stage0 " in render.file.getvalue()
    progress.stop()


def test_a_training_stage_shows_its_step_loss_tokens_per_second_and_eta():
    clock = Clock(1000.0)
    progress, out = plain(clock, interval=1.0)
    progress.start(["pretrain"], {"pretrain": 3})
    progress.event("pretrain", {"note": "resumed from step-000010 at step 10", "time": 1000.0})
    assert progress.status("pretrain")["status"] == "resumed from step-000010 at step 10"
    progress.event("pretrain", {"step": 10, "steps": 60, "time": 1001.0})
    progress.event("pretrain", {"step": 30, "steps": 60, "loss": 3.21, "tokens_per_s": 12345.4, "time": 1011.0})
    clock.now = 1011.0
    status = progress.status("pretrain")
    assert status["status"] == "step 30/60 loss 3.2100 12,345 tokens/s"
    assert status["eta"] == pytest.approx(15.0)  # 20 steps in 10 s: 30 more in 15 s
    progress.tick()
    assert out.getvalue().splitlines()[-1] == \
        "stage pretrain: step 30/60, loss 3.2100, 12,345 tokens/s, 11.0 s, ETA 15.0 s"
    progress.event("pretrain", {"made": {"step": 60, "loss": 2.5, "lr": 0.0003}})
    clock.now = 1020.0
    progress.done("pretrain", stats("pretrain", 100, 100, shards=3))
    assert out.getvalue().splitlines()[-1] == \
        "stage pretrain: done, 100 in, 100 kept, 20.0 s, step 60, loss 2.5000"


def test_messages_reach_the_user_even_without_progress():
    progress, out = plain(Clock(), enabled=False)
    progress.start(["dpo"], {"dpo": 1})
    progress.event("dpo", {"message": "180 pairs used (2 truncated to 128 tokens); 3 skipped"})
    progress.done("dpo", stats("dpo", 5, 5, shards=1))
    assert out.getvalue() == ""
    progress.stop()
    assert out.getvalue() == "dpo: 180 pairs used (2 truncated to 128 tokens); 3 skipped\n"

    progress, out = plain(Clock())  # plain lines: at once, not again at the end
    progress.event("dpo", {"message": "3 skipped"})
    progress.stop()
    assert out.getvalue() == "stage dpo: 3 skipped\n"


def test_cached_and_resumed_stages_say_so_and_earlier_work_does_not_count_in_the_rate():
    clock = Clock(1000.0)
    progress, out = plain(clock)
    progress.cached("read", 240, 232)
    progress.resumed("extract", units=3, total=8, docs_in=90, docs_out=80)
    progress.resumed("dedup", tasks=5)
    assert out.getvalue().splitlines() == ["stage read: cached (240 in, 232 kept)",
                                           "stage extract: resumes, 3 of 8 units already done",
                                           "stage dedup: resumes, 5 phase tasks already done"]
    progress.start(["extract"], {"extract": 8})
    clock.now = 1002.0
    progress.add("extract", 30, 30, started=1000.0, finished=1002.0)
    extract = progress.status("extract")
    assert (extract["units"], extract["docs_in"]) == (4, 120)
    assert extract["docs_per_s"] == pytest.approx(15.0)  # 30 docs of this run over 2 s
    assert extract["eta"] == pytest.approx(8.0)  # 4 left at one per 2 s


def test_what_artifact_stages_made_and_durations():
    assert made({"path": "tokenizer.json", "sha256": "ab", "vocab_size": 4096}) == "vocab 4,096"
    assert made({"path": "model.bin", "sha256": "ab", "roc_auc": 0.91, "best_f1": None}) == "model.bin, ROC AUC 0.9100"
    assert made({"tokens": 45012}) == "45,012 tokens"
    assert made({"val_loss": 0.6, "val_rewards_accuracies": 0.75}) == "val loss 0.6000, val accuracy 0.7500"
    assert [duration(s) for s in (12.34, 125, 7380)] == ["12.3 s", "2 min 05 s", "2 h 03 min"]


# --- a real run -----------------------------------------------------------------------------------

TINY = {"name": "progress", "seed": 3, "input": {"sample": {"documents": 60, "files": 2}},
        "stages": [{"name": "extract", "type": "extract"},
                   {"name": "exact_dedup", "type": "exact_dedup"},
                   {"name": "bpe", "type": "train_tokenizer", "vocab_size": 400},
                   {"name": "tokenize", "type": "tokenize", "val_fraction": 0.1},
                   {"name": "pretrain", "type": "pretrain", "model": {"dim": 32, "n_layers": 1, "n_heads": 2},
                    "seq_len": 64, "batch_size": 4, "steps": 8, "warmup_steps": 2, "eval_interval": 4,
                    "log_interval": 1, "checkpoint_interval": 4}]}


@pytest.mark.ray
def test_a_run_piped_prints_each_stages_done_line_and_training_steps_reach_the_driver(local_ray, tmp_path, capsys,
                                                                                     monkeypatch):
    from crawl2model.catalog import load_config
    from crawl2model.pipeline import reporting, runner

    events, calls = [], []

    class Recording(Progress):
        def event(self, stage, event):
            events.append((stage, event))
            calls.append(("event", stage, event))
            super().event(stage, event)

        def note(self, stage, text):
            calls.append(("note", stage, text))
            super().note(stage, text)

    monkeypatch.setattr(runner, "Progress", Recording)
    monkeypatch.setattr(reporting, "DRAIN_SECONDS", 0.05)
    path = tmp_path / "crawl.yaml"
    path.write_text(yaml.safe_dump({**TINY, "output_dir": str(tmp_path / "run")}))
    runner.run(*load_config(path), show_progress=True)
    err = capsys.readouterr().err  # pytest's capture is no terminal: plain lines
    assert "\x1b[" not in err
    for stage in ("read", "extract", "exact_dedup", "bpe", "tokenize", "pretrain"):
        assert re.search(rf"^stage {stage}: done, [\d,]+ in, [\d,]+ kept, [\d.]+ s", err, re.M), (stage, err)
    assert re.search(r"^stage bpe: done, .*, vocab 400$", err, re.M), err
    assert re.search(r"^stage tokenize: done, .*, [\d,]+ tokens$", err, re.M), err
    assert re.search(r"^stage pretrain: done, .*, step 8, loss [\d.]+", err, re.M), err
    steps = [e for stage, e in events if stage == "pretrain" and "loss" in e]  # from the training task, through the reporter
    assert steps and steps[-1]["step"] == 8 and steps[-1]["steps"] == 8 and steps[-1]["tokens_per_s"] > 0
    # Whether a step arrives while the training still runs is not asserted: the task's events are
    # actor calls that may all reach the reporter after a short training ends (in a full suite, with
    # a busy Ray, 8 steps and 40 alike), so such a check fails by chance

    # a rerun: the cache serves every stage, and says so
    runner.run(*load_config(path), show_progress=True)
    err = capsys.readouterr().err
    for stage in ("read", "extract", "exact_dedup", "bpe", "tokenize", "pretrain"):
        assert re.search(rf"^stage {stage}: cached \([\d,]+ in, [\d,]+ kept\)$", err, re.M), (stage, err)

    # a stage stopped after its units were done resumes with all of them done
    manifest_path = tmp_path / "run" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["stages"]["extract"]["status"] = "running"
    manifest_path.write_text(json.dumps(manifest))
    runner.run(*load_config(path), show_progress=True)
    err = capsys.readouterr().err
    units = len(list(Path(tmp_path / "run/stages/read/kept").glob("*.parquet")))
    assert f"stage extract: resumes, {units} of {units} units already done" in err.splitlines(), err
    assert re.search(r"^stage extract: done, ", err, re.M) and "stage exact_dedup: cached" in err
