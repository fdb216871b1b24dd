"""``pgportfolio drill failover``: trade through crashes of the primary, then prove that every
acknowledged operation survived exactly once.

Traders (half through the client, half through raw SQL with request ids, each on a
portfolio of its own) deposit, withdraw and fill without pause while the primary of a
pg_auto_failover formation is killed (SIGKILL of its keeper and postmaster), one or more
times; the killed node is started again and rejoins as a standby before the next kill.
Then, on the new primary, every operation is looked up by its request id:

- acknowledged: must be there exactly once, with the cash effect the trader computed;
- refused with a typed error ("nothing changed"): must not be there;
- unknown outcome: looked up now and counted as unresolved (the caller was told so).

Each portfolio's cash and positions must equal what the operations present add up to,
nothing else may have been applied to it, and ``verify_portfolio`` must be clean on the
primary and on every standby. With ``synchronous=False`` (the negative control) the
formation runs with asynchronous replication and the same drill is expected to find
acknowledged operations lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg

from pgportfolio import AsyncPortfolioClient, OutcomeUnknown, PortfolioError
from pgportfolio.errors import ReplicationUnconfirmed
from pgportfolio.ha.formation import Formation, FormationError, NodeState
from pgportfolio.migrate import migrate
from pgportfolio.syncrep import BARRIER, watching

INITIAL_CASH = Decimal(1_000_000_000)
SYMBOLS = ("AAA", "BBB", "CCC")
CENT = Decimal("0.01")
# what each kind of operation is, as a call of its SQL function (the raw-SQL traders)
RAW_SQL = {
    "deposit_cash": "SELECT portfolio_version FROM pgportfolio.deposit_cash("
    "p_portfolio_id => %(portfolio_id)s, p_amount => %(amount)s, p_request_id => %(request_id)s)",
    "withdraw_cash": "SELECT portfolio_version FROM pgportfolio.withdraw_cash("
    "p_portfolio_id => %(portfolio_id)s, p_amount => %(amount)s, p_request_id => %(request_id)s)",
    "apply_fill": "SELECT portfolio_version FROM pgportfolio.apply_fill("
    "p_portfolio_id => %(portfolio_id)s, p_symbol => %(symbol)s, p_quantity => %(quantity)s,"
    " p_price => %(price)s, p_fee => %(fee)s, p_request_id => %(request_id)s)",
}


@dataclass
class DrillSettings:
    directory: Path | None = None  # an existing formation; None: a new one, removed after
    traders: int = 100
    failovers: int = 1
    warmup: float = 5.0  # seconds of trading before the first kill
    settle: float = 3.0  # seconds of trading on a healthy formation after each rejoin
    min_acknowledged: int = 0  # keep trading after the last failover until this many
    # seconds the standbys' WAL receivers are stopped right before each kill: the crash
    # comes while every standby lags behind, where asynchronous replication loses writes
    stall: float = 0.0
    synchronous: bool = True
    resolve_timeout: float = 60.0
    seed: int = 1
    json_path: Path | None = None
    log: Callable[[str], None] = print

    def __post_init__(self) -> None:
        if self.traders < 2 or self.failovers < 0:
            raise ValueError("need at least 2 traders and 0 or more failovers")


@dataclass
class Operation:
    request_id: str
    portfolio_id: int
    kind: str  # deposit_cash, withdraw_cash, apply_fill
    params: dict[str, Any]
    cash_delta: Decimal
    symbol: str | None
    quantity: Decimal
    started: float = 0.0
    ended: float = 0.0
    outcome: str = "pending"  # acknowledged, refused, unknown
    error: str = ""


@dataclass
class Failover:
    killed: str
    at: float  # monotonic
    seconds: float  # until a write committed on another node
    rejoined_seconds: float  # until the killed node was a standby again


@dataclass
class DrillResult:
    synchronous: bool
    traders: int
    operations: int
    acknowledged: int
    lost: int
    duplicated: int
    unresolved: int
    refused: int
    refused_but_applied: int
    unexpected_events: int
    cash_mismatches: int
    position_mismatches: int
    verify_failures: int
    nodes_verified: list[str]
    failover_seconds: list[float]
    rejoin_seconds: list[float]
    p99_outside_failover_ms: float | None
    p99_during_failover_ms: float | None
    trading_seconds: float
    errors: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return (
            self.lost == 0
            and self.duplicated == 0
            and self.refused_but_applied == 0
            and self.unexpected_events == 0
            and self.cash_mismatches == 0
            and self.position_mismatches == 0
            and self.verify_failures == 0
        )


class _Trader:
    """Makes one portfolio's operations, one at a time."""

    def __init__(self, index: int, portfolio_id: int, seed: int) -> None:
        self.index = index
        self.portfolio_id = portfolio_id
        self.rng = random.Random(seed * 1_000_003 + index)
        self.count = 0
        self.operations: list[Operation] = []

    def next_operation(self) -> Operation:
        self.count += 1
        request_id = f"drill-{self.index}-{self.count}"
        pick = self.rng.random()
        if pick < 0.3 or pick < 0.4:
            kind = "deposit_cash" if pick < 0.3 else "withdraw_cash"
            amount = Decimal(self.rng.randint(1, 10_000)) * CENT
            params = {"portfolio_id": self.portfolio_id, "amount": amount}
            delta = amount if kind == "deposit_cash" else -amount
            op = Operation(request_id, self.portfolio_id, kind, params, delta, None, Decimal(0))
        else:
            symbol = self.rng.choice(SYMBOLS)
            quantity = Decimal(self.rng.choice((-1, 1)) * self.rng.randint(1, 10))
            price = Decimal(self.rng.randint(1_000, 20_000)) * CENT
            fee = Decimal(self.rng.randint(0, 100)) * CENT
            params = {
                "portfolio_id": self.portfolio_id,
                "symbol": symbol,
                "quantity": quantity,
                "price": price,
                "fee": fee,
            }
            delta = -(quantity * price) - fee
            op = Operation(
                request_id, self.portfolio_id, "apply_fill", params, delta, symbol, quantity
            )
        op.params["request_id"] = request_id
        self.operations.append(op)
        return op


class _Load:
    """The traders, the stop flag, and the clock."""

    def __init__(self, settings: DrillSettings, writer_dsn: str) -> None:
        self.settings = settings
        self.writer_dsn = writer_dsn
        self.stopping = asyncio.Event()
        self.enough = asyncio.Event()  # min_acknowledged reached
        self.traders: list[_Trader] = []
        self.acknowledged = 0
        if settings.min_acknowledged <= 0:
            self.enough.set()

    def acknowledge(self, op: Operation) -> None:
        op.outcome = "acknowledged"
        self.acknowledged += 1
        if self.acknowledged >= self.settings.min_acknowledged:
            self.enough.set()

    async def client_trader(self, client: AsyncPortfolioClient, trader: _Trader) -> None:
        calls = {
            "deposit_cash": client.deposit_cash,
            "withdraw_cash": client.withdraw_cash,
        }
        while not self.stopping.is_set():
            op = trader.next_operation()
            op.started = time.monotonic()
            try:
                if op.kind == "apply_fill":
                    p = op.params
                    await client.apply_fill(
                        p["portfolio_id"], p["symbol"], p["quantity"], p["price"],
                        fee=p["fee"], request_id=op.request_id,
                    )  # fmt: skip
                else:
                    await calls[op.kind](
                        op.portfolio_id, op.params["amount"], request_id=op.request_id
                    )
                self.acknowledge(op)
            except OutcomeUnknown as exc:
                op.outcome, op.error = "unknown", type(exc).__name__
            except PortfolioError as exc:  # typed: nothing changed
                op.outcome, op.error = "refused", type(exc).__name__
                await asyncio.sleep(0.05)
            op.ended = time.monotonic()

    async def raw_sql_trader(self, trader: _Trader) -> None:
        """What a caller without this client does: send the function call with a request
        id; after a lost connection or a cancelled synchronous-replication wait, connect
        again and send the same call under the same id, followed by a barrier commit
        (pgportfolio.syncrep), until it answers or resolve_timeout passes."""
        conn: psycopg.AsyncConnection[Any] | None = None
        try:
            while not self.stopping.is_set():
                op = trader.next_operation()
                op.started = time.monotonic()
                conn = await self._raw_attempts(conn, op)
                op.ended = time.monotonic()
        finally:
            if conn is not None:
                await conn.close()

    async def _raw_attempts(
        self, conn: psycopg.AsyncConnection[Any] | None, op: Operation
    ) -> psycopg.AsyncConnection[Any] | None:
        deadline = op.started + self.settings.resolve_timeout
        in_doubt = False
        while True:
            sent = False
            try:
                if conn is None or conn.closed:
                    conn = await psycopg.AsyncConnection.connect(
                        self.writer_dsn, autocommit=True, connect_timeout=2
                    )
                with watching(conn) as watch:
                    sent = True
                    await (await conn.execute(RAW_SQL[op.kind], op.params)).fetchall()
                    if in_doubt:  # the answer counts once a standby has it (syncrep)
                        await conn.execute(BARRIER)
                watch.check(op.portfolio_id)
                self.acknowledge(op)
                return conn
            except (psycopg.OperationalError, ReplicationUnconfirmed) as exc:
                if (
                    conn is not None
                    and not conn.closed
                    and not isinstance(exc, ReplicationUnconfirmed)
                ):
                    await conn.close()
                if isinstance(exc, ReplicationUnconfirmed) or sent:
                    in_doubt = True
                if time.monotonic() >= deadline:
                    op.outcome = "unknown" if in_doubt else "refused"
                    op.error = type(exc).__name__
                    return conn
                if conn is not None and conn.closed:
                    conn = None
                await asyncio.sleep(0.1)
            except psycopg.Error as exc:  # the database refused it: nothing changed
                op.outcome, op.error = "refused", exc.sqlstate or type(exc).__name__
                return conn


def _p99(values: list[float]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))] * 1000


def _stall_and_kill(formation: Formation, stall: float) -> tuple[NodeState, float]:
    """Kill the primary (after stopping the standbys' WAL receivers for ``stall``
    seconds, started again once it is dead); returns it and the monotonic kill time."""
    if stall <= 0:
        return formation.kill_primary(), time.monotonic()
    with formation.replication_paused():
        time.sleep(stall)
        at = time.monotonic()
        return formation.kill_primary(), at


async def _controller(settings: DrillSettings, formation: Formation, load: _Load) -> list[Failover]:
    log = settings.log
    failovers: list[Failover] = []
    await asyncio.sleep(settings.warmup)
    for number in range(1, settings.failovers + 1):
        await asyncio.to_thread(formation.wait_healthy, 180)
        log(f"[{load.acknowledged} acknowledged] killing the primary ({number})")
        killed, at = await asyncio.to_thread(_stall_and_kill, formation, settings.stall)
        seconds = await asyncio.to_thread(formation.wait_for_new_writer, killed, at)
        log(f"  {killed.name} killed; writes on another node after {seconds:.1f}s")
        await asyncio.to_thread(formation.start_node, killed.name)
        await asyncio.to_thread(formation.wait_healthy, 180)
        rejoined = time.monotonic() - at
        log(f"  {killed.name} is a standby again {rejoined:.1f}s after the kill")
        failovers.append(Failover(killed.name, at, seconds, rejoined))
        await asyncio.sleep(settings.settle)
    await load.enough.wait()
    load.stopping.set()
    return failovers


async def _trade(settings: DrillSettings, formation: Formation) -> tuple[_Load, list[Failover]]:
    load = _Load(settings, formation.writer_dsn)
    half = settings.traders // 2
    async with AsyncPortfolioClient(
        formation.writer_dsn, resolve_timeout=settings.resolve_timeout, name="drill"
    ) as client:
        for index in range(settings.traders):
            portfolio = await client.create_portfolio(f"drill-{index}", INITIAL_CASH)
            load.traders.append(_Trader(index, portfolio, settings.seed))
        settings.log(
            f"{settings.traders} traders ({half} through the client, "
            f"{settings.traders - half} through raw SQL), one portfolio each"
        )
        async with asyncio.TaskGroup() as group:
            for trader in load.traders[:half]:
                group.create_task(load.client_trader(client, trader))
            for trader in load.traders[half:]:
                group.create_task(load.raw_sql_trader(trader))
            failovers = await _controller(settings, formation, load)
    return load, failovers


def _wait_replayed(formation: Formation, timeout: float = 60) -> None:
    """Until every standby has replayed everything the primary has written."""
    with psycopg.connect(formation.writer_dsn, autocommit=True) as conn:
        row = conn.execute("SELECT pg_current_wal_lsn()::text").fetchone()
    assert row is not None
    target = row[0]
    deadline = time.monotonic() + timeout
    for state in formation.states():
        if not state.is_standby:
            continue
        with psycopg.connect(formation.node_dsn(state.name), autocommit=True) as conn:
            while True:
                caught_up = conn.execute(
                    "SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (target,)
                ).fetchone()
                if caught_up == (True,) or time.monotonic() > deadline:
                    break
                time.sleep(0.1)


def _reconcile(
    settings: DrillSettings,
    formation: Formation,
    load: _Load,
    failovers: list[Failover],
    seconds: float,
) -> DrillResult:
    operations = [op for trader in load.traders for op in trader.operations if op.started]
    portfolios = [trader.portfolio_id for trader in load.traders]
    with psycopg.connect(formation.writer_dsn, autocommit=True) as conn:
        events = conn.execute(
            "SELECT portfolio_id, request_id, count(*), sum(cash_delta), sum(quantity)"
            " FROM pgportfolio.events WHERE portfolio_id = ANY(%s) AND kind <> 'create'"
            " GROUP BY portfolio_id, request_id",
            (portfolios,),
        ).fetchall()
        cash: dict[int, Decimal] = dict(
            conn.execute(
                "SELECT portfolio_id, cash_balance FROM pgportfolio.portfolios"
                " WHERE portfolio_id = ANY(%s)",
                (portfolios,),
            ).fetchall()
        )
        positions = {
            (pid, symbol): quantity
            for pid, symbol, quantity in conn.execute(
                "SELECT portfolio_id, symbol, quantity FROM pgportfolio.positions"
                " WHERE portfolio_id = ANY(%s)",
                (portfolios,),
            ).fetchall()
        }
    present = {(pid, rid): (count, delta) for pid, rid, count, delta, _q in events}
    issued = {(op.portfolio_id, op.request_id) for op in operations}
    counts = dict.fromkeys(("lost", "duplicated", "refused_but_applied", "mismatch"), 0)
    expected_cash = dict.fromkeys(portfolios, INITIAL_CASH)
    expected_positions: dict[tuple[int, str], Decimal] = {}
    errors: dict[str, int] = {}
    for op in operations:
        if op.error:
            errors[op.error] = errors.get(op.error, 0) + 1
        found = present.get((op.portfolio_id, op.request_id))
        if op.outcome == "acknowledged":
            if found is None:
                counts["lost"] += 1
            elif found[0] > 1:
                counts["duplicated"] += 1
            elif found[1] != op.cash_delta:
                counts["mismatch"] += 1
        elif op.outcome == "refused" and found is not None:
            counts["refused_but_applied"] += 1
        if found is not None:
            expected_cash[op.portfolio_id] += op.cash_delta
            if op.symbol is not None:
                key = (op.portfolio_id, op.symbol)
                expected_positions[key] = expected_positions.get(key, Decimal(0)) + op.quantity
    unexpected = sum(1 for key in present if key not in issued)
    cash_mismatches = sum(cash[pid] != expected_cash[pid] for pid in portfolios)
    position_keys = set(positions) | {k for k, q in expected_positions.items() if q != 0}
    position_mismatches = sum(
        positions.get(key, Decimal(0)) != expected_positions.get(key, Decimal(0))
        for key in position_keys
    )

    _wait_replayed(formation)
    verify_failures = 0
    nodes: list[str] = []
    for state in formation.states():
        if not (state.is_standby or state.is_writer):
            continue
        nodes.append(f"{state.name} ({state.reported})")
        with psycopg.connect(formation.node_dsn(state.name), autocommit=True) as conn:
            for pid in portfolios:
                rows = conn.execute(
                    "SELECT count(*) FILTER (WHERE NOT ok) FROM pgportfolio.verify_portfolio(%s)",
                    (pid,),
                ).fetchone()
                verify_failures += 0 if rows == (0,) else 1

    windows = [(f.at, f.at + f.seconds) for f in failovers]
    during: list[float] = []
    outside: list[float] = []
    for op in operations:
        if op.outcome != "acknowledged":
            continue
        overlaps = any(op.started <= end and op.ended >= start for start, end in windows)
        (during if overlaps else outside).append(op.ended - op.started)
    return DrillResult(
        synchronous=settings.synchronous,
        traders=settings.traders,
        operations=len(operations),
        acknowledged=sum(op.outcome == "acknowledged" for op in operations),
        lost=counts["lost"],
        duplicated=counts["duplicated"] + counts["mismatch"],
        unresolved=sum(op.outcome == "unknown" for op in operations),
        refused=sum(op.outcome == "refused" for op in operations),
        refused_but_applied=counts["refused_but_applied"],
        unexpected_events=unexpected,
        cash_mismatches=cash_mismatches,
        position_mismatches=position_mismatches,
        verify_failures=verify_failures,
        nodes_verified=nodes,
        failover_seconds=[round(f.seconds, 2) for f in failovers],
        rejoin_seconds=[round(f.rejoined_seconds, 2) for f in failovers],
        p99_outside_failover_ms=_p99(outside),
        p99_during_failover_ms=_p99(during),
        trading_seconds=round(seconds, 1),
        errors=errors,
    )


def set_synchronous(formation: Formation, synchronous: bool) -> None:
    """Every node in the write quorum with one synchronous standby (pg_auto_failover's
    default here) or none (asynchronous replication: the negative control). One change at
    a time: the monitor refuses the next while the primary applies the last. The
    formation setting is changed from a node's directory: pg_autoctl 2.0 refuses 0 from
    the monitor's."""
    if (formation.synchronous_standby_names() != "") == synchronous:
        return
    first = str(formation.pgdata(next(iter(formation.node_ports))))
    sync_standbys = ("set", "formation", "number-sync-standbys", "1" if synchronous else "0")
    quorum = [
        (
            "set",
            "node",
            "replication-quorum",
            str(synchronous).lower(),
            "--pgdata",
            str(formation.pgdata(name)),
        )
        for name in formation.node_ports
    ]
    steps = [*quorum, (*sync_standbys, "--pgdata", first)]
    if not synchronous:
        steps.reverse()
    for step in steps:
        deadline = time.monotonic() + 60
        while True:
            formation.wait_healthy(120)
            try:
                formation.autoctl(*step)
                break
            except FormationError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
    deadline = time.monotonic() + 60
    while (formation.synchronous_standby_names() != "") != synchronous:
        if time.monotonic() > deadline:
            raise FormationError("synchronous_standby_names did not change within 60s")
        time.sleep(0.2)
    formation.wait_healthy(120)


def run_drill(settings: DrillSettings) -> DrillResult:
    log = settings.log
    # the pool's "error connecting" lines during a failover are expected; the drill's
    # own report says what happened
    logging.getLogger("psycopg.pool").setLevel(logging.CRITICAL)
    owned = settings.directory is None or not (settings.directory / "formation.json").is_file()
    directory = settings.directory or Path(tempfile.mkdtemp(prefix="pgportfolio-drill-"))
    started = time.monotonic()
    formation = Formation.up(directory, log=log)
    try:
        log(f"formation up in {time.monotonic() - started:.1f}s ({directory})")
        migrate(formation.writer_dsn)
        changed = time.monotonic()
        set_synchronous(formation, settings.synchronous)
        log(
            f"synchronous_standby_names = {formation.synchronous_standby_names()!r}"
            f" ({time.monotonic() - changed:.1f}s)"
        )
        trading = time.monotonic()
        load, failovers = asyncio.run(_trade(settings, formation))
        seconds = time.monotonic() - trading
        result = _reconcile(settings, formation, load, failovers, seconds)
    finally:
        if owned and settings.directory is None:
            formation.remove()
        elif not settings.synchronous:
            changed = time.monotonic()
            with contextlib.suppress(Exception):
                set_synchronous(formation, True)
            log(f"synchronous replication again ({time.monotonic() - changed:.1f}s)")
    if settings.json_path is not None:
        settings.json_path.write_text(json.dumps(asdict(result), indent=2) + "\n")
    return result


def print_result(result: DrillResult, out: Callable[[str], None] = print) -> None:
    def ms(value: float | None) -> str:
        return "-" if value is None else f"{value:.0f} ms"

    out(
        f"replication:            {'synchronous (ANY 1)' if result.synchronous else 'asynchronous'}"
    )
    out(f"operations:             {result.operations} in {result.trading_seconds}s")
    out(f"acknowledged:           {result.acknowledged}")
    out(f"lost:                   {result.lost}")
    out(f"duplicated:             {result.duplicated}")
    out(f"unresolved:             {result.unresolved}")
    out(f"refused (typed error):  {result.refused} ({result.refused_but_applied} applied anyway)")
    out(f"unexpected events:      {result.unexpected_events}")
    out(f"cash / position errors: {result.cash_mismatches} / {result.position_mismatches}")
    nodes = ", ".join(result.nodes_verified)
    out(f"verify_portfolio:       {result.verify_failures} failed on {nodes}")
    out(f"failover seconds:       {', '.join(f'{s:.1f}' for s in result.failover_seconds)}")
    out(f"rejoin seconds:         {', '.join(f'{s:.1f}' for s in result.rejoin_seconds)}")
    out(f"writers' p99:           {ms(result.p99_outside_failover_ms)} outside failover, "
        f"{ms(result.p99_during_failover_ms)} during")  # fmt: skip
    if result.errors:
        out(
            "errors:                 "
            + ", ".join(f"{k} {v}" for k, v in sorted(result.errors.items()))
        )
    out("PASSED: every acknowledged operation is there exactly once" if result.ok else "FAILED")
