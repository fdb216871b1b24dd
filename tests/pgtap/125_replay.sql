-- Idempotent requests (sql/125_replay.sql and the workers): a request id already in the
-- log returns the original result marked duplicate and changes nothing; the same id with
-- other arguments is PF005; p_expected_version is never part of the comparison.
BEGIN;
SELECT plan(50);

CREATE FUNCTION pg_temp.pid(p_name text) RETURNS bigint LANGUAGE sql STABLE
AS $$ SELECT current_setting('test.pid_' || p_name)::bigint $$;

-- Everything a replay must leave alone, as one comparable value.
CREATE FUNCTION pg_temp.state(p_portfolio_id bigint) RETURNS text LANGUAGE sql STABLE AS $$
    SELECT concat_ws(' / ',
        (SELECT format('v%s cash %s pnl %s', version::bigint, cash_balance::numeric, realized_pnl::numeric)
         FROM pgportfolio.portfolios WHERE portfolio_id = p_portfolio_id),
        (SELECT format('%s events', count(*)) FROM pgportfolio.events WHERE portfolio_id = p_portfolio_id),
        (SELECT string_agg(format('%s %s %s v%s', symbol::text, quantity::numeric, cost_basis::numeric, version::bigint), ', ' ORDER BY symbol::text)
         FROM pgportfolio.positions WHERE portfolio_id = p_portfolio_id)
    )
$$;

CREATE FUNCTION pg_temp.error_parts(p_sql text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    v_state text; v_message text; v_detail text; v_hint text;
BEGIN
    EXECUTE p_sql;
    RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_message = MESSAGE_TEXT,
        v_detail = PG_EXCEPTION_DETAIL, v_hint = PG_EXCEPTION_HINT;
    RETURN concat_ws(' | ', v_state, v_message, nullif(v_detail, ''), nullif(v_hint, ''));
END;
$$;

CREATE TEMP TABLE res (step text PRIMARY KEY, r pgportfolio.mutation_result NOT NULL);

DO $$
BEGIN
    PERFORM set_config('test.pid_a', pgportfolio.create_portfolio('idempotent book', 10000)::text, true);
    PERFORM set_config('test.pid_b', pgportfolio.create_portfolio('second book', 10000)::text, true);
END
$$;

-- ---------------------------------------------------------------- cash: same id, same arguments
INSERT INTO res SELECT 'dep1', r FROM pgportfolio.deposit_cash(pg_temp.pid('a'), 100, 'dep-1') AS r;
SELECT is(
    (SELECT r FROM res WHERE step = 'dep1'),
    ROW(pg_temp.pid('a'), 2, 10100, NULL, NULL, NULL, 0, false)::pgportfolio.mutation_result,
    'first deposit with request id dep-1 applies (duplicate = false)'
);
DO $$ BEGIN PERFORM set_config('test.state_a', pg_temp.state(pg_temp.pid('a')), true); END $$;
INSERT INTO res SELECT 'dep1-again', r FROM pgportfolio.deposit_cash(pg_temp.pid('a'), 100, 'dep-1') AS r;
SELECT is(
    (SELECT r FROM res WHERE step = 'dep1-again'),
    ROW(pg_temp.pid('a'), 2, 10100, NULL, NULL, NULL, 0, true)::pgportfolio.mutation_result,
    'repeating dep-1 with the same arguments returns the original result with duplicate = true'
);
SELECT is(pg_temp.state(pg_temp.pid('a')), current_setting('test.state_a'),
    'the repeated deposit changed nothing: version, cash, events');
SELECT is(
    (SELECT (duplicate, portfolio_version) FROM pgportfolio.deposit_cash(pg_temp.pid('a'), 100.00000000, 'dep-1')),
    ROW(true, 2::bigint),
    'an amount written with trailing zeros (100.00000000) is the same argument'
);
SELECT is(
    (SELECT (duplicate, portfolio_version, cash_balance) FROM pgportfolio.deposit_cash(pg_temp.pid('a'), 100, 'dep-1', 1)),
    ROW(true, 2::bigint, 10100::numeric),
    'a retry carrying the version it was first sent with (1, now stale) is still a duplicate, not PF001'
);
SELECT is(
    (SELECT duplicate FROM pgportfolio.deposit_cash(pg_temp.pid('a'), 100, 'dep-1', 999)),
    true,
    'a retry with any other expected version is still a duplicate'
);
SELECT is(pg_temp.state(pg_temp.pid('a')), current_setting('test.state_a'),
    'none of the retries changed anything');

-- ---------------------------------------------------------------- cash: same id, different arguments
SELECT throws_ok(
    $$SELECT pgportfolio.deposit_cash(pg_temp.pid('a'), 101, 'dep-1')$$,
    'PF005', NULL, 'dep-1 with a different amount is PF005'
);
SELECT throws_ok(
    $$SELECT pgportfolio.withdraw_cash(pg_temp.pid('a'), 100, 'dep-1')$$,
    'PF005', NULL, 'dep-1 reused by withdraw_cash with the same amount is PF005 (the operation differs)'
);
SELECT throws_ok(
    $$SELECT pgportfolio.charge_fee(pg_temp.pid('a'), 100, 'dep-1')$$,
    'PF005', NULL, 'dep-1 reused by charge_fee is PF005'
);
SELECT throws_ok(
    $$SELECT pgportfolio.apply_fill(pg_temp.pid('a'), 'AAA', 1, 100, 0, 'dep-1')$$,
    'PF005', NULL, 'a cash request id reused by a fill is PF005'
);
SELECT throws_ok(
    $$SELECT pgportfolio.deposit_cash(pg_temp.pid('a'), 101, 'dep-1', 2)$$,
    'PF005', NULL, 'different arguments are PF005 even with the right expected version'
);
SELECT is(pg_temp.state(pg_temp.pid('a')), current_setting('test.state_a'), 'the PF005 refusals changed nothing');

-- ---------------------------------------------------------------- request ids are per portfolio
SELECT is(
    (SELECT (duplicate, portfolio_version, cash_balance) FROM pgportfolio.deposit_cash(pg_temp.pid('b'), 100, 'dep-1')),
    ROW(false, 2::bigint, 10100::numeric),
    'the same request id on another portfolio is a new request'
);
SELECT is(
    (SELECT (duplicate, portfolio_version) FROM pgportfolio.deposit_cash(pg_temp.pid('b'), 5)),
    ROW(false, 3::bigint),
    'a deposit without a request id always applies'
);
SELECT is(
    (SELECT (duplicate, portfolio_version) FROM pgportfolio.deposit_cash(pg_temp.pid('b'), 5)),
    ROW(false, 4::bigint),
    'a second identical deposit without a request id applies again (NULL ids never match)'
);
SELECT is(
    (SELECT (duplicate, portfolio_version) FROM pgportfolio.deposit_cash(pg_temp.pid('b'), 5, 'DEP-1')),
    ROW(false, 5::bigint),
    'request ids are case sensitive: DEP-1 is not dep-1'
);

-- ---------------------------------------------------------------- withdraw and fee replay
INSERT INTO res SELECT 'wd', r FROM pgportfolio.withdraw_cash(pg_temp.pid('a'), 40, 'wd-1') AS r;
INSERT INTO res SELECT 'fee', r FROM pgportfolio.charge_fee(pg_temp.pid('a'), 2.5, 'fee-1') AS r;
SELECT is(
    (SELECT r FROM pgportfolio.withdraw_cash(pg_temp.pid('a'), 40, 'wd-1') AS r),
    (SELECT ROW((r).portfolio_id, (r).portfolio_version, (r).cash_balance, (r).symbol, (r).position_quantity,
            (r).position_avg_price, (r).realized_pnl, true)::pgportfolio.mutation_result FROM res WHERE step = 'wd'),
    'a withdraw replay returns the original result (version 3, cash 10060), not the current cash'
);
SELECT is(
    (SELECT r FROM pgportfolio.charge_fee(pg_temp.pid('a'), 2.5, 'fee-1') AS r),
    ROW(pg_temp.pid('a'), 4, 10057.5, NULL, NULL, NULL, -2.5, true)::pgportfolio.mutation_result,
    'a fee replay returns the original realized P&L of -2.5'
);

-- ---------------------------------------------------------------- fills
INSERT INTO res SELECT 'f1', r FROM pgportfolio.apply_fill(pg_temp.pid('a'), 'AAA', 10, 100, 1, 'fill-1') AS r;
SELECT is(
    (SELECT r FROM res WHERE step = 'f1'),
    ROW(pg_temp.pid('a'), 5, 9056.5, 'AAA', 10, 100, -1, false)::pgportfolio.mutation_result,
    'fill-1 applies: buy 10 AAA @ 100 fee 1'
);
INSERT INTO res SELECT 'f2', r FROM pgportfolio.apply_fill(pg_temp.pid('a'), 'AAA', -4, 130, 0, 'fill-2') AS r;
DO $$ BEGIN PERFORM set_config('test.state_a', pg_temp.state(pg_temp.pid('a')), true); END $$;
SELECT is(
    (SELECT r FROM pgportfolio.apply_fill(pg_temp.pid('a'), 'AAA', 10, 100, 1, 'fill-1') AS r),
    ROW(pg_temp.pid('a'), 5, 9056.5, 'AAA', 10, 100, -1, true)::pgportfolio.mutation_result,
    'replaying fill-1 after fill-2 returns fill-1''s own result (quantity 10), not the current position (6)'
);
SELECT is(
    (SELECT r FROM pgportfolio.apply_fill(pg_temp.pid('a'), 'AAA', -4, 130, 0, 'fill-2', 1) AS r),
    ROW(pg_temp.pid('a'), 6, 9576.5, 'AAA', 6, 100, 120, true)::pgportfolio.mutation_result,
    'replaying fill-2 with a stale expected version returns its result (realized 120), not PF001'
);
SELECT is(pg_temp.state(pg_temp.pid('a')), current_setting('test.state_a'), 'fill replays changed nothing');
SELECT is(
    (SELECT duplicate FROM pgportfolio.apply_fill(pg_temp.pid('a'), 'AAA', 10.0, 100.00, 1.000, 'fill-1')),
    true,
    'numerically equal arguments (10.0, 100.00, 1.000) are the same arguments'
);
SELECT throws_ok(
    $$SELECT pgportfolio.apply_fill(pg_temp.pid('a'), 'AAA', 10, 100.01, 1, 'fill-1')$$,
    'PF005', NULL, 'fill-1 with another price is PF005'
);
SELECT throws_ok(
    $$SELECT pgportfolio.apply_fill(pg_temp.pid('a'), 'AAA', 11, 100, 1, 'fill-1')$$,
    'PF005', NULL, 'fill-1 with another quantity is PF005'
);
SELECT throws_ok(
    $$SELECT pgportfolio.apply_fill(pg_temp.pid('a'), 'AAA', -10, 100, 1, 'fill-1')$$,
    'PF005', NULL, 'fill-1 with the opposite side is PF005'
);
SELECT throws_ok(
    $$SELECT pgportfolio.apply_fill(pg_temp.pid('a'), 'BBB', 10, 100, 1, 'fill-1')$$,
    'PF005', NULL, 'fill-1 with another symbol is PF005'
);
SELECT throws_ok(
    $$SELECT pgportfolio.apply_fill(pg_temp.pid('a'), 'AAA', 10, 100, 0, 'fill-1')$$,
    'PF005', NULL, 'fill-1 with another fee (0, the default) is PF005'
);
SELECT throws_ok(
    $$SELECT pgportfolio.open_position(pg_temp.pid('a'), 'AAA', 10, 100, 1, 'fill-1')$$,
    'PF005', NULL, 'fill-1 through another verb (open_position) is PF005'
);
SELECT throws_ok(
    $$SELECT pgportfolio.deposit_cash(pg_temp.pid('a'), 10, 'fill-1')$$,
    'PF005', NULL, 'a fill request id reused by a deposit is PF005'
);
SELECT is(pg_temp.state(pg_temp.pid('a')), current_setting('test.state_a'), 'fill PF005 refusals changed nothing');

-- A replay is answered before the verb's own checks, so a retry never turns into PF006/PF003.
INSERT INTO res SELECT 'open', r FROM pgportfolio.open_position(pg_temp.pid('a'), 'OPN', 2, 50, 0, 'open-1') AS r;
SELECT is(
    (SELECT (duplicate, position_quantity) FROM pgportfolio.open_position(pg_temp.pid('a'), 'OPN', 2, 50, 0, 'open-1')),
    ROW(true, 2::numeric),
    'retrying open-1 while the position is open is a duplicate, not PF006'
);
INSERT INTO res SELECT 'close', r FROM pgportfolio.close_position(pg_temp.pid('a'), 'OPN', 55, 0, 'close-1') AS r;
SELECT is(
    (SELECT r FROM pgportfolio.close_position(pg_temp.pid('a'), 'OPN', 55, 0, 'close-1') AS r),
    ROW(pg_temp.pid('a'), 8, (SELECT (r).cash_balance FROM res WHERE step = 'close'), 'OPN', 0, NULL, 10, true)::pgportfolio.mutation_result,
    'retrying close-1 after the position is gone is a duplicate with quantity 0 and avg NULL, not PF003'
);
SELECT throws_ok(
    $$SELECT pgportfolio.close_position(pg_temp.pid('a'), 'OPN', 56, 0, 'close-1')$$,
    'PF005', NULL, 'close-1 at another price is PF005'
);
INSERT INTO res SELECT 'red', r FROM pgportfolio.reduce_position(pg_temp.pid('a'), 'AAA', 6, 90, 0, 'reduce-1') AS r;
SELECT is(
    (SELECT (duplicate, position_quantity, realized_pnl) FROM pgportfolio.reduce_position(pg_temp.pid('a'), 'AAA', 6, 90, 0, 'reduce-1')),
    ROW(true, 0::numeric, -60::numeric),
    'retrying reduce-1 (which closed AAA) is a duplicate, not PF003'
);
SELECT throws_ok(
    $$SELECT pgportfolio.add_to_position(pg_temp.pid('a'), 'OPN', 2, 50, 0, 'open-1')$$,
    'PF005', NULL, 'open-1 reused by add_to_position on a closed symbol is PF005 (the replay check comes before PF003)'
);

-- ---------------------------------------------------------------- the log
SELECT is(
    (SELECT array_agg(request_id ORDER BY portfolio_version) FROM pgportfolio.events WHERE portfolio_id = pg_temp.pid('a')),
    ARRAY[NULL, 'dep-1', 'wd-1', 'fee-1', 'fill-1', 'fill-2', 'open-1', 'close-1', 'reduce-1'],
    'each request id appears once in the log, on the event it produced'
);
-- The request is the event's own typed columns (no JSON copy): what a replay compares.
SELECT is(
    (SELECT (operation, symbol::text, quantity::numeric, price::numeric, fee::numeric, amount::numeric) FROM pgportfolio.events
     WHERE portfolio_id = pg_temp.pid('a') AND request_id = 'fill-1'),
    ROW('apply_fill'::text, 'AAA'::text, 10::numeric, 100::numeric, 1::numeric, NULL::numeric),
    'a fill''s request is its logged operation, symbol, quantity, price and fee (no expected version)'
);
SELECT is(
    (SELECT (operation, symbol::text, quantity::numeric, price::numeric, fee::numeric, amount::numeric) FROM pgportfolio.events
     WHERE portfolio_id = pg_temp.pid('a') AND request_id = 'close-1'),
    ROW('close_position'::text, 'OPN'::text, -2::numeric, 55::numeric, 0::numeric, NULL::numeric),
    'close_position logs the fill it made (-2); its request had no quantity'
);
SELECT is(
    (SELECT (operation, symbol::text, quantity::numeric, price::numeric, fee::numeric, amount::numeric) FROM pgportfolio.events
     WHERE portfolio_id = pg_temp.pid('a') AND request_id = 'dep-1'),
    ROW('deposit_cash'::text, NULL::text, NULL::numeric, NULL::numeric, 0::numeric, 100::numeric),
    'a cash request is its logged operation and amount'
);
SELECT is(
    pg_temp.error_parts($$SELECT pgportfolio.close_position(pg_temp.pid('a'), 'OPN', 56, 0, 'close-1')$$),
    format('PF005 | request id ''close-1'' was already used with different arguments | portfolio %s version 8: first %s, now %s | Use a new request id for a new operation.',
        pg_temp.pid('a'),
        '{"fee": 0, "price": 55, "symbol": "OPN", "quantity": null, "operation": "close_position"}',
        '{"fee": 0, "price": 56, "symbol": "OPN", "quantity": null, "operation": "close_position"}'),
    'PF005''s DETAIL shows both requests as _request_args reads them (close_position: quantity null)'
);
SELECT is(
    pg_temp.error_parts($$SELECT pgportfolio.withdraw_cash(pg_temp.pid('a'), 100, 'dep-1')$$),
    format('PF005 | request id ''dep-1'' was already used with different arguments | portfolio %s version 2: first %s, now %s | Use a new request id for a new operation.',
        pg_temp.pid('a'), '{"amount": 100, "operation": "deposit_cash"}', '{"amount": 100, "operation": "withdraw_cash"}'),
    'PF005''s DETAIL for a cash request shows operation and amount'
);
SELECT is(
    pgportfolio._request_args('reduce_position', 'AAA', 6, 90, 0, NULL, NULL, NULL, NULL),
    '{"operation": "reduce_position", "symbol": "AAA", "quantity": 6, "price": 90, "fee": 0}'::jsonb,
    '_request_args reads a verb''s request as its caller wrote it (reduce: positive quantity)'
);
SELECT is(
    (SELECT version::bigint FROM pgportfolio.portfolios WHERE portfolio_id = pg_temp.pid('a')),
    9::bigint,
    'only the first use of each request id bumped the version'
);
SELECT is(
    (SELECT count(*) FROM pgportfolio.verify_portfolio(pg_temp.pid('a')) WHERE NOT ok),
    0::bigint,
    'verify_portfolio finds nothing wrong after the replays'
);

-- ---------------------------------------------------------------- request id checks
SELECT is(
    (SELECT duplicate FROM pgportfolio.deposit_cash(pg_temp.pid('b'), 1, repeat('x', 200))),
    false,
    'a 200-character request id is accepted'
);
SELECT is(
    (SELECT duplicate FROM pgportfolio.deposit_cash(pg_temp.pid('b'), 1, repeat('x', 200))),
    true,
    'and replays like any other'
);
SELECT throws_ok(
    $$SELECT pgportfolio.deposit_cash(pg_temp.pid('b'), 1, repeat('x', 201))$$,
    '22023', NULL, 'a 201-character request id is 22023'
);

-- PF005's DETAIL shows executed_at in the session's TimeZone, so _request_args must not be
-- folded to a constant when a statement is planned: a plan kept across a change of
-- TimeZone would go on showing the old zone.
SET LOCAL plan_cache_mode = force_generic_plan;
SET LOCAL TimeZone = 'UTC';
PREPARE request_args_at AS
SELECT pgportfolio._request_args('apply_fill', 'AAA', 1, 1, 0, NULL, '2026-01-01 00:00+00', NULL, NULL)->>'executed_at';
CREATE TEMP TABLE request_args_utc AS EXECUTE request_args_at;
SET LOCAL TimeZone = 'Asia/Tokyo';
CREATE TEMP TABLE request_args_tokyo AS EXECUTE request_args_at;
SELECT is(
    ARRAY[(SELECT * FROM request_args_utc), (SELECT * FROM request_args_tokyo)],
    ARRAY['2026-01-01T00:00:00+00:00', '2026-01-01T09:00:00+09:00'],
    '_request_args reads executed_at in the TimeZone of the moment it runs (STABLE, not IMMUTABLE)'
);
DEALLOCATE request_args_at;

SELECT * FROM finish();
ROLLBACK;
