"""Progress of a run, per stage: units done of its total, documents in and kept, its own time, its
rate and an ETA; a training stage's step, loss and tokens/s.

Counts move as each stage finishes a unit: workers report to the runner, which drains its reporter
about twice a second and calls `add` and `event` (from its own thread: every method here holds a
lock), and `tick`; a stage's counts are set from its stats when it ends (`done`).

On a terminal (`console.is_terminal`) the run shows a live table. Elsewhere (piped, CI, a cluster
job) it prints plain lines: the running stages every `interval` seconds, and one line as each
stage finishes (`stage dedup: done, 1,234 in, 1,100 kept, 12.3 s`). What a stage said for the user
(`event(stage, {"message": ...})`: DPO's skipped and truncated pairs) is printed after the table,
or at once in plain lines, and even when progress is off.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Callable

from rich import box
from rich.console import Console
from rich.live import Live
from rich.table import Table

from crawl2model.pipeline.records import StageStats

READER = "read"  # the reader's units are input files (plan.SOURCE)


@dataclass
class _Stage:
    name: str
    total: int | None = None  # its input units, when known
    units: int = 0  # done, earlier invocations' included
    shards: int = 0  # shards out (the reader writes several per file)
    docs_in: int = 0
    docs_out: int = 0
    bytes_out: int = 0
    new_units: int = 0  # done by this invocation: its rate and ETA count these alone
    new_docs_in: int = 0
    began: float | None = None  # its first unit's start (or its phases' start), in this invocation
    queued: float | None = None  # a chain's first stage: when the chain started (its workers start then)
    ended: float | None = None  # its last unit's finish
    note: str = ""  # what it is doing besides units: a phase, a training's log line
    step: dict | None = None  # a training stage's last step: step, steps, loss, tokens_per_s, time
    first_step: tuple[int, float] | None = None  # (step, time) of its first reported step: its ETA
    made: str = ""  # what an artifact stage made: "vocab 2,048", "model.bin", "45,012 tokens"
    finished: bool = False
    seconds: float | None = None  # its own time, once finished


class Progress:
    """`enabled=False`: nothing is shown but what stages said for the user, at `stop`.
    `console`, `clock` (time.time: workers stamp their units with it) and `interval` (seconds
    between plain lines) are for tests."""

    def __init__(self, enabled: bool = True, *, console: Console | None = None,
                 clock: Callable[[], float] = time.time, interval: float = 10.0):
        self.enabled = enabled
        self.console = console or Console(stderr=True)
        self.clock = clock
        self.interval = interval
        self.live: Live | None = None
        self.stages: dict[str, _Stage] = {}  # shown, in the order they started
        self.before: dict[str, str] = {}  # a stage's parent in its chain: its total follows from it
        self.messages: list[tuple[str, str]] = []
        self.lock = threading.RLock()
        self.last_lines = clock()

    @property
    def terminal(self) -> bool:
        return self.enabled and self.console.is_terminal

    # --- what the runner tells -----------------------------------------------------------------

    def cached(self, stage: str, docs_in: int | None = None, docs_out: int | None = None) -> None:
        """A stage served whole from the cache."""
        counts = f" ({docs_in:,} in, {docs_out:,} kept)" if docs_in is not None and docs_out is not None else ""
        self._print(f"stage {stage}: cached{counts}")

    def resumed(self, stage: str, *, units: int = 0, total: int | None = None, docs_in: int = 0, docs_out: int = 0,
                shards: int | None = None, tasks: int = 0) -> None:
        """A stage that runs again and finds work of an earlier invocation done: `units` of its
        `total`, with their counts (and `tasks` of its phases)."""
        with self.lock:
            s = self._stage(stage)
            s.units, s.docs_in, s.docs_out, s.shards = units, docs_in, docs_out, units if shards is None else shards
            s.total = total if total is not None else s.total
            what = []
            if units:
                unit = "files" if stage == READER else "units"
                what.append(f"{units:,} of {total:,} {unit}" if total is not None else f"{units:,} {unit}")
            if tasks:
                what.append(f"{tasks:,} phase tasks")
            self._print(f"stage {stage}: resumes, {' and '.join(what) or 'nothing'} already done")

    def start(self, stages: list[str], totals: dict[str, int | None] | None = None) -> None:
        """A chain of stages starts (the first one now): `totals`, their input units where known.
        A stage without one has the shards its parent in the chain wrote, once that parent ends."""
        with self.lock:
            now = self.clock()
            for index, name in enumerate(stages):
                s = self._stage(name)
                if totals and totals.get(name) is not None:
                    s.total = totals[name]
                if index:
                    self.before[name] = stages[index - 1]
            if stages:
                self._stage(stages[0]).queued = now
            if self.terminal and self.live is None:
                self.live = Live(self._table(), console=self.console, refresh_per_second=4)
                self.live.start()
            self._refresh()

    def add(self, stage: str, docs_in: int, docs_out: int, bytes_out: int = 0, *, shards: int = 1,
            started: float | None = None, finished: float | None = None) -> None:
        """One unit of `stage` finished (the reader's: a file, which wrote `shards` shards)."""
        with self.lock:
            s = self._stage(stage)
            s.units += 1
            s.new_units += 1
            s.shards += shards
            s.docs_in += docs_in
            s.new_docs_in += docs_in
            s.docs_out += docs_out
            s.bytes_out += bytes_out
            finished = finished or self.clock()
            self._begin(s, started or finished)
            s.ended = max(s.ended or finished, finished)
            self._refresh()

    def note(self, stage: str, text: str) -> None:
        """What a stage is doing besides units (a global stage's phase); it has begun."""
        with self.lock:
            s = self._stage(stage)
            s.note = text
            if text:
                self._begin(s, self.clock())
            self._refresh()

    def event(self, stage: str, event: dict) -> None:
        """What a stage's task told: `step` (with `steps`, `loss`, `tokens_per_s`), a `note`, a
        `message` for the user, what it `made` (its artifact's summary row); `time`: when."""
        with self.lock:
            s = self._stage(stage)
            when = event.get("time") or self.clock()
            self._begin(s, when)
            if "step" in event:
                s.step = {**event, "time": when}
                if s.first_step is None or event["step"] < s.first_step[0]:
                    s.first_step = (event["step"], when)
            if "note" in event:
                s.note = str(event["note"])
            if "message" in event:
                text = str(event["message"])
                s.note = text
                self.messages.append((stage, text))
                if self.enabled and not self.terminal:
                    self._print(f"stage {stage}: {text}")
            if "made" in event:
                s.made = made(event["made"]) if isinstance(event["made"], dict) else str(event["made"])
            self._refresh()

    def done(self, stage: str, stats: StageStats) -> None:
        with self.lock:
            s = self._stage(stage)
            s.units = stats.files if stats.files is not None else stats.shards
            s.total = s.units if s.total is None else s.total
            s.shards, s.docs_in, s.docs_out, s.bytes_out = stats.shards, stats.docs_in, stats.docs_out, stats.bytes_out
            end = s.ended if s.ended is not None else self.clock()  # a stage without units (an artifact's) ends now
            began = s.began if s.began is not None else s.queued
            s.seconds = max(0.0, end - began) if began is not None else stats.wall_seconds
            s.finished = True
            if self.enabled and not self.terminal:
                self._print(self._line(s))
            self._refresh()

    def tick(self) -> None:
        """Called about twice a second: redraw the table, or print the plain lines when due."""
        with self.lock:
            if self.live is not None:
                self._refresh()
            elif self.enabled and not self.terminal and self.clock() - self.last_lines >= self.interval:
                self.last_lines = self.clock()
                for s in self.stages.values():
                    if (s.began is not None or s.queued is not None) and not s.finished:
                        self._print(self._line(s))

    def stop(self) -> None:
        with self.lock:
            if self.live is not None:
                self.live.update(self._table(whole=True), refresh=True)
                self.live.stop()
                self.live = None
                self.console.line()
            if self.terminal or not self.enabled:  # plain lines printed them as they came
                for stage, text in self.messages:
                    self.console.print(f"{stage}: {text}", highlight=False, markup=False, soft_wrap=True)
            self.messages = []

    # --- what it shows -------------------------------------------------------------------------

    def status(self, stage: str) -> dict:
        """A stage's figures as shown: units, total, docs in and kept, its own seconds, docs/s,
        ETA seconds (None: not known), and its status text."""
        with self.lock:
            s = self._stage(stage)
            seconds = self._seconds(s)
            rate = s.new_docs_in / seconds if seconds and s.new_docs_in else None
            return {"units": s.units, "total": self._total(s), "docs_in": s.docs_in, "docs_out": s.docs_out,
                    "seconds": seconds, "docs_per_s": rate, "eta": self._eta(s), "status": self._status(s)}

    def _stage(self, name: str) -> _Stage:
        if name not in self.stages:
            self.stages[name] = _Stage(name)
        return self.stages[name]

    @staticmethod
    def _begin(s: _Stage, when: float) -> None:
        s.began = when if s.began is None else min(s.began, when)

    def _total(self, s: _Stage) -> int | None:
        if s.total is not None:
            return s.total
        parent = self.stages.get(self.before.get(s.name, ""))
        if parent is not None and (parent.finished or self._total(parent) == parent.units > 0):
            return parent.shards
        return None

    def _seconds(self, s: _Stage) -> float | None:
        if s.seconds is not None:
            return s.seconds
        if s.began is None:  # no unit reported yet: since its chain started, if it heads one
            return None if s.queued is None else max(0.0, self.clock() - s.queued)
        total = self._total(s)
        if total is not None and s.units >= total and s.ended is not None:  # through, its stats not yet written
            return max(0.0, s.ended - s.began)
        return max(0.0, self.clock() - s.began)

    def _eta(self, s: _Stage) -> float | None:
        if s.finished:
            return 0.0
        now = self.clock()
        if s.step is not None and s.first_step is not None and s.step.get("steps"):
            first, at = s.first_step
            done = s.step["step"] - first
            if done > 0:
                return max(0.0, (s.step["steps"] - s.step["step"]) * (s.step["time"] - at) / done
                           - (now - s.step["time"]))
            return None
        total, seconds = self._total(s), self._seconds(s)
        if total is None or not s.new_units or not seconds or s.units >= total:  # through: no ETA to give
            return None
        return max(0, total - s.units) * seconds / s.new_units

    def _status(self, s: _Stage) -> str:
        if s.finished:
            return f"done: {s.made}" if s.made else "done"
        if s.step is not None:
            return _training(s.step)
        if s.note:
            return s.note
        return "running" if s.began is not None or s.queued is not None else "waiting"

    def _line(self, s: _Stage) -> str:
        """A stage as one plain line."""
        seconds, eta = self._seconds(s), self._eta(s)
        if s.finished:
            parts = ["done", f"{s.docs_in:,} in", f"{s.docs_out:,} kept"]
        elif s.step is not None:
            parts = [_training(s.step, ", ")]
        elif s.note and not s.units:  # a global stage's phases, a training's setup: no unit done yet
            parts = [s.note]
        else:
            total, unit = self._total(s), "files" if s.name == READER else "units"
            parts = [f"{s.units:,}/{total:,} {unit}" if total is not None else f"{s.units:,} {unit}",
                     f"{s.docs_in:,} in", f"{s.docs_out:,} kept", *([s.note] if s.note else [])]
            if seconds and s.new_docs_in:
                parts.append(f"{s.new_docs_in / seconds:,.0f} docs/s")
        if seconds is not None:
            parts.append(duration(seconds))
        if not s.finished and eta is not None:
            parts.append(f"ETA {duration(eta)}")
        if s.finished and s.made:
            parts.append(s.made)
        return f"stage {s.name}: {', '.join(parts)}"

    def _print(self, text: str) -> None:
        if self.enabled:
            self.console.print(text, highlight=False, markup=False, soft_wrap=True)

    def _refresh(self) -> None:
        if self.live is not None:
            self.live.update(self._table())

    def _table(self, whole: bool = False) -> Table:
        """The stages as a table; unless `whole`, one that fits the terminal's height: the first
        finished stages folded into one row, so the running ones stay in sight. The status column
        takes what the figures leave of the terminal's width, cut short if it must."""
        stages = list(self.stages.values())
        room = max(3, self.console.height - 4)  # rows: less the title, head, rule and a line for the cursor
        folded = [] if whole or len(stages) <= room else [s for s in stages if s.finished][:len(stages) - room + 1]
        rows = []
        if folded:
            rows.append([f"({len(folded)} stages)", "", f"{folded[0].docs_in:,}", f"{folded[-1].docs_out:,}", "",
                         duration(sum(s.seconds or 0 for s in folded), short=True), "", "done"])
        for s in stages:
            if s in folded:
                continue
            seconds, eta, total = self._seconds(s), self._eta(s), self._total(s)
            rate = s.new_docs_in / seconds if seconds and s.new_docs_in else None
            rows.append([s.name[:24], f"{s.units:,}/{total:,}" if total is not None else f"{s.units:,}",
                         f"{s.docs_in:,}", f"{s.docs_out:,}", "" if rate is None else f"{rate:,.0f}",
                         "" if seconds is None else duration(seconds, short=True),
                         "" if eta is None or s.finished else duration(eta, short=True), self._status(s)])
        table = Table(title="crawl2model", title_justify="left", box=box.SIMPLE_HEAD, show_edge=False,
                      collapse_padding=True, pad_edge=False)
        columns = ("stage", "units", "docs in", "kept", "docs/s", "time", "ETA", "status")
        widths = [max([len(column), *(len(row[i]) for row in rows)]) for i, column in enumerate(columns)]
        left = max(12, self.console.width - sum(widths[:-1]) - len(columns) + 1)
        for i, column in enumerate(columns):
            last = column == "status"
            table.add_column(column, justify="left" if column in ("stage", "status") else "right", no_wrap=True,
                             overflow="ellipsis", min_width=None if last else widths[i], max_width=left if last else None)
        for row in rows:
            table.add_row(*row)
        return table


def _training(step: dict, sep: str = " ") -> str:
    """`step 30/60 loss 3.2100 12,345 tokens/s`."""
    parts = [f"step {step['step']:,}/{step['steps']:,}" if step.get("steps") else f"step {step['step']:,}"]
    if step.get("loss") is not None:
        parts.append(f"loss {step['loss']:.4f}")
    if step.get("tokens_per_s"):
        parts.append(f"{step['tokens_per_s']:,.0f} tokens/s")
    return sep.join(parts)


def made(row: dict) -> str:
    """What an artifact stage made, from its last phase's one-row summary: a tokenizer's vocabulary,
    a model file's name, token shards' tokens, a training's last step and loss."""
    parts = []
    if row.get("vocab_size") is not None:
        parts.append(f"vocab {row['vocab_size']:,}")
    elif row.get("path"):
        parts.append(str(row["path"]).rsplit("/", 1)[-1])
    if row.get("tokens") is not None:
        parts.append(f"{row['tokens']:,} tokens")
    if row.get("step") is not None:
        parts.append(f"step {row['step']:,}")
    for key, name in (("loss", "loss"), ("val_loss", "val loss"), ("roc_auc", "ROC AUC"),
                      ("val_rewards_accuracies", "val accuracy")):
        if isinstance(row.get(key), (int, float)):
            parts.append(f"{name} {row[key]:.4f}")
    return ", ".join(parts)


def duration(seconds: float, short: bool = False) -> str:
    """`12.3 s`, `4 min 05 s`, `2 h 03 min`; `short`: `12.3s`, `4m05s`, `2h03m`."""
    if seconds < 60:
        return f"{seconds:.1f}{'' if short else ' '}s"
    if seconds < 3600:
        return f"{int(seconds // 60)}m{int(seconds % 60):02d}s" if short else \
            f"{int(seconds // 60)} min {int(seconds % 60):02d} s"
    return f"{int(seconds // 3600)}h{int(seconds % 3600 // 60):02d}m" if short else \
        f"{int(seconds // 3600)} h {int(seconds % 3600 // 60):02d} min"
