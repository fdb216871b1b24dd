"""What the client returns: frozen, ``Decimal`` throughout."""

from __future__ import annotations

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
        portfolio_id, version, cash, symbol, quantity, avg_price, realized, duplicate = row
        return cls(
            portfolio_id,
            version,
            cash,
            symbol,
            quantity,
            avg_price,
            realized,
            duplicate,
            request_id=request_id,
            recovered=recovered,
        )


@dataclass(frozen=True, slots=True)
class PositionSnapshot:
    portfolio_id: int
    symbol: str
    quantity: Decimal
    cost_basis: Decimal
    mark_price: Decimal | None
    realized_pnl: Decimal
    version: int

    @property
    def avg_price(self) -> Decimal:
        """Cost basis over quantity, rounded to 8 places like the position_pnl view."""
        return _WIDE.divide(self.cost_basis, self.quantity).quantize(
            Decimal("1E-8"), rounding=ROUND_HALF_UP
        )

    @property
    def market_value(self) -> Decimal:
        """At the mark; at cost when no mark is known (as the position_pnl view)."""
        if self.mark_price is None:
            return self.cost_basis
        return _EXACT.multiply(self.quantity, self.mark_price)

    @property
    def unrealized_pnl(self) -> Decimal:
        return _EXACT.subtract(self.market_value, self.cost_basis)


@dataclass(frozen=True, slots=True)
class PortfolioSnapshot:
    """A portfolio and its open positions as of one database snapshot."""

    portfolio_id: int
    name: str
    currency: str
    cash_balance: Decimal
    realized_pnl: Decimal
    version: int
    updated_at: datetime
    positions: dict[str, PositionSnapshot] = field(default_factory=dict)

    @property
    def market_value(self) -> Decimal:
        total = Decimal(0)
        for position in self.positions.values():
            total = _EXACT.add(total, position.market_value)
        return total

    @property
    def unrealized_pnl(self) -> Decimal:
        total = Decimal(0)
        for position in self.positions.values():
            total = _EXACT.add(total, position.unrealized_pnl)
        return total

    @property
    def equity(self) -> Decimal:
        return _EXACT.add(self.cash_balance, self.market_value)

    @classmethod
    def from_arrays(cls, row: tuple[Any, ...]) -> PortfolioSnapshot:
        """From a ``portfolio_snapshot`` row: the portfolio, then one array per position
        column."""
        portfolio_id, name, currency, cash, realized_pnl, version, updated_at = row[:7]
        positions = {
            symbol: PositionSnapshot(
                portfolio_id, symbol, quantity, basis, mark, realized, p_version
            )
            for symbol, quantity, basis, mark, realized, p_version in zip(*row[7:13], strict=True)
        }
        return cls(
            portfolio_id,
            name,
            currency,
            cash,
            realized_pnl,
            version,
            updated_at,
            positions=positions,
        )

    @classmethod
    def from_rows(cls, rows: list[tuple[Any, ...]]) -> PortfolioSnapshot:
        """From ``get_portfolio`` rows (one per position, the portfolio on each)."""
        first = rows[0]
        positions = {
            r[7]: PositionSnapshot(r[0], r[7], r[8], r[9], r[10], r[11], r[12])
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
