"""The coalescer: concurrent fills and cash moves of one client travel together in
``apply_fills_arrays`` calls. ``_sync/coalescer.py`` is generated from this file.

Callers put their operation in a queue and wait for their own answer. A few workers,
owned by the client, take what is queued (up to ``max_batch``, oldest first, across
portfolios) and send it; there is no timer, so an idle client sends each operation at
once. A portfolio is in at most ``max_batches_per_portfolio`` batches in flight: with
two, the next batch of a hot portfolio waits at its row while the one before commits,
so the row never idles for a round trip, and no more than that queue on one row.

A batch, once taken from the queue, belongs to the client: a caller that stops waiting
(cancelled, timed out) changes nothing for the others, and its own operation may still
apply (``find_request`` tells). A caller whose operation was never taken withdraws it:
it is never sent after that.
"""

from __future__ import annotations

import copy
import time
from collections import deque
from collections.abc import Callable
from operator import itemgetter
from typing import Any

from pgportfolio._async import compat
from pgportfolio._async.transport import AsyncTransport, Request, unknown_outcome
from pgportfolio.errors import (
    ConnectionLost,
    ConnectionUnavailable,
    InProcessLockTimeout,
    PortfolioError,
    VersionConflict,
    error_from_sqlstate,
)
from pgportfolio.models import MutationResult
from pgportfolio.monitor import Monitor
from pgportfolio.values import json_array, number_array, text_array, time_array

# What a batch can carry, and the numbers each operation brings to it.
BATCHABLE: dict[str, tuple[str, ...]] = {
    "apply_fill": ("quantity", "price", "fee"),
    "open_position": ("quantity", "price", "fee"),
    "add_to_position": ("quantity", "price", "fee"),
    "reduce_position": ("quantity", "price", "fee"),
    "close_position": ("price", "fee"),
    "deposit_cash": ("amount",),
    "withdraw_cash": ("amount",),
    "charge_fee": ("amount",),
}
# The batch's columns: apply_fills_arrays's parameters (queries.sql), each sent as one
# array literal written by its encoder (values.py); an operation's absent parameters
# travel as NULL. A new column is one line here and one parameter there.
BATCH_COLUMNS: dict[str, Callable[[list[Any]], str]] = {
    "portfolio_id": number_array,
    "operation": text_array,
    "symbol": text_array,
    "quantity": number_array,
    "price": number_array,
    "fee": number_array,
    "amount": number_array,
    "request_id": text_array,
    "expected_version": number_array,
    "executed_at": time_array,
    "order_id": text_array,
    "tags": json_array,
}

_ITEM = itemgetter(0)


class Pending:
    """An operation waiting for its answer. ``params`` is its batch element (all but a
    fill's carry ``operation``). A plain class with slots: one is made per fill."""

    __slots__ = ("arrived", "expired", "future", "params", "request", "taken", "waited")

    def __init__(self, request: Request, params: dict[str, Any]) -> None:
        self.request = request
        self.params = params
        self.future: compat.Future[MutationResult] = compat.new_future()
        self.taken = False  # a worker took it: it will be answered, whatever happens
        self.waited = False  # it found no free turn when it came
        self.expired = False  # it gave up waiting for a turn (never sent)
        self.arrived = 0.0  # time.monotonic() when queued


class AsyncCoalescer:
    def __init__(
        self,
        transport: AsyncTransport,
        monitor: Monitor,
        *,
        max_batch: int,
        max_combiners: int,
        max_batches_per_portfolio: int,
        lock_timeout: float | None,
    ) -> None:
        if max_batches_per_portfolio < 1:
            raise ValueError("max_batches_per_portfolio must be at least 1")
        if max_combiners < 1 or max_batch < 1:
            raise ValueError("max_combiners and max_batch must be at least 1")
        self.transport = transport
        self.monitor = monitor
        self.max_batch = max_batch
        self.max_combiners = max_combiners
        self.max_batches_per_portfolio = max_batches_per_portfolio
        self.lock_timeout = lock_timeout
        self._queue: deque[Pending] = deque()
        # Portfolio id -> batches in flight that hold operations for it.
        self._in_flight: dict[int, int] = {}
        self._busy_workers = 0
        self._turns = compat.Condition()
        self._workers: list[Any] = []
        self._closing = False
        # One timer bounds every queued operation's wait for a turn (see _expire_waits).
        self._watchdog: Any = None

    def is_idle(self) -> bool:
        """Nothing queued and nothing in flight (the bookkeeping is empty)."""
        return not self._queue and not self._in_flight and self._busy_workers == 0

    # -- lifecycle -------------------------------------------------------------------

    def start(self) -> None:
        if not self._workers:
            self._closing = False
            self._workers = [compat.spawn(self._work) for _ in range(self.max_combiners)]

    async def stop(self) -> None:
        """Let the workers send what is queued, then end them."""
        async with self._turns:
            self._closing = True
            self._turns.notify_all()
            if self._watchdog is not None:
                self._watchdog.cancel()
                self._watchdog = None
        workers, self._workers = self._workers, []
        for worker in workers:
            await compat.join(worker)

    # -- callers ---------------------------------------------------------------------

    async def submit(self, pending: Pending, name: str) -> MutationResult:
        """Queue ``pending`` and wait for its own answer; the monitor counts it as the
        call ``name`` and its wait as the ``coalescer`` lock's."""
        if not self._workers:
            self.start()
        monitor = self.monitor
        started = monitor.begin()
        portfolio_id = pending.request.portfolio_id
        with compat.atomic(self._turns):
            pending.waited = (
                self._busy_workers >= self.max_combiners
                or self._in_flight.get(portfolio_id or 0, 0) >= self.max_batches_per_portfolio
            )
            pending.arrived = time.monotonic()
            self._queue.append(pending)
            if self._watchdog is None:
                self._arm_watchdog(self._shortest_wait())
        # Wake an idle worker only if one could take it now. Otherwise a busy worker
        # takes it when it loops (it looks at the queue before it ever waits), and the
        # idle ones are spared a scan of the queue per caller.
        if not pending.waited:
            async with self._turns:
                self._turns.notify()
        # Waiting for a worker is this mode's in-process lock wait: the monitor counts
        # the call's time as the wait of the "coalescer" lock too, unless it gave up
        # waiting for a turn (then it never had one).
        try:
            result = await compat.answer(pending.future)
        except Exception as exc:
            lock = None if pending.expired else "coalescer"
            monitor.end(name, started, type(exc).__name__, lock=lock, contended=pending.waited)
            raise
        except BaseException as exc:  # the caller stopped waiting (cancelled)
            self._withdraw(pending)
            monitor.end(name, started, type(exc).__name__)
            raise
        monitor.end(name, started, None, lock="coalescer", contended=pending.waited)
        return result

    # -- bounded waits ---------------------------------------------------------------

    def _shortest_wait(self) -> float:
        limits = [float(self.transport.pool.timeout)]
        if self.lock_timeout is not None:
            limits.append(self.lock_timeout)
        return max(0.0, min(limits))

    def _arm_watchdog(self, seconds: float) -> None:
        """Called holding ``_turns``."""
        self._watchdog = compat.schedule(max(0.0, seconds), self._expire_waits)

    def _expire_waits(self) -> None:
        """The watchdog: every queued operation that has waited past its limit gives up,
        never sent. The limit is that of the wait it stands for: behind a batch of its
        own portfolio, the per-portfolio lock's (``lock_timeout``); behind busy workers,
        a connection's from the pool. The queue is in arrival order, so the scan stops
        at the first operation younger than the shortest limit."""
        expired: list[tuple[Pending, bool, float]] = []
        with compat.atomic(self._turns):
            self._watchdog = None
            now = time.monotonic()
            shortest = self._shortest_wait()
            next_check: float | None = None
            for pending in self._queue:
                age = now - pending.arrived
                if age < shortest:
                    left = shortest - age
                    next_check = left if next_check is None else min(next_check, left)
                    break
                busy = self._portfolio_busy(pending.request.portfolio_id)
                limit = self.lock_timeout if busy else float(self.transport.pool.timeout)
                if limit is not None and age >= limit:
                    expired.append((pending, busy, limit))
                    continue
                # Its limit depends on what it waits behind, which may change.
                left = shortest if limit is None else limit - age
                next_check = left if next_check is None else min(next_check, left)
            for pending, _, _ in expired:
                self._queue.remove(pending)
                pending.expired = True
            if self._queue:
                self._arm_watchdog(shortest if next_check is None else next_check)
        for pending, busy, limit in expired:
            self._refuse(pending, busy, limit)

    def _refuse(self, pending: Pending, portfolio_busy: bool, limit: float) -> None:
        """Answer an operation that gave up waiting for a turn: behind its own
        portfolio's batch, or behind busy workers."""
        portfolio_id = pending.request.portfolio_id
        request = pending.request
        error: PortfolioError
        if portfolio_busy:
            self.monitor.record_lock_timeout("coalescer")
            error = InProcessLockTimeout(
                f"no turn for portfolio {portfolio_id} within {limit}s: its previous batch"
                " is still in flight; nothing was sent",
                portfolio_id=portfolio_id,
            )
        else:
            error = ConnectionUnavailable(
                f"no turn within {limit}s: all {self.max_combiners} batches in flight;"
                " nothing was sent",
                portfolio_id=portfolio_id,
                pool_timeout=True,
            )
        _fail(pending.future, error.about(request.operation, portfolio_id, request.request_id))

    def _withdraw(self, pending: Pending) -> None:
        """Take a caller's operation out of the queue if no worker has taken it."""
        with compat.atomic(self._turns):
            if not pending.taken and pending in self._queue:
                self._queue.remove(pending)

    def _portfolio_busy(self, portfolio_id: int | None) -> bool:
        return self._in_flight.get(portfolio_id or 0, 0) >= self.max_batches_per_portfolio

    # -- workers ---------------------------------------------------------------------

    async def _work(self) -> None:
        batch: list[Pending] = []
        portfolios: set[int] = set()
        while True:
            async with self._turns:
                if batch:  # the last batch is answered: its turn ends with the next's start
                    self._release(portfolios)
                while not (batch := self._next_batch()):
                    if self._closing:
                        return
                    await self._turns.wait()
                self._busy_workers += 1
                portfolios = {item.request.portfolio_id or 0 for item in batch}
                for key in portfolios:
                    self._in_flight[key] = self._in_flight.get(key, 0) + 1
                if self._queue and self._busy_workers < self.max_combiners:
                    self._turns.notify()  # what is left may be another portfolio's
            try:
                await self.send_batch(batch)
            except BaseException:
                async with self._turns:
                    self._release(portfolios)
                raise

    def _release(self, portfolios: set[int]) -> None:
        """A batch's turn ends. Called holding ``_turns``."""
        self._busy_workers -= 1
        for key in portfolios:
            left = self._in_flight.pop(key) - 1
            if left:
                self._in_flight[key] = left

    def _next_batch(self) -> list[Pending]:
        """Take queued operations, oldest first, up to max_batch, skipping those whose
        portfolio already has its share of batches in flight (they keep their place in
        the queue). Called holding ``_turns``."""
        batch: list[Pending] = []
        kept: list[Pending] = []
        queue = self._queue
        while queue and len(batch) < self.max_batch:
            item = queue.popleft()
            if not self._portfolio_busy(item.request.portfolio_id):
                item.taken = True
                batch.append(item)
            else:
                kept.append(item)
        queue.extendleft(reversed(kept))
        return batch

    # -- sending ---------------------------------------------------------------------

    async def send_batch(self, batch: list[Pending]) -> None:
        """Send ``batch`` and answer every operation in it, whatever happens: its own
        result or its own typed error, naming its own request."""
        self.monitor.record_batch(len(batch))
        try:
            if len(batch) == 1:
                # Alone, an operation's own function costs the server about half of a
                # batch of one.
                await self._send_alone(batch[0])
                return
            rows: list[tuple[tuple[Any, ...], bool]] = await self.transport.run(
                lambda in_doubt: self._call_apply_fills(batch, in_doubt),
                Request("apply_fills_arrays", None, None),
            )
        except BaseException as exc:
            for item in batch:
                if not item.future.done():
                    _fail(item.future, _answer_for(item.request, exc, self.transport))
            if not isinstance(exc, Exception):
                raise
            return
        for item, (row, in_doubt) in zip(batch, rows, strict=True):
            self._settle(item, row, in_doubt)

    async def _send_alone(self, item: Pending) -> None:
        """One operation through its own function (apply_fill, deposit_cash, ...)."""
        request = item.request
        try:
            result: MutationResult = await self.transport.run(
                lambda in_doubt: self.transport.mutation(request, item.params, in_doubt), request
            )
        except PortfolioError as exc:
            _fail(item.future, exc)
            return
        _answer(item.future, result)

    async def _call_apply_fills(
        self, batch: list[Pending], in_doubt: bool
    ) -> list[tuple[tuple[Any, ...], bool]]:
        columns: dict[str, str | None] = {}
        for name, encode in BATCH_COLUMNS.items():
            values = [item.params.get(name) for item in batch]
            # A column no element uses travels as NULL, which the ledger reads as all
            # NULL: neither side writes or parses an array of NULLs (a fill batch leaves
            # half of the columns unused).
            columns[name] = None if values.count(None) == len(values) else encode(values)
        rows = await self.transport.call("apply_fills_arrays", columns)
        rows.sort(key=_ITEM)
        return [(row, in_doubt) for row in rows]

    def _settle(self, item: Pending, row: tuple[Any, ...], in_doubt: bool) -> None:
        request = item.request
        sqlstate = row[9]
        if sqlstate is not None:
            error = error_from_sqlstate(
                sqlstate, row[10], detail=row[11], hint=row[12], portfolio_id=request.portfolio_id
            )
            if isinstance(error, VersionConflict):
                self.monitor.record_version_conflict()
            _fail(
                item.future,
                error.about(request.operation, request.portfolio_id, request.request_id),
            )
            return
        result = MutationResult.from_row(row[1:9], item.params["request_id"])
        _answer(item.future, self.transport.delivered(result, request, in_doubt))


def _answer(future: compat.Future[MutationResult], result: MutationResult) -> None:
    """Settle a caller's future, unless its caller stopped waiting (a cancelled waiter
    cancels it)."""
    if not future.done():
        future.set_result(result)


def _fail(future: compat.Future[MutationResult], error: BaseException) -> None:
    """``_answer`` with an error."""
    if not future.done():
        future.set_exception(error)


def _answer_for(request: Request, exc: BaseException, transport: AsyncTransport) -> PortfolioError:
    """What one operation of a failed batch is told: the batch's error, about its own
    request. A lost connection or anything unexpected leaves its outcome unknown."""
    if isinstance(exc, PortfolioError) and not isinstance(exc, ConnectionLost):
        mine = copy.copy(exc)
        mine.operation, mine.portfolio_id, mine.request_id = (
            request.operation,
            request.portfolio_id,
            request.request_id,
        )
        return mine
    unknown = unknown_outcome(request, transport.resolve_timeout)
    unknown.__cause__ = exc
    return unknown
