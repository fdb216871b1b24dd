-- Execution metadata in batches (sql/145_apply_fills.sql over sql/128_operations.sql):
-- in apply_fills_arrays and apply_fills every bad executed_at, order_id or tags refuses its
-- own element with 22023 and the single functions' message, and the elements around it
-- still apply; a cash element carrying any metadata is 22023; a request's metadata is part
-- of its identity across batches and within one.
BEGIN;
SELECT plan(15);
SET LOCAL TimeZone = 'UTC';

CREATE FUNCTION pg_temp.pid() RETURNS bigint LANGUAGE sql STABLE
AS $$ SELECT current_setting('test.pid')::bigint $$;

CREATE FUNCTION pg_temp.state() RETURNS text LANGUAGE sql STABLE AS $$
    SELECT format('v%s cash %s events %s positions %s', p.version, p.cash_balance,
        (SELECT count(*) FROM pgportfolio.events AS e WHERE e.portfolio_id = p.portfolio_id),
        (SELECT string_agg(format('%s %s %s', q.symbol::text, q.quantity::numeric, q.cost_basis::numeric), ', ' ORDER BY q.symbol::text)
         FROM pgportfolio.positions AS q WHERE q.portfolio_id = p.portfolio_id))
    FROM pgportfolio.portfolios AS p WHERE p.portfolio_id = pg_temp.pid()
$$;

CREATE FUNCTION pg_temp.tags(p_keys integer, p_chars integer, p_char text DEFAULT 'v') RETURNS jsonb
LANGUAGE sql IMMUTABLE AS $$
    SELECT jsonb_object_agg(format('k%s', lpad(k::text, 2, '0')), repeat(p_char, p_chars))
    FROM generate_series(1, p_keys) AS k
$$;

DO $$
BEGIN
    PERFORM set_config('test.pid', pgportfolio.create_portfolio('batch execution book', 100000)::text, true);
END
$$;

-- Element 1 and the last element are good; those between carry one bad value each.
CREATE TEMP TABLE elements (item integer PRIMARY KEY, executed_at timestamptz, order_id text, tags jsonb, message text);
INSERT INTO elements VALUES
    (1, '2026-12-01 09:30:00+00', 'GOOD-1', '{"account": "A"}', NULL),
    (2, clock_timestamp() + interval '5 minutes', NULL, NULL, 'executed_at is in the future'),
    (3, 'infinity', NULL, NULL, 'executed_at must be a finite time'),
    (4, '-infinity', NULL, NULL, 'executed_at must be a finite time'),
    (5, NULL, '', NULL, 'invalid order id'),
    (6, NULL, repeat('o', 201), NULL, 'invalid order id'),
    (7, NULL, E'ORD\n1', NULL, 'invalid order id'),
    (8, NULL, E'ORD\u202E1', NULL, 'invalid order id'),
    (9, NULL, NULL, '["a"]', 'tags must be a JSON object'),
    (10, NULL, NULL, '"a"', 'tags must be a JSON object'),
    (11, NULL, NULL, '1', 'tags must be a JSON object'),
    (12, NULL, NULL, pg_temp.tags(33, 1), 'invalid tags'),
    (13, NULL, NULL, jsonb_build_object(repeat('k', 65), 'v'), 'invalid tags'),
    (14, NULL, NULL, jsonb_build_object('k', repeat('v', 257)), 'invalid tags'),
    (15, NULL, NULL, '{"venue": 1}', 'invalid tags'),
    (16, NULL, NULL, '{"venue": {"mic": "XCME"}}', 'invalid tags'),
    (17, NULL, NULL, pg_temp.tags(9, 256, 'é'), 'invalid tags'),
    (18, NULL, NULL, '{"venue": "CM\u0007E"}', 'invalid tags'),
    (19, NULL, NULL, '{"": "v"}', 'invalid tags'),
    (20, '2026-12-01 09:31:00+00', 'GOOD-2', NULL, NULL);

CREATE TEMP TABLE arrays_result AS
SELECT * FROM pgportfolio.apply_fills_arrays(
    (SELECT array_agg(pg_temp.pid() ORDER BY item) FROM elements),
    (SELECT array_agg('EXE'::text ORDER BY item) FROM elements),
    (SELECT array_agg(1::numeric ORDER BY item) FROM elements),
    (SELECT array_agg(10::numeric ORDER BY item) FROM elements),
    p_executed_ats => (SELECT array_agg(executed_at ORDER BY item) FROM elements),
    p_order_ids => (SELECT array_agg(order_id ORDER BY item) FROM elements),
    p_tags => (SELECT array_agg(tags ORDER BY item) FROM elements)
);
SELECT results_eq(
    'SELECT item::integer, sqlstate, message FROM arrays_result ORDER BY item',
    $$SELECT item, CASE WHEN message IS NOT NULL THEN '22023' END, message FROM elements ORDER BY item$$,
    'apply_fills_arrays: each bad value refuses its own element with 22023 and its message'
);
SELECT is(
    (SELECT array_agg(portfolio_version ORDER BY item) FILTER (WHERE sqlstate IS NULL) FROM arrays_result),
    ARRAY[2, 3]::bigint[],
    'apply_fills_arrays: the good elements around them apply'
);
SELECT results_eq(
    $$SELECT executed_at, order_id, tags FROM pgportfolio.event_log WHERE portfolio_id = pg_temp.pid() AND kind <> 'create'
      ORDER BY portfolio_version$$,
    $$SELECT executed_at, order_id, tags FROM elements WHERE message IS NULL ORDER BY item$$,
    'apply_fills_arrays: only the good elements are logged, with their metadata'
);
DO $$ BEGIN PERFORM set_config('test.after_arrays', pg_temp.state(), true); END $$;

-- The JSON form, with the same elements (a JSON null for tags is left out: see below).
CREATE TEMP TABLE json_result AS
SELECT * FROM pgportfolio.apply_fills((
    SELECT jsonb_agg(jsonb_strip_nulls(jsonb_build_object(
        'portfolio_id', pg_temp.pid(), 'symbol', 'EXE', 'quantity', 1, 'price', 10,
        'executed_at', executed_at, 'order_id', order_id, 'tags', tags
    )) ORDER BY item)
    FROM elements
));
SELECT results_eq(
    'SELECT item::integer, sqlstate, message FROM json_result ORDER BY item',
    $$SELECT item, CASE WHEN message IS NOT NULL THEN '22023' END, message FROM elements ORDER BY item$$,
    'apply_fills: each bad value refuses its own element with 22023 and its message'
);
SELECT is(
    pg_temp.state(),
    regexp_replace(
        regexp_replace(current_setting('test.after_arrays'), '^v3 cash 99980 events 3', 'v5 cash 99960 events 5'),
        'EXE 2 20', 'EXE 4 40'
    ),
    'apply_fills: the two good elements applied and nothing else'
);
SELECT is(
    (SELECT array_agg(executed_at ORDER BY portfolio_version) FROM pgportfolio.event_log
     WHERE portfolio_id = pg_temp.pid() AND portfolio_version IN (4, 5)),
    ARRAY['2026-12-01 09:30:00+00', '2026-12-01 09:31:00+00']::timestamptz[],
    'apply_fills: executed_at given as JSON text is stored as the time it names'
);
CREATE TEMP TABLE json_null_result AS
SELECT * FROM pgportfolio.apply_fills(jsonb_build_array(jsonb_build_object(
    'portfolio_id', pg_temp.pid(), 'symbol', 'EXE', 'quantity', 1, 'price', 10, 'request_id', 'json-null', 'tags', NULL::jsonb
)));
SELECT is(
    (SELECT (r.sqlstate, r.duplicate, e.tags) FROM json_null_result AS r
     JOIN pgportfolio.events AS e ON e.portfolio_id = r.portfolio_id AND e.portfolio_version = r.portfolio_version),
    ROW(NULL::text, false, NULL::jsonb),
    'apply_fills: "tags": null is no tags (the JSON form cannot tell them apart)'
);

-- ---------------------------------------------------------------- cash elements take no metadata
DO $$ BEGIN PERFORM set_config('test.before_cash', pg_temp.state(), true); END $$;
SELECT results_eq(
    $$SELECT sqlstate, message FROM pgportfolio.apply_fills_arrays(
        ARRAY[pg_temp.pid(), pg_temp.pid(), pg_temp.pid()], NULL, NULL, NULL,
        p_operations => ARRAY['deposit_cash', 'withdraw_cash', 'charge_fee'], p_amounts => ARRAY[1, 1, 1]::numeric[],
        p_executed_ats => ARRAY['2026-12-01 09:30:00+00', NULL, NULL]::timestamptz[],
        p_order_ids => ARRAY[NULL, 'ORD-1', NULL], p_tags => ARRAY[NULL, NULL, '{"a": "b"}']::jsonb[]
    ) ORDER BY item$$,
    $$VALUES
        ('22023'::text, 'a deposit_cash element takes no symbol, quantity, price, fee, executed_at, order_id or tags'::text),
        ('22023', 'a withdraw_cash element takes no symbol, quantity, price, fee, executed_at, order_id or tags'),
        ('22023', 'a charge_fee element takes no symbol, quantity, price, fee, executed_at, order_id or tags')$$,
    'apply_fills_arrays: a cash element with an executed_at, an order id or tags is 22023'
);
SELECT results_eq(
    $$SELECT sqlstate, message FROM pgportfolio.apply_fills(jsonb_build_array(
        jsonb_build_object('portfolio_id', pg_temp.pid(), 'operation', 'deposit_cash', 'amount', 1,
            'executed_at', '2026-12-01T09:30:00Z'),
        jsonb_build_object('portfolio_id', pg_temp.pid(), 'operation', 'withdraw_cash', 'amount', 1, 'order_id', 'O'),
        jsonb_build_object('portfolio_id', pg_temp.pid(), 'operation', 'charge_fee', 'amount', 1, 'tags', '{}'::jsonb)
    )) ORDER BY item$$,
    $$VALUES
        ('22023'::text, 'a deposit_cash element takes no symbol, quantity, price, fee, executed_at, order_id or tags'::text),
        ('22023', 'a withdraw_cash element takes no symbol, quantity, price, fee, executed_at, order_id or tags'),
        ('22023', 'a charge_fee element takes no symbol, quantity, price, fee, executed_at, order_id or tags')$$,
    'apply_fills: a cash element with an executed_at, an order id or even empty tags is 22023'
);
SELECT is(pg_temp.state(), current_setting('test.before_cash'), 'the refused cash elements changed nothing');

-- ---------------------------------------------------------------- identity
CREATE TEMP TABLE identity_result AS
SELECT * FROM pgportfolio.apply_fills_arrays(
    ARRAY[pg_temp.pid(), pg_temp.pid(), pg_temp.pid(), pg_temp.pid()], ARRAY['EXE', 'EXE', 'EXE', 'EXE'],
    ARRAY[1, 1, 1, 1]::numeric[], ARRAY[10, 10, 10, 10]::numeric[],
    p_request_ids => ARRAY['b-1', 'b-1', 'b-1', 'b-1'],
    p_executed_ats => ARRAY[
        '2026-12-01 09:30:00+00', '2026-12-01 10:30:00+01', '2026-12-01 09:30:00+00', '2026-12-01 09:30:00+00'
    ]::timestamptz[],
    p_order_ids => ARRAY['O-1', 'O-1', 'O-1', 'O-2'],
    p_tags => ARRAY['{"a": "1", "b": "2"}', '{"b": "2", "a": "1"}', '{"a": "1"}', '{"a": "1", "b": "2"}']::jsonb[]
);
SELECT results_eq(
    'SELECT item::integer, portfolio_version, duplicate, sqlstate FROM identity_result ORDER BY item',
    $$VALUES (1, 7::bigint, false, NULL::text), (2, 7, true, NULL), (3, NULL, false, 'PF005'), (4, NULL, false, 'PF005')$$,
    'one request id four times in a batch: applied, a replay (same instant, tags in another order), PF005, PF005'
);
SELECT is(
    (SELECT detail FROM identity_result WHERE item = 3),
    format('portfolio %s version 7: first {"fee": 0, "tags": {"a": "1", "b": "2"}, "price": 10, "symbol": "EXE", '
        '"order_id": "O-1", "quantity": 1, "operation": "apply_fill", "executed_at": "2026-12-01T09:30:00+00:00"}, '
        'now {"fee": 0, "tags": {"a": "1"}, "price": 10, "symbol": "EXE", "order_id": "O-1", "quantity": 1, '
        '"operation": "apply_fill", "executed_at": "2026-12-01T09:30:00+00:00"}', pg_temp.pid()),
    'the PF005 in a batch shows both requests, metadata included'
);
SELECT results_eq(
    $$SELECT duplicate, sqlstate FROM pgportfolio.apply_fills(jsonb_build_array(
        jsonb_build_object('portfolio_id', pg_temp.pid(), 'symbol', 'EXE', 'quantity', 1, 'price', 10, 'request_id', 'b-1',
            'executed_at', '2026-12-01T04:30:00-05:00', 'order_id', 'O-1', 'tags', '{"b": "2", "a": "1"}'::jsonb),
        jsonb_build_object('portfolio_id', pg_temp.pid(), 'symbol', 'EXE', 'quantity', 1, 'price', 10, 'request_id', 'b-1',
            'order_id', 'O-1', 'tags', '{"b": "2", "a": "1"}'::jsonb)
    )) ORDER BY item$$,
    $$VALUES (true, NULL::text), (false, 'PF005')$$,
    'in a later JSON batch: the same metadata is a replay, the same without executed_at is PF005'
);
SELECT is(
    (SELECT count(*) FROM pgportfolio.events WHERE portfolio_id = pg_temp.pid() AND request_id = 'b-1'),
    1::bigint,
    'the request was applied once'
);
SELECT is(
    (SELECT count(*) FROM pgportfolio.verify_portfolio(pg_temp.pid()) WHERE NOT ok),
    0::bigint,
    'verify_portfolio is clean'
);

SELECT * FROM finish();
ROLLBACK;
