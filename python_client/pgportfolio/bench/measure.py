"""Timing: callers in a measured window, the machine's clocks, percentiles.

Nothing here knows a scenario or a report: a Measurement is what one window saw.
"""

from __future__ import annotations

import asyncio
import math
import random
import resource
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from pgportfolio import AsyncPortfolioClient
from pgportfolio.bench.fills import DECK_BITS, MAX_CENTS, MIN_CENTS, FillPlan
from pgportfolio.errors import PortfolioError
from pgportfolio.monitor import LatencyHistogram

# --- statistics (pure, unit-tested) -------------------------------------------------------


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank quantile of ascending values: the smallest value with at least q of
    the values at or below it (the same rank rule as LatencyHistogram.quantile)."""
    if not sorted_values:
        raise ValueError("no values")
    if not 0.0 < q <= 1.0:
        raise ValueError(f"q must be in (0, 1], got {q}")
    rank = max(1, math.ceil(q * len(sorted_values)))
    return sorted_values[rank - 1]


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    """numerator / denominator, or None when either is missing or the denominator is 0."""
    if numerator is None or denominator is None or denominator == 0:
        return None
    return numerator / denominator


# --- clocks -------------------------------------------------------------------------------


def _machine_jiffies() -> tuple[int, int] | None:
    """(busy, total) CPU time of the whole machine so far, from /proc/stat."""
    try:
        first = Path("/proc/stat").read_text().split("\n", 1)[0].split()
    except OSError:
        return None
    values = [int(v) for v in first[1:9]]
    idle = values[3] + values[4]  # idle + iowait
    return sum(values) - idle, sum(values)


@dataclass
class MachineClock:
    """Process CPU, machine CPU and wall time at one instant."""

    wall: float = field(default_factory=time.perf_counter)
    cpu: float = field(default_factory=time.process_time)
    jiffies: tuple[int, int] | None = field(default_factory=_machine_jiffies)


def rss_mb() -> float:
    """This process's resident set size now (not the peak), in MB."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # peak, as a fallback


# --- what a window saw --------------------------------------------------------------------


@dataclass
class Measurement:
    """What one variant did inside its measured window(s); several windows merge."""

    fills: int = 0
    seconds: float = 0.0
    cpu_seconds: float = 0.0  # the client's (this process, or pgbench's) CPU time
    machine_busy: int = 0  # jiffies the whole machine was busy
    machine_total: int = 0
    latency: LatencyHistogram = field(default_factory=LatencyHistogram)
    exact: list[float] | None = None  # pgbench: every transaction's latency, seconds
    errors: Counter[str] = field(default_factory=Counter)
    retries: int = 0
    version_conflicts: int = 0
    lock_acquisitions: int = 0
    lock_contended: int = 0
    batch_calls: int = 0
    batch_fills: int = 0
    transactions: int = 0
    server_waits: Counter[str] = field(default_factory=Counter)  # active backends, sampled
    server_samples: int = 0
    rounds: list[float] = field(default_factory=list)  # fills/s of each merged window

    def add_window(self, start: MachineClock, end: MachineClock) -> None:
        self.cpu_seconds += end.cpu - start.cpu
        if start.jiffies and end.jiffies:
            self.machine_busy += end.jiffies[0] - start.jiffies[0]
            self.machine_total += end.jiffies[1] - start.jiffies[1]

    def add_monitor(self, snapshot: dict[str, Any]) -> None:
        self.retries += sum(snapshot["retries"].values())
        self.version_conflicts += snapshot["version_conflicts"]
        for lock in snapshot["locks"].values():
            self.lock_acquisitions += lock["acquisitions"]
            self.lock_contended += lock["contended"]
        self.batch_calls += snapshot["batches"]["calls"]
        self.batch_fills += snapshot["batches"]["fills"]

    def merge(self, other: Measurement) -> None:
        self.fills += other.fills
        self.seconds += other.seconds
        self.cpu_seconds += other.cpu_seconds
        self.machine_busy += other.machine_busy
        self.machine_total += other.machine_total
        for i, n in enumerate(other.latency.buckets):
            self.latency.buckets[i] += n
        self.latency.count += other.latency.count
        self.latency.total += other.latency.total
        self.latency.min = min(self.latency.min, other.latency.min)
        self.latency.max = max(self.latency.max, other.latency.max)
        if other.exact is not None:
            self.exact = sorted((self.exact or []) + other.exact)
        self.errors.update(other.errors)
        self.retries += other.retries
        self.version_conflicts += other.version_conflicts
        self.lock_acquisitions += other.lock_acquisitions
        self.lock_contended += other.lock_contended
        self.batch_calls += other.batch_calls
        self.batch_fills += other.batch_fills
        self.transactions += other.transactions
        self.server_waits.update(other.server_waits)
        self.server_samples += other.server_samples
        self.rounds.append(other.fills / other.seconds if other.seconds else 0.0)


@dataclass
class Window:
    start: float  # perf_counter
    end: float


async def sleep_until(moment: float) -> None:
    await asyncio.sleep(max(0.0, moment - time.perf_counter()))


# --- callers ------------------------------------------------------------------------------


async def _trader(
    client: AsyncPortfolioClient,
    deck: Sequence[tuple[int, str, int, Decimal]],
    rng: random.Random,
    window: Window,
    m: Measurement,
) -> None:
    """apply_fill in a loop, each a fill picked at random from ``deck``; a call counts
    when it started and ended inside the window."""
    while True:
        pid, symbol, quantity, price = deck[rng.getrandbits(DECK_BITS)]
        started = time.perf_counter()
        if started >= window.end:
            return
        try:
            await client.apply_fill(pid, symbol, quantity, price)
        except PortfolioError as exc:
            if started >= window.start:
                m.errors[type(exc).__name__] += 1
            continue
        finished = time.perf_counter()
        if started >= window.start and finished <= window.end:
            m.fills += 1
            m.latency.record(finished - started)


SideTask = Callable[[Window], Coroutine[Any, Any, None]]


async def measure_client(
    client: AsyncPortfolioClient,
    plan: FillPlan,
    *,
    traders: int,
    warmup: float,
    duration: float,
    seed: int,
    side_task: SideTask | None = None,
) -> Measurement:
    """``traders`` tasks calling apply_fill for warmup + duration seconds; only the last
    ``duration`` seconds are measured."""
    m = Measurement()
    begin = time.perf_counter()
    window = Window(begin + warmup, begin + warmup + duration)
    deck = plan.deck(random.Random(seed))
    async with asyncio.TaskGroup() as group:
        for n in range(traders):
            group.create_task(_trader(client, deck, random.Random(seed * 100_003 + n), window, m))
        if side_task is not None:
            group.create_task(side_task(window))
        await sleep_until(window.start)
        client.monitor.reset()
        start = MachineClock()
        await sleep_until(window.end)
        end = MachineClock()
        m.add_monitor(client.monitor.snapshot())
    m.seconds = duration
    m.add_window(start, end)
    return m


@dataclass
class TickStats:
    ticks: int = 0
    calls: int = 0
    latency: LatencyHistogram = field(default_factory=LatencyHistogram)
    seconds: float = 0.0


def tick_sender(
    send: Callable[[list[tuple[str, Decimal]]], Awaitable[int]],
    symbols: Sequence[str],
    *,
    per_second: int,
    chunk: int,
    seed: int,
    stats: TickStats,
) -> SideTask:
    """A side task sending ``per_second`` marks in chunks, on a fixed schedule (a late
    chunk goes at once, so the rate holds if the sender can keep up at all)."""

    async def run(window: Window) -> None:
        rng = random.Random(seed)
        interval = chunk / per_second
        next_at = time.perf_counter()
        cursor = 0
        stats.seconds += window.end - window.start
        while next_at < window.end:
            await sleep_until(next_at)
            prices = []
            for _ in range(chunk):
                prices.append(
                    (symbols[cursor], Decimal(rng.randint(MIN_CENTS, MAX_CENTS)).scaleb(-2))
                )
                cursor = (cursor + 1) % len(symbols)
            started = time.perf_counter()
            await send(prices)
            if window.start <= started < window.end:
                stats.ticks += len(prices)
                stats.calls += 1
                stats.latency.record(time.perf_counter() - started)
            next_at += interval

    return run


async def run_alternating(
    rounds: int, variants: Sequence[Callable[[], Awaitable[Measurement]]]
) -> list[Measurement]:
    """Run each variant ``rounds`` times, interleaved (A B A B ...), so that a drift of
    the machine's load hits every variant alike; merge each variant's windows."""
    merged = [Measurement() for _ in variants]
    for _ in range(rounds):
        for total, variant in zip(merged, variants, strict=True):
            total.merge(await variant())
    return merged


async def time_reads(read: Callable[[], Awaitable[int]], samples: int) -> tuple[int, list[float]]:
    """(rows, ascending seconds) of ``samples`` sequential calls, after one untimed call
    (plan cache, buffers)."""
    rows = await read()
    durations = []
    for _ in range(samples):
        started = time.perf_counter()
        await read()
        durations.append(time.perf_counter() - started)
    durations.sort()
    return rows, durations
