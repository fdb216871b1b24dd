-- Execution metadata on the single fill functions (sql/141_fill_verbs.sql, checked by
-- sql/100_validation.sql _check_execution, stored by sql/128_operations.sql): every bad
-- executed_at, order_id or tags is 22023 with its message and changes nothing, on each of
-- apply_fill and the four verbs; the limits themselves are accepted; the metadata is part
-- of the request's identity (PF005 with both requests in DETAIL) and shows in event_log,
-- where a fill sent without executed_at shows its transaction time.
BEGIN;
SELECT plan(132);
-- The PF005 DETAIL prints executed_at in the session's time zone.
SET LOCAL TimeZone = 'UTC';

CREATE FUNCTION pg_temp.pid() RETURNS bigint LANGUAGE sql STABLE
AS $$ SELECT current_setting('test.pid')::bigint $$;

CREATE FUNCTION pg_temp.error_parts(p_sql text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    v_state text; v_message text; v_detail text;
BEGIN
    EXECUTE p_sql;
    RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_message = MESSAGE_TEXT, v_detail = PG_EXCEPTION_DETAIL;
    RETURN concat_ws(' | ', v_state, v_message, nullif(v_detail, ''));
END;
$$;

-- Everything a refused call could have changed, in one value.
CREATE FUNCTION pg_temp.state() RETURNS text LANGUAGE sql STABLE AS $$
    SELECT format('v%s cash %s events %s positions %s', p.version, p.cash_balance,
        (SELECT count(*) FROM pgportfolio.events AS e WHERE e.portfolio_id = p.portfolio_id),
        (SELECT string_agg(format('%s %s %s', q.symbol::text, q.quantity::numeric, q.cost_basis::numeric), ', ' ORDER BY q.symbol::text)
         FROM pgportfolio.positions AS q WHERE q.portfolio_id = p.portfolio_id))
    FROM pgportfolio.portfolios AS p WHERE p.portfolio_id = pg_temp.pid()
$$;

-- A flat object of p_keys keys whose values are p_chars copies of p_char.
CREATE FUNCTION pg_temp.tags(p_keys integer, p_chars integer, p_char text DEFAULT 'v') RETURNS jsonb
LANGUAGE sql IMMUTABLE AS $$
    SELECT jsonb_object_agg(format('k%s', lpad(k::text, 2, '0')), repeat(p_char, p_chars))
    FROM generate_series(1, p_keys) AS k
$$;

DO $$
BEGIN
    PERFORM set_config('test.pid', pgportfolio.create_portfolio('execution book', 100000)::text, true);
    -- an open position, so that every verb below would succeed but for its metadata
    PERFORM pgportfolio.apply_fill(pg_temp.pid(), 'EXE', 10, 10);
    PERFORM set_config('test.before', pg_temp.state(), true);
END
$$;

-- One valid call per function, each taking the metadata as %1$s, %2$s, %3$s (SQL text).
CREATE TEMP TABLE fill_calls (n integer PRIMARY KEY, fn text, call text);
INSERT INTO fill_calls VALUES
    (1, 'apply_fill', 'pgportfolio.apply_fill(pg_temp.pid(), ''EXE'', 1, 10'),
    (2, 'open_position', 'pgportfolio.open_position(pg_temp.pid(), ''NEW'', 1, 10'),
    (3, 'add_to_position', 'pgportfolio.add_to_position(pg_temp.pid(), ''EXE'', 1, 10'),
    (4, 'reduce_position', 'pgportfolio.reduce_position(pg_temp.pid(), ''EXE'', 1, 10'),
    (5, 'close_position', 'pgportfolio.close_position(pg_temp.pid(), ''EXE'', 10');

-- Each bad value, as SQL text, with the message it must give.
CREATE TEMP TABLE bad_metadata (n integer PRIMARY KEY, label text, executed_at text, order_id text, tags text, message text);
INSERT INTO bad_metadata VALUES
    (1, 'executed_at five minutes ahead', $$clock_timestamp() + interval '5 minutes'$$, 'NULL', 'NULL',
        'executed_at is in the future'),
    (2, 'executed_at infinity', $$'infinity'$$, 'NULL', 'NULL', 'executed_at must be a finite time'),
    (3, 'executed_at -infinity', $$'-infinity'$$, 'NULL', 'NULL', 'executed_at must be a finite time'),
    (4, 'an empty order id', 'NULL', $$''$$, 'NULL', 'invalid order id'),
    (5, 'a 201-character order id', 'NULL', $$repeat('o', 201)$$, 'NULL', 'invalid order id'),
    (6, 'an order id with a control character', 'NULL', $$E'ORD\n1'$$, 'NULL', 'invalid order id'),
    (7, 'an order id with U+202E', 'NULL', $$E'ORD\u202E1'$$, 'NULL', 'invalid order id'),
    (8, 'tags as an array', 'NULL', 'NULL', $$'["a"]'$$, 'tags must be a JSON object'),
    (9, 'tags as a string', 'NULL', 'NULL', $$'"a"'$$, 'tags must be a JSON object'),
    (10, 'tags as a number', 'NULL', 'NULL', $$'1'$$, 'tags must be a JSON object'),
    (11, 'tags as JSON null', 'NULL', 'NULL', $$'null'$$, 'tags must be a JSON object'),
    (12, '33 tags', 'NULL', 'NULL', 'pg_temp.tags(33, 1)', 'invalid tags'),
    (13, 'a 65-character tag key', 'NULL', 'NULL', $$jsonb_build_object(repeat('k', 65), 'v')$$, 'invalid tags'),
    (14, 'an empty tag key', 'NULL', 'NULL', $${"": "v"}$$, 'invalid tags'),
    (15, 'a 257-character tag value', 'NULL', 'NULL', $$jsonb_build_object('k', repeat('v', 257))$$, 'invalid tags'),
    (16, 'a number as a tag value', 'NULL', 'NULL', $${"venue": 1}$$, 'invalid tags'),
    (17, 'a nested object as a tag value', 'NULL', 'NULL', $${"venue": {"mic": "XCME"}}$$, 'invalid tags'),
    (18, 'tags of 4608 bytes in 2304 characters', 'NULL', 'NULL', $$pg_temp.tags(9, 256, 'é')$$, 'invalid tags'),
    (19, 'a tag value with a control character', 'NULL', 'NULL', $${"venue": "CM\u0007E"}$$, 'invalid tags'),
    (20, 'a tag key with U+202E', 'NULL', 'NULL', $${"ven\u202Eue": "CME"}$$, 'invalid tags'),
    (21, 'tags of 4097 bytes', 'NULL', 'NULL', $$pg_temp.tags(16, 245) || jsonb_build_object('k16', repeat('v', 246))$$,
        'invalid tags');
-- The JSON literals above are written bare; quote them as SQL.
UPDATE bad_metadata SET tags = quote_literal(tags) WHERE tags LIKE '{%';

SELECT throws_ok(
    format('SELECT %s, p_executed_at => %s, p_order_id => %s, p_tags => %s::jsonb)', f.call, b.executed_at, b.order_id,
        b.tags),
    '22023', b.message, format('%s: %s is 22023 %s', f.fn, b.label, b.message)
)
FROM fill_calls AS f CROSS JOIN bad_metadata AS b
ORDER BY f.n, b.n;

SELECT is(pg_temp.state(), current_setting('test.before'),
    'no refused call changed the version, the cash, the events or the positions');

SELECT is(
    pg_temp.error_parts($$SELECT pgportfolio.apply_fill(pg_temp.pid(), 'EXE', 1, 10, p_tags => '[1, 2]')$$),
    '22023 | tags must be a JSON object | Got a JSON array.',
    'a tags value of another JSON type names the type it got'
);
SELECT matches(
    pg_temp.error_parts(
        $$SELECT pgportfolio.apply_fill(pg_temp.pid(), 'EXE', 1, 10, p_executed_at => '2999-01-01 00:00:00+00')$$
    ),
    '^22023 \| executed_at is in the future \| Got 2999-01-01 00:00:00\+00; the latest accepted is [0-9: .+-]+ \(one minute after now\)\.$',
    'a future executed_at says what it got and the latest time accepted'
);
SELECT is(
    (SELECT count(*) FROM bad_metadata) * (SELECT count(*) FROM fill_calls),
    105::bigint,
    'every bad value was tried on every function'
);

-- ---------------------------------------------------------------- the limits are accepted
SELECT is(
    (octet_length(pg_temp.tags(16, 245)::text),
     octet_length((pg_temp.tags(16, 245) || jsonb_build_object('k16', repeat('v', 246)))::text)),
    (4096, 4097),
    'pg_temp.tags(16, 245) is 4096 bytes of JSON, one character more is 4097'
);
SELECT lives_ok(
    $$SELECT pgportfolio.apply_fill(pg_temp.pid(), 'EXE', 1, 10, p_request_id => 'limits',
        p_executed_at => clock_timestamp() + interval '50 seconds', p_order_id => repeat('o', 200),
        p_tags => pg_temp.tags(16, 245))$$,
    'the limits: executed_at 50 s ahead, a 200-character order id, tags of 4096 bytes'
);
SELECT lives_ok(
    $$SELECT pgportfolio.apply_fill(pg_temp.pid(), 'EXE', 1, 10, p_request_id => 'wide',
        p_executed_at => '1970-01-01 00:00:00+00', p_order_id => E'ORD-\u00e9-1',
        p_tags => pg_temp.tags(31, 1) || jsonb_build_object(repeat('k', 64), repeat('v', 256)))$$,
    'a time long past, a non-ASCII order id, 32 keys with a 64-character key and a 256-character value'
);
SELECT lives_ok(
    $$SELECT pgportfolio.apply_fill(pg_temp.pid(), 'EXE', 1, 10, p_request_id => 'empty-tags', p_tags => '{}')$$,
    'an empty tags object is accepted'
);
SELECT is(
    (SELECT (octet_length(tags::text), length(order_id), executed_at > created_at)
     FROM pgportfolio.events WHERE portfolio_id = pg_temp.pid() AND request_id = 'limits'),
    ROW(4096, 200, true),
    'the limit values are stored as given (executed_at ahead of the transaction time)'
);
SELECT is(
    (SELECT (tags, order_id, executed_at)
     FROM pgportfolio.events WHERE portfolio_id = pg_temp.pid() AND request_id = 'empty-tags'),
    ROW('{}'::jsonb, NULL::text, NULL::timestamptz),
    'an empty object is stored as given, the omitted metadata as NULL'
);

-- ---------------------------------------------------------------- identity
DO $$
BEGIN
    PERFORM pgportfolio.add_to_position(pg_temp.pid(), 'EXE', 2, 11, 0.5, 'exec-1', NULL,
        '2026-12-04 14:31:07.125+00', 'ORD-7731', '{"account": "FUT-1", "venue": "CME"}');
    PERFORM set_config('test.identity', pg_temp.state(), true);
END
$$;
SELECT is(
    (SELECT (portfolio_version, position_quantity, duplicate) FROM pgportfolio.add_to_position(pg_temp.pid(), 'EXE', 2, 11,
        0.5, 'exec-1', NULL, '2026-12-04 15:31:07.125+01', 'ORD-7731', '{"venue": "CME", "account": "FUT-1"}')),
    ROW(6::bigint, 15::numeric, true),
    'the same metadata, the time in another zone and the tags in another key order: a replay'
);
SELECT is(
    pg_temp.error_parts($$SELECT pgportfolio.add_to_position(pg_temp.pid(), 'EXE', 2, 11, 0.5, 'exec-1', NULL,
        '2026-12-04 14:31:07.126+00', 'ORD-7731', '{"account": "FUT-1", "venue": "CME"}')$$),
    format('PF005 | request id ''exec-1'' was already used with different arguments | portfolio %s version 6: first '
        '{"fee": 0.5, "tags": {"venue": "CME", "account": "FUT-1"}, "price": 11, "symbol": "EXE", "order_id": "ORD-7731", '
        '"quantity": 2, "operation": "add_to_position", "executed_at": "2026-12-04T14:31:07.125+00:00"}, now '
        '{"fee": 0.5, "tags": {"venue": "CME", "account": "FUT-1"}, "price": 11, "symbol": "EXE", "order_id": "ORD-7731", '
        '"quantity": 2, "operation": "add_to_position", "executed_at": "2026-12-04T14:31:07.126+00:00"}', pg_temp.pid()),
    'executed_at one millisecond later is PF005, the DETAIL shows both requests'
);
SELECT is(
    pg_temp.error_parts($$SELECT pgportfolio.add_to_position(pg_temp.pid(), 'EXE', 2, 11, 0.5, 'exec-1', NULL,
        '2026-12-04 14:31:07.125+00', 'ORD-7732', '{"account": "FUT-1", "venue": "CME"}')$$),
    format('PF005 | request id ''exec-1'' was already used with different arguments | portfolio %s version 6: first '
        '{"fee": 0.5, "tags": {"venue": "CME", "account": "FUT-1"}, "price": 11, "symbol": "EXE", "order_id": "ORD-7731", '
        '"quantity": 2, "operation": "add_to_position", "executed_at": "2026-12-04T14:31:07.125+00:00"}, now '
        '{"fee": 0.5, "tags": {"venue": "CME", "account": "FUT-1"}, "price": 11, "symbol": "EXE", "order_id": "ORD-7732", '
        '"quantity": 2, "operation": "add_to_position", "executed_at": "2026-12-04T14:31:07.125+00:00"}', pg_temp.pid()),
    'another order id is PF005'
);
SELECT is(
    pg_temp.error_parts($$SELECT pgportfolio.add_to_position(pg_temp.pid(), 'EXE', 2, 11, 0.5, 'exec-1', NULL,
        '2026-12-04 14:31:07.125+00', 'ORD-7731', '{"account": "FUT-2", "venue": "CME"}')$$),
    format('PF005 | request id ''exec-1'' was already used with different arguments | portfolio %s version 6: first '
        '{"fee": 0.5, "tags": {"venue": "CME", "account": "FUT-1"}, "price": 11, "symbol": "EXE", "order_id": "ORD-7731", '
        '"quantity": 2, "operation": "add_to_position", "executed_at": "2026-12-04T14:31:07.125+00:00"}, now '
        '{"fee": 0.5, "tags": {"venue": "CME", "account": "FUT-2"}, "price": 11, "symbol": "EXE", "order_id": "ORD-7731", '
        '"quantity": 2, "operation": "add_to_position", "executed_at": "2026-12-04T14:31:07.125+00:00"}', pg_temp.pid()),
    'another tag value is PF005'
);
SELECT throws_ok(
    $$SELECT pgportfolio.add_to_position(pg_temp.pid(), 'EXE', 2, 11, 0.5, 'exec-1', NULL,
        '2026-12-04 14:31:07.125+00', 'ORD-7731', '{"account": "FUT-1", "venue": "CME", "desk": "D"}')$$,
    'PF005', NULL, 'one tag more is PF005'
);
SELECT throws_ok(
    $$SELECT pgportfolio.add_to_position(pg_temp.pid(), 'EXE', 2, 11, 0.5, 'exec-1', NULL,
        NULL, 'ORD-7731', '{"account": "FUT-1", "venue": "CME"}')$$,
    'PF005', NULL, 'executed_at left out where the original had one is PF005'
);
SELECT throws_ok(
    $$SELECT pgportfolio.add_to_position(pg_temp.pid(), 'EXE', 2, 11, 0.5, 'exec-1', NULL,
        '2026-12-04 14:31:07.125+00', NULL, NULL)$$,
    'PF005', NULL, 'order id and tags left out where the original had them is PF005'
);
SELECT throws_ok(
    $$SELECT pgportfolio.apply_fill(pg_temp.pid(), 'EXE', 1, 10, 0, 'empty-tags', NULL, NULL, NULL, NULL)$$,
    'PF005', NULL, 'no tags where the original had an empty object is PF005'
);
SELECT throws_ok(
    format($$SELECT pgportfolio.apply_fill(pg_temp.pid(), 'EXE', 1, 10, 0, 'empty-tags', NULL, %L)$$,
        (SELECT created_at FROM pgportfolio.events WHERE portfolio_id = pg_temp.pid() AND request_id = 'empty-tags')),
    'PF005', NULL, 'an explicit executed_at equal to the original''s transaction time is not the omitted one: PF005'
);
SELECT is(pg_temp.state(), current_setting('test.identity'), 'the replay and the PF005 refusals changed nothing');
SELECT is(
    (SELECT (portfolio_version, duplicate) FROM pgportfolio.find_request(pg_temp.pid(), 'exec-1')),
    ROW(6::bigint, true),
    'find_request finds the request by its id alone'
);

-- ---------------------------------------------------------------- event_log
SELECT results_eq(
    $$SELECT request_id, operation, executed_at, order_id, tags, multiplier FROM pgportfolio.event_log
      WHERE portfolio_id = pg_temp.pid() AND request_id IN ('exec-1', 'wide') ORDER BY portfolio_version$$,
    $$VALUES
        ('wide'::text, 'apply_fill'::text, '1970-01-01 00:00:00+00'::timestamptz, E'ORD-\u00e9-1'::text,
         pg_temp.tags(31, 1) || jsonb_build_object(repeat('k', 64), repeat('v', 256)), 1::numeric),
        ('exec-1', 'add_to_position', '2026-12-04 14:31:07.125+00', 'ORD-7731',
         '{"account": "FUT-1", "venue": "CME"}', 1)$$,
    'event_log shows the executed_at, order id and tags a fill was sent with, and its multiplier'
);
SELECT is(
    (SELECT count(*) FROM pgportfolio.event_log AS l JOIN pgportfolio.events AS e USING (portfolio_id, portfolio_version)
     WHERE l.portfolio_id = pg_temp.pid() AND e.executed_at IS NULL AND e.symbol IS NOT NULL
       AND l.executed_at = l.created_at),
    (SELECT count(*) FROM pgportfolio.events WHERE portfolio_id = pg_temp.pid() AND executed_at IS NULL AND symbol IS NOT NULL),
    'a fill sent without executed_at shows its transaction time in event_log'
);
SELECT is(
    (SELECT count(*) FROM pgportfolio.events WHERE portfolio_id = pg_temp.pid() AND executed_at IS NULL AND symbol IS NOT NULL),
    2::bigint,
    'two fills here were sent without executed_at (the opening one and the empty-tags one)'
);
SELECT is(
    (SELECT (executed_at, order_id, tags, multiplier) FROM pgportfolio.event_log
     WHERE portfolio_id = pg_temp.pid() AND kind = 'create'),
    ROW(NULL::timestamptz, NULL::text, NULL::jsonb, NULL::numeric),
    'an event without a symbol has no executed_at, order id, tags or multiplier'
);
SELECT is(
    (SELECT count(*) FROM pgportfolio.verify_portfolio(pg_temp.pid()) WHERE NOT ok),
    0::bigint,
    'verify_portfolio is clean, the chain hash covering the metadata included'
);
-- The chain covers the metadata: an edit behind the functions' back shows.
ALTER TABLE pgportfolio.events DISABLE TRIGGER events_append_only;
UPDATE pgportfolio.events SET tags = '{"account": "FUT-9", "venue": "CME"}'
WHERE portfolio_id = pg_temp.pid() AND request_id = 'exec-1';
ALTER TABLE pgportfolio.events ENABLE ALWAYS TRIGGER events_append_only;
SELECT is(
    (SELECT array_agg(check_name ORDER BY check_name) FROM pgportfolio.verify_portfolio(pg_temp.pid()) WHERE NOT ok),
    ARRAY['event_hash_chain'],
    'a tag edited in place breaks the event chain, and nothing else'
);

SELECT * FROM finish();
ROLLBACK;
