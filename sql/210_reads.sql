-- Reads for programs. Analysts use the views; the client calls these so that each of
-- its queries is one function call and each result is one consistent snapshot.
--
-- Reads of one portfolio run with JIT compilation and parallel workers off (SET jit,
-- max_parallel_workers_per_gather), as do portfolio_valuation, the point-in-time reads
-- and verify_portfolio. Their plans are made without the portfolio's id (generic plans,
-- SQL functions), so they are costed for the average portfolio; in a ledger of a few
-- large portfolios that estimate passed jit_above_cost, and every read of a small one
-- compiled its statements: 10 to 14 ms a call instead of 0.5 for its snapshot (two
-- portfolios of 60,000 positions and one of 20), 24 to 36 ms for the point-in-time reads
-- among 800,000 events, and events_since started parallel workers. A read of one
-- portfolio never needs either.

-- A portfolio and all its open positions in one statement's snapshot, in one row: the
-- portfolio's columns once, then each position column as one text of comma-separated
-- values, value i of each being the i-th position in symbol order (symbols never
-- contain a comma). For programs: 10,000 positions travel as seven strings, which the
-- server writes and a client splits far faster than arrays or rows (docs/performance.md).
-- Values are the columns' exact text (numeric_out); mark_prices has an empty value
-- where the symbol has no mark. Market value and unrealized P&L are left to the caller:
-- quantity * mark * multiplier, less cost_basis, exact.
--
-- Marks are found in one of two plans, chosen by the number of open positions (not by
-- statistics, which a new or busy database may not have): up to 999, one probe of the
-- marks' key per position (about 2 µs each, whatever the number of marks); from 1,000,
-- one merge of the two primary keys read in symbol order (no sort, no hash of every
-- mark), unless the ledger marks more than ten times as many symbols as the portfolio
-- holds, which the merge would walk (_wide_read_merges_marks, 200_views.sql). The
-- function's settings below
-- price hash joins, sorts and sequential scans out, so the planner keeps those shapes,
-- and make the plans generic, made once per session: with custom plans each call planned
-- its statements again (a 10-position snapshot 0.33 ms a call, 0.23 with generic plans).
CREATE FUNCTION pgportfolio.portfolio_snapshot(p_portfolio_id bigint)
RETURNS TABLE (
    portfolio_id bigint,
    name text,
    currency text,
    cash_balance numeric,
    realized_pnl numeric,
    version bigint,
    updated_at timestamptz,
    symbols text,
    quantities text,
    cost_bases text,
    mark_prices text,
    position_realized_pnls text,
    position_versions text,
    multipliers text
)
LANGUAGE plpgsql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET jit = off
SET max_parallel_workers_per_gather = 0
SET enable_hashjoin = off
SET enable_sort = off
SET enable_seqscan = off
SET enable_nestloop = off
SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
    v_positions bigint;
BEGIN
    IF p_portfolio_id IS NULL THEN
        RAISE EXCEPTION 'p_portfolio_id must not be null' USING ERRCODE = '22023';
    END IF;
    -- A STABLE function's statements all see the calling statement's snapshot, so the
    -- portfolio row and its positions below are one consistent state.
    SELECT pf.portfolio_id, pf.name, pf.currency, pf.cash_balance, pf.realized_pnl, pf.version, pf.updated_at
    INTO portfolio_id, name, currency, cash_balance, realized_pnl, version, updated_at
    FROM pgportfolio.portfolios AS pf
    WHERE pf.portfolio_id = p_portfolio_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'portfolio % not found', p_portfolio_id USING ERRCODE = 'PF004';
    END IF;
    -- Counting stops at 1,000: a narrow portfolio's plan is chosen in a few index entries.
    SELECT count(*) INTO v_positions
    FROM (SELECT FROM pgportfolio.positions AS p WHERE p.portfolio_id = p_portfolio_id LIMIT 1000) AS w;
    IF v_positions < 1000 OR NOT pgportfolio._wide_read_merges_marks(p_portfolio_id) THEN
        SELECT
            coalesce(string_agg(o.symbol, ','), ''),
            coalesce(string_agg(o.quantity::text, ','), ''),
            coalesce(string_agg(o.cost_basis::text, ','), ''),
            coalesce(string_agg(coalesce(o.price::text, ''), ','), ''),
            coalesce(string_agg(o.realized_pnl::text, ','), ''),
            coalesce(string_agg(o.version::text, ','), ''),
            coalesce(string_agg(o.multiplier::text, ','), '')
        INTO symbols, quantities, cost_bases, mark_prices, position_realized_pnls, position_versions, multipliers
        FROM (
            SELECT
                p.symbol, p.quantity, p.cost_basis, p.realized_pnl, p.version, p.multiplier,
                (SELECT m.price FROM pgportfolio.market_prices AS m WHERE m.symbol = p.symbol) AS price
            FROM pgportfolio.positions AS p
            WHERE p.portfolio_id = p_portfolio_id
            ORDER BY p.symbol
        ) AS o;
    ELSE
        SELECT
            coalesce(string_agg(o.symbol, ','), ''),
            coalesce(string_agg(o.quantity::text, ','), ''),
            coalesce(string_agg(o.cost_basis::text, ','), ''),
            coalesce(string_agg(coalesce(o.price::text, ''), ','), ''),
            coalesce(string_agg(o.realized_pnl::text, ','), ''),
            coalesce(string_agg(o.version::text, ','), ''),
            coalesce(string_agg(o.multiplier::text, ','), '')
        INTO symbols, quantities, cost_bases, mark_prices, position_realized_pnls, position_versions, multipliers
        FROM (
            SELECT p.symbol, p.quantity, p.cost_basis, p.realized_pnl, p.version, p.multiplier, m.price
            FROM pgportfolio.positions AS p
            LEFT JOIN pgportfolio.market_prices AS m ON p.symbol = m.symbol
            WHERE p.portfolio_id = p_portfolio_id
            ORDER BY p.symbol
        ) AS o;
    END IF;
    RETURN NEXT;
END;
$$;

COMMENT ON FUNCTION pgportfolio.portfolio_snapshot(bigint) IS
'A portfolio and its open positions in one row: each position column as comma-separated text, in symbol order.';

-- The same snapshot as portfolio_snapshot, one row per position, for people: portfolio
-- columns repeat on every row; a portfolio with no position yields one row with symbol
-- NULL. Errors are portfolio_snapshot's. It reads through portfolio_snapshot so that the
-- snapshot is defined once; parsing the texts back costs it about 25 ms of server CPU
-- per 10,000 positions (docs/performance.md).
CREATE FUNCTION pgportfolio.get_portfolio(p_portfolio_id bigint)
RETURNS TABLE (
    portfolio_id bigint,
    name text,
    currency text,
    cash_balance numeric,
    realized_pnl numeric,
    version bigint,
    updated_at timestamptz,
    symbol text,
    quantity numeric,
    cost_basis numeric,
    mark_price numeric,
    position_realized_pnl numeric,
    position_version bigint,
    multiplier numeric
)
LANGUAGE sql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
-- No JIT and no parallel workers: see the top of this file.
SET jit = off
SET max_parallel_workers_per_gather = 0
AS $$
    SELECT
        s.portfolio_id, s.name, s.currency, s.cash_balance, s.realized_pnl, s.version, s.updated_at,
        p.symbol, p.quantity, p.cost_basis, p.mark_price, p.realized_pnl, p.version, p.multiplier
    FROM pgportfolio.portfolio_snapshot(p_portfolio_id) AS s
    -- An empty text splits into no element; an empty mark is NULL.
    LEFT JOIN LATERAL unnest(
        string_to_array(s.symbols, ','),
        string_to_array(s.quantities, ',')::numeric[],
        string_to_array(s.cost_bases, ',')::numeric[],
        string_to_array(s.mark_prices, ',', '')::numeric[],
        string_to_array(s.position_realized_pnls, ',')::numeric[],
        string_to_array(s.position_versions, ',')::bigint[],
        string_to_array(s.multipliers, ',')::numeric[]
    ) WITH ORDINALITY AS p (
        symbol, quantity, cost_basis, mark_price, realized_pnl, version, multiplier, item
    ) ON TRUE
    ORDER BY p.item;
$$;

COMMENT ON FUNCTION pgportfolio.get_portfolio(bigint) IS
'A portfolio and its open positions in one snapshot (one row per position).';

-- What became of a request: its original result (duplicate = true), or no row when it
-- was never applied. A client whose connection died during COMMIT asks this instead of
-- sending the operation again blind.
CREATE FUNCTION pgportfolio.find_request(p_portfolio_id bigint, p_request_id text)
RETURNS SETOF pgportfolio.mutation_result
LANGUAGE plpgsql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
-- PL/pgSQL keeps the plan for the session: one made while the log was nearly empty
-- scanned the whole events table on every later call (tests/test_plan_stability.py).
SET enable_seqscan = off
AS $$
BEGIN
    PERFORM pgportfolio._authorize(p_portfolio_id, pgportfolio._acting_role());
    RETURN QUERY
    SELECT
        e.portfolio_id, e.portfolio_version, e.cash_balance::numeric, e.symbol, e.position_quantity::numeric,
        CASE
            WHEN e.position_quantity <> 0 THEN round(e.position_cost_basis / (e.position_quantity * e.multiplier), 8)
        END,
        e.realized_pnl::numeric, true
    FROM pgportfolio.events AS e
    -- portfolio_id + 0: the request-id index is the only way in, whatever the statistics
    -- were when the session planned this (the look-up in 128_operations.sql explains why)
    WHERE e.request_id = p_request_id AND e.portfolio_id + 0 = p_portfolio_id;
END;
$$;

COMMENT ON FUNCTION pgportfolio.find_request(bigint, text) IS
'The stored result of a request id, or no row if it was never applied.';

-- The events of a portfolio after a version, in order, with every column of the log.
CREATE FUNCTION pgportfolio.events_since(p_portfolio_id bigint, p_after_version bigint)
RETURNS SETOF pgportfolio.event_log
LANGUAGE sql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
-- No JIT and no parallel workers: see the top of this file.
SET jit = off
SET max_parallel_workers_per_gather = 0
AS $$
    SELECT e.*
    FROM pgportfolio.event_log AS e
    WHERE e.portfolio_id = p_portfolio_id AND e.portfolio_version > p_after_version
    ORDER BY e.portfolio_version;
$$;

COMMENT ON FUNCTION pgportfolio.events_since(bigint, bigint) IS
'Events of a portfolio after a version, in order, with every column of the log.';

-- The current version of a portfolio (cheap: one row, no positions).
CREATE FUNCTION pgportfolio.portfolio_version(p_portfolio_id bigint)
RETURNS bigint
LANGUAGE sql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT p.version FROM pgportfolio.portfolios AS p WHERE p.portfolio_id = p_portfolio_id;
$$;

COMMENT ON FUNCTION pgportfolio.portfolio_version(bigint) IS 'The current version of a portfolio, or NULL.';

-- Push updates. A subscriber follows the log: every interval it asks for the events
-- after the last version it delivered, for all its portfolios in one call. Nothing is
-- sent at commit, so commits never queue on PostgreSQL's cluster-wide NOTIFY lock (which
-- is held through the commit's WAL flush), and nothing arrives on a channel that any
-- role could forge or overhear: what a subscriber yields is the log itself, and only
-- roles that may read the log (traders, analysts) may call this.
-- Each portfolio's events come in version order, at most p_limit of them, so a
-- subscriber far behind catches up in bounded steps; each step is one descent of the
-- events primary key (portfolio_id, portfolio_version) per portfolio.
CREATE FUNCTION pgportfolio.events_after(
    p_portfolio_ids bigint[],
    p_after_versions bigint[],
    p_limit integer DEFAULT 1000
)
RETURNS TABLE (portfolio_id bigint, portfolio_version bigint, kind text)
LANGUAGE plpgsql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_count integer := coalesce(array_length(p_portfolio_ids, 1), 0);
BEGIN
    IF p_portfolio_ids IS NULL OR p_after_versions IS NULL
       OR v_count <> coalesce(array_length(p_after_versions, 1), 0)
       OR array_ndims(p_portfolio_ids) > 1 OR array_ndims(p_after_versions) > 1 THEN
        RAISE EXCEPTION 'p_portfolio_ids and p_after_versions must be one-dimensional arrays of one length'
            USING ERRCODE = '22023',
                HINT = 'Element i of p_after_versions is the last version seen of portfolio i.';
    END IF;
    IF v_count > 10000 THEN
        RAISE EXCEPTION 'at most 10000 portfolios per call, got %', v_count USING ERRCODE = '22023';
    END IF;
    IF array_position(p_portfolio_ids, NULL) IS NOT NULL OR array_position(p_after_versions, NULL) IS NOT NULL THEN
        RAISE EXCEPTION 'p_portfolio_ids and p_after_versions must not contain NULL' USING ERRCODE = '22023';
    END IF;
    IF (SELECT count(DISTINCT u.id) FROM unnest(p_portfolio_ids) AS u (id)) <> v_count THEN
        RAISE EXCEPTION 'p_portfolio_ids must not repeat a portfolio' USING ERRCODE = '22023';
    END IF;
    IF p_limit IS NULL OR p_limit < 1 OR p_limit > 10000 THEN
        RAISE EXCEPTION 'p_limit must be between 1 and 10000, got %', coalesce(p_limit::text, 'NULL')
            USING ERRCODE = '22023';
    END IF;
    RETURN QUERY
    SELECT e.portfolio_id, e.portfolio_version, e.kind::text
    FROM unnest(p_portfolio_ids, p_after_versions) AS a (portfolio_id, after_version)
    CROSS JOIN LATERAL (
        SELECT ev.portfolio_id, ev.portfolio_version, ev.kind
        FROM pgportfolio.events AS ev
        WHERE ev.portfolio_id = a.portfolio_id AND ev.portfolio_version > a.after_version
        ORDER BY ev.portfolio_version
        LIMIT p_limit
    ) AS e
    ORDER BY e.portfolio_id, e.portfolio_version;
END;
$$;

COMMENT ON FUNCTION pgportfolio.events_after(bigint[], bigint[], integer) IS
'Push updates: the events after a version of each portfolio, in version order, at most p_limit per portfolio.';
