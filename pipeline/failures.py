"""Naming what a run failed on: the stage whose worker raised and the unit it was on, the OSError
under Ray's wrappers, the error in one line for the console and the manifest, what to do about
it, and the whole traceback in the run's log file."""
from __future__ import annotations

import errno
import re
import time
import traceback
from collections.abc import Iterator

from crawl2model.pipeline import storage
from crawl2model.pipeline.worker import STAGE_ATTRIBUTE, UNIT_ATTRIBUTE

ANSI_COLOUR = re.compile(r"\x1b\[[0-9;]*m")  # Ray colours the names of its workers in tracebacks
RUN_LOG = "logs/run.log"  # under the run directory: the tracebacks of the run's failures, appended


def _causes(error: BaseException) -> Iterator[BaseException]:
    """The error, then what it wraps: each `raise ... from`, and a Ray task error's cause."""
    seen, pending = set(), [error]
    while pending:
        error = pending.pop(0)
        if error is None or id(error) in seen:
            continue
        seen.add(id(error))
        yield error
        inner = vars(error).get("cause")  # a Ray task error's: the error its task raised
        pending += [error.__cause__, inner if isinstance(inner, BaseException) else None]


def failed_stage(error: BaseException) -> str | None:
    """The stage whose worker raised `error` (workers tag their errors), or None when not known."""
    return next((vars(e)[STAGE_ATTRIBUTE] for e in _causes(error) if STAGE_ATTRIBUTE in vars(e)), None)


def failed_unit(error: BaseException) -> str | None:
    """What the failing worker was on (`shard 00003-00001`, `input file x.warc.gz`), or None."""
    return next((vars(e)[UNIT_ATTRIBUTE] for e in _causes(error) if UNIT_ATTRIBUTE in vars(e)), None)


def os_error(error: BaseException) -> OSError | None:
    """The OSError a run failed on (a full disk, a missing file), out of Ray's wrappers, or None."""
    return next((e for e in _causes(error) if isinstance(e, OSError) and e.errno is not None), None)


def one_line(error: BaseException) -> str:
    """The error in one line: an OSError's own words (which name its file: see
    storage.write_bytes_atomic), else the type and last line of the first error that is not
    one of Ray's wrappers (theirs print whole tracebacks)."""
    found = os_error(error)
    if found is not None:
        return f"{found.strerror}: {found.filename}" if found.filename else str(found.strerror or found)
    chain = list(_causes(error))
    cause = next((e for e in chain if not type(e).__module__.startswith("ray.")), chain[-1])
    lines = [line.strip() for line in str(cause).splitlines() if line.strip()]
    return f"{type(cause).__name__}: {lines[-1]}" if lines else type(cause).__name__


def summary(error: BaseException) -> str:
    """The failure in one line: the stage and unit, and the error (`stage 'extract' failed on
    shard 00002-00000: ValueError: ...`)."""
    stage, unit = failed_stage(error), failed_unit(error)
    where = f"stage '{stage}' failed" + (f" on {unit}" if unit else "") + ": " if stage else ""
    return where + one_line(error)


def what_to_do(error: BaseException, config: str) -> str:
    """The next step, in one line: what finished is kept, so the same command resumes."""
    again = f"`pipeline run {config}` resumes: finished shards are kept"
    found = os_error(error)
    if found is not None and found.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"free some space, then {again}"
    if found is not None:
        return f"check the file named above, then {again}"
    return f"fix the cause (traceback in the log), then {again}"


def log_traceback(run_dir: str, error: BaseException) -> str | None:
    """Append the whole traceback of `error` to the run's log (RUN_LOG) and return that file's
    path, or None when it cannot be written (a full disk: the console line is what is left)."""
    path = storage.join(run_dir, RUN_LOG)
    entry = (f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} {summary(error)}\n"
             + ANSI_COLOUR.sub("", "".join(traceback.format_exception(error))) + "\n")
    try:
        storage.write_bytes_atomic(path, (storage.read_bytes(path) or b"") + entry.encode("utf-8", "replace"))
    except OSError:
        return None
    return path
