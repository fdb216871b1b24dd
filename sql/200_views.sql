-- Read models. Plain MVCC reads: a view never takes a lock that a trade waits for.
-- The tables' domain-typed columns (025_domains.sql) are shown as their base types
-- (numeric, text, bigint): a domain is its own type in record comparisons and to
-- polymorphic functions (pgTAP's is(), for one), so plain values would not compare.

-- One row per open position. The mark is the latest market price, or the average
-- price when none is known (so unrealized P&L is 0 until the first tick). A position is
-- valued with its own multiplier (the instrument's when it opened; 1 without one):
-- market value = quantity * mark * multiplier, and cost_basis already includes it, so
-- the average price per unit is cost_basis / (quantity * multiplier). multiplier is the
-- last column so that queries written against the earlier columns keep working.
CREATE VIEW pgportfolio.position_pnl AS
SELECT
    p.portfolio_id,
    p.symbol::text AS symbol,
    p.quantity::numeric AS quantity,
    round(p.cost_basis / (p.quantity * p.multiplier), 8) AS avg_price,
    p.cost_basis::numeric AS cost_basis,
    coalesce(m.price, round(p.cost_basis / (p.quantity * p.multiplier), 8)) AS mark_price,
    coalesce(p.quantity * m.price * p.multiplier, p.cost_basis) AS market_value,
    coalesce(p.quantity * m.price * p.multiplier - p.cost_basis, 0) AS unrealized_pnl,
    p.realized_pnl::numeric AS realized_pnl,
    p.version::bigint AS version,
    p.updated_at,
    p.multiplier::numeric AS multiplier
FROM pgportfolio.positions AS p
LEFT JOIN pgportfolio.market_prices AS m ON p.symbol = m.symbol;

COMMENT ON VIEW pgportfolio.position_pnl IS
'Open positions with marks and P&L (market value = quantity * mark * multiplier). '
'realized_pnl counts since the position was opened from flat.';

-- How a read of one portfolio's positions finds their marks (portfolio_valuation below,
-- portfolio_snapshot in 210_reads.sql): one probe of the marks' key per position, or one
-- merge of the two primary keys read in symbol order. A probe costs about 2.4 µs whatever
-- the number of marks; the merge about 0.8 µs per position plus 0.4 µs per mark it walks,
-- and it walks every mark between the portfolio's first and last symbol. Measured for
-- 10,000 positions: among 10,000 marks, 12 ms by the merge and 24 ms by probes; among
-- 210,000 (a feed of the whole market), 95 ms by the merge and 35 by probes.
-- A portfolio of fewer than 1,000 positions is probed (its readers count that far in a
-- few index entries). This decides for a wider one: it merges unless the marks number
-- more than ten times its positions. The plans cost the same at about four times; ten
-- spares the usual wide portfolio, which holds about as many symbols as are marked, any
-- counting past 1,000 (a position counted costs about 1.5 µs), at the price of merging
-- between four and ten times, where probes would be up to twice as fast. Without it,
-- the merge cost in proportion to the whole universe of marks.
-- The marks are counted from the table's size, not from statistics (which a new or busy
-- database may not have): about 50 a page, since half of each page is kept free
-- (033_market_prices.sql).
CREATE FUNCTION pgportfolio._wide_read_merges_marks(p_portfolio_id bigint)
RETURNS boolean
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_enough bigint := greatest(1000, pg_relation_size('pgportfolio.market_prices') / 8192 * 50 / 10);
    v_positions bigint;
BEGIN
    IF v_enough = 1000 THEN
        RETURN true;
    END IF;
    SELECT count(*) INTO v_positions
    FROM (SELECT FROM pgportfolio.positions AS p WHERE p.portfolio_id = p_portfolio_id LIMIT v_enough) AS w;
    RETURN v_positions = v_enough;
END;
$$;

COMMENT ON FUNCTION pgportfolio._wide_read_merges_marks(bigint) IS
'Whether a read of a portfolio of 1,000 positions or more finds their marks by one merge rather than a probe each.';

-- The valuation of one portfolio's open positions, as portfolio_summary shows it: the
-- sum of quantity * mark * multiplier (a position without a mark at its cost basis), the
-- sum of cost bases, and the number of positions. A function rather than a join inside
-- the view, so that the plan follows the portfolio's size and not the planner's estimate
-- of it: the view's join was planned for the average portfolio (from statistics, and in
-- a prepared statement's generic plan from no value at all), so a portfolio of 10,000
-- positions among many small ones had its marks probed one look-up per position, 2 to 4
-- times the cost of the plan below (docs/performance.md, "Wide reads").
-- The plans are portfolio_snapshot's (210_reads.sql), chosen the same way: up to 999
-- positions, one probe of the marks' key per position; from 1,000, one merge of the two
-- primary keys unless the marks are many more (_wide_read_merges_marks above). The two
-- statements differ only in how they find each mark (one UNION ALL
-- of both, each behind a one-time filter, cost 1.5 ms more for 10,000 positions). The
-- plans are generic, made once per session, as portfolio_snapshot's: with custom plans
-- every call planned its statements again, and the whole view of 1,000 portfolios took
-- 87 ms instead of 47.
CREATE FUNCTION pgportfolio.portfolio_valuation(
    p_portfolio_id bigint,
    OUT market_value numeric,
    OUT cost_basis numeric,
    OUT open_positions bigint
)
LANGUAGE plpgsql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
-- No JIT and no parallel workers: see the top of 210_reads.sql.
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
    -- Counting stops at 1,000: a narrow portfolio's plan is chosen in a few index entries.
    SELECT count(*) INTO v_positions
    FROM (SELECT FROM pgportfolio.positions AS p WHERE p.portfolio_id = p_portfolio_id LIMIT 1000) AS w;
    IF v_positions = 0 AND NOT EXISTS (
        SELECT FROM pgportfolio.portfolios AS pf WHERE pf.portfolio_id = p_portfolio_id
    ) THEN
        RAISE EXCEPTION 'portfolio % not found', p_portfolio_id USING ERRCODE = 'PF004';
    END IF;
    IF v_positions < 1000 OR NOT pgportfolio._wide_read_merges_marks(p_portfolio_id) THEN
        SELECT
            coalesce(sum(coalesce(p.quantity * (
                SELECT m.price FROM pgportfolio.market_prices AS m WHERE m.symbol = p.symbol
            ) * p.multiplier, p.cost_basis)), 0),
            coalesce(sum(p.cost_basis), 0),
            count(*)
        INTO market_value, cost_basis, open_positions
        FROM pgportfolio.positions AS p
        WHERE p.portfolio_id = p_portfolio_id;
    ELSE
        SELECT
            coalesce(sum(coalesce(p.quantity * m.price * p.multiplier, p.cost_basis)), 0),
            coalesce(sum(p.cost_basis), 0),
            count(*)
        INTO market_value, cost_basis, open_positions
        FROM pgportfolio.positions AS p
        LEFT JOIN pgportfolio.market_prices AS m ON p.symbol = m.symbol
        WHERE p.portfolio_id = p_portfolio_id;
    END IF;
END;
$$;

COMMENT ON FUNCTION pgportfolio.portfolio_valuation(bigint) IS
'Market value, cost basis and number of a portfolio''s open positions: portfolio_summary''s valuation.';

-- One row per portfolio. realized_pnl is the sum of the mutations' realized P&L, net of fees.
-- Each row's valuation is portfolio_valuation's, in the statement's snapshot (the function
-- is STABLE), so the portfolio's columns and its positions are one consistent state.
CREATE VIEW pgportfolio.portfolio_summary AS
SELECT
    pf.portfolio_id,
    pf.name::text AS name,
    pf.currency::text AS currency,
    pf.cash_balance::numeric AS cash_balance,
    v.market_value,
    v.market_value - v.cost_basis AS unrealized_pnl,
    pf.realized_pnl::numeric AS realized_pnl,
    pf.cash_balance + v.market_value AS equity,
    v.open_positions,
    pf.version::bigint AS version,
    pf.updated_at
FROM pgportfolio.portfolios AS pf
CROSS JOIN LATERAL pgportfolio.portfolio_valuation(pf.portfolio_id) AS v;

COMMENT ON VIEW pgportfolio.portfolio_summary IS 'One row per portfolio: cash, market value, P&L, equity.';

-- Every successful mutation, in the order it happened within its portfolio.
CREATE VIEW pgportfolio.event_log AS
SELECT
    e.portfolio_id,
    e.portfolio_version,
    e.kind::text AS kind,
    e.operation,
    e.symbol,
    e.quantity::numeric AS quantity,
    e.price::numeric AS price,
    e.fee::numeric AS fee,
    e.amount::numeric AS amount,
    e.cash_delta::numeric AS cash_delta,
    e.realized_pnl::numeric AS realized_pnl,
    e.cash_balance::numeric AS cash_balance,
    e.position_quantity::numeric AS position_quantity,
    e.request_id,
    e.acting_role,
    e.created_at,
    -- a fill's execution: when it happened (its transaction's time unless the sender said),
    -- the order id and tags it came with, the multiplier it was applied with
    CASE WHEN e.symbol IS NOT NULL THEN coalesce(e.executed_at, e.created_at) END AS executed_at,
    e.order_id,
    e.tags,
    e.multiplier
FROM pgportfolio.events AS e;

COMMENT ON VIEW pgportfolio.event_log IS
'Append-only log of every mutation; portfolio_version is the version it produced.';

-- Every instrument, for traders and analysts (the table itself is the owner's).
CREATE VIEW pgportfolio.instrument_list AS
SELECT
    i.symbol::text AS symbol,
    i.multiplier,
    i.description,
    i.updated_at
FROM pgportfolio.instruments AS i;

COMMENT ON VIEW pgportfolio.instrument_list IS
'Instruments: contract multiplier and description per symbol (no row: multiplier 1).';

-- Sessions of this database waiting for a lock, and who holds them up.
CREATE VIEW pgportfolio.lock_waits AS
SELECT
    a.pid AS waiting_pid,
    a.usename AS waiting_role,
    a.application_name,
    l.locktype,
    l.relation::regclass AS relation,
    l.mode,
    now() - coalesce(l.waitstart, a.state_change) AS waiting_for,
    pg_blocking_pids(a.pid) AS blocking_pids,
    a.query AS waiting_query,
    (
        SELECT array_agg(b.query ORDER BY b.pid)
        FROM pg_stat_activity AS b
        WHERE b.pid IN (SELECT unnest(pg_blocking_pids(a.pid)))
    ) AS blocking_queries
FROM pg_stat_activity AS a
INNER JOIN pg_locks AS l ON a.pid = l.pid AND NOT l.granted
WHERE a.datname = current_database();

COMMENT ON VIEW pgportfolio.lock_waits IS 'Who is waiting for a lock, on what, for how long, and behind whom.';
