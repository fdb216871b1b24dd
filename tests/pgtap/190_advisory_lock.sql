-- acquire_advisory_lock (sql/190_advisory_lock.sql): a bounded wait for an advisory lock.
BEGIN;
SELECT plan(5);

SELECT lives_ok(
    'SELECT pgportfolio.acquire_advisory_lock(424242, 100)', 'a free advisory lock is taken'
);
SELECT ok(
    EXISTS (SELECT FROM pg_locks WHERE locktype = 'advisory' AND objid = 424242 AND pid = pg_backend_pid()),
    'this session holds it'
);
SELECT is(current_setting('lock_timeout'), '100ms', 'the wait bound lasts for this transaction only');
SELECT throws_ok(
    'SELECT pgportfolio.acquire_advisory_lock(1, 0)', '22023', NULL, 'a timeout below 1 ms is invalid input'
);
SELECT ok(pg_advisory_unlock(424242), 'it is released by pg_advisory_unlock');

SELECT * FROM finish();
ROLLBACK;
