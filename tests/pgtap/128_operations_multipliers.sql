-- Fill arithmetic with a contract multiplier (sql/128_operations.sql): a fill's notional
-- is quantity * price * multiplier. Open, add, reduce, flip and close on a multiplier-50
-- symbol with exact cash, cost basis, realized P&L and average price (per unit of price, so
-- comparable with fill prices), in the mutation result and in find_request's stored one;
-- a position keeps the multiplier it opened with; after a close the instrument may change
-- and a reopening fill uses the new multiplier; verify_portfolio is clean throughout.
BEGIN;
SELECT plan(30);

CREATE FUNCTION pg_temp.pid() RETURNS bigint LANGUAGE sql STABLE
AS $$ SELECT current_setting('test.pid')::bigint $$;

CREATE FUNCTION pg_temp.failed_checks() RETURNS text[] LANGUAGE sql STABLE AS $$
    SELECT coalesce(array_agg(check_name ORDER BY check_name), '{}') FROM pgportfolio.verify_portfolio(pg_temp.pid())
    WHERE NOT ok
$$;

CREATE TEMP TABLE res (step text PRIMARY KEY, r pgportfolio.mutation_result NOT NULL);

SELECT pgportfolio.upsert_instrument('ES:2027H', 50, 'E-mini S&P 500, March 2027');
DO $$
BEGIN
    PERFORM set_config('test.pid', pgportfolio.create_portfolio('futures book', 1000000)::text, true);
END
$$;

-- ---------------------------------------------------------------- open, add
INSERT INTO res SELECT 'open', f FROM pgportfolio.apply_fill(pg_temp.pid(), 'ES:2027H', 2, 6000, 4, 'm-open') AS f;
SELECT is(
    (SELECT r FROM res WHERE step = 'open'),
    ROW(pg_temp.pid(), 2, 399996, 'ES:2027H', 2, 6000, -4, false)::pgportfolio.mutation_result,
    'open 2 @ 6000 x50 fee 4: cash 1000000 - 600000 - 4, avg price 6000 (not 300000), realized -4'
);
SELECT is(
    (SELECT (quantity::numeric, cost_basis::numeric, realized_pnl::numeric, multiplier::numeric) FROM pgportfolio.positions
     WHERE portfolio_id = pg_temp.pid() AND symbol = 'ES:2027H'),
    ROW(2::numeric, 600000::numeric, -4::numeric, 50::numeric),
    'the position holds cost basis 600000 (2 x 6000 x 50) and multiplier 50'
);
SELECT is(
    (SELECT (kind::text, quantity::numeric, price::numeric, cash_delta::numeric, realized_pnl::numeric, position_cost_basis::numeric, multiplier::numeric)
     FROM pgportfolio.events WHERE portfolio_id = pg_temp.pid() AND request_id = 'm-open'),
    ROW('open'::text, 2::numeric, 6000::numeric, -600004::numeric, -4::numeric, 600000::numeric, 50::numeric),
    'the event records the fill at its price, the cash flow of its notional and multiplier 50'
);

INSERT INTO res SELECT 'add', f FROM pgportfolio.apply_fill(pg_temp.pid(), 'ES:2027H', 1, 6030, 2, 'm-add') AS f;
SELECT is(
    (SELECT r FROM res WHERE step = 'add'),
    ROW(pg_temp.pid(), 3, 98494, 'ES:2027H', 3, 6010, -2, false)::pgportfolio.mutation_result,
    'add 1 @ 6030 fee 2: cash - 301502, avg (600000 + 301500) / (3 x 50) = 6010'
);

-- ---------------------------------------------------------------- reduce, flip, close
INSERT INTO res SELECT 'reduce', f FROM pgportfolio.apply_fill(pg_temp.pid(), 'ES:2027H', -1, 6100, 2, 'm-reduce') AS f;
SELECT is(
    (SELECT r FROM res WHERE step = 'reduce'),
    ROW(pg_temp.pid(), 4, 403492, 'ES:2027H', 2, 6010, 4498, false)::pgportfolio.mutation_result,
    'reduce by 1 @ 6100 fee 2: cash + 305000 - 2, realized 305000 - 901500 / 3 - 2 = 4498, avg stays 6010'
);
SELECT is(
    (SELECT (quantity::numeric, cost_basis::numeric) FROM pgportfolio.positions WHERE portfolio_id = pg_temp.pid() AND symbol = 'ES:2027H'),
    ROW(2::numeric, 601000::numeric),
    'reduce: the cost basis loses its third'
);

INSERT INTO res SELECT 'flip', f FROM pgportfolio.apply_fill(pg_temp.pid(), 'ES:2027H', -5, 6050, 3, 'm-flip') AS f;
SELECT is(
    (SELECT r FROM res WHERE step = 'flip'),
    ROW(pg_temp.pid(), 5, 1915989, 'ES:2027H', -3, 6050, 3997, false)::pgportfolio.mutation_result,
    'flip with -5 @ 6050 fee 3: cash + 1512500 - 3, realized (6050 - 6010) x 2 x 50 - 3 = 3997, short 3 at avg 6050'
);
SELECT is(
    (SELECT (e.kind::text, p.quantity::numeric, p.cost_basis::numeric, p.multiplier::numeric) FROM pgportfolio.events AS e
     JOIN pgportfolio.positions AS p USING (portfolio_id, symbol)
     WHERE e.portfolio_id = pg_temp.pid() AND e.request_id = 'm-flip'),
    ROW('flip'::text, -3::numeric, -907500::numeric, 50::numeric),
    'flip: the remainder opens at the fill price, cost basis -3 x 6050 x 50'
);

INSERT INTO res SELECT 'close', f FROM pgportfolio.close_position(pg_temp.pid(), 'ES:2027H', 6000, 1, 'm-close') AS f;
SELECT is(
    (SELECT r FROM res WHERE step = 'close'),
    ROW(pg_temp.pid(), 6, 1015988, 'ES:2027H', 0, NULL, 7499, false)::pgportfolio.mutation_result,
    'close_position @ 6000 fee 1: buys 3 back for 900000 + 1, realized 50 x 3 x 50 - 1 = 7499'
);
SELECT is(
    (SELECT (cash_balance::numeric, realized_pnl::numeric) FROM pgportfolio.portfolios WHERE portfolio_id = pg_temp.pid()),
    ROW(1015988::numeric, 15988::numeric),
    'flat again: cash = initial + realized (-4 - 2 + 4498 + 3997 + 7499 = 15988)'
);
SELECT is_empty(
    $$SELECT 1 FROM pgportfolio.positions WHERE portfolio_id = pg_temp.pid() AND symbol = 'ES:2027H'$$,
    'close: the position row is gone'
);
SELECT results_eq(
    $$SELECT (f).* FROM res AS r
      CROSS JOIN LATERAL pgportfolio.find_request(pg_temp.pid(), 'm-' || r.step) AS f
      ORDER BY (r.r).portfolio_version$$,
    $$SELECT (r).portfolio_id, (r).portfolio_version, (r).cash_balance, (r).symbol, (r).position_quantity,
             (r).position_avg_price, (r).realized_pnl, true FROM res ORDER BY (r).portfolio_version$$,
    'find_request returns each stored result with the same average price per unit of price'
);
SELECT results_eq(
    $$SELECT duplicate, position_avg_price, cash_balance
      FROM pgportfolio.apply_fill(pg_temp.pid(), 'ES:2027H', 1, 6030, 2, 'm-add')$$,
    $$VALUES (true, 6010::numeric, 98494::numeric)$$,
    'a replay returns the stored result'
);
SELECT results_eq(
    $$SELECT multiplier FROM pgportfolio.event_log WHERE portfolio_id = pg_temp.pid() AND symbol IS NOT NULL
      ORDER BY portfolio_version$$,
    $$VALUES (50::numeric), (50), (50), (50), (50)$$,
    'every event of the symbol shows multiplier 50 in event_log'
);
SELECT is(pg_temp.failed_checks(), '{}'::text[], 'verify_portfolio is clean after the round trip');

-- ---------------------------------------------------------------- after a close the instrument may change
SELECT lives_ok($$SELECT pgportfolio.upsert_instrument('ES:2027H', 5, 'Micro E-mini now')$$,
    'flat everywhere, the multiplier may change');
INSERT INTO res SELECT 'reopen', f FROM pgportfolio.apply_fill(pg_temp.pid(), 'ES:2027H', -2, 6000, 0, 'm-reopen') AS f;
SELECT is(
    (SELECT r FROM res WHERE step = 'reopen'),
    ROW(pg_temp.pid(), 7, 1075988, 'ES:2027H', -2, 6000, 0, false)::pgportfolio.mutation_result,
    'a reopening short of 2 @ 6000 uses the new multiplier: cash + 60000'
);
SELECT is(
    (SELECT (p.multiplier::numeric, p.cost_basis::numeric, e.multiplier::numeric) FROM pgportfolio.positions AS p
     JOIN pgportfolio.events AS e ON e.portfolio_id = p.portfolio_id AND e.request_id = 'm-reopen'
     WHERE p.portfolio_id = pg_temp.pid() AND p.symbol = 'ES:2027H'),
    ROW(5::numeric, -60000::numeric, 5::numeric),
    'the reopened position and its event carry multiplier 5'
);
SELECT is(
    (SELECT (duplicate, position_avg_price) FROM pgportfolio.apply_fill(pg_temp.pid(), 'ES:2027H', 2, 6000, 4, 'm-open')),
    ROW(true, 6000::numeric),
    'a replay of the first opening still returns its own result, at its own multiplier'
);

-- ---------------------------------------------------------------- a position keeps its multiplier
-- Changing the instrument under an open position is refused (PF007, 155_instruments.sql);
-- an edit of the table behind upsert_instrument's back, as only a superuser could make,
-- shows that the arithmetic takes the position's multiplier, not the instrument's.
UPDATE pgportfolio.instruments SET multiplier = 7 WHERE symbol = 'ES:2027H';
INSERT INTO res SELECT 'add-kept', f FROM pgportfolio.apply_fill(pg_temp.pid(), 'ES:2027H', -1, 6100, 0, 'm-add-kept') AS f;
SELECT is(
    (SELECT r FROM res WHERE step = 'add-kept'),
    ROW(pg_temp.pid(), 8, 1106488, 'ES:2027H', -3, 6033.33333333, 0, false)::pgportfolio.mutation_result,
    'an add to the open position uses its multiplier 5, not the instrument''s 7: cash + 30500, avg 90500 / 15'
);
SELECT is(
    (SELECT (multiplier::numeric, cost_basis::numeric) FROM pgportfolio.positions WHERE portfolio_id = pg_temp.pid() AND symbol = 'ES:2027H'),
    ROW(5::numeric, -90500::numeric),
    'the position still has multiplier 5'
);
INSERT INTO res SELECT 'reduce-kept', f FROM pgportfolio.reduce_position(pg_temp.pid(), 'ES:2027H', 2, 6000, 0, 'm-reduce-kept') AS f;
SELECT is(
    (SELECT r FROM res WHERE step = 'reduce-kept'),
    ROW(pg_temp.pid(), 9, 1046488, 'ES:2027H', -1, 6033.33333333, 333.3333333333333333, false)::pgportfolio.mutation_result,
    'a partial reduction removes round(90500 x 2/3, 16) of basis: realized 60333.3333333333333333 - 60000'
);
SELECT is(
    (SELECT (cost_basis::numeric, multiplier::numeric) FROM pgportfolio.positions WHERE portfolio_id = pg_temp.pid() AND symbol = 'ES:2027H'),
    ROW(-30166.6666666666666667::numeric, 5::numeric),
    'what is left of the basis is exact, so the identities stay exact'
);
SELECT is(pg_temp.failed_checks(), '{}'::text[], 'verify_portfolio is clean: cash and P&L identities hold with multipliers');

-- The position_multipliers check catches a position whose multiplier is not its last fill's.
ALTER TABLE pgportfolio.positions DISABLE TRIGGER USER;
UPDATE pgportfolio.positions SET multiplier = 7 WHERE portfolio_id = pg_temp.pid() AND symbol = 'ES:2027H';
ALTER TABLE pgportfolio.positions ENABLE TRIGGER USER;
SELECT is(pg_temp.failed_checks(), ARRAY['position_multipliers'],
    'a position multiplier edited in place fails position_multipliers, and nothing else');
UPDATE pgportfolio.positions SET multiplier = 5 WHERE portfolio_id = pg_temp.pid() AND symbol = 'ES:2027H';

-- ---------------------------------------------------------------- a symbol without a row, in a batch
SELECT results_eq(
    $$SELECT symbol, position_quantity, position_avg_price, cash_balance FROM pgportfolio.apply_fills_arrays(
        ARRAY[pg_temp.pid(), pg_temp.pid(), pg_temp.pid()], ARRAY['PLAINX', 'ES:2027H', 'PLAINX'],
        ARRAY[10, 1, -4]::numeric[], ARRAY[3.5, 6000, 4]::numeric[]) ORDER BY item$$,
    $$VALUES ('PLAINX'::text, 10::numeric, 3.5::numeric, 1046453::numeric),
             ('ES:2027H', 0, NULL, 1016453),
             ('PLAINX', 6, 3.5, 1016469)$$,
    'in one batch: a symbol without an instrument row at multiplier 1 beside the multiplier-5 position'
);
SELECT is(
    (SELECT array_agg(multiplier::numeric ORDER BY portfolio_version) FROM pgportfolio.events
     WHERE portfolio_id = pg_temp.pid() AND portfolio_version > 9),
    ARRAY[1, 5, 1]::numeric[],
    'each element''s event records its own multiplier'
);
SELECT is(
    (SELECT multiplier::numeric FROM pgportfolio.positions WHERE portfolio_id = pg_temp.pid() AND symbol = 'PLAINX'),
    1::numeric,
    'a position in a symbol without an instrument row has multiplier 1'
);
SELECT is(pg_temp.failed_checks(), '{}'::text[], 'verify_portfolio is clean at the end');
SELECT is(
    (SELECT (cash_balance::numeric - 1000000, realized_pnl::numeric) FROM pgportfolio.portfolios WHERE portfolio_id = pg_temp.pid()),
    (SELECT (sum(cash_delta::numeric) FILTER (WHERE kind::text <> 'create'), sum(realized_pnl::numeric) FILTER (WHERE kind::text <> 'create'))
     FROM pgportfolio.events WHERE portfolio_id = pg_temp.pid()),
    'the cash and realized totals are the sums of the events'' exact figures'
);

SELECT * FROM finish();
ROLLBACK;
