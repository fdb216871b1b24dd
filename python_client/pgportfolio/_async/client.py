"""The asynchronous client. ``_sync/client.py`` is generated from this file.

Every state change is one call of a ``pgportfolio`` SQL function (see queries.sql). The
client adds what only a process can: per-portfolio locks, retries with backoff, request
ids on every mutation, resolution of ambiguous commits, and measurement.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import json
import os
import select
import socket
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from hashlib import blake2b
from typing import Any, TypeVar

import psycopg
from psycopg import sql

from pgportfolio._async import compat
from pgportfolio._async.compat import AsyncConnection, AsyncConnectionPool
from pgportfolio._async.locks import AsyncLockRegistry
from pgportfolio.errors import (
    ConnectionLost,
    ConnectionUnavailable,
    InProcessLockTimeout,
    OptimisticLockError,
    OutcomeUnknown,
    PortfolioError,
    VersionConflict,
    error_from_database,
    error_from_sqlstate,
    wrap_exceptions,
)
from pgportfolio.models import (
    ChangeEvent,
    MutationResult,
    PortfolioSnapshot,
    PositionRequest,
    PositionSnapshot,
    VerificationCheck,
)
from pgportfolio.monitor import Monitor, get_global_monitor
from pgportfolio.operations import ChargeFee, Deposit, Fill, Operation, Order, Withdraw
from pgportfolio.queries import query
from pgportfolio.retry import RetryPolicy, retry_cause
from pgportfolio.values import (
    as_decimal,
    as_id,
    as_text,
    optional_decimal,
    optional_id,
    optional_text,
    travels_in_json,
)

T = TypeVar("T")

_CONNECTION_LOST = "connection_lost"


class AsyncPortfolioClient:
    """A client for the ledger. Use it as a context manager, or call ``open()`` and ``close()``.

    ``pool`` may be a pool the caller already has; otherwise one is made from ``conninfo``
    (health-checked on checkout). ``lock_timeout`` bounds the wait for this process's
    per-portfolio lock; ``process_locks=False`` sends straight to the database.
    ``call_timeout`` bounds the wait for a reply: past it the connection is cut, as if
    the network had failed, so a peer that stops answering cannot hang the caller; a
    mutation cut that way is then resolved by its request id (``resolve_timeout``).

    ``coalesce`` (on by default) combines concurrent ``apply_fill``, ``deposit_cash``,
    ``withdraw_cash`` and ``charge_fee`` calls of this client into ``apply_fills`` calls,
    with no timer: a caller that finds a free turn sends what
    is queued (up to ``max_batch`` fills, across portfolios), and at most
    ``max_combiners`` such calls are in flight. A portfolio is in at most
    ``max_batches_per_portfolio`` of them at once: fills for a portfolio whose batches are
    in flight wait in the queue, so batches in flight do not queue on each other's rows
    in the database. An idle client sends each fill at once. Each caller still gets its
    own result or its own typed exception.
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
        max_batches_per_portfolio: int = 1,
        name: str = "pgportfolio",
    ) -> None:
        self.retry = retry or RetryPolicy()
        self.monitor = monitor or get_global_monitor()
        self.name = name
        self.process_locks = process_locks
        self.resolve_timeout = resolve_timeout
        self.call_timeout = call_timeout
        self.coalesce = coalesce
        self.max_batch = max_batch
        # A quarter of the pool: fewer, larger batches commit more fills per WAL flush
        # (spread over 1,000 portfolios: 2 or 4 turns ~7,500 fills/s, 16 turns ~4,300;
        # docs/performance.md). Batches in flight never share a portfolio
        # (max_batches_per_portfolio), so they do not queue on each other's rows.
        self.max_combiners = max_combiners or max(2, max_size // 4)
        if max_batches_per_portfolio < 1:
            raise ValueError("max_batches_per_portfolio must be at least 1")
        self.max_batches_per_portfolio = max_batches_per_portfolio
        self._queue: deque[_Pending] = deque()
        self._combiners = 0
        # Portfolio id -> batches in flight that hold fills for it.
        self._in_flight: dict[int, int] = {}
        self._turns = compat.Condition()
        self.locks = AsyncLockRegistry(monitor=self.monitor, timeout=lock_timeout)
        self._owns_pool = pool is None
        self._pool = pool or AsyncConnectionPool(
            conninfo,
            min_size=min_size,
            max_size=max_size,
            timeout=pool_timeout,
            open=False,
            # No round-trip check on checkout: _connection() drops dead connections
            # without a round trip, and call_timeout bounds the rest. (A failed pool
            # check makes psycopg_pool back off for 1 s, 2 s, ... within one checkout.)
            # libpq's connect_timeout bounds a handshake with a peer that stopped answering.
            kwargs={"autocommit": True, "connect_timeout": max(2, round(call_timeout or 10))},
            name=name,
        )
        # Request ids: one random prefix per client and a counter; unique without a
        # uuid4() per call.
        self._request_prefix = uuid.uuid4().hex
        self._request_counter = itertools.count(1)

    # -- lifecycle -------------------------------------------------------------------

    @property
    def pool(self) -> AsyncConnectionPool:
        return self._pool

    async def open(self, wait: bool = True, timeout: float = 30.0) -> None:
        if self._owns_pool:
            await self._pool.open(wait=wait, timeout=timeout)
        self.monitor.watch_pool(self.name, self._pool.get_stats)

    async def close(self) -> None:
        self.monitor.forget_pool(self.name)
        if self._owns_pool:
            await self._pool.close()

    async def __aenter__(self) -> AsyncPortfolioClient:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @asynccontextmanager
    async def _connection(
        self, timeout: float | None = None
    ) -> AsyncIterator[AsyncConnection[Any]]:
        """A pooled connection that is not known to be dead. A backend that was terminated
        has sent its goodbye (an error and end of stream) to an idle socket: a socket with
        something to read before we asked is dropped at once and the next one taken,
        with no round trip and no backoff."""
        deadline = time.monotonic() + (self._pool.timeout if timeout is None else timeout)
        while True:
            conn = await self._pool.getconn(timeout=max(0.001, deadline - time.monotonic()))
            if not _looks_dead(conn):
                break
            await conn.close()
            await self._pool.putconn(conn)  # the pool sees it closed and replaces it
        try:
            async with conn:
                yield conn
        finally:
            await self._pool.putconn(conn)

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
        # Not idempotent in SQL (no request id), so never retried after it was sent.
        with self.monitor.operation("create_portfolio"), wrap_exceptions():
            async with self._connection() as conn:
                with compat.call_later(self.call_timeout, _cutter(conn)):
                    cur = await conn.execute(query("create_portfolio"), params)
                    row = await cur.fetchone()
                    await self._commit(conn)
        assert row is not None
        return int(row[0])

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
    ) -> MutationResult:
        """A signed fill (+ buy, - sell) netted against the open position."""
        params = self._checked_fill(
            portfolio_id,
            symbol,
            as_decimal("quantity", quantity),
            price,
            fee,
            request_id,
            expected_version,
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
    ) -> MutationResult:
        return await self._fill(
            "close_position", portfolio_id, symbol, None, price, fee, request_id, expected_version
        )

    async def apply_fills(
        self, fills: Iterable[tuple[int, Fill]]
    ) -> list[MutationResult | PortfolioError]:
        """Many fills in one apply_fills call, in order: ``(portfolio_id, Fill)`` pairs.
        Each element's answer is its result or its own typed exception (returned, not
        raised); a whole-call failure is raised. Every element gets a request id."""
        batch = [
            _Pending(
                self._checked_fill(pid, f.symbol, f.quantity, f.price, f.fee, None, None),
                compat.new_future(),
            )
            for pid, f in fills
        ]
        if not batch:
            return []
        with self.monitor.operation("apply_fills"):
            await self._send_batch(batch)
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

    async def update_market_price(self, symbol: str, price: Decimal | int) -> None:
        params = {"symbol": as_text("symbol", symbol), "price": as_decimal("price", price)}
        # Setting a mark twice is harmless, so any retryable failure is simply retried.
        await self._read("update_market_price", params, lambda rows: None)

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
        return await self._read(
            "update_market_prices", {"prices": payload}, lambda rows: int(rows[0][0])
        )

    async def grant_portfolio(self, portfolio_id: int, role: str) -> None:
        params = {
            "portfolio_id": as_id("portfolio_id", portfolio_id),
            "role": as_text("role", role),
        }
        await self._read("grant_portfolio", params, lambda rows: None)

    async def revoke_portfolio(self, portfolio_id: int, role: str) -> None:
        params = {
            "portfolio_id": as_id("portfolio_id", portfolio_id),
            "role": as_text("role", role),
        }
        await self._read("revoke_portfolio", params, lambda rows: None)

    async def verify_portfolio(self, portfolio_id: int) -> list[VerificationCheck]:
        params = {"portfolio_id": as_id("portfolio_id", portfolio_id)}
        return await self._read(
            "verify_portfolio", params, lambda rows: [VerificationCheck(*r) for r in rows]
        )

    async def get_portfolio(self, portfolio_id: int) -> PortfolioSnapshot:
        """A frozen snapshot: cash, version, realized, unrealized, equity, positions."""
        params = {"portfolio_id": as_id("portfolio_id", portfolio_id)}
        return await self._read(
            "portfolio_snapshot", params, lambda rows: PortfolioSnapshot.from_arrays(rows[0])
        )

    async def find_request(self, portfolio_id: int, request_id: str) -> MutationResult | None:
        """The stored result of ``request_id``, or None if it was never applied."""
        params = {
            "portfolio_id": as_id("portfolio_id", portfolio_id),
            "request_id": as_text("request_id", request_id),
        }
        return await self._read(
            "find_request",
            params,
            lambda rows: MutationResult.from_row(rows[0], request_id) if rows else None,
        )

    async def events_since(self, portfolio_id: int, after_version: int) -> list[ChangeEvent]:
        params = {
            "portfolio_id": as_id("portfolio_id", portfolio_id),
            "after_version": after_version,
        }
        return await self._read(
            "events_since",
            params,
            lambda rows: [ChangeEvent(int(r[0]), int(r[1]), r[2]) for r in rows],
        )

    async def portfolio_version(self, portfolio_id: int) -> int | None:
        """The current version, or None if there is no such portfolio (one row, cheap)."""
        params = {"portfolio_id": as_id("portfolio_id", portfolio_id)}
        return await self._read(
            "portfolio_version",
            params,
            lambda rows: None if rows[0][0] is None else int(rows[0][0]),
        )

    async def recent_portfolios(self, limit: int = 20) -> list[tuple[int, str, int, Any]]:
        """(portfolio_id, name, version, updated_at) of the most recently changed portfolios."""
        return await self._read(
            "recent_portfolios",
            {"limit": as_id("limit", limit)},
            lambda rows: [tuple(r) for r in rows],
        )

    async def lock_waits(self) -> list[tuple[Any, ...]]:
        """Who waits for a lock, behind whom (the lock_waits view, longest wait first)."""
        return await self._read("current_lock_waits", {}, lambda rows: [tuple(r) for r in rows])

    async def server_wait_events(self) -> list[tuple[str, str, str, int]]:
        """Sessions of this database by state and wait event."""
        return await self._read("server_wait_events", {}, lambda rows: [tuple(r) for r in rows])

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
            async with self._connection() as conn:
                # The server bounds the lock wait; call_timeout bounds the reply after it.
                bound = None if self.call_timeout is None else timeout + self.call_timeout
                with compat.call_later(bound, _cutter(conn)):
                    cur = await conn.execute(
                        query("advisory_lock"),
                        {"key": lock_key, "timeout_ms": max(1, int(timeout * 1000))},
                    )
                    await cur.fetchone()
                    await self._commit(conn)
                try:
                    yield
                finally:
                    with compat.call_later(self.call_timeout, _cutter(conn)):
                        await conn.execute(query("advisory_unlock"), {"key": lock_key})
                        await self._commit(conn)

    async def subscribe(
        self, portfolio_ids: Iterable[int], *, reconnect_delay: float = 0.5, verify: bool = True
    ) -> AsyncIterator[ChangeEvent]:
        """Change events for these portfolios, pushed by LISTEN/NOTIFY (no polling).

        After a connection is (re)established, one ``resync`` event per portfolio carries
        its current version with ``gap=True``: events may have been missed before it, and
        ``events_since`` catches up. A batch of fills notifies once, with its last version.
        Any role that can connect may NOTIFY, so with ``verify`` (the default) each
        notification is confirmed against the event log and dropped if it is not there.
        The iterator runs until the caller stops it.
        """
        ids = sorted({as_id("portfolio_id", p) for p in portfolio_ids})
        conninfo = self._pool.conninfo
        if not isinstance(conninfo, str):
            raise TypeError("subscribe() needs a pool made from a conninfo string")
        while True:
            try:
                async with await AsyncConnection.connect(conninfo, autocommit=True) as conn:
                    for portfolio_id in ids:
                        await conn.execute(
                            sql.SQL("LISTEN {}").format(
                                sql.Identifier(f"pgportfolio_{portfolio_id}")
                            )
                        )
                    for portfolio_id in ids:
                        cur = await conn.execute(
                            query("portfolio_version"), {"portfolio_id": portfolio_id}
                        )
                        row = await cur.fetchone()
                        if row is not None and row[0] is not None:
                            yield ChangeEvent(portfolio_id, int(row[0]), "resync", gap=True)
                    async for note in conn.notifies():
                        event = _change_event(note.channel, note.payload)
                        if event is not None and (not verify or await self._is_real(event)):
                            yield event
            except psycopg.OperationalError:
                await compat.sleep(reconnect_delay)

    async def _is_real(self, event: ChangeEvent) -> bool:
        """Whether the event log has this event (NOTIFY is delivered after commit)."""
        kind = await self._read(
            "event_kind_at",
            {"portfolio_id": event.portfolio_id, "version": event.version},
            lambda rows: rows[0][0] if rows else None,
        )
        return bool(kind == event.kind)

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
    ) -> MutationResult:
        params = self._checked_fill(
            portfolio_id, symbol, quantity, price, fee, request_id, expected_version
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
    ) -> dict[str, Any]:
        """A fill's parameters, type-checked once, with a request id (the caller's or new)."""
        return {
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

    async def _mutate(self, operation: str, params: dict[str, Any]) -> MutationResult:
        """One mutation with checked ``params``: in-process lock, send, retry what is safe
        to retry. What apply_fills can carry joins the coalescing queue instead."""
        portfolio_id: int = params["portfolio_id"]
        values = _BATCHABLE.get(operation)
        # A value the JSON batch cannot carry goes alone, so that its error is its own.
        if self.coalesce and values and all(travels_in_json(params[k]) for k in values):
            if operation != "apply_fill":  # an apply_fills element is a fill by default
                params = {**params, "operation": operation}
            with self.monitor.operation(operation):
                return await self._coalesced(_Pending(params, compat.new_future()))
        retries = _RetryState(self)
        with self.monitor.operation(operation):
            while True:
                try:
                    if self.process_locks:
                        async with self.locks.hold(portfolio_id):
                            result = await self._send_mutation(operation, portfolio_id, params)
                    else:
                        result = await self._send_mutation(operation, portfolio_id, params)
                except PortfolioError as exc:
                    if isinstance(exc, VersionConflict):
                        self.monitor.record_version_conflict()
                    await retries.before_retry(exc, portfolio_id)
                    continue
                return self._delivered(result, in_doubt=retries.in_doubt)

    def _delivered(self, result: MutationResult, *, in_doubt: bool) -> MutationResult:
        if in_doubt:
            # Sent again under the same request id after a connection died in flight: the
            # database answered for that id (duplicate=True if the lost attempt committed).
            result = dataclasses.replace(result, recovered=True)
        if result.duplicate:
            self.monitor.record_duplicate()
        return result

    async def _coalesced(self, pending: _Pending) -> MutationResult:
        """Flat combining: queue the fill; whoever finds a free turn sends the queue."""
        started = time.perf_counter()
        async with self._turns:
            self._queue.append(pending)
        try:
            await self._take_turns(pending)
        except BaseException:
            # A caller that gives up before its fill was taken withdraws it.
            if not pending.taken:
                with contextlib.suppress(ValueError):
                    self._queue.remove(pending)
            raise
        # Waiting for a turn is this mode's in-process lock wait.
        self.monitor.record_lock_wait(
            "coalescer", time.perf_counter() - started, contended=pending.waited
        )
        result: MutationResult = pending.future.result()
        return result

    async def _take_turns(self, pending: _Pending) -> None:
        portfolio_id = pending.params["portfolio_id"]
        started = time.monotonic()
        while True:
            async with self._turns:
                while not pending.future.done() and (
                    pending.taken
                    or self._combiners >= self.max_combiners
                    or self._in_flight.get(portfolio_id, 0) >= self.max_batches_per_portfolio
                ):
                    pending.waited = True
                    if pending.taken:  # in a batch in flight, bounded by the call's timeouts
                        await self._turns.wait()
                        continue
                    # Not sent yet: bounded like the waits it stands for. Behind a batch of
                    # the same portfolio, as the per-portfolio lock (lock_timeout); behind
                    # busy turns, as a connection from the pool (its timeout).
                    portfolio_busy = (
                        self._in_flight.get(portfolio_id, 0) >= self.max_batches_per_portfolio
                    )
                    limit = self.locks.timeout if portfolio_busy else self._pool.timeout
                    remaining = None if limit is None else limit - (time.monotonic() - started)
                    if (remaining is None or remaining > 0) and await compat.wait(
                        self._turns, remaining
                    ):
                        continue
                    if portfolio_busy:
                        self.monitor.record_lock_timeout("coalescer")
                        raise InProcessLockTimeout(
                            f"no turn for portfolio {portfolio_id} within {limit}s: its"
                            " previous batch is still in flight",
                            portfolio_id=portfolio_id,
                        )
                    raise ConnectionUnavailable(
                        f"no turn within {limit}s: all {self.max_combiners} batches in flight",
                        portfolio_id=portfolio_id,
                        pool_timeout=True,
                    )
                if pending.future.done():
                    return
                self._combiners += 1
                batch = self._next_batch()
                portfolios = {item.params["portfolio_id"] for item in batch}
                for key in portfolios:
                    self._in_flight[key] = self._in_flight.get(key, 0) + 1
            try:
                await self._send_batch(batch)
            finally:
                async with self._turns:
                    self._combiners -= 1
                    for key in portfolios:
                        left = self._in_flight.pop(key) - 1
                        if left:
                            self._in_flight[key] = left
                    self._turns.notify_all()

    def _next_batch(self) -> list[_Pending]:
        """Take queued fills, oldest first, up to max_batch, skipping those whose portfolio
        already has its share of batches in flight (they keep their place in the queue).
        Called holding ``_turns``."""
        batch: list[_Pending] = []
        kept: list[_Pending] = []
        limit = self.max_batches_per_portfolio
        queue = self._queue
        while queue and len(batch) < self.max_batch:
            item = queue.popleft()
            if self._in_flight.get(item.params["portfolio_id"], 0) < limit:
                item.taken = True
                batch.append(item)
            else:
                kept.append(item)
        queue.extendleft(reversed(kept))
        return batch

    async def _send_batch(self, batch: list[_Pending]) -> None:
        """Send a batch with apply_fills; settle every future, whatever happens."""
        retries = _RetryState(self)
        try:
            while True:
                self.monitor.record_batch(len(batch))
                try:
                    if len(batch) == 1:
                        # Alone: apply_fill costs the server about half of a batch of one.
                        await self._send_alone(batch[0], retries.in_doubt)
                        return
                    rows = await self._call_apply_fills(batch)
                except PortfolioError as exc:
                    await retries.before_retry(exc, None)
                    continue
                for item, row in zip(batch, rows, strict=True):
                    self._settle(item, row, in_doubt=retries.in_doubt)
                return
        except BaseException as exc:  # a final error, cancellation or a bug: answer everyone
            for item in batch:
                if not item.future.done():
                    item.future.set_exception(
                        exc if isinstance(exc, Exception) else ConnectionLost("batch cancelled")
                    )
            if not isinstance(exc, Exception):
                raise

    async def _send_alone(self, item: _Pending, in_doubt: bool) -> None:
        """One fill or cash move through its own function (apply_fill, deposit_cash, ...).
        A final error is this caller's own; connection trouble and retryable errors
        propagate to the batch loop's retry decision."""
        params = item.params
        operation = params.get("operation", "apply_fill")
        try:
            result = await self._send_mutation(operation, params["portfolio_id"], params)
        except PortfolioError as exc:
            if isinstance(exc, ConnectionLost | ConnectionUnavailable) or retry_cause(exc):
                raise
            if isinstance(exc, VersionConflict):
                self.monitor.record_version_conflict()
            item.future.set_exception(exc)
            return
        item.future.set_result(self._delivered(result, in_doubt=in_doubt))

    async def _call_apply_fills(self, batch: list[_Pending]) -> list[tuple[Any, ...]]:
        fills = json.dumps([item.params for item in batch], default=str)
        sent = False
        try:
            async with self._connection() as conn:
                sent = True
                with compat.call_later(self.call_timeout, _cutter(conn)):
                    cur = await conn.execute(query("apply_fills"), {"fills": fills})
                    rows = await cur.fetchall()
                    await self._commit(conn)
        except psycopg.Error as exc:
            error = _map_error(exc, None)
            if isinstance(error, ConnectionLost) and not sent:
                raise ConnectionUnavailable(str(error)) from exc
            raise error from exc
        rows.sort(key=lambda r: r[0])
        return rows

    def _settle(self, item: _Pending, row: tuple[Any, ...], *, in_doubt: bool) -> None:
        params = item.params
        sqlstate, message = row[9], row[10]
        if sqlstate is not None:
            error = error_from_sqlstate(sqlstate, message, portfolio_id=params["portfolio_id"])
            if isinstance(error, VersionConflict):
                self.monitor.record_version_conflict()
            item.future.set_exception(error)
            return
        result = MutationResult.from_row(row[1:9], params["request_id"])
        item.future.set_result(self._delivered(result, in_doubt=in_doubt))

    async def _send_mutation(
        self, operation: str, portfolio_id: int, params: dict[str, Any]
    ) -> MutationResult:
        sent = False
        try:
            async with self._connection() as conn:
                sent = True
                with compat.call_later(self.call_timeout, _cutter(conn)):
                    cur = await conn.execute(query(operation), params)
                    row = await cur.fetchone()
                    await self._commit(conn)
        except psycopg.Error as exc:
            error = _map_error(exc, portfolio_id)
            if isinstance(error, ConnectionLost) and not sent:
                raise ConnectionUnavailable(str(error), portfolio_id=portfolio_id) from exc
            raise error from exc
        assert row is not None
        return MutationResult.from_row(row, params["request_id"])

    async def _read(
        self, name: str, params: dict[str, Any], convert: Callable[[list[Any]], T]
    ) -> T:
        """A call that may be repeated freely: retried on every retryable error and on
        any connection failure."""
        attempt = 0
        portfolio_id = params.get("portfolio_id")
        with self.monitor.operation(name):
            while True:
                try:
                    async with self._connection() as conn:
                        with compat.call_later(self.call_timeout, _cutter(conn)):
                            cur = await conn.execute(query(name), params)
                            rows = await cur.fetchall()
                            await self._commit(conn)
                    return convert(rows)
                except psycopg.Error as exc:
                    error = _map_error(exc, portfolio_id)
                    cause = (
                        "connection" if isinstance(error, ConnectionLost) else retry_cause(error)
                    )
                    if cause is None or attempt >= self.retry.max_retries:
                        raise error from exc
                    attempt += 1
                    self.monitor.record_retry(cause)
                    await compat.sleep(self.retry.delay(attempt))

    @staticmethod
    async def _commit(conn: AsyncConnection[Any]) -> None:
        # Our own pool is autocommit; a caller's pool may not be.
        if not conn.autocommit:
            await conn.commit()


# What apply_fills takes as elements, and the values each carries in its JSON.
_BATCHABLE: dict[str, tuple[str, ...]] = {
    "apply_fill": ("quantity", "price", "fee"),
    "deposit_cash": ("amount",),
    "withdraw_cash": ("amount",),
    "charge_fee": ("amount",),
}


@dataclass(eq=False)
class _Pending:
    """A fill or cash move waiting for its turn in the coalescing queue. ``params`` is
    its apply_fills element (a cash move's carries ``operation``)."""

    params: dict[str, Any]
    future: compat.Future[MutationResult]
    taken: bool = field(default=False)
    waited: bool = field(default=False)


class _RetryState:
    """Retry bookkeeping for one call. After a connection dies with the request in flight
    the call is *in doubt*: it is sent again under the same request id, so the database
    either answers with the stored result (the lost attempt committed) or applies it once
    (it did not), or refuses it with PF005 (the id was used for something else). That goes
    on past ``max_retries`` until ``resolve_timeout``, then OutcomeUnknown."""

    def __init__(self, client: AsyncPortfolioClient) -> None:
        self.client = client
        self.attempt = 0
        self.doubt_deadline: float | None = None

    @property
    def in_doubt(self) -> bool:
        return self.doubt_deadline is not None

    async def before_retry(self, exc: PortfolioError, portfolio_id: int | None) -> None:
        """Return to retry, or raise ``exc`` (or OutcomeUnknown) when it is final."""
        if isinstance(exc, ConnectionLost) and not isinstance(exc, OutcomeUnknown):
            if self.doubt_deadline is None:
                self.doubt_deadline = time.monotonic() + self.client.resolve_timeout
            cause: str | None = _CONNECTION_LOST
        elif self.in_doubt and isinstance(exc, ConnectionUnavailable):
            cause = "connection"  # still learning the outcome, even past a pool timeout
        else:
            cause = retry_cause(exc)
        if self.doubt_deadline is not None and cause in (_CONNECTION_LOST, "connection"):
            if time.monotonic() >= self.doubt_deadline:
                raise OutcomeUnknown(
                    f"connection lost with a request in flight on portfolio {portfolio_id}, and "
                    f"no answer for its request id within {self.client.resolve_timeout}s",
                    portfolio_id=portfolio_id,
                ) from exc
        elif cause is None or self.attempt >= self.client.retry.max_retries:
            raise exc
        self.attempt += 1
        self.client.monitor.record_retry(cause)
        await compat.sleep(self.client.retry.delay(min(self.attempt, 16)))


def _map_error(exc: psycopg.Error, portfolio_id: int | None) -> PortfolioError:
    import psycopg_pool

    if isinstance(exc, psycopg_pool.PoolTimeout):
        return ConnectionUnavailable(str(exc), portfolio_id=portfolio_id, pool_timeout=True)
    return error_from_database(exc, portfolio_id=portfolio_id)


def _change_event(channel: str, payload: str) -> ChangeEvent | None:
    """Parse a notification; None for one we did not send. Any role that can connect may
    NOTIFY on any channel, so a payload is a hint to re-read, never the truth."""
    version, _, kind = payload.partition(":")
    try:
        return ChangeEvent(int(channel.removeprefix("pgportfolio_")), int(version), kind)
    except ValueError:
        return None


def _looks_dead(conn: AsyncConnection[Any]) -> bool:
    """True if an idle connection is closed, broken, or has unread input (a terminated
    backend's FATAL message or end of stream): checked with a zero-timeout poll."""
    if conn.closed or conn.broken:
        return True
    try:
        readable, _, _ = select.select([conn.pgconn.socket], [], [], 0)
    except (OSError, ValueError, psycopg.Error):
        return True
    return bool(readable)


def _cutter(conn: AsyncConnection[Any]) -> Callable[[], None]:
    """A callback that cuts ``conn``'s socket: the blocked call then fails at once with a
    connection error, exactly as if the network had dropped."""

    def cut() -> None:
        with (
            contextlib.suppress(OSError, psycopg.Error),
            socket.socket(fileno=os.dup(conn.pgconn.socket)) as sock,
        ):
            sock.shutdown(socket.SHUT_RDWR)

    return cut


def _advisory_key(name: str) -> int:
    """A stable signed 64-bit key for a lock name."""
    return int.from_bytes(blake2b(name.encode(), digest_size=8).digest(), "big", signed=True)


class AsyncPortfolio:
    """One portfolio, in the seed's object style."""

    def __init__(self, client: AsyncPortfolioClient, portfolio_id: int) -> None:
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

    def __init__(self, client: AsyncPortfolioClient) -> None:
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
