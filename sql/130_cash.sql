-- Cash movements: deposits, withdrawals and standalone fees (custody, data, ...). Each is
-- one operation of 128_operations.sql, which defines what it does (PL/pgSQL for the
-- reason given in 141_fill_verbs.sql).
CREATE FUNCTION pgportfolio.deposit_cash(
    p_portfolio_id bigint,
    p_amount numeric,
    p_request_id text DEFAULT NULL,
    p_expected_version bigint DEFAULT NULL
)
RETURNS pgportfolio.mutation_result
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN pgportfolio._apply_one(
        'deposit_cash', p_portfolio_id, NULL, NULL, NULL, NULL, p_amount, p_request_id, p_expected_version
    );
END;
$$;

CREATE FUNCTION pgportfolio.withdraw_cash(
    p_portfolio_id bigint,
    p_amount numeric,
    p_request_id text DEFAULT NULL,
    p_expected_version bigint DEFAULT NULL
)
RETURNS pgportfolio.mutation_result
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN pgportfolio._apply_one(
        'withdraw_cash', p_portfolio_id, NULL, NULL, NULL, NULL, p_amount, p_request_id, p_expected_version
    );
END;
$$;

CREATE FUNCTION pgportfolio.charge_fee(
    p_portfolio_id bigint,
    p_amount numeric,
    p_request_id text DEFAULT NULL,
    p_expected_version bigint DEFAULT NULL
)
RETURNS pgportfolio.mutation_result
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN pgportfolio._apply_one(
        'charge_fee', p_portfolio_id, NULL, NULL, NULL, NULL, p_amount, p_request_id, p_expected_version
    );
END;
$$;

COMMENT ON FUNCTION pgportfolio.deposit_cash(bigint, numeric, text, bigint) IS 'Add cash to a portfolio.';
COMMENT ON FUNCTION pgportfolio.withdraw_cash(bigint, numeric, text, bigint) IS
'Take cash out of a portfolio; PF002 if it would go below zero.';
COMMENT ON FUNCTION pgportfolio.charge_fee(bigint, numeric, text, bigint) IS
'Charge a fee not tied to a fill (custody, data). Counts as realized P&L of -amount.';
