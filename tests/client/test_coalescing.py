"""Coalescing: concurrent apply_fill calls travel together, each caller gets its own answer."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import psycopg
import pytest

from pgportfolio import (
    AsyncPortfolioClient,
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


async def test_cancelled_waiter_withdraws_its_fill(aclient: AsyncPortfolioClient) -> None:
    pid = await aclient.create_portfolio("cancel", D("1000"))
    aclient.max_combiners = 1
    first = asyncio.create_task(aclient.apply_fill(pid, "K", D("1"), D("1")))
    second = asyncio.create_task(aclient.apply_fill(pid, "K", D("1"), D("1")))
    third = asyncio.create_task(aclient.apply_fill(pid, "K", D("1"), D("1")))
    await asyncio.sleep(0)  # all three queued; the first holds the only turn
    third.cancel()
    await asyncio.gather(first, second)
    with pytest.raises(asyncio.CancelledError):
        await third
    snap = await aclient.get_portfolio(pid)
    # The third fill was either withdrawn before it was taken, or sent with the others.
    assert snap.positions["K"].quantity in (D("2"), D("3"))
    assert all(c.ok for c in await aclient.verify_portfolio(pid))


async def test_float_refused_before_queueing(aclient: AsyncPortfolioClient) -> None:
    with pytest.raises(InvalidInput):
        await aclient.apply_fill(1, "F", 1.5, D("1"))  # type: ignore[arg-type]
