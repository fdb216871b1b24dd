"""Point in time and end of day (sql/240_history.sql, sql/245_end_of_day.sql) through the
client, against a replay computed here from the operations sent, not from the log.

The property: random fills (with multipliers), cash moves and marks whose ``as_of``
arrives out of order; at random earlier ledger times, ``portfolio_as_of`` and
``positions_as_of`` equal the replay of the operations stamped at or before that time,
valued at the marks this test knows were current then; and at the present they equal the
live reads (``get_portfolio``). Fills apply multipliers: a fill's cash flow and cost
basis are quantity x price x multiplier.
"""

from __future__ import annotations

import random
import secrets
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Context, Decimal
from decimal import Decimal as D

import psycopg
import pytest

from pgportfolio import (
    AsyncPortfolioClient,
    ClosingMarkMissing,
    HistoricalPortfolio,
    HistoricalPosition,
    InvalidInput,
    NotPermitted,
    PortfolioClient,
    PortfolioNotFound,
    frames,
)

_EXACT = Context(prec=200)


@dataclass
class _Position:
    quantity: Decimal = D(0)
    basis: Decimal = D(0)
    realized: Decimal = D(0)
    version: int = 0
    opened_version: int = 0


@dataclass
class _Replay:
    """The ledger's arithmetic (docs/sql-api.md, "Money semantics"), step by step."""

    cash: Decimal
    realized: Decimal = D(0)
    net_deposits: Decimal = D(0)
    version: int = 1
    positions: dict[str, _Position] = field(default_factory=dict)

    def fill(
        self, symbol: str, quantity: Decimal, price: Decimal, fee: Decimal, multiplier: Decimal
    ) -> None:
        p = self.positions.setdefault(symbol, _Position())
        held, basis = p.quantity, p.basis
        new_quantity = held + quantity
        notional = quantity * price * multiplier
        if held == 0:
            new_basis = notional
        elif (quantity > 0) == (held > 0):
            new_basis = basis + notional
        elif new_quantity == 0:
            new_basis = D(0)
        elif (new_quantity > 0) == (held > 0):
            share = _EXACT.divide(_EXACT.multiply(basis, abs(quantity)), abs(held))
            new_basis = basis - share.quantize(D("1e-16"), rounding=ROUND_HALF_UP).normalize()
        else:
            new_basis = new_quantity * price * multiplier
        cash_delta = -notional - fee
        realized = new_basis - basis + cash_delta
        self.version += 1
        self.cash += cash_delta
        self.realized += realized
        if held == 0:
            p.realized, p.version = realized, 1
        else:
            p.realized += realized
            p.version += 1
        p.quantity, p.basis = new_quantity, new_basis

    def move_cash(self, amount: Decimal) -> None:
        self.version += 1
        self.cash += amount
        self.net_deposits += amount


@dataclass
class _Marks:
    """Every mark sent, in arrival order: price_at's rule is the latest as_of at or
    before a time, the later arrival among equal ones."""

    sent: list[tuple[str, Decimal, datetime]] = field(default_factory=list)

    def at(self, symbol: str, when: datetime) -> tuple[Decimal, datetime] | None:
        best: tuple[datetime, int, Decimal] | None = None
        for arrival, (s, price, as_of) in enumerate(self.sent):
            if s == symbol and as_of <= when and (best is None or (as_of, arrival) > best[:2]):
                best = (as_of, arrival, price)
        return None if best is None else (best[2], best[0])


def _expected_positions(
    state: _Replay, marks: _Marks, multipliers: dict[str, Decimal], when: datetime
) -> dict[str, tuple[Decimal, ...]]:
    rows: dict[str, tuple[Decimal, ...]] = {}
    for symbol, p in state.positions.items():
        if p.quantity == 0:
            continue
        multiplier = multipliers.get(symbol, D(1))
        mark = marks.at(symbol, when)
        value = p.basis if mark is None else p.quantity * mark[0] * multiplier
        rows[symbol] = (p.quantity, p.basis, multiplier, value, value - p.basis, p.realized)
        rows[symbol] += (D(p.version),)
    return rows


def _observed_positions(rows: list[HistoricalPosition]) -> dict[str, tuple[Decimal, ...]]:
    return {
        r.symbol: (
            r.quantity,
            r.cost_basis,
            r.multiplier,
            r.market_value,
            r.unrealized_pnl,
            r.realized_pnl,
            D(r.version),
        )
        for r in rows
    }


def _check_portfolio(
    got: HistoricalPortfolio,
    state: _Replay,
    marks: _Marks,
    multipliers: dict[str, Decimal],
    when: datetime,
) -> None:
    positions = _expected_positions(state, marks, multipliers, when)
    market_value = sum((row[3] for row in positions.values()), D(0))
    unrealized = sum((row[4] for row in positions.values()), D(0))
    assert (got.version, got.cash_balance, got.realized_pnl) == (
        state.version,
        state.cash,
        state.realized,
    ), when
    assert (got.market_value, got.unrealized_pnl, got.open_positions) == (
        market_value,
        unrealized,
        len(positions),
    ), when
    assert got.equity == state.cash + market_value
    assert got.equity == state.net_deposits + state.realized + unrealized


def _ledger_time(client: PortfolioClient) -> datetime:
    with client.pool.connection() as conn:
        row = conn.execute("SELECT clock_timestamp()").fetchone()
    assert row is not None
    moment: datetime = row[0]
    return moment


@pytest.mark.parametrize("seed", range(4))
def test_as_of_equals_an_independent_replay(client: PortfolioClient, seed: int) -> None:
    rng = random.Random(seed)
    prefix = "H" + secrets.token_hex(3).upper()
    symbols = [f"{prefix}{n}" for n in range(3)]
    multipliers = {symbols[0]: D(1), symbols[1]: D(10), symbols[2]: D("0.5")}
    for symbol, multiplier in multipliers.items():
        client.upsert_instrument(symbol, multiplier)
    start = _ledger_time(client)
    pid = client.create_portfolio(f"history {seed}", D(10_000_000))
    state = _Replay(cash=D(10_000_000), net_deposits=D(10_000_000))
    marks = _Marks()
    snapshots: list[_Replay] = [_copy(state)]  # the replay after each version

    for _ in range(45):
        roll = rng.random()
        if roll < 0.6:
            symbol = rng.choice(symbols)
            held = state.positions.get(symbol, _Position()).quantity
            if held != 0 and rng.random() < 0.25:
                quantity = -held  # close, so positions also reopen
            else:
                quantity = D(rng.randint(-400, 400) or 7) / D(rng.choice([1, 4, 100]))
            price = D(rng.randint(1, 50_000)) / D(100)
            fee = D(rng.randint(0, 300)) / D(100)
            client.apply_fill(pid, symbol, quantity, price, fee=fee)
            state.fill(symbol, quantity, price, fee, multipliers[symbol])
            snapshots.append(_copy(state))
        elif roll < 0.7:
            amount = D(rng.randint(1, 10_000)) / D(100)
            if rng.random() < 0.5:
                client.deposit_cash(pid, amount)
                state.move_cash(amount)
            else:
                client.withdraw_cash(pid, amount)
                state.move_cash(-amount)
            snapshots.append(_copy(state))
        else:
            # A mark as of some time since the start, out of order with the others.
            now = _ledger_time(client)
            as_of = start + (now - start) * rng.random()
            if marks.sent and rng.random() < 0.2:
                as_of = rng.choice(marks.sent)[2]  # same as_of: the later arrival wins
            symbol = rng.choice(symbols)
            price = D(rng.randint(1, 50_000)) / D(100)
            client.update_market_price(symbol, price, as_of=as_of)
            marks.sent.append((symbol, price, as_of))

    log = client.event_log(pid)
    assert [e.portfolio_version for e in log] == list(range(1, len(snapshots) + 1))
    stamps = [e.created_at for e in log]
    assert stamps == sorted(stamps), "one writer: stamps follow versions"
    end = _ledger_time(client)
    times = [stamps[0] - timedelta(microseconds=1), end]
    times += rng.sample(stamps, 8)
    times += [start + (end - start) * rng.random() for _ in range(8)]

    for when in times:
        version = sum(1 for s in stamps if s <= when)
        if version == 0:
            with pytest.raises(PortfolioNotFound):
                client.portfolio_as_of(pid, when)
            assert client.positions_as_of(pid, when) == []
            continue
        expected = snapshots[version - 1]
        _check_portfolio(client.portfolio_as_of(pid, when), expected, marks, multipliers, when)
        assert _observed_positions(client.positions_as_of(pid, when)) == _expected_positions(
            expected, marks, multipliers, when
        ), when
        at_version = client.portfolio_at_version(pid, version, marks_at=when)
        _check_portfolio(at_version, expected, marks, multipliers, when)

    # The present: the live reads value every position as the history does, multipliers too.
    present = _ledger_time(client)
    live = client.get_portfolio(pid)
    now_portfolio = client.portfolio_as_of(pid, present)
    assert (now_portfolio.version, now_portfolio.cash_balance, now_portfolio.realized_pnl) == (
        live.version,
        live.cash_balance,
        live.realized_pnl,
    )
    history = {p.symbol: p for p in client.positions_as_of(pid, present)}
    assert set(history) == set(live.positions)
    for symbol, position in live.positions.items():
        seen = history[symbol]
        assert (seen.quantity, seen.cost_basis, seen.realized_pnl, seen.version) == (
            position.quantity,
            position.cost_basis,
            position.realized_pnl,
            position.version,
        )
        assert (seen.multiplier, seen.mark_price, seen.market_value, seen.unrealized_pnl) == (
            position.multiplier,
            position.mark_price if position.mark_price is not None else position.avg_price,
            position.market_value,
            position.unrealized_pnl,
        )
    assert now_portfolio.equity == live.equity


def _copy(state: _Replay) -> _Replay:
    return _Replay(
        cash=state.cash,
        realized=state.realized,
        net_deposits=state.net_deposits,
        version=state.version,
        positions={s: _Position(**vars(p)) for s, p in state.positions.items()},
    )


def _restamp(conninfo: str, portfolio_id: int, stamps: dict[int, datetime]) -> None:
    """Move a portfolio's events to past ledger times (a day can be closed only once it
    is over). Test-only surgery, as superuser, on this test's own database."""
    with psycopg.connect(conninfo) as conn:
        conn.execute("ALTER TABLE pgportfolio.events DISABLE TRIGGER events_append_only")
        for version, stamp in stamps.items():
            conn.execute(
                "UPDATE pgportfolio.events SET created_at = %s"
                " WHERE portfolio_id = %s AND portfolio_version = %s",
                (stamp, portfolio_id, version),
            )
        conn.execute("ALTER TABLE pgportfolio.events ENABLE ALWAYS TRIGGER events_append_only")


def test_close_day_snapshots_sum_to_the_ledger_identities(db: str) -> None:
    rng = random.Random(12)
    first_day = datetime.now(UTC).date() - timedelta(days=6)
    days = [first_day + timedelta(days=n) for n in range(4)]
    symbols = ["CDA", "CDB"]
    multipliers = {"CDA": D(1), "CDB": D(5)}
    with PortfolioClient(db, min_size=1, max_size=2) as client:
        for symbol, multiplier in multipliers.items():
            client.upsert_instrument(symbol, multiplier)
        pid = client.create_portfolio("closes", D(1_000_000))
        state = _Replay(cash=D(1_000_000), net_deposits=D(1_000_000))
        marks = _Marks()
        by_day: dict[date, list[_Replay]] = {}
        stamps: dict[int, datetime] = {1: _noon(days[0])}
        for day in days:
            for n in range(rng.randint(2, 6)):
                if rng.random() < 0.8:
                    symbol = rng.choice(symbols)
                    quantity = D(rng.randint(-50, 50) or 3)
                    price = D(rng.randint(100, 9000)) / D(100)
                    client.apply_fill(pid, symbol, quantity, price, fee=D("0.5"))
                    state.fill(symbol, quantity, price, D("0.5"), multipliers[symbol])
                else:
                    client.deposit_cash(pid, D(250))
                    state.move_cash(D(250))
                stamps[state.version] = _noon(day) + timedelta(minutes=n + 1)
            for symbol in symbols:
                price = D(rng.randint(100, 9000)) / D(100)
                as_of = _noon(day) + timedelta(hours=rng.randint(1, 11))
                client.update_market_price(symbol, price, as_of=as_of)
                marks.sent.append((symbol, price, as_of))
            by_day.setdefault(day, []).append(_copy(state))
        _restamp(db, pid, stamps)

        closes = [client.close_day(day, pid)[0] for day in days]
        again = [client.close_day(day, pid)[0] for day in days]
        assert again == closes, "a second close returns the same rows"
        for day, close in zip(days, closes, strict=True):
            expected = by_day[day][-1]
            end = datetime.combine(day + timedelta(days=1), datetime.min.time(), UTC)
            end -= timedelta(microseconds=1)
            assert close.closed_at == end
            positions = _expected_positions(expected, marks, multipliers, end)
            market_value = sum((row[3] for row in positions.values()), D(0))
            assert (close.portfolio_version, close.cash_balance, close.realized_pnl) == (
                expected.version,
                expected.cash,
                expected.realized,
            )
            assert (close.market_value, close.net_deposits) == (market_value, expected.net_deposits)
            assert close.equity == close.cash_balance + close.market_value
            assert close.equity == close.net_deposits + close.realized_pnl + close.unrealized_pnl
            as_of = client.portfolio_as_of(pid, end)
            assert (as_of.version, as_of.equity, as_of.unrealized_pnl) == (
                close.portfolio_version,
                close.equity,
                close.unrealized_pnl,
            )

        pnl = client.daily_pnl(pid)
        assert [row.day for row in pnl] == days
        for row in pnl:
            assert row.equity_change == row.realized_change + row.unrealized_change + row.cash_moves
        assert sum((row.equity_change for row in pnl), D(0)) == closes[-1].equity
        assert sum((row.cash_moves for row in pnl), D(0)) == closes[-1].net_deposits
        assert sum((row.realized_change for row in pnl), D(0)) == closes[-1].realized_pnl
        assert client.daily_pnl(pid, since=days[1], until=days[2]) == pnl[1:3]

        frame = frames.daily_pnl_frame(client, pid)
        assert list(frame.index) == days
        assert tuple(frame.columns) == frames.DAILY_PNL_COLUMNS
        assert list(frame["equity_change"]) == [row.equity_change for row in pnl]
        assert frame["equity"].dtype == object  # Decimal kept exact
        assert frame["portfolio_version"].dtype == "int64"


def _noon(day: date) -> datetime:
    return datetime.combine(day, datetime.min.time(), UTC) + timedelta(hours=12)


def test_close_day_refusals_are_typed(db: str) -> None:
    with PortfolioClient(db, min_size=1, max_size=2) as client:
        pid = client.create_portfolio("refusals", D(1000))
        client.apply_fill(pid, "NOMARK", D(1), D(10))
        yesterday = datetime.now(UTC).date() - timedelta(days=1)
        _restamp(db, pid, {1: _noon(yesterday), 2: _noon(yesterday)})
        with pytest.raises(ClosingMarkMissing, match="no closing mark for NOMARK"):
            client.close_day(yesterday)
        with pytest.raises(InvalidInput, match="has not ended"):
            client.close_day(datetime.now(UTC).date())
        with pytest.raises(InvalidInput, match="must be a date"):
            client.close_day(datetime.now(UTC))  # type: ignore[arg-type]
        with pytest.raises(PortfolioNotFound):
            client.close_day(yesterday, 10**12)
        with pytest.raises(PortfolioNotFound):
            client.portfolio_as_of(10**12, datetime.now(UTC))
        with pytest.raises(InvalidInput, match="has no version 9"):
            client.portfolio_at_version(pid, 9)
        with pytest.raises(InvalidInput, match="timezone-aware"):
            client.positions_as_of(pid, datetime(2025, 1, 1))
        assert client.daily_pnl(pid) == []


def test_only_the_owner_closes_a_day(db: str) -> None:
    role = f"history_trader_{secrets.token_hex(3)}"
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN IN ROLE pgportfolio_trader")
    try:
        trader_dsn = psycopg.conninfo.make_conninfo(db, user=role)
        with PortfolioClient(trader_dsn, min_size=1, max_size=1) as trader:
            pid = trader.create_portfolio("trader's", D(10))
            with pytest.raises(NotPermitted):
                trader.close_day(datetime.now(UTC).date() - timedelta(days=1))
            assert trader.portfolio_as_of(pid, datetime.now(UTC)).cash_balance == D(10)
    finally:
        with psycopg.connect(db, autocommit=True) as conn:
            conn.execute(f"DROP OWNED BY {role}")
            conn.execute(f"DROP ROLE {role}")


async def test_async_history_reads(aclient: AsyncPortfolioClient) -> None:
    pid = await aclient.create_portfolio("history async", D(100))
    await aclient.apply_fill(pid, "HASYNC", D(2), D(3))
    now = datetime.now(UTC) + timedelta(seconds=1)
    portfolio = await aclient.portfolio_as_of(pid, now)
    assert (portfolio.version, portfolio.cash_balance, portfolio.open_positions) == (2, D(94), 1)
    positions = await aclient.positions_at_version(pid, 2)
    assert [(p.symbol, p.quantity, p.market_value) for p in positions] == [("HASYNC", D(2), D(6))]
    assert (await aclient.portfolio_at_version(pid, 1)).cash_balance == D(100)
    assert await aclient.positions_as_of(pid, now) == positions
    assert await aclient.daily_pnl(pid) == []
    assert (await frames.daily_pnl_frame_async(aclient, pid)).empty
