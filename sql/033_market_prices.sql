-- Every mark ever received, and the current one per symbol. Kept apart from positions so
-- that a price tick never locks or rewrites a portfolio or a position; unrealized P&L is
-- derived when read.

-- The history: one row per mark, never updated. as_of is when the price was true (the
-- caller's time, default the transaction's); recorded_at is when the ledger learnt it.
-- mark_id orders marks that share an as_of (the later arrival wins). The primary key is
-- also the index of price_at(): the latest as_of at or before a time, for one symbol, is
-- one backward step in it, and the price comes from the index itself.
-- Growth is bounded by prune_price_history() (sql/150_market_prices.sql), not by
-- partitions: see docs/sql-api.md, "Price history growth".
CREATE TABLE pgportfolio.market_price_history (
    symbol pgportfolio.symbol NOT NULL,
    as_of timestamptz NOT NULL,
    mark_id bigint GENERATED ALWAYS AS IDENTITY,
    price numeric NOT NULL,
    source text,
    recorded_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    PRIMARY KEY (symbol, as_of, mark_id) INCLUDE (price),
    CONSTRAINT market_price_history_price_valid CHECK (
        price NOT IN ('NaN', 'Infinity', '-Infinity') AND price > 0 AND price < 1e15
    ),
    CONSTRAINT market_price_history_as_of_finite CHECK (pg_catalog.isfinite(as_of)),
    CONSTRAINT market_price_history_source_valid CHECK (pg_catalog.length(source) BETWEEN 1 AND 64)
);

COMMENT ON TABLE pgportfolio.market_price_history IS
'Every mark received (update_market_price, update_market_prices); pruned by prune_price_history.';

-- The current mark per symbol: the history row with the latest (as_of, mark_id). A mark
-- that arrives late, with an older as_of, goes to the history only. version counts the
-- times the current mark was replaced.
-- Half of each page is left free (fillfactor 50) because ticks rewrite whole runs of
-- neighbouring rows in one statement (update_market_prices, in symbol order): on full
-- pages many new versions went to other pages, each with a new index entry, and 200,000
-- marks of 10,000 symbols grew the table to 11 MB (1.5 MB with room left). With room on
-- the page they stay there (HOT updates), and later reads prune the old versions.
CREATE TABLE pgportfolio.market_prices (
    symbol pgportfolio.symbol PRIMARY KEY,
    price numeric NOT NULL,
    version bigint NOT NULL DEFAULT 1,
    updated_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    as_of timestamptz NOT NULL DEFAULT pg_catalog.now(),
    source text,
    mark_id bigint NOT NULL,
    CONSTRAINT market_prices_price_valid CHECK (
        price NOT IN ('NaN', 'Infinity', '-Infinity') AND price > 0 AND price < 1e15
    ),
    CONSTRAINT market_prices_version_positive CHECK (version >= 1),
    CONSTRAINT market_prices_as_of_finite CHECK (pg_catalog.isfinite(as_of)),
    CONSTRAINT market_prices_source_valid CHECK (pg_catalog.length(source) BETWEEN 1 AND 64)
)
WITH (fillfactor = 50);

COMMENT ON TABLE pgportfolio.market_prices IS 'Current market price per symbol: the mark with the latest as_of.';
