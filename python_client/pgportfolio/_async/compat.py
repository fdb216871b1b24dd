"""What differs between the async client and its generated sync twin.

The async source uses only these names for waiting and locking; ``_sync/compat.py``
defines the same names with threads. Everything else is generated.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator
from typing import Any

from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

Lock = asyncio.Lock
Condition = asyncio.Condition
Future = asyncio.Future
sleep = asyncio.sleep

__all__ = [
    "AsyncConnection",
    "AsyncConnectionPool",
    "Condition",
    "Future",
    "Lock",
    "acquire",
    "call_later",
    "is_busy",
    "new_future",
    "registry_guard",
    "sleep",
    "wait",
]


async def acquire(lock: asyncio.Lock, timeout: float | None) -> bool:
    """Acquire ``lock`` within ``timeout`` seconds (None: wait forever). False on timeout.
    A cancelled waiter never ends up holding the lock (asyncio.Lock marks itself locked
    only once the waiter resumes)."""
    if not is_busy(lock):
        await lock.acquire()  # no suspension when free and nobody queued
        return True
    if timeout is None:
        await lock.acquire()
        return True
    try:
        async with asyncio.timeout(timeout):
            await lock.acquire()
    except TimeoutError:
        return False
    return True


async def wait(condition: asyncio.Condition, timeout: float | None) -> bool:
    """``condition.wait()`` for at most ``timeout`` seconds (None: no limit). False on
    timeout; the condition's lock is held again either way."""
    if timeout is None:
        await condition.wait()
        return True
    try:
        async with asyncio.timeout(timeout):
            await condition.wait()
    except TimeoutError:
        return False
    return True


def registry_guard() -> contextlib.AbstractContextManager[Any]:
    """Guards the lock registry's dict. One event loop thread: nothing to guard."""
    return contextlib.nullcontext()


@contextlib.contextmanager
def call_later(seconds: float | None, callback: Callable[[], None]) -> Iterator[None]:
    """Run ``callback`` on the event loop if the block is still running after ``seconds``."""
    if seconds is None:
        yield
        return
    handle = asyncio.get_running_loop().call_later(seconds, callback)
    try:
        yield
    finally:
        handle.cancel()


def new_future() -> asyncio.Future[Any]:
    return asyncio.get_running_loop().create_future()


def is_busy(lock: asyncio.Lock) -> bool:
    """Whether acquiring ``lock`` now would wait: held, or others already queued for it
    (asyncio.Lock hands a released lock to the first waiter, not to a newcomer)."""
    return lock.locked() or bool(getattr(lock, "_waiters", None))
