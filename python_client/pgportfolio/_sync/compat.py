"""Thread versions of the names in ``_async/compat.py`` (hand-written, not generated)."""

from __future__ import annotations

import concurrent.futures
import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from psycopg import Connection
from psycopg_pool import ConnectionPool

T = TypeVar("T")

logger = logging.getLogger("pgportfolio")

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
    """Run ``callback`` (quick: it runs in a thread shared by every call) if the block is
    still running after ``seconds``. It never runs once the block has ended: an end that
    meets it running waits for it."""
    if seconds is None:
        yield
        return
    deadlines = _deadlines()
    entry = deadlines.add(seconds, callback)
    try:
        yield
    finally:
        deadlines.remove(entry)


_PENDING, _FIRING, _DONE = 0, 1, 2
# With nothing due, the thread still wakes this often, so that a new call whose deadline
# is later never has to wake it (a wake-up per call would cost a thread switch).
_IDLE_WAKE = 1.0


class _Entry:
    __slots__ = ("callback", "deadline", "state")

    def __init__(self, deadline: float, callback: Callable[[], None]) -> None:
        self.deadline = deadline
        self.callback = callback
        self.state = _PENDING


class _Deadlines:
    """One thread for every deadline of the process's calls in flight. A
    ``threading.Timer`` per call started and stopped a thread each time: about 185 µs of
    CPU per call."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._entries: set[_Entry] = set()
        self._thread: threading.Thread | None = None  # started by the first call
        self._wake_at = 0.0  # when the thread wakes next

    def add(self, seconds: float, callback: Callable[[], None]) -> _Entry:
        entry = _Entry(time.monotonic() + seconds, callback)
        with self._condition:
            self._entries.add(entry)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="pgportfolio-deadlines")
                self._thread.daemon = True
                self._thread.start()
            elif entry.deadline < self._wake_at:
                self._condition.notify()
        return entry

    def remove(self, entry: _Entry) -> None:
        with self._condition:
            while entry.state == _FIRING:
                self._condition.wait()
            self._entries.discard(entry)

    def _run(self) -> None:
        with self._condition:
            while True:
                now = time.monotonic()
                due = [e for e in self._entries if e.state == _PENDING and e.deadline <= now]
                if not due:
                    pending = [e.deadline for e in self._entries if e.state == _PENDING]
                    self._wake_at = min(pending, default=now + _IDLE_WAKE)
                    self._condition.wait(self._wake_at - now)
                    continue
                for entry in due:
                    entry.state = _FIRING
                self._condition.release()
                try:
                    for entry in due:
                        try:
                            entry.callback()
                        except Exception:
                            logger.exception("a call's deadline callback failed")
                finally:
                    self._condition.acquire()
                    for entry in due:
                        entry.state = _DONE
                    self._condition.notify_all()


_process_deadlines: _Deadlines | None = None
_process_deadlines_guard = threading.Lock()


def _deadlines() -> _Deadlines:
    global _process_deadlines
    if _process_deadlines is None:
        with _process_deadlines_guard:
            if _process_deadlines is None:
                _process_deadlines = _Deadlines()
    return _process_deadlines


def _forget_deadlines_in_child() -> None:
    # A forked child has none of its parent's threads: it starts its own when it needs one.
    global _process_deadlines
    _process_deadlines = None


os.register_at_fork(after_in_child=_forget_deadlines_in_child)


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
