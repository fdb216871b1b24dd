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

-- ===== sql/030_portfolios.sql =====
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

-- ===== sql/032_positions.sql =====
-- Open positions only: a position that goes flat is deleted (its history is in events).
-- quantity is signed (short < 0). cost_basis is signed like quantity and exact:
-- the sum of quantity * price of the fills that built it, less what reductions removed.
-- realized_pnl accumulates on this row from when the position was opened from flat.
CREATE TABLE pgportfolio.positions (
    portfolio_id bigint NOT NULL REFERENCES pgportfolio.portfolios (portfolio_id),
    symbol text NOT NULL,
    quantity numeric NOT NULL,
    cost_basis numeric NOT NULL,
    realized_pnl numeric NOT NULL DEFAULT 0,
    version bigint NOT NULL DEFAULT 1,
    opened_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    updated_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    PRIMARY KEY (portfolio_id, symbol),
    CONSTRAINT positions_symbol_valid CHECK (symbol ~ '^[A-Z0-9._/:-]{1,32}$'),
    CONSTRAINT positions_quantity_valid CHECK (
        quantity NOT IN ('NaN', 'Infinity', '-Infinity')
        AND quantity <> 0
        AND pg_catalog.abs(quantity) < 1e15
        AND pg_catalog.scale(quantity) <= 8
    ),
    CONSTRAINT positions_cost_basis_valid CHECK (
        cost_basis NOT IN ('NaN', 'Infinity', '-Infinity')
        AND pg_catalog.sign(cost_basis) * pg_catalog.sign(quantity) >= 0
    ),
    CONSTRAINT positions_realized_pnl_finite CHECK (realized_pnl NOT IN ('NaN', 'Infinity', '-Infinity')),
    CONSTRAINT positions_version_positive CHECK (version >= 1)
);

COMMENT ON TABLE pgportfolio.positions IS
'Open positions. Written only by pgportfolio functions; read position_pnl instead.';

-- ===== sql/033_market_prices.sql =====
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

-- ===== sql/034_events.sql =====
-- Append-only log of every successful mutation. Each row records the portfolio
-- version it produced and the state right after it, so that verify_portfolio can
-- rebuild the portfolio and an idempotent replay can return the original result.
-- chain_hash links each event to the one before it in its portfolio (see
-- events_chain below), so that an edit made behind the triggers' back shows.
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
    chain_hash bytea NOT NULL,
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
COMMENT ON COLUMN pgportfolio.events.chain_hash IS
'sha256(previous event''s chain_hash || canonical text of this event); see events_chain.';

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
-- hash, as a JSON array in table order, with created_at as seconds since the epoch (exact
-- to the microsecond) so that it depends on no session setting (TimeZone, DateStyle);
-- numbers keep their scale. verify_portfolio writes the same expression: written out in
-- both rather than in a shared SQL function, whose call cost per event was measured at
-- several microseconds (a shared function could only be inlined without a pinned
-- search_path). If the two ever differed, every healthy portfolio would fail
-- event_hash_chain, which the tests verify. Computed here, for every insert path at once,
-- and whatever hash the insert supplied is replaced. Rows inserted earlier by the same
-- statement (apply_fills writes a batch in one INSERT, in version order) are visible.
-- plan_cache_mode = force_custom_plan: the look-up of the previous event is planned for
-- the values at hand each time. A cached generic plan of it, made while the log was small,
-- cost about 430 µs per event under one hot portfolio (100 callers, batches of 50: 1,850
-- fills/s against 8,800 without the chain; custom plans: 7,400).
CREATE FUNCTION pgportfolio.events_chain() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
SET plan_cache_mode = force_custom_plan
AS $$
DECLARE
    v_previous bytea := ''::bytea;
BEGIN
    IF NEW.portfolio_version > 1 THEN
        SELECT e.chain_hash INTO v_previous
        FROM pgportfolio.events AS e
        WHERE e.portfolio_id = NEW.portfolio_id AND e.portfolio_version = NEW.portfolio_version - 1;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'event % of portfolio % has no previous event', NEW.portfolio_version, NEW.portfolio_id
                USING ERRCODE = '23514', HINT = 'Events are inserted in version order.';
        END IF;
    END IF;
    NEW.chain_hash := sha256(v_previous || convert_to(jsonb_build_array(
        NEW.portfolio_id, NEW.portfolio_version, NEW.kind, NEW.operation, NEW.symbol, NEW.quantity, NEW.price,
        NEW.fee, NEW.amount, NEW.cash_delta, NEW.realized_pnl, NEW.cash_balance, NEW.position_quantity,
        NEW.position_cost_basis, NEW.request_id, NEW.request_args, NEW.acting_role, extract(EPOCH FROM NEW.created_at)
    )::text, 'UTF8'));
    RETURN NEW;
END;
$$;

CREATE TRIGGER events_chain
BEFORE INSERT ON pgportfolio.events
FOR EACH ROW EXECUTE FUNCTION pgportfolio.events_chain();

-- ALWAYS: the triggers fire under session_replication_role = replica too, which a
-- superuser (or a role granted that setting) could otherwise use to skip them. The
-- table's owner can still ALTER TABLE ... DISABLE TRIGGER; chain_hash makes what it then
-- changes visible to verify_portfolio (see docs/sql-api.md, "Event log integrity").
ALTER TABLE pgportfolio.events ENABLE ALWAYS TRIGGER events_append_only;
ALTER TABLE pgportfolio.events ENABLE ALWAYS TRIGGER events_no_truncate;
ALTER TABLE pgportfolio.events ENABLE ALWAYS TRIGGER events_chain;

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
-- the list with Python's unicodedata, code point by code point.
CREATE FUNCTION pgportfolio._refused_characters()
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT '[[:cntrl:]\u00AD\u0600-\u0605\u061C\u06DD\u070F\u0890-\u0891\u08E2\u180E\u200B-\u200F'
        || '\u202A-\u202E\u2060-\u2064\u2066-\u206F\uFEFF\uFFF9-\uFFFB\U000110BD\U000110CD'
        || '\U00013430-\U0001343F\U0001BCA0-\U0001BCA3\U0001D173-\U0001D17A\U000E0001'
        || '\U000E0020-\U000E007F]';
$$;

-- Upper-case ASCII letters, digits and . _ - / : , 1 to 32 characters. Lower case is
-- refused rather than folded, so that one instrument never has two spellings; being
-- ASCII, a symbol can hold no control or format character.
CREATE FUNCTION pgportfolio._check_symbol(p_symbol text)
RETURNS void
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF p_symbol IS NULL THEN
        RAISE EXCEPTION 'p_symbol must not be null' USING ERRCODE = '22023';
    END IF;
    IF p_symbol !~ '^[A-Z0-9._/:-]{1,32}$' THEN
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
        RAISE EXCEPTION 'p_expected_version must be at least 1'
            USING ERRCODE = '22023', DETAIL = format('Got %s.', p_expected_version);
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
-- through an argument.
CREATE FUNCTION pgportfolio._acting_role()
RETURNS name
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE
        WHEN pg_catalog.current_setting('role') = 'none' THEN pg_catalog.session_user()
        ELSE pg_catalog.current_setting('role')::name
    END;
$$;

-- Raises PF004 when the portfolio does not exist and 42501 when the role may not trade
-- it. Reads without locking, so that a refused caller never holds a portfolio's lock.
CREATE FUNCTION pgportfolio._authorize(p_portfolio_id bigint, p_actor name)
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_owner name;
BEGIN
    IF p_portfolio_id IS NULL THEN
        RAISE EXCEPTION 'p_portfolio_id must not be null' USING ERRCODE = '22023';
    END IF;
    SELECT owner_role INTO v_owner FROM pgportfolio.portfolios WHERE portfolio_id = p_portfolio_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'portfolio % not found', p_portfolio_id
            USING ERRCODE = 'PF004', HINT = 'Check the portfolio id; create_portfolio returns it.';
    END IF;
    -- Only roles that still exist are asked about: a dropped grantee must not break the
    -- portfolio for everyone else (pg_has_role raises for an unknown role name).
    IF v_owner = p_actor
       OR EXISTS (
           SELECT FROM pg_roles AS r
           WHERE r.rolname = v_owner AND pg_has_role(p_actor, r.oid, 'MEMBER')
       )
       OR EXISTS (
           SELECT FROM pgportfolio.portfolio_access AS a
           INNER JOIN pg_roles AS r ON a.grantee = r.rolname
           WHERE a.portfolio_id = p_portfolio_id AND pg_has_role(p_actor, r.oid, 'MEMBER')
       ) THEN
        RETURN;
    END IF;
    RAISE EXCEPTION 'role % may not trade portfolio %', p_actor, p_portfolio_id
        USING ERRCODE = '42501', HINT = 'The portfolio''s owner can call grant_portfolio.';
END;
$$;

-- Bound every lock wait: pgportfolio.lock_timeout if set (per session, role or
-- database), else 2s. Returns the caller's setting so it can be put back after locking.
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
BEGIN
    PERFORM pgportfolio._check_portfolio_attributes(p_name, p_currency);
    PERFORM pgportfolio._check_number('p_initial_cash', p_initial_cash, 'non_negative');
    p_initial_cash := trim_scale(p_initial_cash);

    INSERT INTO pgportfolio.portfolios (name, currency, owner_role, initial_cash, cash_balance)
    VALUES (p_name, p_currency, v_actor, p_initial_cash, p_initial_cash)
    RETURNING portfolio_id INTO v_portfolio_id;

    INSERT INTO pgportfolio.events (
        portfolio_id, portfolio_version, kind, operation, amount, cash_delta, cash_balance, acting_role
    )
    VALUES (v_portfolio_id, 1, 'create', 'create_portfolio', p_initial_cash, p_initial_cash, p_initial_cash, v_actor);

    RETURN v_portfolio_id;
END;
$$;

COMMENT ON FUNCTION pgportfolio.create_portfolio(text, numeric, text) IS
'Create a portfolio owned by the calling role. Returns its id.';

-- ===== sql/125_replay.sql =====
-- Idempotency: a request id already in the log returns the result it produced then,
-- marked duplicate, and changes nothing. The same id with other arguments is PF005.
-- Only the operation itself is compared, never p_expected_version: a retry after a
-- lost reply carries a version that has since moved on.
CREATE FUNCTION pgportfolio._replay(p_event pgportfolio.events, p_args jsonb)
RETURNS pgportfolio.mutation_result
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_result pgportfolio.mutation_result;
BEGIN
    IF p_event.request_args IS DISTINCT FROM p_args THEN
        RAISE EXCEPTION 'request id % was already used with different arguments', quote_literal(p_event.request_id)
            USING ERRCODE = 'PF005',
            DETAIL = format(
                'portfolio %s version %s: first %s, now %s',
                p_event.portfolio_id, p_event.portfolio_version, p_event.request_args, p_args
            ),
            HINT = 'Use a new request id for a new operation.';
    END IF;
    v_result := ROW(
        p_event.portfolio_id,
        p_event.portfolio_version,
        p_event.cash_balance,
        p_event.symbol,
        p_event.position_quantity,
        CASE WHEN p_event.position_quantity <> 0
            THEN round(p_event.position_cost_basis / p_event.position_quantity, 8)
        END,
        p_event.realized_pnl,
        true
    );
    RETURN v_result;
END;
$$;

-- ===== sql/130_cash.sql =====
-- Cash movements: deposits, withdrawals and standalone fees (custody, data, ...).
-- One worker does all three so that locking, idempotency and versioning are written once.
CREATE FUNCTION pgportfolio._execute_cash(
    p_operation text,
    p_portfolio_id bigint,
    p_amount numeric,
    p_request_id text,
    p_expected_version bigint
)
RETURNS pgportfolio.mutation_result
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_actor name := pgportfolio._acting_role();
    v_args jsonb;
    v_saved_lock_timeout text;
    v_portfolio pgportfolio.portfolios%ROWTYPE;
    v_event pgportfolio.events%ROWTYPE;
    v_kind text;
    v_cash_delta numeric;
    v_fee numeric := 0;
    v_result pgportfolio.mutation_result;
BEGIN
    PERFORM pgportfolio._check_number('p_amount', p_amount, 'positive');
    PERFORM pgportfolio._check_request(p_request_id, p_expected_version);
    PERFORM pgportfolio._authorize(p_portfolio_id, v_actor);
    p_amount := trim_scale(p_amount);  -- the shortest exact form; not rounding

    v_saved_lock_timeout := pgportfolio._bound_lock_wait();
    SELECT * INTO v_portfolio FROM pgportfolio.portfolios WHERE portfolio_id = p_portfolio_id FOR UPDATE;
    PERFORM set_config('lock_timeout', v_saved_lock_timeout, true);

    v_args := jsonb_build_object('operation', p_operation, 'amount', p_amount);
    IF p_request_id IS NOT NULL THEN
        SELECT * INTO v_event FROM pgportfolio.events
        WHERE portfolio_id = p_portfolio_id AND request_id = p_request_id;
        IF FOUND THEN
            RETURN pgportfolio._replay(v_event, v_args);
        END IF;
    END IF;

    IF p_expected_version IS NOT NULL AND p_expected_version <> v_portfolio.version THEN
        RAISE EXCEPTION 'version conflict on portfolio %', p_portfolio_id
            USING ERRCODE = 'PF001',
            DETAIL = format('expected version %s, found version %s', p_expected_version, v_portfolio.version),
            HINT = 'Reload the portfolio and retry with its current version.';
    END IF;

    CASE p_operation
        WHEN 'deposit_cash' THEN
            v_kind := 'deposit';
            v_cash_delta := p_amount;
        WHEN 'withdraw_cash' THEN
            v_kind := 'withdraw';
            v_cash_delta := -p_amount;
        WHEN 'charge_fee' THEN
            v_kind := 'fee';
            v_cash_delta := -p_amount;
            v_fee := p_amount;
    END CASE;

    IF v_portfolio.cash_balance + v_cash_delta < 0 THEN
        RAISE EXCEPTION 'insufficient cash in portfolio %', p_portfolio_id
            USING ERRCODE = 'PF002',
            DETAIL = format('needed %s, available %s', -v_cash_delta, v_portfolio.cash_balance);
    END IF;

    UPDATE pgportfolio.portfolios
    SET cash_balance = cash_balance + v_cash_delta,
        realized_pnl = realized_pnl - v_fee,
        version = version + 1,
        updated_at = now()
    WHERE portfolio_id = p_portfolio_id
    RETURNING * INTO v_portfolio;

    INSERT INTO pgportfolio.events (
        portfolio_id, portfolio_version, kind, operation, fee, amount, cash_delta, realized_pnl,
        cash_balance, request_id, request_args, acting_role
    )
    VALUES (
        p_portfolio_id, v_portfolio.version, v_kind, p_operation, v_fee, p_amount, v_cash_delta, -v_fee,
        v_portfolio.cash_balance, p_request_id, v_args, v_actor
    );

    v_result := ROW(
        p_portfolio_id, v_portfolio.version, v_portfolio.cash_balance, NULL, NULL, NULL, -v_fee, false
    );
    RETURN v_result;
END;
$$;

CREATE FUNCTION pgportfolio.deposit_cash(
    p_portfolio_id bigint,
    p_amount numeric,
    p_request_id text DEFAULT NULL,
    p_expected_version bigint DEFAULT NULL
)
RETURNS pgportfolio.mutation_result
LANGUAGE sql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT pgportfolio._execute_cash('deposit_cash', p_portfolio_id, p_amount, p_request_id, p_expected_version);
$$;

CREATE FUNCTION pgportfolio.withdraw_cash(
    p_portfolio_id bigint,
    p_amount numeric,
    p_request_id text DEFAULT NULL,
    p_expected_version bigint DEFAULT NULL
)
RETURNS pgportfolio.mutation_result
LANGUAGE sql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT pgportfolio._execute_cash('withdraw_cash', p_portfolio_id, p_amount, p_request_id, p_expected_version);
$$;

CREATE FUNCTION pgportfolio.charge_fee(
    p_portfolio_id bigint,
    p_amount numeric,
    p_request_id text DEFAULT NULL,
    p_expected_version bigint DEFAULT NULL
)
RETURNS pgportfolio.mutation_result
LANGUAGE sql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT pgportfolio._execute_cash('charge_fee', p_portfolio_id, p_amount, p_request_id, p_expected_version);
$$;

COMMENT ON FUNCTION pgportfolio.deposit_cash(bigint, numeric, text, bigint) IS 'Add cash to a portfolio.';
COMMENT ON FUNCTION pgportfolio.withdraw_cash(bigint, numeric, text, bigint) IS
'Take cash out of a portfolio; PF002 if it would go below zero.';
COMMENT ON FUNCTION pgportfolio.charge_fee(bigint, numeric, text, bigint) IS
'Charge a fee not tied to a fill (custody, data). Counts as realized P&L of -amount.';

-- ===== sql/140_fill.sql =====
-- Fills. One worker applies every kind of fill so that locking, idempotency, the
-- money arithmetic and the event log are written once; the public verbs are checked
-- special cases of it.
--
-- Money: a buy debits quantity * price plus fee, a sell credits quantity * price minus fee.
-- cost_basis is signed like the position. realized P&L = cash flow + change in cost basis - fee,
-- so for every portfolio, exactly:
--   cash = initial + deposits - withdrawals + sum(fill cash flows) - sum(fees)
--   sum(realized before fees) = sum(fill cash flows) + sum(open cost basis)
-- A partial reduction removes cost basis in proportion, rounded half away from zero to 16
-- places (the scale of quantity * price); the identities hold exactly because realized
-- P&L is defined from the stored change, not recomputed.
--
-- Lock order: portfolio row, then position row. Every mutation takes them in this order.
CREATE FUNCTION pgportfolio._execute_fill(
    p_operation text,
    p_portfolio_id bigint,
    p_symbol text,
    p_quantity numeric,
    p_price numeric,
    p_fee numeric,
    p_request_id text,
    p_expected_version bigint
)
RETURNS pgportfolio.mutation_result
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_actor name := pgportfolio._acting_role();
    v_args jsonb;
    v_saved_lock_timeout text;
    v_portfolio pgportfolio.portfolios%ROWTYPE;
    v_position pgportfolio.positions%ROWTYPE;
    v_event pgportfolio.events%ROWTYPE;
    v_has_position boolean;
    v_held numeric;          -- signed quantity before the fill
    v_basis numeric;         -- signed cost basis before the fill
    v_fill numeric;          -- signed fill quantity
    v_new_quantity numeric;
    v_new_basis numeric;
    v_kind text;
    v_cash_flow numeric;
    v_cash_delta numeric;
    v_realized numeric;
    v_result pgportfolio.mutation_result;
BEGIN
    PERFORM pgportfolio._check_symbol(p_symbol);
    IF p_operation = 'reduce_position' THEN
        PERFORM pgportfolio._check_number('p_quantity', p_quantity, 'positive');
    ELSIF p_operation <> 'close_position' THEN
        PERFORM pgportfolio._check_number('p_quantity', p_quantity, 'nonzero');
    END IF;
    PERFORM pgportfolio._check_number('p_price', p_price, 'positive');
    PERFORM pgportfolio._check_number('p_fee', p_fee, 'non_negative');
    PERFORM pgportfolio._check_request(p_request_id, p_expected_version);
    PERFORM pgportfolio._authorize(p_portfolio_id, v_actor);
    -- 1.50 and 1.5 are the same amount: keep the shortest exact form, so that trailing
    -- zeros never count as decimal places downstream. This is not rounding.
    p_quantity := trim_scale(p_quantity);
    p_price := trim_scale(p_price);
    p_fee := trim_scale(p_fee);

    v_saved_lock_timeout := pgportfolio._bound_lock_wait();
    SELECT * INTO v_portfolio FROM pgportfolio.portfolios WHERE portfolio_id = p_portfolio_id FOR UPDATE;
    SELECT * INTO v_position FROM pgportfolio.positions
    WHERE portfolio_id = p_portfolio_id AND symbol = p_symbol
    FOR UPDATE;
    v_has_position := FOUND;
    PERFORM set_config('lock_timeout', v_saved_lock_timeout, true);

    v_args := jsonb_build_object(
        'operation', p_operation, 'symbol', p_symbol, 'quantity', p_quantity, 'price', p_price, 'fee', p_fee
    );
    IF p_request_id IS NOT NULL THEN
        SELECT * INTO v_event FROM pgportfolio.events
        WHERE portfolio_id = p_portfolio_id AND request_id = p_request_id;
        IF FOUND THEN
            RETURN pgportfolio._replay(v_event, v_args);
        END IF;
    END IF;

    IF p_expected_version IS NOT NULL AND p_expected_version <> v_portfolio.version THEN
        RAISE EXCEPTION 'version conflict on portfolio %', p_portfolio_id
            USING ERRCODE = 'PF001',
            DETAIL = format('expected version %s, found version %s', p_expected_version, v_portfolio.version),
            HINT = 'Reload the portfolio and retry with its current version.';
    END IF;

    v_held := coalesce(v_position.quantity, 0);
    v_basis := coalesce(v_position.cost_basis, 0);

    -- Turn the verb into a signed fill, refusing what the verb does not allow.
    CASE p_operation
        WHEN 'apply_fill' THEN
            v_fill := p_quantity;
        WHEN 'open_position' THEN
            IF v_has_position THEN
                RAISE EXCEPTION 'a position in % is already open in portfolio %', p_symbol, p_portfolio_id
                    USING ERRCODE = 'PF006', DETAIL = format('Open quantity is %s.', v_held),
                    HINT = 'Use add_to_position, reduce_position or apply_fill.';
            END IF;
            v_fill := p_quantity;
        WHEN 'add_to_position' THEN
            IF NOT v_has_position THEN
                RAISE EXCEPTION 'no % position in portfolio %', p_symbol, p_portfolio_id
                    USING ERRCODE = 'PF003', HINT = 'Use open_position first.';
            END IF;
            IF sign(p_quantity) <> sign(v_held) THEN
                RAISE EXCEPTION 'add_to_position must be on the side of the open position'
                    USING ERRCODE = '22023',
                    DETAIL = format('Open quantity is %s, p_quantity is %s.', v_held, p_quantity),
                    HINT = 'Positive adds to a long, negative to a short; use reduce_position to reduce.';
            END IF;
            v_fill := p_quantity;
        WHEN 'reduce_position' THEN
            IF NOT v_has_position OR p_quantity > abs(v_held) THEN
                RAISE EXCEPTION 'not enough % in portfolio % to reduce by %', p_symbol, p_portfolio_id, p_quantity
                    USING ERRCODE = 'PF003', DETAIL = format('Open quantity is %s.', v_held);
            END IF;
            v_fill := -sign(v_held) * p_quantity;
        WHEN 'close_position' THEN
            IF NOT v_has_position THEN
                RAISE EXCEPTION 'no % position in portfolio %', p_symbol, p_portfolio_id
                    USING ERRCODE = 'PF003';
            END IF;
            v_fill := -v_held;
    END CASE;

    v_new_quantity := v_held + v_fill;
    IF abs(v_new_quantity) >= 1e15 THEN
        RAISE EXCEPTION 'position in % would be out of range', p_symbol
            USING ERRCODE = '22023',
            DETAIL = format('Open %s plus fill %s; the absolute value must stay below 10^15.', v_held, v_fill);
    END IF;

    IF v_held = 0 THEN
        v_kind := 'open';
        v_new_basis := v_fill * p_price;
    ELSIF sign(v_fill) = sign(v_held) THEN
        v_kind := 'add';
        v_new_basis := v_basis + v_fill * p_price;
    ELSIF v_new_quantity = 0 THEN
        v_kind := 'close';
        v_new_basis := 0;
    ELSIF sign(v_new_quantity) = sign(v_held) THEN
        v_kind := 'reduce';
        -- The 1.0...0 factor gives the division 22 places, so round() decides, not numeric's
        -- default division scale (which keeps only about 16 significant digits).
        v_new_basis := v_basis - trim_scale(
            round(v_basis * abs(v_fill) * 1.0000000000000000000000 / abs(v_held), 16)
        );
    ELSE
        v_kind := 'flip';
        v_new_basis := v_new_quantity * p_price;
    END IF;

    v_cash_flow := -(v_fill * p_price);
    v_cash_delta := v_cash_flow - p_fee;
    v_realized := v_cash_flow + (v_new_basis - v_basis) - p_fee;

    IF v_portfolio.cash_balance + v_cash_delta < 0 THEN
        RAISE EXCEPTION 'insufficient cash in portfolio %', p_portfolio_id
            USING ERRCODE = 'PF002',
            DETAIL = format('needed %s, available %s', -v_cash_delta, v_portfolio.cash_balance);
    END IF;

    UPDATE pgportfolio.portfolios
    SET cash_balance = cash_balance + v_cash_delta,
        realized_pnl = realized_pnl + v_realized,
        version = version + 1,
        updated_at = now()
    WHERE portfolio_id = p_portfolio_id
    RETURNING * INTO v_portfolio;

    IF v_new_quantity = 0 THEN
        DELETE FROM pgportfolio.positions WHERE portfolio_id = p_portfolio_id AND symbol = p_symbol;
    ELSIF v_has_position THEN
        UPDATE pgportfolio.positions
        SET quantity = v_new_quantity,
            cost_basis = v_new_basis,
            realized_pnl = realized_pnl + v_realized,
            version = version + 1,
            updated_at = now()
        WHERE portfolio_id = p_portfolio_id AND symbol = p_symbol;
    ELSE
        INSERT INTO pgportfolio.positions (portfolio_id, symbol, quantity, cost_basis, realized_pnl)
        VALUES (p_portfolio_id, p_symbol, v_new_quantity, v_new_basis, v_realized);
    END IF;

    INSERT INTO pgportfolio.events (
        portfolio_id, portfolio_version, kind, operation, symbol, quantity, price, fee, cash_delta,
        realized_pnl, cash_balance, position_quantity, position_cost_basis, request_id, request_args, acting_role
    )
    VALUES (
        p_portfolio_id, v_portfolio.version, v_kind, p_operation, p_symbol, v_fill, p_price, p_fee, v_cash_delta,
        v_realized, v_portfolio.cash_balance, v_new_quantity, v_new_basis, p_request_id, v_args, v_actor
    );

    v_result := ROW(
        p_portfolio_id,
        v_portfolio.version,
        v_portfolio.cash_balance,
        p_symbol,
        v_new_quantity,
        CASE WHEN v_new_quantity <> 0 THEN round(v_new_basis / v_new_quantity, 8) END,
        v_realized,
        false
    );
    RETURN v_result;
END;
$$;

-- ===== sql/141_fill_verbs.sql =====
-- The public fill functions: thin, checked entry points into _execute_fill.
-- SECURITY DEFINER so that traders never need rights on the tables.

CREATE FUNCTION pgportfolio.apply_fill(
    p_portfolio_id bigint,
    p_symbol text,
    p_quantity numeric,
    p_price numeric,
    p_fee numeric DEFAULT 0,
    p_request_id text DEFAULT NULL,
    p_expected_version bigint DEFAULT NULL
)
RETURNS pgportfolio.mutation_result
LANGUAGE sql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT pgportfolio._execute_fill(
        'apply_fill', p_portfolio_id, p_symbol, p_quantity, p_price, p_fee, p_request_id, p_expected_version
    );
$$;

COMMENT ON FUNCTION pgportfolio.apply_fill(bigint, text, numeric, numeric, numeric, text, bigint) IS
'Apply a signed fill (+ buy, - sell) netted against the open position: open, add, reduce, close or flip.';

CREATE FUNCTION pgportfolio.open_position(
    p_portfolio_id bigint,
    p_symbol text,
    p_quantity numeric,
    p_price numeric,
    p_fee numeric DEFAULT 0,
    p_request_id text DEFAULT NULL,
    p_expected_version bigint DEFAULT NULL
)
RETURNS pgportfolio.mutation_result
LANGUAGE sql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT pgportfolio._execute_fill(
        'open_position', p_portfolio_id, p_symbol, p_quantity, p_price, p_fee, p_request_id, p_expected_version
    );
$$;

COMMENT ON FUNCTION pgportfolio.open_position(bigint, text, numeric, numeric, numeric, text, bigint) IS
'Open a position (signed quantity). PF006 if one is already open.';

CREATE FUNCTION pgportfolio.add_to_position(
    p_portfolio_id bigint,
    p_symbol text,
    p_quantity numeric,
    p_price numeric,
    p_fee numeric DEFAULT 0,
    p_request_id text DEFAULT NULL,
    p_expected_version bigint DEFAULT NULL
)
RETURNS pgportfolio.mutation_result
LANGUAGE sql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT pgportfolio._execute_fill(
        'add_to_position', p_portfolio_id, p_symbol, p_quantity, p_price, p_fee, p_request_id, p_expected_version
    );
$$;

COMMENT ON FUNCTION pgportfolio.add_to_position(bigint, text, numeric, numeric, numeric, text, bigint) IS
'Add to an open position on its own side (signed quantity). PF003 if none is open.';

CREATE FUNCTION pgportfolio.reduce_position(
    p_portfolio_id bigint,
    p_symbol text,
    p_quantity numeric,
    p_price numeric,
    p_fee numeric DEFAULT 0,
    p_request_id text DEFAULT NULL,
    p_expected_version bigint DEFAULT NULL
)
RETURNS pgportfolio.mutation_result
LANGUAGE sql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT pgportfolio._execute_fill(
        'reduce_position', p_portfolio_id, p_symbol, p_quantity, p_price, p_fee, p_request_id, p_expected_version
    );
$$;

COMMENT ON FUNCTION pgportfolio.reduce_position(bigint, text, numeric, numeric, numeric, text, bigint) IS
'Reduce an open position by a positive quantity, at most what is held. PF003 otherwise.';

CREATE FUNCTION pgportfolio.close_position(
    p_portfolio_id bigint,
    p_symbol text,
    p_price numeric,
    p_fee numeric DEFAULT 0,
    p_request_id text DEFAULT NULL,
    p_expected_version bigint DEFAULT NULL
)
RETURNS pgportfolio.mutation_result
LANGUAGE sql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT pgportfolio._execute_fill(
        'close_position', p_portfolio_id, p_symbol, NULL, p_price, p_fee, p_request_id, p_expected_version
    );
$$;

COMMENT ON FUNCTION pgportfolio.close_position(bigint, text, numeric, numeric, text, bigint) IS
'Close the whole open position at p_price. PF003 if none is open.';

-- ===== sql/145_apply_fills.sql =====
-- Batches of fills, for one portfolio or many, in one call and one transaction.
--
-- Same semantics, identities and events as apply_fill, element by element in input
-- order. An element may also be a cash move ("operation": "deposit_cash",
-- "withdraw_cash" or "charge_fee", with "amount"), with the semantics and events of
-- those functions, so that a client can batch a hot portfolio's cash moves with its
-- fills instead of queueing them one by one behind the batches. What makes it fast: every portfolio row is locked once (in portfolio-id order),
-- every position row once (in portfolio-id, symbol order), the arithmetic runs in
-- memory, and the writes are one statement per table. An element refused for a reason
-- of its own (22023, 42501, PF001-PF005) comes back as its own row with its SQLSTATE and
-- does not undo the others; anything else fails the whole call.

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

CREATE FUNCTION pgportfolio.apply_fills(p_fills jsonb)
RETURNS SETOF pgportfolio.fill_result
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_actor name := pgportfolio._acting_role();
    v_saved_lock_timeout text;
    v_n integer;
    -- the input, by element
    f_pid bigint[];
    f_operation text[];   -- apply_fill, deposit_cash, withdraw_cash or charge_fee
    f_amount numeric[];   -- cash moves only
    f_symbol text[];
    f_quantity numeric[];
    f_price numeric[];
    f_fee numeric[];
    f_request text[];
    f_expected bigint[];
    f_state text[];       -- SQLSTATE of an element refused before locking
    f_message text[];
    f_detail text[];      -- a refusal's DETAIL and HINT, as the single functions raise them
    f_hint text[];
    -- portfolios, by slot
    p_ids bigint[];
    p_cash numeric[];
    p_realized numeric[];
    p_version bigint[];
    p_first_version bigint[];
    -- positions, by slot: key = portfolio_id || ' ' || symbol
    k_key text[] := '{}'::text[];
    k_pid bigint[] := '{}'::bigint[];
    k_symbol text[] := '{}'::text[];
    k_exists boolean[] := '{}'::boolean[];
    k_quantity numeric[] := '{}'::numeric[];
    k_basis numeric[] := '{}'::numeric[];
    k_realized numeric[] := '{}'::numeric[];
    k_version bigint[] := '{}'::bigint[];
    k_reopened boolean[] := '{}'::boolean[];
    k_changed boolean[] := '{}'::boolean[];
    -- request ids seen: key = portfolio_id || ' ' || request_id, and the event each produced
    r_key text[] := '{}'::text[];
    r_event pgportfolio.events[] := '{}'::pgportfolio.events[];
    -- events to write
    e_rows pgportfolio.events[] := '{}'::pgportfolio.events[];
    v_event pgportfolio.events;
    v_result pgportfolio.fill_result;
    v_refusal_state text;
    v_refusal_message text;
    v_refusal_detail text;
    v_refusal_hint text;
    v_error_message text;
    v_error_detail text;
    v_error_hint text;
    v_row record;
    ps integer;
    ks integer;
    rs integer;
    v_args jsonb;
    v_held numeric;
    v_basis numeric;
    v_new_quantity numeric;
    v_new_basis numeric;
    v_kind text;
    v_cash_flow numeric;
    v_cash_delta numeric;
    v_realized numeric;
    v_fee numeric;
BEGIN
    IF p_fills IS NULL OR jsonb_typeof(p_fills) <> 'array' THEN
        RAISE EXCEPTION 'p_fills must be a JSON array of fills' USING ERRCODE = '22023';
    END IF;
    BEGIN
        SELECT
            array_agg(f.portfolio_id ORDER BY f.item),
            array_agg(coalesce(f.operation, 'apply_fill') ORDER BY f.item),
            array_agg(f.amount ORDER BY f.item),
            array_agg(f.symbol ORDER BY f.item),
            array_agg(f.quantity ORDER BY f.item),
            array_agg(f.price ORDER BY f.item),
            -- a fill's fee defaults to 0; a cash move takes none
            array_agg(CASE WHEN coalesce(f.operation, 'apply_fill') = 'apply_fill' THEN coalesce(f.fee, 0) ELSE f.fee END
                ORDER BY f.item),
            array_agg(f.request_id ORDER BY f.item),
            array_agg(f.expected_version ORDER BY f.item),
            count(*)
        INTO f_pid, f_operation, f_amount, f_symbol, f_quantity, f_price, f_fee, f_request, f_expected, v_n
        FROM ROWS FROM (
            jsonb_to_recordset(p_fills) AS (
                portfolio_id bigint, operation text, amount numeric, symbol text, quantity numeric,
                price numeric, fee numeric, request_id text, expected_version bigint
            )
        ) WITH ORDINALITY AS f (
            portfolio_id, operation, amount, symbol, quantity, price, fee, request_id, expected_version, item
        );
    EXCEPTION WHEN data_exception THEN
        RAISE EXCEPTION 'malformed p_fills: %', sqlerrm
            USING ERRCODE = '22023',
            HINT = 'A fill: {"portfolio_id", "symbol", "quantity", "price", "fee", "request_id", "expected_version"}; a cash move: {"portfolio_id", "operation", "amount", "request_id", "expected_version"}.';
    END;
    IF v_n = 0 THEN
        RETURN;
    END IF;
    IF v_n > 10000 THEN
        RAISE EXCEPTION 'at most 10000 fills per call' USING ERRCODE = '22023', DETAIL = format('Got %s.', v_n);
    END IF;

    -- 1. Input checks, per element, before any lock. Only a failing element pays for the
    --    exception block that captures the exact message.
    f_state := array_fill(NULL::text, ARRAY[v_n]);
    f_message := array_fill(NULL::text, ARRAY[v_n]);
    f_detail := array_fill(NULL::text, ARRAY[v_n]);
    f_hint := array_fill(NULL::text, ARRAY[v_n]);
    FOR i IN 1 .. v_n LOOP
        IF f_pid[i] IS NULL THEN
            f_state[i] := '22023';
            f_message[i] := 'portfolio_id must not be null';
        ELSIF f_operation[i] <> 'apply_fill' THEN
            IF f_operation[i] NOT IN ('deposit_cash', 'withdraw_cash', 'charge_fee') THEN
                f_state[i] := '22023';
                f_message[i] := format('unknown operation %s', quote_literal(left(f_operation[i], 40)));
            ELSIF num_nonnulls(f_symbol[i], f_quantity[i], f_price[i], f_fee[i]) > 0 THEN
                f_state[i] := '22023';
                f_message[i] := format('a %s element takes no symbol, quantity, price or fee', f_operation[i]);
            ELSIF NOT coalesce(
                f_amount[i] NOT IN ('NaN', 'Infinity', '-Infinity') AND f_amount[i] > 0
                AND f_amount[i] < 1e15 AND min_scale(f_amount[i]) <= 8
                AND (f_request[i] IS NULL OR (length(f_request[i]) BETWEEN 1 AND 200 AND f_request[i] !~ pgportfolio._refused_characters()))
                AND (f_expected[i] IS NULL OR f_expected[i] >= 1),
                false
            ) THEN
                BEGIN
                    PERFORM pgportfolio._check_number('amount', f_amount[i], 'positive');
                    PERFORM pgportfolio._check_request(f_request[i], f_expected[i]);
                EXCEPTION WHEN invalid_parameter_value THEN
                    f_state[i] := '22023';
                    GET STACKED DIAGNOSTICS
                        v_error_message = MESSAGE_TEXT, v_error_detail = PG_EXCEPTION_DETAIL, v_error_hint = PG_EXCEPTION_HINT;
                    f_message[i] := v_error_message;
                    f_detail[i] := v_error_detail;
                    f_hint[i] := v_error_hint;
                END;
            ELSE
                f_amount[i] := trim_scale(f_amount[i]);
            END IF;
        ELSIF f_amount[i] IS NOT NULL THEN
            f_state[i] := '22023';
            f_message[i] := 'a fill takes no amount';
        -- Every input rule in one expression (the rules of 100_validation.sql): the raising
        -- checks below run only for an element that fails it, to get the exact message.
        ELSIF NOT coalesce(
            f_symbol[i] ~ '^[A-Z0-9._/:-]{1,32}$'
            AND f_quantity[i] NOT IN ('NaN', 'Infinity', '-Infinity') AND f_quantity[i] <> 0
            AND abs(f_quantity[i]) < 1e15 AND min_scale(f_quantity[i]) <= 8
            AND f_price[i] NOT IN ('NaN', 'Infinity', '-Infinity') AND f_price[i] > 0
            AND f_price[i] < 1e15 AND min_scale(f_price[i]) <= 8
            AND f_fee[i] NOT IN ('NaN', 'Infinity', '-Infinity') AND f_fee[i] >= 0
            AND f_fee[i] < 1e15 AND min_scale(f_fee[i]) <= 8
            AND (f_request[i] IS NULL OR (length(f_request[i]) BETWEEN 1 AND 200 AND f_request[i] !~ pgportfolio._refused_characters()))
            AND (f_expected[i] IS NULL OR f_expected[i] >= 1),
            false
        ) THEN
            BEGIN
                PERFORM pgportfolio._check_symbol(f_symbol[i]);
                PERFORM pgportfolio._check_number('quantity', f_quantity[i], 'nonzero');
                PERFORM pgportfolio._check_number('price', f_price[i], 'positive');
                PERFORM pgportfolio._check_number('fee', f_fee[i], 'non_negative');
                PERFORM pgportfolio._check_request(f_request[i], f_expected[i]);
            EXCEPTION WHEN invalid_parameter_value THEN
                f_state[i] := '22023';
                GET STACKED DIAGNOSTICS
                    v_error_message = MESSAGE_TEXT, v_error_detail = PG_EXCEPTION_DETAIL, v_error_hint = PG_EXCEPTION_HINT;
                f_message[i] := v_error_message;
                f_detail[i] := v_error_detail;
                f_hint[i] := v_error_hint;
            END;
        ELSE
            f_quantity[i] := trim_scale(f_quantity[i]);
            f_price[i] := trim_scale(f_price[i]);
            f_fee[i] := trim_scale(f_fee[i]);
        END IF;
    END LOOP;

    -- 2. Who may trade what: each distinct portfolio once.
    SELECT array_agg(DISTINCT x ORDER BY x) INTO p_ids
    FROM unnest(f_pid, f_state) AS u (x, s) WHERE s IS NULL;
    IF p_ids IS NULL THEN
        p_ids := '{}';
    END IF;
    FOR ps IN 1 .. coalesce(array_length(p_ids, 1), 0) LOOP
        BEGIN
            PERFORM pgportfolio._authorize(p_ids[ps], v_actor);
        EXCEPTION WHEN insufficient_privilege OR sqlstate 'PF004' THEN
            FOR i IN 1 .. v_n LOOP
                IF f_pid[i] = p_ids[ps] AND f_state[i] IS NULL THEN
                    f_state[i] := sqlstate;
                    GET STACKED DIAGNOSTICS
                        v_error_message = MESSAGE_TEXT, v_error_detail = PG_EXCEPTION_DETAIL, v_error_hint = PG_EXCEPTION_HINT;
                    f_message[i] := v_error_message;
                    f_detail[i] := v_error_detail;
                    f_hint[i] := v_error_hint;
                END IF;
            END LOOP;
            p_ids[ps] := NULL;
        END;
    END LOOP;
    p_ids := array_remove(p_ids, NULL);

    -- 3. Locks: portfolio rows in id order, then position rows in (id, symbol) order.
    v_saved_lock_timeout := pgportfolio._bound_lock_wait();
    p_cash := '{}';
    p_realized := '{}';
    p_version := '{}';
    FOR v_row IN
        SELECT p.portfolio_id, p.cash_balance, p.realized_pnl, p.version
        FROM pgportfolio.portfolios AS p
        WHERE p.portfolio_id = ANY (p_ids)
        ORDER BY p.portfolio_id
        FOR UPDATE
    LOOP
        ps := array_position(p_ids, v_row.portfolio_id);
        p_cash[ps] := v_row.cash_balance;
        p_realized[ps] := v_row.realized_pnl;
        p_version[ps] := v_row.version;
    END LOOP;
    p_first_version := p_version;

    FOR v_row IN
        SELECT p.portfolio_id, p.symbol, p.quantity, p.cost_basis, p.realized_pnl, p.version
        FROM pgportfolio.positions AS p
        WHERE (p.portfolio_id, p.symbol) IN (
            SELECT u.x, u.s FROM unnest(f_pid, f_symbol, f_state) AS u (x, s, st)
            WHERE u.st IS NULL AND u.x = ANY (p_ids)
        )
        ORDER BY p.portfolio_id, p.symbol
        FOR UPDATE
    LOOP
        k_key := k_key || (v_row.portfolio_id || ' ' || v_row.symbol);
        k_pid := k_pid || v_row.portfolio_id;
        k_symbol := k_symbol || v_row.symbol;
        k_exists := k_exists || true;
        k_quantity := k_quantity || v_row.quantity;
        k_basis := k_basis || v_row.cost_basis;
        k_realized := k_realized || v_row.realized_pnl;
        k_version := k_version || v_row.version;
        k_reopened := k_reopened || false;
        k_changed := k_changed || false;
    END LOOP;
    PERFORM set_config('lock_timeout', v_saved_lock_timeout, true);

    -- Request ids already in the log for these portfolios.
    FOR v_event IN
        SELECT e.* FROM pgportfolio.events AS e
        WHERE (e.portfolio_id, e.request_id) IN (
            SELECT u.x, u.r FROM unnest(f_pid, f_request, f_state) AS u (x, r, st)
            WHERE u.st IS NULL AND u.r IS NOT NULL AND u.x = ANY (p_ids)
        )
    LOOP
        r_key := r_key || (v_event.portfolio_id || ' ' || v_event.request_id);
        r_event := r_event || v_event;
    END LOOP;

    -- 4. Apply, element by element, in input order.
    FOR i IN 1 .. v_n LOOP
        IF f_state[i] IS NOT NULL THEN
            v_refusal_state := f_state[i];
            v_refusal_message := f_message[i];
            v_result := ROW(
                i, f_pid[i], NULL, NULL, f_symbol[i], NULL, NULL, NULL, false,
                v_refusal_state, v_refusal_message, nullif(f_detail[i], ''), nullif(f_hint[i], '')
            );
            RETURN NEXT v_result;
            CONTINUE;
        END IF;
        ps := array_position(p_ids, f_pid[i]);
        -- The arguments a request id stands for, as the single-call functions store them.
        IF f_operation[i] = 'apply_fill' THEN
            v_args := jsonb_build_object(
                'operation', 'apply_fill', 'symbol', f_symbol[i], 'quantity', f_quantity[i],
                'price', f_price[i], 'fee', f_fee[i]
            );
        ELSE
            v_args := jsonb_build_object('operation', f_operation[i], 'amount', f_amount[i]);
        END IF;

        IF f_request[i] IS NOT NULL THEN
            rs := array_position(r_key, f_pid[i] || ' ' || f_request[i]);
            IF rs IS NOT NULL THEN
                v_event := r_event[rs];
                IF v_event.request_args IS DISTINCT FROM v_args THEN
                    v_refusal_state := 'PF005';
                    v_refusal_message := format(
                        'request id %s was already used with different arguments', quote_literal(f_request[i])
                    );
                    v_result := ROW(
                        i, f_pid[i], NULL, NULL, f_symbol[i], NULL, NULL, NULL, false,
                        v_refusal_state, v_refusal_message, NULL, NULL
                    );
                ELSE
                    v_result := ROW(
                        i, f_pid[i], v_event.portfolio_version, v_event.cash_balance, f_symbol[i],
                        v_event.position_quantity,
                        CASE WHEN v_event.position_quantity <> 0
                            THEN round(v_event.position_cost_basis / v_event.position_quantity, 8) END,
                        v_event.realized_pnl, true, NULL, NULL, NULL, NULL
                    );
                END IF;
                RETURN NEXT v_result;
                CONTINUE;
            END IF;
        END IF;

        IF f_expected[i] IS NOT NULL AND f_expected[i] <> p_version[ps] THEN
            v_refusal_state := 'PF001';
            v_refusal_message := format('version conflict on portfolio %s', f_pid[i]);
            v_refusal_detail := format('expected version %s, found version %s', f_expected[i], p_version[ps]);
            v_refusal_hint := 'Reload the portfolio and retry with its current version.';
            v_result := ROW(
                i, f_pid[i], NULL, NULL, f_symbol[i], NULL, NULL, NULL, false,
                v_refusal_state, v_refusal_message, v_refusal_detail, v_refusal_hint
            );
            RETURN NEXT v_result;
            CONTINUE;
        END IF;

        IF f_operation[i] <> 'apply_fill' THEN
            -- A cash move: the arithmetic of _execute_cash (130_cash.sql).
            v_fee := CASE WHEN f_operation[i] = 'charge_fee' THEN f_amount[i] ELSE 0 END;
            v_cash_delta := CASE WHEN f_operation[i] = 'deposit_cash' THEN f_amount[i] ELSE -f_amount[i] END;
            v_realized := -v_fee;
            v_kind := CASE f_operation[i] WHEN 'deposit_cash' THEN 'deposit' WHEN 'withdraw_cash' THEN 'withdraw' ELSE 'fee' END;
        ELSE
            ks := array_position(k_key, f_pid[i] || ' ' || f_symbol[i]);
            IF ks IS NULL THEN
                k_key := k_key || (f_pid[i] || ' ' || f_symbol[i]);
                k_pid := k_pid || f_pid[i];
                k_symbol := k_symbol || f_symbol[i];
                k_exists := k_exists || false;
                k_quantity := k_quantity || 0::numeric;
                k_basis := k_basis || 0::numeric;
                k_realized := k_realized || 0::numeric;
                k_version := k_version || 0::bigint;
                k_reopened := k_reopened || false;
                k_changed := k_changed || false;
                ks := array_length(k_key, 1);
            END IF;
            v_held := k_quantity[ks];
            v_basis := k_basis[ks];
            v_new_quantity := v_held + f_quantity[i];
            IF abs(v_new_quantity) >= 1e15 THEN
                v_refusal_state := '22023';
                v_refusal_message := format('position in %s would be out of range', f_symbol[i]);
                v_refusal_detail := format(
                    'Open %s plus fill %s; the absolute value must stay below 10^15.', v_held, f_quantity[i]
                );
                v_result := ROW(
                    i, f_pid[i], NULL, NULL, f_symbol[i], NULL, NULL, NULL, false,
                    v_refusal_state, v_refusal_message, v_refusal_detail, NULL
                );
                RETURN NEXT v_result;
                CONTINUE;
            END IF;

            -- The same arithmetic as _execute_fill (see 140_fill.sql for the why).
            IF v_held = 0 THEN
                v_kind := 'open';
                v_new_basis := f_quantity[i] * f_price[i];
            ELSIF sign(f_quantity[i]) = sign(v_held) THEN
                v_kind := 'add';
                v_new_basis := v_basis + f_quantity[i] * f_price[i];
            ELSIF v_new_quantity = 0 THEN
                v_kind := 'close';
                v_new_basis := 0;
            ELSIF sign(v_new_quantity) = sign(v_held) THEN
                v_kind := 'reduce';
                v_new_basis := v_basis - trim_scale(
                    round(v_basis * abs(f_quantity[i]) * 1.0000000000000000000000 / abs(v_held), 16)
                );
            ELSE
                v_kind := 'flip';
                v_new_basis := v_new_quantity * f_price[i];
            END IF;
            v_cash_flow := -(f_quantity[i] * f_price[i]);
            v_cash_delta := v_cash_flow - f_fee[i];
            v_realized := v_cash_flow + (v_new_basis - v_basis) - f_fee[i];
        END IF;

        IF p_cash[ps] + v_cash_delta < 0 THEN
            v_refusal_state := 'PF002';
            v_refusal_message := format('insufficient cash in portfolio %s', f_pid[i]);
            v_refusal_detail := format('needed %s, available %s', -v_cash_delta, p_cash[ps]);
            v_result := ROW(
                i, f_pid[i], NULL, NULL, f_symbol[i], NULL, NULL, NULL, false,
                v_refusal_state, v_refusal_message, v_refusal_detail, NULL
            );
            RETURN NEXT v_result;
            CONTINUE;
        END IF;

        p_cash[ps] := p_cash[ps] + v_cash_delta;
        p_realized[ps] := p_realized[ps] + v_realized;
        p_version[ps] := p_version[ps] + 1;
        IF f_operation[i] <> 'apply_fill' THEN
            v_event := ROW(
                f_pid[i], p_version[ps], v_kind, f_operation[i], NULL, NULL, NULL, v_fee, f_amount[i], v_cash_delta,
                v_realized, p_cash[ps], NULL, NULL, f_request[i], v_args, v_actor, now(),
                NULL  -- chain_hash: the events_chain trigger sets it
            );
            v_result := ROW(i, f_pid[i], p_version[ps], p_cash[ps], NULL, NULL, NULL, v_realized, false, NULL, NULL, NULL, NULL);
        ELSE
            -- A position that went flat and opens again starts a new row life, as it would
            -- after a DELETE and an INSERT by apply_fill.
            IF v_held = 0 THEN
                k_reopened[ks] := k_exists[ks];
                k_version[ks] := 1;
                k_realized[ks] := v_realized;
            ELSE
                k_version[ks] := k_version[ks] + 1;
                k_realized[ks] := k_realized[ks] + v_realized;
            END IF;
            k_quantity[ks] := v_new_quantity;
            k_basis[ks] := v_new_basis;
            k_changed[ks] := true;
            v_event := ROW(
                f_pid[i], p_version[ps], v_kind, 'apply_fill', f_symbol[i], f_quantity[i], f_price[i], f_fee[i],
                NULL, v_cash_delta, v_realized, p_cash[ps], v_new_quantity, v_new_basis, f_request[i], v_args,
                v_actor, now(), NULL  -- chain_hash: the events_chain trigger sets it
            );
            v_result := ROW(
                i, f_pid[i], p_version[ps], p_cash[ps], f_symbol[i], v_new_quantity,
                CASE WHEN v_new_quantity <> 0 THEN round(v_new_basis / v_new_quantity, 8) END,
                v_realized, false, NULL, NULL, NULL, NULL
            );
        END IF;
        e_rows := e_rows || v_event;
        IF f_request[i] IS NOT NULL THEN
            r_key := r_key || (f_pid[i] || ' ' || f_request[i]);
            r_event := r_event || v_event;
        END IF;
        RETURN NEXT v_result;
    END LOOP;

    -- 5. Write: one statement per table.
    UPDATE pgportfolio.portfolios AS p
    SET cash_balance = u.cash, realized_pnl = u.realized, version = u.version, updated_at = now()
    FROM unnest(p_ids, p_cash, p_realized, p_version, p_first_version) AS u (id, cash, realized, version, first_version)
    WHERE p.portfolio_id = u.id AND u.version <> u.first_version;

    DELETE FROM pgportfolio.positions AS p
    USING unnest(k_pid, k_symbol, k_exists, k_quantity, k_reopened) AS u (pid, symbol, existed, quantity, reopened)
    WHERE u.existed AND (u.quantity = 0 OR u.reopened)
    AND p.portfolio_id = u.pid AND p.symbol = u.symbol;

    UPDATE pgportfolio.positions AS p
    SET quantity = u.quantity, cost_basis = u.basis, realized_pnl = u.realized, version = u.version,
        updated_at = now()
    FROM unnest(k_pid, k_symbol, k_exists, k_quantity, k_basis, k_realized, k_version, k_reopened, k_changed)
        AS u (pid, symbol, existed, quantity, basis, realized, version, reopened, changed)
    WHERE u.existed AND u.changed AND NOT u.reopened AND u.quantity <> 0
    AND p.portfolio_id = u.pid AND p.symbol = u.symbol;

    INSERT INTO pgportfolio.positions (portfolio_id, symbol, quantity, cost_basis, realized_pnl, version)
    SELECT u.pid, u.symbol, u.quantity, u.basis, u.realized, u.version
    FROM unnest(k_pid, k_symbol, k_exists, k_quantity, k_basis, k_realized, k_version, k_reopened, k_changed)
        AS u (pid, symbol, existed, quantity, basis, realized, version, reopened, changed)
    WHERE u.changed AND u.quantity <> 0 AND (NOT u.existed OR u.reopened);

    INSERT INTO pgportfolio.events SELECT * FROM unnest(e_rows);
END;
$$;

COMMENT ON FUNCTION pgportfolio.apply_fills(jsonb) IS
'Apply many signed fills (and cash moves) in one call; one result row per element, in input order.';

-- ===== sql/150_market_prices.sql =====
-- A price tick touches only market_prices: it never locks or rewrites a portfolio or
-- a position, so ticks and fills never wait for each other.
CREATE FUNCTION pgportfolio.update_market_price(p_symbol text, p_price numeric)
RETURNS void
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_saved_lock_timeout text;
BEGIN
    PERFORM pgportfolio._check_symbol(p_symbol);
    PERFORM pgportfolio._check_number('p_price', p_price, 'positive');
    v_saved_lock_timeout := pgportfolio._bound_lock_wait();  -- ticks on one symbol queue on its row
    INSERT INTO pgportfolio.market_prices AS m (symbol, price)
    VALUES (p_symbol, trim_scale(p_price))
    ON CONFLICT (symbol) DO UPDATE
    SET price = excluded.price, version = m.version + 1, updated_at = now();
    PERFORM set_config('lock_timeout', v_saved_lock_timeout, true);
END;
$$;

COMMENT ON FUNCTION pgportfolio.update_market_price(text, numeric) IS
'Set the latest market price of a symbol. Never locks portfolios or positions.';

-- Many ticks in one call: [{"symbol": "AAPL", "price": "189.5"}, ...]. All or nothing:
-- a bad element fails the call (22023) and nothing is written. Rows are written in
-- symbol order, so two bulk calls over the same symbols cannot deadlock; the last price
-- given for a symbol wins. Like single ticks, it never touches portfolios or positions.
CREATE FUNCTION pgportfolio.update_market_prices(p_prices jsonb)
RETURNS integer
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_symbols text[];
    v_prices numeric[];
    v_saved_lock_timeout text;
    v_count integer;
BEGIN
    IF p_prices IS NULL OR jsonb_typeof(p_prices) <> 'array' THEN
        RAISE EXCEPTION 'p_prices must be a JSON array of {"symbol", "price"}' USING ERRCODE = '22023';
    END IF;
    BEGIN
        SELECT array_agg(t.symbol ORDER BY t.item), array_agg(t.price ORDER BY t.item)
        INTO v_symbols, v_prices
        FROM ROWS FROM (jsonb_to_recordset(p_prices) AS (symbol text, price numeric))
            WITH ORDINALITY AS t (symbol, price, item);
    EXCEPTION WHEN data_exception THEN
        RAISE EXCEPTION 'malformed p_prices: %', sqlerrm USING ERRCODE = '22023';
    END;
    IF v_symbols IS NULL THEN
        RETURN 0;
    END IF;
    -- Every input rule in one pass over the set (the rules of 100_validation.sql); the
    -- raising checks run only when an element fails, to name the first with its message.
    IF EXISTS (
        SELECT FROM unnest(v_symbols, v_prices) AS t (symbol, price)
        WHERE NOT coalesce(
            t.symbol ~ '^[A-Z0-9._/:-]{1,32}$'
            AND t.price NOT IN ('NaN', 'Infinity', '-Infinity') AND t.price > 0
            AND t.price < 1e15 AND min_scale(t.price) <= 8,
            false
        )
    ) THEN
        FOR i IN 1 .. array_length(v_symbols, 1) LOOP
            PERFORM pgportfolio._check_symbol(v_symbols[i]);
            PERFORM pgportfolio._check_number('price', v_prices[i], 'positive');
        END LOOP;
    END IF;

    v_saved_lock_timeout := pgportfolio._bound_lock_wait();
    INSERT INTO pgportfolio.market_prices AS m (symbol, price)
    SELECT DISTINCT ON (t.symbol) t.symbol, trim_scale(t.price)
    FROM unnest(v_symbols, v_prices) WITH ORDINALITY AS t (symbol, price, item)
    ORDER BY t.symbol, t.item DESC
    ON CONFLICT (symbol) DO UPDATE
    SET price = excluded.price, version = m.version + 1, updated_at = now();
    GET DIAGNOSTICS v_count = ROW_COUNT;
    PERFORM set_config('lock_timeout', v_saved_lock_timeout, true);
    RETURN v_count;
END;
$$;

COMMENT ON FUNCTION pgportfolio.update_market_prices(jsonb) IS
'Set many marks at once, all or nothing; returns the number of symbols written.';

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
            CASE WHEN e.quantity IS NOT NULL THEN -(e.quantity * e.price) ELSE 0 END AS cash_flow,
            sum(e.cash_delta) OVER (ORDER BY e.portfolio_version) AS running_cash,
            sum(e.quantity) OVER (PARTITION BY e.symbol ORDER BY e.portfolio_version) AS running_quantity,
            coalesce(
                lag(e.position_cost_basis) OVER (PARTITION BY e.symbol ORDER BY e.portfolio_version), 0
            ) AS basis_before,
            -- The hash this event must carry, given the one stored before it: the same
            -- expression as the events_chain trigger's (034_events.sql).
            sha256(
                CASE
                    WHEN e.portfolio_version = 1 THEN ''::bytea
                    WHEN lag(e.portfolio_version) OVER (ORDER BY e.portfolio_version) = e.portfolio_version - 1
                        THEN lag(e.chain_hash) OVER (ORDER BY e.portfolio_version)
                END
                || convert_to(jsonb_build_array(
                    e.portfolio_id, e.portfolio_version, e.kind, e.operation, e.symbol, e.quantity, e.price, e.fee,
                    e.amount, e.cash_delta, e.realized_pnl, e.cash_balance, e.position_quantity,
                    e.position_cost_basis, e.request_id, e.request_args, e.acting_role, extract(EPOCH FROM e.created_at)
                )::text, 'UTF8')
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
        SELECT DISTINCT ON (ev.symbol) ev.symbol, ev.running_quantity AS quantity, ev.position_cost_basis AS cost_basis
        FROM ev
        WHERE ev.quantity IS NOT NULL
        ORDER BY ev.symbol, ev.portfolio_version DESC
    ),
    open_rebuilt AS (
        SELECT r.* FROM rebuilt AS r WHERE r.quantity <> 0
    ),
    stored AS (
        SELECT s.symbol, s.quantity, s.cost_basis FROM pgportfolio.positions AS s
        WHERE s.portfolio_id = p_portfolio_id
    ),
    position_diff AS (
        SELECT
            count(*) FILTER (WHERE r.quantity IS DISTINCT FROM s.quantity)::numeric AS bad_quantity,
            count(*) FILTER (WHERE r.cost_basis IS DISTINCT FROM s.cost_basis)::numeric AS bad_basis
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
        SELECT 'event_hash_chain', 0::numeric, t.bad_event_hash, 'eq' FROM totals AS t
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

-- One row per open position. The mark is the latest market price, or the average
-- price when none is known (so unrealized P&L is 0 until the first tick).
CREATE VIEW pgportfolio.position_pnl AS
SELECT
    p.portfolio_id,
    p.symbol,
    p.quantity,
    round(p.cost_basis / p.quantity, 8) AS avg_price,
    p.cost_basis,
    coalesce(m.price, round(p.cost_basis / p.quantity, 8)) AS mark_price,
    coalesce(p.quantity * m.price, p.cost_basis) AS market_value,
    coalesce(p.quantity * m.price - p.cost_basis, 0) AS unrealized_pnl,
    p.realized_pnl,
    p.version,
    p.updated_at
FROM pgportfolio.positions AS p
LEFT JOIN pgportfolio.market_prices AS m ON p.symbol = m.symbol;

COMMENT ON VIEW pgportfolio.position_pnl IS
'Open positions with marks and P&L. realized_pnl counts since the position was opened from flat.';

-- One row per portfolio. realized_pnl is the sum of the mutations' realized P&L, net of fees.
CREATE VIEW pgportfolio.portfolio_summary AS
SELECT
    pf.portfolio_id,
    pf.name,
    pf.currency,
    pf.cash_balance,
    coalesce(agg.market_value, 0) AS market_value,
    coalesce(agg.market_value - agg.cost_basis, 0) AS unrealized_pnl,
    pf.realized_pnl,
    pf.cash_balance + coalesce(agg.market_value, 0) AS equity,
    coalesce(agg.open_positions, 0) AS open_positions,
    pf.version,
    pf.updated_at
FROM pgportfolio.portfolios AS pf
LEFT JOIN LATERAL (
    -- Unrealized P&L is market value less cost basis, summed exactly; a position
    -- without a mark counts at cost (0 unrealized). One product per position, not two.
    SELECT
        sum(coalesce(p.quantity * m.price, p.cost_basis)) AS market_value,
        sum(p.cost_basis) AS cost_basis,
        count(*) AS open_positions
    FROM pgportfolio.positions AS p
    LEFT JOIN pgportfolio.market_prices AS m ON p.symbol = m.symbol
    WHERE p.portfolio_id = pf.portfolio_id
) AS agg ON TRUE;

COMMENT ON VIEW pgportfolio.portfolio_summary IS 'One row per portfolio: cash, market value, P&L, equity.';

-- Every successful mutation, in the order it happened within its portfolio.
CREATE VIEW pgportfolio.event_log AS
SELECT
    e.portfolio_id,
    e.portfolio_version,
    e.kind,
    e.operation,
    e.symbol,
    e.quantity,
    e.price,
    e.fee,
    e.amount,
    e.cash_delta,
    e.realized_pnl,
    e.cash_balance,
    e.position_quantity,
    e.request_id,
    e.acting_role,
    e.created_at
FROM pgportfolio.events AS e;

COMMENT ON VIEW pgportfolio.event_log IS
'Append-only log of every mutation; portfolio_version is the version it produced.';

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

-- A portfolio and all its open positions in one statement (one snapshot), in one row:
-- the portfolio's columns once, and each position column as an array, in symbol order.
-- For programs: 10,000 positions travel as six arrays instead of 10,000 rows of
-- thirteen columns (docs/performance.md). Market value and unrealized P&L are left to
-- the caller: quantity * mark - cost_basis, exact.
CREATE FUNCTION pgportfolio.portfolio_snapshot(p_portfolio_id bigint)
RETURNS TABLE (
    portfolio_id bigint,
    name text,
    currency text,
    cash_balance numeric,
    realized_pnl numeric,
    version bigint,
    updated_at timestamptz,
    symbols text[],
    quantities numeric[],
    cost_bases numeric[],
    mark_prices numeric[],
    position_realized_pnls numeric[],
    position_versions bigint[]
)
LANGUAGE plpgsql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF p_portfolio_id IS NULL THEN
        RAISE EXCEPTION 'p_portfolio_id must not be null' USING ERRCODE = '22023';
    END IF;
    RETURN QUERY
    SELECT
        pf.portfolio_id, pf.name, pf.currency, pf.cash_balance, pf.realized_pnl, pf.version, pf.updated_at,
        coalesce(pos.symbols, '{}'), coalesce(pos.quantities, '{}'), coalesce(pos.cost_bases, '{}'),
        coalesce(pos.mark_prices, '{}'), coalesce(pos.realized_pnls, '{}'), coalesce(pos.versions, '{}')
    FROM pgportfolio.portfolios AS pf
    -- One sort feeds all six aggregates, so the arrays line up element by element (six
    -- array_agg(... ORDER BY) would sort six times: 4x slower for 10,000 positions).
    CROSS JOIN LATERAL (
        SELECT
            array_agg(o.symbol) AS symbols,
            array_agg(o.quantity) AS quantities,
            array_agg(o.cost_basis) AS cost_bases,
            array_agg(o.price) AS mark_prices,
            array_agg(o.realized_pnl) AS realized_pnls,
            array_agg(o.version) AS versions
        FROM (
            SELECT p.symbol, p.quantity, p.cost_basis, m.price, p.realized_pnl, p.version
            FROM pgportfolio.positions AS p
            LEFT JOIN pgportfolio.market_prices AS m ON p.symbol = m.symbol
            WHERE p.portfolio_id = pf.portfolio_id
            ORDER BY p.symbol
        ) AS o
    ) AS pos
    WHERE pf.portfolio_id = p_portfolio_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'portfolio % not found', p_portfolio_id USING ERRCODE = 'PF004';
    END IF;
END;
$$;

COMMENT ON FUNCTION pgportfolio.portfolio_snapshot(bigint) IS
'A portfolio and its open positions in one row: position columns as arrays in symbol order.';

-- The same snapshot as portfolio_snapshot, one row per position, for people: portfolio
-- columns repeat on every row; a portfolio with no position yields one row with symbol
-- NULL. Errors are portfolio_snapshot's.
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
    position_version bigint
)
LANGUAGE sql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT
        s.portfolio_id, s.name, s.currency, s.cash_balance, s.realized_pnl, s.version, s.updated_at,
        p.symbol, p.quantity, p.cost_basis, p.mark_price, p.realized_pnl, p.version
    FROM pgportfolio.portfolio_snapshot(p_portfolio_id) AS s
    LEFT JOIN LATERAL unnest(
        s.symbols, s.quantities, s.cost_bases, s.mark_prices, s.position_realized_pnls, s.position_versions
    ) WITH ORDINALITY AS p (symbol, quantity, cost_basis, mark_price, realized_pnl, version, item) ON TRUE
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
AS $$
DECLARE
    v_event pgportfolio.events%ROWTYPE;
    v_result pgportfolio.mutation_result;
BEGIN
    PERFORM pgportfolio._authorize(p_portfolio_id, pgportfolio._acting_role());
    SELECT * INTO v_event FROM pgportfolio.events AS e
    WHERE e.portfolio_id = p_portfolio_id AND e.request_id = p_request_id;
    IF FOUND THEN
        v_result := pgportfolio._replay(v_event, v_event.request_args);
        RETURN NEXT v_result;
    END IF;
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
    SELECT e.portfolio_id, e.portfolio_version, e.kind
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
pgportfolio.lock_waits
TO pgportfolio_trader, pgportfolio_analyst;

GRANT EXECUTE ON FUNCTION
pgportfolio.create_portfolio(text, numeric, text),
pgportfolio.deposit_cash(bigint, numeric, text, bigint),
pgportfolio.withdraw_cash(bigint, numeric, text, bigint),
pgportfolio.charge_fee(bigint, numeric, text, bigint),
pgportfolio.apply_fill(bigint, text, numeric, numeric, numeric, text, bigint),
pgportfolio.apply_fills(jsonb),
pgportfolio.open_position(bigint, text, numeric, numeric, numeric, text, bigint),
pgportfolio.add_to_position(bigint, text, numeric, numeric, numeric, text, bigint),
pgportfolio.reduce_position(bigint, text, numeric, numeric, numeric, text, bigint),
pgportfolio.close_position(bigint, text, numeric, numeric, text, bigint),
pgportfolio.update_market_price(text, numeric),
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
pgportfolio.events_since(bigint, bigint),
pgportfolio.portfolio_version(bigint),
pgportfolio.events_after(bigint[], bigint[], integer),
pgportfolio.recent_portfolios(integer),
pgportfolio.server_wait_events(),
pgportfolio.current_lock_waits()
TO pgportfolio_trader, pgportfolio_analyst;

