"""Running a datatrove pipeline the way every benchmark here compares with it."""
from __future__ import annotations

import json
import time
from pathlib import Path


def run_datatrove(pipeline: list, logs: Path, tasks: int = 2, workers: int = 2) -> tuple[float, list[list[dict]]]:
    """Run `pipeline` on a LocalPipelineExecutor; returns the wall seconds and, per task, the
    stats of each step (datatrove's logs/stats/*.json)."""
    from datatrove.executor import LocalPipelineExecutor

    executor = LocalPipelineExecutor(pipeline=pipeline, tasks=tasks, workers=workers, logging_dir=str(logs),
                                     skip_completed=False)
    started = time.perf_counter()
    executor.run()
    seconds = time.perf_counter() - started
    return seconds, [[step["stats"] for step in json.loads(path.read_text())]
                     for path in sorted(Path(logs, "stats").glob("*.json"))]
