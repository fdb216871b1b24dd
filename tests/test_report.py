"""The monitor report: complete in a log at any width, and saying what each wait measures.
Also the layering: the monitor imports none of its readers (report, Prometheus)."""

from __future__ import annotations

import ast
import io
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from rich.console import Console

from pgportfolio.monitor import Monitor
from pgportfolio.prometheus import MonitorCollector
from pgportfolio.report import print_report

# Longer than any column a table squeezed into 40 or 80 columns could keep whole.
LONG_NAMES = (
    "create_portfolio",
    "update_market_price",
    "verify_portfolio",
    "an_operation_name_longer_than_forty_columns_of_console",
)


def _busy_monitor() -> Monitor:
    monitor = Monitor()
    for name in LONG_NAMES:
        with monitor.operation(name):
            pass
    with pytest.raises(KeyError), monitor.operation("apply_fill"):
        raise KeyError("x")
    monitor.record_lock_wait("coalescer", 0.004, contended=True)
    monitor.record_lock_wait("coalescer", 0.0, contended=True)
    monitor.record_lock_wait("coalescer", 0.0, contended=False)
    monitor.record_lock_wait("coalescer", 0.0, contended=True)
    monitor.record_lock_wait("portfolio", 0.0, contended=False)
    monitor.record_lock_wait("a_lock_of_the_callers_own_with_a_long_name", 0.0, contended=False)
    monitor.record_retry("lock_timeout")
    monitor.record_batch(3)
    return monitor


def _render(monitor: Monitor, *, width: int, terminal: bool) -> str:
    out = io.StringIO()
    console = Console(file=out, width=width, force_terminal=terminal, color_system=None)
    print_report(monitor, console)
    return out.getvalue()


@pytest.mark.parametrize("width", [40, 80])
def test_report_off_a_terminal_has_every_name_complete(width: int) -> None:
    text = _render(_busy_monitor(), width=width, terminal=False)
    for name in (*LONG_NAMES, "apply_fill"):
        assert f"  {name}: calls=" in text, text
    assert "  apply_fill: error=KeyError count=1" in text, text
    assert "  a_lock_of_the_callers_own_with_a_long_name: acquisitions=1" in text, text
    assert "…" not in text, text  # nothing was cut short


@pytest.mark.parametrize("width", [40, 80])
def test_report_on_a_terminal_too_narrow_for_a_table_falls_back_to_lines(width: int) -> None:
    text = _render(_busy_monitor(), width=width, terminal=True)
    for name in LONG_NAMES:
        assert f"  {name}: calls=" in text, text
    assert "…" not in text, text


def test_report_on_a_wide_terminal_is_a_table_with_whole_names() -> None:
    text = _render(_busy_monitor(), width=250, terminal=True)
    assert "┃ operation" in text, text  # a rich table, not the plain lines
    for name in LONG_NAMES:
        assert name in text
    assert "…" not in text, text


def test_headline_names_the_coalescer_queue_not_lock_contention() -> None:
    text = _render(_busy_monitor(), width=80, terminal=False)
    # 3 of the 4 coalesced calls waited for their turn.
    assert (
        "coalescer queue: 75.00% of 4 coalesced calls (fills and cash moves) waited for a turn"
        in text
    ), text
    assert "per-portfolio in-process lock: 0.00% of 1 acquisitions waited" in text, text
    assert "PostgreSQL lock waits: not measured by the client" in text, text
    assert "calls retried after lock_timeout (55P03): 1" in text, text
    assert "lock contention" not in text, text


def _imports(path: str, *, runtime_only: bool = False) -> set[str]:
    """Modules a source file imports; a lazy import inside a function counts too, one
    under ``if TYPE_CHECKING:`` only when ``runtime_only`` is false."""
    tree = ast.parse(Path(path).read_text(encoding="utf-8"))
    skipped: set[int] = set()
    if runtime_only:
        for node in ast.walk(tree):
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                skipped.update(id(n) for n in ast.walk(node))
    imported = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module)
            imported.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
    return imported


def test_no_import_circle_between_the_monitor_and_its_readers() -> None:
    """The monitor never imports the exporter; it reaches the report only for the seed's
    ``monitor.print_report()``, and the report imports the monitor for typing only."""
    import pgportfolio.report

    imported = _imports(pgportfolio.monitor.__file__)
    # "from pgportfolio import prometheus" is recorded as pgportfolio.prometheus too.
    assert {n for n in imported if n.startswith("pgportfolio.prom")} == set(), imported
    report_imports = _imports(pgportfolio.report.__file__, runtime_only=True)
    assert {n for n in report_imports if n.startswith("pgportfolio.monitor")} == set()


def test_using_the_monitor_loads_neither_report_nor_prometheus() -> None:
    """In a fresh interpreter: record, snapshot and copy histograms; neither reader loads."""
    code = textwrap.dedent(
        """
        import sys
        from pgportfolio.monitor import Monitor, get_global_monitor
        m = Monitor()
        with m.operation("x"):
            pass
        m.record_lock_wait("coalescer", 0.001, contended=True)
        m.snapshot()
        m.histograms()
        get_global_monitor().snapshot()
        readers = ("pgportfolio.report", "pgportfolio.prometheus")
        print(sorted(n for n in sys.modules if n in readers))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


class _OnlyPublic:
    """A monitor as the exporter may see it: its public readers and nothing else."""

    def __init__(self, monitor: Monitor) -> None:
        self.snapshot = monitor.snapshot
        self.histograms = monitor.histograms


def test_prometheus_exporter_reads_only_the_monitors_public_accessors() -> None:
    monitor = _busy_monitor()
    registry = CollectorRegistry()
    collector: Any = MonitorCollector(_OnlyPublic(monitor))  # type: ignore[arg-type]
    registry.register(collector)
    text = generate_latest(registry).decode()
    assert 'pgportfolio_operations_total{operation="create_portfolio",outcome="success"} 1.0' in (
        text
    )
    assert 'pgportfolio_lock_wait_seconds_count{lock="coalescer"} 4.0' in text
    assert 'pgportfolio_lock_acquisitions_total{contended="true",lock="coalescer"} 3.0' in text


def test_histograms_are_copies() -> None:
    monitor = _busy_monitor()
    copies = monitor.histograms()
    with monitor.operation("create_portfolio"):
        pass
    assert copies.operations["create_portfolio"].count == 1
    assert monitor.histograms().operations["create_portfolio"].count == 2
    assert copies.locks["coalescer"].count == 4
