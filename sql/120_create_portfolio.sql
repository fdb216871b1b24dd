-- Creates a portfolio owned by the calling role and logs a 'create' event (version 1)
-- whose cash_delta is the initial cash, so that the event log alone rebuilds the cash.
CREATE FUNCTION pgportfolio.create_portfolio(
    p_name text,
    p_initial_cash numeric,
    p_currency text DEFAULT 'USD'
)
RETURNS bigint
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_actor name := pgportfolio._acting_role();
    v_portfolio_id bigint;
    v_chain_head bytea;
BEGIN
    PERFORM pgportfolio._check_portfolio_attributes(p_name, p_currency);
    PERFORM pgportfolio._check_number('p_initial_cash', p_initial_cash, 'non_negative');
    p_initial_cash := trim_scale(p_initial_cash);

    INSERT INTO pgportfolio.portfolios (name, currency, owner_role, initial_cash, cash_balance)
    VALUES (p_name, p_currency, v_actor, p_initial_cash, p_initial_cash)
    RETURNING portfolio_id INTO v_portfolio_id;

    INSERT INTO pgportfolio.events (
        portfolio_id, portfolio_version, kind, operation, fee, amount, cash_delta, realized_pnl, cash_balance,
        acting_role, created_at, chain_hash
    )
    VALUES (
        v_portfolio_id, 1, 'create', 'create_portfolio', 0, p_initial_cash, p_initial_cash, 0, p_initial_cash,
        v_actor, now(),
        pgportfolio._event_hash(
            ''::bytea, v_portfolio_id, 1, 'create', 'create_portfolio', NULL, NULL, NULL, 0, p_initial_cash,
            p_initial_cash, 0, p_initial_cash, NULL, NULL, NULL, NULL, NULL, NULL, NULL, v_actor, now()
        )
    )
    RETURNING chain_hash INTO v_chain_head;
    UPDATE pgportfolio.portfolios SET chain_head = v_chain_head WHERE portfolio_id = v_portfolio_id;

    RETURN v_portfolio_id;
END;
$$;

COMMENT ON FUNCTION pgportfolio.create_portfolio(text, numeric, text) IS
'Create a portfolio owned by the calling role. Returns its id.';
