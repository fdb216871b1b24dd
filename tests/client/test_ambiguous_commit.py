"""A reply to a mutation is lost on the wire: the client must report the real outcome and
never apply the operation twice."""

from __future__ import annotations

import contextlib
from decimal import Decimal

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from pgportfolio import AsyncPortfolioClient, Monitor, PortfolioClient, RetryPolicy
from tests.support.faultproxy import FaultProxy

D = Decimal


def _through(proxy: FaultProxy, conninfo: str) -> str:
    return make_conninfo(conninfo, host="127.0.0.1", port=str(proxy.port))


def _target(conninfo: str) -> tuple[str, int]:
    params = conninfo_to_dict(conninfo)
    return str(params.get("host", "127.0.0.1")), int(params.get("port", 5432))


def _applied(conninfo: str, portfolio_id: int, symbol: str) -> int:
    with psycopg.connect(conninfo) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pgportfolio.event_log WHERE portfolio_id = %s AND symbol = %s",
            (portfolio_id, symbol),
        ).fetchone()
    assert row is not None
    return int(row[0])


async def test_lost_reply_is_resolved_by_request_id(shared_db: str) -> None:
    with FaultProxy(*_target(shared_db)) as proxy:
        monitor = Monitor()
        async with AsyncPortfolioClient(
            _through(proxy, shared_db),
            min_size=1,
            max_size=2,
            monitor=monitor,
            retry=RetryPolicy(base_delay=0.001),
        ) as client:
            pid = await client.create_portfolio("ambiguous", D("1000"))
            proxy.drop_reply_after(b"apply_fill")
            result = await client.apply_fill(pid, "AMB", D("3"), D("10"))
            assert proxy.replies_dropped == 1
            # Either the commit happened and was read back, or it had not and the same
            # request id was sent again: both are one application.
            assert result.recovered or monitor.snapshot()["retries"].get("connection_lost") == 1
            assert result.position_quantity == D("3")
            assert result.cash_balance == D("970")
    assert _applied(shared_db, pid, "AMB") == 1


def test_lost_reply_sync_client(shared_db: str) -> None:
    with (
        FaultProxy(*_target(shared_db)) as proxy,
        PortfolioClient(
            _through(proxy, shared_db),
            min_size=1,
            max_size=2,
            retry=RetryPolicy(base_delay=0.001),
            monitor=Monitor(),
        ) as client,
    ):
        pid = client.create_portfolio("ambiguous sync", D("1000"))
        proxy.drop_reply_after(b"apply_fill")
        result = client.apply_fill(pid, "AMS", D("2"), D("10"))
        assert proxy.replies_dropped == 1
        assert result.position_quantity == D("2")
    assert _applied(shared_db, pid, "AMS") == 1


def test_negative_control_blind_replay_applies_twice(shared_db: str) -> None:
    """What the resolution prevents: resending after a lost reply under a NEW request id
    (a blind replay) applies the fill twice, and the check above would catch it."""
    with FaultProxy(*_target(shared_db)) as proxy:
        with psycopg.connect(shared_db, autocommit=True) as conn:
            row = conn.execute("SELECT pgportfolio.create_portfolio('blind', 1000)").fetchone()
            assert row is not None
            pid = int(row[0])
        proxy.drop_reply_after(b"apply_fill")
        with (
            psycopg.connect(_through(proxy, shared_db), autocommit=True) as conn,
            contextlib.suppress(psycopg.OperationalError),  # the lost reply
        ):
            conn.execute("SELECT pgportfolio.apply_fill(%s, 'BLD', 3, 10, 0, 'r-1')", (pid,))
        with psycopg.connect(shared_db, autocommit=True) as conn:
            conn.execute("SELECT pgportfolio.apply_fill(%s, 'BLD', 3, 10, 0, 'r-2')", (pid,))
    assert _applied(shared_db, pid, "BLD") == 2
