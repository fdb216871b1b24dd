-- Operator reads (sql/220_operator.sql): recent_portfolios, server_wait_events, current_lock_waits.
BEGIN;
SELECT plan(6);

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
