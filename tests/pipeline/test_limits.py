"""Tests for the per-document time limit (pipeline/limits.py)."""
from __future__ import annotations

import threading
import time

import pytest

from crawl2model.pipeline.limits import DocumentTimeout, time_limit


def busy_loop_under_limit(limit: float, budget: float = 5.0) -> float:
    """Spin in pure Python inside `time_limit(limit)`; the seconds until DocumentTimeout fired."""
    start = time.monotonic()
    with pytest.raises(DocumentTimeout):
        with time_limit(limit):
            while time.monotonic() - start < budget:
                pass
    return time.monotonic() - start


def test_busy_loop_times_out_in_main_thread():
    assert threading.current_thread() is threading.main_thread()
    elapsed = busy_loop_under_limit(0.1)
    assert 0.09 <= elapsed < 1.0


def test_busy_loop_times_out_in_worker_thread():
    outcome: dict[str, object] = {}

    def worker() -> None:
        try:
            outcome["elapsed"] = busy_loop_under_limit(0.1)
        except BaseException as error:  # surface failures of the worker in the main thread
            outcome["error"] = error

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join(timeout=10)
    assert not thread.is_alive()
    assert "error" not in outcome, outcome.get("error")
    assert 0.09 <= outcome["elapsed"] < 1.0


@pytest.mark.parametrize("in_thread", [False, True], ids=["main-thread", "worker-thread"])
def test_fast_block_does_not_raise_then_or_later(in_thread):
    def body() -> None:
        with time_limit(0.1):
            total = sum(range(1000))
        assert total == 499500
        # well past the limit: a cancelled timer must not fire into code after the block
        deadline = time.monotonic() + 0.3
        while time.monotonic() < deadline:
            pass
        time.sleep(0.1)

    if not in_thread:
        body()
        return
    outcome: dict[str, BaseException] = {}

    def worker() -> None:
        try:
            body()
        except BaseException as error:
            outcome["error"] = error

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join(timeout=10)
    assert "error" not in outcome, outcome.get("error")


@pytest.mark.parametrize("seconds", [None, 0, -1])
def test_no_limit_when_unset(seconds):
    with time_limit(seconds):
        time.sleep(0.05)
