-- Runs once, at the first start on an empty volume: fail loudly if the image lacks an
-- extension the tests install (they CREATE EXTENSION per database, not here).
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_available_extensions WHERE name = 'pgtap') THEN
        RAISE EXCEPTION 'pgtap is not installed in this image';
    END IF;
    IF NOT EXISTS (SELECT FROM pg_available_extensions WHERE name = 'plpgsql_check') THEN
        RAISE EXCEPTION 'plpgsql_check is not installed in this image';
    END IF;
END
$$;
