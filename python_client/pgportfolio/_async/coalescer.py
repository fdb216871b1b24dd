"""The coalescer: concurrent fills and cash moves of one client travel together in
``apply_fills_arrays`` calls. ``_sync/coalescer.py`` is generated from this file.

Callers put their operation in a queue and wait for their own answer. A few workers,
owned by the client, take what is queued (up to ``max_batch``, oldest first, across
portfolios) and send it; there is no timer, so an idle client sends each operation at
once. A portfolio is in at most ``max_batches_per_portfolio`` batches in flight, so
batches in flight do not queue on each other's rows in the database.

A batch, once taken from the queue, belongs to the client: a caller that stops waiting
(cancelled, timed out) changes nothing for the others, and its own operation may still
apply (``find_request`` tells). A caller whose operation was never taken withdraws it:
it is never sent after that.
"""

from __future__ import annotations

import copy
import time
from collections import deque
from dataclasses import dataclass, field
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
# The batch's columns, one array each (apply_fills_arrays); an operation's absent
# parameters travel as NULL.
BATCH_COLUMNS = (
    "portfolio_id",
    "operation",
    "symbol",
    "quantity",
    "price",
    "fee",
    "amount",
    "request_id",
    "expected_version",
    "executed_at",
    "order_id",
    "tags",
)


@dataclass(eq=False)
class Pending:
    """An operation waiting for its answer. ``params`` is its batch element (all but a
    fill's carry ``operation``)."""

    request: Request
    params: dict[str, Any]
    future: compat.Future[MutationResult] = field(default_factory=compat.new_future)
    taken: bool = False
    waited: bool = False


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
        workers, self._workers = self._workers, []
        for worker in workers:
            await compat.join(worker)

    # -- callers ---------------------------------------------------------------------

    async def submit(self, pending: Pending) -> MutationResult:
        """Queue ``pending`` and wait for its own answer."""
        self.start()
        started = time.perf_counter()
        portfolio_id = pending.request.portfolio_id
        async with self._turns:
            pending.waited = self._busy_workers >= self.max_combiners or self._portfolio_busy(
                portfolio_id
            )
            self._queue.append(pending)
            # Wake an idle worker only if one could take it now. Otherwise a busy worker
            # takes it when it loops (it looks at the queue before it ever waits), and the
            # idle ones are spared a scan of the queue per caller.
            if not pending.waited:
                self._turns.notify()
        try:
            await self._wait(pending)
        except BaseException:
            self._withdraw(pending)
            raise
        # Waiting for a worker is this mode's in-process lock wait.
        self.monitor.record_lock_wait(
            "coalescer", time.perf_counter() - started, contended=pending.waited
        )
        result: MutationResult = pending.future.result()
        return result

    async def _wait(self, pending: Pending) -> None:
        """Until the answer comes. Not yet taken, the wait is bounded like the waits it
        stands for: behind a batch of the same portfolio, as the per-portfolio lock
        (``lock_timeout``); behind busy workers, as a connection from the pool."""
        started = time.monotonic()
        portfolio_id = pending.request.portfolio_id
        while True:
            timeout: float | None = None
            if not pending.taken:
                portfolio_busy = self._portfolio_busy(portfolio_id)
                limit = self.lock_timeout if portfolio_busy else self.transport.pool.timeout
                if limit is not None:
                    timeout = limit - (time.monotonic() - started)
                    if timeout <= 0:
                        self._give_up(pending, portfolio_busy, limit)
                        timeout = None  # taken meanwhile: its answer will come
            if await compat.wait_future(pending.future, timeout):
                return

    def _give_up(self, pending: Pending, portfolio_busy: bool, limit: float) -> None:
        """Withdraw ``pending`` and raise, unless a worker took it meanwhile."""
        with compat.atomic(self._turns):
            if pending.taken:
                return
            self._withdraw(pending)
        portfolio_id = pending.request.portfolio_id
        if portfolio_busy:
            self.monitor.record_lock_timeout("coalescer")
            raise InProcessLockTimeout(
                f"no turn for portfolio {portfolio_id} within {limit}s: its previous batch"
                " is still in flight; nothing was sent",
                portfolio_id=portfolio_id,
            ).about(pending.request.operation, portfolio_id, pending.request.request_id)
        raise ConnectionUnavailable(
            f"no turn within {limit}s: all {self.max_combiners} batches in flight;"
            " nothing was sent",
            portfolio_id=portfolio_id,
            pool_timeout=True,
        ).about(pending.request.operation, portfolio_id, pending.request.request_id)

    def _withdraw(self, pending: Pending) -> None:
        """Take a caller's operation out of the queue if no worker has taken it."""
        with compat.atomic(self._turns):
            if not pending.taken and pending in self._queue:
                self._queue.remove(pending)

    def _portfolio_busy(self, portfolio_id: int | None) -> bool:
        return self._in_flight.get(portfolio_id or 0, 0) >= self.max_batches_per_portfolio

    # -- workers ---------------------------------------------------------------------

    async def _work(self) -> None:
        while True:
            async with self._turns:
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
            finally:
                async with self._turns:
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
                    item.future.set_exception(_answer_for(item.request, exc, self.transport))
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
            item.future.set_exception(exc)
            return
        item.future.set_result(result)

    async def _call_apply_fills(
        self, batch: list[Pending], in_doubt: bool
    ) -> list[tuple[tuple[Any, ...], bool]]:
        columns = {name: [item.params.get(name) for item in batch] for name in BATCH_COLUMNS}
        rows = await self.transport.call("apply_fills_arrays", columns)
        rows.sort(key=lambda r: r[0])
        return [(row, in_doubt) for row in rows]

    def _settle(self, item: Pending, row: tuple[Any, ...], in_doubt: bool) -> None:
        request = item.request
        sqlstate, message, detail, hint = row[9:13]
        if sqlstate is not None:
            error = error_from_sqlstate(
                sqlstate, message, detail=detail, hint=hint, portfolio_id=request.portfolio_id
            )
            if isinstance(error, VersionConflict):
                self.monitor.record_version_conflict()
            item.future.set_exception(
                error.about(request.operation, request.portfolio_id, request.request_id)
            )
            return
        result = MutationResult.from_row(row[1:9], item.params["request_id"])
        item.future.set_result(self.transport.delivered(result, request, in_doubt))


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
