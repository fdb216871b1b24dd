"""The sync client: the same calls, and safe to share between threads."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import psycopg
import pytest

from pgportfolio import InsufficientCash, InvalidInput, PortfolioClient, PositionRequest

D = Decimal


def test_synchronous_calls(client: PortfolioClient) -> None:
    pid = client.create_portfolio("sync", D("10000"))
    portfolio = client.portfolio(pid)
    portfolio.open_position(PositionRequest("AAPL", D("10"), D("100")))
    assert portfolio.close_position("AAPL", D("110")) == D("100")
    with pytest.raises(InsufficientCash):
        client.withdraw_cash(pid, D("1000000"))
    with pytest.raises(InvalidInput):
        client.apply_fill(pid, "AAPL", 1.0, D("1"))  # type: ignore[arg-type]
    assert all(c.ok for c in client.verify_portfolio(pid))


@pytest.mark.parametrize("coalesce", [True, False], ids=["coalescing", "one-call-per-fill"])
def test_hundred_threads_on_one_portfolio(
    client: PortfolioClient, shared_db: str, coalesce: bool
) -> None:
    """100 threads share one client and trade one portfolio: every fill counts once, the
    in-process lock (or the coalescing queue) serializes them, and the ledger verifies."""
    client.coalesce = coalesce
    pid = client.create_portfolio("threads", D("10000000"))
    start = threading.Barrier(100)

    def trader(n: int) -> None:
        start.wait()
        for i in range(5):
            client.apply_fill(pid, f"S{n % 7}", D(1 + (n + i) % 3), D("10.5"))

    with ThreadPoolExecutor(max_workers=100) as pool:
        list(pool.map(trader, range(100)))

    snap = client.get_portfolio(pid)
    assert snap.version == 1 + 500
    assert sum(p.quantity for p in snap.positions.values()) == sum(
        1 + (n + i) % 3 for n in range(100) for i in range(5)
    )
    assert all(c.ok for c in client.verify_portfolio(pid))
    locks = client.monitor.snapshot()["locks"]["coalescer" if coalesce else "portfolio"]
    assert locks["acquisitions"] == 500
    assert locks["contended"] > 0  # 100 threads really did meet on the lock
    assert len(client.locks) == 0  # idle locks are dropped
    with psycopg.connect(shared_db) as conn:
        row = conn.execute(
            "SELECT count(DISTINCT request_id) FROM pgportfolio.event_log WHERE portfolio_id = %s"
            " AND kind <> 'create'",
            (pid,),
        ).fetchone()
    assert row == (500,)


def test_operator_reads(client: PortfolioClient) -> None:
    pid = client.create_portfolio("operator reads", D("10"))
    client.deposit_cash(pid, D("1"))
    assert client.portfolio_version(pid) == 2
    assert client.portfolio_version(2**62) is None
    recent = client.recent_portfolios(1000)
    assert (pid, "operator reads", 2) in [(r[0], r[1], r[2]) for r in recent]
    assert client.lock_waits() == []  # nobody waits in this quiet database
    assert all(len(row) == 4 for row in client.server_wait_events())


def test_subscribe_follows_the_log_in_a_thread_of_its_own(client: PortfolioClient) -> None:
    """The generated sync subscribe(): the resync, then each real event once, in order."""
    pid = client.create_portfolio("sync push", D("100"))
    stream = client.subscribe([pid], interval=0.01)
    try:
        first = next(stream)
        assert (first.portfolio_id, first.version, first.kind, first.gap) == (
            pid,
            1,
            "resync",
            True,
        )
        client.deposit_cash(pid, D("1"))
        client.apply_fill(pid, "SP", D("1"), D("2"))
        got = [next(stream) for _ in range(2)]
        assert [(e.version, e.kind, e.gap) for e in got] == [
            (2, "deposit", False),
            (3, "open", False),
        ]
    finally:
        stream.close()


def test_a_lone_caller_keeps_one_backend(shared_db: str) -> None:
    """As the async client: calls made one at a time run on one warm backend."""
    with PortfolioClient(shared_db, min_size=4, max_size=4) as client:
        pid = client.create_portfolio("lone caller, sync", Decimal("1000"))
        backends = set()
        for n in range(8):
            client.deposit_cash(pid, Decimal("1"), request_id=f"lone-sync-{n}")
            with client.pool.connection() as conn:
                row = conn.execute("SELECT pg_backend_pid()").fetchone()
                assert row is not None
                backends.add(row[0])
        assert len(backends) == 1
        assert client.pool.get_stats()["pool_size"] == 4
