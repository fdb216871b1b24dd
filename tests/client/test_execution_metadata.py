"""A fill's execution metadata and its multiplier through the client: what is sent is what
the event log shows, on each path a fill can take (alone, coalesced with others, in an
explicit batch), and a retry with other metadata is the request-id error, not a replay."""

from __future__ import annotations

import asyncio
import secrets
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

import pytest

from pgportfolio import (
    AsyncPortfolioClient,
    InvalidInput,
    PortfolioClient,
    RequestIdReused,
)
from pgportfolio.operations import Fill

EXECUTED = datetime(2026, 11, 30, 14, 31, 7, 125000, tzinfo=UTC)


def _symbol(prefix: str) -> str:
    return prefix + secrets.token_hex(3).upper()


def test_metadata_reaches_the_log_and_is_part_of_the_request(client: PortfolioClient) -> None:
    future = _symbol("ES")
    client.upsert_instrument(future, D(50))
    pid = client.create_portfolio("metadata", D(1_000_000))
    tags = {"account": "FUT-1", "venue": "CME"}
    first = client.apply_fill(
        pid,
        future,
        D(2),
        D("6010.25"),
        fee=D("4.2"),
        request_id="exec-1",
        executed_at=EXECUTED,
        order_id="ORD-7731",
        tags=tags,
    )
    # 2 x 6010.25 x 50 + 4.2 debited; the average price is per unit
    assert first.cash_balance == D(1_000_000) - D("601025.00") - D("4.2")
    assert first.position_avg_price == D("6010.25")
    again = client.apply_fill(
        pid,
        future,
        D(2),
        D("6010.25"),
        fee=D("4.2"),
        request_id="exec-1",
        executed_at=EXECUTED,
        order_id="ORD-7731",
        tags={"venue": "CME", "account": "FUT-1"},
    )
    assert again.duplicate
    assert again.portfolio_version == first.portfolio_version
    for other in (
        {"executed_at": EXECUTED + timedelta(seconds=1), "order_id": "ORD-7731", "tags": tags},
        {"executed_at": EXECUTED, "order_id": "ORD-7732", "tags": tags},
        {"executed_at": EXECUTED, "order_id": "ORD-7731", "tags": {"account": "FUT-2"}},
        {"executed_at": None, "order_id": "ORD-7731", "tags": tags},
    ):
        with pytest.raises(RequestIdReused):
            client.apply_fill(
                pid, future, D(2), D("6010.25"), fee=D("4.2"), request_id="exec-1", **other
            )
    plain = client.apply_fill(pid, future, D(-1), D(6020), request_id="exec-2")
    logged = {e.request_id: e for e in client.event_log(pid) if e.request_id}
    assert (logged["exec-1"].executed_at, logged["exec-1"].order_id, logged["exec-1"].tags) == (
        EXECUTED,
        "ORD-7731",
        tags,
    )
    assert logged["exec-1"].multiplier == D(50)
    # without an execution time, the fill's is its transaction's
    assert logged["exec-2"].executed_at == logged["exec-2"].created_at
    assert (logged["exec-2"].order_id, logged["exec-2"].tags) == (None, None)
    assert plain.realized_pnl == (D(6020) - D("6010.25")) * 50  # per unit, times 50
    assert all(check.ok for check in client.verify_portfolio(pid))


def test_bad_metadata_is_refused_before_anything_is_sent(client: PortfolioClient) -> None:
    pid = client.create_portfolio("bad metadata", D(1000))
    naive = datetime(2026, 11, 30, 14, 31)
    for kwargs, message in (
        ({"executed_at": naive}, "timezone-aware"),
        ({"tags": {"account": 7}}, "str to str"),
        ({"tags": ["a"]}, "mapping"),
        ({"order_id": 17}, "order_id must be a str"),
    ):
        with pytest.raises(InvalidInput, match=message):
            client.apply_fill(pid, "AAA", D(1), D(1), **kwargs)  # type: ignore[arg-type]
    # the database's rules: a time more than a minute ahead is 22023, nothing changes
    with pytest.raises(InvalidInput, match="executed_at is in the future"):
        client.apply_fill(
            pid, "AAA", D(1), D(1), executed_at=datetime.now(UTC) + timedelta(hours=1)
        )
    assert client.portfolio_version(pid) == 1


async def test_coalesced_and_batched_fills_carry_their_own_metadata(
    aclient: AsyncPortfolioClient,
) -> None:
    pid = await aclient.create_portfolio("coalesced metadata", D(1_000_000))
    symbol = _symbol("MD")
    # Concurrent callers on one portfolio are combined into batches: each element must keep
    # its own metadata, none its neighbour's.
    await asyncio.gather(
        *(
            aclient.apply_fill(
                pid,
                symbol,
                D(1),
                D(10),
                request_id=f"c-{n}",
                order_id=f"O-{n}",
                tags={"n": str(n)},
                executed_at=EXECUTED + timedelta(minutes=n),
            )
            for n in range(40)
        )
    )
    results = await aclient.apply_fills(
        (pid, Fill(symbol, D(1), D(11), order_id=f"B-{n}", tags={"b": str(n)})) for n in range(5)
    )
    assert all(not isinstance(r, Exception) for r in results)
    logged = [e for e in await aclient.event_log(pid) if e.kind != "create"]
    by_request = {e.request_id: e for e in logged}
    for n in range(40):
        event = by_request[f"c-{n}"]
        assert (event.order_id, event.tags, event.executed_at) == (
            f"O-{n}",
            {"n": str(n)},
            EXECUTED + timedelta(minutes=n),
        )
    batched = sorted(
        (e.order_id or "", e.tags) for e in logged if (e.order_id or "").startswith("B-")
    )
    assert batched == [(f"B-{n}", {"b": str(n)}) for n in range(5)]
