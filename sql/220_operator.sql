-- Reads for operators (pgportfolio top). Cheap on purpose: no scan of the event log.

-- The most recently changed portfolios with their versions; a caller sampling twice
-- gets event rates from the version deltas.
CREATE FUNCTION pgportfolio.recent_portfolios(p_limit integer DEFAULT 20)
RETURNS TABLE (portfolio_id bigint, name text, version bigint, updated_at timestamptz)
LANGUAGE sql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT p.portfolio_id, p.name, p.version, p.updated_at
    FROM pgportfolio.portfolios AS p
    ORDER BY p.updated_at DESC
    LIMIT least(greatest(coalesce(p_limit, 20), 1), 1000);
$$;

-- What the sessions of this database are waiting for right now.
CREATE FUNCTION pgportfolio.server_wait_events()
RETURNS TABLE (state text, wait_event_type text, wait_event text, sessions bigint)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT a.state, coalesce(a.wait_event_type, 'CPU'), coalesce(a.wait_event, 'running'), count(*)
    FROM pg_stat_activity AS a
    WHERE a.datname = current_database() AND a.backend_type = 'client backend' AND a.pid <> pg_backend_pid()
    GROUP BY 1, 2, 3
    ORDER BY 4 DESC, 1, 2, 3;
$$;

-- The lock_waits view as a function, so that the client's queries are all calls.
CREATE FUNCTION pgportfolio.current_lock_waits()
RETURNS SETOF pgportfolio.lock_waits
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT w.* FROM pgportfolio.lock_waits AS w ORDER BY w.waiting_for DESC;
$$;

COMMENT ON FUNCTION pgportfolio.recent_portfolios(integer) IS 'The most recently changed portfolios.';
COMMENT ON FUNCTION pgportfolio.server_wait_events() IS 'Sessions of this database by state and wait event.';
COMMENT ON FUNCTION pgportfolio.current_lock_waits() IS 'The lock_waits view, longest wait first.';
