-- Input checks shared by the mutation functions. Every failure is SQLSTATE 22023
-- (invalid_parameter_value) and is raised before any row is locked or written.

-- A money or quantity argument. p_sign is 'positive', 'non_negative' or 'nonzero'
-- (signed quantities). Values are never rounded: more than 8 decimal places is an error.
CREATE FUNCTION pgportfolio._check_number(p_argument text, p_value numeric, p_sign text)
RETURNS void
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF p_value IS NULL THEN
        RAISE EXCEPTION '% must not be null', p_argument USING ERRCODE = '22023';
    END IF;
    IF p_value IN ('NaN', 'Infinity', '-Infinity') THEN
        RAISE EXCEPTION '% must be a finite number', p_argument
            USING ERRCODE = '22023', DETAIL = format('Got %s.', p_value);
    END IF;
    IF abs(p_value) >= 1e15 THEN
        RAISE EXCEPTION '% is out of range', p_argument
            USING ERRCODE = '22023', DETAIL = format('Got %s; the absolute value must be below 10^15.', p_value);
    END IF;
    IF min_scale(p_value) > 8 THEN
        RAISE EXCEPTION '% has more than 8 decimal places', p_argument
            USING ERRCODE = '22023', DETAIL = format('Got %s.', p_value),
            HINT = 'Values are never rounded; round before calling.';
    END IF;
    IF p_sign = 'positive' AND p_value <= 0 THEN
        RAISE EXCEPTION '% must be positive', p_argument
            USING ERRCODE = '22023', DETAIL = format('Got %s.', p_value);
    ELSIF p_sign = 'non_negative' AND p_value < 0 THEN
        RAISE EXCEPTION '% must not be negative', p_argument
            USING ERRCODE = '22023', DETAIL = format('Got %s.', p_value);
    ELSIF p_sign = 'nonzero' AND p_value = 0 THEN
        RAISE EXCEPTION '% must not be zero', p_argument
            USING ERRCODE = '22023', HINT = 'Positive buys, negative sells.';
    END IF;
END;
$$;

-- The characters refused in names and request ids, as one regular-expression bracket:
-- control characters, and the Unicode format characters (general category Cf: soft
-- hyphen, zero-width space and joiners, left-to-right and right-to-left marks and
-- overrides such as U+202E, the byte order mark, tag characters, ...). Format characters
-- are invisible or reorder what follows, so two different names could print the same in a
-- report. PostgreSQL's regular expressions have no Unicode category classes, so the Cf
-- code points of Unicode 15.1 are listed; tests/proof/test_privilege_attacks.py compares
-- the list with Python's unicodedata, code point by code point. No SET search_path (the
-- operator is qualified instead): the planner then folds the call to its constant when a
-- caller is planned, where a call of its own cost every mutation about 20 µs.
CREATE FUNCTION pgportfolio._refused_characters()
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT '[[:cntrl:]\u00AD\u0600-\u0605\u061C\u06DD\u070F\u0890-\u0891\u08E2\u180E\u200B-\u200F'
        OPERATOR(pg_catalog.||) '\u202A-\u202E\u2060-\u2064\u2066-\u206F\uFEFF\uFFF9-\uFFFB\U000110BD\U000110CD'
        OPERATOR(pg_catalog.||) '\U00013430-\U0001343F\U0001BCA0-\U0001BCA3\U0001D173-\U0001D17A\U000E0001'
        OPERATOR(pg_catalog.||) '\U000E0020-\U000E007F]';
$$;

-- The symbol rule (_symbol_valid, 020_schema.sql), raising.
CREATE FUNCTION pgportfolio._check_symbol(p_symbol text)
RETURNS void
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF p_symbol IS NULL THEN
        RAISE EXCEPTION 'symbol must not be null' USING ERRCODE = '22023';
    END IF;
    IF NOT pgportfolio._symbol_valid(p_symbol) THEN
        RAISE EXCEPTION 'invalid symbol'
            USING ERRCODE = '22023',
            DETAIL = format('Got %s (%s characters).', quote_literal(left(p_symbol, 40)), length(p_symbol)),
            HINT = 'A symbol is 1 to 32 characters of A-Z, 0-9 and . _ - / :';
    END IF;
END;
$$;

-- A request id is opaque to us: 1 to 200 characters, none of _refused_characters().
CREATE FUNCTION pgportfolio._check_request(p_request_id text, p_expected_version bigint)
RETURNS void
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF p_request_id IS NOT NULL
       AND (length(p_request_id) NOT BETWEEN 1 AND 200 OR p_request_id ~ pgportfolio._refused_characters()) THEN
        RAISE EXCEPTION 'invalid request id'
            USING ERRCODE = '22023',
            HINT = 'A request id is 1 to 200 characters without control or format characters (such as U+202E).';
    END IF;
    IF p_expected_version IS NOT NULL AND p_expected_version < 1 THEN
        RAISE EXCEPTION 'expected_version must be at least 1'
            USING ERRCODE = '22023', DETAIL = format('Got %s.', p_expected_version);
    END IF;
END;
$$;

-- A fill's execution metadata, all optional. executed_at: when the trade happened, finite
-- and at most p_latest (one minute after the clock: a clock a little ahead is tolerated, a
-- date typed wrong is not); it may be long past (imports). order_id: the broker's order or
-- execution id, opaque like a request id. tags: a flat JSON object of short strings
-- (account, strategy, venue...), bounded so that one event's row stays small.
-- No SET search_path, every name qualified: the planner folds the call into its caller's
-- expression (with SET search_path it cost about 8 µs per fill; folded, 0.1 µs). The tags'
-- rule reads each object's members, so it is _invalid_tags below, asked once per call.
CREATE FUNCTION pgportfolio._execution_valid(p_executed_at timestamptz, p_order_id text, p_latest timestamptz)
RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    SELECT (p_executed_at IS NULL OR (
            p_executed_at OPERATOR(pg_catalog.>) '-infinity'::pg_catalog.timestamptz
            AND p_executed_at OPERATOR(pg_catalog.<=) p_latest
        ))
        AND (p_order_id IS NULL OR (
            pg_catalog.length(p_order_id) OPERATOR(pg_catalog.>=) 1
            AND pg_catalog.length(p_order_id) OPERATOR(pg_catalog.<=) 200
            AND p_order_id OPERATOR(pg_catalog.!~) pgportfolio._refused_characters()
        ));
$$;

-- The tags' rule, for a list of tags at once: the positions (from 1) of those that break
-- it. Tags are a flat JSON object of at most 32 keys (1 to 64 characters) with string
-- values of at most 256 characters, no control or format characters, at most 4096 bytes
-- in all. A list, not one value: a SQL function that reads rows (here the object's
-- members) is never folded into its caller's expression, and called once per element it
-- cost about 100,000 instructions, where one statement over the list (the planner inlines
-- this function into it: no SET search_path, every name qualified) costs a tenth of that.
CREATE FUNCTION pgportfolio._invalid_tags(p_tags jsonb[])
RETURNS TABLE (item bigint)
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    SELECT u.item
    FROM pg_catalog.unnest(p_tags) WITH ORDINALITY AS u (tags, item)
    WHERE u.tags IS NOT NULL AND NOT CASE
        WHEN pg_catalog.jsonb_typeof(u.tags) OPERATOR(pg_catalog.<>) 'object'
            OR pg_catalog.octet_length(u.tags::pg_catalog.text) OPERATOR(pg_catalog.>) 4096 THEN false
        ELSE (
            SELECT pg_catalog.count(*) OPERATOR(pg_catalog.<=) 32 AND coalesce(pg_catalog.bool_and(
                pg_catalog.length(t.key) OPERATOR(pg_catalog.>=) 1
                AND pg_catalog.length(t.key) OPERATOR(pg_catalog.<=) 64
                AND t.key OPERATOR(pg_catalog.!~) pgportfolio._refused_characters()
                AND pg_catalog.jsonb_typeof(t.value) OPERATOR(pg_catalog.=) 'string'
                AND pg_catalog.length(t.value OPERATOR(pg_catalog.#>>) '{}') OPERATOR(pg_catalog.<=) 256
                AND (t.value OPERATOR(pg_catalog.#>>) '{}') OPERATOR(pg_catalog.!~) pgportfolio._refused_characters()
            ), true)
            FROM pg_catalog.jsonb_each(u.tags) AS t
        )
    END;
$$;

-- The same rules as _execution_valid, raising the one that was broken.
CREATE FUNCTION pgportfolio._check_execution(
    p_executed_at timestamptz, p_order_id text, p_tags jsonb, p_latest timestamptz
)
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_tags_hint constant text := 'Tags are a flat JSON object of at most 32 keys (1 to 64 characters) with string '
        'values of at most 256 characters, no control or format characters, at most 4096 bytes in all.';
BEGIN
    IF p_executed_at IN ('infinity', '-infinity') THEN
        RAISE EXCEPTION 'executed_at must be a finite time' USING ERRCODE = '22023';
    END IF;
    IF p_executed_at > p_latest THEN
        RAISE EXCEPTION 'executed_at is in the future'
            USING ERRCODE = '22023',
            DETAIL = format('Got %s; the latest accepted is %s (one minute after now).', p_executed_at, p_latest);
    END IF;
    IF p_order_id IS NOT NULL
       AND (length(p_order_id) NOT BETWEEN 1 AND 200 OR p_order_id ~ pgportfolio._refused_characters()) THEN
        RAISE EXCEPTION 'invalid order id'
            USING ERRCODE = '22023',
            HINT = 'An order id is 1 to 200 characters without control or format characters (such as U+202E).';
    END IF;
    IF jsonb_typeof(p_tags) <> 'object' THEN
        RAISE EXCEPTION 'tags must be a JSON object'
            USING ERRCODE = '22023', DETAIL = format('Got a JSON %s.', jsonb_typeof(p_tags)), HINT = v_tags_hint;
    END IF;
    IF EXISTS (SELECT FROM pgportfolio._invalid_tags(ARRAY[p_tags])) THEN
        RAISE EXCEPTION 'invalid tags' USING ERRCODE = '22023', HINT = v_tags_hint;
    END IF;
END;
$$;

CREATE FUNCTION pgportfolio._check_portfolio_attributes(p_name text, p_currency text)
RETURNS void
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF p_name IS NULL OR length(p_name) NOT BETWEEN 1 AND 200 OR p_name <> btrim(p_name)
       OR p_name ~ pgportfolio._refused_characters() THEN
        RAISE EXCEPTION 'invalid portfolio name'
            USING ERRCODE = '22023',
            HINT = 'A name is 1 to 200 characters, without control or format characters (such as U+202E) or surrounding spaces.';
    END IF;
    IF p_currency IS NULL OR p_currency !~ '^[A-Z]{3}$' THEN
        RAISE EXCEPTION 'invalid currency'
            USING ERRCODE = '22023', DETAIL = format('Got %s.', coalesce(quote_literal(left(p_currency, 40)), 'NULL')),
            HINT = 'Use an ISO 4217 code in upper case, such as USD.';
    END IF;
END;
$$;
