"""Apply the numbered migrations in ``migrations/`` to a database, once each.

Every migration is a file ``NNNN_lower_snake_name.sql``; the numbers run 1..N without
gaps. Applied migrations are recorded, with the sha256 of their bytes, in
``pgportfolio_meta.schema_migrations``. A migration that has been applied is never
edited: the runner refuses to go on when an applied file's checksum has changed, and
the fix is a new numbered migration.

Each pending migration runs in its own transaction together with its bookkeeping row,
so it is applied entirely or not at all. A session-level advisory lock serialises
migrators on the same database: a second one waits, then finds nothing left to do. The
wait is bounded (``lock_wait``): any role can take any advisory lock key, so a session
that holds ours and never lets go must not hang a deploy; the error names that session.

:func:`migration_status` lists applied and pending migrations with their checksums, and
:func:`pending_sql` returns the SQL that :func:`migrate` would run, without running it.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import psycopg
from psycopg import sql
from psycopg.rows import TupleRow

from pgportfolio.schema import migrations_dir

__all__ = [
    "LOCK_KEY",
    "MIGRATION_NAME",
    "BadMigrationNames",
    "ChecksumMismatch",
    "Migration",
    "MigrationError",
    "MigrationLockHolder",
    "MigrationLockTimeout",
    "MigrationState",
    "MigrationStatus",
    "UnknownAppliedMigration",
    "applied_migrations",
    "describe_database",
    "load_migrations",
    "migrate",
    "migration_status",
    "pending_sql",
]

MIGRATION_NAME = re.compile(r"^(\d{4})_([a-z0-9]+(?:_[a-z0-9]+)*)\.sql$")

META_SCHEMA = "pgportfolio_meta"
MIGRATIONS_TABLE = f"{META_SCHEMA}.schema_migrations"


def _lock_key(name: str) -> int:
    """A stable signed 64-bit advisory lock key derived from a name."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


LOCK_KEY = _lock_key("pgportfolio.migrate")


@dataclass(frozen=True)
class Migration:
    number: int
    name: str
    """The file name without ``.sql``, e.g. ``0001_initial``."""
    path: Path
    checksum: str
    """sha256 (hex) of the file's bytes."""


class MigrationError(Exception):
    """Base class of every error the migration runner raises on purpose."""


class BadMigrationNames(MigrationError):
    """The migrations directory holds a misnamed file, a duplicate number or a gap."""


class ChecksumMismatch(MigrationError):
    """An applied migration's file has changed since it was applied."""

    def __init__(self, mismatches: list[tuple[str, str, str]]) -> None:
        self.mismatches = mismatches
        lines = [
            f"{name}.sql was changed after it was applied: "
            f"recorded checksum {recorded}, current checksum {current}"
            for name, recorded, current in mismatches
        ]
        lines.append(
            "Applied migrations must never be edited: restore the file as it was applied "
            "and add a new numbered migration for the change."
        )
        super().__init__("\n".join(lines))


class UnknownAppliedMigration(MigrationError):
    """The database records a migration that is not in the migrations directory."""

    def __init__(self, unknown: list[str], directory: Path) -> None:
        self.unknown = unknown
        super().__init__(
            f"the database records migration(s) {', '.join(unknown)} that are not in "
            f"{directory}; is this checkout older than the database, or was a file renamed?"
        )


@dataclass(frozen=True)
class MigrationLockHolder:
    """A session holding the migration lock key, from pg_locks and pg_stat_activity.
    Fields other than ``pid`` are None where the server hides them from this role."""

    pid: int
    user: str | None
    application_name: str | None
    backend_start: datetime.datetime | None
    client_addr: str | None
    state: str | None

    def __str__(self) -> str:
        started = f"{self.backend_start:%Y-%m-%d %H:%M:%S%z}" if self.backend_start else "unknown"
        return (
            f"pid {self.pid} (user {self.user or 'unknown'}, "
            f"application_name {self.application_name or ''!r}, "
            f"client {self.client_addr or 'local socket'}, backend started {started}, "
            f"state {self.state or 'unknown'})"
        )


class MigrationLockTimeout(MigrationError):
    """Another session held the migration lock for longer than ``lock_wait``."""

    def __init__(self, database: str, waited: float, holders: list[MigrationLockHolder]) -> None:
        self.database = database
        self.waited = waited
        self.holders = holders
        who = "; ".join(map(str, holders)) or "a session that has released it since"
        super().__init__(
            f"the migration lock (advisory lock key {LOCK_KEY}) on {database} is held by "
            f"{who}; gave up after {waited:g}s. If that is a migration, let it finish and "
            "run again; if not, end that session (pg_terminate_backend(pid))."
        )


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def load_migrations(directory: Path | None = None) -> list[Migration]:
    """The migrations in ``directory`` (default: :func:`migrations_dir`), in order.

    Raises :class:`BadMigrationNames` when a file does not match :data:`MIGRATION_NAME`,
    two files share a number, or the numbers are not exactly 1..N.
    """
    directory = migrations_dir() if directory is None else directory
    if not directory.is_dir():
        raise MigrationError(f"migrations directory {directory} does not exist")

    problems: list[str] = []
    by_number: dict[int, list[Path]] = {}
    for path in sorted(directory.iterdir()):
        if path.is_dir():
            continue
        match = MIGRATION_NAME.fullmatch(path.name)
        if match is None:
            problems.append(
                f"{path.name}: not a migration name (expected NNNN_lower_snake_case.sql, "
                "e.g. 0002_add_index.sql)"
            )
            continue
        by_number.setdefault(int(match.group(1)), []).append(path)

    for number, paths in sorted(by_number.items()):
        if len(paths) > 1:
            names = ", ".join(p.name for p in paths)
            problems.append(f"number {number:04d} is used by more than one file: {names}")
    if by_number:
        expected = set(range(1, max(by_number) + 1))
        missing = sorted(expected - by_number.keys())
        if missing:
            problems.append(
                "numbers must run 1..N without gaps; missing: "
                + ", ".join(f"{n:04d}" for n in missing)
            )
        if 0 in by_number:
            problems.append("numbering starts at 0001, not 0000")
    if problems:
        raise BadMigrationNames(f"bad migrations in {directory}:\n  " + "\n  ".join(problems))

    return [
        Migration(
            number=number,
            name=paths[0].name.removesuffix(".sql"),
            path=paths[0],
            checksum=_sha256(paths[0].read_bytes()),
        )
        for number, paths in sorted(by_number.items())
    ]


def _bookkeeping_exists(conn: psycopg.Connection[TupleRow]) -> bool:
    row = conn.execute(
        "SELECT pg_catalog.to_regclass(%s) IS NOT NULL", (MIGRATIONS_TABLE,)
    ).fetchone()
    return bool(row and row[0])


def _read_applied(conn: psycopg.Connection[TupleRow]) -> list[tuple[int, str, str]]:
    rows = conn.execute(
        "SELECT number, name, checksum FROM pgportfolio_meta.schema_migrations ORDER BY number"
    ).fetchall()
    return [(int(n), str(name), str(checksum)) for n, name, checksum in rows]


def applied_migrations(conninfo: str) -> list[tuple[str, str]]:
    """``(name, checksum)`` of every applied migration, in order; ``[]`` if never migrated."""
    with psycopg.connect(conninfo, autocommit=True) as conn:
        if not _bookkeeping_exists(conn):
            return []
        return [(name, checksum) for _, name, checksum in _read_applied(conn)]


# Run once, in one transaction, by the first migration of a database; printed by --sql.
_BOOKKEEPING_DDL: tuple[str, ...] = (
    "CREATE SCHEMA IF NOT EXISTS pgportfolio_meta",
    "REVOKE ALL ON SCHEMA pgportfolio_meta FROM PUBLIC",
    """CREATE TABLE IF NOT EXISTS pgportfolio_meta.schema_migrations (
    number int PRIMARY KEY,
    name text NOT NULL,
    checksum text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT pg_catalog.now()
)""",
    "REVOKE ALL ON pgportfolio_meta.schema_migrations FROM PUBLIC",
    "COMMENT ON TABLE pgportfolio_meta.schema_migrations IS "
    "'Migrations applied by pgportfolio migrate. Never edit by hand.'",
)

_RECORD = (
    "INSERT INTO pgportfolio_meta.schema_migrations (number, name, checksum) "
    "VALUES ({number}, {name}, {checksum})"
)
_SET_LOCK_TIMEOUT = "SELECT pg_catalog.set_config('lock_timeout', {lock_timeout}, true)"


def _ensure_bookkeeping(conn: psycopg.Connection[TupleRow]) -> None:
    """Create the bookkeeping schema and table unless they exist (under the lock)."""
    if _bookkeeping_exists(conn):
        return
    with conn.transaction():
        for statement in _BOOKKEEPING_DDL:
            conn.execute(statement)


def _check_applied(
    applied: list[tuple[int, str, str]], migrations: list[Migration], directory: Path
) -> None:
    """Refuse unless every applied migration is in the directory, unchanged, and the
    applied ones are exactly the first k of the directory."""
    by_number = {m.number: m for m in migrations}
    unknown = [
        name
        for number, name, _ in applied
        if number not in by_number or by_number[number].name != name
    ]
    if unknown:
        raise UnknownAppliedMigration(unknown, directory)
    mismatches = [
        (name, recorded, by_number[number].checksum)
        for number, name, recorded in applied
        if by_number[number].checksum != recorded
    ]
    if mismatches:
        raise ChecksumMismatch(mismatches)
    numbers = [number for number, _, _ in applied]
    if numbers != list(range(1, len(numbers) + 1)):
        raise MigrationError(
            "the applied migrations are not a contiguous prefix 0001..NNNN: "
            + ", ".join(f"{n:04d}" for n in numbers)
        )


def _apply_one(conn: psycopg.Connection[TupleRow], migration: Migration, lock_timeout: str) -> None:
    script = migration.path.read_bytes()
    if _sha256(script) != migration.checksum:
        raise MigrationError(f"{migration.path} changed while migrating; nothing of it was applied")
    with conn.transaction():
        conn.execute(sql.SQL(_SET_LOCK_TIMEOUT).format(lock_timeout=lock_timeout))
        # The row goes in first: the script may SET LOCAL ROLE to a role that may not
        # write the bookkeeping table. Same transaction, so both commit or neither does.
        conn.execute(
            sql.SQL(_RECORD).format(
                number=migration.number, name=migration.name, checksum=migration.checksum
            )
        )
        # bytes and no parameters: sent as one multi-statement script, and a '%' in the
        # SQL is not taken for a placeholder.
        conn.execute(script)
    # Undo any session-level SET a script may have left behind for the next one.
    conn.execute("RESET ROLE")
    conn.execute("RESET ALL")


def describe_database(conn: psycopg.Connection[TupleRow]) -> str:
    """``database "name" on host:port as user``, from the connection itself."""
    info = conn.info
    return f"database {info.dbname!r} on {info.host}:{info.port} as {info.user}"


def _lock_holders(conn: psycopg.Connection[TupleRow]) -> list[MigrationLockHolder]:
    # A bigint advisory key is stored as classid (high 32 bits), objid (low), objsubid 1.
    key = LOCK_KEY & 0xFFFF_FFFF_FFFF_FFFF
    rows = conn.execute(
        """
        SELECT a.pid, a.usename, a.application_name, a.backend_start,
               a.client_addr::text, a.state
          FROM pg_catalog.pg_locks AS l
          JOIN pg_catalog.pg_stat_activity AS a ON a.pid = l.pid
         WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
           AND l.database = (SELECT oid FROM pg_catalog.pg_database
                              WHERE datname = pg_catalog.current_database())
           AND l.classid::bigint = %s AND l.objid::bigint = %s
           AND l.pid <> pg_catalog.pg_backend_pid()
         ORDER BY a.pid
        """,
        (key >> 32, key & 0xFFFF_FFFF),
    ).fetchall()
    return [MigrationLockHolder(*row) for row in rows]


def _take_lock(
    conn: psycopg.Connection[TupleRow], lock_wait: float | None, say: Callable[[str], None]
) -> None:
    """The migration lock, waiting at most ``lock_wait`` seconds (None: for ever)."""
    row = conn.execute("SELECT pg_catalog.pg_try_advisory_lock(%s)", (LOCK_KEY,)).fetchone()
    if row and row[0]:
        return
    holders = ", ".join(f"pid {h.pid}" for h in _lock_holders(conn)) or "another session"
    bound = "" if lock_wait is None else f" (at most {lock_wait:g}s)"
    say(f"the migration lock is held by {holders}; waiting for it{bound}")
    if lock_wait is not None and lock_wait <= 0:
        raise MigrationLockTimeout(describe_database(conn), 0, _lock_holders(conn))
    # lock_timeout bounds the wait in the server's own queue (0 would mean no bound).
    timeout = "0" if lock_wait is None else f"{max(1, round(lock_wait * 1000))}ms"
    try:
        with conn.transaction():
            conn.execute("SELECT pg_catalog.set_config('lock_timeout', %s, true)", (timeout,))
            # Session-level: still held after this transaction commits.
            conn.execute("SELECT pg_catalog.pg_advisory_lock(%s)", (LOCK_KEY,))
    except psycopg.errors.LockNotAvailable:
        assert lock_wait is not None
        raise MigrationLockTimeout(
            describe_database(conn), lock_wait, _lock_holders(conn)
        ) from None


def migrate(
    conninfo: str,
    directory: Path | None = None,
    *,
    lock_timeout: str = "5s",
    lock_wait: float | None = 10.0,
    log: Callable[[str], None] | None = None,
) -> list[str]:
    """Apply every pending migration, in order. Returns the names applied by this call.

    ``lock_timeout`` bounds each lock wait inside a migration (``SET LOCAL``), so that a
    migration blocked by live traffic fails fast instead of queueing everyone behind it.
    ``lock_wait`` bounds, in seconds, the wait for another session holding the migration
    lock (None: no bound); then :class:`MigrationLockTimeout` names that session.
    """

    def say(message: str) -> None:
        if log is not None:
            log(message)

    directory = migrations_dir() if directory is None else directory
    migrations = load_migrations(directory)
    applied_now: list[str] = []

    with psycopg.connect(conninfo, autocommit=True) as conn:
        say(f"migrating {describe_database(conn)}")
        # Refuse a bad lock_timeout before waiting or changing anything.
        with conn.transaction():
            conn.execute("SELECT pg_catalog.set_config('lock_timeout', %s, true)", (lock_timeout,))

        _take_lock(conn, lock_wait, say)
        try:
            _ensure_bookkeeping(conn)
            applied = _read_applied(conn)
            _check_applied(applied, migrations, directory)
            pending = migrations[len(applied) :]
            if not pending:
                say(f"up to date: {len(applied)} migration(s) applied, none pending")
                return applied_now
            for migration in pending:
                say(f"applying {migration.name}")
                started = time.monotonic()
                try:
                    _apply_one(conn, migration, lock_timeout)
                except psycopg.Error as error:
                    error.add_note(f"while applying migration {migration.name}; it was rolled back")
                    raise
                applied_now.append(migration.name)
                say(f"applied {migration.name} in {time.monotonic() - started:.2f}s")
            return applied_now
        finally:
            # Closing the connection releases the lock anyway; do not let a failed
            # unlock hide the error that brought us here.
            with contextlib.suppress(psycopg.Error):
                conn.execute("SELECT pg_catalog.pg_advisory_unlock(%s)", (LOCK_KEY,))


MigrationState = Literal["applied", "pending", "changed", "unknown"]


@dataclass(frozen=True)
class MigrationStatus:
    """One migration as :func:`migration_status` sees it.

    ``applied``: recorded and unchanged; ``pending``: not yet applied; ``changed``:
    applied, but the file's checksum differs from the recorded one; ``unknown``:
    recorded in the database, with no such file in the directory.
    """

    number: int
    name: str
    state: MigrationState
    checksum: str | None
    """sha256 of the file now (None for ``unknown``)."""
    recorded_checksum: str | None
    """sha256 recorded when it was applied (None for ``pending``)."""
    applied_at: datetime.datetime | None


def migration_status(
    conninfo: str, directory: Path | None = None
) -> tuple[str, list[MigrationStatus]]:
    """``(database description, every migration in order)``; reads, changes nothing."""
    migrations = load_migrations(directory)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        database = describe_database(conn)
        recorded: dict[int, tuple[str, str, datetime.datetime]] = {}
        if _bookkeeping_exists(conn):
            for number, name, checksum, applied_at in conn.execute(
                "SELECT number, name, checksum, applied_at"
                " FROM pgportfolio_meta.schema_migrations ORDER BY number"
            ):
                recorded[int(number)] = (str(name), str(checksum), applied_at)
    out: list[MigrationStatus] = []
    for m in migrations:
        row = recorded.pop(m.number, None)
        if row is None:
            out.append(MigrationStatus(m.number, m.name, "pending", m.checksum, None, None))
            continue
        name, checksum, applied_at = row
        if name != m.name:  # the file with this number was renamed: both are listed
            out.append(MigrationStatus(m.number, name, "unknown", None, checksum, applied_at))
            out.append(MigrationStatus(m.number, m.name, "pending", m.checksum, None, None))
            continue
        state: MigrationState = "applied" if checksum == m.checksum else "changed"
        out.append(MigrationStatus(m.number, m.name, state, m.checksum, checksum, applied_at))
    for number, (name, checksum, applied_at) in sorted(recorded.items()):
        out.append(MigrationStatus(number, name, "unknown", None, checksum, applied_at))
    return database, out


def pending_sql(
    conninfo: str, directory: Path | None = None, *, lock_timeout: str = "5s"
) -> tuple[str, list[str], str]:
    """``(database description, pending names, script)``: the SQL :func:`migrate` would
    run on this database now, one transaction per migration, without running it.

    Raises what :func:`migrate` would raise for an edited or unknown applied migration.
    """
    directory = migrations_dir() if directory is None else directory
    migrations = load_migrations(directory)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        database = describe_database(conn)
        has_bookkeeping = _bookkeeping_exists(conn)
        applied = _read_applied(conn) if has_bookkeeping else []
        _check_applied(applied, migrations, directory)
        pending = migrations[len(applied) :]
        parts = [
            f"-- pgportfolio migrate for {database}: {len(pending)} pending migration(s).",
            f"-- It holds advisory lock {LOCK_KEY} (pg_advisory_lock) while it runs these.",
        ]
        if not has_bookkeeping:
            parts += ["", "-- bookkeeping", "BEGIN;", *(f"{s};" for s in _BOOKKEEPING_DDL)]
            parts.append("COMMIT;")
        for m in pending:
            script = m.path.read_text(encoding="utf-8")
            record = sql.SQL(_RECORD).format(number=m.number, name=m.name, checksum=m.checksum)
            set_timeout = sql.SQL(_SET_LOCK_TIMEOUT).format(lock_timeout=lock_timeout)
            parts += [
                "",
                f"-- {m.name} (sha256 {m.checksum})",
                "BEGIN;",
                f"{set_timeout.as_string(conn)};",
                f"{record.as_string(conn)};",
                script.rstrip("\n"),
                "COMMIT;",
                "RESET ROLE;",
                "RESET ALL;",
            ]
    return database, [m.name for m in pending], "\n".join(parts) + "\n"
