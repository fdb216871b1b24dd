"""A session's plans, made while the tables were nearly empty, must still reach rows by key
once the tables have grown.

PL/pgSQL keeps a statement's plan for the life of the session. On a new database the first
calls plan with next to no statistics. The look-up of a portfolio's latest event (the head
of its hash chain), planned that way, went through the request-id index's portfolio_id
prefix and read every event of the portfolio on every later call (10,003 events for one
fill here, before the head moved onto the portfolio's row). The request-id probe, as a
static statement, was planned on the primary key's prefix too, reading every event of the
portfolio for every element. Both probes now compare the portfolio as portfolio_id + 0, so
that the request-id index is their only way in, and a call of many probes in a subquery per
element (OFFSET 0). Negative controls, run when this was written: with portfolio_id = ...
the call of one reads 10,152 events; the call of many as a plain join (no OFFSET 0) scans
the whole request-id index once per element, 502,550 events for a call of 50.
This counts the rows a call
reads (pg_stat_xact_user_tables, within the call's own transaction), so it does not depend
on timing.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import psycopg
import pytest

GROWTH = 10_000  # events added to the portfolio after the first session planned its calls
CHUNK = 1_000


def _fills(conn: psycopg.Connection[Any], pid: int, count: int, prefix: str) -> None:
    rows = conn.execute(
        "SELECT count(*) FILTER (WHERE sqlstate IS NOT NULL) FROM pgportfolio.apply_fills_arrays("
        " array_fill(%s::bigint, ARRAY[%s]),"
        " ARRAY(SELECT 'S' || (n %% 50) FROM generate_series(1, %s) AS n),"
        " array_fill(1::numeric, ARRAY[%s]), array_fill(10::numeric, ARRAY[%s]), NULL,"
        " ARRAY(SELECT %s || n FROM generate_series(1, %s) AS n))",
        (pid, count, count, count, count, prefix, count),
    ).fetchone()
    assert rows == (0,)


def _young_portfolio(
    early: psycopg.Connection[Any], bulk: psycopg.Connection[Any], events_at_planning: str
) -> int:
    """A new portfolio, with the events table as a young deployment's would be."""
    row = early.execute(
        "SELECT pgportfolio.create_portfolio('plans', %s)", (Decimal(10) ** 12,)
    ).fetchone()
    assert row is not None
    pid = int(row[0])
    if events_at_planning == "one, analyzed":
        # Statistics of the nearly empty table, as autovacuum takes them soon after it
        # is created.
        early.execute("ANALYZE pgportfolio.events")
    else:
        # A few calls of other sessions before this one's first (a bench's or a
        # service's first second), no statistics yet.
        _fills(bulk, pid, 150, "first-" + "0" * 30)
    return pid


def _grow(bulk: psycopg.Connection[Any], pid: int) -> None:
    for start in range(0, GROWTH, CHUNK):
        _fills(bulk, pid, CHUNK, f"bulk-{start}-")


@pytest.mark.parametrize("calls_of", [1, 50])
@pytest.mark.parametrize("events_at_planning", ["one, analyzed", "151, not analyzed"])
def test_a_call_reads_only_the_rows_it_needs_after_the_tables_grew(
    db: str, calls_of: int, events_at_planning: str
) -> None:
    # A call of one and a batch take different statements. Both table states at planning
    # time made a static request-id probe take the primary key's prefix and filter.
    with (
        psycopg.connect(db, autocommit=True) as early,
        psycopg.connect(db, autocommit=True) as bulk,
    ):
        pid = _young_portfolio(early, bulk, events_at_planning)
        # The early session makes its plans now, on nearly empty tables.
        _fills(early, pid, calls_of, "early-")
        _grow(bulk, pid)

        # The counters may still hold this session's earlier, unflushed reads: the call's
        # own are the difference across it, within one transaction.
        early.autocommit = False
        before = _rows_read(early, "events")
        _fills(early, pid, calls_of, "late-")
        read = _rows_read(early, "events") - before
        early.rollback()
    # Each fill reads its request id's event (none) and writes one event; reading the
    # portfolio's log would be thousands per fill.
    assert read < 100 * calls_of, (
        f"a call of {calls_of} read {read} events of a portfolio holding {GROWTH}"
    )


@pytest.mark.parametrize("events_at_planning", ["one, analyzed", "151, not analyzed"])
def test_find_request_reads_only_its_event_after_the_tables_grew(
    db: str, events_at_planning: str
) -> None:
    """find_request, planned generically by a session while the log was nearly empty, still
    probes the request-id index once the portfolio holds thousands of events."""
    with (
        psycopg.connect(db, autocommit=True) as early,
        psycopg.connect(db, autocommit=True) as bulk,
    ):
        pid = _young_portfolio(early, bulk, events_at_planning)
        # PL/pgSQL switches a statement to its generic plan after five custom ones.
        for n in range(8):
            early.execute("SELECT * FROM pgportfolio.find_request(%s, %s)", (pid, f"absent-{n}"))
        _grow(bulk, pid)
        early.autocommit = False
        before = _rows_read(early, "events")
        found = early.execute(
            "SELECT count(*) FROM pgportfolio.find_request(%s, %s)", (pid, "bulk-0-1")
        ).fetchone()
        absent = early.execute(
            "SELECT count(*) FROM pgportfolio.find_request(%s, %s)", (pid, "never-sent")
        ).fetchone()
        read = _rows_read(early, "events") - before
        early.rollback()
    assert (found, absent) == ((1,), (0,))
    assert read < 10, f"two find_request calls read {read} events of a portfolio holding {GROWTH}"


def _rows_read(conn: psycopg.Connection[Any], table: str) -> int:
    """Rows of a pgportfolio table read so far in this transaction, by index or scan."""
    row = conn.execute(
        "SELECT coalesce(idx_tup_fetch, 0) + coalesce(seq_tup_read, 0)"
        " FROM pg_stat_xact_user_tables"
        " WHERE schemaname = 'pgportfolio' AND relname = %s",
        (table,),
    ).fetchone()
    assert row is not None
    return int(row[0])


WIDE = 2_000  # positions of the wide portfolio: above portfolio_valuation's 1,000
SMALL_PORTFOLIOS = 300  # one position each, so that statistics describe a small average
OTHER_MARKS = 8_000  # marks of symbols no portfolio here holds


def _market_price_scans(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute(
        "SELECT coalesce(idx_scan, 0) + coalesce(seq_scan, 0) FROM pg_stat_xact_user_tables"
        " WHERE schemaname = 'pgportfolio' AND relname = 'market_prices'"
    ).fetchone()
    assert row is not None
    return int(row[0])


def _buy_one_of_each(conn: psycopg.Connection[Any], pid: int, symbols: list[str]) -> None:
    """One position of 1 at 10 per symbol, in one call."""
    conn.execute(
        "SELECT count(*) FROM pgportfolio.apply_fills_arrays(array_fill(%s::bigint, ARRAY[%s]),"
        " %s::text[], array_fill(1::numeric, ARRAY[%s]), array_fill(10::numeric, ARRAY[%s]))",
        (pid, len(symbols), symbols, len(symbols), len(symbols)),
    )


def _mark_at_11(conn: psycopg.Connection[Any], symbols: list[str]) -> None:
    conn.execute(
        "SELECT pgportfolio.update_market_prices(%s::jsonb)",
        ("[" + ",".join(f'{{"symbol": "{s}", "price": 11}}' for s in symbols) + "]",),
    )


@pytest.mark.parametrize("plan_cache_mode", ["force_generic_plan", "auto"])
def test_the_summary_of_a_wide_portfolio_does_not_probe_a_mark_per_position(
    db: str, plan_cache_mode: str
) -> None:
    """portfolio_summary's valuation was a join in the view, planned for the average
    portfolio: among many small portfolios (and in every generic plan of a prepared
    statement) a wide one had its marks probed one index scan per position. Negative
    control, run when this was written: the join in the view made 2,000 scans of
    market_prices for one read of a 2,000-position portfolio."""
    with psycopg.connect(db, autocommit=True) as conn:
        symbols = [f"W{n:05d}" for n in range(WIDE)]
        created = conn.execute(
            "SELECT pgportfolio.create_portfolio('wide', 1e12),"
            " pgportfolio.create_portfolio('small', 0)"
        ).fetchone()
        assert created is not None
        wide, small = created
        _buy_one_of_each(conn, wide, symbols)
        for n in range(SMALL_PORTFOLIOS):
            pid = conn.execute(
                "SELECT pgportfolio.create_portfolio(%s, 1000)", (f"small {n}",)
            ).fetchone()
            assert pid is not None
            conn.execute(
                "SELECT * FROM pgportfolio.apply_fill(%s, %s, 1, 10)", (pid[0], symbols[n])
            )
        # Marks of many more symbols than the portfolio holds, as a desk's feed gives: the
        # old join's planner then preferred probing marks to reading them all.
        marked = symbols + [f"X{n:05d}" for n in range(OTHER_MARKS)]
        _mark_at_11(conn, marked)
        conn.execute("ANALYZE pgportfolio.positions")
        conn.execute("ANALYZE pgportfolio.market_prices")
        conn.execute(f"SET plan_cache_mode = {plan_cache_mode}")
        query = (
            "SELECT market_value, open_positions FROM pgportfolio.portfolio_summary"
            " WHERE portfolio_id = %s"
        )
        for _ in range(8):  # past the plan cache's five custom plans
            conn.execute(query, (small,), prepare=True)
        conn.autocommit = False
        before = _market_price_scans(conn)
        row = conn.execute(query, (wide,), prepare=True).fetchone()
        scans = _market_price_scans(conn) - before
        conn.rollback()
    assert row == (Decimal(11) * WIDE, WIDE)
    assert scans < 10, f"one summary of {WIDE} positions scanned market_prices {scans} times"


UNIVERSE_PER_POSITION = 20  # marked symbols between two held ones, as a desk's whole feed


@pytest.mark.parametrize(
    "read",
    [
        "SELECT market_value FROM pgportfolio.portfolio_summary WHERE portfolio_id = %s",
        "SELECT mark_prices FROM pgportfolio.portfolio_snapshot(%s)",
    ],
)
def test_a_wide_read_does_not_walk_every_mark_of_a_large_universe(db: str, read: str) -> None:
    """A wide portfolio's marks were read by one merge of the two primary keys, which walks
    every mark between the portfolio's first and last symbol. When the ledger marks many
    more symbols than the portfolio holds (a feed of the whole market), that walk cost far
    more than one probe per position. Negative control, run when this was written: with
    the plan chosen by the number of positions alone, one read of 2,000 positions among
    42,000 marks fetched 41,980 rows of market_prices."""
    with psycopg.connect(db, autocommit=True) as conn:
        symbols = [f"W{n:05d}" for n in range(WIDE)]
        created = conn.execute("SELECT pgportfolio.create_portfolio('wide', 1e12)").fetchone()
        assert created is not None
        wide = created[0]
        _buy_one_of_each(conn, wide, symbols)
        # Between any two held symbols, others the portfolio does not hold.
        marked = symbols + [f"{s}.{n:02d}" for s in symbols for n in range(UNIVERSE_PER_POSITION)]
        _mark_at_11(conn, marked)
        conn.autocommit = False
        before = _rows_read(conn, "market_prices")
        row = conn.execute(read, (wide,)).fetchone()
        fetched = _rows_read(conn, "market_prices") - before
        conn.rollback()
    assert row is not None
    assert row[0] is not None
    assert fetched <= 2 * WIDE, (
        f"one read of {WIDE} positions among {len(marked)} marks fetched {fetched} marks"
    )


# Reads of one portfolio whose statements are planned without its id: generic plans
# (plan_cache_mode), SQL functions, and the functions that read through them.
READS_OF_ONE_PORTFOLIO = [
    "SELECT * FROM pgportfolio.portfolio_snapshot(%(pid)s)",
    "SELECT * FROM pgportfolio.portfolio_summary WHERE portfolio_id = %(pid)s",
    "SELECT * FROM pgportfolio.get_portfolio(%(pid)s)",
    "SELECT * FROM pgportfolio.events_since(%(pid)s, 0)",
    "SELECT * FROM pgportfolio.positions_as_of(%(pid)s, now())",
    "SELECT * FROM pgportfolio.portfolio_as_of(%(pid)s, now())",
    "SELECT * FROM pgportfolio.positions_at_version(%(pid)s, 2)",
    "SELECT * FROM pgportfolio.portfolio_at_version(%(pid)s, 2)",
    "SELECT * FROM pgportfolio.verify_portfolio(%(pid)s)",
]

# As if the ledger held a few very large portfolios: a plan made without the portfolio's
# id is costed for the average one, and past these costs the planner compiles it (JIT) or
# starts parallel workers.
COSTS_OF_A_FEW_LARGE_PORTFOLIOS = [
    "jit_above_cost = 0",
    "parallel_setup_cost = 0",
    "parallel_tuple_cost = 0",
    "min_parallel_table_scan_size = 0",
    "min_parallel_index_scan_size = 0",
]


@pytest.mark.debian_extensions
@pytest.mark.parametrize("read", READS_OF_ONE_PORTFOLIO)
def test_a_read_of_one_portfolio_is_never_compiled_nor_run_in_parallel(db: str, read: str) -> None:
    """These reads plan their statements without the portfolio's id, so their estimates are
    the average portfolio's. In a ledger of a few large portfolios that estimate passed
    jit_above_cost, and every read of a small portfolio compiled its statements: 10 to 14
    ms a call instead of 0.5 for its snapshot, summary row or get_portfolio (2 portfolios
    of 60,000 positions and one of 20; 24 to 36 ms for the point-in-time reads among
    800,000 events), and events_since started parallel workers. Negative control, run when
    this was written: every read here had JIT in the plan of a statement of its own.
    auto_explain shows each nested statement's plan as a LOG message."""
    with psycopg.connect(db, autocommit=True) as conn:
        available = conn.execute("SELECT pg_jit_available()").fetchone()
        if not available or not available[0]:
            pytest.skip("this server has no JIT")
        try:
            conn.execute("LOAD 'auto_explain'")
        except psycopg.errors.UndefinedFile:
            pytest.skip("this server has no auto_explain")
        created = conn.execute("SELECT pgportfolio.create_portfolio('small', 1000)").fetchone()
        assert created is not None
        pid = created[0]
        conn.execute(
            "SELECT count(*) FROM pgportfolio.apply_fills_arrays(array_fill(%s::bigint, ARRAY[3]),"
            " ARRAY['A', 'B', 'A'], ARRAY[1, 2, -1]::numeric[], ARRAY[10, 20, 11]::numeric[])",
            (pid,),
        )
        conn.execute("SELECT pgportfolio.update_market_price('A', 12)")
        plans: list[str] = []
        conn.add_notice_handler(lambda notice: plans.append(notice.message_primary or ""))
        for setting in [
            "auto_explain.log_min_duration = 0",
            "auto_explain.log_nested_statements = on",
            "client_min_messages = log",
            *COSTS_OF_A_FEW_LARGE_PORTFOLIOS,
        ]:
            conn.execute(f"SET {setting}")
        conn.execute(read, {"pid": pid}).fetchall()
    top = "Query Text: " + read.replace("%(pid)s", "$1")
    own = [plan for plan in plans if top not in plan]
    assert own, "auto_explain showed no statement of the read's own"
    compiled = [plan for plan in own if "JIT:" in plan or "Gather" in plan]
    assert compiled == [], f"{len(compiled)} of {len(own)} statements compiled or parallel"


def test_verify_portfolio_of_a_small_portfolio_reads_only_its_own_rows_after_large_ones(
    db: str,
) -> None:
    """PL/pgSQL keeps a generic plan once five custom plans cost about as much; after an
    audit of large portfolios, verify_portfolio's generic plan scanned every portfolio's
    events and positions for a small one (200,000 events: 46 ms instead of 2.8). Negative
    control, run when this was written: 10,010 rows read here (two scans of every position)
    for a portfolio of 4 events and 4 positions."""
    with psycopg.connect(db, autocommit=True) as conn:
        created = conn.execute(
            "SELECT pgportfolio.create_portfolio('large 1', 1e12),"
            " pgportfolio.create_portfolio('large 2', 1e12),"
            " pgportfolio.create_portfolio('small', 1000)"
        ).fetchone()
        assert created is not None
        *large, small = created
        for pid in large:  # 5,000 positions and 20,000 events each
            for _ in range(4):
                conn.execute(
                    "SELECT count(*) FROM pgportfolio.apply_fills_arrays("
                    " array_fill(%s::bigint, ARRAY[5000]),"
                    " ARRAY(SELECT 'L' || n FROM generate_series(1, 5000) AS n),"
                    " array_fill(1::numeric, ARRAY[5000]), array_fill(10::numeric, ARRAY[5000]))",
                    (pid,),
                )
        _fills(conn, small, 4, "audit-small-")
        conn.execute("ANALYZE pgportfolio.events")
        conn.execute("ANALYZE pgportfolio.positions")
        for _ in range(3):
            for pid in large:
                conn.execute("SELECT * FROM pgportfolio.verify_portfolio(%s)", (pid,)).fetchall()
        conn.autocommit = False
        before = _rows_read(conn, "events") + _rows_read(conn, "positions")
        checks = conn.execute(
            "SELECT bool_and(ok) FROM pgportfolio.verify_portfolio(%s)", (small,)
        ).fetchone()
        read = _rows_read(conn, "events") + _rows_read(conn, "positions") - before
        conn.rollback()
    assert checks == (True,)
    assert read < 100, f"verify_portfolio of 4 events and 4 positions read {read} rows"


CLOSING_PORTFOLIOS = 100
CLOSED_DAYS = 30


def test_one_day_of_daily_pnl_reads_that_day_and_the_close_before(db: str) -> None:
    """daily_pnl paired each close with the one before by a window over every close, so a
    filter on the day could not be applied first: one day's report read every close ever
    recorded (a year of 1,000 portfolios: 366,000 closes, 672 ms for 1,000 rows). Negative
    control, run when this was written: 3,000 closes read here for one day of 100
    portfolios."""
    with psycopg.connect(db, autocommit=True) as conn:
        row = conn.execute(
            "SELECT array_agg(pgportfolio.create_portfolio('closing ' || n, 100))"
            " FROM generate_series(1, %s) AS n",
            (CLOSING_PORTFOLIOS,),
        ).fetchone()
        assert row is not None
        # Closes as close_day writes them (a flat portfolio of 100 in cash), written directly
        # so that the test does not rebuild 3,000 days.
        conn.execute(
            "INSERT INTO pgportfolio.daily_closes (portfolio_id, day, portfolio_version,"
            " cash_balance, market_value, cost_basis, unrealized_pnl, realized_pnl,"
            " net_deposits, equity, open_positions, closed_at)"
            " SELECT p, DATE '2026-11-01' + d, 1, 100, 0, 0, 0, 0, 100, 100, 0, now()"
            " FROM unnest(%s::bigint[]) AS p, generate_series(0, %s) AS d",
            (row[0], CLOSED_DAYS - 1),
        )
        conn.execute("ANALYZE pgportfolio.daily_closes")
        conn.autocommit = False
        before = _rows_read(conn, "daily_closes")
        day = conn.execute(
            "SELECT count(*), count(previous_day) FROM pgportfolio.daily_pnl"
            " WHERE day = DATE '2026-11-01' + %s",
            (CLOSED_DAYS - 1,),
        ).fetchone()
        read = _rows_read(conn, "daily_closes") - before
        conn.rollback()
    assert day == (CLOSING_PORTFOLIOS, CLOSING_PORTFOLIOS)
    assert read <= 2 * CLOSING_PORTFOLIOS, f"one day of {CLOSING_PORTFOLIOS} read {read} closes"
