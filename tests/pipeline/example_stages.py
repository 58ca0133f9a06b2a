"""Small stages used by the runner tests, found by import path (`example_stages:Shout`) as a
user's own stages would be. The tests put this folder on the Ray workers' PYTHONPATH."""
from __future__ import annotations

import time

import pyarrow as pa
import pyarrow.compute as pc

from crawl2model.pipeline.stage import DROP_REASON, Stage, StageConfig


class Shout(Stage):
    """Has setup(), so the runner gives it an actor pool."""

    type_name = "shout"

    def setup(self) -> None:
        self.mark = "!"

    def process(self, batch: pa.Table) -> pa.Table:
        text = pc.binary_join_element_wise(pc.utf8_upper(batch.column("text")), self.mark, "")
        return batch.set_column(batch.column_names.index("text"), "text", text)


class Flaky(Stage):
    """Raises on any batch holding a document with 'boom': the runner must quarantine just that one."""

    type_name = "flaky"

    def process(self, batch: pa.Table) -> pa.Table:
        if any("boom" in (t or "") for t in batch.column("text").to_pylist()):
            raise ValueError("boom found")
        return batch


class ShortConfig(StageConfig):
    min_chars: int = 10


class Short(Stage):
    """A filter: marks documents under min_chars."""

    type_name = "short"
    Config = ShortConfig
    provides = ("chars",)

    def process(self, batch: pa.Table) -> pa.Table:
        chars = pc.utf8_length(batch.column("text"))
        too_short = pc.less(chars, self.config.min_chars)
        reason = pc.if_else(too_short, pa.scalar(f"short:chars<{self.config.min_chars}"), pa.scalar(None, pa.string()))
        if "chars" in batch.column_names:  # measured by an earlier Short: measure again
            batch = batch.drop_columns(["chars"])
        return batch.append_column("chars", chars).append_column(DROP_REASON, reason)


class SlowConfig(StageConfig):
    seconds: float = 0.2


class Slow(Stage):
    """Sleeps per batch, so a test can kill a run part-way through."""

    type_name = "slow"
    Config = SlowConfig

    def process(self, batch: pa.Table) -> pa.Table:
        time.sleep(self.config.seconds)
        return batch


class Mixed(Stage):
    """A stage with a bug: one row at a time, it adds a column whose type depends on the row (a
    number for long texts, text for short ones), so the rows of a shard cannot be put together."""

    type_name = "mixed"
    batch_size = 1

    def process(self, batch: pa.Table) -> pa.Table:
        text = batch.column("text")[0].as_py() or ""
        return batch.append_column("measure", pa.array([len(text)] if len(text) > 20 else [text]))
