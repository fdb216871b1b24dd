"""The monitor's report, for a terminal and for a log alike.

A table is printed only on a terminal wide enough to show every cell whole. Anywhere
else (a pipe, a file, a narrow window) each row becomes one ``name: key=value ...``
line that is never wrapped or cut, so that a log keeps every operation and lock name
complete. This module reads the monitor's public ``snapshot()``; the monitor does not
import it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from rich.console import Console
from rich.measure import Measurement
from rich.table import Table


class HasSnapshot(Protocol):
    """What the report reads of a monitor: its public snapshot (so this module need not
    import the monitor, which calls it for the seed's ``monitor.print_report()``)."""

    def snapshot(self) -> dict[str, Any]: ...


__all__ = ["print_monitor_report", "print_report", "print_table", "wait_summaries"]

# What each in-process wait measures. None of them is a PostgreSQL lock.
_WAIT_MEANING = {
    "coalescer": (
        "coalescer queue",
        "coalesced calls (fills and cash moves) waited for a turn to be sent",
    ),
    "portfolio": ("per-portfolio in-process lock", "acquisitions waited for another caller"),
}


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.3f}"


def _line(console: Console, text: str) -> None:
    # soft_wrap: never wrapped or cropped at the console width; no markup: names print as is.
    console.print(text, soft_wrap=True, markup=False, highlight=False)


def print_table(
    console: Console,
    title: str,
    columns: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    right: Sequence[str] = (),
) -> None:
    """A table where it fits whole on a terminal, else one plain line per row.

    The first column names the row; a plain line reads ``name: column=value ...`` with
    spaces in column names replaced by ``_``.
    """
    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column, justify="right" if column in right else "left", no_wrap=True)
    for row in rows:
        table.add_row(*row)
    # The width the table needs to show every cell whole (unclamped by the console's).
    needed = Measurement.get(console, console.options.update_width(1 << 16), table).maximum
    if console.is_terminal and needed <= console.width:
        console.print(table)
        return
    _line(console, f"{title}:")
    keys = [column.replace(" ", "_") for column in columns[1:]]
    for name, *values in rows:
        fields = " ".join(f"{key}={value}" for key, value in zip(keys, values, strict=True))
        _line(console, f"  {name}: {fields}")


def wait_summaries(snapshot: dict[str, Any]) -> list[str]:
    """One sentence per in-process wait, saying what was measured."""
    lines = []
    for name, s in snapshot["locks"].items():
        label, waited = _WAIT_MEANING.get(
            name, (f"in-process lock {name!r}", "acquisitions waited for another holder")
        )
        lines.append(
            f"{label}: {s['contention_rate']:.2%} of {s['acquisitions']} {waited} "
            f"(wait p99 {_ms(s['wait_seconds']['p99'])} ms; {s['timeouts']} gave up)"
        )
    return lines or ["in-process waits: none recorded"]


def print_report(monitor: HasSnapshot, console: Console | None = None) -> None:
    """The report of ``monitor`` (see :func:`print_monitor_report`)."""
    print_monitor_report(monitor.snapshot(), console)


def print_monitor_report(snapshot: dict[str, Any], console: Console | None = None) -> None:
    """Operations with latency quantiles, failures, in-process waits, retries and pools,
    from a :meth:`Monitor.snapshot`."""
    console = console or Console()
    numbers = ("calls", "ok", "failed", "p50 ms", "p99 ms", "p99.9 ms", "max ms")
    rows = []
    for name, s in snapshot["operations"].items():
        lat = s["latency_seconds"]
        rows.append(
            [
                name,
                str(s["calls"]),
                str(s["successes"]),
                str(sum(s["failures"].values())),
                _ms(lat["p50"]),
                _ms(lat["p99"]),
                _ms(lat["p999"]),
                _ms(lat["max"]),
            ]
        )
    print_table(console, "pgportfolio operations", ("operation", *numbers), rows, right=numbers)

    failures = [
        [name, error, str(n)]
        for name, s in snapshot["operations"].items()
        for error, n in sorted(s["failures"].items())
    ]
    if failures:
        print_table(
            console,
            "failures by error",
            ("operation", "error", "count"),
            failures,
            right=("count",),
        )

    waits = ("acquisitions", "waited", "rate", "timeouts", "wait p50 ms", "wait p99 ms")
    rows = [
        [
            name,
            str(s["acquisitions"]),
            str(s["contended"]),
            f"{s['contention_rate']:.2%}",
            str(s["timeouts"]),
            _ms(s["wait_seconds"]["p50"]),
            _ms(s["wait_seconds"]["p99"]),
        ]
        for name, s in snapshot["locks"].items()
    ]
    if rows:
        print_table(
            console,
            "in-process waits (not PostgreSQL locks)",
            ("wait", *waits),
            rows,
            right=waits,
        )

    for text in wait_summaries(snapshot):
        _line(console, text)
    retries = snapshot["retries"]
    _line(
        console,
        "PostgreSQL lock waits: not measured by the client (pgportfolio top shows them live); "
        f"calls retried after lock_timeout (55P03): {retries.get('lock_timeout', 0)}",
    )
    causes = ", ".join(f"{cause}={n}" for cause, n in sorted(retries.items())) or "none"
    _line(
        console,
        f"version conflicts {snapshot['version_conflicts']} | "
        f"duplicates {snapshot['duplicates']} | "
        f"retries {causes} | in-process wait timeouts {snapshot['lock_timeouts']} | "
        f"peak concurrency {snapshot['peak_in_flight']}",
    )
    batches = snapshot["batches"]
    if batches["calls"]:
        _line(
            console,
            f"coalesced: {batches['fills']} fills and cash moves in {batches['calls']} "
            f"apply_fills calls (mean {batches['mean_size']:.1f}, largest {batches['largest']})",
        )
    for name, stats in snapshot["pools"].items():
        _line(console, f"pool {name}: " + ", ".join(f"{k}={v}" for k, v in sorted(stats.items())))
