"""A step driver for deterministic interleavings of several real sessions.

A schedule is a list of :class:`Step`. Each step runs one statement in one named session
(a psycopg connection of its own) and says what must happen:

- ``expect=OK`` or ``expect="error:PF001"``: the statement completes with that outcome
  **without waiting for a lock** (unless ``waits=True``, for a deadlock victim).
- ``expect=BLOCKS``: the statement must end up waiting for a lock held by another
  session of the schedule. The driver proves it from ``pg_locks`` (a lock with
  ``granted = false`` for that backend, and a session of the schedule among its
  ``pg_blocking_pids``) and moves on while it waits.

Only waits on sessions of the schedule count: the server may be shared, and a moment's
wait behind another database's client (the notify queue lock at COMMIT, say) is not
part of any interleaving.
- :func:`resume` waits for a blocked statement to finish and checks its outcome.
- :func:`still_blocked` checks that a blocked statement is still waiting, and on whom.

Every statement runs in a thread, so the driver can watch it from its own observer
connection; nothing is ever synchronised with a sleep: the driver polls ``pg_locks``
until the statement either waits or finishes. A statement that should not wait and
waits anyway is cancelled (``pg_cancel_backend`` on that session only) after
``grace`` seconds, and the deviation is recorded, so a broken schedule fails instead of
hanging.

The driver does not raise on a deviation. It records every step in a
:class:`Transcript` (outcome, rows, SQLSTATE, DETAIL, the lock it waited on and on whom)
and lists the deviations in :meth:`Transcript.problems`, so the same schedule serves as
a proof against the real functions and as a negative control against a broken copy.

Sessions are autocommit by default, so ``BEGIN`` / ``COMMIT`` / ``ROLLBACK`` steps are
sent as written and transaction boundaries are exactly those of the schedule. A session
opened with ``autocommit=False`` gets psycopg's implicit transactions instead; there the
bare keywords ``BEGIN`` (a no-op), ``COMMIT`` and ``ROLLBACK`` (``commit()`` and
``rollback()``) are mapped, and any other statement is sent as written.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import psycopg

OK = "ok"
BLOCKS = "blocks"
BLOCKED = "blocked"  # the outcome of a BLOCKS step until it is resumed

# How often the observer looks at pg_locks while a statement runs.
POLL_SECONDS = 0.005

Params = Sequence[Any] | Mapping[str, Any] | None


def error(sqlstate: str) -> str:
    """The expectation (and outcome) of a statement failing with ``sqlstate``."""
    return f"error:{sqlstate}"


@dataclass(frozen=True)
class Session:
    """How to open one named session. ``settings`` are set for the session on connect
    (``set_config(name, value, false)``, as ``SET`` does)."""

    autocommit: bool = True
    settings: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Step:
    session: str
    sql: str | None  # None: resume (or check) the session's blocked statement
    params: Params = None
    expect: str = OK
    waits: bool = False  # may wait for a lock before completing (a deadlock victim)
    blocked_by: tuple[str, ...] | None = None  # BLOCKS / still_blocked: who holds it up
    check_only: bool = False  # still_blocked: look, do not wait for completion
    label: str | None = None


def step(
    session: str,
    statement: str,
    params: Params = None,
    *,
    expect: str = OK,
    waits: bool = False,
    blocked_by: Iterable[str] | None = None,
    label: str | None = None,
) -> Step:
    return Step(
        session,
        statement,
        params,
        expect,
        waits,
        None if blocked_by is None else tuple(sorted(blocked_by)),
        False,
        label,
    )


def resume(
    session: str, *, expect: str = OK, waits: bool = False, label: str | None = None
) -> Step:
    """Wait for the session's blocked statement to finish; check its outcome."""
    return Step(session, None, None, expect, waits, None, False, label)


def still_blocked(
    session: str, *, blocked_by: Iterable[str] | None = None, label: str | None = None
) -> Step:
    """Check that the session's blocked statement is still waiting (and on whom)."""
    names = None if blocked_by is None else tuple(sorted(blocked_by))
    return Step(session, None, None, BLOCKS, False, names, True, label)


@dataclass(frozen=True)
class LockWait:
    """What a waiting session waits for, as ``pg_locks`` shows it."""

    locktype: str  # of the lock not granted: transactionid, tuple, relation, ...
    mode: str
    relation: str | None  # for relation and tuple locks
    row: tuple[str, int, int] | None  # (relation, page, tuple) of the tuple lock in play
    xact_of: str | None  # the session whose transaction id is awaited (transactionid waits)
    blocked_by: tuple[str, ...]  # pg_blocking_pids as session names ("pid N" if not ours)

    def describe(self) -> str:
        where = f" on row {self.row[0]}({self.row[1]},{self.row[2]})" if self.row else ""
        whose = f" of {self.xact_of}" if self.xact_of else ""
        return f"{self.locktype}{whose} {self.mode}{where}, blocked by {', '.join(self.blocked_by)}"


@dataclass
class StepRecord:
    index: int
    session: str
    label: str
    expect: str
    outcome: str = BLOCKED  # ok or error:<SQLSTATE>; blocked while it waits
    rows: list[tuple[Any, ...]] = field(default_factory=list)
    columns: list[str] = field(default_factory=list)
    message: str | None = None
    detail: str | None = None
    waited: LockWait | None = None  # the lock wait observed while this step ran
    elapsed: float = 0.0
    problems: list[str] = field(default_factory=list)

    @property
    def sqlstate(self) -> str | None:
        return self.outcome.removeprefix("error:") if self.outcome.startswith("error:") else None

    def one(self) -> dict[str, Any]:
        """The first row as a dict (the step must have returned one)."""
        if not self.rows:
            raise AssertionError(f"step {self.index} ({self.label}) returned no row")
        return dict(zip(self.columns, self.rows[0], strict=True))

    def line(self) -> str:
        text = f"{self.index:>2} {self.session}: {self.label} -> {self.outcome}"
        if self.detail:
            text += f" ({self.detail})"
        if self.waited is not None:
            text += f" [waited: {self.waited.describe()}]"
        return text


@dataclass
class Transcript:
    records: list[StepRecord] = field(default_factory=list)

    def problems(self) -> list[str]:
        return [problem for record in self.records for problem in record.problems]

    def by_label(self, label: str) -> StepRecord:
        found = [record for record in self.records if record.label == label]
        if len(found) != 1:
            raise KeyError(f"{len(found)} steps labelled {label!r}")
        return found[0]

    def outcomes(self) -> list[tuple[str, str, str]]:
        return [(record.session, record.label, record.outcome) for record in self.records]

    def sqlstates(self) -> set[str]:
        return {record.sqlstate for record in self.records if record.sqlstate is not None}

    def render(self) -> str:
        return "\n".join(record.line() for record in self.records)


class _Running:
    """A statement running in a thread on one session's connection."""

    def __init__(self, conn: psycopg.Connection[Any], statement: str, params: Params) -> None:
        self.finished = threading.Event()
        self.started = time.monotonic()
        self.outcome = BLOCKED
        self.rows: list[tuple[Any, ...]] = []
        self.columns: list[str] = []
        self.message: str | None = None
        self.detail: str | None = None
        self._conn = conn
        self._statement = statement
        self._params = params
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            keyword = self._statement.strip().upper()
            if not self._conn.autocommit and keyword in ("COMMIT", "ROLLBACK", "BEGIN"):
                if keyword == "COMMIT":
                    self._conn.commit()
                elif keyword == "ROLLBACK":
                    self._conn.rollback()
            else:
                cursor = self._conn.execute(self._statement.encode(), self._params)
                if cursor.description is not None:
                    self.columns = [column.name for column in cursor.description]
                    self.rows = cursor.fetchall()
            self.outcome = OK
        except psycopg.Error as exc:
            self.outcome = error(exc.sqlstate or "?????")
            self.message = exc.diag.message_primary
            self.detail = exc.diag.message_detail
        finally:
            self.finished.set()

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)


class Interleaving:
    """N named sessions on one database, driven step by step. Use as a context manager:
    on exit every statement still waiting is cancelled and every session is closed (an
    open transaction is rolled back by the server when its session ends)."""

    def __init__(
        self,
        conninfo: str,
        sessions: Mapping[str, Session] | Iterable[str],
        *,
        settings: Mapping[str, str] | None = None,
        grace: float = 0.5,
        timeout: float = 15.0,
    ) -> None:
        specs = (
            dict(sessions)
            if isinstance(sessions, Mapping)
            else {name: Session() for name in sessions}
        )
        self.conninfo = conninfo
        self.grace = grace
        self.timeout = timeout
        self.transcript = Transcript()
        self._common = dict(settings or {})
        self._conns: dict[str, psycopg.Connection[Any]] = {}
        self._running: dict[str, tuple[_Running, StepRecord]] = {}
        self.observer: psycopg.Connection[Any] = psycopg.connect(conninfo, autocommit=True)
        try:
            for name, spec in specs.items():
                conn = psycopg.connect(
                    conninfo, autocommit=spec.autocommit, application_name=f"interleave:{name}"
                )
                self._conns[name] = conn
                for key, value in {**self._common, **spec.settings}.items():
                    conn.execute("SELECT set_config(%s, %s, false)", (key, value))
                if not spec.autocommit:
                    conn.commit()
        except BaseException:
            self.close()
            raise

    # --- lifecycle ---------------------------------------------------------------------

    def __enter__(self) -> Interleaving:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        try:
            for name, (running, record) in list(self._running.items()):
                self._cancel(name, running)
                self._finish(record, running)
                record.problems.append(
                    f"step {record.index} ({name}: {record.label}) was never resumed; cancelled"
                )
        finally:
            self._running.clear()
            for conn in self._conns.values():
                conn.close()
            self.observer.close()

    # --- introspection -----------------------------------------------------------------

    def pid(self, name: str) -> int:
        return self._conns[name].info.backend_pid

    def connection(self, name: str) -> psycopg.Connection[Any]:
        """A session's connection, for a test's own statements between steps. Never use
        it while that session has a statement running."""
        if name in self._running:
            raise RuntimeError(f"session {name} has a statement running")
        return self._conns[name]

    def lock_wait(self, name: str) -> LockWait | None:
        """What session ``name`` is waiting for right now, or None."""
        return self._lock_wait(self.pid(name))

    def _names(self) -> dict[int, str]:
        return {conn.info.backend_pid: name for name, conn in self._conns.items()}

    def _lock_wait(self, pid: int) -> LockWait | None:
        row = self.observer.execute(
            """
            SELECT l.locktype, l.mode, l.relation::regclass::text,
                   l.page, l.tuple, l.transactionid::text, pg_blocking_pids(l.pid),
                   (SELECT array[t.relation::regclass::text, t.page::text, t.tuple::text]
                      FROM pg_locks AS t
                     WHERE t.pid = l.pid AND t.locktype = 'tuple' AND t.granted
                     LIMIT 1)
            FROM pg_locks AS l
            WHERE l.pid = %s AND NOT l.granted
            """,
            (pid,),
        ).fetchone()
        if row is None:
            return None
        locktype, mode, relation, page, tup, xid, blockers, held_tuple = row
        names = self._names()
        if not any(blocker in names for blocker in blockers or ()):
            # No blocker (the holder went away between the two looks), or only other
            # clients of the server: not part of the schedule. For example, COMMIT of a
            # transaction that sent NOTIFY takes the cluster-wide notify queue lock
            # (locktype 'object', AccessExclusiveLock) and may queue for a moment behind
            # commits in other databases.
            return None
        xact_of = None
        if xid is not None:
            owner = self.observer.execute(
                "SELECT pid FROM pg_stat_activity WHERE backend_xid::text = %s", (xid,)
            ).fetchone()
            if owner is not None:
                xact_of = names.get(owner[0], f"pid {owner[0]}")
        tuple_row: tuple[str, int, int] | None = None
        if locktype == "tuple":
            tuple_row = (relation, page, tup)
        elif held_tuple is not None:
            tuple_row = (held_tuple[0], int(held_tuple[1]), int(held_tuple[2]))
        return LockWait(
            locktype=locktype,
            mode=mode,
            relation=relation,
            row=tuple_row,
            xact_of=xact_of,
            blocked_by=tuple(sorted(names.get(b, f"pid {b}") for b in blockers)),
        )

    # --- running steps -----------------------------------------------------------------

    def run(self, schedule: Iterable[Step]) -> Transcript:
        for item in schedule:
            self.do(item)
        return self.transcript

    def do(self, item: Step) -> StepRecord:
        if item.session not in self._conns:
            raise KeyError(f"no session {item.session!r}")
        index = len(self.transcript.records) + 1
        if item.sql is None:
            return self._resume(index, item)
        if item.session in self._running:
            raise RuntimeError(f"session {item.session} already has a statement running")
        label = item.label or " ".join(item.sql.split())[:80]
        record = StepRecord(index, item.session, label, item.expect)
        self.transcript.records.append(record)
        running = _Running(self._conns[item.session], item.sql, item.params)
        if item.expect == BLOCKS:
            self._until_blocked(item, record, running)
        else:
            self._until_finished(item, record, running)
        return record

    def _resume(self, index: int, item: Step) -> StepRecord:
        entry = self._running.get(item.session)
        if entry is None:
            raise RuntimeError(f"session {item.session} has no blocked statement")
        running, blocked = entry
        verb = "still blocked" if item.check_only else "resume"
        label = item.label or f"<{verb}: {blocked.label}>"
        record = StepRecord(index, item.session, label, item.expect)
        self.transcript.records.append(record)
        if item.check_only:
            self._until_blocked(item, record, running, keep=blocked)
        else:
            del self._running[item.session]
            self._until_finished(item, record, running)
        return record

    def _until_blocked(
        self, item: Step, record: StepRecord, running: _Running, keep: StepRecord | None = None
    ) -> None:
        pid = self.pid(item.session)
        deadline = time.monotonic() + self.timeout
        while not running.finished.wait(POLL_SECONDS):
            wait = self._lock_wait(pid)
            if wait is not None:
                record.waited = wait
                self._running[item.session] = (running, keep or record)
                if item.blocked_by is not None and wait.blocked_by != item.blocked_by:
                    record.problems.append(
                        f"step {record.index} ({item.session}: {record.label}) is blocked by "
                        f"{', '.join(wait.blocked_by)}, expected {', '.join(item.blocked_by)}"
                    )
                return
            if time.monotonic() > deadline:
                self._cancel(item.session, running)
                break
        self._running.pop(item.session, None)
        self._finish(record, running)
        record.problems.append(
            f"step {record.index} ({item.session}: {record.label}): expected it to block, "
            f"but it finished: {record.outcome}"
            + (f" ({record.message}: {record.detail})" if record.message else "")
        )

    def _until_finished(self, item: Step, record: StepRecord, running: _Running) -> None:
        pid = self.pid(item.session)
        deadline = time.monotonic() + self.timeout
        waiting_since: float | None = None
        cancelled = None
        while not running.finished.wait(POLL_SECONDS):
            wait = self._lock_wait(pid)
            now = time.monotonic()
            if wait is not None:
                record.waited = wait
                waiting_since = waiting_since or now
                if not item.waits and now - waiting_since > self.grace:
                    cancelled = f"waited {now - waiting_since:.1f}s on {wait.describe()}"
                    self._cancel(item.session, running)
                    break
            if now > deadline:
                cancelled = f"did not finish within {self.timeout:.0f}s"
                self._cancel(item.session, running)
                break
        self._finish(record, running)
        where = f"{item.session}: {record.label}"
        if cancelled is not None:
            record.problems.append(f"step {record.index} ({where}) {cancelled}; cancelled")
        elif record.waited is not None and not item.waits:
            record.problems.append(
                f"step {record.index} ({where}) should not wait, but waited on "
                f"{record.waited.describe()}"
            )
        if record.outcome != item.expect:
            got = record.outcome
            if record.message:
                got += f" ({record.message}" + (f": {record.detail}" if record.detail else "") + ")"
            record.problems.append(
                f"step {record.index} ({where}): expected {item.expect}, got {got}"
            )

    def _finish(self, record: StepRecord, running: _Running) -> None:
        running.join(self.timeout)
        if not running.finished.is_set():
            raise RuntimeError(f"step {record.index} did not stop after cancel")
        record.outcome = running.outcome
        record.rows = running.rows
        record.columns = running.columns
        record.message = running.message
        record.detail = running.detail
        record.elapsed = time.monotonic() - running.started

    def _cancel(self, name: str, running: _Running) -> None:
        """Cancel the statement of our own session ``name`` (and only that backend)."""
        deadline = time.monotonic() + self.timeout
        while not running.finished.is_set() and time.monotonic() < deadline:
            self.observer.execute("SELECT pg_cancel_backend(%s)", (self.pid(name),))
            running.finished.wait(0.1)
