"""Where Ray's own messages go while a run goes: the run's log file, not the console. Part of the
runner (the only code that knows Ray), apart so that each reads at once."""
from __future__ import annotations

import logging
import os
import sys
import tempfile
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Iterator

from crawl2model.pipeline import storage

log = logging.getLogger(__name__)


RAY_LOG = "logs/ray.log"  # under the run directory: what Ray itself said during the run


@contextmanager
def ray_messages_to(run_dir: str) -> Iterator[None]:
    """While a run goes, what Ray says about itself goes to `<run_dir>/logs/ray.log` (appended to),
    and the console shows the run's progress and results only:
    - the console handlers of Ray's Python loggers (`ray`, `ray.data`, ...) give way to the file:
      the token-authentication notice of ray.init, Ray Data's "progress bars disabled" and its
      dataset logs;
    - file descriptor 2 points at the file too, for the driver's C++ core worker, which writes
      its errors there and nowhere else (e.g. that an actor's constructor arguments are in the
      object store, which Ray Data's actor pools always do); Python's own stderr (tracebacks,
      the progress table, warnings) keeps the console through a copy of the descriptor.
    The log is written to a local temporary file and added to the run's when the run ends: during
    the run it never competes with the outputs for the disk (a full one must leave room to record
    the failure), and a run directory on an object store gets it the same way."""
    import ray.data  # noqa: F401 - Ray Data gives its logger a console handler on import: before we swap

    descriptor, path = tempfile.mkstemp(prefix="crawl2model-ray-", suffix=".log")
    stream = open(descriptor, "a", encoding="utf-8")
    handler = _LogFile(stream)
    # Ray's own format (ray.init sets it on the `ray` logger's handlers anyway)
    handler.setFormatter(logging.Formatter("%(asctime)s\t%(levelname)s %(filename)s:%(lineno)s -- %(message)s"))
    handler.setLevel(logging.INFO)
    swapped = []  # (logger, its console handlers, whether it got ours)
    for name in ["ray", *(n for n in list(logging.root.manager.loggerDict) if n.startswith("ray."))]:
        logger = logging.getLogger(name)
        console = [h for h in logger.handlers if isinstance(h, logging.StreamHandler)
                   and not isinstance(h, logging.FileHandler)]  # ray.data's session file handler stays
        for old in console:
            logger.removeHandler(old)
        # a logger that passes its records up reaches "ray"'s handler: ours once is enough
        add = name == "ray" or (bool(console) and not logger.propagate)
        if add:
            logger.addHandler(handler)
        swapped.append((logger, console, add))
    python_stderr, saved, terminal = sys.stderr, None, None
    try:
        saved = os.dup(2)
    except OSError:  # no descriptor 2 at all: nothing of Ray's can reach a console
        pass
    ours = saved is not None and _writes_to_fd2(python_stderr)
    if saved is not None:
        if ours:
            python_stderr.flush()
            terminal = os.fdopen(os.dup(saved), "w", buffering=1, encoding=python_stderr.encoding,
                                 errors=python_stderr.errors)
            sys.stderr = terminal
        os.dup2(stream.fileno(), 2)
    try:
        yield
    finally:
        for logger, console, add in swapped:
            if add:
                logger.removeHandler(handler)
            for old in console:
                logger.addHandler(old)
        with suppress(OSError):  # a full disk: the run's own error is the one to report
            stream.flush()
        if saved is not None:
            os.dup2(saved, 2)
            os.close(saved)
            if terminal is not None:
                sys.stderr = python_stderr
                terminal.close()
        with suppress(OSError):
            stream.close()
        target = storage.join(run_dir, RAY_LOG)
        try:  # appended to the log of the run's earlier invocations
            storage.write_bytes_atomic(target, (storage.read_bytes(target) or b"") + Path(path).read_bytes())
        except OSError as error:
            log.warning("Ray's log of this run is lost (%s)", error)
        finally:
            os.remove(path)


class _LogFile(logging.StreamHandler):
    """Ray's messages into the run's log file. A message that cannot be written there (the disk
    is full) is dropped: logging's own report of it would bury the run's error on the console."""

    def handleError(self, record: logging.LogRecord) -> None:
        pass


def _writes_to_fd2(stream) -> bool:
    """Whether a Python stream writes to file descriptor 2 (the real stderr, not a test's capture)."""
    try:
        return stream is not None and stream.fileno() == 2
    except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation: a StringIO, pytest's capsys
        return False
