"""Two-session tests with real connections, each with a negative control.

Every scenario is a function returning the problems it found. It runs once against the
real functions (no problems allowed) and once against a deliberately broken variant
(problems required): a checker that cannot fail proves nothing.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import psycopg
import pytest
from psycopg import errors

from tests.support.broken_variants import install_broken_variant
from tests.support.sessions import Background, wait_until_blocked


def _create_portfolio(conn: psycopg.Connection[Any], cash: str = "1000000") -> int:
    row = conn.execute(
        "SELECT pgportfolio.create_portfolio('concurrency', %s)", (Decimal(cash),)
    ).fetchone()
    assert row is not None
    return int(row[0])


def _failed_checks(conn: psycopg.Connection[Any], portfolio_id: int) -> list[str]:
    rows = conn.execute(
        "SELECT check_name, expected, actual FROM pgportfolio.verify_portfolio(%s) WHERE NOT ok",
        (portfolio_id,),
    ).fetchall()
    return [f"{name}: expected {expected}, actual {actual}" for name, expected, actual in rows]


def concurrent_fills_serialize(conninfo: str) -> list[str]:
    """A holds the portfolio in an open transaction; B's fill must wait, then both count."""
    problems: list[str] = []
    with (
        psycopg.connect(conninfo, autocommit=True) as setup,
        psycopg.connect(conninfo) as a,
        psycopg.connect(conninfo, autocommit=True) as b,
    ):
        pid = _create_portfolio(setup)
        setup.execute("SELECT pgportfolio.apply_fill(%s, 'AAA', 100, 10)", (pid,))
        a.execute("SELECT pgportfolio.apply_fill(%s, 'AAA', 50, 11)", (pid,))
        step = Background(
            lambda: b.execute("SELECT pgportfolio.apply_fill(%s, 'AAA', 25, 12)", (pid,))
        )
        if not wait_until_blocked(setup, b.info.backend_pid, step):
            problems.append("B's fill did not wait for A's open transaction")
        a.commit()
        try:
            step.join()
        except psycopg.Error as exc:
            # Without the lock, B computes from what it read before A committed; the
            # events' key on (portfolio, version) then refuses its stale version.
            problems.append(f"B's fill failed with {exc.sqlstate}")
        row = setup.execute(
            "SELECT quantity FROM pgportfolio.position_pnl"
            " WHERE portfolio_id = %s AND symbol = 'AAA'",
            (pid,),
        ).fetchone()
        if row is None or row[0] != 175:
            problems.append(f"position is {row and row[0]}, expected 175 (a lost update)")
        problems += _failed_checks(setup, pid)
    return problems


def stale_expected_version_refused(conninfo: str) -> list[str]:
    """A and B both read version v; A writes with v and commits; B's write with v must be
    refused with PF001 while it waited behind A, and the version must stay where A left it."""
    problems: list[str] = []
    with (
        psycopg.connect(conninfo, autocommit=True) as setup,
        psycopg.connect(conninfo) as a,
        psycopg.connect(conninfo, autocommit=True) as b,
    ):
        pid = _create_portfolio(setup)
        row = setup.execute(
            "SELECT version FROM pgportfolio.portfolio_summary WHERE portfolio_id = %s", (pid,)
        ).fetchone()
        assert row is not None
        seen = row[0]
        a.execute("SELECT pgportfolio.deposit_cash(%s, 10, p_expected_version => %s)", (pid, seen))
        step = Background(
            lambda: b.execute(
                "SELECT pgportfolio.deposit_cash(%s, 20, p_expected_version => %s)", (pid, seen)
            )
        )
        wait_until_blocked(setup, b.info.backend_pid, step)
        a.commit()
        try:
            step.join()
            problems.append("B's write with a stale expected version was accepted")
        except errors.RaiseException as exc:
            problems.append(f"unexpected error {exc.sqlstate}")
        except psycopg.Error as exc:
            if exc.sqlstate != "PF001":
                problems.append(f"expected PF001, got {exc.sqlstate}")
            elif exc.diag.message_detail != f"expected version {seen}, found version {seen + 1}":
                problems.append(f"PF001 detail was {exc.diag.message_detail!r}")
        row = setup.execute(
            "SELECT version, cash_balance FROM pgportfolio.portfolio_summary"
            " WHERE portfolio_id = %s",
            (pid,),
        ).fetchone()
        if row != (seen + 1, Decimal("1000010")):
            problems.append(
                f"after the conflict version and cash are {row}, expected {(seen + 1, 1000010)}"
            )
        problems += _failed_checks(setup, pid)
    return problems


def fills_on_two_symbols_do_not_deadlock(conninfo: str) -> list[str]:
    """A fills AAA then BBB in one transaction while B fills BBB: with the portfolio row
    locked first there is nothing to deadlock on."""
    problems: list[str] = []
    with (
        psycopg.connect(conninfo, autocommit=True) as setup,
        psycopg.connect(conninfo) as a,
        psycopg.connect(conninfo) as b,
    ):
        pid = _create_portfolio(setup)
        setup.execute("SELECT pgportfolio.apply_fill(%s, 'AAA', 10, 10)", (pid,))
        setup.execute("SELECT pgportfolio.apply_fill(%s, 'BBB', 10, 10)", (pid,))
        a.execute("SELECT pgportfolio.apply_fill(%s, 'AAA', 1, 10)", (pid,))

        def b_fills_bbb() -> None:
            b.execute("SELECT pgportfolio.apply_fill(%s, 'BBB', 1, 10)", (pid,))
            b.commit()

        step = Background(b_fills_bbb)
        wait_until_blocked(setup, b.info.backend_pid, step)
        try:
            a.execute("SELECT pgportfolio.apply_fill(%s, 'BBB', 1, 10)", (pid,))
            a.commit()
        except psycopg.Error as exc:
            problems.append(f"A failed with {exc.sqlstate}")
            a.rollback()
        try:
            step.join()
        except psycopg.Error as exc:
            problems.append(f"B failed with {exc.sqlstate}")
            b.rollback()
        problems += _failed_checks(setup, pid)
    return problems


SCENARIOS = {
    "concurrent_fills_serialize": (concurrent_fills_serialize, "no_for_update"),
    "stale_expected_version_refused": (stale_expected_version_refused, "no_version_check"),
    "fills_on_two_symbols_do_not_deadlock": (
        fills_on_two_symbols_do_not_deadlock,
        "lock_order_reversed",
    ),
}


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_scenario_holds(scenario: str, db: str) -> None:
    check, _ = SCENARIOS[scenario]
    assert check(db) == []


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_scenario_catches_broken_variant(scenario: str, db: str) -> None:
    check, variant = SCENARIOS[scenario]
    install_broken_variant(db, variant)
    problems = check(db)
    assert problems, f"{scenario} found nothing wrong with the {variant} variant"


def test_lock_wait_is_bounded(db: str) -> None:
    """A fill waiting behind a stuck transaction gives up with 55P03 after
    pgportfolio.lock_timeout and changes nothing."""
    with (
        psycopg.connect(db, autocommit=True) as setup,
        psycopg.connect(db) as holder,
        psycopg.connect(db, autocommit=True) as waiter,
    ):
        pid = _create_portfolio(setup)
        holder.execute("SELECT pgportfolio.deposit_cash(%s, 1)", (pid,))
        waiter.execute("SET pgportfolio.lock_timeout = '200ms'")
        with pytest.raises(psycopg.errors.LockNotAvailable):
            waiter.execute("SELECT pgportfolio.apply_fill(%s, 'AAA', 1, 1)", (pid,))
        # The caller's own lock_timeout is left as it was.
        row = waiter.execute("SHOW lock_timeout").fetchone()
        assert row == ("0",)
        holder.rollback()
        row = setup.execute(
            "SELECT version FROM pgportfolio.portfolio_summary WHERE portfolio_id = %s", (pid,)
        ).fetchone()
        assert row == (1,)
