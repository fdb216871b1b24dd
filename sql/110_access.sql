-- Who is acting. Inside a SECURITY DEFINER function current_user is the owner, so
-- the caller is read from the session: the role set by SET ROLE, else the login role.
-- Neither can be set to a role the session is not a member of, so it cannot be forged
-- through an argument. Inlined into its callers (no SET search_path, every name
-- qualified): as a function call of its own it cost every mutation about 20 µs.
CREATE FUNCTION pgportfolio._acting_role()
RETURNS name
LANGUAGE sql STABLE
AS $$
    SELECT CASE
        WHEN pg_catalog.current_setting('role') OPERATOR(pg_catalog.=) 'none' THEN pg_catalog.session_user()
        ELSE pg_catalog.current_setting('role')::pg_catalog.name
    END;
$$;

-- The portfolios among p_portfolio_ids that p_actor may not trade, with why: PF004 for
-- one that does not exist, 42501 for one the role neither owns (directly or through a
-- role it is a member of) nor was granted. One statement for a whole batch. Reads
-- without locking, so that a refused caller never holds a portfolio's lock. Without SET
-- search_path and with every name qualified, so that the planner inlines it into its
-- caller's statement (as a function of its own it cost 0.4 to 0.6 ms per call). The
-- caller passes a plain array: an argument with a subquery would prevent the inlining.
CREATE FUNCTION pgportfolio._authorization_refusals(p_portfolio_ids bigint[], p_actor name)
RETURNS TABLE (portfolio_id bigint, sqlstate text, message text, hint text)
LANGUAGE sql STABLE
AS $$
    SELECT
        u.id,
        CASE WHEN p.portfolio_id IS NULL THEN 'PF004' ELSE '42501' END,
        CASE WHEN p.portfolio_id IS NULL
            THEN pg_catalog.format('portfolio %s not found', u.id)
            ELSE pg_catalog.format('role %s may not trade portfolio %s', p_actor, u.id)
        END,
        CASE WHEN p.portfolio_id IS NULL
            THEN 'Check the portfolio id; create_portfolio returns it.'
            ELSE 'The portfolio''s owner can call grant_portfolio.'
        END
    FROM (SELECT DISTINCT i.id FROM pg_catalog.unnest(p_portfolio_ids) AS i (id) WHERE i.id IS NOT NULL) AS u
    LEFT JOIN LATERAL (
        SELECT l.portfolio_id, l.owner_role FROM pgportfolio.portfolios AS l
        WHERE l.portfolio_id OPERATOR(pg_catalog.=) u.id
    ) AS p ON true
    WHERE p.portfolio_id IS NULL
    OR NOT (
        p.owner_role OPERATOR(pg_catalog.=) p_actor
        -- Only roles that still exist are asked about: a dropped grantee must not break
        -- the portfolio for everyone else (pg_has_role raises for an unknown role name).
        OR EXISTS (
            SELECT FROM pg_catalog.pg_roles AS r
            WHERE r.rolname OPERATOR(pg_catalog.=) p.owner_role AND pg_catalog.pg_has_role(p_actor, r.oid, 'MEMBER')
        )
        OR EXISTS (
            SELECT FROM pgportfolio.portfolio_access AS a
            INNER JOIN pg_catalog.pg_roles AS r ON a.grantee OPERATOR(pg_catalog.=) r.rolname
            WHERE a.portfolio_id OPERATOR(pg_catalog.=) u.id AND pg_catalog.pg_has_role(p_actor, r.oid, 'MEMBER')
        )
    );
$$;

-- One portfolio: raise the refusal, if any.
CREATE FUNCTION pgportfolio._authorize(p_portfolio_id bigint, p_actor name)
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r record;
BEGIN
    IF p_portfolio_id IS NULL THEN
        RAISE EXCEPTION 'portfolio_id must not be null' USING ERRCODE = '22023';
    END IF;
    SELECT * INTO r FROM pgportfolio._authorization_refusals(ARRAY[p_portfolio_id], p_actor);
    IF FOUND THEN
        RAISE EXCEPTION USING ERRCODE = r.sqlstate, MESSAGE = r.message, HINT = r.hint;
    END IF;
END;
$$;

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
