-- Who is acting. Inside a SECURITY DEFINER function current_user is the owner, so
-- the caller is read from the session: the role set by SET ROLE, else the login role.
-- Neither can be set to a role the session is not a member of, so it cannot be forged
-- through an argument.
CREATE FUNCTION pgportfolio._acting_role()
RETURNS name
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE
        WHEN pg_catalog.current_setting('role') = 'none' THEN pg_catalog.session_user()
        ELSE pg_catalog.current_setting('role')::name
    END;
$$;

-- Raises PF004 when the portfolio does not exist and 42501 when the role may not trade
-- it. Reads without locking, so that a refused caller never holds a portfolio's lock.
CREATE FUNCTION pgportfolio._authorize(p_portfolio_id bigint, p_actor name)
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_owner name;
BEGIN
    IF p_portfolio_id IS NULL THEN
        RAISE EXCEPTION 'p_portfolio_id must not be null' USING ERRCODE = '22023';
    END IF;
    SELECT owner_role INTO v_owner FROM pgportfolio.portfolios WHERE portfolio_id = p_portfolio_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'portfolio % not found', p_portfolio_id
            USING ERRCODE = 'PF004', HINT = 'Check the portfolio id; create_portfolio returns it.';
    END IF;
    -- Only roles that still exist are asked about: a dropped grantee must not break the
    -- portfolio for everyone else (pg_has_role raises for an unknown role name).
    IF v_owner = p_actor
       OR EXISTS (
           SELECT FROM pg_roles AS r
           WHERE r.rolname = v_owner AND pg_has_role(p_actor, r.oid, 'MEMBER')
       )
       OR EXISTS (
           SELECT FROM pgportfolio.portfolio_access AS a
           INNER JOIN pg_roles AS r ON a.grantee = r.rolname
           WHERE a.portfolio_id = p_portfolio_id AND pg_has_role(p_actor, r.oid, 'MEMBER')
       ) THEN
        RETURN;
    END IF;
    RAISE EXCEPTION 'role % may not trade portfolio %', p_actor, p_portfolio_id
        USING ERRCODE = '42501', HINT = 'The portfolio''s owner can call grant_portfolio.';
END;
$$;

-- Bound every lock wait: pgportfolio.lock_timeout if set (per session, role or
-- database), else 2s. Returns the caller's setting so it can be put back after locking.
CREATE FUNCTION pgportfolio._bound_lock_wait()
RETURNS text
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_saved text := current_setting('lock_timeout');
BEGIN
    PERFORM set_config(
        'lock_timeout', coalesce(nullif(current_setting('pgportfolio.lock_timeout', true), ''), '2s'), true
    );
    RETURN v_saved;
END;
$$;
