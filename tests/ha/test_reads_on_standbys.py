"""Analysts and reads on standbys, on a real formation: the reader DSN lands on a
standby, where the client's reads, the views and verify_portfolio work, a mutation is
refused with nothing changed, and replication_lag reports the standby's own lag (on the
primary: every standby's). ``pgportfolio top`` shows it."""

from __future__ import annotations

import subprocess
import sys
import time
from decimal import Decimal

import psycopg
import pytest

from pgportfolio import AsyncPortfolioClient, OutcomeUnknown, PortfolioError
from pgportfolio.ha.formation import Formation

pytestmark = [pytest.mark.debian_extensions, pytest.mark.timeout(180)]


def _wait_visible(dsn: str, portfolio: int, version: int, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    with psycopg.connect(dsn, autocommit=True) as conn:
        while time.monotonic() < deadline:
            row = conn.execute("SELECT pgportfolio.portfolio_version(%s)", (portfolio,)).fetchone()
            if row is not None and row[0] == version:
                return
            time.sleep(0.05)
    raise AssertionError(f"portfolio {portfolio} version {version} not replayed in {timeout}s")


async def test_reads_views_and_verification_on_a_standby(healthy_formation: Formation) -> None:
    formation = healthy_formation
    async with AsyncPortfolioClient(formation.writer_dsn) as writer:
        portfolio = await writer.create_portfolio("on-a-standby", Decimal(100))
        done = await writer.apply_fill(portfolio, "XYZ", 3, Decimal("10.5"), fee=Decimal(1))
    _wait_visible(formation.reader_dsn, portfolio, done.portfolio_version)

    with psycopg.connect(formation.reader_dsn, autocommit=True) as conn:
        assert conn.execute("SELECT pg_is_in_recovery()").fetchone() == (True,)
        summary = conn.execute(
            "SELECT cash_balance FROM pgportfolio.portfolio_summary WHERE portfolio_id = %s",
            (portfolio,),
        ).fetchone()
        assert summary == (Decimal("67.5"),)
        events = conn.execute(
            "SELECT count(*) FROM pgportfolio.event_log WHERE portfolio_id = %s", (portfolio,)
        ).fetchone()
        assert events == (2,)  # create and the fill

    async with AsyncPortfolioClient(formation.reader_dsn, name="reader") as reader:
        snapshot = await reader.get_portfolio(portfolio)
        assert snapshot.cash_balance == Decimal("67.5")
        found = await reader.find_request(portfolio, str(done.request_id))
        assert found is not None
        assert found.portfolio_version == done.portfolio_version
        checks = await reader.verify_portfolio(portfolio)
        assert checks
        assert all(check.ok for check in checks)
        with pytest.raises(PortfolioError) as refused:
            await reader.deposit_cash(portfolio, 1, request_id="on-a-standby")
        assert not isinstance(refused.value, OutcomeUnknown)
    async with AsyncPortfolioClient(formation.writer_dsn) as writer:
        assert await writer.find_request(portfolio, "on-a-standby") is None  # nothing changed


def test_replication_lag_on_primary_and_standby(healthy_formation: Formation) -> None:
    formation = healthy_formation
    query = (
        "SELECT standby, seen_from, sync_state, unreplayed_bytes FROM pgportfolio.replication_lag()"
    )
    with psycopg.connect(formation.writer_dsn, autocommit=True) as conn:
        on_primary = conn.execute(query).fetchall()
    assert len(on_primary) == len(formation.node_ports) - 1
    assert {row[1] for row in on_primary} == {"primary"}
    assert {row[2] for row in on_primary} == {"quorum"}  # ANY 1 (...)
    assert all(row[3] is not None and row[3] >= 0 for row in on_primary)
    with psycopg.connect(formation.reader_dsn, autocommit=True) as conn:
        on_standby = conn.execute(query).fetchall()
    assert len(on_standby) == 1
    standby, seen_from, sync_state, unreplayed = on_standby[0]
    assert (standby, seen_from, sync_state) == ("self", "standby", None)
    assert unreplayed is not None
    assert unreplayed >= 0


def test_top_shows_replication_on_a_standby(healthy_formation: Formation) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pgportfolio", "top", "--dsn", healthy_formation.reader_dsn,
         "--iterations", "1", "--interval", "0.1"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "replication" in done.stdout
    assert "self" in done.stdout
    assert "standby" in done.stdout
