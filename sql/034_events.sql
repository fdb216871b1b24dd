-- Append-only log of every successful mutation. Each row records the portfolio
-- version it produced and the state right after it, so that verify_portfolio can
-- rebuild the portfolio and an idempotent replay can return the original result.
CREATE TABLE pgportfolio.events (
    portfolio_id bigint NOT NULL REFERENCES pgportfolio.portfolios (portfolio_id),
    portfolio_version bigint NOT NULL,
    kind text NOT NULL,
    operation text NOT NULL,
    symbol text,
    quantity numeric,
    price numeric,
    fee numeric NOT NULL DEFAULT 0,
    amount numeric,
    cash_delta numeric NOT NULL,
    realized_pnl numeric NOT NULL DEFAULT 0,
    cash_balance numeric NOT NULL,
    position_quantity numeric,
    position_cost_basis numeric,
    request_id text,
    request_args jsonb,
    acting_role name NOT NULL,
    created_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    CONSTRAINT events_pkey PRIMARY KEY (portfolio_id, portfolio_version),
    CONSTRAINT events_request_id_key UNIQUE (portfolio_id, request_id),
    CONSTRAINT events_kind_valid CHECK (
        kind IN ('create', 'deposit', 'withdraw', 'fee', 'open', 'add', 'reduce', 'close', 'flip')
    ),
    CONSTRAINT events_fill_shape CHECK (
        (kind IN ('open', 'add', 'reduce', 'close', 'flip'))
        = (symbol IS NOT NULL AND quantity IS NOT NULL AND price IS NOT NULL AND position_quantity IS NOT NULL)
    ),
    CONSTRAINT events_numbers_finite CHECK (
        quantity NOT IN ('NaN', 'Infinity', '-Infinity')
        AND price NOT IN ('NaN', 'Infinity', '-Infinity')
        AND fee NOT IN ('NaN', 'Infinity', '-Infinity')
        AND amount NOT IN ('NaN', 'Infinity', '-Infinity')
        AND cash_delta NOT IN ('NaN', 'Infinity', '-Infinity')
        AND realized_pnl NOT IN ('NaN', 'Infinity', '-Infinity')
        AND position_quantity NOT IN ('NaN', 'Infinity', '-Infinity')
        AND position_cost_basis NOT IN ('NaN', 'Infinity', '-Infinity')
    ),
    CONSTRAINT events_cash_balance_valid CHECK (
        cash_balance NOT IN ('NaN', 'Infinity', '-Infinity') AND cash_balance >= 0
    ),
    CONSTRAINT events_fee_not_negative CHECK (fee >= 0),
    CONSTRAINT events_price_positive CHECK (price > 0),
    CONSTRAINT events_quantity_nonzero CHECK (quantity <> 0)
);

COMMENT ON TABLE pgportfolio.events IS
'Append-only log of every successful mutation. Read event_log instead.';

-- The log is evidence: refuse to change or remove what is in it, whoever asks.
CREATE FUNCTION pgportfolio.events_refuse_change() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RAISE EXCEPTION 'pgportfolio.events is append-only'
        USING ERRCODE = '42501', HINT = 'Events are never updated or deleted.';
END;
$$;

CREATE TRIGGER events_append_only
BEFORE UPDATE OR DELETE ON pgportfolio.events
FOR EACH ROW EXECUTE FUNCTION pgportfolio.events_refuse_change();

CREATE TRIGGER events_no_truncate
BEFORE TRUNCATE ON pgportfolio.events
FOR EACH STATEMENT EXECUTE FUNCTION pgportfolio.events_refuse_change();
