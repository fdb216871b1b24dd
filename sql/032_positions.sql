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
    symbol pgportfolio.symbol NOT NULL,
    quantity pgportfolio.open_quantity NOT NULL,
    cost_basis pgportfolio.finite_number NOT NULL,
    realized_pnl pgportfolio.finite_number NOT NULL DEFAULT 0,
    -- The instrument's multiplier when the position opened (instruments; 1 without a row).
    -- It cannot change while the position is open (upsert_instrument refuses, PF007), so
    -- readers value the position with its own row: market value = quantity * mark * multiplier.
    multiplier pgportfolio.contract_multiplier NOT NULL DEFAULT 1,
    version pgportfolio.row_version NOT NULL DEFAULT 1,
    opened_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    updated_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    PRIMARY KEY (portfolio_id, symbol),
    -- Each column's rule is its domain's (025_domains.sql); the table checks only what
    -- relates two columns.
    CONSTRAINT positions_cost_basis_sign CHECK (pg_catalog.sign(cost_basis) * pg_catalog.sign(quantity) >= 0)
);

COMMENT ON TABLE pgportfolio.positions IS
'Open positions. Written only by pgportfolio functions; read position_pnl instead.';
