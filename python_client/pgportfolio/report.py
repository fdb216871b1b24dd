"""The monitor report as rich tables."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.3f}"


def print_monitor_report(snapshot: dict[str, Any], console: Console | None = None) -> None:
    console = console or Console()
    ops = Table(title="pgportfolio operations", title_justify="left")
    for column in ("operation", "calls", "ok", "failed", "p50 ms", "p99 ms", "p99.9 ms", "max ms"):
        ops.add_column(column, justify="left" if column == "operation" else "right")
    for name, s in snapshot["operations"].items():
        lat = s["latency_seconds"]
        failed = sum(s["failures"].values())
        ops.add_row(
            name,
            str(s["calls"]),
            str(s["successes"]),
            str(failed),
            _ms(lat["p50"]),
            _ms(lat["p99"]),
            _ms(lat["p999"]),
            _ms(lat["max"]),
        )
    console.print(ops)

    failures = [
        (name, error, n)
        for name, s in snapshot["operations"].items()
        for error, n in sorted(s["failures"].items())
    ]
    if failures:
        table = Table(title="failures by error", title_justify="left")
        for column in ("operation", "error", "count"):
            table.add_column(column)
        for name, error, n in failures:
            table.add_row(name, error, str(n))
        console.print(table)

    locks = Table(title="in-process locks", title_justify="left")
    for column in (
        "lock",
        "acquisitions",
        "contended",
        "rate",
        "timeouts",
        "wait p50 ms",
        "wait p99 ms",
    ):
        locks.add_column(column, justify="left" if column == "lock" else "right")
    for name, s in snapshot["locks"].items():
        w = s["wait_seconds"]
        locks.add_row(
            name,
            str(s["acquisitions"]),
            str(s["contended"]),
            f"{s['contention_rate']:.2%}",
            str(s["timeouts"]),
            _ms(w["p50"]),
            _ms(w["p99"]),
        )
    console.print(locks)

    retries = (
        ", ".join(f"{cause}={n}" for cause, n in sorted(snapshot["retries"].items())) or "none"
    )
    console.print(
        f"lock contention {snapshot['lock_contention_rate']:.2%} | "
        f"version conflicts {snapshot['version_conflicts']} | "
        f"duplicates {snapshot['duplicates']} | "
        f"retries {retries} | lock timeouts {snapshot['lock_timeouts']} | "
        f"peak concurrency {snapshot['peak_in_flight']}"
    )
    batches = snapshot["batches"]
    if batches["calls"]:
        console.print(
            f"coalesced: {batches['fills']} fills in {batches['calls']} calls "
            f"(mean {batches['mean_size']:.1f}, largest {batches['largest']})"
        )
    for name, stats in snapshot["pools"].items():
        console.print(f"pool {name}: " + ", ".join(f"{k}={v}" for k, v in sorted(stats.items())))
