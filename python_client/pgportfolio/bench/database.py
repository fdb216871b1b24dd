"""The database a run measures: made for the run and dropped at its end, set up, watched.

Setup goes through one superuser connection (the Ledger), not through the client, so that
it is neither timed nor counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo
from rich.console import Console

from pgportfolio.bench.fills import FillPlan
from pgportfolio.bench.measure import Measurement
from pgportfolio.migrate import migrate
from pgportfolio.servers import ServerChoice

INITIAL_CASH = Decimal(10) ** 12  # no fill of the random walk can run out of it
OPEN_PRICE = Decimal(100)
SETUP_CHUNK = 1_000  # apply_fills elements per setup call


@dataclass
class ServerInfo:
    kind: str
    version: str = ""
    settings: dict[str, str] = field(default_factory=dict)


@contextlib.contextmanager
def bench_database(
    dsn: str | None, console: Console, server: ServerChoice = "auto"
) -> Iterator[tuple[str, str]]:
    """(conninfo of a fresh migrated database, server kind). With a DSN, the database is
    created on that server and dropped at the end; without, a throwaway server is used."""
    with contextlib.ExitStack() as stack:
        if dsn is None:
            from pgportfolio.servers import provision_server

            console.print(f"[bold]starting a throwaway PostgreSQL[/] (--server {server})")
            throwaway = stack.enter_context(provision_server(None, server=server))
            admin, kind = throwaway.dsn, throwaway.kind
        else:
            admin, kind = dsn, "dsn"
        name = f"pgportfolio_bench_{secrets.token_hex(6)}"
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        try:
            conninfo = make_conninfo(admin, dbname=name)
            migrate(conninfo)
            yield conninfo, kind
        finally:
            _drop_database(admin, name, console)


def _drop_database(admin: str, name: str, console: Console, patience: float = 30.0) -> None:
    # Our own sessions end with the run, but a backend may take a moment to go; never
    # terminate anyone (WITH (FORCE)) on a server that may be shared.
    deadline = time.monotonic() + patience
    while True:
        try:
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
            return
        except psycopg.errors.ObjectInUse:
            if time.monotonic() > deadline:
                console.print(f"[red]could not drop database {name} (still in use): drop it[/]")
                return
            time.sleep(0.5)


async def server_info(conninfo: str, kind: str) -> ServerInfo:
    names = (
        "max_connections",
        "shared_buffers",
        "work_mem",
        "synchronous_commit",
        "fsync",
        "wal_level",
        "max_wal_size",
        "checkpoint_timeout",
        "shared_preload_libraries",
    )
    async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as conn:
        cur = await conn.execute("SELECT version()")
        row = await cur.fetchone()
        cur = await conn.execute(
            "SELECT name, setting || coalesce(' ' || unit, ''), source FROM pg_settings "
            "WHERE name = ANY(%s)",
            [list(names)],
        )
        settings = {r[0]: f"{r[1]} ({r[2]})" for r in await cur.fetchall()}
    return ServerInfo(kind, str(row[0]) if row else "", settings)


_WAITS_QUERY = """
SELECT coalesce(wait_event_type || ':' || wait_event, 'CPU')
FROM pg_stat_activity
WHERE datname = current_database() AND state = 'active' AND backend_type = 'client backend'
    AND pid <> pg_backend_pid()
"""


@contextlib.asynccontextmanager
async def sample_server_waits(
    conninfo: str, m: Measurement, interval: float = 0.05
) -> AsyncIterator[None]:
    """While the block runs, sample what this database's active sessions wait for."""

    async def sample(conn: psycopg.AsyncConnection[Any]) -> None:
        while True:
            cur = await conn.execute(_WAITS_QUERY)
            m.server_waits.update(r[0] for r in await cur.fetchall())
            m.server_samples += 1
            await asyncio.sleep(interval)

    async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as conn:
        sampler = asyncio.create_task(sample(conn))
        try:
            yield
        finally:
            sampler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sampler


class Ledger:
    """Setup and bookkeeping through one superuser connection (not through the client,
    so that setup is neither timed nor counted)."""

    def __init__(self, conn: psycopg.AsyncConnection[Any]) -> None:
        self.conn = conn

    async def create_portfolios(self, count: int, name: str) -> list[int]:
        cur = await self.conn.execute(
            "SELECT pgportfolio.create_portfolio(p_name => %s || ' ' || n, p_initial_cash => %s) "
            "FROM generate_series(1, %s) AS n ORDER BY n",
            [name, INITIAL_CASH, count],
        )
        return [int(r[0]) for r in await cur.fetchall()]

    async def open_positions(
        self, portfolio_id: int, symbols: Sequence[str], quantity: int
    ) -> None:
        for start in range(0, len(symbols), SETUP_CHUNK):
            fills = [
                {
                    "portfolio_id": portfolio_id,
                    "symbol": symbol,
                    "quantity": quantity,
                    "price": str(OPEN_PRICE),
                }
                for symbol in symbols[start : start + SETUP_CHUNK]
            ]
            cur = await self.conn.execute(
                "SELECT count(*) FILTER (WHERE sqlstate IS NOT NULL) "
                "FROM pgportfolio.apply_fills(%s::jsonb)",
                [json.dumps(fills)],
            )
            row = await cur.fetchone()
            if row is None or row[0]:
                raise RuntimeError(f"setup: {row and row[0]} fills refused")

    async def analyze_positions(self) -> None:
        """Fresh statistics of ``positions``, as autovacuum takes them within a minute of
        a bulk load (and as PostgreSQL's "Populating a Database" advises after one)."""
        await self.conn.execute("ANALYZE pgportfolio.positions")

    async def version_sum(self, plan: FillPlan) -> int:
        """Sum of the plan's portfolio versions: every applied fill adds exactly 1."""
        cur = await self.conn.execute(
            "SELECT coalesce(sum(version), 0) FROM pgportfolio.portfolios "
            "WHERE portfolio_id BETWEEN %s AND %s",
            [plan.first_pid, plan.last_pid],
        )
        row = await cur.fetchone()
        return int(row[0]) if row else 0
