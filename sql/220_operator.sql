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

-- Which sessions hold a portfolio's row lock right now. A transaction that locked or
-- changed the row is recorded in the committed row version's xmax; that xid is held as a
-- transactionid lock by the session whose transaction (or subtransaction) it is. A
-- holder is listed while nobody waits for it too, and a lock taken jointly by several
-- transactions (a MultiXact, e.g. two FOR KEY SHARE) is not listed (lock_waits still
-- names the blockers of whoever waits). SECURITY DEFINER to read the rows' xmax; it
-- returns only ids. Scans portfolios, not the event log.
CREATE FUNCTION pgportfolio._portfolio_lockers()
RETURNS TABLE (portfolio_id bigint, pid integer)
LANGUAGE sql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT p.portfolio_id, l.pid
    FROM pgportfolio.portfolios AS p
    INNER JOIN pg_locks AS l
        ON l.locktype = 'transactionid' AND l.transactionid = p.xmax AND l.mode = 'ExclusiveLock' AND l.granted
    -- The holder also has the table open; this rules out a MultiXact id that happens to
    -- equal some unrelated transaction's xid.
    WHERE EXISTS (
        SELECT FROM pg_locks AS r
        WHERE r.pid = l.pid AND r.locktype = 'relation' AND r.granted
        AND r.database = (SELECT d.oid FROM pg_database AS d WHERE d.datname = current_database())
        AND r.relation = 'pgportfolio.portfolios'::regclass
    );
$$;

-- The holders with their sessions, read with the caller's rights (like lock_waits):
-- analysts see every role's sessions through pg_read_all_stats, a trader only its own
-- login role's details. held_for is the age of the holding transaction (the lock is at
-- most that old); idle_for, with state 'idle in transaction', is how long it has done
-- nothing: see docs/sql-api.md, "A session that holds a lock and idles".
CREATE FUNCTION pgportfolio.portfolio_lock_holders()
RETURNS TABLE (
    portfolio_id bigint, holder_pid integer, holder_role name, application_name text, state text,
    held_for interval, idle_for interval, holder_query text
)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT
        h.portfolio_id, h.pid, a.usename, a.application_name, a.state,
        now() - a.xact_start,
        CASE WHEN a.state LIKE 'idle%' THEN now() - a.state_change END,
        a.query
    FROM pgportfolio._portfolio_lockers() AS h
    LEFT JOIN pg_stat_activity AS a ON a.pid = h.pid
    ORDER BY 6 DESC NULLS LAST, 1;
$$;

COMMENT ON FUNCTION pgportfolio.recent_portfolios(integer) IS 'The most recently changed portfolios.';
COMMENT ON FUNCTION pgportfolio.server_wait_events() IS 'Sessions of this database by state and wait event.';
COMMENT ON FUNCTION pgportfolio.current_lock_waits() IS 'The lock_waits view, longest wait first.';
COMMENT ON FUNCTION pgportfolio._portfolio_lockers() IS 'Portfolios whose row lock a session holds, and its pid.';
COMMENT ON FUNCTION pgportfolio.portfolio_lock_holders() IS
'Who holds each locked portfolio, for how long, and whether it is idle in transaction.';

-- Granted here rather than in 900_privileges.sql's lists, beside their definitions.
REVOKE ALL ON FUNCTION pgportfolio._portfolio_lockers(), pgportfolio.portfolio_lock_holders() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION pgportfolio._portfolio_lockers(), pgportfolio.portfolio_lock_holders()
TO pgportfolio_trader, pgportfolio_analyst;
