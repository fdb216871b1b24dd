-- The values the ledger's hot tables hold (portfolios, positions, events), each rule
-- defined once as a domain. Domains rather than table CHECK constraints because of when
-- PostgreSQL prepares them: a table's checks are read back from their stored text and
-- planned again for every statement that writes the table (for one apply_fill, whose
-- three writes meet 19 checks, about a million instructions: 37% of its work), while a
-- domain's checks are read once per session into the type cache. A value is checked
-- whenever it is written to a column of the domain, so they are as strict. Rules that
-- relate two columns stay table checks (positions_cost_basis_sign, events_fill_shape).
--
-- Finite: numeric admits NaN and both infinities. numeric orders NaN above Infinity, so a
-- strict upper bound refuses all three at once.

CREATE DOMAIN pgportfolio.finite_number AS numeric
CONSTRAINT finite_number_check CHECK (pg_catalog.abs(value) < 'Infinity');

COMMENT ON DOMAIN pgportfolio.finite_number IS
'A finite number: not NaN, not +/-Infinity.';

CREATE DOMAIN pgportfolio.non_negative_number AS numeric
CONSTRAINT non_negative_number_check CHECK (value >= 0 AND value < 'Infinity');

COMMENT ON DOMAIN pgportfolio.non_negative_number IS
'A finite number >= 0 (cash balances, fees).';

CREATE DOMAIN pgportfolio.positive_number AS numeric
CONSTRAINT positive_number_check CHECK (value > 0 AND value < 'Infinity');

COMMENT ON DOMAIN pgportfolio.positive_number IS
'A finite number > 0 (prices).';

CREATE DOMAIN pgportfolio.nonzero_number AS numeric
CONSTRAINT nonzero_number_check CHECK (value <> 0 AND pg_catalog.abs(value) < 'Infinity');

COMMENT ON DOMAIN pgportfolio.nonzero_number IS
'A finite number other than 0 (a fill''s signed quantity).';

-- An open position: not flat (a flat position's row is deleted), within the input rules'
-- range and decimal places.
CREATE DOMAIN pgportfolio.open_quantity AS numeric
CONSTRAINT open_quantity_check CHECK (
    value <> 0 AND pg_catalog.abs(value) < 1e15 AND pg_catalog.scale(value) <= 8
);

COMMENT ON DOMAIN pgportfolio.open_quantity IS
'An open position''s signed quantity: nonzero, |q| < 10^15, at most 8 decimal places.';

CREATE DOMAIN pgportfolio.initial_cash_amount AS numeric
CONSTRAINT initial_cash_amount_check CHECK (value >= 0 AND value < 1e15);

COMMENT ON DOMAIN pgportfolio.initial_cash_amount IS
'A portfolio''s initial cash: 0 <= cash < 10^15.';

CREATE DOMAIN pgportfolio.contract_multiplier AS numeric
CONSTRAINT contract_multiplier_check CHECK (value > 0 AND value < 1e15);

COMMENT ON DOMAIN pgportfolio.contract_multiplier IS
'A contract multiplier: 0 < multiplier < 10^15.';

CREATE DOMAIN pgportfolio.row_version AS bigint
CONSTRAINT row_version_check CHECK (value >= 1);

COMMENT ON DOMAIN pgportfolio.row_version IS
'A row''s version, bumped by every change: 1 when the row is created.';

-- Every table's symbol (positions, market_prices, market_price_history, instruments). The
-- same expression as _symbol_valid (020_schema.sql), which checks arguments before any
-- write; tests/pgtap/030 proves that the two accept the same symbols.
CREATE DOMAIN pgportfolio.symbol AS text
CONSTRAINT symbol_check CHECK (pg_catalog.octet_length(value) <= 32 AND value ~ '^[A-Z0-9._/:-]+$');

COMMENT ON DOMAIN pgportfolio.symbol IS
'An instrument symbol: 1 to 32 of A-Z 0-9 . _ - / :';

CREATE DOMAIN pgportfolio.portfolio_name AS text
CONSTRAINT portfolio_name_check CHECK (
    pg_catalog.length(value) BETWEEN 1 AND 200
    AND value = pg_catalog.btrim(value)
    AND value !~ '[[:cntrl:]]'
);

COMMENT ON DOMAIN pgportfolio.portfolio_name IS
'A portfolio''s name: 1 to 200 characters, no surrounding spaces, no control characters.';

CREATE DOMAIN pgportfolio.currency_code AS text
CONSTRAINT currency_code_check CHECK (value ~ '^[A-Z]{3}$');

COMMENT ON DOMAIN pgportfolio.currency_code IS
'A three-letter upper-case currency code.';

CREATE DOMAIN pgportfolio.event_kind AS text
CONSTRAINT event_kind_check CHECK (
    value IN ('create', 'deposit', 'withdraw', 'fee', 'open', 'add', 'reduce', 'close', 'flip')
);

COMMENT ON DOMAIN pgportfolio.event_kind IS
'What an event did: create, deposit, withdraw, fee, or a fill''s open, add, reduce, close, flip.';
