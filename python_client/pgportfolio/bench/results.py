"""What a run reports: a result per variant, per read and per scenario.

These dataclasses are the JSON's shape (``dataclasses.asdict``): their fields and their
order are the documented output format, so a change here is a change of that format.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from pgportfolio.bench.measure import Measurement, percentile
from pgportfolio.monitor import BUCKET_BOUNDS


def describe_error(error: BaseException) -> str:
    if isinstance(error, BaseExceptionGroup):
        return "; ".join(describe_error(e) for e in error.exceptions[:3])
    return f"{type(error).__name__}: {error}".strip()


def _ms(seconds: float) -> float | None:
    return None if math.isnan(seconds) else seconds * 1000


@dataclass
class VariantResult:
    name: str
    label: str
    latency_of: str  # what one latency sample is: "fill call" or "transaction of N fills"
    fills: int = 0
    seconds: float = 0.0
    fills_per_second: float | None = None
    p50_ms: float | None = None
    p99_ms: float | None = None
    p999_ms: float | None = None
    mean_ms: float | None = None
    samples: int = 0
    client_cpu: float | None = None  # CPU seconds per wall second of the client process
    cpu_us_per_fill: float | None = None  # the client's CPU time per applied fill
    machine_busy: float | None = None  # fraction of all cores busy (everyone's)
    retries: int | None = None
    version_conflicts: int | None = None
    lock_contention_rate: float | None = None
    mean_batch: float | None = None
    # What this database's active backends were doing, sampled every 50 ms: the share of
    # samples per wait event ("CPU" when not waiting), and how many were active on average.
    server_waits: dict[str, float] = field(default_factory=dict)
    active_backends: float | None = None
    errors: dict[str, int] = field(default_factory=dict)
    histogram: list[tuple[float, int]] = field(default_factory=list)  # (upper bound s, n)
    extra: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    @classmethod
    def failed(cls, name: str, label: str, latency_of: str, error: BaseException) -> VariantResult:
        return cls(name, label, latency_of, error=describe_error(error))

    @classmethod
    def from_measurement(
        cls, name: str, label: str, latency_of: str, m: Measurement, *, client_side: bool = True
    ) -> VariantResult:
        if m.exact:
            samples = len(m.exact)
            p50, p99, p999 = (percentile(m.exact, q) for q in (0.5, 0.99, 0.999))
            mean = sum(m.exact) / samples
        elif m.latency.count:
            samples = m.latency.count
            p50, p99, p999 = (m.latency.quantile(q) for q in (0.5, 0.99, 0.999))
            mean = m.latency.total / samples
        else:
            samples, p50, p99, p999, mean = 0, math.nan, math.nan, math.nan, math.nan
        result = cls(
            name,
            label,
            latency_of,
            fills=m.fills,
            seconds=m.seconds,
            fills_per_second=m.fills / m.seconds if m.seconds > 0 else None,
            p50_ms=_ms(p50),
            p99_ms=_ms(p99),
            p999_ms=_ms(p999),
            mean_ms=_ms(mean),
            samples=samples,
            client_cpu=m.cpu_seconds / m.seconds if m.seconds > 0 else None,
            cpu_us_per_fill=m.cpu_seconds / m.fills * 1e6 if m.fills else None,
            machine_busy=m.machine_busy / m.machine_total if m.machine_total else None,
            errors=dict(m.errors),
            server_waits={
                event: round(n / sum(m.server_waits.values()), 4)
                for event, n in m.server_waits.most_common(6)
            },
            active_backends=(
                sum(m.server_waits.values()) / m.server_samples if m.server_samples else None
            ),
            histogram=[
                (BUCKET_BOUNDS[i] if i < len(BUCKET_BOUNDS) else m.latency.max, n)
                for i, n in enumerate(m.latency.buckets)
                if n
            ],
        )
        if len(m.rounds) > 1:
            result.extra["fills_per_second_by_round"] = [round(r) for r in m.rounds]
        if client_side:
            result.retries = m.retries
            result.version_conflicts = m.version_conflicts
            result.lock_contention_rate = (
                m.lock_contended / m.lock_acquisitions if m.lock_acquisitions else 0.0
            )
            result.mean_batch = m.batch_fills / m.batch_calls if m.batch_calls else None
        else:
            result.extra["transactions"] = m.transactions
        return result


@dataclass
class ReadResult:
    """Sequential calls of one read, nothing else running."""

    name: str
    rows: int
    samples: int
    p50_ms: float
    p99_ms: float
    mean_ms: float

    @classmethod
    def from_durations(cls, name: str, rows: int, durations: list[float]) -> ReadResult:
        """From ascending seconds, one per call."""
        return cls(
            name,
            rows,
            len(durations),
            percentile(durations, 0.5) * 1000,
            percentile(durations, 0.99) * 1000,
            sum(durations) / len(durations) * 1000,
        )


@dataclass
class ScenarioResult:
    name: str
    description: str
    variants: dict[str, VariantResult] = field(default_factory=dict)
    ratios: dict[str, float | None] = field(default_factory=dict)
    reads: dict[str, ReadResult] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    error: str | None = None
