-- Instruments: what the ledger knows about a symbol beyond its marks. multiplier is the
-- contract size (a future's point value, 100 for a US equity option): one unit of
-- quantity at price p is worth multiplier * p. A symbol with no row has multiplier 1.
-- Written only by upsert_instrument (owner role); traders and analysts read the
-- instrument_list view (sql/200_views.sql).
CREATE TABLE pgportfolio.instruments (
    symbol text PRIMARY KEY,
    multiplier numeric NOT NULL DEFAULT 1,
    description text,
    updated_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    CONSTRAINT instruments_symbol_valid CHECK (symbol ~ '^[A-Z0-9._/:-]{1,32}$'),
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
