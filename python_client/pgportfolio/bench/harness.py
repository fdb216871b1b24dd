"""Bench: one run's tools for measuring a variant, over the database made for the run.

A scenario (scenarios.py) sets up its portfolios, builds Variants from these tools and
measures them one after the other or interleaved; it never times anything itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from pgportfolio import AsyncPortfolioClient
from pgportfolio.bench.database import Ledger, sample_server_waits
from pgportfolio.bench.fills import FillPlan
from pgportfolio.bench.measure import (
    MachineClock,
    Measurement,
    SideTask,
    TickStats,
    Window,
    measure_client,
    run_alternating,
    tick_sender,
)
from pgportfolio.bench.pgbench import (
    PgbenchFailed,
    apply_fill_script,
    apply_fills_script,
    run_pgbench,
)
from pgportfolio.bench.results import ScenarioResult, VariantResult, describe_error
from pgportfolio.bench.settings import BenchSettings
from pgportfolio.monitor import Monitor


@dataclass(frozen=True)
class Variant:
    """One way of applying the scenario's fills, and how to measure it once."""

    name: str
    label: str
    latency_of: str  # what one latency sample is
    measure: Callable[[], Awaitable[Measurement]]
    client_side: bool = True  # pgbench has no Monitor, and its CPU is not ours

    def result(self, m: Measurement) -> VariantResult:
        return VariantResult.from_measurement(
            self.name, self.label, self.latency_of, m, client_side=self.client_side
        )

    def failure(self, error: BaseException) -> VariantResult:
        return VariantResult.failed(self.name, self.label, self.latency_of, error)


class Bench:
    """One run: the settings, the database, and the tools a scenario measures with."""

    def __init__(
        self,
        settings: BenchSettings,
        conninfo: str,
        console: Console,
        ledger: Ledger,
        pgbench: Path | None,
    ) -> None:
        self.settings = settings
        self.sizes = settings.sizes
        self.conninfo = conninfo
        self.console = console
        self.ledger = ledger
        self.pgbench = pgbench
        self.seed = settings.seed

    def next_seed(self) -> int:
        self.seed += 1
        return self.seed

    # -- measuring

    @contextlib.asynccontextmanager
    async def client(
        self,
        *,
        coalesce: bool = True,
        monitor: Monitor | None = None,
        connections: int | None = None,
    ) -> AsyncIterator[AsyncPortfolioClient]:
        size = connections or self.settings.connections
        # The pool starts full, so no measured window pays for connecting.
        async with AsyncPortfolioClient(
            self.conninfo,
            min_size=size,
            max_size=size,
            coalesce=coalesce,
            max_batch=self.settings.batch,
            monitor=monitor or Monitor(),
            name=f"bench-{secrets.token_hex(3)}",
        ) as client:
            yield client

    async def client_window(
        self,
        plan: FillPlan,
        *,
        coalesce: bool = True,
        traders: int | None = None,
        duration: float | None = None,
        monitor: Monitor | None = None,
        ticks: TickStats | None = None,
    ) -> Measurement:
        waits = Measurement()
        async with self.client(coalesce=coalesce, monitor=monitor) as client:
            side = None if ticks is None else self.ticker(client, plan, ticks)
            async with sample_server_waits(self.conninfo, waits):
                m = await measure_client(
                    client,
                    plan,
                    traders=traders or self.sizes.traders,
                    warmup=self.sizes.warmup,
                    duration=duration or self.sizes.duration,
                    seed=self.next_seed(),
                    side_task=side,
                )
        m.server_waits, m.server_samples = waits.server_waits, waits.server_samples
        return m

    def ticker(self, client: AsyncPortfolioClient, plan: FillPlan, stats: TickStats) -> SideTask:
        return tick_sender(
            client.update_market_prices,
            plan.symbols,
            per_second=self.sizes.ticks_per_second,
            chunk=self.sizes.tick_chunk,
            seed=self.next_seed(),
            stats=stats,
        )

    async def pgbench_window(
        self,
        plan: FillPlan,
        *,
        batch: int,
        clients: int | None = None,
        duration: float | None = None,
        ticks: TickStats | None = None,
    ) -> Measurement:
        """pgbench on the plan's portfolios: apply_fill per transaction (batch 1) or
        apply_fills with ``batch`` fills per transaction."""
        if self.pgbench is None:
            raise PgbenchFailed("pgbench not found (pg_config --bindir, /usr/lib/postgresql)")
        seconds = max(1, round(duration or self.sizes.duration))
        before = await self.ledger.version_sum(plan)
        job = run_pgbench(
            self.pgbench,
            self.conninfo,
            apply_fill_script() if batch == 1 else apply_fills_script(batch),
            clients=clients or self.settings.connections,
            seconds=seconds,
            protocol="prepared" if batch == 1 else "simple",
            variables=plan.pgbench_variables(),
        )
        waits = Measurement()
        start = MachineClock()
        async with sample_server_waits(self.conninfo, waits):
            if ticks is None:
                run = await job
            else:
                async with self.client(connections=2) as ticker_client:
                    now = time.perf_counter()
                    sender = self.ticker(ticker_client, plan, ticks)
                    side = asyncio.create_task(sender(Window(now, now + seconds)))
                    try:
                        run = await job
                    finally:
                        await side
        end = MachineClock()
        applied = await self.ledger.version_sum(plan) - before
        m = Measurement(
            fills=applied,
            seconds=run.transactions / run.tps if run.tps > 0 else run.wall_seconds,
            exact=run.latencies,
            transactions=run.transactions,
            server_waits=waits.server_waits,
            server_samples=waits.server_samples,
        )
        for latency in run.latencies:
            m.latency.record(latency)
        m.add_window(start, end)
        # pgbench's CPU share, not ours: this process only waited (or sent ticks).
        m.cpu_seconds = run.cpu_seconds / run.wall_seconds * m.seconds if run.wall_seconds else 0
        refused = run.transactions * batch - applied
        if refused > 0:
            m.errors["refused elements"] = refused
        return m

    # -- variants

    def client_variant(self, name: str, label: str, plan: FillPlan, **options: Any) -> Variant:
        return Variant(name, label, "fill call", lambda: self.client_window(plan, **options))

    def pgbench_variant(
        self,
        name: str,
        plan: FillPlan,
        *,
        batch: int,
        clients: int | None = None,
        suffix: str = "",
        **options: Any,
    ) -> Variant:
        c = clients or self.settings.connections
        if batch == 1:
            label, latency_of = f"(c) pgbench apply_fill, -c {c}", "transaction"
        else:
            label, latency_of = f"(d) pgbench apply_fills x{batch}, -c {c}", f"txn of {batch}"
        return Variant(
            name,
            label + suffix,
            latency_of,
            lambda: self.pgbench_window(plan, batch=batch, clients=clients, **options),
            client_side=False,
        )

    async def measure_each(self, scenario: ScenarioResult, variants: Sequence[Variant]) -> None:
        """One after the other; a failed variant shows as an error, the others still run."""
        for variant in variants:
            self.console.print(f"  {scenario.name}: {variant.label} ...")
            try:
                m = await variant.measure()
            except Exception as exc:
                result = variant.failure(exc)
                self.console.print(f"  [red]{scenario.name}: {variant.label}: {result.error}[/]")
            else:
                result = variant.result(m)
            scenario.variants[variant.name] = result

    async def measure_alternating(
        self, scenario: ScenarioResult, variants: Sequence[Variant]
    ) -> None:
        """Interleaved over ``rounds`` (A B A B), so that drift in the machine's load hits
        the variants being compared alike; a failure fails the group."""
        for variant in variants:
            self.console.print(f"  {scenario.name}: {variant.label} ...")
        try:
            merged = await run_alternating(self.sizes.rounds, [v.measure for v in variants])
        except Exception as exc:
            for variant in variants:
                scenario.variants[variant.name] = variant.failure(exc)
            self.console.print(f"  [red]{scenario.name}: {describe_error(exc)}[/]")
            return
        for variant, m in zip(variants, merged, strict=True):
            scenario.variants[variant.name] = variant.result(m)
