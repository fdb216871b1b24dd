-- One row per portfolio. version is bumped by every mutation, in the same UPDATE.
-- realized_pnl is the running sum of the mutations' realized P&L, net of fees.
CREATE TABLE pgportfolio.portfolios (
    portfolio_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name pgportfolio.portfolio_name NOT NULL,
    currency pgportfolio.currency_code NOT NULL,
    owner_role name NOT NULL,
    initial_cash pgportfolio.initial_cash_amount NOT NULL,
    cash_balance pgportfolio.non_negative_number NOT NULL,
    realized_pnl pgportfolio.finite_number NOT NULL DEFAULT 0,
    version pgportfolio.row_version NOT NULL DEFAULT 1,
    created_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    updated_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    -- chain_hash of the portfolio's latest event (see 034_events.sql), kept here so that a
    -- writer reads it with the row it locks; verify_portfolio's event_hash_chain checks it.
    -- Each column's rule is its domain's (025_domains.sql): no table check, since every
    -- mutation updates this row.
    chain_head bytea NOT NULL DEFAULT ''::bytea
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
