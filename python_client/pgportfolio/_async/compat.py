"""What differs between the async client and its generated sync twin.

The async source uses only these names for waiting and locking; ``_sync/compat.py``
defines the same names with threads. Everything else is generated.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import itertools
import math
import weakref
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

T = TypeVar("T")

# True in the tasks ``spawn`` makes (the client's own, never a caller's).
_OWNED: contextvars.ContextVar[bool] = contextvars.ContextVar("pgportfolio_owned", default=False)

# One try of a call: given whether an earlier try is in doubt, its result.
Attempt = Callable[[bool], Awaitable[T]]

Lock = asyncio.Lock
Condition = asyncio.Condition
Future = asyncio.Future
sleep = asyncio.sleep

__all__ = [
    "AsyncConnection",
    "AsyncConnectionPool",
    "Attempt",
    "Condition",
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


class call_later:  # used as a function, like its sync twin
    """Run ``callback`` on the event loop if the block is still running after ``seconds``.
    (A class, not a generator: it is entered on every call.)"""

    __slots__ = ("_callback", "_deadlines", "_seconds", "_token")

    def __init__(self, seconds: float | None, callback: Callable[[], None]) -> None:
        self._seconds = seconds
        self._callback = callback
        self._deadlines: _LoopDeadlines | None = None
        self._token = 0

    def __enter__(self) -> None:
        if self._seconds is not None:
            loop = asyncio.get_running_loop()
            deadlines = _LOOP_DEADLINES.get(loop)
            if deadlines is None:
                deadlines = _LOOP_DEADLINES[loop] = _LoopDeadlines()
            self._deadlines = deadlines
            self._token = deadlines.add(loop, self._seconds, self._callback)

    def __exit__(self, *exc: object) -> None:
        if self._deadlines is not None:
            self._deadlines.remove(self._token)


class _LoopDeadlines:
    """One timer for every deadline of a loop's calls in flight, armed for the earliest.
    A timer per call (``call_later`` and ``cancel``) cost a call about 27,000 instructions
    on asyncio's own loop; here a call adds and removes a dict entry, and the timer is armed
    again only when it fires (about once per ``seconds`` under a steady load)."""

    # No reference to the loop is kept (it is the key of a weak dict): only the armed
    # timer, which the loop itself holds, has it.
    def __init__(self) -> None:
        self._entries: dict[int, tuple[float, Callable[[], None]]] = {}
        self._tokens = itertools.count(1)
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = math.inf

    def add(
        self, loop: asyncio.AbstractEventLoop, seconds: float, callback: Callable[[], None]
    ) -> int:
        deadline = loop.time() + seconds
        token = next(self._tokens)
        self._entries[token] = (deadline, callback)
        if deadline < self._timer_at:
            self._arm(loop, deadline)
        return token

    def remove(self, token: int) -> None:
        self._entries.pop(token, None)

    def _arm(self, loop: asyncio.AbstractEventLoop, when: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = loop.call_at(when, self._fire, loop)
        self._timer_at = when

    def _fire(self, loop: asyncio.AbstractEventLoop) -> None:
        self._timer, self._timer_at = None, math.inf
        now = loop.time()
        due = [token for token, (deadline, _) in self._entries.items() if deadline <= now]
        for token in due:
            _, callback = self._entries.pop(token)
            try:
                callback()
            except Exception as exc:  # reported as a timer's own callback's would be
                loop.call_exception_handler(
                    {"message": "pgportfolio: a call's deadline callback failed", "exception": exc}
                )
        if self._entries:
            self._arm(loop, min(deadline for deadline, _ in self._entries.values()))


_LOOP_DEADLINES: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopDeadlines] = (
    weakref.WeakKeyDictionary()
)


async def uninterrupted(call: Coroutine[Any, Any, T]) -> T:
    """Run ``call`` to its end even if the waiting task is cancelled meanwhile, then
    raise the cancellation. ``call`` is bounded on its own (call_timeout cuts its socket),
    so the cancellation comes that much later at most.

    In a task of the client's own (``spawn``), which no caller can cancel, ``call`` runs
    in place: the shield's task costs a lone call about 90,000 instructions (a sixth)."""
    if _OWNED.get():
        return await call
    task = asyncio.ensure_future(call)
    cancelled = False
    while True:
        try:
            result = await asyncio.shield(task)
        except asyncio.CancelledError:
            if task.done():  # the call itself was cancelled, not only its waiter
                raise
            cancelled = True
            continue
        except BaseException:
            if cancelled:
                raise asyncio.CancelledError from None
            raise
        if cancelled:
            raise asyncio.CancelledError
        return result


def new_future() -> asyncio.Future[Any]:
    """A future for one caller's answer. Its caller awaits it (``answer``), so an
    exception set on it is always retrieved, and a caller that stops waiting cancels it:
    whoever answers checks ``done()`` first."""
    return asyncio.get_running_loop().create_future()


def answer(future: asyncio.Future[T]) -> asyncio.Future[T]:
    """What to await for ``future``'s result (or its exception): the future itself, so
    a waiting caller costs no coroutine of its own. A cancelled waiter cancels
    ``future``. Bounds on the wait are the owner's business (``schedule``): one timer
    for all waiters, not one per call (a timer costs about 3 µs, a sixth of a fill)."""
    return future


def schedule(seconds: float, callback: Callable[[], None]) -> asyncio.TimerHandle:
    """Run ``callback`` on the event loop after ``seconds``; ``cancel()`` the handle to
    call it off."""
    return asyncio.get_running_loop().call_later(seconds, callback)


async def wait_future(future: asyncio.Future[Any], timeout: float | None) -> bool:
    """Wait for ``future`` for at most ``timeout`` seconds (None: no limit); True when it
    is done. Never cancels ``future``, not even when the waiting task is cancelled."""
    if future.done():
        return True
    done, _ = await asyncio.wait({future}, timeout=timeout)
    return bool(done)


def atomic(condition: asyncio.Condition) -> contextlib.AbstractContextManager[Any]:
    """Guards a few statements that must not interleave with other callers. One event
    loop thread and no await inside: nothing to guard."""
    return contextlib.nullcontext()


def spawn(work: Callable[[], Coroutine[Any, Any, None]]) -> asyncio.Task[None]:
    """Run ``work`` in the background, owned by the caller's object, not by the task
    that happened to start it (so no caller can cancel it)."""

    async def owned() -> None:
        _OWNED.set(True)
        await work()

    return asyncio.get_running_loop().create_task(owned())


async def join(task: asyncio.Task[None]) -> None:
    await task


def is_busy(lock: asyncio.Lock) -> bool:
    """Whether acquiring ``lock`` now would wait: held, or others already queued for it
    (asyncio.Lock hands a released lock to the first waiter, not to a newcomer)."""
    return lock.locked() or bool(getattr(lock, "_waiters", None))
