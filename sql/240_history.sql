-- Point in time: a portfolio and its positions as they stood at an earlier ledger time or
-- version, rebuilt from the event log (each event stores the state right after it) and
-- valued with the marks that were current then. Plain MVCC reads, no lock taken.
--
-- Which events "as of p_at" covers. An event's created_at is the ledger time of its
-- transaction (now()), so it can be earlier than the created_at of the version before it
-- (a transaction that began first but locked the portfolio second). The state as of p_at
-- is therefore the longest prefix of versions stamped at or before p_at: every version up
-- to the first one stamped after p_at. When stamps follow versions (one writer at a time,
-- the usual case) this is exactly "the events with created_at <= p_at".
--
-- Valuation. The mark of a symbol at a time is the one price_at() returns: the latest
-- as_of at or before it. A position is valued quantity * mark * multiplier, with the
-- multiplier its fills were applied with (stored on each fill's event, so an earlier
-- holding keeps its own even if the instrument's changed after it was closed), and its
-- unrealized P&L is that less its cost basis, as stored in the events.
-- A position without a mark at that time counts at cost (unrealized 0), as in position_pnl.
--
-- Reading is not limited per portfolio (docs/sql-api.md, "Roles and privileges"): like
-- portfolio_snapshot, any trader or analyst may read any portfolio, and an unknown one
-- is PF004. The cost is one pass over the portfolio's events up to the version.

-- The version a portfolio was at, at ledger time p_at: 0 if it did not exist yet.
CREATE FUNCTION pgportfolio._version_at(p_portfolio_id bigint, p_at timestamptz)
RETURNS bigint
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT coalesce(
        (
            SELECT e.portfolio_version - 1
            FROM pgportfolio.events AS e
            WHERE e.portfolio_id = p_portfolio_id AND e.created_at > p_at
            ORDER BY e.portfolio_version
            LIMIT 1
        ),
        (SELECT max(e.portfolio_version) FROM pgportfolio.events AS e WHERE e.portfolio_id = p_portfolio_id),
        0
    );
$$;

-- The open positions after version p_version, valued at p_marks_at. A position's life
-- starts at its latest 'open' event (a fill from flat); realized_pnl and version count
-- from there, as on the live row (128_operations.sql). One row per open position.
CREATE FUNCTION pgportfolio._positions_at(p_portfolio_id bigint, p_version bigint, p_marks_at timestamptz)
RETURNS TABLE (
    symbol text,
    quantity numeric,
    avg_price numeric,
    cost_basis numeric,
    mark_price numeric,
    mark_as_of timestamptz,
    multiplier numeric,
    market_value numeric,
    unrealized_pnl numeric,
    realized_pnl numeric,
    version bigint,
    opened_at timestamptz,
    updated_at timestamptz
)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    WITH fills AS (
        SELECT
            e.symbol,
            e.portfolio_version,
            e.realized_pnl,
            e.position_quantity,
            e.position_cost_basis,
            e.multiplier,
            e.created_at,
            -- the number of the position's life this fill belongs to
            count(*) FILTER (WHERE e.kind = 'open') OVER (
                PARTITION BY e.symbol ORDER BY e.portfolio_version
            ) AS life
        FROM pgportfolio.events AS e
        WHERE
            e.portfolio_id = p_portfolio_id
            AND e.portfolio_version <= p_version
            AND e.quantity IS NOT NULL
    ),

    latest AS (
        SELECT DISTINCT ON (f.symbol)
            f.symbol,
            f.position_quantity,
            f.position_cost_basis,
            f.multiplier,
            f.created_at,
            sum(f.realized_pnl) OVER (PARTITION BY f.symbol, f.life) AS realized,
            count(*) OVER (PARTITION BY f.symbol, f.life) AS fills_in_life,
            min(f.created_at) OVER (PARTITION BY f.symbol, f.life) AS life_start
        FROM fills AS f
        ORDER BY f.symbol ASC, f.portfolio_version DESC
    )

    SELECT
        l.symbol,
        l.position_quantity,
        round(l.position_cost_basis / (l.position_quantity * l.multiplier), 8),
        l.position_cost_basis,
        coalesce(m.price, round(l.position_cost_basis / (l.position_quantity * l.multiplier), 8)),
        m.as_of,
        l.multiplier,
        coalesce(l.position_quantity * m.price * l.multiplier, l.position_cost_basis),
        coalesce(l.position_quantity * m.price * l.multiplier - l.position_cost_basis, 0),
        l.realized,
        l.fills_in_life,
        l.life_start,
        l.created_at
    FROM latest AS l
    LEFT JOIN LATERAL (
        SELECT h.price, h.as_of
        FROM pgportfolio.market_price_history AS h
        WHERE h.symbol = l.symbol AND h.as_of <= p_marks_at
        ORDER BY h.as_of DESC, h.mark_id DESC
        LIMIT 1
    ) AS m ON TRUE
    WHERE l.position_quantity <> 0
    ORDER BY l.symbol;
$$;

-- The portfolio after version p_version, valued at p_marks_at: portfolio_summary's columns.
CREATE FUNCTION pgportfolio._portfolio_at(p_portfolio_id bigint, p_version bigint, p_marks_at timestamptz)
RETURNS TABLE (
    portfolio_id bigint,
    name text,
    currency text,
    cash_balance numeric,
    market_value numeric,
    unrealized_pnl numeric,
    realized_pnl numeric,
    equity numeric,
    open_positions bigint,
    version bigint,
    updated_at timestamptz,
    marks_at timestamptz
)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT
        pf.portfolio_id,
        pf.name,
        pf.currency,
        ev.cash_balance,
        coalesce(pos.market_value, 0),
        coalesce(pos.unrealized_pnl, 0),
        (
            SELECT sum(e.realized_pnl) FROM pgportfolio.events AS e
            WHERE e.portfolio_id = p_portfolio_id AND e.portfolio_version <= p_version
        ),
        ev.cash_balance + coalesce(pos.market_value, 0),
        coalesce(pos.open_positions, 0),
        ev.portfolio_version,
        ev.created_at,
        p_marks_at
    FROM pgportfolio.portfolios AS pf
    INNER JOIN pgportfolio.events AS ev
        ON pf.portfolio_id = ev.portfolio_id AND ev.portfolio_version = p_version
    CROSS JOIN (
        SELECT sum(p.market_value) AS market_value, sum(p.unrealized_pnl) AS unrealized_pnl, count(*) AS open_positions
        FROM pgportfolio._positions_at(p_portfolio_id, p_version, p_marks_at) AS p
    ) AS pos
    WHERE pf.portfolio_id = p_portfolio_id;
$$;

-- The arguments' rules (22023), and PF004 for an unknown portfolio. p_at may lie at most a
-- minute ahead of the server's clock (the client's clock may run ahead a little), like a
-- mark's as_of; an answer for a later time could still change.
CREATE FUNCTION pgportfolio._check_history_arguments(p_portfolio_id bigint, p_at_argument text, p_at timestamptz)
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF p_portfolio_id IS NULL THEN
        RAISE EXCEPTION 'p_portfolio_id must not be null' USING ERRCODE = '22023';
    END IF;
    IF p_at IS NULL OR NOT isfinite(p_at) THEN
        RAISE EXCEPTION '% must be a finite time', p_at_argument
            USING ERRCODE = '22023', DETAIL = format('Got %s.', coalesce(p_at::text, 'NULL'));
    END IF;
    IF p_at > clock_timestamp() + INTERVAL '1 minute' THEN
        RAISE EXCEPTION '% is in the future', p_at_argument
            USING ERRCODE = '22023',
            DETAIL = format('Got %s; the server''s clock reads %s.', p_at, clock_timestamp()),
            HINT = 'History is known up to the present (one minute of clock skew is allowed).';
    END IF;
    IF NOT EXISTS (SELECT FROM pgportfolio.portfolios AS p WHERE p.portfolio_id = p_portfolio_id) THEN
        RAISE EXCEPTION 'portfolio % not found', p_portfolio_id
            USING ERRCODE = 'PF004', HINT = 'Check the portfolio id; create_portfolio returns it.';
    END IF;
END;
$$;

-- The version p_version of a portfolio must exist (22023 otherwise); returns the ledger
-- time of that version, the default time of its marks.
CREATE FUNCTION pgportfolio._check_version_argument(p_portfolio_id bigint, p_version bigint)
RETURNS timestamptz
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_created_at timestamptz;
    v_current bigint;
BEGIN
    IF p_portfolio_id IS NULL THEN
        RAISE EXCEPTION 'p_portfolio_id must not be null' USING ERRCODE = '22023';
    END IF;
    SELECT p.version INTO v_current FROM pgportfolio.portfolios AS p WHERE p.portfolio_id = p_portfolio_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'portfolio % not found', p_portfolio_id
            USING ERRCODE = 'PF004', HINT = 'Check the portfolio id; create_portfolio returns it.';
    END IF;
    SELECT e.created_at INTO v_created_at
    FROM pgportfolio.events AS e
    WHERE e.portfolio_id = p_portfolio_id AND e.portfolio_version = p_version;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'portfolio % has no version %', p_portfolio_id, coalesce(p_version::text, 'NULL')
            USING ERRCODE = '22023', DETAIL = format('Its versions are 1 to %s.', v_current);
    END IF;
    RETURN v_created_at;
END;
$$;

-- A portfolio as of ledger time p_at: cash, positions valued at the marks current at p_at,
-- realized and unrealized P&L, equity, and the version that state is. PF004 if the
-- portfolio did not exist yet at p_at (DETAIL gives its creation time).
CREATE FUNCTION pgportfolio.portfolio_as_of(p_portfolio_id bigint, p_at timestamptz)
RETURNS TABLE (
    portfolio_id bigint,
    name text,
    currency text,
    cash_balance numeric,
    market_value numeric,
    unrealized_pnl numeric,
    realized_pnl numeric,
    equity numeric,
    open_positions bigint,
    version bigint,
    updated_at timestamptz,
    marks_at timestamptz
)
LANGUAGE plpgsql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
-- No JIT and no parallel workers: see the top of 210_reads.sql.
SET jit = off
SET max_parallel_workers_per_gather = 0
AS $$
DECLARE
    v_version bigint;
BEGIN
    PERFORM pgportfolio._check_history_arguments(p_portfolio_id, 'p_at', p_at);
    v_version := pgportfolio._version_at(p_portfolio_id, p_at);
    IF v_version = 0 THEN
        RAISE EXCEPTION 'portfolio % did not exist at %', p_portfolio_id, p_at
            USING ERRCODE = 'PF004',
            DETAIL = format('It was created at %s.', (
                SELECT e.created_at FROM pgportfolio.events AS e
                WHERE e.portfolio_id = p_portfolio_id AND e.portfolio_version = 1
            ));
    END IF;
    RETURN QUERY SELECT * FROM pgportfolio._portfolio_at(p_portfolio_id, v_version, p_at);
END;
$$;

COMMENT ON FUNCTION pgportfolio.portfolio_as_of(bigint, timestamptz) IS
'A portfolio as of ledger time p_at, rebuilt from the event log and valued at the marks current then.';

-- The open positions of a portfolio as of ledger time p_at; none before it existed.
CREATE FUNCTION pgportfolio.positions_as_of(p_portfolio_id bigint, p_at timestamptz)
RETURNS TABLE (
    portfolio_id bigint,
    symbol text,
    quantity numeric,
    avg_price numeric,
    cost_basis numeric,
    mark_price numeric,
    mark_as_of timestamptz,
    multiplier numeric,
    market_value numeric,
    unrealized_pnl numeric,
    realized_pnl numeric,
    version bigint,
    opened_at timestamptz,
    updated_at timestamptz
)
LANGUAGE plpgsql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
-- No JIT and no parallel workers: see the top of 210_reads.sql.
SET jit = off
SET max_parallel_workers_per_gather = 0
AS $$
BEGIN
    PERFORM pgportfolio._check_history_arguments(p_portfolio_id, 'p_at', p_at);
    RETURN QUERY
    SELECT p_portfolio_id, p.*
    FROM pgportfolio._positions_at(p_portfolio_id, pgportfolio._version_at(p_portfolio_id, p_at), p_at) AS p;
END;
$$;

COMMENT ON FUNCTION pgportfolio.positions_as_of(bigint, timestamptz) IS
'Open positions of a portfolio as of ledger time p_at, valued at the marks current then.';

-- A portfolio right after version p_version, valued at the marks current at p_marks_at
-- (default: the ledger time of that version). 22023 for a version the portfolio never had.
CREATE FUNCTION pgportfolio.portfolio_at_version(
    p_portfolio_id bigint,
    p_version bigint,
    p_marks_at timestamptz DEFAULT NULL
)
RETURNS TABLE (
    portfolio_id bigint,
    name text,
    currency text,
    cash_balance numeric,
    market_value numeric,
    unrealized_pnl numeric,
    realized_pnl numeric,
    equity numeric,
    open_positions bigint,
    version bigint,
    updated_at timestamptz,
    marks_at timestamptz
)
LANGUAGE plpgsql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
-- No JIT and no parallel workers: see the top of 210_reads.sql.
SET jit = off
SET max_parallel_workers_per_gather = 0
AS $$
DECLARE
    v_marks_at timestamptz := coalesce(p_marks_at, pgportfolio._check_version_argument(p_portfolio_id, p_version));
BEGIN
    PERFORM pgportfolio._check_history_arguments(p_portfolio_id, 'p_marks_at', v_marks_at);
    PERFORM pgportfolio._check_version_argument(p_portfolio_id, p_version);
    RETURN QUERY SELECT * FROM pgportfolio._portfolio_at(p_portfolio_id, p_version, v_marks_at);
END;
$$;

COMMENT ON FUNCTION pgportfolio.portfolio_at_version(bigint, bigint, timestamptz) IS
'A portfolio right after version p_version, valued at the marks of p_marks_at (default: that version''s time).';

-- The open positions right after version p_version, valued at p_marks_at (default: the
-- ledger time of that version).
CREATE FUNCTION pgportfolio.positions_at_version(
    p_portfolio_id bigint,
    p_version bigint,
    p_marks_at timestamptz DEFAULT NULL
)
RETURNS TABLE (
    portfolio_id bigint,
    symbol text,
    quantity numeric,
    avg_price numeric,
    cost_basis numeric,
    mark_price numeric,
    mark_as_of timestamptz,
    multiplier numeric,
    market_value numeric,
    unrealized_pnl numeric,
    realized_pnl numeric,
    version bigint,
    opened_at timestamptz,
    updated_at timestamptz
)
LANGUAGE plpgsql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
-- No JIT and no parallel workers: see the top of 210_reads.sql.
SET jit = off
SET max_parallel_workers_per_gather = 0
AS $$
DECLARE
    v_marks_at timestamptz := coalesce(p_marks_at, pgportfolio._check_version_argument(p_portfolio_id, p_version));
BEGIN
    PERFORM pgportfolio._check_history_arguments(p_portfolio_id, 'p_marks_at', v_marks_at);
    PERFORM pgportfolio._check_version_argument(p_portfolio_id, p_version);
    RETURN QUERY
    SELECT p_portfolio_id, p.* FROM pgportfolio._positions_at(p_portfolio_id, p_version, v_marks_at) AS p;
END;
$$;

COMMENT ON FUNCTION pgportfolio.positions_at_version(bigint, bigint, timestamptz) IS
'Open positions right after version p_version, valued at the marks of p_marks_at (default: that version''s time).';

-- Granted here rather than in 900_privileges.sql's lists, beside their definitions: reads
-- for traders and analysts.
REVOKE ALL ON FUNCTION
pgportfolio._version_at(bigint, timestamptz),
pgportfolio._positions_at(bigint, bigint, timestamptz),
pgportfolio._portfolio_at(bigint, bigint, timestamptz),
pgportfolio._check_history_arguments(bigint, text, timestamptz),
pgportfolio._check_version_argument(bigint, bigint),
pgportfolio.portfolio_as_of(bigint, timestamptz),
pgportfolio.positions_as_of(bigint, timestamptz),
pgportfolio.portfolio_at_version(bigint, bigint, timestamptz),
pgportfolio.positions_at_version(bigint, bigint, timestamptz)
FROM PUBLIC;
GRANT EXECUTE ON FUNCTION
pgportfolio.portfolio_as_of(bigint, timestamptz),
pgportfolio.positions_as_of(bigint, timestamptz),
pgportfolio.portfolio_at_version(bigint, bigint, timestamptz),
pgportfolio.positions_at_version(bigint, bigint, timestamptz)
TO pgportfolio_trader, pgportfolio_analyst;
