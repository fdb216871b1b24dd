-- Batches: many operations, for one portfolio or many, in one call and one transaction.
-- Each element is an operation of 128_operations.sql (a fill by default; a verb or a cash
-- move when its operation says so) with the same result, event and refusal as the single
-- function, element by element in input order. A refused element comes back as its own
-- row with its SQLSTATE and does not undo the others.
--
-- Two forms: apply_fills_arrays takes one typed array per field (what the client sends:
-- no JSON to build or parse); apply_fills takes one JSON array of objects (for SQL written
-- by hand). In both, a fill without a fee pays none.

CREATE FUNCTION pgportfolio.apply_fills_arrays(
    p_portfolio_ids bigint[],
    p_symbols text[],
    p_quantities numeric[],
    p_prices numeric[],
    p_fees numeric[] DEFAULT NULL,
    p_request_ids text[] DEFAULT NULL,
    p_expected_versions bigint[] DEFAULT NULL,
    p_operations text[] DEFAULT NULL,
    p_amounts numeric[] DEFAULT NULL,
    p_executed_ats timestamptz[] DEFAULT NULL,
    p_order_ids text[] DEFAULT NULL,
    p_tags jsonb[] DEFAULT NULL
)
RETURNS SETOF pgportfolio.fill_result
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_n integer := cardinality(p_portfolio_ids);
    v_nulls text[];
BEGIN
    IF v_n IS NULL THEN
        RAISE EXCEPTION 'p_portfolio_ids must not be null' USING ERRCODE = '22023';
    END IF;
    -- The defaults below write into p_operations and p_fees by position, which would
    -- lengthen a short array: refuse one first (the core checks every array's shape).
    IF cardinality(p_operations) <> v_n OR cardinality(p_fees) <> v_n THEN
        RAISE EXCEPTION 'the argument arrays must all have one element per operation'
            USING ERRCODE = '22023', HINT = 'Pass one-dimensional arrays of equal length, numbered from 1.';
    END IF;
    v_nulls := array_fill(NULL::text, ARRAY[v_n]);
    -- Whole-array replacements where they do (a loop over the elements cost about 3,000
    -- instructions each): only a batch with cash moves, which take no fee, needs the loop.
    p_operations := array_replace(coalesce(p_operations, v_nulls), NULL, 'apply_fill');
    p_fees := coalesce(p_fees, v_nulls::numeric[]);
    IF p_operations && ARRAY['deposit_cash', 'withdraw_cash', 'charge_fee'] THEN
        FOR i IN 1 .. v_n LOOP
            IF p_fees[i] IS NULL AND p_operations[i] NOT IN ('deposit_cash', 'withdraw_cash', 'charge_fee') THEN
                p_fees[i] := 0;
            END IF;
        END LOOP;
    ELSE
        p_fees := array_replace(p_fees, NULL, 0::numeric);
    END IF;
    RETURN QUERY
    SELECT *
    FROM pgportfolio._apply_operations(
        p_operations, p_portfolio_ids,
        coalesce(p_symbols, v_nulls), coalesce(p_quantities, v_nulls::numeric[]),
        coalesce(p_prices, v_nulls::numeric[]), p_fees, coalesce(p_amounts, v_nulls::numeric[]),
        coalesce(p_request_ids, v_nulls), coalesce(p_expected_versions, v_nulls::bigint[]),
        coalesce(p_executed_ats, v_nulls::timestamptz[]), coalesce(p_order_ids, v_nulls),
        coalesce(p_tags, v_nulls::jsonb[])
    );
END;
$$;

COMMENT ON FUNCTION pgportfolio.apply_fills_arrays(
    bigint[], text[], numeric[], numeric[], numeric[], text[], bigint[], text[], numeric[], timestamptz[], text[],
    jsonb[]
) IS
'Apply many operations (signed fills by default) in one call; one result row per element, in input order.';

-- [{"portfolio_id": 1, "symbol": "AAPL", "quantity": "10", "price": "189.5"}, ...]; an
-- element may also carry "fee", "request_id", "expected_version", and "operation" (a verb,
-- or deposit_cash / withdraw_cash / charge_fee with "amount").
CREATE FUNCTION pgportfolio.apply_fills(p_fills jsonb)
RETURNS SETOF pgportfolio.fill_result
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_portfolio_ids bigint[];
    v_operations text[];
    v_symbols text[];
    v_quantities numeric[];
    v_prices numeric[];
    v_fees numeric[];
    v_amounts numeric[];
    v_request_ids text[];
    v_expected_versions bigint[];
    v_executed_ats timestamptz[];
    v_order_ids text[];
    v_tags jsonb[];
BEGIN
    IF p_fills IS NULL OR jsonb_typeof(p_fills) <> 'array' THEN
        RAISE EXCEPTION 'p_fills must be a JSON array of fills' USING ERRCODE = '22023';
    END IF;
    BEGIN
        SELECT
            coalesce(array_agg(f.portfolio_id ORDER BY f.item), '{}'), array_agg(f.operation ORDER BY f.item),
            array_agg(f.symbol ORDER BY f.item), array_agg(f.quantity ORDER BY f.item),
            array_agg(f.price ORDER BY f.item), array_agg(f.fee ORDER BY f.item), array_agg(f.amount ORDER BY f.item),
            array_agg(f.request_id ORDER BY f.item), array_agg(f.expected_version ORDER BY f.item),
            array_agg(f.executed_at ORDER BY f.item), array_agg(f.order_id ORDER BY f.item),
            array_agg(f.tags ORDER BY f.item)
        INTO v_portfolio_ids, v_operations, v_symbols, v_quantities, v_prices, v_fees, v_amounts, v_request_ids,
            v_expected_versions, v_executed_ats, v_order_ids, v_tags
        FROM ROWS FROM (
            jsonb_to_recordset(p_fills) AS (
                portfolio_id bigint, operation text, amount numeric, symbol text, quantity numeric,
                price numeric, fee numeric, request_id text, expected_version bigint, executed_at timestamptz,
                order_id text, tags jsonb
            )
        ) WITH ORDINALITY AS f (
            portfolio_id, operation, amount, symbol, quantity, price, fee, request_id, expected_version, executed_at,
            order_id, tags, item
        );
    EXCEPTION WHEN data_exception THEN
        RAISE EXCEPTION 'malformed p_fills: %', sqlerrm
            USING ERRCODE = '22023',
            HINT = 'A fill: {"portfolio_id", "symbol", "quantity", "price", "fee", "request_id", "expected_version", "executed_at", "order_id", "tags"}; a cash move: {"portfolio_id", "operation", "amount", "request_id", "expected_version"}.';
    END;
    RETURN QUERY
    SELECT *
    FROM pgportfolio.apply_fills_arrays(
        p_portfolio_ids => v_portfolio_ids, p_symbols => v_symbols, p_quantities => v_quantities,
        p_prices => v_prices, p_fees => v_fees, p_request_ids => v_request_ids,
        p_expected_versions => v_expected_versions, p_operations => v_operations, p_amounts => v_amounts,
        p_executed_ats => v_executed_ats, p_order_ids => v_order_ids, p_tags => v_tags
    );
END;
$$;

COMMENT ON FUNCTION pgportfolio.apply_fills(jsonb) IS
'Apply many operations given as one JSON array of objects; one result row per element, in input order.';
