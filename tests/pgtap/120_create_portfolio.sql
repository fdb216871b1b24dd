-- create_portfolio (sql/120_create_portfolio.sql): the stored row, the 'create' event
-- (version 1) and every refused input.
BEGIN;
SELECT plan(44);

CREATE FUNCTION pg_temp.pid(p_name text) RETURNS bigint LANGUAGE sql STABLE
AS $$ SELECT current_setting('test.pid_' || p_name)::bigint $$;

DO $$
BEGIN
    PERFORM set_config('test.n_portfolios', (SELECT count(*) FROM pgportfolio.portfolios)::text, true);
    PERFORM set_config('test.n_events', (SELECT count(*) FROM pgportfolio.events)::text, true);
    PERFORM set_config('test.pid_a', pgportfolio.create_portfolio('Growth book', 2500.5, 'EUR')::text, true);
    PERFORM set_config('test.pid_b', pgportfolio.create_portfolio('Default currency', 0)::text, true);
    PERFORM set_config('test.pid_c', pgportfolio.create_portfolio('Max cash', 999999999999999.99999999)::text, true);
    PERFORM set_config('test.pid_d', pgportfolio.create_portfolio('Überbuch – €', 0.00000001, 'JPY')::text, true);
END
$$;

-- ---------------------------------------------------------------- the stored row
SELECT cmp_ok(pg_temp.pid('a'), '>', 0::bigint, 'create_portfolio returns a positive id');
SELECT isnt(pg_temp.pid('a'), pg_temp.pid('b'), 'each call returns a new id');
SELECT is(
    (SELECT (name::text, currency::text, owner_role, initial_cash::numeric, cash_balance::numeric, realized_pnl::numeric, version::bigint)
     FROM pgportfolio.portfolios WHERE portfolio_id = pg_temp.pid('a')),
    ROW('Growth book'::text, 'EUR'::text, session_user::name, 2500.5::numeric, 2500.5::numeric, 0::numeric, 1::bigint),
    'the row holds name, currency, the calling role as owner, initial cash = cash, realized 0, version 1'
);
SELECT is(
    (SELECT currency::text FROM pgportfolio.portfolios WHERE portfolio_id = pg_temp.pid('b')),
    'USD',
    'currency defaults to USD'
);
SELECT is(
    (SELECT (initial_cash::numeric, cash_balance::numeric) FROM pgportfolio.portfolios WHERE portfolio_id = pg_temp.pid('b')),
    ROW(0::numeric, 0::numeric),
    'zero initial cash is allowed'
);
SELECT is(
    (SELECT cash_balance::numeric FROM pgportfolio.portfolios WHERE portfolio_id = pg_temp.pid('c')),
    999999999999999.99999999,
    'the largest initial cash below 10^15 is stored exactly'
);
SELECT is(
    (SELECT (name::text, currency::text, cash_balance::numeric) FROM pgportfolio.portfolios WHERE portfolio_id = pg_temp.pid('d')),
    ROW('Überbuch – €'::text, 'JPY'::text, 0.00000001::numeric),
    'non-ASCII printable names and 8-place cash are stored as given'
);
SELECT is(
    (SELECT created_at = updated_at FROM pgportfolio.portfolios WHERE portfolio_id = pg_temp.pid('a')),
    true,
    'a new portfolio was never updated (created_at = updated_at)'
);
SELECT is_empty(
    $$SELECT 1 FROM pgportfolio.positions WHERE portfolio_id = pg_temp.pid('a')
      UNION ALL SELECT 1 FROM pgportfolio.portfolio_access WHERE portfolio_id = pg_temp.pid('a')$$,
    'a new portfolio has no positions and no grants'
);

-- ---------------------------------------------------------------- the create event
SELECT is(
    (SELECT (portfolio_version, kind::text, operation, symbol::text, quantity::numeric, price::numeric, fee::numeric, amount::numeric, cash_delta::numeric, realized_pnl::numeric,
             cash_balance::numeric, position_quantity::numeric, request_id, acting_role)
     FROM pgportfolio.events WHERE portfolio_id = pg_temp.pid('a')),
    ROW(1::bigint, 'create'::text, 'create_portfolio'::text, NULL::text, NULL::numeric, NULL::numeric, 0::numeric,
        2500.5::numeric, 2500.5::numeric, 0::numeric, 2500.5::numeric, NULL::numeric, NULL::text, session_user::name),
    'one create event at version 1 whose amount and cash delta are the initial cash'
);
SELECT is(
    (SELECT count(*) FROM pgportfolio.events WHERE portfolio_id = pg_temp.pid('b')),
    1::bigint,
    'a zero-cash portfolio still gets its create event'
);
SELECT is(
    (SELECT count(*) FROM pgportfolio.verify_portfolio(pg_temp.pid('c')) WHERE ok),
    (SELECT count(*) FROM pgportfolio.verify_portfolio(pg_temp.pid('c'))),
    'verify_portfolio is clean on a new portfolio'
);
SELECT is(
    (SELECT (version, cash_balance, equity, open_positions) FROM pgportfolio.portfolio_summary
     WHERE portfolio_id = pg_temp.pid('a')),
    ROW(1::bigint, 2500.5::numeric, 2500.5::numeric, 0::bigint),
    'portfolio_summary shows the new portfolio with equity = cash'
);

-- ---------------------------------------------------------------- the owner is the acting role
CREATE ROLE pgtap_120_owner IN ROLE pgportfolio_trader;
SET LOCAL ROLE pgtap_120_owner;
DO $$
BEGIN
    PERFORM set_config('test.pid_e', pgportfolio.create_portfolio('Role book', 10)::text, true);
END
$$;
RESET ROLE;
SELECT is(
    (SELECT owner_role FROM pgportfolio.portfolios WHERE portfolio_id = pg_temp.pid('e')),
    'pgtap_120_owner'::name,
    'a portfolio created under SET ROLE is owned by that role, not the function owner'
);
SELECT is(
    (SELECT acting_role FROM pgportfolio.events WHERE portfolio_id = pg_temp.pid('e')),
    'pgtap_120_owner'::name,
    'the create event records the acting role'
);

-- ---------------------------------------------------------------- refused inputs (all 22023)
SELECT throws_ok($$SELECT pgportfolio.create_portfolio('x', 'NaN')$$, '22023', NULL, 'initial cash NaN is refused');
SELECT throws_ok($$SELECT pgportfolio.create_portfolio('x', 'Infinity')$$, '22023', NULL, 'initial cash Infinity is refused');
SELECT throws_ok($$SELECT pgportfolio.create_portfolio('x', '-Infinity')$$, '22023', NULL, 'initial cash -Infinity is refused');
SELECT throws_ok($$SELECT pgportfolio.create_portfolio('x', -1)$$, '22023', NULL, 'negative initial cash is refused');
SELECT throws_ok($$SELECT pgportfolio.create_portfolio('x', -0.00000001)$$, '22023', NULL, 'initial cash -0.00000001 is refused');
SELECT throws_ok($$SELECT pgportfolio.create_portfolio('x', 1e15)$$, '22023', NULL, 'initial cash 1e15 is refused');
SELECT throws_ok($$SELECT pgportfolio.create_portfolio('x', 1.123456789)$$, '22023', NULL,
    'initial cash with 9 decimal places (1.123456789) is refused, not rounded');
SELECT throws_ok($$SELECT pgportfolio.create_portfolio('x', NULL)$$, '22023', NULL, 'NULL initial cash is refused');
SELECT throws_ok($$SELECT pgportfolio.create_portfolio(NULL, 1)$$, '22023', NULL, 'a NULL name is refused');
SELECT throws_ok($$SELECT pgportfolio.create_portfolio('', 1)$$, '22023', NULL, 'an empty name is refused');
SELECT throws_ok($$SELECT pgportfolio.create_portfolio(' x', 1)$$, '22023', NULL, 'a name with a leading space is refused');
SELECT throws_ok($$SELECT pgportfolio.create_portfolio('x ', 1)$$, '22023', NULL, 'a name with a trailing space is refused');
SELECT throws_ok($$SELECT pgportfolio.create_portfolio(E'a\tb', 1)$$, '22023', NULL, 'a name with a tab is refused');
SELECT throws_ok($$SELECT pgportfolio.create_portfolio(E'a\nb', 1)$$, '22023', NULL, 'a name with a newline is refused');
SELECT throws_ok($$SELECT pgportfolio.create_portfolio(E'a\rb', 1)$$, '22023', NULL, 'a name with a carriage return is refused');
SELECT throws_ok($$SELECT pgportfolio.create_portfolio('a' || chr(1) || 'b', 1)$$, '22023', NULL,
    'a name with chr(1) is refused');
SELECT throws_ok($$SELECT pgportfolio.create_portfolio(repeat('n', 201), 1)$$, '22023', NULL, 'a 201-character name is refused');
SELECT throws_ok($$SELECT pgportfolio.create_portfolio('x', 1, 'usd')$$, '22023', NULL, 'a lower-case currency is refused');
SELECT throws_ok($$SELECT pgportfolio.create_portfolio('x', 1, 'US')$$, '22023', NULL, 'a two-letter currency is refused');
SELECT throws_ok($$SELECT pgportfolio.create_portfolio('x', 1, 'EURO')$$, '22023', NULL, 'a four-letter currency is refused');
SELECT throws_ok($$SELECT pgportfolio.create_portfolio('x', 1, 'U5D')$$, '22023', NULL, 'a currency with a digit is refused');
SELECT throws_ok($$SELECT pgportfolio.create_portfolio('x', 1, NULL)$$, '22023', NULL, 'an explicit NULL currency is refused');
SELECT throws_ok($$SELECT pgportfolio.create_portfolio('x', 1, ' USD')$$, '22023', NULL, 'a padded currency is refused');
SELECT lives_ok($$SELECT pgportfolio.create_portfolio(repeat('n', 200), 1.12345678, 'GBP')$$,
    'a 200-character name with 8-place cash is accepted');
SELECT lives_ok($$SELECT pgportfolio.create_portfolio('Growth book', 1, 'EUR')$$,
    'names need not be unique');

SELECT is(
    (SELECT count(*) FROM pgportfolio.portfolios),
    current_setting('test.n_portfolios')::bigint + 7,
    'exactly the seven accepted calls created portfolios; no refused call left a row'
);
SELECT is(
    (SELECT count(*) FROM pgportfolio.events),
    current_setting('test.n_events')::bigint + 7,
    'exactly one create event per created portfolio'
);
SELECT is(
    (SELECT count(*) FROM pgportfolio.events AS e JOIN pgportfolio.portfolios AS p USING (portfolio_id)
     WHERE e.kind = 'create' AND (e.portfolio_version <> 1 OR e.cash_balance <> p.initial_cash)),
    0::bigint,
    'every create event is version 1 and carries the initial cash'
);

-- ---------------------------------------------------------------- privilege: only traders may create
CREATE ROLE pgtap_120_analyst IN ROLE pgportfolio_analyst;
SET LOCAL ROLE pgtap_120_analyst;
SELECT throws_ok($$SELECT pgportfolio.create_portfolio('analyst book', 1)$$, '42501', NULL,
    'an analyst may not create a portfolio (42501)');
RESET ROLE;

SELECT * FROM finish();
ROLLBACK;
