-- Point in time (sql/240_history.sql): portfolio_as_of, positions_as_of and the version
-- forms rebuild state from the event log and value it at the marks current then.
-- Every event of one transaction has one created_at (now()), so to have a history the
-- test re-stamps its portfolios' events an hour apart (as superuser, with the append-only
-- trigger disabled inside the test's transaction, which is rolled back): version v at
-- T + v hours, T = 2025-03-03 00:00 UTC.
BEGIN;
SELECT plan(62);

CREATE FUNCTION pg_temp.pid(p_name text) RETURNS bigint LANGUAGE sql STABLE
AS $$ SELECT current_setting('test.pid_' || p_name)::bigint $$;
CREATE FUNCTION pg_temp.t(p_hours numeric) RETURNS timestamptz LANGUAGE sql IMMUTABLE
AS $$ SELECT '2025-03-03 00:00:00+00'::timestamptz + p_hours * INTERVAL '1 hour' $$;

DO $$
DECLARE
    a bigint;
    b bigint;
BEGIN
    PERFORM pgportfolio.upsert_instrument('HFUT', 10, 'a future, 10 per point');
    a := pgportfolio.create_portfolio('history a', 10000);                 -- v1
    PERFORM pgportfolio.apply_fill(a, 'HAAA', 10, 100, 1);                  -- v2 open
    PERFORM pgportfolio.apply_fill(a, 'HAAA', -10, 110);                    -- v3 close, realized 100
    PERFORM pgportfolio.apply_fill(a, 'HAAA', 5, 120);                      -- v4 reopen
    PERFORM pgportfolio.apply_fill(a, 'HFUT', 2, 50);                       -- v5
    PERFORM pgportfolio.deposit_cash(a, 1000);                              -- v6
    PERFORM pgportfolio.apply_fill(a, 'HAAA', -8, 125);                     -- v7 flip to -3
    b := pgportfolio.create_portfolio('history b', 1000);                  -- v1
    PERFORM pgportfolio.deposit_cash(b, 1);                                 -- v2
    PERFORM pgportfolio.deposit_cash(b, 2);                                 -- v3
    PERFORM pgportfolio.deposit_cash(b, 4);                                 -- v4
    PERFORM set_config('test.pid_a', a::text, true);
    PERFORM set_config('test.pid_b', b::text, true);
    -- Marks, given in an order other than their as_of: a late older mark is history only.
    PERFORM pgportfolio.update_market_price('HAAA', 105, pg_temp.t(2.5));
    PERFORM pgportfolio.update_market_price('HAAA', 130, pg_temp.t(6.5));
    PERFORM pgportfolio.update_market_price('HAAA', 99, pg_temp.t(1.5));
    PERFORM pgportfolio.update_market_price('HFUT', 55, pg_temp.t(5.5));
END
$$;

ALTER TABLE pgportfolio.events DISABLE TRIGGER events_append_only;
UPDATE pgportfolio.events SET created_at = pg_temp.t(portfolio_version)
WHERE portfolio_id = pg_temp.pid('a');
-- b: version 3 stamped after version 4 (a transaction that began first, locked second)
UPDATE pgportfolio.events
SET created_at = pg_temp.t(CASE portfolio_version WHEN 3 THEN 4 WHEN 4 THEN 3 ELSE portfolio_version END)
WHERE portfolio_id = pg_temp.pid('b');
ALTER TABLE pgportfolio.events ENABLE ALWAYS TRIGGER events_append_only;

-- ---------------------------------------------------------------- portfolio_as_of
SELECT throws_ok(
    format('SELECT * FROM pgportfolio.portfolio_as_of(%s, %L)', pg_temp.pid('a'), pg_temp.t(0.5)),
    'PF004', format('portfolio %s did not exist at %s', pg_temp.pid('a'), pg_temp.t(0.5)),
    'before its creation a portfolio is PF004'
);
SELECT is(
    (SELECT (version, cash_balance, market_value, unrealized_pnl, realized_pnl, equity, open_positions)
     FROM pgportfolio.portfolio_as_of(pg_temp.pid('a'), pg_temp.t(1))),
    ROW(1::bigint, 10000::numeric, 0::numeric, 0::numeric, 0::numeric, 10000::numeric, 0::bigint),
    'at its creation time: version 1, the initial cash, nothing held'
);
SELECT is(
    (SELECT (version, cash_balance, market_value, unrealized_pnl, realized_pnl, equity, open_positions)
     FROM pgportfolio.portfolio_as_of(pg_temp.pid('a'), pg_temp.t(2.25))),
    ROW(2::bigint, 8999::numeric, 990::numeric, -10::numeric, -1::numeric, 9989::numeric, 1::bigint),
    'after the first fill, valued at the late-arriving older mark (99, as of T+1.5h)'
);
SELECT is(
    (SELECT (version, market_value, unrealized_pnl, equity)
     FROM pgportfolio.portfolio_as_of(pg_temp.pid('a'), pg_temp.t(2.5))),
    ROW(2::bigint, 1050::numeric, 50::numeric, 10049::numeric),
    'a mark counts from its as_of on (105 as of T+2.5h), inclusive'
);
SELECT is(
    (SELECT (version, cash_balance, realized_pnl, open_positions, equity)
     FROM pgportfolio.portfolio_as_of(pg_temp.pid('a'), pg_temp.t(3.99))),
    ROW(3::bigint, 10099::numeric, 99::numeric, 0::bigint, 10099::numeric),
    'flat after the close: realized 100 less the fee'
);
SELECT is(
    (SELECT (version, market_value, unrealized_pnl, equity)
     FROM pgportfolio.portfolio_as_of(pg_temp.pid('a'), pg_temp.t(5.5))),
    ROW(5::bigint, 525 + 1100::numeric, -75 + 100::numeric, 8499 + 525 + 1100::numeric),
    'the future is valued quantity x mark x multiplier (2 x 55 x 10), less its cost basis (2 x 50 x 10)'
);
SELECT is(
    (SELECT (version, cash_balance, market_value, unrealized_pnl, realized_pnl, equity, open_positions, updated_at)
     FROM pgportfolio.portfolio_as_of(pg_temp.pid('a'), pg_temp.t(100))),
    ROW(7::bigint, 10499::numeric, 710::numeric, 85::numeric, 124::numeric, 11209::numeric, 2::bigint, pg_temp.t(7)),
    'after the flip: every event, the latest marks; updated_at is the last event''s time'
);
SELECT is(
    (SELECT equity FROM pgportfolio.portfolio_as_of(pg_temp.pid('a'), pg_temp.t(100))),
    (SELECT 11000 + realized_pnl + unrealized_pnl FROM pgportfolio.portfolio_as_of(pg_temp.pid('a'), pg_temp.t(100))),
    'equity = net deposits + realized + unrealized'
);
SELECT is(
    (SELECT (name, currency, marks_at) FROM pgportfolio.portfolio_as_of(pg_temp.pid('a'), pg_temp.t(3))),
    ROW('history a'::text, 'USD'::text, pg_temp.t(3)),
    'name, currency and the time of the marks'
);

-- ---------------------------------------------------------------- versions stamped out of order
SELECT is((SELECT version FROM pgportfolio.portfolio_as_of(pg_temp.pid('b'), pg_temp.t(3.5))), 2::bigint,
    'as of a time between two out-of-order stamps: the prefix before the first later stamp');
SELECT is((SELECT cash_balance FROM pgportfolio.portfolio_as_of(pg_temp.pid('b'), pg_temp.t(3.5))), 1001::numeric,
    'and its cash is that version''s, not a mix of events');
SELECT is((SELECT version FROM pgportfolio.portfolio_as_of(pg_temp.pid('b'), pg_temp.t(4))), 4::bigint,
    'once both are stamped, every version');

-- ---------------------------------------------------------------- positions_as_of
SELECT is_empty(
    format('SELECT * FROM pgportfolio.positions_as_of(%s, %L)', pg_temp.pid('a'), pg_temp.t(0.5)),
    'no positions before the portfolio existed'
);
SELECT is_empty(
    format('SELECT * FROM pgportfolio.positions_as_of(%s, %L)', pg_temp.pid('a'), pg_temp.t(3)),
    'a closed position is not listed'
);
SELECT results_eq(
    format($q$SELECT symbol, quantity, avg_price, cost_basis, mark_price, mark_as_of, multiplier, market_value,
                     unrealized_pnl, realized_pnl, version, opened_at, updated_at
              FROM pgportfolio.positions_as_of(%s, %L)$q$, pg_temp.pid('a'), pg_temp.t(2.6)),
    $$VALUES ('HAAA'::text, 10::numeric, 100.00000000::numeric, 1000::numeric, 105::numeric,
              pg_temp.t(2.5), 1::numeric, 1050::numeric, 50::numeric, -1::numeric, 1::bigint, pg_temp.t(2), pg_temp.t(2))$$,
    'an open position: quantity, cost, the mark and its as_of, multiplier, value, P&L, version, times'
);
SELECT results_eq(
    format($q$SELECT symbol, quantity, cost_basis, realized_pnl, version, opened_at
              FROM pgportfolio.positions_as_of(%s, %L)$q$, pg_temp.pid('a'), pg_temp.t(4)),
    $$VALUES ('HAAA'::text, 5::numeric, 600::numeric, 0::numeric, 1::bigint, pg_temp.t(4))$$,
    'a position reopened from flat starts a new life: realized and version count from the reopening'
);
SELECT results_eq(
    format($q$SELECT symbol, quantity, avg_price, cost_basis, mark_price, multiplier, market_value, unrealized_pnl,
                     realized_pnl, version, opened_at, updated_at
              FROM pgportfolio.positions_as_of(%s, %L) ORDER BY symbol$q$, pg_temp.pid('a'), pg_temp.t(9)),
    $$VALUES ('HAAA'::text, -3::numeric, 125.00000000::numeric, -375::numeric, 130::numeric, 1::numeric, -390::numeric,
              -15::numeric, 25::numeric, 2::bigint, pg_temp.t(4), pg_temp.t(7)),
             ('HFUT'::text, 2::numeric, 50.00000000::numeric, 1000::numeric, 55::numeric, 10::numeric, 1100::numeric,
              100::numeric, 0::numeric, 1::bigint, pg_temp.t(5), pg_temp.t(5))$$,
    'after the flip, in symbol order; avg_price is cost basis / (quantity x multiplier)'
);
SELECT results_eq(
    format($q$SELECT mark_price, mark_as_of, market_value, unrealized_pnl
              FROM pgportfolio.positions_as_of(%s, %L) WHERE symbol = 'HFUT'$q$, pg_temp.pid('a'), pg_temp.t(5.2)),
    $$VALUES (50.00000000::numeric, NULL::timestamptz, 1000::numeric, 0::numeric)$$,
    'a position with no mark yet counts at cost (mark = average price, unrealized 0), as in position_pnl'
);
SELECT is(
    (SELECT array_agg(DISTINCT portfolio_id) FROM pgportfolio.positions_as_of(pg_temp.pid('a'), pg_temp.t(9))),
    ARRAY[pg_temp.pid('a')],
    'every row names the portfolio'
);
SELECT is(
    (SELECT sum(market_value) FROM pgportfolio.positions_as_of(pg_temp.pid('a'), pg_temp.t(6))),
    (SELECT market_value FROM pgportfolio.portfolio_as_of(pg_temp.pid('a'), pg_temp.t(6))),
    'the positions add up to the portfolio''s market value'
);

-- ---------------------------------------------------------------- the version forms
SELECT is(
    (SELECT (version, market_value, marks_at) FROM pgportfolio.portfolio_at_version(pg_temp.pid('a'), 2)),
    ROW(2::bigint, 990::numeric, pg_temp.t(2)),
    'portfolio_at_version values at the version''s own time by default'
);
SELECT is(
    (SELECT (version, market_value, marks_at) FROM pgportfolio.portfolio_at_version(pg_temp.pid('a'), 2, pg_temp.t(6.5))),
    ROW(2::bigint, 1300::numeric, pg_temp.t(6.5)),
    'or at p_marks_at'
);
SELECT is(
    (SELECT (cash_balance, realized_pnl) FROM pgportfolio.portfolio_at_version(pg_temp.pid('b'), 3)),
    ROW(1003::numeric, 0::numeric),
    'a version is a version, whatever its stamp'
);
SELECT is(
    (SELECT array_agg((symbol, quantity, market_value)::text ORDER BY symbol)
     FROM pgportfolio.positions_at_version(pg_temp.pid('a'), 7)),
    ARRAY[('HAAA', -3, -390)::text, ('HFUT', 2, 1100)::text],
    'positions_at_version: the positions after that version, at its time''s marks'
);
SELECT is(
    (SELECT array_agg((symbol, mark_price)::text ORDER BY symbol)
     FROM pgportfolio.positions_at_version(pg_temp.pid('a'), 4, pg_temp.t(2.2))),
    ARRAY[('HAAA', 99)::text],
    'positions_at_version with p_marks_at'
);
SELECT is_empty(format('SELECT * FROM pgportfolio.positions_at_version(%s, 1)', pg_temp.pid('a')),
    'no positions at version 1');
SELECT throws_ok(format('SELECT * FROM pgportfolio.portfolio_at_version(%s, 0)', pg_temp.pid('a')),
    '22023', format('portfolio %s has no version 0', pg_temp.pid('a')), 'version 0 is 22023');
SELECT throws_ok(format('SELECT * FROM pgportfolio.portfolio_at_version(%s, 8)', pg_temp.pid('a')),
    '22023', format('portfolio %s has no version 8', pg_temp.pid('a')), 'a version after the current one is 22023');
SELECT throws_ok(format('SELECT * FROM pgportfolio.positions_at_version(%s, NULL)', pg_temp.pid('a')),
    '22023', format('portfolio %s has no version NULL', pg_temp.pid('a')), 'a NULL version is 22023');
SELECT throws_ok(format('SELECT * FROM pgportfolio.positions_at_version(%s, -1, now())', pg_temp.pid('a')),
    '22023', NULL, 'a negative version is 22023, with p_marks_at too');
SELECT throws_ok('SELECT * FROM pgportfolio.portfolio_at_version(999999999, 1)',
    'PF004', 'portfolio 999999999 not found', 'portfolio_at_version of an unknown portfolio is PF004');
SELECT throws_ok('SELECT * FROM pgportfolio.positions_at_version(NULL, 1)',
    '22023', 'p_portfolio_id must not be null', 'positions_at_version of a NULL portfolio is 22023');
SELECT throws_ok(format('SELECT * FROM pgportfolio.portfolio_at_version(%s, 1, %L)', pg_temp.pid('a'), now() + INTERVAL '1 day'),
    '22023', 'p_marks_at is in the future', 'p_marks_at in the future is 22023');
SELECT throws_ok(format('SELECT * FROM pgportfolio.positions_at_version(%s, 1, %L)', pg_temp.pid('a'), 'infinity'),
    '22023', 'p_marks_at must be a finite time', 'p_marks_at infinity is 22023');

-- ---------------------------------------------------------------- bad input
SELECT throws_ok('SELECT * FROM pgportfolio.portfolio_as_of(999999999, now())',
    'PF004', 'portfolio 999999999 not found', 'an unknown portfolio is PF004');
SELECT throws_ok('SELECT * FROM pgportfolio.positions_as_of(999999999, now())',
    'PF004', 'portfolio 999999999 not found', 'positions_as_of of an unknown portfolio is PF004');
SELECT throws_ok('SELECT * FROM pgportfolio.portfolio_as_of(NULL, now())',
    '22023', 'p_portfolio_id must not be null', 'a NULL portfolio is 22023');
SELECT throws_ok(format('SELECT * FROM pgportfolio.portfolio_as_of(%s, NULL)', pg_temp.pid('a')),
    '22023', 'p_at must be a finite time', 'a NULL time is 22023');
SELECT throws_ok(format('SELECT * FROM pgportfolio.positions_as_of(%s, NULL)', pg_temp.pid('a')),
    '22023', 'p_at must be a finite time', 'positions_as_of with a NULL time is 22023');
SELECT throws_ok(format('SELECT * FROM pgportfolio.portfolio_as_of(%s, %L)', pg_temp.pid('a'), 'infinity'),
    '22023', 'p_at must be a finite time', 'infinity is 22023');
SELECT throws_ok(format('SELECT * FROM pgportfolio.portfolio_as_of(%s, %L)', pg_temp.pid('a'), '-infinity'),
    '22023', 'p_at must be a finite time', '-infinity is 22023');
SELECT throws_ok(format('SELECT * FROM pgportfolio.portfolio_as_of(%s, %L)', pg_temp.pid('a'), now() + INTERVAL '2 minutes'),
    '22023', 'p_at is in the future', 'a time more than a minute ahead is 22023');
SELECT throws_ok(format('SELECT * FROM pgportfolio.positions_as_of(%s, %L)', pg_temp.pid('a'), now() + INTERVAL '1 day'),
    '22023', 'p_at is in the future', 'positions_as_of in the future is 22023');
SELECT lives_ok(format('SELECT * FROM pgportfolio.portfolio_as_of(%s, %L)', pg_temp.pid('a'), clock_timestamp() + INTERVAL '30 seconds'),
    'thirty seconds ahead is clock skew, accepted');

-- ---------------------------------------------------------------- the present agrees with the live views
DO $$
DECLARE
    c bigint := pgportfolio.create_portfolio('history live', 50000);
BEGIN
    PERFORM set_config('test.pid_c', c::text, true);
    PERFORM pgportfolio.apply_fill(c, 'HLA', 7, 10.5, 0.25);
    PERFORM pgportfolio.apply_fill(c, 'HLA', -3, 11.125);
    PERFORM pgportfolio.apply_fill(c, 'HLB', -4, 3.3);
    PERFORM pgportfolio.apply_fill(c, 'HLC', 1, 2);
    PERFORM pgportfolio.charge_fee(c, 1.5);
    PERFORM pgportfolio.update_market_price('HLA', 12.01);
    PERFORM pgportfolio.update_market_price('HLB', 2.99);
END
$$;
SELECT results_eq(
    format($q$SELECT portfolio_id, name, currency, cash_balance, market_value, unrealized_pnl, realized_pnl, equity,
                     open_positions, version, updated_at
              FROM pgportfolio.portfolio_as_of(%s, clock_timestamp())$q$, pg_temp.pid('c')),
    format($q$SELECT portfolio_id, name, currency, cash_balance, market_value, unrealized_pnl, realized_pnl, equity,
                     open_positions, version, updated_at
              FROM pgportfolio.portfolio_summary WHERE portfolio_id = %s$q$, pg_temp.pid('c')),
    'portfolio_as_of now is portfolio_summary, column for column'
);
SELECT results_eq(
    format($q$SELECT portfolio_id, symbol, quantity, avg_price, cost_basis, mark_price, market_value, unrealized_pnl,
                     realized_pnl, version, updated_at
              FROM pgportfolio.positions_as_of(%s, clock_timestamp())$q$, pg_temp.pid('c')),
    format($q$SELECT portfolio_id, symbol, quantity, avg_price, cost_basis, mark_price, market_value, unrealized_pnl,
                     realized_pnl, version, updated_at
              FROM pgportfolio.position_pnl WHERE portfolio_id = %s ORDER BY symbol$q$, pg_temp.pid('c')),
    'positions_as_of now is position_pnl, column for column (HLC has no mark: at cost in both)'
);
SELECT results_eq(
    format($q$SELECT cash_balance, market_value, realized_pnl, equity, version
              FROM pgportfolio.portfolio_at_version(%1$s, pgportfolio.portfolio_version(%1$s), clock_timestamp())$q$,
           pg_temp.pid('c')),
    format($q$SELECT cash_balance, market_value, realized_pnl, equity, version
              FROM pgportfolio.portfolio_summary WHERE portfolio_id = %s$q$, pg_temp.pid('c')),
    'portfolio_at_version of the current version, valued now, is portfolio_summary'
);

-- ---------------------------------------------------------------- reads change nothing
SELECT is(
    (SELECT (version::bigint, cash_balance::numeric) FROM pgportfolio.portfolios WHERE portfolio_id = pg_temp.pid('a')),
    ROW(7::bigint, 10499::numeric),
    'the reads wrote nothing to the portfolio'
);

-- ---------------------------------------------------------------- definitions and privileges
SELECT is_definer('pgportfolio', 'portfolio_as_of', ARRAY['bigint', 'timestamp with time zone'],
    'portfolio_as_of is SECURITY DEFINER (the events are not readable)');
SELECT is_definer('pgportfolio', 'positions_as_of', ARRAY['bigint', 'timestamp with time zone'],
    'positions_as_of is SECURITY DEFINER');
SELECT is_definer('pgportfolio', 'portfolio_at_version', ARRAY['bigint', 'bigint', 'timestamp with time zone'],
    'portfolio_at_version is SECURITY DEFINER');
SELECT is_definer('pgportfolio', 'positions_at_version', ARRAY['bigint', 'bigint', 'timestamp with time zone'],
    'positions_at_version is SECURITY DEFINER');
SELECT is(
    (SELECT array_agg(p.proname::text ORDER BY p.proname) FROM pg_proc AS p
     WHERE p.pronamespace = 'pgportfolio'::regnamespace
       AND p.proname IN ('_version_at', '_positions_at', '_portfolio_at', '_check_history_arguments',
                         '_check_version_argument')
       AND NOT p.prosecdef AND NOT has_function_privilege('pgportfolio_trader', p.oid, 'EXECUTE')
       AND NOT has_function_privilege('pgportfolio_analyst', p.oid, 'EXECUTE')),
    ARRAY['_check_history_arguments', '_check_version_argument', '_portfolio_at', '_positions_at', '_version_at'],
    'the helpers run as their caller and nobody but the owner may call them'
);
SELECT is(
    (SELECT count(*) FROM pg_proc AS p
     WHERE p.pronamespace = 'pgportfolio'::regnamespace
       AND p.proname IN ('portfolio_as_of', 'positions_as_of', 'portfolio_at_version', 'positions_at_version')
       AND has_function_privilege('pgportfolio_trader', p.oid, 'EXECUTE')
       AND has_function_privilege('pgportfolio_analyst', p.oid, 'EXECUTE')
       AND NOT has_function_privilege('public', p.oid, 'EXECUTE')),
    4::bigint,
    'traders and analysts may call the four reads; PUBLIC may not'
);

CREATE ROLE pgtap_240_ann IN ROLE pgportfolio_analyst;
CREATE ROLE pgtap_240_tom IN ROLE pgportfolio_trader;
CREATE ROLE pgtap_240_nobody;
SET LOCAL ROLE pgtap_240_ann;
SELECT is((SELECT equity FROM pgportfolio.portfolio_as_of(pg_temp.pid('a'), pg_temp.t(100))), 11209::numeric,
    'an analyst reads a portfolio as of a time');
SELECT is((SELECT count(*) FROM pgportfolio.positions_at_version(pg_temp.pid('a'), 7)), 2::bigint,
    'an analyst reads positions at a version');
RESET ROLE;
SET LOCAL ROLE pgtap_240_tom;
SELECT is((SELECT version FROM pgportfolio.portfolio_at_version(pg_temp.pid('a'), 3)), 3::bigint,
    'a trader reads any portfolio at a version (reading is not limited per portfolio)');
SELECT is((SELECT count(*) FROM pgportfolio.positions_as_of(pg_temp.pid('a'), pg_temp.t(100))), 2::bigint,
    'a trader reads positions as of a time');
RESET ROLE;
SET LOCAL ROLE pgtap_240_nobody;
SELECT throws_ok(format('SELECT * FROM pgportfolio.portfolio_as_of(%s, now())', pg_temp.pid('a')), '42501', NULL,
    'a role that is neither trader nor analyst may not call portfolio_as_of');
SELECT throws_ok(format('SELECT * FROM pgportfolio.positions_at_version(%s, 1)', pg_temp.pid('a')), '42501', NULL,
    'nor positions_at_version');
RESET ROLE;
SET LOCAL ROLE pgtap_240_ann;
SELECT throws_ok(format('SELECT pgportfolio._version_at(%s, now())', pg_temp.pid('a')), '42501', NULL,
    'an analyst may not call the internal _version_at');
SELECT throws_ok('SELECT count(*) FROM pgportfolio.events', '42501', NULL,
    'and still may not read the events table itself');
RESET ROLE;

SELECT * FROM finish();
ROLLBACK;
