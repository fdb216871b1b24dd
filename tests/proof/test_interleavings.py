"""Issue test 3, "Interleavings": exact two- and three-session schedules.

Each scenario is a function that runs one schedule through :mod:`tests.support.interleave`
and returns a :class:`Result`: the problems it found (deviations of the transcript from
the schedule's expectations, plus checks of the state left behind) and the transcript.
It runs once against the real functions (no problem allowed) and, where a broken copy
can exhibit the failure, once against that copy (the specific failure is required): a
checker that cannot fail proves nothing.

Blocking is never inferred from time: a step expected to block must be seen waiting in
``pg_locks`` (granted = false) on a lock held by the named session; a step expected not
to block must complete while the other sessions keep their locks open.

Every session sets ``pgportfolio.lock_timeout = '30s'`` so that a slow CI machine never
turns an intended wait into 55P03; the driver bounds every wait itself.

The runs against the real functions share one database (``shared_db``; each creates its
own portfolios and compares only what it wrote); the negative controls replace functions,
so each gets a fresh database (``db``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from itertools import pairwise
from typing import Any

import psycopg
import pytest

from tests.support.broken_variants import install_broken_variant
from tests.support.interleave import (
    BLOCKS,
    OK,
    Interleaving,
    LockWait,
    Session,
    Step,
    Transcript,
    error,
    resume,
    step,
    still_blocked,
)

D = Decimal
Conn = psycopg.Connection[Any]

SETTINGS = {"pgportfolio.lock_timeout": "30s"}
# A session checks for a deadlock deadlock_timeout after it starts waiting (1s by
# default). 50ms makes a deadlock, where there is one, surface at once. Superuser only.
FAST_DEADLOCK_CHECK = Session(settings={"deadlock_timeout": "50ms"})

FILL = (
    "SELECT * FROM pgportfolio.apply_fill(p_portfolio_id => %s, p_symbol => %s,"
    " p_quantity => %s, p_price => %s)"
)
FILL_AT = (
    "SELECT * FROM pgportfolio.apply_fill(p_portfolio_id => %s, p_symbol => %s,"
    " p_quantity => %s, p_price => %s, p_expected_version => %s)"
)
WITHDRAW = "SELECT * FROM pgportfolio.withdraw_cash(p_portfolio_id => %s, p_amount => %s)"
TICK = "SELECT pgportfolio.update_market_price(p_symbol => %s, p_price => %s)"
VERSION = "SELECT version FROM pgportfolio.portfolio_summary WHERE portfolio_id = %s"
PORTFOLIOS = "pgportfolio.portfolios"


@dataclass
class Result:
    problems: list[str] = field(default_factory=list)
    transcript: Transcript = field(default_factory=Transcript)

    def report(self) -> str:
        return "\n".join(["problems:", *self.problems, "transcript:", self.transcript.render()])


def finish(run: Interleaving, problems: list[str]) -> Result:
    """The schedule's deviations (complete once the driver is closed) plus the state
    checks. Call after the ``with`` block."""
    return Result(run.transcript.problems() + problems, run.transcript)


def check(problems: list[str], what: str, actual: object, expected: object) -> None:
    if actual != expected:
        problems.append(f"{what}: expected {expected!r}, got {actual!r}")


# --- reads on the observer connection (superuser, autocommit: committed state) ------------


def create_portfolio(conn: Conn, cash: str) -> int:
    row = conn.execute(
        "SELECT pgportfolio.create_portfolio(p_name => 'interleave', p_initial_cash => %s)",
        (D(cash),),
    ).fetchone()
    assert row is not None
    return int(row[0])


def fill(conn: Conn, portfolio: int, symbol: str, quantity: str, price: str) -> None:
    conn.execute(FILL, (portfolio, symbol, D(quantity), D(price)))


def summary(conn: Conn, portfolio: int) -> tuple[int, Decimal]:
    """(version, cash balance)."""
    row = conn.execute(
        "SELECT version, cash_balance FROM pgportfolio.portfolio_summary WHERE portfolio_id = %s",
        (portfolio,),
    ).fetchone()
    assert row is not None
    return int(row[0]), row[1]


def quantities(conn: Conn, portfolio: int) -> dict[str, Decimal]:
    rows = conn.execute(
        "SELECT symbol, quantity FROM pgportfolio.position_pnl WHERE portfolio_id = %s",
        (portfolio,),
    ).fetchall()
    return dict(rows)


def event_count(conn: Conn, portfolio: int) -> int:
    row = conn.execute(
        "SELECT count(*) FROM pgportfolio.event_log WHERE portfolio_id = %s", (portfolio,)
    ).fetchone()
    assert row is not None
    return int(row[0])


def failed_checks(conn: Conn, portfolio: int) -> list[str]:
    rows = conn.execute(
        "SELECT check_name, expected, actual FROM pgportfolio.verify_portfolio(%s) WHERE NOT ok",
        (portfolio,),
    ).fetchall()
    return [f"verify_portfolio({portfolio}) {n}: expected {e}, actual {a}" for n, e, a in rows]


def portfolio_row(conn: Conn, portfolio: int) -> tuple[str, int, int]:
    """The committed version of the portfolio row, as (relation, page, tuple): the row a
    waiter takes its tuple lock on."""
    row = conn.execute(
        "SELECT ctid::text FROM pgportfolio.portfolios WHERE portfolio_id = %s", (portfolio,)
    ).fetchone()
    assert row is not None
    page, tup = row[0].strip("()").split(",")
    return PORTFOLIOS, int(page), int(tup)


def position_is_free(conn: Conn, portfolio: int, symbol: str) -> bool:
    """True if no session holds a row lock on the position (portfolio, symbol). The probe
    takes the lock with NOWAIT and gives it back at once (autocommit)."""
    try:
        conn.execute(
            "SELECT 1 FROM pgportfolio.positions WHERE portfolio_id = %s AND symbol = %s"
            " FOR UPDATE NOWAIT",
            (portfolio, symbol),
        )
    except psycopg.errors.LockNotAvailable:
        return False
    return True


def check_waits_on_portfolio_row(
    problems: list[str],
    who: str,
    wait: LockWait | None,
    holder: str,
    row: tuple[str, int, int] | None = None,
) -> None:
    """``who`` waits for ``holder``'s transaction to end, holding the tuple lock of the
    portfolio row (``row``, the committed version, if given): it is stopped at the
    portfolio row's FOR UPDATE."""
    if wait is None:
        problems.append(f"{who} was never seen waiting")
        return
    check(problems, f"{who} waits for", (wait.locktype, wait.xact_of), ("transactionid", holder))
    if row is None:
        check(problems, f"{who} waits on a row of", wait.row and wait.row[0], PORTFOLIOS)
    else:
        check(problems, f"{who} waits on row", wait.row, row)


# --- 0. the driver itself ------------------------------------------------------------------


def test_driver_reports_every_kind_of_deviation(shared_db: str) -> None:
    """The driver's own negative control, on advisory locks: a step that should block and
    does not, a step that should not wait and does (cancelled after ``grace``), the wrong
    blocker, and a blocked step left unresumed (cancelled on close) are all reported."""
    with Interleaving(shared_db, ["A", "B", "C"], grace=0.1) as run:
        run.run(
            [
                step("A", "BEGIN"),
                step("A", "SELECT pg_advisory_xact_lock(4242)"),
                step("B", "SELECT pg_advisory_xact_lock(4243)", expect=BLOCKS, label="B free"),
                step("B", "SELECT pg_advisory_xact_lock(4242)", label="B waits"),
                step("C", "SELECT 1/0", label="C divides"),
                step(
                    "C",
                    "SELECT pg_advisory_xact_lock(4242)",
                    expect=BLOCKS,
                    blocked_by=["B"],
                    label="C queues",
                ),
            ]
        )
        queued = run.transcript.by_label("C queues").waited
        assert queued is not None
        assert (queued.locktype, queued.blocked_by) == ("advisory", ("A",))
    problems = run.transcript.problems()
    expected = [
        "step 3 (B: B free): expected it to block, but it finished: ok",
        "step 4 (B: B waits) waited",
        "step 4 (B: B waits): expected ok, got error:57014",
        "step 5 (C: C divides): expected ok, got error:22012",
        "step 6 (C: C queues) is blocked by A, expected B",
        "step 6 (C: C queues) was never resumed; cancelled",
    ]
    assert len(problems) == len(expected), "\n".join(problems)
    for problem, start in zip(problems, expected, strict=True):
        assert problem.startswith(start), problem


# --- 1. lost update -----------------------------------------------------------------------

LOTS = {"A": (D(10), D(10)), "B": (D(20), D(11)), "C": (D(30), D(12))}


def lost_update(conninfo: str, buyers: int) -> Result:
    """``buyers`` sessions (2 or 3) each buy AAA in an open transaction on one portfolio,
    in the order A, B, C. B queues behind A (waiting for A's transaction, on the portfolio
    row); C queues behind B (on the row's tuple lock, as the docs' lock_waits example
    shows). Commits in the order A, B, C. Every fill must count, and each resumed fill
    must see the ones committed before it."""
    names = ["A", "B", "C"][:buyers]
    problems: list[str] = []
    with Interleaving(conninfo, names, settings=SETTINGS) as run:
        obs = run.observer
        pid = create_portfolio(obs, "100000")
        fill(obs, pid, "AAA", "100", "10")  # an open position, so a stale read has a value
        version, cash = summary(obs, pid)
        row = portfolio_row(obs, pid)

        def buy(name: str, expect: str = OK, after: str | None = None) -> Step:
            quantity, price = LOTS[name]
            return step(
                name,
                FILL,
                (pid, "AAA", quantity, price),
                expect=expect,
                blocked_by=None if after is None else [after],
                label=f"{name} buys",
            )

        run.run([step("A", "BEGIN"), buy("A")])
        for before, name in pairwise(names):
            run.run([step(name, "BEGIN"), buy(name, BLOCKS, after=before)])
        check_waits_on_portfolio_row(
            problems, "B", run.transcript.by_label("B buys").waited, "A", row
        )
        if buyers == 3:
            queued = run.transcript.by_label("C buys").waited
            check(problems, "C queues on", queued and (queued.locktype, queued.row), ("tuple", row))
            run.do(still_blocked("B", blocked_by=["A"]))
            # lock_waits shows the queue as the docs describe it.
            waits = obs.execute(
                "SELECT waiting_pid, locktype, relation::text, mode, blocking_pids"
                " FROM pgportfolio.lock_waits ORDER BY waiting_pid"
            ).fetchall()
            check(
                problems,
                "lock_waits while B and C queue",
                waits,
                sorted(
                    [
                        (run.pid("B"), "transactionid", None, "ShareLock", [run.pid("A")]),
                        (run.pid("C"), "tuple", PORTFOLIOS, "AccessExclusiveLock", [run.pid("B")]),
                    ]
                ),
            )
        held = D(100) + LOTS["A"][0]
        run.do(step("A", "COMMIT"))
        for index, name in enumerate(names[1:], start=1):
            record = run.do(resume(name, label=f"{name} resumes"))
            held += LOTS[name][0]
            if record.outcome == OK:
                check(problems, f"{name}'s fill result", record.one()["position_quantity"], held)
            if index + 1 < len(names):
                queued_next = run.do(still_blocked(names[index + 1], blocked_by=[name]))
                # The next in line now waits for this one's transaction, on the portfolio row.
                check_waits_on_portfolio_row(
                    problems, f"{names[index + 1]} (now)", queued_next.waited, name
                )
            run.do(step(name, "COMMIT"))
        check(problems, "final AAA quantity (lost update?)", quantities(obs, pid), {"AAA": held})
        spent = sum((q * p for q, p in (LOTS[n] for n in names)), D(0))
        check(problems, "version and cash", summary(obs, pid), (version + buyers, cash - spent))
        problems += failed_checks(obs, pid)
    return finish(run, problems)


@pytest.mark.parametrize("buyers", [2, 3])
def test_fills_on_one_position_queue_and_all_count(shared_db: str, buyers: int) -> None:
    result = lost_update(shared_db, buyers)
    assert result.problems == [], result.report()


@pytest.mark.parametrize("buyers", [2, 3])
def test_lost_update_caught_without_for_update(db: str, buyers: int) -> None:
    # Without FOR UPDATE each fill reads the position before the earlier fill commits and
    # writes an absolute quantity over it. The later fills still queue (on the portfolio
    # row's UPDATE), so the schedule runs the same way; the quantities are wrong.
    install_broken_variant(db, "no_for_update")
    result = lost_update(db, buyers)
    assert any("final AAA quantity (lost update?)" in p for p in result.problems), result.report()
    assert any("position_quantities" in p for p in result.problems), result.report()


# --- 2. stale expected version ------------------------------------------------------------

# case: (B's expected version relative to v, how A ends, B's outcome, B's PF001 detail)
STALE_CASES: dict[str, tuple[int, str, str, str | None]] = {
    "stale_v_after_commit": (
        0,
        "COMMIT",
        error("PF001"),
        "expected version {v}, found version {v1}",
    ),
    "v_plus_1_after_commit": (1, "COMMIT", OK, None),
    "v_plus_1_after_rollback": (
        1,
        "ROLLBACK",
        error("PF001"),
        "expected version {v1}, found version {v}",
    ),
}


def stale_version(conninfo: str, case: str) -> Result:
    """A and B read version v. A buys AAA with expected version v in an open
    transaction; B buys BBB (another symbol: the version is the portfolio's) with expected
    version v (or v+1) and must wait for A, then be judged against the version A left:
    the check runs after the lock, never against B's earlier snapshot."""
    offset, a_ends, b_outcome, detail = STALE_CASES[case]
    problems: list[str] = []
    with Interleaving(conninfo, ["A", "B"], settings=SETTINGS) as run:
        obs = run.observer
        pid = create_portfolio(obs, "100000")
        fill(obs, pid, "AAA", "100", "10")
        v, cash = summary(obs, pid)
        run.run(
            [
                step("A", VERSION, (pid,), label="A reads version"),
                step("B", VERSION, (pid,), label="B reads version"),
                step("A", "BEGIN"),
                step("A", FILL_AT, (pid, "AAA", D(10), D(10), v), label="A buys at v"),
                step(
                    "B",
                    FILL_AT,
                    (pid, "BBB", D(5), D(20), v + offset),
                    expect=BLOCKS,
                    blocked_by=["A"],
                    label="B buys",
                ),
                step("A", a_ends),
            ]
        )
        seen = {run.transcript.by_label(f"{n} reads version").one()["version"] for n in "AB"}
        check(problems, "versions read by A and B", seen, {v})
        b = run.do(resume("B", expect=b_outcome, label="B resumes"))
        a_applied = a_ends == "COMMIT"
        after_a = (v + 1, cash - 100) if a_applied else (v, cash)
        if b_outcome == OK:
            if b.outcome == OK:
                check(problems, "B's version", b.one()["portfolio_version"], v + 2)
            check(problems, "after B", summary(obs, pid), (v + 2, cash - 200))
            check(problems, "positions", quantities(obs, pid), {"AAA": 110, "BBB": 5})
        else:
            assert detail is not None
            check(problems, "PF001 detail", b.detail, detail.format(v=v, v1=v + 1))
            # Nothing of B: version, cash, positions and log as A left them.
            check(problems, "after refused B", summary(obs, pid), after_a)
            check(
                problems,
                "positions after refused B",
                quantities(obs, pid),
                {"AAA": 110 if a_applied else 100},
            )
            check(problems, "events after refused B", event_count(obs, pid), after_a[0])
            # Retrying with the version now current succeeds.
            retry = run.do(
                step("B", FILL_AT, (pid, "BBB", D(5), D(20), after_a[0]), label="B retries")
            )
            if retry.outcome == OK:
                check(problems, "retry version", retry.one()["portfolio_version"], after_a[0] + 1)
        problems += failed_checks(obs, pid)
    return finish(run, problems)


@pytest.mark.parametrize("case", STALE_CASES)
def test_expected_version_is_checked_after_the_wait(shared_db: str, case: str) -> None:
    result = stale_version(shared_db, case)
    assert result.problems == [], result.report()


@pytest.mark.parametrize("case", ["stale_v_after_commit", "v_plus_1_after_rollback"])
def test_stale_write_accepted_without_version_check(db: str, case: str) -> None:
    install_broken_variant(db, "no_version_check")
    result = stale_version(db, case)
    assert any("B resumes): expected error:PF001, got ok" in p for p in result.problems), (
        result.report()
    )


# --- 3. two symbols, one portfolio: no deadlock ----------------------------------------------


def symbols_crossed(conninfo: str) -> Result:
    """A fills AAA then BBB; B fills BBB then AAA, step by step, both in open
    transactions. B must stop at its very first statement, on the portfolio row, before
    it touches the BBB position; so A's second fill runs freely and nothing can deadlock."""
    problems: list[str] = []
    sessions = {"A": FAST_DEADLOCK_CHECK, "B": FAST_DEADLOCK_CHECK}
    # grace: with a broken lock order, let the 50ms deadlock check act before the driver
    # would cancel a step that waits (it costs nothing when nothing waits).
    with Interleaving(conninfo, sessions, settings=SETTINGS, grace=2.0) as run:
        obs = run.observer
        pid = create_portfolio(obs, "100000")
        fill(obs, pid, "AAA", "100", "10")
        fill(obs, pid, "BBB", "100", "10")
        version, _ = summary(obs, pid)
        row = portfolio_row(obs, pid)

        def fills(name: str, symbol: str, expect: str = OK, blocked_by: str | None = None) -> Step:
            return step(
                name,
                FILL,
                (pid, symbol, D(1), D(10)),
                expect=expect,
                blocked_by=None if blocked_by is None else [blocked_by],
                label=f"{name} fills {symbol}",
            )

        run.run(
            [
                step("A", "BEGIN"),
                step("B", "BEGIN"),
                fills("A", "AAA"),
                fills("B", "BBB", BLOCKS, blocked_by="A"),
            ]
        )
        # Precisely where B is stopped: waiting for A's transaction, holding the tuple
        # lock of the portfolio row, and holding no lock on the BBB position.
        check_waits_on_portfolio_row(
            problems, "B", run.transcript.by_label("B fills BBB").waited, "A", row
        )
        if not position_is_free(obs, pid, "BBB"):
            problems.append("B holds the BBB position row while it waits for the portfolio")
        run.run(
            [
                fills("A", "BBB"),  # must not wait: B holds nothing A needs
                step("A", "COMMIT"),
                resume("B", label="B resumes (fills BBB)"),
                fills("B", "AAA"),
                step("B", "COMMIT"),
            ]
        )
        if "40P01" in run.transcript.sqlstates():
            problems.append("a deadlock (40P01) was detected")
        check(problems, "positions", quantities(obs, pid), {"AAA": 102, "BBB": 102})
        check(problems, "version", summary(obs, pid)[0], version + 4)
        problems += failed_checks(obs, pid)
    return finish(run, problems)


def test_fills_on_crossed_symbols_never_deadlock(shared_db: str) -> None:
    result = symbols_crossed(shared_db)
    assert result.problems == [], result.report()


def test_deadlock_caught_with_lock_order_reversed(db: str) -> None:
    # Position first: B takes BBB, then waits for the portfolio row A holds; A's fill on
    # BBB then waits for B. PostgreSQL breaks the cycle (whichever session's check runs
    # first is the victim, so the test does not say which).
    install_broken_variant(db, "lock_order_reversed")
    result = symbols_crossed(db)
    assert "a deadlock (40P01) was detected" in result.problems, result.report()
    assert "B holds the BBB position row while it waits for the portfolio" in result.problems


# --- 4. two portfolios ------------------------------------------------------------------------


def portfolios_crossed(conninfo: str) -> Result:
    """A: P1 then P2; B: P2 then P1, each in one transaction. The ledger cannot order
    locks across calls that the caller composes, so this deadlocks, and PostgreSQL
    resolves it: exactly one transaction (B) fails with 40P01 and is rolled back whole,
    including its earlier, successful fill on P2; A then completes.

    The victim is the session whose deadlock check runs first while the cycle exists. To
    make that B, A checks after 5s and B after 50ms (B closes the cycle)."""
    problems: list[str] = []
    sessions = {"A": Session(settings={"deadlock_timeout": "5s"}), "B": FAST_DEADLOCK_CHECK}
    with Interleaving(conninfo, sessions, settings=SETTINGS) as run:
        obs = run.observer
        p1, p2 = create_portfolio(obs, "100000"), create_portfolio(obs, "100000")

        def fills(name: str, portfolio: int, **kw: Any) -> Step:
            quantity = D(1) if name == "A" else D(2)
            label = f"{name} fills P{1 if portfolio == p1 else 2}"
            return step(name, FILL, (portfolio, "AAA", quantity, D(10)), label=label, **kw)

        run.run(
            [
                step("A", "BEGIN"),
                step("B", "BEGIN"),
                fills("A", p1),
                fills("B", p2),
                fills("A", p2, expect=BLOCKS, blocked_by=["B"]),
                fills("B", p1, expect=error("40P01"), waits=True),
                resume("A", label="A resumes (fills P2)"),
                step("B", "ROLLBACK"),
                step("A", "COMMIT"),
            ]
        )
        victim = run.transcript.by_label("B fills P1")
        check(problems, "40P01 message", victim.message, "deadlock detected")
        for portfolio in (p1, p2):
            # A's fill only; nothing of B, not even its fill on P2 that had succeeded.
            check(problems, f"portfolio {portfolio}", summary(obs, portfolio), (2, D(99990)))
            check(problems, f"positions {portfolio}", quantities(obs, portfolio), {"AAA": 1})
            check(problems, f"events {portfolio}", event_count(obs, portfolio), 2)
            problems += failed_checks(obs, portfolio)
    return finish(run, problems)


def portfolios_in_id_order(conninfo: str) -> Result:
    """The same work as :func:`portfolios_crossed`, with both transactions touching their
    portfolios in ascending portfolio_id (the documented rule): B, which wants P2 and
    P1, takes P1 first. B queues behind A at its first fill and no cycle can form."""
    problems: list[str] = []
    sessions = {"A": FAST_DEADLOCK_CHECK, "B": FAST_DEADLOCK_CHECK}
    with Interleaving(conninfo, sessions, settings=SETTINGS) as run:
        obs = run.observer
        p1, p2 = create_portfolio(obs, "100000"), create_portfolio(obs, "100000")

        def fills(name: str, portfolio: int, **kw: Any) -> Step:
            quantity = D(1) if name == "A" else D(2)
            label = f"{name} fills P{1 if portfolio == p1 else 2}"
            return step(name, FILL, (portfolio, "AAA", quantity, D(10)), label=label, **kw)

        b_order = sorted([p2, p1])
        run.run(
            [
                step("A", "BEGIN"),
                step("B", "BEGIN"),
                fills("A", p1),
                fills("B", b_order[0], expect=BLOCKS, blocked_by=["A"]),
                fills("A", p2),
                step("A", "COMMIT"),
                resume("B", label="B resumes (fills P1)"),
                fills("B", b_order[1]),
                step("B", "COMMIT"),
            ]
        )
        if "40P01" in run.transcript.sqlstates():
            problems.append("a deadlock (40P01) was detected")
        for portfolio in (p1, p2):
            check(problems, f"portfolio {portfolio}", summary(obs, portfolio), (3, D(99970)))
            check(problems, f"positions {portfolio}", quantities(obs, portfolio), {"AAA": 3})
            problems += failed_checks(obs, portfolio)
    return finish(run, problems)


def test_crossed_portfolios_deadlock_is_detected_and_rolled_back_whole(shared_db: str) -> None:
    # The negative control of the ordering rule below: same work, opposite orders.
    result = portfolios_crossed(shared_db)
    assert result.problems == [], result.report()


def test_portfolios_in_id_order_never_deadlock(shared_db: str) -> None:
    result = portfolios_in_id_order(shared_db)
    assert result.problems == [], result.report()


# --- 5. write skew on cash -----------------------------------------------------------------

CASH_OPS: dict[str, Callable[[int], tuple[str, tuple[Any, ...]]]] = {
    "buy AAA": lambda p: (FILL, (p, "AAA", D(1), D(60))),
    "buy BBB": lambda p: (FILL, (p, "BBB", D(1), D(60))),
    "withdraw": lambda p: (WITHDRAW, (p, D(60))),
}
CASH_RACES = [
    ("buy AAA", "buy BBB", "COMMIT"),
    ("buy AAA", "buy BBB", "ROLLBACK"),
    ("withdraw", "buy AAA", "COMMIT"),
    ("buy AAA", "withdraw", "COMMIT"),
]


def cash_race(conninfo: str, first: str, second: str, a_ends: str) -> Result:
    """Cash 100. A spends 60 in an open transaction; B spends 60 on another row (another
    symbol, or no position at all). Both lock the portfolio row, so B waits, then sees
    A's outcome: PF002 after A's commit (needed 60, available 40), success after A's
    rollback. Cash is never negative."""
    problems: list[str] = []
    # A uses psycopg's implicit transactions (BEGIN is then a no-op, COMMIT and ROLLBACK
    # are conn.commit() / conn.rollback()); B is autocommit: each call its own transaction.
    sessions = {"A": Session(autocommit=False), "B": Session()}
    with Interleaving(conninfo, sessions, settings=SETTINGS) as run:
        obs = run.observer
        pid = create_portfolio(obs, "100")
        a_sql, a_params = CASH_OPS[first](pid)
        b_sql, b_params = CASH_OPS[second](pid)
        committed = a_ends == "COMMIT"
        run.run(
            [
                step("A", "BEGIN"),
                step("A", a_sql, a_params, label=f"A: {first}"),
                step("B", b_sql, b_params, expect=BLOCKS, blocked_by=["A"], label=f"B: {second}"),
                step("A", a_ends),
            ]
        )
        b = run.do(resume("B", expect=error("PF002") if committed else OK, label="B resumes"))
        if committed:
            check(problems, "PF002 detail", b.detail, "needed 60, available 40")
        check(problems, "version and cash", summary(obs, pid), (2, D(40)))
        winner = first if committed else second
        held = {winner.removeprefix("buy "): D(1)} if winner.startswith("buy") else {}
        check(problems, "positions", quantities(obs, pid), held)
        problems += failed_checks(obs, pid)  # includes cash_never_negative
    return finish(run, problems)


@pytest.mark.parametrize(("first", "second", "a_ends"), CASH_RACES)
def test_cash_is_spent_once(shared_db: str, first: str, second: str, a_ends: str) -> None:
    result = cash_race(shared_db, first, second, a_ends)
    assert result.problems == [], result.report()


@pytest.mark.parametrize(("first", "second"), [("buy AAA", "buy BBB"), ("withdraw", "buy AAA")])
def test_pf002_missing_without_for_update(db: str, first: str, second: str) -> None:
    # Without FOR UPDATE, B checks cash on its stale read (100) and passes, and its
    # write overwrites A's (the variant also lets its events skip the clash on the
    # events' key, which would otherwise refuse B's stale version with 23505). The
    # ledger's contract (PF002 with its DETAIL) is broken: that is what the checker reports.
    install_broken_variant(db, "no_for_update")
    result = cash_race(db, first, second, "COMMIT")
    assert any("B resumes): expected error:PF002, got" in p for p in result.problems), (
        result.report()
    )


# --- 6. reads during writes -----------------------------------------------------------------

READS = {
    "portfolio_summary": "SELECT * FROM pgportfolio.portfolio_summary WHERE portfolio_id = %s",
    "position_pnl": (
        "SELECT * FROM pgportfolio.position_pnl WHERE portfolio_id = %s ORDER BY symbol"
    ),
    "event_log": (
        "SELECT * FROM pgportfolio.event_log WHERE portfolio_id = %s ORDER BY portfolio_version"
    ),
    "verify_portfolio": "SELECT * FROM pgportfolio.verify_portfolio(%s) ORDER BY check_name",
    "get_portfolio": "SELECT * FROM pgportfolio.get_portfolio(%s)",
}
LOCK_WAITS = (
    "SELECT waiting_pid, locktype, relation::text, mode, blocking_pids FROM pgportfolio.lock_waits"
)


def reads_during_writes(conninfo: str) -> Result:
    """A holds two uncommitted fills (portfolio and position rows locked) and B waits
    behind A. Reader C (autocommit) runs every view and read function: each completes
    while A holds its locks and shows the committed state from before A, and lock_waits
    shows B waiting for A. After A commits, C sees the new state. Reader R, in a
    REPEATABLE READ transaction whose snapshot was taken before A's commit, keeps seeing
    the old state in every view after A's commit, until it ends its transaction."""
    problems: list[str] = []
    with Interleaving(conninfo, ["A", "B", "C", "R"], settings=SETTINGS) as run:
        obs = run.observer
        pid = create_portfolio(obs, "100000")
        fill(obs, pid, "AAA", "100", "10")
        fill(obs, pid, "BBB", "50", "20")
        obs.execute(TICK, ("AAA", D(11)))

        def snapshot() -> dict[str, list[tuple[Any, ...]]]:
            return {view: obs.execute(query, (pid,)).fetchall() for view, query in READS.items()}

        def read(name: str, when: str, views: dict[str, str] = READS) -> dict[str, Any]:
            records = {
                v: run.do(step(name, q, (pid,), label=f"{name} {v} {when}"))
                for v, q in views.items()
            }
            return {view: record.rows for view, record in records.items()}

        before = snapshot()
        run.run(
            [
                step("A", "BEGIN"),
                step("A", FILL, (pid, "AAA", D(10), D(12)), label="A buys AAA"),
                step("A", FILL, (pid, "CCC", D(5), D(30)), label="A opens CCC"),
                step(
                    "B",
                    FILL,
                    (pid, "AAA", D(1), D(12)),
                    expect=BLOCKS,
                    blocked_by=["A"],
                    label="B buys AAA",
                ),
                step("R", "BEGIN ISOLATION LEVEL REPEATABLE READ"),
            ]
        )
        r_first = read("R", "before A commits", {"portfolio_summary": READS["portfolio_summary"]})
        check(problems, "R's first read", r_first["portfolio_summary"], before["portfolio_summary"])
        during = read("C", "while A holds locks")
        for view, rows in during.items():
            check(problems, f"C's {view} while A is uncommitted (dirty read?)", rows, before[view])
        waits = run.do(step("C", LOCK_WAITS, label="C lock_waits while B waits"))
        check(
            problems,
            "lock_waits while B waits",
            waits.rows,
            [(run.pid("B"), "transactionid", None, "ShareLock", [run.pid("A")])],
        )
        run.run([step("A", "COMMIT"), resume("B", label="B resumes")])
        after = snapshot()
        check(problems, "committed version after A and B", after["portfolio_summary"][0][9], 6)
        for view, rows in read("C", "after A commits").items():
            check(problems, f"C's {view} after A's commit", rows, after[view])
        for view, rows in read("R", "after A commits").items():
            check(problems, f"R's {view} after A's commit (snapshot kept?)", rows, before[view])
        run.do(step("R", "COMMIT"))
        r_last = read("R", "after its commit", {"portfolio_summary": READS["portfolio_summary"]})
        check(
            problems,
            "R's read after its commit",
            r_last["portfolio_summary"],
            after["portfolio_summary"],
        )
        problems += failed_checks(obs, pid)
    return finish(run, problems)


def install_locking_reader(conninfo: str) -> None:
    """A broken portfolio_snapshot (which get_portfolio and the client read through)
    that reads the portfolio row FOR SHARE, as a careless "consistent read" might: it
    then waits for every trade in progress."""
    rewrite_function(
        conninfo,
        "pgportfolio.portfolio_snapshot(bigint)",
        [
            ("\n STABLE SECURITY DEFINER", "\n SECURITY DEFINER"),
            (
                "WHERE pf.portfolio_id = p_portfolio_id;",
                "WHERE pf.portfolio_id = p_portfolio_id FOR SHARE OF pf;",
            ),
        ],
    )


def rewrite_function(conninfo: str, signature: str, edits: list[tuple[str, str]]) -> None:
    with psycopg.connect(conninfo, autocommit=True) as conn:
        row = conn.execute("SELECT pg_get_functiondef(%s::regprocedure)", (signature,)).fetchone()
        assert row is not None
        source: str = row[0]
        for old, new in edits:
            if old not in source:
                raise AssertionError(f"{old!r} not found in {signature}")
            source = source.replace(old, new)
        conn.execute(source.encode())


def test_reads_never_block_and_never_see_uncommitted_state(shared_db: str) -> None:
    result = reads_during_writes(shared_db)
    assert result.problems == [], result.report()


def test_blocking_reader_caught(db: str) -> None:
    # PostgreSQL has no dirty reads (READ UNCOMMITTED behaves as READ COMMITTED), so no
    # variant can show one; the control is a reader that locks.
    install_locking_reader(db)
    result = reads_during_writes(db)
    assert any(
        "C get_portfolio while A holds locks) waited" in p and "cancelled" in p
        for p in result.problems
    ), result.report()


# --- 7. price ticks during fills -------------------------------------------------------------


def position_version(conn: Conn, portfolio: int, symbol: str) -> int | None:
    row = conn.execute(
        "SELECT version FROM pgportfolio.position_pnl WHERE portfolio_id = %s AND symbol = %s",
        (portfolio, symbol),
    ).fetchone()
    return None if row is None else int(row[0])


def ticks_during_fills(conninfo: str) -> Result:
    """A tick on AAA while A's fill on AAA is uncommitted completes at once and changes
    no version; so does a tick on a symbol A has just opened. The other way round, a fill
    never waits for an uncommitted tick. Only ticks on one symbol queue (documented), which
    shows the driver does see a tick wait when there is one."""
    problems: list[str] = []
    with Interleaving(conninfo, ["A", "T", "U", "F", "V"], settings=SETTINGS) as run:
        obs = run.observer
        pid = create_portfolio(obs, "100000")
        fill(obs, pid, "AAA", "100", "10")
        obs.execute(TICK, ("AAA", D(10)))
        version = summary(obs, pid)[0]
        aaa = position_version(obs, pid, "AAA")
        assert aaa is not None

        def mark(symbol: str) -> Decimal | None:
            row = obs.execute(
                "SELECT price FROM pgportfolio.market_prices WHERE symbol = %s", (symbol,)
            ).fetchone()
            return None if row is None else row[0]

        run.run(
            [
                step("A", "BEGIN"),
                step("A", FILL, (pid, "AAA", D(5), D(11)), label="A buys AAA"),
                step("A", FILL, (pid, "BBB", D(1), D(7)), label="A opens BBB"),
                step("T", TICK, ("AAA", D(12)), label="T ticks AAA during A's fill"),
                step("T", TICK, ("BBB", D(8)), label="T ticks BBB during A's fill"),
            ]
        )
        check(
            problems,
            "versions while A is open",
            (summary(obs, pid)[0], position_version(obs, pid, "AAA")),
            (version, aaa),
        )
        check(problems, "marks committed by T", (mark("AAA"), mark("BBB")), (D(12), D(8)))
        run.do(step("A", "COMMIT"))
        check(
            problems,
            "versions after A",
            (summary(obs, pid)[0], position_version(obs, pid, "AAA")),
            (version + 2, aaa + 1),
        )
        run.run(
            [
                step("U", "BEGIN"),
                step("U", TICK, ("AAA", D(13)), label="U ticks AAA (left open)"),
                step("F", FILL, (pid, "AAA", D(1), D(13)), label="F buys AAA during U's tick"),
                step(
                    "V", TICK, ("AAA", D(14)), expect=BLOCKS, blocked_by=["U"], label="V ticks AAA"
                ),
                step("U", "COMMIT"),
                resume("V", label="V resumes"),
            ]
        )
        check(
            problems,
            "versions after F",
            (summary(obs, pid)[0], position_version(obs, pid, "AAA")),
            (version + 3, aaa + 2),
        )
        check(problems, "mark", mark("AAA"), D(14))
        check(problems, "positions", quantities(obs, pid), {"AAA": 106, "BBB": 1})
        problems += failed_checks(obs, pid)
    return finish(run, problems)


def install_tick_touching_positions(conninfo: str) -> None:
    """A broken tick that also stamps the positions of the symbol, as a denormalised
    "last marked" column might: it locks and versions position rows."""
    rewrite_function(
        conninfo,
        "pgportfolio.update_market_price(text,numeric,timestamptz,text)",
        [
            (
                "WHERE (m.as_of, m.mark_id) < (excluded.as_of, excluded.mark_id);",
                "WHERE (m.as_of, m.mark_id) < (excluded.as_of, excluded.mark_id);\n"
                "    UPDATE pgportfolio.positions SET version = version + 1, updated_at = now()"
                " WHERE symbol = p_symbol;",
            )
        ],
    )


def test_ticks_never_block_fills_nor_change_versions(shared_db: str) -> None:
    result = ticks_during_fills(shared_db)
    assert result.problems == [], result.report()


def test_tick_touching_positions_caught(db: str) -> None:
    install_tick_touching_positions(db)
    result = ticks_during_fills(db)
    joined = "\n".join(result.problems)
    assert "T ticks AAA during A's fill) waited" in joined, result.report()
    assert "F buys AAA during U's tick) waited" in joined, result.report()
    assert "versions after F" in joined, result.report()


# --- 8. the same request id in flight twice -------------------------------------------------

FILL_REQ = (
    "SELECT * FROM pgportfolio.apply_fill(p_portfolio_id => %s, p_symbol => %s,"
    " p_quantity => %s, p_price => %s, p_request_id => %s)"
)
# case: (how A ends, B's quantity, B's outcome, B's result is a replay)
DUPLICATE_CASES: dict[str, tuple[str, Decimal, str, bool]] = {
    "replayed_after_commit": ("COMMIT", D(10), OK, True),
    "runs_after_rollback": ("ROLLBACK", D(10), OK, False),
    "pf005_after_commit": ("COMMIT", D(11), error("PF005"), False),
}


def duplicate_in_flight(conninfo: str, case: str) -> Result:
    """A sends fill 'ord-1' in an open transaction; B (a retry) sends 'ord-1' again. B
    waits for the portfolio lock, then: replays A's result if A committed (nothing
    applied twice), runs as new if A rolled back, or fails with PF005 if its arguments
    differ from what A committed (as the docs' idempotency section says)."""
    a_ends, b_quantity, b_outcome, replay = DUPLICATE_CASES[case]
    problems: list[str] = []
    with Interleaving(conninfo, ["A", "B"], settings=SETTINGS) as run:
        obs = run.observer
        pid = create_portfolio(obs, "100000")
        run.run(
            [
                step("A", "BEGIN"),
                step("A", FILL_REQ, (pid, "AAA", D(10), D(10), "ord-1"), label="A sends ord-1"),
                step(
                    "B",
                    FILL_REQ,
                    (pid, "AAA", b_quantity, D(10), "ord-1"),
                    expect=BLOCKS,
                    blocked_by=["A"],
                    label="B sends ord-1",
                ),
                step("A", a_ends),
            ]
        )
        b = run.do(resume("B", expect=b_outcome, label="B resumes"))
        if b.outcome == OK:
            result = b.one()
            check(problems, "B's duplicate flag", result["duplicate"], replay)
            check(problems, "B's version", result["portfolio_version"], 2)
            check(problems, "B's quantity", result["position_quantity"], 10)
        check(problems, "version and cash", summary(obs, pid), (2, D(99900)))
        check(problems, "positions", quantities(obs, pid), {"AAA": 10})
        check(problems, "events", event_count(obs, pid), 2)
        problems += failed_checks(obs, pid)
    return finish(run, problems)


@pytest.mark.parametrize("case", DUPLICATE_CASES)
def test_request_id_in_flight_twice_applies_once(shared_db: str, case: str) -> None:
    result = duplicate_in_flight(shared_db, case)
    assert result.problems == [], result.report()


def test_duplicate_in_flight_caught_without_for_update(db: str) -> None:
    # Without FOR UPDATE, B looks the request id up before A commits (not found), then
    # waits at its UPDATE and, once A commits, writes a second event with the same
    # request id: the unique key (portfolio_id, request_id) refuses it with 23505 instead
    # of a replay.
    install_broken_variant(db, "no_for_update")
    result = duplicate_in_flight(db, "replayed_after_commit")
    assert any("B resumes): expected ok, got error:23505" in p for p in result.problems), (
        result.report()
    )


# --- 9. a multiplier change racing the fill that opens a position -----------------------------

UPSERT = "SELECT pgportfolio.upsert_instrument(p_symbol => %s, p_multiplier => %s)"
POSITIONS = "pgportfolio.positions"


def multipliers(conn: Conn, symbol: str) -> tuple[Decimal | None, list[Decimal]]:
    """(the instrument's multiplier or None without a row, the multipliers of the open
    positions in the symbol). A held symbol's positions must all have the instrument's."""
    row = conn.execute(
        "SELECT (SELECT multiplier FROM pgportfolio.instruments WHERE symbol = %s),"
        " array(SELECT multiplier::numeric FROM pgportfolio.positions WHERE symbol = %s)",
        (symbol, symbol),
    ).fetchone()
    assert row is not None
    return row[0], list(row[1])


def check_waits_on_positions_table(
    problems: list[str], who: str, wait: LockWait | None, mode: str
) -> None:
    if wait is None:
        problems.append(f"{who} was never seen waiting")
        return
    check(
        problems,
        f"{who} waits on",
        (wait.locktype, wait.relation, wait.mode),
        ("relation", POSITIONS, mode),
    )


def change_then_fill(conninfo: str) -> Result:
    """READ COMMITTED. U sets a new symbol's multiplier to 50 in an open transaction (it
    holds SHARE on positions). F's fill opening that symbol must wait for U on the
    positions table before it reads the multiplier, and once U commits, open at 50."""
    problems: list[str] = []
    with Interleaving(conninfo, ["U", "F"], settings=SETTINGS) as run:
        obs = run.observer
        pid = create_portfolio(obs, "1000000")
        symbol = f"MUL.A{pid}"
        version, cash = summary(obs, pid)
        run.run(
            [
                step("U", "BEGIN"),
                step("U", UPSERT, (symbol, D(50)), label="U sets multiplier 50"),
                step(
                    "F",
                    FILL,
                    (pid, symbol, D(2), D(100)),
                    expect=BLOCKS,
                    blocked_by=["U"],
                    label="F opens the symbol",
                ),
            ]
        )
        check_waits_on_positions_table(
            problems, "F", run.transcript.by_label("F opens the symbol").waited, "RowExclusiveLock"
        )
        run.do(step("U", "COMMIT"))
        f = run.do(resume("F", label="F resumes"))
        if f.outcome == OK:
            result = f.one()
            check(problems, "F's cash (2 x 100 x 50)", result["cash_balance"], cash - 10000)
            check(problems, "F's average price", result["position_avg_price"], D(100))
        check(problems, "multipliers (stale?)", multipliers(obs, symbol), (D(50), [D(50)]))
        check(problems, "version and cash", summary(obs, pid), (version + 1, cash - 10000))
        problems += failed_checks(obs, pid)
    return finish(run, problems)


def fill_then_change(conninfo: str) -> Result:
    """READ COMMITTED. F opens a position in a symbol without an instrument row (multiplier
    1) in an open transaction. U's change of the multiplier to 50 must wait for F on the
    positions table, and once F commits, find the symbol held: PF007, nothing changed."""
    problems: list[str] = []
    with Interleaving(conninfo, ["U", "F"], settings=SETTINGS) as run:
        obs = run.observer
        pid = create_portfolio(obs, "1000000")
        symbol = f"MUL.B{pid}"
        version, cash = summary(obs, pid)
        run.run(
            [
                step("F", "BEGIN"),
                step("F", FILL, (pid, symbol, D(2), D(100)), label="F opens the symbol"),
                step(
                    "U",
                    UPSERT,
                    (symbol, D(50)),
                    expect=BLOCKS,
                    blocked_by=["F"],
                    label="U sets multiplier 50",
                ),
            ]
        )
        check_waits_on_positions_table(
            problems, "U", run.transcript.by_label("U sets multiplier 50").waited, "ShareLock"
        )
        run.do(step("F", "COMMIT"))
        u = run.do(resume("U", expect=error("PF007"), label="U resumes"))
        check(problems, "PF007 detail", u.detail, "Multiplier 1, asked 50; 1 open position(s).")
        # The refused call's instrument row (it had none) went with its statement.
        check(problems, "multipliers", multipliers(obs, symbol), (None, [D(1)]))
        check(problems, "version and cash", summary(obs, pid), (version + 1, cash - 200))
        problems += failed_checks(obs, pid)
    return finish(run, problems)


def test_a_fill_waits_for_a_multiplier_change_and_uses_it(shared_db: str) -> None:
    result = change_then_fill(shared_db)
    assert result.problems == [], result.report()


def test_a_multiplier_change_waits_for_a_fill_and_is_refused(shared_db: str) -> None:
    result = fill_then_change(shared_db)
    assert result.problems == [], result.report()


def test_stale_multiplier_caught_without_the_positions_table_lock(db: str) -> None:
    # Without its LOCK TABLE the fill reads multiplier 1 while U's change is uncommitted;
    # it still waits, at its INSERT into positions, and then opens at the value it read:
    # a position at 1 in a symbol whose instrument says 50.
    install_broken_variant(db, "no_multiplier_table_lock")
    result = change_then_fill(db)
    assert any(p.startswith("multipliers (stale?)") for p in result.problems), result.report()
    assert any(p.startswith("F's cash") for p in result.problems), result.report()


# case: the symbol had an instrument row (multiplier 10) before the change, or the change
# created it
REPEATABLE_READ_CASES = {"row_changed": D(10), "row_created": None}


def change_after_snapshot(conninfo: str, case: str) -> Result:
    """REPEATABLE READ. F's snapshot is taken; then U commits a new multiplier (50) for a
    symbol nobody holds. F's fill opening that symbol cannot see the change in its snapshot:
    it must fail with 40001 (retryable), not open at the old multiplier. Retried in a new
    transaction it opens at 50."""
    before = REPEATABLE_READ_CASES[case]
    problems: list[str] = []
    with Interleaving(conninfo, ["U", "F"], settings=SETTINGS) as run:
        obs = run.observer
        pid = create_portfolio(obs, "1000000")
        symbol = f"MUL.R{pid}"
        if before is not None:
            obs.execute(UPSERT, (symbol, before))
        version, cash = summary(obs, pid)
        run.run(
            [
                step("F", "BEGIN ISOLATION LEVEL REPEATABLE READ"),
                step("F", VERSION, (pid,), label="F takes its snapshot"),
                step("U", UPSERT, (symbol, D(50)), label="U sets multiplier 50 and commits"),
                step(
                    "F",
                    FILL,
                    (pid, symbol, D(2), D(100)),
                    expect=error("40001"),
                    label="F opens the symbol in its old snapshot",
                ),
                # After the error this ends the transaction as a ROLLBACK; had the fill
                # gone through, it commits what the fill did.
                step("F", "COMMIT"),
            ]
        )
        check(problems, "after the refused fill", summary(obs, pid), (version, cash))
        run.run(
            [
                step("F", "BEGIN ISOLATION LEVEL REPEATABLE READ"),
                step("F", FILL, (pid, symbol, D(2), D(100)), label="F retries"),
                step("F", "COMMIT"),
            ]
        )
        check(problems, "multipliers (stale?)", multipliers(obs, symbol), (D(50), [D(50)]))
        check(problems, "version and cash", summary(obs, pid), (version + 1, cash - 10000))
        problems += failed_checks(obs, pid)
    return finish(run, problems)


@pytest.mark.parametrize("case", REPEATABLE_READ_CASES)
def test_a_fill_whose_snapshot_predates_a_multiplier_change_is_refused(
    shared_db: str, case: str
) -> None:
    result = change_after_snapshot(shared_db, case)
    assert result.problems == [], result.report()


@pytest.mark.parametrize("case", REPEATABLE_READ_CASES)
def test_stale_multiplier_caught_without_multiplier_changes_for_share(db: str, case: str) -> None:
    # Without the FOR SHARE the fill opens at the multiplier its snapshot shows (10, or 1
    # without a row) and commits; the instrument says 50.
    install_broken_variant(db, "no_multiplier_changes_share")
    result = change_after_snapshot(db, case)
    joined = "\n".join(result.problems)
    assert "F opens the symbol in its old snapshot): expected error:40001, got ok" in joined, (
        result.report()
    )
    assert "multipliers (stale?)" in joined, result.report()
