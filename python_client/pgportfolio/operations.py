"""Operations as values, for read-modify-write callbacks and batch use."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal


@dataclass(frozen=True, slots=True)
class Deposit:
    amount: Decimal


@dataclass(frozen=True, slots=True)
class Withdraw:
    amount: Decimal


@dataclass(frozen=True, slots=True)
class ChargeFee:
    amount: Decimal


@dataclass(frozen=True, slots=True)
class Fill:
    """A signed fill: positive buys, negative sells."""

    symbol: str
    quantity: Decimal
    price: Decimal
    fee: Decimal = Decimal(0)


Operation = Deposit | Withdraw | ChargeFee | Fill


@dataclass(frozen=True, slots=True)
class Order:
    """The position manager's order: a signed quantity of ``symbol`` in a portfolio."""

    portfolio_id: int
    symbol: str
    quantity: Decimal
    price: Decimal
    fee: Decimal = Decimal(0)
    request_id: str | None = None
