"""The scenarios, registered in one place: each one's description, body and targets.

Adding a scenario is one ``@scenario(...)`` function in this file: its name becomes valid
for ``--scenarios``, it runs in registration order, and its targets are checked.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import random
import time
from collections import Counter
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import cast

import psycopg

from pgportfolio import AsyncPortfolioClient, ChangeEvent
from pgportfolio.bench.fills import FillPlan, symbol_names
from pgportfolio.bench.harness import Bench, Variant
from pgportfolio.bench.measure import (
    MachineClock,
    Measurement,
    TickStats,
    Window,
    percentile,
    ratio,
    rss_mb,
    sleep_until,
    time_reads,
)
from pgportfolio.bench.pgbench import PgbenchFailed, apply_fill_script, run_pgbench
from pgportfolio.bench.results import ReadResult, ScenarioResult, describe_error
from pgportfolio.bench.settings import Sizes
from pgportfolio.bench.targets import (
    Target,
    TargetSpec,
    extra_value,
    ratio_value,
    read_p50,
    variant_value,
)
from pgportfolio.errors import PortfolioError
from pgportfolio.monitor import Monitor

# --- the registry -------------------------------------------------------------------------

Run = Callable[[Bench, ScenarioResult], Awaitable[None]]


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str  # with {fields} from the run's Sizes: see describe
    run: Run
    targets: tuple[TargetSpec, ...] = ()

    def describe(self, sizes: Sizes) -> str:
        return self.description.format(
            symbols=f"{sizes.symbols:,}",
            traders=sizes.traders,
            portfolios=f"{sizes.spread_portfolios:,}",
            ticks_per_second=f"{sizes.ticks_per_second:,}",
            wide=f"{sizes.wide_positions:,}",
            narrow=sizes.narrow_positions,
            soak_fills=f"{sizes.soak_fills:,}",
            import_rows=f"{sizes.import_rows:,}",
        )


# Name -> scenario, in canonical order: the order of the registrations below.
REGISTRY: dict[str, Scenario] = {}


def scenario(
    name: str, description: str, *, targets: Sequence[TargetSpec] = ()
) -> Callable[[Run], Run]:
    def register(run: Run) -> Run:
        if name in REGISTRY:
            raise ValueError(f"scenario {name} registered twice")
        REGISTRY[name] = Scenario(name, description, run, tuple(targets))
        return run

    return register


def default_scenarios(quick: bool) -> tuple[str, ...]:
    """Everything in a full run; a quick run leaves the soak out unless it is asked for."""
    return tuple(s for s in REGISTRY if not (quick and s == "soak"))


def parse_scenarios(text: str | None) -> tuple[str, ...]:
    """``hot,spread`` -> ("hot", "spread") in canonical order; ``all`` or empty: ()."""
    if not text or text.strip() == "all":
        return ()
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = sorted(set(names) - set(REGISTRY))
    if unknown:
        raise ValueError(f"unknown scenario(s): {', '.join(unknown)}; known: {', '.join(REGISTRY)}")
    return tuple(s for s in REGISTRY if s in names)


async def run_scenarios(bench: Bench, names: Sequence[str]) -> dict[str, ScenarioResult]:
    """Each named scenario in turn; a failed one shows as an error, the others still run."""
    results: dict[str, ScenarioResult] = {}
    for name in names:
        entry = REGISTRY[name]
        result = ScenarioResult(name, entry.describe(bench.sizes))
        results[name] = result
        bench.console.print(f"[bold]{name}[/]: {result.description}")
        try:
            await entry.run(bench, result)
        except Exception as exc:
            result.error = describe_error(exc)
            bench.console.print(f"  [red]{name} failed: {result.error}[/]")
    return results


def build_targets(results: dict[str, ScenarioResult], sizes: Sizes) -> list[Target]:
    """The targets of the scenarios that ran, in canonical order."""
    return [
        spec.target(name, results[name])
        for name, entry in REGISTRY.items()
        if name in results
        for spec in entry.targets
    ]


# --- what the scenarios share -------------------------------------------------------------

LABEL_CLIENT = "(a) client as shipped (coalescing)"
LABEL_PER_CALL = "(b) client, one apply_fill per call"

WIDE_OPEN_QUANTITY = 10_000  # far above a +-100 random walk: wide positions stay open
WIDE_MARK = Decimal("101.25")  # the mark of every wide position before its reads
NARROW_OPEN_QUANTITY = 1_000_000


def _throughput_targets(*, per_call: bool) -> tuple[TargetSpec, ...]:
    """hot and spread: (a) against issue 10's musts (goals: 50,000 fills/s, p99 5 ms),
    against (b) (hot only) and against (d)."""
    return (
        TargetSpec(
            "(a) fills/s", ">=", 25_000, "fills/s", variant_value("client", "fills_per_second")
        ),
        TargetSpec("(a) p99 per fill", "<=", 10.0, "ms", variant_value("client", "p99_ms")),
        *(
            [TargetSpec("(a) / (b) fills/s", ">=", 10.0, "x", ratio_value("a_over_b"))]
            if per_call
            else []
        ),
        TargetSpec("(a) / (d) fills/s", ">=", 0.8, "x", ratio_value("a_over_d")),
    )


async def _four_variants(bench: Bench, result: ScenarioResult, plan: FillPlan) -> None:
    """(a), (b), (c) and (d) one after the other, and (a) over each of the others."""
    await bench.measure_each(
        result,
        [
            bench.client_variant("client", LABEL_CLIENT, plan),
            bench.client_variant("client_per_call", LABEL_PER_CALL, plan, coalesce=False),
            bench.pgbench_variant("pgbench_apply_fill", plan, batch=1),
            bench.pgbench_variant("pgbench_apply_fills", plan, batch=bench.settings.batch),
        ],
    )
    v = result.variants
    a = v["client"].fills_per_second
    result.ratios["a_over_b"] = ratio(a, v["client_per_call"].fills_per_second)
    result.ratios["a_over_c"] = ratio(a, v["pgbench_apply_fill"].fills_per_second)
    result.ratios["a_over_d"] = ratio(a, v["pgbench_apply_fills"].fills_per_second)


# --- the scenarios, in canonical order ----------------------------------------------------


@scenario(
    "hot",
    "1 portfolio, {symbols} symbols, {traders} traders",
    targets=_throughput_targets(per_call=True),
)
async def hot(bench: Bench, result: ScenarioResult) -> None:
    ids = await bench.ledger.create_portfolios(1, "hot")
    await _four_variants(bench, result, FillPlan.of(ids, bench.sizes.symbols))


@scenario(
    "spread",
    "{portfolios} portfolios, {symbols} symbols, {traders} traders",
    targets=_throughput_targets(per_call=False),
)
async def spread(bench: Bench, result: ScenarioResult) -> None:
    ids = await bench.ledger.create_portfolios(bench.sizes.spread_portfolios, "spread")
    await _four_variants(bench, result, FillPlan.of(ids, bench.sizes.symbols))


@scenario(
    "ticks",
    "hot, plus {ticks_per_second} marks/s through update_market_prices",
    targets=[
        TargetSpec(
            "(a) fills/s with ticks / without",
            ">=",
            0.9,
            "x",
            ratio_value("client_ticks_over_client"),
        )
    ],
)
async def ticks(bench: Bench, result: ScenarioResult) -> None:
    s = bench.sizes
    plan = FillPlan.of(await bench.ledger.create_portfolios(1, "ticks"), s.symbols)
    half = s.duration / s.rounds
    client_ticks, pgbench_ticks = TickStats(), TickStats()
    batch = bench.settings.batch
    await bench.measure_alternating(
        result,
        [
            bench.client_variant("client", LABEL_CLIENT, plan, duration=half),
            bench.client_variant(
                "client_ticks",
                LABEL_CLIENT + " + ticks",
                plan,
                duration=half,
                ticks=client_ticks,
            ),
        ],
    )
    await bench.measure_alternating(
        result,
        [
            bench.pgbench_variant("pgbench_apply_fills", plan, batch=batch, duration=half),
            bench.pgbench_variant(
                "pgbench_apply_fills_ticks",
                plan,
                batch=batch,
                duration=half,
                ticks=pgbench_ticks,
                suffix=" + ticks",
            ),
        ],
    )
    v = result.variants
    result.ratios["client_ticks_over_client"] = ratio(
        v["client_ticks"].fills_per_second, v["client"].fills_per_second
    )
    result.ratios["pgbench_ticks_over_pgbench"] = ratio(
        v["pgbench_apply_fills_ticks"].fills_per_second,
        v["pgbench_apply_fills"].fills_per_second,
    )
    for name, stats in (
        ("client_ticks", client_ticks),
        ("pgbench_apply_fills_ticks", pgbench_ticks),
    ):
        v[name].extra["ticks_per_second"] = stats.ticks / stats.seconds if stats.seconds else 0
        v[name].extra["tick_call_p99_ms"] = stats.latency.quantile(0.99) * 1000


@scenario(
    "wide",
    "{wide} open positions vs {narrow}, {traders} traders;"
    " reads timed alone, all marked, positions analyzed",
    targets=[
        TargetSpec(
            "(a) p99 per fill, wide / narrow", "<=", 1.2, "x", ratio_value("p99_wide_over_narrow")
        ),
        TargetSpec("get_portfolio (client), p50", "<=", 20.0, "ms", read_p50("get_portfolio_wide")),
        TargetSpec(
            "portfolio_summary row, p50", "<=", 10.0, "ms", read_p50("portfolio_summary_wide")
        ),
    ],
)
async def wide(bench: Bench, result: ScenarioResult) -> None:
    s = bench.sizes
    wide_id, narrow_id = await bench.ledger.create_portfolios(2, "wide")
    symbols = symbol_names(s.wide_positions)
    started = time.perf_counter()
    await bench.ledger.open_positions(wide_id, symbols, WIDE_OPEN_QUANTITY)
    result.extra["setup_seconds"] = time.perf_counter() - started
    await bench.ledger.open_positions(
        narrow_id, symbols[: s.narrow_positions], NARROW_OPEN_QUANTITY
    )
    half = s.duration / s.rounds
    await bench.measure_alternating(
        result,
        [
            bench.client_variant(
                "client_wide",
                f"{LABEL_CLIENT}, {s.wide_positions:,} positions",
                FillPlan.of([wide_id], s.wide_positions),
                duration=half,
            ),
            bench.client_variant(
                "client_narrow",
                f"{LABEL_CLIENT}, {s.narrow_positions} positions",
                FillPlan.of([narrow_id], s.narrow_positions),
                duration=half,
            ),
        ],
    )
    v = result.variants
    result.ratios["p99_wide_over_narrow"] = ratio(
        v["client_wide"].p99_ms, v["client_narrow"].p99_ms
    )
    bench.console.print(f"  {result.name}: reads ...")
    async with bench.client(connections=1) as client:
        # Every position marked before the reads, as a full run's ticks scenario leaves
        # them, so that the reads join every mark whichever scenarios ran before.
        for start in range(0, len(symbols), s.tick_chunk):
            chunk = symbols[start : start + s.tick_chunk]
            await client.update_market_prices({symbol: WIDE_MARK for symbol in chunk})
        # The summary's plan follows the portfolio's own count of positions
        # (portfolio_valuation), not the statistics; it is read with the statistics from
        # before the scenario's 10,000 new positions too (autovacuum comes round within a
        # minute), to show it. The targets read after ANALYZE.
        summary = "SELECT * FROM pgportfolio.portfolio_summary WHERE portfolio_id = %s"
        rows, durations = await time_reads(_sql_read(client, summary, wide_id), s.read_samples)
        result.reads["portfolio_summary_wide_before_analyze"] = ReadResult.from_durations(
            "portfolio_summary_wide_before_analyze", rows, durations
        )
        await bench.ledger.analyze_positions()
        for pid, tag in ((wide_id, "wide"), (narrow_id, "narrow")):
            reads = {
                f"get_portfolio_{tag}": _snapshot_read(client, pid),
                f"get_portfolio_sql_{tag}": _sql_read(
                    client, "SELECT * FROM pgportfolio.get_portfolio(%s)", pid
                ),
                # What the client's get_portfolio sends: one row, positions as arrays.
                f"portfolio_snapshot_sql_{tag}": _sql_read(
                    client, "SELECT * FROM pgportfolio.portfolio_snapshot(%s)", pid
                ),
                f"portfolio_summary_{tag}": _sql_read(client, summary, pid),
            }
            for name, read in reads.items():
                rows, durations = await time_reads(read, s.read_samples)
                result.reads[name] = ReadResult.from_durations(name, rows, durations)


def _snapshot_read(client: AsyncPortfolioClient, portfolio_id: int) -> Callable[[], Awaitable[int]]:
    async def read() -> int:
        return len((await client.get_portfolio(portfolio_id)).positions)

    return read


def _sql_read(
    client: AsyncPortfolioClient, query: str, portfolio_id: int
) -> Callable[[], Awaitable[int]]:
    async def read() -> int:
        async with client.pool.connection() as conn:
            cur = await conn.execute(query, [portfolio_id])
            return len(await cur.fetchall())

    return read


@scenario(
    "uncontended",
    "one caller, one portfolio",
    targets=[
        TargetSpec(
            "(a) p50 over pgbench apply_fill -c 1 p50",
            "<=",
            0.25,
            "ms",
            extra_value("p50_over_floor_ms"),
        ),
        TargetSpec("(a) p99 per fill", "<=", 2.0, "ms", variant_value("client", "p99_ms")),
        TargetSpec(
            "mean latency, coalescing on / off", "<=", 1.10, "x", ratio_value("mean_on_over_off")
        ),
    ],
)
async def uncontended(bench: Bench, result: ScenarioResult) -> None:
    ids = await bench.ledger.create_portfolios(1, "uncontended")
    plan = FillPlan.of(ids, bench.sizes.symbols)
    half = bench.sizes.duration / bench.sizes.rounds
    await bench.measure_alternating(
        result,
        [
            bench.client_variant(
                "client", LABEL_CLIENT + ", 1 caller", plan, traders=1, duration=half
            ),
            bench.client_variant(
                "client_per_call",
                LABEL_PER_CALL + ", 1 caller",
                plan,
                coalesce=False,
                traders=1,
                duration=half,
            ),
        ],
    )
    await bench.measure_each(
        result, [bench.pgbench_variant("pgbench_apply_fill", plan, batch=1, clients=1)]
    )
    v = result.variants
    result.ratios["mean_on_over_off"] = ratio(v["client"].mean_ms, v["client_per_call"].mean_ms)
    result.ratios["p50_on_over_off"] = ratio(v["client"].p50_ms, v["client_per_call"].p50_ms)
    client_p50, floor_p50 = v["client"].p50_ms, v["pgbench_apply_fill"].p50_ms
    if client_p50 is not None and floor_p50 is not None:
        result.extra["p50_over_floor_ms"] = client_p50 - floor_p50


# The server's cost per fill inside the portfolio's lock: apply_fills_arrays called in a
# loop on the server itself (no client, no network), each call its own transaction, only
# the call timed. On one portfolio the whole call runs with its row locked, so this bounds
# a hot portfolio's throughput (at 30 µs, 50 fills take 1.5 ms plus their commit).
INLOCK_BATCH = 50
INLOCK_LOOP = """
DO $loop$
DECLARE
    symbols text[];
    quantities numeric[];
    prices numeric[];
    request_ids text[];
    started timestamptz;
BEGIN
    FOR n IN 1 .. %(calls)s LOOP
        SELECT
            array_agg('S' || (1 + floor(random() * %(symbols)s))::int),
            array_agg(((1 + floor(random() * 100)) * sign(random() - 0.5))::numeric),
            array_agg(round((10 + random() * 190)::numeric, 2)),
            array_agg(gen_random_uuid()::text)
        INTO symbols, quantities, prices, request_ids
        FROM generate_series(1, %(batch)s);
        started := clock_timestamp();
        PERFORM count(*) FROM pgportfolio.apply_fills_arrays(
            array_fill(%(pid)s::bigint, ARRAY[%(batch)s]), symbols, quantities, prices,
            NULL, request_ids
        ) WHERE sqlstate IS NULL;
        INSERT INTO pg_temp.inlock_calls VALUES (extract(epoch FROM clock_timestamp() - started));
        COMMIT;
    END LOOP;
END
$loop$
"""


async def _inlock_window(bench: Bench, pid: int, calls: int) -> Measurement:
    """``calls`` server-side calls of INLOCK_BATCH fills; every call's time, exactly."""
    async with await psycopg.AsyncConnection.connect(bench.conninfo, autocommit=True) as conn:
        # Commits are not what is measured: they need not wait for the disk.
        await conn.execute("SET synchronous_commit = off")
        await conn.execute("CREATE TEMPORARY TABLE inlock_calls (seconds float8)")
        sql_loop = INLOCK_LOOP % {
            "calls": calls,
            "symbols": bench.sizes.symbols,
            "batch": INLOCK_BATCH,
            "pid": pid,
        }
        await conn.execute(sql_loop.encode())
        cur = await conn.execute("SELECT seconds FROM inlock_calls")
        seconds = [float(r[0]) for r in await cur.fetchall()]
    # The first call pays for planning and cold caches.
    timed = seconds[1:] or seconds
    return Measurement(
        fills=len(timed) * INLOCK_BATCH, seconds=sum(timed), exact=timed, transactions=len(timed)
    )


@scenario(
    "inlock",
    f"apply_fills_arrays of {INLOCK_BATCH} fills on 1 portfolio, looped on the server",
    targets=[
        TargetSpec("µs per fill inside the lock", "<=", 30.0, "µs", extra_value("us_per_fill"))
    ],
)
async def inlock(bench: Bench, result: ScenarioResult) -> None:
    ids = await bench.ledger.create_portfolios(1, "inlock")
    calls = 30 if bench.settings.quick else 400
    label = f"server loop, apply_fills_arrays x{INLOCK_BATCH}"
    variant = Variant(
        "server_loop",
        label,
        f"call of {INLOCK_BATCH}",
        lambda: _inlock_window(bench, ids[0], calls),
        client_side=False,
    )
    await bench.measure_each(result, [variant])
    v = result.variants["server_loop"]
    if v.error is None and v.fills:
        result.extra["us_per_fill"] = v.seconds / v.fills * 1e6


PER_CALL_PORTFOLIOS = 50
PER_CALL_CLIENTS = 32


@scenario(
    "percall",
    f"pgbench apply_fill, one per transaction, {PER_CALL_PORTFOLIOS} portfolios,"
    f" {PER_CALL_CLIENTS} clients",
    targets=[
        TargetSpec(
            "(c) transactions/s",
            ">=",
            4_000,
            "tx/s",
            variant_value("pgbench_apply_fill", "fills_per_second"),
        )
    ],
)
async def percall(bench: Bench, result: ScenarioResult) -> None:
    ids = await bench.ledger.create_portfolios(PER_CALL_PORTFOLIOS, "percall")
    plan = FillPlan.of(ids, bench.sizes.symbols)
    await bench.measure_each(
        result,
        [bench.pgbench_variant("pgbench_apply_fill", plan, batch=1, clients=PER_CALL_CLIENTS)],
    )


@scenario(
    "monitoring",
    "hot with Monitor(enabled=True) vs Monitor(enabled=False)",
    targets=[TargetSpec("fills/s, monitor on / off", ">=", 0.97, "x", ratio_value("on_over_off"))],
)
async def monitoring(bench: Bench, result: ScenarioResult) -> None:
    ids = await bench.ledger.create_portfolios(1, "monitoring")
    plan = FillPlan.of(ids, bench.sizes.symbols)
    half = bench.sizes.duration / bench.sizes.rounds
    await bench.measure_alternating(
        result,
        [
            bench.client_variant(
                "monitor_on",
                LABEL_CLIENT + ", Monitor(enabled=True)",
                plan,
                duration=half,
                monitor=Monitor(enabled=True),
            ),
            bench.client_variant(
                "monitor_off",
                LABEL_CLIENT + ", Monitor(enabled=False)",
                plan,
                duration=half,
                monitor=Monitor(enabled=False),
            ),
        ],
    )
    v = result.variants
    result.ratios["on_over_off"] = ratio(
        v["monitor_on"].fills_per_second, v["monitor_off"].fills_per_second
    )


PUSH_PORTFOLIOS = 50
PUSH_EVENTS_PER_SECOND = 1_000
PUSH_WRITERS = 25  # writer tasks, each on its own fixed schedule (a late call goes at once)
PUSH_PGBENCH_CLIENTS = 8
LABEL_PUSH = "subscribe(), interval 20 ms"


@scenario(
    "push",
    f"one subscriber on {PUSH_PORTFOLIOS} portfolios while apply_fill commits "
    f"{PUSH_EVENTS_PER_SECOND:,} events/s",
    targets=[
        TargetSpec(
            "(a) commit to subscriber, p99",
            "<=",
            50.0,
            "ms",
            variant_value("subscriber_pgbench", "p99_ms"),
        ),
        TargetSpec(
            "(b) commit to subscriber, p99",
            "<=",
            50.0,
            "ms",
            variant_value("subscriber_client", "p99_ms"),
        ),
    ],
)
async def push(bench: Bench, result: ScenarioResult) -> None:
    """(a) pgbench writes, the subscriber has this process to itself, and a sample runs
    from the transaction's start (event_log.created_at: an upper bound of the commit) to
    the yield, on the machine's one wall clock. (b) the writers are client calls in this
    process, sharing its event loop with the subscriber, and a sample runs from a call's
    acknowledgement (its commit came just before) to the yield."""
    ids = await bench.ledger.create_portfolios(PUSH_PORTFOLIOS, "push")
    plan = FillPlan.of(ids, bench.sizes.symbols)
    pgbench_stats, client_stats = PushStats(), PushStats()
    await bench.measure_each(
        result,
        [
            Variant(
                "subscriber_pgbench",
                f"(a) {LABEL_PUSH}; pgbench -R {PUSH_EVENTS_PER_SECOND:,} apply_fill",
                "event",
                lambda: _push_from_pgbench(bench, plan, pgbench_stats),
            ),
            Variant(
                "subscriber_client",
                f"(b) {LABEL_PUSH}; {PUSH_EVENTS_PER_SECOND:,} apply_fill/s from this process",
                "event",
                lambda: _push_from_client(bench, plan, client_stats),
            ),
        ],
    )
    for name, stats in (("subscriber_pgbench", pgbench_stats), ("subscriber_client", client_stats)):
        if result.variants[name].error is None:
            result.variants[name].extra.update(stats.summary(bench.sizes.duration))
    # What an idle subscriber costs the server per interval: its one read, with nothing new.
    async with bench.client(connections=1) as client:
        versions = [await client.portfolio_version(pid) or 0 for pid in ids]

        async def idle_read() -> int:
            async with client.pool.connection() as conn:
                cur = await conn.execute(
                    "SELECT * FROM pgportfolio.events_after(%s::bigint[], %s::bigint[])",
                    [ids, versions],
                )
                return len(await cur.fetchall())

        rows, durations = await time_reads(idle_read, bench.sizes.read_samples)
        result.reads["events_after_idle"] = ReadResult.from_durations(
            "events_after_idle", rows, durations
        )


@dataclass
class PushStats:
    """Per (portfolio, version) of the measured window: when it started (the call, or
    the transaction), when it was acknowledged (client writers only), and when the
    subscriber yielded it."""

    started: dict[tuple[int, int], float] = field(default_factory=dict)
    acked: dict[tuple[int, int], float] = field(default_factory=dict)
    yielded: dict[tuple[int, int], float] = field(default_factory=dict)

    def summary(self, seconds: float) -> dict[str, float | int]:
        from_start = sorted(
            self.yielded[key] - started
            for key, started in self.started.items()
            if key in self.yielded
        )
        return {
            "events_per_second": len(self.started) / seconds,
            "missed_events": sum(1 for key in self.started if key not in self.yielded),
            "from_start_p50_ms": percentile(from_start, 0.5) * 1000 if from_start else 0,
            "from_start_p99_ms": percentile(from_start, 0.99) * 1000 if from_start else 0,
        }

    def measurement(self, since: dict[tuple[int, int], float], seconds: float) -> Measurement:
        """Latency samples from ``since`` to the yield, for every event of the window."""
        m = Measurement()
        # A yield can come before the writer has read its reply: the commit preceded
        # both, so such a sample counts as 0.
        latencies = sorted(
            max(0.0, self.yielded[key] - moment)
            for key, moment in since.items()
            if key in self.yielded
        )
        for latency in latencies:
            m.latency.record(latency)
        m.exact = latencies
        m.fills = len(latencies)
        m.seconds = seconds
        missed = len(since) - len(latencies)
        if missed:
            m.errors["events never yielded"] = missed
        return m


@contextlib.asynccontextmanager
async def _following(
    client: AsyncPortfolioClient, plan: FillPlan, stats: PushStats, clock: Callable[[], float]
) -> AsyncIterator[None]:
    """A subscriber on the plan's portfolios, recording ``clock()`` at each yield, from
    after its resync events until the block has ended and it has yielded every version
    the block left (waiting at most 5 s for them)."""
    ids = list(range(plan.first_pid, plan.last_pid + 1))
    # An async generator: closed here, so its connection goes with the run.
    stream = cast(AsyncGenerator[ChangeEvent, None], client.subscribe(ids))
    resynced = {}
    for _ in ids:
        event = await anext(stream)
        resynced[event.portfolio_id] = event.version

    async def follow() -> None:
        async for event in stream:
            stats.yielded[(event.portfolio_id, event.version)] = clock()

    follower = asyncio.create_task(follow())
    try:
        yield
        versions = {pid: await client.portfolio_version(pid) or 0 for pid in ids}
        deadline = time.perf_counter() + 5
        left = {(pid, v) for pid, v in versions.items() if v > resynced[pid]}
        while any(key not in stats.yielded for key in left):
            if time.perf_counter() > deadline:
                break
            await asyncio.sleep(0.01)
    finally:
        follower.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await follower
        await stream.aclose()


async def _push_from_pgbench(bench: Bench, plan: FillPlan, stats: PushStats) -> Measurement:
    """pgbench commits apply_fill at the scenario's rate; each event's start time is its
    event_log.created_at (the transaction's start, on the server: same machine, same
    clock as time.time())."""
    if bench.pgbench is None:
        raise PgbenchFailed("pgbench not found (pg_config --bindir, /usr/lib/postgresql)")
    s = bench.sizes
    async with bench.client(connections=1) as reader, _following(reader, plan, stats, time.time):
        begin = time.time()
        start = MachineClock()
        await run_pgbench(
            bench.pgbench,
            bench.conninfo,
            apply_fill_script(),
            clients=PUSH_PGBENCH_CLIENTS,
            seconds=max(1, round(s.warmup + s.duration)),
            protocol="prepared",
            variables=plan.pgbench_variables(),
            rate=PUSH_EVENTS_PER_SECOND,
        )
        end = MachineClock()
    cur = await bench.ledger.conn.execute(
        "SELECT portfolio_id, portfolio_version, extract(epoch FROM created_at)::float8"
        " FROM pgportfolio.event_log WHERE portfolio_id BETWEEN %s AND %s"
        " AND kind <> 'create' AND created_at >= to_timestamp(%s)",
        [plan.first_pid, plan.last_pid, begin + s.warmup],
    )
    stats.started.update({(int(p), int(v)): float(t) for p, v, t in await cur.fetchall()})
    m = stats.measurement(stats.started, end.wall - start.wall - s.warmup)
    m.add_window(start, end)
    return m


async def _push_from_client(bench: Bench, plan: FillPlan, stats: PushStats) -> Measurement:
    """Client writers in this process commit apply_fill calls at the scenario's rate (one
    call per transaction, no coalescing); samples run from each call's acknowledgement."""
    s = bench.sizes
    errors: Counter[str] = Counter()
    period = PUSH_WRITERS / PUSH_EVENTS_PER_SECOND
    async with (
        bench.client(coalesce=False, connections=PUSH_WRITERS) as writer,
        bench.client(connections=1) as reader,
        _following(reader, plan, stats, time.perf_counter),
    ):
        begin = time.perf_counter()
        window = Window(begin + s.warmup, begin + s.warmup + s.duration)

        async def write(n: int) -> None:
            rng = random.Random(bench.next_seed() * 7919 + n)
            next_at = begin + period * n / PUSH_WRITERS
            while next_at < window.end:
                await sleep_until(next_at)
                next_at += period
                pid, symbol, quantity, price = plan.draw(rng)
                started = time.perf_counter()
                try:
                    done = await writer.apply_fill(pid, symbol, quantity, price)
                except PortfolioError as exc:
                    errors[type(exc).__name__] += 1
                    continue
                if started >= window.start:
                    key = (pid, done.portfolio_version)
                    stats.started[key], stats.acked[key] = started, time.perf_counter()

        async with asyncio.TaskGroup() as group:
            for n in range(PUSH_WRITERS):
                group.create_task(write(n))
            await sleep_until(window.start)
            start = MachineClock()
            await sleep_until(window.end)
            end = MachineClock()
    m = stats.measurement(stats.acked, s.duration)
    m.errors.update(errors)
    m.add_window(start, end)
    return m


@scenario(
    "import",
    "pgportfolio import of a {import_rows}-row CSV file into 1 portfolio, checked, then again",
    targets=[
        TargetSpec(
            "first import", ">=", 50_000, "fills/s", variant_value("first", "fills_per_second")
        ),
        TargetSpec(
            "same file again", ">=", 50_000, "fills/s", variant_value("again", "fills_per_second")
        ),
    ],
)
async def import_csv(bench: Bench, result: ScenarioResult) -> None:
    from pgportfolio.bench.importing import run_import_scenario

    await run_import_scenario(bench, result)


def _soak_note(result: ScenarioResult) -> str:
    """The RSS target is stated for 5,000,000 fills: say so when the soak was shorter."""
    fills = result.extra.get("fills")
    return "" if fills == 5_000_000 else f"over {fills:,} fills, not 5,000,000" if fills else ""


# Last: the soak grows the event log the most.
@scenario(
    "soak",
    "client RSS over {soak_fills} fills (hot pattern)",
    targets=[
        TargetSpec("client RSS growth", "<=", 10.0, "MB", extra_value("rss_growth_mb"), _soak_note)
    ],
)
async def soak(bench: Bench, result: ScenarioResult) -> None:
    plan = FillPlan.of(await bench.ledger.create_portfolios(1, "soak"), bench.sizes.symbols)
    label = f"{LABEL_CLIENT}, {bench.sizes.soak_fills:,} fills"
    await bench.measure_each(
        result, [Variant("client", label, "fill call", lambda: _soak(bench, result, plan))]
    )


async def _soak(bench: Bench, result: ScenarioResult, plan: FillPlan) -> Measurement:
    """Fills until the count is reached. RSS is read after a warm-up (the first 5%),
    then every 10% and at the end, each time after a full garbage collection; the
    latency and counters cover the fills after the warm-up."""
    total = bench.sizes.soak_fills
    warm = max(1, total // 20)
    m = Measurement()
    done = 0
    samples: list[tuple[int, float]] = []
    next_sample = warm
    clocks: list[MachineClock] = []

    async with bench.client() as client:

        async def trade(rng: random.Random) -> None:
            nonlocal done, next_sample
            while done < total:
                pid, symbol, quantity, price = plan.draw(rng)
                started = time.perf_counter()
                try:
                    await client.apply_fill(pid, symbol, quantity, price)
                except PortfolioError as exc:
                    m.errors[type(exc).__name__] += 1
                    continue
                done += 1
                if clocks:
                    m.fills += 1
                    m.latency.record(time.perf_counter() - started)
                if done >= next_sample:
                    # In line: no other task runs until this one awaits again.
                    gc.collect()
                    samples.append((done, rss_mb()))
                    if not clocks:
                        client.monitor.reset()
                        clocks.append(MachineClock())
                    next_sample += max(1, (total - warm) // 10)

        async with asyncio.TaskGroup() as group:
            for n in range(bench.sizes.traders):
                group.create_task(trade(random.Random(bench.next_seed() * 7919 + n)))
        end = MachineClock()
        m.add_monitor(client.monitor.snapshot())
    gc.collect()
    final = rss_mb()
    start = clocks[0] if clocks else end
    m.seconds = end.wall - start.wall
    m.add_window(start, end)
    baseline = samples[0][1] if samples else None
    result.extra.update(
        {
            "fills": done,
            "warmup_fills": warm,
            "rss_before_mb": baseline,
            "rss_after_mb": final,
            "rss_growth_mb": None if baseline is None else final - baseline,
            "rss_samples": samples,
        }
    )
    return m
