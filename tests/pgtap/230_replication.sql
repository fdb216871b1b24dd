-- Replication lag (sql/230_replication.sql): shape, privileges, and what a primary with no
-- standby reports. Its rows on a real primary and standby are tested on a pg_auto_failover
-- formation (tests/ha/test_reads_on_standbys.py).
BEGIN;
SELECT plan(9);

SELECT has_function('pgportfolio', 'replication_lag', ARRAY[]::text[], 'replication_lag() exists');
SELECT isnt_definer('pgportfolio', 'replication_lag', ARRAY[]::name[],
    'replication_lag() runs with its caller''s rights');
SELECT is(
    (SELECT array_agg(a ORDER BY n) FROM unnest(
        (SELECT proargnames FROM pg_proc WHERE oid = 'pgportfolio.replication_lag()'::regprocedure)
    ) WITH ORDINALITY AS t (a, n)),
    ARRAY['standby', 'seen_from', 'state', 'sync_state', 'unflushed_bytes', 'unreplayed_bytes',
          'flush_lag', 'replay_lag'],
    'replication_lag() has the documented columns, in order'
);
SELECT function_privs_are('pgportfolio', 'replication_lag', ARRAY[]::name[], 'pgportfolio_analyst',
    ARRAY['EXECUTE'], 'pgportfolio_analyst may execute replication_lag()');
SELECT function_privs_are('pgportfolio', 'replication_lag', ARRAY[]::name[], 'pgportfolio_trader',
    ARRAY['EXECUTE'], 'pgportfolio_trader may execute replication_lag()');
SELECT function_privs_are('pgportfolio', 'replication_lag', ARRAY[]::name[], 'public',
    ARRAY[]::name[], 'PUBLIC may not execute replication_lag()');

-- the test server is a primary without standbys (pg_stat_replication is empty)
SELECT is(pg_is_in_recovery(), false, 'the test server is a primary');
SELECT is_empty(
    $$SELECT * FROM pgportfolio.replication_lag()
      WHERE standby NOT IN (SELECT application_name FROM pg_stat_replication)$$,
    'a primary reports a row per streaming standby and nothing else'
);
SET LOCAL ROLE pgportfolio_analyst;
SELECT lives_ok('SELECT * FROM pgportfolio.replication_lag()', 'an analyst may call replication_lag()');
RESET ROLE;

SELECT * FROM finish();
ROLLBACK;
