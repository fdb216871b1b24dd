"""Issue test 7, "Durability": what the client acknowledged survives a crash.

Eight traders send a stream of mutations (deposits, withdrawals, buys and sells) through
the async client, each with a request id of its own, and record every acknowledgement
(request id -> version and cash balance). At a seeded moment, while mutations are in
flight, the server is stopped with ``mode="immediate"``: every process is killed, with
no checkpoint, as in a power cut of the server processes. It is started again (crash
recovery from the WAL) and then:

- every acknowledged mutation is in the event log exactly once, with the version and
  cash balance that were acknowledged;
- every mutation that raised is in the log at most once;
- ``verify_portfolio`` is ok for every portfolio.

The settings are the defaults, asserted with SHOW: fsync on, synchronous_commit on,
full_page_writes on. The negative control runs the same with ``synchronous_commit=off``
on the client's sessions (conninfo options): PostgreSQL then acknowledges a commit before
its WAL is written, an immediate stop loses the last of them, and the same check reports
acknowledged mutations missing.

What this does not prove: an immediate stop kills the server's processes, not the
machine, so what PostgreSQL had handed to the kernel survives in the page cache. The test
proves the commit protocol (no acknowledgement before the WAL is written, recovery
replays it, the client reports only what committed), not that the disk honours fsync.

The cluster is a throwaway one of our own (local binaries, migrated), made once for this
module; never the shared server.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo

from pgportfolio import (
    AsyncPortfolioClient,
    Monitor,
    MutationResult,
    PortfolioError,
    RetryPolicy,
)
from pgportfolio.migrate import migrate
from pgportfolio.servers import LocalCluster, find_local_bindir, local_cluster

D = Decimal
TRADERS = 8
PORTFOLIOS = 8
INITIAL_CASH = D("10000000")
SYMBOLS = ("DUR1", "DUR2", "DUR3")


@pytest.fixture(scope="module")
def module_cluster() -> Iterator[LocalCluster]:
    if find_local_bindir() is None:
        pytest.skip("no local PostgreSQL binaries: durability needs a server of its own")
    with local_cluster(settings={"max_connections": "300"}) as made:
        migrate(made.dsn)
        yield made


@pytest.fixture
def cluster(module_cluster: LocalCluster) -> Iterator[LocalCluster]:
    if not module_cluster.is_running():
        module_cluster.start()
    yield module_cluster
    if not module_cluster.is_running():
        module_cluster.start()


Op = Callable[[AsyncPortfolioClient, int, str, random.Random], Awaitable[MutationResult]]


async def _deposit(c: AsyncPortfolioClient, pid: int, rid: str, r: random.Random) -> MutationResult:
    return await c.deposit_cash(pid, r.randint(1, 100), request_id=rid)


async def _withdraw(
    c: AsyncPortfolioClient, pid: int, rid: str, r: random.Random
) -> MutationResult:
    return await c.withdraw_cash(pid, r.randint(1, 50), request_id=rid)


async def _fill(c: AsyncPortfolioClient, pid: int, rid: str, r: random.Random) -> MutationResult:
    quantity = r.choice((-1, 1)) * r.randint(1, 10)
    return await c.apply_fill(
        pid, r.choice(SYMBOLS), quantity, r.randint(10, 20), fee=D("0.5"), request_id=rid
    )


OPS: tuple[Op, ...] = (_deposit, _withdraw, _fill, _fill)


@dataclass
class CrashRun:
    portfolios: list[int]
    settings: dict[str, str]  # as SHOWn on a session of the client's pool
    crash_after: int  # acknowledgements before the stop was started
    in_flight_at_crash: int
    acked: dict[str, MutationResult] = field(default_factory=dict)
    raised: dict[str, BaseException] = field(default_factory=dict)
    stop_seconds: float = 0.0
    recovery_seconds: float = 0.0
    raised_but_committed: int = 0


async def crash_during_stream(cluster: LocalCluster, conninfo: str, seed: int) -> CrashRun:
    """Stream mutations from TRADERS tasks; after a seeded number of acknowledgements
    stop the cluster with mode="immediate" while they are in flight; start it again."""
    rng = random.Random(seed)
    with psycopg.connect(cluster.dsn, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pgportfolio.create_portfolio('durable-' || g, %s)"
            " FROM generate_series(1, %s) g",
            (INITIAL_CASH, PORTFOLIOS),
        ).fetchall()
    portfolios = [int(r[0]) for r in rows]
    crash_after = rng.randrange(300, 900)
    run = CrashRun(portfolios, {}, crash_after, 0)
    async with AsyncPortfolioClient(
        conninfo,
        min_size=TRADERS,
        max_size=TRADERS,
        pool_timeout=1.0,
        call_timeout=2.0,
        resolve_timeout=1.0,
        retry=RetryPolicy(max_retries=1, base_delay=0.01, max_delay=0.05),
        monitor=Monitor(),
    ) as client:
        async with client.pool.connection() as session:
            for name in ("fsync", "synchronous_commit", "full_page_writes"):
                row = await (await session.execute(f"SHOW {name}")).fetchone()
                assert row is not None
                run.settings[name] = str(row[0])
        stop = asyncio.Event()
        crash = asyncio.Event()

        async def trader(number: int) -> None:
            mine = random.Random(seed * 1000 + number)
            n = 0
            while not stop.is_set():
                n += 1
                request_id = f"t{number}-{n}"
                try:
                    run.acked[request_id] = await mine.choice(OPS)(
                        client, mine.choice(portfolios), request_id, mine
                    )
                except PortfolioError as exc:
                    run.raised[request_id] = exc
                if len(run.acked) >= crash_after:
                    crash.set()

        async def crasher() -> None:
            await crash.wait()
            run.in_flight_at_crash = int(client.monitor.snapshot()["in_flight"])
            started = time.monotonic()
            # in a thread: the traders keep sending while the server dies
            await asyncio.to_thread(cluster.stop, "immediate")
            run.stop_seconds = time.monotonic() - started
            stop.set()

        await asyncio.gather(crasher(), *(trader(t) for t in range(TRADERS)))
    started = time.monotonic()
    cluster.start()  # crash recovery
    run.recovery_seconds = time.monotonic() - started
    return run


def durability_problems(cluster: LocalCluster, run: CrashRun) -> list[str]:
    """Acknowledged: present exactly once with its version and cash. Raised: at most
    once. verify_portfolio ok for every portfolio. (Also counts, in ``run``, the raised
    mutations that did commit: the outcome the client could not know.)"""
    problems: list[str] = []
    with psycopg.connect(cluster.dsn, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT request_id, portfolio_id, portfolio_version, cash_balance"
            " FROM pgportfolio.event_log"
            " WHERE portfolio_id = ANY(%s) AND request_id IS NOT NULL",
            (run.portfolios,),
        ).fetchall()
        for pid in run.portfolios:
            bad = conn.execute(
                "SELECT check_name FROM pgportfolio.verify_portfolio(%s) WHERE NOT ok", (pid,)
            ).fetchall()
            if bad:
                problems.append(f"verify_portfolio({pid}) failed {[b[0] for b in bad]}")
    logged: dict[str, list[tuple[Any, ...]]] = {}
    for row in rows:
        logged.setdefault(row[0], []).append(row)
    for request_id, result in run.acked.items():
        found = logged.get(request_id, [])
        if not found:
            problems.append(f"acknowledged {request_id} missing")
        elif len(found) > 1:
            problems.append(f"acknowledged {request_id} present {len(found)} times")
        elif (found[0][1], found[0][2], found[0][3]) != (
            result.portfolio_id,
            result.portfolio_version,
            result.cash_balance,
        ):
            problems.append(
                f"acknowledged {request_id} as portfolio {result.portfolio_id} version "
                f"{result.portfolio_version} cash {result.cash_balance}; log has {found[0][1:]}"
            )
    run.raised_but_committed = 0
    for request_id in run.raised:
        found = logged.get(request_id, [])
        run.raised_but_committed += len(found) == 1
        if len(found) > 1:
            problems.append(f"raised {request_id} present {len(found)} times")
    for request_id in logged.keys() - run.acked.keys() - run.raised.keys():
        problems.append(f"{request_id} in the log but never sent")
    return problems


def describe(run: CrashRun, problems: list[str]) -> str:
    errors: dict[str, int] = {}
    for exc in run.raised.values():
        errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
    missing = sum(1 for p in problems if p.endswith(" missing"))
    return (
        f"settings {run.settings}; crash after {run.crash_after} acks with "
        f"{run.in_flight_at_crash} in flight (stop {run.stop_seconds:.2f}s, recovery "
        f"{run.recovery_seconds:.2f}s); {len(run.acked)} acknowledged, raised {errors} "
        f"({run.raised_but_committed} of them committed); {missing} acknowledged missing, "
        f"{len(problems)} problems"
    )


async def test_acknowledged_mutations_survive_an_immediate_stop(
    cluster: LocalCluster, proof_seed: int
) -> None:
    run = await crash_during_stream(cluster, cluster.dsn, proof_seed)
    problems = durability_problems(cluster, run)
    print("\n[durability] " + describe(run, problems))
    assert run.settings == {"fsync": "on", "synchronous_commit": "on", "full_page_writes": "on"}
    assert run.in_flight_at_crash > 0, "nothing was in flight: the crash proved nothing"
    assert run.raised, "no call failed, so the server was not stopped under load"
    assert len(run.acked) >= run.crash_after
    assert problems == []


async def test_negative_control_asynchronous_commit_loses_acknowledged_mutations(
    cluster: LocalCluster, proof_seed: int
) -> None:
    """synchronous_commit=off on the client's sessions: commits are acknowledged before
    their WAL is written, so an immediate stop loses the most recent ones, and the check
    above reports them.

    Anything that flushes the WAL tail during the stream narrows that window, so for the
    control this cluster runs without autovacuum (its ANALYZE commits synchronously) and
    without the background writer's LRU writes, the WAL writer waits 10 s between timed
    writes, and a CHECKPOINT before each stream makes sure none is in progress during it
    (a checkpoint flushes the WAL up to every page it writes). All reset afterwards.
    Measured so: 20 of 20 crashes lost 1-14 acknowledged mutations (without the
    checkpoint and the background writer setting, 13 of 15). Up to three crashes all the
    same."""
    conninfo = make_conninfo(cluster.dsn, options="-c synchronous_commit=off")
    tuned = {"autovacuum": "off", "bgwriter_lru_maxpages": "0", "wal_writer_delay": "10s"}
    _configure(cluster, **tuned)
    _settle(cluster)
    try:
        reports = []
        for attempt in range(3):
            with psycopg.connect(cluster.dsn, autocommit=True) as conn:
                conn.execute("CHECKPOINT")
            run = await crash_during_stream(cluster, conninfo, proof_seed + attempt)
            problems = durability_problems(cluster, run)
            reports.append(describe(run, problems))
            print(f"\n[durability control {attempt + 1}] " + reports[-1])
            assert run.settings["synchronous_commit"] == "off"
            assert run.in_flight_at_crash > 0
            if any(p.endswith(" missing") for p in problems):
                return
        pytest.fail("no acknowledged mutation was lost in 3 crashes: " + "; ".join(reports))
    finally:
        if not cluster.is_running():
            cluster.start()
        _configure(cluster, **dict.fromkeys(tuned))


def _settle(cluster: LocalCluster, timeout: float = 30.0) -> None:
    """Let a reload take effect: no autovacuum worker still running (one started before
    autovacuum was turned off finishes its table), and the WAL writer and background
    writer, which wake at least every 200 ms, have re-read their settings."""
    deadline = time.monotonic() + timeout
    with psycopg.connect(cluster.dsn, autocommit=True) as conn:
        while True:
            row = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'autovacuum worker'"
            ).fetchone()
            if row is not None and row[0] == 0:
                break
            assert time.monotonic() < deadline, "an autovacuum worker kept running"
            time.sleep(0.05)
    time.sleep(0.5)


def _configure(cluster: LocalCluster, **settings: str | None) -> None:
    """ALTER SYSTEM SET (or RESET, for None) on our own cluster, then reload."""
    with psycopg.connect(cluster.dsn, autocommit=True) as conn:
        for name, value in settings.items():
            if value is None:
                conn.execute(sql.SQL("ALTER SYSTEM RESET {}").format(sql.Identifier(name)))
            else:
                conn.execute(
                    sql.SQL("ALTER SYSTEM SET {} = {}").format(
                        sql.Identifier(name), sql.Literal(value)
                    )
                )
        conn.execute("SELECT pg_reload_conf()")
