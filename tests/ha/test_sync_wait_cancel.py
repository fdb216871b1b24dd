"""A commit whose wait for the synchronous standby was cancelled is not an acknowledgement.

PostgreSQL answers such a commit with success plus ``WARNING: canceling wait for
synchronous replication``: the transaction is committed on the primary only, and a
failover before a standby has it loses it. Real formation, real stalled standbys (their
WAL receivers stopped), a real pg_cancel_backend of the waiting backend.
"""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal

import psycopg
import pytest

from pgportfolio import AsyncPortfolioClient
from pgportfolio.ha.formation import Formation

pytestmark = [pytest.mark.debian_extensions, pytest.mark.timeout(180)]

# how long the standbys stay stalled after the cancel: a client that took the warning for
# success has long returned by then
STALL_AFTER_CANCEL = 1.5


async def _sync_rep_waiter(dsn: str, timeout: float = 20) -> int:
    """The pid of a backend waiting for the synchronous standby."""
    deadline = time.monotonic() + timeout
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        while time.monotonic() < deadline:
            cur = await conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE wait_event = 'SyncRep'"
                " AND query LIKE '%pgportfolio.%' LIMIT 1"
            )
            row = await cur.fetchone()
            if row is not None:
                return int(row[0])
            await asyncio.sleep(0.02)
    raise AssertionError(f"no backend waited for the synchronous standby within {timeout}s")


async def _cancel(dsn: str, pid: int) -> None:
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        cur = await conn.execute("SELECT pg_cancel_backend(%s)", (pid,))
        assert (await cur.fetchone()) == (True,)


@pytest.mark.parametrize("coalesce", [True, False], ids=["coalesced", "alone"])
async def test_cancelled_sync_wait_is_resolved_not_acknowledged(
    healthy_formation: Formation, coalesce: bool
) -> None:
    formation = healthy_formation
    dsn = formation.writer_dsn
    async with AsyncPortfolioClient(dsn, coalesce=coalesce, resolve_timeout=60) as client:
        portfolio = await client.create_portfolio("sync-wait-cancel", Decimal(1000))
        with formation.replication_paused() as stopped:
            assert stopped, "no standby WAL receiver to stop"
            deposit = asyncio.create_task(
                client.deposit_cash(portfolio, Decimal(5), request_id="cancelled-wait")
            )
            await _cancel(dsn, await _sync_rep_waiter(dsn))
            await asyncio.sleep(STALL_AFTER_CANCEL)
            answered_while_stalled = deposit.done()
        result = await asyncio.wait_for(deposit, 60)

    assert not answered_while_stalled, (
        "the client answered while no standby had the commit: it took the "
        "'canceling wait for synchronous replication' warning for an acknowledgement"
    )
    # resolved by its request id: the commit was already there, applied once
    assert result.recovered
    assert result.duplicate
    assert result.cash_balance == Decimal(1005)
    for name in formation.node_ports:
        assert await _replayed_on(formation.node_dsn(name), portfolio), f"{name} lacks it"


async def _replayed_on(
    dsn: str, portfolio: int, request_id: str = "cancelled-wait", timeout: float = 15
) -> bool:
    """Whether the node at ``dsn`` shows the deposit within ``timeout`` (a standby
    replays what it flushed a moment later)."""
    deadline = time.monotonic() + timeout
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        while time.monotonic() < deadline:
            cur = await conn.execute(
                "SELECT count(*) FROM pgportfolio.find_request(%s, %s)",
                (portfolio, request_id),
            )
            if (await cur.fetchone()) == (1,):
                return True
            await asyncio.sleep(0.1)
    return False


async def _still_waiting(dsn: str, pid: int) -> bool:
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        cur = await conn.execute("SELECT wait_event FROM pg_stat_activity WHERE pid = %s", (pid,))
        return (await cur.fetchone()) == ("SyncRep",)


async def test_a_cancelled_caller_never_cancels_the_commit(healthy_formation: Formation) -> None:
    """psycopg answers a cancelled asyncio task with a cancel request to the server; in a
    commit's wait for the standby that leaves the commit on the primary only. The client
    lets the call finish (bounded by call_timeout) and raises the cancellation after."""
    formation = healthy_formation
    dsn = formation.writer_dsn
    async with AsyncPortfolioClient(dsn, coalesce=False, resolve_timeout=60) as client:
        portfolio = await client.create_portfolio("caller-cancelled", Decimal(1000))
        with formation.replication_paused():
            deposit = asyncio.create_task(
                client.deposit_cash(portfolio, Decimal(5), request_id="caller-cancelled")
            )
            backend = await _sync_rep_waiter(dsn)
            deposit.cancel()
            await asyncio.sleep(STALL_AFTER_CANCEL)
            commit_still_waiting = await _still_waiting(dsn, backend)
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(deposit, 60)
    assert commit_still_waiting, "the client sent a cancel into the commit's wait for the standby"
    for name in formation.node_ports:  # applied once, durably: the caller may find_request it
        assert await _replayed_on(formation.node_dsn(name), portfolio, "caller-cancelled")
