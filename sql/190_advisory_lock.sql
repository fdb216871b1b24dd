-- A cross-process critical section for clients: a session-level advisory lock whose wait
-- is bounded. The timeout is set for this transaction only, so it never leaks into the
-- session; the lock itself stays until pg_advisory_unlock or the session ends.
CREATE FUNCTION pgportfolio.acquire_advisory_lock(p_key bigint, p_timeout_ms integer)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF p_timeout_ms IS NULL OR p_timeout_ms < 1 THEN
        RAISE EXCEPTION 'p_timeout_ms must be at least 1' USING ERRCODE = '22023';
    END IF;
    PERFORM set_config('lock_timeout', p_timeout_ms || 'ms', true);
    PERFORM pg_advisory_lock(p_key);
END;
$$;

COMMENT ON FUNCTION pgportfolio.acquire_advisory_lock(bigint, integer) IS
'Take a session advisory lock, waiting at most p_timeout_ms (55P03 after that).';
