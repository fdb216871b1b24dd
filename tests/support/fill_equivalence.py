"""One fill, one definition: the single-call functions and apply_fills must agree exactly.

A *program* is a list of symbolic steps (fills and cash moves on two portfolios). Some
steps are relative to the state they meet ("withdraw all the cash plus 0.00000001",
"sell exactly what is held", "buy up to 10^15"); they are resolved against side A while
side A runs, one public single call per step (apply_fill, deposit_cash, withdraw_cash,
charge_fee). The resolved, concrete operations are then sent to side B through
apply_fills in the given chunks, and to side C through apply_fills in one chunk. The
three sides start from identically created portfolios, so every difference between
them is a difference between the code paths:

- per element: the result (version, cash, symbol, position quantity, average price,
  realized P&L, duplicate), or the refusal (SQLSTATE, message, DETAIL, HINT; a single
  call's exception against the batch row's columns; the portfolio id in the texts is
  replaced by the portfolio's place in the program, the only thing allowed to differ);
- the events (every column of pgportfolio.events but portfolio_id, created_at,
  chain_hash and acting_role), the final portfolio rows and the positions;
- verify_portfolio, which must be clean on every side.

Numbers are compared in their exact text form (1.5 and 1.50 differ), as a client sees them.
"""

from __future__ import annotations

import decimal
import json
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import psycopg
from hypothesis import strategies as st

PORTFOLIOS = 2  # each side has two portfolios, so that a chunk can span both
MISSING_PORTFOLIO = 9_000_000_000_000  # an id no test creates: PF004 on every side

EPS = Decimal("0.00000001")
LIMIT = Decimal("1e15")
# How far past the cash a cash-edge step goes (negative: short of it; 0: to exactly zero).
# 0.00000001, 0.5 and 0.99999999 overdraw by less than one unit: what a cash floor off by
# one lets through.
CASH_EDGE_DELTAS = ("-0.00000001", "0", "0.00000001", "0.5", "0.99999999", "1", "1.00000001")

GOOD_SYMBOLS = ("AAA", "BBB", "CCC")
BAD_SYMBOLS = ("aaa", "BAD SYMBOL", "", "X" * 33)
QUANTITIES = ("1", "2", "3", "0.5", "10", "0.00000001", "7.12345678", "-1", "-2", "-0.5", "-10")
BAD_QUANTITIES = ("0", "1.123456789", "1000000000000000", "-1000000000000000", "NaN", "Infinity")
PRICES = ("1", "10", "99.99", "0.00000001", "123.45678901", "1000")
BAD_PRICES = ("0", "-1", "1.000000001", "NaN", "-Infinity", "1e15")
FEES = ("0", "0.01", "1", "2.5", "0.00000001")
BAD_FEES = ("-0.01", "0.000000001", "NaN")
AMOUNTS = ("1", "5", "100", "0.00000001", "1234.5678")
BAD_AMOUNTS = ("0", "-5", "1.123456789", "NaN", "1000000000000000")
BAD_REQUEST_IDS = ("", "x" * 201, "r\u202e")
INITIAL_CASH = ("0", "100", "1000.5", "25000", "20000000")


# ---------------------------------------------------------------------------------------
# Programs


@dataclass(frozen=True)
class Step:
    """One symbolic operation; ``resolve`` turns it into a concrete one against a state."""

    portfolio: int  # index into the side's portfolios; PORTFOLIOS means one that does not exist
    operation: str  # apply_fill, deposit_cash, withdraw_cash, charge_fee
    explicit_operation: bool  # apply_fills: write "operation": "apply_fill" or leave it out
    symbol: str | None  # None: left out
    quantity: tuple[str, ...]  # ("lit", q) | ("close",) | ("near_close",) | ("past_close",)
    #                            | ("flip",) | ("limit", sign, short_of) | ("missing",)
    price: tuple[str, ...]  # ("lit", p) | ("cash_edge", delta)
    fee: str | None  # None: left out (the default 0)
    amount: tuple[str, ...]  # ("lit", a) | ("cash_edge", delta)
    request: tuple[Any, ...]  # ("none",) | ("fresh",) | ("bad", id) | ("same", k)
    #                            | ("same_other_portfolio", k) | ("changed", k)
    expected: tuple[Any, ...]  # ("none",) | ("right",) | ("wrong", d) | ("invalid", v)


def _mostly(rng: random.Random, usual: Sequence[Any], rare: Sequence[Any], one_in: int) -> Any:
    """A value of ``rare`` once in ``one_in`` draws, else one of ``usual``: refused inputs
    must stay a minority, or few programs would get far enough to trade."""
    return rng.choice(rare if rng.randrange(one_in) == 0 else usual)


def _literals(values: Sequence[str]) -> list[tuple[str, ...]]:
    return [("lit", v) for v in values]


_RELATIVE_QUANTITIES = [("close",), ("near_close",), ("past_close",), ("flip",)]
_LIMITS = [("limit", sign, short) for sign in ("1", "-1") for short in ("0", "0.00000001")]
_CASH_EDGES = [("cash_edge", delta) for delta in CASH_EDGE_DELTAS]


def random_step(rng: random.Random) -> Step:
    """One step, with weights chosen by hand. (Values come from a seeded random.Random that
    hypothesis draws, not from hypothesis's own choices, which favour the first of a list
    so strongly that the rarer branches are hardly ever taken.)"""
    roll = rng.randrange(25)
    portfolio = PORTFOLIOS if roll == 0 else roll % PORTFOLIOS  # the missing one: rarely
    operation = rng.choice(
        ["apply_fill"] * 6 + ["deposit_cash", "withdraw_cash", "withdraw_cash", "charge_fee"]
    )
    symbol: str | None = None
    quantity: tuple[str, ...] = ("missing",)
    price: tuple[str, ...] = ("lit", "1")
    fee: str | None = None
    amount: tuple[str, ...] = ("lit", "1")
    if operation == "apply_fill":
        symbol = _mostly(rng, GOOD_SYMBOLS, [*BAD_SYMBOLS, None], 25)
        usual_quantity = _literals(QUANTITIES) * 2 + _RELATIVE_QUANTITIES * 2 + _LIMITS
        quantity = _mostly(rng, usual_quantity, [*_literals(BAD_QUANTITIES), ("missing",)], 15)
        price = _mostly(rng, _literals(PRICES) * 2 + _CASH_EDGES, _literals(BAD_PRICES), 15)
        fee = _mostly(rng, [None, None, *FEES], BAD_FEES, 20)
    else:
        amount = _mostly(rng, _literals(AMOUNTS) + _CASH_EDGES, _literals(BAD_AMOUNTS), 12)
    repeat = rng.choice(["same", "same", "changed", "same_other_portfolio"])
    request: tuple[Any, ...] = _mostly(
        rng,
        [("none",), ("fresh",), ("fresh",), (repeat, rng.randrange(1000))],
        [("bad", r) for r in BAD_REQUEST_IDS],
        30,
    )
    expected: tuple[Any, ...] = _mostly(
        rng,
        [("none",), ("none",), ("none",), ("right",), ("wrong", rng.choice([-2, -1, 1, 3]))],
        [("invalid", 0), ("invalid", -1)],
        30,
    )
    return Step(
        portfolio=portfolio,
        operation=operation,
        explicit_operation=rng.random() < 0.3,
        symbol=symbol,
        quantity=quantity,
        price=price,
        fee=fee,
        amount=amount,
        request=request,
        expected=expected,
    )


@dataclass(frozen=True)
class Program:
    initial_cash: tuple[str, ...]  # per portfolio
    steps: tuple[Step, ...]
    chunks: tuple[int, ...]  # sizes for side B; the rest of the steps form a last chunk


def random_program(rng: random.Random, max_steps: int) -> Program:
    steps = tuple(random_step(rng) for _ in range(rng.randint(1, max_steps)))
    chunks = tuple(rng.randint(1, 12) for _ in range(rng.randint(0, len(steps))))
    cash = tuple(rng.choice(INITIAL_CASH) for _ in range(PORTFOLIOS))
    return Program(initial_cash=cash, steps=steps, chunks=chunks)


def program_strategy(max_steps: int = 40) -> st.SearchStrategy[Program]:
    return st.randoms(use_true_random=True).map(lambda rng: random_program(rng, max_steps))


# ---------------------------------------------------------------------------------------
# Concrete operations: what is actually sent, the same text to every side.


@dataclass(frozen=True)
class Operation:
    portfolio: int
    args: dict[str, Any]  # apply_fills element keys but portfolio_id; absent key = left out

    def describe(self) -> str:
        return f"portfolio #{self.portfolio} {json.dumps(self.args, ensure_ascii=True)}"


@dataclass
class SideState:
    """What resolving a step needs to know about side A right now."""

    cash: Decimal
    version: int
    held: Decimal


def _fmt(value: Decimal) -> str:
    """The plain decimal text of a value, without exponent or trailing zeros."""
    if not value.is_finite():
        return str(value)
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def _exact_price(target: Decimal, quantity: Decimal) -> bool:
    """Whether target / quantity is exact with at most 8 decimal places."""
    price = target / quantity
    return price == price.quantize(EPS) and price * quantity == target


def resolve(step: Step, state: SideState, previous: Sequence[Operation], index: int) -> Operation:
    """The concrete operation of ``step`` given side A's state before it."""
    with decimal.localcontext() as exact:
        exact.prec = 100  # every value here has at most 15 + 16 digits: nothing rounds
        return _resolve(step, state, previous, index)


def _resolve(step: Step, state: SideState, previous: Sequence[Operation], index: int) -> Operation:
    request = step.request
    if request[0] in ("same", "same_other_portfolio", "changed") and previous:
        # "same" repeats any earlier operation (with or without a request id); the others
        # need one that carried a request id.
        pool = list(previous)
        if request[0] != "same":
            pool = [op for op in previous if "request_id" in op.args]
        if pool:
            old = pool[request[1] % len(pool)]
            args = dict(old.args)
            portfolio = old.portfolio
            if request[0] == "same_other_portfolio":
                portfolio = (old.portfolio + 1) % PORTFOLIOS
            elif request[0] == "changed":  # the same request id, another price or amount
                key = "amount" if "amount" in args else "price"
                old_value = Decimal(args[key])
                args[key] = _fmt(old_value + 1) if old_value.is_finite() else "1"
            return Operation(portfolio, args)

    args = {}
    if step.operation != "apply_fill" or step.explicit_operation:
        args["operation"] = step.operation
    if step.operation == "apply_fill":
        fee = Decimal(step.fee) if step.fee not in (None, "NaN") else Decimal(0)
        quantity: str | None
        kind = step.quantity[0]
        held = state.held
        side = 1 if held >= 0 else -1
        if kind == "lit":
            quantity = step.quantity[1]
        elif kind == "missing":
            quantity = None
        elif kind == "close":
            quantity = _fmt(-held)
        elif kind == "near_close":  # leaves the smallest position on the same side
            quantity = _fmt(-(held - side * EPS)) if held != 0 else "0.00000001"
        elif kind == "past_close":  # goes through zero by the smallest amount
            quantity = _fmt(-(held + side * EPS))
        elif kind == "flip":
            quantity = _fmt(-2 * held) if held != 0 else "-1"
        else:  # limit: the new position at 10^15 (refused) or just short of it
            target = int(step.quantity[1]) * (LIMIT - Decimal(step.quantity[2]))
            quantity = _fmt(target - held)
        price = step.price[1]
        if step.price[0] == "cash_edge":
            # A buy costing exactly the cash plus delta (quantity * price + fee).
            target = state.cash - fee + Decimal(step.price[1])
            q = Decimal(quantity) if quantity not in (None, "NaN", "Infinity") else Decimal(0)
            if q <= 0 or not _exact_price(target, q):
                quantity, q = "1", Decimal(1)
            price = _fmt(target / q) if target > 0 else "1"
        if step.symbol is not None:
            args["symbol"] = step.symbol
        if quantity is not None:
            args["quantity"] = quantity
        args["price"] = price
        if step.fee is not None:
            args["fee"] = step.fee
    else:
        amount = step.amount[1]
        if step.amount[0] == "cash_edge":
            amount = _fmt(state.cash + Decimal(step.amount[1]))
        args["amount"] = amount

    if request[0] in ("fresh", "same", "same_other_portfolio", "changed"):
        args["request_id"] = f"r{index}"
    elif request[0] == "bad":
        args["request_id"] = request[1]
    if step.expected[0] == "right":
        args["expected_version"] = state.version
    elif step.expected[0] == "wrong":
        args["expected_version"] = max(1, state.version + step.expected[1])
        if args["expected_version"] == state.version:
            args["expected_version"] = state.version + 1
    elif step.expected[0] == "invalid":
        args["expected_version"] = step.expected[1]
    return Operation(step.portfolio, args)


# ---------------------------------------------------------------------------------------
# Running a side


Outcome = tuple[Any, ...]  # ("ok", version, cash, symbol, qty, avg, pnl, dup) | ("refused", ...)
#                             | ("call failed", sqlstate, message) for a whole apply_fills call


def _text(value: Any) -> Any:
    return str(value) if isinstance(value, Decimal) else value


_PORTFOLIO_ID = re.compile(r"portfolio (\d+)")


def normalise_ids(text: str | None, ids: Sequence[int]) -> str | None:
    """Replace each of this side's portfolio ids, as written in a message, by its place."""
    if text is None:
        return None
    places = {str(pid): f"#{place}" for place, pid in enumerate(ids)}
    return _PORTFOLIO_ID.sub(lambda m: f"portfolio {places.get(m.group(1), m.group(1))}", text)


def create_side(conn: psycopg.Connection[Any], initial_cash: Sequence[str]) -> list[int]:
    ids = []
    for place, cash in enumerate(initial_cash):
        row = conn.execute(
            "SELECT pgportfolio.create_portfolio(%s, %s::numeric)", (f"equiv {place}", cash)
        ).fetchone()
        assert row is not None
        ids.append(int(row[0]))
    return ids


def _portfolio_id(ids: Sequence[int], place: int) -> int:
    return ids[place] if place < len(ids) else MISSING_PORTFOLIO


def state_of(conn: psycopg.Connection[Any], pid: int, symbol: str | None) -> SideState:
    row = conn.execute(
        "SELECT p.cash_balance, p.version, coalesce(("
        " SELECT quantity FROM pgportfolio.positions AS s"
        " WHERE s.portfolio_id = p.portfolio_id AND s.symbol = %s), 0)"
        " FROM pgportfolio.portfolios AS p WHERE p.portfolio_id = %s",
        (symbol, pid),
    ).fetchone()
    if row is None:  # the missing portfolio
        return SideState(cash=Decimal(0), version=1, held=Decimal(0))
    return SideState(cash=row[0], version=int(row[1]), held=row[2])


_RESULT = (
    "portfolio_version, cash_balance, symbol, position_quantity, position_avg_price,"
    " realized_pnl, duplicate"
)
_CASTS = {"quantity": "::numeric", "price": "::numeric", "fee": "::numeric", "amount": "::numeric"}
_CASTS["expected_version"] = "::bigint"


def call_single(conn: psycopg.Connection[Any], ids: Sequence[int], op: Operation) -> Outcome:
    """One public single call, named arguments, absent keys left to their defaults."""
    operation = op.args.get("operation", "apply_fill")
    params: list[Any] = [_portfolio_id(ids, op.portfolio)]
    parts = ["p_portfolio_id => %s"]
    required = ("symbol", "quantity", "price") if operation == "apply_fill" else ("amount",)
    for key in (*required, "fee", "request_id", "expected_version"):
        if key not in op.args and key not in required:
            continue
        parts.append(f"p_{key} => %s{_CASTS.get(key, '')}")
        params.append(op.args.get(key))
    query = f"SELECT {_RESULT} FROM pgportfolio.{operation}({', '.join(parts)})"
    try:
        row = conn.execute(query.encode(), params).fetchone()
    except psycopg.Error as exc:
        if exc.sqlstate is None:
            raise
        diag = exc.diag
        return (
            "refused",
            exc.sqlstate,
            normalise_ids(diag.message_primary, ids),
            normalise_ids(diag.message_detail, ids),
            normalise_ids(diag.message_hint, ids),
        )
    assert row is not None
    return ("ok", *(_text(v) for v in row))


def batch_elements(ids: Sequence[int], ops: Sequence[Operation]) -> str:
    return json.dumps(
        [{"portfolio_id": _portfolio_id(ids, op.portfolio), **op.args} for op in ops],
        ensure_ascii=False,
    )


def call_batch(
    conn: psycopg.Connection[Any], function: str, ids: Sequence[int], ops: Sequence[Operation]
) -> list[Outcome]:
    """One apply_fills call (``function`` is its qualified name); one outcome per element.
    A call that fails as a whole gives every element of it the same "call failed" outcome."""
    query = (
        f"SELECT item, {_RESULT}, sqlstate, message, detail, hint"
        f" FROM {function}(%s::jsonb) ORDER BY item"
    )
    try:
        rows = conn.execute(query.encode(), (batch_elements(ids, ops),)).fetchall()
    except psycopg.Error as exc:
        if exc.sqlstate is None:
            raise
        failed = ("call failed", exc.sqlstate, normalise_ids(exc.diag.message_primary, ids))
        return [failed] * len(ops)
    assert [r[0] for r in rows] == list(range(1, len(ops) + 1)), "one row per element, in order"
    outcomes: list[Outcome] = []
    for row in rows:
        if row[8] is not None:
            outcomes.append(("refused", row[8], *(normalise_ids(t, ids) for t in row[9:])))
        else:
            outcomes.append(("ok", *(_text(v) for v in row[1:8])))
    return outcomes


_EVENT_COLUMNS = (
    "portfolio_version, kind, operation, symbol, quantity, price, fee, amount, cash_delta,"
    " realized_pnl, cash_balance, position_quantity, position_cost_basis, request_id"
)


def snapshot(conn: psycopg.Connection[Any], ids: Sequence[int]) -> dict[str, list[Any]]:
    """Everything a side holds, keyed by what it is, with ids replaced by places."""
    shot: dict[str, list[Any]] = {}
    for place, pid in enumerate(ids):
        events = conn.execute(
            f"SELECT {_EVENT_COLUMNS} FROM pgportfolio.events"
            " WHERE portfolio_id = %s ORDER BY portfolio_version",
            (pid,),
        ).fetchall()
        shot[f"events of portfolio #{place}"] = [tuple(map(_text, e)) for e in events]
        portfolio = conn.execute(
            "SELECT name, currency, owner_role, initial_cash, cash_balance, realized_pnl, version"
            " FROM pgportfolio.portfolios WHERE portfolio_id = %s",
            (pid,),
        ).fetchall()
        shot[f"portfolio #{place}"] = [tuple(map(_text, r)) for r in portfolio]
        positions = conn.execute(
            "SELECT symbol, quantity, cost_basis, realized_pnl, version"
            " FROM pgportfolio.positions WHERE portfolio_id = %s ORDER BY symbol",
            (pid,),
        ).fetchall()
        shot[f"positions of portfolio #{place}"] = [tuple(map(_text, r)) for r in positions]
        failed = conn.execute(
            "SELECT check_name, expected::text, actual::text"
            " FROM pgportfolio.verify_portfolio(%s) WHERE NOT ok",
            (pid,),
        ).fetchall()
        shot[f"verify_portfolio failures of portfolio #{place}"] = [tuple(r) for r in failed]
    return shot


# ---------------------------------------------------------------------------------------
# Comparing


@dataclass(frozen=True)
class Mismatch:
    where: str
    single: Any
    batch: Any
    operation: str = ""

    def __str__(self) -> str:
        op = f"\n    operation: {self.operation}" if self.operation else ""
        return f"{self.where}:{op}\n    single: {self.single!r}\n    batch:  {self.batch!r}"


@dataclass
class Comparison:
    operations: list[Operation] = field(default_factory=list)
    single: list[Outcome] = field(default_factory=list)
    mismatches: list[Mismatch] = field(default_factory=list)

    def report(self, limit: int = 12) -> str:
        lines = [str(m) for m in self.mismatches[:limit]]
        more = len(self.mismatches) - limit
        if more > 0:
            lines.append(f"... and {more} more")
        program = "\n".join(
            f"  {i}: {op.describe()} -> {out!r}"
            for i, (op, out) in enumerate(zip(self.operations, self.single, strict=True))
        )
        return "\n".join(lines) + "\nprogram (single-call outcomes):\n" + program


def chunked(ops: Sequence[Operation], sizes: Sequence[int]) -> list[list[Operation]]:
    chunks: list[list[Operation]] = []
    start = 0
    for size in sizes:
        if start >= len(ops):
            break
        chunks.append(list(ops[start : start + size]))
        start += size
    if start < len(ops):
        chunks.append(list(ops[start:]))
    return chunks


def run_single_side(
    conn: psycopg.Connection[Any], program: Program
) -> tuple[list[int], list[Operation], list[Outcome]]:
    """Side A: resolve each step against A's state, then make its single call."""
    ids = create_side(conn, program.initial_cash)
    operations: list[Operation] = []
    outcomes: list[Outcome] = []
    for index, step in enumerate(program.steps):
        pid = _portfolio_id(ids, step.portfolio)
        state = state_of(conn, pid, step.symbol)
        op = resolve(step, state, operations, index)
        operations.append(op)
        outcomes.append(call_single(conn, ids, op))
    return ids, operations, outcomes


def compare_program(
    conn: psycopg.Connection[Any], program: Program, batch_function: str
) -> Comparison:
    """Run ``program`` on three fresh sides; every difference found, none assumed."""
    comparison = Comparison()
    a_ids, operations, single = run_single_side(conn, program)
    comparison.operations = operations
    comparison.single = single
    a_shot = snapshot(conn, a_ids)

    for label, sizes in (
        ("chunks " + ",".join(map(str, program.chunks)), program.chunks),
        ("one chunk", ()),
    ):
        ids = create_side(conn, program.initial_cash)
        batch: list[Outcome] = []
        for chunk in chunked(operations, sizes):
            batch += call_batch(conn, batch_function, ids, chunk)
        for i, (one, many) in enumerate(zip(single, batch, strict=True)):
            if one != many:
                comparison.mismatches.append(
                    Mismatch(f"[{label}] element {i}", one, many, operations[i].describe())
                )
        shot = snapshot(conn, ids)
        for key, expected in a_shot.items():
            got = shot[key]
            if expected != got:
                first = next(
                    (j for j, (x, y) in enumerate(zip(expected, got, strict=False)) if x != y),
                    min(len(expected), len(got)),
                )
                comparison.mismatches.append(
                    Mismatch(
                        f"[{label}] {key}, row {first} of {len(expected)} / {len(got)}",
                        expected[first] if first < len(expected) else None,
                        got[first] if first < len(got) else None,
                    )
                )
            if key.startswith("verify") and got:
                comparison.mismatches.append(Mismatch(f"[{label}] {key}", "clean", got))
    for key, failures in a_shot.items():
        if key.startswith("verify") and failures:
            comparison.mismatches.append(Mismatch(f"[single] {key}", failures, "clean"))
    return comparison


def is_cash_floor_mismatch(m: Mismatch) -> bool:
    """An element refused PF002 one at a time that the batch let through (or that made the
    whole batch call fail): what a cash floor off by up to one unit does."""
    return (
        isinstance(m.single, tuple)
        and m.single[:2] == ("refused", "PF002")
        and isinstance(m.batch, tuple)
        and m.batch[0] in ("ok", "call failed")
    )
