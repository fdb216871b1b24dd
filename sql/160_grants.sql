-- Only the portfolio's owner role (or a member of it) may let another role trade it.
CREATE FUNCTION pgportfolio.grant_portfolio(p_portfolio_id bigint, p_role name)
RETURNS void
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_actor name := pgportfolio._acting_role();
    v_owner name;
    v_saved_lock_timeout text;
BEGIN
    IF p_portfolio_id IS NULL THEN
        RAISE EXCEPTION 'p_portfolio_id must not be null' USING ERRCODE = '22023';
    END IF;
    IF p_role IS NULL OR NOT EXISTS (SELECT FROM pg_roles WHERE rolname = p_role) THEN
        RAISE EXCEPTION 'role % does not exist', coalesce(quote_ident(p_role), 'NULL')
            USING ERRCODE = '22023';
    END IF;
    SELECT owner_role INTO v_owner FROM pgportfolio.portfolios WHERE portfolio_id = p_portfolio_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'portfolio % not found', p_portfolio_id USING ERRCODE = 'PF004';
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles AS r WHERE r.rolname = v_owner AND pg_has_role(v_actor, r.oid, 'MEMBER')) THEN
        RAISE EXCEPTION 'only the owner of portfolio % may grant it', p_portfolio_id
            USING ERRCODE = '42501', DETAIL = format('Owner is %s, caller is %s.', v_owner, v_actor);
    END IF;
    v_saved_lock_timeout := pgportfolio._bound_lock_wait();  -- the FK check waits behind a trade
    INSERT INTO pgportfolio.portfolio_access (portfolio_id, grantee, granted_by)
    VALUES (p_portfolio_id, p_role, v_actor)
    ON CONFLICT (portfolio_id, grantee) DO NOTHING;
    PERFORM set_config('lock_timeout', v_saved_lock_timeout, true);
END;
$$;

CREATE FUNCTION pgportfolio.revoke_portfolio(p_portfolio_id bigint, p_role name)
RETURNS void
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_actor name := pgportfolio._acting_role();
    v_owner name;
BEGIN
    IF p_portfolio_id IS NULL OR p_role IS NULL THEN
        RAISE EXCEPTION 'p_portfolio_id and p_role must not be null' USING ERRCODE = '22023';
    END IF;
    SELECT owner_role INTO v_owner FROM pgportfolio.portfolios WHERE portfolio_id = p_portfolio_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'portfolio % not found', p_portfolio_id USING ERRCODE = 'PF004';
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles AS r WHERE r.rolname = v_owner AND pg_has_role(v_actor, r.oid, 'MEMBER')) THEN
        RAISE EXCEPTION 'only the owner of portfolio % may revoke it', p_portfolio_id
            USING ERRCODE = '42501', DETAIL = format('Owner is %s, caller is %s.', v_owner, v_actor);
    END IF;
    DELETE FROM pgportfolio.portfolio_access WHERE portfolio_id = p_portfolio_id AND grantee = p_role;
END;
$$;

COMMENT ON FUNCTION pgportfolio.grant_portfolio(bigint, name) IS 'Let another role trade this portfolio.';
COMMENT ON FUNCTION pgportfolio.revoke_portfolio(bigint, name) IS 'Withdraw a grant_portfolio.';
