"""The ``import`` scenario: a generated CSV of fills imported into one portfolio, timed,
the result checked against an independent computation, then the same file imported again.

``write_fills_csv`` writes the file and, row by row, replays it in ``ReplayModel``: the
ledger's money rules (sql/128_operations.sql) written again in Python, decimal for
decimal, so that the portfolio the import produced can be compared with what it should
be (cash, and every position's quantity, cost basis and realized P&L), exactly. The
tests use the same pieces on a small file (tests/test_import.py).
"""

from __future__ import annotations

import asyncio
import random
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Context, Decimal
from pathlib import Path

from pgportfolio import AsyncPortfolioClient
from pgportfolio.bench.database import INITIAL_CASH
from pgportfolio.bench.harness import Bench, Variant
from pgportfolio.bench.measure import MachineClock, Measurement
from pgportfolio.bench.results import ScenarioResult
from pgportfolio.importer import DEFAULT_CHUNK, ImportReport, import_fills
from pgportfolio.models import PortfolioSnapshot, VerificationCheck

# Wide enough that no sum, product or quotient here is ever rounded by the context: the
# only roundings are the ledger's own, written out below.
_EXACT = Context(prec=400)
_ONE = Decimal(1)
_PLACES_16 = Decimal("1E-16")
NBASE_DIGITS = 4  # PostgreSQL's numeric keeps base-10,000 digits


def _trim(value: Decimal) -> Decimal:
    """trim_scale(): the fewest decimal places that hold the value (none for integers)."""
    if value == 0:
        return Decimal(0)
    value = value.normalize(_EXACT)
    return value.quantize(_ONE) if value.as_tuple().exponent > 0 else value  # type: ignore[operator]


def _scale(value: Decimal) -> int:
    exponent = value.as_tuple().exponent
    assert isinstance(exponent, int)
    return max(0, -exponent)


def _weight_and_first_digit(value: Decimal) -> tuple[int, int]:
    """The position of a nonzero value's leading base-10,000 digit, and that digit."""
    weight = value.copy_abs().adjusted() // NBASE_DIGITS
    return weight, int(value.copy_abs().scaleb(-NBASE_DIGITS * weight, _EXACT))


def pg_divide(dividend: Decimal, divisor: Decimal) -> Decimal:
    """numeric division as PostgreSQL does it (select_div_scale in numeric.c): the
    quotient rounded half away from zero to at least 16 significant digits and at least
    the scale of either operand."""
    weight1, first1 = _weight_and_first_digit(dividend)
    weight2, first2 = _weight_and_first_digit(divisor)
    qweight = weight1 - weight2 - (1 if first1 <= first2 else 0)
    rscale = max(16 - qweight * NBASE_DIGITS, _scale(dividend), _scale(divisor), 0)
    rscale = min(rscale, 1000)
    exact = _EXACT.divide(dividend, divisor)
    return exact.quantize(Decimal(1).scaleb(-rscale), rounding=ROUND_HALF_UP, context=_EXACT)


@dataclass
class PositionModel:
    quantity: Decimal = Decimal(0)
    cost_basis: Decimal = Decimal(0)
    realized_pnl: Decimal = Decimal(0)  # since the position last opened from flat


@dataclass
class ReplayModel:
    """A portfolio's cash and positions after each fill, by the ledger's rules."""

    cash: Decimal
    realized_pnl: Decimal = Decimal(0)
    fills: int = 0
    positions: dict[str, PositionModel] = field(default_factory=dict)

    def fill(self, symbol: str, quantity: Decimal, price: Decimal, fee: Decimal) -> None:
        quantity, price, fee = _trim(quantity), _trim(price), _trim(fee)
        position = self.positions.setdefault(symbol, PositionModel())
        held, basis = position.quantity, position.cost_basis
        new_quantity = held + quantity
        if held == 0:  # open
            new_basis = quantity * price
            position.realized_pnl = Decimal(0)
        elif (quantity > 0) == (held > 0):  # add
            new_basis = basis + quantity * price
        elif new_quantity == 0:  # close
            new_basis = Decimal(0)
        elif (new_quantity > 0) == (held > 0):  # reduce: basis removed in proportion
            share = pg_divide(
                basis * abs(quantity) * Decimal("1.0000000000000000000000"), abs(held)
            )
            new_basis = basis - _trim(share.quantize(_PLACES_16, rounding=ROUND_HALF_UP))
        else:  # flip
            new_basis = new_quantity * price
        cash_delta = -(quantity * price) - fee
        realized = new_basis - basis + cash_delta
        self.cash += cash_delta
        self.realized_pnl += realized
        position.realized_pnl += realized
        position.quantity = Decimal(0) if new_quantity == 0 else new_quantity
        position.cost_basis = new_basis
        self.fills += 1

    def open_positions(self) -> dict[str, PositionModel]:
        return {s: p for s, p in self.positions.items() if p.quantity != 0}

    def differences(self, snapshot: PortfolioSnapshot, fills_before: int = 1) -> list[str]:
        """What differs between the model and the ledger's snapshot (empty: nothing).
        ``fills_before``: the events the portfolio had before the import (its creation)."""
        found: list[str] = []

        def compare(what: str, expected: object, actual: object) -> None:
            if expected != actual:
                found.append(f"{what}: expected {expected}, found {actual}")

        compare("cash", self.cash, snapshot.cash_balance)
        compare("realized P&L", self.realized_pnl, snapshot.realized_pnl)
        compare("version", fills_before + self.fills, snapshot.version)
        open_positions = self.open_positions()
        compare("open symbols", sorted(open_positions), sorted(snapshot.positions))
        for symbol, model in sorted(open_positions.items()):
            actual = snapshot.positions.get(symbol)
            if actual is not None:
                compare(f"{symbol} quantity", model.quantity, actual.quantity)
                compare(f"{symbol} cost basis", model.cost_basis, actual.cost_basis)
                compare(f"{symbol} realized P&L", model.realized_pnl, actual.realized_pnl)
        return found


CSV_HEADER = "symbol,quantity,price,fee,request_id,execution_id,executed_at,order_id,tags\n"
EXECUTED_FROM = datetime(2020, 1, 1, tzinfo=UTC)  # the generated fills' first execution


def write_fills_csv(
    path: Path, rows: int, *, initial_cash: Decimal, seed: int = 1, symbols: int = 50
) -> ReplayModel:
    """``rows`` random fills on ``symbols`` symbols: opens, adds, partial reductions,
    closes and flips, whole and fractional quantities, fees or none, half the rows
    identified by a request id and half by an execution id only; an execution time on 9
    rows in 10 (ten seconds apart), an order id (three fills each), tags on 1 in 4.
    Returns the state the portfolio must reach (starting from ``initial_cash``, with no
    other events)."""
    rng = random.Random(seed)
    names = [f"IMP.{n:03d}" for n in range(symbols)]
    model = ReplayModel(cash=initial_cash)
    with path.open("w", encoding="utf-8", newline="") as out:
        out.write(CSV_HEADER)
        for n in range(rows):
            symbol = rng.choice(names)
            held = model.positions.get(symbol, PositionModel()).quantity
            draw = rng.random()
            if held != 0 and draw < 0.05:
                quantity = -held  # a close
            else:
                quantity = Decimal(rng.randint(1, 200))
                if draw > 0.8:
                    quantity /= 4  # 0.25 steps
                if rng.random() < 0.5:
                    quantity = -quantity
            price = Decimal(rng.randint(1_000, 50_000)).scaleb(-2)
            if draw > 0.9:
                price += Decimal(rng.randint(0, 99)).scaleb(-4)
            fee = "" if n % 5 == 0 else str(Decimal(rng.randint(0, 250)).scaleb(-2))
            model.fill(symbol, quantity, price, Decimal(fee or 0))
            request_id = f"imp-{seed}-{n}" if n % 2 else ""
            executed_at = (
                "" if n % 10 == 0 else (EXECUTED_FROM + timedelta(seconds=10 * n)).isoformat()
            )
            # A JSON object in a CSV cell: quoted, its quotes doubled.
            tags = f'"{{""account"": ""A{n % 3}"", ""venue"": ""XNAS""}}"' if n % 4 == 0 else ""
            out.write(
                f"{symbol},{quantity},{price},{fee},{request_id},exec-{seed}-{n},"
                f"{executed_at},ord-{seed}-{n // 3},{tags}\n"
            )
    return model


def check_import(
    model: ReplayModel, snapshot: PortfolioSnapshot, checks: Sequence[VerificationCheck]
) -> list[str]:
    """Everything wrong with an imported portfolio: a verify_portfolio check that failed,
    or a difference from the independent computation."""
    problems = [f"verify_portfolio: {c.check_name} failed" for c in checks if not c.ok]
    return problems + model.differences(snapshot)


@dataclass
class TimedImport:
    report: ImportReport
    measurement: Measurement


def timed_import(conninfo: str, path: Path, portfolio_id: int) -> TimedImport:
    """One import, with the process's CPU and each chunk's time (from one chunk done
    to the next) as latency samples."""
    m = Measurement()
    last = time.perf_counter()

    def chunk_done(rows: int) -> None:
        nonlocal last
        now = time.perf_counter()
        m.latency.record(now - last)
        last = now

    start = MachineClock()
    report = import_fills(conninfo, path, portfolio_id, progress=chunk_done)
    end = MachineClock()
    m.add_window(start, end)
    m.fills = report.rows
    m.seconds = report.seconds
    m.transactions = report.chunks
    if not report.ok:
        first = report.problems[0]
        raise RuntimeError(f"the import stopped at line {first.line}: {first.message}")
    return TimedImport(report, m)


async def in_thread(conninfo: str, path: Path, portfolio_id: int) -> TimedImport:
    return await asyncio.to_thread(timed_import, conninfo, path, portfolio_id)


def temporary_directory() -> tempfile.TemporaryDirectory[str]:
    return tempfile.TemporaryDirectory(prefix="pgportfolio-import-")


async def run_import_scenario(bench: Bench, result: ScenarioResult) -> None:
    """Generate the file (not timed), import it (variant "first"), check the portfolio,
    import it again (variant "again": nothing may change)."""
    rows = bench.sizes.import_rows
    with temporary_directory() as directory:
        path = Path(directory) / "fills.csv"
        (pid,) = await bench.ledger.create_portfolios(1, "import")
        started = time.perf_counter()
        model = await asyncio.to_thread(
            write_fills_csv, path, rows, initial_cash=INITIAL_CASH, seed=bench.next_seed()
        )
        result.extra["generate_seconds"] = round(time.perf_counter() - started, 2)
        runs: list[TimedImport] = []

        async def first() -> Measurement:
            run = await in_thread(bench.conninfo, path, pid)
            runs.append(run)
            # No call timeout: verify_portfolio reads the whole log (1,000,000 events).
            async with AsyncPortfolioClient(
                bench.conninfo, min_size=1, max_size=1, call_timeout=None
            ) as client:
                problems = check_import(
                    model, await client.get_portfolio(pid), await client.verify_portfolio(pid)
                )
            result.extra["checked"] = "clean" if not problems else "; ".join(problems[:5])
            if problems:
                raise RuntimeError(f"the imported portfolio is wrong: {problems[0]}")
            bench.console.print(
                f"  import: checked: verify_portfolio clean; cash, realized P&L and "
                f"{len(model.open_positions())} open positions equal to the replay"
            )
            return run.measurement

        async def again() -> Measurement:
            async with bench.client(connections=1) as client:
                before = await client.get_portfolio(pid)
                run = await in_thread(bench.conninfo, path, pid)
                after = await client.get_portfolio(pid)
            runs.append(run)
            if run.report.applied or after != before:
                raise RuntimeError(
                    f"the second import changed the portfolio ({run.report.applied} applied)"
                )
            return run.measurement

        chunks = f"chunks of {DEFAULT_CHUNK:,} rows"
        await bench.measure_each(
            result,
            [
                Variant("first", f"first import, {rows:,} rows", chunks, first),
                Variant("again", "the same file again (every row already in)", chunks, again),
            ],
        )
    for name, run in zip(("first", "again"), runs, strict=False):
        variant = result.variants[name]
        variant.extra.update(
            {
                "applied": run.report.applied,
                "duplicates": run.report.duplicates,
                "found_before_sending": run.report.skipped,
                "seconds_in_ledger": round(run.report.seconds_in_ledger, 2),
                "seconds_waiting_for_rows": round(run.report.seconds_waiting_for_rows, 2),
            }
        )
