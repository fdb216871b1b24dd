-- 0001_initial: the first schema, as in sql/ at release 0.1.0.
-- Generated from sql/*.sql in name order; later changes get their own numbered file.
SET LOCAL lock_timeout = '5s';

-- ===== sql/010_roles.sql =====
-- The install runs in one transaction with a search_path no other role can write to,
-- so every name below resolves to the object we mean (pgspot checks this).
SET LOCAL search_path = pg_catalog, pg_temp;

-- Cluster-wide roles. Roles outlive any one database, so this file is idempotent.
-- pgportfolio_owner owns every object; nobody logs in as it.
-- pgportfolio_trader may call the mutation functions and read the views.
-- pgportfolio_analyst may read the views and call the read-only functions, nothing else.
DO $roles$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'pgportfolio_owner') THEN
        BEGIN
            CREATE ROLE pgportfolio_owner NOLOGIN;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL;  -- created meanwhile by an install into another database
        END;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'pgportfolio_trader') THEN
        BEGIN
            CREATE ROLE pgportfolio_trader NOLOGIN;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL;  -- created meanwhile by an install into another database
        END;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'pgportfolio_analyst') THEN
        BEGIN
            CREATE ROLE pgportfolio_analyst NOLOGIN;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL;  -- created meanwhile by an install into another database
        END;
    END IF;
    -- The installer creates objects as pgportfolio_owner (SET ROLE), so it must be a member.
    IF NOT pg_catalog.pg_has_role(current_user, 'pgportfolio_owner', 'MEMBER') THEN
        EXECUTE pg_catalog.format('GRANT pgportfolio_owner TO %I', current_user);
    END IF;
    -- lock_waits shows other sessions' queries; without this an analyst sees
    -- '<insufficient privilege>'. Skipped (with a notice) when the installer may not grant it.
    IF NOT pg_catalog.pg_has_role('pgportfolio_analyst', 'pg_read_all_stats', 'MEMBER') THEN
        BEGIN
            GRANT pg_read_all_stats TO pgportfolio_analyst;
        EXCEPTION WHEN insufficient_privilege THEN
            RAISE NOTICE 'pgportfolio: could not grant pg_read_all_stats to pgportfolio_analyst';
        END;
    END IF;
END
$roles$;

-- ===== sql/020_schema.sql =====
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

-- ===== sql/025_domains.sql =====
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

-- ===== sql/030_portfolios.sql =====
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

-- ===== sql/032_positions.sql =====
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

-- ===== sql/033_market_prices.sql =====
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

-- ===== sql/034_events.sql =====
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

-- ===== sql/035_instruments.sql =====
-- Instruments: what the ledger knows about a symbol beyond its marks. multiplier is the
-- contract size (a future's point value, 100 for a US equity option): one unit of
-- quantity at price p is worth multiplier * p. A symbol with no row has multiplier 1.
-- Written only by upsert_instrument (owner role); traders and analysts read the
-- instrument_list view (sql/200_views.sql).
CREATE TABLE pgportfolio.instruments (
    symbol pgportfolio.symbol PRIMARY KEY,
    multiplier numeric NOT NULL DEFAULT 1,
    description text,
    updated_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    CONSTRAINT instruments_multiplier_valid CHECK (
        multiplier NOT IN ('NaN', 'Infinity', '-Infinity')
        AND multiplier > 0
        AND multiplier < 1e15
        AND pg_catalog.scale(multiplier) <= 8
    ),
    CONSTRAINT instruments_description_valid CHECK (
        pg_catalog.length(description) BETWEEN 1 AND 200 AND description !~ '[[:cntrl:]]'
    )
);

COMMENT ON TABLE pgportfolio.instruments IS
'Contract multiplier and description per symbol; a symbol without a row has multiplier 1.';

-- One row, updated by every change of a multiplier (upsert_instrument). A fill at
-- REPEATABLE READ or SERIALIZABLE that opens a position takes this row FOR SHARE before it
-- reads multipliers: a change committed after its snapshot then fails the fill with 40001
-- (retryable) instead of letting it open the position at the old multiplier, and a change
-- still in progress waits for the fill and then finds the position held (PF007). At READ
-- COMMITTED the fill reads the committed multiplier after taking its lock on positions,
-- which needs no row (sql/128_operations.sql, step 4).
CREATE TABLE pgportfolio.multiplier_changes (
    singleton boolean PRIMARY KEY DEFAULT TRUE,
    changes bigint NOT NULL DEFAULT 0,
    changed_at timestamptz,
    CONSTRAINT multiplier_changes_one_row CHECK (singleton)
);

INSERT INTO pgportfolio.multiplier_changes DEFAULT VALUES;

COMMENT ON TABLE pgportfolio.multiplier_changes IS
'How many times a multiplier changed; fills at REPEATABLE READ lock it to see a change they missed.';

-- ===== sql/100_validation.sql =====
-- Input checks shared by the mutation functions. Every failure is SQLSTATE 22023
-- (invalid_parameter_value) and is raised before any row is locked or written.

-- A money or quantity argument. p_sign is 'positive', 'non_negative' or 'nonzero'
-- (signed quantities). Values are never rounded: more than 8 decimal places is an error.
CREATE FUNCTION pgportfolio._check_number(p_argument text, p_value numeric, p_sign text)
RETURNS void
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF p_value IS NULL THEN
        RAISE EXCEPTION '% must not be null', p_argument USING ERRCODE = '22023';
    END IF;
    IF p_value IN ('NaN', 'Infinity', '-Infinity') THEN
        RAISE EXCEPTION '% must be a finite number', p_argument
            USING ERRCODE = '22023', DETAIL = format('Got %s.', p_value);
    END IF;
    IF abs(p_value) >= 1e15 THEN
        RAISE EXCEPTION '% is out of range', p_argument
            USING ERRCODE = '22023', DETAIL = format('Got %s; the absolute value must be below 10^15.', p_value);
    END IF;
    IF min_scale(p_value) > 8 THEN
        RAISE EXCEPTION '% has more than 8 decimal places', p_argument
            USING ERRCODE = '22023', DETAIL = format('Got %s.', p_value),
            HINT = 'Values are never rounded; round before calling.';
    END IF;
    IF p_sign = 'positive' AND p_value <= 0 THEN
        RAISE EXCEPTION '% must be positive', p_argument
            USING ERRCODE = '22023', DETAIL = format('Got %s.', p_value);
    ELSIF p_sign = 'non_negative' AND p_value < 0 THEN
        RAISE EXCEPTION '% must not be negative', p_argument
            USING ERRCODE = '22023', DETAIL = format('Got %s.', p_value);
    ELSIF p_sign = 'nonzero' AND p_value = 0 THEN
        RAISE EXCEPTION '% must not be zero', p_argument
            USING ERRCODE = '22023', HINT = 'Positive buys, negative sells.';
    END IF;
END;
$$;

-- The characters refused in names and request ids, as one regular-expression bracket:
-- control characters, and the Unicode format characters (general category Cf: soft
-- hyphen, zero-width space and joiners, left-to-right and right-to-left marks and
-- overrides such as U+202E, the byte order mark, tag characters, ...). Format characters
-- are invisible or reorder what follows, so two different names could print the same in a
-- report. PostgreSQL's regular expressions have no Unicode category classes, so the Cf
-- code points of Unicode 15.1 are listed; tests/proof/test_privilege_attacks.py compares
-- the list with Python's unicodedata, code point by code point. No SET search_path (the
-- operator is qualified instead): the planner then folds the call to its constant when a
-- caller is planned, where a call of its own cost every mutation about 20 µs.
CREATE FUNCTION pgportfolio._refused_characters()
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT '[[:cntrl:]\u00AD\u0600-\u0605\u061C\u06DD\u070F\u0890-\u0891\u08E2\u180E\u200B-\u200F'
        OPERATOR(pg_catalog.||) '\u202A-\u202E\u2060-\u2064\u2066-\u206F\uFEFF\uFFF9-\uFFFB\U000110BD\U000110CD'
        OPERATOR(pg_catalog.||) '\U00013430-\U0001343F\U0001BCA0-\U0001BCA3\U0001D173-\U0001D17A\U000E0001'
        OPERATOR(pg_catalog.||) '\U000E0020-\U000E007F]';
$$;

-- The symbol rule (_symbol_valid, 020_schema.sql), raising.
CREATE FUNCTION pgportfolio._check_symbol(p_symbol text)
RETURNS void
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF p_symbol IS NULL THEN
        RAISE EXCEPTION 'symbol must not be null' USING ERRCODE = '22023';
    END IF;
    IF NOT pgportfolio._symbol_valid(p_symbol) THEN
        RAISE EXCEPTION 'invalid symbol'
            USING ERRCODE = '22023',
            DETAIL = format('Got %s (%s characters).', quote_literal(left(p_symbol, 40)), length(p_symbol)),
            HINT = 'A symbol is 1 to 32 characters of A-Z, 0-9 and . _ - / :';
    END IF;
END;
$$;

-- A request id is opaque to us: 1 to 200 characters, none of _refused_characters().
CREATE FUNCTION pgportfolio._check_request(p_request_id text, p_expected_version bigint)
RETURNS void
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF p_request_id IS NOT NULL
       AND (length(p_request_id) NOT BETWEEN 1 AND 200 OR p_request_id ~ pgportfolio._refused_characters()) THEN
        RAISE EXCEPTION 'invalid request id'
            USING ERRCODE = '22023',
            HINT = 'A request id is 1 to 200 characters without control or format characters (such as U+202E).';
    END IF;
    IF p_expected_version IS NOT NULL AND p_expected_version < 1 THEN
        RAISE EXCEPTION 'expected_version must be at least 1'
            USING ERRCODE = '22023', DETAIL = format('Got %s.', p_expected_version);
    END IF;
END;
$$;

-- A fill's execution metadata, all optional. executed_at: when the trade happened, finite
-- and at most p_latest (one minute after the clock: a clock a little ahead is tolerated, a
-- date typed wrong is not); it may be long past (imports). order_id: the broker's order or
-- execution id, opaque like a request id. tags: a flat JSON object of short strings
-- (account, strategy, venue...), bounded so that one event's row stays small.
-- No SET search_path, every name qualified: the planner folds the call into its caller's
-- expression (with SET search_path it cost about 8 µs per fill; folded, 0.1 µs). The tags'
-- rule reads each object's members, so it is _invalid_tags below, asked once per call.
CREATE FUNCTION pgportfolio._execution_valid(p_executed_at timestamptz, p_order_id text, p_latest timestamptz)
RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    SELECT (p_executed_at IS NULL OR (
            p_executed_at OPERATOR(pg_catalog.>) '-infinity'::pg_catalog.timestamptz
            AND p_executed_at OPERATOR(pg_catalog.<=) p_latest
        ))
        AND (p_order_id IS NULL OR (
            pg_catalog.length(p_order_id) OPERATOR(pg_catalog.>=) 1
            AND pg_catalog.length(p_order_id) OPERATOR(pg_catalog.<=) 200
            AND p_order_id OPERATOR(pg_catalog.!~) pgportfolio._refused_characters()
        ));
$$;

-- The tags' rule, for a list of tags at once: the positions (from 1) of those that break
-- it. Tags are a flat JSON object of at most 32 keys (1 to 64 characters) with string
-- values of at most 256 characters, no control or format characters, at most 4096 bytes
-- in all. A list, not one value: a SQL function that reads rows (here the object's
-- members) is never folded into its caller's expression, and called once per element it
-- cost about 100,000 instructions, where one statement over the list (the planner inlines
-- this function into it: no SET search_path, every name qualified) costs a tenth of that.
CREATE FUNCTION pgportfolio._invalid_tags(p_tags jsonb[])
RETURNS TABLE (item bigint)
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    SELECT u.item
    FROM pg_catalog.unnest(p_tags) WITH ORDINALITY AS u (tags, item)
    WHERE u.tags IS NOT NULL AND NOT CASE
        WHEN pg_catalog.jsonb_typeof(u.tags) OPERATOR(pg_catalog.<>) 'object'
            OR pg_catalog.octet_length(u.tags::pg_catalog.text) OPERATOR(pg_catalog.>) 4096 THEN false
        ELSE (
            SELECT pg_catalog.count(*) OPERATOR(pg_catalog.<=) 32 AND coalesce(pg_catalog.bool_and(
                pg_catalog.length(t.key) OPERATOR(pg_catalog.>=) 1
                AND pg_catalog.length(t.key) OPERATOR(pg_catalog.<=) 64
                AND t.key OPERATOR(pg_catalog.!~) pgportfolio._refused_characters()
                AND pg_catalog.jsonb_typeof(t.value) OPERATOR(pg_catalog.=) 'string'
                AND pg_catalog.length(t.value OPERATOR(pg_catalog.#>>) '{}') OPERATOR(pg_catalog.<=) 256
                AND (t.value OPERATOR(pg_catalog.#>>) '{}') OPERATOR(pg_catalog.!~) pgportfolio._refused_characters()
            ), true)
            FROM pg_catalog.jsonb_each(u.tags) AS t
        )
    END;
$$;

-- The same rules as _execution_valid, raising the one that was broken.
CREATE FUNCTION pgportfolio._check_execution(
    p_executed_at timestamptz, p_order_id text, p_tags jsonb, p_latest timestamptz
)
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_tags_hint constant text := 'Tags are a flat JSON object of at most 32 keys (1 to 64 characters) with string '
        'values of at most 256 characters, no control or format characters, at most 4096 bytes in all.';
BEGIN
    IF p_executed_at IN ('infinity', '-infinity') THEN
        RAISE EXCEPTION 'executed_at must be a finite time' USING ERRCODE = '22023';
    END IF;
    IF p_executed_at > p_latest THEN
        RAISE EXCEPTION 'executed_at is in the future'
            USING ERRCODE = '22023',
            DETAIL = format('Got %s; the latest accepted is %s (one minute after now).', p_executed_at, p_latest);
    END IF;
    IF p_order_id IS NOT NULL
       AND (length(p_order_id) NOT BETWEEN 1 AND 200 OR p_order_id ~ pgportfolio._refused_characters()) THEN
        RAISE EXCEPTION 'invalid order id'
            USING ERRCODE = '22023',
            HINT = 'An order id is 1 to 200 characters without control or format characters (such as U+202E).';
    END IF;
    IF jsonb_typeof(p_tags) <> 'object' THEN
        RAISE EXCEPTION 'tags must be a JSON object'
            USING ERRCODE = '22023', DETAIL = format('Got a JSON %s.', jsonb_typeof(p_tags)), HINT = v_tags_hint;
    END IF;
    IF EXISTS (SELECT FROM pgportfolio._invalid_tags(ARRAY[p_tags])) THEN
        RAISE EXCEPTION 'invalid tags' USING ERRCODE = '22023', HINT = v_tags_hint;
    END IF;
END;
$$;

CREATE FUNCTION pgportfolio._check_portfolio_attributes(p_name text, p_currency text)
RETURNS void
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF p_name IS NULL OR length(p_name) NOT BETWEEN 1 AND 200 OR p_name <> btrim(p_name)
       OR p_name ~ pgportfolio._refused_characters() THEN
        RAISE EXCEPTION 'invalid portfolio name'
            USING ERRCODE = '22023',
            HINT = 'A name is 1 to 200 characters, without control or format characters (such as U+202E) or surrounding spaces.';
    END IF;
    IF p_currency IS NULL OR p_currency !~ '^[A-Z]{3}$' THEN
        RAISE EXCEPTION 'invalid currency'
            USING ERRCODE = '22023', DETAIL = format('Got %s.', coalesce(quote_literal(left(p_currency, 40)), 'NULL')),
            HINT = 'Use an ISO 4217 code in upper case, such as USD.';
    END IF;
END;
$$;

-- ===== sql/110_access.sql =====
-- Who is acting. Inside a SECURITY DEFINER function current_user is the owner, so
-- the caller is read from the session: the role set by SET ROLE, else the login role.
-- Neither can be set to a role the session is not a member of, so it cannot be forged
-- through an argument. Inlined into its callers (no SET search_path, every name
-- qualified): as a function call of its own it cost every mutation about 20 µs.
CREATE FUNCTION pgportfolio._acting_role()
RETURNS name
LANGUAGE sql STABLE
AS $$
    SELECT CASE
        WHEN pg_catalog.current_setting('role') OPERATOR(pg_catalog.=) 'none' THEN pg_catalog.session_user()
        ELSE pg_catalog.current_setting('role')::pg_catalog.name
    END;
$$;

-- The portfolios among p_portfolio_ids that p_actor may not trade, with why: PF004 for
-- one that does not exist, 42501 for one the role neither owns (directly or through a
-- role it is a member of) nor was granted. One statement for a whole batch. Reads
-- without locking, so that a refused caller never holds a portfolio's lock. Without SET
-- search_path and with every name qualified, so that the planner inlines it into its
-- caller's statement (as a function of its own it cost 0.4 to 0.6 ms per call). The
-- caller passes a plain array: an argument with a subquery would prevent the inlining.
CREATE FUNCTION pgportfolio._authorization_refusals(p_portfolio_ids bigint[], p_actor name)
RETURNS TABLE (portfolio_id bigint, sqlstate text, message text, hint text)
LANGUAGE sql STABLE
AS $$
    SELECT
        u.id,
        CASE WHEN p.portfolio_id IS NULL THEN 'PF004' ELSE '42501' END,
        CASE WHEN p.portfolio_id IS NULL
            THEN pg_catalog.format('portfolio %s not found', u.id)
            ELSE pg_catalog.format('role %s may not trade portfolio %s', p_actor, u.id)
        END,
        CASE WHEN p.portfolio_id IS NULL
            THEN 'Check the portfolio id; create_portfolio returns it.'
            ELSE 'The portfolio''s owner can call grant_portfolio.'
        END
    FROM (SELECT DISTINCT i.id FROM pg_catalog.unnest(p_portfolio_ids) AS i (id) WHERE i.id IS NOT NULL) AS u
    LEFT JOIN LATERAL (
        SELECT l.portfolio_id, l.owner_role FROM pgportfolio.portfolios AS l
        WHERE l.portfolio_id OPERATOR(pg_catalog.=) u.id
    ) AS p ON true
    WHERE p.portfolio_id IS NULL
    OR NOT (
        p.owner_role OPERATOR(pg_catalog.=) p_actor
        -- Only roles that still exist are asked about: a dropped grantee must not break
        -- the portfolio for everyone else (pg_has_role raises for an unknown role name).
        OR EXISTS (
            SELECT FROM pg_catalog.pg_roles AS r
            WHERE r.rolname OPERATOR(pg_catalog.=) p.owner_role AND pg_catalog.pg_has_role(p_actor, r.oid, 'MEMBER')
        )
        OR EXISTS (
            SELECT FROM pgportfolio.portfolio_access AS a
            INNER JOIN pg_catalog.pg_roles AS r ON a.grantee OPERATOR(pg_catalog.=) r.rolname
            WHERE a.portfolio_id OPERATOR(pg_catalog.=) u.id AND pg_catalog.pg_has_role(p_actor, r.oid, 'MEMBER')
        )
    );
$$;

-- One portfolio: raise the refusal, if any.
CREATE FUNCTION pgportfolio._authorize(p_portfolio_id bigint, p_actor name)
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r record;
BEGIN
    IF p_portfolio_id IS NULL THEN
        RAISE EXCEPTION 'portfolio_id must not be null' USING ERRCODE = '22023';
    END IF;
    SELECT * INTO r FROM pgportfolio._authorization_refusals(ARRAY[p_portfolio_id], p_actor);
    IF FOUND THEN
        RAISE EXCEPTION USING ERRCODE = r.sqlstate, MESSAGE = r.message, HINT = r.hint;
    END IF;
END;
$$;

CREATE FUNCTION pgportfolio._bound_lock_wait()
RETURNS text
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_saved text := current_setting('lock_timeout');
BEGIN
    PERFORM set_config(
        'lock_timeout', coalesce(nullif(current_setting('pgportfolio.lock_timeout', true), ''), '2s'), true
    );
    RETURN v_saved;
END;
$$;

-- ===== sql/120_create_portfolio.sql =====
-- Creates a portfolio owned by the calling role and logs a 'create' event (version 1)
-- whose cash_delta is the initial cash, so that the event log alone rebuilds the cash.
CREATE FUNCTION pgportfolio.create_portfolio(
    p_name text,
    p_initial_cash numeric,
    p_currency text DEFAULT 'USD'
)
RETURNS bigint
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_actor name := pgportfolio._acting_role();
    v_portfolio_id bigint;
    v_chain_head bytea;
BEGIN
    PERFORM pgportfolio._check_portfolio_attributes(p_name, p_currency);
    PERFORM pgportfolio._check_number('p_initial_cash', p_initial_cash, 'non_negative');
    p_initial_cash := trim_scale(p_initial_cash);

    INSERT INTO pgportfolio.portfolios (name, currency, owner_role, initial_cash, cash_balance)
    VALUES (p_name, p_currency, v_actor, p_initial_cash, p_initial_cash)
    RETURNING portfolio_id INTO v_portfolio_id;

    INSERT INTO pgportfolio.events (
        portfolio_id, portfolio_version, kind, operation, fee, amount, cash_delta, realized_pnl, cash_balance,
        acting_role, created_at, chain_hash
    )
    VALUES (
        v_portfolio_id, 1, 'create', 'create_portfolio', 0, p_initial_cash, p_initial_cash, 0, p_initial_cash,
        v_actor, now(),
        pgportfolio._event_hash(
            ''::bytea, v_portfolio_id, 1, 'create', 'create_portfolio', NULL, NULL, NULL, 0, p_initial_cash,
            p_initial_cash, 0, p_initial_cash, NULL, NULL, NULL, NULL, NULL, NULL, NULL, v_actor, now()
        )
    )
    RETURNING chain_hash INTO v_chain_head;
    UPDATE pgportfolio.portfolios SET chain_head = v_chain_head WHERE portfolio_id = v_portfolio_id;

    RETURN v_portfolio_id;
END;
$$;

COMMENT ON FUNCTION pgportfolio.create_portfolio(text, numeric, text) IS
'Create a portfolio owned by the calling role. Returns its id.';

-- ===== sql/125_replay.sql =====
-- Idempotency: a request id already in the log returns the result it produced then,
-- marked duplicate, and changes nothing. The same id with other arguments is PF005.
-- Only the operation itself is compared, never the expected version: a retry after a
-- lost reply carries a version that has since moved on. The comparison itself is part
-- of the one definition of an operation (128_operations.sql); this is how a request's
-- arguments read in PF005's DETAIL. A fill's execution metadata (executed_at, order_id,
-- tags) is part of its request: the same id with another execution time is PF005.
CREATE FUNCTION pgportfolio._request_args(
    p_operation text,
    p_symbol text,
    p_quantity numeric,
    p_price numeric,
    p_fee numeric,
    p_amount numeric,
    p_executed_at timestamptz,
    p_order_id text,
    p_tags jsonb
)
RETURNS jsonb
-- STABLE: executed_at reads in the session's TimeZone.
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE
        WHEN p_operation IN ('deposit_cash', 'withdraw_cash', 'charge_fee')
            THEN jsonb_build_object('operation', p_operation, 'amount', p_amount)
        ELSE jsonb_build_object(
            'operation', p_operation, 'symbol', p_symbol, 'quantity', p_quantity, 'price', p_price, 'fee', p_fee
        )
        -- execution metadata only where the request had some (tags hold no nulls to strip)
        || jsonb_strip_nulls(jsonb_build_object('executed_at', p_executed_at, 'order_id', p_order_id, 'tags', p_tags))
    END;
$$;

-- ===== sql/128_operations.sql =====
-- What an operation does to a portfolio: the one definition. Every mutation of cash or
-- positions (apply_fill, the verbs, the cash functions and apply_fills) is a list of
-- operations handed to _apply_operations; the single-call functions hand it a list of one
-- and raise its refusal (_apply_one). So the input rules, the replay check, the money
-- arithmetic, the cash floor and the event written are the same on every path, by
-- construction.
--
-- Operations: apply_fill (a signed fill), open_position, add_to_position,
-- reduce_position, close_position (checked special cases of a fill), deposit_cash,
-- withdraw_cash, charge_fee (cash moves, with an amount).
--
-- Money: a fill's notional is quantity * price * multiplier (the instrument's contract size,
-- 1 for a symbol without an instruments row; a position keeps the one it opened with). A buy
-- debits the notional plus fee, a sell credits the notional minus fee. cost_basis is signed
-- like the position. realized P&L = cash flow + change in cost basis - fee, so for every
-- portfolio, exactly:
--   cash = initial + deposits - withdrawals + sum(fill cash flows) - sum(fees)
--   sum(realized before fees) = sum(fill cash flows) + sum(open cost basis)
-- A partial reduction removes cost basis in proportion, rounded half away from zero to 16
-- places (the scale of quantity * price at multiplier 1); the identities hold exactly because realized
-- P&L is defined from the stored change, not recomputed.
--
-- Lock order: portfolio rows in id order, then position rows in (portfolio id, symbol)
-- order. Every mutation takes them in this order, so two calls cannot deadlock.
--
-- An element refused for a reason of its own (22023, 42501, PF001 to PF006) comes back as
-- its own row with its SQLSTATE, message, DETAIL and HINT, and does not undo the others;
-- anything else (a lock timeout, a deadlock, a broken constraint) fails the whole call.
--
-- Why it is written this way: it runs while the portfolio's row is locked, so its cost per
-- element bounds a hot portfolio's throughput. The state lives in arrays indexed by slot
-- (each portfolio, position and request id gets a slot, assigned in one statement before
-- the loop), the loop is plain arithmetic on them, and the writes are one statement per
-- table. Measured per fill inside the lock, batches of 50 on one portfolio: 62 to 80 µs
-- with the earlier JSON-driven loop, record appends and a per-row chain trigger; see
-- docs/performance.md for today's figure.

CREATE TYPE pgportfolio.fill_result AS (
    item integer,
    portfolio_id bigint,
    portfolio_version bigint,
    cash_balance numeric,
    symbol text,
    position_quantity numeric,
    position_avg_price numeric,
    realized_pnl numeric,
    duplicate boolean,
    sqlstate text,
    message text,
    detail text,
    hint text
);

CREATE FUNCTION pgportfolio._apply_operations(
    p_operations text[],
    p_portfolio_ids bigint[],
    p_symbols text[],
    p_quantities numeric[],
    p_prices numeric[],
    p_fees numeric[],
    p_amounts numeric[],
    p_request_ids text[],
    p_expected_versions bigint[],
    p_executed_ats timestamptz[],
    p_order_ids text[],
    p_tags jsonb[]
)
RETURNS SETOF pgportfolio.fill_result
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
-- Plans: every statement here reaches rows by key, driven by the call's arrays (LATERAL
-- look-ups, one primary-key probe per key), and the plans are generic, made once per
-- session. With custom plans (the default) most statements were planned again on every
-- call (about 400 µs for a single apply_fill), and both kinds, made while the tables were
-- small (a new deployment, before autovacuum analyzes them), could start from a whole scan
-- of a table and keep doing so as it grew: per fill 57 µs at the start of a fresh database
-- and 228 µs (generic) or 6,300 µs (custom) after 1,000 calls of 50. Sequential scans and
-- hash and merge joins are priced out so that no plan depends on the statistics.
SET plan_cache_mode = force_generic_plan
SET enable_seqscan = off
SET enable_hashjoin = off
SET enable_mergejoin = off
AS $$
DECLARE
    v_actor name := pgportfolio._acting_role();
    v_refused_characters text := pgportfolio._refused_characters();
    v_n integer := coalesce(cardinality(p_operations), 0);
    v_saved_lock_timeout text;
    v_now timestamptz := now();
    v_latest_execution timestamptz := clock_timestamp() + interval '1 minute';
    v_error_message text;
    v_error_detail text;
    v_error_hint text;
    v_dims text := format('[1:%s]', v_n);
    v_needs_message boolean := false;
    v_request_ok boolean;  -- the element broke an input rule: which one?
    v_portfolio_slots integer;
    v_position_slots integer;
    -- portfolios refused to the acting role
    a_id bigint[];
    a_state text[];
    a_message text[];
    a_hint text[];
    -- per element: a refusal (SQLSTATE, message, DETAIL, HINT) or what it did
    f_state text[];
    f_message text[];
    f_detail text[];
    f_hint text[];
    f_tags_refused boolean[];  -- true where the element's tags break their rule
    f_ps integer[];       -- portfolio slot
    f_ks integer[];       -- position slot (fills)
    f_first integer[];    -- the first element with the same request id (its group)
    f_version bigint[];
    f_kind text[];
    f_fill numeric[];     -- signed fill quantity
    f_fee numeric[];      -- the fee charged (a fill's fee, or charge_fee's amount)
    f_cash_delta numeric[];
    f_realized numeric[];
    f_cash numeric[];
    f_position_quantity numeric[];
    f_position_basis numeric[];
    f_hash bytea[];
    f_duplicate boolean[];
    f_multiplier numeric[];
    -- per portfolio slot (ids ascending)
    s_id bigint[];
    s_cash numeric[];
    s_realized numeric[];
    s_version bigint[];
    s_first_version bigint[];
    s_head bytea[];       -- chain hash of the portfolio's latest event (portfolios.chain_head)
    s_row tid[];          -- the locked row, which the writes reach directly
    -- per position slot ((portfolio id, symbol) ascending)
    k_pid bigint[];
    k_symbol text[];
    k_existed boolean[];
    k_quantity numeric[];
    k_basis numeric[];
    k_realized numeric[];
    k_version bigint[];
    k_reopened boolean[];
    k_changed boolean[];
    k_action text[];      -- what the writes do to the slot's row: see step 6
    k_multiplier numeric[];
    k_row tid[];          -- the locked row, if the position exists
    -- per request-id group, at its first element: the event the request produced
    r_version bigint[];
    r_operation text[];
    r_symbol text[];
    r_quantity numeric[];  -- the quantity as requested (reduce: positive; close: none)
    r_price numeric[];
    r_fee numeric[];
    r_amount numeric[];
    r_executed_at timestamptz[];
    r_order_id text[];
    r_tags jsonb[];
    r_multiplier numeric[];
    r_cash numeric[];
    r_position_quantity numeric[];
    r_position_basis numeric[];
    r_realized numeric[];
    v_row record;
    -- the events the log holds for this call's request ids, and the element of each
    l_items bigint[];
    l_events pgportfolio.events[];
    v_logged pgportfolio.events;
    -- the element at hand
    v_operation text;
    v_is_cash boolean;
    ps integer;
    ks integer;
    j integer;
    v_held numeric;
    v_basis numeric;
    v_fill numeric;
    v_new_quantity numeric;
    v_new_basis numeric;
    v_kind text;
    v_fee numeric;
    v_cash_delta numeric;
    v_realized numeric;
    v_multiplier numeric;
BEGIN
    IF v_n = 0 THEN
        RETURN;
    END IF;
    IF v_n > 10000 THEN
        RAISE EXCEPTION 'at most 10000 operations per call' USING ERRCODE = '22023', DETAIL = format('Got %s.', v_n);
    END IF;
    -- One-dimensional, numbered from 1, one element per operation: the loops and the
    -- unnest() of the writes pair the arrays up by position.
    IF NOT coalesce(
        array_dims(p_operations) = v_dims AND array_dims(p_portfolio_ids) = v_dims AND array_dims(p_symbols) = v_dims
        AND array_dims(p_quantities) = v_dims AND array_dims(p_prices) = v_dims AND array_dims(p_fees) = v_dims
        AND array_dims(p_amounts) = v_dims AND array_dims(p_request_ids) = v_dims
        AND array_dims(p_expected_versions) = v_dims AND array_dims(p_executed_ats) = v_dims
        AND array_dims(p_order_ids) = v_dims AND array_dims(p_tags) = v_dims,
        false
    ) THEN
        RAISE EXCEPTION 'the argument arrays must all have one element per operation'
            USING ERRCODE = '22023', HINT = 'Pass one-dimensional arrays of equal length, numbered from 1.';
    END IF;

    -- 1. Input rules, per element, before any lock: every rule of 100_validation.sql in one
    --    expression; the raising checks run only for an element that fails it, inside an
    --    exception block (a subtransaction), to capture the exact message. The bounds refuse
    --    NaN and the infinities too (numeric orders NaN above Infinity), so no NOT IN
    --    ('NaN', 'Infinity', '-Infinity') is needed: three comparisons a number saved.
    f_state := array_fill(NULL::text, ARRAY[v_n]);
    f_message := f_state;
    f_detail := f_state;
    f_hint := f_state;
    -- The tags' rule reads each object's members: one statement for the call's tags
    -- (_invalid_tags), where a function call per element cost ten times as much.
    IF num_nonnulls(VARIADIC p_tags) > 0 THEN
        f_tags_refused := array_fill(NULL::boolean, ARRAY[v_n]);
        FOR v_row IN SELECT t.item FROM pgportfolio._invalid_tags(p_tags) AS t LOOP
            f_tags_refused[v_row.item] := true;
        END LOOP;
    END IF;
    FOR i IN 1 .. v_n LOOP
        v_operation := p_operations[i];
        -- the rules of the request id and the expected version, which every operation takes
        v_request_ok := coalesce(
            (p_request_ids[i] IS NULL OR (
                length(p_request_ids[i]) BETWEEN 1 AND 200 AND p_request_ids[i] !~ v_refused_characters
            ))
            AND (p_expected_versions[i] IS NULL OR p_expected_versions[i] >= 1),
            false
        );
        IF v_operation IS NULL OR v_operation NOT IN (
            'apply_fill', 'open_position', 'add_to_position', 'reduce_position', 'close_position',
            'deposit_cash', 'withdraw_cash', 'charge_fee'
        ) THEN
            f_state[i] := '22023';
            f_message[i] := format('unknown operation %s', coalesce(quote_literal(left(v_operation, 40)), 'NULL'));
        ELSIF p_portfolio_ids[i] IS NULL THEN
            f_state[i] := '22023';
            f_message[i] := 'portfolio_id must not be null';
        ELSIF v_operation IN ('deposit_cash', 'withdraw_cash', 'charge_fee') THEN
            IF num_nonnulls(
                p_symbols[i], p_quantities[i], p_prices[i], p_fees[i], p_executed_ats[i], p_order_ids[i], p_tags[i]
            ) > 0 THEN
                f_state[i] := '22023';
                f_message[i] := format(
                    'a %s element takes no symbol, quantity, price, fee, executed_at, order_id or tags', v_operation
                );
            ELSIF NOT coalesce(
                p_amounts[i] > 0 AND p_amounts[i] < 1e15 AND min_scale(p_amounts[i]) <= 8
                AND v_request_ok,
                false
            ) THEN
                v_needs_message := true;
            END IF;
        ELSIF p_amounts[i] IS NOT NULL THEN
            f_state[i] := '22023';
            f_message[i] := 'a fill takes no amount';
        ELSIF v_operation = 'close_position' AND p_quantities[i] IS NOT NULL THEN
            f_state[i] := '22023';
            f_message[i] := 'close_position takes no quantity';
            f_hint[i] := 'It closes the whole open position.';
        ELSIF NOT coalesce(
            pgportfolio._symbol_valid(p_symbols[i])
            AND (v_operation = 'close_position' OR (
                p_quantities[i] <> 0 AND (v_operation <> 'reduce_position' OR p_quantities[i] > 0)
                AND abs(p_quantities[i]) < 1e15 AND min_scale(p_quantities[i]) <= 8
            ))
            AND p_prices[i] > 0 AND p_prices[i] < 1e15 AND min_scale(p_prices[i]) <= 8
            AND p_fees[i] >= 0 AND p_fees[i] < 1e15 AND min_scale(p_fees[i]) <= 8
            AND v_request_ok
            -- execution metadata is optional: its rules run only for an element that has some
            AND (
                num_nonnulls(p_executed_ats[i], p_order_ids[i]) = 0
                OR pgportfolio._execution_valid(p_executed_ats[i], p_order_ids[i], v_latest_execution)
            )
            AND f_tags_refused[i] IS NULL,
            false
        ) THEN
            v_needs_message := true;
        END IF;
        -- The raising checks of 100_validation.sql, for the exact message of the rule the
        -- element broke (an exception block is a subtransaction: only a failing element
        -- pays for one).
        IF v_needs_message THEN
            v_needs_message := false;
            BEGIN
                IF v_operation IN ('deposit_cash', 'withdraw_cash', 'charge_fee') THEN
                    PERFORM pgportfolio._check_number('amount', p_amounts[i], 'positive');
                ELSE
                    PERFORM pgportfolio._check_symbol(p_symbols[i]);
                    IF v_operation <> 'close_position' THEN
                        PERFORM pgportfolio._check_number(
                            'quantity', p_quantities[i],
                            CASE WHEN v_operation = 'reduce_position' THEN 'positive' ELSE 'nonzero' END
                        );
                    END IF;
                    PERFORM pgportfolio._check_number('price', p_prices[i], 'positive');
                    PERFORM pgportfolio._check_number('fee', p_fees[i], 'non_negative');
                    PERFORM pgportfolio._check_execution(
                        p_executed_ats[i], p_order_ids[i], p_tags[i], v_latest_execution
                    );
                END IF;
                PERFORM pgportfolio._check_request(p_request_ids[i], p_expected_versions[i]);
            EXCEPTION WHEN invalid_parameter_value THEN
                GET STACKED DIAGNOSTICS
                    v_error_message = MESSAGE_TEXT, v_error_detail = PG_EXCEPTION_DETAIL, v_error_hint = PG_EXCEPTION_HINT;
                f_state[i] := '22023';
                f_message[i] := v_error_message;
                f_detail[i] := nullif(v_error_detail, '');
                f_hint[i] := nullif(v_error_hint, '');
            END;
        END IF;
        -- 1.50 and 1.5 are the same amount: keep the shortest exact form, so that trailing
        -- zeros never count as decimal places downstream. This is not rounding.
        IF f_state[i] IS NULL THEN
            IF p_amounts[i] IS NULL THEN
                p_quantities[i] := trim_scale(p_quantities[i]);
                p_prices[i] := trim_scale(p_prices[i]);
                p_fees[i] := trim_scale(p_fees[i]);
            ELSE
                p_amounts[i] := trim_scale(p_amounts[i]);
            END IF;
        END IF;
    END LOOP;

    -- 2. Who may trade what: every distinct portfolio in one statement.
    SELECT array_agg(r.portfolio_id), array_agg(r.sqlstate), array_agg(r.message), array_agg(r.hint)
    INTO a_id, a_state, a_message, a_hint
    FROM pgportfolio._authorization_refusals(p_portfolio_ids, v_actor) AS r;
    FOR j IN 1 .. coalesce(cardinality(a_id), 0) LOOP
        FOR i IN 1 .. v_n LOOP
            IF p_portfolio_ids[i] = a_id[j] AND f_state[i] IS NULL THEN
                f_state[i] := a_state[j];
                f_message[i] := a_message[j];
                f_hint[i] := a_hint[j];
            END IF;
        END LOOP;
    END LOOP;

    -- 3. Slots: each element's portfolio and position, numbered in lock order: the
    --    elements sorted once by (portfolio id, symbol), cash moves last within their
    --    portfolio, and numbered in one pass. (A call of one needs no statement: its slots
    --    are 1.) Two dense_rank windows and two ordered array_aggs did the same in four
    --    sorts, about 1.4 million instructions for 50 elements; this is a third of that.
    IF v_n = 1 THEN
        IF f_state[1] IS NULL THEN
            f_ps := ARRAY[1];
            s_id := ARRAY[p_portfolio_ids[1]];
            v_portfolio_slots := 1;
            IF p_symbols[1] IS NOT NULL THEN
                f_ks := ARRAY[1];
                k_pid := s_id;
                k_symbol := ARRAY[p_symbols[1]];
                v_position_slots := 1;
            ELSE
                f_ks := ARRAY[NULL::integer];
            END IF;
        ELSE
            f_ps := ARRAY[NULL::integer];
            f_ks := f_ps;
        END IF;
    ELSE
        f_ps := array_fill(NULL::integer, ARRAY[v_n]);
        f_ks := f_ps;
        v_portfolio_slots := 0;
        v_position_slots := 0;
        FOR v_row IN
            -- Symbols are ASCII: byte order is their order in any collation, and cheaper.
            SELECT u.item, u.id, u.sym
            FROM unnest(p_portfolio_ids, p_symbols, f_state) WITH ORDINALITY AS u (id, sym, st, item)
            WHERE u.st IS NULL
            ORDER BY u.id, u.sym COLLATE "C" NULLS LAST
        LOOP
            IF v_portfolio_slots = 0 OR v_row.id <> s_id[v_portfolio_slots] THEN
                v_portfolio_slots := v_portfolio_slots + 1;
                s_id[v_portfolio_slots] := v_row.id;
            END IF;
            f_ps[v_row.item] := v_portfolio_slots;
            IF v_row.sym IS NOT NULL THEN
                IF v_position_slots = 0 OR v_row.id <> k_pid[v_position_slots]
                   OR v_row.sym <> k_symbol[v_position_slots] THEN
                    v_position_slots := v_position_slots + 1;
                    k_pid[v_position_slots] := v_row.id;
                    k_symbol[v_position_slots] := v_row.sym;
                END IF;
                f_ks[v_row.item] := v_position_slots;
            END IF;
        END LOOP;
        v_portfolio_slots := nullif(v_portfolio_slots, 0);
        v_position_slots := nullif(v_position_slots, 0);
    END IF;

    -- 4. Locks, then what the log already holds for this call's request ids. Each query's
    --    rows are put in their slots by a loop: an ordered array_agg per column costs a
    --    sort of its own to set up, which was about a tenth of a single fill's work.
    IF s_id IS NOT NULL THEN
        s_cash := array_fill(NULL::numeric, ARRAY[v_portfolio_slots]);
        s_realized := s_cash;
        s_version := array_fill(NULL::bigint, ARRAY[v_portfolio_slots]);
        s_head := array_fill(NULL::bytea, ARRAY[v_portfolio_slots]);
        s_row := array_fill(NULL::tid, ARRAY[v_portfolio_slots]);
        v_saved_lock_timeout := pgportfolio._bound_lock_wait();
        FOR v_row IN
            -- s_id is in id order: the rows are locked in that order, one probe each.
            SELECT u.slot, p.cash_balance, p.realized_pnl, p.version, p.chain_head, p.ctid AS row_id
            FROM unnest(s_id) WITH ORDINALITY AS u (id, slot)
            CROSS JOIN LATERAL (
                SELECT l.cash_balance, l.realized_pnl, l.version, l.chain_head, l.ctid
                FROM pgportfolio.portfolios AS l
                WHERE l.portfolio_id = u.id
                FOR UPDATE
            ) AS p
        LOOP
            s_cash[v_row.slot] := v_row.cash_balance;
            s_realized[v_row.slot] := v_row.realized_pnl;
            s_version[v_row.slot] := v_row.version;
            s_head[v_row.slot] := v_row.chain_head;
            s_row[v_row.slot] := v_row.row_id;
        END LOOP;
        IF array_position(s_version, NULL) IS NOT NULL THEN
            RAISE EXCEPTION 'a portfolio of this call disappeared while it was being locked' USING ERRCODE = 'PF004';
        END IF;
        s_first_version := s_version;

        IF k_pid IS NOT NULL THEN
            k_existed := array_fill(false, ARRAY[v_position_slots]);
            k_quantity := array_fill(0::numeric, ARRAY[v_position_slots]);
            k_basis := k_quantity;
            k_realized := k_quantity;
            k_version := array_fill(0::bigint, ARRAY[v_position_slots]);
            k_reopened := k_existed;
            k_changed := k_existed;
            k_multiplier := array_fill(1::numeric, ARRAY[v_position_slots]);
            k_row := array_fill(NULL::tid, ARRAY[v_position_slots]);
            -- Driven by the keys, one primary-key probe each: a wide portfolio's other
            -- positions are never read (filtering them by portfolio id read all 10,000).
            FOR v_row IN
                -- The keys are in (portfolio, symbol) order: so are the locks.
                SELECT k.slot, p.quantity, p.cost_basis, p.realized_pnl, p.version, p.multiplier, p.ctid AS row_id
                FROM unnest(k_pid, k_symbol) WITH ORDINALITY AS k (pid, sym, slot)
                CROSS JOIN LATERAL (
                    SELECT l.quantity, l.cost_basis, l.realized_pnl, l.version, l.multiplier, l.ctid
                    FROM pgportfolio.positions AS l
                    WHERE l.portfolio_id = k.pid AND l.symbol = k.sym
                    FOR UPDATE
                ) AS p
            LOOP
                k_existed[v_row.slot] := true;
                k_quantity[v_row.slot] := v_row.quantity;
                k_basis[v_row.slot] := v_row.cost_basis;
                k_realized[v_row.slot] := v_row.realized_pnl;
                k_version[v_row.slot] := v_row.version;
                k_multiplier[v_row.slot] := v_row.multiplier;
                k_row[v_row.slot] := v_row.row_id;
            END LOOP;
        END IF;
        -- A position not held yet opens at its instrument's multiplier. Taking ROW
        -- EXCLUSIVE on positions first (as the writes below would) makes a concurrent
        -- multiplier change either wait for this call or be committed before the read
        -- below, whose statement then sees it (upsert_instrument, 155_instruments.sql).
        -- A REPEATABLE READ snapshot cannot see a change committed after it began:
        -- locking multiplier_changes turns such a change into 40001 (retryable).
        IF k_pid IS NOT NULL AND NOT k_existed <@ ARRAY[true] THEN
            LOCK TABLE pgportfolio.positions IN ROW EXCLUSIVE MODE;
            IF current_setting('transaction_isolation') <> 'read committed' THEN
                PERFORM FROM pgportfolio.multiplier_changes FOR SHARE;
            END IF;
            FOR v_row IN
                SELECT k.slot, i.multiplier
                FROM unnest(k_symbol, k_existed) WITH ORDINALITY AS k (sym, existed, slot)
                CROSS JOIN LATERAL (
                    SELECT l.multiplier FROM pgportfolio.instruments AS l WHERE l.symbol = k.sym
                ) AS i
                WHERE NOT k.existed
            LOOP
                k_multiplier[v_row.slot] := v_row.multiplier;
            END LOOP;
        END IF;
        -- An assignment (set_config returns the value it set), not PERFORM, which runs a
        -- query of its own: 5,000 instructions more.
        v_saved_lock_timeout := set_config('lock_timeout', v_saved_lock_timeout, true);

        -- Request ids: the elements that share one (same portfolio and id) are a group,
        -- represented by its first element j; r_*[j] is the event the request produced,
        -- from the log (looked up once per group) or, once an element of the group
        -- applies in this call, from that element. A later element of the group is its
        -- replay.
        -- f_first and r_* start null and take only the elements a group assigns: a
        -- subscript outside an array reads null, and an assignment extends it. (Filled to
        -- full length first, they cost a single apply_fill 2% of its instructions.)
        -- Groups: only requests that more than one element of this call shares (a
        -- request alone in the call, most of them, forms none: nothing in the call
        -- replays it).
        -- Whether any request is shared is asked first, by hashing with a count per id
        -- (grouping with array_agg kept an array per id: 9,000 instructions per element in
        -- a call of 5,000, and more memory than work_mem at 10,000); only then the window.
        -- (A call of one asks nothing: a condition with a subquery is a statement of its own.)
        IF v_n > 1 THEN
            IF EXISTS (
                SELECT FROM unnest(p_portfolio_ids, p_request_ids, f_state) AS u (id, rid, st)
                WHERE u.st IS NULL AND u.rid IS NOT NULL
                GROUP BY u.id, u.rid
                HAVING count(*) > 1
            ) THEN
                FOR v_row IN
                    SELECT x.item, x.first
                    FROM (
                        SELECT u.item, min(u.item) OVER w AS first, count(*) OVER w AS members
                        FROM unnest(p_portfolio_ids, p_request_ids, f_state) WITH ORDINALITY AS u (id, rid, st, item)
                        WHERE u.st IS NULL AND u.rid IS NOT NULL
                        WINDOW w AS (PARTITION BY u.id, u.rid)
                    ) AS x
                    WHERE x.members > 1
                LOOP
                    f_first[v_row.item] := v_row.first;
                END LOOP;
            END IF;
        END IF;
        -- What the log holds for the call's request ids, one probe of the request-id
        -- index (request_id, portfolio_id) each. Both statements are planned once per
        -- session, so their plans must not depend on the statistics of that moment:
        -- - the portfolio is compared as portfolio_id + 0, which no index can use, so a
        --   plan cannot reach the events by the primary key's portfolio_id prefix (plans
        --   made on a nearly empty table did, and read every event of the portfolio for
        --   every element: 15.7 ms a call after 12 s of a fresh bench);
        -- - a call of many probes in a subquery of its own per element (OFFSET 0 keeps it
        --   one): as a plain join, the plan made at one event scanned the whole index once
        --   per element (which an index ordered for a merge join offers) instead of probing.
        -- tests/test_plan_stability.py checks both against a grown table.
        IF v_n = 1 THEN
            SELECT array_agg(1::bigint), array_agg(e)
            INTO l_items, l_events
            FROM pgportfolio.events AS e
            WHERE
                f_state[1] IS NULL AND e.request_id = p_request_ids[1]
                AND e.portfolio_id + 0 = p_portfolio_ids[1];
        ELSE
            SELECT array_agg(k.item), array_agg(e.l)
            INTO l_items, l_events
            FROM unnest(p_portfolio_ids, p_request_ids, f_state) WITH ORDINALITY AS k (id, rid, st, item)
            CROSS JOIN LATERAL (
                SELECT l FROM pgportfolio.events AS l
                WHERE l.request_id = k.rid AND l.portfolio_id + 0 = k.id
                OFFSET 0
            ) AS e
            WHERE k.st IS NULL;
        END IF;
        FOR g IN 1 .. coalesce(cardinality(l_items), 0) LOOP
            v_logged := l_events[g];
            -- the event belongs to the group's first element (every member finds it)
            j := coalesce(f_first[l_items[g]], l_items[g]);
            CONTINUE WHEN j <> l_items[g];
            f_first[j] := j;
            r_version[j] := v_logged.portfolio_version;
            r_operation[j] := v_logged.operation;
            r_symbol[j] := v_logged.symbol;
            -- the quantity as requested: reduce_position logs the signed fill, and
            -- close_position takes none
            r_quantity[j] := CASE v_logged.operation
                WHEN 'reduce_position' THEN abs(v_logged.quantity)
                WHEN 'close_position' THEN NULL
                ELSE v_logged.quantity
            END;
            r_price[j] := v_logged.price;
            r_fee[j] := CASE WHEN v_logged.symbol IS NOT NULL THEN v_logged.fee END;
            r_amount[j] := v_logged.amount;
            r_executed_at[j] := v_logged.executed_at;
            r_order_id[j] := v_logged.order_id;
            r_tags[j] := v_logged.tags;
            r_multiplier[j] := v_logged.multiplier;
            r_cash[j] := v_logged.cash_balance;
            r_position_quantity[j] := v_logged.position_quantity;
            r_position_basis[j] := v_logged.position_cost_basis;
            r_realized[j] := v_logged.realized_pnl;
        END LOOP;
    END IF;

    -- 5. Apply, element by element, in input order, on the state in the slots.
    -- Every per-element array starts full length: assigning to element i of an empty
    -- array would number it from i.
    f_version := array_fill(NULL::bigint, ARRAY[v_n]);
    f_kind := array_fill(NULL::text, ARRAY[v_n]);
    f_fill := array_fill(NULL::numeric, ARRAY[v_n]);
    f_fee := f_fill;
    f_cash_delta := f_fill;
    f_realized := f_fill;
    f_cash := f_fill;
    f_position_quantity := f_fill;
    f_position_basis := f_fill;
    f_hash := array_fill(NULL::bytea, ARRAY[v_n]);
    f_duplicate := array_fill(false, ARRAY[v_n]);
    f_multiplier := f_fill;
    FOR i IN 1 .. v_n LOOP
        CONTINUE WHEN f_state[i] IS NOT NULL;
        v_operation := p_operations[i];
        v_is_cash := v_operation IN ('deposit_cash', 'withdraw_cash', 'charge_fee');
        ps := f_ps[i];
        j := f_first[i];

        IF j IS NOT NULL AND r_version[j] IS NOT NULL THEN
            IF r_operation[j] = v_operation
               AND r_symbol[j] IS NOT DISTINCT FROM p_symbols[i]
               AND r_quantity[j] IS NOT DISTINCT FROM p_quantities[i]
               AND r_price[j] IS NOT DISTINCT FROM p_prices[i]
               AND r_fee[j] IS NOT DISTINCT FROM p_fees[i]
               AND r_amount[j] IS NOT DISTINCT FROM p_amounts[i]
               AND r_executed_at[j] IS NOT DISTINCT FROM p_executed_ats[i]
               AND r_order_id[j] IS NOT DISTINCT FROM p_order_ids[i]
               AND r_tags[j] IS NOT DISTINCT FROM p_tags[i] THEN
                f_duplicate[i] := true;
                f_multiplier[i] := r_multiplier[j];
                f_version[i] := r_version[j];
                f_cash[i] := r_cash[j];
                f_position_quantity[i] := r_position_quantity[j];
                f_position_basis[i] := r_position_basis[j];
                f_realized[i] := r_realized[j];
            ELSE
                f_state[i] := 'PF005';
                f_message[i] := format('request id %s was already used with different arguments', quote_literal(p_request_ids[i]));
                f_detail[i] := format(
                    'portfolio %s version %s: first %s, now %s', p_portfolio_ids[i], r_version[j],
                    pgportfolio._request_args(
                        r_operation[j], r_symbol[j], r_quantity[j], r_price[j], r_fee[j], r_amount[j],
                        r_executed_at[j], r_order_id[j], r_tags[j]
                    ),
                    pgportfolio._request_args(
                        v_operation, p_symbols[i], p_quantities[i], p_prices[i], p_fees[i], p_amounts[i],
                        p_executed_ats[i], p_order_ids[i], p_tags[i]
                    )
                );
                f_hint[i] := 'Use a new request id for a new operation.';
            END IF;
            CONTINUE;
        END IF;

        IF p_expected_versions[i] IS NOT NULL AND p_expected_versions[i] <> s_version[ps] THEN
            f_state[i] := 'PF001';
            f_message[i] := format('version conflict on portfolio %s', p_portfolio_ids[i]);
            f_detail[i] := format('expected version %s, found version %s', p_expected_versions[i], s_version[ps]);
            f_hint[i] := 'Reload the portfolio and retry with its current version.';
            CONTINUE;
        END IF;

        IF v_is_cash THEN
            v_fee := CASE WHEN v_operation = 'charge_fee' THEN p_amounts[i] ELSE 0 END;
            v_cash_delta := CASE WHEN v_operation = 'deposit_cash' THEN p_amounts[i] ELSE -p_amounts[i] END;
            v_realized := -v_fee;
            v_kind := CASE v_operation WHEN 'deposit_cash' THEN 'deposit' WHEN 'withdraw_cash' THEN 'withdraw' ELSE 'fee' END;
        ELSE
            ks := f_ks[i];
            v_held := k_quantity[ks];
            v_basis := k_basis[ks];
            v_multiplier := k_multiplier[ks];
            v_fee := p_fees[i];
            -- Turn the verb into a signed fill, refusing what the verb does not allow.
            CASE v_operation
                WHEN 'apply_fill' THEN
                    v_fill := p_quantities[i];
                WHEN 'open_position' THEN
                    IF v_held <> 0 THEN
                        f_state[i] := 'PF006';
                        f_message[i] := format('a position in %s is already open in portfolio %s', p_symbols[i], p_portfolio_ids[i]);
                        f_detail[i] := format('Open quantity is %s.', v_held);
                        f_hint[i] := 'Use add_to_position, reduce_position or apply_fill.';
                        CONTINUE;
                    END IF;
                    v_fill := p_quantities[i];
                WHEN 'add_to_position' THEN
                    IF v_held = 0 THEN
                        f_state[i] := 'PF003';
                        f_message[i] := format('no %s position in portfolio %s', p_symbols[i], p_portfolio_ids[i]);
                        f_hint[i] := 'Use open_position first.';
                        CONTINUE;
                    END IF;
                    IF sign(p_quantities[i]) <> sign(v_held) THEN
                        f_state[i] := '22023';
                        f_message[i] := 'add_to_position must be on the side of the open position';
                        f_detail[i] := format('Open quantity is %s, quantity is %s.', v_held, p_quantities[i]);
                        f_hint[i] := 'Positive adds to a long, negative to a short; use reduce_position to reduce.';
                        CONTINUE;
                    END IF;
                    v_fill := p_quantities[i];
                WHEN 'reduce_position' THEN
                    IF p_quantities[i] > abs(v_held) THEN
                        f_state[i] := 'PF003';
                        f_message[i] := format(
                            'not enough %s in portfolio %s to reduce by %s', p_symbols[i], p_portfolio_ids[i], p_quantities[i]
                        );
                        f_detail[i] := format('Open quantity is %s.', v_held);
                        CONTINUE;
                    END IF;
                    v_fill := -sign(v_held) * p_quantities[i];
                ELSE  -- close_position
                    IF v_held = 0 THEN
                        f_state[i] := 'PF003';
                        f_message[i] := format('no %s position in portfolio %s', p_symbols[i], p_portfolio_ids[i]);
                        CONTINUE;
                    END IF;
                    v_fill := -v_held;
            END CASE;

            v_new_quantity := v_held + v_fill;
            IF abs(v_new_quantity) >= 1e15 THEN
                f_state[i] := '22023';
                f_message[i] := format('position in %s would be out of range', p_symbols[i]);
                f_detail[i] := format(
                    'Open %s plus fill %s; the absolute value must stay below 10^15.', v_held, v_fill
                );
                CONTINUE;
            END IF;

            IF v_held = 0 THEN
                v_kind := 'open';
                v_new_basis := v_fill * p_prices[i] * v_multiplier;
            ELSIF sign(v_fill) = sign(v_held) THEN
                v_kind := 'add';
                v_new_basis := v_basis + v_fill * p_prices[i] * v_multiplier;
            ELSIF v_new_quantity = 0 THEN
                v_kind := 'close';
                v_new_basis := 0;
            ELSIF sign(v_new_quantity) = sign(v_held) THEN
                v_kind := 'reduce';
                -- The 1.0...0 factor gives the division 22 places, so round() decides, not
                -- numeric's default division scale (about 16 significant digits).
                v_new_basis := v_basis - trim_scale(
                    round(v_basis * abs(v_fill) * 1.0000000000000000000000 / abs(v_held), 16)
                );
            ELSE
                v_kind := 'flip';
                v_new_basis := v_new_quantity * p_prices[i] * v_multiplier;
            END IF;
            v_cash_delta := -(v_fill * p_prices[i] * v_multiplier) - v_fee;
            v_realized := v_new_basis - v_basis + v_cash_delta;
        END IF;

        IF s_cash[ps] + v_cash_delta < 0 THEN
            f_state[i] := 'PF002';
            f_message[i] := format('insufficient cash in portfolio %s', p_portfolio_ids[i]);
            f_detail[i] := format('needed %s, available %s', -v_cash_delta, s_cash[ps]);
            CONTINUE;
        END IF;

        -- Applied: the portfolio's state, the position's, the event and the answer.
        s_cash[ps] := s_cash[ps] + v_cash_delta;
        s_realized[ps] := s_realized[ps] + v_realized;
        s_version[ps] := s_version[ps] + 1;
        IF NOT v_is_cash THEN
            -- A position that went flat and opens again starts a new row life, as after a
            -- DELETE and an INSERT.
            IF v_held = 0 THEN
                k_reopened[ks] := k_existed[ks];
                k_version[ks] := 1;
                k_realized[ks] := v_realized;
            ELSE
                k_version[ks] := k_version[ks] + 1;
                k_realized[ks] := k_realized[ks] + v_realized;
            END IF;
            -- A flat position holds plain 0, as a deleted row read back would: a
            -- reopening fill then keeps its own decimal places, not the closing sum's.
            k_quantity[ks] := CASE WHEN v_new_quantity = 0 THEN 0 ELSE v_new_quantity END;
            k_basis[ks] := v_new_basis;
            k_changed[ks] := true;
            f_fill[i] := v_fill;
            f_position_quantity[i] := v_new_quantity;
            f_position_basis[i] := v_new_basis;
            f_multiplier[i] := v_multiplier;
        END IF;
        f_version[i] := s_version[ps];
        f_kind[i] := v_kind;
        f_fee[i] := v_fee;
        f_cash_delta[i] := v_cash_delta;
        f_realized[i] := v_realized;
        f_cash[i] := s_cash[ps];
        s_head[ps] := pgportfolio._event_hash(
            s_head[ps], p_portfolio_ids[i], s_version[ps], v_kind, v_operation, p_symbols[i], f_fill[i],
            p_prices[i], v_fee, p_amounts[i], v_cash_delta, v_realized, s_cash[ps], f_position_quantity[i],
            f_position_basis[i], p_request_ids[i], p_executed_ats[i], p_order_ids[i], p_tags[i], f_multiplier[i],
            v_actor, v_now
        );
        f_hash[i] := s_head[ps];
        IF j IS NOT NULL THEN
            -- A later element with the same request id in this call is its replay.
            r_version[j] := s_version[ps];
            r_operation[j] := v_operation;
            r_symbol[j] := p_symbols[i];
            r_quantity[j] := p_quantities[i];
            r_price[j] := p_prices[i];
            r_fee[j] := p_fees[i];
            r_amount[j] := p_amounts[i];
            r_executed_at[j] := p_executed_ats[i];
            r_order_id[j] := p_order_ids[i];
            r_tags[j] := p_tags[i];
            r_multiplier[j] := f_multiplier[i];
            r_cash[j] := s_cash[ps];
            r_position_quantity[j] := f_position_quantity[i];
            r_position_basis[j] := f_position_basis[i];
            r_realized[j] := v_realized;
        END IF;
    END LOOP;

    -- 6. Write: one statement per table, and none with nothing to do (a statement that
    --    changes no row still costs its run: a single fill writes one position, not three).
    --    What becomes of each position slot: nothing (unchanged, or opened and closed within
    --    the call), delete (closed), insert (opened), replace (closed and opened again: a
    --    new row life, as after a DELETE and an INSERT), or update.
    --    The statements read the arrays by subscript over generate_subscripts(): unnest() of
    --    n arrays materializes n function results and joins them, about 500 instructions
    --    per element and array (13,000 per fill for the events alone, at 50 a call). Only
    --    statements that run at once do: a FOR loop's query runs as a cursor, which copies
    --    its parameters flat, and a subscript of a flat array walks it from the start (a
    --    call of 5,000 paid 110,000 instructions per element for it), so loops use unnest().
    IF k_pid IS NOT NULL THEN
        k_action := array_fill(NULL::text, ARRAY[cardinality(k_pid)]);
        FOR k IN 1 .. cardinality(k_pid) LOOP
            IF k_changed[k] THEN
                k_action[k] := CASE
                    WHEN k_quantity[k] = 0 THEN CASE WHEN k_existed[k] THEN 'delete' END
                    WHEN NOT k_existed[k] THEN 'insert'
                    WHEN k_reopened[k] THEN 'replace'
                    ELSE 'update'
                END;
            END IF;
        END LOOP;
    END IF;

    IF s_version IS DISTINCT FROM s_first_version THEN
        -- Each row is reached by the tuple id its lock returned (s_row, k_row): it cannot
        -- have moved, since this transaction holds the lock, and the plan starts from the
        -- call's arrays whatever the table's size was when it was made.
        UPDATE pgportfolio.portfolios AS p
        SET cash_balance = s_cash[s], realized_pnl = s_realized[s], version = s_version[s], updated_at = v_now,
            chain_head = s_head[s]
        FROM generate_subscripts(s_id, 1) AS s
        WHERE s_version[s] <> s_first_version[s] AND p.ctid = s_row[s];
    END IF;

    IF k_action && ARRAY['delete', 'replace'] THEN
        DELETE FROM pgportfolio.positions AS p
        USING generate_subscripts(k_pid, 1) AS k
        WHERE k_action[k] IN ('delete', 'replace') AND p.ctid = k_row[k];
    END IF;

    IF k_action && ARRAY['update'] THEN
        UPDATE pgportfolio.positions AS p
        SET quantity = k_quantity[k], cost_basis = k_basis[k], realized_pnl = k_realized[k], version = k_version[k],
            updated_at = v_now
        FROM generate_subscripts(k_pid, 1) AS k
        WHERE k_action[k] = 'update' AND p.ctid = k_row[k];
    END IF;

    IF k_action && ARRAY['insert', 'replace'] THEN
        INSERT INTO pgportfolio.positions (portfolio_id, symbol, quantity, cost_basis, realized_pnl, version, multiplier)
        SELECT k_pid[k], k_symbol[k], k_quantity[k], k_basis[k], k_realized[k], k_version[k], k_multiplier[k]
        FROM generate_subscripts(k_pid, 1) AS k
        WHERE k_action[k] IN ('insert', 'replace');
    END IF;

    -- f_kind is set only for applied elements, so this writes exactly their events, in
    -- input order, which is version order within each portfolio.
    IF s_version IS DISTINCT FROM s_first_version THEN
        INSERT INTO pgportfolio.events (
            portfolio_id, portfolio_version, kind, operation, symbol, quantity, price, fee, amount, cash_delta,
            realized_pnl, cash_balance, position_quantity, position_cost_basis, request_id, executed_at, order_id, tags,
            multiplier, acting_role, created_at, chain_hash
        )
        SELECT
            p_portfolio_ids[i], f_version[i], f_kind[i], p_operations[i], p_symbols[i], f_fill[i], p_prices[i],
            f_fee[i], p_amounts[i], f_cash_delta[i], f_realized[i], f_cash[i], f_position_quantity[i],
            f_position_basis[i], p_request_ids[i], p_executed_ats[i], p_order_ids[i], p_tags[i], f_multiplier[i],
            v_actor, v_now, f_hash[i]
        FROM generate_subscripts(f_kind, 1) AS i
        WHERE f_kind[i] IS NOT NULL;
    END IF;

    RETURN QUERY
    SELECT
        i, p_portfolio_ids[i],
        CASE WHEN f_state[i] IS NULL THEN f_version[i] END,
        CASE WHEN f_state[i] IS NULL THEN f_cash[i] END,
        p_symbols[i],
        CASE WHEN f_state[i] IS NULL THEN f_position_quantity[i] END,
        CASE
            WHEN f_state[i] IS NULL AND f_position_quantity[i] <> 0
                THEN round(f_position_basis[i] / (f_position_quantity[i] * f_multiplier[i]), 8)
        END,
        CASE WHEN f_state[i] IS NULL THEN f_realized[i] END,
        f_duplicate[i], f_state[i], f_message[i], f_detail[i], f_hint[i]
    FROM generate_series(1, v_n) AS i
    ORDER BY i;
END;
$$;

-- One operation: the list of one, its refusal raised as the error it is.
CREATE FUNCTION pgportfolio._apply_one(
    p_operation text,
    p_portfolio_id bigint,
    p_symbol text,
    p_quantity numeric,
    p_price numeric,
    p_fee numeric,
    p_amount numeric,
    p_request_id text,
    p_expected_version bigint,
    p_executed_at timestamptz DEFAULT NULL,
    p_order_id text DEFAULT NULL,
    p_tags jsonb DEFAULT NULL
)
RETURNS pgportfolio.mutation_result
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r pgportfolio.fill_result;
BEGIN
    SELECT * INTO STRICT r
    FROM pgportfolio._apply_operations(
        ARRAY[p_operation], ARRAY[p_portfolio_id], ARRAY[p_symbol], ARRAY[p_quantity], ARRAY[p_price],
        ARRAY[p_fee], ARRAY[p_amount], ARRAY[p_request_id], ARRAY[p_expected_version], ARRAY[p_executed_at],
        ARRAY[p_order_id], ARRAY[p_tags]
    );
    IF r.sqlstate IS NOT NULL THEN
        -- RAISE refuses a null DETAIL or HINT: an absent one is left out, not sent empty.
        IF r.detail IS NOT NULL AND r.hint IS NOT NULL THEN
            RAISE EXCEPTION USING ERRCODE = r.sqlstate, MESSAGE = r.message, DETAIL = r.detail, HINT = r.hint;
        ELSIF r.detail IS NOT NULL THEN
            RAISE EXCEPTION USING ERRCODE = r.sqlstate, MESSAGE = r.message, DETAIL = r.detail;
        ELSIF r.hint IS NOT NULL THEN
            RAISE EXCEPTION USING ERRCODE = r.sqlstate, MESSAGE = r.message, HINT = r.hint;
        END IF;
        RAISE EXCEPTION USING ERRCODE = r.sqlstate, MESSAGE = r.message;
    END IF;
    RETURN ROW(
        r.portfolio_id, r.portfolio_version, r.cash_balance, r.symbol, r.position_quantity, r.position_avg_price,
        r.realized_pnl, r.duplicate
    );
END;
$$;

-- ===== sql/130_cash.sql =====
-- Cash movements: deposits, withdrawals and standalone fees (custody, data, ...). Each is
-- one operation of 128_operations.sql, which defines what it does (PL/pgSQL for the
-- reason given in 141_fill_verbs.sql).
CREATE FUNCTION pgportfolio.deposit_cash(
    p_portfolio_id bigint,
    p_amount numeric,
    p_request_id text DEFAULT NULL,
    p_expected_version bigint DEFAULT NULL
)
RETURNS pgportfolio.mutation_result
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN pgportfolio._apply_one(
        'deposit_cash', p_portfolio_id, NULL, NULL, NULL, NULL, p_amount, p_request_id, p_expected_version
    );
END;
$$;

CREATE FUNCTION pgportfolio.withdraw_cash(
    p_portfolio_id bigint,
    p_amount numeric,
    p_request_id text DEFAULT NULL,
    p_expected_version bigint DEFAULT NULL
)
RETURNS pgportfolio.mutation_result
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN pgportfolio._apply_one(
        'withdraw_cash', p_portfolio_id, NULL, NULL, NULL, NULL, p_amount, p_request_id, p_expected_version
    );
END;
$$;

CREATE FUNCTION pgportfolio.charge_fee(
    p_portfolio_id bigint,
    p_amount numeric,
    p_request_id text DEFAULT NULL,
    p_expected_version bigint DEFAULT NULL
)
RETURNS pgportfolio.mutation_result
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN pgportfolio._apply_one(
        'charge_fee', p_portfolio_id, NULL, NULL, NULL, NULL, p_amount, p_request_id, p_expected_version
    );
END;
$$;

COMMENT ON FUNCTION pgportfolio.deposit_cash(bigint, numeric, text, bigint) IS 'Add cash to a portfolio.';
COMMENT ON FUNCTION pgportfolio.withdraw_cash(bigint, numeric, text, bigint) IS
'Take cash out of a portfolio; PF002 if it would go below zero.';
COMMENT ON FUNCTION pgportfolio.charge_fee(bigint, numeric, text, bigint) IS
'Charge a fee not tied to a fill (custody, data). Counts as realized P&L of -amount.';

-- ===== sql/141_fill_verbs.sql =====
-- The fill verbs: each one operation of 128_operations.sql, which defines what it does.
-- SECURITY DEFINER so that traders never need rights on the tables. Each takes the fill's
-- optional execution metadata last (executed_at, order_id, tags: see 034_events.sql).
-- PL/pgSQL, not SQL: a SQL function with SET (not inlinable) parses and plans its body on
-- every call, about 3% of a single call's work; PL/pgSQL plans it once per session.

CREATE FUNCTION pgportfolio.apply_fill(
    p_portfolio_id bigint,
    p_symbol text,
    p_quantity numeric,
    p_price numeric,
    p_fee numeric DEFAULT 0,
    p_request_id text DEFAULT NULL,
    p_expected_version bigint DEFAULT NULL,
    p_executed_at timestamptz DEFAULT NULL,
    p_order_id text DEFAULT NULL,
    p_tags jsonb DEFAULT NULL
)
RETURNS pgportfolio.mutation_result
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN pgportfolio._apply_one(
        'apply_fill', p_portfolio_id, p_symbol, p_quantity, p_price, p_fee, NULL, p_request_id, p_expected_version,
        p_executed_at, p_order_id, p_tags
    );
END;
$$;

COMMENT ON FUNCTION pgportfolio.apply_fill(
    bigint, text, numeric, numeric, numeric, text, bigint, timestamptz, text, jsonb
) IS
'Apply a signed fill (+ buy, - sell) netted against the open position: open, add, reduce, close or flip.';

CREATE FUNCTION pgportfolio.open_position(
    p_portfolio_id bigint,
    p_symbol text,
    p_quantity numeric,
    p_price numeric,
    p_fee numeric DEFAULT 0,
    p_request_id text DEFAULT NULL,
    p_expected_version bigint DEFAULT NULL,
    p_executed_at timestamptz DEFAULT NULL,
    p_order_id text DEFAULT NULL,
    p_tags jsonb DEFAULT NULL
)
RETURNS pgportfolio.mutation_result
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN pgportfolio._apply_one(
        'open_position', p_portfolio_id, p_symbol, p_quantity, p_price, p_fee, NULL, p_request_id, p_expected_version,
        p_executed_at, p_order_id, p_tags
    );
END;
$$;

COMMENT ON FUNCTION pgportfolio.open_position(
    bigint, text, numeric, numeric, numeric, text, bigint, timestamptz, text, jsonb
) IS
'Open a position (signed quantity). PF006 if one is already open.';

CREATE FUNCTION pgportfolio.add_to_position(
    p_portfolio_id bigint,
    p_symbol text,
    p_quantity numeric,
    p_price numeric,
    p_fee numeric DEFAULT 0,
    p_request_id text DEFAULT NULL,
    p_expected_version bigint DEFAULT NULL,
    p_executed_at timestamptz DEFAULT NULL,
    p_order_id text DEFAULT NULL,
    p_tags jsonb DEFAULT NULL
)
RETURNS pgportfolio.mutation_result
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN pgportfolio._apply_one(
        'add_to_position', p_portfolio_id, p_symbol, p_quantity, p_price, p_fee, NULL, p_request_id, p_expected_version,
        p_executed_at, p_order_id, p_tags
    );
END;
$$;

COMMENT ON FUNCTION pgportfolio.add_to_position(
    bigint, text, numeric, numeric, numeric, text, bigint, timestamptz, text, jsonb
) IS
'Add to an open position on its own side (signed quantity). PF003 if none is open.';

CREATE FUNCTION pgportfolio.reduce_position(
    p_portfolio_id bigint,
    p_symbol text,
    p_quantity numeric,
    p_price numeric,
    p_fee numeric DEFAULT 0,
    p_request_id text DEFAULT NULL,
    p_expected_version bigint DEFAULT NULL,
    p_executed_at timestamptz DEFAULT NULL,
    p_order_id text DEFAULT NULL,
    p_tags jsonb DEFAULT NULL
)
RETURNS pgportfolio.mutation_result
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN pgportfolio._apply_one(
        'reduce_position', p_portfolio_id, p_symbol, p_quantity, p_price, p_fee, NULL, p_request_id, p_expected_version,
        p_executed_at, p_order_id, p_tags
    );
END;
$$;

COMMENT ON FUNCTION pgportfolio.reduce_position(
    bigint, text, numeric, numeric, numeric, text, bigint, timestamptz, text, jsonb
) IS
'Reduce an open position by a positive quantity, at most what is held. PF003 otherwise.';

CREATE FUNCTION pgportfolio.close_position(
    p_portfolio_id bigint,
    p_symbol text,
    p_price numeric,
    p_fee numeric DEFAULT 0,
    p_request_id text DEFAULT NULL,
    p_expected_version bigint DEFAULT NULL,
    p_executed_at timestamptz DEFAULT NULL,
    p_order_id text DEFAULT NULL,
    p_tags jsonb DEFAULT NULL
)
RETURNS pgportfolio.mutation_result
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN pgportfolio._apply_one(
        'close_position', p_portfolio_id, p_symbol, NULL, p_price, p_fee, NULL, p_request_id, p_expected_version,
        p_executed_at, p_order_id, p_tags
    );
END;
$$;

COMMENT ON FUNCTION pgportfolio.close_position(
    bigint, text, numeric, numeric, text, bigint, timestamptz, text, jsonb
) IS
'Close the whole open position at p_price. PF003 if none is open.';

-- ===== sql/145_apply_fills.sql =====
-- Batches: many operations, for one portfolio or many, in one call and one transaction.
-- Each element is an operation of 128_operations.sql (a fill by default; a verb or a cash
-- move when its operation says so) with the same result, event and refusal as the single
-- function, element by element in input order. A refused element comes back as its own
-- row with its SQLSTATE and does not undo the others.
--
-- Two forms: apply_fills_arrays takes one typed array per field (what the client sends:
-- no JSON to build or parse); apply_fills takes one JSON array of objects (for SQL written
-- by hand). In both, a fill without a fee pays none.

CREATE FUNCTION pgportfolio.apply_fills_arrays(
    p_portfolio_ids bigint[],
    p_symbols text[],
    p_quantities numeric[],
    p_prices numeric[],
    p_fees numeric[] DEFAULT NULL,
    p_request_ids text[] DEFAULT NULL,
    p_expected_versions bigint[] DEFAULT NULL,
    p_operations text[] DEFAULT NULL,
    p_amounts numeric[] DEFAULT NULL,
    p_executed_ats timestamptz[] DEFAULT NULL,
    p_order_ids text[] DEFAULT NULL,
    p_tags jsonb[] DEFAULT NULL
)
RETURNS SETOF pgportfolio.fill_result
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_n integer := cardinality(p_portfolio_ids);
    v_nulls text[];
BEGIN
    IF v_n IS NULL THEN
        RAISE EXCEPTION 'p_portfolio_ids must not be null' USING ERRCODE = '22023';
    END IF;
    -- The defaults below write into p_operations and p_fees by position, which would
    -- lengthen a short array: refuse one first (the core checks every array's shape).
    IF cardinality(p_operations) <> v_n OR cardinality(p_fees) <> v_n THEN
        RAISE EXCEPTION 'the argument arrays must all have one element per operation'
            USING ERRCODE = '22023', HINT = 'Pass one-dimensional arrays of equal length, numbered from 1.';
    END IF;
    v_nulls := array_fill(NULL::text, ARRAY[v_n]);
    -- Whole-array replacements where they do (a loop over the elements cost about 3,000
    -- instructions each): only a batch with cash moves, which take no fee, needs the loop.
    p_operations := array_replace(coalesce(p_operations, v_nulls), NULL, 'apply_fill');
    p_fees := coalesce(p_fees, v_nulls::numeric[]);
    IF p_operations && ARRAY['deposit_cash', 'withdraw_cash', 'charge_fee'] THEN
        FOR i IN 1 .. v_n LOOP
            IF p_fees[i] IS NULL AND p_operations[i] NOT IN ('deposit_cash', 'withdraw_cash', 'charge_fee') THEN
                p_fees[i] := 0;
            END IF;
        END LOOP;
    ELSE
        p_fees := array_replace(p_fees, NULL, 0::numeric);
    END IF;
    RETURN QUERY
    SELECT *
    FROM pgportfolio._apply_operations(
        p_operations, p_portfolio_ids,
        coalesce(p_symbols, v_nulls), coalesce(p_quantities, v_nulls::numeric[]),
        coalesce(p_prices, v_nulls::numeric[]), p_fees, coalesce(p_amounts, v_nulls::numeric[]),
        coalesce(p_request_ids, v_nulls), coalesce(p_expected_versions, v_nulls::bigint[]),
        coalesce(p_executed_ats, v_nulls::timestamptz[]), coalesce(p_order_ids, v_nulls),
        coalesce(p_tags, v_nulls::jsonb[])
    );
END;
$$;

COMMENT ON FUNCTION pgportfolio.apply_fills_arrays(
    bigint[], text[], numeric[], numeric[], numeric[], text[], bigint[], text[], numeric[], timestamptz[], text[],
    jsonb[]
) IS
'Apply many operations (signed fills by default) in one call; one result row per element, in input order.';

-- [{"portfolio_id": 1, "symbol": "AAPL", "quantity": "10", "price": "189.5"}, ...]; an
-- element may also carry "fee", "request_id", "expected_version", and "operation" (a verb,
-- or deposit_cash / withdraw_cash / charge_fee with "amount").
CREATE FUNCTION pgportfolio.apply_fills(p_fills jsonb)
RETURNS SETOF pgportfolio.fill_result
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_portfolio_ids bigint[];
    v_operations text[];
    v_symbols text[];
    v_quantities numeric[];
    v_prices numeric[];
    v_fees numeric[];
    v_amounts numeric[];
    v_request_ids text[];
    v_expected_versions bigint[];
    v_executed_ats timestamptz[];
    v_order_ids text[];
    v_tags jsonb[];
BEGIN
    IF p_fills IS NULL OR jsonb_typeof(p_fills) <> 'array' THEN
        RAISE EXCEPTION 'p_fills must be a JSON array of fills' USING ERRCODE = '22023';
    END IF;
    BEGIN
        SELECT
            coalesce(array_agg(f.portfolio_id ORDER BY f.item), '{}'), array_agg(f.operation ORDER BY f.item),
            array_agg(f.symbol ORDER BY f.item), array_agg(f.quantity ORDER BY f.item),
            array_agg(f.price ORDER BY f.item), array_agg(f.fee ORDER BY f.item), array_agg(f.amount ORDER BY f.item),
            array_agg(f.request_id ORDER BY f.item), array_agg(f.expected_version ORDER BY f.item),
            array_agg(f.executed_at ORDER BY f.item), array_agg(f.order_id ORDER BY f.item),
            array_agg(f.tags ORDER BY f.item)
        INTO v_portfolio_ids, v_operations, v_symbols, v_quantities, v_prices, v_fees, v_amounts, v_request_ids,
            v_expected_versions, v_executed_ats, v_order_ids, v_tags
        FROM ROWS FROM (
            jsonb_to_recordset(p_fills) AS (
                portfolio_id bigint, operation text, amount numeric, symbol text, quantity numeric,
                price numeric, fee numeric, request_id text, expected_version bigint, executed_at timestamptz,
                order_id text, tags jsonb
            )
        ) WITH ORDINALITY AS f (
            portfolio_id, operation, amount, symbol, quantity, price, fee, request_id, expected_version, executed_at,
            order_id, tags, item
        );
    EXCEPTION WHEN data_exception THEN
        RAISE EXCEPTION 'malformed p_fills: %', sqlerrm
            USING ERRCODE = '22023',
            HINT = 'A fill: {"portfolio_id", "symbol", "quantity", "price", "fee", "request_id", "expected_version", "executed_at", "order_id", "tags"}; a cash move: {"portfolio_id", "operation", "amount", "request_id", "expected_version"}.';
    END;
    RETURN QUERY
    SELECT *
    FROM pgportfolio.apply_fills_arrays(
        p_portfolio_ids => v_portfolio_ids, p_symbols => v_symbols, p_quantities => v_quantities,
        p_prices => v_prices, p_fees => v_fees, p_request_ids => v_request_ids,
        p_expected_versions => v_expected_versions, p_operations => v_operations, p_amounts => v_amounts,
        p_executed_ats => v_executed_ats, p_order_ids => v_order_ids, p_tags => v_tags
    );
END;
$$;

COMMENT ON FUNCTION pgportfolio.apply_fills(jsonb) IS
'Apply many operations given as one JSON array of objects; one result row per element, in input order.';

-- ===== sql/150_market_prices.sql =====
-- A price tick touches only market_price_history and market_prices: it never locks or
-- rewrites a portfolio or a position, so ticks and fills never wait for each other.

-- The rules of a mark's time and source (22023), shared by both tick functions. as_of may
-- lie in the past without bound (a back-filled mark) but at most a minute ahead of the
-- server's clock (clock skew between a feed and the server); it must be a finite time.
-- A source names the feed: 1 to 64 characters, none of _refused_characters().
CREATE FUNCTION pgportfolio._check_mark(p_as_of_argument text, p_as_of timestamptz, p_source text)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF p_as_of IS NULL THEN
        RAISE EXCEPTION '% must not be null', p_as_of_argument USING ERRCODE = '22023';
    END IF;
    IF NOT isfinite(p_as_of) THEN
        RAISE EXCEPTION '% must be a finite time', p_as_of_argument
            USING ERRCODE = '22023', DETAIL = format('Got %s.', p_as_of);
    END IF;
    IF p_as_of > clock_timestamp() + INTERVAL '1 minute' THEN
        RAISE EXCEPTION '% is in the future', p_as_of_argument
            USING ERRCODE = '22023',
            DETAIL = format('Got %s; the server''s clock reads %s.', p_as_of, clock_timestamp()),
            HINT = 'A mark may be at most one minute ahead of the server''s clock.';
    END IF;
    IF p_source IS NOT NULL
       AND (length(p_source) NOT BETWEEN 1 AND 64 OR p_source ~ pgportfolio._refused_characters()) THEN
        RAISE EXCEPTION 'invalid source'
            USING ERRCODE = '22023',
            HINT = 'A source is 1 to 64 characters without control or format characters (such as U+202E).';
    END IF;
END;
$$;

-- One mark: kept in the history, and made the current mark unless the current one has a
-- later as_of (a late-arriving older mark goes to the history only). The history row is
-- written first, so its mark_id is known when the current mark is compared: for two marks
-- with one as_of, the later arrival (higher mark_id) is current, whichever commits first,
-- exactly as price_at() orders them. The update takes updated_at from the proposed row
-- (its default, now()): no function is evaluated inside ON CONFLICT DO UPDATE, which is
-- what Citus requires of a distributed upsert (docs/operations.md, "Citus later").
CREATE FUNCTION pgportfolio.update_market_price(
    p_symbol text,
    p_price numeric,
    p_as_of timestamptz DEFAULT NULL,
    p_source text DEFAULT NULL
)
RETURNS void
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_as_of timestamptz := coalesce(p_as_of, now());
    v_mark_id bigint;
    v_saved_lock_timeout text;
BEGIN
    PERFORM pgportfolio._check_symbol(p_symbol);
    PERFORM pgportfolio._check_number('p_price', p_price, 'positive');
    PERFORM pgportfolio._check_mark('p_as_of', v_as_of, p_source);
    INSERT INTO pgportfolio.market_price_history (symbol, as_of, price, source)
    VALUES (p_symbol, v_as_of, trim_scale(p_price), p_source)
    RETURNING mark_id INTO v_mark_id;
    v_saved_lock_timeout := pgportfolio._bound_lock_wait();  -- ticks on one symbol queue on its row
    INSERT INTO pgportfolio.market_prices AS m (symbol, price, as_of, source, mark_id)
    VALUES (p_symbol, trim_scale(p_price), v_as_of, p_source, v_mark_id)
    ON CONFLICT (symbol) DO UPDATE
    SET price = excluded.price, version = m.version + 1, updated_at = excluded.updated_at,
        as_of = excluded.as_of, source = excluded.source, mark_id = excluded.mark_id
    WHERE (m.as_of, m.mark_id) < (excluded.as_of, excluded.mark_id);
    PERFORM set_config('lock_timeout', v_saved_lock_timeout, true);
END;
$$;

COMMENT ON FUNCTION pgportfolio.update_market_price(text, numeric, timestamptz, text) IS
'Record a mark of a symbol as of p_as_of (default now); current if latest. Never locks portfolios or positions.';

-- Many ticks in one call: [{"symbol": "AAPL", "price": "189.5", "as_of": "...", "source": "..."}, ...],
-- as_of and source optional. All or nothing: a bad element fails the call (22023) and
-- nothing is written. Every mark goes to the history, in the order given; per symbol the
-- one with the latest as_of (the last given, among equal ones) is offered as the current
-- mark. Current marks are written in symbol order, so two bulk calls over the same
-- symbols cannot deadlock. Like single ticks, it never touches portfolios or positions.
CREATE FUNCTION pgportfolio.update_market_prices(p_prices jsonb)
RETURNS integer
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_symbols text[];
    v_prices numeric[];
    v_as_ofs timestamptz[];
    v_sources text[];
    v_latest_allowed timestamptz;
    v_saved_lock_timeout text;
    v_count integer;
BEGIN
    IF p_prices IS NULL OR jsonb_typeof(p_prices) <> 'array' THEN
        RAISE EXCEPTION 'p_prices must be a JSON array of {"symbol", "price"}' USING ERRCODE = '22023';
    END IF;
    BEGIN
        SELECT
            array_agg(t.symbol ORDER BY t.item),
            array_agg(t.price ORDER BY t.item),
            array_agg(coalesce(t.as_of, now()) ORDER BY t.item),
            array_agg(t.source ORDER BY t.item)
        INTO v_symbols, v_prices, v_as_ofs, v_sources
        FROM ROWS FROM (
            jsonb_to_recordset(p_prices) AS (symbol text, price numeric, as_of timestamptz, source text)
        ) WITH ORDINALITY AS t (symbol, price, as_of, source, item);
    EXCEPTION WHEN data_exception THEN
        RAISE EXCEPTION 'malformed p_prices: %', sqlerrm USING ERRCODE = '22023';
    END;
    IF v_symbols IS NULL THEN
        RETURN 0;
    END IF;
    -- Every input rule in one pass over the set (the rules of 100_validation.sql and
    -- _check_mark); the raising checks run only when an element fails, to name the first
    -- with its message.
    v_latest_allowed := clock_timestamp() + INTERVAL '1 minute';
    IF EXISTS (
        SELECT FROM unnest(v_symbols, v_prices, v_as_ofs, v_sources) AS t (symbol, price, as_of, source)
        WHERE NOT coalesce(
            pgportfolio._symbol_valid(t.symbol)
            AND t.price NOT IN ('NaN', 'Infinity', '-Infinity') AND t.price > 0
            AND t.price < 1e15 AND min_scale(t.price) <= 8
            AND isfinite(t.as_of) AND t.as_of <= v_latest_allowed
            AND (
                t.source IS NULL
                OR (length(t.source) BETWEEN 1 AND 64 AND t.source !~ pgportfolio._refused_characters())
            ),
            false
        )
    ) THEN
        FOR i IN 1 .. array_length(v_symbols, 1) LOOP
            PERFORM pgportfolio._check_symbol(v_symbols[i]);
            PERFORM pgportfolio._check_number('price', v_prices[i], 'positive');
            PERFORM pgportfolio._check_mark('as_of', v_as_ofs[i], v_sources[i]);
        END LOOP;
    END IF;

    v_saved_lock_timeout := pgportfolio._bound_lock_wait();
    WITH recorded AS (
        INSERT INTO pgportfolio.market_price_history (symbol, as_of, price, source)
        SELECT t.symbol, t.as_of, trim_scale(t.price), t.source
        FROM unnest(v_symbols, v_prices, v_as_ofs, v_sources) WITH ORDINALITY
            AS t (symbol, price, as_of, source, item)
        ORDER BY t.item  -- mark_ids follow the order given: among equal as_of, the last wins
        RETURNING symbol, as_of, mark_id, price, source
    )

    INSERT INTO pgportfolio.market_prices AS m (symbol, price, as_of, source, mark_id)
    SELECT DISTINCT ON (r.symbol) r.symbol, r.price, r.as_of, r.source, r.mark_id
    FROM recorded AS r
    ORDER BY r.symbol ASC, r.as_of DESC, r.mark_id DESC
    ON CONFLICT (symbol) DO UPDATE
    SET price = excluded.price, version = m.version + 1, updated_at = excluded.updated_at,
        as_of = excluded.as_of, source = excluded.source, mark_id = excluded.mark_id
    WHERE (m.as_of, m.mark_id) < (excluded.as_of, excluded.mark_id);
    GET DIAGNOSTICS v_count = ROW_COUNT;
    PERFORM set_config('lock_timeout', v_saved_lock_timeout, true);
    RETURN v_count;
END;
$$;

COMMENT ON FUNCTION pgportfolio.update_market_prices(jsonb) IS
'Record many marks at once, all or nothing; returns the number of symbols whose current mark this call set.';

-- The mark that was current at p_at: the latest as_of at or before it (the later arrival
-- among equal ones), or NULL when none is known (no mark yet, or pruned). One backward
-- step in the history's primary key. For point-in-time reads and valuations.
CREATE FUNCTION pgportfolio.price_at(p_symbol text, p_at timestamptz)
RETURNS numeric
LANGUAGE plpgsql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM pgportfolio._check_symbol(p_symbol);
    IF p_at IS NULL THEN
        RAISE EXCEPTION 'p_at must not be null' USING ERRCODE = '22023';
    END IF;
    RETURN (
        SELECT h.price
        FROM pgportfolio.market_price_history AS h
        WHERE h.symbol = p_symbol AND h.as_of <= p_at
        ORDER BY h.as_of DESC, h.mark_id DESC
        LIMIT 1
    );
END;
$$;

COMMENT ON FUNCTION pgportfolio.price_at(text, timestamptz) IS
'The price of the mark current at p_at (latest as_of at or before it), or NULL if none is known.';

-- Retention of the price history (owner only). Deletes the marks with as_of before
-- p_before, except, per symbol, the one current at p_before: so price_at() gives the same
-- answer as before for every time from the oldest kept mark on, and NULL before it. The
-- current marks (market_prices) are never touched. Run it from a scheduler (pg_cron, cron
-- + psql), often enough that each run deletes a day or so of marks; it returns the number
-- of marks deleted.
CREATE FUNCTION pgportfolio.prune_price_history(p_before timestamptz)
RETURNS bigint
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_count bigint;
BEGIN
    IF p_before IS NULL OR NOT isfinite(p_before) THEN
        RAISE EXCEPTION 'p_before must be a finite time'
            USING ERRCODE = '22023', DETAIL = format('Got %s.', coalesce(p_before::text, 'NULL'));
    END IF;
    IF p_before > now() THEN
        RAISE EXCEPTION 'p_before is in the future'
            USING ERRCODE = '22023', DETAIL = format('Got %s; now is %s.', p_before, now()),
            HINT = 'History is pruned only up to the present.';
    END IF;
    DELETE FROM pgportfolio.market_price_history AS h
    WHERE h.as_of < p_before
      AND EXISTS (
          SELECT FROM pgportfolio.market_price_history AS later
          WHERE later.symbol = h.symbol
            AND later.as_of <= p_before
            AND (later.as_of, later.mark_id) > (h.as_of, h.mark_id)
      );
    GET DIAGNOSTICS v_count = ROW_COUNT;
    RETURN v_count;
END;
$$;

COMMENT ON FUNCTION pgportfolio.prune_price_history(timestamptz) IS
'Delete price history before p_before, keeping per symbol the mark current at p_before. Owner only.';

-- ===== sql/155_instruments.sql =====
-- Instruments are reference data, managed by the owner role only (no EXECUTE grant).
-- A multiplier scales the value of every unit held, so changing it under an open
-- position would silently rewrite that position's cost basis and P&L: the change is
-- refused (PF007) while any portfolio holds the symbol. A description, or a multiplier
-- equal to the one in force (1 for a symbol without a row), may always be written.
--
-- The held check cannot race a fill: before it looks at positions it takes a SHARE lock
-- on the positions table, which waits for every fill that may open a position (such a
-- fill takes ROW EXCLUSIVE on positions before it reads the multiplier) and holds new
-- ones back until this transaction ends. The check then sees every committed position,
-- which needs READ COMMITTED (a REPEATABLE READ snapshot was taken before the lock), so a
-- multiplier change at a higher isolation level is refused (0A000). Fills at REPEATABLE
-- READ see the change through multiplier_changes (035_instruments.sql).
CREATE FUNCTION pgportfolio.upsert_instrument(
    p_symbol text,
    p_multiplier numeric DEFAULT 1,
    p_description text DEFAULT NULL
)
RETURNS void
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_multiplier_in_force numeric;
    v_holders bigint;
    v_saved_lock_timeout text;
BEGIN
    PERFORM pgportfolio._check_symbol(p_symbol);
    PERFORM pgportfolio._check_number('p_multiplier', p_multiplier, 'positive');
    IF p_description IS NOT NULL
       AND (length(p_description) NOT BETWEEN 1 AND 200 OR p_description ~ pgportfolio._refused_characters()) THEN
        RAISE EXCEPTION 'invalid description'
            USING ERRCODE = '22023',
            HINT = 'A description is 1 to 200 characters without control or format characters (such as U+202E).';
    END IF;

    v_saved_lock_timeout := pgportfolio._bound_lock_wait();
    -- A new symbol first gets the row it implicitly had (multiplier 1), so that one row
    -- lock serialises concurrent upserts of the same symbol, new or not.
    INSERT INTO pgportfolio.instruments (symbol) VALUES (p_symbol) ON CONFLICT (symbol) DO NOTHING;
    SELECT i.multiplier INTO STRICT v_multiplier_in_force
    FROM pgportfolio.instruments AS i WHERE i.symbol = p_symbol FOR UPDATE;

    IF p_multiplier <> v_multiplier_in_force THEN
        IF current_setting('transaction_isolation') <> 'read committed' THEN
            RAISE EXCEPTION 'a multiplier can be changed only at READ COMMITTED'
                USING ERRCODE = '0A000',
                DETAIL = format('The transaction is %s.', upper(current_setting('transaction_isolation'))),
                HINT = 'The held-symbol check must see positions committed after the transaction began.';
        END IF;
        -- Waits for fills at REPEATABLE READ that read multipliers (they hold this row FOR
        -- SHARE), and makes those that come later fail with 40001 (035_instruments.sql).
        UPDATE pgportfolio.multiplier_changes SET changes = changes + 1, changed_at = now();
        LOCK TABLE pgportfolio.positions IN SHARE MODE;
        SELECT count(*) INTO v_holders FROM pgportfolio.positions AS p WHERE p.symbol = p_symbol;
        IF v_holders > 0 THEN
            RAISE EXCEPTION 'symbol % is held: its multiplier cannot change', p_symbol
                USING ERRCODE = 'PF007',
                DETAIL = format('Multiplier %s, asked %s; %s open position(s).',
                                v_multiplier_in_force, trim_scale(p_multiplier), v_holders),
                HINT = 'Close every position in the symbol first, or keep the multiplier.';
        END IF;
    END IF;

    UPDATE pgportfolio.instruments
    SET multiplier = trim_scale(p_multiplier), description = p_description, updated_at = now()
    WHERE symbol = p_symbol;
    PERFORM set_config('lock_timeout', v_saved_lock_timeout, true);
END;
$$;

COMMENT ON FUNCTION pgportfolio.upsert_instrument(text, numeric, text) IS
'Create or replace an instrument. Owner only; PF007 if the multiplier of a held symbol would change.';

-- ===== sql/160_grants.sql =====
-- Only the portfolio's owner role (or a member of it) may let another role trade it.
CREATE FUNCTION pgportfolio.grant_portfolio(p_portfolio_id bigint, p_role name)
RETURNS void
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_actor name := pgportfolio._acting_role();
    v_owner name;
    v_saved_lock_timeout text;
BEGIN
    IF p_portfolio_id IS NULL THEN
        RAISE EXCEPTION 'p_portfolio_id must not be null' USING ERRCODE = '22023';
    END IF;
    IF p_role IS NULL OR NOT EXISTS (SELECT FROM pg_roles WHERE rolname = p_role) THEN
        RAISE EXCEPTION 'role % does not exist', coalesce(quote_ident(p_role), 'NULL')
            USING ERRCODE = '22023';
    END IF;
    SELECT owner_role INTO v_owner FROM pgportfolio.portfolios WHERE portfolio_id = p_portfolio_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'portfolio % not found', p_portfolio_id USING ERRCODE = 'PF004';
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles AS r WHERE r.rolname = v_owner AND pg_has_role(v_actor, r.oid, 'MEMBER')) THEN
        RAISE EXCEPTION 'only the owner of portfolio % may grant it', p_portfolio_id
            USING ERRCODE = '42501', DETAIL = format('Owner is %s, caller is %s.', v_owner, v_actor);
    END IF;
    v_saved_lock_timeout := pgportfolio._bound_lock_wait();  -- the FK check waits behind a trade
    INSERT INTO pgportfolio.portfolio_access (portfolio_id, grantee, granted_by)
    VALUES (p_portfolio_id, p_role, v_actor)
    ON CONFLICT (portfolio_id, grantee) DO NOTHING;
    PERFORM set_config('lock_timeout', v_saved_lock_timeout, true);
END;
$$;

CREATE FUNCTION pgportfolio.revoke_portfolio(p_portfolio_id bigint, p_role name)
RETURNS void
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_actor name := pgportfolio._acting_role();
    v_owner name;
BEGIN
    IF p_portfolio_id IS NULL OR p_role IS NULL THEN
        RAISE EXCEPTION 'p_portfolio_id and p_role must not be null' USING ERRCODE = '22023';
    END IF;
    SELECT owner_role INTO v_owner FROM pgportfolio.portfolios WHERE portfolio_id = p_portfolio_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'portfolio % not found', p_portfolio_id USING ERRCODE = 'PF004';
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles AS r WHERE r.rolname = v_owner AND pg_has_role(v_actor, r.oid, 'MEMBER')) THEN
        RAISE EXCEPTION 'only the owner of portfolio % may revoke it', p_portfolio_id
            USING ERRCODE = '42501', DETAIL = format('Owner is %s, caller is %s.', v_owner, v_actor);
    END IF;
    DELETE FROM pgportfolio.portfolio_access WHERE portfolio_id = p_portfolio_id AND grantee = p_role;
END;
$$;

COMMENT ON FUNCTION pgportfolio.grant_portfolio(bigint, name) IS 'Let another role trade this portfolio.';
COMMENT ON FUNCTION pgportfolio.revoke_portfolio(bigint, name) IS 'Withdraw a grant_portfolio.';

-- ===== sql/170_verify_portfolio.sql =====
-- Rebuild a portfolio from its event log and compare with what is stored.
-- One query, so every check sees the same snapshot; it takes no locks.
-- Each row: what was checked, whether it holds, what the log implies, what is stored.
CREATE FUNCTION pgportfolio.verify_portfolio(p_portfolio_id bigint)
RETURNS TABLE (check_name text, ok boolean, expected numeric, actual numeric)
LANGUAGE plpgsql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
-- Plans made for each call's portfolio: a generic plan, which PL/pgSQL adopts after five
-- calls on large portfolios, read every portfolio's events and positions (a sequential
-- scan of 200,000 events, 46 ms instead of 2.8 for a small portfolio). No JIT and no
-- parallel workers: see the top of 210_reads.sql.
SET jit = off
SET max_parallel_workers_per_gather = 0
SET plan_cache_mode = force_custom_plan
AS $$
BEGIN
    IF p_portfolio_id IS NULL THEN
        RAISE EXCEPTION 'p_portfolio_id must not be null' USING ERRCODE = '22023';
    END IF;
    IF NOT EXISTS (SELECT FROM pgportfolio.portfolios AS p WHERE p.portfolio_id = p_portfolio_id) THEN
        RAISE EXCEPTION 'portfolio % not found', p_portfolio_id USING ERRCODE = 'PF004';
    END IF;
    RETURN QUERY
    WITH pf AS (
        SELECT p.* FROM pgportfolio.portfolios AS p WHERE p.portfolio_id = p_portfolio_id
    ),
    ev AS (
        SELECT
            e.*,
            CASE WHEN e.quantity IS NOT NULL THEN -(e.quantity * e.price * e.multiplier) ELSE 0 END AS cash_flow,
            sum(e.cash_delta) OVER (ORDER BY e.portfolio_version) AS running_cash,
            sum(e.quantity) OVER (PARTITION BY e.symbol ORDER BY e.portfolio_version) AS running_quantity,
            coalesce(
                lag(e.position_cost_basis) OVER (PARTITION BY e.symbol ORDER BY e.portfolio_version), 0
            ) AS basis_before,
            -- The hash this event must carry, given the one stored before it (034_events.sql).
            pgportfolio._event_hash(
                CASE
                    WHEN e.portfolio_version = 1 THEN ''::bytea
                    WHEN lag(e.portfolio_version) OVER (ORDER BY e.portfolio_version) = e.portfolio_version - 1
                        THEN lag(e.chain_hash) OVER (ORDER BY e.portfolio_version)
                END,
                e.portfolio_id, e.portfolio_version, e.kind, e.operation, e.symbol, e.quantity, e.price, e.fee,
                e.amount, e.cash_delta, e.realized_pnl, e.cash_balance, e.position_quantity,
                e.position_cost_basis, e.request_id, e.executed_at, e.order_id, e.tags, e.multiplier, e.acting_role,
                e.created_at
            ) AS chain_hash_expected
        FROM pgportfolio.events AS e
        WHERE e.portfolio_id = p_portfolio_id
    ),
    totals AS (
        SELECT
            count(*)::numeric AS n_events,
            max(ev.portfolio_version)::numeric AS max_version,
            sum(ev.cash_delta) AS sum_cash_delta,
            sum(CASE ev.kind WHEN 'create' THEN ev.amount WHEN 'deposit' THEN ev.amount ELSE 0 END)
            - sum(CASE WHEN ev.kind = 'withdraw' THEN ev.amount ELSE 0 END)
            + sum(ev.cash_flow)
            - sum(ev.fee) AS cash_from_identity,
            least(min(ev.cash_balance), 0) AS lowest_cash,
            sum(ev.realized_pnl) AS sum_realized,
            sum(ev.realized_pnl + ev.fee) AS sum_realized_before_fees,
            sum(ev.cash_flow) AS sum_cash_flow,
            count(*) FILTER (WHERE ev.cash_balance <> ev.running_cash)::numeric AS bad_event_cash,
            count(*) FILTER (
                WHERE ev.quantity IS NOT NULL AND ev.position_quantity <> ev.running_quantity
            )::numeric AS bad_event_quantity,
            count(*) FILTER (
                WHERE ev.quantity IS NOT NULL
                AND ev.realized_pnl <> ev.cash_flow + (ev.position_cost_basis - ev.basis_before) - ev.fee
            )::numeric AS bad_event_pnl,
            count(*) FILTER (
                WHERE ev.chain_hash IS DISTINCT FROM ev.chain_hash_expected
            )::numeric AS bad_event_hash
        FROM ev
    ),
    rebuilt AS (
        SELECT DISTINCT ON (ev.symbol)
            ev.symbol, ev.running_quantity AS quantity, ev.position_cost_basis AS cost_basis, ev.multiplier
        FROM ev
        WHERE ev.quantity IS NOT NULL
        ORDER BY ev.symbol, ev.portfolio_version DESC
    ),
    open_rebuilt AS (
        SELECT r.* FROM rebuilt AS r WHERE r.quantity <> 0
    ),
    stored AS (
        SELECT s.symbol, s.quantity, s.cost_basis, s.multiplier FROM pgportfolio.positions AS s
        WHERE s.portfolio_id = p_portfolio_id
    ),
    position_diff AS (
        SELECT
            count(*) FILTER (WHERE r.quantity IS DISTINCT FROM s.quantity)::numeric AS bad_quantity,
            count(*) FILTER (WHERE r.cost_basis IS DISTINCT FROM s.cost_basis)::numeric AS bad_basis,
            count(*) FILTER (WHERE r.multiplier IS DISTINCT FROM s.multiplier)::numeric AS bad_multiplier
        FROM open_rebuilt AS r
        FULL JOIN stored AS s ON s.symbol = r.symbol
    ),
    checks (check_name, expected, actual, ok_rule) AS (
        SELECT 'version', t.n_events, pf.version::numeric, 'eq' FROM totals AS t, pf
        UNION ALL
        SELECT 'versions_contiguous', t.n_events, t.max_version, 'eq' FROM totals AS t
        UNION ALL
        SELECT 'cash_balance', t.sum_cash_delta, pf.cash_balance, 'eq' FROM totals AS t, pf
        UNION ALL
        SELECT 'cash_identity', t.cash_from_identity, pf.cash_balance, 'eq' FROM totals AS t, pf
        UNION ALL
        SELECT 'cash_never_negative', 0::numeric, least(t.lowest_cash, pf.cash_balance), 'ge' FROM totals AS t, pf
        UNION ALL
        SELECT 'event_cash_balances', 0::numeric, t.bad_event_cash, 'eq' FROM totals AS t
        UNION ALL
        SELECT 'realized_pnl', t.sum_realized, pf.realized_pnl, 'eq' FROM totals AS t, pf
        UNION ALL
        SELECT
            'realized_identity',
            t.sum_cash_flow + coalesce((SELECT sum(s.cost_basis) FROM stored AS s), 0),
            t.sum_realized_before_fees,
            'eq'
        FROM totals AS t
        UNION ALL
        SELECT 'event_position_quantities', 0::numeric, t.bad_event_quantity, 'eq' FROM totals AS t
        UNION ALL
        SELECT 'event_realized_pnl', 0::numeric, t.bad_event_pnl, 'eq' FROM totals AS t
        UNION ALL
        -- and the head kept on the portfolio's row must be its latest event's hash
        SELECT
            'event_hash_chain',
            0::numeric,
            t.bad_event_hash + CASE WHEN pf.chain_head IS DISTINCT FROM (
                SELECT e.chain_hash FROM pgportfolio.events AS e
                WHERE e.portfolio_id = p_portfolio_id ORDER BY e.portfolio_version DESC LIMIT 1
            ) THEN 1 ELSE 0 END,
            'eq'
        FROM totals AS t, pf
        UNION ALL
        SELECT
            'open_positions',
            (SELECT count(*) FROM open_rebuilt)::numeric,
            (SELECT count(*) FROM stored)::numeric,
            'eq'
        UNION ALL
        SELECT 'position_quantities', 0::numeric, d.bad_quantity, 'eq' FROM position_diff AS d
        UNION ALL
        SELECT 'position_cost_basis', 0::numeric, d.bad_basis, 'eq' FROM position_diff AS d
        UNION ALL
        -- a position's multiplier is the one its latest fill was applied with
        SELECT 'position_multipliers', 0::numeric, d.bad_multiplier, 'eq' FROM position_diff AS d
    )
    SELECT
        c.check_name,
        CASE c.ok_rule WHEN 'eq' THEN c.expected = c.actual ELSE c.actual >= c.expected END,
        c.expected,
        c.actual
    FROM checks AS c;
END;
$$;

COMMENT ON FUNCTION pgportfolio.verify_portfolio(bigint) IS
'Rebuild a portfolio from its event log and compare with the stored state; every row should be ok.';

-- The hash of one event of a portfolio (the latest by default), in hex. An auditor who
-- records it keeps an anchor outside the database: if the chain up to that version is
-- later recomputed by someone who rewrote history, this hash changes.
CREATE FUNCTION pgportfolio.event_chain_head(p_portfolio_id bigint, p_version bigint DEFAULT NULL)
RETURNS TABLE (portfolio_version bigint, chain_hash text)
LANGUAGE plpgsql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF p_portfolio_id IS NULL THEN
        RAISE EXCEPTION 'p_portfolio_id must not be null' USING ERRCODE = '22023';
    END IF;
    IF NOT EXISTS (SELECT FROM pgportfolio.portfolios AS p WHERE p.portfolio_id = p_portfolio_id) THEN
        RAISE EXCEPTION 'portfolio % not found', p_portfolio_id USING ERRCODE = 'PF004';
    END IF;
    RETURN QUERY
    SELECT e.portfolio_version, encode(e.chain_hash, 'hex')
    FROM pgportfolio.events AS e
    WHERE e.portfolio_id = p_portfolio_id AND (p_version IS NULL OR e.portfolio_version = p_version)
    ORDER BY e.portfolio_version DESC
    LIMIT 1;
END;
$$;

COMMENT ON FUNCTION pgportfolio.event_chain_head(bigint, bigint) IS
'The chain hash of a portfolio''s latest event (or of version p_version), for an auditor to record.';

-- Granted here rather than in 900_privileges.sql's lists, beside its definition.
REVOKE ALL ON FUNCTION pgportfolio.event_chain_head(bigint, bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION pgportfolio.event_chain_head(bigint, bigint) TO pgportfolio_trader, pgportfolio_analyst;

-- ===== sql/190_advisory_lock.sql =====
-- A cross-process critical section for clients: a session-level advisory lock whose wait
-- is bounded. The timeout is set for this transaction only, so it never leaks into the
-- session; the lock itself stays until pg_advisory_unlock or the session ends.
CREATE FUNCTION pgportfolio.acquire_advisory_lock(p_key bigint, p_timeout_ms integer)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF p_timeout_ms IS NULL OR p_timeout_ms < 1 THEN
        RAISE EXCEPTION 'p_timeout_ms must be at least 1' USING ERRCODE = '22023';
    END IF;
    PERFORM set_config('lock_timeout', p_timeout_ms || 'ms', true);
    PERFORM pg_advisory_lock(p_key);
END;
$$;

COMMENT ON FUNCTION pgportfolio.acquire_advisory_lock(bigint, integer) IS
'Take a session advisory lock, waiting at most p_timeout_ms (55P03 after that).';

-- ===== sql/200_views.sql =====
-- Read models. Plain MVCC reads: a view never takes a lock that a trade waits for.
-- The tables' domain-typed columns (025_domains.sql) are shown as their base types
-- (numeric, text, bigint): a domain is its own type in record comparisons and to
-- polymorphic functions (pgTAP's is(), for one), so plain values would not compare.

-- One row per open position. The mark is the latest market price, or the average
-- price when none is known (so unrealized P&L is 0 until the first tick). A position is
-- valued with its own multiplier (the instrument's when it opened; 1 without one):
-- market value = quantity * mark * multiplier, and cost_basis already includes it, so
-- the average price per unit is cost_basis / (quantity * multiplier). multiplier is the
-- last column so that queries written against the earlier columns keep working.
CREATE VIEW pgportfolio.position_pnl AS
SELECT
    p.portfolio_id,
    p.symbol::text AS symbol,
    p.quantity::numeric AS quantity,
    round(p.cost_basis / (p.quantity * p.multiplier), 8) AS avg_price,
    p.cost_basis::numeric AS cost_basis,
    coalesce(m.price, round(p.cost_basis / (p.quantity * p.multiplier), 8)) AS mark_price,
    coalesce(p.quantity * m.price * p.multiplier, p.cost_basis) AS market_value,
    coalesce(p.quantity * m.price * p.multiplier - p.cost_basis, 0) AS unrealized_pnl,
    p.realized_pnl::numeric AS realized_pnl,
    p.version::bigint AS version,
    p.updated_at,
    p.multiplier::numeric AS multiplier
FROM pgportfolio.positions AS p
LEFT JOIN pgportfolio.market_prices AS m ON p.symbol = m.symbol;

COMMENT ON VIEW pgportfolio.position_pnl IS
'Open positions with marks and P&L (market value = quantity * mark * multiplier). '
'realized_pnl counts since the position was opened from flat.';

-- How a read of one portfolio's positions finds their marks (portfolio_valuation below,
-- portfolio_snapshot in 210_reads.sql): one probe of the marks' key per position, or one
-- merge of the two primary keys read in symbol order. A probe costs about 2.4 µs whatever
-- the number of marks; the merge about 0.8 µs per position plus 0.4 µs per mark it walks,
-- and it walks every mark between the portfolio's first and last symbol. Measured for
-- 10,000 positions: among 10,000 marks, 12 ms by the merge and 24 ms by probes; among
-- 210,000 (a feed of the whole market), 95 ms by the merge and 35 by probes.
-- A portfolio of fewer than 1,000 positions is probed (its readers count that far in a
-- few index entries). This decides for a wider one: it merges unless the marks number
-- more than ten times its positions. The plans cost the same at about four times; ten
-- spares the usual wide portfolio, which holds about as many symbols as are marked, any
-- counting past 1,000 (a position counted costs about 1.5 µs), at the price of merging
-- between four and ten times, where probes would be up to twice as fast. Without it,
-- the merge cost in proportion to the whole universe of marks.
-- The marks are counted from the table's size, not from statistics (which a new or busy
-- database may not have): about 50 a page, since half of each page is kept free
-- (033_market_prices.sql).
CREATE FUNCTION pgportfolio._wide_read_merges_marks(p_portfolio_id bigint)
RETURNS boolean
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_enough bigint := greatest(1000, pg_relation_size('pgportfolio.market_prices') / 8192 * 50 / 10);
    v_positions bigint;
BEGIN
    IF v_enough = 1000 THEN
        RETURN true;
    END IF;
    SELECT count(*) INTO v_positions
    FROM (SELECT FROM pgportfolio.positions AS p WHERE p.portfolio_id = p_portfolio_id LIMIT v_enough) AS w;
    RETURN v_positions = v_enough;
END;
$$;

COMMENT ON FUNCTION pgportfolio._wide_read_merges_marks(bigint) IS
'Whether a read of a portfolio of 1,000 positions or more finds their marks by one merge rather than a probe each.';

-- The valuation of one portfolio's open positions, as portfolio_summary shows it: the
-- sum of quantity * mark * multiplier (a position without a mark at its cost basis), the
-- sum of cost bases, and the number of positions. A function rather than a join inside
-- the view, so that the plan follows the portfolio's size and not the planner's estimate
-- of it: the view's join was planned for the average portfolio (from statistics, and in
-- a prepared statement's generic plan from no value at all), so a portfolio of 10,000
-- positions among many small ones had its marks probed one look-up per position, 2 to 4
-- times the cost of the plan below (docs/performance.md, "Wide reads").
-- The plans are portfolio_snapshot's (210_reads.sql), chosen the same way: up to 999
-- positions, one probe of the marks' key per position; from 1,000, one merge of the two
-- primary keys unless the marks are many more (_wide_read_merges_marks above). The two
-- statements differ only in how they find each mark (one UNION ALL
-- of both, each behind a one-time filter, cost 1.5 ms more for 10,000 positions). The
-- plans are generic, made once per session, as portfolio_snapshot's: with custom plans
-- every call planned its statements again, and the whole view of 1,000 portfolios took
-- 87 ms instead of 47.
CREATE FUNCTION pgportfolio.portfolio_valuation(
    p_portfolio_id bigint,
    OUT market_value numeric,
    OUT cost_basis numeric,
    OUT open_positions bigint
)
LANGUAGE plpgsql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
-- No JIT and no parallel workers: see the top of 210_reads.sql.
SET jit = off
SET max_parallel_workers_per_gather = 0
SET enable_hashjoin = off
SET enable_sort = off
SET enable_seqscan = off
SET enable_nestloop = off
SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
    v_positions bigint;
BEGIN
    IF p_portfolio_id IS NULL THEN
        RAISE EXCEPTION 'p_portfolio_id must not be null' USING ERRCODE = '22023';
    END IF;
    -- Counting stops at 1,000: a narrow portfolio's plan is chosen in a few index entries.
    SELECT count(*) INTO v_positions
    FROM (SELECT FROM pgportfolio.positions AS p WHERE p.portfolio_id = p_portfolio_id LIMIT 1000) AS w;
    IF v_positions = 0 AND NOT EXISTS (
        SELECT FROM pgportfolio.portfolios AS pf WHERE pf.portfolio_id = p_portfolio_id
    ) THEN
        RAISE EXCEPTION 'portfolio % not found', p_portfolio_id USING ERRCODE = 'PF004';
    END IF;
    IF v_positions < 1000 OR NOT pgportfolio._wide_read_merges_marks(p_portfolio_id) THEN
        SELECT
            coalesce(sum(coalesce(p.quantity * (
                SELECT m.price FROM pgportfolio.market_prices AS m WHERE m.symbol = p.symbol
            ) * p.multiplier, p.cost_basis)), 0),
            coalesce(sum(p.cost_basis), 0),
            count(*)
        INTO market_value, cost_basis, open_positions
        FROM pgportfolio.positions AS p
        WHERE p.portfolio_id = p_portfolio_id;
    ELSE
        SELECT
            coalesce(sum(coalesce(p.quantity * m.price * p.multiplier, p.cost_basis)), 0),
            coalesce(sum(p.cost_basis), 0),
            count(*)
        INTO market_value, cost_basis, open_positions
        FROM pgportfolio.positions AS p
        LEFT JOIN pgportfolio.market_prices AS m ON p.symbol = m.symbol
        WHERE p.portfolio_id = p_portfolio_id;
    END IF;
END;
$$;

COMMENT ON FUNCTION pgportfolio.portfolio_valuation(bigint) IS
'Market value, cost basis and number of a portfolio''s open positions: portfolio_summary''s valuation.';

-- One row per portfolio. realized_pnl is the sum of the mutations' realized P&L, net of fees.
-- Each row's valuation is portfolio_valuation's, in the statement's snapshot (the function
-- is STABLE), so the portfolio's columns and its positions are one consistent state.
CREATE VIEW pgportfolio.portfolio_summary AS
SELECT
    pf.portfolio_id,
    pf.name::text AS name,
    pf.currency::text AS currency,
    pf.cash_balance::numeric AS cash_balance,
    v.market_value,
    v.market_value - v.cost_basis AS unrealized_pnl,
    pf.realized_pnl::numeric AS realized_pnl,
    pf.cash_balance + v.market_value AS equity,
    v.open_positions,
    pf.version::bigint AS version,
    pf.updated_at
FROM pgportfolio.portfolios AS pf
CROSS JOIN LATERAL pgportfolio.portfolio_valuation(pf.portfolio_id) AS v;

COMMENT ON VIEW pgportfolio.portfolio_summary IS 'One row per portfolio: cash, market value, P&L, equity.';

-- Every successful mutation, in the order it happened within its portfolio.
CREATE VIEW pgportfolio.event_log AS
SELECT
    e.portfolio_id,
    e.portfolio_version,
    e.kind::text AS kind,
    e.operation,
    e.symbol,
    e.quantity::numeric AS quantity,
    e.price::numeric AS price,
    e.fee::numeric AS fee,
    e.amount::numeric AS amount,
    e.cash_delta::numeric AS cash_delta,
    e.realized_pnl::numeric AS realized_pnl,
    e.cash_balance::numeric AS cash_balance,
    e.position_quantity::numeric AS position_quantity,
    e.request_id,
    e.acting_role,
    e.created_at,
    -- a fill's execution: when it happened (its transaction's time unless the sender said),
    -- the order id and tags it came with, the multiplier it was applied with
    CASE WHEN e.symbol IS NOT NULL THEN coalesce(e.executed_at, e.created_at) END AS executed_at,
    e.order_id,
    e.tags,
    e.multiplier
FROM pgportfolio.events AS e;

COMMENT ON VIEW pgportfolio.event_log IS
'Append-only log of every mutation; portfolio_version is the version it produced.';

-- Every instrument, for traders and analysts (the table itself is the owner's).
CREATE VIEW pgportfolio.instrument_list AS
SELECT
    i.symbol::text AS symbol,
    i.multiplier,
    i.description,
    i.updated_at
FROM pgportfolio.instruments AS i;

COMMENT ON VIEW pgportfolio.instrument_list IS
'Instruments: contract multiplier and description per symbol (no row: multiplier 1).';

-- Sessions of this database waiting for a lock, and who holds them up.
CREATE VIEW pgportfolio.lock_waits AS
SELECT
    a.pid AS waiting_pid,
    a.usename AS waiting_role,
    a.application_name,
    l.locktype,
    l.relation::regclass AS relation,
    l.mode,
    now() - coalesce(l.waitstart, a.state_change) AS waiting_for,
    pg_blocking_pids(a.pid) AS blocking_pids,
    a.query AS waiting_query,
    (
        SELECT array_agg(b.query ORDER BY b.pid)
        FROM pg_stat_activity AS b
        WHERE b.pid IN (SELECT unnest(pg_blocking_pids(a.pid)))
    ) AS blocking_queries
FROM pg_stat_activity AS a
INNER JOIN pg_locks AS l ON a.pid = l.pid AND NOT l.granted
WHERE a.datname = current_database();

COMMENT ON VIEW pgportfolio.lock_waits IS 'Who is waiting for a lock, on what, for how long, and behind whom.';

-- ===== sql/210_reads.sql =====
-- Reads for programs. Analysts use the views; the client calls these so that each of
-- its queries is one function call and each result is one consistent snapshot.
--
-- Reads of one portfolio run with JIT compilation and parallel workers off (SET jit,
-- max_parallel_workers_per_gather), as do portfolio_valuation, the point-in-time reads
-- and verify_portfolio. Their plans are made without the portfolio's id (generic plans,
-- SQL functions), so they are costed for the average portfolio; in a ledger of a few
-- large portfolios that estimate passed jit_above_cost, and every read of a small one
-- compiled its statements: 10 to 14 ms a call instead of 0.5 for its snapshot (two
-- portfolios of 60,000 positions and one of 20), 24 to 36 ms for the point-in-time reads
-- among 800,000 events, and events_since started parallel workers. A read of one
-- portfolio never needs either.

-- A portfolio and all its open positions in one statement's snapshot, in one row: the
-- portfolio's columns once, then each position column as one text of comma-separated
-- values, value i of each being the i-th position in symbol order (symbols never
-- contain a comma). For programs: 10,000 positions travel as seven strings, which the
-- server writes and a client splits far faster than arrays or rows (docs/performance.md).
-- Values are the columns' exact text (numeric_out); mark_prices has an empty value
-- where the symbol has no mark. Market value and unrealized P&L are left to the caller:
-- quantity * mark * multiplier, less cost_basis, exact.
--
-- Marks are found in one of two plans, chosen by the number of open positions (not by
-- statistics, which a new or busy database may not have): up to 999, one probe of the
-- marks' key per position (about 2 µs each, whatever the number of marks); from 1,000,
-- one merge of the two primary keys read in symbol order (no sort, no hash of every
-- mark), unless the ledger marks more than ten times as many symbols as the portfolio
-- holds, which the merge would walk (_wide_read_merges_marks, 200_views.sql). The
-- function's settings below
-- price hash joins, sorts and sequential scans out, so the planner keeps those shapes,
-- and make the plans generic, made once per session: with custom plans each call planned
-- its statements again (a 10-position snapshot 0.33 ms a call, 0.23 with generic plans).
CREATE FUNCTION pgportfolio.portfolio_snapshot(p_portfolio_id bigint)
RETURNS TABLE (
    portfolio_id bigint,
    name text,
    currency text,
    cash_balance numeric,
    realized_pnl numeric,
    version bigint,
    updated_at timestamptz,
    symbols text,
    quantities text,
    cost_bases text,
    mark_prices text,
    position_realized_pnls text,
    position_versions text,
    multipliers text
)
LANGUAGE plpgsql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET jit = off
SET max_parallel_workers_per_gather = 0
SET enable_hashjoin = off
SET enable_sort = off
SET enable_seqscan = off
SET enable_nestloop = off
SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
    v_positions bigint;
BEGIN
    IF p_portfolio_id IS NULL THEN
        RAISE EXCEPTION 'p_portfolio_id must not be null' USING ERRCODE = '22023';
    END IF;
    -- A STABLE function's statements all see the calling statement's snapshot, so the
    -- portfolio row and its positions below are one consistent state.
    SELECT pf.portfolio_id, pf.name, pf.currency, pf.cash_balance, pf.realized_pnl, pf.version, pf.updated_at
    INTO portfolio_id, name, currency, cash_balance, realized_pnl, version, updated_at
    FROM pgportfolio.portfolios AS pf
    WHERE pf.portfolio_id = p_portfolio_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'portfolio % not found', p_portfolio_id USING ERRCODE = 'PF004';
    END IF;
    -- Counting stops at 1,000: a narrow portfolio's plan is chosen in a few index entries.
    SELECT count(*) INTO v_positions
    FROM (SELECT FROM pgportfolio.positions AS p WHERE p.portfolio_id = p_portfolio_id LIMIT 1000) AS w;
    IF v_positions < 1000 OR NOT pgportfolio._wide_read_merges_marks(p_portfolio_id) THEN
        SELECT
            coalesce(string_agg(o.symbol, ','), ''),
            coalesce(string_agg(o.quantity::text, ','), ''),
            coalesce(string_agg(o.cost_basis::text, ','), ''),
            coalesce(string_agg(coalesce(o.price::text, ''), ','), ''),
            coalesce(string_agg(o.realized_pnl::text, ','), ''),
            coalesce(string_agg(o.version::text, ','), ''),
            coalesce(string_agg(o.multiplier::text, ','), '')
        INTO symbols, quantities, cost_bases, mark_prices, position_realized_pnls, position_versions, multipliers
        FROM (
            SELECT
                p.symbol, p.quantity, p.cost_basis, p.realized_pnl, p.version, p.multiplier,
                (SELECT m.price FROM pgportfolio.market_prices AS m WHERE m.symbol = p.symbol) AS price
            FROM pgportfolio.positions AS p
            WHERE p.portfolio_id = p_portfolio_id
            ORDER BY p.symbol
        ) AS o;
    ELSE
        SELECT
            coalesce(string_agg(o.symbol, ','), ''),
            coalesce(string_agg(o.quantity::text, ','), ''),
            coalesce(string_agg(o.cost_basis::text, ','), ''),
            coalesce(string_agg(coalesce(o.price::text, ''), ','), ''),
            coalesce(string_agg(o.realized_pnl::text, ','), ''),
            coalesce(string_agg(o.version::text, ','), ''),
            coalesce(string_agg(o.multiplier::text, ','), '')
        INTO symbols, quantities, cost_bases, mark_prices, position_realized_pnls, position_versions, multipliers
        FROM (
            SELECT p.symbol, p.quantity, p.cost_basis, p.realized_pnl, p.version, p.multiplier, m.price
            FROM pgportfolio.positions AS p
            LEFT JOIN pgportfolio.market_prices AS m ON p.symbol = m.symbol
            WHERE p.portfolio_id = p_portfolio_id
            ORDER BY p.symbol
        ) AS o;
    END IF;
    RETURN NEXT;
END;
$$;

COMMENT ON FUNCTION pgportfolio.portfolio_snapshot(bigint) IS
'A portfolio and its open positions in one row: each position column as comma-separated text, in symbol order.';

-- The same snapshot as portfolio_snapshot, one row per position, for people: portfolio
-- columns repeat on every row; a portfolio with no position yields one row with symbol
-- NULL. Errors are portfolio_snapshot's. It reads through portfolio_snapshot so that the
-- snapshot is defined once; parsing the texts back costs it about 25 ms of server CPU
-- per 10,000 positions (docs/performance.md).
CREATE FUNCTION pgportfolio.get_portfolio(p_portfolio_id bigint)
RETURNS TABLE (
    portfolio_id bigint,
    name text,
    currency text,
    cash_balance numeric,
    realized_pnl numeric,
    version bigint,
    updated_at timestamptz,
    symbol text,
    quantity numeric,
    cost_basis numeric,
    mark_price numeric,
    position_realized_pnl numeric,
    position_version bigint,
    multiplier numeric
)
LANGUAGE sql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
-- No JIT and no parallel workers: see the top of this file.
SET jit = off
SET max_parallel_workers_per_gather = 0
AS $$
    SELECT
        s.portfolio_id, s.name, s.currency, s.cash_balance, s.realized_pnl, s.version, s.updated_at,
        p.symbol, p.quantity, p.cost_basis, p.mark_price, p.realized_pnl, p.version, p.multiplier
    FROM pgportfolio.portfolio_snapshot(p_portfolio_id) AS s
    -- An empty text splits into no element; an empty mark is NULL.
    LEFT JOIN LATERAL unnest(
        string_to_array(s.symbols, ','),
        string_to_array(s.quantities, ',')::numeric[],
        string_to_array(s.cost_bases, ',')::numeric[],
        string_to_array(s.mark_prices, ',', '')::numeric[],
        string_to_array(s.position_realized_pnls, ',')::numeric[],
        string_to_array(s.position_versions, ',')::bigint[],
        string_to_array(s.multipliers, ',')::numeric[]
    ) WITH ORDINALITY AS p (
        symbol, quantity, cost_basis, mark_price, realized_pnl, version, multiplier, item
    ) ON TRUE
    ORDER BY p.item;
$$;

COMMENT ON FUNCTION pgportfolio.get_portfolio(bigint) IS
'A portfolio and its open positions in one snapshot (one row per position).';

-- What became of a request: its original result (duplicate = true), or no row when it
-- was never applied. A client whose connection died during COMMIT asks this instead of
-- sending the operation again blind.
CREATE FUNCTION pgportfolio.find_request(p_portfolio_id bigint, p_request_id text)
RETURNS SETOF pgportfolio.mutation_result
LANGUAGE plpgsql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
-- PL/pgSQL keeps the plan for the session: one made while the log was nearly empty
-- scanned the whole events table on every later call (tests/test_plan_stability.py).
SET enable_seqscan = off
AS $$
BEGIN
    PERFORM pgportfolio._authorize(p_portfolio_id, pgportfolio._acting_role());
    RETURN QUERY
    SELECT
        e.portfolio_id, e.portfolio_version, e.cash_balance::numeric, e.symbol, e.position_quantity::numeric,
        CASE
            WHEN e.position_quantity <> 0 THEN round(e.position_cost_basis / (e.position_quantity * e.multiplier), 8)
        END,
        e.realized_pnl::numeric, true
    FROM pgportfolio.events AS e
    -- portfolio_id + 0: the request-id index is the only way in, whatever the statistics
    -- were when the session planned this (the look-up in 128_operations.sql explains why)
    WHERE e.request_id = p_request_id AND e.portfolio_id + 0 = p_portfolio_id;
END;
$$;

COMMENT ON FUNCTION pgportfolio.find_request(bigint, text) IS
'The stored result of a request id, or no row if it was never applied.';

-- The events of a portfolio after a version, in order, with every column of the log.
CREATE FUNCTION pgportfolio.events_since(p_portfolio_id bigint, p_after_version bigint)
RETURNS SETOF pgportfolio.event_log
LANGUAGE sql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
-- No JIT and no parallel workers: see the top of this file.
SET jit = off
SET max_parallel_workers_per_gather = 0
AS $$
    SELECT e.*
    FROM pgportfolio.event_log AS e
    WHERE e.portfolio_id = p_portfolio_id AND e.portfolio_version > p_after_version
    ORDER BY e.portfolio_version;
$$;

COMMENT ON FUNCTION pgportfolio.events_since(bigint, bigint) IS
'Events of a portfolio after a version, in order, with every column of the log.';

-- The current version of a portfolio (cheap: one row, no positions).
CREATE FUNCTION pgportfolio.portfolio_version(p_portfolio_id bigint)
RETURNS bigint
LANGUAGE sql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT p.version FROM pgportfolio.portfolios AS p WHERE p.portfolio_id = p_portfolio_id;
$$;

COMMENT ON FUNCTION pgportfolio.portfolio_version(bigint) IS 'The current version of a portfolio, or NULL.';

-- Push updates. A subscriber follows the log: every interval it asks for the events
-- after the last version it delivered, for all its portfolios in one call. Nothing is
-- sent at commit, so commits never queue on PostgreSQL's cluster-wide NOTIFY lock (which
-- is held through the commit's WAL flush), and nothing arrives on a channel that any
-- role could forge or overhear: what a subscriber yields is the log itself, and only
-- roles that may read the log (traders, analysts) may call this.
-- Each portfolio's events come in version order, at most p_limit of them, so a
-- subscriber far behind catches up in bounded steps; each step is one descent of the
-- events primary key (portfolio_id, portfolio_version) per portfolio.
CREATE FUNCTION pgportfolio.events_after(
    p_portfolio_ids bigint[],
    p_after_versions bigint[],
    p_limit integer DEFAULT 1000
)
RETURNS TABLE (portfolio_id bigint, portfolio_version bigint, kind text)
LANGUAGE plpgsql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_count integer := coalesce(array_length(p_portfolio_ids, 1), 0);
BEGIN
    IF p_portfolio_ids IS NULL OR p_after_versions IS NULL
       OR v_count <> coalesce(array_length(p_after_versions, 1), 0)
       OR array_ndims(p_portfolio_ids) > 1 OR array_ndims(p_after_versions) > 1 THEN
        RAISE EXCEPTION 'p_portfolio_ids and p_after_versions must be one-dimensional arrays of one length'
            USING ERRCODE = '22023',
                HINT = 'Element i of p_after_versions is the last version seen of portfolio i.';
    END IF;
    IF v_count > 10000 THEN
        RAISE EXCEPTION 'at most 10000 portfolios per call, got %', v_count USING ERRCODE = '22023';
    END IF;
    IF array_position(p_portfolio_ids, NULL) IS NOT NULL OR array_position(p_after_versions, NULL) IS NOT NULL THEN
        RAISE EXCEPTION 'p_portfolio_ids and p_after_versions must not contain NULL' USING ERRCODE = '22023';
    END IF;
    IF (SELECT count(DISTINCT u.id) FROM unnest(p_portfolio_ids) AS u (id)) <> v_count THEN
        RAISE EXCEPTION 'p_portfolio_ids must not repeat a portfolio' USING ERRCODE = '22023';
    END IF;
    IF p_limit IS NULL OR p_limit < 1 OR p_limit > 10000 THEN
        RAISE EXCEPTION 'p_limit must be between 1 and 10000, got %', coalesce(p_limit::text, 'NULL')
            USING ERRCODE = '22023';
    END IF;
    RETURN QUERY
    SELECT e.portfolio_id, e.portfolio_version, e.kind::text
    FROM unnest(p_portfolio_ids, p_after_versions) AS a (portfolio_id, after_version)
    CROSS JOIN LATERAL (
        SELECT ev.portfolio_id, ev.portfolio_version, ev.kind
        FROM pgportfolio.events AS ev
        WHERE ev.portfolio_id = a.portfolio_id AND ev.portfolio_version > a.after_version
        ORDER BY ev.portfolio_version
        LIMIT p_limit
    ) AS e
    ORDER BY e.portfolio_id, e.portfolio_version;
END;
$$;

COMMENT ON FUNCTION pgportfolio.events_after(bigint[], bigint[], integer) IS
'Push updates: the events after a version of each portfolio, in version order, at most p_limit per portfolio.';

-- ===== sql/220_operator.sql =====
-- Reads for operators (pgportfolio top). Cheap on purpose: no scan of the event log.

-- The most recently changed portfolios with their versions; a caller sampling twice
-- gets event rates from the version deltas.
CREATE FUNCTION pgportfolio.recent_portfolios(p_limit integer DEFAULT 20)
RETURNS TABLE (portfolio_id bigint, name text, version bigint, updated_at timestamptz)
LANGUAGE sql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT p.portfolio_id, p.name, p.version, p.updated_at
    FROM pgportfolio.portfolios AS p
    ORDER BY p.updated_at DESC
    LIMIT least(greatest(coalesce(p_limit, 20), 1), 1000);
$$;

-- What the sessions of this database are waiting for right now.
CREATE FUNCTION pgportfolio.server_wait_events()
RETURNS TABLE (state text, wait_event_type text, wait_event text, sessions bigint)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT a.state, coalesce(a.wait_event_type, 'CPU'), coalesce(a.wait_event, 'running'), count(*)
    FROM pg_stat_activity AS a
    WHERE a.datname = current_database() AND a.backend_type = 'client backend' AND a.pid <> pg_backend_pid()
    GROUP BY 1, 2, 3
    ORDER BY 4 DESC, 1, 2, 3;
$$;

-- The lock_waits view as a function, so that the client's queries are all calls.
CREATE FUNCTION pgportfolio.current_lock_waits()
RETURNS SETOF pgportfolio.lock_waits
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT w.* FROM pgportfolio.lock_waits AS w ORDER BY w.waiting_for DESC;
$$;

-- Which sessions hold a portfolio's row lock right now. A transaction that locked or
-- changed the row is recorded in the committed row version's xmax; that xid is held as a
-- transactionid lock by the session whose transaction (or subtransaction) it is. A
-- holder is listed while nobody waits for it too, and a lock taken jointly by several
-- transactions (a MultiXact, e.g. two FOR KEY SHARE) is not listed (lock_waits still
-- names the blockers of whoever waits). SECURITY DEFINER to read the rows' xmax; it
-- returns only ids. Scans portfolios, not the event log.
CREATE FUNCTION pgportfolio._portfolio_lockers()
RETURNS TABLE (portfolio_id bigint, pid integer)
LANGUAGE sql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT p.portfolio_id, l.pid
    FROM pgportfolio.portfolios AS p
    INNER JOIN pg_locks AS l
        ON l.locktype = 'transactionid' AND l.transactionid = p.xmax AND l.mode = 'ExclusiveLock' AND l.granted
    -- The holder also has the table open; this rules out a MultiXact id that happens to
    -- equal some unrelated transaction's xid.
    WHERE EXISTS (
        SELECT FROM pg_locks AS r
        WHERE r.pid = l.pid AND r.locktype = 'relation' AND r.granted
        AND r.database = (SELECT d.oid FROM pg_database AS d WHERE d.datname = current_database())
        AND r.relation = 'pgportfolio.portfolios'::regclass
    );
$$;

-- The holders with their sessions, read with the caller's rights (like lock_waits):
-- analysts see every role's sessions through pg_read_all_stats, a trader only its own
-- login role's details. held_for is the age of the holding transaction (the lock is at
-- most that old); idle_for, with state 'idle in transaction', is how long it has done
-- nothing: see docs/sql-api.md, "A session that holds a lock and idles".
CREATE FUNCTION pgportfolio.portfolio_lock_holders()
RETURNS TABLE (
    portfolio_id bigint, holder_pid integer, holder_role name, application_name text, state text,
    held_for interval, idle_for interval, holder_query text
)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT
        h.portfolio_id, h.pid, a.usename, a.application_name, a.state,
        now() - a.xact_start,
        CASE WHEN a.state LIKE 'idle%' THEN now() - a.state_change END,
        a.query
    FROM pgportfolio._portfolio_lockers() AS h
    LEFT JOIN pg_stat_activity AS a ON a.pid = h.pid
    ORDER BY 6 DESC NULLS LAST, 1;
$$;

COMMENT ON FUNCTION pgportfolio.recent_portfolios(integer) IS 'The most recently changed portfolios.';
COMMENT ON FUNCTION pgportfolio.server_wait_events() IS 'Sessions of this database by state and wait event.';
COMMENT ON FUNCTION pgportfolio.current_lock_waits() IS 'The lock_waits view, longest wait first.';
COMMENT ON FUNCTION pgportfolio._portfolio_lockers() IS 'Portfolios whose row lock a session holds, and its pid.';
COMMENT ON FUNCTION pgportfolio.portfolio_lock_holders() IS
'Who holds each locked portfolio, for how long, and whether it is idle in transaction.';

-- Granted here rather than in 900_privileges.sql's lists, beside their definitions.
REVOKE ALL ON FUNCTION pgportfolio._portfolio_lockers(), pgportfolio.portfolio_lock_holders() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION pgportfolio._portfolio_lockers(), pgportfolio.portfolio_lock_holders()
TO pgportfolio_trader, pgportfolio_analyst;

-- ===== sql/230_replication.sql =====
-- Replication lag, for analysts on replicas and for whoever runs the formation.
-- On a primary: one row per standby that streams from it (pg_stat_replication). On a
-- standby: one row, itself ('self'): how much of the WAL it received it has not replayed,
-- and since when it is behind. Byte counts are exact; times are PostgreSQL's own
-- measurements (NULL when there is nothing to measure). It runs with the caller's rights:
-- the LSNs and lags of pg_stat_replication are visible to superusers and to members of
-- pg_read_all_stats (pgportfolio_analyst is one, see 010_roles.sql); others see NULLs.
CREATE FUNCTION pgportfolio.replication_lag()
RETURNS TABLE (
    standby text,
    seen_from text,
    state text,
    sync_state text,
    unflushed_bytes numeric,
    unreplayed_bytes numeric,
    flush_lag interval,
    replay_lag interval
)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT
        r.application_name::text,
        'primary',
        r.state,
        r.sync_state,
        pg_wal_lsn_diff(pg_current_wal_lsn(), r.flush_lsn),
        pg_wal_lsn_diff(pg_current_wal_lsn(), r.replay_lsn),
        r.flush_lag,
        r.replay_lag
    FROM pg_stat_replication AS r
    WHERE NOT pg_is_in_recovery()
    UNION ALL
    SELECT
        'self',
        'standby',
        coalesce((SELECT w.status FROM pg_stat_wal_receiver AS w), 'not streaming'),
        NULL,
        NULL,
        pg_wal_lsn_diff(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn()),
        NULL,
        -- behind since the last replayed commit, if anything received is still to replay;
        -- a standby of an idle primary is not behind however old that commit is
        CASE
            WHEN pg_last_wal_receive_lsn() IS NOT DISTINCT FROM pg_last_wal_replay_lsn()
                THEN interval '0'
            ELSE now() - pg_last_xact_replay_timestamp()
        END
    WHERE pg_is_in_recovery()
    ORDER BY 1;
$$;

COMMENT ON FUNCTION pgportfolio.replication_lag() IS
'On a primary, every standby''s lag; on a standby, its own (standby = ''self'').';

-- Granted here rather than in 900_privileges.sql's lists, beside its definition.
REVOKE ALL ON FUNCTION pgportfolio.replication_lag() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION pgportfolio.replication_lag() TO pgportfolio_trader, pgportfolio_analyst;

-- ===== sql/240_history.sql =====
-- Point in time: a portfolio and its positions as they stood at an earlier ledger time or
-- version, rebuilt from the event log (each event stores the state right after it) and
-- valued with the marks that were current then. Plain MVCC reads, no lock taken.
--
-- Which events "as of p_at" covers. An event's created_at is the ledger time of its
-- transaction (now()), so it can be earlier than the created_at of the version before it
-- (a transaction that began first but locked the portfolio second). The state as of p_at
-- is therefore the longest prefix of versions stamped at or before p_at: every version up
-- to the first one stamped after p_at. When stamps follow versions (one writer at a time,
-- the usual case) this is exactly "the events with created_at <= p_at".
--
-- Valuation. The mark of a symbol at a time is the one price_at() returns: the latest
-- as_of at or before it. A position is valued quantity * mark * multiplier, with the
-- multiplier its fills were applied with (stored on each fill's event, so an earlier
-- holding keeps its own even if the instrument's changed after it was closed), and its
-- unrealized P&L is that less its cost basis, as stored in the events.
-- A position without a mark at that time counts at cost (unrealized 0), as in position_pnl.
--
-- Reading is not limited per portfolio (docs/sql-api.md, "Roles and privileges"): like
-- portfolio_snapshot, any trader or analyst may read any portfolio, and an unknown one
-- is PF004. The cost is one pass over the portfolio's events up to the version.

-- The version a portfolio was at, at ledger time p_at: 0 if it did not exist yet.
CREATE FUNCTION pgportfolio._version_at(p_portfolio_id bigint, p_at timestamptz)
RETURNS bigint
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT coalesce(
        (
            SELECT e.portfolio_version - 1
            FROM pgportfolio.events AS e
            WHERE e.portfolio_id = p_portfolio_id AND e.created_at > p_at
            ORDER BY e.portfolio_version
            LIMIT 1
        ),
        (SELECT max(e.portfolio_version) FROM pgportfolio.events AS e WHERE e.portfolio_id = p_portfolio_id),
        0
    );
$$;

-- The open positions after version p_version, valued at p_marks_at. A position's life
-- starts at its latest 'open' event (a fill from flat); realized_pnl and version count
-- from there, as on the live row (128_operations.sql). One row per open position.
CREATE FUNCTION pgportfolio._positions_at(p_portfolio_id bigint, p_version bigint, p_marks_at timestamptz)
RETURNS TABLE (
    symbol text,
    quantity numeric,
    avg_price numeric,
    cost_basis numeric,
    mark_price numeric,
    mark_as_of timestamptz,
    multiplier numeric,
    market_value numeric,
    unrealized_pnl numeric,
    realized_pnl numeric,
    version bigint,
    opened_at timestamptz,
    updated_at timestamptz
)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    WITH fills AS (
        SELECT
            e.symbol,
            e.portfolio_version,
            e.realized_pnl,
            e.position_quantity,
            e.position_cost_basis,
            e.multiplier,
            e.created_at,
            -- the number of the position's life this fill belongs to
            count(*) FILTER (WHERE e.kind = 'open') OVER (
                PARTITION BY e.symbol ORDER BY e.portfolio_version
            ) AS life
        FROM pgportfolio.events AS e
        WHERE
            e.portfolio_id = p_portfolio_id
            AND e.portfolio_version <= p_version
            AND e.quantity IS NOT NULL
    ),

    latest AS (
        SELECT DISTINCT ON (f.symbol)
            f.symbol,
            f.position_quantity,
            f.position_cost_basis,
            f.multiplier,
            f.created_at,
            sum(f.realized_pnl) OVER (PARTITION BY f.symbol, f.life) AS realized,
            count(*) OVER (PARTITION BY f.symbol, f.life) AS fills_in_life,
            min(f.created_at) OVER (PARTITION BY f.symbol, f.life) AS life_start
        FROM fills AS f
        ORDER BY f.symbol ASC, f.portfolio_version DESC
    )

    SELECT
        l.symbol,
        l.position_quantity,
        round(l.position_cost_basis / (l.position_quantity * l.multiplier), 8),
        l.position_cost_basis,
        coalesce(m.price, round(l.position_cost_basis / (l.position_quantity * l.multiplier), 8)),
        m.as_of,
        l.multiplier,
        coalesce(l.position_quantity * m.price * l.multiplier, l.position_cost_basis),
        coalesce(l.position_quantity * m.price * l.multiplier - l.position_cost_basis, 0),
        l.realized,
        l.fills_in_life,
        l.life_start,
        l.created_at
    FROM latest AS l
    LEFT JOIN LATERAL (
        SELECT h.price, h.as_of
        FROM pgportfolio.market_price_history AS h
        WHERE h.symbol = l.symbol AND h.as_of <= p_marks_at
        ORDER BY h.as_of DESC, h.mark_id DESC
        LIMIT 1
    ) AS m ON TRUE
    WHERE l.position_quantity <> 0
    ORDER BY l.symbol;
$$;

-- The portfolio after version p_version, valued at p_marks_at: portfolio_summary's columns.
CREATE FUNCTION pgportfolio._portfolio_at(p_portfolio_id bigint, p_version bigint, p_marks_at timestamptz)
RETURNS TABLE (
    portfolio_id bigint,
    name text,
    currency text,
    cash_balance numeric,
    market_value numeric,
    unrealized_pnl numeric,
    realized_pnl numeric,
    equity numeric,
    open_positions bigint,
    version bigint,
    updated_at timestamptz,
    marks_at timestamptz
)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT
        pf.portfolio_id,
        pf.name,
        pf.currency,
        ev.cash_balance,
        coalesce(pos.market_value, 0),
        coalesce(pos.unrealized_pnl, 0),
        (
            SELECT sum(e.realized_pnl) FROM pgportfolio.events AS e
            WHERE e.portfolio_id = p_portfolio_id AND e.portfolio_version <= p_version
        ),
        ev.cash_balance + coalesce(pos.market_value, 0),
        coalesce(pos.open_positions, 0),
        ev.portfolio_version,
        ev.created_at,
        p_marks_at
    FROM pgportfolio.portfolios AS pf
    INNER JOIN pgportfolio.events AS ev
        ON pf.portfolio_id = ev.portfolio_id AND ev.portfolio_version = p_version
    CROSS JOIN (
        SELECT sum(p.market_value) AS market_value, sum(p.unrealized_pnl) AS unrealized_pnl, count(*) AS open_positions
        FROM pgportfolio._positions_at(p_portfolio_id, p_version, p_marks_at) AS p
    ) AS pos
    WHERE pf.portfolio_id = p_portfolio_id;
$$;

-- The arguments' rules (22023), and PF004 for an unknown portfolio. p_at may lie at most a
-- minute ahead of the server's clock (the client's clock may run ahead a little), like a
-- mark's as_of; an answer for a later time could still change.
CREATE FUNCTION pgportfolio._check_history_arguments(p_portfolio_id bigint, p_at_argument text, p_at timestamptz)
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF p_portfolio_id IS NULL THEN
        RAISE EXCEPTION 'p_portfolio_id must not be null' USING ERRCODE = '22023';
    END IF;
    IF p_at IS NULL OR NOT isfinite(p_at) THEN
        RAISE EXCEPTION '% must be a finite time', p_at_argument
            USING ERRCODE = '22023', DETAIL = format('Got %s.', coalesce(p_at::text, 'NULL'));
    END IF;
    IF p_at > clock_timestamp() + INTERVAL '1 minute' THEN
        RAISE EXCEPTION '% is in the future', p_at_argument
            USING ERRCODE = '22023',
            DETAIL = format('Got %s; the server''s clock reads %s.', p_at, clock_timestamp()),
            HINT = 'History is known up to the present (one minute of clock skew is allowed).';
    END IF;
    IF NOT EXISTS (SELECT FROM pgportfolio.portfolios AS p WHERE p.portfolio_id = p_portfolio_id) THEN
        RAISE EXCEPTION 'portfolio % not found', p_portfolio_id
            USING ERRCODE = 'PF004', HINT = 'Check the portfolio id; create_portfolio returns it.';
    END IF;
END;
$$;

-- The version p_version of a portfolio must exist (22023 otherwise); returns the ledger
-- time of that version, the default time of its marks.
CREATE FUNCTION pgportfolio._check_version_argument(p_portfolio_id bigint, p_version bigint)
RETURNS timestamptz
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_created_at timestamptz;
    v_current bigint;
BEGIN
    IF p_portfolio_id IS NULL THEN
        RAISE EXCEPTION 'p_portfolio_id must not be null' USING ERRCODE = '22023';
    END IF;
    SELECT p.version INTO v_current FROM pgportfolio.portfolios AS p WHERE p.portfolio_id = p_portfolio_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'portfolio % not found', p_portfolio_id
            USING ERRCODE = 'PF004', HINT = 'Check the portfolio id; create_portfolio returns it.';
    END IF;
    SELECT e.created_at INTO v_created_at
    FROM pgportfolio.events AS e
    WHERE e.portfolio_id = p_portfolio_id AND e.portfolio_version = p_version;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'portfolio % has no version %', p_portfolio_id, coalesce(p_version::text, 'NULL')
            USING ERRCODE = '22023', DETAIL = format('Its versions are 1 to %s.', v_current);
    END IF;
    RETURN v_created_at;
END;
$$;

-- A portfolio as of ledger time p_at: cash, positions valued at the marks current at p_at,
-- realized and unrealized P&L, equity, and the version that state is. PF004 if the
-- portfolio did not exist yet at p_at (DETAIL gives its creation time).
CREATE FUNCTION pgportfolio.portfolio_as_of(p_portfolio_id bigint, p_at timestamptz)
RETURNS TABLE (
    portfolio_id bigint,
    name text,
    currency text,
    cash_balance numeric,
    market_value numeric,
    unrealized_pnl numeric,
    realized_pnl numeric,
    equity numeric,
    open_positions bigint,
    version bigint,
    updated_at timestamptz,
    marks_at timestamptz
)
LANGUAGE plpgsql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
-- No JIT and no parallel workers: see the top of 210_reads.sql.
SET jit = off
SET max_parallel_workers_per_gather = 0
AS $$
DECLARE
    v_version bigint;
BEGIN
    PERFORM pgportfolio._check_history_arguments(p_portfolio_id, 'p_at', p_at);
    v_version := pgportfolio._version_at(p_portfolio_id, p_at);
    IF v_version = 0 THEN
        RAISE EXCEPTION 'portfolio % did not exist at %', p_portfolio_id, p_at
            USING ERRCODE = 'PF004',
            DETAIL = format('It was created at %s.', (
                SELECT e.created_at FROM pgportfolio.events AS e
                WHERE e.portfolio_id = p_portfolio_id AND e.portfolio_version = 1
            ));
    END IF;
    RETURN QUERY SELECT * FROM pgportfolio._portfolio_at(p_portfolio_id, v_version, p_at);
END;
$$;

COMMENT ON FUNCTION pgportfolio.portfolio_as_of(bigint, timestamptz) IS
'A portfolio as of ledger time p_at, rebuilt from the event log and valued at the marks current then.';

-- The open positions of a portfolio as of ledger time p_at; none before it existed.
CREATE FUNCTION pgportfolio.positions_as_of(p_portfolio_id bigint, p_at timestamptz)
RETURNS TABLE (
    portfolio_id bigint,
    symbol text,
    quantity numeric,
    avg_price numeric,
    cost_basis numeric,
    mark_price numeric,
    mark_as_of timestamptz,
    multiplier numeric,
    market_value numeric,
    unrealized_pnl numeric,
    realized_pnl numeric,
    version bigint,
    opened_at timestamptz,
    updated_at timestamptz
)
LANGUAGE plpgsql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
-- No JIT and no parallel workers: see the top of 210_reads.sql.
SET jit = off
SET max_parallel_workers_per_gather = 0
AS $$
BEGIN
    PERFORM pgportfolio._check_history_arguments(p_portfolio_id, 'p_at', p_at);
    RETURN QUERY
    SELECT p_portfolio_id, p.*
    FROM pgportfolio._positions_at(p_portfolio_id, pgportfolio._version_at(p_portfolio_id, p_at), p_at) AS p;
END;
$$;

COMMENT ON FUNCTION pgportfolio.positions_as_of(bigint, timestamptz) IS
'Open positions of a portfolio as of ledger time p_at, valued at the marks current then.';

-- A portfolio right after version p_version, valued at the marks current at p_marks_at
-- (default: the ledger time of that version). 22023 for a version the portfolio never had.
CREATE FUNCTION pgportfolio.portfolio_at_version(
    p_portfolio_id bigint,
    p_version bigint,
    p_marks_at timestamptz DEFAULT NULL
)
RETURNS TABLE (
    portfolio_id bigint,
    name text,
    currency text,
    cash_balance numeric,
    market_value numeric,
    unrealized_pnl numeric,
    realized_pnl numeric,
    equity numeric,
    open_positions bigint,
    version bigint,
    updated_at timestamptz,
    marks_at timestamptz
)
LANGUAGE plpgsql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
-- No JIT and no parallel workers: see the top of 210_reads.sql.
SET jit = off
SET max_parallel_workers_per_gather = 0
AS $$
DECLARE
    v_marks_at timestamptz := coalesce(p_marks_at, pgportfolio._check_version_argument(p_portfolio_id, p_version));
BEGIN
    PERFORM pgportfolio._check_history_arguments(p_portfolio_id, 'p_marks_at', v_marks_at);
    PERFORM pgportfolio._check_version_argument(p_portfolio_id, p_version);
    RETURN QUERY SELECT * FROM pgportfolio._portfolio_at(p_portfolio_id, p_version, v_marks_at);
END;
$$;

COMMENT ON FUNCTION pgportfolio.portfolio_at_version(bigint, bigint, timestamptz) IS
'A portfolio right after version p_version, valued at the marks of p_marks_at (default: that version''s time).';

-- The open positions right after version p_version, valued at p_marks_at (default: the
-- ledger time of that version).
CREATE FUNCTION pgportfolio.positions_at_version(
    p_portfolio_id bigint,
    p_version bigint,
    p_marks_at timestamptz DEFAULT NULL
)
RETURNS TABLE (
    portfolio_id bigint,
    symbol text,
    quantity numeric,
    avg_price numeric,
    cost_basis numeric,
    mark_price numeric,
    mark_as_of timestamptz,
    multiplier numeric,
    market_value numeric,
    unrealized_pnl numeric,
    realized_pnl numeric,
    version bigint,
    opened_at timestamptz,
    updated_at timestamptz
)
LANGUAGE plpgsql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
-- No JIT and no parallel workers: see the top of 210_reads.sql.
SET jit = off
SET max_parallel_workers_per_gather = 0
AS $$
DECLARE
    v_marks_at timestamptz := coalesce(p_marks_at, pgportfolio._check_version_argument(p_portfolio_id, p_version));
BEGIN
    PERFORM pgportfolio._check_history_arguments(p_portfolio_id, 'p_marks_at', v_marks_at);
    PERFORM pgportfolio._check_version_argument(p_portfolio_id, p_version);
    RETURN QUERY
    SELECT p_portfolio_id, p.* FROM pgportfolio._positions_at(p_portfolio_id, p_version, v_marks_at) AS p;
END;
$$;

COMMENT ON FUNCTION pgportfolio.positions_at_version(bigint, bigint, timestamptz) IS
'Open positions right after version p_version, valued at the marks of p_marks_at (default: that version''s time).';

-- Granted here rather than in 900_privileges.sql's lists, beside their definitions: reads
-- for traders and analysts.
REVOKE ALL ON FUNCTION
pgportfolio._version_at(bigint, timestamptz),
pgportfolio._positions_at(bigint, bigint, timestamptz),
pgportfolio._portfolio_at(bigint, bigint, timestamptz),
pgportfolio._check_history_arguments(bigint, text, timestamptz),
pgportfolio._check_version_argument(bigint, bigint),
pgportfolio.portfolio_as_of(bigint, timestamptz),
pgportfolio.positions_as_of(bigint, timestamptz),
pgportfolio.portfolio_at_version(bigint, bigint, timestamptz),
pgportfolio.positions_at_version(bigint, bigint, timestamptz)
FROM PUBLIC;
GRANT EXECUTE ON FUNCTION
pgportfolio.portfolio_as_of(bigint, timestamptz),
pgportfolio.positions_as_of(bigint, timestamptz),
pgportfolio.portfolio_at_version(bigint, bigint, timestamptz),
pgportfolio.positions_at_version(bigint, bigint, timestamptz)
TO pgportfolio_trader, pgportfolio_analyst;

-- ===== sql/245_end_of_day.sql =====
-- End of day: close_day(p_day) writes one immutable snapshot per portfolio of the state as
-- of the end of the day (240_history.sql), valued at that day's closing marks; daily_pnl
-- reads them as day-over-day changes.
--
-- Days are UTC days: the close of p_day is the state as of the last microsecond of p_day
-- in UTC, whatever the session's TimeZone, so that one day means the same instant for
-- every caller and every server setting. A desk that closes at another hour (New York
-- 17:00) is not served by this function's notion of a day; see docs/sql-api.md.
--
-- Snapshots store cumulative values (cash, realized P&L, net deposits) at the version
-- they cover, so a day's change is the difference of two rows, and the changes of all the
-- days add up to the last close whatever happened in between. An event whose transaction
-- began before midnight but committed after close_day ran is counted in the next day's
-- change (see _version_at for which events a time covers): schedule close_day a few
-- minutes after midnight UTC.

CREATE TABLE pgportfolio.daily_closes (
    portfolio_id bigint NOT NULL REFERENCES pgportfolio.portfolios (portfolio_id),
    day date NOT NULL,
    portfolio_version bigint NOT NULL,
    cash_balance numeric NOT NULL,
    market_value numeric NOT NULL,
    cost_basis numeric NOT NULL,
    unrealized_pnl numeric NOT NULL,
    realized_pnl numeric NOT NULL,
    net_deposits numeric NOT NULL,
    equity numeric NOT NULL,
    open_positions bigint NOT NULL,
    closed_at timestamptz NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    PRIMARY KEY (portfolio_id, day),
    CONSTRAINT daily_closes_day_finite CHECK (pg_catalog.isfinite(day)),
    CONSTRAINT daily_closes_version_positive CHECK (portfolio_version >= 1),
    -- The identities of the snapshot itself (docs/sql-api.md, "close_day").
    CONSTRAINT daily_closes_equity CHECK (equity = cash_balance + market_value),
    CONSTRAINT daily_closes_unrealized CHECK (unrealized_pnl = market_value - cost_basis),
    CONSTRAINT daily_closes_equity_split CHECK (equity = net_deposits + realized_pnl + unrealized_pnl)
);

COMMENT ON TABLE pgportfolio.daily_closes IS
'Immutable end-of-day snapshot per portfolio (close_day). Read daily_pnl instead.';

-- One day's closes of every portfolio (daily_pnl WHERE day = ..., a desk's daily report);
-- the primary key leads with the portfolio.
CREATE INDEX daily_closes_day ON pgportfolio.daily_closes (day);

-- The positions of each snapshot, with the mark each was valued at.
CREATE TABLE pgportfolio.daily_close_positions (
    portfolio_id bigint NOT NULL,
    day date NOT NULL,
    symbol text NOT NULL,
    quantity numeric NOT NULL,
    cost_basis numeric NOT NULL,
    mark_price numeric NOT NULL,
    mark_as_of timestamptz NOT NULL,
    multiplier numeric NOT NULL,
    market_value numeric NOT NULL,
    unrealized_pnl numeric NOT NULL,
    realized_pnl numeric NOT NULL,
    PRIMARY KEY (portfolio_id, day, symbol),
    FOREIGN KEY (portfolio_id, day) REFERENCES pgportfolio.daily_closes (portfolio_id, day),
    CONSTRAINT daily_close_positions_value CHECK (market_value = quantity * mark_price * multiplier),
    CONSTRAINT daily_close_positions_unrealized CHECK (unrealized_pnl = market_value - cost_basis)
);

COMMENT ON TABLE pgportfolio.daily_close_positions IS
'The open positions of each end-of-day snapshot, valued at the closing mark. Read daily_positions instead.';

-- A close is evidence, like the event log: never changed, never removed.
CREATE FUNCTION pgportfolio.daily_closes_refuse_change() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RAISE EXCEPTION 'pgportfolio.% is append-only', TG_TABLE_NAME
        USING ERRCODE = '42501', HINT = 'A day''s close is never updated or deleted.';
END;
$$;

CREATE TRIGGER daily_closes_append_only
BEFORE UPDATE OR DELETE ON pgportfolio.daily_closes
FOR EACH ROW EXECUTE FUNCTION pgportfolio.daily_closes_refuse_change();

CREATE TRIGGER daily_closes_no_truncate
BEFORE TRUNCATE ON pgportfolio.daily_closes
FOR EACH STATEMENT EXECUTE FUNCTION pgportfolio.daily_closes_refuse_change();

CREATE TRIGGER daily_close_positions_append_only
BEFORE UPDATE OR DELETE ON pgportfolio.daily_close_positions
FOR EACH ROW EXECUTE FUNCTION pgportfolio.daily_closes_refuse_change();

CREATE TRIGGER daily_close_positions_no_truncate
BEFORE TRUNCATE ON pgportfolio.daily_close_positions
FOR EACH STATEMENT EXECUTE FUNCTION pgportfolio.daily_closes_refuse_change();

-- ALWAYS: as for the events (034_events.sql), session_replication_role cannot skip them.
ALTER TABLE pgportfolio.daily_closes ENABLE ALWAYS TRIGGER daily_closes_append_only;
ALTER TABLE pgportfolio.daily_closes ENABLE ALWAYS TRIGGER daily_closes_no_truncate;
ALTER TABLE pgportfolio.daily_close_positions ENABLE ALWAYS TRIGGER daily_close_positions_append_only;
ALTER TABLE pgportfolio.daily_close_positions ENABLE ALWAYS TRIGGER daily_close_positions_no_truncate;

-- Close p_day for one portfolio, or for every portfolio that existed at the day's end.
-- Idempotent: a portfolio already closed for the day keeps its row and gets it back; only
-- the missing ones are written. All or nothing: a held symbol with no mark at the day's
-- end refuses the whole call (PF008), as does a day that has not ended (22023).
-- Owner only (an operator job; no EXECUTE grant).
CREATE FUNCTION pgportfolio.close_day(p_day date, p_portfolio_id bigint DEFAULT NULL)
RETURNS SETOF pgportfolio.daily_closes
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_close_at timestamptz;
    v_missing text;
    v_ids bigint[];
    v_versions bigint[];
BEGIN
    IF p_day IS NULL OR NOT isfinite(p_day) THEN
        RAISE EXCEPTION 'p_day must be a finite date'
            USING ERRCODE = '22023', DETAIL = format('Got %s.', coalesce(p_day::text, 'NULL'));
    END IF;
    -- The last microsecond of the UTC day (timestamptz has microsecond resolution).
    v_close_at := ((p_day + 1)::timestamp AT TIME ZONE 'UTC') - INTERVAL '1 microsecond';
    IF v_close_at >= now() THEN
        RAISE EXCEPTION 'day % has not ended', p_day
            USING ERRCODE = '22023',
            DETAIL = format('It ends at %s UTC; the transaction''s time is %s.', v_close_at AT TIME ZONE 'UTC', now()),
            HINT = 'Days are UTC days; close a day once it is over.';
    END IF;
    IF p_portfolio_id IS NOT NULL
       AND NOT EXISTS (SELECT FROM pgportfolio.portfolios AS p WHERE p.portfolio_id = p_portfolio_id) THEN
        RAISE EXCEPTION 'portfolio % not found', p_portfolio_id
            USING ERRCODE = 'PF004', HINT = 'Check the portfolio id; create_portfolio returns it.';
    END IF;

    -- The portfolios to close: those that existed at the day's end, not closed yet, with
    -- the version each was at then.
    SELECT array_agg(v.portfolio_id ORDER BY v.portfolio_id), array_agg(v.version ORDER BY v.portfolio_id)
    INTO v_ids, v_versions
    FROM (
        SELECT p.portfolio_id, pgportfolio._version_at(p.portfolio_id, v_close_at) AS version
        FROM pgportfolio.portfolios AS p
        WHERE
            (p_portfolio_id IS NULL OR p.portfolio_id = p_portfolio_id)
            AND NOT EXISTS (
                SELECT FROM pgportfolio.daily_closes AS c WHERE c.portfolio_id = p.portfolio_id AND c.day = p_day
            )
    ) AS v
    WHERE v.version > 0;

    SELECT string_agg(DISTINCT p.symbol, ', ' ORDER BY p.symbol) INTO v_missing
    FROM unnest(v_ids, v_versions) AS v (portfolio_id, version)
    CROSS JOIN LATERAL pgportfolio._positions_at(v.portfolio_id, v.version, v_close_at) AS p
    WHERE p.mark_as_of IS NULL;
    IF v_missing IS NOT NULL THEN
        RAISE EXCEPTION 'no closing mark for % on %', v_missing, p_day
            USING ERRCODE = 'PF008',
            DETAIL = format('No mark with as_of at or before %s UTC for a held symbol.', v_close_at AT TIME ZONE 'UTC'),
            HINT = 'Record a mark for the day (update_market_price with p_as_of), then close it again.';
    END IF;

    -- ON CONFLICT: a concurrent close_day of the same day wrote the row first; its row
    -- stands, and so do its positions.
    WITH versions AS (
        SELECT v.portfolio_id, v.version FROM unnest(v_ids, v_versions) AS v (portfolio_id, version)
    ),

    positions AS MATERIALIZED (
        SELECT v.portfolio_id, p.*
        FROM versions AS v
        CROSS JOIN LATERAL pgportfolio._positions_at(v.portfolio_id, v.version, v_close_at) AS p
    ),

    written AS (
        INSERT INTO pgportfolio.daily_closes AS c (
            portfolio_id, day, portfolio_version, cash_balance, market_value, cost_basis, unrealized_pnl,
            realized_pnl, net_deposits, equity, open_positions, closed_at
        )
        SELECT
            v.portfolio_id, p_day, v.version, ev.cash_balance, coalesce(pos.market_value, 0),
            coalesce(pos.cost_basis, 0), coalesce(pos.unrealized_pnl, 0), flows.realized, flows.net_deposits,
            ev.cash_balance + coalesce(pos.market_value, 0), coalesce(pos.open_positions, 0), v_close_at
        FROM versions AS v
        INNER JOIN pgportfolio.events AS ev ON v.portfolio_id = ev.portfolio_id AND v.version = ev.portfolio_version
        CROSS JOIN LATERAL (
            SELECT
                sum(e.realized_pnl) AS realized,
                coalesce(sum(e.amount) FILTER (WHERE e.kind IN ('create', 'deposit')), 0)
                - coalesce(sum(e.amount) FILTER (WHERE e.kind = 'withdraw'), 0) AS net_deposits
            FROM pgportfolio.events AS e
            WHERE e.portfolio_id = v.portfolio_id AND e.portfolio_version <= v.version
        ) AS flows
        CROSS JOIN LATERAL (
            SELECT
                sum(x.market_value) AS market_value, sum(x.cost_basis) AS cost_basis,
                sum(x.unrealized_pnl) AS unrealized_pnl, count(*) AS open_positions
            FROM positions AS x WHERE x.portfolio_id = v.portfolio_id
        ) AS pos
        ORDER BY v.portfolio_id
        ON CONFLICT (portfolio_id, day) DO NOTHING
        RETURNING c.portfolio_id
    )

    INSERT INTO pgportfolio.daily_close_positions (
        portfolio_id, day, symbol, quantity, cost_basis, mark_price, mark_as_of, multiplier, market_value,
        unrealized_pnl, realized_pnl
    )
    SELECT
        x.portfolio_id, p_day, x.symbol, x.quantity, x.cost_basis, x.mark_price, x.mark_as_of, x.multiplier,
        x.market_value, x.unrealized_pnl, x.realized_pnl
    FROM positions AS x
    INNER JOIN written AS w ON x.portfolio_id = w.portfolio_id;

    RETURN QUERY
    SELECT c.*
    FROM pgportfolio.daily_closes AS c
    WHERE c.day = p_day AND (p_portfolio_id IS NULL OR c.portfolio_id = p_portfolio_id)
    ORDER BY c.portfolio_id;
END;
$$;

COMMENT ON FUNCTION pgportfolio.close_day(date, bigint) IS
'Write the immutable end-of-day snapshot of p_day (UTC) per portfolio; idempotent; owner only.';

-- Day-over-day: each close beside the portfolio's previous close (NULL changes compare
-- with nothing: the first close's changes are from an empty portfolio). equity_change =
-- realized_change + unrealized_change + cash_moves exactly, cash_moves being deposits less
-- withdrawals (initial cash included) between the two closes.
-- The previous close is found by one backward step in the primary key per close, not by a
-- window over each portfolio's closes: a window must read every close before a filter on
-- the day can apply, so one day's report read every close ever recorded (366,000 for a
-- year of 1,000 portfolios, 672 ms); this reads the day's closes and one more each.
CREATE VIEW pgportfolio.daily_pnl AS
SELECT
    c.portfolio_id,
    c.day,
    b.day AS previous_day,
    c.portfolio_version,
    c.cash_balance,
    c.market_value,
    c.realized_pnl,
    c.unrealized_pnl,
    c.net_deposits,
    c.equity,
    c.open_positions,
    c.equity - coalesce(b.equity, 0) AS equity_change,
    c.realized_pnl - coalesce(b.realized_pnl, 0) AS realized_change,
    c.unrealized_pnl - coalesce(b.unrealized_pnl, 0) AS unrealized_change,
    c.net_deposits - coalesce(b.net_deposits, 0) AS cash_moves,
    c.closed_at
FROM pgportfolio.daily_closes AS c
LEFT JOIN LATERAL (
    SELECT
        l.day,
        l.equity,
        l.realized_pnl,
        l.unrealized_pnl,
        l.net_deposits
    FROM pgportfolio.daily_closes AS l
    WHERE l.portfolio_id = c.portfolio_id AND l.day < c.day
    ORDER BY l.day DESC
    LIMIT 1
) AS b ON TRUE;

COMMENT ON VIEW pgportfolio.daily_pnl IS
'Per portfolio and closed day: the close, and its change since the previous close (realized, unrealized, cash moves).';

-- The positions of each close, for traders and analysts (the table is the owner's).
CREATE VIEW pgportfolio.daily_positions AS
SELECT
    x.portfolio_id,
    x.day,
    x.symbol,
    x.quantity,
    x.cost_basis,
    x.mark_price,
    x.mark_as_of,
    x.multiplier,
    x.market_value,
    x.unrealized_pnl,
    x.realized_pnl
FROM pgportfolio.daily_close_positions AS x;

COMMENT ON VIEW pgportfolio.daily_positions IS
'The open positions of each end-of-day close, valued at the closing mark.';

REVOKE ALL ON FUNCTION pgportfolio.close_day(date, bigint) FROM PUBLIC;
GRANT SELECT ON pgportfolio.daily_pnl, pgportfolio.daily_positions TO pgportfolio_trader, pgportfolio_analyst;

-- ===== sql/900_privileges.sql =====
-- Privileges. PUBLIC gets nothing; traders call functions and read views; analysts
-- read views and run verify_portfolio. Nobody but the owner writes tables.
REVOKE ALL ON SCHEMA pgportfolio FROM PUBLIC;
REVOKE ALL ON ALL TABLES IN SCHEMA pgportfolio FROM PUBLIC;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA pgportfolio FROM PUBLIC;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA pgportfolio FROM PUBLIC;
REVOKE ALL ON TYPE pgportfolio.mutation_result FROM PUBLIC;
REVOKE ALL ON TYPE pgportfolio.fill_result FROM PUBLIC;

-- Functions and types created later by the owner start closed too. (Schema-level
-- default privileges can only add to the global ones, so this must be global.)
ALTER DEFAULT PRIVILEGES FOR ROLE pgportfolio_owner REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC;
ALTER DEFAULT PRIVILEGES FOR ROLE pgportfolio_owner REVOKE USAGE ON TYPES FROM PUBLIC;

GRANT USAGE ON SCHEMA pgportfolio TO pgportfolio_trader, pgportfolio_analyst;
GRANT USAGE ON TYPE pgportfolio.mutation_result TO pgportfolio_trader, pgportfolio_analyst;
GRANT USAGE ON TYPE pgportfolio.fill_result TO pgportfolio_trader;

GRANT SELECT ON
pgportfolio.portfolio_summary,
pgportfolio.position_pnl,
pgportfolio.event_log,
pgportfolio.lock_waits,
pgportfolio.instrument_list
TO pgportfolio_trader, pgportfolio_analyst;

GRANT EXECUTE ON FUNCTION
pgportfolio.create_portfolio(text, numeric, text),
pgportfolio.deposit_cash(bigint, numeric, text, bigint),
pgportfolio.withdraw_cash(bigint, numeric, text, bigint),
pgportfolio.charge_fee(bigint, numeric, text, bigint),
pgportfolio.apply_fill(bigint, text, numeric, numeric, numeric, text, bigint, timestamptz, text, jsonb),
pgportfolio.apply_fills(jsonb),
pgportfolio.apply_fills_arrays(
    bigint[], text[], numeric[], numeric[], numeric[], text[], bigint[], text[], numeric[], timestamptz[], text[],
    jsonb[]
),
pgportfolio.open_position(bigint, text, numeric, numeric, numeric, text, bigint, timestamptz, text, jsonb),
pgportfolio.add_to_position(bigint, text, numeric, numeric, numeric, text, bigint, timestamptz, text, jsonb),
pgportfolio.reduce_position(bigint, text, numeric, numeric, numeric, text, bigint, timestamptz, text, jsonb),
pgportfolio.close_position(bigint, text, numeric, numeric, text, bigint, timestamptz, text, jsonb),
pgportfolio.update_market_price(text, numeric, timestamptz, text),
pgportfolio.update_market_prices(jsonb),
pgportfolio.grant_portfolio(bigint, name),
pgportfolio.revoke_portfolio(bigint, name)
TO pgportfolio_trader;

GRANT EXECUTE ON FUNCTION
pgportfolio.find_request(bigint, text),
pgportfolio.acquire_advisory_lock(bigint, integer)
TO pgportfolio_trader;

GRANT EXECUTE ON FUNCTION
pgportfolio.verify_portfolio(bigint),
pgportfolio.get_portfolio(bigint),
pgportfolio.portfolio_snapshot(bigint),
pgportfolio.portfolio_valuation(bigint),
pgportfolio.events_since(bigint, bigint),
pgportfolio.portfolio_version(bigint),
pgportfolio.events_after(bigint[], bigint[], integer),
pgportfolio.recent_portfolios(integer),
pgportfolio.server_wait_events(),
pgportfolio.current_lock_waits(),
pgportfolio.price_at(text, timestamptz)
TO pgportfolio_trader, pgportfolio_analyst;

-- upsert_instrument and prune_price_history are the owner's alone: no grant.

