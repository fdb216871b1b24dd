-- End of day (sql/245_end_of_day.sql): close_day writes one immutable snapshot per
-- portfolio and UTC day, valued at the day's closing marks; daily_pnl splits the change
-- in equity. As in 240_history.sql, the test re-stamps its events into past days (as
-- superuser, trigger disabled inside the rolled-back transaction), since a day can be
-- closed only once it is over. Days: D1 = 2025-03-03 ... D4 = 2025-03-06.
BEGIN;
SELECT plan(50);

CREATE FUNCTION pg_temp.pid(p_name text) RETURNS bigint LANGUAGE sql STABLE
AS $$ SELECT current_setting('test.pid_' || p_name)::bigint $$;
CREATE FUNCTION pg_temp.t(p_day integer, p_hours numeric) RETURNS timestamptz LANGUAGE sql IMMUTABLE
AS $$ SELECT '2025-03-02 00:00:00+00'::timestamptz + p_day * INTERVAL '1 day' + p_hours * INTERVAL '1 hour' $$;
CREATE FUNCTION pg_temp.d(p_day integer) RETURNS date LANGUAGE sql IMMUTABLE
AS $$ SELECT '2025-03-02'::date + p_day $$;

DO $$
DECLARE
    a bigint;
    b bigint;
BEGIN
    a := pgportfolio.create_portfolio('eod a', 10000);                     -- v1 D1 01:00
    PERFORM pgportfolio.apply_fill(a, 'EX', 10, 100);                       -- v2 D1 02:00
    PERFORM pgportfolio.deposit_cash(a, 500);                               -- v3 D2 03:00
    PERFORM pgportfolio.apply_fill(a, 'EX', -4, 110, 1);                    -- v4 D2 04:00
    PERFORM pgportfolio.withdraw_cash(a, 100);                              -- v5 D2 05:00
    PERFORM pgportfolio.apply_fill(a, 'EY', -2, 50);                        -- v6 D4 01:00
    b := pgportfolio.create_portfolio('eod b', 1000);                      -- v1 D1 01:00
    PERFORM pgportfolio.apply_fill(b, 'EZ', 1, 10);                         -- v2 D1 02:00
    PERFORM set_config('test.pid_a', a::text, true);
    PERFORM set_config('test.pid_b', b::text, true);
    PERFORM pgportfolio.update_market_price('EX', 105, pg_temp.t(1, 12));
    PERFORM pgportfolio.update_market_price('EX', 200, pg_temp.t(3, 0));
    PERFORM pgportfolio.update_market_price('EX', 120, pg_temp.t(3, 0) - INTERVAL '1 microsecond');
    PERFORM pgportfolio.update_market_price('EY', 40, pg_temp.t(4, 2));
END
$$;

ALTER TABLE pgportfolio.events DISABLE TRIGGER events_append_only;
UPDATE pgportfolio.events AS e
SET created_at = pg_temp.t(s.day, s.hour)
FROM (VALUES (1, 1, 1), (2, 1, 2), (3, 2, 3), (4, 2, 4), (5, 2, 5), (6, 4, 1)) AS s (version, day, hour)
WHERE e.portfolio_id = pg_temp.pid('a') AND e.portfolio_version = s.version;
UPDATE pgportfolio.events SET created_at = pg_temp.t(1, portfolio_version) WHERE portfolio_id = pg_temp.pid('b');
ALTER TABLE pgportfolio.events ENABLE ALWAYS TRIGGER events_append_only;

-- ---------------------------------------------------------------- one portfolio, one day
SELECT results_eq(
    format($q$SELECT portfolio_id, day, portfolio_version, cash_balance, market_value, cost_basis, unrealized_pnl,
                     realized_pnl, net_deposits, equity, open_positions, closed_at
              FROM pgportfolio.close_day(%L, %s)$q$, pg_temp.d(1), pg_temp.pid('a')),
    format($q$VALUES (%s::bigint, %L::date, 2::bigint, 9000::numeric, 1050::numeric, 1000::numeric, 50::numeric,
                      0::numeric, 10000::numeric, 10050::numeric, 1::bigint, '2025-03-03 23:59:59.999999+00'::timestamptz)$q$,
           pg_temp.pid('a'), pg_temp.d(1)),
    'close_day writes the state at the end of the UTC day, valued at the day''s closing mark'
);
SELECT results_eq(
    format($q$SELECT symbol, quantity, cost_basis, mark_price, mark_as_of, multiplier, market_value, unrealized_pnl,
                     realized_pnl
              FROM pgportfolio.daily_positions WHERE portfolio_id = %s AND day = %L$q$, pg_temp.pid('a'), pg_temp.d(1)),
    $$VALUES ('EX'::text, 10::numeric, 1000::numeric, 105::numeric, pg_temp.t(1, 12), 1::numeric, 1050::numeric,
              50::numeric, 0::numeric)$$,
    'its positions, with the mark each was valued at and that mark''s as_of'
);
DO $$
BEGIN
    PERFORM set_config('test.first_close',
        (SELECT row(c.*)::text FROM pgportfolio.daily_closes AS c WHERE c.portfolio_id = pg_temp.pid('a')), true);
END
$$;
SELECT is(
    (SELECT row(c.*)::text FROM pgportfolio.close_day(pg_temp.d(1), pg_temp.pid('a')) AS c),
    current_setting('test.first_close'),
    'a second close of the same day returns the existing row, unchanged'
);
SELECT is((SELECT count(*) FROM pgportfolio.daily_positions), 1::bigint, 'and writes no position twice');

-- ---------------------------------------------------------------- a held symbol with no mark
SELECT throws_ok(format('SELECT * FROM pgportfolio.close_day(%L)', pg_temp.d(1)),
    'PF008', 'no closing mark for EZ on 2025-03-03',
    'a held symbol with no mark at the day''s end refuses the close (PF008), naming the symbol');
SELECT is((SELECT count(*) FROM pgportfolio.daily_closes WHERE portfolio_id = pg_temp.pid('b')), 0::bigint,
    'and nothing is written: the close is all or nothing');
SELECT throws_ok(format('SELECT * FROM pgportfolio.close_day(%L, %s)', pg_temp.d(1), pg_temp.pid('b')),
    'PF008', NULL, 'closing only that portfolio is refused too');
SELECT lives_ok($$SELECT pgportfolio.update_market_price('EZ', 11, pg_temp.t(2, 0))$$, 'a mark of the next day');
SELECT throws_ok(format('SELECT * FROM pgportfolio.close_day(%L)', pg_temp.d(1)),
    'PF008', NULL, 'does not close the day before it');
SELECT lives_ok($$SELECT pgportfolio.update_market_price('EZ', 9, pg_temp.t(1, 20))$$, 'a mark of the day, given late');
SELECT results_eq(
    format('SELECT portfolio_id, equity FROM pgportfolio.close_day(%L)', pg_temp.d(1)),
    format('VALUES (%s::bigint, 10050::numeric), (%s::bigint, 999::numeric)', pg_temp.pid('a'), pg_temp.pid('b')),
    'closing every portfolio: the missing one is written, the existing one returned, in portfolio order'
);
SELECT is((SELECT row(c.*)::text FROM pgportfolio.daily_closes AS c WHERE c.portfolio_id = pg_temp.pid('a')),
    current_setting('test.first_close'), 'the existing close is untouched');

-- ---------------------------------------------------------------- more days, daily_pnl
SELECT is(
    (SELECT (portfolio_version, cash_balance, market_value, realized_pnl, unrealized_pnl, net_deposits, equity)
     FROM pgportfolio.close_day(pg_temp.d(2), pg_temp.pid('a'))),
    ROW(5::bigint, 9839::numeric, 720::numeric, 39::numeric, 120::numeric, 10400::numeric, 10559::numeric),
    'D2: the mark as of the last microsecond of the day is the day''s close; a later one is not'
);
SET LOCAL TimeZone = 'America/New_York';
SELECT is(
    (SELECT (portfolio_version, market_value, equity, closed_at)
     FROM pgportfolio.close_day(pg_temp.d(3), pg_temp.pid('a'))),
    ROW(5::bigint, 1200::numeric, 11039::numeric, '2025-03-05 23:59:59.999999+00'::timestamptz),
    'D3 (no events), in a session on New York time: still the UTC day'
);
RESET TimeZone;
SELECT is(
    (SELECT (portfolio_version, cash_balance, market_value, equity, open_positions)
     FROM pgportfolio.close_day(pg_temp.d(4), pg_temp.pid('a'))),
    ROW(6::bigint, 9939::numeric, 1120::numeric, 11059::numeric, 2::bigint),
    'D4: a short added'
);
SELECT results_eq(
    format($q$SELECT day, previous_day, equity_change, realized_change, unrealized_change, cash_moves
              FROM pgportfolio.daily_pnl WHERE portfolio_id = %s ORDER BY day$q$, pg_temp.pid('a')),
    $$VALUES (pg_temp.d(1), NULL::date, 10050::numeric, 0::numeric, 50::numeric, 10000::numeric),
             (pg_temp.d(2), pg_temp.d(1), 509::numeric, 39::numeric, 70::numeric, 400::numeric),
             (pg_temp.d(3), pg_temp.d(2), 480::numeric, 0::numeric, 480::numeric, 0::numeric),
             (pg_temp.d(4), pg_temp.d(3), 20::numeric, 0::numeric, 20::numeric, 0::numeric)$$,
    'daily_pnl: the change since the previous close, split into realized, unrealized and cash moves'
);
SELECT is_empty(
    $$SELECT FROM pgportfolio.daily_pnl
      WHERE equity_change <> realized_change + unrealized_change + cash_moves
         OR equity <> cash_balance + market_value
         OR equity <> net_deposits + realized_pnl + unrealized_pnl$$,
    'every row: equity change = realized + unrealized + cash moves; equity = cash + market value'
);
SELECT is(
    (SELECT sum(equity_change) FROM pgportfolio.daily_pnl WHERE portfolio_id = pg_temp.pid('a')),
    (SELECT equity FROM pgportfolio.daily_closes WHERE portfolio_id = pg_temp.pid('a') AND day = pg_temp.d(4)),
    'the changes of all the days add up to the last close'
);
SELECT is(
    (SELECT (cash_balance, market_value, realized_pnl, equity) FROM pgportfolio.daily_closes
     WHERE portfolio_id = pg_temp.pid('a') AND day = pg_temp.d(2)),
    (SELECT (cash_balance, market_value, realized_pnl, equity)
     FROM pgportfolio.portfolio_as_of(pg_temp.pid('a'), '2025-03-04 23:59:59.999999+00')),
    'a close is portfolio_as_of at the end of its day'
);
SELECT is(
    (SELECT sum(market_value) FROM pgportfolio.daily_positions WHERE portfolio_id = pg_temp.pid('a') AND day = pg_temp.d(4)),
    (SELECT market_value FROM pgportfolio.daily_closes WHERE portfolio_id = pg_temp.pid('a') AND day = pg_temp.d(4)),
    'the positions of a close add up to its market value'
);
SELECT is_empty(format('SELECT * FROM pgportfolio.close_day(%L, %s)', '2025-03-01', pg_temp.pid('a')),
    'a day before the portfolio existed: no close, no error');
SELECT is((SELECT count(*) FROM pgportfolio.daily_closes WHERE day = '2025-03-01'), 0::bigint, 'and nothing written');

-- ---------------------------------------------------------------- bad input
SELECT throws_ok(format('SELECT * FROM pgportfolio.close_day(%L)', current_date + 1), '22023',
    format('day %s has not ended', current_date + 1), 'a future day is 22023');
SELECT throws_ok('SELECT * FROM pgportfolio.close_day((now() AT TIME ZONE ''UTC'')::date)', '22023', NULL,
    'today (UTC) is 22023: it has not ended');
SELECT throws_ok('SELECT * FROM pgportfolio.close_day(NULL)', '22023', 'p_day must be a finite date', 'a NULL day is 22023');
SELECT throws_ok($$SELECT * FROM pgportfolio.close_day('infinity')$$, '22023', 'p_day must be a finite date',
    'an infinite day is 22023');
SELECT throws_ok($$SELECT * FROM pgportfolio.close_day('-infinity')$$, '22023', 'p_day must be a finite date',
    'minus infinity is 22023');
SELECT throws_ok(format('SELECT * FROM pgportfolio.close_day(%L, 999999999)', pg_temp.d(1)), 'PF004',
    'portfolio 999999999 not found', 'an unknown portfolio is PF004');

-- ---------------------------------------------------------------- append-only, constraints
SELECT throws_ok($$UPDATE pgportfolio.daily_closes SET equity = equity$$, '42501',
    'pgportfolio.daily_closes is append-only', 'a close cannot be updated, even by a superuser');
SELECT throws_ok($$DELETE FROM pgportfolio.daily_closes$$, '42501', NULL, 'nor deleted');
SELECT throws_ok($$TRUNCATE pgportfolio.daily_closes CASCADE$$, '42501', NULL, 'nor truncated');
SELECT throws_ok($$UPDATE pgportfolio.daily_close_positions SET quantity = quantity$$, '42501',
    'pgportfolio.daily_close_positions is append-only', 'a close''s position cannot be updated');
SELECT throws_ok($$DELETE FROM pgportfolio.daily_close_positions$$, '42501', NULL, 'nor deleted');
SELECT throws_ok($$TRUNCATE pgportfolio.daily_close_positions$$, '42501', NULL, 'nor truncated');
SELECT is(
    (SELECT array_agg(t.tgname::text ORDER BY t.tgname) FROM pg_trigger AS t
     WHERE t.tgrelid IN ('pgportfolio.daily_closes'::regclass, 'pgportfolio.daily_close_positions'::regclass)
       AND t.tgenabled = 'A' AND NOT t.tgisinternal),
    ARRAY['daily_close_positions_append_only', 'daily_close_positions_no_truncate', 'daily_closes_append_only',
          'daily_closes_no_truncate'],
    'the four triggers fire ALWAYS (session_replication_role cannot skip them)'
);
SELECT throws_ok(
    format($q$INSERT INTO pgportfolio.daily_closes (portfolio_id, day, portfolio_version, cash_balance, market_value,
              cost_basis, unrealized_pnl, realized_pnl, net_deposits, equity, open_positions, closed_at)
              VALUES (%s, '2025-01-01', 1, 10, 0, 0, 0, 0, 10, 11, 0, now())$q$, pg_temp.pid('b')),
    '23514', NULL, 'a direct insert that breaks equity = cash + market value is refused'
);
SELECT throws_ok(
    format($q$INSERT INTO pgportfolio.daily_closes (portfolio_id, day, portfolio_version, cash_balance, market_value,
              cost_basis, unrealized_pnl, realized_pnl, net_deposits, equity, open_positions, closed_at)
              VALUES (%s, '2025-01-01', 1, 10, 0, 0, 0, 0, 9, 10, 0, now())$q$, pg_temp.pid('b')),
    '23514', NULL, 'and one that breaks equity = net deposits + realized + unrealized'
);

-- ---------------------------------------------------------------- privileges
SELECT is_definer('pgportfolio', 'close_day', ARRAY['date', 'bigint'], 'close_day is SECURITY DEFINER');
SELECT function_privs_are('pgportfolio', 'close_day', ARRAY['date', 'bigint'], 'pgportfolio_trader', ARRAY[]::name[],
    'pgportfolio_trader may not execute close_day');
SELECT function_privs_are('pgportfolio', 'close_day', ARRAY['date', 'bigint'], 'pgportfolio_analyst', ARRAY[]::name[],
    'pgportfolio_analyst may not execute close_day');
SELECT function_privs_are('pgportfolio', 'close_day', ARRAY['date', 'bigint'], 'public', ARRAY[]::name[],
    'PUBLIC may not execute close_day');
SELECT table_privs_are('pgportfolio', 'daily_closes', 'pgportfolio_analyst', ARRAY[]::name[],
    'analysts have no privilege on table daily_closes (they read daily_pnl)');
SELECT table_privs_are('pgportfolio', 'daily_close_positions', 'pgportfolio_trader', ARRAY[]::name[],
    'traders have no privilege on table daily_close_positions (they read daily_positions)');
SELECT table_privs_are('pgportfolio', 'daily_pnl', 'pgportfolio_analyst', ARRAY['SELECT'],
    'analysts may only SELECT from daily_pnl');
SELECT table_privs_are('pgportfolio', 'daily_positions', 'pgportfolio_trader', ARRAY['SELECT'],
    'traders may only SELECT from daily_positions');

CREATE ROLE pgtap_245_ann IN ROLE pgportfolio_analyst;
CREATE ROLE pgtap_245_tom IN ROLE pgportfolio_trader;
SET LOCAL ROLE pgtap_245_ann;
SELECT is((SELECT count(*) FROM pgportfolio.daily_pnl WHERE portfolio_id = pg_temp.pid('a')), 4::bigint,
    'an analyst reads daily_pnl');
SELECT throws_ok(format('SELECT * FROM pgportfolio.close_day(%L)', pg_temp.d(5)), '42501', NULL,
    'an analyst may not close a day');
RESET ROLE;
SET LOCAL ROLE pgtap_245_tom;
SELECT is((SELECT count(*) FROM pgportfolio.daily_positions WHERE portfolio_id = pg_temp.pid('a')), 5::bigint,
    'a trader reads daily_positions');
SELECT throws_ok(format('SELECT * FROM pgportfolio.close_day(%L)', pg_temp.d(5)), '42501', NULL,
    'a trader may not close a day');
RESET ROLE;

SELECT has_index('pgportfolio', 'daily_closes', 'daily_closes_day', ARRAY['day'],
    'daily_closes has an index on day: one day''s closes of every portfolio are found by it');

SELECT * FROM finish();
ROLLBACK;
