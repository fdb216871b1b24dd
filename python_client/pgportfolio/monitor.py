"""Measure what the client does: operations, lock waits, conflicts, retries, pools.

Memory is bounded whatever the load: latencies go into fixed log-scale buckets (about 2%
relative error), counters are keyed by operation and error class, never by portfolio.

This module only records and reads. ``snapshot()`` returns plain data and ``histograms()``
copies of the latency histograms; the readers build on those and this module imports
none of them: ``pgportfolio.report.print_report(monitor)`` prints the report and
``pgportfolio.prometheus.MonitorCollector(monitor)`` exports the numbers to Prometheus.
"""

from __future__ import annotations

import bisect
import math
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

# Bucket upper bounds from 1 microsecond to about 2 minutes, each 2% above the last.
_RATIO = 1.02
BUCKET_BOUNDS: tuple[float, ...] = tuple(
    1e-6 * _RATIO**i for i in range(int(math.log(120 / 1e-6) / math.log(_RATIO)) + 2)
)


class LatencyHistogram:
    """Fixed-size log-bucket histogram of durations in seconds."""

    __slots__ = ("buckets", "count", "max", "min", "total")

    def __init__(self) -> None:
        self.buckets = [0] * (len(BUCKET_BOUNDS) + 1)
        self.count = 0
        self.total = 0.0
        self.min = math.inf
        self.max = 0.0

    def record(self, seconds: float) -> None:
        self.buckets[bisect.bisect_left(BUCKET_BOUNDS, seconds)] += 1
        self.count += 1
        self.total += seconds
        if seconds < self.min:
            self.min = seconds
        if seconds > self.max:
            self.max = seconds

    def quantile(self, q: float) -> float:
        """The upper bound of the bucket holding the q-th quantile (0 when empty)."""
        if self.count == 0:
            return 0.0
        rank = max(1, math.ceil(q * self.count))
        seen = 0
        for index, n in enumerate(self.buckets):
            seen += n
            if seen >= rank:
                bound = BUCKET_BOUNDS[index] if index < len(BUCKET_BOUNDS) else self.max
                return min(bound, self.max)
        return self.max

    def cumulative(self, bounds: tuple[float, ...]) -> list[int]:
        """Counts at or below each of ``bounds`` (for Prometheus), from the fine buckets."""
        out: list[int] = []
        running = 0
        index = 0
        for bound in bounds:
            while index < len(BUCKET_BOUNDS) and BUCKET_BOUNDS[index] <= bound:
                running += self.buckets[index]
                index += 1
            out.append(running)
        return out

    def summary(self) -> dict[str, float]:
        return {
            "count": self.count,
            "mean": self.total / self.count if self.count else 0.0,
            "p50": self.quantile(0.50),
            "p99": self.quantile(0.99),
            "p999": self.quantile(0.999),
            "max": self.max,
        }


@dataclass
class _OperationStats:
    calls: int = 0
    successes: int = 0
    failures: Counter[str] = field(default_factory=Counter)
    latency: LatencyHistogram = field(default_factory=LatencyHistogram)


@dataclass
class _LockStats:
    acquisitions: int = 0
    contended: int = 0
    timeouts: int = 0
    wait: LatencyHistogram = field(default_factory=LatencyHistogram)


@dataclass(frozen=True)
class Histograms:
    """Copies of a monitor's histograms, taken together under its guard."""

    operations: dict[str, LatencyHistogram]
    """Call latency by operation name."""
    locks: dict[str, LatencyHistogram]
    """In-process wait by lock name (``"portfolio"``, ``"coalescer"``, your own)."""


class Monitor:
    """Thread-safe counters and histograms for one client, or for a whole process."""

    def __init__(self, *, enabled: bool = True) -> None:
        self.enabled = enabled
        self._guard = threading.Lock()
        self._operations: dict[str, _OperationStats] = defaultdict(_OperationStats)
        self._locks: dict[str, _LockStats] = defaultdict(_LockStats)
        self._retries: Counter[str] = Counter()
        self._version_conflicts = 0
        self._duplicates = 0
        self._batches = 0
        self._batched = 0
        self._largest_batch = 0
        self._in_flight = 0
        self._peak_in_flight = 0
        self._pools: dict[str, Callable[[], Mapping[str, int]]] = {}
        self.started_at = time.time()

    # -- recording -------------------------------------------------------------------

    @contextmanager
    def operation(self, name: str) -> Iterator[None]:
        """Time one call; an exception counts as a failure under its class name."""
        if not self.enabled:
            yield
            return
        started = self.begin()
        try:
            yield
        except BaseException as exc:
            self.end(name, started, type(exc).__name__)
            raise
        self.end(name, started, None)

    def begin(self) -> float:
        """A call starts: counted in flight; returns its start time for ``end``. (The
        coalesced calls use begin/end directly: ``operation`` as a generator costs a
        fill about 1.5 µs.)"""
        if self.enabled:
            with self._guard:
                self._in_flight += 1
                if self._in_flight > self._peak_in_flight:
                    self._peak_in_flight = self._in_flight
        return time.perf_counter()

    def end(
        self,
        name: str,
        started: float,
        error: str | None,
        *,
        lock: str | None = None,
        contended: bool = False,
    ) -> None:
        """The call that ``begin`` returned ``started`` for ended (``error``: the class
        name of what it raised). With ``lock``, its whole time was also a wait for that
        in-process lock (as ``record_lock_wait``), recorded under the same guard."""
        if not self.enabled:
            return
        elapsed = time.perf_counter() - started
        with self._guard:
            self._in_flight -= 1
            stats = self._operations[name]
            stats.calls += 1
            stats.latency.record(elapsed)
            if error is None:
                stats.successes += 1
            else:
                stats.failures[error] += 1
            if lock is not None:
                wait = self._locks[lock]
                wait.acquisitions += 1
                wait.contended += contended
                wait.wait.record(elapsed)

    def record_lock_wait(self, lock_name: str, seconds: float, *, contended: bool) -> None:
        if not self.enabled:
            return
        with self._guard:
            stats = self._locks[lock_name]
            stats.acquisitions += 1
            stats.contended += contended
            stats.wait.record(seconds)

    def record_lock_timeout(self, lock_name: str) -> None:
        if self.enabled:
            with self._guard:
                self._locks[lock_name].timeouts += 1

    def record_retry(self, cause: str) -> None:
        if self.enabled:
            with self._guard:
                self._retries[cause] += 1

    def record_version_conflict(self) -> None:
        if self.enabled:
            with self._guard:
                self._version_conflicts += 1

    def record_duplicate(self) -> None:
        if self.enabled:
            with self._guard:
                self._duplicates += 1

    def record_batch(self, size: int) -> None:
        """One coalesced call of ``size`` fills."""
        if self.enabled:
            with self._guard:
                self._batches += 1
                self._batched += size
                self._largest_batch = max(self._largest_batch, size)

    def watch_pool(self, name: str, get_stats: Callable[[], Mapping[str, int]]) -> None:
        """Report a psycopg pool's ``get_stats()`` in the snapshot and in Prometheus."""
        self._pools[name] = get_stats

    def forget_pool(self, name: str) -> None:
        self._pools.pop(name, None)

    def reset(self) -> None:
        with self._guard:
            self._operations.clear()
            self._locks.clear()
            self._retries.clear()
            self._version_conflicts = self._duplicates = 0
            self._batches = self._batched = self._largest_batch = 0
            self._in_flight = self._peak_in_flight = 0
            self.started_at = time.time()

    # -- reading -----------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """Everything as plain data (dicts, ints, floats)."""
        with self._guard:
            operations = {
                name: {
                    "calls": s.calls,
                    "successes": s.successes,
                    "failures": dict(s.failures),
                    "latency_seconds": s.latency.summary(),
                }
                for name, s in sorted(self._operations.items())
            }
            acquisitions = sum(s.acquisitions for s in self._locks.values())
            contended = sum(s.contended for s in self._locks.values())
            locks = {
                name: {
                    "acquisitions": s.acquisitions,
                    "contended": s.contended,
                    "contention_rate": s.contended / s.acquisitions if s.acquisitions else 0.0,
                    "timeouts": s.timeouts,
                    "wait_seconds": s.wait.summary(),
                }
                for name, s in sorted(self._locks.items())
            }
            data: dict[str, Any] = {
                "operations": operations,
                "locks": locks,
                "lock_contention_rate": contended / acquisitions if acquisitions else 0.0,
                "lock_timeouts": sum(s.timeouts for s in self._locks.values()),
                "retries": dict(self._retries),
                "version_conflicts": self._version_conflicts,
                "duplicates": self._duplicates,
                "batches": {
                    "calls": self._batches,
                    "fills": self._batched,
                    "mean_size": self._batched / self._batches if self._batches else 0.0,
                    "largest": self._largest_batch,
                },
                "in_flight": self._in_flight,
                "peak_in_flight": self._peak_in_flight,
                "uptime_seconds": time.time() - self.started_at,
            }
            pools = dict(self._pools)
        data["pools"] = {name: dict(get()) for name, get in pools.items()}
        return data

    def print_report(self) -> None:
        """Print the report to stdout (the seed's monitoring example). The report module
        reads only ``snapshot()``: it does not import this one."""
        from pgportfolio.report import print_monitor_report

        print_monitor_report(self.snapshot())

    def histograms(self) -> Histograms:
        """Copies of the latency histograms (the snapshot has only their summaries)."""
        with self._guard:
            return Histograms(
                operations={n: _copy(s.latency) for n, s in sorted(self._operations.items())},
                locks={n: _copy(s.wait) for n, s in sorted(self._locks.items())},
            )


def _copy(h: LatencyHistogram) -> LatencyHistogram:
    c = LatencyHistogram()
    c.buckets = list(h.buckets)
    c.count, c.total, c.min, c.max = h.count, h.total, h.min, h.max
    return c


_GLOBAL_MONITOR = Monitor()


def get_global_monitor() -> Monitor:
    """The process-wide monitor that clients use unless given their own."""
    return _GLOBAL_MONITOR
