"""When a commit counts as acknowledged under synchronous replication.

A commit's wait for the synchronous standby can be cancelled (``pg_cancel_backend``, a
client-side cancel) or cut short by a terminated backend. PostgreSQL then still reports
success, with a WARNING ("canceling wait for synchronous replication ...", detail "The
transaction has already committed locally, but might not have been replicated to the
standby"), although no standby confirmed it: after a failover it may be gone. The
transport watches each call for that warning (:func:`watching`) and turns it into
:class:`~pgportfolio.errors.ReplicationUnconfirmed`, an unknown outcome.

Resolving an unknown outcome by request id has the same hole: the answer "already
applied" read from a primary proves only that the primary has it. So an attempt made in
doubt (:func:`resolving`) is followed, on the same connection, by :data:`BARRIER`: a
commit that has a transaction id, which waits for the synchronous standby like any
write. Its WAL comes after the earlier commit on that server, so once a standby
confirmed the barrier it has the earlier commit too; if the barrier's wait is cancelled
in turn, the outcome stays unknown.

The warning is matched on PostgreSQL's English text: a server with a translated
``lc_messages`` is not recognized (docs/operations.md).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

from psycopg.errors import Diagnostic

from pgportfolio.errors import ReplicationUnconfirmed

# A commit with a transaction id: it writes a commit record and waits for the standby.
# On a standby (no transaction ids there, and nothing to wait for) it does nothing: what a
# standby answers, it has replayed.
BARRIER = "SELECT CASE WHEN NOT pg_is_in_recovery() THEN pg_current_xact_id() END"

# syncrep.c: "canceling wait for synchronous replication due to user request" and
# "canceling the wait for synchronous replication and terminating connection due to
# administrator command"; both carry the "committed locally" detail.
_MESSAGE_MARK = "wait for synchronous replication"
_DETAIL_MARK = "committed locally"

_resolving: ContextVar[bool] = ContextVar("pgportfolio_resolving", default=False)


def is_cancelled_sync_wait(diag: Diagnostic) -> bool:
    message = diag.message_primary or ""
    detail = diag.message_detail or ""
    return _MESSAGE_MARK in message or _DETAIL_MARK in detail


class SyncRepWatch:
    """A notice handler that remembers a cancelled synchronous-replication wait."""

    def __init__(self) -> None:
        self.warning: Diagnostic | None = None

    def __call__(self, diag: Diagnostic) -> None:
        if is_cancelled_sync_wait(diag):
            self.warning = diag

    def check(self, portfolio_id: int | None) -> None:
        """Raise ReplicationUnconfirmed if the warning came."""
        if self.warning is not None:
            raise ReplicationUnconfirmed(
                "the commit was not confirmed by a synchronous standby (PostgreSQL: "
                f"{self.warning.message_primary}): it may be on the primary only",
                portfolio_id=portfolio_id,
            )


@contextlib.contextmanager
def watching(conn: Any) -> Iterator[SyncRepWatch]:
    """Watch ``conn`` (a psycopg connection, sync or async) for the warning."""
    watch = SyncRepWatch()
    conn.add_notice_handler(watch)
    try:
        yield watch
    finally:
        conn.remove_notice_handler(watch)


@contextlib.contextmanager
def resolving(in_doubt: bool) -> Iterator[None]:
    """Mark the attempts made in this context as resolving an outcome in doubt (the
    retry runner, per attempt; ``find_request``, whose answer is such a resolution)."""
    token = _resolving.set(in_doubt)
    try:
        yield
    finally:
        _resolving.reset(token)


def needs_barrier() -> bool:
    """Whether the current attempt resolves an outcome in doubt (see the module doc)."""
    return _resolving.get()
