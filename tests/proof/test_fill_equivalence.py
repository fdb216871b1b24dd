"""A fill's effect is defined once: the single calls and apply_fills agree exactly (issue 10).

The same operations (fills with signed quantities, prices, fees, request ids new and
repeated with the same or other arguments, expected versions right and wrong, and cash
moves) go one public call each to side A, and through apply_fills to side B (random
chunks) and side C (one chunk). Results, refusals with their texts, events, final
portfolios and positions must be identical, and verify_portfolio clean on every side;
see tests/support/fill_equivalence.py for what is compared and how.

The negative control installs a copy of the batch path (apply_fills, apply_fills_arrays
and the operations core they call) whose cash floor is off by one unit, while the single
calls keep the real core, and requires the same comparison to catch it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, Phase, given, seed, settings
from psycopg.conninfo import make_conninfo

from tests.conftest import DatabaseFactory
from tests.proof.conftest import SOAK
from tests.support.fill_equivalence import (
    Comparison,
    Mismatch,
    Program,
    Step,
    compare_program,
    is_cash_floor_mismatch,
    program_strategy,
)

BATCH = "pgportfolio.apply_fills"
BROKEN_BATCH = "equiv_broken.apply_fills"
FLOOR = "s_cash[ps] + v_cash_delta < 0"
BROKEN_FLOOR = "s_cash[ps] + v_cash_delta < -1"
# The batch path, outermost first: each calls the next, and the last holds the floor.
BATCH_PATH = (
    "pgportfolio.apply_fills(jsonb)",
    "pgportfolio.apply_fills_arrays(bigint[], text[], numeric[], numeric[], numeric[], text[],"
    " bigint[], text[], numeric[], timestamptz[], text[], jsonb[])",
    "pgportfolio._apply_operations(text[], bigint[], text[], numeric[], numeric[], numeric[],"
    " numeric[], text[], bigint[], timestamptz[], text[], jsonb[])",
)

# Programs per property run and steps per program: about 5 s in CI (a passing run), the
# soak run (make soak) about 40 times more work.
EXAMPLES = 3_000 if SOAK else 150
MAX_STEPS = 60 if SOAK else 40


@pytest.fixture(scope="module")
def equiv_conn(
    database_factory: DatabaseFactory, template_database: str
) -> Iterator[psycopg.Connection[Any]]:
    """A database of this module's own (the negative control adds a function to it).
    Asynchronous commit: the database is thrown away, and durability is not what is
    compared here."""
    conninfo = make_conninfo(
        database_factory(template=template_database), options="-c synchronous_commit=off"
    )
    with psycopg.connect(conninfo, autocommit=True) as conn:
        yield conn


def _settings(examples: int) -> settings:
    # No shrinking: a failure prints every mismatch of the program and the whole program,
    # and shrinking a program of database calls can take minutes.
    return settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        phases=[Phase.explicit, Phase.generate],
    )


def _fill(
    portfolio: int,
    symbol: str,
    quantity: tuple[str, ...],
    price: tuple[str, ...] = ("lit", "1"),
    fee: str | None = None,
    request: tuple[Any, ...] = ("none",),
    expected: tuple[Any, ...] = ("none",),
) -> Step:
    return Step(
        portfolio,
        "apply_fill",
        False,
        symbol,
        quantity,
        price,
        fee,
        ("lit", "1"),
        request,
        expected,
    )


def _cash(
    portfolio: int,
    operation: str,
    amount: tuple[str, ...],
    request: tuple[Any, ...] = ("none",),
    expected: tuple[Any, ...] = ("none",),
) -> Step:
    return Step(
        portfolio,
        operation,
        True,
        None,
        ("missing",),
        ("lit", "1"),
        None,
        amount,
        request,
        expected,
    )


# Each edge of the brief, with what the single call must answer ("ok" or a SQLSTATE).
EDGES: tuple[tuple[Step, str], ...] = (
    (_cash(0, "deposit_cash", ("lit", "1")), "ok"),  # 101
    (_cash(0, "withdraw_cash", ("cash_edge", "0.00000001")), "PF002"),  # short by 10^-8
    (_fill(0, "AAA", ("lit", "1"), ("lit", "10")), "ok"),  # 91
    (_cash(0, "charge_fee", ("cash_edge", "0.5")), "PF002"),
    (_fill(0, "BBB", ("lit", "1"), ("cash_edge", "0.99999999"), fee="1"), "PF002"),
    (_fill(0, "BBB", ("lit", "1"), ("cash_edge", "0"), fee="1"), "ok"),  # cash exactly 0
    (_cash(0, "withdraw_cash", ("lit", "0.00000001")), "PF002"),
    (_fill(0, "AAA", ("near_close",), ("lit", "10")), "ok"),  # 0.00000001 AAA left
    (_fill(0, "AAA", ("past_close",), ("lit", "10")), "ok"),  # flipped to -0.00000001
    (_fill(0, "AAA", ("flip",), ("lit", "10")), "ok"),  # +0.00000001
    (_cash(0, "deposit_cash", ("lit", "100")), "ok"),
    (_fill(0, "AAA", ("flip",), ("lit", "10")), "ok"),  # -0.00000001
    (_fill(0, "AAA", ("close",), ("lit", "10")), "ok"),
    (_fill(0, "BBB", ("flip",), ("lit", "3")), "ok"),  # long 1 to short 1
    (_fill(0, "CCC", ("lit", "1"), request=("fresh",)), "ok"),
    (_fill(0, "CCC", ("lit", "1"), request=("same", 14)), "ok"),  # a duplicate
    (_fill(0, "CCC", ("lit", "1"), request=("changed", 3)), "PF005"),  # pool: ids only
    (_fill(0, "CCC", ("lit", "1"), request=("same_other_portfolio", 3)), "ok"),
    (_fill(0, "CCC", ("lit", "1"), expected=("right",)), "ok"),
    (_fill(0, "CCC", ("lit", "1"), expected=("wrong", -1)), "PF001"),
    (_fill(0, "CCC", ("lit", "1"), expected=("invalid", 0)), "22023"),
    (_fill(0, "AAA", ("lit", "1.5")), "ok"),  # reopens AAA, closed above: a new row
    (_fill(0, "AAA", ("close",)), "ok"),
    (_fill(0, "AAA", ("lit", "2")), "ok"),  # flat at 0.0 just before, in one batch
    (_cash(1, "withdraw_cash", ("cash_edge", "0")), "ok"),  # cash exactly 0
    (_cash(1, "deposit_cash", ("lit", "20000000")), "ok"),
    # Positions at 10^15 - 10^-8, long and short; one more 10^-8 is out of range.
    (_fill(1, "BIG", ("limit", "1", "0.00000001"), ("lit", "0.00000001")), "ok"),
    (_fill(1, "BIG", ("lit", "0.00000001"), ("lit", "0.00000001")), "22023"),
    (_fill(1, "BIG", ("limit", "1", "0"), ("lit", "0.00000001")), "22023"),
    (_fill(1, "BIG", ("close",), ("lit", "0.00000001")), "ok"),
    (_fill(1, "BIG", ("limit", "-1", "0.00000001"), ("lit", "0.00000001")), "ok"),
    (_fill(1, "BIG", ("lit", "-0.00000001"), ("lit", "0.00000001")), "22023"),
    (_fill(1, "AAA", ("lit", "0")), "22023"),
    (_fill(1, "AAA", ("lit", "1"), ("lit", "-1")), "22023"),
    (_fill(1, "AAA", ("lit", "1.123456789")), "22023"),
    (_fill(1, "AAA", ("lit", "1"), fee="0.000000001"), "22023"),
    (_fill(1, "aaa", ("lit", "1")), "22023"),
    (_cash(1, "deposit_cash", ("lit", "0")), "22023"),
    (_cash(1, "deposit_cash", ("lit", "1.123456789")), "22023"),
)
EDGE_PROGRAM = Program(
    initial_cash=("100", "20000000"),
    steps=tuple(step for step, _ in EDGES),
    chunks=(1, 3, 2, 5, 7),
)


def _assert_equal(comparison: Comparison) -> None:
    assert not comparison.mismatches, (
        f"{len(comparison.mismatches)} differences between the single calls and apply_fills:\n"
        + comparison.report()
    )


def test_edges_single_calls_equal_batches(equiv_conn: psycopg.Connection[Any]) -> None:
    comparison = compare_program(equiv_conn, EDGE_PROGRAM, BATCH)
    # The program means what it says: each single call answered as the script expects.
    answers = [o[0] if o[0] == "ok" else o[1] for o in comparison.single]
    expected = [answer for _, answer in EDGES]
    assert answers == expected, comparison.report()
    duplicate = comparison.single[15]
    assert duplicate[0] == "ok", duplicate
    assert duplicate[-1] is True, duplicate
    assert comparison.operations[17].args["request_id"] == "r14"
    # Overdrawn by 10^-8 with neighbours that commit, in one apply_fills call and in
    # several: compared element by element with the single calls.
    _assert_equal(comparison)


def test_random_programs_single_calls_equal_batches(
    equiv_conn: psycopg.Connection[Any], proof_seed: int
) -> None:
    seen: set[str] = set()

    @seed(proof_seed)
    @settings(_settings(EXAMPLES))
    @given(program_strategy(MAX_STEPS))
    def prop(program: Program) -> None:
        comparison = compare_program(equiv_conn, program, BATCH)
        seen.update(o[0] if o[0] == "ok" else o[1] for o in comparison.single)
        seen.update("duplicate" for o in comparison.single if o[0] == "ok" and o[-1] is True)
        _assert_equal(comparison)

    prop()
    # The programs reached every kind of answer, not only the easy ones.
    assert {"ok", "duplicate", "22023", "PF001", "PF002", "PF005"} <= seen, seen


def _install_broken_batch(conn: psycopg.Connection[Any]) -> None:
    """Copy the batch path into schema equiv_broken, each copy calling the next copy, with
    the cash floor of the copied core off by one unit."""
    conn.execute("CREATE SCHEMA IF NOT EXISTS equiv_broken")
    names = [signature.split("(")[0] for signature in BATCH_PATH]
    for signature in BATCH_PATH:
        row = conn.execute("SELECT pg_get_functiondef(%s::regprocedure)", (signature,)).fetchone()
        assert row is not None
        source: str = row[0]
        for name in names:
            # The rewrite must change exactly what it says, or the control proves nothing.
            source = source.replace(f"{name}(", name.replace("pgportfolio.", "equiv_broken.") + "(")
        if signature == BATCH_PATH[-1]:
            assert source.count(FLOOR) == 1, (
                "the core's cash floor is written otherwise: update FLOOR"
            )
            source = source.replace(FLOOR, BROKEN_FLOOR)
        assert source.count("CREATE OR REPLACE FUNCTION equiv_broken.") == 1
        conn.execute(source.encode())


def test_negative_control_cash_floor_off_by_one_is_caught(
    equiv_conn: psycopg.Connection[Any], proof_seed: int
) -> None:
    _install_broken_batch(equiv_conn)

    # The scripted edges: overdrawn by 10^-8, by 0.5 and by 0.99999999.
    scripted = compare_program(equiv_conn, EDGE_PROGRAM, BROKEN_BATCH)
    assert any(is_cash_floor_mismatch(m) for m in scripted.mismatches), scripted.report()

    # The random property, the same programs as above: it must report the defect too.
    caught: list[Mismatch] = []

    @seed(proof_seed)
    @settings(_settings(EXAMPLES))
    @given(program_strategy(MAX_STEPS))
    def prop(program: Program) -> None:
        if caught:
            return
        comparison = compare_program(equiv_conn, program, BROKEN_BATCH)
        caught.extend(m for m in comparison.mismatches if is_cash_floor_mismatch(m))

    prop()
    assert caught, (
        f"{EXAMPLES} random programs never told apart an apply_fills whose cash floor is off"
        " by one unit"
    )
    print(f"\nnegative control caught:\n{caught[0]}")
