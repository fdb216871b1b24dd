-- One row per portfolio. version is bumped by every mutation, in the same UPDATE.
-- realized_pnl is the running sum of the mutations' realized P&L, net of fees.
CREATE TABLE pgportfolio.portfolios (
    portfolio_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name text NOT NULL,
    currency text NOT NULL,
    owner_role name NOT NULL,
    initial_cash numeric NOT NULL,
    cash_balance numeric NOT NULL,
    realized_pnl numeric NOT NULL DEFAULT 0,
    version bigint NOT NULL DEFAULT 1,
    created_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    updated_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    -- chain_hash of the portfolio's latest event (see 034_events.sql), kept here so that a
    -- writer reads it with the row it locks; verify_portfolio's event_hash_chain checks it.
    chain_head bytea NOT NULL DEFAULT ''::bytea,
    CONSTRAINT portfolios_name_valid CHECK (
        pg_catalog.length(name) BETWEEN 1 AND 200
        AND name = pg_catalog.btrim(name)
        AND name !~ '[[:cntrl:]]'
    ),
    CONSTRAINT portfolios_currency_valid CHECK (currency ~ '^[A-Z]{3}$'),
    -- numeric admits NaN and +/-Infinity; NaN = NaN is true for numeric, so NOT IN catches all three.
    CONSTRAINT portfolios_initial_cash_valid CHECK (
        initial_cash NOT IN ('NaN', 'Infinity', '-Infinity') AND initial_cash >= 0 AND initial_cash < 1e15
    ),
    CONSTRAINT portfolios_cash_balance_valid CHECK (
        cash_balance NOT IN ('NaN', 'Infinity', '-Infinity') AND cash_balance >= 0
    ),
    CONSTRAINT portfolios_realized_pnl_finite CHECK (realized_pnl NOT IN ('NaN', 'Infinity', '-Infinity')),
    CONSTRAINT portfolios_version_positive CHECK (version >= 1)
);

COMMENT ON TABLE pgportfolio.portfolios IS
'Portfolios. Written only by pgportfolio functions; read portfolio_summary instead.';

-- Roles other than the owner that may trade a portfolio (grant_portfolio).
CREATE TABLE pgportfolio.portfolio_access (
    portfolio_id bigint NOT NULL REFERENCES pgportfolio.portfolios (portfolio_id),
    grantee name NOT NULL,
    granted_by name NOT NULL,
    granted_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    PRIMARY KEY (portfolio_id, grantee)
);

COMMENT ON TABLE pgportfolio.portfolio_access IS
'Roles allowed to trade a portfolio besides its owner.';

-- A portfolio is never deleted: its events stay forever, and they carry no foreign key
-- to it (see 034_events.sql), so this is what keeps every event's portfolio in place.
CREATE FUNCTION pgportfolio.portfolios_refuse_delete() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RAISE EXCEPTION 'portfolios are never deleted'
        USING ERRCODE = '42501', HINT = 'A portfolio''s events keep it; close its positions and withdraw its cash instead.';
END;
$$;

CREATE TRIGGER portfolios_no_delete
BEFORE DELETE ON pgportfolio.portfolios
FOR EACH STATEMENT EXECUTE FUNCTION pgportfolio.portfolios_refuse_delete();

CREATE TRIGGER portfolios_no_truncate
BEFORE TRUNCATE ON pgportfolio.portfolios
FOR EACH STATEMENT EXECUTE FUNCTION pgportfolio.portfolios_refuse_delete();

ALTER TABLE pgportfolio.portfolios ENABLE ALWAYS TRIGGER portfolios_no_delete;
ALTER TABLE pgportfolio.portfolios ENABLE ALWAYS TRIGGER portfolios_no_truncate;
