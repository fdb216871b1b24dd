-- Read models (sql/200_views.sql): columns and types of the views, and the values
-- portfolio_summary, position_pnl and event_log show after trades and marks.
BEGIN;
SELECT plan(114);

CREATE FUNCTION pg_temp.pid(p_name text) RETURNS bigint LANGUAGE sql STABLE
AS $$ SELECT current_setting('test.pid_' || p_name)::bigint $$;

-- ---------------------------------------------------------------- columns
SELECT columns_are('pgportfolio', 'portfolio_summary', ARRAY[
    'portfolio_id', 'name', 'currency', 'cash_balance', 'market_value', 'unrealized_pnl', 'realized_pnl',
    'equity', 'open_positions', 'version', 'updated_at'], 'portfolio_summary has the expected columns');
SELECT columns_are('pgportfolio', 'position_pnl', ARRAY[
    'portfolio_id', 'symbol', 'quantity', 'avg_price', 'cost_basis', 'mark_price', 'market_value',
    'unrealized_pnl', 'realized_pnl', 'version', 'updated_at', 'multiplier'], 'position_pnl has the expected columns');
SELECT columns_are('pgportfolio', 'event_log', ARRAY[
    'portfolio_id', 'portfolio_version', 'kind', 'operation', 'symbol', 'quantity', 'price', 'fee', 'amount',
    'cash_delta', 'realized_pnl', 'cash_balance', 'position_quantity', 'request_id', 'acting_role', 'created_at',
    'executed_at', 'order_id', 'tags', 'multiplier'],
    'event_log has the expected columns (no request_args, no cost basis; the execution metadata last)');
SELECT columns_are('pgportfolio', 'lock_waits', ARRAY[
    'waiting_pid', 'waiting_role', 'application_name', 'locktype', 'relation', 'mode', 'waiting_for',
    'blocking_pids', 'waiting_query', 'blocking_queries'], 'lock_waits has the expected columns');
SELECT is(
    (SELECT array_agg(a.attname::text ORDER BY a.attnum) FROM pg_attribute AS a
     WHERE a.attrelid = 'pgportfolio.portfolio_summary'::regclass AND a.attnum > 0),
    ARRAY['portfolio_id', 'name', 'currency', 'cash_balance', 'market_value', 'unrealized_pnl', 'realized_pnl',
          'equity', 'open_positions', 'version', 'updated_at'],
    'portfolio_summary columns are in the documented order'
);
SELECT is(
    (SELECT array_agg(a.attname::text ORDER BY a.attnum) FROM pg_attribute AS a
     WHERE a.attrelid = 'pgportfolio.position_pnl'::regclass AND a.attnum > 0),
    ARRAY['portfolio_id', 'symbol', 'quantity', 'avg_price', 'cost_basis', 'mark_price', 'market_value',
          'unrealized_pnl', 'realized_pnl', 'version', 'updated_at', 'multiplier'],
    'position_pnl columns are in the documented order (multiplier last, after the earlier ones)'
);

SELECT col_type_is('pgportfolio', 'portfolio_summary', 'portfolio_id', 'bigint', 'portfolio_summary.portfolio_id is bigint');
SELECT col_type_is('pgportfolio', 'portfolio_summary', 'name', 'text', 'portfolio_summary.name is text');
SELECT col_type_is('pgportfolio', 'portfolio_summary', 'currency', 'text', 'portfolio_summary.currency is text');
SELECT col_type_is('pgportfolio', 'portfolio_summary', 'cash_balance', 'numeric', 'portfolio_summary.cash_balance is numeric');
SELECT col_type_is('pgportfolio', 'portfolio_summary', 'market_value', 'numeric', 'portfolio_summary.market_value is numeric');
SELECT col_type_is('pgportfolio', 'portfolio_summary', 'unrealized_pnl', 'numeric', 'portfolio_summary.unrealized_pnl is numeric');
SELECT col_type_is('pgportfolio', 'portfolio_summary', 'realized_pnl', 'numeric', 'portfolio_summary.realized_pnl is numeric');
SELECT col_type_is('pgportfolio', 'portfolio_summary', 'equity', 'numeric', 'portfolio_summary.equity is numeric');
SELECT col_type_is('pgportfolio', 'portfolio_summary', 'open_positions', 'bigint', 'portfolio_summary.open_positions is bigint');
SELECT col_type_is('pgportfolio', 'portfolio_summary', 'version', 'bigint', 'portfolio_summary.version is bigint');
SELECT col_type_is('pgportfolio', 'portfolio_summary', 'updated_at', 'timestamp with time zone', 'portfolio_summary.updated_at is timestamp with time zone');
SELECT col_type_is('pgportfolio', 'position_pnl', 'portfolio_id', 'bigint', 'position_pnl.portfolio_id is bigint');
SELECT col_type_is('pgportfolio', 'position_pnl', 'symbol', 'text', 'position_pnl.symbol is text');
SELECT col_type_is('pgportfolio', 'position_pnl', 'quantity', 'numeric', 'position_pnl.quantity is numeric');
SELECT col_type_is('pgportfolio', 'position_pnl', 'avg_price', 'numeric', 'position_pnl.avg_price is numeric');
SELECT col_type_is('pgportfolio', 'position_pnl', 'cost_basis', 'numeric', 'position_pnl.cost_basis is numeric');
SELECT col_type_is('pgportfolio', 'position_pnl', 'mark_price', 'numeric', 'position_pnl.mark_price is numeric');
SELECT col_type_is('pgportfolio', 'position_pnl', 'market_value', 'numeric', 'position_pnl.market_value is numeric');
SELECT col_type_is('pgportfolio', 'position_pnl', 'unrealized_pnl', 'numeric', 'position_pnl.unrealized_pnl is numeric');
SELECT col_type_is('pgportfolio', 'position_pnl', 'realized_pnl', 'numeric', 'position_pnl.realized_pnl is numeric');
SELECT col_type_is('pgportfolio', 'position_pnl', 'version', 'bigint', 'position_pnl.version is bigint');
SELECT col_type_is('pgportfolio', 'position_pnl', 'updated_at', 'timestamp with time zone', 'position_pnl.updated_at is timestamp with time zone');
SELECT col_type_is('pgportfolio', 'position_pnl', 'multiplier', 'numeric', 'position_pnl.multiplier is numeric');
SELECT col_type_is('pgportfolio', 'event_log', 'portfolio_id', 'bigint', 'event_log.portfolio_id is bigint');
SELECT col_type_is('pgportfolio', 'event_log', 'portfolio_version', 'bigint', 'event_log.portfolio_version is bigint');
SELECT col_type_is('pgportfolio', 'event_log', 'kind', 'text', 'event_log.kind is text');
SELECT col_type_is('pgportfolio', 'event_log', 'operation', 'text', 'event_log.operation is text');
SELECT col_type_is('pgportfolio', 'event_log', 'symbol', 'text', 'event_log.symbol is text');
SELECT col_type_is('pgportfolio', 'event_log', 'quantity', 'numeric', 'event_log.quantity is numeric');
SELECT col_type_is('pgportfolio', 'event_log', 'price', 'numeric', 'event_log.price is numeric');
SELECT col_type_is('pgportfolio', 'event_log', 'fee', 'numeric', 'event_log.fee is numeric');
SELECT col_type_is('pgportfolio', 'event_log', 'amount', 'numeric', 'event_log.amount is numeric');
SELECT col_type_is('pgportfolio', 'event_log', 'cash_delta', 'numeric', 'event_log.cash_delta is numeric');
SELECT col_type_is('pgportfolio', 'event_log', 'realized_pnl', 'numeric', 'event_log.realized_pnl is numeric');
SELECT col_type_is('pgportfolio', 'event_log', 'cash_balance', 'numeric', 'event_log.cash_balance is numeric');
SELECT col_type_is('pgportfolio', 'event_log', 'position_quantity', 'numeric', 'event_log.position_quantity is numeric');
SELECT col_type_is('pgportfolio', 'event_log', 'request_id', 'text', 'event_log.request_id is text');
SELECT col_type_is('pgportfolio', 'event_log', 'acting_role', 'name', 'event_log.acting_role is name');
SELECT col_type_is('pgportfolio', 'event_log', 'created_at', 'timestamp with time zone', 'event_log.created_at is timestamp with time zone');
SELECT col_type_is('pgportfolio', 'lock_waits', 'waiting_pid', 'integer', 'lock_waits.waiting_pid is integer');
SELECT col_type_is('pgportfolio', 'lock_waits', 'waiting_role', 'name', 'lock_waits.waiting_role is name');
SELECT col_type_is('pgportfolio', 'lock_waits', 'application_name', 'text', 'lock_waits.application_name is text');
SELECT col_type_is('pgportfolio', 'lock_waits', 'locktype', 'text', 'lock_waits.locktype is text');
SELECT col_type_is('pgportfolio', 'lock_waits', 'relation', 'regclass', 'lock_waits.relation is regclass');
SELECT col_type_is('pgportfolio', 'lock_waits', 'mode', 'text', 'lock_waits.mode is text');
SELECT col_type_is('pgportfolio', 'lock_waits', 'waiting_for', 'interval', 'lock_waits.waiting_for is interval');
SELECT col_type_is('pgportfolio', 'lock_waits', 'blocking_pids', 'integer[]', 'lock_waits.blocking_pids is integer[]');
SELECT col_type_is('pgportfolio', 'lock_waits', 'waiting_query', 'text', 'lock_waits.waiting_query is text');
SELECT col_type_is('pgportfolio', 'lock_waits', 'blocking_queries', 'text[]', 'lock_waits.blocking_queries is text[]');

-- ---------------------------------------------------------------- values
DO $$
BEGIN
    PERFORM set_config('test.pid_a', pgportfolio.create_portfolio('views book', 10000, 'EUR')::text, true);
    PERFORM set_config('test.pid_b', pgportfolio.create_portfolio('other views book', 500)::text, true);
    PERFORM set_config('test.pid_empty', pgportfolio.create_portfolio('empty views book', 42.5)::text, true);
END
$$;

SELECT is(
    (SELECT (name, currency, cash_balance, market_value, unrealized_pnl, realized_pnl, equity, open_positions, version)
     FROM pgportfolio.portfolio_summary WHERE portfolio_id = pg_temp.pid('empty')),
    ROW('empty views book'::text, 'USD'::text, 42.5::numeric, 0::numeric, 0::numeric, 0::numeric, 42.5::numeric,
        0::bigint, 1::bigint),
    'a portfolio without positions: market value 0 (not NULL), unrealized 0, equity = cash, 0 open positions'
);
SELECT is_empty($$SELECT 1 FROM pgportfolio.position_pnl WHERE portfolio_id = pg_temp.pid('empty')$$,
    'position_pnl has no rows for a portfolio without positions');

-- long, no mark yet: the mark falls back to the average price
SELECT lives_ok($$SELECT pgportfolio.apply_fill(pg_temp.pid('a'), 'VWA', 10, 100, 1)$$, 'buy 10 VWA @ 100 fee 1');
SELECT is(
    (SELECT (quantity, avg_price, cost_basis, mark_price, market_value, unrealized_pnl, realized_pnl, version)
     FROM pgportfolio.position_pnl WHERE portfolio_id = pg_temp.pid('a') AND symbol = 'VWA'),
    ROW(10::numeric, 100::numeric, 1000::numeric, 100::numeric, 1000::numeric, 0::numeric, -1::numeric, 1::bigint),
    'without a market price the mark is the average price, market value the cost basis, unrealized 0'
);
SELECT is(
    (SELECT (cash_balance, market_value, unrealized_pnl, realized_pnl, equity, open_positions, version)
     FROM pgportfolio.portfolio_summary WHERE portfolio_id = pg_temp.pid('a')),
    ROW(8999::numeric, 1000::numeric, 0::numeric, -1::numeric, 9999::numeric, 1::bigint, 2::bigint),
    'summary before any mark: equity = cash + cost basis = 9999'
);

-- mark it
SELECT lives_ok($$SELECT pgportfolio.update_market_price('VWA', 110)$$, 'mark VWA at 110');
SELECT is(
    (SELECT (mark_price, market_value, unrealized_pnl, avg_price) FROM pgportfolio.position_pnl
     WHERE portfolio_id = pg_temp.pid('a') AND symbol = 'VWA'),
    ROW(110::numeric, 1100::numeric, 100::numeric, 100::numeric),
    'with a mark of 110: market value 1100, unrealized 100, avg unchanged'
);
SELECT is(
    (SELECT (market_value, unrealized_pnl, equity, version) FROM pgportfolio.portfolio_summary
     WHERE portfolio_id = pg_temp.pid('a')),
    ROW(1100::numeric, 100::numeric, 10099::numeric, 2::bigint),
    'summary follows the mark at once; the portfolio version does not move'
);

-- a short
SELECT lives_ok($$SELECT pgportfolio.apply_fill(pg_temp.pid('a'), 'VWB', -5, 40)$$, 'short 5 VWB @ 40');
SELECT is(
    (SELECT (quantity, avg_price, cost_basis, mark_price, market_value, unrealized_pnl) FROM pgportfolio.position_pnl
     WHERE portfolio_id = pg_temp.pid('a') AND symbol = 'VWB'),
    ROW(-5::numeric, 40::numeric, -200::numeric, 40::numeric, -200::numeric, 0::numeric),
    'an unmarked short: positive avg price, negative cost basis and market value, unrealized 0'
);
SELECT lives_ok($$SELECT pgportfolio.update_market_price('VWB', 50)$$, 'mark VWB at 50');
SELECT is(
    (SELECT (mark_price, market_value, unrealized_pnl) FROM pgportfolio.position_pnl
     WHERE portfolio_id = pg_temp.pid('a') AND symbol = 'VWB'),
    ROW(50::numeric, -250::numeric, -50::numeric),
    'a short marked up loses: market value -250, unrealized -50'
);
SELECT is(
    (SELECT (cash_balance, market_value, unrealized_pnl, equity, open_positions) FROM pgportfolio.portfolio_summary
     WHERE portfolio_id = pg_temp.pid('a')),
    ROW(9199::numeric, 850::numeric, 50::numeric, 10049::numeric, 2::bigint),
    'summary sums both positions: market value 1100 - 250, unrealized 100 - 50, equity = cash + market value'
);

-- a repeating average: market value falls back to the exact cost basis, not avg * quantity
SELECT lives_ok($$SELECT pgportfolio.apply_fill(pg_temp.pid('a'), 'VWC', 1, 10)$$, 'buy 1 VWC @ 10');
SELECT lives_ok($$SELECT pgportfolio.apply_fill(pg_temp.pid('a'), 'VWC', 2, 11)$$, 'buy 2 VWC @ 11');
SELECT is(
    (SELECT (avg_price, cost_basis, mark_price, market_value, unrealized_pnl, version) FROM pgportfolio.position_pnl
     WHERE portfolio_id = pg_temp.pid('a') AND symbol = 'VWC'),
    ROW(10.66666667::numeric, 32::numeric, 10.66666667::numeric, 32::numeric, 0::numeric, 2::bigint),
    'avg and fallback mark are rounded to 8 places, but market value is the exact basis 32 and unrealized exactly 0'
);

-- another portfolio holding the same symbol does not leak into this summary
SELECT lives_ok($$SELECT pgportfolio.apply_fill(pg_temp.pid('b'), 'VWB', 2, 45)$$, 'the other portfolio buys 2 VWB @ 45');
SELECT is(
    (SELECT (market_value, unrealized_pnl, equity, open_positions) FROM pgportfolio.portfolio_summary
     WHERE portfolio_id = pg_temp.pid('b')),
    ROW(100::numeric, 10::numeric, 510::numeric, 1::bigint),
    'the other portfolio: 2 VWB marked at 50, unrealized 10, equity 410 + 100'
);
SELECT is(
    (SELECT (market_value, open_positions) FROM pgportfolio.portfolio_summary WHERE portfolio_id = pg_temp.pid('a')),
    ROW(882::numeric, 3::bigint),
    'this portfolio''s summary counts only its own positions (1100 - 250 + 32)'
);

-- close the long
SELECT lives_ok($$SELECT pgportfolio.close_position(pg_temp.pid('a'), 'VWA', 120, 0, 'close-vwa')$$,
    'close VWA @ 120');
SELECT is_empty($$SELECT 1 FROM pgportfolio.position_pnl WHERE portfolio_id = pg_temp.pid('a') AND symbol = 'VWA'$$,
    'a closed position disappears from position_pnl');
SELECT is(
    (SELECT (cash_balance, market_value, unrealized_pnl, realized_pnl, equity, open_positions, version)
     FROM pgportfolio.portfolio_summary WHERE portfolio_id = pg_temp.pid('a')),
    ROW(10367::numeric, -218::numeric, -50::numeric, 199::numeric, 10149::numeric, 2::bigint, 6::bigint),
    'after the close: realized -1 + 200, market value -250 + 32, equity 10367 - 218'
);
SELECT is(
    (SELECT (name, currency) FROM pgportfolio.portfolio_summary WHERE portfolio_id = pg_temp.pid('a')),
    ROW('views book'::text, 'EUR'::text),
    'summary shows name and currency'
);
SELECT is(
    (SELECT cash_balance + market_value = equity FROM pgportfolio.portfolio_summary WHERE portfolio_id = pg_temp.pid('a')),
    true,
    'equity = cash + market value'
);
SELECT is(
    (SELECT sum(market_value) FROM pgportfolio.position_pnl WHERE portfolio_id = pg_temp.pid('a')),
    (SELECT market_value FROM pgportfolio.portfolio_summary WHERE portfolio_id = pg_temp.pid('a')),
    'summary market value is the sum of position_pnl market values'
);
SELECT is(
    (SELECT sum(unrealized_pnl) FROM pgportfolio.position_pnl WHERE portfolio_id = pg_temp.pid('a')),
    (SELECT unrealized_pnl FROM pgportfolio.portfolio_summary WHERE portfolio_id = pg_temp.pid('a')),
    'summary unrealized P&L is the sum of position_pnl unrealized P&L'
);

-- the last mark stays with the symbol
SELECT lives_ok($$SELECT pgportfolio.apply_fill(pg_temp.pid('a'), 'VWA', 1, 130)$$, 'reopen VWA 1 @ 130');
SELECT is(
    (SELECT (mark_price, unrealized_pnl, realized_pnl, version) FROM pgportfolio.position_pnl
     WHERE portfolio_id = pg_temp.pid('a') AND symbol = 'VWA'),
    ROW(110::numeric, -20::numeric, 0::numeric, 1::bigint),
    'a reopened position is marked at the symbol''s last price (110), with fresh realized P&L and version'
);

-- ---------------------------------------------------------------- event_log
SELECT is(
    (SELECT count(*) FROM pgportfolio.event_log WHERE portfolio_id = pg_temp.pid('a')),
    (SELECT version::bigint FROM pgportfolio.portfolios WHERE portfolio_id = pg_temp.pid('a')),
    'event_log has one row per version'
);
SELECT is(
    (SELECT array_agg(kind || ':' || operation ORDER BY portfolio_version) FROM pgportfolio.event_log
     WHERE portfolio_id = pg_temp.pid('a')),
    ARRAY['create:create_portfolio', 'open:apply_fill', 'open:apply_fill', 'open:apply_fill', 'add:apply_fill',
          'close:close_position', 'open:apply_fill'],
    'event_log lists kind and operation of every mutation in version order'
);
SELECT is(
    (SELECT (kind, symbol, quantity, price, fee, amount, cash_delta, realized_pnl, cash_balance, position_quantity,
             request_id, acting_role)
     FROM pgportfolio.event_log WHERE portfolio_id = pg_temp.pid('a') AND portfolio_version = 6),
    ROW('close'::text, 'VWA'::text, -10::numeric, 120::numeric, 0::numeric, NULL::numeric, 1200::numeric,
        200::numeric, 10367::numeric, 0::numeric, 'close-vwa'::text, session_user::name),
    'the close event as event_log shows it'
);
SELECT is(
    (SELECT (kind, amount, cash_delta, cash_balance, symbol) FROM pgportfolio.event_log
     WHERE portfolio_id = pg_temp.pid('a') AND portfolio_version = 1),
    ROW('create'::text, 10000::numeric, 10000::numeric, 10000::numeric, NULL::text),
    'the create event as event_log shows it'
);
SELECT is(
    (SELECT count(*) FROM pgportfolio.event_log WHERE portfolio_id IN (pg_temp.pid('a'), pg_temp.pid('b'), pg_temp.pid('empty'))),
    (SELECT count(*) FROM pgportfolio.events WHERE portfolio_id IN (pg_temp.pid('a'), pg_temp.pid('b'), pg_temp.pid('empty'))),
    'event_log shows every event, unfiltered'
);

-- ---------------------------------------------------------------- lock_waits
SELECT is_empty($$SELECT 1 FROM pgportfolio.lock_waits WHERE waiting_pid = pg_backend_pid()$$,
    'lock_waits never lists the querying session itself (it is not waiting)');
SELECT lives_ok($$SELECT waiting_pid, waiting_for, blocking_pids, blocking_queries FROM pgportfolio.lock_waits$$,
    'lock_waits can be queried');

-- ---------------------------------------------------------------- instrument_list
SELECT columns_are('pgportfolio', 'instrument_list', ARRAY['symbol', 'multiplier', 'description', 'updated_at'],
    'instrument_list has the expected columns');
SELECT col_type_is('pgportfolio', 'instrument_list', 'multiplier', 'numeric', 'instrument_list.multiplier is numeric');
SELECT lives_ok($$SELECT pgportfolio.upsert_instrument('VWFUT', 12.5, 'a future')$$, 'the owner adds an instrument');
SELECT is(
    (SELECT (symbol, multiplier, description) FROM pgportfolio.instrument_list WHERE symbol = 'VWFUT'),
    ROW('VWFUT'::text, 12.5::numeric, 'a future'::text),
    'instrument_list shows it as stored'
);

-- ---------------------------------------------------------------- multipliers
-- Positions are written directly (as the superuser running this file), each with the
-- multiplier it would have had when it opened; the cost basis already includes it.
-- Long 3 at 100 x 50, marked 102; short 2 at 40 x 0.5, marked 41; long 4 at 25 x 10,
-- never marked.
SELECT set_config('test.pid_mult', pgportfolio.create_portfolio('multipliers', 1000)::text, true);
INSERT INTO pgportfolio.positions (portfolio_id, symbol, quantity, cost_basis, realized_pnl, multiplier)
VALUES (pg_temp.pid('mult'), 'VWM.FUT', 3, 15000, 0, 50),
       (pg_temp.pid('mult'), 'VWM.MINI', -2, -40, 7, 0.5),
       (pg_temp.pid('mult'), 'VWM.NOMARK', 4, 1000, 0, 10);
SELECT pgportfolio.update_market_price('VWM.FUT', 102);
SELECT pgportfolio.update_market_price('VWM.MINI', 41);
SELECT results_eq(
    $$SELECT symbol, quantity, avg_price, cost_basis, mark_price, market_value, unrealized_pnl, realized_pnl, multiplier
      FROM pgportfolio.position_pnl WHERE portfolio_id = pg_temp.pid('mult') ORDER BY symbol$$,
    $$VALUES ('VWM.FUT'::text, 3::numeric, 100.00000000::numeric, 15000::numeric, 102::numeric, 15300::numeric,
              300::numeric, 0::numeric, 50::numeric),
             ('VWM.MINI', -2, 40.00000000, -40, 41, -41.0, -1.0, 7, 0.5),
             ('VWM.NOMARK', 4, 25.00000000, 1000, 25.00000000, 1000, 0, 0, 10)$$,
    'position_pnl values each position at quantity * mark * multiplier; average price per unit is cost / (quantity * multiplier)'
);
SELECT is(
    (SELECT market_value::text || ' ' || unrealized_pnl::text FROM pgportfolio.position_pnl
     WHERE portfolio_id = pg_temp.pid('mult') AND symbol = 'VWM.MINI'),
    '-41.0 -1.0',
    'the values are exact products, with the scale numeric gives them'
);
SELECT is(
    (SELECT (market_value, unrealized_pnl, equity, open_positions) FROM pgportfolio.portfolio_summary
     WHERE portfolio_id = pg_temp.pid('mult')),
    ROW(16259.0::numeric, 299.0::numeric, 17259.0::numeric, 3::bigint),
    'portfolio_summary sums the same valuations: 15300 - 41 + 1000 at market, 300 - 1 + 0 unrealized'
);
SELECT is(
    (SELECT (sum(market_value), sum(unrealized_pnl)) FROM pgportfolio.position_pnl WHERE portfolio_id = pg_temp.pid('mult')),
    (SELECT (market_value, unrealized_pnl) FROM pgportfolio.portfolio_summary WHERE portfolio_id = pg_temp.pid('mult')),
    'portfolio_summary agrees with position_pnl summed'
);
UPDATE pgportfolio.positions SET multiplier = 1, cost_basis = 300
WHERE portfolio_id = pg_temp.pid('mult') AND symbol = 'VWM.FUT';
SELECT is(
    (SELECT (avg_price, market_value, unrealized_pnl) FROM pgportfolio.position_pnl
     WHERE portfolio_id = pg_temp.pid('mult') AND symbol = 'VWM.FUT'),
    ROW(100.00000000::numeric, 306::numeric, 6::numeric),
    'with multiplier 1 a position is valued as before multipliers: 3 * 102 against a cost of 300'
);

-- ---------------------------------------------------------------- portfolio_valuation
-- The summary's valuation, by either of its plans: a narrow portfolio's marks probed, a
-- wide one's (1,000 positions or more) merged. Both must give what position_pnl, which
-- values each position on its own, sums to.
DO $$
DECLARE
    v_wide bigint := pgportfolio.create_portfolio('wide views book', 1e9);
BEGIN
    PERFORM set_config('test.pid_wide', v_wide::text, true);
    PERFORM pgportfolio.apply_fills_arrays(
        array_fill(v_wide, ARRAY[1200]),
        ARRAY(SELECT 'VWW' || n FROM generate_series(1, 1200) AS n),
        ARRAY(SELECT (CASE WHEN n % 3 = 0 THEN -n ELSE n END)::numeric FROM generate_series(1, 1200) AS n),
        ARRAY(SELECT (10 + n % 7 * 0.25)::numeric FROM generate_series(1, 1200) AS n)
    );
    -- Two marks in three: the rest are valued at cost.
    PERFORM pgportfolio.update_market_prices(
        (SELECT jsonb_agg(jsonb_build_object('symbol', 'VWW' || n, 'price', 11 + n % 5 * 0.5))
         FROM generate_series(1, 1200) AS n WHERE n % 3 <> 1)
    );
END
$$;
SELECT is(
    (SELECT count(*) FROM pgportfolio.position_pnl WHERE portfolio_id = pg_temp.pid('wide')),
    1200::bigint,
    'the wide portfolio holds 1,200 positions, long and short'
);
SELECT is(
    (SELECT (market_value, cost_basis, open_positions) FROM pgportfolio.portfolio_valuation(pg_temp.pid('wide'))),
    (SELECT (sum(market_value), sum(cost_basis), count(*)) FROM pgportfolio.position_pnl
     WHERE portfolio_id = pg_temp.pid('wide')),
    'portfolio_valuation of 1,200 positions (marks merged) is position_pnl summed'
);
SELECT is(
    (SELECT (market_value, cost_basis, open_positions) FROM pgportfolio.portfolio_valuation(pg_temp.pid('mult'))),
    (SELECT (sum(market_value), sum(cost_basis), count(*)) FROM pgportfolio.position_pnl
     WHERE portfolio_id = pg_temp.pid('mult')),
    'portfolio_valuation of 3 positions (marks probed) is position_pnl summed'
);
SELECT is(
    (SELECT (market_value, unrealized_pnl, equity, open_positions) FROM pgportfolio.portfolio_summary
     WHERE portfolio_id = pg_temp.pid('wide')),
    (SELECT (v.market_value, v.market_value - v.cost_basis, pf.cash_balance + v.market_value, v.open_positions)
     FROM pgportfolio.portfolios AS pf, pgportfolio.portfolio_valuation(pf.portfolio_id) AS v
     WHERE pf.portfolio_id = pg_temp.pid('wide')),
    'portfolio_summary shows portfolio_valuation''s values'
);
SELECT is(
    (SELECT (market_value, cost_basis, open_positions) FROM pgportfolio.portfolio_valuation(pg_temp.pid('empty'))),
    ROW(0::numeric, 0::numeric, 0::bigint),
    'portfolio_valuation of a portfolio without positions is zeros, not NULLs'
);
SELECT throws_ok(
    'SELECT * FROM pgportfolio.portfolio_valuation(-1)', 'PF004', 'portfolio -1 not found',
    'portfolio_valuation of an unknown portfolio is PF004'
);
SELECT throws_ok(
    'SELECT * FROM pgportfolio.portfolio_valuation(NULL)', '22023', 'p_portfolio_id must not be null',
    'portfolio_valuation of NULL is 22023'
);
SELECT function_privs_are(
    'pgportfolio', 'portfolio_valuation', ARRAY['bigint'], 'pgportfolio_analyst', ARRAY['EXECUTE'],
    'analysts may call portfolio_valuation (portfolio_summary calls it)'
);
SELECT function_privs_are(
    'pgportfolio', 'portfolio_valuation', ARRAY['bigint'], 'pgportfolio_trader', ARRAY['EXECUTE'],
    'traders may call portfolio_valuation (portfolio_summary calls it)'
);
SELECT function_privs_are(
    'pgportfolio', 'portfolio_valuation', ARRAY['bigint'], 'public', ARRAY[]::text[],
    'PUBLIC may not call portfolio_valuation'
);

-- ---------------------------------------------------------------- _wide_read_merges_marks
-- A portfolio of 1,000 positions or more has its marks merged, unless the ledger marks
-- more than ten times as many symbols (which the merge would walk): then probed.
SELECT is(
    pgportfolio._wide_read_merges_marks(pg_temp.pid('wide')), true,
    'among 1,200 marks, the marks of 1,200 positions are merged'
);
-- A feed of the whole market: 40,000 marks more, none of them held, their symbols between
-- the wide portfolio's (VWW1, VWW1.U, VWW10, ...).
SELECT lives_ok(
    $$SELECT pgportfolio.update_market_prices(
        (SELECT jsonb_agg(jsonb_build_object('symbol', 'VWW' || n || '.U', 'price', 3)) FROM generate_series(1, 40000) AS n)
    )$$,
    '40,000 more marks'
);
SELECT is(
    pgportfolio._wide_read_merges_marks(pg_temp.pid('wide')), false,
    'among 41,200 marks, more than ten per position, the marks of 1,200 positions are probed'
);
SELECT is(
    (SELECT (market_value, cost_basis, open_positions) FROM pgportfolio.portfolio_valuation(pg_temp.pid('wide'))),
    (SELECT (sum(market_value), sum(cost_basis), count(*)) FROM pgportfolio.position_pnl
     WHERE portfolio_id = pg_temp.pid('wide')),
    'portfolio_valuation of 1,200 positions among 41,200 marks (marks probed) is position_pnl summed'
);

SELECT ok(
    (SELECT 'plan_cache_mode=force_generic_plan' = ANY (p.proconfig) FROM pg_proc AS p
     WHERE p.oid = 'pgportfolio.portfolio_valuation(bigint)'::regprocedure),
    'portfolio_valuation''s plans are generic, made once per session (custom plans were made again on every call)'
);

SELECT * FROM finish();
ROLLBACK;
