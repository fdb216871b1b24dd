BEGIN;
SELECT plan(16);

CREATE ROLE pgtap_batch_a IN ROLE pgportfolio_trader;
CREATE ROLE pgtap_batch_b IN ROLE pgportfolio_trader;
SET LOCAL ROLE pgtap_batch_a;
SELECT set_config('test.a', pgportfolio.create_portfolio('batch a', 1000)::text, true);
RESET ROLE;
SET LOCAL ROLE pgtap_batch_b;
SELECT set_config('test.b', pgportfolio.create_portfolio('batch b', 1000)::text, true);
RESET ROLE;

SET LOCAL ROLE pgtap_batch_a;
CREATE TEMP TABLE batch_result AS
SELECT * FROM pgportfolio.apply_fills(jsonb_build_array(
    jsonb_build_object('portfolio_id', current_setting('test.a')::bigint, 'symbol', 'AAA', 'quantity', 10, 'price', 10),
    jsonb_build_object('portfolio_id', current_setting('test.b')::bigint, 'symbol', 'AAA', 'quantity', 1, 'price', 1),
    jsonb_build_object('portfolio_id', current_setting('test.a')::bigint, 'symbol', 'AAA', 'quantity', -4, 'price', 12),
    jsonb_build_object('portfolio_id', current_setting('test.a')::bigint, 'symbol', 'BBB', 'quantity', 1, 'price', 5000)
));
RESET ROLE;

SELECT results_eq(
    'SELECT item, sqlstate FROM batch_result ORDER BY item',
    $$VALUES (1, NULL::text), (2, '42501'), (3, NULL), (4, 'PF002')$$,
    'one row per element, in input order, with its own SQLSTATE'
);
SELECT results_eq(
    'SELECT portfolio_version, position_quantity, realized_pnl FROM batch_result WHERE sqlstate IS NULL ORDER BY item',
    $$VALUES (2::bigint, 10::numeric, 0::numeric), (3, 6, 8)$$,
    'accepted fills carry their own version, position and realized P&L'
);
SELECT is(
    (SELECT version FROM pgportfolio.portfolio_summary WHERE portfolio_id = current_setting('test.b')::bigint),
    1::bigint,
    'the refused element changed nothing in the other trader''s portfolio'
);
SELECT is(
    (SELECT count(*) FROM pgportfolio.event_log WHERE portfolio_id = current_setting('test.a')::bigint),
    3::bigint,
    'the refusals did not undo the accepted fills'
);
SELECT ok(
    NOT EXISTS (SELECT FROM pgportfolio.verify_portfolio(current_setting('test.a')::bigint) WHERE NOT ok),
    'the batched portfolio verifies'
);
SELECT is(
    (SELECT operation FROM pgportfolio.event_log WHERE portfolio_id = current_setting('test.a')::bigint
     AND portfolio_version = 2),
    'apply_fill',
    'batched fills are logged as apply_fill, so request ids replay across both'
);
SELECT throws_ok(
    $$SELECT * FROM pgportfolio.apply_fills('{"portfolio_id": 1}')$$, '22023', NULL,
    'a batch that is not an array is invalid input'
);
SELECT is_empty($$SELECT * FROM pgportfolio.apply_fills('[]')$$, 'an empty batch returns nothing');

-- update_market_prices: all or nothing.
SELECT is(
    pgportfolio.update_market_prices('[{"symbol": "AAA", "price": "11"}, {"symbol": "CCC", "price": "2.50"}]'),
    2,
    'update_market_prices reports the symbols written'
);
SELECT throws_ok(
    $$SELECT pgportfolio.update_market_prices('[{"symbol": "AAA", "price": "12"}, {"symbol": "ccc", "price": "1"}]')$$,
    '22023', NULL,
    'one bad tick refuses the whole call'
);
SELECT is(
    (SELECT mark_price FROM pgportfolio.position_pnl
     WHERE portfolio_id = current_setting('test.a')::bigint AND symbol = 'AAA'),
    11::numeric,
    'and nothing of it was written'
);

SELECT function_privs_are('pgportfolio', 'apply_fills', ARRAY['jsonb'], 'pgportfolio_trader', ARRAY['EXECUTE'],
    'traders may call apply_fills');
SELECT function_privs_are('pgportfolio', 'apply_fills', ARRAY['jsonb'], 'pgportfolio_analyst', ARRAY[]::text[],
    'analysts may not call apply_fills');
SELECT function_privs_are('pgportfolio', 'update_market_prices', ARRAY['jsonb'], 'public', ARRAY[]::text[],
    'PUBLIC may not call update_market_prices');
SELECT is_definer('pgportfolio', 'apply_fills', ARRAY['jsonb'], 'apply_fills is SECURITY DEFINER');
SELECT is_definer('pgportfolio', 'update_market_prices', ARRAY['jsonb'], 'update_market_prices is SECURITY DEFINER');

SELECT * FROM finish();
ROLLBACK;
