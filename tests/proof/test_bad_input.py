"""Issue test 5, bad input: whatever a caller sends, the ledger answers with its documented
error and changes nothing; and what the documentation allows is accepted exactly.

Every case goes in three ways: SQL (psycopg calling the function with the value as a
parameter), the async client and the sync client. Around each refused call the checker
takes every row of every ``pgportfolio`` table (as text: versions, timestamps and the
scale of numbers included) and every sequence, digested on the server, and compares;
afterwards it scans every numeric column of every table and view for NaN or infinity.
Values come from hypothesis, seeded by ``proof_seed``; an independent oracle written from
docs/sql-api.md says what each value should do.

Negative controls: the no-change checker is run across a legitimate mutation, the
non-finite scan across a NaN planted in a rolled-back transaction, and the whole refusal
checker against copies of the ledger whose number or symbol validation is switched off:
each must report problems.
"""

from __future__ import annotations

import asyncio
import re
import reprlib
import unicodedata
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st
from psycopg import sql

from pgportfolio import (
    AsyncPortfolioClient,
    InsufficientCash,
    InsufficientPosition,
    InvalidInput,
    Monitor,
    PortfolioClient,
    PortfolioError,
    PortfolioNotFound,
    PositionAlreadyOpen,
    RequestIdReused,
    RetryPolicy,
    VersionConflict,
)
from tests.conftest import DatabaseFactory
from tests.proof.conftest import ProofScale

Conn = psycopg.Connection[Any]

LIMIT = Decimal("999999999999999.99999999")  # the largest documented value: below 10^15, 8 places
_short = reprlib.Repr()
_short.maxstring = 60
_short.maxother = 60


# -- the oracle: docs/sql-api.md, "Conventions", in Python ------------------------------


def min_scale(value: Decimal) -> int:
    """Decimal places without trailing zeros (PostgreSQL's min_scale), computed exactly."""
    _, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)
    places = max(0, -exponent)
    trailing = len(digits) - len("".join(map(str, digits)).rstrip("0"))
    if all(d == 0 for d in digits):
        return 0
    return max(0, places - trailing)


def number_problem(value: object, rule: str) -> str | None:
    """Why ``value`` breaks the numeric rules for an argument with sign ``rule``, or None."""
    if value is None:
        return "null"
    assert isinstance(value, Decimal)
    if not value.is_finite():
        return "not finite"
    if abs(value) >= Decimal("1e15"):
        return "out of range"
    if min_scale(value) > 8:
        return "more than 8 decimal places"
    if rule == "positive" and value <= 0:
        return "not positive"
    if rule == "non_negative" and value < 0:
        return "negative"
    if rule == "nonzero" and value == 0:
        return "zero"
    return None


def sql_codes_for_number(value: object) -> set[str]:
    """The SQLSTATE a bad number gets through SQL. The ledger says 22023; two values never
    reach it because PostgreSQL's numeric input refuses the parameter first: psycopg sends
    Decimal('-NaN') as '-NaN' (22P02), and an exponent beyond numeric's range overflows
    (22003). Both are data exceptions, which the client maps to InvalidInput too."""
    if isinstance(value, Decimal):
        _, digits, exponent = value.as_tuple()
        if value.is_nan() and value.is_signed():
            return {"22P02"}
        if isinstance(exponent, int) and (exponent < -16383 or len(digits) + exponent > 131072):
            return {"22003"}
    return {"22023"}


# Format characters given category Cf by Unicode versions newer than this Python's
# unicodedata (Egyptian hieroglyph format controls, Unicode 15.0): refused all the same.
_NEWER_CF = frozenset(map(chr, range(0x13439, 0x13440)))


def is_control(text: str) -> bool:
    """A control (Cc) or format (Cf) character: both are refused in names and request ids."""
    return any(unicodedata.category(ch) in ("Cc", "Cf") or ch in _NEWER_CF for ch in text)


def symbol_ok(symbol: str) -> bool:
    return re.fullmatch(r"[A-Z0-9._/:\-]{1,32}", symbol) is not None


def name_ok(name: str) -> bool:
    return 1 <= len(name) <= 200 and name == name.strip(" ") and not is_control(name)


def currency_ok(currency: str) -> bool:
    return re.fullmatch(r"[A-Z]{3}", currency) is not None


def request_id_ok(request_id: str) -> bool:
    return 1 <= len(request_id) <= 200 and not is_control(request_id)


# -- calls, the three ways in ----------------------------------------------------------


@dataclass(frozen=True)
class Call:
    """One ledger call. ``args`` are the SQL argument names without ``p_``, which are also
    the client's keyword arguments."""

    function: str
    args: dict[str, Any]

    def with_arg(self, name: str, value: object) -> Call:
        return Call(self.function, {**self.args, name: value})

    def __str__(self) -> str:
        inner = ", ".join(f"{k}={_short.repr(v)}" for k, v in self.args.items())
        return f"{self.function}({inner})"


def sql_query(call: Call) -> sql.Composed:
    arguments = sql.SQL(", ").join(
        sql.SQL("{} => {}").format(sql.Identifier(f"p_{name}"), sql.Placeholder(name))
        for name in call.args
    )
    return sql.SQL("SELECT * FROM pgportfolio.{}({})").format(
        sql.Identifier(call.function), arguments
    )


@dataclass
class Outcome:
    """What one call did: ``error`` is None when it was accepted."""

    error: BaseException | None
    value: Any = None

    @property
    def sqlstate(self) -> str | None:
        return getattr(self.error, "sqlstate", None)

    def describe(self) -> str:
        if self.error is None:
            return f"accepted ({_short.repr(self.value)})"
        return (
            f"{type(self.error).__name__} sqlstate={self.sqlstate} ({_short.repr(str(self.error))})"
        )


@dataclass
class Paths:
    """The three ways in, opened once: a superuser SQL session (which also dumps state),
    the async client (driven by its own event loop) and the sync client."""

    conn: Conn
    runner: asyncio.Runner
    aclient: AsyncPortfolioClient
    client: PortfolioClient

    def sql(self, call: Call) -> Outcome:
        try:
            return Outcome(None, self.conn.execute(sql_query(call), call.args).fetchall())
        except Exception as exc:  # psycopg errors, and psycopg's own refusals (NUL, ...)
            return Outcome(exc)

    def via_async(self, call: Call) -> Outcome:
        method: Callable[..., Awaitable[Any]] = getattr(self.aclient, call.function)
        try:
            return Outcome(None, self.runner.run(method(**call.args)))
        except Exception as exc:
            return Outcome(exc)

    def via_sync(self, call: Call) -> Outcome:
        method: Callable[..., Any] = getattr(self.client, call.function)
        try:
            return Outcome(None, method(**call.args))
        except Exception as exc:
            return Outcome(exc)

    def all_ways(self, call: Call) -> list[tuple[str, Outcome]]:
        return [
            ("SQL", self.sql(call)),
            ("async", self.via_async(call)),
            ("sync", self.via_sync(call)),
        ]


@contextmanager
def open_paths(conninfo: str) -> Iterator[Paths]:
    retry = RetryPolicy(base_delay=0.001, max_delay=0.01)
    with (
        psycopg.connect(conninfo, autocommit=True) as conn,
        asyncio.Runner() as runner,
        PortfolioClient(
            conninfo, min_size=1, max_size=2, monitor=Monitor(), retry=retry, resolve_timeout=0.5
        ) as client,
    ):
        aclient = AsyncPortfolioClient(
            conninfo, min_size=1, max_size=2, monitor=Monitor(), retry=retry, resolve_timeout=0.5
        )
        runner.run(aclient.open())
        try:
            yield Paths(conn, runner, aclient, client)
        finally:
            runner.run(aclient.close())


# -- the checkers ------------------------------------------------------------------------


def snapshot(conn: Conn) -> dict[str, str]:
    """Every table and sequence of the schema, reduced on the server to a row count and a
    digest of every row as text (so 1.5 and 1.50 differ; versions and timestamps count)."""
    relations = conn.execute(
        "SELECT c.relname, c.relkind FROM pg_catalog.pg_class AS c"
        " WHERE c.relnamespace = 'pgportfolio'::regnamespace AND c.relkind IN ('r', 'p', 'S')"
        " ORDER BY c.relname"
    ).fetchall()
    parts = []
    for relname, relkind in relations:
        table = sql.Identifier("pgportfolio", relname)
        if relkind == "S":
            part = (
                "SELECT {name}, 'at ' || last_value::text || ', called ' || is_called::text"
                " FROM {t}"
            )
        else:
            part = (
                "SELECT {name}, count(*)::text || ' rows, digest '"
                " || coalesce(md5(string_agg(t::text, E'\\n' ORDER BY t::text)), '-') FROM {t} AS t"
            )
        parts.append(sql.SQL(part).format(name=sql.Literal(relname), t=table))
    return dict(conn.execute(sql.SQL(" UNION ALL ").join(parts)).fetchall())


def changes(before: dict[str, str], after: dict[str, str]) -> list[str]:
    return [
        f"pgportfolio.{relname} changed: {before.get(relname)} -> {after.get(relname)}"
        for relname in sorted(before.keys() | after.keys())
        if before.get(relname) != after.get(relname)
    ]


def non_finite(conn: Conn) -> list[str]:
    """NaN or +/-Infinity in any numeric column of any table or view of the schema (and as
    a quoted value inside any jsonb column, which is how numeric NaN appears in JSON)."""
    columns = conn.execute(
        "SELECT c.relname, a.attname, t.typname"
        " FROM pg_catalog.pg_attribute AS a"
        " JOIN pg_catalog.pg_class AS c ON c.oid = a.attrelid"
        # a domain-typed column (sql/025_domains.sql) is scanned as its base type
        " JOIN pg_catalog.pg_type AS d ON d.oid = a.atttypid"
        " JOIN pg_catalog.pg_type AS t"
        " ON t.oid = CASE WHEN d.typtype = 'd' THEN d.typbasetype ELSE d.oid END"
        " WHERE c.relnamespace = 'pgportfolio'::regnamespace AND c.relkind IN ('r', 'p', 'v')"
        " AND a.attnum > 0 AND NOT a.attisdropped"
        " AND t.typname IN ('numeric', 'float4', 'float8', 'jsonb')"
        " ORDER BY 1, 2"
    ).fetchall()
    assert columns, "no numeric columns found: the scan would prove nothing"
    parts = []
    for relname, attname, typname in columns:
        column = sql.Identifier(attname)
        if typname == "jsonb":
            condition = sql.SQL("{}::text ~ '\"-?(NaN|Infinity)\"'").format(column)
        else:
            condition = sql.SQL("{} IN ('NaN', 'Infinity', '-Infinity')").format(column)
        parts.append(
            sql.SQL("SELECT {}, count(*) FROM {} WHERE {}").format(
                sql.Literal(f"pgportfolio.{relname}.{attname}"),
                sql.Identifier("pgportfolio", relname),
                condition,
            )
        )
    counts = conn.execute(sql.SQL(" UNION ALL ").join(parts)).fetchall()
    return [f"{n} non-finite value(s) in {where}" for where, n in counts if n]


def refused_without_change(
    paths: Paths,
    call: Call,
    sql_codes: set[str],
    client_error: type[Exception] = InvalidInput,
    *,
    ways: tuple[str, ...] = ("SQL", "async", "sync"),
) -> list[str]:
    """The call must be refused on every way in (SQL with one of ``sql_codes``, the clients
    with ``client_error`` carrying one of them, or 22023 when the client refused it
    itself), and nothing anywhere may change."""
    problems: list[str] = []
    before = snapshot(paths.conn)
    runners = {"SQL": paths.sql, "async": paths.via_async, "sync": paths.via_sync}
    for way in ways:
        outcome = runners[way](call)
        if outcome.error is None:
            problems.append(f"{way} {call}: {outcome.describe()}, expected a refusal")
        elif way == "SQL":
            if outcome.sqlstate not in sql_codes:
                problems.append(f"SQL {call}: {outcome.describe()}, expected {sorted(sql_codes)}")
        elif not isinstance(outcome.error, client_error) or (
            outcome.sqlstate not in sql_codes | {"22023"}
        ):
            problems.append(
                f"{way} {call}: {outcome.describe()}, expected {client_error.__name__}"
                f" with {sorted(sql_codes)}"
            )
    problems += [f"after {call}: {change}" for change in changes(before, snapshot(paths.conn))]
    problems += [f"after {call}: {bad}" for bad in non_finite(paths.conn)]
    return problems


# -- the ledger under test ---------------------------------------------------------------


@dataclass
class Ledger:
    conninfo: str
    target: int  # refused calls aim here: 1,000,000 cash, long HELD 100 @ 10, short SHORT -50 @ 20
    poor: int  # little cash: short PSHORT -1 @ 5, cash 15
    sink: int  # accepted calls land here
    used_request_id: str = "setup-deposit"  # a deposit of 1 on target


def _scalar(conn: Conn, query: str, params: tuple[Any, ...] = ()) -> Any:
    row = conn.execute(query, params).fetchone()
    assert row is not None
    return row[0]


@pytest.fixture(scope="module")
def ledger(database_factory: DatabaseFactory, template_database: str) -> Ledger:
    conninfo = database_factory(template=template_database)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        create = "SELECT pgportfolio.create_portfolio(%s, %s)"
        target = _scalar(conn, create, ("bad input target", Decimal(1_000_000)))
        conn.execute("SELECT pgportfolio.apply_fill(%s, 'HELD', 100, 10)", (target,))
        conn.execute("SELECT pgportfolio.apply_fill(%s, 'SHORT', -50, 20)", (target,))
        conn.execute("SELECT pgportfolio.update_market_price('HELD', 11)")
        conn.execute("SELECT pgportfolio.deposit_cash(%s, 1, 'setup-deposit')", (target,))
        poor = _scalar(conn, create, ("poor", Decimal(10)))
        conn.execute("SELECT pgportfolio.apply_fill(%s, 'PSHORT', -1, 5)", (poor,))
        sink = _scalar(conn, create, ("accepted input lands here", Decimal(0)))
    return Ledger(conninfo, target, poor, sink)


@pytest.fixture(scope="module")
def paths(ledger: Ledger) -> Iterator[Paths]:
    with open_paths(ledger.conninfo) as opened:
        yield opened


def hypothesis_settings(scale: ProofScale) -> settings:
    return settings(
        max_examples=scale.hypothesis_examples,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


# -- numbers -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Slot:
    call: Call  # valid arguments: with a valid value in the slot the call would succeed
    argument: str
    rule: str

    def __str__(self) -> str:
        return f"{self.call.function}.p_{self.argument}"


def numeric_slots(ledger: Ledger) -> list[Slot]:
    pid = ledger.target

    def fill(function: str, symbol: str) -> dict[str, Any]:
        base: dict[str, Any] = {"portfolio_id": pid, "symbol": symbol}
        if function != "close_position":
            base["quantity"] = Decimal(1)
        return {**base, "price": Decimal(10), "fee": Decimal(0)}

    slots = [
        Slot(
            Call("create_portfolio", {"name": "n", "initial_cash": Decimal(1), "currency": "USD"}),
            "initial_cash",
            "non_negative",
        ),
        Slot(
            Call("update_market_price", {"symbol": "HELD", "price": Decimal(12)}),
            "price",
            "positive",
        ),
    ]
    for function in ("deposit_cash", "withdraw_cash", "charge_fee"):
        call = Call(function, {"portfolio_id": pid, "amount": Decimal(1)})
        slots.append(Slot(call, "amount", "positive"))
    for function, symbol in (
        ("apply_fill", "HELD"),
        ("open_position", "FRESH"),
        ("add_to_position", "HELD"),
        ("reduce_position", "HELD"),
        ("close_position", "SHORT"),
    ):
        call = Call(function, fill(function, symbol))
        if function != "close_position":
            rule = "positive" if function == "reduce_position" else "nonzero"
            slots.append(Slot(call, "quantity", rule))
        slots.append(Slot(call, "price", "positive"))
        slots.append(Slot(call, "fee", "non_negative"))
    return slots


def _decimal(negative: bool, digits: int, exponent: int) -> Decimal:
    return Decimal((int(negative), tuple(int(d) for d in str(digits)), exponent))


_SPECIALS = [Decimal(s) for s in ("NaN", "-NaN", "sNaN", "-sNaN", "Infinity", "-Infinity")]
_ZEROS = [Decimal(s) for s in ("0", "-0", "0E-30", "0E+5", "0.00000000", "-0.000")]
_EXTREMES = [Decimal(s) for s in ("1E+200000", "-1E+200000", "1E-20000", "1E+15", "1E+40")]
_EXTREMES += [Decimal(s) for s in ("1E-9", "1E-30", "1000000000000000.00000000")]
_EXTREMES += [Decimal("999999999999999.999999999"), Decimal("0.000000001")]


def _not_multiple_of_ten(n: int) -> bool:
    return n % 10 != 0


def bad_numbers(rule: str) -> st.SearchStrategy[Decimal | None]:
    """Values that break the numeric rules for ``rule``: non-finite, NULL, 10^15 or more,
    more than 8 places (tiny or not), and the sign the rule forbids."""
    huge = st.builds(_decimal, st.booleans(), st.integers(1, 10**6), st.integers(15, 400))
    too_precise = st.builds(
        _decimal,
        st.booleans(),
        st.integers(1, 10**20).filter(_not_multiple_of_ten),
        st.integers(-400, -9),
    )
    parts: list[st.SearchStrategy[Decimal | None]] = [
        st.sampled_from(_SPECIALS),
        st.none(),
        huge,
        too_precise,
        st.sampled_from(_EXTREMES),
    ]
    negative = st.builds(_decimal, st.just(True), st.integers(1, 10**6), st.integers(-8, 6))
    if rule in ("positive", "nonzero"):
        parts.append(st.sampled_from(_ZEROS))
    if rule in ("positive", "non_negative"):
        parts.append(negative)
    return st.one_of(parts)


@st.composite
def valid_positive_numbers(draw: st.DrawFn) -> Decimal:
    """Positive values the rules allow, often with trailing zeros past 8 places."""
    kind = draw(st.sampled_from(["plain", "exponent", "edge"]))
    if kind == "edge":
        value = draw(
            st.sampled_from([LIMIT, Decimal("1E-8"), Decimal("1E+14"), Decimal("0.12345678")])
        )
    elif kind == "exponent":
        value = _decimal(False, draw(st.integers(1, 999)), draw(st.integers(1, 12)))
    else:
        places = draw(st.integers(0, 8))
        value = _decimal(False, draw(st.integers(1, 10 ** (15 + places) - 1)), -places)
    _, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)
    pad = draw(st.integers(0, 12))
    return Decimal((0, (*digits, *(0,) * pad), exponent - pad))


def test_bad_numbers_refused_everywhere(
    paths: Paths, ledger: Ledger, proof_scale: ProofScale, proof_seed: int
) -> None:
    """Every numeric argument of every mutation, with NaN, sNaN, +/-Infinity, NULL, zero,
    negatives, tiny and huge magnitudes and too many places: refused on all three ways in
    (22023), nothing changes, nothing non-finite anywhere."""
    slots = numeric_slots(ledger)
    seen: Counter[str] = Counter()

    @seed(proof_seed)
    @hypothesis_settings(proof_scale)
    @given(st.sampled_from(slots).flatmap(lambda s: st.tuples(st.just(s), bad_numbers(s.rule))))
    def check(case: tuple[Slot, Decimal | None]) -> None:
        slot, value = case
        problem = number_problem(value, slot.rule)
        assert problem is not None, f"strategy bug: {value!r} is valid for {slot}"
        seen[problem] += 1
        call = slot.call.with_arg(slot.argument, value)
        assert refused_without_change(paths, call, sql_codes_for_number(value)) == []

    check()
    print(f"bad numbers by reason: {dict(seen)}")


def test_valid_numbers_accepted_exactly(
    paths: Paths, ledger: Ledger, proof_scale: ProofScale, proof_seed: int
) -> None:
    """Over-strict validation is a bug too: any positive value below 10^15 with at most 8
    significant places (trailing zeros beyond are fine) is accepted by deposit_cash and
    update_market_price on every way in, and stored exactly, in its shortest form."""

    @seed(proof_seed)
    @hypothesis_settings(proof_scale)
    @given(valid_positive_numbers())
    def check(value: Decimal) -> None:
        assert number_problem(value, "positive") is None, f"strategy bug: {value!r}"
        problems: list[str] = []
        for way, outcome in paths.all_ways(
            Call("deposit_cash", {"portfolio_id": ledger.sink, "amount": value})
        ):
            if outcome.error is not None:
                problems.append(f"{way} deposit_cash({value!r}): {outcome.describe()}")
                continue
            amount = _scalar(
                paths.conn,
                "SELECT amount::text FROM pgportfolio.events"
                " WHERE portfolio_id = %s ORDER BY portfolio_version DESC LIMIT 1",
                (ledger.sink,),
            )
            if Decimal(amount) != value or ("." in amount and amount.endswith("0")):
                problems.append(f"{way} deposit_cash({value!r}) stored amount {amount}")
        for way, outcome in paths.all_ways(
            Call("update_market_price", {"symbol": "VALID", "price": value})
        ):
            price = _scalar(
                paths.conn, "SELECT price FROM pgportfolio.market_prices WHERE symbol = 'VALID'"
            )
            if outcome.error is not None or price != value:
                problems.append(
                    f"{way} update_market_price({value!r}): {outcome.describe()}, {price}"
                )
        problems += non_finite(paths.conn)
        assert problems == []

    check()


# Python values that are not money: the client refuses them before anything is sent.
_JUNK = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.integers(-(10**20), 10**20).map(str),
    st.decimals(allow_nan=False, allow_infinity=False, places=2).map(str),
    st.none(),
    st.binary(max_size=3),
    st.builds(Fraction, st.integers(), st.integers(1, 100)),
    st.lists(st.integers(0, 9), max_size=2),
)


def test_wrong_python_types_refused_by_the_clients(
    paths: Paths, ledger: Ledger, proof_scale: ProofScale, proof_seed: int
) -> None:
    """floats (NaN and infinities too), bools, numbers as str, None, bytes, Fractions and
    lists in any money argument: InvalidInput from both clients, nothing changes. Through
    SQL the same float or boolean parameter is refused by PostgreSQL's function
    resolution (42883) and a NULL by the ledger (22023); strings there are SQL literals,
    not Python values, so they are not a case."""
    slots = numeric_slots(ledger)

    @seed(proof_seed)
    @hypothesis_settings(proof_scale)
    @given(st.sampled_from(slots), _JUNK)
    def check(slot: Slot, junk: object) -> None:
        call = slot.call.with_arg(slot.argument, junk)
        ways: tuple[str, ...] = ("async", "sync")
        codes = {"22023"}
        if junk is None:
            ways = ("SQL", "async", "sync")
        elif isinstance(junk, float | bool | bytes):
            ways, codes = ("SQL", "async", "sync"), {"42883", "22023"}
        assert refused_without_change(paths, call, codes, ways=ways) == []

    check()


# -- text ----------------------------------------------------------------------------------

_SYMBOL_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._/:-"
_NASTY = [
    "'", '"', "\\", "''", "%s", "%(x)s", "$1", ";", "--", "/*", "DROP TABLE x;",
    "\u200b", "\u200d", "\u2060", "\ufeff", "\u202e", "\u2028",  # zero-width, bidi, separators
    "\u0410", "\u0405", "\u039f", "\u0131", "e\u0301",  # Cyrillic A, DZE, Greek O, dotless i
    "a", "aapl", "Aapl", " ", "  ", "\t", "\n", "\r", "\u00a0", "\u3000",  # case, whitespace
    "\x01", "\x1b", "\x7f", "\x85", "\x9f",  # C0, DEL, C1 controls
    "\U0001f600", "\U0001f468\u200d\U0001f469\u200d\U0001f467",  # emoji, ZWJ sequence
]  # fmt: skip
_TEXT_CHARS = st.characters(exclude_categories=["Cs"], exclude_characters="\x00")  # sendable
_PIECE = st.one_of(
    st.sampled_from(_NASTY),
    st.text(_SYMBOL_ALPHABET, min_size=1, max_size=6),
    st.text(_TEXT_CHARS, max_size=4),
)
_LONG = st.builds(
    lambda unit, n: unit * n,
    st.sampled_from(["A", "a", "\u00e9", "\U0001f600", "AAPL ", "\u200b", "X."]),
    st.integers(33, 10_000),
)
NASTY_TEXT = st.one_of(st.lists(_PIECE, max_size=8).map("".join), _LONG)
VALID_SYMBOLS = st.text(_SYMBOL_ALPHABET, min_size=1, max_size=32)

SYMBOL_FUNCTIONS = [
    "apply_fill", "open_position", "add_to_position", "reduce_position", "close_position",
    "update_market_price",
]  # fmt: skip


def test_symbols(paths: Paths, ledger: Ledger, proof_scale: ProofScale, proof_seed: int) -> None:
    """Symbols with quotes, zero-width characters, confusables, lower case, whitespace,
    controls, emoji, 10,000 characters: refused (22023) by every function that takes one,
    nothing changes. Symbols the rule allows are accepted and stored exactly."""
    slots = {s.call.function: s.call for s in numeric_slots(ledger) if "symbol" in s.call.args}
    seen: Counter[str] = Counter()

    @seed(proof_seed)
    @hypothesis_settings(proof_scale)
    @given(st.one_of(NASTY_TEXT, VALID_SYMBOLS), st.sampled_from(SYMBOL_FUNCTIONS))
    def check(symbol: str, function: str) -> None:
        seen["valid" if symbol_ok(symbol) else "invalid"] += 1
        if not symbol_ok(symbol):
            call = slots[function].with_arg("symbol", symbol)
            assert refused_without_change(paths, call, {"22023"}) == []
            return
        problems: list[str] = []
        fill = Call(
            "apply_fill",
            {"portfolio_id": ledger.sink, "symbol": symbol, "quantity": -1, "price": 1},
        )
        mark = Call("update_market_price", {"symbol": symbol, "price": Decimal(1)})
        for call in (fill, mark):
            for way, outcome in paths.all_ways(call):
                if outcome.error is not None:
                    problems.append(f"{way} {call}: {outcome.describe()}")
        stored = paths.conn.execute(
            "SELECT (SELECT quantity FROM pgportfolio.positions"
            "  WHERE portfolio_id = %s AND symbol = %s),"
            " (SELECT price FROM pgportfolio.market_prices WHERE symbol = %s)",
            (ledger.sink, symbol, symbol),
        ).fetchone()
        if stored is None or stored[0] is None or stored[1] != 1:
            problems.append(f"valid symbol {symbol!r} not stored exactly: {stored}")
        assert problems == []

    check()
    print(f"symbols: {dict(seen)}")
    assert seen["valid"], f"no valid case drawn: {dict(seen)}"
    assert seen["invalid"], f"no invalid case drawn: {dict(seen)}"


def _without_controls(text: str) -> str:
    return "".join(ch for ch in text if not is_control(ch)).strip(" ")[:200]


def test_names_and_currencies(
    paths: Paths, ledger: Ledger, proof_scale: ProofScale, proof_seed: int
) -> None:
    """create_portfolio names: 1 to 200 characters, no control or format (Cf: zero-width,
    bidi override) characters, no leading or trailing spaces; anything else is 22023 with
    nothing changed (no row, no identity value used). Quotes, emoji and confusables are
    allowed in a name (the rule does not forbid them) and come back exactly. Currencies: 3
    upper-case letters."""
    seen: Counter[str] = Counter()

    @seed(proof_seed)
    @hypothesis_settings(proof_scale)
    @given(
        st.one_of(
            NASTY_TEXT,
            NASTY_TEXT.map(_without_controls).filter(bool),  # odd but allowed, mostly
            st.text(_TEXT_CHARS, max_size=5).map(lambda s: f"Book {s}".strip()),
        ),
        st.one_of(
            st.sampled_from(["USD", "EUR", "JPY"]),  # drawn as often as the two bad kinds
            st.sampled_from(["USD", "EUR", "JPY"]),
            st.sampled_from(["usd", "US", "USDD", "\u0410BC", "U$D", " USD"]),
            NASTY_TEXT,
        ),
    )
    def check(name: str, currency: str) -> None:
        call = Call(
            "create_portfolio", {"name": name, "initial_cash": Decimal(1), "currency": currency}
        )
        seen["valid" if name_ok(name) and currency_ok(currency) else "invalid"] += 1
        if not (name_ok(name) and currency_ok(currency)):
            assert refused_without_change(paths, call, {"22023"}) == []
            return
        problems: list[str] = []
        for way, outcome in paths.all_ways(call):
            if outcome.error is not None:
                problems.append(f"{way} {call}: {outcome.describe()}")
                continue
            pid = outcome.value[0][0] if way == "SQL" else outcome.value
            stored = paths.conn.execute(
                "SELECT name, currency FROM pgportfolio.portfolios WHERE portfolio_id = %s", (pid,)
            ).fetchone()
            if stored != (name, currency):
                problems.append(f"{way}: stored {stored!r}, sent {(name, currency)!r}")
        assert problems == []

    check()
    print(f"names and currencies: {dict(seen)}")
    assert seen["valid"], f"no valid case drawn: {dict(seen)}"
    assert seen["invalid"], f"no invalid case drawn: {dict(seen)}"


def test_request_ids(
    paths: Paths, ledger: Ledger, proof_scale: ProofScale, proof_seed: int
) -> None:
    """Request ids: 1 to 200 characters without control or format characters. Others are 22023 with
    nothing changed; allowed ones, however odd, are stored exactly and replay (the first
    call applies, the same id again through the clients returns it as a duplicate)."""
    seen: Counter[str] = Counter()

    @seed(proof_seed)
    @hypothesis_settings(proof_scale)
    @given(NASTY_TEXT.filter(bool))
    def check(request_id: str) -> None:
        call = Call(
            "deposit_cash",
            {"portfolio_id": ledger.target, "amount": Decimal(1), "request_id": request_id},
        )
        seen["valid" if request_id_ok(request_id) else "invalid"] += 1
        if not request_id_ok(request_id):
            assert refused_without_change(paths, call, {"22023"}) == []
            return
        pid = _scalar(paths.conn, "SELECT pgportfolio.create_portfolio('request ids', 0)")
        call = call.with_arg("portfolio_id", pid)
        outcomes = paths.all_ways(call)
        duplicates = [
            (o.value[0][-1] if way == "SQL" else o.value.duplicate)
            if o.error is None
            else o.describe()
            for way, o in outcomes
        ]
        assert duplicates == [False, True, True], f"{request_id!r}: {duplicates}"
        stored = paths.conn.execute(
            "SELECT request_id FROM pgportfolio.events"
            " WHERE portfolio_id = %s AND portfolio_version = 2",
            (pid,),
        ).fetchone()
        assert stored == (request_id,)

    check()
    print(f"request ids: {dict(seen)}")
    assert seen["valid"], f"no valid case drawn: {dict(seen)}"
    assert seen["invalid"], f"no invalid case drawn: {dict(seen)}"


# -- NUL and other strings PostgreSQL cannot receive ----------------------------------------

NUL_CASES = {
    "symbol": Call(
        "open_position",
        {"portfolio_id": 0, "symbol": "AA\x00PL", "quantity": Decimal(1), "price": Decimal(1)},
    ),
    "mark symbol": Call("update_market_price", {"symbol": "AAPL\x00", "price": Decimal(1)}),
    "name": Call(
        "create_portfolio", {"name": "Book\x00", "initial_cash": Decimal(1), "currency": "USD"}
    ),
    "currency": Call(
        "create_portfolio", {"name": "Book", "initial_cash": Decimal(1), "currency": "US\x00"}
    ),
    "request id": Call(
        "deposit_cash", {"portfolio_id": 0, "amount": Decimal(1), "request_id": "req\x00"}
    ),
    "grantee": Call("grant_portfolio", {"portfolio_id": 0, "role": "bob\x00"}),
}
SURROGATE_CASES = {
    "surrogate symbol": Call(
        "open_position",
        {"portfolio_id": 0, "symbol": "A\ud800", "quantity": Decimal(1), "price": Decimal(1)},
    ),
    "surrogate name": Call(
        "create_portfolio", {"name": "Book \udcff", "initial_cash": Decimal(1), "currency": "USD"}
    ),
}


# apply_fill through the client may go through the batch path (apply_fills, JSON), which
# handles these strings differently; it is checked for "refused, nothing changed" only.
COALESCED_CASES = {
    "fill symbol": Call(
        "apply_fill",
        {"portfolio_id": 0, "symbol": "AA\x00PL", "quantity": Decimal(1), "price": Decimal(1)},
    ),
    "fill surrogate": Call(
        "apply_fill",
        {"portfolio_id": 0, "symbol": "A\ud800", "quantity": Decimal(1), "price": Decimal(1)},
    ),
}
ALL_TEXT_CASES = {**NUL_CASES, **SURROGATE_CASES, **COALESCED_CASES}


def _aimed(call: Call, ledger: Ledger) -> Call:
    return call.with_arg("portfolio_id", ledger.target) if "portfolio_id" in call.args else call


@pytest.mark.parametrize("case", NUL_CASES)
def test_nul_through_sql_never_reaches_the_server(paths: Paths, ledger: Ledger, case: str) -> None:
    """PostgreSQL text cannot hold NUL: psycopg refuses the parameter before sending
    (DataError without a SQLSTATE). Nothing changes."""
    call = _aimed(NUL_CASES[case], ledger)
    before = snapshot(paths.conn)
    outcome = paths.sql(call)
    assert isinstance(outcome.error, psycopg.DataError), outcome.describe()
    assert outcome.sqlstate is None
    assert "NUL" in str(outcome.error)
    assert changes(before, snapshot(paths.conn)) == []


@pytest.mark.parametrize("case", ALL_TEXT_CASES)
def test_unsendable_text_through_the_clients_changes_nothing(
    paths: Paths, ledger: Ledger, case: str
) -> None:
    """NUL and lone surrogates through the clients: some error, and nothing changes."""
    call = _aimed(ALL_TEXT_CASES[case], ledger)
    before = snapshot(paths.conn)
    for way, outcome in (("async", paths.via_async(call)), ("sync", paths.via_sync(call))):
        assert outcome.error is not None, f"{way} accepted {call}"
    assert changes(before, snapshot(paths.conn)) == []


@pytest.mark.parametrize("case", [*NUL_CASES, *SURROGATE_CASES])
def test_unsendable_text_through_the_clients_is_invalid_input(
    paths: Paths, ledger: Ledger, case: str
) -> None:
    call = _aimed({**NUL_CASES, **SURROGATE_CASES}[case], ledger)
    results = {
        way: o.describe()
        for way, o in (("async", paths.via_async(call)), ("sync", paths.via_sync(call)))
    }
    assert all(r.startswith("InvalidInput") for r in results.values()), results


OTHER_ARGUMENT_CASES = {
    "expected_version=True": ("expected_version", True),
    "expected_version=1.0": ("expected_version", 1.0),
    "request_id=42": ("request_id", 42),
    "request_id=''": ("request_id", ""),
    "portfolio_id=2**70": ("portfolio_id", 2**70),
}


@pytest.mark.parametrize("case", OTHER_ARGUMENT_CASES)
def test_other_argument_types_are_invalid_input(paths: Paths, ledger: Ledger, case: str) -> None:
    argument, value = OTHER_ARGUMENT_CASES[case]
    call = Call(
        "deposit_cash", {"portfolio_id": ledger.target, "amount": Decimal(1), argument: value}
    )
    assert refused_without_change(paths, call, {"22023"}, ways=("async", "sync")) == []


# -- one caller's bad input and another caller's fill --------------------------------------

_BATCH_BREAKERS = {
    "NaN quantity": ("OK", Decimal("NaN")),
    "1e-9 quantity": ("OK", Decimal("1E-9")),
    "-NaN quantity": ("OK", Decimal("-NaN")),
    "quantity beyond numeric": ("OK", Decimal("1E+200000")),
    "NUL in the symbol": ("OK\x00", Decimal(1)),
    "surrogate in the symbol": ("OK\ud800", Decimal(1)),
}


@pytest.mark.parametrize("case", _BATCH_BREAKERS)
async def test_one_callers_bad_fill_does_not_fail_anothers(ledger: Ledger, case: str) -> None:
    """Three concurrent apply_fill calls on one async client: a valid one, a bad one, a
    valid one (the client may send the last two in one batch). Only the bad one is refused
    (InvalidInput); both valid fills are applied, the bad one is not."""
    symbol, quantity = _BATCH_BREAKERS[case]
    async with AsyncPortfolioClient(
        ledger.conninfo, min_size=1, max_size=2, monitor=Monitor()
    ) as client:
        pid = await client.create_portfolio("batch neighbours", Decimal(1000))
        results = await asyncio.gather(
            client.apply_fill(pid, "FIRST", Decimal(1), Decimal(1)),
            client.apply_fill(pid, symbol, quantity, Decimal(1)),
            client.apply_fill(pid, "INNOCENT", Decimal(1), Decimal(1)),
            return_exceptions=True,
        )
        snapshot_after = await client.get_portfolio(pid)
    kinds = [type(r).__name__ for r in results]
    assert kinds == ["MutationResult", "InvalidInput", "MutationResult"], results
    assert snapshot_after.version == 3
    assert sorted(snapshot_after.positions) == ["FIRST", "INNOCENT"]


# -- valid input the state refuses ---------------------------------------------------------


def state_cases(ledger: Ledger) -> dict[str, tuple[Call, str, type[PortfolioError]]]:
    target, poor = ledger.target, ledger.poor

    def cash(function: str, pid: int, amount: str, **extra: Any) -> Call:
        return Call(function, {"portfolio_id": pid, "amount": Decimal(amount), **extra})

    def fill(
        function: str, pid: int, symbol: str, quantity: str | None, price: str, fee: str = "0"
    ) -> Call:
        args: dict[str, Any] = {"portfolio_id": pid, "symbol": symbol}
        if quantity is not None:
            args["quantity"] = Decimal(quantity)
        return Call(function, {**args, "price": Decimal(price), "fee": Decimal(fee)})

    return {
        "stale expected version": (
            cash("deposit_cash", target, "1", expected_version=1),
            "PF001",
            VersionConflict,
        ),
        "withdraw a hair more than cash": (
            cash("withdraw_cash", poor, "15.00000001"),
            "PF002",
            InsufficientCash,
        ),
        "fee more than cash": (cash("charge_fee", poor, "16"), "PF002", InsufficientCash),
        "buy a hair more than cash": (
            fill("apply_fill", poor, "X", "1", "15", "0.00000001"),
            "PF002",
            InsufficientCash,
        ),
        "close a short without the cash": (
            fill("close_position", poor, "PSHORT", None, "16"),
            "PF002",
            InsufficientCash,
        ),
        "reduce a hair more than held": (
            fill("reduce_position", target, "HELD", "100.00000001", "10"),
            "PF003",
            InsufficientPosition,
        ),
        "reduce nothing held": (
            fill("reduce_position", target, "NONE", "1", "10"),
            "PF003",
            InsufficientPosition,
        ),
        "add to nothing held": (
            fill("add_to_position", target, "NONE", "1", "10"),
            "PF003",
            InsufficientPosition,
        ),
        "close nothing held": (
            fill("close_position", target, "NONE", None, "10"),
            "PF003",
            InsufficientPosition,
        ),
        "no such portfolio": (cash("deposit_cash", 2**63 - 1, "1"), "PF004", PortfolioNotFound),
        "negative portfolio id": (cash("deposit_cash", -1, "1"), "PF004", PortfolioNotFound),
        "request id reused": (
            cash("deposit_cash", target, "2", request_id=ledger.used_request_id),
            "PF005",
            RequestIdReused,
        ),
        "open what is open": (
            fill("open_position", target, "HELD", "1", "10"),
            "PF006",
            PositionAlreadyOpen,
        ),
        "add on the wrong side": (
            fill("add_to_position", target, "HELD", "-1", "10"),
            "22023",
            InvalidInput,
        ),
        "position would reach 10^15": (
            fill("apply_fill", target, "SHORT", "-999999999999950", "1"),
            "22023",
            InvalidInput,
        ),
        "expected version 0": (
            cash("deposit_cash", target, "1", expected_version=0),
            "22023",
            InvalidInput,
        ),
        "grant to no such role": (
            Call("grant_portfolio", {"portfolio_id": target, "role": "no such role"}),
            "22023",
            InvalidInput,
        ),
    }


STATE_CASE_NAMES = list(state_cases(Ledger("", 0, 0, 0)))


@pytest.mark.parametrize("case", STATE_CASE_NAMES)
def test_valid_input_refused_by_state_changes_nothing(
    paths: Paths, ledger: Ledger, case: str
) -> None:
    """Valid arguments the state refuses: the documented PF00x (or 22023 for a state-
    dependent rule) on every way in, with the matching client exception; nothing changes."""
    call, code, error = state_cases(ledger)[case]
    assert refused_without_change(paths, call, {code}, error) == []


# -- valid edge input ----------------------------------------------------------------------------

SYMBOL_32 = "A.B_C-D/E:F0123456789/:.-_ZYXWVU"
assert len(SYMBOL_32) == 32
assert symbol_ok(SYMBOL_32)


def edge_cases() -> dict[str, tuple[str, dict[str, Any], str, dict[str, str]]]:
    """label -> (function, arguments, where to look, expected stored values as text).
    Arguments name the portfolio 'PID' and the symbol 'SYM'; each way in gets its own."""
    return {
        "deposit the largest amount": (
            "deposit_cash",
            {"amount": LIMIT},
            "event",
            {"amount": "999999999999999.99999999"},
        ),
        "deposit 1e-8": (
            "deposit_cash",
            {"amount": Decimal("1E-8")},
            "event",
            {"amount": "0.00000001"},
        ),
        "deposit exactly 8 places": (
            "deposit_cash",
            {"amount": Decimal("12.34567891")},
            "event",
            {"amount": "12.34567891"},
        ),
        "deposit trailing zeros": (
            "deposit_cash",
            {"amount": Decimal("1.500000000")},
            "event",
            {"amount": "1.5"},
        ),
        "deposit 1E+2": ("deposit_cash", {"amount": Decimal("1E+2")}, "event", {"amount": "100"}),
        "withdraw 8 places": (
            "withdraw_cash",
            {"amount": Decimal("0.00000001")},
            "event",
            {"amount": "0.00000001"},
        ),
        "fee 8 places": (
            "charge_fee",
            {"amount": Decimal("0.99999999")},
            "event",
            {"fee": "0.99999999"},
        ),
        "sell the largest quantity at 1e-8": (
            "apply_fill",
            {"symbol": "SYM", "quantity": -LIMIT, "price": Decimal("1E-8")},
            "event",
            {
                "quantity": "-999999999999999.99999999",
                "price": "0.00000001",
                "position_quantity": "-999999999999999.99999999",
            },
        ),
        "open a 32-character symbol": (
            "open_position",
            {
                "symbol": "SYM",
                "quantity": Decimal("0.00000001"),
                "price": LIMIT,
                "fee": Decimal("0E-20"),
            },
            "event",
            {"quantity": "0.00000001", "price": "999999999999999.99999999", "fee": "0"},
        ),
        "fee -0 is zero": (
            "apply_fill",
            {
                "symbol": "SYM",
                "quantity": Decimal("1"),
                "price": Decimal("1.500000000"),
                "fee": Decimal("-0"),
            },
            "event",
            {"fee": "0", "price": "1.5"},
        ),
        "mark the largest price": (
            "update_market_price",
            {"symbol": "SYM", "price": LIMIT},
            "mark",
            {"price": "999999999999999.99999999"},
        ),
        "mark 1e-8": (
            "update_market_price",
            {"symbol": "SYM", "price": Decimal("1E-8")},
            "mark",
            {"price": "0.00000001"},
        ),
        "create with the largest cash": (
            "create_portfolio",
            {"name": "N", "initial_cash": LIMIT, "currency": "EUR"},
            "portfolio",
            {"initial_cash": "999999999999999.99999999", "currency": "EUR"},
        ),
        "create with zero cash": (
            "create_portfolio",
            {"name": "N", "initial_cash": Decimal("0.000"), "currency": "USD"},
            "portfolio",
            {"cash_balance": "0"},
        ),
        "create with a 200-character name": (
            "create_portfolio",
            {"name": "\U0001f600" * 200, "initial_cash": Decimal(1)},
            "portfolio",
            {"name": "\U0001f600" * 200},
        ),
        "create with quotes and confusables": (
            "create_portfolio",
            {"name": 'O\'Brien "\u0410" fund', "initial_cash": Decimal(1)},
            "portfolio",
            {"name": 'O\'Brien "\u0410" fund'},
        ),
        "a 200-character request id": (
            "deposit_cash",
            {"amount": Decimal(1), "request_id": "\u00e9'\"" * 66 + "zz"},
            "event",
            {"request_id": "\u00e9'\"" * 66 + "zz"},
        ),
    }


@pytest.mark.parametrize("case", list(edge_cases()))
def test_valid_edge_input_accepted(paths: Paths, case: str) -> None:
    """The edges the rules allow: exactly 8 places, 999999999999999.99999999, 1e-8,
    32-character symbols, trailing zeros (stored in shortest form), -0, 200-character names
    and request ids. Accepted on every way in and stored exactly."""
    function, arguments, where, expected = edge_cases()[case]
    problems: list[str] = []
    for n, way in enumerate(("SQL", "async", "sync")):
        pid = _scalar(paths.conn, "SELECT pgportfolio.create_portfolio('edge', %s)", (LIMIT,))
        symbol = SYMBOL_32[:-1] + "SAY"[n]
        args = {k: symbol if v == "SYM" else v for k, v in arguments.items()}
        if function != "create_portfolio" and function != "update_market_price":
            args = {"portfolio_id": pid, **args}
        call = Call(function, args)
        outcome = {"SQL": paths.sql, "async": paths.via_async, "sync": paths.via_sync}[way](call)
        if outcome.error is not None:
            problems.append(f"{way} {call}: {outcome.describe()}")
            continue
        columns = sql.SQL(", ").join(
            sql.SQL("{}::text").format(sql.Identifier(c)) for c in expected
        )
        if where == "event":
            query = sql.SQL(
                "SELECT {} FROM pgportfolio.events WHERE portfolio_id = %s"
                " ORDER BY portfolio_version DESC LIMIT 1"
            ).format(columns)
            row = paths.conn.execute(query, (pid,)).fetchone()
        elif where == "mark":
            query = sql.SQL("SELECT {} FROM pgportfolio.market_prices WHERE symbol = %s").format(
                columns
            )
            row = paths.conn.execute(query, (symbol,)).fetchone()
        else:
            created = outcome.value[0][0] if way == "SQL" else outcome.value
            query = sql.SQL("SELECT {} FROM pgportfolio.portfolios WHERE portfolio_id = %s").format(
                columns
            )
            row = paths.conn.execute(query, (created,)).fetchone()
        if row != tuple(expected.values()):
            problems.append(f"{way} {call}: stored {row}, expected {tuple(expected.values())}")
    problems += non_finite(paths.conn)
    assert problems == []


# -- negative controls -------------------------------------------------------------------------


def test_no_change_checker_sees_a_legitimate_mutation(paths: Paths, ledger: Ledger) -> None:
    """The checker is not blind: let a valid deposit through it and it must report the
    acceptance on every way in and the changed rows (portfolio version, event)."""
    call = Call("deposit_cash", {"portfolio_id": ledger.sink, "amount": Decimal("0.5")})
    problems = refused_without_change(paths, call, {"22023"})
    assert len([p for p in problems if "accepted" in p and "expected a refusal" in p]) == 3, (
        problems
    )
    assert any("pgportfolio.portfolios changed" in p for p in problems), problems
    assert any("pgportfolio.events changed" in p for p in problems), problems


def test_non_finite_scan_sees_nan(ledger: Ledger) -> None:
    """The NaN scan is not blind: with the constraints dropped inside a transaction
    that is rolled back, a NaN mark (and what it does to the views) and a NaN in an
    event are found."""
    with psycopg.connect(ledger.conninfo) as conn:
        assert non_finite(conn) == []
        conn.execute(
            "ALTER TABLE pgportfolio.market_prices DROP CONSTRAINT market_prices_price_valid"
        )
        conn.execute("UPDATE pgportfolio.market_prices SET price = 'NaN' WHERE symbol = 'HELD'")
        conn.execute("ALTER TABLE pgportfolio.events DISABLE TRIGGER events_append_only")
        conn.execute("ALTER DOMAIN pgportfolio.finite_number DROP CONSTRAINT finite_number_check")
        conn.execute(
            "UPDATE pgportfolio.events SET amount = 'NaN'"
            " WHERE portfolio_id = %s AND portfolio_version = 1",
            (ledger.target,),
        )
        found = non_finite(conn)
        conn.rollback()
        assert non_finite(conn) == []
    assert any("market_prices.price" in f for f in found), found
    assert any("position_pnl.mark_price" in f for f in found), found
    assert any("portfolio_summary.market_value" in f for f in found), found
    assert any("events.amount" in f for f in found), found


def _switch_off(conninfo: str, function: str) -> None:
    """Replace a validation function's body with an immediate RETURN (a broken copy)."""
    with psycopg.connect(conninfo, autocommit=True) as conn:
        source = _scalar(conn, "SELECT pg_get_functiondef(%s::regprocedure)", (function,))
        broken = source.replace("\nBEGIN\n", "\nBEGIN\n    RETURN;\n", 1)
        assert broken != source, f"could not switch off {function}"
        conn.execute(broken.encode())


@pytest.mark.parametrize(
    ("function", "cases"),
    [
        (
            "pgportfolio._check_number(text,numeric,text)",
            [
                ("deposit_cash", "amount", Decimal("1E-9")),
                ("deposit_cash", "amount", Decimal("-5")),
                ("update_market_price", "price", Decimal("NaN")),
                ("apply_fill", "quantity", Decimal("-1E-30")),
                ("apply_fill", "fee", Decimal("-1")),
            ],
        ),
        (
            "pgportfolio._check_symbol(text)",
            [("apply_fill", "symbol", "aapl"), ("update_market_price", "symbol", "\u0410APL")],
        ),
    ],
    ids=["numbers", "symbols"],
)
def test_refusal_checker_catches_switched_off_validation(
    db: str, function: str, cases: list[tuple[str, str, object]]
) -> None:
    """Against a ledger whose validation is switched off, every case must be reported."""
    _switch_off(db, function)
    with open_paths(db) as broken:
        pid = _scalar(broken.conn, "SELECT pgportfolio.create_portfolio('broken', 1000)")
        base = {
            "deposit_cash": Call("deposit_cash", {"portfolio_id": pid, "amount": Decimal(1)}),
            "update_market_price": Call(
                "update_market_price", {"symbol": "OK", "price": Decimal(1)}
            ),
            "apply_fill": Call(
                "apply_fill",
                {
                    "portfolio_id": pid,
                    "symbol": "OK",
                    "quantity": Decimal(-1),
                    "price": Decimal(1),
                    "fee": Decimal(0),
                },
            ),
        }
        for name, argument, value in cases:
            call = base[name].with_arg(argument, value)
            assert refused_without_change(broken, call, {"22023"}), f"{call} passed a broken ledger"
