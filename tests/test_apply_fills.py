"""apply_fills must be apply_fill, many at a time: the same results, errors and events.

A seeded random stream of fills (opens, adds, reductions, closes, flips, refusals,
replayed and reused request ids, stale and current expected versions) is applied once
through apply_fill, one call per fill, and once through apply_fills in batches of random
sizes; the per-element outcomes and the resulting event logs must be identical.
"""

from __future__ import annotations

import json
import random
from decimal import Decimal
from typing import Any

import psycopg
import pytest

EVENT_COLUMNS = (
    "portfolio_id, portfolio_version, kind, operation, symbol, quantity, price, fee, cash_delta,"
    " realized_pnl, cash_balance, position_quantity, request_id"
)
Outcome = tuple[Any, ...]


def _stream(rng: random.Random, portfolios: list[int], n: int) -> list[dict[str, Any]]:
    fills: list[dict[str, Any]] = []
    for i in range(n):
        fill: dict[str, Any] = {
            "portfolio_id": rng.choice(portfolios),
            "symbol": rng.choice(["AAA", "BBB", "CCC"]),
            "quantity": str(
                Decimal(rng.randint(1, 40)) / rng.choice([1, 3, 8]) * rng.choice([1, -1])
            )[:10],
            "price": str(Decimal(rng.randint(100, 20000)) / 100),
            "fee": str(Decimal(rng.randint(0, 300)) / 100),
        }
        roll = rng.random()
        if roll < 0.5:
            fill["request_id"] = f"r{i}"
        elif roll < 0.6 and fills:
            old = rng.choice(fills)  # a replay, same or changed arguments
            fill = dict(old) if rng.random() < 0.5 else {**old, "price": "1"}
        elif roll < 0.7:
            fill["expected_version"] = rng.randint(1, 40)
        elif roll < 0.72:
            fill["symbol"] = "bad symbol"
        elif roll < 0.74:
            fill["quantity"] = "1.123456789"
        fills.append(fill)
    return fills


def _fresh(conninfo: str, cash: list[str]) -> list[int]:
    with psycopg.connect(conninfo, autocommit=True) as conn:
        return [
            int(
                conn.execute(
                    "SELECT pgportfolio.create_portfolio('batch', %s)", (Decimal(c),)
                ).fetchone()[0]
            )  # type: ignore[index]
            for c in cash
        ]


def _one_by_one(conninfo: str, fills: list[dict[str, Any]]) -> list[Outcome]:
    outcomes: list[Outcome] = []
    with psycopg.connect(conninfo, autocommit=True) as conn:
        for f in fills:
            try:
                row = conn.execute(
                    "SELECT portfolio_version, cash_balance, position_quantity,"
                    " position_avg_price, realized_pnl, duplicate"
                    " FROM pgportfolio.apply_fill("
                    "%s, %s, %s::numeric, %s::numeric, %s::numeric, %s, %s)",
                    (
                        f["portfolio_id"],
                        f["symbol"],
                        f["quantity"],
                        f["price"],
                        f["fee"],
                        f.get("request_id"),
                        f.get("expected_version"),
                    ),
                ).fetchone()
                assert row is not None
                outcomes.append((None, *row))
            except psycopg.Error as exc:
                outcomes.append((exc.sqlstate,))
    return outcomes


def _batched(conninfo: str, fills: list[dict[str, Any]], rng: random.Random) -> list[Outcome]:
    outcomes: list[Outcome] = []
    with psycopg.connect(conninfo, autocommit=True) as conn:
        start = 0
        while start < len(fills):
            size = rng.choice([1, 2, 5, 17, 50])
            batch = fills[start : start + size]
            rows = conn.execute(
                "SELECT sqlstate, portfolio_version, cash_balance, position_quantity,"
                " position_avg_price, realized_pnl, duplicate"
                " FROM pgportfolio.apply_fills(%s::jsonb) ORDER BY item",
                (json.dumps(batch),),
            ).fetchall()
            assert len(rows) == len(batch)
            outcomes += [(r[0],) if r[0] is not None else tuple(r) for r in rows]
            start += size
    return outcomes


def _events(conninfo: str, first_id: int) -> list[tuple[Any, ...]]:
    with psycopg.connect(conninfo) as conn:
        rows = conn.execute(
            f"SELECT {EVENT_COLUMNS} FROM pgportfolio.event_log"
            " WHERE portfolio_id >= %s ORDER BY portfolio_id, portfolio_version",
            (first_id,),
        ).fetchall()
        positions = conn.execute(
            "SELECT portfolio_id, symbol, quantity, cost_basis, realized_pnl, version"
            " FROM pgportfolio.position_pnl WHERE portfolio_id >= %s ORDER BY 1, 2",
            (first_id,),
        ).fetchall()
    # Portfolio ids differ between the two runs; compare relative to the first one.
    return [(r[0] - first_id, *r[1:]) for r in rows] + [
        (p[0] - first_id, *p[1:]) for p in positions
    ]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_batches_equal_single_calls(
    database_factory: Any, template_database: str, seed: int
) -> None:
    single_db = database_factory(template=template_database)
    batch_db = database_factory(template=template_database)
    cash = ["2000", "500", "100000"]
    single_ids = _fresh(single_db, cash)
    batch_ids = _fresh(batch_db, cash)
    fills = _stream(random.Random(seed), single_ids, 300)
    expected = _one_by_one(single_db, fills)
    got = _batched(batch_db, fills, random.Random(seed + 100))
    assert got == expected
    assert _events(batch_db, batch_ids[0]) == _events(single_db, single_ids[0])
    refused = {o[0] for o in expected if o[0] is not None}
    assert {"22023", "PF001", "PF002", "PF005"} <= refused  # the stream exercised refusals
    with psycopg.connect(batch_db) as conn:
        for pid in batch_ids:
            bad = conn.execute(
                "SELECT check_name FROM pgportfolio.verify_portfolio(%s) WHERE NOT ok", (pid,)
            ).fetchall()
            assert bad == []


def test_comparison_detects_a_difference(database_factory: Any, template_database: str) -> None:
    """Negative control: one extra fill on one side must show up."""
    a = database_factory(template=template_database)
    b = database_factory(template=template_database)
    ids_a, ids_b = _fresh(a, ["1000"]), _fresh(b, ["1000"])
    fills = [
        {"portfolio_id": ids_a[0], "symbol": "AAA", "quantity": "1", "price": "10", "fee": "0"}
    ]
    _one_by_one(a, fills)
    _batched(b, [{**fills[0], "portfolio_id": ids_b[0], "quantity": "2"}], random.Random(0))
    assert _events(a, ids_a[0]) != _events(b, ids_b[0])


def test_malformed_batches(db: str) -> None:
    with psycopg.connect(db, autocommit=True) as conn:
        for bad in ('{"not": "an array"}', '[{"portfolio_id": "x"}]', "null"):
            with pytest.raises(psycopg.errors.InvalidParameterValue):
                conn.execute("SELECT * FROM pgportfolio.apply_fills(%s::jsonb)", (bad,))
        assert conn.execute("SELECT count(*) FROM pgportfolio.apply_fills('[]')").fetchone() == (0,)
