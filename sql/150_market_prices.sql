-- A price tick touches only market_price_history and market_prices: it never locks or
-- rewrites a portfolio or a position, so ticks and fills never wait for each other.

-- The rules of a mark's time and source (22023), shared by both tick functions. as_of may
-- lie in the past without bound (a back-filled mark) but at most a minute ahead of the
-- server's clock (clock skew between a feed and the server); it must be a finite time.
-- A source names the feed: 1 to 64 characters, none of _refused_characters().
CREATE FUNCTION pgportfolio._check_mark(p_as_of_argument text, p_as_of timestamptz, p_source text)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF p_as_of IS NULL THEN
        RAISE EXCEPTION '% must not be null', p_as_of_argument USING ERRCODE = '22023';
    END IF;
    IF NOT isfinite(p_as_of) THEN
        RAISE EXCEPTION '% must be a finite time', p_as_of_argument
            USING ERRCODE = '22023', DETAIL = format('Got %s.', p_as_of);
    END IF;
    IF p_as_of > clock_timestamp() + INTERVAL '1 minute' THEN
        RAISE EXCEPTION '% is in the future', p_as_of_argument
            USING ERRCODE = '22023',
            DETAIL = format('Got %s; the server''s clock reads %s.', p_as_of, clock_timestamp()),
            HINT = 'A mark may be at most one minute ahead of the server''s clock.';
    END IF;
    IF p_source IS NOT NULL
       AND (length(p_source) NOT BETWEEN 1 AND 64 OR p_source ~ pgportfolio._refused_characters()) THEN
        RAISE EXCEPTION 'invalid source'
            USING ERRCODE = '22023',
            HINT = 'A source is 1 to 64 characters without control or format characters (such as U+202E).';
    END IF;
END;
$$;

-- One mark: kept in the history, and made the current mark unless the current one has a
-- later as_of (a late-arriving older mark goes to the history only). The history row is
-- written first, so its mark_id is known when the current mark is compared: for two marks
-- with one as_of, the later arrival (higher mark_id) is current, whichever commits first,
-- exactly as price_at() orders them. The update takes updated_at from the proposed row
-- (its default, now()): no function is evaluated inside ON CONFLICT DO UPDATE, which is
-- what Citus requires of a distributed upsert (docs/operations.md, "Citus later").
CREATE FUNCTION pgportfolio.update_market_price(
    p_symbol text,
    p_price numeric,
    p_as_of timestamptz DEFAULT NULL,
    p_source text DEFAULT NULL
)
RETURNS void
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_as_of timestamptz := coalesce(p_as_of, now());
    v_mark_id bigint;
    v_saved_lock_timeout text;
BEGIN
    PERFORM pgportfolio._check_symbol(p_symbol);
    PERFORM pgportfolio._check_number('p_price', p_price, 'positive');
    PERFORM pgportfolio._check_mark('p_as_of', v_as_of, p_source);
    INSERT INTO pgportfolio.market_price_history (symbol, as_of, price, source)
    VALUES (p_symbol, v_as_of, trim_scale(p_price), p_source)
    RETURNING mark_id INTO v_mark_id;
    v_saved_lock_timeout := pgportfolio._bound_lock_wait();  -- ticks on one symbol queue on its row
    INSERT INTO pgportfolio.market_prices AS m (symbol, price, as_of, source, mark_id)
    VALUES (p_symbol, trim_scale(p_price), v_as_of, p_source, v_mark_id)
    ON CONFLICT (symbol) DO UPDATE
    SET price = excluded.price, version = m.version + 1, updated_at = excluded.updated_at,
        as_of = excluded.as_of, source = excluded.source, mark_id = excluded.mark_id
    WHERE (m.as_of, m.mark_id) < (excluded.as_of, excluded.mark_id);
    PERFORM set_config('lock_timeout', v_saved_lock_timeout, true);
END;
$$;

COMMENT ON FUNCTION pgportfolio.update_market_price(text, numeric, timestamptz, text) IS
'Record a mark of a symbol as of p_as_of (default now); current if latest. Never locks portfolios or positions.';

-- Many ticks in one call: [{"symbol": "AAPL", "price": "189.5", "as_of": "...", "source": "..."}, ...],
-- as_of and source optional. All or nothing: a bad element fails the call (22023) and
-- nothing is written. Every mark goes to the history, in the order given; per symbol the
-- one with the latest as_of (the last given, among equal ones) is offered as the current
-- mark. Current marks are written in symbol order, so two bulk calls over the same
-- symbols cannot deadlock. Like single ticks, it never touches portfolios or positions.
CREATE FUNCTION pgportfolio.update_market_prices(p_prices jsonb)
RETURNS integer
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_symbols text[];
    v_prices numeric[];
    v_as_ofs timestamptz[];
    v_sources text[];
    v_latest_allowed timestamptz;
    v_saved_lock_timeout text;
    v_count integer;
BEGIN
    IF p_prices IS NULL OR jsonb_typeof(p_prices) <> 'array' THEN
        RAISE EXCEPTION 'p_prices must be a JSON array of {"symbol", "price"}' USING ERRCODE = '22023';
    END IF;
    BEGIN
        SELECT
            array_agg(t.symbol ORDER BY t.item),
            array_agg(t.price ORDER BY t.item),
            array_agg(coalesce(t.as_of, now()) ORDER BY t.item),
            array_agg(t.source ORDER BY t.item)
        INTO v_symbols, v_prices, v_as_ofs, v_sources
        FROM ROWS FROM (
            jsonb_to_recordset(p_prices) AS (symbol text, price numeric, as_of timestamptz, source text)
        ) WITH ORDINALITY AS t (symbol, price, as_of, source, item);
    EXCEPTION WHEN data_exception THEN
        RAISE EXCEPTION 'malformed p_prices: %', sqlerrm USING ERRCODE = '22023';
    END;
    IF v_symbols IS NULL THEN
        RETURN 0;
    END IF;
    -- Every input rule in one pass over the set (the rules of 100_validation.sql and
    -- _check_mark); the raising checks run only when an element fails, to name the first
    -- with its message.
    v_latest_allowed := clock_timestamp() + INTERVAL '1 minute';
    IF EXISTS (
        SELECT FROM unnest(v_symbols, v_prices, v_as_ofs, v_sources) AS t (symbol, price, as_of, source)
        WHERE NOT coalesce(
            pgportfolio._symbol_valid(t.symbol)
            AND t.price NOT IN ('NaN', 'Infinity', '-Infinity') AND t.price > 0
            AND t.price < 1e15 AND min_scale(t.price) <= 8
            AND isfinite(t.as_of) AND t.as_of <= v_latest_allowed
            AND (
                t.source IS NULL
                OR (length(t.source) BETWEEN 1 AND 64 AND t.source !~ pgportfolio._refused_characters())
            ),
            false
        )
    ) THEN
        FOR i IN 1 .. array_length(v_symbols, 1) LOOP
            PERFORM pgportfolio._check_symbol(v_symbols[i]);
            PERFORM pgportfolio._check_number('price', v_prices[i], 'positive');
            PERFORM pgportfolio._check_mark('as_of', v_as_ofs[i], v_sources[i]);
        END LOOP;
    END IF;

    v_saved_lock_timeout := pgportfolio._bound_lock_wait();
    WITH recorded AS (
        INSERT INTO pgportfolio.market_price_history (symbol, as_of, price, source)
        SELECT t.symbol, t.as_of, trim_scale(t.price), t.source
        FROM unnest(v_symbols, v_prices, v_as_ofs, v_sources) WITH ORDINALITY
            AS t (symbol, price, as_of, source, item)
        ORDER BY t.item  -- mark_ids follow the order given: among equal as_of, the last wins
        RETURNING symbol, as_of, mark_id, price, source
    )

    INSERT INTO pgportfolio.market_prices AS m (symbol, price, as_of, source, mark_id)
    SELECT DISTINCT ON (r.symbol) r.symbol, r.price, r.as_of, r.source, r.mark_id
    FROM recorded AS r
    ORDER BY r.symbol ASC, r.as_of DESC, r.mark_id DESC
    ON CONFLICT (symbol) DO UPDATE
    SET price = excluded.price, version = m.version + 1, updated_at = excluded.updated_at,
        as_of = excluded.as_of, source = excluded.source, mark_id = excluded.mark_id
    WHERE (m.as_of, m.mark_id) < (excluded.as_of, excluded.mark_id);
    GET DIAGNOSTICS v_count = ROW_COUNT;
    PERFORM set_config('lock_timeout', v_saved_lock_timeout, true);
    RETURN v_count;
END;
$$;

COMMENT ON FUNCTION pgportfolio.update_market_prices(jsonb) IS
'Record many marks at once, all or nothing; returns the number of symbols whose current mark this call set.';

-- The mark that was current at p_at: the latest as_of at or before it (the later arrival
-- among equal ones), or NULL when none is known (no mark yet, or pruned). One backward
-- step in the history's primary key. For point-in-time reads and valuations.
CREATE FUNCTION pgportfolio.price_at(p_symbol text, p_at timestamptz)
RETURNS numeric
LANGUAGE plpgsql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM pgportfolio._check_symbol(p_symbol);
    IF p_at IS NULL THEN
        RAISE EXCEPTION 'p_at must not be null' USING ERRCODE = '22023';
    END IF;
    RETURN (
        SELECT h.price
        FROM pgportfolio.market_price_history AS h
        WHERE h.symbol = p_symbol AND h.as_of <= p_at
        ORDER BY h.as_of DESC, h.mark_id DESC
        LIMIT 1
    );
END;
$$;

COMMENT ON FUNCTION pgportfolio.price_at(text, timestamptz) IS
'The price of the mark current at p_at (latest as_of at or before it), or NULL if none is known.';

-- Retention of the price history (owner only). Deletes the marks with as_of before
-- p_before, except, per symbol, the one current at p_before: so price_at() gives the same
-- answer as before for every time from the oldest kept mark on, and NULL before it. The
-- current marks (market_prices) are never touched. Run it from a scheduler (pg_cron, cron
-- + psql), often enough that each run deletes a day or so of marks; it returns the number
-- of marks deleted.
CREATE FUNCTION pgportfolio.prune_price_history(p_before timestamptz)
RETURNS bigint
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_count bigint;
BEGIN
    IF p_before IS NULL OR NOT isfinite(p_before) THEN
        RAISE EXCEPTION 'p_before must be a finite time'
            USING ERRCODE = '22023', DETAIL = format('Got %s.', coalesce(p_before::text, 'NULL'));
    END IF;
    IF p_before > now() THEN
        RAISE EXCEPTION 'p_before is in the future'
            USING ERRCODE = '22023', DETAIL = format('Got %s; now is %s.', p_before, now()),
            HINT = 'History is pruned only up to the present.';
    END IF;
    DELETE FROM pgportfolio.market_price_history AS h
    WHERE h.as_of < p_before
      AND EXISTS (
          SELECT FROM pgportfolio.market_price_history AS later
          WHERE later.symbol = h.symbol
            AND later.as_of <= p_before
            AND (later.as_of, later.mark_id) > (h.as_of, h.mark_id)
      );
    GET DIAGNOSTICS v_count = ROW_COUNT;
    RETURN v_count;
END;
$$;

COMMENT ON FUNCTION pgportfolio.prune_price_history(timestamptz) IS
'Delete price history before p_before, keeping per symbol the mark current at p_before. Owner only.';
