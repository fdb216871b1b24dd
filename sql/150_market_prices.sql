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
