-- Replication lag, for analysts on replicas and for whoever runs the formation.
-- On a primary: one row per standby that streams from it (pg_stat_replication). On a
-- standby: one row, itself ('self'): how much of the WAL it received it has not replayed,
-- and since when it is behind. Byte counts are exact; times are PostgreSQL's own
-- measurements (NULL when there is nothing to measure). It runs with the caller's rights:
-- the LSNs and lags of pg_stat_replication are visible to superusers and to members of
-- pg_read_all_stats (pgportfolio_analyst is one, see 010_roles.sql); others see NULLs.
CREATE FUNCTION pgportfolio.replication_lag()
RETURNS TABLE (
    standby text,
    seen_from text,
    state text,
    sync_state text,
    unflushed_bytes numeric,
    unreplayed_bytes numeric,
    flush_lag interval,
    replay_lag interval
)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT
        r.application_name::text,
        'primary',
        r.state,
        r.sync_state,
        pg_wal_lsn_diff(pg_current_wal_lsn(), r.flush_lsn),
        pg_wal_lsn_diff(pg_current_wal_lsn(), r.replay_lsn),
        r.flush_lag,
        r.replay_lag
    FROM pg_stat_replication AS r
    WHERE NOT pg_is_in_recovery()
    UNION ALL
    SELECT
        'self',
        'standby',
        coalesce((SELECT w.status FROM pg_stat_wal_receiver AS w), 'not streaming'),
        NULL,
        NULL,
        pg_wal_lsn_diff(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn()),
        NULL,
        -- behind since the last replayed commit, if anything received is still to replay;
        -- a standby of an idle primary is not behind however old that commit is
        CASE
            WHEN pg_last_wal_receive_lsn() IS NOT DISTINCT FROM pg_last_wal_replay_lsn()
                THEN interval '0'
            ELSE now() - pg_last_xact_replay_timestamp()
        END
    WHERE pg_is_in_recovery()
    ORDER BY 1;
$$;

COMMENT ON FUNCTION pgportfolio.replication_lag() IS
'On a primary, every standby''s lag; on a standby, its own (standby = ''self'').';

-- Granted here rather than in 900_privileges.sql's lists, beside its definition.
REVOKE ALL ON FUNCTION pgportfolio.replication_lag() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION pgportfolio.replication_lag() TO pgportfolio_trader, pgportfolio_analyst;
