"""Deliberately broken copies of the ledger's functions, for negative controls.

Each variant rewrites the installed definition of ``pgportfolio._apply_operations``, the
one definition of what every mutation does, with a small text change. A rewrite that finds
nothing to change raises, so a negative control can never pass by doing nothing.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import psycopg

CORE = (
    "pgportfolio._apply_operations(text[],bigint[],text[],numeric[],numeric[],numeric[],numeric[],"
    "text[],bigint[],timestamptz[],text[],jsonb[])"
)

# The two lock statements of the core, each from its first line to the line after it.
PORTFOLIO_LOCK = re.compile(
    r"( *)FOR v_row IN\n(?: *--[^\n]*\n)* *SELECT u\.slot, p\.cash_balance.*?END LOOP;\n",
    re.DOTALL,
)
# The last line of the core's events insert.
EVENTS_INSERT_END = "WHERE f_kind[i] IS NOT NULL;"
POSITION_LOCK = re.compile(
    r"( *)IF k_pid IS NOT NULL THEN\n *k_existed := array_fill.*?END LOOP;\n *END IF;\n",
    re.DOTALL,
)


# The core's writes reach each row by the tuple id its lock returned; a naive
# implementation writes by key.
WRITES_BY_TUPLE_ID = {
    "p.ctid = s_row[s]": "p.portfolio_id = s_id[s]",
    "p.ctid = k_row[k]": "p.portfolio_id = k_pid[k] AND p.symbol = k_symbol[k]",
}


def _no_for_update(source: str) -> str:
    # Without its row locks the core still cannot lose an update: two calls that read the
    # same version both write that version's successor, and the events' key refuses the
    # second (23505). An implementation with neither guard is what this variant stands
    # for, so it also lets the events insert skip a clash. And it writes by key: a write
    # by the tuple id read without a lock skips a row changed since (an update lost
    # without a trace in the ledger, which the variant is not meant to stand for).
    unlocked = re.sub(r"FOR UPDATE( OF \w+)?", "", source)
    for by_tuple_id, by_key in WRITES_BY_TUPLE_ID.items():
        if by_tuple_id not in unlocked:
            raise AssertionError(f"no_for_update: the core no longer writes by {by_tuple_id!r}")
        unlocked = unlocked.replace(by_tuple_id, by_key)
    if EVENTS_INSERT_END not in unlocked:
        # Without this half the variant fails safe (23505) and proves nothing.
        raise AssertionError(f"no_for_update: no events insert ending {EVENTS_INSERT_END!r}")
    return unlocked.replace(EVENTS_INSERT_END, EVENTS_INSERT_END[:-1] + " ON CONFLICT DO NOTHING;")


def _no_version_check(source: str) -> str:
    return source.replace(
        "p_expected_versions[i] <> s_version[ps]",
        "p_expected_versions[i] <> p_expected_versions[i]",
    )


def _lock_order_reversed(source: str) -> str:
    # Positions first, portfolio second: the order STYLE.md forbids.
    portfolio = PORTFOLIO_LOCK.search(source)
    position = POSITION_LOCK.search(source)
    if portfolio is None or position is None or portfolio.end() > position.start():
        return source
    return (
        source[: portfolio.start()]
        + position.group(0)
        + portfolio.group(0)
        + source[portfolio.end() : position.start()]
        + source[position.end() :]
    )


# The locks a fill that opens a position takes before it reads the instrument's multiplier.
MULTIPLIER_TABLE_LOCK = "LOCK TABLE pgportfolio.positions IN ROW EXCLUSIVE MODE;"
MULTIPLIER_CHANGES_SHARE = "PERFORM FROM pgportfolio.multiplier_changes FOR SHARE;"


def _no_multiplier_table_lock(source: str) -> str:
    # The fill reads the multiplier while a change may be in progress, and only waits for
    # it at its INSERT into positions, holding the value it read before the change.
    return source.replace(MULTIPLIER_TABLE_LOCK, "NULL;")


def _no_multiplier_changes_share(source: str) -> str:
    # At REPEATABLE READ the fill reads the multiplier from its snapshot, which cannot see
    # a change committed after it began.
    return source.replace(MULTIPLIER_CHANGES_SHARE, "NULL;")


VARIANTS: dict[str, tuple[Callable[[str], str], tuple[str, ...]]] = {
    "no_for_update": (_no_for_update, (CORE,)),
    "no_version_check": (_no_version_check, (CORE,)),
    "lock_order_reversed": (_lock_order_reversed, (CORE,)),
    "no_multiplier_table_lock": (_no_multiplier_table_lock, (CORE,)),
    "no_multiplier_changes_share": (_no_multiplier_changes_share, (CORE,)),
}


def install_broken_variant(conninfo: str, variant: str) -> None:
    rewrite, functions = VARIANTS[variant]
    with psycopg.connect(conninfo, autocommit=True) as conn:
        for function in functions:
            row = conn.execute(
                "SELECT pg_get_functiondef(%s::regprocedure)", (function,)
            ).fetchone()
            assert row is not None
            source: str = row[0]
            broken = rewrite(source)
            if broken == source:
                raise AssertionError(f"variant {variant} changed nothing in {function}")
            conn.execute(broken.encode())
