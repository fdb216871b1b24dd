"""Thread versions of the names in ``_async/compat.py`` (hand-written, not generated)."""

from __future__ import annotations

import concurrent.futures
import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from psycopg import Connection
from psycopg_pool import ConnectionPool

T = TypeVar("T")

# One try of a call: given whether an earlier try is in doubt, its result.
Attempt = Callable[[bool], T]

Lock = threading.Lock
Condition = threading.Condition
Future = concurrent.futures.Future
sleep = time.sleep

__all__ = [
    "Attempt",
    "Condition",
    "Connection",
    "ConnectionPool",
    "Future",
    "Lock",
    "acquire",
    "answer",
    "atomic",
    "call_later",
    "is_busy",
    "join",
    "new_future",
    "registry_guard",
    "schedule",
    "sleep",
    "spawn",
    "uninterrupted",
    "wait",
    "wait_future",
]


def acquire(lock: Any, timeout: float | None) -> bool:
    """Acquire ``lock`` within ``timeout`` seconds (None: wait forever). False on timeout."""
    return bool(lock.acquire(timeout=-1 if timeout is None else timeout))


class _Guard:
    """A real mutex: many threads share one registry."""

    def __init__(self) -> None:
        self._lock = threading.Lock()

    def __enter__(self) -> None:
        self._lock.acquire()

    def __exit__(self, *exc: object) -> None:
        self._lock.release()


def wait(condition: threading.Condition, timeout: float | None) -> bool:
    """``condition.wait()`` for at most ``timeout`` seconds (None: no limit). False on
    timeout; the condition's lock is held again either way."""
    return condition.wait(timeout)


def registry_guard() -> _Guard:
    return _Guard()


@contextlib.contextmanager
def call_later(seconds: float | None, callback: Callable[[], None]) -> Iterator[None]:
    """Run ``callback`` in a timer thread if the block is still running after ``seconds``."""
    if seconds is None:
        yield
        return
    timer = threading.Timer(seconds, callback)
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()


def uninterrupted(result: T) -> T:
    """Threads are not cancelled: the call has already run to its end."""
    return result


def new_future() -> concurrent.futures.Future[Any]:
    return concurrent.futures.Future()


def wait_future(future: concurrent.futures.Future[Any], timeout: float | None) -> bool:
    """Wait for ``future`` for at most ``timeout`` seconds (None: no limit); True when done."""
    done, _ = concurrent.futures.wait([future], timeout=timeout)
    return bool(done)


def answer(future: concurrent.futures.Future[T]) -> T:
    """Wait for ``future``'s result (or its exception). Bounds on the wait are the
    owner's business (``schedule``)."""
    while not wait_future(future, None):
        pass
    return future.result()


class _Timer:
    """``schedule``'s handle: a daemon timer thread."""

    def __init__(self, seconds: float, callback: Callable[[], None]) -> None:
        self._timer = threading.Timer(seconds, callback)
        self._timer.daemon = True
        self._timer.start()

    def cancel(self) -> None:
        self._timer.cancel()


def schedule(seconds: float, callback: Callable[[], None]) -> _Timer:
    """Run ``callback`` in a timer thread after ``seconds``; ``cancel()`` the handle to
    call it off."""
    return _Timer(seconds, callback)


def atomic(condition: threading.Condition) -> threading.Condition:
    """Guards a few statements that must not interleave with other threads."""
    return condition


def spawn(work: Callable[[], None]) -> threading.Thread:
    """Run ``work`` in a background thread, owned by the caller's object, not by the
    thread that happened to start it."""
    thread = threading.Thread(target=work, name="pgportfolio-batches", daemon=True)
    thread.start()
    return thread


def join(thread: threading.Thread) -> None:
    thread.join()


def is_busy(lock: Any) -> bool:
    """Whether acquiring ``lock`` now would (probably) wait: it is held."""
    return bool(lock.locked())
