"""subscribe() across a failover, on a real formation: it follows the primary through the
writer DSN and, on the new primary, reopens every portfolio with a resync event (gap=True)
carrying that server's version; events after it arrive in order, none repeated."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal

import pytest

from pgportfolio import AsyncPortfolioClient, ChangeEvent
from pgportfolio.ha.formation import Formation

pytestmark = [pytest.mark.debian_extensions, pytest.mark.timeout(240)]


async def test_subscribe_follows_the_primary_and_reports_the_gap(
    healthy_formation: Formation,
) -> None:
    formation = healthy_formation
    events: list[ChangeEvent] = []
    async with AsyncPortfolioClient(formation.writer_dsn, resolve_timeout=60) as client:
        portfolio = await client.create_portfolio("subscribed", Decimal(10))

        async def follow() -> None:
            async for event in client.subscribe([portfolio], reconnect_delay=0.2):
                events.append(event)

        follower = asyncio.create_task(follow())
        try:
            await _until(lambda: bool(events))  # subscribed: the stream opened at version 1
            for i in range(3):
                await client.deposit_cash(portfolio, 1, request_id=f"before-{i}")
            await _until(lambda: any(e.version == 4 for e in events))
            at = time.monotonic()
            killed = await asyncio.to_thread(formation.kill_primary)
            await asyncio.to_thread(formation.wait_for_new_writer, killed, at)
            after_failover = len(events)
            done = await client.deposit_cash(portfolio, 1, request_id="after")
            await _until(lambda: any(e.version == done.portfolio_version for e in events))
        finally:
            follower.cancel()
            with pytest.raises(asyncio.CancelledError):
                await follower
    # before the kill: the stream opened at version 1, then each deposit once
    assert [(e.version, e.kind, e.gap) for e in events[:4]] == [
        (1, "resync", True),
        (2, "deposit", False),
        (3, "deposit", False),
        (4, "deposit", False),
    ]
    assert after_failover >= 4
    later = events[4:]
    resyncs = [e for e in later if e.kind == "resync"]
    assert len(resyncs) == 1, later  # the reconnection to the new primary
    assert resyncs[0].gap
    assert resyncs[0].version in (4, 5)  # the new primary's version when it reconnected
    versions = [e.version for e in later]
    assert versions == sorted(set(versions))  # in order, none repeated
    assert versions[-1] == done.portfolio_version == 5


async def _until(condition: object, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)
