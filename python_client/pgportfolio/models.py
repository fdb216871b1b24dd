"""What the client returns: frozen, ``Decimal`` throughout."""

from __future__ import annotations

import dataclasses
from collections.abc import ItemsView, Iterator, Mapping, ValuesView
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Context, Decimal, Inexact
from typing import Any

# Quantities and prices have at most 8 places below 10^15, so every product and sum here
# fits in far fewer digits: with this context, and Inexact trapped, they are exact
# whatever the caller's decimal context is (the default keeps only 28 digits).
_EXACT = Context(prec=120, traps=[Inexact])
_WIDE = Context(prec=120, rounding=ROUND_HALF_UP)  # for the one division, then rounded


@dataclass(frozen=True, slots=True)
class MutationResult:
    """One row of ``pgportfolio.mutation_result``. ``duplicate`` is true when the request
    id had already been applied and this is the original result."""

    portfolio_id: int
    portfolio_version: int
    cash_balance: Decimal
    symbol: str | None
    position_quantity: Decimal | None
    position_avg_price: Decimal | None
    realized_pnl: Decimal
    duplicate: bool
    request_id: str | None = None
    # True when the connection died in flight and the outcome was read back by request id.
    recovered: bool = False

    @classmethod
    def from_row(
        cls, row: tuple[Any, ...], request_id: str | None, *, recovered: bool = False
    ) -> MutationResult:
        # One is made per fill: filled in through its slots (0.9 µs), not through the
        # frozen dataclass's __init__ (one object.__setattr__ per field: 2.2 µs).
        # tests/client/test_models.py checks that this sets every field, in order.
        portfolio_id, version, cash, symbol, quantity, avg_price, realized, duplicate = row
        result = _new_object(cls)
        _set_portfolio_id(result, portfolio_id)
        _set_portfolio_version(result, version)
        _set_cash_balance(result, cash)
        _set_symbol(result, symbol)
        _set_position_quantity(result, quantity)
        _set_position_avg_price(result, avg_price)
        _set_realized_pnl(result, realized)
        _set_duplicate(result, duplicate)
        _set_request_id(result, request_id)
        _set_recovered(result, recovered)
        return result


_new_object = object.__new__
(
    _set_portfolio_id,
    _set_portfolio_version,
    _set_cash_balance,
    _set_symbol,
    _set_position_quantity,
    _set_position_avg_price,
    _set_realized_pnl,
    _set_duplicate,
    _set_request_id,
    _set_recovered,
) = (MutationResult.__dict__[f.name].__set__ for f in dataclasses.fields(MutationResult))


@dataclass(frozen=True, slots=True)
class PositionSnapshot:
    """An open position. ``multiplier`` is the instrument's contract multiplier when the
    position opened (1 without an instrument): a price moves the position's value by
    ``quantity * multiplier`` per unit, and ``cost_basis`` already includes it."""

    portfolio_id: int
    symbol: str
    quantity: Decimal
    cost_basis: Decimal
    mark_price: Decimal | None
    realized_pnl: Decimal
    version: int
    multiplier: Decimal = Decimal(1)

    @property
    def avg_price(self) -> Decimal:
        """Cost basis over quantity times multiplier, rounded to 8 places like the
        position_pnl view."""
        return _WIDE.divide(
            self.cost_basis, _EXACT.multiply(self.quantity, self.multiplier)
        ).quantize(Decimal("1E-8"), rounding=ROUND_HALF_UP)

    @property
    def market_value(self) -> Decimal:
        """Quantity times mark times multiplier; at cost when no mark is known (as the
        position_pnl view)."""
        if self.mark_price is None:
            return self.cost_basis
        return _EXACT.multiply(_EXACT.multiply(self.quantity, self.mark_price), self.multiplier)

    @property
    def unrealized_pnl(self) -> Decimal:
        return _EXACT.subtract(self.market_value, self.cost_basis)


class SnapshotPositions(Mapping[str, PositionSnapshot]):
    """The open positions of one ``portfolio_snapshot`` row: a read-only mapping from
    symbol to ``PositionSnapshot``, iterated in symbol order.

    The row carries each position column as one comma-separated text. Only the symbols
    are split when the snapshot is made. A position's ``PositionSnapshot`` is made when
    it is first asked for; the first look-up of a wide portfolio's values (``values()``,
    ``items()``, the snapshot's ``market_value`` ...) converts each column to ``Decimal``
    in one pass, and both are kept. Making all 10,000 positions of a wide portfolio up
    front cost about 28 ms of client CPU per snapshot, mostly for positions a caller
    never looks at (docs/performance.md)."""

    __slots__ = ("_columns", "_index", "_made", "_portfolio_id", "_raw", "_symbols", "_texts")

    def __init__(self, portfolio_id: int, symbols: str, columns: tuple[str, ...]) -> None:
        self._portfolio_id = portfolio_id
        self._symbols: list[str] = symbols.split(",") if symbols else []
        self._raw = columns  # quantities, cost bases, marks, realized, versions, multipliers
        self._texts: list[list[str]] | None = None
        self._columns: _Columns | None = None
        self._index: dict[str, int] | None = None
        self._made: dict[str, PositionSnapshot] = {}

    def __len__(self) -> int:
        return len(self._symbols)

    def __iter__(self) -> Iterator[str]:
        return iter(self._symbols)

    def __contains__(self, symbol: object) -> bool:
        return symbol in self._positions_index()

    def __getitem__(self, symbol: str) -> PositionSnapshot:
        made = self._made.get(symbol)
        if made is None:
            i = self._positions_index()[symbol]
            if self._columns is None:  # one position: convert its values alone
                quantity, basis, mark, realized, version, multiplier = (
                    column[i] for column in self._split()
                )
                made = PositionSnapshot(
                    self._portfolio_id,
                    symbol,
                    Decimal(quantity),
                    Decimal(basis),
                    Decimal(mark) if mark else None,
                    Decimal(realized),
                    int(version),
                    Decimal(multiplier),
                )
            else:
                quantities, bases, marks, pnls, versions, multipliers = self._columns
                made = PositionSnapshot(
                    self._portfolio_id,
                    symbol,
                    quantities[i],
                    bases[i],
                    marks[i],
                    pnls[i],
                    versions[i],
                    multipliers[i],
                )
            self._made[symbol] = made
        return made

    def values(self) -> ValuesView[PositionSnapshot]:
        return self._make_all().values()

    def items(self) -> ItemsView[str, PositionSnapshot]:
        return self._make_all().items()

    def __repr__(self) -> str:
        return f"SnapshotPositions({self._make_all()!r})"

    def market_value_and_cost(self) -> tuple[Decimal, Decimal]:
        """Sums over the positions of market value (at cost without a mark) and of
        cost basis, exact, from the columns (no ``PositionSnapshot`` is made)."""
        quantities, bases, marks, _, _, multipliers = self._converted()
        add, multiply = _EXACT.add, _EXACT.multiply
        market = cost = Decimal(0)
        for quantity, basis, mark, multiplier in zip(
            quantities, bases, marks, multipliers, strict=True
        ):
            cost = add(cost, basis)
            value = basis if mark is None else multiply(multiply(quantity, mark), multiplier)
            market = add(market, value)
        return market, cost

    def _positions_index(self) -> dict[str, int]:
        if self._index is None:
            self._index = dict(zip(self._symbols, range(len(self._symbols)), strict=True))
        return self._index

    def _split(self) -> list[list[str]]:
        """Every column's values as texts, split once."""
        if self._texts is None:
            count = len(self._symbols)
            texts = [text.split(",") if count else [] for text in self._raw]
            if any(len(column) != count for column in texts):
                raise ValueError("portfolio_snapshot columns differ in length")
            self._texts = texts
        return self._texts

    def _converted(self) -> _Columns:
        """Every column as values, converted once, column by column (a ``map`` over a
        column costs a third of converting the same values one call at a time)."""
        if self._columns is None:
            quantities, bases, marks, realized, versions, multipliers = self._split()
            self._columns = (
                list(map(Decimal, quantities)),
                list(map(Decimal, bases)),
                [Decimal(mark) if mark else None for mark in marks],
                list(map(Decimal, realized)),
                list(map(int, versions)),
                list(map(Decimal, multipliers)),
            )
        return self._columns

    def _make_all(self) -> dict[str, PositionSnapshot]:
        """Every position, in symbol order (once; those already made are kept)."""
        if len(self._made) < len(self._symbols):
            made, pid = self._made, self._portfolio_id
            quantities, bases, marks, realized, versions, multipliers = self._converted()
            # The frozen dataclass's __init__ sets each field through object.__setattr__
            # (1.2 µs a position); its slots' own setters do the same in half the time.
            # Same fields, same values: only the way they are stored differs.
            new = object.__new__
            s_pid, s_sym, s_qty, s_basis, s_mark, s_pnl, s_ver, s_mult = _POSITION_SETTERS
            everything: dict[str, PositionSnapshot] = {}
            for symbol, quantity, basis, mark, pnl, version, multiplier in zip(
                self._symbols,
                quantities,
                bases,
                marks,
                realized,
                versions,
                multipliers,
                strict=True,
            ):
                position = made.get(symbol)
                if position is None:
                    position = new(PositionSnapshot)
                    s_pid(position, pid)
                    s_sym(position, symbol)
                    s_qty(position, quantity)
                    s_basis(position, basis)
                    s_mark(position, mark)
                    s_pnl(position, pnl)
                    s_ver(position, version)
                    s_mult(position, multiplier)
                everything[symbol] = position
            self._made = everything
        return self._made


# The slot setters of PositionSnapshot's fields, in field order (what _make_all uses).
_POSITION_SETTERS = tuple(
    getattr(PositionSnapshot, f.name).__set__ for f in dataclasses.fields(PositionSnapshot)
)
# The converted columns of a snapshot: quantities, cost bases, marks (None: no mark),
# realized P&L, versions, multipliers.
_Columns = tuple[
    list[Decimal], list[Decimal], list[Decimal | None], list[Decimal], list[int], list[Decimal]
]


@dataclass(frozen=True, slots=True)
class PortfolioSnapshot:
    """A portfolio and its open positions as of one database snapshot. ``positions`` is
    read-only, keyed by symbol, in symbol order."""

    portfolio_id: int
    name: str
    currency: str
    cash_balance: Decimal
    realized_pnl: Decimal
    version: int
    updated_at: datetime
    positions: Mapping[str, PositionSnapshot] = field(default_factory=dict)

    @property
    def market_value(self) -> Decimal:
        if isinstance(self.positions, SnapshotPositions):
            return self.positions.market_value_and_cost()[0]
        total = Decimal(0)
        for position in self.positions.values():
            total = _EXACT.add(total, position.market_value)
        return total

    @property
    def unrealized_pnl(self) -> Decimal:
        if isinstance(self.positions, SnapshotPositions):
            market, cost = self.positions.market_value_and_cost()
            return _EXACT.subtract(market, cost)  # the sum of each position's, exactly
        total = Decimal(0)
        for position in self.positions.values():
            total = _EXACT.add(total, position.unrealized_pnl)
        return total

    @property
    def equity(self) -> Decimal:
        return _EXACT.add(self.cash_balance, self.market_value)

    @classmethod
    def from_snapshot(cls, row: tuple[Any, ...]) -> PortfolioSnapshot:
        """From a ``portfolio_snapshot`` row: the portfolio, then one comma-separated
        text per position column."""
        portfolio_id, name, currency, cash, realized_pnl, version, updated_at = row[:7]
        return cls(
            portfolio_id,
            name,
            currency,
            cash,
            realized_pnl,
            version,
            updated_at,
            positions=SnapshotPositions(portfolio_id, row[7], tuple(row[8:14])),
        )

    @classmethod
    def from_rows(cls, rows: list[tuple[Any, ...]]) -> PortfolioSnapshot:
        """From ``get_portfolio`` rows (one per position, the portfolio on each)."""
        first = rows[0]
        positions = {
            r[7]: PositionSnapshot(r[0], r[7], r[8], r[9], r[10], r[11], r[12], r[13])
            for r in rows
            if r[7] is not None
        }
        portfolio_id, name, currency, cash, realized, version, updated_at = first[:7]
        return cls(
            portfolio_id, name, currency, cash, realized, version, updated_at, positions=positions
        )


@dataclass(frozen=True, slots=True)
class PositionRequest:
    """The seed's request object: open ``quantity`` (signed: negative opens a short) of
    ``symbol`` at ``entry_price``."""

    symbol: str
    quantity: Decimal
    entry_price: Decimal
    fee: Decimal = Decimal(0)
    request_id: str | None = None


@dataclass(frozen=True, slots=True)
class VerificationCheck:
    check_name: str
    ok: bool
    expected: Decimal | None
    actual: Decimal | None


@dataclass(frozen=True, slots=True)
class ChangeEvent:
    """A push update: ``portfolio_id`` reached ``version`` through a ``kind`` mutation.
    ``gap`` is true on the ``resync`` events that open a stream: they carry the current
    version, and what came before it is in the event log (``events_since``)."""

    portfolio_id: int
    version: int
    kind: str
    gap: bool = False


@dataclass(frozen=True, slots=True)
class LoggedEvent:
    """One row of the ``event_log`` view, every column, in the view's order (the
    ``event_log`` query selects them by name, in this order)."""

    portfolio_id: int
    portfolio_version: int
    kind: str
    operation: str
    symbol: str | None
    quantity: Decimal | None
    price: Decimal | None
    fee: Decimal
    amount: Decimal | None
    cash_delta: Decimal
    realized_pnl: Decimal
    cash_balance: Decimal
    position_quantity: Decimal | None
    request_id: str | None
    acting_role: str
    created_at: datetime
    # A fill's execution (None for cash moves): when it happened (its transaction's time
    # unless the sender said), its order id and tags, the multiplier it was applied with.
    executed_at: datetime | None = None
    order_id: str | None = None
    tags: dict[str, str] | None = None
    multiplier: Decimal | None = None


@dataclass(frozen=True, slots=True)
class HistoricalPortfolio:
    """A portfolio as it stood at a ledger time or version (``portfolio_as_of``,
    ``portfolio_at_version``), valued at the marks current at ``marks_at``. The columns
    of ``portfolio_summary``, in its order, then ``marks_at``."""

    portfolio_id: int
    name: str
    currency: str
    cash_balance: Decimal
    market_value: Decimal
    unrealized_pnl: Decimal
    realized_pnl: Decimal
    equity: Decimal
    open_positions: int
    version: int
    updated_at: datetime
    marks_at: datetime


@dataclass(frozen=True, slots=True)
class HistoricalPosition:
    """An open position at a ledger time or version (``positions_as_of``,
    ``positions_at_version``). ``mark_price`` is the average price and ``mark_as_of``
    None when no mark was known then (the position counts at cost)."""

    portfolio_id: int
    symbol: str
    quantity: Decimal
    avg_price: Decimal
    cost_basis: Decimal
    mark_price: Decimal
    mark_as_of: datetime | None
    multiplier: Decimal
    market_value: Decimal
    unrealized_pnl: Decimal
    realized_pnl: Decimal
    version: int
    opened_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class DailyClose:
    """One end-of-day snapshot (``close_day``, table ``daily_closes``), in column order."""

    portfolio_id: int
    day: date
    portfolio_version: int
    cash_balance: Decimal
    market_value: Decimal
    cost_basis: Decimal
    unrealized_pnl: Decimal
    realized_pnl: Decimal
    net_deposits: Decimal
    equity: Decimal
    open_positions: int
    closed_at: datetime
    recorded_at: datetime


@dataclass(frozen=True, slots=True)
class DailyPnl:
    """One row of the ``daily_pnl`` view, in its column order: a close and its change
    since the previous close (``previous_day``; None for the first, whose changes are
    from an empty portfolio)."""

    portfolio_id: int
    day: date
    previous_day: date | None
    portfolio_version: int
    cash_balance: Decimal
    market_value: Decimal
    realized_pnl: Decimal
    unrealized_pnl: Decimal
    net_deposits: Decimal
    equity: Decimal
    open_positions: int
    equity_change: Decimal
    realized_change: Decimal
    unrealized_change: Decimal
    cash_moves: Decimal
    closed_at: datetime
