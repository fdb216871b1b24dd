"""Deliberately broken copies of the ledger's functions, for negative controls.

Each variant rewrites the installed definition of ``pgportfolio._execute_fill`` (and
``_execute_cash`` where it applies) with a small text change. A rewrite that finds
nothing to change raises, so a negative control can never pass by doing nothing.
"""

from __future__ import annotations

from collections.abc import Callable

import psycopg

FILL = "pgportfolio._execute_fill(text,bigint,text,numeric,numeric,numeric,text,bigint)"
CASH = "pgportfolio._execute_cash(text,bigint,numeric,text,bigint)"

PORTFOLIO_LOCK = (
    "SELECT * INTO v_portfolio FROM pgportfolio.portfolios "
    "WHERE portfolio_id = p_portfolio_id FOR UPDATE;"
)
POSITION_LOCK = (
    "SELECT * INTO v_position FROM pgportfolio.positions\n"
    "    WHERE portfolio_id = p_portfolio_id AND symbol = p_symbol\n"
    "    FOR UPDATE;\n"
    "    v_has_position := FOUND;"
)


def _no_for_update(source: str) -> str:
    return source.replace("FOR UPDATE;", ";")


def _no_version_check(source: str) -> str:
    return source.replace(
        "p_expected_version <> v_portfolio.version", "p_expected_version <> p_expected_version"
    )


def _lock_order_reversed(source: str) -> str:
    # Position first, portfolio second: the order STYLE.md forbids.
    swapped = source.replace(PORTFOLIO_LOCK, "__PORTFOLIO_LOCK__")
    swapped = swapped.replace(POSITION_LOCK, PORTFOLIO_LOCK)
    return swapped.replace("__PORTFOLIO_LOCK__", POSITION_LOCK)


VARIANTS: dict[str, tuple[Callable[[str], str], tuple[str, ...]]] = {
    "no_for_update": (_no_for_update, (FILL, CASH)),
    "no_version_check": (_no_version_check, (FILL, CASH)),
    "lock_order_reversed": (_lock_order_reversed, (FILL,)),
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
