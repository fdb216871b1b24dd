-- Every error leaves the portfolio's version (and the rest of its state) unchanged: the input
-- checks of sql/100_validation.sql above all, and the access, cash and fill refusals.
-- One throws_ok per case, each followed by a check of the version. (55P03, a lock
-- timeout, needs a second session and is not exercised here.)
BEGIN;
SELECT plan(109);

CREATE FUNCTION pg_temp.pid() RETURNS bigint LANGUAGE sql STABLE
AS $$ SELECT current_setting('test.pid')::bigint $$;

CREATE FUNCTION pg_temp.version() RETURNS bigint LANGUAGE sql STABLE
AS $$ SELECT version::bigint FROM pgportfolio.portfolios WHERE portfolio_id = pg_temp.pid() $$;

CREATE FUNCTION pg_temp.state() RETURNS text LANGUAGE sql STABLE AS $$
    SELECT concat_ws(' / ',
        (SELECT format('v%s cash %s pnl %s', version::bigint, cash_balance::numeric, realized_pnl::numeric)
         FROM pgportfolio.portfolios WHERE portfolio_id = pg_temp.pid()),
        (SELECT format('%s events', count(*)) FROM pgportfolio.events WHERE portfolio_id = pg_temp.pid()),
        (SELECT string_agg(format('%s %s %s v%s pnl %s', symbol::text, quantity::numeric, cost_basis::numeric, version::bigint, realized_pnl::numeric), ', '
                           ORDER BY symbol::text)
         FROM pgportfolio.positions WHERE portfolio_id = pg_temp.pid()),
        (SELECT format('%s grants', count(*)) FROM pgportfolio.portfolio_access WHERE portfolio_id = pg_temp.pid())
    )
$$;

CREATE ROLE pgtap_180_bob IN ROLE pgportfolio_trader;
CREATE ROLE pgtap_180_ann IN ROLE pgportfolio_analyst;

DO $$
DECLARE
    p bigint;
BEGIN
    p := pgportfolio.create_portfolio('error book', 1000);
    PERFORM set_config('test.pid', p::text, true);
    PERFORM pgportfolio.deposit_cash(p, 5, 'err-req');
    PERFORM pgportfolio.open_position(p, 'ELNG', 10, 10);
    PERFORM pgportfolio.open_position(p, 'ESHT', -5, 10);
    PERFORM set_config('test.state', pg_temp.state(), true);
    PERFORM set_config('test.n_events_all', (SELECT count(*) FROM pgportfolio.events)::text, true);
END
$$;

SELECT is(pg_temp.version(), 4::bigint, 'setup: the portfolio is at version 4');
SELECT is(
    (SELECT cash_balance::numeric FROM pgportfolio.portfolios WHERE portfolio_id = pg_temp.pid()),
    955::numeric,
    'setup: the portfolio holds 955 cash'
);

SELECT throws_ok($$SELECT pgportfolio.deposit_cash(pg_temp.pid(), 1, NULL, 1)$$, 'PF001', NULL,
    'deposit_cash with a stale expected version is PF001');
SELECT is(pg_temp.version(), 4::bigint, 'deposit_cash with a stale expected version (PF001) left the version at 4');
SELECT throws_ok($$SELECT pgportfolio.withdraw_cash(pg_temp.pid(), 1, NULL, 3)$$, 'PF001', NULL,
    'withdraw_cash with a stale expected version is PF001');
SELECT is(pg_temp.version(), 4::bigint, 'withdraw_cash with a stale expected version (PF001) left the version at 4');
SELECT throws_ok($$SELECT pgportfolio.apply_fill(pg_temp.pid(), 'ELNG', 1, 10, 0, NULL, 2)$$, 'PF001', NULL,
    'apply_fill with a stale expected version is PF001');
SELECT is(pg_temp.version(), 4::bigint, 'apply_fill with a stale expected version (PF001) left the version at 4');
SELECT throws_ok($$SELECT pgportfolio.close_position(pg_temp.pid(), 'ELNG', 10, 0, NULL, 5)$$, 'PF001', NULL,
    'close_position with a future expected version is PF001');
SELECT is(pg_temp.version(), 4::bigint, 'close_position with a future expected version (PF001) left the version at 4');
SELECT throws_ok($$SELECT pgportfolio.withdraw_cash(pg_temp.pid(), 10000)$$, 'PF002', NULL,
    'withdrawing more than the cash is PF002');
SELECT is(pg_temp.version(), 4::bigint, 'withdrawing more than the cash (PF002) left the version at 4');
SELECT throws_ok($$SELECT pgportfolio.charge_fee(pg_temp.pid(), 955.00000001)$$, 'PF002', NULL,
    'a fee above the cash is PF002');
SELECT is(pg_temp.version(), 4::bigint, 'a fee above the cash (PF002) left the version at 4');
SELECT throws_ok($$SELECT pgportfolio.apply_fill(pg_temp.pid(), 'EBUY', 1000, 10)$$, 'PF002', NULL,
    'a buy costing more than the cash is PF002');
SELECT is(pg_temp.version(), 4::bigint, 'a buy costing more than the cash (PF002) left the version at 4');
SELECT throws_ok($$SELECT pgportfolio.apply_fill(pg_temp.pid(), 'ELNG', 1, 955, 0.00000001)$$, 'PF002', NULL,
    'a buy whose fee tips it over the cash is PF002');
SELECT is(pg_temp.version(), 4::bigint, 'a buy whose fee tips it over the cash (PF002) left the version at 4');
SELECT throws_ok($$SELECT pgportfolio.close_position(pg_temp.pid(), 'ESHT', 1000)$$, 'PF002', NULL,
    'buying back a short for more than the cash is PF002');
SELECT is(pg_temp.version(), 4::bigint, 'buying back a short for more than the cash (PF002) left the version at 4');
SELECT throws_ok($$SELECT pgportfolio.add_to_position(pg_temp.pid(), 'NONE', 1, 10)$$, 'PF003', NULL,
    'add_to_position with no open position is PF003');
SELECT is(pg_temp.version(), 4::bigint, 'add_to_position with no open position (PF003) left the version at 4');
SELECT throws_ok($$SELECT pgportfolio.reduce_position(pg_temp.pid(), 'ELNG', 10.00000001, 10)$$, 'PF003', NULL,
    'reducing a long by more than is held is PF003');
SELECT is(pg_temp.version(), 4::bigint, 'reducing a long by more than is held (PF003) left the version at 4');
SELECT throws_ok($$SELECT pgportfolio.reduce_position(pg_temp.pid(), 'ESHT', 6, 10)$$, 'PF003', NULL,
    'reducing a short by more than is held is PF003');
SELECT is(pg_temp.version(), 4::bigint, 'reducing a short by more than is held (PF003) left the version at 4');
SELECT throws_ok($$SELECT pgportfolio.reduce_position(pg_temp.pid(), 'NONE', 1, 10)$$, 'PF003', NULL,
    'reducing a position that is not open is PF003');
SELECT is(pg_temp.version(), 4::bigint, 'reducing a position that is not open (PF003) left the version at 4');
SELECT throws_ok($$SELECT pgportfolio.close_position(pg_temp.pid(), 'NONE', 10)$$, 'PF003', NULL,
    'closing a position that is not open is PF003');
SELECT is(pg_temp.version(), 4::bigint, 'closing a position that is not open (PF003) left the version at 4');
SELECT throws_ok($$SELECT pgportfolio.deposit_cash(-1, 1)$$, 'PF004', NULL,
    'deposit to an unknown portfolio is PF004');
SELECT is(pg_temp.version(), 4::bigint, 'deposit to an unknown portfolio (PF004) left the version at 4');
SELECT throws_ok($$SELECT pgportfolio.apply_fill(-1, 'ELNG', 1, 10)$$, 'PF004', NULL,
    'a fill on an unknown portfolio is PF004');
SELECT is(pg_temp.version(), 4::bigint, 'a fill on an unknown portfolio (PF004) left the version at 4');
SELECT throws_ok($$SELECT pgportfolio.deposit_cash(pg_temp.pid(), 6, 'err-req')$$, 'PF005', NULL,
    'a cash request id reused with another amount is PF005');
SELECT is(pg_temp.version(), 4::bigint, 'a cash request id reused with another amount (PF005) left the version at 4');
SELECT throws_ok($$SELECT pgportfolio.apply_fill(pg_temp.pid(), 'ELNG', 1, 10, 0, 'err-req')$$, 'PF005', NULL,
    'a cash request id reused by a fill is PF005');
SELECT is(pg_temp.version(), 4::bigint, 'a cash request id reused by a fill (PF005) left the version at 4');
SELECT throws_ok($$SELECT pgportfolio.open_position(pg_temp.pid(), 'ELNG', 1, 10)$$, 'PF006', NULL,
    'open_position on an open long is PF006');
SELECT is(pg_temp.version(), 4::bigint, 'open_position on an open long (PF006) left the version at 4');
SELECT throws_ok($$SELECT pgportfolio.open_position(pg_temp.pid(), 'ESHT', 1, 10)$$, 'PF006', NULL,
    'open_position on an open short is PF006');
SELECT is(pg_temp.version(), 4::bigint, 'open_position on an open short (PF006) left the version at 4');
SELECT throws_ok($$SELECT pgportfolio.deposit_cash(pg_temp.pid(), 'NaN')$$, '22023', NULL,
    'a NaN deposit is 22023');
SELECT is(pg_temp.version(), 4::bigint, 'a NaN deposit (22023) left the version at 4');
SELECT throws_ok($$SELECT pgportfolio.deposit_cash(pg_temp.pid(), 'Infinity')$$, '22023', NULL,
    'an Infinity deposit is 22023');
SELECT is(pg_temp.version(), 4::bigint, 'an Infinity deposit (22023) left the version at 4');
SELECT throws_ok($$SELECT pgportfolio.withdraw_cash(pg_temp.pid(), '-Infinity')$$, '22023', NULL,
    'a -Infinity withdrawal is 22023');
SELECT is(pg_temp.version(), 4::bigint, 'a -Infinity withdrawal (22023) left the version at 4');
SELECT throws_ok($$SELECT pgportfolio.deposit_cash(pg_temp.pid(), 0)$$, '22023', NULL,
    'a zero deposit is 22023');
SELECT is(pg_temp.version(), 4::bigint, 'a zero deposit (22023) left the version at 4');
SELECT throws_ok($$SELECT pgportfolio.withdraw_cash(pg_temp.pid(), -1)$$, '22023', NULL,
    'a negative withdrawal is 22023');
SELECT is(pg_temp.version(), 4::bigint, 'a negative withdrawal (22023) left the version at 4');
SELECT throws_ok($$SELECT pgportfolio.charge_fee(pg_temp.pid(), 1.123456789)$$, '22023', NULL,
    'a fee with 9 decimal places is 22023');
SELECT is(pg_temp.version(), 4::bigint, 'a fee with 9 decimal places (22023) left the version at 4');
SELECT throws_ok($$SELECT pgportfolio.deposit_cash(pg_temp.pid(), 1e15)$$, '22023', NULL,
    'a deposit of 1e15 is 22023');
SELECT is(pg_temp.version(), 4::bigint, 'a deposit of 1e15 (22023) left the version at 4');
SELECT throws_ok($$SELECT pgportfolio.deposit_cash(pg_temp.pid(), NULL)$$, '22023', NULL,
    'a NULL deposit is 22023');
SELECT is(pg_temp.version(), 4::bigint, 'a NULL deposit (22023) left the version at 4');
SELECT throws_ok($$SELECT pgportfolio.deposit_cash(pg_temp.pid(), 1, '')$$, '22023', NULL,
    'an empty request id is 22023');
SELECT is(pg_temp.version(), 4::bigint, 'an empty request id (22023) left the version at 4');
SELECT throws_ok($$SELECT pgportfolio.deposit_cash(pg_temp.pid(), 1, NULL, 0)$$, '22023', NULL,
    'expected version 0 is 22023');
SELECT is(pg_temp.version(), 4::bigint, 'expected version 0 (22023) left the version at 4');
SELECT throws_ok($$SELECT pgportfolio.apply_fill(pg_temp.pid(), '', 1, 10)$$, '22023', NULL,
    'an empty symbol is 22023');
SELECT is(pg_temp.version(), 4::bigint, 'an empty symbol (22023) left the version at 4');
SELECT throws_ok($$SELECT pgportfolio.apply_fill(pg_temp.pid(), 'elng', 1, 10)$$, '22023', NULL,
    'a lower-case symbol is 22023');
SELECT is(pg_temp.version(), 4::bigint, 'a lower-case symbol (22023) left the version at 4');
SELECT throws_ok($$SELECT pgportfolio.apply_fill(pg_temp.pid(), repeat('E', 33), 1, 10)$$, '22023', NULL,
    'a 33-character symbol is 22023');
SELECT is(pg_temp.version(), 4::bigint, 'a 33-character symbol (22023) left the version at 4');
SELECT throws_ok($$SELECT pgportfolio.apply_fill(pg_temp.pid(), 'E''LNG', 1, 10)$$, '22023', NULL,
    'a symbol with a quote is 22023');
SELECT is(pg_temp.version(), 4::bigint, 'a symbol with a quote (22023) left the version at 4');
SELECT throws_ok($$SELECT pgportfolio.apply_fill(pg_temp.pid(), NULL, 1, 10)$$, '22023', NULL,
    'a NULL symbol is 22023');
SELECT is(pg_temp.version(), 4::bigint, 'a NULL symbol (22023) left the version at 4');
SELECT throws_ok($$SELECT pgportfolio.apply_fill(pg_temp.pid(), 'ELNG', 0, 10)$$, '22023', NULL,
    'a zero fill quantity is 22023');
SELECT is(pg_temp.version(), 4::bigint, 'a zero fill quantity (22023) left the version at 4');
SELECT throws_ok($$SELECT pgportfolio.apply_fill(pg_temp.pid(), 'ELNG', 'NaN', 10)$$, '22023', NULL,
    'a NaN fill quantity is 22023');
SELECT is(pg_temp.version(), 4::bigint, 'a NaN fill quantity (22023) left the version at 4');
SELECT throws_ok($$SELECT pgportfolio.apply_fill(pg_temp.pid(), 'ELNG', 1, 'NaN')$$, '22023', NULL,
    'a NaN price is 22023');
SELECT is(pg_temp.version(), 4::bigint, 'a NaN price (22023) left the version at 4');
SELECT throws_ok($$SELECT pgportfolio.apply_fill(pg_temp.pid(), 'ELNG', 1, 0)$$, '22023', NULL,
    'a zero price is 22023');
SELECT is(pg_temp.version(), 4::bigint, 'a zero price (22023) left the version at 4');
SELECT throws_ok($$SELECT pgportfolio.apply_fill(pg_temp.pid(), 'ELNG', 1, 10, -1)$$, '22023', NULL,
    'a negative fee is 22023');
SELECT is(pg_temp.version(), 4::bigint, 'a negative fee (22023) left the version at 4');
SELECT throws_ok($$SELECT pgportfolio.add_to_position(pg_temp.pid(), 'ELNG', -1, 10)$$, '22023', NULL,
    'add_to_position on the wrong side is 22023');
SELECT is(pg_temp.version(), 4::bigint, 'add_to_position on the wrong side (22023) left the version at 4');
SELECT throws_ok($$SELECT pgportfolio.reduce_position(pg_temp.pid(), 'ELNG', -1, 10)$$, '22023', NULL,
    'reduce_position with a negative quantity is 22023');
SELECT is(pg_temp.version(), 4::bigint, 'reduce_position with a negative quantity (22023) left the version at 4');
SELECT throws_ok($$SELECT pgportfolio.apply_fill(pg_temp.pid(), 'ESHT', -999999999999999.99999999, 1)$$, '22023', NULL,
    'a fill that takes the position beyond 10^15 is 22023');
SELECT is(pg_temp.version(), 4::bigint, 'a fill that takes the position beyond 10^15 (22023) left the version at 4');
SET LOCAL ROLE pgtap_180_bob;
SELECT throws_ok($$SELECT pgportfolio.deposit_cash(pg_temp.pid(), 1)$$, '42501', NULL,
    'a deposit by a trader who was not granted the portfolio is 42501');
RESET ROLE;
SELECT is(pg_temp.version(), 4::bigint, 'a deposit by a trader who was not granted the portfolio (42501) left the version at 4');
SET LOCAL ROLE pgtap_180_bob;
SELECT throws_ok($$SELECT pgportfolio.apply_fill(pg_temp.pid(), 'ELNG', 1, 10)$$, '42501', NULL,
    'a fill by a trader who was not granted the portfolio is 42501');
RESET ROLE;
SELECT is(pg_temp.version(), 4::bigint, 'a fill by a trader who was not granted the portfolio (42501) left the version at 4');
SET LOCAL ROLE pgtap_180_bob;
SELECT throws_ok($$SELECT pgportfolio.close_position(pg_temp.pid(), 'ELNG', 10)$$, '42501', NULL,
    'a close by a trader who was not granted the portfolio is 42501');
RESET ROLE;
SELECT is(pg_temp.version(), 4::bigint, 'a close by a trader who was not granted the portfolio (42501) left the version at 4');
SET LOCAL ROLE pgtap_180_bob;
SELECT throws_ok($$SELECT pgportfolio.deposit_cash(pg_temp.pid(), 5, 'err-req')$$, '42501', NULL,
    'a replay of the owner''s request id by another trader is 42501');
RESET ROLE;
SELECT is(pg_temp.version(), 4::bigint, 'a replay of the owner''s request id by another trader (42501) left the version at 4');
SET LOCAL ROLE pgtap_180_ann;
SELECT throws_ok($$SELECT pgportfolio.deposit_cash(pg_temp.pid(), 1)$$, '42501', NULL,
    'a deposit by an analyst is 42501');
RESET ROLE;
SELECT is(pg_temp.version(), 4::bigint, 'a deposit by an analyst (42501) left the version at 4');

-- grant and revoke errors
SET LOCAL ROLE pgtap_180_bob;
SELECT throws_ok($$SELECT pgportfolio.grant_portfolio(pg_temp.pid(), 'pgtap_180_bob')$$, '42501', NULL,
    'a non-owner granting the portfolio is 42501');
RESET ROLE;
SELECT throws_ok($$SELECT pgportfolio.grant_portfolio(pg_temp.pid(), 'pgtap_180_no_such_role')$$, '22023', NULL,
    'granting to a role that does not exist is 22023');
SELECT throws_ok($$SELECT pgportfolio.grant_portfolio(-1, 'pgtap_180_bob')$$, 'PF004', NULL,
    'granting an unknown portfolio is PF004');
SELECT throws_ok($$SELECT pgportfolio.update_market_price('elng', 1)$$, '22023', NULL,
    'a bad market price tick is 22023');
SELECT throws_ok($$SELECT * FROM pgportfolio.verify_portfolio(-1)$$, 'PF004', NULL,
    'verifying an unknown portfolio is PF004');

-- ---------------------------------------------------------------- after all the refusals
SELECT is(pg_temp.version(), 4::bigint, 'after every refusal the version is still 4');
SELECT is(pg_temp.state(), current_setting('test.state'),
    'after every refusal cash, realized P&L, positions, grants and events are exactly as before');
SELECT is(
    (SELECT count(*) FROM pgportfolio.events),
    current_setting('test.n_events_all')::bigint,
    'no refusal wrote an event to any portfolio'
);
SELECT is(
    (SELECT count(*) FROM pgportfolio.market_prices WHERE symbol IN ('ELNG', 'elng')),
    0::bigint,
    'no refusal wrote a market price'
);
SELECT is(
    (SELECT count(*) FROM pgportfolio.verify_portfolio(pg_temp.pid()) WHERE NOT ok),
    0::bigint,
    'verify_portfolio is clean after the refusals'
);
SELECT is(
    (SELECT portfolio_version FROM pgportfolio.deposit_cash(pg_temp.pid(), 1, NULL, 4)),
    5::bigint,
    'the portfolio still accepts a mutation at version 4, so no refusal moved it'
);

SELECT * FROM finish();
ROLLBACK;
