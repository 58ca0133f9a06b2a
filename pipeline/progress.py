"""Live progress of a run: per stage, shards and documents done, and documents per second.

Counts move as each stage finishes a unit (workers report through the runner), and are set from
the stage's stats when it ends."""
from __future__ import annotations

import time
from collections import defaultdict

from rich.console import Console
from rich.live import Live
from rich.table import Table

from crawl2model.pipeline.records import StageStats


class Progress:
    def __init__(self, enabled: bool = True):
        self.enabled = enabled
        self.console = Console(stderr=True)
        self.live: Live | None = None
        self.stages: list[str] = []
        self.totals: dict[str, dict[str, int]] = {}
        self.finished: set[str] = set()
        self.notes: dict[str, str] = {}  # what a stage is doing besides shards (a global stage's phase)
        self.started = time.time()

    def start(self, stages: list[str]) -> None:
        self.stages += [s for s in stages if s not in self.totals]
        for stage in stages:
            self.totals.setdefault(stage, defaultdict(int))
        if self.enabled and self.live is None:
            self.started = time.time()
            self.live = Live(self._table(), console=self.console, refresh_per_second=4)
            self.live.start()

    def add(self, stage: str, docs_in: int, docs_out: int, bytes_out: int) -> None:
        """One unit of `stage` finished."""
        totals = self.totals.setdefault(stage, defaultdict(int))
        totals["shards"] += 1
        totals["docs_in"] += docs_in
        totals["docs_out"] += docs_out
        totals["bytes_out"] += bytes_out
        self._refresh()

    def note(self, stage: str, text: str) -> None:
        self.notes[stage] = text
        self._refresh()

    def done(self, stage: str, stats: StageStats) -> None:
        self.totals[stage].update(shards=stats.shards, docs_in=stats.docs_in, docs_out=stats.docs_out,
                                  bytes_out=stats.bytes_out)
        self.finished.add(stage)
        self._refresh()

    def stop(self) -> None:
        if self.live is not None:
            self.live.update(self._table(), refresh=True)
            self.live.stop()
            self.live = None
            self.console.line()

    def _refresh(self) -> None:
        if self.live is not None:
            self.live.update(self._table())

    def _table(self) -> Table:
        elapsed = max(time.time() - self.started, 1e-6)
        table = Table(title="crawl2model", title_justify="left")
        for column in ("stage", "shards", "docs in", "kept", "removed", "docs/s", ""):
            table.add_column(column, justify="left" if column in ("stage", "") else "right")
        for stage in self.stages:
            t = self.totals[stage]
            table.add_row(stage, f"{t['shards']:,}", f"{t['docs_in']:,}", f"{t['docs_out']:,}",
                          f"{t['docs_in'] - t['docs_out']:,}", f"{t['docs_in'] / elapsed:,.0f}",
                          "done" if stage in self.finished else self.notes.get(stage) or "running")
        return table
