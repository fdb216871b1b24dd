-- Idempotency: a request id already in the log returns the result it produced then,
-- marked duplicate, and changes nothing. The same id with other arguments is PF005.
-- Only the operation itself is compared, never the expected version: a retry after a
-- lost reply carries a version that has since moved on. The comparison itself is part
-- of the one definition of an operation (128_operations.sql); this is how a request's
-- arguments read in PF005's DETAIL. A fill's execution metadata (executed_at, order_id,
-- tags) is part of its request: the same id with another execution time is PF005.
CREATE FUNCTION pgportfolio._request_args(
    p_operation text,
    p_symbol text,
    p_quantity numeric,
    p_price numeric,
    p_fee numeric,
    p_amount numeric,
    p_executed_at timestamptz,
    p_order_id text,
    p_tags jsonb
)
RETURNS jsonb
-- STABLE: executed_at reads in the session's TimeZone.
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE
        WHEN p_operation IN ('deposit_cash', 'withdraw_cash', 'charge_fee')
            THEN jsonb_build_object('operation', p_operation, 'amount', p_amount)
        ELSE jsonb_build_object(
            'operation', p_operation, 'symbol', p_symbol, 'quantity', p_quantity, 'price', p_price, 'fee', p_fee
        )
        -- execution metadata only where the request had some (tags hold no nulls to strip)
        || jsonb_strip_nulls(jsonb_build_object('executed_at', p_executed_at, 'order_id', p_order_id, 'tags', p_tags))
    END;
$$;
