"""Naming what a run failed on: the stage whose worker raised, the OSError under Ray's wrappers,
and the error in one line for the console and the manifest."""
from __future__ import annotations

from collections.abc import Iterator

from crawl2model.pipeline.worker import STAGE_ATTRIBUTE


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
