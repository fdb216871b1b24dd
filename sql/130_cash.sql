-- Cash movements: deposits, withdrawals and standalone fees (custody, data, ...).
-- One worker does all three so that locking, idempotency and versioning are written once.
CREATE FUNCTION pgportfolio._execute_cash(
    p_operation text,
    p_portfolio_id bigint,
    p_amount numeric,
    p_request_id text,
    p_expected_version bigint
)
RETURNS pgportfolio.mutation_result
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_actor name := pgportfolio._acting_role();
    v_args jsonb;
    v_saved_lock_timeout text;
    v_portfolio pgportfolio.portfolios%ROWTYPE;
    v_event pgportfolio.events%ROWTYPE;
    v_kind text;
    v_cash_delta numeric;
    v_fee numeric := 0;
    v_result pgportfolio.mutation_result;
BEGIN
    PERFORM pgportfolio._check_number('p_amount', p_amount, 'positive');
    PERFORM pgportfolio._check_request(p_request_id, p_expected_version);
    PERFORM pgportfolio._authorize(p_portfolio_id, v_actor);
    p_amount := trim_scale(p_amount);  -- the shortest exact form; not rounding

    v_saved_lock_timeout := pgportfolio._bound_lock_wait();
    SELECT * INTO v_portfolio FROM pgportfolio.portfolios WHERE portfolio_id = p_portfolio_id FOR UPDATE;
    PERFORM set_config('lock_timeout', v_saved_lock_timeout, true);

    v_args := jsonb_build_object('operation', p_operation, 'amount', p_amount);
    IF p_request_id IS NOT NULL THEN
        SELECT * INTO v_event FROM pgportfolio.events
        WHERE portfolio_id = p_portfolio_id AND request_id = p_request_id;
        IF FOUND THEN
            RETURN pgportfolio._replay(v_event, v_args);
        END IF;
    END IF;

    IF p_expected_version IS NOT NULL AND p_expected_version <> v_portfolio.version THEN
        RAISE EXCEPTION 'version conflict on portfolio %', p_portfolio_id
            USING ERRCODE = 'PF001',
            DETAIL = format('expected version %s, found version %s', p_expected_version, v_portfolio.version),
            HINT = 'Reload the portfolio and retry with its current version.';
    END IF;

    CASE p_operation
        WHEN 'deposit_cash' THEN
            v_kind := 'deposit';
            v_cash_delta := p_amount;
        WHEN 'withdraw_cash' THEN
            v_kind := 'withdraw';
            v_cash_delta := -p_amount;
        WHEN 'charge_fee' THEN
            v_kind := 'fee';
            v_cash_delta := -p_amount;
            v_fee := p_amount;
    END CASE;

    IF v_portfolio.cash_balance + v_cash_delta < 0 THEN
        RAISE EXCEPTION 'insufficient cash in portfolio %', p_portfolio_id
            USING ERRCODE = 'PF002',
            DETAIL = format('needed %s, available %s', -v_cash_delta, v_portfolio.cash_balance);
    END IF;

    UPDATE pgportfolio.portfolios
    SET cash_balance = cash_balance + v_cash_delta,
        realized_pnl = realized_pnl - v_fee,
        version = version + 1,
        updated_at = now()
    WHERE portfolio_id = p_portfolio_id
    RETURNING * INTO v_portfolio;

    INSERT INTO pgportfolio.events (
        portfolio_id, portfolio_version, kind, operation, fee, amount, cash_delta, realized_pnl,
        cash_balance, request_id, request_args, acting_role
    )
    VALUES (
        p_portfolio_id, v_portfolio.version, v_kind, p_operation, v_fee, p_amount, v_cash_delta, -v_fee,
        v_portfolio.cash_balance, p_request_id, v_args, v_actor
    );

    v_result := ROW(
        p_portfolio_id, v_portfolio.version, v_portfolio.cash_balance, NULL, NULL, NULL, -v_fee, false
    );
    RETURN v_result;
END;
$$;

CREATE FUNCTION pgportfolio.deposit_cash(
    p_portfolio_id bigint,
    p_amount numeric,
    p_request_id text DEFAULT NULL,
    p_expected_version bigint DEFAULT NULL
)
RETURNS pgportfolio.mutation_result
LANGUAGE sql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT pgportfolio._execute_cash('deposit_cash', p_portfolio_id, p_amount, p_request_id, p_expected_version);
$$;

CREATE FUNCTION pgportfolio.withdraw_cash(
    p_portfolio_id bigint,
    p_amount numeric,
    p_request_id text DEFAULT NULL,
    p_expected_version bigint DEFAULT NULL
)
RETURNS pgportfolio.mutation_result
LANGUAGE sql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT pgportfolio._execute_cash('withdraw_cash', p_portfolio_id, p_amount, p_request_id, p_expected_version);
$$;

CREATE FUNCTION pgportfolio.charge_fee(
    p_portfolio_id bigint,
    p_amount numeric,
    p_request_id text DEFAULT NULL,
    p_expected_version bigint DEFAULT NULL
)
RETURNS pgportfolio.mutation_result
LANGUAGE sql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT pgportfolio._execute_cash('charge_fee', p_portfolio_id, p_amount, p_request_id, p_expected_version);
$$;

COMMENT ON FUNCTION pgportfolio.deposit_cash(bigint, numeric, text, bigint) IS 'Add cash to a portfolio.';
COMMENT ON FUNCTION pgportfolio.withdraw_cash(bigint, numeric, text, bigint) IS
'Take cash out of a portfolio; PF002 if it would go below zero.';
COMMENT ON FUNCTION pgportfolio.charge_fee(bigint, numeric, text, bigint) IS
'Charge a fee not tied to a fill (custody, data). Counts as realized P&L of -amount.';
