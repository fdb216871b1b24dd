"""get_portfolio's snapshot: the positions of a portfolio_snapshot row as a read-only
mapping whose values are made on first use, and the valuation with multipliers
(market value = quantity * mark * multiplier), checked against the SQL views."""

from __future__ import annotations

import dataclasses
import pickle
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal as D

import psycopg
import pytest

from pgportfolio import PortfolioClient
from pgportfolio.models import PortfolioSnapshot, PositionSnapshot, SnapshotPositions

NOW = datetime(2026, 12, 7, tzinfo=UTC)
# A portfolio_snapshot row: the portfolio's columns, then one text per position column.
ROW = (
    7,
    "desk",
    "USD",
    D("100.00"),
    D("-1.5"),
    12,
    NOW,
    "AB.C,ES/Z6,ZZ",
    "3,-2,0.00000001",
    "15000.50,-40,0.00000010",
    "102.125,,7",
    "-1.25,0,0",
    "4,2,9",
    "50,0.5,1",
)


def test_snapshot_positions_hold_the_exact_values_in_symbol_order() -> None:
    snapshot = PortfolioSnapshot.from_snapshot(ROW)
    positions = snapshot.positions
    assert isinstance(positions, SnapshotPositions)
    assert len(positions) == 3
    assert list(positions) == ["AB.C", "ES/Z6", "ZZ"]
    assert "ES/Z6" in positions
    assert "NOPE" not in positions
    assert positions["AB.C"] == PositionSnapshot(
        7, "AB.C", D(3), D("15000.50"), D("102.125"), D("-1.25"), 4, D(50)
    )
    assert str(positions["AB.C"].cost_basis) == "15000.50", "the scale is kept"
    assert positions["ES/Z6"].mark_price is None, "an empty mark is no mark"
    assert positions["ES/Z6"].multiplier == D("0.5")
    assert str(positions["ZZ"].quantity) == "1E-8"
    assert positions.get("NOPE") is None
    with pytest.raises(KeyError):
        positions["NOPE"]


def test_snapshot_positions_are_made_once_and_cannot_be_changed() -> None:
    positions = PortfolioSnapshot.from_snapshot(ROW).positions
    first = positions["ZZ"]
    assert positions["ZZ"] is first, "a position is made once, then kept"
    assert list(positions.values())[2] is first, "making the rest keeps the one already made"
    assert [s for s, _ in positions.items()] == ["AB.C", "ES/Z6", "ZZ"]
    made_with_the_rest = positions["AB.C"]
    assert made_with_the_rest == PositionSnapshot(
        7, "AB.C", D(3), D("15000.50"), D("102.125"), D("-1.25"), 4, D(50)
    )
    with pytest.raises(dataclasses.FrozenInstanceError):
        made_with_the_rest.quantity = D(1)  # type: ignore[misc]
    assert dataclasses.replace(made_with_the_rest, quantity=D(1)).quantity == 1
    with pytest.raises(TypeError):
        positions["ZZ"] = first  # type: ignore[index]
    with pytest.raises(TypeError):
        del positions["ZZ"]  # type: ignore[attr-defined]
    with pytest.raises(AttributeError):
        positions.pop("ZZ")  # type: ignore[attr-defined]


def test_snapshot_positions_equal_the_dict_of_the_same_positions() -> None:
    lazy = PortfolioSnapshot.from_snapshot(ROW)
    eager = PortfolioSnapshot(
        7, "desk", "USD", D("100.00"), D("-1.5"), 12, NOW, positions=dict(lazy.positions.items())
    )
    assert PortfolioSnapshot.from_snapshot(ROW) == eager
    assert PortfolioSnapshot.from_snapshot(ROW).equity == eager.equity
    copied = pickle.loads(pickle.dumps(PortfolioSnapshot.from_snapshot(ROW)))
    assert copied == eager


def test_an_empty_portfolio_has_no_positions() -> None:
    row = (*ROW[:7], "", "", "", "", "", "", "")
    snapshot = PortfolioSnapshot.from_snapshot(row)
    assert len(snapshot.positions) == 0
    assert list(snapshot.positions.values()) == []
    assert snapshot.market_value == 0
    assert snapshot.equity == D("100.00")


def test_columns_of_different_lengths_are_refused() -> None:
    row = (*ROW[:8], "3,-2", *ROW[9:])
    positions = PortfolioSnapshot.from_snapshot(row).positions
    with pytest.raises(ValueError, match="differ in length"):
        positions["ZZ"]


def test_valuation_with_multipliers() -> None:
    positions = PortfolioSnapshot.from_snapshot(ROW).positions
    future = positions["AB.C"]  # 3 x 102.125 x 50, against 15000.50
    assert future.market_value == D("15318.750")
    assert future.unrealized_pnl == D("318.250")
    assert future.avg_price == D("100.00333333")  # 15000.50 / 150, 8 places
    mini = positions["ES/Z6"]  # short, no mark: at cost
    assert mini.market_value == D(-40)
    assert mini.unrealized_pnl == 0
    assert mini.avg_price == D("40.00000000")  # -40 / (-2 x 0.5)
    snapshot = PortfolioSnapshot.from_snapshot(ROW)
    assert snapshot.market_value == D("15318.750") + D(-40) + D("0.00000007")
    assert snapshot.unrealized_pnl == D("318.250") + 0 + D("-0.00000003")
    assert snapshot.equity == D("100.00") + snapshot.market_value
    # A position first asked for after the totals (its columns already converted).
    assert snapshot.positions["AB.C"] == PositionSnapshot(
        7, "AB.C", D(3), D("15000.50"), D("102.125"), D("-1.25"), 4, D(50)
    )
    assert snapshot.unrealized_pnl == sum(
        (p.unrealized_pnl for p in snapshot.positions.values()), D(0)
    )


def test_a_position_made_without_a_multiplier_has_multiplier_one() -> None:
    position = PositionSnapshot(1, "X", D(2), D(20), D(11), D(0), 1)
    assert position.multiplier == 1
    assert position.market_value == D(22)
    assert position.avg_price == D("10.00000000")


@pytest.fixture
def superuser(shared_db: str) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    with psycopg.connect(shared_db, autocommit=True) as conn:
        yield conn


def _write_positions(
    conn: psycopg.Connection[tuple[object, ...]],
    pid: int,
    rows: list[tuple[str, D, D, D, int]],
) -> None:
    """Positions written directly, as the fill path would leave them: (symbol,
    quantity, cost basis including the multiplier, multiplier, version)."""
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO pgportfolio.positions"
            " (portfolio_id, symbol, quantity, cost_basis, multiplier, version)"
            " VALUES (%s, %s, %s, %s, %s, %s)",
            [(pid, *row) for row in rows],
        )


Views = tuple[dict[str, tuple[object, ...]], tuple[object, ...]]


def _views(conn: psycopg.Connection[tuple[object, ...]], pid: int) -> Views:
    pnl = {
        str(r[0]): tuple(r[1:])
        for r in conn.execute(
            "SELECT symbol, quantity, avg_price, cost_basis, market_value, unrealized_pnl,"
            " realized_pnl, version, multiplier"
            " FROM pgportfolio.position_pnl WHERE portfolio_id = %s",
            [pid],
        )
    }
    summary = conn.execute(
        "SELECT cash_balance, market_value, unrealized_pnl, equity, open_positions, version"
        " FROM pgportfolio.portfolio_summary WHERE portfolio_id = %s",
        [pid],
    ).fetchone()
    assert summary is not None
    return pnl, tuple(summary)


def _as_views(snapshot: PortfolioSnapshot) -> Views:
    pnl = {
        s: (
            p.quantity,
            p.avg_price,
            p.cost_basis,
            p.market_value,
            p.unrealized_pnl,
            p.realized_pnl,
            p.version,
            p.multiplier,
        )
        for s, p in snapshot.positions.items()
    }
    summary = (
        snapshot.cash_balance,
        snapshot.market_value,
        snapshot.unrealized_pnl,
        snapshot.equity,
        len(snapshot.positions),
        snapshot.version,
    )
    return pnl, summary


def test_get_portfolio_values_positions_with_their_multipliers_like_the_views(
    client: PortfolioClient, superuser: psycopg.Connection[tuple[object, ...]]
) -> None:
    pid = client.create_portfolio("snapshot multipliers", D(1000))
    _write_positions(
        superuser,
        pid,
        [
            ("SNMF", D(3), D("15000.50"), D(50), 4),
            ("SNMM", D(-2), D(-40), D("0.5"), 2),
            ("SNMU", D(4), D(1000), D(10), 1),
        ],
    )
    client.update_market_prices({"SNMF": D("102.125"), "SNMM": D(41)})
    snapshot = client.get_portfolio(pid)
    assert list(snapshot.positions) == ["SNMF", "SNMM", "SNMU"]
    future = snapshot.positions["SNMF"]
    assert (future.multiplier, future.market_value, future.unrealized_pnl) == (
        D(50),
        D("15318.750"),
        D("318.250"),
    )
    assert snapshot.positions["SNMM"].market_value == D("-41.0")  # -2 x 41 x 0.5
    assert snapshot.positions["SNMU"].market_value == D(1000), "no mark: at cost"
    assert _as_views(snapshot) == _views(superuser, pid)


def test_a_wide_snapshot_agrees_with_the_views_position_by_position(
    client: PortfolioClient, superuser: psycopg.Connection[tuple[object, ...]]
) -> None:
    """1,500 positions: past the 1,000 from which portfolio_snapshot merges the keys."""
    pid = client.create_portfolio("snapshot wide", D(1))
    rows = [
        (f"SNW{n}", D(n), D(n * 10 * (1 + n % 3)) / 4, D(1 + n % 3), 1 + n % 7)
        for n in range(1, 1501)
    ]
    _write_positions(superuser, pid, rows)
    client.update_market_prices({f"SNW{n}": D(n) / 8 for n in range(1, 1501, 3)})
    snapshot = client.get_portfolio(pid)
    assert len(snapshot.positions) == 1500
    assert list(snapshot.positions) == sorted(f"SNW{n}" for n in range(1, 1501))
    assert _as_views(snapshot) == _views(superuser, pid)
