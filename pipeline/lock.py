"""One run at a time per output directory.

`<output_dir>/run.lock` names who holds it (host, pid, start, last heartbeat). It is created
atomically (exclusive create: `O_EXCL` on a local disk, a conditional put where the file system
offers one), refreshed every `HEARTBEAT` seconds while the run goes, and removed at the end. A
second run is refused with the holder's name. A lock whose holder is gone (a dead pid on this
host, or no heartbeat for `lease` seconds) is taken over, with a warning.
"""
from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import uuid

from crawl2model.pipeline import storage

log = logging.getLogger(__name__)

HEARTBEAT = 30.0  # seconds between refreshes of a held lock
LEASE = 600.0  # a lock not refreshed for this long is stale


class LockedError(RuntimeError):
    """Another run holds the output directory."""


class RunLock:
    def __init__(self, run_dir: str, lease: float = LEASE):
        self.path = storage.join(run_dir, "run.lock")
        self.lease = lease
        self.token = uuid.uuid4().hex
        self.started = time.time()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _content(self) -> bytes:
        return json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "token": self.token,
                           "started": self.started, "heartbeat": time.time()}).encode()

    def acquire(self) -> RunLock:
        for _ in range(2):  # a second try after taking over a stale lock
            if _create_exclusive(self.path, self._content()):
                self._thread = threading.Thread(target=self._beat, daemon=True, name="run-lock")
                self._thread.start()
                return self
            holder = _read(self.path)
            if holder is None:
                continue  # released between our create and our read
            stale = _why_stale(holder, self.lease)
            if stale is None:
                raise LockedError(
                    f"another run holds {self.path}: pid {holder.get('pid')} on {holder.get('host')}, started "
                    f"{_when(holder.get('started'))}, last seen {_when(holder.get('heartbeat'))}; wait for it to end "
                    f"or use another output_dir (a lock not refreshed for {self.lease:.0f} s is taken over)")
            log.warning("taking over the lock of a run that is gone (%s): %s", stale, self.path)
            storage.remove_tree(self.path)
        raise LockedError(f"could not take {self.path}: another run took it at the same moment")

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT):
            holder = _read(self.path)
            if not holder or holder.get("token") != self.token:
                log.error("the lock %s was taken by another run", self.path)
                return
            try:
                storage.write_bytes_atomic(self.path, self._content())
            except OSError as error:  # a full disk: the run's own writes fail and say so; try again later
                log.warning("could not refresh the lock %s: %s", self.path, error)

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        holder = _read(self.path)
        if holder and holder.get("token") == self.token:
            storage.remove_tree(self.path)

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def _create_exclusive(path: str, data: bytes) -> bool:
    fs, local = storage.filesystem(path)
    fs.makedirs(local.rsplit("/", 1)[0], exist_ok=True)
    if storage.is_local(path):
        try:
            fd = os.open(local, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
        except OSError as error:  # a full disk: leave no empty lock behind, and say which file
            os.remove(local)
            raise OSError(error.errno, f"{storage.write_error_reason(error)} while writing {path}") from error
        return True
    try:  # object stores: a conditional put (If-None-Match) where the file system supports mode "xb"
        with fs.open(local, "xb") as fh:
            fh.write(data)
        return True
    except FileExistsError:
        return False
    except OSError as error:  # S3's answer to a failed If-None-Match: 412 Precondition Failed
        if "condition" in str(error).lower():
            return False
        raise
    except (NotImplementedError, ValueError, TypeError):
        if fs.exists(local):
            return False
        storage.write_bytes_atomic(path, data)
        return True


def _read(path: str) -> dict | None:
    data = storage.read_bytes(path)
    try:
        return json.loads(data) if data else None
    except ValueError:
        return {}  # a torn lock file: stale by the lease rule below


def _why_stale(holder: dict, lease: float) -> str | None:
    if holder.get("host") == socket.gethostname() and isinstance(holder.get("pid"), int):
        try:
            os.kill(holder["pid"], 0)
        except ProcessLookupError:
            return f"pid {holder['pid']} is not running"
        except PermissionError:
            pass
    age = time.time() - float(holder.get("heartbeat") or 0)
    return f"no heartbeat for {age:.0f} s" if age > lease else None


def _when(stamp) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(stamp))) if stamp else "?"
