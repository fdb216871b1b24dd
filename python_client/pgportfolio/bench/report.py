"""What a run shows and writes: its tables on the console, its JSON, its latency chart.

A table is shown as a rich table when stdout is a terminal wide enough for it, and as
``key = value`` lines otherwise (a CI log, a pipe, an 80-column window): squeezed into too
few columns, rich would cut every cell to a letter or two.

The JSON is the documented output format (docs/performance.md): ``scenarios.<name>``
is ``dataclasses.asdict`` of a ScenarioResult, so its keys are results.py's fields.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import math
import os
import platform
import re
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from rich.cells import cell_len
from rich.console import Console
from rich.table import Table

from pgportfolio.bench.database import ServerInfo
from pgportfolio.bench.results import ScenarioResult
from pgportfolio.bench.settings import BenchSettings
from pgportfolio.bench.targets import TargetOutcome, format_quantity

# --- one table, two ways to show it -------------------------------------------------------


@dataclass
class Row:
    cells: tuple[str, ...]  # one per column; the first names the row
    error: str | None = None  # instead of the cells after the first


@dataclass
class Sheet:
    """A table's content, before it is known whether it fits the console."""

    title: str
    columns: tuple[str, ...]
    left: tuple[str, ...] = ()  # left-justified columns; the rest are numbers
    rows: list[Row] = field(default_factory=list)
    caption: str | None = None

    def table(self) -> Table:
        table = Table(title=self.title, title_justify="left", caption=self.caption)
        for column in self.columns:
            table.add_column(column, justify="left" if column in self.left else "right")
        for row in self.rows:
            if row.error is None:
                table.add_row(*row.cells)
            else:
                blanks = [""] * (len(self.columns) - 2)
                table.add_row(row.cells[0], f"[red]ERROR: {row.error}[/]", *blanks)
        return table

    def lines(self) -> list[str]:
        """The title, then per row its first cell and ``column = cell`` for the others."""
        lines = [self.title]
        for row in self.rows:
            lines.append(f"  {row.cells[0]}")
            if row.error is not None:
                lines.append(f"    [red]ERROR: {row.error}[/]")
                continue
            lines += [
                f"    {column} = {cell}"
                for column, cell in zip(self.columns[1:], row.cells[1:], strict=True)
                if cell
            ]
        if self.caption:
            lines.append(f"  {self.caption}")
        return lines


def show(console: Console, sheet: Sheet) -> None:
    """The rich table when the console is a terminal that fits it at its natural width,
    else ``key = value`` lines."""
    table = sheet.table()
    natural = console.measure(table, options=console.options.update_width(1_000_000)).maximum
    if console.is_terminal and natural <= console.width:
        console.print(table)
    else:
        for line in sheet.lines():
            console.print(line)


# --- the console --------------------------------------------------------------------------

VARIANT_COLUMNS = (
    "variant",
    "fills/s",
    "p50 ms",
    "p99 ms",
    "p99.9 ms",
    "latency of",
    "client CPU",
    "CPU µs/fill",
    "machine busy",
    "retries",
    "conflicts",
    "contention",
    "batch",
    "errors",
)
READ_COLUMNS = ("read", "rows", "samples", "p50 ms", "p99 ms", "mean ms")
TARGET_COLUMNS = ("scenario", "target", "measured", "result")
STATUS_STYLES = {"PASS": "green", "MISS": "yellow", "ERROR": "red"}


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None or math.isnan(value) else format(value, spec)


def _number(value: float) -> str:
    return f"{value:,}" if isinstance(value, int) else f"{value:,.2f}"


def variants_sheet(scenario: ScenarioResult) -> Sheet:
    sheet = Sheet(
        f"{scenario.name}: {scenario.description}",
        VARIANT_COLUMNS,
        left=("variant", "latency of"),
    )
    for v in scenario.variants.values():
        if v.error is not None:
            sheet.rows.append(Row((v.label,), error=v.error))
            continue
        errors = ", ".join(f"{k} {n}" for k, n in v.errors.items()) or "0"
        cells = (
            v.label,
            _fmt(v.fills_per_second, ",.0f"),
            _fmt(v.p50_ms, ".3f"),
            _fmt(v.p99_ms, ".3f"),
            _fmt(v.p999_ms, ".3f"),
            v.latency_of,
            _fmt(v.client_cpu, ".0%"),
            _fmt(v.cpu_us_per_fill, ".0f"),
            _fmt(v.machine_busy, ".0%"),
            _fmt(v.retries, "d"),
            _fmt(v.version_conflicts, "d"),
            _fmt(v.lock_contention_rate, ".1%"),
            _fmt(v.mean_batch, ".1f"),
            errors,
        )
        sheet.rows.append(Row(cells))
    if scenario.error:
        sheet.caption = f"[red]scenario failed: {scenario.error}[/]"
    return sheet


def reads_sheet(scenario: ScenarioResult) -> Sheet:
    sheet = Sheet(
        f"{scenario.name}: reads, one caller, nothing else running", READ_COLUMNS, left=("read",)
    )
    for r in scenario.reads.values():
        cells = (r.name, str(r.rows), str(r.samples))
        sheet.rows.append(Row(cells + tuple(f"{x:.2f}" for x in (r.p50_ms, r.p99_ms, r.mean_ms))))
    return sheet


def targets_sheet(outcomes: Sequence[TargetOutcome]) -> Sheet:
    sheet = Sheet("targets", TARGET_COLUMNS, left=TARGET_COLUMNS)
    for outcome in outcomes:
        t = outcome.target
        note = f" ({t.note})" if t.note else ""
        cells = (
            t.scenario,
            f"{t.name} {t.direction} {format_quantity(t.bound, t.unit)}",
            format_quantity(t.measured, t.unit) + note,
            f"[{STATUS_STYLES[outcome.status]}]{outcome.text}[/]",
        )
        sheet.rows.append(Row(cells))
    return sheet


def print_results(
    console: Console, results: dict[str, ScenarioResult], outcomes: Sequence[TargetOutcome]
) -> None:
    for scenario in results.values():
        show(console, variants_sheet(scenario))
        if scenario.reads:
            show(console, reads_sheet(scenario))
        extras = [f"{k} = {_fmt(v, '.2f')}" for k, v in scenario.ratios.items()]
        extras += [
            f"{name}: {key} = {_number(value)}"
            for name, v in scenario.variants.items()
            for key, value in v.extra.items()
            if isinstance(value, int | float)
        ]
        extras += [
            f"{k} = {_number(val)}"
            for k, val in scenario.extra.items()
            if isinstance(val, int | float)
        ]
        if extras:
            # One line while it fits; else one per line, so that no pair is split.
            line = "  " + "; ".join(extras)
            for text in [line] if cell_len(line) <= console.width else ["  " + e for e in extras]:
                console.print(text)
        for v in scenario.variants.values():
            if v.server_waits:
                waits = ", ".join(f"{event} {share:.0%}" for event, share in v.server_waits.items())
                console.print(
                    f"  server, {v.label}: {_fmt(v.active_backends, '.1f')} active; {waits}"
                )
    show(console, targets_sheet(outcomes))


# --- the JSON -----------------------------------------------------------------------------


def build_report(
    settings: BenchSettings,
    names: Sequence[str],
    *,
    started_at: str,
    load_before: Sequence[float],
    load_after: Sequence[float],
    server: ServerInfo,
    database: str,
    event_loop: str,
    results: dict[str, ScenarioResult],
    outcomes: Sequence[TargetOutcome],
) -> dict[str, Any]:
    sizes = settings.sizes
    return {
        "started_at": started_at,
        "machine": machine_info(),
        "load_average_before": list(load_before),
        "load_average_after": list(load_after),
        "server": asdict(server),
        "database": database,  # created for the run, dropped at its end
        "settings": {
            "scenarios": list(names),
            "traders": sizes.traders,
            "batch": settings.batch,
            "connections": settings.connections,
            "quick": settings.quick,
            "seed": settings.seed,
            "event_loop": event_loop,
            "sizes": asdict(sizes),
        },
        "scenarios": {name: asdict(result) for name, result in results.items()},
        "targets": [
            {**asdict(o.target), "status": o.status, "margin": o.margin, "result": o.text}
            for o in outcomes
        ],
    }


def write_json(report: dict[str, Any], path: Path) -> None:
    path.write_text(json.dumps(report, indent=2, default=str) + "\n")


def machine_info() -> dict[str, Any]:
    info: dict[str, Any] = {
        "nproc": os.cpu_count(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "psycopg": psycopg.__version__,
    }
    with contextlib.suppress(OSError):
        meminfo = Path("/proc/meminfo").read_text()
        match = re.search(r"^MemTotal:\s+(\d+) kB", meminfo, re.MULTILINE)
        if match:
            info["memory_mb"] = int(match.group(1)) // 1024
    with contextlib.suppress(OSError):
        cpuinfo = Path("/proc/cpuinfo").read_text()
        match = re.search(r"^model name\s*:\s*(.+)$", cpuinfo, re.MULTILINE)
        if match:
            info["cpu"] = match.group(1).strip()
    return info


def write_plot(report: dict[str, Any], path: Path) -> None:
    """Latency distributions (share of calls slower than x), one panel per scenario."""
    matplotlib = importlib.import_module("matplotlib")  # optional: pgportfolio[plot]
    matplotlib.use("Agg")
    plt: Any = importlib.import_module("matplotlib.pyplot")
    scenarios = [
        s
        for s in report["scenarios"].values()
        if any(v["histogram"] for v in s["variants"].values())
    ]
    if not scenarios:
        raise ValueError("no latency measured: nothing to plot")
    columns = 2 if len(scenarios) > 1 else 1
    rows = math.ceil(len(scenarios) / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(7 * columns, 4.2 * rows), squeeze=False)
    for ax in axes.flat[len(scenarios) :]:
        ax.set_visible(False)
    for ax, scenario in zip(axes.flat, scenarios, strict=False):
        for v in scenario["variants"].values():
            if not v["histogram"]:
                continue
            bounds = [b * 1000 for b, _ in v["histogram"]]
            counts = [n for _, n in v["histogram"]]
            total = sum(counts)
            slower, remaining = [], total
            for n in counts:
                remaining -= n
                slower.append(max(remaining / total, 0.5 / total))
            ax.step(bounds, slower, where="post", label=f"{v['label']} [{v['latency_of']}]")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("latency, ms")
        ax.set_ylabel("share slower than x")
        ax.set_title(f"{scenario['name']}: {scenario['description']}", fontsize=9)
        for q, style in ((0.01, ":"), (0.001, "--")):
            ax.axhline(q, color="grey", linestyle=style, linewidth=0.7)
        ax.legend(fontsize=6)
    machine = report["machine"]
    figure.suptitle(
        f"pgportfolio bench, {report['started_at']}: {machine.get('nproc')} CPUs, "
        f"load {report['load_average_before'][0]:.2f}; dotted p99, dashed p99.9",
        fontsize=10,
    )
    figure.tight_layout(rect=(0, 0, 1, 0.97))  # leave the top strip to the title
    figure.savefig(path, dpi=110)
    plt.close(figure)
