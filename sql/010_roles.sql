-- The install runs in one transaction with a search_path no other role can write to,
-- so every name below resolves to the object we mean (pgspot checks this).
SET LOCAL search_path = pg_catalog, pg_temp;

-- Cluster-wide roles. Roles outlive any one database, so this file is idempotent.
-- pgportfolio_owner owns every object; nobody logs in as it.
-- pgportfolio_trader may call the mutation functions and read the views.
-- pgportfolio_analyst may read the views and call the read-only functions, nothing else.
DO $roles$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'pgportfolio_owner') THEN
        BEGIN
            CREATE ROLE pgportfolio_owner NOLOGIN;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL;  -- created meanwhile by an install into another database
        END;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'pgportfolio_trader') THEN
        BEGIN
            CREATE ROLE pgportfolio_trader NOLOGIN;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL;  -- created meanwhile by an install into another database
        END;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'pgportfolio_analyst') THEN
        BEGIN
            CREATE ROLE pgportfolio_analyst NOLOGIN;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL;  -- created meanwhile by an install into another database
        END;
    END IF;
    -- The installer creates objects as pgportfolio_owner (SET ROLE), so it must be a member.
    IF NOT pg_catalog.pg_has_role(current_user, 'pgportfolio_owner', 'MEMBER') THEN
        EXECUTE pg_catalog.format('GRANT pgportfolio_owner TO %I', current_user);
    END IF;
    -- lock_waits shows other sessions' queries; without this an analyst sees
    -- '<insufficient privilege>'. Skipped (with a notice) when the installer may not grant it.
    IF NOT pg_catalog.pg_has_role('pgportfolio_analyst', 'pg_read_all_stats', 'MEMBER') THEN
        BEGIN
            GRANT pg_read_all_stats TO pgportfolio_analyst;
        EXCEPTION WHEN insufficient_privilege THEN
            RAISE NOTICE 'pgportfolio: could not grant pg_read_all_stats to pgportfolio_analyst';
        END;
    END IF;
END
$roles$;
