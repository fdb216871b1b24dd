"""The async client against a real database: every method, typed errors, Decimal only."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import psycopg
import pytest

from pgportfolio import (
    AsyncPortfolioClient,
    Deposit,
    InsufficientCash,
    InsufficientPosition,
    InvalidInput,
    OptimisticLockError,
    PortfolioNotFound,
    PositionAlreadyOpen,
    PositionRequest,
    RequestIdReused,
    VersionConflict,
    Withdraw,
)
from pgportfolio.operations import Order

D = Decimal


async def test_every_mutation_and_read(aclient: AsyncPortfolioClient) -> None:
    pid = await aclient.create_portfolio("async all", D("100000"))
    r = await aclient.deposit_cash(pid, D("500"))
    assert (r.portfolio_version, r.cash_balance, r.duplicate) == (2, D("100500"), False)
    r = await aclient.withdraw_cash(pid, D("250.5"))
    assert r.cash_balance == D("100249.5")
    r = await aclient.charge_fee(pid, D("0.5"))
    assert (r.cash_balance, r.realized_pnl) == (D("100249"), D("-0.5"))
    r = await aclient.open_position(pid, "AAPL", D("100"), D("150"), fee=D("1"))
    assert (r.position_quantity, r.position_avg_price, r.cash_balance) == (
        D("100"),
        D("150"),
        D("85248"),
    )
    r = await aclient.add_to_position(pid, "AAPL", D("50"), D("153"))
    assert r.position_avg_price == D("151")
    r = await aclient.reduce_position(pid, "AAPL", D("30"), D("160"))
    assert (r.position_quantity, r.realized_pnl) == (D("120"), D("270"))
    r = await aclient.apply_fill(pid, "AAPL", D("-200"), D("150"))  # flip to short 80
    assert r.position_quantity == D("-80")
    await aclient.update_market_price("AAPL", D("140"))
    snap = await aclient.get_portfolio(pid)
    assert snap.version == r.portfolio_version
    assert snap.positions["AAPL"].quantity == D("-80")
    assert snap.positions["AAPL"].unrealized_pnl == D("800")  # short 80 from 150 to 140
    assert snap.equity == snap.cash_balance + D("-80") * D("140")
    r = await aclient.close_position(pid, "AAPL", D("140"))
    assert (r.position_quantity, r.position_avg_price) == (D("0"), None)
    checks = await aclient.verify_portfolio(pid)
    assert checks
    assert all(c.ok for c in checks), [c for c in checks if not c.ok]
    events = await aclient.events_since(pid, 1)
    assert [e.kind for e in events] == [
        "deposit",
        "withdraw",
        "fee",
        "open",
        "add",
        "reduce",
        "flip",
        "close",
    ]


async def test_typed_errors_carry_portfolio_and_versions(aclient: AsyncPortfolioClient) -> None:
    pid = await aclient.create_portfolio("async errors", D("100"))
    with pytest.raises(InsufficientCash) as cash:
        await aclient.withdraw_cash(pid, D("101"))
    assert cash.value.portfolio_id == pid
    with pytest.raises(InsufficientPosition):
        await aclient.close_position(pid, "MSFT", D("1"))
    await aclient.open_position(pid, "MSFT", D("1"), D("1"))
    with pytest.raises(PositionAlreadyOpen):
        await aclient.open_position(pid, "MSFT", D("1"), D("1"))
    with pytest.raises(PortfolioNotFound):
        await aclient.deposit_cash(2**62, D("1"))
    with pytest.raises(VersionConflict) as conflict:
        await aclient.deposit_cash(pid, D("1"), expected_version=1)
    assert (conflict.value.expected_version, conflict.value.found_version) == (1, 2)
    await aclient.deposit_cash(pid, D("1"), request_id="dup-1")
    with pytest.raises(RequestIdReused):
        await aclient.deposit_cash(pid, D("2"), request_id="dup-1")
    with pytest.raises(InvalidInput):
        await aclient.apply_fill(pid, "msft", D("1"), D("1"))
    with pytest.raises(InvalidInput):
        await aclient.deposit_cash(pid, D("NaN"))
    snap = await aclient.get_portfolio(pid)
    assert snap.version == 3  # create, open, deposit: every refusal changed nothing


@pytest.mark.parametrize("bad", [1.5, True, "1", None])
async def test_non_decimal_money_is_refused_before_sending(
    aclient: AsyncPortfolioClient, bad: object
) -> None:
    with pytest.raises(InvalidInput, match="must be a Decimal"):
        await aclient.deposit_cash(1, bad)  # type: ignore[arg-type]


async def test_idempotent_replay_returns_the_original(aclient: AsyncPortfolioClient) -> None:
    pid = await aclient.create_portfolio("async idem", D("1000"))
    first = await aclient.apply_fill(pid, "X", D("2"), D("10"), request_id="fill-1")
    again = await aclient.apply_fill(pid, "X", D("2"), D("10"), request_id="fill-1")
    assert again.duplicate
    assert (again.portfolio_version, again.cash_balance) == (
        first.portfolio_version,
        first.cash_balance,
    )
    assert aclient.monitor.snapshot()["duplicates"] == 1
    found = await aclient.find_request(pid, "fill-1")
    assert found is not None
    assert found.portfolio_version == first.portfolio_version
    assert await aclient.find_request(pid, "never-sent") is None


async def test_concurrent_opening_with_gather(aclient: AsyncPortfolioClient) -> None:
    """The seed's first example: open three positions at once on one portfolio."""
    pid = await aclient.create_portfolio("gather", D("100000"))
    portfolio = aclient.portfolio(pid)

    async def open_positions() -> list[object]:
        tasks = []
        for symbol in ["AAPL", "GOOGL", "MSFT"]:
            request = PositionRequest(symbol=symbol, quantity=D("100"), entry_price=D("150"))
            tasks.append(portfolio.open_position(request))
        return list(await asyncio.gather(*tasks))

    results = await open_positions()
    assert len(results) == 3
    snap = await portfolio.snapshot()
    assert sorted(snap.positions) == ["AAPL", "GOOGL", "MSFT"]
    assert snap.cash_balance == D("55000")
    assert snap.version == 4


async def test_portfolio_handle_returns_realized_pnl(aclient: AsyncPortfolioClient) -> None:
    pid = await aclient.create_portfolio("handle", D("10000"))
    portfolio = aclient.portfolio(pid)
    await portfolio.open_position(PositionRequest("AAPL", D("10"), D("100")))
    await portfolio.add_to_position("AAPL", D("10"), D("110"))
    assert await portfolio.reduce_position("AAPL", D("5"), D("120")) == D("75")
    await portfolio.update_position_price("AAPL", D("130"))
    snap = await portfolio.snapshot()
    assert snap.unrealized_pnl == D("15") * D("130") - D("1575")
    assert await portfolio.close_position("AAPL", D("130")) == D("375")


async def test_repository_style_optimistic_update(
    aclient: AsyncPortfolioClient, shared_db: str
) -> None:
    """The seed's repository example: read, change cash, write with the version; a
    conflicting writer forces a reload; retries run out as OptimisticLockError."""
    pid = await aclient.create_portfolio("optimistic", D("5000"))
    result = await aclient.update_optimistically(pid, lambda snap: Withdraw(D("1000")))
    assert result is not None
    assert result.cash_balance == D("4000")

    interfering = 0

    def compute_while_someone_writes(snap: object) -> Deposit:
        # Another writer changes the portfolio after every read: a conflict each time.
        nonlocal interfering
        interfering += 1
        with psycopg.connect(shared_db, autocommit=True) as other:
            other.execute("SELECT pgportfolio.deposit_cash(%s, 1)", (pid,))
        return Deposit(D("10"))

    with pytest.raises(OptimisticLockError) as exc:
        await aclient.update_optimistically(pid, compute_while_someone_writes, max_retries=2)
    assert exc.value.attempts == 3
    assert exc.value.portfolio_id == pid
    assert exc.value.expected_version is not None
    assert exc.value.found_version is not None
    assert exc.value.found_version > exc.value.expected_version
    assert interfering == 3
    assert aclient.monitor.snapshot()["version_conflicts"] >= 3


async def test_position_manager_names(aclient: AsyncPortfolioClient) -> None:
    pid = await aclient.create_portfolio("manager", D("10000"))
    manager = aclient.position_manager()
    position = await manager.open_position_async(Order(pid, "TSLA", D("10"), D("200")))
    assert position.quantity == D("10")
    updated = await manager.update_position_async(position, Order(pid, "TSLA", D("5"), D("210")))
    assert updated is not None
    assert updated.quantity == D("15")
    assert await manager.calculate_pnl_async(updated, D("220")) == D("15") * D("220") - D("3050")
    assert (
        await manager.update_position_async(updated, Order(pid, "TSLA", D("-15"), D("220"))) is None
    )


async def test_advisory_lock_is_exclusive_and_times_out(aclient: AsyncPortfolioClient) -> None:
    from pgportfolio import LockTimeout

    async with aclient.advisory_lock("rebalance-desk-1", timeout=1):
        with pytest.raises(LockTimeout):
            async with aclient.advisory_lock("rebalance-desk-1", timeout=0.1):
                pass
    async with aclient.advisory_lock("rebalance-desk-1", timeout=0.1):
        pass


async def test_subscribe_pushes_changes(aclient: AsyncPortfolioClient) -> None:
    pid = await aclient.create_portfolio("push", D("1000"))
    stream = aclient.subscribe([pid])
    first = await asyncio.wait_for(anext(stream), 5)
    assert (first.portfolio_id, first.version, first.kind, first.gap) == (pid, 1, "resync", True)
    await aclient.deposit_cash(pid, D("5"))
    await aclient.apply_fill(pid, "Q", D("1"), D("1"))
    got = [await asyncio.wait_for(anext(stream), 5) for _ in range(2)]
    assert [(e.version, e.kind, e.gap) for e in got] == [(2, "deposit", False), (3, "open", False)]
    await stream.aclose()


async def test_bulk_price_ticks(aclient: AsyncPortfolioClient) -> None:
    pid = await aclient.create_portfolio("ticks", D("1000"))
    await aclient.apply_fill(pid, "TK1", D("2"), D("10"))
    written = await aclient.update_market_prices({"TK1": D("12"), "TK2": D("5.5")})
    assert written == 2
    assert await aclient.update_market_prices([("TK1", D("13")), ("TK1", D("14"))]) == 1
    snap = await aclient.get_portfolio(pid)
    assert snap.positions["TK1"].mark_price == D("14")  # the last price given wins
    assert snap.version == 2  # ticks never touch the portfolio
    with pytest.raises(InvalidInput):
        await aclient.update_market_prices({"TK1": D("15"), "bad": D("1")})
    assert (await aclient.get_portfolio(pid)).positions["TK1"].mark_price == D(
        "14"
    )  # all or nothing
    with pytest.raises(InvalidInput):
        await aclient.update_market_prices({"TK1": 1.5})  # type: ignore[dict-item]


async def test_apply_fills_method_answers_each_element(aclient: AsyncPortfolioClient) -> None:
    from pgportfolio import Fill

    pid = await aclient.create_portfolio("batch method", D("100"))
    answers = await aclient.apply_fills(
        [
            (pid, Fill("BM1", D("1"), D("10"))),
            (pid, Fill("BM2", D("1"), D("500"))),
            (pid, Fill("BM1", D("-1"), D("12"))),
        ]
    )
    assert [type(a).__name__ for a in answers] == [
        "MutationResult",
        "InsufficientCash",
        "MutationResult",
    ]
    last = answers[2]
    assert not isinstance(last, Exception)
    assert (last.portfolio_version, last.position_quantity, last.realized_pnl) == (
        3,
        D("0"),
        D("2"),
    )
    assert await aclient.apply_fills([]) == []


async def test_subscribe_survives_a_lost_connection_without_missing_anything(
    aclient: AsyncPortfolioClient, shared_db: str
) -> None:
    """The subscriber's session is killed and mutations commit while it is down: after
    reconnecting it yields exactly the events it had not yet yielded, in order, with no
    gap (the log kept them)."""
    pid = await aclient.create_portfolio("push reconnect", D("1000"))
    stream = aclient.subscribe([pid], reconnect_delay=1.0)
    first = await asyncio.wait_for(anext(stream), 5)
    assert (first.version, first.kind, first.gap) == (1, "resync", True)
    await aclient.deposit_cash(pid, D("5"))
    seen = await asyncio.wait_for(anext(stream), 5)
    assert (seen.version, seen.kind) == (2, "deposit")
    with psycopg.connect(shared_db, autocommit=True) as admin:
        killed = admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND query LIKE %s AND pid <> pg_backend_pid()",
            ("%events_after%",),
        ).fetchall()
        assert killed  # the subscriber's session was found and ended
    # Within the second before it reconnects:
    await aclient.withdraw_cash(pid, D("1"))
    await aclient.apply_fill(pid, "RC", D("1"), D("2"))
    got = [await asyncio.wait_for(anext(stream), 10) for _ in range(2)]
    assert [(e.version, e.kind, e.gap) for e in got] == [(3, "withdraw", False), (4, "open", False)]
    await aclient.charge_fee(pid, D("1"))
    after = await asyncio.wait_for(anext(stream), 5)
    assert (after.version, after.kind, after.gap) == (5, "fee", False)
    await stream.aclose()


async def test_subscribe_yields_every_element_of_a_batch(aclient: AsyncPortfolioClient) -> None:
    """apply_fills commits many versions at once: each is its own event, in order, and a
    portfolio's events never interleave out of order with another's."""
    from pgportfolio import Fill

    a = await aclient.create_portfolio("push batch a", D("1000"))
    b = await aclient.create_portfolio("push batch b", D("1000"))
    stream = aclient.subscribe([b, a])
    starts = {(e.portfolio_id, e.kind) for e in [await anext(stream), await anext(stream)]}
    assert starts == {(a, "resync"), (b, "resync")}
    answers = await aclient.apply_fills(
        [
            (a, Fill("BT", D("2"), D("10"))),
            (b, Fill("BT", D("-1"), D("10"))),
            (a, Fill("BT", D("-1"), D("11"))),
            (a, Fill("BT", D("-3"), D("12"))),
            (b, Fill("BT", D("1"), D("9"))),
        ]
    )
    assert all(not isinstance(x, Exception) for x in answers)
    got = [await asyncio.wait_for(anext(stream), 5) for _ in range(5)]
    assert [(e.version, e.kind) for e in got if e.portfolio_id == a] == [
        (2, "open"),
        (3, "reduce"),
        (4, "flip"),
    ]
    assert [(e.version, e.kind) for e in got if e.portfolio_id == b] == [(2, "open"), (3, "close")]
    await stream.aclose()


async def test_subscribe_catches_up_a_backlog_without_waiting_an_interval_per_step(
    aclient: AsyncPortfolioClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A read returns at most SUBSCRIBE_BATCH events per portfolio; a full one is followed
    by the next read at once, so a backlog never waits ``interval`` per step."""
    from pgportfolio._async import client as client_module

    monkeypatch.setattr(client_module, "SUBSCRIBE_BATCH", 2)
    pid = await aclient.create_portfolio("push backlog", D("1000"))
    stream = aclient.subscribe([pid], interval=3.0)
    assert (await asyncio.wait_for(anext(stream), 5)).kind == "resync"
    for _ in range(6):
        await aclient.deposit_cash(pid, D("1"))  # versions 2..7: three full reads
    started = asyncio.get_running_loop().time()
    got = [await asyncio.wait_for(anext(stream), 10) for _ in range(6)]
    elapsed = asyncio.get_running_loop().time() - started
    assert [e.version for e in got] == [2, 3, 4, 5, 6, 7]
    assert elapsed < 2.5  # one interval is 3 s: no read waited for one
    await stream.aclose()


@pytest.mark.parametrize("options", [{"interval": 0}, {"interval": -1.0}, {"reconnect_delay": 0}])
async def test_subscribe_refuses_a_timing_that_is_not_positive(
    aclient: AsyncPortfolioClient, options: dict[str, float]
) -> None:
    with pytest.raises(InvalidInput):
        await anext(aclient.subscribe([1], **options))


async def test_a_lone_caller_keeps_one_backend(shared_db: str) -> None:
    """The pool hands out the connection returned last, so calls made one at a time run on
    one warm backend; psycopg_pool alone hands out the one idle longest, and a lone caller
    visits every backend of the pool in turn (fails with four pids on a plain pool)."""
    async with AsyncPortfolioClient(shared_db, min_size=4, max_size=4) as client:
        pid = await client.create_portfolio("lone caller", D("1000"))
        backends = set()
        for n in range(8):
            await client.deposit_cash(pid, D("1"), request_id=f"lone-{n}")
            async with client.pool.connection() as conn:
                cur = await conn.execute("SELECT pg_backend_pid()")
                row = await cur.fetchone()
                assert row is not None
                backends.add(row[0])
        assert len(backends) == 1
        assert client.pool.get_stats()["pool_size"] == 4  # all four were there to choose from
