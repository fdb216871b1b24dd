"""In-process locks: one per portfolio, created on demand and dropped when idle.

Operations on one portfolio from one process queue here, holding no pooled connection,
instead of queueing inside PostgreSQL with a connection each. These locks are an
optimisation, not the source of correctness: across processes the database's row locks
decide (see the advisory-lock helper on the client for cross-process sections).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from pgportfolio._async import compat
from pgportfolio.errors import InProcessLockTimeout
from pgportfolio.monitor import Monitor, get_global_monitor


@dataclass
class _Entry:
    lock: Any = field(default_factory=compat.Lock)
    users: int = 0


class AsyncLockRegistry:
    """Per-key locks with a timeout. Memory is proportional to the keys in use right now,
    not to every key ever seen."""

    def __init__(
        self,
        *,
        monitor: Monitor | None = None,
        timeout: float | None = 5.0,
        metric_name: str = "portfolio",
    ) -> None:
        self.monitor = monitor or get_global_monitor()
        self.timeout = timeout
        self.metric_name = metric_name
        self._entries: dict[Any, _Entry] = {}
        self._guard = compat.registry_guard()

    def __len__(self) -> int:
        return len(self._entries)

    @asynccontextmanager
    async def hold(self, key: Any, timeout: float | None = None) -> AsyncIterator[None]:
        """Hold the lock for ``key``; InProcessLockTimeout after ``timeout`` seconds."""
        limit = self.timeout if timeout is None else timeout
        with self._guard:
            entry = self._entries.get(key)
            if entry is None:
                entry = self._entries[key] = _Entry()
            entry.users += 1
        try:
            contended = compat.is_busy(entry.lock)
            started = time.perf_counter()
            if not await compat.acquire(entry.lock, limit):
                self.monitor.record_lock_timeout(self.metric_name)
                raise InProcessLockTimeout(
                    f"in-process lock on {self.metric_name} {key!r} not acquired within {limit}s",
                    portfolio_id=key if isinstance(key, int) else None,
                )
            self.monitor.record_lock_wait(
                self.metric_name, time.perf_counter() - started, contended=contended
            )
            try:
                yield
            finally:
                entry.lock.release()
        finally:
            with self._guard:
                entry.users -= 1
                if entry.users == 0:
                    del self._entries[key]

    @asynccontextmanager
    async def hold_many(
        self, keys: Iterable[Any], timeout: float | None = None
    ) -> AsyncIterator[None]:
        """Hold several keys, always in sorted order, so two callers cannot deadlock."""
        async with AsyncExitStack() as stack:
            for key in sorted(set(keys)):
                await stack.enter_async_context(self.hold(key, timeout))
            yield


class AsyncMonitoredLock:
    """A lock for the caller's own critical sections, measured by a Monitor:

    lock = MonitoredLock("critical_section", monitor)
    async with lock:
        ...
    """

    def __init__(
        self, name: str, monitor: Monitor | None = None, *, timeout: float | None = None
    ) -> None:
        self.name = name
        self.monitor = monitor or get_global_monitor()
        self.timeout = timeout
        self._lock = compat.Lock()

    def locked(self) -> bool:
        return bool(self._lock.locked())

    async def __aenter__(self) -> AsyncMonitoredLock:
        contended = compat.is_busy(self._lock)
        started = time.perf_counter()
        if not await compat.acquire(self._lock, self.timeout):
            self.monitor.record_lock_timeout(self.name)
            raise InProcessLockTimeout(f"lock {self.name!r} not acquired within {self.timeout}s")
        self.monitor.record_lock_wait(self.name, time.perf_counter() - started, contended=contended)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._lock.release()
