"""Thread versions of the names in ``_async/compat.py`` (hand-written, not generated)."""

from __future__ import annotations

import threading
import time
from typing import Any

from psycopg import Connection
from psycopg_pool import ConnectionPool

Lock = threading.Lock
sleep = time.sleep

__all__ = ["Connection", "ConnectionPool", "Lock", "acquire", "registry_guard", "sleep"]


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


def registry_guard() -> _Guard:
    return _Guard()
