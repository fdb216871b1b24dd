"""``compat.call_later``: what bounds every call (``call_timeout`` cuts the socket of a
call still running past it). Both twins: the callback runs once for a block that outlives
its deadline, never for one that ends before it, and never after the block has ended; and
a call costs no thread (sync) or timer (async) of its own."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest

from pgportfolio._async import compat as async_compat
from pgportfolio._sync import compat as sync_compat

MARGIN = 1.0  # scheduling slack on a loaded 2-core machine: a bound, not a measurement


def test_sync_calls_start_no_thread_each(monkeypatch: pytest.MonkeyPatch) -> None:
    started: list[str] = []
    original_start = threading.Thread.start

    def counting_start(self: threading.Thread) -> None:
        started.append(self.name)
        original_start(self)

    monkeypatch.setattr(threading.Thread, "start", counting_start)
    for _ in range(50):
        with sync_compat.call_later(30.0, lambda: None):
            pass
    # One thread serves every deadline of the process (it may have started before).
    assert len(started) <= 1, started


def test_sync_callback_runs_once_for_a_block_past_its_deadline_and_never_otherwise() -> None:
    fired: list[str] = []
    with sync_compat.call_later(0.05, lambda: fired.append("slow")):
        time.sleep(0.3)
    with sync_compat.call_later(0.05, lambda: fired.append("quick")):
        pass
    time.sleep(0.3)  # well past the quick block's deadline
    assert fired == ["slow"]


def test_sync_callbacks_of_many_threads_each_fire_for_their_own_block() -> None:
    fired: list[int] = []
    guard = threading.Lock()

    def call(n: int) -> None:
        def record() -> None:
            with guard:
                fired.append(n)

        with sync_compat.call_later(0.05 if n % 2 else 30.0, record):
            time.sleep(0.2)

    threads = [threading.Thread(target=call, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(fired) == [1, 3, 5, 7]


def test_sync_block_that_ends_while_its_callback_runs_waits_for_it() -> None:
    """The callback cuts a connection: once the block has ended (the connection may be
    back in the pool, another caller's), it must not be running any more."""
    running = threading.Event()
    finished = threading.Event()

    def slow_callback() -> None:
        running.set()
        time.sleep(0.2)
        finished.set()

    with sync_compat.call_later(0.01, slow_callback):
        assert running.wait(MARGIN)
    assert finished.is_set()


async def test_async_callback_runs_once_for_a_block_past_its_deadline_and_never_otherwise() -> None:
    fired: list[str] = []
    with async_compat.call_later(0.05, lambda: fired.append("slow")):
        await asyncio.sleep(0.3)
    with async_compat.call_later(0.05, lambda: fired.append("quick")):
        await asyncio.sleep(0)
    await asyncio.sleep(0.3)
    assert fired == ["slow"]


async def test_async_deadlines_of_overlapping_calls_fire_in_their_own_time() -> None:
    fired: dict[str, float] = {}
    start = time.monotonic()

    async def call(name: str, seconds: float, runs: float) -> None:
        with async_compat.call_later(seconds, lambda: fired.setdefault(name, time.monotonic())):
            await asyncio.sleep(runs)

    # A long deadline first: a shorter one added later must still fire on time.
    await asyncio.gather(
        call("long", 30.0, 0.4), call("short", 0.1, 0.4), call("done early", 0.2, 0.05)
    )
    assert set(fired) == {"short"}
    # uvloop's timers (libuv's) count whole milliseconds from a cached loop time, so one
    # may fire up to a millisecond before time.monotonic() says its delay has passed.
    assert 0.1 - 0.002 <= fired["short"] - start < 0.1 + MARGIN


async def test_async_calls_arm_no_timer_each(monkeypatch: pytest.MonkeyPatch) -> None:
    armed: list[float] = []
    original_arm = async_compat._LoopDeadlines._arm

    def counting_arm(self: Any, loop: Any, when: float) -> None:
        armed.append(when)
        original_arm(self, loop, when)

    monkeypatch.setattr(async_compat._LoopDeadlines, "_arm", counting_arm)
    for _ in range(50):
        with async_compat.call_later(30.0, lambda: None):
            await asyncio.sleep(0)
    assert len(armed) <= 1, armed


def test_sync_a_failing_callback_spares_the_others(caplog: pytest.LogCaptureFixture) -> None:
    fired: list[str] = []

    def failing() -> None:
        raise RuntimeError("boom")

    def call(callback: Any) -> None:
        with sync_compat.call_later(0.05, callback):
            time.sleep(0.3)

    threads = [
        threading.Thread(target=call, args=(failing,)),
        threading.Thread(target=call, args=(lambda: fired.append("other"),)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert fired == ["other"]
    assert "deadline callback failed" in caplog.text


async def test_async_a_failing_callback_spares_the_others() -> None:
    loop = asyncio.get_running_loop()
    reported: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, context: reported.append(context))
    fired: list[str] = []

    def failing() -> None:
        raise RuntimeError("boom")

    async def call(callback: Any) -> None:
        with async_compat.call_later(0.05, callback):
            await asyncio.sleep(0.3)

    try:
        await asyncio.gather(call(failing), call(lambda: fired.append("other")))
    finally:
        loop.set_exception_handler(None)
    assert fired == ["other"]
    assert [type(c["exception"]) for c in reported] == [RuntimeError]
