"""The seed's object style on top of the client: a handle for one portfolio, and the
position-manager names. ``_sync/handles.py`` is generated from this file."""

from __future__ import annotations

import dataclasses
from decimal import Decimal
from typing import Protocol

from pgportfolio.models import MutationResult, PortfolioSnapshot, PositionRequest, PositionSnapshot
from pgportfolio.operations import Order
from pgportfolio.values import as_decimal

Amount = Decimal | int


class AsyncLedgerCalls(Protocol):
    """The client's calls that a handle uses. The client makes handles, so this module
    names what it needs instead of importing the client."""

    async def get_portfolio(self, portfolio_id: int) -> PortfolioSnapshot: ...

    async def apply_fill(
        self,
        portfolio_id: int,
        symbol: str,
        quantity: Amount,
        price: Amount,
        *,
        fee: Amount = 0,
        request_id: str | None = None,
        expected_version: int | None = None,
    ) -> MutationResult: ...

    async def open_position(
        self,
        portfolio_id: int,
        symbol: str,
        quantity: Amount,
        price: Amount,
        *,
        fee: Amount = 0,
        request_id: str | None = None,
        expected_version: int | None = None,
    ) -> MutationResult: ...

    async def add_to_position(
        self,
        portfolio_id: int,
        symbol: str,
        quantity: Amount,
        price: Amount,
        *,
        fee: Amount = 0,
        request_id: str | None = None,
        expected_version: int | None = None,
    ) -> MutationResult: ...

    async def reduce_position(
        self,
        portfolio_id: int,
        symbol: str,
        quantity: Amount,
        price: Amount,
        *,
        fee: Amount = 0,
        request_id: str | None = None,
        expected_version: int | None = None,
    ) -> MutationResult: ...

    async def close_position(
        self,
        portfolio_id: int,
        symbol: str,
        price: Amount,
        *,
        fee: Amount = 0,
        request_id: str | None = None,
        expected_version: int | None = None,
    ) -> MutationResult: ...

    async def update_market_price(self, symbol: str, price: Amount) -> None: ...

    async def deposit_cash(
        self,
        portfolio_id: int,
        amount: Amount,
        *,
        request_id: str | None = None,
        expected_version: int | None = None,
    ) -> MutationResult: ...

    async def withdraw_cash(
        self,
        portfolio_id: int,
        amount: Amount,
        *,
        request_id: str | None = None,
        expected_version: int | None = None,
    ) -> MutationResult: ...


class AsyncPortfolio:
    """One portfolio, in the seed's object style."""

    def __init__(self, client: AsyncLedgerCalls, portfolio_id: int) -> None:
        self.client = client
        self.portfolio_id = portfolio_id

    async def snapshot(self) -> PortfolioSnapshot:
        return await self.client.get_portfolio(self.portfolio_id)

    async def open_position(self, request: PositionRequest) -> MutationResult:
        return await self.client.open_position(
            self.portfolio_id,
            request.symbol,
            request.quantity,
            request.entry_price,
            fee=request.fee,
            request_id=request.request_id,
        )

    async def add_to_position(
        self, symbol: str, quantity: Decimal | int, price: Decimal | int, *, fee: Decimal | int = 0
    ) -> MutationResult:
        return await self.client.add_to_position(
            self.portfolio_id, symbol, quantity, price, fee=fee
        )

    async def reduce_position(
        self,
        symbol: str,
        quantity: Decimal | int,
        exit_price: Decimal | int,
        *,
        fee: Decimal | int = 0,
    ) -> Decimal:
        """Reduce by a positive quantity; returns the realized P&L (net of the fee)."""
        result = await self.client.reduce_position(
            self.portfolio_id, symbol, quantity, exit_price, fee=fee
        )
        return result.realized_pnl

    async def close_position(
        self, symbol: str, exit_price: Decimal | int, *, fee: Decimal | int = 0
    ) -> Decimal:
        """Close the whole position; returns the realized P&L (net of the fee)."""
        result = await self.client.close_position(self.portfolio_id, symbol, exit_price, fee=fee)
        return result.realized_pnl

    async def update_position_price(self, symbol: str, price: Decimal | int) -> None:
        """Marks are per symbol: this sets the market price every portfolio sees."""
        await self.client.update_market_price(symbol, price)

    async def deposit(self, amount: Decimal | int) -> MutationResult:
        return await self.client.deposit_cash(self.portfolio_id, amount)

    async def withdraw(self, amount: Decimal | int) -> MutationResult:
        return await self.client.withdraw_cash(self.portfolio_id, amount)


class AsyncPositionManager:
    """The seed's position-manager names on top of the client."""

    def __init__(self, client: AsyncLedgerCalls) -> None:
        self.client = client

    async def _position(self, portfolio_id: int, symbol: str) -> PositionSnapshot | None:
        snapshot = await self.client.get_portfolio(portfolio_id)
        return snapshot.positions.get(symbol)

    async def open_position_async(self, order: Order) -> PositionSnapshot:
        await self.client.open_position(
            order.portfolio_id,
            order.symbol,
            order.quantity,
            order.price,
            fee=order.fee,
            request_id=order.request_id,
        )
        position = await self._position(order.portfolio_id, order.symbol)
        assert position is not None
        return position

    async def update_position_async(
        self, position: PositionSnapshot, new_order: Order
    ) -> PositionSnapshot | None:
        """Net ``new_order`` against ``position``; None when it ends flat."""
        await self.client.apply_fill(
            position.portfolio_id,
            position.symbol,
            new_order.quantity,
            new_order.price,
            fee=new_order.fee,
            request_id=new_order.request_id,
        )
        return await self._position(position.portfolio_id, position.symbol)

    async def calculate_pnl_async(
        self, position: PositionSnapshot, current_price: Decimal | int
    ) -> Decimal:
        """Unrealized P&L of ``position`` at ``current_price``, exact."""
        price = as_decimal("current_price", current_price)
        return dataclasses.replace(position, mark_price=price).unrealized_pnl
