"""Prometheus export of a ``Monitor`` through prometheus-client.

It reads the monitor's public ``snapshot()`` and ``histograms()``; the monitor does not
know this module. Names follow Prometheus conventions: a ``pgportfolio_`` prefix,
``_total`` counters and ``_seconds`` histograms. Register the collector on a registry of
your own, or call ``start_metrics_server`` for an HTTP endpoint.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from pgportfolio.monitor import LatencyHistogram, Monitor

# The coarser buckets exported to Prometheus (seconds).
PROMETHEUS_BUCKETS: tuple[float, ...] = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)


def _histogram_buckets(h: LatencyHistogram) -> list[tuple[str, float]]:
    counts = h.cumulative(PROMETHEUS_BUCKETS)
    buckets: list[tuple[str, float]] = [
        (repr(b), float(c)) for b, c in zip(PROMETHEUS_BUCKETS, counts, strict=True)
    ]
    buckets.append(("+Inf", float(h.count)))
    return buckets


class MonitorCollector(Collector):
    """Reads the monitor's public ``snapshot()`` and ``histograms()`` at each scrape."""

    def __init__(self, monitor: Monitor) -> None:
        self.monitor = monitor

    def collect(self) -> Iterator[Metric]:
        snap = self.monitor.snapshot()
        histograms = self.monitor.histograms()

        calls = CounterMetricFamily(
            "pgportfolio_operations",
            "Client operations by outcome.",
            labels=["operation", "outcome"],
        )
        for name, s in snap["operations"].items():
            calls.add_metric([name, "success"], s["successes"])
            for error, n in s["failures"].items():
                calls.add_metric([name, error], n)
        yield calls

        duration = HistogramMetricFamily(
            "pgportfolio_operation_duration_seconds",
            "Client operation latency.",
            labels=["operation"],
        )
        for name, h in histograms.operations.items():
            duration.add_metric([name], _histogram_buckets(h), sum_value=h.total)
        yield duration

        acquisitions = CounterMetricFamily(
            "pgportfolio_lock_acquisitions",
            "In-process lock acquisitions.",
            labels=["lock", "contended"],
        )
        timeouts = CounterMetricFamily(
            "pgportfolio_lock_timeouts",
            "In-process lock acquisitions that timed out.",
            labels=["lock"],
        )
        for name, s in snap["locks"].items():
            acquisitions.add_metric([name, "true"], s["contended"])
            acquisitions.add_metric([name, "false"], s["acquisitions"] - s["contended"])
            timeouts.add_metric([name], s["timeouts"])
        yield acquisitions
        yield timeouts

        wait = HistogramMetricFamily(
            "pgportfolio_lock_wait_seconds",
            "Time spent waiting for in-process locks.",
            labels=["lock"],
        )
        for name, h in histograms.locks.items():
            wait.add_metric([name], _histogram_buckets(h), sum_value=h.total)
        yield wait

        retries = CounterMetricFamily(
            "pgportfolio_retries", "Retried calls by cause.", labels=["cause"]
        )
        for cause, n in snap["retries"].items():
            retries.add_metric([cause], n)
        yield retries

        yield CounterMetricFamily(
            "pgportfolio_version_conflicts",
            "PF001 version conflicts seen.",
            value=snap["version_conflicts"],
        )
        yield CounterMetricFamily(
            "pgportfolio_duplicate_requests",
            "Requests answered from the idempotency log.",
            value=snap["duplicates"],
        )
        yield CounterMetricFamily(
            "pgportfolio_coalesced_calls",
            "apply_fills calls sent by coalescing.",
            value=snap["batches"]["calls"],
        )
        yield CounterMetricFamily(
            "pgportfolio_coalesced_fills",
            "Fills sent inside coalesced calls.",
            value=snap["batches"]["fills"],
        )
        yield GaugeMetricFamily(
            "pgportfolio_operations_in_flight", "Operations running now.", value=snap["in_flight"]
        )
        yield GaugeMetricFamily(
            "pgportfolio_operations_in_flight_peak",
            "Most operations ever running at once.",
            value=snap["peak_in_flight"],
        )
        pool = GaugeMetricFamily(
            "pgportfolio_pool", "psycopg pool statistics (get_stats()).", labels=["pool", "stat"]
        )
        for name, stats in snap["pools"].items():
            for stat, value in stats.items():
                pool.add_metric([name, stat], value)
        yield pool


def register(monitor: Monitor, registry: CollectorRegistry) -> MonitorCollector:
    collector = MonitorCollector(monitor)
    registry.register(collector)
    return collector


def start_metrics_server(monitor: Monitor, port: int, addr: str = "127.0.0.1") -> CollectorRegistry:
    """Serve ``/metrics`` for this monitor on ``addr:port`` (a daemon thread)."""
    registry = CollectorRegistry()
    register(monitor, registry)
    start_http_server(port, addr=addr, registry=registry)
    return registry
