"""How workers tell the driver what they do while a run goes: a small Ray actor (`Reporter`)
collects each finished unit, what a stage's task says (a training step, a note, a message for
the user) and the first error a worker raised; workers reach it through `Report`, a picklable
callable; the driver drains it on a timer into the run's `Progress`. Part of the runner (the only
code that knows Ray), apart so that each reads at once."""
from __future__ import annotations

import logging
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator

from crawl2model.pipeline.progress import Progress
from crawl2model.pipeline.records import DoneRecord
from crawl2model.pipeline.worker import STAGE_ATTRIBUTE

log = logging.getLogger(__name__)


class Reporter:
    """A Ray actor the workers tell as each unit of each stage finishes, and a stage's task what it
    is doing (a training step, a note, a message for the user); the driver drains it."""

    def __init__(self):
        self.items: list[tuple[str, str, dict]] = []  # ("unit" or "event", stage, what)
        self.errors: list[BaseException] = []

    def add(self, stage: str, unit: dict) -> None:
        self.items.append(("unit", stage, unit))

    def tell(self, stage: str, event: dict) -> None:
        self.items.append(("event", stage, event))

    def drain(self) -> list[tuple[str, str, dict]]:
        items, self.items = self.items, []
        return items

    def fail(self, error: BaseException) -> None:
        self.errors.append(error)

    def first_error(self) -> BaseException | None:
        return self.errors[0] if self.errors else None


@dataclass(frozen=True)
class Report:
    """The picklable callable a worker reports through (fire and forget)."""

    actor: Any

    def __call__(self, stage: str, record: DoneRecord) -> None:
        self.actor.add.remote(stage, {"docs_in": record.docs_in, "docs_out": record.docs_out,
                                      "bytes_out": record.bytes_out, "shards": len(record.outputs),
                                      "started": record.started, "finished": record.finished})

    def tell(self, stage: str, event: dict) -> None:
        """What a stage's task says while it runs (`progress.Progress.event`); never fails the task."""
        try:
            self.actor.tell.remote(stage, {**event, "time": time.time()})
        except Exception as problem:  # noqa: BLE001 - progress is not worth a failed training
            log.debug("could not tell the progress of stage %s: %s", stage, problem)

    def failed(self, stage: str, error: Exception) -> None:
        """The error a worker raises, told before the task fails (so the driver has it when Ray
        Data stops), as it is, else as its type and message when it does not pickle."""
        import ray

        try:
            try:
                ray.get(self.actor.fail.remote(error))
            except Exception:  # noqa: BLE001 - an error that does not pickle
                substitute = RuntimeError(f"{type(error).__name__}: {error}")
                vars(substitute)[STAGE_ATTRIBUTE] = stage
                ray.get(self.actor.fail.remote(substitute))
        except Exception as problem:  # noqa: BLE001 - the worker's error is the one to raise
            log.warning("could not report the error of stage %s: %s", stage, problem)


DRAIN_SECONDS = 0.5  # how often the driver drains the reporter while a chain runs


@contextmanager
def draining(reporter, progress: Progress) -> Iterator[None]:
    """While the block runs, a driver thread drains the reporter every DRAIN_SECONDS and ticks the
    progress (which redraws its table, or prints its plain lines when due): a stage's counts move
    as that stage finishes a shard, not when a shard leaves the end of the chain."""
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(DRAIN_SECONDS):
            try:
                drain(reporter, progress)
                progress.tick()
            except Exception as problem:  # noqa: BLE001 - progress never stops a run; its end drains again
                log.debug("could not drain the progress reporter: %s", problem)

    thread = threading.Thread(target=loop, name="crawl2model-progress", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def drain(reporter, progress: Progress) -> None:
    import ray

    for kind, stage, what in ray.get(reporter.drain.remote()):
        if kind == "unit":
            progress.add(stage, what["docs_in"], what["docs_out"], what["bytes_out"], shards=what["shards"],
                         started=what["started"], finished=what["finished"])
        else:
            progress.event(stage, what)
