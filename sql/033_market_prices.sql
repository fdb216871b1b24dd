-- Latest mark per symbol. Kept apart from positions so that a price tick never
-- locks or rewrites a portfolio or a position; unrealized P&L is derived when read.
CREATE TABLE pgportfolio.market_prices (
    symbol text PRIMARY KEY,
    price numeric NOT NULL,
    version bigint NOT NULL DEFAULT 1,
    updated_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    CONSTRAINT market_prices_symbol_valid CHECK (symbol ~ '^[A-Z0-9._/:-]{1,32}$'),
    CONSTRAINT market_prices_price_valid CHECK (
        price NOT IN ('NaN', 'Infinity', '-Infinity') AND price > 0 AND price < 1e15
    ),
    CONSTRAINT market_prices_version_positive CHECK (version >= 1)
);

COMMENT ON TABLE pgportfolio.market_prices IS 'Latest market price per symbol.';
