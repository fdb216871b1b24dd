"""The migration runner: applies each migration once, refuses edited history, and two
migrators on one database do not race."""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from pgportfolio.migrate import (
    LOCK_KEY,
    MIGRATION_NAME,
    BadMigrationNames,
    ChecksumMismatch,
    Migration,
    MigrationError,
    MigrationLockTimeout,
    UnknownAppliedMigration,
    applied_migrations,
    load_migrations,
    migrate,
    migration_status,
    pending_sql,
)
from pgportfolio.schema import migrations_dir
from tests.conftest import DatabaseFactory, dbname_of

# A conninfo that cannot work: tests that must fail before connecting use it.
UNREACHABLE = "host=/nonexistent/socket/dir dbname=none connect_timeout=1"


def _scalar(conninfo: str, query: str) -> object:
    with psycopg.connect(conninfo, autocommit=True) as conn:
        row = conn.execute(query.encode()).fetchone()
        assert row is not None
        return row[0]


def _migration_rows(conninfo: str) -> list[tuple[int, str, str]]:
    with psycopg.connect(conninfo, autocommit=True) as conn:
        return conn.execute(
            "SELECT number, name, checksum FROM pgportfolio_meta.schema_migrations ORDER BY number"
        ).fetchall()


def _catalog_state(conninfo: str) -> list[tuple[str, str, str]]:
    """Every row of the database's own catalogs with its xmin: any insert, update or
    delete of a catalog row changes this. pg_class is keyed by oid only, because
    VACUUM and ANALYZE update its statistics columns in place (keeping xmin)."""
    catalogs = [
        "pg_namespace",
        "pg_attribute",
        "pg_attrdef",
        "pg_proc",
        "pg_type",
        "pg_constraint",
        "pg_index",
        "pg_trigger",
        "pg_rewrite",
        "pg_description",
        "pg_depend",
        "pg_default_acl",
        "pg_sequence",
        "pg_init_privs",
    ]
    parts = ["SELECT 'pg_class', c.xmin::text, c.oid::text FROM pg_catalog.pg_class AS c"]
    parts += [
        f"SELECT '{name}', t.xmin::text, t::text FROM pg_catalog.{name} AS t" for name in catalogs
    ]
    parts.append(
        "SELECT 'schema_migrations', t.xmin::text, t::text"
        " FROM pgportfolio_meta.schema_migrations AS t"
    )
    with psycopg.connect(conninfo, autocommit=True) as conn:
        rows = conn.execute(" UNION ALL ".join(parts).encode()).fetchall()
    return sorted(rows)


def _copy_migrations(target: Path) -> Path:
    shutil.copytree(migrations_dir(), target)
    return target


def _write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path


# --------------------------------------------------------------------------- applying


def test_fresh_database_gets_schema_and_every_migration_recorded(
    database_factory: DatabaseFactory,
) -> None:
    conninfo = database_factory()
    expected = load_migrations()
    messages: list[str] = []

    applied = migrate(conninfo, log=messages.append)

    assert applied == [m.name for m in expected]
    assert applied_migrations(conninfo) == [(m.name, m.checksum) for m in expected]
    assert [(n, name) for n, name, _ in _migration_rows(conninfo)] == [
        (m.number, m.name) for m in expected
    ]
    assert _scalar(conninfo, "SELECT pg_catalog.to_regnamespace('pgportfolio') IS NOT NULL")
    assert _scalar(conninfo, "SELECT pg_catalog.to_regclass('pgportfolio.portfolios') IS NOT NULL")
    # The bookkeeping schema is closed to PUBLIC.
    assert _scalar(
        conninfo,
        "SELECT NOT pg_catalog.has_schema_privilege('public', 'pgportfolio_meta', 'USAGE')",
    )
    assert any(m.startswith("applying ") for m in messages)


def test_never_migrated_database_has_no_applied_migrations(
    database_factory: DatabaseFactory,
) -> None:
    assert applied_migrations(database_factory()) == []


def test_second_run_applies_nothing_and_changes_no_catalog_row(
    database_factory: DatabaseFactory,
) -> None:
    conninfo = database_factory()
    migrate(conninfo)
    before = _catalog_state(conninfo)
    applied_before = applied_migrations(conninfo)
    messages: list[str] = []

    assert migrate(conninfo, log=messages.append) == []

    assert applied_migrations(conninfo) == applied_before
    assert _catalog_state(conninfo) == before
    assert any("up to date" in m for m in messages)


def test_pending_migrations_are_applied_in_order_after_earlier_ones(
    database_factory: DatabaseFactory, tmp_path: Path
) -> None:
    conninfo = database_factory()
    directory = _copy_migrations(tmp_path / "migrations")
    assert migrate(conninfo, directory) == ["0001_initial"]

    _write(
        directory,
        "0002_add_note.sql",
        "SET LOCAL lock_timeout = '5s';\n"
        "ALTER TABLE pgportfolio.portfolios ADD COLUMN note text;\n",
    )
    # '%' must reach the server as is, not be taken for a placeholder.
    _write(
        directory,
        "0003_percent.sql",
        "SET LOCAL lock_timeout = '5s';\n"
        "COMMENT ON COLUMN pgportfolio.portfolios.note IS '100% free text';\n",
    )
    assert migrate(conninfo, directory) == ["0002_add_note", "0003_percent"]
    assert [n for n, _, _ in _migration_rows(conninfo)] == [1, 2, 3]
    assert (
        _scalar(
            conninfo,
            "SELECT pg_catalog.col_description('pgportfolio.portfolios'::regclass, "
            "(SELECT attnum FROM pg_catalog.pg_attribute WHERE attrelid = "
            "'pgportfolio.portfolios'::regclass AND attname = 'note'))",
        )
        == "100% free text"
    )
    assert migrate(conninfo, directory) == []


# --------------------------------------------------------------------------- refusing


def test_edited_applied_migration_is_refused_and_nothing_new_applied(
    database_factory: DatabaseFactory, tmp_path: Path
) -> None:
    conninfo = database_factory()
    directory = _copy_migrations(tmp_path / "migrations")
    migrate(conninfo, directory)
    recorded = applied_migrations(conninfo)

    edited = directory / "0001_initial.sql"
    edited.write_bytes(edited.read_bytes() + b"\n-- a harmless-looking edit\n")
    _write(
        directory,
        "0002_new_table.sql",
        "SET LOCAL lock_timeout = '5s';\nCREATE TABLE pgportfolio.must_not_exist (x int);\n",
    )
    current = load_migrations(directory)[0].checksum

    with pytest.raises(ChecksumMismatch) as caught:
        migrate(conninfo, directory)

    message = str(caught.value)
    assert "0001_initial.sql" in message
    assert recorded[0][1] in message
    assert current in message
    assert "never be edited" in message
    assert "new" in message
    assert applied_migrations(conninfo) == recorded
    assert _scalar(conninfo, "SELECT pg_catalog.to_regclass('pgportfolio.must_not_exist') IS NULL")


def test_migration_recorded_in_database_but_missing_from_directory_is_refused(
    database_factory: DatabaseFactory, tmp_path: Path
) -> None:
    conninfo = database_factory()
    directory = _copy_migrations(tmp_path / "migrations")
    _write(
        directory,
        "0002_extra.sql",
        "SET LOCAL lock_timeout = '5s';\nCREATE TABLE pgportfolio.extra (x int);\n",
    )
    migrate(conninfo, directory)

    with pytest.raises(UnknownAppliedMigration, match="0002_extra"):
        migrate(conninfo)  # the real directory, which has no 0002


def test_renamed_applied_migration_is_refused(
    database_factory: DatabaseFactory, tmp_path: Path
) -> None:
    conninfo = database_factory()
    directory = _copy_migrations(tmp_path / "migrations")
    migrate(conninfo, directory)
    (directory / "0001_initial.sql").rename(directory / "0001_first.sql")

    with pytest.raises(UnknownAppliedMigration, match="0001_initial"):
        migrate(conninfo, directory)


@pytest.mark.parametrize(
    "script",
    [
        pytest.param("CREATE TABLE pgportfolio.partial_a (x int);\nSELEC 1;\n", id="syntax-error"),
        pytest.param(
            "CREATE TABLE pgportfolio.partial_a (x int);\n"
            "CREATE FUNCTION pgportfolio.partial_f() RETURNS int LANGUAGE sql AS 'SELECT 1';\n"
            "ALTER TABLE pgportfolio.no_such_table ADD COLUMN y int;\n",
            id="runtime-error",
        ),
    ],
)
def test_failing_migration_is_rolled_back_whole_and_not_recorded(
    database_factory: DatabaseFactory, tmp_path: Path, script: str
) -> None:
    conninfo = database_factory()
    directory = _copy_migrations(tmp_path / "migrations")
    _write(directory, "0002_broken.sql", "SET LOCAL lock_timeout = '5s';\n" + script)

    with pytest.raises(psycopg.Error) as caught:
        migrate(conninfo, directory)

    assert any("0002_broken" in note for note in getattr(caught.value, "__notes__", []))
    assert [name for name, _ in applied_migrations(conninfo)] == ["0001_initial"]
    assert _scalar(conninfo, "SELECT pg_catalog.to_regclass('pgportfolio.partial_a') IS NULL")
    assert _scalar(
        conninfo,
        "SELECT NOT EXISTS (SELECT FROM pg_catalog.pg_proc WHERE proname = 'partial_f')",
    )

    # Fixed, it applies on the next run, alone.
    _write(
        directory,
        "0002_broken.sql",
        "SET LOCAL lock_timeout = '5s';\nCREATE TABLE pgportfolio.partial_a (x int);\n",
    )
    assert migrate(conninfo, directory) == ["0002_broken"]


def test_runner_lock_timeout_bounds_lock_waits(
    database_factory: DatabaseFactory, tmp_path: Path
) -> None:
    conninfo = database_factory()
    directory = _copy_migrations(tmp_path / "migrations")
    migrate(conninfo, directory)
    # This test migration leaves lock_timeout to the runner on purpose.
    _write(directory, "0002_blocked.sql", "ALTER TABLE pgportfolio.events ADD COLUMN y int;\n")

    with psycopg.connect(conninfo) as blocker:
        blocker.execute("LOCK TABLE pgportfolio.events IN ACCESS SHARE MODE")
        # statement_timeout only so that a runner that forgot lock_timeout fails, not hangs.
        bounded = make_conninfo(conninfo, options="-c statement_timeout=10s")
        with pytest.raises(psycopg.errors.LockNotAvailable):
            migrate(bounded, directory, lock_timeout="200ms")
        blocker.rollback()

    assert [name for name, _ in applied_migrations(conninfo)] == ["0001_initial"]
    assert migrate(conninfo, directory) == ["0002_blocked"]


def test_invalid_lock_timeout_is_refused_before_anything_is_applied(
    database_factory: DatabaseFactory,
) -> None:
    conninfo = database_factory()
    with pytest.raises(psycopg.errors.InvalidParameterValue):
        migrate(conninfo, lock_timeout="soon'; DROP SCHEMA public; --")
    assert applied_migrations(conninfo) == []
    assert _scalar(conninfo, "SELECT pg_catalog.to_regnamespace('public') IS NOT NULL")


# --------------------------------------------------------------------------- concurrency


def test_two_concurrent_migrators_apply_each_migration_exactly_once(
    database_factory: DatabaseFactory, tmp_path: Path
) -> None:
    conninfo = database_factory()
    directory = _copy_migrations(tmp_path / "migrations")
    # Slow later steps widen the window in which an unlocked runner would collide.
    _write(
        directory,
        "0002_slow.sql",
        "SET LOCAL lock_timeout = '5s';\nSELECT pg_catalog.pg_sleep(0.3);\n"
        "CREATE TABLE pgportfolio.slow_a (x int);\n",
    )
    _write(
        directory,
        "0003_slower.sql",
        "SET LOCAL lock_timeout = '5s';\nSELECT pg_catalog.pg_sleep(0.3);\n"
        "CREATE TABLE pgportfolio.slow_b (x int);\n",
    )
    expected = [m.name for m in load_migrations(directory)]
    barrier = threading.Barrier(2)
    results: dict[int, list[str]] = {}
    errors: dict[int, BaseException] = {}

    def run(index: int) -> None:
        try:
            barrier.wait(timeout=30)
            results[index] = migrate(conninfo, directory)
        except BaseException as error:
            errors[index] = error

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
        assert not thread.is_alive(), "a migrator hung"

    assert errors == {}
    assert sorted(results[0] + results[1]) == sorted(expected)
    assert [] in (results[0], results[1]), "the runner that waited should find nothing to do"
    assert _scalar(conninfo, "SELECT count(*) FROM pgportfolio_meta.schema_migrations") == len(
        expected
    )


# --------------------------------------------------------------------------- naming


@pytest.mark.parametrize(
    ("files", "complaint"),
    [
        pytest.param(["0001_a.sql", "0003_c.sql"], "0002", id="gap"),
        pytest.param(["0002_b.sql"], "0001", id="not-starting-at-0001"),
        pytest.param(["0000_zero.sql", "0001_a.sql"], "0000", id="zero"),
        pytest.param(["0001_a.sql", "0001_b.sql"], "0001_b.sql", id="duplicate-number"),
        pytest.param(["0001_Initial.sql"], "0001_Initial.sql", id="upper-case"),
        pytest.param(["001_a.sql"], "001_a.sql", id="three-digits"),
        pytest.param(["0001-a.sql"], "0001-a.sql", id="dash"),
        pytest.param(["0001_a.SQL"], "0001_a.SQL", id="upper-suffix"),
        pytest.param(["0001_a_.sql"], "0001_a_.sql", id="trailing-underscore"),
        pytest.param(["0001_a__b.sql"], "0001_a__b.sql", id="double-underscore"),
        pytest.param(["0001_a.sql", "0002_b.sql.orig"], "0002_b.sql.orig", id="stray-file"),
        pytest.param(["0001_a.sql", "notes.txt"], "notes.txt", id="not-sql"),
    ],
)
def test_bad_migration_names_are_refused(tmp_path: Path, files: list[str], complaint: str) -> None:
    for name in files:
        _write(tmp_path, name, "SET LOCAL lock_timeout = '5s';\n")

    with pytest.raises(BadMigrationNames, match=re.escape(complaint)):
        load_migrations(tmp_path)
    # migrate() checks the directory before it connects to anything.
    with pytest.raises(BadMigrationNames):
        migrate(UNREACHABLE, tmp_path)


def test_bad_names_is_a_migration_error() -> None:
    assert issubclass(BadMigrationNames, MigrationError)
    assert issubclass(ChecksumMismatch, MigrationError)
    assert issubclass(UnknownAppliedMigration, MigrationError)


def test_load_migrations_reads_number_name_and_checksum(tmp_path: Path) -> None:
    _write(tmp_path, "0002_second.sql", "SELECT 2;\n")
    _write(tmp_path, "0001_first.sql", "SELECT 1;\n")
    (tmp_path / "subdir").mkdir()  # directories are not migrations and are skipped

    loaded = load_migrations(tmp_path)

    assert [(m.number, m.name, m.path.name) for m in loaded] == [
        (1, "0001_first", "0001_first.sql"),
        (2, "0002_second", "0002_second.sql"),
    ]
    assert loaded[0].checksum == hashlib.sha256(b"SELECT 1;\n").hexdigest()


def test_empty_directory_has_no_migrations(tmp_path: Path) -> None:
    assert load_migrations(tmp_path) == []


def test_real_migrations_directory_follows_the_naming_rule() -> None:
    directory = migrations_dir()
    files = sorted(p.name for p in directory.iterdir() if p.is_file())
    assert files, f"no migrations in {directory}"
    assert all(MIGRATION_NAME.fullmatch(name) for name in files), files
    loaded = load_migrations(directory)
    assert [m.number for m in loaded] == list(range(1, len(loaded) + 1))
    assert [f"{m.name}.sql" for m in loaded] == files


_COMMENT = re.compile(r"--[^\n]*|/\*.*?\*/", re.DOTALL)
_SETS_LOCK_TIMEOUT = re.compile(
    r"^(?:SET\s+LOCAL\s+lock_timeout\s*(?:=|TO)\s*\S+"
    r"|SELECT\s+(?:pg_catalog\.)?set_config\(\s*'lock_timeout'\s*,\s*'[^']+'\s*,\s*true\s*\))",
    re.IGNORECASE,
)


@pytest.mark.parametrize("migration", load_migrations(), ids=lambda m: m.name)
def test_every_real_migration_sets_lock_timeout_first(migration: Migration) -> None:
    """A migration waits for its locks at most lock_timeout, so it cannot queue all
    traffic behind it; it must say so before its first statement that takes a lock."""
    text = migration.path.read_text(encoding="utf-8")
    first_statement = _COMMENT.sub("", text).strip()
    assert _SETS_LOCK_TIMEOUT.match(first_statement), (
        f"{migration.path.name} must begin with SET LOCAL lock_timeout = '...';"
    )


# --------------------------------------------------------------------------- the lock


def _hold_migration_lock(conninfo: str, application_name: str) -> psycopg.Connection:
    """Another session holding the migration lock's key, as any role could."""
    holder = psycopg.connect(conninfo, autocommit=True, application_name=application_name)
    holder.execute("SELECT pg_catalog.pg_advisory_lock(%s)", (LOCK_KEY,))
    return holder


def test_held_migration_lock_fails_within_the_bound_and_names_the_holder(
    database_factory: DatabaseFactory,
) -> None:
    conninfo = database_factory()
    with _hold_migration_lock(conninfo, "nightly-report") as holder:
        pid = holder.info.backend_pid
        started = time.monotonic()
        with pytest.raises(MigrationLockTimeout) as caught:
            migrate(conninfo, lock_wait=0.5)
        waited = time.monotonic() - started

        assert 0.4 <= waited < 5, waited
        [found] = caught.value.holders
        assert (found.pid, found.user, found.application_name) == (
            pid,
            "postgres",
            "nightly-report",
        )
        assert found.backend_start is not None
        message = str(caught.value)
        for fragment in (f"pid {pid}", "user postgres", "'nightly-report'", "backend started"):
            assert fragment in message, message
        assert dbname_of(conninfo) in message
        assert applied_migrations(conninfo) == []

        # lock_wait=0: no wait at all.
        started = time.monotonic()
        with pytest.raises(MigrationLockTimeout):
            migrate(conninfo, lock_wait=0)
        assert time.monotonic() - started < 2

    # Negative control: released, the same call migrates.
    assert migrate(conninfo, lock_wait=0.5) == [m.name for m in load_migrations()]


def test_migrate_command_with_the_lock_held_is_one_line_naming_the_holder(
    database_factory: DatabaseFactory,
) -> None:
    conninfo = database_factory()
    with _hold_migration_lock(conninfo, "stuck-session") as holder:
        done = _pgportfolio("migrate", "--dsn", conninfo, "--lock-wait", "0.3")
        pid = holder.info.backend_pid
    assert "Traceback" not in done.stdout + done.stderr
    assert done.returncode == 1, done.stdout + done.stderr
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("pgportfolio migrate: the migration lock"), line
    assert f"pid {pid}" in line
    assert "'stuck-session'" in line
    assert applied_migrations(conninfo) == []


# --------------------------------------------------------------------------- --status, --sql


def _pgportfolio(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pgportfolio", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_status_lists_applied_and_pending_with_checksums(
    database_factory: DatabaseFactory, tmp_path: Path
) -> None:
    conninfo = database_factory()
    directory = _copy_migrations(tmp_path / "migrations")
    first = load_migrations(directory)[0]

    database, before = migration_status(conninfo, directory)
    assert dbname_of(conninfo) in database
    assert [(m.name, m.state, m.checksum, m.recorded_checksum) for m in before] == [
        (first.name, "pending", first.checksum, None)
    ]

    migrate(conninfo, directory)
    _write(directory, "0002_add_note.sql", "ALTER TABLE pgportfolio.portfolios ADD note text;\n")
    second = load_migrations(directory)[1]
    _, after = migration_status(conninfo, directory)
    assert [(m.name, m.state, m.checksum, m.recorded_checksum) for m in after] == [
        (first.name, "applied", first.checksum, first.checksum),
        (second.name, "pending", second.checksum, None),
    ]
    assert after[0].applied_at is not None

    done = _pgportfolio("migrate", "--dsn", conninfo, "--migrations", str(directory), "--status")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == database
    assert lines[1].startswith("applied  0001_initial  20")
    assert lines[1].endswith(f"sha256 {first.checksum}")
    assert lines[2] == f"pending  0002_add_note  -  sha256 {second.checksum}"
    assert lines[3] == "1 applied, 1 pending"
    assert applied_migrations(conninfo) == [(first.name, first.checksum)]  # changed nothing


def test_status_reports_an_edited_or_unknown_migration_and_exits_1(
    database_factory: DatabaseFactory, tmp_path: Path
) -> None:
    conninfo = database_factory()
    directory = _copy_migrations(tmp_path / "migrations")
    _write(directory, "0002_extra.sql", "SELECT 1;\n")
    migrate(conninfo, directory)
    recorded = dict(applied_migrations(conninfo))
    (directory / "0002_extra.sql").unlink()
    edited = directory / "0001_initial.sql"
    edited.write_bytes(edited.read_bytes() + b"\n-- edited\n")

    _, status = migration_status(conninfo, directory)
    assert [(m.name, m.state) for m in status] == [
        ("0001_initial", "changed"),
        ("0002_extra", "unknown"),
    ]
    assert status[0].recorded_checksum == recorded["0001_initial"]
    assert status[0].checksum == load_migrations(directory)[0].checksum

    done = _pgportfolio("migrate", "--dsn", conninfo, "--migrations", str(directory), "--status")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "changed  0001_initial" in done.stdout
    assert f"(recorded when applied: {recorded['0001_initial']})" in done.stdout
    assert "unknown  0002_extra" in done.stdout
    assert "Traceback" not in done.stderr
    [line] = done.stderr.strip().splitlines()
    assert "0001_initial, 0002_extra" in line


def test_sql_prints_what_migrate_would_run_and_runs_nothing(
    database_factory: DatabaseFactory,
) -> None:
    """Run the printed script by hand on one database and migrate another: the same
    migrations are recorded with the same checksums, and the same catalog results."""
    printed_on = database_factory()
    migrated = database_factory()

    done = _pgportfolio("migrate", "--dsn", printed_on, "--sql")
    assert done.returncode == 0, done.stderr
    script = done.stdout
    assert applied_migrations(printed_on) == []  # --sql ran nothing
    assert _scalar(printed_on, "SELECT pg_catalog.to_regnamespace('pgportfolio') IS NULL")
    assert dbname_of(printed_on) in script.splitlines()[0]
    for m in load_migrations():
        assert f"-- {m.name} (sha256 {m.checksum})" in script

    with psycopg.connect(printed_on, autocommit=True) as conn:
        conn.execute(script.encode())
    migrate(migrated)

    expected = applied_migrations(migrated)
    assert applied_migrations(printed_on) == expected
    assert migrate(printed_on) == []  # nothing left to do: it is the same history
    assert _catalog_summary(printed_on) == _catalog_summary(migrated)

    # On a migrated database there is nothing to print but the header.
    done = _pgportfolio("migrate", "--dsn", printed_on, "--sql")
    assert done.returncode == 0, done.stderr
    assert "0 pending migration(s)" in done.stdout
    assert "BEGIN" not in done.stdout


def test_sql_prints_only_the_pending_migrations(
    database_factory: DatabaseFactory, tmp_path: Path
) -> None:
    conninfo = database_factory()
    directory = _copy_migrations(tmp_path / "migrations")
    migrate(conninfo, directory)
    _write(directory, "0002_note.sql", "ALTER TABLE pgportfolio.portfolios ADD note text;\n")

    _database, names, script = pending_sql(conninfo, directory, lock_timeout="7s")

    assert names == ["0002_note"]
    assert "0001_initial" not in script
    assert "CREATE SCHEMA" not in script  # the bookkeeping exists already
    assert "set_config('lock_timeout', '7s', true)" in script
    assert "ALTER TABLE pgportfolio.portfolios ADD note text;" in script
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(script.encode())
    assert migrate(conninfo, directory) == []
    assert [n for n, _ in applied_migrations(conninfo)] == ["0001_initial", "0002_note"]


def test_sql_refuses_an_edited_history_as_migrate_does(
    database_factory: DatabaseFactory, tmp_path: Path
) -> None:
    conninfo = database_factory()
    directory = _copy_migrations(tmp_path / "migrations")
    migrate(conninfo, directory)
    edited = directory / "0001_initial.sql"
    edited.write_bytes(edited.read_bytes() + b"\n-- edited\n")
    with pytest.raises(ChecksumMismatch):
        pending_sql(conninfo, directory)


def _catalog_summary(conninfo: str) -> list[tuple[str, str]]:
    """Every relation and function of the ledger's schemas, with its kind or arguments."""
    with psycopg.connect(conninfo, autocommit=True) as conn:
        return conn.execute(
            """
            SELECT c.oid::regclass::text, c.relkind::text FROM pg_catalog.pg_class AS c
             WHERE c.relnamespace::regnamespace::text LIKE 'pgportfolio%'
            UNION ALL
            SELECT p.oid::regprocedure::text, 'f' FROM pg_catalog.pg_proc AS p
             WHERE p.pronamespace::regnamespace::text LIKE 'pgportfolio%'
             ORDER BY 1
            """
        ).fetchall()
