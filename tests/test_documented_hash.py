"""docs/sql-api.md, "Event log integrity", gives the formula of an event's chain hash, for
anyone to recompute outside the database. This reads the formula from the page itself and
checks it against every event of a workload that fills every column: the page cannot
drift from _event_hash (sql/034_events.sql) without this failing."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal as D
from pathlib import Path

import psycopg

from pgportfolio import PortfolioClient

SQL_API = Path(__file__).resolve().parents[1] / "docs" / "sql-api.md"


def documented_formula() -> str:
    """The right-hand side of ``chain_hash(v) = ...`` in the page's code block, with the
    previous event's hash named ``previous_hash``."""
    text = SQL_API.read_text(encoding="utf-8")
    section = text[text.index("**Event log integrity.**") :]
    block = re.search(r"```\n(chain_hash\(v\) = .*?)```", section, re.S)
    assert block is not None, "no chain_hash(v) = ... block under 'Event log integrity'"
    formula = block.group(1).split("=", 1)[1]
    assert "chain_hash(v - 1)" in formula
    return formula.replace("chain_hash(v - 1)", "previous_hash")


def test_the_documented_chain_hash_is_the_stored_one(db: str) -> None:
    with PortfolioClient(db, min_size=1, max_size=1) as client:
        client.upsert_instrument("DOCFUT", D(50), "a future")
        pid = client.create_portfolio("documented hash", D(1_000_000))
        client.deposit_cash(pid, D("250.50"), request_id="doc-deposit")
        client.apply_fill(
            pid,
            "DOCFUT",
            D("2.5"),
            D("4100.25"),
            fee=D("1.20"),
            request_id="doc-open",
            executed_at=datetime(2026, 12, 1, 14, 30, 0, 123456, tzinfo=UTC),
            order_id="ord-1",
            tags={"account": "A1", "venue": "XCME"},
        )
        client.apply_fill(pid, "DOCFUT", D(-1), D("4120"), request_id="doc-reduce")
        client.apply_fill(pid, "AAPL", D(10), D("189.5"))
        client.close_position(pid, "AAPL", D("190"), fee=D("0.5"))
        client.charge_fee(pid, D("3"))
        client.withdraw_cash(pid, D(100))
    with psycopg.connect(db) as conn:
        rows = conn.execute(
            f"""
            SELECT e.portfolio_version, e.chain_hash = {documented_formula()} AS matches
            FROM (
                SELECT e.*, coalesce(p.chain_hash, ''::bytea) AS previous_hash
                FROM pgportfolio.events AS e
                LEFT JOIN pgportfolio.events AS p
                    ON p.portfolio_id = e.portfolio_id
                    AND p.portfolio_version = e.portfolio_version - 1
                WHERE e.portfolio_id = %s
            ) AS e
            ORDER BY e.portfolio_version
            """,
            [pid],
        ).fetchall()
    assert len(rows) == 8
    assert [version for version, matches in rows if not matches] == []
