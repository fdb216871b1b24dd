-- The schema belongs to pgportfolio_owner; every object after this file is created
-- as that role, so the owner is the same whoever installs.
CREATE SCHEMA pgportfolio AUTHORIZATION pgportfolio_owner;

COMMENT ON SCHEMA pgportfolio IS
'Portfolio and position ledger. Mutate through functions, read through views.';

SET LOCAL ROLE pgportfolio_owner;

-- What every mutation function returns. position_quantity is 0 after a close.
CREATE TYPE pgportfolio.mutation_result AS (
    portfolio_id bigint,
    portfolio_version bigint,
    cash_balance numeric,
    symbol text,
    position_quantity numeric,
    position_avg_price numeric,
    realized_pnl numeric,
    duplicate boolean
);
