-- Instruments are reference data, managed by the owner role only (no EXECUTE grant).
-- A multiplier scales the value of every unit held, so changing it under an open
-- position would silently rewrite that position's cost basis and P&L: the change is
-- refused (PF007) while any portfolio holds the symbol. A description, or a multiplier
-- equal to the one in force (1 for a symbol without a row), may always be written.
--
-- The held check cannot race a fill: before it looks at positions it takes a SHARE lock
-- on the positions table, which waits for every fill that may open a position (such a
-- fill takes ROW EXCLUSIVE on positions before it reads the multiplier) and holds new
-- ones back until this transaction ends. The check then sees every committed position,
-- which needs READ COMMITTED (a REPEATABLE READ snapshot was taken before the lock), so a
-- multiplier change at a higher isolation level is refused (0A000). Fills at REPEATABLE
-- READ see the change through multiplier_changes (035_instruments.sql).
CREATE FUNCTION pgportfolio.upsert_instrument(
    p_symbol text,
    p_multiplier numeric DEFAULT 1,
    p_description text DEFAULT NULL
)
RETURNS void
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_multiplier_in_force numeric;
    v_holders bigint;
    v_saved_lock_timeout text;
BEGIN
    PERFORM pgportfolio._check_symbol(p_symbol);
    PERFORM pgportfolio._check_number('p_multiplier', p_multiplier, 'positive');
    IF p_description IS NOT NULL
       AND (length(p_description) NOT BETWEEN 1 AND 200 OR p_description ~ pgportfolio._refused_characters()) THEN
        RAISE EXCEPTION 'invalid description'
            USING ERRCODE = '22023',
            HINT = 'A description is 1 to 200 characters without control or format characters (such as U+202E).';
    END IF;

    v_saved_lock_timeout := pgportfolio._bound_lock_wait();
    -- A new symbol first gets the row it implicitly had (multiplier 1), so that one row
    -- lock serialises concurrent upserts of the same symbol, new or not.
    INSERT INTO pgportfolio.instruments (symbol) VALUES (p_symbol) ON CONFLICT (symbol) DO NOTHING;
    SELECT i.multiplier INTO STRICT v_multiplier_in_force
    FROM pgportfolio.instruments AS i WHERE i.symbol = p_symbol FOR UPDATE;

    IF p_multiplier <> v_multiplier_in_force THEN
        IF current_setting('transaction_isolation') <> 'read committed' THEN
            RAISE EXCEPTION 'a multiplier can be changed only at READ COMMITTED'
                USING ERRCODE = '0A000',
                DETAIL = format('The transaction is %s.', upper(current_setting('transaction_isolation'))),
                HINT = 'The held-symbol check must see positions committed after the transaction began.';
        END IF;
        -- Waits for fills at REPEATABLE READ that read multipliers (they hold this row FOR
        -- SHARE), and makes those that come later fail with 40001 (035_instruments.sql).
        UPDATE pgportfolio.multiplier_changes SET changes = changes + 1, changed_at = now();
        LOCK TABLE pgportfolio.positions IN SHARE MODE;
        SELECT count(*) INTO v_holders FROM pgportfolio.positions AS p WHERE p.symbol = p_symbol;
        IF v_holders > 0 THEN
            RAISE EXCEPTION 'symbol % is held: its multiplier cannot change', p_symbol
                USING ERRCODE = 'PF007',
                DETAIL = format('Multiplier %s, asked %s; %s open position(s).',
                                v_multiplier_in_force, trim_scale(p_multiplier), v_holders),
                HINT = 'Close every position in the symbol first, or keep the multiplier.';
        END IF;
    END IF;

    UPDATE pgportfolio.instruments
    SET multiplier = trim_scale(p_multiplier), description = p_description, updated_at = now()
    WHERE symbol = p_symbol;
    PERFORM set_config('lock_timeout', v_saved_lock_timeout, true);
END;
$$;

COMMENT ON FUNCTION pgportfolio.upsert_instrument(text, numeric, text) IS
'Create or replace an instrument. Owner only; PF007 if the multiplier of a held symbol would change.';
