-- Fill arithmetic (sql/140_fill.sql): open, add, reduce, close and flip, long and short,
-- exact cash, average cost, cost basis and realized P&L, and the identities
--   cash = initial + deposits - withdrawals + sum(fill cash flows) - sum(fees)
--   sum(realized before fees) = sum(fill cash flows) + sum(open cost basis)
-- Everything runs as the superuser through apply_fill (and close_position once).
BEGIN;
SELECT plan(61);

CREATE FUNCTION pg_temp.pid(p_name text) RETURNS bigint LANGUAGE sql STABLE
AS $$ SELECT current_setting('test.pid_' || p_name)::bigint $$;

-- Results of each step, by name.
CREATE TEMP TABLE res (step text PRIMARY KEY, r pgportfolio.mutation_result NOT NULL);

DO $$
BEGIN
    PERFORM set_config('test.pid_main', pgportfolio.create_portfolio('fills book', 100000)::text, true);
    PERFORM set_config('test.pid_poor', pgportfolio.create_portfolio('poor book', 1000)::text, true);
    PERFORM set_config('test.pid_zero', pgportfolio.create_portfolio('empty book', 0)::text, true);
    PERFORM set_config('test.pid_tz', pgportfolio.create_portfolio('trailing zeros book', 1000)::text, true);
END
$$;

-- ---------------------------------------------------------------- long: open, add, reduce, close
INSERT INTO res SELECT 'A1', f FROM pgportfolio.apply_fill(pg_temp.pid('main'), 'AAA', 10, 100, 1) AS f;
SELECT is(
    (SELECT r FROM res WHERE step = 'A1'),
    ROW(pg_temp.pid('main'), 2, 98999, 'AAA', 10, 100, -1, false)::pgportfolio.mutation_result,
    'open long 10 @ 100 fee 1: version 2, cash 100000 - 1000 - 1, avg 100, realized = -fee'
);
SELECT is(
    (SELECT (quantity::numeric, cost_basis::numeric, realized_pnl::numeric, version::bigint) FROM pgportfolio.positions
     WHERE portfolio_id = pg_temp.pid('main') AND symbol = 'AAA'),
    ROW(10::numeric, 1000::numeric, -1::numeric, 1::bigint),
    'open long: position row holds quantity 10, cost basis 1000, realized -1, version 1'
);
SELECT is(
    (SELECT (kind::text, operation, symbol::text, quantity::numeric, price::numeric, fee::numeric, amount::numeric, cash_delta::numeric, realized_pnl::numeric,
             cash_balance::numeric, position_quantity::numeric, position_cost_basis::numeric)
     FROM pgportfolio.events WHERE portfolio_id = pg_temp.pid('main') AND portfolio_version = 2),
    ROW('open'::text, 'apply_fill'::text, 'AAA'::text, 10::numeric, 100::numeric, 1::numeric, NULL::numeric,
        -1001::numeric, -1::numeric, 98999::numeric, 10::numeric, 1000::numeric),
    'open long: event version 2 records kind open, the fill, cash_delta -1001 and the state after it'
);

INSERT INTO res SELECT 'A2', f FROM pgportfolio.apply_fill(pg_temp.pid('main'), 'AAA', 5, 130, 0.5) AS f;
SELECT is(
    (SELECT r FROM res WHERE step = 'A2'),
    ROW(pg_temp.pid('main'), 3, 98348.5, 'AAA', 15, 110, -0.5, false)::pgportfolio.mutation_result,
    'add 5 @ 130 fee 0.5: cash - 650.5, quantity 15, avg (1000 + 650) / 15 = 110, realized = -fee'
);
SELECT is(
    (SELECT (quantity::numeric, cost_basis::numeric, realized_pnl::numeric, version::bigint) FROM pgportfolio.positions
     WHERE portfolio_id = pg_temp.pid('main') AND symbol = 'AAA'),
    ROW(15::numeric, 1650::numeric, -1.5::numeric, 2::bigint),
    'add: cost basis 1650, position realized -1.5 (fees so far), position version 2'
);
SELECT is(
    (SELECT kind::text FROM pgportfolio.events WHERE portfolio_id = pg_temp.pid('main') AND portfolio_version = 3),
    'add',
    'add: event kind is add'
);

INSERT INTO res SELECT 'A3', f FROM pgportfolio.apply_fill(pg_temp.pid('main'), 'AAA', -6, 150, 1) AS f;
SELECT is(
    (SELECT r FROM res WHERE step = 'A3'),
    ROW(pg_temp.pid('main'), 4, 99247.5, 'AAA', 9, 110, 239, false)::pgportfolio.mutation_result,
    'reduce by 6 @ 150 fee 1: realized = 900 - 1650 * 6/15 - 1 = 239, avg stays 110'
);
SELECT is(
    (SELECT (quantity::numeric, cost_basis::numeric, realized_pnl::numeric, version::bigint) FROM pgportfolio.positions
     WHERE portfolio_id = pg_temp.pid('main') AND symbol = 'AAA'),
    ROW(9::numeric, 990::numeric, 237.5::numeric, 3::bigint),
    'reduce: cost basis loses its proportion (1650 - 660 = 990), position realized 237.5'
);
SELECT is(
    (SELECT (kind::text, quantity::numeric, cash_delta::numeric, realized_pnl::numeric, position_quantity::numeric, position_cost_basis::numeric)
     FROM pgportfolio.events WHERE portfolio_id = pg_temp.pid('main') AND portfolio_version = 4),
    ROW('reduce'::text, -6::numeric, 899::numeric, 239::numeric, 9::numeric, 990::numeric),
    'reduce: event kind reduce, signed quantity -6, cash_delta 900 - 1'
);

INSERT INTO res SELECT 'A4', f FROM pgportfolio.apply_fill(pg_temp.pid('main'), 'AAA', -9, 90) AS f;
SELECT is(
    (SELECT r FROM res WHERE step = 'A4'),
    ROW(pg_temp.pid('main'), 5, 100057.5, 'AAA', 0, NULL, -180, false)::pgportfolio.mutation_result,
    'close 9 @ 90: realized 810 - 990 = -180, position quantity 0 and avg NULL in the result'
);
SELECT is_empty(
    $$SELECT 1 FROM pgportfolio.positions WHERE portfolio_id = pg_temp.pid('main') AND symbol = 'AAA'$$,
    'close: a flat position is deleted'
);
SELECT is(
    (SELECT (kind::text, position_quantity::numeric, position_cost_basis::numeric)
     FROM pgportfolio.events WHERE portfolio_id = pg_temp.pid('main') AND portfolio_version = 5),
    ROW('close'::text, 0::numeric, 0::numeric),
    'close: event kind close with position quantity 0 and cost basis 0'
);
SELECT is(
    (SELECT (cash_balance::numeric, realized_pnl::numeric, version::bigint) FROM pgportfolio.portfolios
     WHERE portfolio_id = pg_temp.pid('main')),
    ROW(100057.5::numeric, 57.5::numeric, 5::bigint),
    'round trip flat: cash = initial + realized (-1 - 0.5 + 239 - 180 = 57.5)'
);

-- ---------------------------------------------------------------- short: open, add, reduce, flip, flip, close
INSERT INTO res SELECT 'B1', f FROM pgportfolio.apply_fill(pg_temp.pid('main'), 'BBB', -20, 50, 2) AS f;
SELECT is(
    (SELECT r FROM res WHERE step = 'B1'),
    ROW(pg_temp.pid('main'), 6, 101055.5, 'BBB', -20, 50, -2, false)::pgportfolio.mutation_result,
    'open short -20 @ 50 fee 2: cash + 1000 - 2, avg 50, realized = -fee'
);
SELECT is(
    (SELECT (quantity::numeric, cost_basis::numeric) FROM pgportfolio.positions
     WHERE portfolio_id = pg_temp.pid('main') AND symbol = 'BBB'),
    ROW(-20::numeric, -1000::numeric),
    'open short: quantity and cost basis are both negative'
);

INSERT INTO res SELECT 'B2', f FROM pgportfolio.apply_fill(pg_temp.pid('main'), 'BBB', -10, 56) AS f;
SELECT is(
    (SELECT r FROM res WHERE step = 'B2'),
    ROW(pg_temp.pid('main'), 7, 101615.5, 'BBB', -30, 52, 0, false)::pgportfolio.mutation_result,
    'add to short -10 @ 56: cost basis -1560, avg 52, realized 0'
);

INSERT INTO res SELECT 'B3', f FROM pgportfolio.apply_fill(pg_temp.pid('main'), 'BBB', 12, 40) AS f;
SELECT is(
    (SELECT r FROM res WHERE step = 'B3'),
    ROW(pg_temp.pid('main'), 8, 101135.5, 'BBB', -18, 52, 144, false)::pgportfolio.mutation_result,
    'cover 12 @ 40 of a short at avg 52: realized (52 - 40) * 12 = 144, avg stays 52'
);
SELECT is(
    (SELECT cost_basis::numeric FROM pgportfolio.positions WHERE portfolio_id = pg_temp.pid('main') AND symbol = 'BBB'),
    -936::numeric,
    'cover: short cost basis is -1560 + 624 = -936'
);
SELECT is(
    (SELECT kind::text FROM pgportfolio.events WHERE portfolio_id = pg_temp.pid('main') AND portfolio_version = 8),
    'reduce',
    'cover: event kind is reduce'
);

INSERT INTO res SELECT 'B4', f FROM pgportfolio.apply_fill(pg_temp.pid('main'), 'BBB', 30, 45, 1.5) AS f;
SELECT is(
    (SELECT r FROM res WHERE step = 'B4'),
    ROW(pg_temp.pid('main'), 9, 99784, 'BBB', 12, 45, 124.5, false)::pgportfolio.mutation_result,
    'flip short -18 to long 12 with +30 @ 45 fee 1.5: realized -18*45 + 936 - 1.5 = 124.5, new avg = fill price'
);
SELECT is(
    (SELECT (quantity::numeric, cost_basis::numeric, realized_pnl::numeric, version::bigint) FROM pgportfolio.positions
     WHERE portfolio_id = pg_temp.pid('main') AND symbol = 'BBB'),
    ROW(12::numeric, 540::numeric, 266.5::numeric, 4::bigint),
    'flip: same position row, cost basis 12 * 45, realized keeps accumulating (-2 + 0 + 144 + 124.5)'
);
SELECT is(
    (SELECT (kind::text, quantity::numeric, cash_delta::numeric, position_quantity::numeric, position_cost_basis::numeric)
     FROM pgportfolio.events WHERE portfolio_id = pg_temp.pid('main') AND portfolio_version = 9),
    ROW('flip'::text, 30::numeric, -1351.5::numeric, 12::numeric, 540::numeric),
    'flip: event kind flip with the whole signed fill (+30)'
);

INSERT INTO res SELECT 'B5', f FROM pgportfolio.apply_fill(pg_temp.pid('main'), 'BBB', -30, 50) AS f;
SELECT is(
    (SELECT r FROM res WHERE step = 'B5'),
    ROW(pg_temp.pid('main'), 10, 101284, 'BBB', -18, 50, 60, false)::pgportfolio.mutation_result,
    'flip long 12 to short -18 with -30 @ 50: realized 12 * 50 - 540 = 60, avg 50'
);
SELECT is(
    (SELECT cost_basis::numeric FROM pgportfolio.positions WHERE portfolio_id = pg_temp.pid('main') AND symbol = 'BBB'),
    -900::numeric,
    'flip to short: cost basis -18 * 50'
);

INSERT INTO res SELECT 'B6', f FROM pgportfolio.close_position(pg_temp.pid('main'), 'BBB', 48) AS f;
SELECT is(
    (SELECT r FROM res WHERE step = 'B6'),
    ROW(pg_temp.pid('main'), 11, 100420, 'BBB', 0, NULL, 36, false)::pgportfolio.mutation_result,
    'close short -18 @ 48: pays 864, realized 900 - 864 = 36'
);
SELECT is(
    (SELECT (kind::text, quantity::numeric, cash_delta::numeric) FROM pgportfolio.events
     WHERE portfolio_id = pg_temp.pid('main') AND portfolio_version = 11),
    ROW('close'::text, 18::numeric, -864::numeric),
    'close short: event holds the buy-back of +18'
);
SELECT is(
    (SELECT (cash_balance::numeric, realized_pnl::numeric) FROM pgportfolio.portfolios WHERE portfolio_id = pg_temp.pid('main')),
    ROW(100420::numeric, 420::numeric),
    'flat again: cash 100420 = initial + realized 420'
);

-- ---------------------------------------------------------------- proportional cost with a repeating fraction
INSERT INTO res SELECT 'C1', f FROM pgportfolio.apply_fill(pg_temp.pid('main'), 'CCC', 1, 10) AS f;
INSERT INTO res SELECT 'C2', f FROM pgportfolio.apply_fill(pg_temp.pid('main'), 'CCC', 2, 11) AS f;
SELECT is(
    (SELECT r FROM res WHERE step = 'C2'),
    ROW(pg_temp.pid('main'), 13, 100388, 'CCC', 3, 10.66666667, 0, false)::pgportfolio.mutation_result,
    'avg price in the result is cost basis / quantity rounded to 8 places (32 / 3 = 10.66666667)'
);
SELECT is(
    (SELECT cost_basis::numeric FROM pgportfolio.positions WHERE portfolio_id = pg_temp.pid('main') AND symbol = 'CCC'),
    32::numeric,
    'cost basis is kept exact (32), never the rounded average times quantity'
);
INSERT INTO res SELECT 'C3', f FROM pgportfolio.apply_fill(pg_temp.pid('main'), 'CCC', -1, 12) AS f;
SELECT is(
    (SELECT r FROM res WHERE step = 'C3'),
    ROW(pg_temp.pid('main'), 14, 100400, 'CCC', 2, 10.66666667, 1.3333333333333333, false)::pgportfolio.mutation_result,
    'reduce 1 of 3: removed basis 32/3 rounded to 16 places, realized 12 - 10.6666666666666667'
);
SELECT is(
    (SELECT cost_basis::numeric FROM pgportfolio.positions WHERE portfolio_id = pg_temp.pid('main') AND symbol = 'CCC'),
    21.3333333333333333::numeric,
    'remaining basis is 32 - 10.6666666666666667'
);
INSERT INTO res SELECT 'C4', f FROM pgportfolio.apply_fill(pg_temp.pid('main'), 'CCC', -2, 12) AS f;
SELECT is(
    (SELECT r FROM res WHERE step = 'C4'),
    ROW(pg_temp.pid('main'), 15, 100424, 'CCC', 0, NULL, 2.6666666666666667, false)::pgportfolio.mutation_result,
    'closing the rest realizes 24 - 21.3333333333333333'
);
SELECT is(
    (SELECT sum(realized_pnl::numeric) FROM pgportfolio.events WHERE portfolio_id = pg_temp.pid('main') AND symbol = 'CCC'),
    4::numeric,
    'rounding never leaks: realized over the CCC round trip is exactly 36 - 32 = 4'
);

-- ---------------------------------------------------------------- 8 decimal places, kept exact
INSERT INTO res SELECT 'D1', f FROM pgportfolio.apply_fill(pg_temp.pid('main'), 'DDD', 0.12345678, 12345.6789, 0.00000001) AS f;
SELECT is(
    (SELECT r FROM res WHERE step = 'D1'),
    ROW(pg_temp.pid('main'), 16, 100424 - 0.12345678 * 12345.6789 - 0.00000001, 'DDD', 0.12345678, 12345.6789,
        -0.00000001, false)::pgportfolio.mutation_result,
    'open 0.12345678 @ 12345.6789 fee 0.00000001: cash moves by the exact product plus fee'
);
SELECT is(
    (SELECT cost_basis::numeric FROM pgportfolio.positions WHERE portfolio_id = pg_temp.pid('main') AND symbol = 'DDD'),
    0.12345678 * 12345.6789,
    'cost basis is the exact product 0.12345678 * 12345.6789 (no rounding)'
);

-- An open short left in place, so the identities below include open basis of both signs.
INSERT INTO res SELECT 'E1', f FROM pgportfolio.apply_fill(pg_temp.pid('main'), 'EEE', -3, 7) AS f;
SELECT is(
    (SELECT r FROM res WHERE step = 'E1'),
    ROW(pg_temp.pid('main'), 17, 100424 - 0.12345678 * 12345.6789 - 0.00000001 + 21, 'EEE', -3, 7, 0,
        false)::pgportfolio.mutation_result,
    'open short -3 @ 7 credits 21'
);

-- ---------------------------------------------------------------- identities over the whole log
SELECT is(
    (SELECT cash_balance::numeric FROM pgportfolio.portfolios WHERE portfolio_id = pg_temp.pid('main')),
    (SELECT 100000 + sum(-(quantity::numeric * price::numeric)) - sum(fee::numeric) FROM pgportfolio.events
     WHERE portfolio_id = pg_temp.pid('main') AND quantity IS NOT NULL),
    'cash identity: cash = initial + sum(-quantity * price) - sum(fees)'
);
SELECT is(
    (SELECT sum(realized_pnl::numeric + fee::numeric) FROM pgportfolio.events WHERE portfolio_id = pg_temp.pid('main')),
    (SELECT sum(-(quantity::numeric * price::numeric)) FROM pgportfolio.events
     WHERE portfolio_id = pg_temp.pid('main') AND quantity IS NOT NULL)
    + (SELECT sum(cost_basis::numeric) FROM pgportfolio.positions WHERE portfolio_id = pg_temp.pid('main')),
    'realized identity: sum(realized before fees) = sum(fill cash flows) + sum(open cost basis)'
);
SELECT is(
    (SELECT realized_pnl::numeric FROM pgportfolio.portfolios WHERE portfolio_id = pg_temp.pid('main')),
    (SELECT sum(realized_pnl::numeric) FROM pgportfolio.events WHERE portfolio_id = pg_temp.pid('main')),
    'portfolio realized P&L is the sum of the events'' realized P&L'
);
SELECT is(
    (SELECT realized_pnl::numeric FROM pgportfolio.portfolios WHERE portfolio_id = pg_temp.pid('main')),
    424 - 0.00000001,
    'portfolio realized P&L is 424 less the DDD fee'
);
SELECT is(
    (SELECT array_agg(kind::text ORDER BY portfolio_version) FROM pgportfolio.events WHERE portfolio_id = pg_temp.pid('main')),
    ARRAY['create', 'open', 'add', 'reduce', 'close', 'open', 'add', 'reduce', 'flip', 'flip', 'close',
          'open', 'add', 'reduce', 'close', 'open', 'open'],
    'every fill was classified as the right kind, in order'
);
SELECT is(
    (SELECT array_agg(portfolio_version ORDER BY portfolio_version) FROM pgportfolio.events
     WHERE portfolio_id = pg_temp.pid('main')),
    (SELECT array_agg(v) FROM generate_series(1::bigint, 17) AS v),
    'event versions run 1..17 without gaps'
);
SELECT is(
    (SELECT version::bigint FROM pgportfolio.portfolios WHERE portfolio_id = pg_temp.pid('main')),
    17::bigint,
    'portfolio version counts every mutation'
);
SELECT set_eq(
    $$SELECT symbol::text, quantity::numeric, cost_basis::numeric FROM pgportfolio.positions WHERE portfolio_id = pg_temp.pid('main')$$,
    $$VALUES ('DDD'::text, 0.12345678::numeric, 0.12345678 * 12345.6789), ('EEE', -3, -21)$$,
    'only DDD (long) and EEE (short) remain open'
);
SELECT is(
    (SELECT count(*) FROM pgportfolio.verify_portfolio(pg_temp.pid('main')) WHERE NOT ok),
    0::bigint,
    'verify_portfolio finds nothing wrong after the whole sequence'
);

-- ---------------------------------------------------------------- cash limits (PF002) and range limits
SELECT throws_ok(
    $$SELECT pgportfolio.apply_fill(pg_temp.pid('poor'), 'AAA', 10, 100, 0.01)$$,
    'PF002', NULL,
    'buying 10 @ 100 + fee 0.01 with 1000 cash is PF002 insufficient cash'
);
SELECT is(
    (SELECT (cash_balance::numeric, version::bigint) FROM pgportfolio.portfolios WHERE portfolio_id = pg_temp.pid('poor')),
    ROW(1000::numeric, 1::bigint),
    'the refused buy changed neither cash nor version'
);
SELECT is(
    (SELECT (cash_balance, portfolio_version) FROM pgportfolio.apply_fill(pg_temp.pid('poor'), 'AAA', 10, 100)),
    ROW(0::numeric, 2::bigint),
    'spending exactly all the cash is allowed and leaves 0'
);
SELECT throws_ok(
    $$SELECT pgportfolio.apply_fill(pg_temp.pid('poor'), 'BBB', 0.00000001, 1)$$,
    'PF002', NULL,
    'with 0 cash even the smallest buy is PF002'
);
SELECT throws_ok(
    $$SELECT pgportfolio.apply_fill(pg_temp.pid('zero'), 'SHRT', -1, 1, 2)$$,
    'PF002', NULL,
    'a short sale whose fee exceeds its proceeds is PF002 when there is no cash'
);
SELECT is(
    (SELECT (cash_balance, portfolio_version, realized_pnl) FROM pgportfolio.apply_fill(pg_temp.pid('zero'), 'SHRT', -1, 1, 1)),
    ROW(0::numeric, 2::bigint, -1::numeric),
    'a short sale whose fee equals its proceeds leaves cash at exactly 0'
);
SELECT is(
    (SELECT position_quantity FROM pgportfolio.apply_fill(pg_temp.pid('zero'), 'HUGE', -999999999999999.99999999, 1)),
    -999999999999999.99999999,
    'the largest allowed short quantity opens'
);
SELECT throws_ok(
    $$SELECT pgportfolio.apply_fill(pg_temp.pid('zero'), 'HUGE', -0.00000001, 1)$$,
    '22023', NULL,
    'a fill that takes a position to 10^15 in absolute value is 22023'
);
SELECT is(
    (SELECT quantity::numeric FROM pgportfolio.positions WHERE portfolio_id = pg_temp.pid('zero') AND symbol = 'HUGE'),
    -999999999999999.99999999,
    'the out-of-range fill left the position as it was'
);
SELECT is(
    (SELECT count(*) FROM pgportfolio.verify_portfolio(pg_temp.pid('zero')) WHERE NOT ok),
    0::bigint,
    'verify_portfolio is clean on the boundary-case portfolio'
);

-- ---------------------------------------------------------------- trailing zeros are not decimal places
SELECT is(
    (SELECT (position_quantity, position_avg_price, cash_balance)
     FROM pgportfolio.apply_fill(pg_temp.pid('tz'), 'TZ', 1.0000000000, 10.0000000000, 0.0000000000, 'tz-1')),
    ROW(1::numeric, 10::numeric, 990::numeric),
    'a fill written with 10 trailing zeros (1.0000000000 @ 10.0000000000) is accepted as 1 @ 10'
);
SELECT is(
    (SELECT (quantity::numeric, scale(quantity::numeric), cost_basis::numeric) FROM pgportfolio.positions
     WHERE portfolio_id = pg_temp.pid('tz') AND symbol = 'TZ'),
    ROW(1::numeric, 0, 10::numeric),
    'the stored quantity is the shortest exact form (scale 0), within the 8-place constraint'
);
SELECT is(
    (SELECT (position_quantity, realized_pnl)
     FROM pgportfolio.reduce_position(pg_temp.pid('tz'), 'TZ', 0.5000000000, 12.00000000000)),
    ROW(0.5::numeric, 1::numeric),
    'reduce_position by 0.5000000000 @ 12.00000000000 works and realizes 1'
);
SELECT is(
    (SELECT duplicate FROM pgportfolio.apply_fill(pg_temp.pid('tz'), 'TZ', 1, 10, 0, 'tz-1')),
    true,
    'replaying tz-1 written without the trailing zeros is the same request'
);

-- ---------------------------------------------------------------- fills are independent per portfolio and symbol
SELECT is(
    (SELECT count(*) FROM pgportfolio.positions WHERE portfolio_id = pg_temp.pid('poor')),
    1::bigint,
    'positions of one portfolio never appear in another'
);
SELECT is(
    (SELECT (realized_pnl::numeric, version::bigint) FROM pgportfolio.portfolios WHERE portfolio_id = pg_temp.pid('poor')),
    ROW(0::numeric, 2::bigint),
    'a fee-free open realizes nothing'
);

SELECT * FROM finish();
ROLLBACK;
