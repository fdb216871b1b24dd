"""The asynchronous client: the public calls. ``_sync/client.py`` is generated from it.

Every state change is one call of a ``pgportfolio`` SQL function (see queries.sql). A
call goes down through the modules: this one checks its parameters and gives it a
request id; ``coalescer`` combines concurrent fills and cash moves into batches;
``transport`` owns the pool, sends one call, maps errors and runs the retries.
"""

from __future__ import annotations

import itertools
import json
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime
from decimal import Decimal
from hashlib import blake2b
from typing import Any

import psycopg

from pgportfolio._async import compat
from pgportfolio._async.coalescer import BATCHABLE, AsyncCoalescer, Pending
from pgportfolio._async.compat import AsyncConnection, AsyncConnectionPool
from pgportfolio._async.handles import AsyncPortfolio, AsyncPositionManager
from pgportfolio._async.locks import AsyncLockRegistry
from pgportfolio._async.transport import AsyncTransport, Request, cutter
from pgportfolio.errors import (
    InvalidInput,
    OptimisticLockError,
    PortfolioError,
    VersionConflict,
    error_from_database,
    wrap_exceptions,
)
from pgportfolio.models import (
    ChangeEvent,
    DailyClose,
    DailyPnl,
    HistoricalPortfolio,
    HistoricalPosition,
    LoggedEvent,
    MutationResult,
    PortfolioSnapshot,
    VerificationCheck,
)
from pgportfolio.monitor import Monitor, get_global_monitor
from pgportfolio.operations import ChargeFee, Deposit, Execution, Fill, Operation, Withdraw
from pgportfolio.queries import query
from pgportfolio.retry import RetryPolicy
from pgportfolio.syncrep import resolving
from pgportfolio.values import (
    as_aware_time,
    as_day,
    as_decimal,
    as_id,
    as_text,
    fits_in_batch,
    optional_aware_time,
    optional_decimal,
    optional_id,
    optional_text,
)

# At most this many events per portfolio in one read of subscribe(): a subscriber far
# behind catches up in steps of bounded size.
SUBSCRIBE_BATCH = 1000

# event_log's lower bound on created_at when no time is given: before any event.
_BEGINNING = datetime.min.replace(tzinfo=UTC)


class AsyncPortfolioClient:
    """A client for the ledger. Use it as a context manager, or call ``open()`` and ``close()``.

    ``pool`` may be a pool the caller already has; otherwise one is made from ``conninfo``,
    and opening fails at once, with libpq's own words, if it cannot connect.
    ``lock_timeout`` bounds the wait for this process's per-portfolio lock;
    ``process_locks=False`` sends straight to the database. ``call_timeout`` bounds the
    wait for a reply: past it the connection is cut, as if the network had failed, so a
    peer that stops answering cannot hang the caller; a mutation cut that way is then
    resolved by its request id (``resolve_timeout``), else OutcomeUnknown names it.

    ``coalesce`` (on by default) combines concurrent ``apply_fill``, ``deposit_cash``,
    ``withdraw_cash`` and ``charge_fee`` calls of this client into ``apply_fills`` calls
    (see ``coalescer``): ``max_combiners`` workers send up to ``max_batch`` operations
    each, and a portfolio is in at most ``max_batches_per_portfolio`` batches at once
    (2 by default: the next batch of a hot portfolio waits at its row while one commits).
    Each caller gets its own result or its own typed exception. A caller that is
    cancelled gets CancelledError; its operation may still have been applied, as with
    any cancelled request: ``find_request`` tells.
    """

    def __init__(
        self,
        conninfo: str = "",
        *,
        pool: AsyncConnectionPool | None = None,
        min_size: int = 2,
        max_size: int = 16,
        pool_timeout: float = 10.0,
        retry: RetryPolicy | None = None,
        monitor: Monitor | None = None,
        lock_timeout: float | None = 5.0,
        process_locks: bool = True,
        resolve_timeout: float = 30.0,
        call_timeout: float | None = 10.0,
        coalesce: bool = True,
        max_batch: int = 64,
        max_combiners: int | None = None,
        max_batches_per_portfolio: int = 2,
        name: str = "pgportfolio",
    ) -> None:
        self.retry = retry or RetryPolicy()
        self.monitor = monitor or get_global_monitor()
        self.name = name
        self.process_locks = process_locks
        self.coalesce = coalesce
        self._transport = AsyncTransport(
            conninfo,
            pool=pool,
            min_size=min_size,
            max_size=max_size,
            pool_timeout=pool_timeout,
            call_timeout=call_timeout,
            resolve_timeout=resolve_timeout,
            retry=self.retry,
            monitor=self.monitor,
            name=name,
        )
        self.locks = AsyncLockRegistry(monitor=self.monitor, timeout=lock_timeout)
        self.coalescer = AsyncCoalescer(
            self._transport,
            self.monitor,
            max_batch=max_batch,
            # A quarter of the pool: fewer, larger batches commit more fills per WAL
            # flush (spread over 1,000 portfolios: 2 or 4 turns ~7,500 fills/s, 16 turns
            # ~4,300; docs/performance.md).
            max_combiners=max_combiners or max(2, max_size // 4),
            max_batches_per_portfolio=max_batches_per_portfolio,
            lock_timeout=lock_timeout,
        )
        # Request ids: one random prefix per client and a counter; unique without a
        # uuid4() per call.
        self._request_prefix = uuid.uuid4().hex
        self._request_counter = itertools.count(1)

    # -- lifecycle -------------------------------------------------------------------

    @property
    def pool(self) -> AsyncConnectionPool:
        return self._transport.pool

    @property
    def call_timeout(self) -> float | None:
        return self._transport.call_timeout

    async def open(self, wait: bool = True, timeout: float | None = None) -> None:
        """Open the pool (ours: within ``timeout``, default the pool's timeout; a failure
        is ConnectionUnavailable with libpq's own message) and start the coalescer."""
        with wrap_exceptions():
            await self._transport.open(timeout)
        self.monitor.watch_pool(self.name, self.pool.get_stats)
        if self.coalesce:
            self.coalescer.start()

    async def close(self) -> None:
        """Answer every queued and in-flight operation, then close the pool (ours)."""
        await self.coalescer.stop()
        self.monitor.forget_pool(self.name)
        await self._transport.close()

    async def __aenter__(self) -> AsyncPortfolioClient:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def new_request_id(self) -> str:
        return f"{self._request_prefix}-{next(self._request_counter)}"

    def _request_id(self, given: object) -> str:
        """The caller's request id (checked by the database), or a new one."""
        text = optional_text("request_id", given)
        return self.new_request_id() if text is None else text

    # -- the calls -------------------------------------------------------------------

    async def create_portfolio(
        self, name: str, initial_cash: Decimal | int, currency: str = "USD"
    ) -> int:
        params = {
            "name": as_text("name", name),
            "initial_cash": as_decimal("initial_cash", initial_cash),
            "currency": as_text("currency", currency),
        }
        # Not idempotent in SQL (no request id), so never retried after it was sent: a
        # ConnectionLost here means the portfolio may or may not exist.
        with self.monitor.operation("create_portfolio"):
            try:
                rows = await self._transport.call("create_portfolio", params)
            except PortfolioError as exc:
                raise exc.about("create_portfolio", None, None) from exc.__cause__
        return int(rows[0][0])

    async def deposit_cash(
        self,
        portfolio_id: int,
        amount: Decimal | int,
        *,
        request_id: str | None = None,
        expected_version: int | None = None,
    ) -> MutationResult:
        return await self._mutate(
            "deposit_cash", self._checked_cash(portfolio_id, amount, request_id, expected_version)
        )

    async def withdraw_cash(
        self,
        portfolio_id: int,
        amount: Decimal | int,
        *,
        request_id: str | None = None,
        expected_version: int | None = None,
    ) -> MutationResult:
        return await self._mutate(
            "withdraw_cash", self._checked_cash(portfolio_id, amount, request_id, expected_version)
        )

    async def charge_fee(
        self,
        portfolio_id: int,
        amount: Decimal | int,
        *,
        request_id: str | None = None,
        expected_version: int | None = None,
    ) -> MutationResult:
        return await self._mutate(
            "charge_fee", self._checked_cash(portfolio_id, amount, request_id, expected_version)
        )

    async def apply_fill(
        self,
        portfolio_id: int,
        symbol: str,
        quantity: Decimal | int,
        price: Decimal | int,
        *,
        fee: Decimal | int = 0,
        request_id: str | None = None,
        expected_version: int | None = None,
        executed_at: datetime | None = None,
        order_id: str | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> MutationResult:
        """A signed fill (+ buy, - sell) netted against the open position. ``executed_at``,
        ``order_id`` and ``tags`` describe the execution (docs/sql-api.md, "Execution
        metadata"); they are part of the request: a retry must send the same."""
        params = self._checked_fill(
            portfolio_id,
            symbol,
            as_decimal("quantity", quantity),
            price,
            fee,
            request_id,
            expected_version,
            Execution.of(executed_at, order_id, tags),
        )
        return await self._mutate("apply_fill", params)

    async def open_position(
        self,
        portfolio_id: int,
        symbol: str,
        quantity: Decimal | int,
        price: Decimal | int,
        *,
        fee: Decimal | int = 0,
        request_id: str | None = None,
        expected_version: int | None = None,
        executed_at: datetime | None = None,
        order_id: str | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> MutationResult:
        return await self._fill(
            "open_position",
            portfolio_id,
            symbol,
            quantity,
            price,
            fee,
            request_id,
            expected_version,
            Execution.of(executed_at, order_id, tags),
        )

    async def add_to_position(
        self,
        portfolio_id: int,
        symbol: str,
        quantity: Decimal | int,
        price: Decimal | int,
        *,
        fee: Decimal | int = 0,
        request_id: str | None = None,
        expected_version: int | None = None,
        executed_at: datetime | None = None,
        order_id: str | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> MutationResult:
        return await self._fill(
            "add_to_position",
            portfolio_id,
            symbol,
            quantity,
            price,
            fee,
            request_id,
            expected_version,
            Execution.of(executed_at, order_id, tags),
        )

    async def reduce_position(
        self,
        portfolio_id: int,
        symbol: str,
        quantity: Decimal | int,
        price: Decimal | int,
        *,
        fee: Decimal | int = 0,
        request_id: str | None = None,
        expected_version: int | None = None,
        executed_at: datetime | None = None,
        order_id: str | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> MutationResult:
        return await self._fill(
            "reduce_position",
            portfolio_id,
            symbol,
            quantity,
            price,
            fee,
            request_id,
            expected_version,
            Execution.of(executed_at, order_id, tags),
        )

    async def close_position(
        self,
        portfolio_id: int,
        symbol: str,
        price: Decimal | int,
        *,
        fee: Decimal | int = 0,
        request_id: str | None = None,
        expected_version: int | None = None,
        executed_at: datetime | None = None,
        order_id: str | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> MutationResult:
        return await self._fill(
            "close_position",
            portfolio_id,
            symbol,
            None,
            price,
            fee,
            request_id,
            expected_version,
            Execution.of(executed_at, order_id, tags),
        )

    async def apply_fills(
        self, fills: Iterable[tuple[int, Fill]]
    ) -> list[MutationResult | PortfolioError]:
        """Many fills in one apply_fills call, in order: ``(portfolio_id, Fill)`` pairs.
        Each element's answer is its result or its own typed exception (returned, not
        raised); a whole-call failure is raised. Every element gets a request id."""
        batch = [
            self._pending(
                "apply_fill",
                self._checked_fill(
                    pid,
                    f.symbol,
                    f.quantity,
                    f.price,
                    f.fee,
                    None,
                    None,
                    Execution.of(f.executed_at, f.order_id, f.tags),
                ),
            )
            for pid, f in fills
        ]
        if not batch:
            return []
        with self.monitor.operation("apply_fills"):
            try:
                await self.coalescer.send_batch(batch)
            except BaseException:
                # Interrupted: nobody reads the elements' answers (each an unknown
                # outcome), so they are marked read, sparing a "never retrieved" log.
                for item in batch:
                    if item.future.done() and not item.future.cancelled():
                        item.future.exception()
                raise
        answers: list[MutationResult | PortfolioError] = []
        for item in batch:
            error = item.future.exception()
            if error is None:
                answers.append(item.future.result())
            elif isinstance(error, PortfolioError):
                answers.append(error)
            else:
                raise error
        return answers

    async def update_market_price(
        self,
        symbol: str,
        price: Decimal | int,
        as_of: datetime | None = None,
        source: str | None = None,
    ) -> None:
        """Record a mark: the price of ``symbol`` as of ``as_of`` (timezone-aware; default
        the server's transaction time), from ``source`` (a feed name, optional). It is the
        current mark unless one with a later ``as_of`` is already known; every mark is
        kept in the history (``price_at``)."""
        params = {
            "symbol": as_text("symbol", symbol),
            "price": as_decimal("price", price),
            "as_of": optional_aware_time("as_of", as_of),
            "source": optional_text("source", source),
        }
        # A mark recorded twice changes no price (same price, same as_of; the history
        # holds it twice), so any retryable failure is simply retried.
        await self._transport.read("update_market_price", params, lambda rows: None)

    async def price_at(self, symbol: str, at: datetime) -> Decimal | None:
        """The price of the mark that was current at ``at`` (timezone-aware): the latest
        ``as_of`` at or before it. None when no mark is known (none yet, or pruned)."""
        params = {"symbol": as_text("symbol", symbol), "at": as_aware_time("at", at)}
        return await self._transport.read("price_at", params, _optional_price)

    async def upsert_instrument(
        self, symbol: str, multiplier: Decimal | int = 1, description: str | None = None
    ) -> None:
        """Create or replace an instrument (owner role only: NotPermitted otherwise).
        Changing the multiplier of a symbol that a portfolio holds is InstrumentHeld."""
        params = {
            "symbol": as_text("symbol", symbol),
            "multiplier": as_decimal("multiplier", multiplier),
            "description": optional_text("description", description),
        }
        # Writing the same instrument twice leaves it as once: retried like a read.
        await self._transport.read("upsert_instrument", params, lambda rows: None)

    async def event_log(
        self, portfolio_id: int, *, since: int | datetime | None = None
    ) -> list[LoggedEvent]:
        """Every column of a portfolio's events, in version order: all of them, those
        after version ``since`` (an int), or those logged at or after ``since`` (a
        timezone-aware datetime, compared with ``created_at``, the ledger's time)."""
        after_version, logged_since = 0, _BEGINNING
        if isinstance(since, datetime):
            logged_since = as_aware_time("since", since)
        elif since is not None:
            after_version = as_id("since", since)
        params = {
            "portfolio_id": as_id("portfolio_id", portfolio_id),
            "after_version": after_version,
            "since": logged_since,
        }
        return await self._transport.read(
            "event_log", params, lambda rows: [LoggedEvent(*r) for r in rows]
        )

    # ---- history: point in time and end of day (sql/240_history.sql, 245_end_of_day.sql)

    async def portfolio_as_of(self, portfolio_id: int, at: datetime) -> HistoricalPortfolio:
        """The portfolio as it stood at ledger time ``at`` (timezone-aware), rebuilt from
        its event log and valued at the marks current then. PortfolioNotFound if it did
        not exist yet; InvalidInput for a time more than a minute ahead of the server."""
        params = {
            "portfolio_id": as_id("portfolio_id", portfolio_id),
            "at": as_aware_time("at", at),
        }
        return await self._transport.read(
            "portfolio_as_of", params, lambda rows: HistoricalPortfolio(*rows[0])
        )

    async def positions_as_of(self, portfolio_id: int, at: datetime) -> list[HistoricalPosition]:
        """The open positions at ledger time ``at``, in symbol order (none before the
        portfolio existed)."""
        params = {
            "portfolio_id": as_id("portfolio_id", portfolio_id),
            "at": as_aware_time("at", at),
        }
        return await self._transport.read(
            "positions_as_of", params, lambda rows: [HistoricalPosition(*r) for r in rows]
        )

    async def portfolio_at_version(
        self, portfolio_id: int, version: int, marks_at: datetime | None = None
    ) -> HistoricalPortfolio:
        """The portfolio right after ``version``, valued at the marks current at
        ``marks_at`` (default: that version's ledger time). InvalidInput for a version it
        never had."""
        params = {
            "portfolio_id": as_id("portfolio_id", portfolio_id),
            "version": as_id("version", version),
            "marks_at": optional_aware_time("marks_at", marks_at),
        }
        return await self._transport.read(
            "portfolio_at_version", params, lambda rows: HistoricalPortfolio(*rows[0])
        )

    async def positions_at_version(
        self, portfolio_id: int, version: int, marks_at: datetime | None = None
    ) -> list[HistoricalPosition]:
        """The open positions right after ``version``, in symbol order."""
        params = {
            "portfolio_id": as_id("portfolio_id", portfolio_id),
            "version": as_id("version", version),
            "marks_at": optional_aware_time("marks_at", marks_at),
        }
        return await self._transport.read(
            "positions_at_version", params, lambda rows: [HistoricalPosition(*r) for r in rows]
        )

    async def close_day(self, day: date, portfolio_id: int | None = None) -> list[DailyClose]:
        """Write the end-of-day snapshots of the UTC ``day`` (owner role only:
        NotPermitted otherwise), for one portfolio or all, and return them in portfolio
        order. Idempotent: a day already closed returns its rows unchanged. InvalidInput
        for a day not yet over, ClosingMarkMissing when a held symbol has no mark."""
        params = {
            "day": as_day("day", day),
            "portfolio_id": optional_id("portfolio_id", portfolio_id),
        }
        # Idempotent by construction (a second call writes nothing): retried like a read.
        return await self._transport.read(
            "close_day", params, lambda rows: [DailyClose(*r) for r in rows]
        )

    async def daily_pnl(
        self, portfolio_id: int, *, since: date | None = None, until: date | None = None
    ) -> list[DailyPnl]:
        """A portfolio's closed days from ``since`` to ``until`` (inclusive, default all),
        each with its change since the previous close, in day order."""
        params = {
            "portfolio_id": as_id("portfolio_id", portfolio_id),
            "since": date.min if since is None else as_day("since", since),
            "until": date.max if until is None else as_day("until", until),
        }
        return await self._transport.read(
            "daily_pnl", params, lambda rows: [DailyPnl(*r) for r in rows]
        )

    async def update_market_prices(
        self, prices: dict[str, Decimal] | Iterable[tuple[str, Decimal]]
    ) -> int:
        """Set many marks in one call, all or nothing; returns the symbols written."""
        items = prices.items() if isinstance(prices, dict) else prices
        payload = json.dumps(
            [
                {"symbol": as_text("symbol", s), "price": str(as_decimal("price", p))}
                for s, p in items
            ]
        )
        return await self._transport.read(
            "update_market_prices", {"prices": payload}, lambda rows: int(rows[0][0])
        )

    async def grant_portfolio(self, portfolio_id: int, role: str) -> None:
        params = {
            "portfolio_id": as_id("portfolio_id", portfolio_id),
            "role": as_text("role", role),
        }
        await self._transport.read("grant_portfolio", params, lambda rows: None)

    async def revoke_portfolio(self, portfolio_id: int, role: str) -> None:
        params = {
            "portfolio_id": as_id("portfolio_id", portfolio_id),
            "role": as_text("role", role),
        }
        await self._transport.read("revoke_portfolio", params, lambda rows: None)

    async def verify_portfolio(self, portfolio_id: int) -> list[VerificationCheck]:
        params = {"portfolio_id": as_id("portfolio_id", portfolio_id)}
        return await self._transport.read(
            "verify_portfolio", params, lambda rows: [VerificationCheck(*r) for r in rows]
        )

    async def get_portfolio(self, portfolio_id: int) -> PortfolioSnapshot:
        """A frozen snapshot: cash, version, realized, unrealized, equity, positions."""
        params = {"portfolio_id": as_id("portfolio_id", portfolio_id)}
        return await self._transport.read(
            "portfolio_snapshot", params, lambda rows: PortfolioSnapshot.from_snapshot(rows[0])
        )

    async def find_request(self, portfolio_id: int, request_id: str) -> MutationResult | None:
        """The stored result of ``request_id``, or None if it was never applied. Under
        synchronous replication the answer counts once a standby has it (a commit whose
        wait for the standby was cancelled is visible on the primary alone): the read is
        followed by a commit that waits for the standby (pgportfolio.syncrep)."""
        params = {
            "portfolio_id": as_id("portfolio_id", portfolio_id),
            "request_id": as_text("request_id", request_id),
        }
        with resolving(True):
            return await self._transport.read(
                "find_request",
                params,
                lambda rows: MutationResult.from_row(rows[0], request_id) if rows else None,
            )

    async def events_since(self, portfolio_id: int, after_version: int) -> list[ChangeEvent]:
        params = {
            "portfolio_id": as_id("portfolio_id", portfolio_id),
            "after_version": after_version,
        }
        return await self._transport.read(
            "events_since",
            params,
            lambda rows: [ChangeEvent(int(r[0]), int(r[1]), r[2]) for r in rows],
        )

    async def portfolio_version(self, portfolio_id: int) -> int | None:
        """The current version, or None if there is no such portfolio (one row, cheap)."""
        params = {"portfolio_id": as_id("portfolio_id", portfolio_id)}
        return await self._transport.read(
            "portfolio_version",
            params,
            lambda rows: None if rows[0][0] is None else int(rows[0][0]),
        )

    async def recent_portfolios(self, limit: int = 20) -> list[tuple[int, str, int, Any]]:
        """(portfolio_id, name, version, updated_at) of the most recently changed portfolios."""
        return await self._transport.read(
            "recent_portfolios",
            {"limit": as_id("limit", limit)},
            lambda rows: [tuple(r) for r in rows],
        )

    async def lock_waits(self) -> list[tuple[Any, ...]]:
        """Who waits for a lock, behind whom (the lock_waits view, longest wait first)."""
        return await self._transport.read(
            "current_lock_waits", {}, lambda rows: [tuple(r) for r in rows]
        )

    async def server_wait_events(self) -> list[tuple[str, str, str, int]]:
        """Sessions of this database by state and wait event."""
        return await self._transport.read(
            "server_wait_events", {}, lambda rows: [tuple(r) for r in rows]
        )

    def portfolio(self, portfolio_id: int) -> AsyncPortfolio:
        """The seed's object style: a handle whose methods act on one portfolio."""
        return AsyncPortfolio(self, portfolio_id)

    def position_manager(self) -> AsyncPositionManager:
        return AsyncPositionManager(self)

    async def apply(
        self,
        portfolio_id: int,
        operation: Operation,
        *,
        request_id: str | None = None,
        expected_version: int | None = None,
    ) -> MutationResult:
        """Apply an operation value (Deposit, Withdraw, ChargeFee, Fill)."""
        if isinstance(operation, Deposit):
            return await self.deposit_cash(
                portfolio_id,
                operation.amount,
                request_id=request_id,
                expected_version=expected_version,
            )
        if isinstance(operation, Withdraw):
            return await self.withdraw_cash(
                portfolio_id,
                operation.amount,
                request_id=request_id,
                expected_version=expected_version,
            )
        if isinstance(operation, ChargeFee):
            return await self.charge_fee(
                portfolio_id,
                operation.amount,
                request_id=request_id,
                expected_version=expected_version,
            )
        if isinstance(operation, Fill):
            return await self.apply_fill(
                portfolio_id,
                operation.symbol,
                operation.quantity,
                operation.price,
                fee=operation.fee,
                request_id=request_id,
                expected_version=expected_version,
            )
        raise TypeError(f"not an operation: {operation!r}")

    async def update_optimistically(
        self,
        portfolio_id: int,
        compute: Callable[[PortfolioSnapshot], Operation | None],
        *,
        max_retries: int | None = None,
    ) -> MutationResult | None:
        """Read a snapshot, compute an operation from it, write it with the snapshot's
        version; on a version conflict reload and recompute. ``compute`` returning None
        means nothing to do. After ``max_retries`` conflicts: OptimisticLockError."""
        retries = self.retry.max_retries if max_retries is None else max_retries
        last: VersionConflict | None = None
        for attempt in range(1, retries + 2):
            snapshot = await self.get_portfolio(portfolio_id)
            operation = compute(snapshot)
            if operation is None:
                return None
            try:
                return await self.apply(portfolio_id, operation, expected_version=snapshot.version)
            except VersionConflict as exc:
                last = exc
                if attempt <= retries:
                    self.monitor.record_retry("version_conflict")
                    await compat.sleep(self.retry.delay(attempt))
        assert last is not None
        raise OptimisticLockError(
            f"portfolio {portfolio_id} changed under {retries + 1} attempts of a read-modify-write",
            attempts=retries + 1,
            portfolio_id=portfolio_id,
            expected_version=last.expected_version,
            found_version=last.found_version,
        ) from last

    @asynccontextmanager
    async def advisory_lock(self, key: int | str, timeout: float = 5.0) -> AsyncIterator[None]:
        """A cross-process critical section: a PostgreSQL session advisory lock held on
        one pooled connection for the duration. LockTimeout after ``timeout`` seconds."""
        lock_key = key if isinstance(key, int) else _advisory_key(key)
        with wrap_exceptions():
            async with self._transport.connection() as conn:
                # The server bounds the lock wait; call_timeout bounds the reply after it.
                bound = None if self.call_timeout is None else timeout + self.call_timeout
                with compat.call_later(bound, cutter(conn)):
                    cur = await conn.execute(
                        query("advisory_lock"),
                        {"key": lock_key, "timeout_ms": max(1, int(timeout * 1000))},
                    )
                    await cur.fetchone()
                    await _commit(conn)
                try:
                    yield
                finally:
                    with compat.call_later(self.call_timeout, cutter(conn)):
                        await conn.execute(query("advisory_unlock"), {"key": lock_key})
                        await _commit(conn)

    async def subscribe(
        self,
        portfolio_ids: Iterable[int],
        *,
        interval: float = 0.02,
        reconnect_delay: float = 0.5,
    ) -> AsyncIterator[ChangeEvent]:
        """Change events for these portfolios, read from the event log as it grows.

        The stream starts with one ``resync`` event per existing portfolio, carrying its
        current version with ``gap=True`` (earlier events: ``events_since``). Then it
        yields every later event of each portfolio once, in version order, with the
        kind the log records (a batch of fills is one event per fill); a portfolio that
        does not exist yet is followed from its ``create``.

        It reads on a connection of its own: one short query every ``interval`` seconds
        for all the portfolios together, so commits never wait for subscribers, and
        nothing another role sends can reach it. A lost connection is reopened after
        ``reconnect_delay`` seconds and the stream goes on after the last event it
        yielded: nothing is missed or repeated. With a multi-host conninfo it follows the
        primary: when it reconnects to another server (a failover), every portfolio
        opens again with a ``resync`` event (``gap=True``) carrying that server's current
        version, and the stream goes on from there. A refusal (a role that may not read the
        ledger, more than 10,000 portfolios) is raised as its PortfolioError. The
        iterator runs until the caller stops it.
        """
        ids = sorted({as_id("portfolio_id", p) for p in portfolio_ids})
        for name, value in (("interval", interval), ("reconnect_delay", reconnect_delay)):
            if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
                raise InvalidInput(f"{name} must be a positive number of seconds, got {value!r}")
        conninfo = self.pool.conninfo
        if not isinstance(conninfo, str):
            raise TypeError("subscribe() needs a pool made from a conninfo string")
        after: dict[int, int] | None = None  # the last version yielded, per portfolio
        server: tuple[Any, ...] | None = None  # the server read from, to see a failover
        while True:
            try:
                async with await AsyncConnection.connect(conninfo, autocommit=True) as conn:
                    identity = tuple((await self._follow(conn, "server_identity", {}))[0])
                    if after is None or identity != server:
                        # The start, or another server after a failover: what this one
                        # has is the truth from here on (an event seen on the old primary
                        # may never have reached it), so each portfolio opens again with
                        # its current version and gap=True.
                        versions = {"portfolio_ids": ids}
                        rows = await self._follow(conn, "portfolio_versions", versions)
                        after = {int(pid): int(version or 0) for pid, version in rows}
                        for pid, version in rows:
                            if version is not None:
                                yield ChangeEvent(int(pid), int(version), "resync", gap=True)
                    server = identity
                    while True:
                        started = time.monotonic()
                        params = {
                            "portfolio_ids": ids,
                            "after_versions": [after[p] for p in ids],
                            "limit": SUBSCRIBE_BATCH,
                        }
                        rows = await self._follow(conn, "events_after", params)
                        counts = Counter(pid for pid, _, _ in rows)
                        for pid, version, kind in rows:
                            # The log gives each portfolio's versions in order; the check
                            # keeps the promise (strictly increasing, once) on its own.
                            if version > after[pid]:
                                after[pid] = version
                                yield ChangeEvent(pid, version, kind)
                        # A portfolio with a full batch has more waiting: read on at once.
                        if max(counts.values(), default=0) < SUBSCRIBE_BATCH:
                            await compat.sleep(max(0.0, started + interval - time.monotonic()))
            except psycopg.OperationalError:
                await compat.sleep(reconnect_delay)
            except psycopg.Error as exc:
                raise error_from_database(exc) from exc

    async def _follow(
        self, conn: AsyncConnection[Any], name: str, params: dict[str, Any]
    ) -> list[Any]:
        """One of subscribe()'s reads on its own connection, cut after call_timeout (as a
        lost connection, so the stream reconnects)."""
        with compat.call_later(self.call_timeout, cutter(conn)):
            cur = await conn.execute(query(name), params)
            return await cur.fetchall()

    # -- machinery -------------------------------------------------------------------

    async def _fill(
        self,
        operation: str,
        portfolio_id: int,
        symbol: str,
        quantity: Decimal | int | None,
        price: Decimal | int,
        fee: Decimal | int,
        request_id: str | None,
        expected_version: int | None,
        execution: Execution,
    ) -> MutationResult:
        params = self._checked_fill(
            portfolio_id, symbol, quantity, price, fee, request_id, expected_version, execution
        )
        return await self._mutate(operation, params)

    def _checked_fill(
        self,
        portfolio_id: object,
        symbol: object,
        quantity: object,
        price: object,
        fee: object,
        request_id: object,
        expected_version: object,
        execution: Execution,
    ) -> dict[str, Any]:
        """A fill's parameters, type-checked once, with a request id (the caller's or new)."""
        return {
            **execution.checked(),
            "portfolio_id": as_id("portfolio_id", portfolio_id),
            "symbol": as_text("symbol", symbol),
            "quantity": optional_decimal("quantity", quantity),
            "price": as_decimal("price", price),
            "fee": as_decimal("fee", fee),
            "request_id": self._request_id(request_id),
            "expected_version": optional_id("expected_version", expected_version),
        }

    def _checked_cash(
        self, portfolio_id: object, amount: object, request_id: object, expected_version: object
    ) -> dict[str, Any]:
        """A cash move's parameters, type-checked once, with a request id."""
        return {
            "portfolio_id": as_id("portfolio_id", portfolio_id),
            "amount": as_decimal("amount", amount),
            "request_id": self._request_id(request_id),
            "expected_version": optional_id("expected_version", expected_version),
        }

    def _pending(self, operation: str, params: dict[str, Any]) -> Pending:
        """An apply_fills element for a checked mutation (a fill is the default)."""
        if operation != "apply_fill":
            params = {**params, "operation": operation}
        request = Request(operation, params["portfolio_id"], params["request_id"])
        return Pending(request, params)

    async def _mutate(self, operation: str, params: dict[str, Any]) -> MutationResult:
        """One mutation with checked ``params``. What apply_fills can carry joins the
        coalescer; anything else holds this process's lock on the portfolio and goes
        alone, retried where that is safe."""
        values = BATCHABLE.get(operation)
        # A value a batch cannot carry goes alone, so that its error is its own.
        if self.coalesce and values and all(map(fits_in_batch, map(params.__getitem__, values))):
            return await self.coalescer.submit(self._pending(operation, params), operation)
        request = Request(operation, params["portfolio_id"], params["request_id"])

        async def attempt(in_doubt: bool) -> MutationResult:
            if not self.process_locks:
                return await self._transport.mutation(request, params, in_doubt)
            async with self.locks.hold(request.portfolio_id):
                return await self._transport.mutation(request, params, in_doubt)

        with self.monitor.operation(operation):
            return await self._transport.run(attempt, request)


async def _commit(conn: AsyncConnection[Any]) -> None:
    # Our own pool is autocommit; a caller's pool may not be.
    if not conn.autocommit:
        await conn.commit()


def _optional_price(rows: list[Any]) -> Decimal | None:
    price = rows[0][0]
    return None if price is None else Decimal(price)


def _advisory_key(name: str) -> int:
    """A stable signed 64-bit key for a lock name."""
    return int.from_bytes(blake2b(name.encode(), digest_size=8).digest(), "big", signed=True)
