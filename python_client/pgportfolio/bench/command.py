"""``pgportfolio bench`` itself: a database for the run, the scenarios, the report, exit status."""

from __future__ import annotations

import importlib.util
import os
import time
from collections.abc import Sequence

import psycopg
from psycopg.conninfo import conninfo_to_dict
from rich.console import Console

from pgportfolio.bench.database import Ledger, ServerInfo, bench_database, server_info
from pgportfolio.bench.harness import Bench
from pgportfolio.bench.pgbench import find_pgbench
from pgportfolio.bench.report import build_report, print_results, write_json, write_plot
from pgportfolio.bench.results import ScenarioResult
from pgportfolio.bench.scenarios import build_targets, default_scenarios, run_scenarios
from pgportfolio.bench.settings import BenchSettings
from pgportfolio.bench.targets import TargetOutcome, evaluate
from pgportfolio.eventloop import LoopUnavailable, describe_loop, resolve_loop, run_on

# A target missed (or not measured) under --strict: distinct from 1, where something broke.
EXIT_TARGET_MISSED = 3


def run_bench(settings: BenchSettings, console: Console | None = None) -> int:
    """The command. 0: every variant was measured (whatever the targets say, unless
    strict); 1: some variant or scenario failed; 2: it could not start; 3: strict, and a
    target was missed or not measured."""
    console = console or Console()
    if settings.plot_path is not None and importlib.util.find_spec("matplotlib") is None:
        console.print(
            "[red]--plot needs matplotlib, which is not installed: "
            "pip install 'pgportfolio[plot]' (or leave out --plot)[/]"
        )
        return 2
    try:
        loop = resolve_loop(settings.loop)
    except LoopUnavailable as exc:
        console.print(f"[red]{exc} (or leave out --loop)[/]")
        return 2
    names = settings.scenarios or default_scenarios(settings.quick)
    sizes = settings.sizes
    started_at = time.strftime("%Y-%m-%d %H:%M:%S %z")
    load_before = os.getloadavg()
    console.print(
        f"pgportfolio bench: {', '.join(names)}; {sizes.duration:g} s per measurement, "
        f"{sizes.traders} traders, batch {settings.batch}, {settings.connections} connections, "
        f"event loop {describe_loop(loop)}; "
        f"load average {load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f}"
    )
    with bench_database(settings.dsn, console, settings.server) as (conninfo, kind):
        database = str(conninfo_to_dict(conninfo).get("dbname"))
        results, server = run_on(loop, _run_async(settings, conninfo, kind, names, console))
    load_after = os.getloadavg()
    outcomes = [evaluate(t) for t in build_targets(results, sizes)]
    print_results(console, results, outcomes)
    console.print(
        f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f} "
        f"({os.cpu_count()} CPUs)"
    )
    report = build_report(
        settings,
        names,
        started_at=started_at,
        load_before=load_before,
        load_after=load_after,
        server=server,
        database=database,
        event_loop=describe_loop(loop),
        results=results,
        outcomes=outcomes,
    )
    if settings.json_path is not None:
        write_json(report, settings.json_path)
        console.print(f"wrote {settings.json_path}")
    if settings.plot_path is not None:
        write_plot(report, settings.plot_path)
        console.print(f"wrote {settings.plot_path}")
    status = exit_status(results, outcomes, strict=settings.strict)
    if status == EXIT_TARGET_MISSED:
        missed = sum(o.status != "PASS" for o in outcomes)
        console.print(f"[red]--strict: {missed} of {len(outcomes)} targets not met[/]")
    return status


async def _run_async(
    settings: BenchSettings, conninfo: str, kind: str, names: Sequence[str], console: Console
) -> tuple[dict[str, ScenarioResult], ServerInfo]:
    server = await server_info(conninfo, kind)
    console.print(f"server: {kind}, {server.version.split(',')[0]}")
    async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as conn:
        bench = Bench(settings, conninfo, console, Ledger(conn), find_pgbench())
        if bench.pgbench is None:
            console.print("[yellow]pgbench not found: the pgbench variants will show errors[/]")
        results = await run_scenarios(bench, names)
    return results, server


def exit_status(
    results: dict[str, ScenarioResult], outcomes: Sequence[TargetOutcome], *, strict: bool
) -> int:
    """1 when a variant or scenario failed; else, with strict, 3 when a target is not
    PASS (MISS, or ERROR: not measured); else 0."""
    failed = any(r.error or any(v.error for v in r.variants.values()) for r in results.values())
    if failed:
        return 1
    if strict and any(o.status != "PASS" for o in outcomes):
        return EXIT_TARGET_MISSED
    return 0
