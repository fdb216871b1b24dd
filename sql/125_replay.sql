-- Idempotency: a request id already in the log returns the result it produced then,
-- marked duplicate, and changes nothing. The same id with other arguments is PF005.
-- Only the operation itself is compared, never p_expected_version: a retry after a
-- lost reply carries a version that has since moved on.
CREATE FUNCTION pgportfolio._replay(p_event pgportfolio.events, p_args jsonb)
RETURNS pgportfolio.mutation_result
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_result pgportfolio.mutation_result;
BEGIN
    IF p_event.request_args IS DISTINCT FROM p_args THEN
        RAISE EXCEPTION 'request id % was already used with different arguments', quote_literal(p_event.request_id)
            USING ERRCODE = 'PF005',
            DETAIL = format(
                'portfolio %s version %s: first %s, now %s',
                p_event.portfolio_id, p_event.portfolio_version, p_event.request_args, p_args
            ),
            HINT = 'Use a new request id for a new operation.';
    END IF;
    v_result := ROW(
        p_event.portfolio_id,
        p_event.portfolio_version,
        p_event.cash_balance,
        p_event.symbol,
        p_event.position_quantity,
        CASE WHEN p_event.position_quantity <> 0
            THEN round(p_event.position_cost_basis / p_event.position_quantity, 8)
        END,
        p_event.realized_pnl,
        true
    );
    RETURN v_result;
END;
$$;
