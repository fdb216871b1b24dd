-- Instruments: what the ledger knows about a symbol beyond its marks. multiplier is the
-- contract size (a future's point value, 100 for a US equity option): one unit of
-- quantity at price p is worth multiplier * p. A symbol with no row has multiplier 1.
-- Written only by upsert_instrument (owner role); traders and analysts read the
-- instrument_list view (sql/200_views.sql).
CREATE TABLE pgportfolio.instruments (
    symbol pgportfolio.symbol PRIMARY KEY,
    multiplier numeric NOT NULL DEFAULT 1,
    description text,
    updated_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    CONSTRAINT instruments_multiplier_valid CHECK (
        multiplier NOT IN ('NaN', 'Infinity', '-Infinity')
        AND multiplier > 0
        AND multiplier < 1e15
        AND pg_catalog.scale(multiplier) <= 8
    ),
    CONSTRAINT instruments_description_valid CHECK (
        pg_catalog.length(description) BETWEEN 1 AND 200 AND description !~ '[[:cntrl:]]'
    )
);

COMMENT ON TABLE pgportfolio.instruments IS
'Contract multiplier and description per symbol; a symbol without a row has multiplier 1.';

-- One row, updated by every change of a multiplier (upsert_instrument). A fill at
-- REPEATABLE READ or SERIALIZABLE that opens a position takes this row FOR SHARE before it
-- reads multipliers: a change committed after its snapshot then fails the fill with 40001
-- (retryable) instead of letting it open the position at the old multiplier, and a change
-- still in progress waits for the fill and then finds the position held (PF007). At READ
-- COMMITTED the fill reads the committed multiplier after taking its lock on positions,
-- which needs no row (sql/128_operations.sql, step 4).
CREATE TABLE pgportfolio.multiplier_changes (
    singleton boolean PRIMARY KEY DEFAULT TRUE,
    changes bigint NOT NULL DEFAULT 0,
    changed_at timestamptz,
    CONSTRAINT multiplier_changes_one_row CHECK (singleton)
);

INSERT INTO pgportfolio.multiplier_changes DEFAULT VALUES;

COMMENT ON TABLE pgportfolio.multiplier_changes IS
'How many times a multiplier changed; fills at REPEATABLE READ lock it to see a change they missed.';
