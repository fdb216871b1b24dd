-- Tables, keys and constraints (sql/030_portfolios.sql, 032_positions.sql,
-- 033_market_prices.sql, 034_events.sql, 035_instruments.sql). The constraints are the last line of defence
-- behind the functions, so they are exercised here with direct writes as the superuser.
BEGIN;
SELECT plan(203);

-- ---------------------------------------------------------------- columns
SELECT columns_are('pgportfolio', 'portfolios', ARRAY[
    'portfolio_id', 'name', 'currency', 'owner_role', 'initial_cash', 'cash_balance', 'realized_pnl',
    'version', 'created_at', 'updated_at', 'chain_head'], 'portfolios has the expected columns');
SELECT columns_are('pgportfolio', 'portfolio_access', ARRAY[
    'portfolio_id', 'grantee', 'granted_by', 'granted_at'], 'portfolio_access has the expected columns');
SELECT columns_are('pgportfolio', 'positions', ARRAY[
    'portfolio_id', 'symbol', 'quantity', 'cost_basis', 'realized_pnl', 'multiplier', 'version', 'opened_at',
    'updated_at'],
    'positions has the expected columns');
SELECT columns_are('pgportfolio', 'market_prices',
    ARRAY['symbol', 'price', 'version', 'updated_at', 'as_of', 'source', 'mark_id'],
    'market_prices has the expected columns');
SELECT columns_are('pgportfolio', 'market_price_history',
    ARRAY['symbol', 'as_of', 'mark_id', 'price', 'source', 'recorded_at'],
    'market_price_history has the expected columns');
SELECT columns_are('pgportfolio', 'instruments', ARRAY['symbol', 'multiplier', 'description', 'updated_at'],
    'instruments has the expected columns');
SELECT columns_are('pgportfolio', 'events', ARRAY[
    'portfolio_id', 'portfolio_version', 'kind', 'operation', 'symbol', 'quantity', 'price', 'fee', 'amount',
    'cash_delta', 'realized_pnl', 'cash_balance', 'position_quantity', 'position_cost_basis', 'request_id',
    'executed_at', 'order_id', 'tags', 'multiplier', 'acting_role', 'created_at', 'chain_hash'], 'events has the expected columns (the request is its typed columns)');

SELECT col_type_is('pgportfolio', 'portfolios', 'portfolio_id', 'bigint', 'portfolios.portfolio_id is bigint');
SELECT col_type_is('pgportfolio', 'portfolios', 'name', 'pgportfolio.portfolio_name', 'portfolios.name is pgportfolio.portfolio_name');
SELECT col_type_is('pgportfolio', 'portfolios', 'currency', 'pgportfolio.currency_code', 'portfolios.currency is pgportfolio.currency_code');
SELECT col_type_is('pgportfolio', 'portfolios', 'owner_role', 'name', 'portfolios.owner_role is name');
SELECT col_type_is('pgportfolio', 'portfolios', 'initial_cash', 'pgportfolio.initial_cash_amount', 'portfolios.initial_cash is pgportfolio.initial_cash_amount');
SELECT col_type_is('pgportfolio', 'portfolios', 'cash_balance', 'pgportfolio.non_negative_number', 'portfolios.cash_balance is pgportfolio.non_negative_number');
SELECT col_type_is('pgportfolio', 'portfolios', 'realized_pnl', 'pgportfolio.finite_number', 'portfolios.realized_pnl is pgportfolio.finite_number');
SELECT col_type_is('pgportfolio', 'portfolios', 'version', 'pgportfolio.row_version', 'portfolios.version is pgportfolio.row_version');
SELECT col_type_is('pgportfolio', 'portfolios', 'created_at', 'timestamp with time zone', 'portfolios.created_at is timestamp with time zone');
SELECT col_type_is('pgportfolio', 'portfolios', 'updated_at', 'timestamp with time zone', 'portfolios.updated_at is timestamp with time zone');
SELECT col_type_is('pgportfolio', 'portfolio_access', 'portfolio_id', 'bigint', 'portfolio_access.portfolio_id is bigint');
SELECT col_type_is('pgportfolio', 'portfolio_access', 'grantee', 'name', 'portfolio_access.grantee is name');
SELECT col_type_is('pgportfolio', 'portfolio_access', 'granted_by', 'name', 'portfolio_access.granted_by is name');
SELECT col_type_is('pgportfolio', 'portfolio_access', 'granted_at', 'timestamp with time zone', 'portfolio_access.granted_at is timestamp with time zone');
SELECT col_type_is('pgportfolio', 'positions', 'portfolio_id', 'bigint', 'positions.portfolio_id is bigint');
SELECT col_type_is('pgportfolio', 'positions', 'symbol', 'pgportfolio.symbol', 'positions.symbol is pgportfolio.symbol');
SELECT col_type_is('pgportfolio', 'positions', 'quantity', 'pgportfolio.open_quantity', 'positions.quantity is pgportfolio.open_quantity');
SELECT col_type_is('pgportfolio', 'positions', 'cost_basis', 'pgportfolio.finite_number', 'positions.cost_basis is pgportfolio.finite_number');
SELECT col_type_is('pgportfolio', 'positions', 'realized_pnl', 'pgportfolio.finite_number', 'positions.realized_pnl is pgportfolio.finite_number');
SELECT col_type_is('pgportfolio', 'positions', 'version', 'pgportfolio.row_version', 'positions.version is pgportfolio.row_version');
SELECT col_type_is('pgportfolio', 'positions', 'opened_at', 'timestamp with time zone', 'positions.opened_at is timestamp with time zone');
SELECT col_type_is('pgportfolio', 'positions', 'updated_at', 'timestamp with time zone', 'positions.updated_at is timestamp with time zone');
SELECT col_type_is('pgportfolio', 'market_prices', 'symbol', 'pgportfolio.symbol', 'market_prices.symbol is pgportfolio.symbol');
SELECT col_type_is('pgportfolio', 'market_prices', 'price', 'numeric', 'market_prices.price is numeric');
SELECT col_type_is('pgportfolio', 'market_prices', 'version', 'bigint', 'market_prices.version is bigint');
SELECT col_type_is('pgportfolio', 'market_prices', 'updated_at', 'timestamp with time zone', 'market_prices.updated_at is timestamp with time zone');
SELECT col_type_is('pgportfolio', 'market_prices', 'as_of', 'timestamp with time zone', 'market_prices.as_of is timestamp with time zone');
SELECT col_type_is('pgportfolio', 'market_prices', 'source', 'text', 'market_prices.source is text');
SELECT col_type_is('pgportfolio', 'market_prices', 'mark_id', 'bigint', 'market_prices.mark_id is bigint');
SELECT col_type_is('pgportfolio', 'market_price_history', 'symbol', 'pgportfolio.symbol', 'market_price_history.symbol is pgportfolio.symbol');
SELECT col_type_is('pgportfolio', 'market_price_history', 'as_of', 'timestamp with time zone', 'market_price_history.as_of is timestamp with time zone');
SELECT col_type_is('pgportfolio', 'market_price_history', 'mark_id', 'bigint', 'market_price_history.mark_id is bigint');
SELECT col_type_is('pgportfolio', 'market_price_history', 'price', 'numeric', 'market_price_history.price is numeric');
SELECT col_type_is('pgportfolio', 'market_price_history', 'source', 'text', 'market_price_history.source is text');
SELECT col_type_is('pgportfolio', 'market_price_history', 'recorded_at', 'timestamp with time zone', 'market_price_history.recorded_at is timestamp with time zone');
SELECT col_type_is('pgportfolio', 'instruments', 'symbol', 'pgportfolio.symbol', 'instruments.symbol is pgportfolio.symbol');
SELECT col_type_is('pgportfolio', 'instruments', 'multiplier', 'numeric', 'instruments.multiplier is numeric');
SELECT col_type_is('pgportfolio', 'instruments', 'description', 'text', 'instruments.description is text');
SELECT col_type_is('pgportfolio', 'instruments', 'updated_at', 'timestamp with time zone', 'instruments.updated_at is timestamp with time zone');
SELECT col_type_is('pgportfolio', 'events', 'portfolio_id', 'bigint', 'events.portfolio_id is bigint');
SELECT col_type_is('pgportfolio', 'events', 'portfolio_version', 'bigint', 'events.portfolio_version is bigint');
SELECT col_type_is('pgportfolio', 'events', 'kind', 'pgportfolio.event_kind', 'events.kind is pgportfolio.event_kind');
SELECT col_type_is('pgportfolio', 'events', 'operation', 'text', 'events.operation is text');
SELECT col_type_is('pgportfolio', 'events', 'symbol', 'text', 'events.symbol is text');
SELECT col_type_is('pgportfolio', 'events', 'quantity', 'pgportfolio.nonzero_number', 'events.quantity is pgportfolio.nonzero_number');
SELECT col_type_is('pgportfolio', 'events', 'price', 'pgportfolio.positive_number', 'events.price is pgportfolio.positive_number');
SELECT col_type_is('pgportfolio', 'events', 'fee', 'pgportfolio.non_negative_number', 'events.fee is pgportfolio.non_negative_number');
SELECT col_type_is('pgportfolio', 'events', 'amount', 'pgportfolio.finite_number', 'events.amount is pgportfolio.finite_number');
SELECT col_type_is('pgportfolio', 'events', 'cash_delta', 'pgportfolio.finite_number', 'events.cash_delta is pgportfolio.finite_number');
SELECT col_type_is('pgportfolio', 'events', 'realized_pnl', 'pgportfolio.finite_number', 'events.realized_pnl is pgportfolio.finite_number');
SELECT col_type_is('pgportfolio', 'events', 'cash_balance', 'pgportfolio.non_negative_number', 'events.cash_balance is pgportfolio.non_negative_number');
SELECT col_type_is('pgportfolio', 'events', 'position_quantity', 'pgportfolio.finite_number', 'events.position_quantity is pgportfolio.finite_number');
SELECT col_type_is('pgportfolio', 'events', 'position_cost_basis', 'pgportfolio.finite_number', 'events.position_cost_basis is pgportfolio.finite_number');
SELECT col_type_is('pgportfolio', 'events', 'request_id', 'text', 'events.request_id is text');
SELECT col_type_is('pgportfolio', 'events', 'chain_hash', 'bytea', 'events.chain_hash is bytea');
SELECT col_type_is('pgportfolio', 'events', 'acting_role', 'name', 'events.acting_role is name');
SELECT col_type_is('pgportfolio', 'events', 'created_at', 'timestamp with time zone', 'events.created_at is timestamp with time zone');

-- Which columns may be NULL: none, except the fill and request columns of events, a
-- mark's source and an instrument's description.
SELECT is(
    (SELECT array_agg(c.relname || '.' || a.attname ORDER BY c.relname, a.attnum)
     FROM pg_attribute AS a JOIN pg_class AS c ON c.oid = a.attrelid
     WHERE c.relnamespace = 'pgportfolio'::regnamespace AND c.relkind = 'r'
       AND a.attnum > 0 AND NOT a.attisdropped AND NOT a.attnotnull),
    ARRAY['events.symbol', 'events.quantity', 'events.price', 'events.amount', 'events.position_quantity',
          'events.position_cost_basis', 'events.request_id', 'events.executed_at', 'events.order_id',
          'events.tags', 'events.multiplier',
          'instruments.description', 'market_price_history.source', 'market_prices.source',
          'multiplier_changes.changed_at'],
    'every table column is NOT NULL except the optional fill and request columns of events, sources and descriptions'
);

-- ---------------------------------------------------------------- defaults and identity
SELECT is(
    (SELECT attidentity::text FROM pg_attribute
     WHERE attrelid = 'pgportfolio.portfolios'::regclass AND attname = 'portfolio_id'),
    'a',
    'portfolios.portfolio_id is GENERATED ALWAYS AS IDENTITY'
);
SELECT col_default_is('pgportfolio', 'portfolios', 'version', '1', 'portfolios.version defaults to 1');
SELECT col_default_is('pgportfolio', 'portfolios', 'realized_pnl', '0', 'portfolios.realized_pnl defaults to 0');
SELECT col_default_is('pgportfolio', 'positions', 'version', '1', 'positions.version defaults to 1');
SELECT col_default_is('pgportfolio', 'positions', 'realized_pnl', '0', 'positions.realized_pnl defaults to 0');
SELECT col_default_is('pgportfolio', 'market_prices', 'version', '1', 'market_prices.version defaults to 1');
SELECT col_default_is('pgportfolio', 'instruments', 'multiplier', '1', 'instruments.multiplier defaults to 1');
SELECT is(
    (SELECT attidentity::text FROM pg_attribute
     WHERE attrelid = 'pgportfolio.market_price_history'::regclass AND attname = 'mark_id'),
    'a',
    'market_price_history.mark_id is GENERATED ALWAYS AS IDENTITY'
);
SELECT col_default_is('pgportfolio', 'events', 'fee', '0', 'events.fee defaults to 0');
SELECT col_default_is('pgportfolio', 'events', 'realized_pnl', '0', 'events.realized_pnl defaults to 0');

-- ---------------------------------------------------------------- keys
SELECT col_is_pk('pgportfolio', 'portfolios', ARRAY['portfolio_id'], 'portfolios is keyed by portfolio_id');
SELECT col_is_pk('pgportfolio', 'portfolio_access', ARRAY['portfolio_id', 'grantee'],
    'portfolio_access is keyed by (portfolio_id, grantee)');
SELECT col_is_pk('pgportfolio', 'positions', ARRAY['portfolio_id', 'symbol'],
    'positions is keyed by (portfolio_id, symbol): one open position per symbol');
SELECT col_is_pk('pgportfolio', 'market_prices', ARRAY['symbol'], 'market_prices is keyed by symbol');
SELECT col_is_pk('pgportfolio', 'events', ARRAY['portfolio_id', 'portfolio_version'],
    'events is keyed by (portfolio_id, portfolio_version)');
-- Request id first: a look-up by request id then has no other index to take
-- (sql/034_events.sql, and tests/test_plan_stability.py).
SELECT col_is_unique('pgportfolio', 'events', ARRAY['request_id', 'portfolio_id'],
    'a request id is unique within a portfolio');
SELECT fk_ok('pgportfolio', 'portfolio_access', ARRAY['portfolio_id'], 'pgportfolio', 'portfolios', ARRAY['portfolio_id'],
    'portfolio_access.portfolio_id references portfolios');
-- No key from positions to portfolios either: see events below; portfolios are never deleted.
SELECT hasnt_fk('pgportfolio', 'positions', 'positions references nothing (writers hold the portfolio''s row lock)');
-- No key from events to portfolios: every writer holds the portfolio's row lock (the check
-- cost about 7 µs per event); verify_portfolio and the hash chain check the log instead.
SELECT hasnt_fk('pgportfolio', 'events', 'events references nothing (writers hold the portfolio''s row lock)');
SELECT hasnt_fk('pgportfolio', 'market_prices', 'market_prices references nothing (marks are global per symbol)');
SELECT col_is_pk('pgportfolio', 'market_price_history', ARRAY['symbol', 'as_of', 'mark_id'],
    'market_price_history is keyed by (symbol, as_of, mark_id): the order of price_at()');
SELECT is(
    (SELECT pg_get_indexdef(conindid) FROM pg_constraint
     WHERE conrelid = 'pgportfolio.market_price_history'::regclass AND contype = 'p'),
    'CREATE UNIQUE INDEX market_price_history_pkey ON pgportfolio.market_price_history '
    'USING btree (symbol, as_of, mark_id) INCLUDE (price)',
    'the history''s key index carries the price, so price_at() reads the index only'
);
SELECT col_is_pk('pgportfolio', 'instruments', ARRAY['symbol'], 'instruments is keyed by symbol');
SELECT hasnt_fk('pgportfolio', 'instruments', 'instruments references nothing (a symbol need not be held or marked)');

SELECT set_eq(
    $$SELECT conrelid::regclass::text, conname::text FROM pg_constraint
      WHERE connamespace = 'pgportfolio'::regnamespace AND contype = 'c' AND conrelid <> 0$$,
    $$VALUES
        ('pgportfolio.positions', 'positions_cost_basis_sign'),
        ('pgportfolio.multiplier_changes', 'multiplier_changes_one_row'),
        ('pgportfolio.market_prices', 'market_prices_price_valid'),
        ('pgportfolio.market_prices', 'market_prices_version_positive'),
        ('pgportfolio.market_prices', 'market_prices_as_of_finite'),
        ('pgportfolio.market_prices', 'market_prices_source_valid'),
        ('pgportfolio.market_price_history', 'market_price_history_price_valid'),
        ('pgportfolio.market_price_history', 'market_price_history_as_of_finite'),
        ('pgportfolio.market_price_history', 'market_price_history_source_valid'),
        ('pgportfolio.instruments', 'instruments_multiplier_valid'),
        ('pgportfolio.instruments', 'instruments_description_valid'),
        ('pgportfolio.events', 'events_fill_shape'),
        ('pgportfolio.daily_closes', 'daily_closes_day_finite'),
        ('pgportfolio.daily_closes', 'daily_closes_version_positive'),
        ('pgportfolio.daily_closes', 'daily_closes_equity'),
        ('pgportfolio.daily_closes', 'daily_closes_unrealized'),
        ('pgportfolio.daily_closes', 'daily_closes_equity_split'),
        ('pgportfolio.daily_close_positions', 'daily_close_positions_value'),
        ('pgportfolio.daily_close_positions', 'daily_close_positions_unrealized')$$,
    'the check constraints are exactly the documented ones'
);
-- The hot tables' single-column rules are domains (sql/025_domains.sql).
SELECT set_eq(
    $$SELECT contypid::regtype::text, conname::text FROM pg_constraint
      WHERE connamespace = 'pgportfolio'::regnamespace AND contypid <> 0$$,
    $$VALUES
        ('pgportfolio.finite_number', 'finite_number_check'),
        ('pgportfolio.non_negative_number', 'non_negative_number_check'),
        ('pgportfolio.positive_number', 'positive_number_check'),
        ('pgportfolio.nonzero_number', 'nonzero_number_check'),
        ('pgportfolio.open_quantity', 'open_quantity_check'),
        ('pgportfolio.initial_cash_amount', 'initial_cash_amount_check'),
        ('pgportfolio.contract_multiplier', 'contract_multiplier_check'),
        ('pgportfolio.row_version', 'row_version_check'),
        ('pgportfolio.symbol', 'symbol_check'),
        ('pgportfolio.portfolio_name', 'portfolio_name_check'),
        ('pgportfolio.currency_code', 'currency_code_check'),
        ('pgportfolio.event_kind', 'event_kind_check')$$,
    'the domain constraints are exactly the documented ones'
);
SELECT is(
    (SELECT count(*)::integer FROM pg_constraint
     WHERE conrelid IN ('pgportfolio.portfolios'::regclass, 'pgportfolio.positions'::regclass,
                        'pgportfolio.events'::regclass) AND contype = 'c'),
    2,
    'the hot tables keep only the checks that relate two columns (a table check is re-read for every write)'
);
SELECT is(
    (SELECT array_agg(conname::text ORDER BY conname) FROM pg_constraint
     WHERE connamespace = 'pgportfolio'::regnamespace AND (NOT convalidated OR condeferrable)),
    NULL,
    'every constraint is validated and not deferrable'
);

-- ---------------------------------------------------------------- append-only events: triggers
SELECT has_trigger('pgportfolio', 'events', 'events_append_only', 'events has the append-only row trigger');
SELECT trigger_is('pgportfolio', 'events', 'events_append_only', 'pgportfolio', 'events_refuse_change',
    'events_append_only calls events_refuse_change');
SELECT has_trigger('pgportfolio', 'events', 'events_no_truncate', 'events has the no-truncate trigger');
SELECT trigger_is('pgportfolio', 'events', 'events_no_truncate', 'pgportfolio', 'events_refuse_change',
    'events_no_truncate calls events_refuse_change');
-- The writers compute chain_hash themselves (_event_hash): no per-row trigger does.
SELECT hasnt_trigger('pgportfolio', 'events', 'events_chain', 'events has no hash-chain trigger (the writers hash)');
SELECT hasnt_function('pgportfolio', 'events_chain', 'the events_chain trigger function is gone');
-- A (ALWAYS), not O (origin only): session_replication_role = replica must not skip them.
SELECT is(
    (SELECT array_agg(tgname::text || ':' || tgenabled::text ORDER BY tgname) FROM pg_trigger
     WHERE tgrelid = 'pgportfolio.events'::regclass AND NOT tgisinternal),
    ARRAY['events_append_only:A', 'events_no_truncate:A'],
    'the two events triggers (append-only, no truncate) are ENABLE ALWAYS, and there is no other'
);

-- ---------------------------------------------------------------- portfolios: direct writes
SELECT lives_ok(
    $$INSERT INTO pgportfolio.portfolios (name, currency, owner_role, initial_cash, cash_balance)
      VALUES ('probe 030', 'USD', 'postgres', 0, 0)$$,
    'portfolios: a valid row with zero cash can be inserted directly by the superuser'
);
DO $$
BEGIN
    PERFORM set_config('test.pid',
        (SELECT max(portfolio_id) FROM pgportfolio.portfolios WHERE name = 'probe 030')::text, true);
END
$$;
SELECT is(
    (SELECT (realized_pnl::numeric, version::bigint) FROM pgportfolio.portfolios WHERE portfolio_id = current_setting('test.pid')::bigint),
    ROW(0::numeric, 1::bigint),
    'portfolios: defaults give realized 0 and version 1'
);
SELECT throws_ok(
    $$INSERT INTO pgportfolio.portfolios (portfolio_id, name, currency, owner_role, initial_cash, cash_balance)
      VALUES (1000000, 'x', 'USD', 'postgres', 0, 0)$$,
    '428C9', NULL, 'portfolios: portfolio_id cannot be chosen by the caller (GENERATED ALWAYS)'
);
SELECT throws_ok(
    $$INSERT INTO pgportfolio.portfolios (name, currency, owner_role, initial_cash, cash_balance)
      VALUES ('', 'USD', 'postgres', 0, 0)$$,
    '23514', 'value for domain pgportfolio.portfolio_name violates check constraint "portfolio_name_check"',
    'portfolios: an empty name is refused by pgportfolio.portfolio_name'
);
SELECT throws_ok(
    $$INSERT INTO pgportfolio.portfolios (name, currency, owner_role, initial_cash, cash_balance)
      VALUES (' padded', 'USD', 'postgres', 0, 0)$$,
    '23514', 'value for domain pgportfolio.portfolio_name violates check constraint "portfolio_name_check"',
    'portfolios: a name with a leading space is refused by pgportfolio.portfolio_name'
);
SELECT throws_ok(
    $$INSERT INTO pgportfolio.portfolios (name, currency, owner_role, initial_cash, cash_balance)
      VALUES (E'bad\x07bell', 'USD', 'postgres', 0, 0)$$,
    '23514', 'value for domain pgportfolio.portfolio_name violates check constraint "portfolio_name_check"',
    'portfolios: a name with a control character is refused by pgportfolio.portfolio_name'
);
SELECT throws_ok(
    $$INSERT INTO pgportfolio.portfolios (name, currency, owner_role, initial_cash, cash_balance)
      VALUES (repeat('n', 201), 'USD', 'postgres', 0, 0)$$,
    '23514', 'value for domain pgportfolio.portfolio_name violates check constraint "portfolio_name_check"',
    'portfolios: a 201-character name is refused by pgportfolio.portfolio_name'
);
SELECT throws_ok(
    $$INSERT INTO pgportfolio.portfolios (name, currency, owner_role, initial_cash, cash_balance)
      VALUES ('x', 'usd', 'postgres', 0, 0)$$,
    '23514', 'value for domain pgportfolio.currency_code violates check constraint "currency_code_check"',
    'portfolios: a lower-case currency is refused by pgportfolio.currency_code'
);
SELECT throws_ok(
    $$INSERT INTO pgportfolio.portfolios (name, currency, owner_role, initial_cash, cash_balance)
      VALUES ('x', 'USD', 'postgres', 'NaN', 0)$$,
    '23514', 'value for domain pgportfolio.initial_cash_amount violates check constraint "initial_cash_amount_check"',
    'portfolios: NaN initial cash is refused by pgportfolio.initial_cash_amount'
);
SELECT throws_ok(
    $$INSERT INTO pgportfolio.portfolios (name, currency, owner_role, initial_cash, cash_balance)
      VALUES ('x', 'USD', 'postgres', 'Infinity', 0)$$,
    '23514', 'value for domain pgportfolio.initial_cash_amount violates check constraint "initial_cash_amount_check"',
    'portfolios: Infinity initial cash is refused by pgportfolio.initial_cash_amount'
);
SELECT throws_ok(
    $$INSERT INTO pgportfolio.portfolios (name, currency, owner_role, initial_cash, cash_balance)
      VALUES ('x', 'USD', 'postgres', -0.01, 0)$$,
    '23514', 'value for domain pgportfolio.initial_cash_amount violates check constraint "initial_cash_amount_check"',
    'portfolios: negative initial cash is refused by pgportfolio.initial_cash_amount'
);
SELECT throws_ok(
    $$INSERT INTO pgportfolio.portfolios (name, currency, owner_role, initial_cash, cash_balance)
      VALUES ('x', 'USD', 'postgres', 1e15, 0)$$,
    '23514', 'value for domain pgportfolio.initial_cash_amount violates check constraint "initial_cash_amount_check"',
    'portfolios: initial cash of 1e15 is refused by pgportfolio.initial_cash_amount'
);
SELECT throws_ok(
    $$INSERT INTO pgportfolio.portfolios (name, currency, owner_role, initial_cash, cash_balance)
      VALUES ('x', 'USD', 'postgres', 0, -0.00000001)$$,
    '23514', 'value for domain pgportfolio.non_negative_number violates check constraint "non_negative_number_check"',
    'portfolios: a negative cash balance is refused by pgportfolio.non_negative_number'
);
SELECT throws_ok(
    $$INSERT INTO pgportfolio.portfolios (name, currency, owner_role, initial_cash, cash_balance)
      VALUES ('x', 'USD', 'postgres', 0, '-Infinity')$$,
    '23514', 'value for domain pgportfolio.non_negative_number violates check constraint "non_negative_number_check"',
    'portfolios: -Infinity cash is refused by pgportfolio.non_negative_number'
);
SELECT throws_ok(
    $$INSERT INTO pgportfolio.portfolios (name, currency, owner_role, initial_cash, cash_balance, realized_pnl)
      VALUES ('x', 'USD', 'postgres', 0, 0, 'NaN')$$,
    '23514', 'value for domain pgportfolio.finite_number violates check constraint "finite_number_check"',
    'portfolios: NaN realized P&L is refused by pgportfolio.finite_number'
);
SELECT throws_ok(
    $$INSERT INTO pgportfolio.portfolios (name, currency, owner_role, initial_cash, cash_balance, version)
      VALUES ('x', 'USD', 'postgres', 0, 0, 0)$$,
    '23514', 'value for domain pgportfolio.row_version violates check constraint "row_version_check"',
    'portfolios: version 0 is refused by pgportfolio.row_version'
);
SELECT throws_ok(
    $$UPDATE pgportfolio.portfolios SET cash_balance = -1 WHERE portfolio_id = current_setting('test.pid')::bigint$$,
    '23514', 'value for domain pgportfolio.non_negative_number violates check constraint "non_negative_number_check"',
    'portfolios: an UPDATE to negative cash is refused too'
);
SELECT throws_ok(
    $$INSERT INTO pgportfolio.portfolios (name, currency, owner_role, initial_cash)
      VALUES ('x', 'USD', 'postgres', 0)$$,
    '23502', NULL, 'portfolios: cash_balance has no default and is NOT NULL'
);

-- ---------------------------------------------------------------- positions: direct writes
SELECT lives_ok(
    $$INSERT INTO pgportfolio.positions (portfolio_id, symbol, quantity, cost_basis)
      VALUES (current_setting('test.pid')::bigint, 'OK.1', -0.12345678, -1.5)$$,
    'positions: a valid short row with 8-place quantity can be inserted directly'
);
SELECT throws_ok(
    $$INSERT INTO pgportfolio.positions (portfolio_id, symbol, quantity, cost_basis)
      VALUES (current_setting('test.pid')::bigint, 'OK.1', 1, 1)$$,
    '23505', NULL, 'positions: a second row for the same portfolio and symbol is a unique violation'
);
-- No foreign key (see 032_positions.sql): the table alone accepts a position of an unknown
-- portfolio; only the owner writes tables, and every function locks the portfolio first.
SAVEPOINT orphan;
SELECT lives_ok(
    $$INSERT INTO pgportfolio.positions (portfolio_id, symbol, quantity, cost_basis)
      VALUES (-1, 'OK', 1, 1)$$,
    'positions: without a foreign key, the owner could insert a position of an unknown portfolio'
);
ROLLBACK TO SAVEPOINT orphan;
SELECT throws_ok(
    $$INSERT INTO pgportfolio.positions (portfolio_id, symbol, quantity, cost_basis)
      VALUES (current_setting('test.pid')::bigint, 'aapl', 1, 1)$$,
    '23514', 'value for domain pgportfolio.symbol violates check constraint "symbol_check"',
    'positions: a lower-case symbol is refused by pgportfolio.symbol'
);
SELECT throws_ok(
    $$INSERT INTO pgportfolio.positions (portfolio_id, symbol, quantity, cost_basis)
      VALUES (current_setting('test.pid')::bigint, repeat('A', 33), 1, 1)$$,
    '23514', 'value for domain pgportfolio.symbol violates check constraint "symbol_check"',
    'positions: a 33-character symbol is refused by pgportfolio.symbol'
);
SELECT throws_ok(
    $$INSERT INTO pgportfolio.positions (portfolio_id, symbol, quantity, cost_basis)
      VALUES (current_setting('test.pid')::bigint, 'ZERO', 0, 0)$$,
    '23514', 'value for domain pgportfolio.open_quantity violates check constraint "open_quantity_check"',
    'positions: a zero quantity is refused by pgportfolio.open_quantity'
);
SELECT throws_ok(
    $$INSERT INTO pgportfolio.positions (portfolio_id, symbol, quantity, cost_basis)
      VALUES (current_setting('test.pid')::bigint, 'NAN', 'NaN', 1)$$,
    '23514', 'value for domain pgportfolio.open_quantity violates check constraint "open_quantity_check"',
    'positions: a NaN quantity is refused by pgportfolio.open_quantity'
);
SELECT throws_ok(
    $$INSERT INTO pgportfolio.positions (portfolio_id, symbol, quantity, cost_basis)
      VALUES (current_setting('test.pid')::bigint, 'BIG', -1e15, -1e15)$$,
    '23514', 'value for domain pgportfolio.open_quantity violates check constraint "open_quantity_check"',
    'positions: a quantity of -1e15 is refused by pgportfolio.open_quantity'
);
SELECT throws_ok(
    $$INSERT INTO pgportfolio.positions (portfolio_id, symbol, quantity, cost_basis)
      VALUES (current_setting('test.pid')::bigint, 'FINE', 1.123456789, 1)$$,
    '23514', 'value for domain pgportfolio.open_quantity violates check constraint "open_quantity_check"',
    'positions: a quantity with 9 decimal places is refused by pgportfolio.open_quantity'
);
SELECT throws_ok(
    $$INSERT INTO pgportfolio.positions (portfolio_id, symbol, quantity, cost_basis)
      VALUES (current_setting('test.pid')::bigint, 'SIGN', 1, -1)$$,
    '23514', 'new row for relation "positions" violates check constraint "positions_cost_basis_sign"',
    'positions: a long with a negative cost basis violates positions_cost_basis_sign'
);
SELECT throws_ok(
    $$INSERT INTO pgportfolio.positions (portfolio_id, symbol, quantity, cost_basis)
      VALUES (current_setting('test.pid')::bigint, 'SIGN', -1, 1)$$,
    '23514', 'new row for relation "positions" violates check constraint "positions_cost_basis_sign"',
    'positions: a short with a positive cost basis violates positions_cost_basis_sign'
);
SELECT throws_ok(
    $$INSERT INTO pgportfolio.positions (portfolio_id, symbol, quantity, cost_basis)
      VALUES (current_setting('test.pid')::bigint, 'INF', 1, 'Infinity')$$,
    '23514', 'value for domain pgportfolio.finite_number violates check constraint "finite_number_check"',
    'positions: an infinite cost basis is refused by pgportfolio.finite_number'
);
SELECT throws_ok(
    $$INSERT INTO pgportfolio.positions (portfolio_id, symbol, quantity, cost_basis, realized_pnl)
      VALUES (current_setting('test.pid')::bigint, 'PNL', 1, 1, 'NaN')$$,
    '23514', 'value for domain pgportfolio.finite_number violates check constraint "finite_number_check"',
    'positions: NaN realized P&L is refused by pgportfolio.finite_number'
);
SELECT throws_ok(
    $$INSERT INTO pgportfolio.positions (portfolio_id, symbol, quantity, cost_basis, version)
      VALUES (current_setting('test.pid')::bigint, 'VER', 1, 1, 0)$$,
    '23514', 'value for domain pgportfolio.row_version violates check constraint "row_version_check"',
    'positions: version 0 is refused by pgportfolio.row_version'
);
SELECT lives_ok(
    $$INSERT INTO pgportfolio.positions (portfolio_id, symbol, quantity, cost_basis)
      VALUES (current_setting('test.pid')::bigint, 'FREE', 5, 0)$$,
    'positions: a zero cost basis is allowed with any sign of quantity'
);

-- ---------------------------------------------------------------- market_prices: direct writes
SELECT lives_ok(
    $$INSERT INTO pgportfolio.market_prices (symbol, price, mark_id) VALUES ('PROBE030', 0.00000001, 1)$$,
    'market_prices: a valid mark can be inserted directly'
);
SELECT throws_ok(
    $$INSERT INTO pgportfolio.market_prices (symbol, price, mark_id) VALUES ('PROBE030', 2, 1)$$,
    '23505', NULL, 'market_prices: one mark per symbol'
);
SELECT throws_ok(
    $$INSERT INTO pgportfolio.market_prices (symbol, price, mark_id) VALUES ('bad sym', 1, 1)$$,
    '23514', 'value for domain pgportfolio.symbol violates check constraint "symbol_check"',
    'market_prices: an invalid symbol violates the symbol domain'
);
SELECT throws_ok(
    $$INSERT INTO pgportfolio.market_prices (symbol, price, mark_id) VALUES ('P0', 0, 1)$$,
    '23514', 'new row for relation "market_prices" violates check constraint "market_prices_price_valid"',
    'market_prices: a zero price violates market_prices_price_valid'
);
SELECT throws_ok(
    $$INSERT INTO pgportfolio.market_prices (symbol, price, mark_id) VALUES ('PNEG', -1, 1)$$,
    '23514', 'new row for relation "market_prices" violates check constraint "market_prices_price_valid"',
    'market_prices: a negative price violates market_prices_price_valid'
);
SELECT throws_ok(
    $$INSERT INTO pgportfolio.market_prices (symbol, price, mark_id) VALUES ('PNAN', 'NaN', 1)$$,
    '23514', 'new row for relation "market_prices" violates check constraint "market_prices_price_valid"',
    'market_prices: a NaN price violates market_prices_price_valid'
);
SELECT throws_ok(
    $$INSERT INTO pgportfolio.market_prices (symbol, price, mark_id) VALUES ('PBIG', 1e15, 1)$$,
    '23514', 'new row for relation "market_prices" violates check constraint "market_prices_price_valid"',
    'market_prices: a price of 1e15 violates market_prices_price_valid'
);
SELECT throws_ok(
    $$INSERT INTO pgportfolio.market_prices (symbol, price, version, mark_id) VALUES ('PVER', 1, 0, 1)$$,
    '23514', 'new row for relation "market_prices" violates check constraint "market_prices_version_positive"',
    'market_prices: version 0 violates market_prices_version_positive'
);
SELECT throws_ok(
    $$INSERT INTO pgportfolio.market_prices (symbol, price, mark_id, as_of) VALUES ('PINF', 1, 1, 'infinity')$$,
    '23514', 'new row for relation "market_prices" violates check constraint "market_prices_as_of_finite"',
    'market_prices: an infinite as_of violates market_prices_as_of_finite'
);
SELECT throws_ok(
    $$INSERT INTO pgportfolio.market_prices (symbol, price, mark_id, source) VALUES ('PSRC', 1, 1, '')$$,
    '23514', 'new row for relation "market_prices" violates check constraint "market_prices_source_valid"',
    'market_prices: an empty source violates market_prices_source_valid'
);

-- ---------------------------------------------------------------- market_price_history: direct writes
SELECT lives_ok(
    $$INSERT INTO pgportfolio.market_price_history (symbol, as_of, price, source)
      VALUES ('PROBE030', '2026-01-02 15:30+00', 0.00000001, repeat('s', 64)),
             ('PROBE030', '2026-01-02 15:30+00', 0.00000001, NULL)$$,
    'market_price_history: valid marks can be inserted directly, two with one as_of (mark_id tells them apart)'
);
SELECT throws_ok(
    $$INSERT INTO pgportfolio.market_price_history (symbol, as_of, mark_id, price)
      VALUES ('PROBE030', now(), 1, 1)$$,
    '428C9', NULL, 'market_price_history: mark_id is always generated'
);
SELECT throws_ok(
    $$INSERT INTO pgportfolio.market_price_history (symbol, as_of, price) VALUES ('bad sym', now(), 1)$$,
    '23514', 'value for domain pgportfolio.symbol violates check constraint "symbol_check"',
    'market_price_history: an invalid symbol violates the symbol domain'
);
SELECT throws_ok(
    $$INSERT INTO pgportfolio.market_price_history (symbol, as_of, price) VALUES ('H0', now(), 0)$$,
    '23514', 'new row for relation "market_price_history" violates check constraint "market_price_history_price_valid"',
    'market_price_history: a zero price violates market_price_history_price_valid'
);
SELECT throws_ok(
    $$INSERT INTO pgportfolio.market_price_history (symbol, as_of, price) VALUES ('HNAN', now(), 'NaN')$$,
    '23514', 'new row for relation "market_price_history" violates check constraint "market_price_history_price_valid"',
    'market_price_history: a NaN price violates market_price_history_price_valid'
);
SELECT throws_ok(
    $$INSERT INTO pgportfolio.market_price_history (symbol, as_of, price) VALUES ('HINF', '-infinity', 1)$$,
    '23514', 'new row for relation "market_price_history" violates check constraint "market_price_history_as_of_finite"',
    'market_price_history: -infinity violates market_price_history_as_of_finite'
);
SELECT throws_ok(
    $$INSERT INTO pgportfolio.market_price_history (symbol, as_of, price, source) VALUES ('HSRC', now(), 1, repeat('s', 65))$$,
    '23514', 'new row for relation "market_price_history" violates check constraint "market_price_history_source_valid"',
    'market_price_history: a 65-character source violates market_price_history_source_valid'
);

-- ---------------------------------------------------------------- instruments: direct writes
SELECT lives_ok(
    $$INSERT INTO pgportfolio.instruments (symbol) VALUES ('ES:2027H')$$,
    'instruments: a symbol alone is a valid instrument (multiplier 1, no description)'
);
SELECT throws_ok(
    $$INSERT INTO pgportfolio.instruments (symbol) VALUES ('ES:2027H')$$,
    '23505', NULL, 'instruments: one row per symbol'
);
SELECT throws_ok(
    $$INSERT INTO pgportfolio.instruments (symbol) VALUES ('es')$$,
    '23514', 'value for domain pgportfolio.symbol violates check constraint "symbol_check"',
    'instruments: a lower-case symbol violates the symbol domain'
);
SELECT throws_ok(
    $$INSERT INTO pgportfolio.instruments (symbol, multiplier) VALUES ('I0', 0)$$,
    '23514', 'new row for relation "instruments" violates check constraint "instruments_multiplier_valid"',
    'instruments: a zero multiplier violates instruments_multiplier_valid'
);
SELECT throws_ok(
    $$INSERT INTO pgportfolio.instruments (symbol, multiplier) VALUES ('INEG', -5)$$,
    '23514', 'new row for relation "instruments" violates check constraint "instruments_multiplier_valid"',
    'instruments: a negative multiplier violates instruments_multiplier_valid'
);
SELECT throws_ok(
    $$INSERT INTO pgportfolio.instruments (symbol, multiplier) VALUES ('INAN', 'NaN')$$,
    '23514', 'new row for relation "instruments" violates check constraint "instruments_multiplier_valid"',
    'instruments: a NaN multiplier violates instruments_multiplier_valid'
);
SELECT throws_ok(
    $$INSERT INTO pgportfolio.instruments (symbol, multiplier) VALUES ('IINF', 'Infinity')$$,
    '23514', 'new row for relation "instruments" violates check constraint "instruments_multiplier_valid"',
    'instruments: an infinite multiplier violates instruments_multiplier_valid'
);
SELECT throws_ok(
    $$INSERT INTO pgportfolio.instruments (symbol, multiplier) VALUES ('ISCL', 0.000000001)$$,
    '23514', 'new row for relation "instruments" violates check constraint "instruments_multiplier_valid"',
    'instruments: a multiplier with 9 decimal places violates instruments_multiplier_valid'
);
SELECT throws_ok(
    $$INSERT INTO pgportfolio.instruments (symbol, description) VALUES ('IDSC', E'two\nlines')$$,
    '23514', 'new row for relation "instruments" violates check constraint "instruments_description_valid"',
    'instruments: a description with a control character violates instruments_description_valid'
);

-- ---------------------------------------------------------------- events: direct writes
SELECT lives_ok(
    $$INSERT INTO pgportfolio.events (portfolio_id, portfolio_version, kind, operation, amount, cash_delta,
                                      cash_balance, request_id, acting_role, chain_hash)
      VALUES (current_setting('test.pid')::bigint, 1, 'create', 'create_portfolio', 0, 0, 0, 'probe-req', 'postgres', '\x00')$$,
    'events: a valid create event can be inserted directly'
);
SELECT lives_ok(
    $$INSERT INTO pgportfolio.events (portfolio_id, portfolio_version, kind, operation, symbol, quantity, price,
                                      cash_delta, cash_balance, position_quantity, position_cost_basis, multiplier, acting_role, chain_hash)
      VALUES (current_setting('test.pid')::bigint, 2, 'open', 'apply_fill', 'OK.1', 1, 1, -1, 0, 1, 1, 1, 'postgres', '\x00')$$,
    'events: a valid fill event can be inserted directly'
);
SELECT throws_ok(
    $$INSERT INTO pgportfolio.events (portfolio_id, portfolio_version, kind, operation, cash_delta, cash_balance, acting_role, chain_hash)
      VALUES (current_setting('test.pid')::bigint, 1, 'deposit', 'deposit_cash', 1, 1, 'postgres', '\x00')$$,
    '23505', NULL, 'events: a portfolio version can be logged only once'
);
SELECT throws_ok(
    $$INSERT INTO pgportfolio.events (portfolio_id, portfolio_version, kind, operation, cash_delta, cash_balance,
                                      request_id, acting_role, chain_hash)
      VALUES (current_setting('test.pid')::bigint, 3, 'deposit', 'deposit_cash', 1, 1, 'probe-req', 'postgres', '\x00')$$,
    '23505', NULL, 'events: a request id can be used only once per portfolio'
);
SELECT throws_ok(
    $$INSERT INTO pgportfolio.events (portfolio_id, portfolio_version, kind, operation, cash_delta, cash_balance, acting_role)
      VALUES (current_setting('test.pid')::bigint, 3, 'deposit', 'deposit_cash', 0, 0, 'postgres')$$,
    '23502', 'null value in column "chain_hash" of relation "events" violates not-null constraint',
    'events: a direct insert must supply chain_hash (NOT NULL; no trigger computes it)'
);
SELECT throws_ok(
    $$INSERT INTO pgportfolio.events (portfolio_id, portfolio_version, kind, operation, cash_delta, cash_balance, acting_role, chain_hash)
      VALUES (current_setting('test.pid')::bigint, 3, 'bogus', 'x', 0, 0, 'postgres', '\x00')$$,
    '23514', 'value for domain pgportfolio.event_kind violates check constraint "event_kind_check"',
    'events: an unknown kind is refused by pgportfolio.event_kind'
);
SELECT throws_ok(
    $$INSERT INTO pgportfolio.events (portfolio_id, portfolio_version, kind, operation, cash_delta, cash_balance, multiplier, acting_role, chain_hash)
      VALUES (current_setting('test.pid')::bigint, 3, 'open', 'apply_fill', 0, 0, 1, 'postgres', '\x00')$$,
    '23514', 'new row for relation "events" violates check constraint "events_fill_shape"',
    'events: a fill kind without symbol, quantity, price and position violates events_fill_shape'
);
SELECT throws_ok(
    $$INSERT INTO pgportfolio.events (portfolio_id, portfolio_version, kind, operation, symbol, quantity, price,
                                      cash_delta, cash_balance, position_quantity, acting_role, chain_hash)
      VALUES (current_setting('test.pid')::bigint, 3, 'deposit', 'deposit_cash', 'X', 1, 1, 0, 0, 1, 'postgres', '\x00')$$,
    '23514', 'new row for relation "events" violates check constraint "events_fill_shape"',
    'events: a cash kind with fill columns violates events_fill_shape'
);
SELECT throws_ok(
    $$INSERT INTO pgportfolio.events (portfolio_id, portfolio_version, kind, operation, fee, cash_delta, cash_balance, acting_role, chain_hash)
      VALUES (current_setting('test.pid')::bigint, 3, 'fee', 'charge_fee', -1, 1, 1, 'postgres', '\x00')$$,
    '23514', 'value for domain pgportfolio.non_negative_number violates check constraint "non_negative_number_check"',
    'events: a negative fee is refused by pgportfolio.non_negative_number'
);
SELECT throws_ok(
    $$INSERT INTO pgportfolio.events (portfolio_id, portfolio_version, kind, operation, symbol, quantity, price,
                                      cash_delta, cash_balance, position_quantity, multiplier, acting_role, chain_hash)
      VALUES (current_setting('test.pid')::bigint, 3, 'open', 'apply_fill', 'X', 1, 0, 0, 0, 1, 1, 'postgres', '\x00')$$,
    '23514', 'value for domain pgportfolio.positive_number violates check constraint "positive_number_check"',
    'events: a zero price is refused by pgportfolio.positive_number'
);
SELECT throws_ok(
    $$INSERT INTO pgportfolio.events (portfolio_id, portfolio_version, kind, operation, symbol, quantity, price,
                                      cash_delta, cash_balance, position_quantity, multiplier, acting_role, chain_hash)
      VALUES (current_setting('test.pid')::bigint, 3, 'open', 'apply_fill', 'X', 0, 1, 0, 0, 1, 1, 'postgres', '\x00')$$,
    '23514', 'value for domain pgportfolio.nonzero_number violates check constraint "nonzero_number_check"',
    'events: a zero fill quantity is refused by pgportfolio.nonzero_number'
);
SELECT throws_ok(
    $$INSERT INTO pgportfolio.events (portfolio_id, portfolio_version, kind, operation, cash_delta, cash_balance, acting_role, chain_hash)
      VALUES (current_setting('test.pid')::bigint, 3, 'withdraw', 'withdraw_cash', -1, -1, 'postgres', '\x00')$$,
    '23514', 'value for domain pgportfolio.non_negative_number violates check constraint "non_negative_number_check"',
    'events: a negative cash balance is refused by pgportfolio.non_negative_number'
);
SELECT throws_ok(
    $$INSERT INTO pgportfolio.events (portfolio_id, portfolio_version, kind, operation, cash_delta, cash_balance, acting_role, chain_hash)
      VALUES (current_setting('test.pid')::bigint, 3, 'deposit', 'deposit_cash', 'NaN', 0, 'postgres', '\x00')$$,
    '23514', 'value for domain pgportfolio.finite_number violates check constraint "finite_number_check"',
    'events: a NaN cash delta is refused by pgportfolio.finite_number'
);
SELECT throws_ok(
    $$INSERT INTO pgportfolio.events (portfolio_id, portfolio_version, kind, operation, symbol, quantity, price,
                                      cash_delta, cash_balance, position_quantity, position_cost_basis, multiplier, acting_role, chain_hash)
      VALUES (current_setting('test.pid')::bigint, 3, 'add', 'apply_fill', 'X', 1, 1, 0, 0, 1, '-Infinity', 1, 'postgres', '\x00')$$,
    '23514', 'value for domain pgportfolio.finite_number violates check constraint "finite_number_check"',
    'events: an infinite position cost basis is refused by pgportfolio.finite_number'
);
-- The domains' strict upper bounds (025_domains.sql): numeric orders NaN above Infinity, so
-- each bound also refuses NaN.
SELECT throws_ok(
    $$INSERT INTO pgportfolio.events (portfolio_id, portfolio_version, kind, operation, symbol, quantity, price,
                                      cash_delta, cash_balance, position_quantity, multiplier, acting_role, chain_hash)
      VALUES (current_setting('test.pid')::bigint, 3, 'open', 'apply_fill', 'X', 1, 'NaN', 0, 0, 1, 1, 'postgres', '\x00')$$,
    '23514', 'value for domain pgportfolio.positive_number violates check constraint "positive_number_check"',
    'events: a NaN price is refused by pgportfolio.positive_number (NaN > 0 holds: its upper bound refuses NaN)'
);
SELECT throws_ok(
    $$INSERT INTO pgportfolio.events (portfolio_id, portfolio_version, kind, operation, symbol, quantity, price,
                                      cash_delta, cash_balance, position_quantity, multiplier, acting_role, chain_hash)
      VALUES (current_setting('test.pid')::bigint, 3, 'open', 'apply_fill', 'X', 'Infinity', 1, 0, 0, 1, 1, 'postgres', '\x00')$$,
    '23514', 'value for domain pgportfolio.nonzero_number violates check constraint "nonzero_number_check"',
    'events: an infinite quantity is refused by pgportfolio.nonzero_number'
);
SELECT throws_ok(
    $$INSERT INTO pgportfolio.events (portfolio_id, portfolio_version, kind, operation, fee, amount, cash_delta,
                                      cash_balance, acting_role, chain_hash)
      VALUES (current_setting('test.pid')::bigint, 3, 'fee', 'charge_fee', 'Infinity', 1, -1, 0, 'postgres', '\x00')$$,
    '23514', 'value for domain pgportfolio.non_negative_number violates check constraint "non_negative_number_check"',
    'events: an infinite fee is refused by pgportfolio.non_negative_number (its upper bound: >= 0 alone would not)'
);
SELECT throws_ok(
    $$INSERT INTO pgportfolio.events (portfolio_id, portfolio_version, kind, operation, cash_delta, cash_balance,
                                      acting_role, chain_hash)
      VALUES (current_setting('test.pid')::bigint, 3, 'deposit', 'deposit_cash', 0, 'NaN', 'postgres', '\x00')$$,
    '23514', 'value for domain pgportfolio.non_negative_number violates check constraint "non_negative_number_check"',
    'events: a NaN cash balance is refused by pgportfolio.non_negative_number'
);
SELECT throws_ok(
    $$INSERT INTO pgportfolio.events (portfolio_id, portfolio_version, kind, operation, cash_delta, cash_balance,
                                      acting_role, chain_hash)
      VALUES (current_setting('test.pid')::bigint, 3, 'deposit', 'deposit_cash', 0, 'Infinity', 'postgres', '\x00')$$,
    '23514', 'value for domain pgportfolio.non_negative_number violates check constraint "non_negative_number_check"',
    'events: an infinite cash balance is refused by pgportfolio.non_negative_number'
);

-- ---------------------------------------------------------------- events are append-only, even for the superuser
SELECT throws_ok(
    $$UPDATE pgportfolio.events SET cash_delta = 1 WHERE portfolio_id = current_setting('test.pid')::bigint$$,
    '42501', 'pgportfolio.events is append-only',
    'events: UPDATE is refused with 42501 even for the superuser'
);
SELECT throws_ok(
    $$DELETE FROM pgportfolio.events WHERE portfolio_id = current_setting('test.pid')::bigint$$,
    '42501', 'pgportfolio.events is append-only',
    'events: DELETE is refused with 42501 even for the superuser'
);
-- TRUNCATE needs an ACCESS EXCLUSIVE lock before its trigger can refuse; take it without
-- waiting so that this file never queues behind (or blocks) another session using events.
CREATE FUNCTION pg_temp.events_lockable() RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    LOCK TABLE pgportfolio.events IN ACCESS EXCLUSIVE MODE NOWAIT;
    RETURN true;
EXCEPTION WHEN lock_not_available THEN
    RETURN false;
END;
$$;
SELECT CASE WHEN pg_temp.events_lockable()
    THEN throws_ok(
        $$TRUNCATE pgportfolio.events CASCADE$$,
        '42501', 'pgportfolio.events is append-only',
        'events: TRUNCATE is refused with 42501 even for the superuser')
    ELSE skip('events is in use by another session; TRUNCATE not attempted', 1)
END;
SELECT is(
    (SELECT count(*) FROM pgportfolio.events WHERE portfolio_id = current_setting('test.pid')::bigint),
    2::bigint,
    'events: both probe events are still there after the refused changes'
);
-- ---------------------------------------------------------------- events: the hash chain
-- The writers compute chain_hash (create_portfolio for version 1, the operations core for
-- the rest); here it is recomputed with the documented formula written out, independently
-- of _event_hash: sha256(previous hash, empty for version 1 || UTF-8 of the row literal of
-- every other column in table order, created_at as epoch seconds).
CREATE FUNCTION pg_temp.documented_hash(p_previous bytea, e pgportfolio.events) RETURNS bytea
LANGUAGE sql STABLE AS $$
    SELECT sha256(p_previous || convert_to(ROW(
        e.portfolio_id, e.portfolio_version, e.kind, e.operation, e.symbol, e.quantity, e.price, e.fee, e.amount,
        e.cash_delta, e.realized_pnl, e.cash_balance, e.position_quantity, e.position_cost_basis, e.request_id,
        EXTRACT(EPOCH FROM e.executed_at), e.order_id, e.tags, e.multiplier, e.acting_role,
        EXTRACT(EPOCH FROM e.created_at))::text, 'UTF8'))
$$;
DO $$
DECLARE
    p bigint := pgportfolio.create_portfolio('chain 030', 1000);
BEGIN
    PERFORM set_config('test.chain_pid', p::text, true);
    PERFORM pgportfolio.apply_fill(p, 'CHN.A', 3, 10.50, 0.25, 'chain-fill');
    PERFORM * FROM pgportfolio.apply_fills_arrays(
        ARRAY[p, p], ARRAY['CHN.A', NULL], ARRAY[1, NULL]::numeric[], ARRAY[11, NULL]::numeric[],
        p_operations => ARRAY['reduce_position', 'deposit_cash'], p_amounts => ARRAY[NULL, 5.5]::numeric[]
    );
    PERFORM pgportfolio.charge_fee(p, 1);
END
$$;
SELECT is(
    (SELECT chain_hash FROM pgportfolio.events
     WHERE portfolio_id = current_setting('test.chain_pid')::bigint AND portfolio_version = 1),
    (SELECT pg_temp.documented_hash(''::bytea, e) FROM pgportfolio.events AS e
     WHERE e.portfolio_id = current_setting('test.chain_pid')::bigint AND e.portfolio_version = 1),
    'events: create_portfolio writes version 1 with sha256 of its canonical text (the documented formula)'
);
SELECT is(
    (SELECT chain_hash FROM pgportfolio.events
     WHERE portfolio_id = current_setting('test.chain_pid')::bigint AND portfolio_version = 2),
    (SELECT pg_temp.documented_hash(e1.chain_hash, e2)
     FROM pgportfolio.events AS e1, pgportfolio.events AS e2
     WHERE e1.portfolio_id = current_setting('test.chain_pid')::bigint AND e1.portfolio_version = 1
       AND e2.portfolio_id = e1.portfolio_id AND e2.portfolio_version = 2),
    'events: apply_fill writes version 2 chained to the hash of version 1 (the documented formula)'
);
SELECT is(
    (SELECT array_agg(e.portfolio_version ORDER BY e.portfolio_version) FROM pgportfolio.events AS e
     JOIN pgportfolio.events AS prev
       ON prev.portfolio_id = e.portfolio_id AND prev.portfolio_version = e.portfolio_version - 1
     WHERE e.portfolio_id = current_setting('test.chain_pid')::bigint
       AND e.chain_hash = pg_temp.documented_hash(prev.chain_hash, e)),
    ARRAY[2, 3, 4, 5]::bigint[],
    'events: a fill, a batch of two (a verb and a cash move) and charge_fee all chain by the documented formula'
);
SELECT is(
    (SELECT chain_hash FROM pgportfolio.events
     WHERE portfolio_id = current_setting('test.pid')::bigint AND portfolio_version = 1),
    '\x00'::bytea,
    'events: a direct insert stores the chain_hash it supplies (nothing recomputes it; verify_portfolio checks it)'
);

SET LOCAL session_replication_role = replica;
SELECT throws_ok(
    $$UPDATE pgportfolio.events SET cash_delta = 1 WHERE portfolio_id = current_setting('test.pid')::bigint$$,
    '42501', 'pgportfolio.events is append-only',
    'events: UPDATE is refused under session_replication_role = replica too (ENABLE ALWAYS)'
);
SELECT throws_ok(
    $$DELETE FROM pgportfolio.events WHERE portfolio_id = current_setting('test.pid')::bigint$$,
    '42501', 'pgportfolio.events is append-only',
    'events: DELETE is refused under session_replication_role = replica too (ENABLE ALWAYS)'
);
SET LOCAL session_replication_role = origin;
SELECT lives_ok(
    $$UPDATE pgportfolio.events SET cash_delta = 1 WHERE false$$,
    'events: an UPDATE that touches no row is harmless (the trigger is per row)'
);
SELECT throws_ok(
    $$DELETE FROM pgportfolio.portfolios WHERE portfolio_id = current_setting('test.pid')::bigint$$,
    '42501', 'portfolios are never deleted',
    'portfolios: DELETE is refused with 42501 even for the superuser (events keep no foreign key to it)'
);
SELECT throws_ok(
    $$DELETE FROM pgportfolio.portfolios WHERE false$$,
    '42501', 'portfolios are never deleted',
    'portfolios: any DELETE statement is refused, even one that would match nothing'
);
SET LOCAL session_replication_role = replica;
SELECT throws_ok(
    $$DELETE FROM pgportfolio.portfolios WHERE portfolio_id = current_setting('test.pid')::bigint$$,
    '42501', 'portfolios are never deleted',
    'portfolios: DELETE is refused under session_replication_role = replica too (ENABLE ALWAYS)'
);
SET LOCAL session_replication_role = origin;
SELECT is(
    (SELECT array_agg(tgname::text || ':' || tgenabled::text ORDER BY tgname) FROM pg_trigger
     WHERE tgrelid = 'pgportfolio.portfolios'::regclass AND NOT tgisinternal),
    ARRAY['portfolios_no_delete:A', 'portfolios_no_truncate:A'],
    'portfolios has the two refusing triggers, ENABLE ALWAYS (TRUNCATE is refused the same way)'
);

-- ---------------------------------------------------------------- portfolio_access
SELECT lives_ok(
    $$INSERT INTO pgportfolio.portfolio_access (portfolio_id, grantee, granted_by)
      VALUES (current_setting('test.pid')::bigint, 'pgportfolio_trader', 'postgres')$$,
    'portfolio_access: a valid grant row can be inserted directly'
);
SELECT throws_ok(
    $$INSERT INTO pgportfolio.portfolio_access (portfolio_id, grantee, granted_by)
      VALUES (current_setting('test.pid')::bigint, 'pgportfolio_trader', 'postgres')$$,
    '23505', NULL, 'portfolio_access: a role is granted a portfolio at most once'
);
SELECT throws_ok(
    $$INSERT INTO pgportfolio.portfolio_access (portfolio_id, grantee, granted_by)
      VALUES (-1, 'pgportfolio_trader', 'postgres')$$,
    '23503', NULL, 'portfolio_access: an unknown portfolio is a foreign key violation'
);

-- ---------------------------------------------------------------- what the functions write satisfies the same rules
SELECT is(
    (SELECT count(*) FROM pgportfolio.positions WHERE portfolio_id = current_setting('test.pid')::bigint),
    2::bigint,
    'only the two valid probe positions were stored'
);
SELECT is(
    (SELECT count(*) FROM pgportfolio.market_prices WHERE symbol IN ('P0', 'PNEG', 'PNAN', 'PBIG', 'PVER')),
    0::bigint,
    'none of the refused marks was stored'
);

-- The symbol domain writes the rule out instead of calling _symbol_valid (a SQL function
-- in a check is inlined again wherever it is prepared): it must accept exactly what
-- _symbol_valid accepts. The domain's own expression is evaluated for every sample.
CREATE FUNCTION pg_temp.symbol_check_accepts(p_constraint oid, p_symbol text) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    v_accepts boolean;
BEGIN
    EXECUTE format(
        'SELECT %s FROM (SELECT $1 AS symbol) AS t',
        -- a domain's check names its value VALUE
        (SELECT regexp_replace(pg_get_expr(c.conbin, c.conrelid), '\mVALUE\M', 'symbol', 'g')
         FROM pg_constraint AS c WHERE c.oid = p_constraint)
    ) INTO v_accepts USING p_symbol;
    RETURN v_accepts;
END;
$$;
SELECT is(
    (SELECT array_agg(DISTINCT a.attrelid::regclass::text ORDER BY a.attrelid::regclass::text)
     FROM pg_attribute AS a
     WHERE a.attname = 'symbol' AND a.atttypid = 'pgportfolio.symbol'::regtype AND NOT a.attisdropped
     AND (SELECT c.relkind FROM pg_class AS c WHERE c.oid = a.attrelid) = 'r'),
    ARRAY[
        'pgportfolio.instruments', 'pgportfolio.market_price_history', 'pgportfolio.market_prices',
        'pgportfolio.positions'
    ],
    'every table that keeps a symbol as its own value types it with the symbol domain'
);
SELECT is(
    (SELECT count(*)::integer FROM pg_constraint AS c
     WHERE c.conname LIKE '%symbol%' AND c.connamespace = 'pgportfolio'::regnamespace),
    1,
    'the symbol rule is written once, as the domain''s check'
);
SELECT is_empty(
    $$SELECT c.conname, s.symbol
      FROM pg_constraint AS c
      CROSS JOIN unnest(ARRAY[
          '', 'A', 'AAPL', 'BRK.B', 'ES_Z6', 'EUR/USD', 'CL:F', 'X-1', repeat('A', 32), repeat('A', 33),
          'aapl', 'A B', 'A*', E'A\n', 'É', 'A' || chr(8203), repeat('É', 16), '0123456789'
      ]) AS s (symbol)
      WHERE c.conname = 'symbol_check' AND c.connamespace = 'pgportfolio'::regnamespace
      AND pg_temp.symbol_check_accepts(c.oid, s.symbol) IS DISTINCT FROM pgportfolio._symbol_valid(s.symbol)$$,
    'the symbol domain accepts exactly what _symbol_valid accepts (lengths 0, 1, 32, 33; each punctuation; lower case, spaces, control, non-ASCII)'
);

-- market_prices leaves half of each page free: a bulk tick rewrites runs of neighbouring
-- rows in one statement, and their new versions must fit beside the old ones (HOT
-- updates, no new index entries, no growth). Negative control, run when this was written:
-- on full pages the same update of 1,000 marks added 10 pages.
SELECT is(
    (SELECT c.reloptions FROM pg_class AS c WHERE c.oid = 'pgportfolio.market_prices'::regclass),
    ARRAY['fillfactor=50'],
    'market_prices is stored with fillfactor 50'
);
DO $$
BEGIN
    PERFORM pgportfolio.update_market_prices(
        (SELECT jsonb_agg(jsonb_build_object('symbol', 'TFF' || n, 'price', 100)) FROM generate_series(1000, 1999) AS n)
    );
    PERFORM set_config('test.mark_pages', (pg_relation_size('pgportfolio.market_prices') / 8192)::text, true);
    PERFORM pgportfolio.update_market_prices(
        (SELECT jsonb_agg(jsonb_build_object('symbol', 'TFF' || n, 'price', 101)) FROM generate_series(1000, 1999) AS n)
    );
END
$$;
SELECT is(
    pg_relation_size('pgportfolio.market_prices') / 8192,
    current_setting('test.mark_pages')::bigint,
    'a new mark of 1,000 neighbouring symbols in one call stays on their pages: the table does not grow'
);

SELECT * FROM finish();
ROLLBACK;
