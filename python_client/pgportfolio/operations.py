"""Operations as values, for read-modify-write callbacks and batch use."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from psycopg.types.json import Jsonb

from pgportfolio.errors import InvalidInput
from pgportfolio.values import optional_aware_time, optional_text


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
class Execution:
    """A fill's execution metadata, all optional: when it happened, the broker's order or
    execution id, and flat string tags. Part of the request's identity in the ledger."""

    executed_at: datetime | None = None
    order_id: str | None = None
    tags: Mapping[str, str] | None = None

    def checked(self) -> dict[str, Any]:
        """The three parameters, type-checked here (their rules of range and size are the
        database's, 22023): an aware datetime, a str, a mapping of str to str."""
        tags = self.tags
        if tags is None and self.executed_at is None and self.order_id is None:
            return {"executed_at": None, "order_id": None, "tags": None}  # most calls
        if tags is not None:
            if not isinstance(tags, Mapping):
                raise InvalidInput(
                    f"tags must be a mapping of str to str, not {type(tags).__name__}"
                )
            for key, value in tags.items():
                if not isinstance(key, str) or not isinstance(value, str):
                    raise InvalidInput(
                        "tags must map str to str",
                        hint=f"Got {type(key).__name__} -> {type(value).__name__}; pass text.",
                    )
        return {
            "executed_at": optional_aware_time("executed_at", self.executed_at),
            "order_id": optional_text("order_id", self.order_id),
            "tags": None if tags is None else Jsonb(dict(tags)),
        }

    @classmethod
    def of(
        cls,
        executed_at: datetime | None,
        order_id: str | None,
        tags: Mapping[str, str] | None,
    ) -> Execution:
        """The metadata a call was given. Most calls give none and share NO_EXECUTION
        (whose ``checked()`` returns at once): a fill builds and checks no empty one."""
        if executed_at is None and order_id is None and tags is None:
            return NO_EXECUTION
        return cls(executed_at, order_id, tags)


NO_EXECUTION = Execution()


@dataclass(frozen=True, slots=True)
class Fill:
    """A signed fill: positive buys, negative sells, with its optional execution metadata."""

    symbol: str
    quantity: Decimal
    price: Decimal
    fee: Decimal = Decimal(0)
    executed_at: datetime | None = None
    order_id: str | None = None
    tags: Mapping[str, str] | None = None


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
