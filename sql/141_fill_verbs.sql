-- The fill verbs: each one operation of 128_operations.sql, which defines what it does.
-- SECURITY DEFINER so that traders never need rights on the tables. Each takes the fill's
-- optional execution metadata last (executed_at, order_id, tags: see 034_events.sql).
-- PL/pgSQL, not SQL: a SQL function with SET (not inlinable) parses and plans its body on
-- every call, about 3% of a single call's work; PL/pgSQL plans it once per session.

CREATE FUNCTION pgportfolio.apply_fill(
    p_portfolio_id bigint,
    p_symbol text,
    p_quantity numeric,
    p_price numeric,
    p_fee numeric DEFAULT 0,
    p_request_id text DEFAULT NULL,
    p_expected_version bigint DEFAULT NULL,
    p_executed_at timestamptz DEFAULT NULL,
    p_order_id text DEFAULT NULL,
    p_tags jsonb DEFAULT NULL
)
RETURNS pgportfolio.mutation_result
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN pgportfolio._apply_one(
        'apply_fill', p_portfolio_id, p_symbol, p_quantity, p_price, p_fee, NULL, p_request_id, p_expected_version,
        p_executed_at, p_order_id, p_tags
    );
END;
$$;

COMMENT ON FUNCTION pgportfolio.apply_fill(
    bigint, text, numeric, numeric, numeric, text, bigint, timestamptz, text, jsonb
) IS
'Apply a signed fill (+ buy, - sell) netted against the open position: open, add, reduce, close or flip.';

CREATE FUNCTION pgportfolio.open_position(
    p_portfolio_id bigint,
    p_symbol text,
    p_quantity numeric,
    p_price numeric,
    p_fee numeric DEFAULT 0,
    p_request_id text DEFAULT NULL,
    p_expected_version bigint DEFAULT NULL,
    p_executed_at timestamptz DEFAULT NULL,
    p_order_id text DEFAULT NULL,
    p_tags jsonb DEFAULT NULL
)
RETURNS pgportfolio.mutation_result
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN pgportfolio._apply_one(
        'open_position', p_portfolio_id, p_symbol, p_quantity, p_price, p_fee, NULL, p_request_id, p_expected_version,
        p_executed_at, p_order_id, p_tags
    );
END;
$$;

COMMENT ON FUNCTION pgportfolio.open_position(
    bigint, text, numeric, numeric, numeric, text, bigint, timestamptz, text, jsonb
) IS
'Open a position (signed quantity). PF006 if one is already open.';

CREATE FUNCTION pgportfolio.add_to_position(
    p_portfolio_id bigint,
    p_symbol text,
    p_quantity numeric,
    p_price numeric,
    p_fee numeric DEFAULT 0,
    p_request_id text DEFAULT NULL,
    p_expected_version bigint DEFAULT NULL,
    p_executed_at timestamptz DEFAULT NULL,
    p_order_id text DEFAULT NULL,
    p_tags jsonb DEFAULT NULL
)
RETURNS pgportfolio.mutation_result
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN pgportfolio._apply_one(
        'add_to_position', p_portfolio_id, p_symbol, p_quantity, p_price, p_fee, NULL, p_request_id, p_expected_version,
        p_executed_at, p_order_id, p_tags
    );
END;
$$;

COMMENT ON FUNCTION pgportfolio.add_to_position(
    bigint, text, numeric, numeric, numeric, text, bigint, timestamptz, text, jsonb
) IS
'Add to an open position on its own side (signed quantity). PF003 if none is open.';

CREATE FUNCTION pgportfolio.reduce_position(
    p_portfolio_id bigint,
    p_symbol text,
    p_quantity numeric,
    p_price numeric,
    p_fee numeric DEFAULT 0,
    p_request_id text DEFAULT NULL,
    p_expected_version bigint DEFAULT NULL,
    p_executed_at timestamptz DEFAULT NULL,
    p_order_id text DEFAULT NULL,
    p_tags jsonb DEFAULT NULL
)
RETURNS pgportfolio.mutation_result
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN pgportfolio._apply_one(
        'reduce_position', p_portfolio_id, p_symbol, p_quantity, p_price, p_fee, NULL, p_request_id, p_expected_version,
        p_executed_at, p_order_id, p_tags
    );
END;
$$;

COMMENT ON FUNCTION pgportfolio.reduce_position(
    bigint, text, numeric, numeric, numeric, text, bigint, timestamptz, text, jsonb
) IS
'Reduce an open position by a positive quantity, at most what is held. PF003 otherwise.';

CREATE FUNCTION pgportfolio.close_position(
    p_portfolio_id bigint,
    p_symbol text,
    p_price numeric,
    p_fee numeric DEFAULT 0,
    p_request_id text DEFAULT NULL,
    p_expected_version bigint DEFAULT NULL,
    p_executed_at timestamptz DEFAULT NULL,
    p_order_id text DEFAULT NULL,
    p_tags jsonb DEFAULT NULL
)
RETURNS pgportfolio.mutation_result
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN pgportfolio._apply_one(
        'close_position', p_portfolio_id, p_symbol, NULL, p_price, p_fee, NULL, p_request_id, p_expected_version,
        p_executed_at, p_order_id, p_tags
    );
END;
$$;

COMMENT ON FUNCTION pgportfolio.close_position(
    bigint, text, numeric, numeric, text, bigint, timestamptz, text, jsonb
) IS
'Close the whole open position at p_price. PF003 if none is open.';
