-- Operator reads (sql/220_operator.sql): recent_portfolios, server_wait_events, current_lock_waits,
-- portfolio_lock_holders.
BEGIN;
SELECT plan(11);

SELECT set_config('test.pid', pgportfolio.create_portfolio('operator', 100)::text, true);
SELECT pgportfolio.deposit_cash(current_setting('test.pid')::bigint, 1);

SELECT is(
    (SELECT version FROM pgportfolio.recent_portfolios(1000) WHERE portfolio_id = current_setting('test.pid')::bigint),
    2::bigint,
    'recent_portfolios reports the current version'
);
SELECT cmp_ok(
    (SELECT count(*) FROM pgportfolio.recent_portfolios(1)), '=', 1::bigint, 'p_limit is honoured'
);
SELECT lives_ok('SELECT * FROM pgportfolio.server_wait_events()', 'server_wait_events runs');
SELECT is_empty(
    'SELECT * FROM pgportfolio.current_lock_waits() WHERE waiting_pid = pg_backend_pid()',
    'this session waits for nothing'
);
-- This transaction's deposit holds the portfolio's row lock until it ends.
SELECT results_eq(
    $$SELECT holder_pid, holder_role, state FROM pgportfolio.portfolio_lock_holders()
      WHERE portfolio_id = current_setting('test.pid')::bigint$$,
    $$VALUES (pg_backend_pid(), session_user, 'active'::text)$$,
    'portfolio_lock_holders names this session as the holder of the portfolio it changed'
);
SELECT ok(
    (SELECT held_for >= interval '0' AND idle_for IS NULL FROM pgportfolio.portfolio_lock_holders()
     WHERE portfolio_id = current_setting('test.pid')::bigint),
    'held_for is the age of the transaction; idle_for is NULL while the session runs'
);
-- Inserted directly: create_portfolio's event insert would lock the row (its foreign-key
-- check takes FOR KEY SHARE, which does block trades, so it is listed).
INSERT INTO pgportfolio.portfolios (name, currency, owner_role, initial_cash, cash_balance)
VALUES ('untouched', 'USD', 'postgres', 0, 0);
SELECT set_config('test.idle', (SELECT max(portfolio_id) FROM pgportfolio.portfolios)::text, true);
SELECT is_empty(
    $$SELECT * FROM pgportfolio.portfolio_lock_holders() WHERE portfolio_id = current_setting('test.idle')::bigint$$,
    'a portfolio nobody has locked is not listed'
);
SELECT isnt_definer('pgportfolio', 'portfolio_lock_holders', ARRAY[]::name[],
    'portfolio_lock_holders runs with the caller''s rights (pg_stat_activity shows what the caller may see)');
SELECT function_privs_are(
    'pgportfolio', 'portfolio_lock_holders', ARRAY[]::text[], 'pgportfolio_analyst', ARRAY['EXECUTE'],
    'analysts may call portfolio_lock_holders'
);
SELECT function_privs_are(
    'pgportfolio', 'recent_portfolios', ARRAY['integer'], 'pgportfolio_analyst', ARRAY['EXECUTE'],
    'analysts may call recent_portfolios'
);
SELECT function_privs_are(
    'pgportfolio', 'current_lock_waits', ARRAY[]::text[], 'public', ARRAY[]::text[],
    'PUBLIC may not call current_lock_waits'
);

SELECT * FROM finish();
ROLLBACK;
