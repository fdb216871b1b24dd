-- A price tick touches only market_prices: it never locks or rewrites a portfolio or
-- a position, so ticks and fills never wait for each other.
CREATE FUNCTION pgportfolio.update_market_price(p_symbol text, p_price numeric)
RETURNS void
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_saved_lock_timeout text;
BEGIN
    PERFORM pgportfolio._check_symbol(p_symbol);
    PERFORM pgportfolio._check_number('p_price', p_price, 'positive');
    v_saved_lock_timeout := pgportfolio._bound_lock_wait();  -- ticks on one symbol queue on its row
    INSERT INTO pgportfolio.market_prices AS m (symbol, price)
    VALUES (p_symbol, trim_scale(p_price))
    ON CONFLICT (symbol) DO UPDATE
    SET price = excluded.price, version = m.version + 1, updated_at = now();
    PERFORM set_config('lock_timeout', v_saved_lock_timeout, true);
END;
$$;

COMMENT ON FUNCTION pgportfolio.update_market_price(text, numeric) IS
'Set the latest market price of a symbol. Never locks portfolios or positions.';

-- Many ticks in one call: [{"symbol": "AAPL", "price": "189.5"}, ...]. All or nothing:
-- a bad element fails the call (22023) and nothing is written. Rows are written in
-- symbol order, so two bulk calls over the same symbols cannot deadlock; the last price
-- given for a symbol wins. Like single ticks, it never touches portfolios or positions.
CREATE FUNCTION pgportfolio.update_market_prices(p_prices jsonb)
RETURNS integer
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_symbols text[];
    v_prices numeric[];
    v_saved_lock_timeout text;
    v_count integer;
BEGIN
    IF p_prices IS NULL OR jsonb_typeof(p_prices) <> 'array' THEN
        RAISE EXCEPTION 'p_prices must be a JSON array of {"symbol", "price"}' USING ERRCODE = '22023';
    END IF;
    BEGIN
        SELECT array_agg(t.symbol ORDER BY t.item), array_agg(t.price ORDER BY t.item)
        INTO v_symbols, v_prices
        FROM ROWS FROM (jsonb_to_recordset(p_prices) AS (symbol text, price numeric))
            WITH ORDINALITY AS t (symbol, price, item);
    EXCEPTION WHEN data_exception THEN
        RAISE EXCEPTION 'malformed p_prices: %', sqlerrm USING ERRCODE = '22023';
    END;
    IF v_symbols IS NULL THEN
        RETURN 0;
    END IF;
    -- Every input rule in one pass over the set (the rules of 100_validation.sql); the
    -- raising checks run only when an element fails, to name the first with its message.
    IF EXISTS (
        SELECT FROM unnest(v_symbols, v_prices) AS t (symbol, price)
        WHERE NOT coalesce(
            t.symbol ~ '^[A-Z0-9._/:-]{1,32}$'
            AND t.price NOT IN ('NaN', 'Infinity', '-Infinity') AND t.price > 0
            AND t.price < 1e15 AND min_scale(t.price) <= 8,
            false
        )
    ) THEN
        FOR i IN 1 .. array_length(v_symbols, 1) LOOP
            PERFORM pgportfolio._check_symbol(v_symbols[i]);
            PERFORM pgportfolio._check_number('price', v_prices[i], 'positive');
        END LOOP;
    END IF;

    v_saved_lock_timeout := pgportfolio._bound_lock_wait();
    INSERT INTO pgportfolio.market_prices AS m (symbol, price)
    SELECT DISTINCT ON (t.symbol) t.symbol, trim_scale(t.price)
    FROM unnest(v_symbols, v_prices) WITH ORDINALITY AS t (symbol, price, item)
    ORDER BY t.symbol, t.item DESC
    ON CONFLICT (symbol) DO UPDATE
    SET price = excluded.price, version = m.version + 1, updated_at = now();
    GET DIAGNOSTICS v_count = ROW_COUNT;
    PERFORM set_config('lock_timeout', v_saved_lock_timeout, true);
    RETURN v_count;
END;
$$;

COMMENT ON FUNCTION pgportfolio.update_market_prices(jsonb) IS
'Set many marks at once, all or nothing; returns the number of symbols written.';
