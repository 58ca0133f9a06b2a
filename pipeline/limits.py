"""A per-document time limit that works in any thread, so one pathological page cannot stall a
worker. Ray runs task code on the main thread but actor code on another, where SIGALRM cannot be
used; instead a timer thread raises `DocumentTimeout` asynchronously in the worker's thread.
(Time spent inside one long C call is interrupted only when that call returns to Python.)
"""
from __future__ import annotations

import ctypes
import threading
from contextlib import contextmanager
from typing import Iterator


class DocumentTimeout(Exception):
    pass


@contextmanager
def time_limit(seconds: float | None) -> Iterator[None]:
    if not seconds or seconds <= 0:
        yield
        return
    target = threading.get_ident()
    lock = threading.Lock()
    state = {"active": True}

    def expire() -> None:
        with lock:
            if state["active"]:
                ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(target), ctypes.py_object(DocumentTimeout))

    timer = threading.Timer(seconds, expire)
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        with lock:
            state["active"] = False
            timer.cancel()
            # an expiry that raced with the end of the block must not fire later, elsewhere
            ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(target), None)
