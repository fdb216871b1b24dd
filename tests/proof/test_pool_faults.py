"""Issue test 6, "Pool and network faults", for the async and the sync client.

Every scenario runs against a throwaway cluster of our own, never the shared server: its
backends are killed, it is restarted and stopped, and a proxy in front of it goes silent
(``tests/support/faultproxy.py``). The cluster is made as ``fault_cluster`` makes its own
(local binaries, migrated) but once per module, to keep initdb out of every test; each
test starts from a running cluster with no client session left (checked) and uses
portfolios of its own.

After each scenario the cluster is checked for sessions left idle in a transaction or
holding locks, and the event log is checked request id by request id:

- an acknowledged mutation is in the log exactly once, with the acknowledged version
  and cash balance;
- a mutation that raised is in the log at most once;
- the log holds no event that was not asked for (so nothing was applied twice under
  another request id), and ``verify_portfolio`` is ok for every portfolio.

The sync client is driven from the event loop through a thread pool, so one scenario
text serves both clients; its calls still run on real threads, blocking, as a sync
caller's would. Times are measured inside the call (for the sync client, inside its
thread) and printed; bounds are the configured timeouts plus ``MARGIN``.

Two bugs these tests found were fixed in commit 90c25f3 while they were being written
(dead connections after a mass backend death delayed or failed the next call;
advisory_lock() was not bounded behind a silent peer); the tests that showed them are
kept as regression tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import random
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AsyncExitStack, ExitStack, asynccontextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from pgportfolio import (
    AsyncPortfolioClient,
    ConnectionLost,
    ConnectionUnavailable,
    Monitor,
    MutationResult,
    OutcomeUnknown,
    PortfolioClient,
    RetryPolicy,
)
from pgportfolio.migrate import migrate
from pgportfolio.servers import LocalCluster, find_local_bindir, local_cluster
from tests.support.faultproxy import FaultProxy

D = Decimal
KINDS = ["async", "sync"]
INITIAL_CASH = D("1000000")
# Scheduling noise on a loaded 2-core machine: added to every upper bound.
MARGIN = 1.0
# A timeout must not fire early: a lower bound may undershoot by this much.
EARLY = 0.05


# --- driving either client ---------------------------------------------------------------


@dataclass
class Outcome:
    """One call: what it was, what came back (or was raised), and how long it took."""

    method: str
    portfolio_id: int | None
    request_id: str | None
    result: Any = None
    error: BaseException | None = None
    seconds: float = 0.0

    @property
    def acknowledged(self) -> bool:
        return self.error is None and isinstance(self.result, MutationResult)

    def describe(self) -> str:
        what = type(self.error).__name__ if self.error else "ok"
        return f"{self.method}({self.portfolio_id}, {self.request_id}) {what} {self.seconds:.2f}s"


class Driver:
    """An async or sync client, called from the event loop. Sync calls run in a thread
    pool of their own and are timed inside their thread."""

    def __init__(self, kind: str, conninfo: str, **options: Any) -> None:
        self.kind = kind
        self.monitor = Monitor()
        self.client: AsyncPortfolioClient | PortfolioClient
        if kind == "async":
            self.client = AsyncPortfolioClient(conninfo, monitor=self.monitor, **options)
        else:
            self.client = PortfolioClient(conninfo, monitor=self.monitor, **options)
        self._threads = ThreadPoolExecutor(32, thread_name_prefix="sync-client")
        self.outcomes: list[Outcome] = []

    async def _in_thread(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(
            self._threads, functools.partial(fn, *args)
        )

    async def __aenter__(self) -> Driver:
        if isinstance(self.client, AsyncPortfolioClient):
            await self.client.open()
        else:
            await self._in_thread(self.client.open)
        return self

    async def __aexit__(self, *exc: object) -> None:
        try:
            if isinstance(self.client, AsyncPortfolioClient):
                await self.client.close()
            else:
                await self._in_thread(self.client.close)
        finally:
            self._threads.shutdown(wait=True)

    async def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """Call a client method; raise what it raises."""
        outcome = await self.attempt(method, *args, **kwargs)
        if outcome.error is not None:
            raise outcome.error
        return outcome.result

    async def attempt(self, method: str, *args: Any, **kwargs: Any) -> Outcome:
        """Call a client method and record the outcome (result or exception, and time)."""
        fn = getattr(self.client, method)
        outcome = Outcome(
            method, args[0] if args and isinstance(args[0], int) else None, kwargs.get("request_id")
        )

        def timed_sync() -> None:
            started = time.monotonic()
            try:
                outcome.result = fn(*args, **kwargs)
            except Exception as exc:
                outcome.error = exc
            outcome.seconds = time.monotonic() - started

        if self.kind == "async":
            started = time.monotonic()
            try:
                outcome.result = await fn(*args, **kwargs)
            except Exception as exc:
                outcome.error = exc
            outcome.seconds = time.monotonic() - started
        else:
            await self._in_thread(timed_sync)
        self.outcomes.append(outcome)
        return outcome

    async def deposit(self, portfolio_id: int, request_id: str, amount: int = 1) -> Outcome:
        return await self.attempt("deposit_cash", portfolio_id, amount, request_id=request_id)

    @asynccontextmanager
    async def holding_connections(self, n: int) -> AsyncIterator[None]:
        """Take ``n`` connections out of the client's pool with ``pool.connection()``."""
        if isinstance(self.client, AsyncPortfolioClient):
            async with AsyncExitStack() as stack:
                for _ in range(n):
                    await stack.enter_async_context(self.client.pool.connection())
                yield
        else:
            held = ExitStack()
            try:
                for _ in range(n):
                    await self._in_thread(held.enter_context, self.client.pool.connection())
                yield
            finally:
                await self._in_thread(held.close)

    def pool_stats(self) -> dict[str, int]:
        return dict(self.client.pool.get_stats())

    def retries(self) -> dict[str, int]:
        return dict(self.monitor.snapshot()["retries"])


# --- the cluster side --------------------------------------------------------------------


@pytest.fixture(scope="module")
def module_cluster() -> Iterator[LocalCluster]:
    if find_local_bindir() is None:
        pytest.skip("no local PostgreSQL binaries: fault tests need a server of their own")
    with local_cluster(settings={"max_connections": "300"}) as made:
        migrate(made.dsn)
        yield made


@pytest.fixture
def cluster(module_cluster: LocalCluster) -> Iterator[LocalCluster]:
    """The module's cluster: running, and with no client session but ours."""
    if not module_cluster.is_running():
        module_cluster.start()
    deadline = time.monotonic() + 10
    while (left := client_backends(module_cluster)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not left, f"client sessions left over from an earlier test: {left}"
    yield module_cluster
    if not module_cluster.is_running():  # a failed test may leave it stopped
        module_cluster.start()


def _admin(cluster: LocalCluster) -> psycopg.Connection[Any]:
    return psycopg.connect(cluster.dsn, autocommit=True)


def create_portfolios(cluster: LocalCluster, n: int) -> list[int]:
    with _admin(cluster) as conn:
        rows = conn.execute(
            "SELECT pgportfolio.create_portfolio('fault-' || g, %s) FROM generate_series(1, %s) g",
            (INITIAL_CASH, n),
        ).fetchall()
    return [int(r[0]) for r in rows]


def client_backends(cluster: LocalCluster) -> set[int]:
    with _admin(cluster) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity"
            " WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()"
        ).fetchall()
    return {int(r[0]) for r in rows}


def terminate_client_backends(cluster: LocalCluster) -> set[int]:
    """pg_terminate_backend on every client backend but this admin session, waiting
    (up to 5 s each) until each has exited. Returns the pids."""
    with _admin(cluster) as conn:
        rows = conn.execute(
            "SELECT pid, pg_terminate_backend(pid, 5000) FROM pg_stat_activity"
            " WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()"
        ).fetchall()
    assert all(r[1] for r in rows), f"not all backends exited: {rows}"
    return {int(r[0]) for r in rows}


IDLE_PROBLEMS = """
SELECT a.pid, a.state, a.wait_event_type,
       coalesce(string_agg(DISTINCT l.locktype || ' ' || l.mode, ', '), '') AS locks
FROM pg_stat_activity AS a
LEFT JOIN pg_locks AS l ON l.pid = a.pid AND l.granted
WHERE a.backend_type = 'client backend' AND a.pid <> pg_backend_pid()
GROUP BY a.pid, a.state, a.wait_event_type
HAVING a.state LIKE 'idle in transaction%%'
    OR a.wait_event_type = 'Lock'
    OR (a.state <> 'active' AND count(l.pid) > 0)
"""


def session_problems(dsn: str, settle: float = 2.0) -> list[str]:
    """Sessions left idle in a transaction, idle sessions holding any granted lock (row
    locks show as the table's RowShare/RowExclusive lock and the transaction id lock),
    and sessions stuck waiting for a lock. Polls up to ``settle`` seconds for statements
    still draining; what persists is returned."""
    deadline = time.monotonic() + settle
    with psycopg.connect(dsn, autocommit=True) as conn:
        while True:
            rows = conn.execute(IDLE_PROBLEMS).fetchall()
            if not rows or time.monotonic() >= deadline:
                return [f"pid {r[0]} {r[1]} wait={r[2]} locks=[{r[3]}]" for r in rows]
            time.sleep(0.05)


def ledger_problems(
    cluster: LocalCluster, portfolios: Sequence[int], outcomes: Sequence[Outcome]
) -> list[str]:
    """The exactly-once check of the module docstring, for deposits recorded in
    ``outcomes`` on ``portfolios`` (portfolios created with INITIAL_CASH, touched by
    nothing else)."""
    problems: list[str] = []
    with _admin(cluster) as conn:
        events = conn.execute(
            "SELECT portfolio_id, portfolio_version, kind, request_id, cash_balance"
            " FROM pgportfolio.event_log WHERE portfolio_id = ANY(%s)",
            (list(portfolios),),
        ).fetchall()
        for pid in portfolios:
            row = conn.execute(
                "SELECT bool_and(ok) FROM pgportfolio.verify_portfolio(%s)", (pid,)
            ).fetchone()
            if row is None or row[0] is not True:
                problems.append(f"verify_portfolio({pid}) not ok")
    by_request: dict[tuple[int | None, str | None], list[tuple[Any, ...]]] = {}
    for event in events:
        if event[2] != "create":
            by_request.setdefault((event[0], event[3]), []).append(event)
    asked = {
        (o.portfolio_id, o.request_id): o
        for o in outcomes
        if o.method == "deposit_cash" and o.portfolio_id in portfolios
    }
    for key, found in by_request.items():
        if key not in asked:
            problems.append(f"event(s) nobody asked for: {key} x{len(found)}")
        elif len(found) > 1:
            problems.append(f"{key} applied {len(found)} times")
    for key, outcome in asked.items():
        found = by_request.get(key, [])
        if outcome.acknowledged:
            result: MutationResult = outcome.result
            if len(found) != 1:
                problems.append(f"acknowledged {key} present {len(found)} times")
            elif (found[0][1], found[0][4]) != (result.portfolio_version, result.cash_balance):
                problems.append(
                    f"acknowledged {key} as version {result.portfolio_version} cash "
                    f"{result.cash_balance}, log has version {found[0][1]} cash {found[0][4]}"
                )
        elif len(found) > 1:
            problems.append(f"raised {key} present {len(found)} times")
    return problems


def summary(outcomes: Sequence[Outcome]) -> str:
    counts: dict[str, int] = {}
    for o in outcomes:
        if o.error is not None:
            key = type(o.error).__name__
        elif isinstance(o.result, MutationResult) and o.result.recovered:
            key = "ok-recovered"
        else:
            key = "ok"
        counts[key] = counts.get(key, 0) + 1
    slowest = max((o.seconds for o in outcomes), default=0.0)
    return f"{counts} slowest {slowest:.2f}s"


def port_of(dsn: str) -> int:
    return int(conninfo_to_dict(dsn)["port"] or 5432)


# --- (1) killed backends -----------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
async def test_killed_backends_are_replaced_without_the_caller_noticing(
    kind: str, cluster: LocalCluster
) -> None:
    """Every pooled backend is terminated between calls; the next calls all succeed,
    none of them meets a dead connection (no retry, no resolution, no error), and they
    run on new backends: the dead connections were replaced, not reused."""
    pids = create_portfolios(cluster, 4)
    pool_timeout = 5.0
    async with Driver(
        kind, cluster.dsn, min_size=2, max_size=2, pool_timeout=pool_timeout
    ) as driver:
        for i, pid in enumerate(pids):
            await driver.deposit(pid, f"warm-{i}")
        before = client_backends(cluster)
        assert len(before) == 2
        opened = driver.pool_stats().get("connections_num", 0)
        killed = terminate_client_backends(cluster)
        assert killed == before
        calls = [await driver.deposit(pid, f"after-{i}") for i, pid in enumerate(pids)]
        calls.append(await driver.attempt("get_portfolio", pids[0]))
        calls += await asyncio.gather(*(driver.deposit(p, f"burst-{p}") for p in pids))
        print(
            f"\n[{kind}] killed {len(killed)} pooled backends; first call after "
            f"{calls[0].seconds:.2f}s, then {summary(calls[1:])}"
        )
        assert [c.describe() for c in calls if c.error] == []
        assert all(not c.result.recovered for c in calls if c.acknowledged)
        assert driver.retries() == {}, "a dead connection reached a call"
        assert driver.pool_stats().get("connections_num", 0) - opened >= len(killed)
        assert calls[0].seconds < pool_timeout
        assert client_backends(cluster).isdisjoint(killed)
    assert ledger_problems(cluster, pids, driver.outcomes) == []
    assert session_problems(cluster.dsn) == []


@pytest.mark.parametrize("kind", KINDS)
async def test_killed_backends_of_a_grown_pool_are_replaced_in_time(
    kind: str, cluster: LocalCluster
) -> None:
    """The same with a pool that has grown to 6 connections under load (as a busy
    process's pool does): the next call must still succeed, at once. (Regression: with a
    round-trip health check on checkout, psycopg_pool backed off 1 s, 2 s, 4 s ...
    between the dead connections, ahead of their fresh replacements; measured 0, 1, 3,
    7 s for 1 to 4 dead ones, and ConnectionUnavailable at pool_timeout for 5 or more.)"""
    (pid,) = create_portfolios(cluster, 1)
    async with Driver(kind, cluster.dsn, min_size=2, max_size=6, pool_timeout=2.0) as driver:
        async with driver.holding_connections(6):
            pass
        assert driver.pool_stats()["pool_available"] == 6
        killed = terminate_client_backends(cluster)
        assert len(killed) == 6
        first = await driver.deposit(pid, "after-kill")
        print(f"\n[{kind}] grown pool, 6 killed: {first.describe()}")
        assert first.error is None, f"the server is up, yet {first.describe()}"
        assert first.seconds < 1.0, first.describe()
        assert driver.retries() == {}
    assert session_problems(cluster.dsn) == []


# --- (2) pool exhaustion -----------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
async def test_exhausted_pool_times_out_then_recovers(kind: str, cluster: LocalCluster) -> None:
    """max_size=2, both connections held (taken with pool.connection(), then by two
    calls blocked behind a row lock): a third call raises ConnectionUnavailable
    (pool_timeout=True) after pool_timeout, not before and not much after, without a
    retry and without being applied; once the holders let go, it succeeds."""
    pids = create_portfolios(cluster, 3)
    pool_timeout = 1.0
    # the blocked calls must outlast the pool timeout in the server's lock queue
    conninfo = make_conninfo(cluster.dsn, options="-c pgportfolio.lock_timeout=10s")
    async with Driver(kind, conninfo, min_size=2, max_size=2, pool_timeout=pool_timeout) as driver:
        await driver.deposit(pids[0], "warm")
        timings: list[float] = []

        # (a) both connections taken out of the pool by the caller
        async with driver.holding_connections(2):
            mutation, read = await asyncio.gather(
                driver.deposit(pids[2], "starved-a"), driver.attempt("get_portfolio", pids[2])
            )
        for starved in (mutation, read):
            assert isinstance(starved.error, ConnectionUnavailable), starved.describe()
            assert starved.error.pool_timeout
            assert pool_timeout - EARLY <= starved.seconds <= pool_timeout + MARGIN
            timings.append(starved.seconds)
        again = await driver.deposit(pids[2], "starved-a")
        assert again.error is None, again.describe()
        assert not again.result.duplicate, "the starved call had been applied"

        # (b) both connections busy with calls blocked behind a row lock held elsewhere
        with _admin(cluster) as admin, admin.transaction():
            admin.execute(
                "SELECT 1 FROM pgportfolio.portfolios WHERE portfolio_id = ANY(%s) FOR UPDATE",
                (pids[:2],),
            )
            # One after the other, so that each waits on its own connection (started
            # together, a coalescing client would send both in one batch).
            blocked = []
            for waiting, pid in enumerate(pids[:2], start=1):
                blocked.append(asyncio.ensure_future(driver.deposit(pid, f"blocked-{pid}")))
                await _wait_for_lock_waiters(cluster, waiting)
            starved_b = await driver.deposit(pids[2], "starved-b")
        assert isinstance(starved_b.error, ConnectionUnavailable), starved_b.describe()
        assert starved_b.error.pool_timeout
        assert pool_timeout - EARLY <= starved_b.seconds <= pool_timeout + MARGIN
        timings.append(starved_b.seconds)
        done = await asyncio.gather(*blocked)
        assert [d.describe() for d in done if d.error] == []
        assert (await driver.deposit(pids[2], "starved-b")).result.duplicate is False
        assert driver.retries() == {}, "a pool timeout was retried"
        print(f"\n[{kind}] pool_timeout={pool_timeout}s: starved calls raised after {timings}")
    assert ledger_problems(cluster, pids, driver.outcomes) == []
    assert session_problems(cluster.dsn) == []


async def _wait_for_lock_waiters(cluster: LocalCluster, n: int, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    with _admin(cluster) as conn:
        while True:
            row = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
            ).fetchone()
            if row is not None and row[0] >= n:
                return
            assert time.monotonic() < deadline, f"fewer than {n} sessions waiting for a lock"
            await asyncio.sleep(0.01)


# --- (3) restarts ------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
async def test_restart_between_calls(kind: str, cluster: LocalCluster) -> None:
    """restart(fast), then restart(immediate) (crash recovery), each between two rounds
    of calls: the calls after each restart succeed, none meets a dead connection."""
    pids = create_portfolios(cluster, 3)
    async with Driver(kind, cluster.dsn, min_size=2, max_size=2, pool_timeout=5.0) as driver:
        for mode in ("fast", "immediate"):
            for pid in pids:
                await driver.deposit(pid, f"before-{mode}-{pid}")
            started = time.monotonic()
            await asyncio.to_thread(cluster.restart, mode)
            restart_seconds = time.monotonic() - started
            after = [await driver.deposit(pid, f"after-{mode}-{pid}") for pid in pids]
            after.append(await driver.attempt("get_portfolio", pids[0]))
            print(
                f"\n[{kind}] restart {mode} took {restart_seconds:.2f}s; first call after "
                f"{after[0].seconds:.2f}s; {summary(after)}"
            )
            assert [a.describe() for a in after if a.error] == []
            assert all(not a.result.recovered for a in after if a.acknowledged)
        assert driver.retries() == {}, "a dead connection reached a call"
    assert ledger_problems(cluster, pids, driver.outcomes) == []
    assert session_problems(cluster.dsn) == []


async def _stream(
    driver: Driver, pids: Sequence[int], stop: asyncio.Event, tag: str
) -> list[Outcome]:
    """One task per portfolio, depositing until ``stop``."""

    async def trader(pid: int) -> None:
        n = 0
        while not stop.is_set():
            n += 1
            await driver.deposit(pid, f"{tag}-{pid}-{n}")

    await asyncio.gather(*(trader(pid) for pid in pids))
    return [o for o in driver.outcomes if o.request_id and o.request_id.startswith(f"{tag}-")]


@pytest.mark.parametrize("kind", KINDS)
async def test_restart_during_calls(kind: str, cluster: LocalCluster, proof_seed: int) -> None:
    """Six traders deposit without pause; at seeded moments the server is restarted
    fast, then immediate. In-flight mutations are acknowledged exactly once or raise;
    calls succeed afterwards."""
    rng = random.Random(proof_seed)
    pids = create_portfolios(cluster, 6)
    async with Driver(
        kind,
        cluster.dsn,
        min_size=2,
        max_size=6,
        pool_timeout=3.0,
        call_timeout=2.0,
        resolve_timeout=5.0,
        retry=RetryPolicy(base_delay=0.01, max_delay=0.2),
    ) as driver:
        stop = asyncio.Event()
        stream = asyncio.ensure_future(_stream(driver, pids, stop, "s"))
        restarts: list[str] = []
        for n, mode in enumerate(("fast", "immediate")):
            await asyncio.sleep(rng.uniform(0.2, 0.6))
            # A call that is surely in flight at the restart: another session holds one
            # portfolio's row, so a deposit waits on it inside the server (without it,
            # whether a short call was on the wire at that instant is luck).
            holder = _admin(cluster)
            holder.execute("BEGIN")
            holder.execute(
                "SELECT 1 FROM pgportfolio.portfolios WHERE portfolio_id = %s FOR UPDATE",
                (pids[n],),
            )
            await _wait_for_lock_waiters(cluster, 1)
            started = time.monotonic()
            await asyncio.to_thread(cluster.restart, mode)
            restarts.append(f"{mode} {time.monotonic() - started:.2f}s")
            with contextlib.suppress(psycopg.Error):
                holder.close()  # the restart ended its session
        await asyncio.sleep(0.5)
        stop.set()
        streamed = await stream
        after = [await driver.deposit(pid, f"after-{pid}") for pid in pids]
        retries = driver.retries()
        print(
            f"\n[{kind}] restarts {restarts}: {len(streamed)} streamed calls {summary(streamed)}"
            f"; retries {retries}; afterwards {summary(after)}"
        )
        hit = sum(1 for o in streamed if o.error or o.result.recovered) + retries.get(
            "connection_lost", 0
        )
        assert hit > 0, "no call was in flight at a restart: the scenario proved nothing"
        for o in streamed:
            if o.error is not None:
                assert isinstance(o.error, ConnectionLost | ConnectionUnavailable), o.describe()
        assert [a.describe() for a in after if a.error] == []
    assert ledger_problems(cluster, pids, driver.outcomes) == []
    assert session_problems(cluster.dsn) == []


@pytest.mark.parametrize("kind", KINDS)
async def test_outage_during_calls(kind: str, cluster: LocalCluster) -> None:
    """The server stops (immediate) for longer than the client's timeouts while traders
    keep calling: calls raise, each within its bound, none is applied twice, and the
    calls after the server is back succeed."""
    pids = create_portfolios(cluster, 4)
    call_timeout, pool_timeout, resolve_timeout = 1.0, 1.0, 1.0
    retry = RetryPolicy(max_retries=1, base_delay=0.01, max_delay=0.1)
    # the longest a mutation can take: per attempt a checkout (pool_timeout) and a send
    # (call_timeout), then a resolution (resolve_timeout, plus its last find_request's
    # call_timeout); and one retry of all that
    bound = (retry.max_retries + 1) * (
        pool_timeout + call_timeout + resolve_timeout + call_timeout
    ) + retry.max_retries * retry.max_delay
    down = 1.5
    async with Driver(
        kind,
        cluster.dsn,
        min_size=2,
        max_size=4,
        pool_timeout=pool_timeout,
        call_timeout=call_timeout,
        resolve_timeout=resolve_timeout,
        retry=retry,
    ) as driver:
        stop = asyncio.Event()
        stream = asyncio.ensure_future(_stream(driver, pids, stop, "o"))
        await asyncio.sleep(0.3)
        await asyncio.to_thread(cluster.stop, "immediate")
        await asyncio.sleep(down)
        await asyncio.to_thread(cluster.start)
        back = time.monotonic()
        await asyncio.sleep(0.3)
        stop.set()
        streamed = await stream
        # the pool's reconnection backs off while the server is down: allow it that long
        first_ok = await _first_success(driver, pids[0], deadline=back + 2 * bound)
        after = [await driver.deposit(pid, f"after-{pid}") for pid in pids]
        print(
            f"\n[{kind}] down {down}s: {len(streamed)} calls {summary(streamed)}; first "
            f"success {first_ok:.2f}s after start; afterwards {summary(after)}; bound "
            f"{bound:.1f}s"
        )
        errors = [o for o in streamed if o.error is not None]
        assert errors, "no call failed during an outage longer than every timeout"
        for o in errors:
            assert isinstance(o.error, ConnectionLost | ConnectionUnavailable), o.describe()
        assert max(o.seconds for o in streamed) <= bound + MARGIN
        assert [a.describe() for a in after if a.error] == []
    assert ledger_problems(cluster, pids, driver.outcomes) == []
    assert session_problems(cluster.dsn) == []


async def _first_success(driver: Driver, pid: int, deadline: float) -> float:
    """Seconds from now until a call succeeds (polling), failing past ``deadline``."""
    started = time.monotonic()
    n = 0
    while True:
        n += 1
        outcome = await driver.deposit(pid, f"probe-{pid}-{n}")
        if outcome.error is None:
            return time.monotonic() - started
        assert time.monotonic() < deadline, f"pool never recovered: {outcome.describe()}"


# --- (4) a silent peer -------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
async def test_silent_peer(kind: str, cluster: LocalCluster) -> None:
    """The network between client and server goes silent (the proxy stops forwarding
    but keeps every socket open). Every call errors within its bound; a mutation that
    committed behind the silence is OutcomeUnknown and applied once; nothing is applied
    twice; when the network comes back the pool recovers at once.

    With max_retries=0 each error is one mechanism, so its bound is tight:
    ConnectionUnavailable (no connection to be had): pool_timeout; OutcomeUnknown (a
    mutation sent into the silence): call_timeout, then resolve_timeout, plus the last
    find_request's own call_timeout; ConnectionLost (a read sent into the silence): a
    checkout plus call_timeout."""
    call_timeout, pool_timeout, resolve_timeout = 1.0, 1.0, 1.5
    bounds: dict[type[BaseException], tuple[float, float]] = {
        ConnectionUnavailable: (pool_timeout, pool_timeout),
        OutcomeUnknown: (call_timeout + resolve_timeout, 2 * call_timeout + resolve_timeout),
        ConnectionLost: (call_timeout, pool_timeout + 2 * call_timeout),
    }
    pids = create_portfolios(cluster, 5)
    with FaultProxy("127.0.0.1", port_of(cluster.dsn)) as proxy:
        async with Driver(
            kind,
            make_conninfo(cluster.dsn, port=str(proxy.port)),
            min_size=2,
            max_size=4,
            pool_timeout=pool_timeout,
            call_timeout=call_timeout,
            resolve_timeout=resolve_timeout,
            retry=RetryPolicy(max_retries=0),
        ) as driver:
            for pid in pids:
                await driver.deposit(pid, f"before-{pid}")
            # a mutation the server is still working on when the network goes silent
            with _admin(cluster) as admin, admin.transaction():
                admin.execute(
                    "SELECT 1 FROM pgportfolio.portfolios WHERE portfolio_id = %s FOR UPDATE",
                    (pids[0],),
                )
                in_flight = asyncio.ensure_future(driver.deposit(pids[0], "in-flight"))
                await _wait_for_lock_waiters(cluster, 1)
                proxy.stall()
            # the row lock is released: it commits, and its reply is held
            silent = await asyncio.gather(
                in_flight,
                *(driver.deposit(pid, f"silent-{pid}") for pid in pids[1:3]),
                driver.attempt("get_portfolio", pids[3]),
                driver.attempt("create_portfolio", "made-in-silence", INITIAL_CASH),
            )
            stats_stalled = driver.pool_stats()
            proxy.resume()
            resumed = time.monotonic()
            recovered = await driver.deposit(pids[4], "after-resume")
            recovery = time.monotonic() - resumed
            after = [await driver.deposit(pid, f"after-{pid}") for pid in pids]
            found = await driver.call("find_request", pids[0], "in-flight")
            # a raised mutation sent into the silence may still arrive once it is over
            late = [
                s.request_id
                for s in silent[1:3]
                if await driver.call("find_request", s.portfolio_id, s.request_id) is not None
            ]
            print(
                f"\n[{kind}] silent peer (call {call_timeout}s, pool {pool_timeout}s, resolve "
                f"{resolve_timeout}s): "
                + "; ".join(s.describe() for s in silent)
                + f"; held {proxy.chunks_held} chunks on {proxy.connections_during_stall} new"
                f" connections; first call after resume {recovery:.2f}s"
                f" (pool {stats_stalled.get('connections_errors', 0)} connect errors while"
                f" silent); raised but applied once the network returned: {late}"
            )
            for s in silent:
                assert s.error is not None, f"answered through a silent network: {s.describe()}"
                kind_bound = next(
                    (b for cls, b in bounds.items() if isinstance(s.error, cls)), None
                )
                assert kind_bound is not None, f"unexpected error: {s.describe()}"
                low, high = kind_bound
                assert low - EARLY <= s.seconds <= high + MARGIN, s.describe()
            assert isinstance(silent[0].error, OutcomeUnknown), silent[0].describe()
            assert recovered.error is None, recovered.describe()
            assert recovery <= pool_timeout
            assert [a.describe() for a in after if a.error] == []
            # committed behind the silence: applied, once, and readable by its request id
            assert found is not None
            assert found.cash_balance == INITIAL_CASH + 2
    assert ledger_problems(cluster, pids, driver.outcomes) == []
    with _admin(cluster) as conn:
        made = conn.execute(
            "SELECT count(*) FROM pgportfolio.portfolio_summary WHERE name = 'made-in-silence'"
        ).fetchone()
    assert made is not None
    assert made[0] <= 1
    assert session_problems(cluster.dsn) == []


async def test_advisory_lock_behind_a_silent_peer_is_bounded(cluster: LocalCluster) -> None:
    """advisory_lock() is a call like the others: behind a silent peer it must fail
    within its bound, not wait for the network to return. Its fair bound is the lock
    wait the caller allowed (``timeout``, enforced by the server) plus call_timeout.
    (Regression: it used to wait until the network came back.)"""
    call_timeout, lock_wait = 0.5, 1.0
    key = 424242
    with FaultProxy("127.0.0.1", port_of(cluster.dsn)) as proxy:
        async with AsyncPortfolioClient(
            make_conninfo(cluster.dsn, port=str(proxy.port)),
            min_size=1,
            max_size=2,
            pool_timeout=1.0,
            call_timeout=call_timeout,
            monitor=Monitor(),
        ) as client:
            ended = asyncio.Event()

            async def take() -> None:
                try:
                    async with client.advisory_lock(key, timeout=lock_wait):
                        pass
                except Exception:  # any error will do; the point is when it comes
                    pass
                finally:
                    ended.set()

            with _admin(cluster) as holder:
                holder.execute("SELECT pg_advisory_lock(%s)", (key,))
                task = asyncio.ensure_future(take())
                await _wait_for_lock_waiters(cluster, 1)  # it waits in the server
                proxy.stall()  # ... and the network goes silent
                silent_since = time.monotonic()
                holder.execute("SELECT pg_advisory_unlock(%s)", (key,))  # granted; reply held
            try:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(ended.wait(), lock_wait + call_timeout + MARGIN)
                waited = time.monotonic() - silent_since
                print(f"\nadvisory_lock behind a silent peer: ended={ended.is_set()} {waited:.2f}s")
                assert ended.is_set(), (
                    f"advisory_lock still waiting {waited:.1f}s after the peer went silent "
                    f"(lock wait {lock_wait}s, call_timeout {call_timeout}s)"
                )
                assert waited >= lock_wait - EARLY, "gave up before the lock wait it was allowed"
            finally:
                proxy.resume()
                await task
    assert session_problems(cluster.dsn) == []


# --- (5) the checks themselves -----------------------------------------------------------


async def test_negative_controls_for_the_checks(cluster: LocalCluster) -> None:
    """The session check flags a session idle in a transaction that holds a row lock,
    and the ledger check flags a mutation applied twice under another request id and an
    acknowledgement that does not match the log."""
    pids = create_portfolios(cluster, 1)
    assert session_problems(cluster.dsn, settle=0) == []
    with psycopg.connect(cluster.dsn) as leaky:  # not autocommit: stays in a transaction
        leaky.execute(
            "SELECT 1 FROM pgportfolio.portfolios WHERE portfolio_id = %s FOR UPDATE", (pids[0],)
        )
        problems = session_problems(cluster.dsn, settle=0.2)
        leaky.rollback()
    assert len(problems) == 1
    assert "idle in transaction" in problems[0]
    assert "RowShareLock" in problems[0]
    assert session_problems(cluster.dsn, settle=0) == []

    async with Driver("async", cluster.dsn, min_size=1, max_size=1) as driver:
        first = await driver.deposit(pids[0], "once")
        assert first.acknowledged
        assert ledger_problems(cluster, pids, driver.outcomes) == []
        # a blind replay: the same deposit again under a new request id
        with _admin(cluster) as conn:
            conn.execute("SELECT pgportfolio.deposit_cash(%s, 1, 'replayed')", (pids[0],))
        flagged = ledger_problems(cluster, pids, driver.outcomes)
        assert any("nobody asked for" in p for p in flagged), flagged
        # an acknowledgement the log does not back
        driver.outcomes.append(
            Outcome(
                "deposit_cash",
                pids[0],
                "phantom",
                result=MutationResult(pids[0], 99, D(0), None, None, None, D(0), False),
            )
        )
        flagged = ledger_problems(cluster, pids, driver.outcomes)
        assert any("acknowledged" in p and "phantom" in p for p in flagged), flagged
