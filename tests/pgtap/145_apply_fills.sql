-- apply_fills (sql/145_apply_fills.sql): a batch of fills across portfolios, one result row each.
BEGIN;
SELECT plan(24);

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

-- Cash moves in a batch: the semantics, events and request ids of the single calls.
SET LOCAL ROLE pgtap_batch_a;
SELECT pgportfolio.deposit_cash(current_setting('test.a')::bigint, 7, 'cash-once');
CREATE TEMP TABLE cash_result AS
SELECT * FROM pgportfolio.apply_fills(jsonb_build_array(
    jsonb_build_object('portfolio_id', current_setting('test.a')::bigint, 'operation', 'deposit_cash', 'amount', '100.50'),
    jsonb_build_object('portfolio_id', current_setting('test.a')::bigint, 'operation', 'withdraw_cash', 'amount', 1000000),
    jsonb_build_object('portfolio_id', current_setting('test.a')::bigint, 'operation', 'charge_fee', 'amount', 2.5),
    jsonb_build_object('portfolio_id', current_setting('test.a')::bigint, 'operation', 'deposit_cash', 'amount', 7,
        'request_id', 'cash-once'),
    jsonb_build_object('portfolio_id', current_setting('test.a')::bigint, 'operation', 'withdraw_cash', 'amount', 7,
        'request_id', 'cash-once'),
    jsonb_build_object('portfolio_id', current_setting('test.a')::bigint, 'operation', 'deposit_cash', 'amount', 1,
        'symbol', 'AAA'),
    jsonb_build_object('portfolio_id', current_setting('test.a')::bigint, 'operation', 'transfer', 'amount', 1),
    jsonb_build_object('portfolio_id', current_setting('test.a')::bigint, 'operation', 'deposit_cash', 'amount', 0),
    jsonb_build_object('portfolio_id', current_setting('test.a')::bigint, 'symbol', 'AAA', 'quantity', 1,
        'price', 1, 'amount', 1)
));
RESET ROLE;
SELECT results_eq(
    'SELECT item, sqlstate, duplicate FROM cash_result ORDER BY item',
    $$VALUES (1, NULL::text, false), (2, 'PF002', false), (3, NULL, false), (4, NULL, true), (5, 'PF005', false),
             (6, '22023', false), (7, '22023', false), (8, '22023', false), (9, '22023', false)$$,
    'cash elements: applied, refused for cash, replayed, PF005 for a reused id, 22023 for malformed ones'
);
SELECT results_eq(
    $$SELECT message FROM cash_result WHERE item IN (6, 7, 8, 9) ORDER BY item$$,
    $$VALUES ('a deposit_cash element takes no symbol, quantity, price or fee'::text), ('unknown operation ''transfer'''),
             ('amount must be positive'), ('a fill takes no amount')$$,
    'each malformed element says what is wrong with it'
);
SELECT results_eq(
    $$SELECT kind, operation, amount, cash_delta, fee, realized_pnl FROM pgportfolio.event_log
      WHERE portfolio_id = current_setting('test.a')::bigint AND kind IN ('deposit', 'withdraw', 'fee')
      ORDER BY portfolio_version$$,
    $$VALUES ('deposit'::text, 'deposit_cash'::text, 7::numeric, 7::numeric, 0::numeric, 0::numeric),
             ('deposit', 'deposit_cash', 100.5, 100.5, 0, 0),
             ('fee', 'charge_fee', 2.5, -2.5, 2.5, -2.5)$$,
    'batched cash moves are logged exactly as deposit_cash and charge_fee log them'
);
SELECT results_eq(
    'SELECT cash_balance FROM cash_result WHERE item = 3',
    $$SELECT cash_balance FROM pgportfolio.portfolio_summary WHERE portfolio_id = current_setting('test.a')::bigint$$,
    'the last applied element carries the portfolio''s cash'
);
SELECT is(
    (SELECT realized_pnl FROM cash_result WHERE item = 3),
    -2.5::numeric,
    'a fee in a batch reports realized P&L of -amount, as charge_fee does'
);
SELECT ok(
    NOT EXISTS (SELECT FROM pgportfolio.verify_portfolio(current_setting('test.a')::bigint) WHERE NOT ok),
    'the portfolio still verifies after batched cash moves'
);
SET LOCAL ROLE pgtap_batch_a;
SELECT pgportfolio.withdraw_cash(current_setting('test.a')::bigint, 1, 'cash-batch');
SELECT is(
    (SELECT duplicate FROM pgportfolio.apply_fills(jsonb_build_array(jsonb_build_object(
         'portfolio_id', current_setting('test.a')::bigint, 'operation', 'withdraw_cash', 'amount', 1,
         'request_id', 'cash-batch')))),
    true,
    'a request id applied by withdraw_cash replays in a batch'
);
SELECT throws_ok(
    $$SELECT pgportfolio.deposit_cash(current_setting('test.a')::bigint, 5, 'cash-once')$$, 'PF005', NULL,
    'a batch and the single calls share request ids (same id, other amount: PF005)'
);
RESET ROLE;

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
