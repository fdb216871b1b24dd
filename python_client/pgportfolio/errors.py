"""The client's exceptions, and the one place where database errors become them.

Every error raised by the ledger carries its SQLSTATE; ``wrap_exceptions`` maps it to a
class here (``raise ... from exc``), so callers catch ``InsufficientCash`` instead of
parsing messages. Connection-level failures become ``ConnectionLost`` or
``ConnectionUnavailable``; the retry layer decides what to do with them.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal

import psycopg
import psycopg_pool


class PortfolioError(Exception):
    """Base class. ``sqlstate``, ``detail`` and ``hint`` are the database's when the error
    came from it. ``operation``, ``portfolio_id`` and ``request_id`` say which call it
    answers (a mutation always has a request id: the caller's or one the client made)."""

    sqlstate: str | None = None

    def __init__(
        self,
        message: str,
        *,
        portfolio_id: int | None = None,
        sqlstate: str | None = None,
        detail: str | None = None,
        hint: str | None = None,
        operation: str | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.portfolio_id = portfolio_id
        if sqlstate is not None:
            self.sqlstate = sqlstate
        self.detail = detail
        self.hint = hint
        self.operation = operation
        self.request_id = request_id

    def about(
        self, operation: str, portfolio_id: int | None, request_id: str | None
    ) -> PortfolioError:
        """Fill in which call this error answers, where not already known; returns self."""
        self.operation = self.operation or operation
        if self.portfolio_id is None:
            self.portfolio_id = portfolio_id
        self.request_id = self.request_id or request_id
        return self


class InvalidInput(PortfolioError, ValueError):
    """22023: a bad argument (also raised client-side, e.g. for a float)."""

    sqlstate = "22023"


class VersionConflict(PortfolioError):
    """PF001: the portfolio's version was not the expected one. Nothing changed."""

    sqlstate = "PF001"

    def __init__(
        self,
        message: str,
        *,
        portfolio_id: int | None = None,
        expected_version: int | None = None,
        found_version: int | None = None,
        sqlstate: str | None = None,
        detail: str | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(
            message, portfolio_id=portfolio_id, sqlstate=sqlstate, detail=detail, hint=hint
        )
        self.expected_version = expected_version
        self.found_version = found_version


class OptimisticLockError(VersionConflict):
    """A read-modify-write kept meeting version conflicts until its retries ran out."""

    def __init__(
        self,
        message: str,
        *,
        attempts: int,
        portfolio_id: int | None = None,
        expected_version: int | None = None,
        found_version: int | None = None,
    ) -> None:
        super().__init__(
            message,
            portfolio_id=portfolio_id,
            expected_version=expected_version,
            found_version=found_version,
        )
        self.attempts = attempts


class InsufficientCash(PortfolioError):
    """PF002: the cash balance would go below zero. ``needed`` and ``available`` are the
    amounts the database reported."""

    sqlstate = "PF002"

    @property
    def needed(self) -> Decimal | None:
        return _amount_after("needed", self.detail, str(self.args[0]) if self.args else "")

    @property
    def available(self) -> Decimal | None:
        return _amount_after("available", self.detail, str(self.args[0]) if self.args else "")


class InsufficientPosition(PortfolioError):
    """PF003: no such position, or not enough quantity."""

    sqlstate = "PF003"


class PortfolioNotFound(PortfolioError, LookupError):
    """PF004."""

    sqlstate = "PF004"


class RequestIdReused(PortfolioError):
    """PF005: the request id was already used for a different operation."""

    sqlstate = "PF005"


class PositionAlreadyOpen(PortfolioError):
    """PF006."""

    sqlstate = "PF006"


class InstrumentHeld(PortfolioError):
    """PF007: upsert_instrument would change the multiplier of a symbol that a portfolio
    holds. Nothing changed."""

    sqlstate = "PF007"


class ClosingMarkMissing(PortfolioError):
    """PF008: close_day found a held symbol with no mark at the end of the day. Nothing
    was written; record a mark for the day and close it again."""

    sqlstate = "PF008"


class NotPermitted(PortfolioError, PermissionError):
    """42501: the role may not do this."""

    sqlstate = "42501"


class LockTimeout(PortfolioError, TimeoutError):
    """A lock was not granted in time: in PostgreSQL (55P03) or in this process."""

    sqlstate: str | None = "55P03"


class InProcessLockTimeout(LockTimeout):
    """This process's own per-portfolio lock was not acquired in time. Not retried: the
    wait already took as long as the caller allowed."""

    sqlstate = None


class TransientConflict(PortfolioError):
    """40001 (serialization failure) or 40P01 (deadlock): safe to retry the whole call."""


class ConnectionUnavailable(PortfolioError):
    """No connection could be had (pool timeout, server down). The request was not sent.
    ``pool_timeout`` is true when the pool gave up after waiting its full timeout."""

    def __init__(
        self,
        message: str,
        *,
        portfolio_id: int | None = None,
        sqlstate: str | None = None,
        pool_timeout: bool = False,
    ) -> None:
        super().__init__(message, portfolio_id=portfolio_id, sqlstate=sqlstate)
        self.pool_timeout = pool_timeout


class ConnectionLost(PortfolioError):
    """The connection failed while a request was in flight: its outcome is unknown until
    resolved by request id."""


class ReplicationUnconfirmed(ConnectionLost):
    """The server answered, but with PostgreSQL's warning that the wait for the
    synchronous standby was cancelled: committed on the primary only, so a failover may
    still lose it. Not an acknowledgement; resolved by request id like a lost connection."""


class OutcomeUnknown(ConnectionLost):
    """The outcome of a mutation could not be learnt within ``resolve_timeout`` (the
    server stayed unreachable). It may have been applied: ``find_request(portfolio_id,
    request_id)`` tells, once the server answers again."""


class DatabaseError(PortfolioError):
    """Any other database error."""


_BY_SQLSTATE: dict[str, type[PortfolioError]] = {
    "22023": InvalidInput,
    "PF001": VersionConflict,
    "PF002": InsufficientCash,
    "PF003": InsufficientPosition,
    "PF004": PortfolioNotFound,
    "PF005": RequestIdReused,
    "PF006": PositionAlreadyOpen,
    "PF007": InstrumentHeld,
    "PF008": ClosingMarkMissing,
    "42501": NotPermitted,
    "55P03": LockTimeout,
    "40001": TransientConflict,
    "40P01": TransientConflict,
}

RETRYABLE_SQLSTATES = frozenset({"40001", "40P01", "55P03"})

# The ledger's answers about a request itself: refusals that its arguments alone decide,
# or that the ledger gives only after looking the request id up (a request that had
# already committed would be answered with its stored result instead). To a request
# whose earlier attempt may have committed, only these say that nothing changed. Any
# other error of a resend (a lock timeout, a conflict, a read-only server during a
# failover, a refused permission that may have been revoked since) says nothing about
# that attempt.
ANSWERS_ABOUT_THE_REQUEST: tuple[type[PortfolioError], ...] = (
    InvalidInput,
    VersionConflict,
    InsufficientCash,
    InsufficientPosition,
    PortfolioNotFound,
    RequestIdReused,
    PositionAlreadyOpen,
)

_VERSIONS = re.compile(r"expected version (\d+), found version (\d+)")
# The SQL functions name their arguments p_quantity, p_price ...; the client's callers
# know them as quantity, price ...
_SQL_ARGUMENT = re.compile(r"\bp_([a-z][a-z_]*)")


def _python_names(text: str | None) -> str | None:
    return None if text is None else _SQL_ARGUMENT.sub(r"\1", text)


def _amount_after(label: str, *texts: str | None) -> Decimal | None:
    pattern = re.compile(rf"\b{label} (-?[0-9]+(?:\.[0-9]+)?)")
    for text in texts:
        if text and (match := pattern.search(text)):
            return Decimal(match.group(1))
    return None


def error_from_sqlstate(
    sqlstate: str | None,
    message: str,
    *,
    detail: str | None = None,
    hint: str | None = None,
    portfolio_id: int | None = None,
) -> PortfolioError:
    """The client exception for a SQLSTATE (from a raised error or a batch result row)."""
    message = _python_names(message) or message
    detail, hint = _python_names(detail), _python_names(hint)
    if sqlstate is None:
        return ConnectionLost(message, portfolio_id=portfolio_id)
    cls = _BY_SQLSTATE.get(sqlstate)
    if cls is None and sqlstate.startswith("22"):
        cls = InvalidInput  # other data exceptions: numeric overflow, bad text, ...
    if cls is VersionConflict:
        match = _VERSIONS.search(detail or "") or _VERSIONS.search(message)
        return VersionConflict(
            message,
            portfolio_id=portfolio_id,
            expected_version=int(match.group(1)) if match else None,
            found_version=int(match.group(2)) if match else None,
            detail=detail,
            hint=hint,
        )
    if cls is None:
        if sqlstate.startswith("08") or sqlstate.startswith("57P"):
            cls = ConnectionLost
        else:
            cls = DatabaseError
    return cls(message, portfolio_id=portfolio_id, sqlstate=sqlstate, detail=detail, hint=hint)


def error_from_database(exc: psycopg.Error, *, portfolio_id: int | None = None) -> PortfolioError:
    """The client exception for a psycopg error: raised by the server (it has a SQLSTATE),
    by the network (an OperationalError without one), or by psycopg before sending."""
    if exc.sqlstate is None and not isinstance(exc, psycopg.OperationalError):
        # Refused by psycopg itself: nothing was sent.
        cls = InvalidInput if isinstance(exc, psycopg.DataError) else DatabaseError
        return cls(str(exc), portfolio_id=portfolio_id)
    return error_from_sqlstate(
        exc.sqlstate,
        exc.diag.message_primary or str(exc),
        detail=exc.diag.message_detail,
        hint=exc.diag.message_hint,
        portfolio_id=portfolio_id,
    )


@contextmanager
def wrap_exceptions(*, portfolio_id: int | None = None) -> Iterator[None]:
    """Turn psycopg and pool errors into this module's classes."""
    try:
        yield
    except psycopg_pool.PoolTimeout as exc:
        raise ConnectionUnavailable(str(exc), portfolio_id=portfolio_id, pool_timeout=True) from exc
    except psycopg.Error as exc:
        raise error_from_database(exc, portfolio_id=portfolio_id) from exc
