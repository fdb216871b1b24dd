"""Coalescing: concurrent apply_fill calls travel together, each caller gets its own answer."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal

import psycopg
import pytest

from pgportfolio import (
    AsyncPortfolioClient,
    ConnectionUnavailable,
    Fill,
    InProcessLockTimeout,
    InsufficientCash,
    InvalidInput,
    Monitor,
    RetryPolicy,
    VersionConflict,
)

D = Decimal


async def test_idle_client_sends_each_fill_alone(aclient: AsyncPortfolioClient) -> None:
    pid = await aclient.create_portfolio("idle", D("1000"))
    for _ in range(3):
        await aclient.apply_fill(pid, "IDL", D("1"), D("1"))
    batches = aclient.monitor.snapshot()["batches"]
    assert (batches["calls"], batches["fills"], batches["largest"]) == (3, 3, 1)


async def test_concurrent_callers_share_calls_and_get_their_own_results(
    aclient: AsyncPortfolioClient,
) -> None:
    rich = await aclient.create_portfolio("rich", D("1000000"))
    poor = await aclient.create_portfolio("poor", D("10"))

    async def buy(pid: int, n: int) -> object:
        try:
            return await aclient.apply_fill(pid, f"C{n % 5}", D("1"), D("20"))
        except InsufficientCash as exc:
            return exc

    outcomes = await asyncio.gather(*(buy(rich if n % 10 else poor, n) for n in range(200)))
    errors = [o for o in outcomes if isinstance(o, InsufficientCash)]
    assert len(errors) == 20  # every fill on "poor" needs 20 and it has 10
    assert all(e.portfolio_id == poor for e in errors)
    versions = sorted(o.portfolio_version for o in outcomes if not isinstance(o, Exception))  # type: ignore[attr-defined]
    assert versions == list(range(2, 182))  # 180 fills on "rich", each its own version
    batches = aclient.monitor.snapshot()["batches"]
    assert batches["calls"] < 200  # they really were combined
    assert batches["largest"] > 1
    snap = await aclient.get_portfolio(rich)
    assert snap.version == 181
    assert all(c.ok for c in await aclient.verify_portfolio(rich))


async def test_errors_in_a_batch_are_per_caller(aclient: AsyncPortfolioClient) -> None:
    pid = await aclient.create_portfolio("mixed", D("100"))
    results = await asyncio.gather(
        aclient.apply_fill(pid, "OK1", D("1"), D("10")),
        aclient.apply_fill(pid, "NAN", D("NaN"), D("10")),
        aclient.apply_fill(pid, "OK2", D("1"), D("10"), expected_version=1),
        aclient.apply_fill(pid, "BIG", D("1"), D("1000")),
        aclient.apply_fill(pid, "OK3", D("1"), D("10")),
        return_exceptions=True,
    )
    kinds = [type(r).__name__ for r in results]
    assert kinds[1] == "InvalidInput"
    assert kinds[3] == "InsufficientCash"
    assert not isinstance(results[0], Exception)
    assert not isinstance(results[4], Exception)
    # The CAS fill succeeds only when it was the first to apply (version 1 -> 2).
    cas = results[2]
    if isinstance(cas, Exception):
        assert isinstance(cas, VersionConflict)
        assert cas.expected_version == 1
    else:
        assert cas.portfolio_version == 2


async def test_switched_off_sends_one_call_per_fill(shared_db: str) -> None:
    monitor = Monitor()
    async with AsyncPortfolioClient(
        shared_db, max_size=4, monitor=monitor, coalesce=False
    ) as client:
        pid = await client.create_portfolio("plain", D("1000"))
        await asyncio.gather(*(client.apply_fill(pid, "P", D("1"), D("1")) for _ in range(20)))
    snap = monitor.snapshot()
    assert snap["batches"]["calls"] == 0
    assert snap["locks"]["portfolio"]["acquisitions"] == 20


async def test_batch_is_retried_after_a_lock_timeout(shared_db: str) -> None:
    """A whole-call retryable error (55P03) retries the batch with the same request ids."""
    monitor = Monitor()
    async with AsyncPortfolioClient(
        shared_db + " options='-c pgportfolio.lock_timeout=100ms'",
        max_size=4,
        monitor=monitor,
        retry=RetryPolicy(max_retries=8, base_delay=0.05, max_delay=0.2, jitter=False),
    ) as client:
        pid = await client.create_portfolio("retry", D("1000"))
        with psycopg.connect(shared_db) as holder:
            holder.execute("SELECT pgportfolio.deposit_cash(%s, 1)", (pid,))  # holds the row lock
            task = asyncio.create_task(client.apply_fill(pid, "R", D("1"), D("1")))
            await asyncio.sleep(0.3)
            holder.commit()
        result = await task
    assert result.portfolio_version == 3
    assert monitor.snapshot()["retries"].get("lock_timeout", 0) >= 1


async def test_cancelled_waiter_withdraws_its_fill(shared_db: str) -> None:
    async with AsyncPortfolioClient(shared_db, max_size=4, max_combiners=1) as client:
        pid = await client.create_portfolio("cancel", D("1000"))
        with psycopg.connect(shared_db) as holder:
            holder.execute(
                "SELECT 1 FROM pgportfolio.portfolios WHERE portfolio_id = %s FOR UPDATE", (pid,)
            )
            first = asyncio.create_task(client.apply_fill(pid, "K", D("1"), D("1")))
            await asyncio.sleep(0.1)  # the first is in flight, waiting on the row
            second = asyncio.create_task(client.apply_fill(pid, "K", D("1"), D("1")))
            third = asyncio.create_task(client.apply_fill(pid, "K", D("1"), D("1")))
            await asyncio.sleep(0.1)  # both queued behind it
            third.cancel()
            await asyncio.sleep(0.1)
        await asyncio.gather(first, second)
        with pytest.raises(asyncio.CancelledError):
            await third
        snap = await client.get_portfolio(pid)
        # Cancelled while still queued: withdrawn, never sent.
        assert snap.positions["K"].quantity == D("2")
        assert all(c.ok for c in await client.verify_portfolio(pid))


async def test_float_refused_before_queueing(aclient: AsyncPortfolioClient) -> None:
    with pytest.raises(InvalidInput):
        await aclient.apply_fill(1, "F", 1.5, D("1"))  # type: ignore[arg-type]


@pytest.mark.parametrize(("max_batches_per_portfolio", "allowed"), [(1, 1), (None, 2), (3, 3)])
async def test_a_portfolio_is_in_at_most_max_batches_per_portfolio_batches(
    shared_db: str,
    monkeypatch: pytest.MonkeyPatch,
    max_batches_per_portfolio: int | None,
    allowed: int,
) -> None:
    """Fills for a portfolio already in ``max_batches_per_portfolio`` batches in flight
    wait in the queue (the default, 2, lets the next batch of a hot portfolio wait at its
    row); the other portfolios' fills go meanwhile, and every fill is applied once. The
    peak must reach the limit, so a coalescer that never overlapped would fail too."""
    limit = (
        {}
        if max_batches_per_portfolio is None
        else {"max_batches_per_portfolio": max_batches_per_portfolio}
    )
    async with AsyncPortfolioClient(
        shared_db, max_size=16, max_combiners=6, monitor=Monitor(), **limit
    ) as client:
        pids = [await client.create_portfolio(f"g{n}", D("1000000")) for n in range(3)]
        in_flight: list[set[int]] = []
        peak_per_portfolio = dict.fromkeys(pids, 0)
        concurrent_peak = 0

        def watched(send):  # type: ignore[no-untyped-def]
            async def wrapper(*args, **kwargs):  # type: ignore[no-untyped-def]
                nonlocal concurrent_peak
                first = args[0]
                items = first if isinstance(first, list) else [first]
                mine = {item.params["portfolio_id"] for item in items}
                in_flight.append(mine)
                concurrent_peak = max(concurrent_peak, len(in_flight))
                for pid in mine:
                    live = sum(pid in batch for batch in in_flight)
                    peak_per_portfolio[pid] = max(peak_per_portfolio[pid], live)
                try:
                    await asyncio.sleep(0.002)  # widen the window in which batches overlap
                    return await send(*args, **kwargs)
                finally:
                    in_flight.remove(mine)

            return wrapper

        coalescer = client.coalescer
        monkeypatch.setattr(coalescer, "_call_apply_fills", watched(coalescer._call_apply_fills))
        monkeypatch.setattr(coalescer, "_send_alone", watched(coalescer._send_alone))
        await asyncio.gather(
            *(client.apply_fill(pids[n // 100], f"S{n % 7}", D("1"), D("2")) for n in range(300))
        )
        assert max(peak_per_portfolio.values()) == allowed
        assert concurrent_peak > allowed  # other portfolios' batches did run beside them
        for pid in pids:
            snap = await client.get_portfolio(pid)
            assert snap.version == 101  # 100 fills each, every one applied once
            assert all(c.ok for c in await client.verify_portfolio(pid))


def test_max_batches_per_portfolio_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        AsyncPortfolioClient("", max_batches_per_portfolio=0)


async def test_cash_moves_travel_with_fills(aclient: AsyncPortfolioClient) -> None:
    """Deposits, withdrawals and fees join the queue: they share apply_fills calls with
    fills, each caller gets its own result or its own error, and request ids keep
    their meaning across the single calls and the batches."""
    pid = await aclient.create_portfolio("cash", D("100"))
    first = await aclient.deposit_cash(pid, D("5"), request_id="dep-1")
    calls: list[list[str]] = []
    send = aclient.coalescer._call_apply_fills

    async def recorded(batch, in_doubt):  # type: ignore[no-untyped-def]
        calls.append([item.params.get("operation", "apply_fill") for item in batch])
        return await send(batch, in_doubt)

    aclient.coalescer._call_apply_fills = recorded  # type: ignore[method-assign]
    outcomes = await asyncio.gather(
        *(aclient.deposit_cash(pid, D("10")) for _ in range(20)),
        *(aclient.apply_fill(pid, "CSH", D("1"), D("1")) for _ in range(20)),
        *(aclient.charge_fee(pid, D("0.5")) for _ in range(4)),
        aclient.withdraw_cash(pid, D("1000000")),
        aclient.deposit_cash(pid, D("5"), request_id="dep-1"),
        return_exceptions=True,
    )
    assert any(len(set(ops)) > 1 for ops in calls)  # fills and cash moves in one call
    assert isinstance(outcomes[44], InsufficientCash)
    replay = outcomes[45]
    assert not isinstance(replay, BaseException)
    assert replay.duplicate
    assert replay.portfolio_version == first.portfolio_version
    assert all(not isinstance(o, BaseException) for o in outcomes[:44])
    fees = outcomes[40:44]
    assert all(f.realized_pnl == D("-0.5") for f in fees)  # type: ignore[union-attr]
    versions = sorted(o.portfolio_version for o in outcomes[:44])  # type: ignore[union-attr]
    assert versions == list(range(3, 47))  # 44 moves, each its own version
    snap = await aclient.get_portfolio(pid)
    assert snap.cash_balance == D("100") + 5 + 200 - 20 - 2
    assert all(c.ok for c in await aclient.verify_portfolio(pid))
    with pytest.raises(Exception, match="already used with different arguments"):
        await aclient.withdraw_cash(pid, D("5"), request_id="dep-1")


async def test_cash_moves_alone_when_switched_off(shared_db: str) -> None:
    monitor = Monitor()
    async with AsyncPortfolioClient(
        shared_db, max_size=4, monitor=monitor, coalesce=False
    ) as client:
        pid = await client.create_portfolio("cash-off", D("10"))
        await asyncio.gather(*(client.deposit_cash(pid, D("1")) for _ in range(10)))
        with pytest.raises(InsufficientCash):
            await client.withdraw_cash(pid, D("100"))
    snap = monitor.snapshot()
    assert snap["batches"]["calls"] == 0
    assert snap["locks"]["portfolio"]["acquisitions"] == 11


async def test_waiting_for_a_turn_is_bounded(shared_db: str) -> None:
    """A queued fill that cannot get a turn gives up like the waits it stands for: behind
    its own portfolio's batch after lock_timeout (InProcessLockTimeout), behind busy turns
    after the pool's timeout (ConnectionUnavailable). Either way it was never sent."""
    async with AsyncPortfolioClient(
        shared_db + " options='-c pgportfolio.lock_timeout=10s'",
        max_size=4,
        max_combiners=1,
        max_batches_per_portfolio=1,  # so the second fill waits behind its portfolio
        lock_timeout=0.3,
        pool_timeout=0.5,
        monitor=Monitor(),
    ) as client:
        stuck = await client.create_portfolio("stuck", D("1000"))
        other = await client.create_portfolio("other", D("1000"))
        with psycopg.connect(shared_db) as holder:
            holder.execute("SELECT pgportfolio.deposit_cash(%s, 1)", (stuck,))  # holds the row
            first = asyncio.create_task(client.apply_fill(stuck, "W", D("1"), D("1")))
            await asyncio.sleep(0.1)  # sent: the only turn waits on the row in the server
            started = time.monotonic()
            with pytest.raises(InProcessLockTimeout):
                await client.apply_fill(stuck, "W", D("1"), D("1"))
            behind_portfolio = time.monotonic() - started
            started = time.monotonic()
            with pytest.raises(ConnectionUnavailable) as busy:
                await client.deposit_cash(other, D("1"))
            behind_turns = time.monotonic() - started
            holder.commit()
        await first
        assert busy.value.pool_timeout
        assert 0.25 <= behind_portfolio < 2.0
        assert 0.45 <= behind_turns < 2.0
        assert (await client.get_portfolio(stuck)).positions["W"].quantity == 1
        assert (await client.get_portfolio(other)).version == 1  # the deposit never went


async def test_a_cancelled_apply_fills_leaves_no_unretrieved_answer(
    aclient: AsyncPortfolioClient, shared_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """apply_fills cancelled while its batch waits on the portfolio's row: the batch still
    runs to its end (the shield), the caller gets CancelledError, and the elements' answers
    (set on futures nobody awaits) count as retrieved, so asyncio logs no "Future exception
    was never retrieved" when they are collected."""
    pid = await aclient.create_portfolio("cancelled batch", D("1000"))
    sent: list[object] = []
    send = aclient.coalescer.send_batch

    async def recorded(batch):  # type: ignore[no-untyped-def]
        sent.extend(item.future for item in batch)
        return await send(batch)

    monkeypatch.setattr(aclient.coalescer, "send_batch", recorded)
    fills = [(pid, Fill("CB", D("1"), D("2"))) for _ in range(3)]
    with psycopg.connect(shared_db) as holder:
        holder.execute("SELECT pgportfolio.deposit_cash(%s, 1)", (pid,))  # holds the row
        task = asyncio.create_task(aclient.apply_fills(fills))
        await asyncio.sleep(0.2)  # sent: the batch waits on the row in the server
        task.cancel()
        await asyncio.sleep(0.1)
        holder.commit()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert len(sent) == 3
    assert all(future.done() for future in sent)  # type: ignore[attr-defined]
    # asyncio's own flag: True for an exception nobody retrieved (logged on collection)
    assert not any(future._log_traceback for future in sent)  # type: ignore[attr-defined]
    assert (await aclient.get_portfolio(pid)).version == 5  # create, deposit, three fills
