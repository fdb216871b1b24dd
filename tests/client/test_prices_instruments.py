"""The client's price history and instrument calls, against a real database: marks with
as_of and source, price_at, upsert_instrument and its PF007 refusal, including the race
with a fill in flight (real sessions, the upsert seen waiting for the lock)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from typing import Any

import psycopg
import pytest

from pgportfolio import (
    AsyncPortfolioClient,
    InstrumentHeld,
    InvalidInput,
    NotPermitted,
    PortfolioClient,
)
from tests.support.sessions import Background, backend_pid, wait_until_blocked

MONDAY = datetime(2026, 3, 2, 21, 0, tzinfo=UTC)


def test_marks_with_as_of_and_source_and_price_at(client: PortfolioClient) -> None:
    symbol = f"PX{uuid.uuid4().hex[:8].upper()}"
    client.update_market_price(symbol, D("101.25"), as_of=MONDAY, source="eod-vendor")
    client.update_market_price(symbol, D("99"), as_of=MONDAY - timedelta(days=3))  # late, older
    client.update_market_price(symbol, D("102"), MONDAY + timedelta(days=1), "eod-vendor")
    assert client.price_at(symbol, MONDAY - timedelta(days=4)) is None
    assert client.price_at(symbol, MONDAY - timedelta(days=1)) == D("99")
    assert client.price_at(symbol, MONDAY + timedelta(hours=1)) == D("101.25")
    at_end = client.price_at(symbol, datetime.now(UTC))
    assert at_end == D("102")
    assert isinstance(at_end, D)
    # A mark without as_of is current (now is later than every mark above).
    client.update_market_price(symbol, 7)
    assert client.price_at(symbol, datetime.now(UTC) + timedelta(seconds=1)) == D(7)


async def test_async_marks_and_price_at(aclient: AsyncPortfolioClient) -> None:
    symbol = f"PA{uuid.uuid4().hex[:8].upper()}"
    await aclient.update_market_price(symbol, D("5.5"), as_of=MONDAY, source="desk")
    assert await aclient.price_at(symbol, MONDAY) == D("5.5")
    assert await aclient.price_at(symbol, MONDAY - timedelta(microseconds=1)) is None


def test_mark_refusals(client: PortfolioClient) -> None:
    with pytest.raises(InvalidInput, match="timezone-aware"):
        client.update_market_price("NAIVE", D(1), as_of=datetime(2026, 3, 2, 21, 0))
    with pytest.raises(InvalidInput, match="timezone-aware"):
        client.price_at("NAIVE", datetime(2026, 3, 2))
    with pytest.raises(InvalidInput, match="as_of is in the future"):
        client.update_market_price("FUTURE", D(1), as_of=datetime.now(UTC) + timedelta(hours=1))
    with pytest.raises(InvalidInput, match="invalid source"):
        client.update_market_price("SRC", D(1), source="feed\u202eevil")
    with pytest.raises(InvalidInput):
        client.update_market_price("SRC", D(1), as_of="2026-03-02")  # type: ignore[arg-type]
    assert client.price_at("FUTURE", datetime.now(UTC)) is None  # nothing was recorded
    assert client.price_at("SRC", datetime.now(UTC)) is None


def test_upsert_instrument_and_the_held_refusal(client: PortfolioClient) -> None:
    symbol = f"IN{uuid.uuid4().hex[:8].upper()}"
    client.upsert_instrument(symbol, D(50), "a future")
    client.upsert_instrument(symbol, D("0.5"))  # unheld: may change
    pid = client.create_portfolio("instrument holder", D(100000))
    client.apply_fill(pid, symbol, D(2), D(10))
    with pytest.raises(InstrumentHeld) as refused:
        client.upsert_instrument(symbol, D(100))
    assert refused.value.sqlstate == "PF007"
    assert "1 open position(s)" in (refused.value.detail or "")
    client.upsert_instrument(symbol, D("0.50"), "described again")  # same multiplier: allowed
    with pytest.raises(InvalidInput, match="multiplier must be positive"):
        client.upsert_instrument(symbol, 0)
    with pytest.raises(InvalidInput, match="Decimal"):
        client.upsert_instrument(symbol, 1.5)  # type: ignore[arg-type]


@pytest.fixture
def trader_dsn(db: str) -> Iterator[str]:
    role = f"pgp_trader_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN IN ROLE pgportfolio_trader")
    try:
        yield f"{db} user={role}"
    finally:
        with psycopg.connect(db, autocommit=True) as conn:
            conn.execute(f"DROP ROLE {role}")


def test_a_trader_may_mark_but_not_upsert_an_instrument(trader_dsn: str) -> None:
    with PortfolioClient(trader_dsn, min_size=1, max_size=2) as trader:
        trader.update_market_price("TRD", D(3), as_of=MONDAY, source="desk")
        assert trader.price_at("TRD", MONDAY) == D(3)
        with pytest.raises(NotPermitted):
            trader.upsert_instrument("TRD", D(10))


def test_upsert_waits_for_a_fill_in_flight_then_refuses(db: str) -> None:
    """A fill opening a position has not committed when the owner changes the symbol's
    multiplier: the upsert must wait for it and then see the position (PF007), not slip
    its change in under a position it could not see."""
    with (
        psycopg.connect(db, autocommit=True) as setup,
        psycopg.connect(db) as trade,
        psycopg.connect(db, autocommit=True) as owner,
    ):
        pid = setup.execute("SELECT pgportfolio.create_portfolio('race', 100000)").fetchone()
        assert pid is not None
        trade.execute("SELECT * FROM pgportfolio.apply_fill(%s, 'RACE', 1, 10)", (pid[0],))
        upsert = Background(
            lambda: owner.execute("SELECT pgportfolio.upsert_instrument('RACE', 10)")
        )
        assert wait_until_blocked(setup, backend_pid(owner), upsert), "upsert did not wait"
        trade.commit()
        with pytest.raises(psycopg.Error) as refused:
            upsert.join()
        assert refused.value.sqlstate == "PF007"
        row = setup.execute(
            "SELECT multiplier FROM pgportfolio.instruments WHERE symbol = 'RACE'"
        ).fetchone()
        assert row is None  # the refused upsert left nothing


def test_a_fill_waits_for_a_multiplier_change_in_flight(db: str) -> None:
    """The other order: the change is made first and is still open; a fill that opens a
    position in the symbol waits for it, so it cannot open under the old multiplier."""
    with (
        psycopg.connect(db, autocommit=True) as setup,
        psycopg.connect(db) as change,
        psycopg.connect(db, autocommit=True) as trade,
    ):
        pid = setup.execute("SELECT pgportfolio.create_portfolio('race 2', 100000)").fetchone()
        assert pid is not None
        change.execute("SELECT pgportfolio.upsert_instrument('RACE2', 10)")
        fill = Background(
            lambda: trade.execute(
                "SELECT * FROM pgportfolio.apply_fill(%s, 'RACE2', 1, 10)", (pid[0],)
            ).fetchone()
        )
        assert wait_until_blocked(setup, backend_pid(trade), fill), "the fill did not wait"
        change.commit()
        result: Any = fill.join()
        assert result is not None


def test_a_multiplier_change_above_read_committed_is_refused(db: str) -> None:
    with psycopg.connect(db) as conn:
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        with pytest.raises(psycopg.Error) as refused:
            conn.execute("SELECT pgportfolio.upsert_instrument('RRX', 10)")
        assert refused.value.sqlstate == "0A000"
        conn.rollback()
        # The same multiplier as in force changes nothing that needs the check: allowed.
        conn.execute("SELECT pgportfolio.upsert_instrument('RRX', 1, 'described')")
        conn.commit()
