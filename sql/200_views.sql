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

-- One row per portfolio. realized_pnl is the sum of the mutations' realized P&L, net of fees.
CREATE VIEW pgportfolio.portfolio_summary AS
SELECT
    pf.portfolio_id,
    pf.name::text AS name,
    pf.currency::text AS currency,
    pf.cash_balance::numeric AS cash_balance,
    coalesce(agg.market_value, 0) AS market_value,
    coalesce(agg.market_value - agg.cost_basis, 0) AS unrealized_pnl,
    pf.realized_pnl::numeric AS realized_pnl,
    pf.cash_balance + coalesce(agg.market_value, 0) AS equity,
    coalesce(agg.open_positions, 0) AS open_positions,
    pf.version::bigint AS version,
    pf.updated_at
FROM pgportfolio.portfolios AS pf
LEFT JOIN LATERAL (
    -- Unrealized P&L is market value less cost basis, summed exactly; a position
    -- without a mark counts at cost (0 unrealized). One valuation per position, not two:
    -- quantity * mark * multiplier (the position's own, as in position_pnl).
    SELECT
        sum(coalesce(p.quantity * m.price * p.multiplier, p.cost_basis)) AS market_value,
        sum(p.cost_basis) AS cost_basis,
        count(*) AS open_positions
    FROM pgportfolio.positions AS p
    LEFT JOIN pgportfolio.market_prices AS m ON p.symbol = m.symbol
    WHERE p.portfolio_id = pf.portfolio_id
) AS agg ON TRUE;

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
