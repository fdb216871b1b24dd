"""The transport: the pool, one call on one connection, error mapping, and the one retry
runner. ``_sync/transport.py`` is generated from this file.

What a caller is told depends on what reached the server. A failure before the request
was sent is ``ConnectionUnavailable`` (nothing changed). A connection lost with a
mutation in flight leaves its outcome unknown: the runner sends it again under the same
request id, so the database either answers with the stored result or applies it once,
until ``resolve_timeout``; then ``OutcomeUnknown``, naming the request id.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import select
import socket
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, NamedTuple, TypeVar

import psycopg
import psycopg_pool

from pgportfolio._async import compat
from pgportfolio._async.compat import AsyncConnection, AsyncConnectionPool
from pgportfolio.errors import (
    ANSWERS_ABOUT_THE_REQUEST,
    ConnectionLost,
    ConnectionUnavailable,
    OutcomeUnknown,
    PortfolioError,
    VersionConflict,
    error_from_database,
)
from pgportfolio.models import MutationResult
from pgportfolio.monitor import Monitor
from pgportfolio.queries import query
from pgportfolio.retry import RetryPolicy, retry_cause
from pgportfolio.syncrep import BARRIER, needs_barrier, resolving, watching

T = TypeVar("T")

logger = logging.getLogger("pgportfolio")

# Retry causes (metric labels) of a connection that failed before / while a call was sent.
CONNECTION = "connection"
CONNECTION_LOST = "connection_lost"


class Request(NamedTuple):
    """Which mutation a call is: what every error about it names. (A named tuple: one
    is made per fill, and a frozen dataclass costs three times as much to make.)"""

    operation: str
    portfolio_id: int | None
    request_id: str | None

    def __str__(self) -> str:
        return f"{self.operation} request {self.request_id!r} on portfolio {self.portfolio_id}"


class RecentFirstPool(AsyncConnectionPool):
    """psycopg_pool's pool, handing out the idle connection returned last rather than the
    one idle longest. A caller alone on a pool of 16 otherwise visits all 16 backends in
    turn, each with its caches gone cold: 2.0 ms a fill instead of 1.3 on this 2-core
    machine. Under load every connection is busy anyway; when load drops, the ones not
    needed stay idle, and the pool's max_idle closes them."""

    async def _get_ready_connection(self, timeout: float | None) -> Any:
        # psycopg_pool calls this with its lock held. Its idle deque takes connections
        # back on the right and hands them out from the left: the last one back goes first.
        # (tests/client/test_async_client.py checks that a lone caller keeps one backend.)
        self._pool.rotate(1)
        return await super()._get_ready_connection(timeout)


class AsyncTransport:
    """A pool of autocommit connections and the one way calls travel over them."""

    def __init__(
        self,
        conninfo: str,
        *,
        pool: AsyncConnectionPool | None,
        min_size: int,
        max_size: int,
        pool_timeout: float,
        call_timeout: float | None,
        resolve_timeout: float,
        retry: RetryPolicy,
        monitor: Monitor,
        name: str,
    ) -> None:
        self.call_timeout = call_timeout
        self.resolve_timeout = resolve_timeout
        self.retry = retry
        self.monitor = monitor
        self.name = name
        self.owns_pool = pool is None
        # libpq's connect_timeout bounds a handshake with a peer that stopped answering.
        self._connect_kwargs: dict[str, Any] = {
            "autocommit": True,
            "connect_timeout": max(2, round(call_timeout or 10)),
        }
        self.pool = pool or RecentFirstPool(
            conninfo,
            min_size=min_size,
            max_size=max_size,
            timeout=pool_timeout,
            open=False,
            # No round-trip check on checkout: connection() drops dead connections
            # without a round trip, and call_timeout bounds the rest. (A failed pool
            # check makes psycopg_pool back off for 1 s, 2 s, ... within one checkout.)
            kwargs=self._connect_kwargs,
            name=name,
        )

    async def open(self, timeout: float | None = None) -> None:
        """Open our own pool. One direct connection first: a wrong address or role fails
        at once with libpq's own words, instead of the pool retrying it quietly until its
        timeout and then saying only that it timed out."""
        if not self.owns_pool:
            return
        limit = self.pool.timeout if timeout is None else timeout
        conninfo = self.pool.conninfo
        if isinstance(conninfo, str):
            kwargs = {**self._connect_kwargs, "connect_timeout": max(2, round(limit))}
            try:
                probe = await AsyncConnection.connect(conninfo, **kwargs)
            except psycopg.Error as exc:
                logger.warning("%s: cannot connect: %s", self.name, exc)
                raise ConnectionUnavailable(f"cannot connect: {exc}") from exc
            await probe.close()
        try:
            await self.pool.open(wait=True, timeout=limit)
        except psycopg_pool.PoolTimeout as exc:
            await self.pool.close()
            logger.warning("%s: pool not filled within %ss", self.name, limit)
            raise ConnectionUnavailable(
                f"cannot connect: the pool had no connection within {limit}s",
                pool_timeout=True,
            ) from exc

    async def close(self) -> None:
        if self.owns_pool:
            await self.pool.close()

    @asynccontextmanager
    async def connection(self, timeout: float | None = None) -> AsyncIterator[AsyncConnection[Any]]:
        """A pooled connection that is not known to be dead. A backend that was terminated
        has sent its goodbye (an error and end of stream) to an idle socket: a socket with
        something to read before we asked is dropped at once and the next one taken,
        with no round trip and no backoff."""
        deadline = time.monotonic() + (self.pool.timeout if timeout is None else timeout)
        while True:
            conn = await self.pool.getconn(timeout=max(0.001, deadline - time.monotonic()))
            if not _looks_dead(conn):
                break
            await conn.close()
            await self.pool.putconn(conn)  # the pool sees it closed and replaces it
        try:
            if conn.autocommit:
                yield conn
            else:  # a caller's pool: commit, or roll back on an error, before it goes back
                async with conn:
                    yield conn
        finally:
            await self.pool.putconn(conn)

    async def call(
        self, name: str, params: dict[str, Any], *, portfolio_id: int | None = None
    ) -> list[tuple[Any, ...]]:
        """One attempt: run the named query and fetch its rows, within ``call_timeout``
        (past it the socket is cut, as if the network had failed). Raises
        ConnectionUnavailable when the request was never sent, ConnectionLost when the
        connection failed with it in flight."""
        sent = False
        try:
            async with self.connection() as conn:
                sent = True
                with compat.call_later(self.call_timeout, cutter(conn)), watching(conn) as watch:
                    # Not cancelled halfway: psycopg answers a cancelled task with a cancel
                    # request, which in a commit's wait for the standby leaves it local.
                    rows = await compat.uninterrupted(self._send(conn, name, params))
                watch.check(portfolio_id)  # a cancelled wait for the standby: in doubt
        except psycopg.Error as exc:
            error = map_error(exc, portfolio_id)
            if isinstance(error, ConnectionLost) and not sent:
                raise ConnectionUnavailable(str(error), portfolio_id=portfolio_id) from exc
            raise error from exc
        return rows

    async def _send(
        self, conn: AsyncConnection[Any], name: str, params: dict[str, Any]
    ) -> list[tuple[Any, ...]]:
        cur = await conn.execute(query(name), params)
        rows = await cur.fetchall()
        if not conn.autocommit:  # our pool is autocommit; a caller's may not be
            await conn.commit()
        if needs_barrier():  # an answer in doubt counts once a standby has it
            await conn.execute(BARRIER)
            if not conn.autocommit:
                await conn.commit()
        return rows

    async def mutation(
        self, request: Request, params: dict[str, Any], in_doubt: bool
    ) -> MutationResult:
        """One try of a mutation through its own SQL function: the result a caller is given."""
        rows = await self.call(request.operation, params, portfolio_id=request.portfolio_id)
        result = MutationResult.from_row(rows[0], params["request_id"])
        return self.delivered(result, request, in_doubt)

    def delivered(self, result: MutationResult, request: Request, in_doubt: bool) -> MutationResult:
        """The result a caller is given."""
        if in_doubt:
            # Sent again under the same request id after a connection died in flight: the
            # database answered for that id (duplicate=True if the lost attempt committed).
            result = dataclasses.replace(result, recovered=True)
            logger.warning("%s: resolved by its request id (applied once)", request)
        if result.duplicate:
            self.monitor.record_duplicate()
        return result

    async def read(self, name: str, params: dict[str, Any], convert: Callable[[list[Any]], T]) -> T:
        """A call that may be repeated freely (a read, a mark, a grant)."""
        portfolio_id = params.get("portfolio_id")

        async def attempt(_in_doubt: bool) -> T:
            return convert(await self.call(name, params, portfolio_id=portfolio_id))

        with self.monitor.operation(name):
            return await self.run(attempt, None)

    async def run(self, attempt: compat.Attempt[T], request: Request | None) -> T:
        """The retry runner. ``attempt(in_doubt)`` makes one try; ``request`` is None for
        a call that may be repeated freely, else the mutation it sends (same request id
        on every try). A final error names ``request``."""
        retries = RetryState(self, request)
        while True:
            try:
                with resolving(retries.in_doubt or needs_barrier()):
                    return await attempt(retries.in_doubt)
            except PortfolioError as exc:
                if request is not None:
                    exc.about(request.operation, request.portfolio_id, request.request_id)
                    if isinstance(exc, VersionConflict):
                        self.monitor.record_version_conflict()
                await retries.before_retry(exc)


class RetryState:
    """Retry bookkeeping for one call. A mutation whose connection died with it in
    flight is *in doubt*: it is sent again under the same request id, so the database
    either answers with the stored result (the lost attempt committed), applies it once
    (it did not), or refuses it for a reason about the request itself
    (``ANSWERS_ABOUT_THE_REQUEST``: PF005 when the id was used for something else). Any
    other error of a resend is retried like a lost connection: that goes on past
    ``max_retries`` until ``resolve_timeout``, then OutcomeUnknown."""

    def __init__(self, transport: AsyncTransport, request: Request | None) -> None:
        self.transport = transport
        self.request = request
        self.attempt = 0
        self.doubt_deadline: float | None = None

    @property
    def in_doubt(self) -> bool:
        return self.doubt_deadline is not None

    async def before_retry(self, exc: PortfolioError) -> None:
        """Return to retry, or raise ``exc`` (or OutcomeUnknown) when it is final."""
        transport = self.transport
        lost = isinstance(exc, ConnectionLost) and not isinstance(exc, OutcomeUnknown)
        if self.request is None:
            # Free to repeat: a lost connection is just another reason to try again.
            cause = CONNECTION if lost else retry_cause(exc)
        elif lost:
            if self.doubt_deadline is None:
                self.doubt_deadline = time.monotonic() + transport.resolve_timeout
                logger.warning(
                    "%s: connection lost in flight (%s); resolving it by its request id",
                    self.request,
                    exc,
                )
            cause = CONNECTION_LOST
        elif self.in_doubt and not isinstance(exc, ANSWERS_ABOUT_THE_REQUEST):
            # Still learning the outcome: this error is about the resend (no connection
            # even past a pool timeout, a lock timeout, a read-only server), not about
            # the attempt that may have committed, so it is no refusal to report.
            cause = retry_cause(exc) or CONNECTION
        else:
            cause = retry_cause(exc)
        if self.doubt_deadline is not None and cause is not None:
            if time.monotonic() >= self.doubt_deadline:
                assert self.request is not None
                raise unknown_outcome(self.request, transport.resolve_timeout) from exc
        elif cause is None or self.attempt >= transport.retry.max_retries:
            if isinstance(exc, ConnectionUnavailable):
                logger.warning("%s", exc)
            raise exc
        self.attempt += 1
        transport.monitor.record_retry(cause)
        logger.info("retry %d (%s): %s", self.attempt, cause, self.request or exc)
        await compat.sleep(transport.retry.delay(min(self.attempt, 16)))


def unknown_outcome(request: Request, resolve_timeout: float) -> OutcomeUnknown:
    """The answer for a mutation whose fate could not be learnt (logged: it needs a look)."""
    unknown = OutcomeUnknown(
        f"{request}: the connection was lost with it in flight, and no answer for its"
        f" request id within {resolve_timeout}s; it may have been applied:"
        " find_request(portfolio_id, request_id) tells once the server answers",
    )
    unknown.about(request.operation, request.portfolio_id, request.request_id)
    logger.error("%s", unknown)
    return unknown


def map_error(exc: psycopg.Error, portfolio_id: int | None) -> PortfolioError:
    if isinstance(exc, psycopg_pool.PoolTimeout):
        return ConnectionUnavailable(str(exc), portfolio_id=portfolio_id, pool_timeout=True)
    return error_from_database(exc, portfolio_id=portfolio_id)


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


def cutter(conn: AsyncConnection[Any]) -> Callable[[], None]:
    """A callback that cuts ``conn``'s socket: the blocked call then fails at once with a
    connection error, exactly as if the network had dropped."""

    def cut() -> None:
        with (
            contextlib.suppress(OSError, psycopg.Error),
            socket.socket(fileno=os.dup(conn.pgconn.socket)) as sock,
        ):
            sock.shutdown(socket.SHUT_RDWR)

    return cut
