-- Optimistic concurrency (p_expected_version, checked in sql/130_cash.sql and sql/140_fill.sql):
-- a mismatch is PF001 with DETAIL 'expected version X, found version Y', and nothing changes.
BEGIN;
SELECT plan(36);

CREATE FUNCTION pg_temp.pid() RETURNS bigint LANGUAGE sql STABLE
AS $$ SELECT current_setting('test.pid')::bigint $$;

CREATE FUNCTION pg_temp.version() RETURNS bigint LANGUAGE sql STABLE
AS $$ SELECT version::bigint FROM pgportfolio.portfolios WHERE portfolio_id = pg_temp.pid() $$;

CREATE FUNCTION pg_temp.state() RETURNS text LANGUAGE sql STABLE AS $$
    SELECT concat_ws(' / ',
        (SELECT format('v%s cash %s pnl %s', version::bigint, cash_balance::numeric, realized_pnl::numeric)
         FROM pgportfolio.portfolios WHERE portfolio_id = pg_temp.pid()),
        (SELECT format('%s events', count(*)) FROM pgportfolio.events WHERE portfolio_id = pg_temp.pid()),
        (SELECT string_agg(format('%s %s %s v%s', symbol::text, quantity::numeric, cost_basis::numeric, version::bigint), ', ' ORDER BY symbol::text)
         FROM pgportfolio.positions WHERE portfolio_id = pg_temp.pid())
    )
$$;

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

DO $$
BEGIN
    PERFORM set_config('test.pid', pgportfolio.create_portfolio('cas book', 10000)::text, true);
END
$$;

-- ---------------------------------------------------------------- the right version succeeds, each step
SELECT is((SELECT portfolio_version FROM pgportfolio.deposit_cash(pg_temp.pid(), 100, NULL, 1)), 2::bigint,
    'deposit_cash with expected version 1 on a new portfolio succeeds and returns version 2');
SELECT is((SELECT portfolio_version FROM pgportfolio.withdraw_cash(pg_temp.pid(), 50, NULL, 2)), 3::bigint,
    'withdraw_cash with expected version 2 succeeds');
SELECT is((SELECT portfolio_version FROM pgportfolio.charge_fee(pg_temp.pid(), 1, NULL, 3)), 4::bigint,
    'charge_fee with expected version 3 succeeds');
SELECT is((SELECT portfolio_version FROM pgportfolio.open_position(pg_temp.pid(), 'AAA', 10, 10, 0, NULL, 4)), 5::bigint,
    'open_position with expected version 4 succeeds');
SELECT is((SELECT portfolio_version FROM pgportfolio.add_to_position(pg_temp.pid(), 'AAA', 10, 10, 0, NULL, 5)), 6::bigint,
    'add_to_position with expected version 5 succeeds');
SELECT is((SELECT portfolio_version FROM pgportfolio.reduce_position(pg_temp.pid(), 'AAA', 5, 10, 0, NULL, 6)), 7::bigint,
    'reduce_position with expected version 6 succeeds');
SELECT is((SELECT portfolio_version FROM pgportfolio.apply_fill(pg_temp.pid(), 'BBB', -3, 10, 0, NULL, 7)), 8::bigint,
    'apply_fill with expected version 7 succeeds');
SELECT is((SELECT portfolio_version FROM pgportfolio.close_position(pg_temp.pid(), 'BBB', 10, 0, NULL, 8)), 9::bigint,
    'close_position with expected version 8 succeeds');
SELECT is((SELECT portfolio_version FROM pgportfolio.deposit_cash(pg_temp.pid(), 1)), 10::bigint,
    'no expected version (NULL) means no check');

DO $$ BEGIN PERFORM set_config('test.state', pg_temp.state(), true); END $$;

-- ---------------------------------------------------------------- a stale version is PF001 for every verb
SELECT throws_ok($$SELECT pgportfolio.deposit_cash(pg_temp.pid(), 1, NULL, 9)$$, 'PF001', NULL,
    'deposit_cash with a stale expected version is PF001');
SELECT throws_ok($$SELECT pgportfolio.withdraw_cash(pg_temp.pid(), 1, NULL, 1)$$, 'PF001', NULL,
    'withdraw_cash with a stale expected version is PF001');
SELECT throws_ok($$SELECT pgportfolio.charge_fee(pg_temp.pid(), 1, NULL, 5)$$, 'PF001', NULL,
    'charge_fee with a stale expected version is PF001');
SELECT throws_ok($$SELECT pgportfolio.apply_fill(pg_temp.pid(), 'AAA', 1, 10, 0, NULL, 9)$$, 'PF001', NULL,
    'apply_fill with a stale expected version is PF001');
SELECT throws_ok($$SELECT pgportfolio.open_position(pg_temp.pid(), 'CCC', 1, 10, 0, NULL, 9)$$, 'PF001', NULL,
    'open_position with a stale expected version is PF001');
SELECT throws_ok($$SELECT pgportfolio.add_to_position(pg_temp.pid(), 'AAA', 1, 10, 0, NULL, 9)$$, 'PF001', NULL,
    'add_to_position with a stale expected version is PF001');
SELECT throws_ok($$SELECT pgportfolio.reduce_position(pg_temp.pid(), 'AAA', 1, 10, 0, NULL, 9)$$, 'PF001', NULL,
    'reduce_position with a stale expected version is PF001');
SELECT throws_ok($$SELECT pgportfolio.close_position(pg_temp.pid(), 'AAA', 10, 0, NULL, 9)$$, 'PF001', NULL,
    'close_position with a stale expected version is PF001');
SELECT throws_ok($$SELECT pgportfolio.deposit_cash(pg_temp.pid(), 1, NULL, 11)$$, 'PF001', NULL,
    'an expected version ahead of the portfolio (11 > 10) is PF001 too');
SELECT throws_ok($$SELECT pgportfolio.deposit_cash(pg_temp.pid(), 1, 'new-request', 9)$$, 'PF001', NULL,
    'a new request id with a stale version is PF001 (only known ids are replayed)');
SELECT is(pg_temp.state(), current_setting('test.state'),
    'the PF001 refusals changed nothing: version, cash, events and positions are as before');
SELECT is(pg_temp.version(), 10::bigint, 'the version is still 10 after every PF001');
SELECT is(
    (SELECT count(*) FROM pgportfolio.events WHERE portfolio_id = pg_temp.pid() AND request_id = 'new-request'),
    0::bigint,
    'the request id of a refused call was not consumed'
);

-- ---------------------------------------------------------------- the message and DETAIL
SELECT is(
    pg_temp.error_parts($$SELECT pgportfolio.deposit_cash(pg_temp.pid(), 1, NULL, 3)$$),
    'PF001 | version conflict on portfolio ' || pg_temp.pid() || ' | expected version 3, found version 10',
    'PF001 from a cash verb: DETAIL is ''expected version 3, found version 10'''
);
SELECT is(
    pg_temp.error_parts($$SELECT pgportfolio.apply_fill(pg_temp.pid(), 'AAA', 1, 10, 0, NULL, 12)$$),
    'PF001 | version conflict on portfolio ' || pg_temp.pid() || ' | expected version 12, found version 10',
    'PF001 from a fill verb: DETAIL is ''expected version 12, found version 10'''
);

-- ---------------------------------------------------------------- which check wins
SELECT throws_ok($$SELECT pgportfolio.deposit_cash(pg_temp.pid(), 1, NULL, 0)$$, '22023', NULL,
    'expected version 0 is invalid input (22023), not a conflict');
SELECT throws_ok($$SELECT pgportfolio.withdraw_cash(pg_temp.pid(), 'NaN', NULL, 1)$$, '22023', NULL,
    'bad input is reported before the version is compared');
SELECT throws_ok($$SELECT pgportfolio.deposit_cash(-1, 1, NULL, 1)$$, 'PF004', NULL,
    'an unknown portfolio is PF004 whatever the expected version');
SELECT throws_ok($$SELECT pgportfolio.withdraw_cash(pg_temp.pid(), 1000000, NULL, 1)$$, 'PF001', NULL,
    'a stale version is reported before insufficient cash (PF001, not PF002)');
SELECT throws_ok($$SELECT pgportfolio.open_position(pg_temp.pid(), 'AAA', 1, 10, 0, NULL, 1)$$, 'PF001', NULL,
    'a stale version is reported before position already open (PF001, not PF006)');
SELECT throws_ok($$SELECT pgportfolio.close_position(pg_temp.pid(), 'NONE', 10, 0, NULL, 1)$$, 'PF001', NULL,
    'a stale version is reported before no such position (PF001, not PF003)');
SELECT throws_ok($$SELECT pgportfolio.withdraw_cash(pg_temp.pid(), 1000000, NULL, 10)$$, 'PF002', NULL,
    'with the right version, the next check (insufficient cash) still applies');

-- ---------------------------------------------------------------- marks never move the version
SELECT lives_ok($$SELECT pgportfolio.update_market_price('AAA', 12)$$, 'a mark on a held symbol is accepted');
SELECT is(pg_temp.version(), 10::bigint, 'a market price update does not bump the portfolio version');
SELECT is((SELECT portfolio_version FROM pgportfolio.deposit_cash(pg_temp.pid(), 1, NULL, 10)), 11::bigint,
    'a version read before a mark is still current after it');

-- ---------------------------------------------------------------- a chain of compare-and-set
SELECT is(
    (SELECT array_agg(portfolio_version ORDER BY portfolio_version) FROM pgportfolio.events WHERE portfolio_id = pg_temp.pid()),
    (SELECT array_agg(v) FROM generate_series(1::bigint, 11) AS v),
    'the log holds versions 1..11 with no gaps and no entry for any refusal'
);
SELECT is(
    (SELECT count(*) FROM pgportfolio.verify_portfolio(pg_temp.pid()) WHERE NOT ok),
    0::bigint,
    'verify_portfolio finds nothing wrong'
);

SELECT * FROM finish();
ROLLBACK;
