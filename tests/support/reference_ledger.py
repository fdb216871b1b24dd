"""A pure-Python reference ledger: the model for the model test (``test_model.py``).

Written from docs/sql-api.md alone (money semantics, idempotency, compare-and-set, the
order of checks, SQLSTATEs), not from the PL/pgSQL. All arithmetic is exact: Decimal in a
context that traps any inexact result, and ``Fraction`` for the two divisions the ledger
rounds (basis removed by a partial reduction, to 16 places; the average price, to 8),
both half away from zero. Errors are the client's classes, so the test compares classes.

Multipliers: an instrument's multiplier (``upsert_instrument``; 1 without one) scales a
fill's notional, ``quantity * price * multiplier``, and a position keeps the multiplier it
opened with. Execution metadata (``executed_at``, ``order_id``, ``tags``) is validated,
kept on the fill's event and compared as part of a request's identity: times by instant,
tags as mappings (key order does not matter), an omitted value unlike any given one.

Hooks a deliberately wrong ledger can override (the negative control): ``basis_removed``
and ``fill_cash_delta``.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import (
    Context,
    Decimal,
    DivisionByZero,
    Inexact,
    InvalidOperation,
    Overflow,
    localcontext,
)
from fractions import Fraction
from typing import Any

from pgportfolio.errors import (
    InstrumentHeld,
    InsufficientCash,
    InsufficientPosition,
    InvalidInput,
    PortfolioNotFound,
    PositionAlreadyOpen,
    RequestIdReused,
    VersionConflict,
)

ZERO = Decimal(0)
LIMIT = Decimal(10) ** 15
MAX_PLACES = 8
SYMBOL = re.compile(r"[A-Z0-9._\-/:]{1,32}")
CASH_OPERATIONS = ("deposit_cash", "withdraw_cash", "charge_fee")
FILL_OPERATIONS = (
    "apply_fill",
    "open_position",
    "add_to_position",
    "reduce_position",
    "close_position",
)

# Exact arithmetic or an exception: every figure the ledger handles has at most 8 decimal
# places and is below 10^15, so products have at most 16 places and 31 integer digits.
EXACT = Context(prec=200, traps=[InvalidOperation, DivisionByZero, Overflow, Inexact])
ONE = Decimal(1)


def refused_text(text: str) -> bool:
    """Control or format characters (Unicode categories Cc and Cf, such as U+202E), which
    the ledger refuses in the text it stores (docs/sql-api.md, "Execution metadata")."""
    return any(unicodedata.category(c) in ("Cc", "Cf") for c in text)


def round_half_away(value: Fraction, places: int) -> Decimal:
    """``value`` rounded to ``places`` decimal places, ties away from zero (as PostgreSQL's
    ``round(numeric, n)``), exactly."""
    scaled = value * 10**places
    quotient, remainder = divmod(abs(scaled.numerator), scaled.denominator)
    if 2 * remainder >= scaled.denominator:
        quotient += 1
    sign = -1 if scaled < 0 else 1
    with localcontext(EXACT):
        return Decimal(sign * quotient).scaleb(-places)


def sign_of(value: Decimal) -> int:
    return (value > 0) - (value < 0)


def decimal_places(value: Decimal) -> int:
    """Decimal places of the value, trailing zeros trimmed (``1.500000000`` has 1)."""
    exponent = value.normalize(EXACT).as_tuple().exponent
    assert isinstance(exponent, int)
    return max(0, -exponent)


def check_number(name: str, value: Decimal, rule: str) -> None:
    """The numeric rules of the Conventions section, then the argument's sign rule."""
    if not value.is_finite():
        raise InvalidInput(f"{name} must be a finite number")
    if abs(value) >= LIMIT:
        raise InvalidInput(f"{name} is out of range")
    if decimal_places(value) > MAX_PLACES:
        raise InvalidInput(f"{name} has more than 8 decimal places")
    if rule == "positive" and value <= 0:
        raise InvalidInput(f"{name} must be positive")
    if rule == "nonnegative" and value < 0:
        raise InvalidInput(f"{name} must not be negative")
    if rule == "nonzero" and value == 0:
        raise InvalidInput(f"{name} must not be zero")


@dataclass(frozen=True)
class Result:
    """What a mutation returns (``pgportfolio.mutation_result``)."""

    portfolio_id: int
    portfolio_version: int
    cash_balance: Decimal
    symbol: str | None
    position_quantity: Decimal | None
    position_avg_price: Decimal | None
    realized_pnl: Decimal
    duplicate: bool


@dataclass(frozen=True)
class Event:
    """One ``event_log`` row (without acting role and timestamp)."""

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
    # A fill's: the execution time it was sent with (None: not sent), its order id and
    # tags, the multiplier it was applied with. None for every other event.
    executed_at: datetime | None = None
    order_id: str | None = None
    tags: dict[str, str] | None = None
    multiplier: Decimal | None = None


@dataclass
class Position:
    quantity: Decimal
    cost_basis: Decimal
    realized_pnl: Decimal
    version: int
    multiplier: Decimal = ONE

    @property
    def avg_price(self) -> Decimal:
        """Per unit of price: cost basis / (quantity * multiplier)."""
        return round_half_away(
            Fraction(self.cost_basis) / (Fraction(self.quantity) * Fraction(self.multiplier)), 8
        )

    def market_value(self, mark: Decimal) -> Decimal:
        return self.quantity * mark * self.multiplier


@dataclass
class Portfolio:
    portfolio_id: int
    initial_cash: Decimal
    cash: Decimal
    realized_pnl: Decimal = ZERO
    version: int = 1
    positions: dict[str, Position] = field(default_factory=dict)
    # request id -> (operation, compared arguments, original result)
    requests: dict[str, tuple[str, dict[str, Any], Result]] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)


@dataclass(frozen=True)
class _Plan:
    """A fill worked out before anything is changed."""

    kind: str
    fill: Decimal
    new_quantity: Decimal
    new_basis: Decimal
    cash_delta: Decimal
    realized: Decimal


class ReferenceLedger:
    """Portfolios, positions, marks and request ids, as docs/sql-api.md describes them."""

    def __init__(self) -> None:
        self.portfolios: dict[int, Portfolio] = {}
        self.marks: dict[str, Decimal] = {}
        self.multipliers: dict[str, Decimal] = {}

    # -- hooks (a wrong ledger overrides these) -------------------------------------

    def basis_removed(self, basis: Decimal, fill: Decimal, held: Decimal) -> Decimal:
        """Cost basis a partial reduction takes off: proportional, rounded to 16 places."""
        return round_half_away(Fraction(basis) * Fraction(abs(fill)) / Fraction(abs(held)), 16)

    def fill_cash_delta(self, notional: Decimal, fee: Decimal) -> Decimal:
        """``-notional - fee`` (notional = fill * price * multiplier, signed like the
        fill): a buy debits value + fee, a sell credits value - fee."""
        return -notional - fee

    # -- reads ----------------------------------------------------------------------

    def portfolio(self, portfolio_id: int) -> Portfolio:
        return self.portfolios[portfolio_id]

    def market_value(self, portfolio_id: int) -> Decimal:
        """``portfolio_summary.market_value``: quantity * mark * multiplier, at cost
        without a mark."""
        with localcontext(EXACT):
            total = ZERO
            for symbol, position in self.portfolios[portfolio_id].positions.items():
                mark = self.marks.get(symbol)
                total += position.cost_basis if mark is None else position.market_value(mark)
            return total

    def equity(self, portfolio_id: int) -> Decimal:
        """Cash + market value."""
        with localcontext(EXACT):
            return self.portfolios[portfolio_id].cash + self.market_value(portfolio_id)

    def unrealized_pnl(self, portfolio_id: int) -> Decimal:
        """quantity * mark - cost basis; 0 for a position without a mark."""
        with localcontext(EXACT):
            total = ZERO
            for symbol, position in self.portfolios[portfolio_id].positions.items():
                mark = self.marks.get(symbol)
                if mark is not None:
                    total += position.market_value(mark) - position.cost_basis
            return total

    def multiplier(self, symbol: str) -> Decimal:
        return self.multipliers.get(symbol, ONE)

    # -- calls without a request id -------------------------------------------------

    def check_create(self, initial_cash: Decimal) -> None:
        """The checks of ``create_portfolio``; the database assigns the id."""
        check_number("p_initial_cash", initial_cash, "nonnegative")

    def create_portfolio(self, portfolio_id: int, initial_cash: Decimal) -> int:
        self.check_create(initial_cash)
        assert portfolio_id not in self.portfolios
        portfolio = Portfolio(portfolio_id, initial_cash, initial_cash)
        portfolio.events.append(
            Event(
                1,
                "create",
                "create_portfolio",
                None,
                None,
                None,
                ZERO,
                initial_cash,
                initial_cash,
                ZERO,
                initial_cash,
                None,
                None,
            )
        )
        self.portfolios[portfolio_id] = portfolio
        return portfolio_id

    def update_market_price(self, symbol: str, price: Decimal) -> None:
        _check_symbol(symbol)
        check_number("p_price", price, "positive")
        self.marks[symbol] = price

    def upsert_instrument(self, symbol: str, multiplier: Decimal) -> None:
        """The multiplier of a symbol that any portfolio holds cannot change (PF007)."""
        _check_symbol(symbol)
        check_number("p_multiplier", multiplier, "positive")
        if multiplier != self.multiplier(symbol) and any(
            symbol in p.positions for p in self.portfolios.values()
        ):
            raise InstrumentHeld(f"symbol {symbol} is held: its multiplier cannot change")
        self.multipliers[symbol] = multiplier

    # -- cash -----------------------------------------------------------------------

    def deposit_cash(
        self,
        portfolio_id: int,
        amount: Decimal,
        *,
        request_id: str | None = None,
        expected_version: int | None = None,
    ) -> Result:
        return self._cash("deposit_cash", portfolio_id, amount, request_id, expected_version)

    def withdraw_cash(
        self,
        portfolio_id: int,
        amount: Decimal,
        *,
        request_id: str | None = None,
        expected_version: int | None = None,
    ) -> Result:
        return self._cash("withdraw_cash", portfolio_id, amount, request_id, expected_version)

    def charge_fee(
        self,
        portfolio_id: int,
        amount: Decimal,
        *,
        request_id: str | None = None,
        expected_version: int | None = None,
    ) -> Result:
        return self._cash("charge_fee", portfolio_id, amount, request_id, expected_version)

    def _cash(
        self,
        operation: str,
        portfolio_id: int,
        amount: Decimal,
        request_id: str | None,
        expected_version: int | None,
    ) -> Result:
        with localcontext(EXACT):
            check_number("p_amount", amount, "positive")
            portfolio = self._enter(
                operation, portfolio_id, {"amount": amount}, request_id, expected_version
            )
            if isinstance(portfolio, Result):
                return portfolio
            if operation == "deposit_cash":
                kind, delta, fee, realized = "deposit", amount, ZERO, ZERO
            elif operation == "withdraw_cash":
                kind, delta, fee, realized = "withdraw", -amount, ZERO, ZERO
            else:
                kind, delta, fee, realized = "fee", -amount, amount, -amount
            cash = portfolio.cash + delta
            if cash < 0:
                raise InsufficientCash(f"needed {amount}, available {portfolio.cash}")
            version = portfolio.version + 1
            result = Result(portfolio_id, version, cash, None, None, None, realized, False)
            event = Event(
                version,
                kind,
                operation,
                None,
                None,
                None,
                fee,
                amount,
                delta,
                realized,
                cash,
                None,
                request_id,
            )
            self._commit(portfolio, operation, {"amount": amount}, request_id, result, event)
            return result

    # -- fills ----------------------------------------------------------------------

    def apply_fill(
        self,
        portfolio_id: int,
        symbol: str,
        quantity: Decimal,
        price: Decimal,
        *,
        fee: Decimal = ZERO,
        request_id: str | None = None,
        expected_version: int | None = None,
        **execution: Any,
    ) -> Result:
        return self._fill(
            "apply_fill",
            portfolio_id,
            symbol,
            quantity,
            price,
            fee,
            request_id,
            expected_version,
            Execution(**execution),
        )

    def open_position(
        self,
        portfolio_id: int,
        symbol: str,
        quantity: Decimal,
        price: Decimal,
        *,
        fee: Decimal = ZERO,
        request_id: str | None = None,
        expected_version: int | None = None,
        **execution: Any,
    ) -> Result:
        return self._fill(
            "open_position",
            portfolio_id,
            symbol,
            quantity,
            price,
            fee,
            request_id,
            expected_version,
            Execution(**execution),
        )

    def add_to_position(
        self,
        portfolio_id: int,
        symbol: str,
        quantity: Decimal,
        price: Decimal,
        *,
        fee: Decimal = ZERO,
        request_id: str | None = None,
        expected_version: int | None = None,
        **execution: Any,
    ) -> Result:
        return self._fill(
            "add_to_position",
            portfolio_id,
            symbol,
            quantity,
            price,
            fee,
            request_id,
            expected_version,
            Execution(**execution),
        )

    def reduce_position(
        self,
        portfolio_id: int,
        symbol: str,
        quantity: Decimal,
        price: Decimal,
        *,
        fee: Decimal = ZERO,
        request_id: str | None = None,
        expected_version: int | None = None,
        **execution: Any,
    ) -> Result:
        return self._fill(
            "reduce_position",
            portfolio_id,
            symbol,
            quantity,
            price,
            fee,
            request_id,
            expected_version,
            Execution(**execution),
        )

    def close_position(
        self,
        portfolio_id: int,
        symbol: str,
        price: Decimal,
        *,
        fee: Decimal = ZERO,
        request_id: str | None = None,
        expected_version: int | None = None,
        **execution: Any,
    ) -> Result:
        return self._fill(
            "close_position",
            portfolio_id,
            symbol,
            None,
            price,
            fee,
            request_id,
            expected_version,
            Execution(**execution),
        )

    def _fill(
        self,
        operation: str,
        portfolio_id: int,
        symbol: str,
        quantity: Decimal | None,
        price: Decimal,
        fee: Decimal,
        request_id: str | None,
        expected_version: int | None,
        execution: Execution | None = None,
    ) -> Result:
        execution = execution or Execution()
        with localcontext(EXACT):
            # 1. Input validation.
            _check_symbol(symbol)
            if operation == "reduce_position":
                assert quantity is not None
                check_number("p_quantity", quantity, "positive")
            elif operation != "close_position":
                assert quantity is not None
                check_number("p_quantity", quantity, "nonzero")
            check_number("p_price", price, "positive")
            check_number("p_fee", fee, "nonnegative")
            execution.check()
            arguments: dict[str, Any] = {
                "symbol": symbol,
                "quantity": quantity,
                "price": price,
                "fee": fee,
                "executed_at": execution.executed_at,
                "order_id": execution.order_id,
                "tags": None if execution.tags is None else dict(execution.tags),
            }
            # 2.-5. Portfolio, request id, expected version.
            portfolio = self._enter(
                operation, portfolio_id, arguments, request_id, expected_version
            )
            if isinstance(portfolio, Result):
                return portfolio
            # 6. What the function itself requires; the signed fill actually applied.
            position = portfolio.positions.get(symbol)
            held = ZERO if position is None else position.quantity
            basis = ZERO if position is None else position.cost_basis
            # An open position keeps its multiplier; one opening takes the instrument's.
            multiplier = self.multiplier(symbol) if position is None else position.multiplier
            fill = _signed_fill(operation, symbol, quantity, held)
            if abs(held + fill) >= LIMIT:
                raise InvalidInput(f"position in {symbol} would be out of range")
            plan = self._plan(fill, price, fee, held, basis, multiplier)
            # 7. Cash.
            cash = portfolio.cash + plan.cash_delta
            if cash < 0:
                raise InsufficientCash(f"needed {-plan.cash_delta}, available {portfolio.cash}")
            version = portfolio.version + 1
            avg = None
            if plan.new_quantity != 0:
                avg = round_half_away(
                    Fraction(plan.new_basis) / (Fraction(plan.new_quantity) * Fraction(multiplier)),
                    MAX_PLACES,
                )
            result = Result(
                portfolio_id, version, cash, symbol, plan.new_quantity, avg, plan.realized, False
            )
            event = Event(
                version,
                plan.kind,
                operation,
                symbol,
                fill,
                price,
                fee,
                None,
                plan.cash_delta,
                plan.realized,
                cash,
                plan.new_quantity,
                request_id,
                execution.executed_at,
                execution.order_id,
                arguments["tags"],
                multiplier,
            )
            # Commit: position, portfolio, request id, event.
            if plan.new_quantity == 0:
                del portfolio.positions[symbol]
            elif position is None or plan.kind == "open":
                portfolio.positions[symbol] = Position(
                    plan.new_quantity, plan.new_basis, plan.realized, 1, multiplier
                )
            else:
                position.quantity = plan.new_quantity
                position.cost_basis = plan.new_basis
                position.realized_pnl += plan.realized
                position.version += 1
            self._commit(portfolio, operation, arguments, request_id, result, event)
            return result

    def _plan(
        self,
        fill: Decimal,
        price: Decimal,
        fee: Decimal,
        held: Decimal,
        basis: Decimal,
        multiplier: Decimal = ONE,
    ) -> _Plan:
        """The money semantics table: new cost basis and event kind, then realized P&L
        = cash flow + change in basis - fee."""
        new_quantity = held + fill
        notional = fill * price * multiplier
        if held == 0:
            kind, new_basis = "open", notional
        elif sign_of(fill) == sign_of(held):
            kind, new_basis = "add", basis + notional
        elif new_quantity == 0:
            kind, new_basis = "close", ZERO
        elif sign_of(new_quantity) == sign_of(held):
            kind, new_basis = "reduce", basis - self.basis_removed(basis, fill, held)
        else:
            kind, new_basis = "flip", new_quantity * price * multiplier
        cash_flow = -notional
        realized = cash_flow + (new_basis - basis) - fee
        cash_delta = self.fill_cash_delta(notional, fee)
        return _Plan(kind, fill, new_quantity, new_basis, cash_delta, realized)

    # -- shared steps ---------------------------------------------------------------

    def _enter(
        self,
        operation: str,
        portfolio_id: int,
        arguments: dict[str, Any],
        request_id: str | None,
        expected_version: int | None,
    ) -> Portfolio | Result:
        """Checks 1 (request id and expected version formats), 2, 4 and 5: the portfolio
        to change, or the stored result of a replay."""
        if request_id is not None and not _valid_request_id(request_id):
            raise InvalidInput("invalid request id")
        if expected_version is not None and expected_version < 1:
            raise InvalidInput("expected_version must be at least 1")
        portfolio = self.portfolios.get(portfolio_id)
        if portfolio is None:
            raise PortfolioNotFound(f"portfolio {portfolio_id} not found")
        if request_id is not None and request_id in portfolio.requests:
            first_operation, first_arguments, result = portfolio.requests[request_id]
            if first_operation != operation or first_arguments != arguments:
                raise RequestIdReused(f"request id {request_id!r} was already used")
            return replace(result, duplicate=True)
        if expected_version is not None and expected_version != portfolio.version:
            raise VersionConflict(
                f"expected version {expected_version}, found version {portfolio.version}",
                expected_version=expected_version,
                found_version=portfolio.version,
            )
        return portfolio

    @staticmethod
    def _commit(
        portfolio: Portfolio,
        operation: str,
        arguments: dict[str, Any],
        request_id: str | None,
        result: Result,
        event: Event,
    ) -> None:
        portfolio.cash = result.cash_balance
        portfolio.realized_pnl += result.realized_pnl
        portfolio.version = result.portfolio_version
        portfolio.events.append(event)
        if request_id is not None:
            portfolio.requests[request_id] = (operation, dict(arguments), result)


@dataclass(frozen=True)
class Execution:
    """A fill's optional execution metadata, with the ledger's rules for it."""

    executed_at: datetime | None = None
    order_id: str | None = None
    tags: Mapping[str, Any] | None = None

    def check(self) -> None:
        """The rules for order ids and tags. An executed_at is never in the future here
        (the model sends fixed past times; pgTAP tests that rule against the clock)."""
        if self.order_id is not None and (
            not 1 <= len(self.order_id) <= 200 or refused_text(self.order_id)
        ):
            raise InvalidInput("invalid order id")
        if self.tags is None:
            return
        if not isinstance(self.tags, Mapping):
            raise InvalidInput("tags must be a JSON object")
        if len(self.tags) > 32 or len(_json_text(self.tags).encode()) > 4096:
            raise InvalidInput("invalid tags")
        for key, value in self.tags.items():
            if (
                not isinstance(value, str)
                or not 1 <= len(key) <= 64
                or len(value) > 256
                or refused_text(key)
                or refused_text(value)
            ):
                raise InvalidInput("invalid tags")


def _json_text(tags: Mapping[str, Any]) -> str:
    """jsonb's text form of a flat object: keys by length, then bytes; ", " and ": "."""
    keys = sorted(tags, key=lambda k: (len(k.encode()), k.encode()))
    return (
        "{"
        + ", ".join(
            f"{json.dumps(k, ensure_ascii=False)}: {json.dumps(tags[k], ensure_ascii=False)}"
            for k in keys
        )
        + "}"
    )


def _check_symbol(symbol: str) -> None:
    if SYMBOL.fullmatch(symbol) is None:
        raise InvalidInput("invalid symbol")


def _valid_request_id(request_id: str) -> bool:
    return 1 <= len(request_id) <= 200 and not any(
        ord(c) < 32 or 127 <= ord(c) < 160 for c in request_id
    )


def _signed_fill(operation: str, symbol: str, quantity: Decimal | None, held: Decimal) -> Decimal:
    """The signed quantity a fill function applies, or its function-specific error."""
    if operation == "apply_fill":
        assert quantity is not None
        return quantity
    if operation == "open_position":
        assert quantity is not None
        if held != 0:
            raise PositionAlreadyOpen(f"a position in {symbol} is already open")
        return quantity
    if held == 0:
        raise InsufficientPosition(f"no {symbol} position")
    assert operation in ("add_to_position", "reduce_position", "close_position")
    if operation == "close_position":
        return -held
    assert quantity is not None
    if operation == "add_to_position":
        if sign_of(quantity) != sign_of(held):
            raise InvalidInput("add_to_position must be on the side of the open position")
        return quantity
    if quantity > abs(held):
        raise InsufficientPosition(f"not enough {symbol} to reduce by {quantity}")
    return -sign_of(held) * quantity
