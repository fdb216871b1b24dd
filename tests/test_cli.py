"""The commands as a user runs them: demo (with a DSN and with its own server), top, migrate."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import psycopg
import pytest
from rich.console import Console

from pgportfolio.demo import DemoSettings, run_demo
from pgportfolio.servers import find_local_bindir


def _pgportfolio(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pgportfolio", *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_demo_against_a_dsn_verifies_every_portfolio(database_factory: Any) -> None:
    dsn = database_factory()
    done = _pgportfolio("demo", "--dsn", dsn, "--duration", "2", "--traders", "20")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "every verification passed" in done.stdout
    assert "pgportfolio operations" in done.stdout  # the monitor report was printed
    with psycopg.connect(dsn) as conn:
        failed = conn.execute(
            "SELECT count(*) FROM pgportfolio.portfolio_summary AS s,"
            " LATERAL pgportfolio.verify_portfolio(s.portfolio_id) AS v WHERE NOT v.ok"
        ).fetchone()
        events = conn.execute("SELECT count(*) FROM pgportfolio.event_log").fetchone()
    assert failed == (0,)
    assert events is not None
    assert events[0] > 100  # it really traded


@pytest.mark.skipif(find_local_bindir() is None, reason="no local PostgreSQL binaries")
def test_demo_without_a_dsn_starts_and_removes_its_own_server() -> None:
    console = Console(record=True, width=120)
    status = run_demo(DemoSettings(duration=1.5, traders=10, portfolios=2), console=console)
    text = console.export_text()
    assert status == 0, text
    assert "server: local" in text
    assert "throwaway server removed" in text


def test_top_renders_with_only_the_analyst_role(database_factory: Any) -> None:
    dsn = database_factory()
    assert _pgportfolio("migrate", "--dsn", dsn).returncode == 0
    role = "pgportfolio_test_top_analyst"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"DROP ROLE IF EXISTS {role}")
        conn.execute(f"CREATE ROLE {role} LOGIN IN ROLE pgportfolio_analyst")
        conn.execute("SELECT pgportfolio.create_portfolio('top', 10)")
    try:
        done = _pgportfolio(
            "top", "--dsn", f"{dsn} user={role}", "--iterations", "2", "--interval", "0.2"
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert "busiest portfolios" in done.stdout
        assert "lock waits" in done.stdout
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f"DROP ROLE {role}")


def test_migrate_command_twice(database_factory: Any) -> None:
    dsn = database_factory()
    first = _pgportfolio("migrate", "--dsn", dsn)
    second = _pgportfolio("migrate", "--dsn", dsn)
    assert first.returncode == 0, first.stderr
    assert "0001_initial" in first.stdout
    assert second.returncode == 0
    assert "already up to date" in second.stdout
