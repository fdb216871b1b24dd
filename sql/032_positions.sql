-- Open positions only: a position that goes flat is deleted (its history is in events).
-- quantity is signed (short < 0). cost_basis is signed like quantity and exact:
-- the sum of quantity * price * multiplier of the fills that built it, less what reductions
-- removed.
-- realized_pnl accumulates on this row from when the position was opened from flat.
CREATE TABLE pgportfolio.positions (
    -- No foreign key to portfolios, as for events: every writer holds the portfolio's row
    -- lock, and portfolios are never deleted (030_portfolios.sql). The key's check, run for
    -- every position opened, was 7% of a batch's work when most fills opened a position.
    portfolio_id bigint NOT NULL,
    symbol text NOT NULL,
    quantity numeric NOT NULL,
    cost_basis numeric NOT NULL,
    realized_pnl numeric NOT NULL DEFAULT 0,
    -- The instrument's multiplier when the position opened (instruments; 1 without a row).
    -- It cannot change while the position is open (upsert_instrument refuses, PF007), so
    -- readers value the position with its own row: market value = quantity * mark * multiplier.
    multiplier numeric NOT NULL DEFAULT 1,
    version bigint NOT NULL DEFAULT 1,
    opened_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    updated_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    PRIMARY KEY (portfolio_id, symbol),
    CONSTRAINT positions_symbol_valid CHECK (pg_catalog.octet_length(symbol) <= 32 AND symbol ~ '^[A-Z0-9._/:-]+$'),
    -- Finite without NOT IN ('NaN', 'Infinity', '-Infinity') (three comparisons per column,
    -- for every position written): abs() < 1e15 refuses all three, and numeric orders NaN
    -- above Infinity, so the strict bounds refuse NaN and both infinities.
    CONSTRAINT positions_quantity_valid CHECK (
        quantity <> 0
        AND pg_catalog.abs(quantity) < 1e15
        AND pg_catalog.scale(quantity) <= 8
    ),
    CONSTRAINT positions_cost_basis_valid CHECK (
        cost_basis > '-Infinity' AND cost_basis < 'Infinity'
        AND pg_catalog.sign(cost_basis) * pg_catalog.sign(quantity) >= 0
    ),
    CONSTRAINT positions_realized_pnl_finite CHECK (realized_pnl > '-Infinity' AND realized_pnl < 'Infinity'),
    CONSTRAINT positions_version_positive CHECK (version >= 1),
    CONSTRAINT positions_multiplier_positive CHECK (multiplier > 0 AND multiplier < 1e15)
);

COMMENT ON TABLE pgportfolio.positions IS
'Open positions. Written only by pgportfolio functions; read position_pnl instead.';
