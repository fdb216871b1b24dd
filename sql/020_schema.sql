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

-- What a symbol is: 1 to 32 upper-case ASCII letters, digits and . _ - / : (the mutations'
-- input rules ask this function). The tables' checks write the same expression out: a
-- check that calls a SQL function inlines it again for every statement that writes the
-- table (about 30,000 instructions a statement); tests/pgtap/030 proves
-- that each check accepts exactly what this function accepts. Lower case is refused
-- rather than folded, so that one instrument never has two spellings; being ASCII, a
-- symbol holds no control or format character. The length is tested apart from the
-- pattern: with a bounded repetition ({1,32}) one test cost about 1 µs (8,000 instructions),
-- a third of that this way, and every fill pays for two (its input rule and the position
-- row's check).
-- No SET search_path, every name qualified: the planner folds it into its caller's
-- expression (a function call of its own would cost more than the test).
CREATE FUNCTION pgportfolio._symbol_valid(p_symbol text)
RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT pg_catalog.octet_length(p_symbol) OPERATOR(pg_catalog.<=) 32
        AND p_symbol OPERATOR(pg_catalog.~) '^[A-Z0-9._/:-]+$';
$$;
