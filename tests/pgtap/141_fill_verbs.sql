-- The checked fill verbs (sql/141_fill_verbs.sql): open_position, add_to_position,
-- reduce_position, close_position, and the shared input checks of every fill entry point.
BEGIN;
SELECT plan(94);

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

CREATE FUNCTION pg_temp.version() RETURNS bigint LANGUAGE sql STABLE
AS $$ SELECT version::bigint FROM pgportfolio.portfolios WHERE portfolio_id = pg_temp.pid() $$;

DO $$
BEGIN
    PERFORM set_config('test.pid', pgportfolio.create_portfolio('verbs book', 100000)::text, true);
END
$$;

-- ---------------------------------------------------------------- open_position
SELECT is(
    (SELECT (portfolio_version, cash_balance, symbol, position_quantity, position_avg_price, realized_pnl, duplicate)
     FROM pgportfolio.open_position(pg_temp.pid(), 'LONG', 10, 20, 0.5)),
    ROW(2::bigint, 99799.5::numeric, 'LONG'::text, 10::numeric, 20::numeric, -0.5::numeric, false),
    'open_position long 10 @ 20 fee 0.5'
);
SELECT is(
    (SELECT (kind::text, operation, quantity::numeric) FROM pgportfolio.events WHERE portfolio_id = pg_temp.pid() AND portfolio_version = 2),
    ROW('open'::text, 'open_position'::text, 10::numeric),
    'open_position logs kind open, operation open_position'
);
SELECT is(
    (SELECT (position_quantity, position_avg_price, cash_balance) FROM pgportfolio.open_position(pg_temp.pid(), 'SHORT', -4, 25)),
    ROW(-4::numeric, 25::numeric, 99899.5::numeric),
    'open_position with a negative quantity opens a short and credits the proceeds'
);
SELECT throws_ok(
    $$SELECT pgportfolio.open_position(pg_temp.pid(), 'LONG', 1, 20)$$,
    'PF006', NULL, 'open_position on an open long is PF006 position already open'
);
SELECT throws_ok(
    $$SELECT pgportfolio.open_position(pg_temp.pid(), 'SHORT', -1, 20)$$,
    'PF006', NULL, 'open_position on an open short is PF006, even on the same side'
);
SELECT throws_ok(
    $$SELECT pgportfolio.open_position(pg_temp.pid(), 'LONG', -20, 20)$$,
    'PF006', NULL, 'open_position never flips: the opposite side is PF006 as well'
);
SELECT is(
    pg_temp.error_parts($$SELECT pgportfolio.open_position(pg_temp.pid(), 'LONG', 1, 20)$$),
    'PF006 | a position in LONG is already open in portfolio ' || pg_temp.pid() || ' | Open quantity is 10.',
    'PF006 names the symbol and portfolio, DETAIL gives the open quantity'
);
SELECT is(pg_temp.version(), 3::bigint, 'the PF006 refusals did not bump the version');
SELECT throws_ok(
    $$SELECT pgportfolio.open_position(pg_temp.pid(), 'ZERO', 0, 20)$$,
    '22023', NULL, 'open_position with quantity 0 is 22023'
);

-- ---------------------------------------------------------------- add_to_position
SELECT is(
    (SELECT (position_quantity, position_avg_price, realized_pnl) FROM pgportfolio.add_to_position(pg_temp.pid(), 'LONG', 10, 30)),
    ROW(20::numeric, 25::numeric, 0::numeric),
    'add_to_position 10 @ 30 to a long of 10 @ 20: quantity 20, avg 25'
);
SELECT is(
    (SELECT (kind::text, operation) FROM pgportfolio.events WHERE portfolio_id = pg_temp.pid() AND portfolio_version = 4),
    ROW('add'::text, 'add_to_position'::text),
    'add_to_position logs kind add, operation add_to_position'
);
SELECT is(
    (SELECT (position_quantity, position_avg_price) FROM pgportfolio.add_to_position(pg_temp.pid(), 'SHORT', -6, 30)),
    ROW(-10::numeric, 28::numeric),
    'add_to_position with a negative quantity adds to a short: -10 at avg 28'
);
SELECT throws_ok(
    $$SELECT pgportfolio.add_to_position(pg_temp.pid(), 'NONE', 1, 10)$$,
    'PF003', NULL, 'add_to_position with no open position is PF003'
);
SELECT throws_ok(
    $$SELECT pgportfolio.add_to_position(pg_temp.pid(), 'LONG', -1, 10)$$,
    '22023', NULL, 'add_to_position on the wrong side of a long is 22023 (use reduce_position)'
);
SELECT throws_ok(
    $$SELECT pgportfolio.add_to_position(pg_temp.pid(), 'SHORT', 1, 10)$$,
    '22023', NULL, 'add_to_position on the wrong side of a short is 22023'
);
SELECT is(
    pg_temp.error_parts($$SELECT pgportfolio.add_to_position(pg_temp.pid(), 'LONG', -1, 10)$$),
    '22023 | add_to_position must be on the side of the open position | Open quantity is 20, quantity is -1.',
    'the wrong-side refusal explains itself'
);
SELECT throws_ok(
    $$SELECT pgportfolio.add_to_position(pg_temp.pid(), 'LONG', 0, 10)$$,
    '22023', NULL, 'add_to_position with quantity 0 is 22023'
);
SELECT is(pg_temp.version(), 5::bigint, 'the refused adds did not bump the version');

-- ---------------------------------------------------------------- reduce_position
SELECT is(
    (SELECT (position_quantity, position_avg_price, realized_pnl, cash_balance)
     FROM pgportfolio.reduce_position(pg_temp.pid(), 'LONG', 5, 40, 1)),
    ROW(15::numeric, 25::numeric, 74::numeric, 99978.5::numeric),
    'reduce_position 5 @ 40 fee 1 of a long at avg 25: realized 5 * 15 - 1 = 74'
);
SELECT is(
    (SELECT (kind::text, operation, quantity::numeric) FROM pgportfolio.events WHERE portfolio_id = pg_temp.pid() AND portfolio_version = 6),
    ROW('reduce'::text, 'reduce_position'::text, -5::numeric),
    'reduce_position on a long logs a sell (-5)'
);
SELECT is(
    (SELECT (position_quantity, position_avg_price, realized_pnl) FROM pgportfolio.reduce_position(pg_temp.pid(), 'SHORT', 4, 20)),
    ROW(-6::numeric, 28::numeric, 32::numeric),
    'reduce_position 4 @ 20 of a short at avg 28: buys 4 back, realized 4 * 8 = 32'
);
SELECT is(
    (SELECT quantity::numeric FROM pgportfolio.events WHERE portfolio_id = pg_temp.pid() AND portfolio_version = 7),
    4::numeric,
    'reduce_position on a short logs a buy (+4)'
);
SELECT throws_ok(
    $$SELECT pgportfolio.reduce_position(pg_temp.pid(), 'LONG', 15.00000001, 40)$$,
    'PF003', NULL, 'reducing by more than is held is PF003 (never flips)'
);
SELECT throws_ok(
    $$SELECT pgportfolio.reduce_position(pg_temp.pid(), 'SHORT', 7, 40)$$,
    'PF003', NULL, 'reducing a short by more than is held is PF003'
);
SELECT throws_ok(
    $$SELECT pgportfolio.reduce_position(pg_temp.pid(), 'NONE', 1, 40)$$,
    'PF003', NULL, 'reducing a position that is not open is PF003'
);
SELECT is(
    pg_temp.error_parts($$SELECT pgportfolio.reduce_position(pg_temp.pid(), 'LONG', 16, 40)$$),
    'PF003 | not enough LONG in portfolio ' || pg_temp.pid() || ' to reduce by 16 | Open quantity is 15.',
    'PF003 from reduce_position says how much is open'
);
SELECT throws_ok(
    $$SELECT pgportfolio.reduce_position(pg_temp.pid(), 'LONG', -1, 40)$$,
    '22023', NULL, 'reduce_position takes a positive quantity: -1 is 22023'
);
SELECT throws_ok(
    $$SELECT pgportfolio.reduce_position(pg_temp.pid(), 'LONG', 0, 40)$$,
    '22023', NULL, 'reduce_position by 0 is 22023'
);
SELECT is(pg_temp.version(), 7::bigint, 'the refused reductions did not bump the version');
SELECT is(
    (SELECT (position_quantity, position_avg_price, realized_pnl) FROM pgportfolio.reduce_position(pg_temp.pid(), 'SHORT', 6, 30)),
    ROW(0::numeric, NULL::numeric, -12::numeric),
    'reducing a short by all of it closes it: realized (28 - 30) * 6 = -12'
);
SELECT is(
    (SELECT (kind::text, operation) FROM pgportfolio.events WHERE portfolio_id = pg_temp.pid() AND portfolio_version = 8),
    ROW('close'::text, 'reduce_position'::text),
    'reduce_position by the whole quantity logs kind close'
);

-- ---------------------------------------------------------------- close_position
SELECT is(
    (SELECT (position_quantity, position_avg_price, realized_pnl, symbol)
     FROM pgportfolio.close_position(pg_temp.pid(), 'LONG', 30, 2)),
    ROW(0::numeric, NULL::numeric, 73::numeric, 'LONG'::text),
    'close_position of 15 @ avg 25 at 30 fee 2: realized 75 - 2, quantity 0, avg NULL'
);
SELECT is(
    (SELECT (kind::text, operation, quantity::numeric, position_quantity::numeric) FROM pgportfolio.events
     WHERE portfolio_id = pg_temp.pid() AND portfolio_version = pg_temp.version()),
    ROW('close'::text, 'close_position'::text, -15::numeric, 0::numeric),
    'close_position logs kind close with the whole quantity sold'
);
SELECT is_empty(
    $$SELECT 1 FROM pgportfolio.positions WHERE portfolio_id = pg_temp.pid() AND symbol = 'LONG'$$,
    'close_position deletes the position'
);
SELECT throws_ok(
    $$SELECT pgportfolio.close_position(pg_temp.pid(), 'LONG', 30)$$,
    'PF003', NULL, 'closing an already closed position is PF003'
);
SELECT throws_ok(
    $$SELECT pgportfolio.close_position(pg_temp.pid(), 'NEVER', 30)$$,
    'PF003', NULL, 'closing a position that never existed is PF003'
);
SELECT is(
    pg_temp.error_parts($$SELECT pgportfolio.close_position(pg_temp.pid(), 'NEVER', 30)$$),
    'PF003 | no NEVER position in portfolio ' || pg_temp.pid(),
    'PF003 from close_position names the symbol and portfolio'
);

-- reopen after close: a fresh row, version 1, realized from the new open only
SELECT is(
    (SELECT (position_quantity, realized_pnl) FROM pgportfolio.open_position(pg_temp.pid(), 'LONG', 1, 10)),
    ROW(1::numeric, 0::numeric),
    'a closed symbol can be opened again with open_position'
);
SELECT is(
    (SELECT (version::bigint, realized_pnl::numeric) FROM pgportfolio.positions WHERE portfolio_id = pg_temp.pid() AND symbol = 'LONG'),
    ROW(1::bigint, 0::numeric),
    'the reopened position starts again at version 1 with no realized P&L'
);

-- apply_fill is the only verb that flips
SELECT is(
    (SELECT (position_quantity, position_avg_price) FROM pgportfolio.apply_fill(pg_temp.pid(), 'LONG', -3, 12)),
    ROW(-2::numeric, 12::numeric),
    'apply_fill flips long 1 to short -2'
);
SELECT is(
    (SELECT operation FROM pgportfolio.events WHERE portfolio_id = pg_temp.pid() AND portfolio_version = pg_temp.version()),
    'apply_fill',
    'the flip is logged with operation apply_fill'
);

-- ---------------------------------------------------------------- shared input checks of every fill entry point
-- symbol
SELECT throws_ok($$SELECT pgportfolio.apply_fill(pg_temp.pid(), '', 1, 1)$$, '22023', NULL, 'apply_fill: empty symbol is 22023');
SELECT throws_ok($$SELECT pgportfolio.apply_fill(pg_temp.pid(), 'long', 1, 1)$$, '22023', NULL, 'apply_fill: lower-case symbol is 22023');
SELECT throws_ok($$SELECT pgportfolio.apply_fill(pg_temp.pid(), repeat('A', 33), 1, 1)$$, '22023', NULL, 'apply_fill: 33-character symbol is 22023');
SELECT throws_ok($$SELECT pgportfolio.apply_fill(pg_temp.pid(), 'O''NEIL', 1, 1)$$, '22023', NULL, 'apply_fill: symbol with a quote is 22023');
SELECT throws_ok($$SELECT pgportfolio.apply_fill(pg_temp.pid(), NULL, 1, 1)$$, '22023', NULL, 'apply_fill: NULL symbol is 22023');
SELECT throws_ok($$SELECT pgportfolio.open_position(pg_temp.pid(), 'aapl', 1, 1)$$, '22023', NULL, 'open_position: lower-case symbol is 22023');
SELECT throws_ok($$SELECT pgportfolio.add_to_position(pg_temp.pid(), '', 1, 1)$$, '22023', NULL, 'add_to_position: empty symbol is 22023');
SELECT throws_ok($$SELECT pgportfolio.reduce_position(pg_temp.pid(), repeat('A', 33), 1, 1)$$, '22023', NULL, 'reduce_position: 33-character symbol is 22023');
SELECT throws_ok($$SELECT pgportfolio.close_position(pg_temp.pid(), 'A''B', 1)$$, '22023', NULL, 'close_position: symbol with a quote is 22023');
SELECT throws_ok($$SELECT pgportfolio.close_position(pg_temp.pid(), NULL, 1)$$, '22023', NULL, 'close_position: NULL symbol is 22023');
-- quantity
SELECT throws_ok($$SELECT pgportfolio.apply_fill(pg_temp.pid(), 'Q', 'NaN', 1)$$, '22023', NULL, 'apply_fill: NaN quantity is 22023');
SELECT throws_ok($$SELECT pgportfolio.apply_fill(pg_temp.pid(), 'Q', 'Infinity', 1)$$, '22023', NULL, 'apply_fill: Infinity quantity is 22023');
SELECT throws_ok($$SELECT pgportfolio.apply_fill(pg_temp.pid(), 'Q', '-Infinity', 1)$$, '22023', NULL, 'apply_fill: -Infinity quantity is 22023');
SELECT throws_ok($$SELECT pgportfolio.apply_fill(pg_temp.pid(), 'Q', 0, 1)$$, '22023', NULL, 'apply_fill: zero quantity is 22023');
SELECT throws_ok($$SELECT pgportfolio.apply_fill(pg_temp.pid(), 'Q', 1.123456789, 1)$$, '22023', NULL, 'apply_fill: 9-place quantity is 22023');
SELECT throws_ok($$SELECT pgportfolio.apply_fill(pg_temp.pid(), 'Q', 1e15, 1)$$, '22023', NULL, 'apply_fill: quantity 1e15 is 22023');
SELECT throws_ok($$SELECT pgportfolio.apply_fill(pg_temp.pid(), 'Q', -1e15, 1)$$, '22023', NULL, 'apply_fill: quantity -1e15 is 22023');
SELECT throws_ok($$SELECT pgportfolio.apply_fill(pg_temp.pid(), 'Q', NULL, 1)$$, '22023', NULL, 'apply_fill: NULL quantity is 22023');
SELECT throws_ok($$SELECT pgportfolio.open_position(pg_temp.pid(), 'Q', 'NaN', 1)$$, '22023', NULL, 'open_position: NaN quantity is 22023');
SELECT throws_ok($$SELECT pgportfolio.add_to_position(pg_temp.pid(), 'LONG', 'Infinity', 1)$$, '22023', NULL, 'add_to_position: Infinity quantity is 22023');
SELECT throws_ok($$SELECT pgportfolio.reduce_position(pg_temp.pid(), 'LONG', 'NaN', 1)$$, '22023', NULL, 'reduce_position: NaN quantity is 22023');
SELECT throws_ok($$SELECT pgportfolio.reduce_position(pg_temp.pid(), 'LONG', NULL, 1)$$, '22023', NULL, 'reduce_position: NULL quantity is 22023');
SELECT throws_ok($$SELECT pgportfolio.reduce_position(pg_temp.pid(), 'LONG', 0.000000001, 1)$$, '22023', NULL, 'reduce_position: 9-place quantity is 22023');
-- price
SELECT throws_ok($$SELECT pgportfolio.apply_fill(pg_temp.pid(), 'P', 1, 'NaN')$$, '22023', NULL, 'apply_fill: NaN price is 22023');
SELECT throws_ok($$SELECT pgportfolio.apply_fill(pg_temp.pid(), 'P', 1, 'Infinity')$$, '22023', NULL, 'apply_fill: Infinity price is 22023');
SELECT throws_ok($$SELECT pgportfolio.apply_fill(pg_temp.pid(), 'P', 1, '-Infinity')$$, '22023', NULL, 'apply_fill: -Infinity price is 22023');
SELECT throws_ok($$SELECT pgportfolio.apply_fill(pg_temp.pid(), 'P', 1, 0)$$, '22023', NULL, 'apply_fill: zero price is 22023');
SELECT throws_ok($$SELECT pgportfolio.apply_fill(pg_temp.pid(), 'P', 1, -1)$$, '22023', NULL, 'apply_fill: negative price is 22023');
SELECT throws_ok($$SELECT pgportfolio.apply_fill(pg_temp.pid(), 'P', 1, 1.123456789)$$, '22023', NULL, 'apply_fill: 9-place price is 22023');
SELECT throws_ok($$SELECT pgportfolio.apply_fill(pg_temp.pid(), 'P', 1, 1e15)$$, '22023', NULL, 'apply_fill: price 1e15 is 22023');
SELECT throws_ok($$SELECT pgportfolio.apply_fill(pg_temp.pid(), 'P', 1, NULL)$$, '22023', NULL, 'apply_fill: NULL price is 22023');
SELECT throws_ok($$SELECT pgportfolio.close_position(pg_temp.pid(), 'LONG', 0)$$, '22023', NULL, 'close_position: zero price is 22023');
SELECT throws_ok($$SELECT pgportfolio.close_position(pg_temp.pid(), 'LONG', 'NaN')$$, '22023', NULL, 'close_position: NaN price is 22023');
SELECT throws_ok($$SELECT pgportfolio.close_position(pg_temp.pid(), 'LONG', NULL)$$, '22023', NULL, 'close_position: NULL price is 22023');
-- fee
SELECT throws_ok($$SELECT pgportfolio.apply_fill(pg_temp.pid(), 'F', 1, 1, -0.01)$$, '22023', NULL, 'apply_fill: negative fee is 22023');
SELECT throws_ok($$SELECT pgportfolio.apply_fill(pg_temp.pid(), 'F', 1, 1, 'NaN')$$, '22023', NULL, 'apply_fill: NaN fee is 22023');
SELECT throws_ok($$SELECT pgportfolio.apply_fill(pg_temp.pid(), 'F', 1, 1, 'Infinity')$$, '22023', NULL, 'apply_fill: Infinity fee is 22023');
SELECT throws_ok($$SELECT pgportfolio.apply_fill(pg_temp.pid(), 'F', 1, 1, 1.123456789)$$, '22023', NULL, 'apply_fill: 9-place fee is 22023');
SELECT throws_ok($$SELECT pgportfolio.apply_fill(pg_temp.pid(), 'F', 1, 1, 1e15)$$, '22023', NULL, 'apply_fill: fee 1e15 is 22023');
SELECT throws_ok($$SELECT pgportfolio.apply_fill(pg_temp.pid(), 'F', 1, 1, NULL)$$, '22023', NULL, 'apply_fill: an explicit NULL fee is 22023');
SELECT throws_ok($$SELECT pgportfolio.close_position(pg_temp.pid(), 'LONG', 1, -1)$$, '22023', NULL, 'close_position: negative fee is 22023');
-- request id and expected version
SELECT throws_ok($$SELECT pgportfolio.apply_fill(pg_temp.pid(), 'R', 1, 1, 0, '')$$, '22023', NULL, 'apply_fill: empty request id is 22023');
SELECT throws_ok($$SELECT pgportfolio.open_position(pg_temp.pid(), 'R', 1, 1, 0, repeat('r', 201))$$, '22023', NULL, 'open_position: 201-character request id is 22023');
SELECT throws_ok($$SELECT pgportfolio.close_position(pg_temp.pid(), 'LONG', 1, 0, NULL, 0)$$, '22023', NULL, 'close_position: expected version 0 is 22023');
SELECT throws_ok($$SELECT pgportfolio.reduce_position(pg_temp.pid(), 'LONG', 1, 1, 0, NULL, -3)$$, '22023', NULL, 'reduce_position: negative expected version is 22023');
-- portfolio
SELECT throws_ok($$SELECT pgportfolio.apply_fill(NULL, 'P', 1, 1)$$, '22023', NULL, 'apply_fill: NULL portfolio id is 22023');
SELECT throws_ok($$SELECT pgportfolio.apply_fill(-1, 'P', 1, 1)$$, 'PF004', NULL, 'apply_fill: unknown portfolio is PF004');
SELECT throws_ok($$SELECT pgportfolio.open_position(-1, 'P', 1, 1)$$, 'PF004', NULL, 'open_position: unknown portfolio is PF004');
SELECT throws_ok($$SELECT pgportfolio.add_to_position(-1, 'P', 1, 1)$$, 'PF004', NULL, 'add_to_position: unknown portfolio is PF004');
SELECT throws_ok($$SELECT pgportfolio.reduce_position(-1, 'P', 1, 1)$$, 'PF004', NULL, 'reduce_position: unknown portfolio is PF004');
SELECT throws_ok($$SELECT pgportfolio.close_position(-1, 'P', 1)$$, 'PF004', NULL, 'close_position: unknown portfolio is PF004');

SELECT is(
    (SELECT count(*) FROM pgportfolio.events WHERE portfolio_id = pg_temp.pid()),
    pg_temp.version(),
    'no refused call wrote an event: one event per version'
);
SELECT is(
    (SELECT count(*) FROM pgportfolio.verify_portfolio(pg_temp.pid()) WHERE NOT ok),
    0::bigint,
    'verify_portfolio finds nothing wrong after the verbs'
);

SELECT * FROM finish();
ROLLBACK;
