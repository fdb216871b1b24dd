-- Append-only log of every successful mutation. Each row records the portfolio
-- version it produced and the state right after it, so that verify_portfolio can
-- rebuild the portfolio and an idempotent replay can return the original result.
-- The request a row answers is in its own columns (operation, symbol, quantity, price,
-- fee, amount: see _request_args), so a replay compares typed values, not a JSON copy.
-- chain_hash links each event to the one before it in its portfolio (see _event_hash
-- below), so that an edit made behind the functions' back shows.
CREATE TABLE pgportfolio.events (
    -- No foreign key to portfolios: every writer holds the portfolio's row lock, and
    -- portfolios are never deleted; the key's check cost about 7 µs per event.
    portfolio_id bigint NOT NULL,
    portfolio_version bigint NOT NULL,
    kind pgportfolio.event_kind NOT NULL,
    operation text NOT NULL,
    symbol text,
    -- Each number's rule is its domain's (025_domains.sql); the table checks only the
    -- shape of a row, which relates its columns.
    quantity pgportfolio.nonzero_number,
    price pgportfolio.positive_number,
    fee pgportfolio.non_negative_number NOT NULL DEFAULT 0,
    amount pgportfolio.finite_number,
    cash_delta pgportfolio.finite_number NOT NULL,
    realized_pnl pgportfolio.finite_number NOT NULL DEFAULT 0,
    cash_balance pgportfolio.non_negative_number NOT NULL,
    position_quantity pgportfolio.finite_number,
    position_cost_basis pgportfolio.finite_number,
    request_id text,
    -- A fill's execution, as its sender described it: when the trade happened (data, not
    -- ordering: the log is in arrival order), the broker's order or execution id, and
    -- flat string tags (account, strategy, venue...). Part of the request's identity.
    executed_at timestamptz,
    order_id text,
    tags jsonb,
    -- A fill's contract multiplier (instruments; 1 without a row): its cash flow and cost
    -- basis are quantity * price * multiplier.
    multiplier numeric,
    acting_role name NOT NULL,
    created_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    chain_hash bytea NOT NULL,
    CONSTRAINT events_pkey PRIMARY KEY (portfolio_id, portfolio_version),
    -- Request id first: a look-up by request id can take no other index (the primary key
    -- starts with portfolio_id), so its plan does not depend on the table's statistics
    -- (see the look-ups in 128_operations.sql).
    CONSTRAINT events_request_id_key UNIQUE (request_id, portfolio_id),
    CONSTRAINT events_fill_shape CHECK (
        (kind IN ('open', 'add', 'reduce', 'close', 'flip'))
        = (symbol IS NOT NULL AND quantity IS NOT NULL AND price IS NOT NULL AND position_quantity IS NOT NULL)
        AND (multiplier IS NOT NULL) = (symbol IS NOT NULL)
    )
);

COMMENT ON TABLE pgportfolio.events IS
'Append-only log of every successful mutation. Read event_log instead.';
COMMENT ON COLUMN pgportfolio.events.chain_hash IS
'sha256(previous event''s chain_hash || canonical text of this event); see _event_hash.';

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

-- chain_hash = sha256(chain_hash of the portfolio's previous event (empty for version 1)
-- || UTF-8 of the event's canonical text). The canonical text is every column but the
-- hash, as a row literal in table order (record output quotes any value that could be
-- mistaken for a separator, so it is unambiguous; tags in jsonb's own normal form), with
-- executed_at and created_at as seconds since the epoch (exact to the microsecond) so
-- that it depends on no session setting (TimeZone, DateStyle); numbers keep their scale.
-- The functions that write events compute it, each knowing the previous hash (the batch
-- core keeps it on the portfolio's row, chain_head), and verify_portfolio recomputes it.
-- Defined once, here: without SET search_path and with every name qualified, so the
-- planner inlines it into its callers (a per-row trigger that looked the previous event up
-- cost 15 to 30 µs per event; this costs about 2).
CREATE FUNCTION pgportfolio._event_hash(
    p_previous bytea,
    p_portfolio_id bigint,
    p_portfolio_version bigint,
    p_kind text,
    p_operation text,
    p_symbol text,
    p_quantity numeric,
    p_price numeric,
    p_fee numeric,
    p_amount numeric,
    p_cash_delta numeric,
    p_realized_pnl numeric,
    p_cash_balance numeric,
    p_position_quantity numeric,
    p_position_cost_basis numeric,
    p_request_id text,
    p_executed_at timestamptz,
    p_order_id text,
    p_tags jsonb,
    p_multiplier numeric,
    p_acting_role name,
    p_created_at timestamptz
)
RETURNS bytea
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    SELECT pg_catalog.sha256(
        p_previous OPERATOR(pg_catalog.||) pg_catalog.convert_to(
            ROW(
                p_portfolio_id, p_portfolio_version, p_kind, p_operation, p_symbol, p_quantity, p_price, p_fee,
                p_amount, p_cash_delta, p_realized_pnl, p_cash_balance, p_position_quantity, p_position_cost_basis,
                p_request_id, EXTRACT(EPOCH FROM p_executed_at), p_order_id, p_tags, p_multiplier, p_acting_role,
                EXTRACT(EPOCH FROM p_created_at)
            )::pg_catalog.text,
            'UTF8'
        )
    );
$$;

-- ALWAYS: the triggers fire under session_replication_role = replica too, which a
-- superuser (or a role granted that setting) could otherwise use to skip them. The
-- table's owner can still ALTER TABLE ... DISABLE TRIGGER, or insert rows directly;
-- chain_hash makes what it then changes visible to verify_portfolio (see
-- docs/sql-api.md, "Event log integrity").
ALTER TABLE pgportfolio.events ENABLE ALWAYS TRIGGER events_append_only;
ALTER TABLE pgportfolio.events ENABLE ALWAYS TRIGGER events_no_truncate;
