-- Roles, schema and the inventory of objects (sql/010_roles.sql, sql/020_schema.sql),
-- and the public function signatures.
BEGIN;
SELECT plan(80);

-- ---------------------------------------------------------------- roles
SELECT has_role('pgportfolio_owner', 'role pgportfolio_owner exists');
SELECT has_role('pgportfolio_trader', 'role pgportfolio_trader exists');
SELECT has_role('pgportfolio_analyst', 'role pgportfolio_analyst exists');

SELECT is(
    (SELECT array_agg(rolname::text ORDER BY rolname) FROM pg_roles
     WHERE rolname IN ('pgportfolio_owner', 'pgportfolio_trader', 'pgportfolio_analyst') AND rolcanlogin),
    NULL,
    'none of the three pgportfolio roles can log in'
);
SELECT is(
    (SELECT array_agg(rolname::text ORDER BY rolname) FROM pg_roles
     WHERE rolname IN ('pgportfolio_owner', 'pgportfolio_trader', 'pgportfolio_analyst')
       AND (rolsuper OR rolcreaterole OR rolcreatedb OR rolreplication OR rolbypassrls)),
    NULL,
    'none of the three pgportfolio roles has superuser, createrole, createdb, replication or bypassrls'
);
SELECT ok(NOT pg_has_role('pgportfolio_trader', 'pgportfolio_owner', 'MEMBER'),
    'pgportfolio_trader is not a member of pgportfolio_owner');
SELECT ok(NOT pg_has_role('pgportfolio_analyst', 'pgportfolio_owner', 'MEMBER'),
    'pgportfolio_analyst is not a member of pgportfolio_owner');
SELECT ok(NOT pg_has_role('pgportfolio_analyst', 'pgportfolio_trader', 'MEMBER'),
    'pgportfolio_analyst is not a member of pgportfolio_trader');
SELECT ok(NOT pg_has_role('pgportfolio_trader', 'pgportfolio_analyst', 'MEMBER'),
    'pgportfolio_trader is not a member of pgportfolio_analyst');
SELECT ok(NOT pg_has_role('pgportfolio_owner', 'pgportfolio_trader', 'MEMBER')
          AND NOT pg_has_role('pgportfolio_owner', 'pgportfolio_analyst', 'MEMBER'),
    'pgportfolio_owner is a member of neither trader nor analyst');
SELECT ok(pg_has_role('pgportfolio_analyst', 'pg_read_all_stats', 'MEMBER'),
    'pgportfolio_analyst is a member of pg_read_all_stats (so lock_waits shows queries)');

-- ---------------------------------------------------------------- schema and inventory
SELECT has_schema('pgportfolio', 'schema pgportfolio exists');
SELECT schema_owner_is('pgportfolio', 'pgportfolio_owner', 'schema pgportfolio is owned by pgportfolio_owner');
SELECT isnt(obj_description('pgportfolio'::regnamespace, 'pg_namespace'), NULL, 'schema pgportfolio has a comment');

SELECT tables_are('pgportfolio',
    ARRAY['portfolios', 'portfolio_access', 'positions', 'market_prices', 'events',
          'market_price_history', 'instruments', 'multiplier_changes', 'daily_closes', 'daily_close_positions'],
    'pgportfolio has exactly the ten tables (five of the ledger, the price history, instruments and their changes, the daily closes)');
SELECT views_are('pgportfolio',
    ARRAY['portfolio_summary', 'position_pnl', 'event_log', 'lock_waits', 'instrument_list', 'daily_pnl',
          'daily_positions'],
    'pgportfolio has exactly the seven read views');
SELECT sequences_are('pgportfolio', ARRAY['portfolios_portfolio_id_seq', 'market_price_history_mark_id_seq'],
    'the only sequences are the identities of portfolios and of the price history');
SELECT functions_are('pgportfolio', ARRAY[
    '_acting_role', '_authorize', '_authorization_refusals', '_bound_lock_wait', '_check_number',
    '_check_portfolio_attributes', '_check_request', '_check_execution', '_execution_valid', '_invalid_tags', '_check_symbol', '_symbol_valid', '_apply_operations', '_apply_one',
    '_request_args', '_event_hash',
    'acquire_advisory_lock', 'add_to_position', 'apply_fill', 'apply_fills', 'apply_fills_arrays', 'charge_fee', 'close_position', 'create_portfolio',
    'current_lock_waits', 'deposit_cash', 'events_refuse_change', 'portfolios_refuse_delete', 'events_since', 'find_request', 'get_portfolio',
    'grant_portfolio', 'open_position', 'recent_portfolios', 'reduce_position', 'revoke_portfolio',
    'server_wait_events', 'update_market_price', 'update_market_prices', 'verify_portfolio', 'withdraw_cash',
    'portfolio_version', 'events_after', 'portfolio_snapshot', 'portfolio_valuation', '_wide_read_merges_marks',
    '_refused_characters', 'event_chain_head',
    '_portfolio_lockers', 'portfolio_lock_holders',
    '_check_mark', 'price_at', 'prune_price_history', 'upsert_instrument',
    '_version_at', '_positions_at', '_portfolio_at', '_check_history_arguments', '_check_version_argument',
    'portfolio_as_of', 'positions_as_of', 'portfolio_at_version', 'positions_at_version',
    'close_day', 'daily_closes_refuse_change',
    'replication_lag'
], 'pgportfolio has exactly the expected functions');
SELECT is(
    (SELECT array_agg(p.oid::regprocedure::text ORDER BY p.oid::regprocedure::text) FROM pg_proc AS p
     WHERE p.pronamespace = 'pgportfolio'::regnamespace
     GROUP BY p.proname HAVING count(*) > 1 LIMIT 1),
    NULL,
    'no pgportfolio function is overloaded'
);
SELECT has_composite('pgportfolio', 'mutation_result', 'composite type pgportfolio.mutation_result exists');
SELECT is(
    (SELECT array_agg(a.attname::text || ' ' || format_type(a.atttypid, a.atttypmod) ORDER BY a.attnum)
     FROM pg_attribute AS a
     WHERE a.attrelid = 'pgportfolio.mutation_result'::regclass AND a.attnum > 0 AND NOT a.attisdropped),
    ARRAY['portfolio_id bigint', 'portfolio_version bigint', 'cash_balance numeric', 'symbol text',
          'position_quantity numeric', 'position_avg_price numeric', 'realized_pnl numeric', 'duplicate boolean'],
    'mutation_result has the documented fields, in order'
);

SELECT is(
    (SELECT array_agg(x ORDER BY x) FROM (
        SELECT 'relation ' || c.relname::text AS x FROM pg_class AS c
        WHERE c.relnamespace = 'pgportfolio'::regnamespace AND c.relowner <> 'pgportfolio_owner'::regrole
        UNION ALL
        SELECT 'function ' || p.proname::text FROM pg_proc AS p
        WHERE p.pronamespace = 'pgportfolio'::regnamespace AND p.proowner <> 'pgportfolio_owner'::regrole
        UNION ALL
        SELECT 'type ' || t.typname::text FROM pg_type AS t
        WHERE t.typnamespace = 'pgportfolio'::regnamespace AND t.typowner <> 'pgportfolio_owner'::regrole
    ) AS s),
    NULL,
    'every relation, function and type in pgportfolio is owned by pgportfolio_owner'
);
SELECT is(
    (SELECT array_agg(c.relname::text ORDER BY c.relname) FROM pg_class AS c
     WHERE c.relnamespace = 'pgportfolio'::regnamespace AND c.relkind IN ('r', 'v')
       AND obj_description(c.oid, 'pg_class') IS NULL),
    NULL,
    'every table and view in pgportfolio has a comment'
);
SELECT is(
    (SELECT array_agg(p.proname::text ORDER BY p.proname) FROM pg_proc AS p
     WHERE p.pronamespace = 'pgportfolio'::regnamespace AND p.proname !~ '^_' AND p.prorettype <> 'trigger'::regtype
       AND obj_description(p.oid, 'pg_proc') IS NULL),
    NULL,
    'every public function in pgportfolio has a comment'
);

-- ---------------------------------------------------------------- public API signatures
SELECT has_function('pgportfolio', 'create_portfolio', ARRAY['text', 'numeric', 'text'],
    'create_portfolio(text, numeric, text) exists');
SELECT function_returns('pgportfolio', 'create_portfolio', ARRAY['text', 'numeric', 'text'], 'bigint',
    'create_portfolio returns the new portfolio id (bigint)');
SELECT has_function('pgportfolio', 'deposit_cash', ARRAY['bigint', 'numeric', 'text', 'bigint'],
    'deposit_cash(bigint, numeric, text, bigint) exists');
SELECT function_returns('pgportfolio', 'deposit_cash', ARRAY['bigint', 'numeric', 'text', 'bigint'],
    'pgportfolio.mutation_result', 'deposit_cash returns mutation_result');
SELECT has_function('pgportfolio', 'withdraw_cash', ARRAY['bigint', 'numeric', 'text', 'bigint'],
    'withdraw_cash(bigint, numeric, text, bigint) exists');
SELECT function_returns('pgportfolio', 'withdraw_cash', ARRAY['bigint', 'numeric', 'text', 'bigint'],
    'pgportfolio.mutation_result', 'withdraw_cash returns mutation_result');
SELECT has_function('pgportfolio', 'charge_fee', ARRAY['bigint', 'numeric', 'text', 'bigint'],
    'charge_fee(bigint, numeric, text, bigint) exists');
SELECT function_returns('pgportfolio', 'charge_fee', ARRAY['bigint', 'numeric', 'text', 'bigint'],
    'pgportfolio.mutation_result', 'charge_fee returns mutation_result');
SELECT has_function('pgportfolio', 'apply_fill', ARRAY['bigint', 'text', 'numeric', 'numeric', 'numeric', 'text', 'bigint', 'timestamp with time zone', 'text', 'jsonb'],
    'apply_fill(bigint, text, numeric, numeric, numeric, text, bigint, timestamp with time zone, text, jsonb) exists');
SELECT function_returns('pgportfolio', 'apply_fill', ARRAY['bigint', 'text', 'numeric', 'numeric', 'numeric', 'text', 'bigint', 'timestamp with time zone', 'text', 'jsonb'],
    'pgportfolio.mutation_result', 'apply_fill returns mutation_result');
SELECT has_function('pgportfolio', 'open_position', ARRAY['bigint', 'text', 'numeric', 'numeric', 'numeric', 'text', 'bigint', 'timestamp with time zone', 'text', 'jsonb'],
    'open_position(bigint, text, numeric, numeric, numeric, text, bigint, timestamp with time zone, text, jsonb) exists');
SELECT function_returns('pgportfolio', 'open_position', ARRAY['bigint', 'text', 'numeric', 'numeric', 'numeric', 'text', 'bigint', 'timestamp with time zone', 'text', 'jsonb'],
    'pgportfolio.mutation_result', 'open_position returns mutation_result');
SELECT has_function('pgportfolio', 'add_to_position', ARRAY['bigint', 'text', 'numeric', 'numeric', 'numeric', 'text', 'bigint', 'timestamp with time zone', 'text', 'jsonb'],
    'add_to_position(bigint, text, numeric, numeric, numeric, text, bigint, timestamp with time zone, text, jsonb) exists');
SELECT function_returns('pgportfolio', 'add_to_position', ARRAY['bigint', 'text', 'numeric', 'numeric', 'numeric', 'text', 'bigint', 'timestamp with time zone', 'text', 'jsonb'],
    'pgportfolio.mutation_result', 'add_to_position returns mutation_result');
SELECT has_function('pgportfolio', 'reduce_position', ARRAY['bigint', 'text', 'numeric', 'numeric', 'numeric', 'text', 'bigint', 'timestamp with time zone', 'text', 'jsonb'],
    'reduce_position(bigint, text, numeric, numeric, numeric, text, bigint, timestamp with time zone, text, jsonb) exists');
SELECT function_returns('pgportfolio', 'reduce_position', ARRAY['bigint', 'text', 'numeric', 'numeric', 'numeric', 'text', 'bigint', 'timestamp with time zone', 'text', 'jsonb'],
    'pgportfolio.mutation_result', 'reduce_position returns mutation_result');
SELECT has_function('pgportfolio', 'close_position', ARRAY['bigint', 'text', 'numeric', 'numeric', 'text', 'bigint', 'timestamp with time zone', 'text', 'jsonb'],
    'close_position(bigint, text, numeric, numeric, text, bigint, timestamp with time zone, text, jsonb) exists (no quantity)');
SELECT function_returns('pgportfolio', 'close_position', ARRAY['bigint', 'text', 'numeric', 'numeric', 'text', 'bigint', 'timestamp with time zone', 'text', 'jsonb'],
    'pgportfolio.mutation_result', 'close_position returns mutation_result');
SELECT has_function('pgportfolio', 'update_market_price', ARRAY['text', 'numeric', 'timestamp with time zone', 'text'],
    'update_market_price(text, numeric, timestamptz, text) exists');
SELECT function_returns('pgportfolio', 'update_market_price', ARRAY['text', 'numeric', 'timestamp with time zone', 'text'], 'void',
    'update_market_price returns void');
SELECT has_function('pgportfolio', 'price_at', ARRAY['text', 'timestamp with time zone'], 'price_at(text, timestamptz) exists');
SELECT function_returns('pgportfolio', 'price_at', ARRAY['text', 'timestamp with time zone'], 'numeric', 'price_at returns numeric');
SELECT has_function('pgportfolio', 'prune_price_history', ARRAY['timestamp with time zone'], 'prune_price_history(timestamptz) exists');
SELECT function_returns('pgportfolio', 'prune_price_history', ARRAY['timestamp with time zone'], 'bigint',
    'prune_price_history returns the number of marks deleted (bigint)');
SELECT has_function('pgportfolio', 'upsert_instrument', ARRAY['text', 'numeric', 'text'],
    'upsert_instrument(text, numeric, text) exists');
SELECT function_returns('pgportfolio', 'upsert_instrument', ARRAY['text', 'numeric', 'text'], 'void',
    'upsert_instrument returns void');
SELECT has_function('pgportfolio', 'grant_portfolio', ARRAY['bigint', 'name'], 'grant_portfolio(bigint, name) exists');
SELECT function_returns('pgportfolio', 'grant_portfolio', ARRAY['bigint', 'name'], 'void', 'grant_portfolio returns void');
SELECT has_function('pgportfolio', 'revoke_portfolio', ARRAY['bigint', 'name'], 'revoke_portfolio(bigint, name) exists');
SELECT function_returns('pgportfolio', 'revoke_portfolio', ARRAY['bigint', 'name'], 'void', 'revoke_portfolio returns void');
SELECT has_function('pgportfolio', 'verify_portfolio', ARRAY['bigint'], 'verify_portfolio(bigint) exists');
SELECT function_returns('pgportfolio', 'verify_portfolio', ARRAY['bigint'], 'setof record',
    'verify_portfolio returns a set of rows');
SELECT is(
    (SELECT array_agg(n || ' ' || format_type(t, NULL) ORDER BY o)
     FROM pg_proc AS p,
          unnest(p.proargnames, p.proallargtypes, p.proargmodes) WITH ORDINALITY AS a(n, t, m, o)
     WHERE p.oid = 'pgportfolio.verify_portfolio(bigint)'::regprocedure AND m = 't'),
    ARRAY['check_name text', 'ok boolean', 'expected numeric', 'actual numeric'],
    'verify_portfolio returns (check_name text, ok boolean, expected numeric, actual numeric)'
);

SELECT has_function('pgportfolio', 'get_portfolio', ARRAY['bigint'], 'get_portfolio(bigint) exists');
SELECT has_function('pgportfolio', 'find_request', ARRAY['bigint', 'text'], 'find_request(bigint, text) exists');
SELECT function_returns('pgportfolio', 'find_request', ARRAY['bigint', 'text'], 'setof pgportfolio.mutation_result',
    'find_request returns a set of mutation_result');
SELECT has_function('pgportfolio', 'events_since', ARRAY['bigint', 'bigint'], 'events_since(bigint, bigint) exists');
SELECT function_returns('pgportfolio', 'events_since', ARRAY['bigint', 'bigint'], 'setof pgportfolio.event_log',
    'events_since returns a set of event_log rows');
SELECT has_function('pgportfolio', 'acquire_advisory_lock', ARRAY['bigint', 'integer'],
    'acquire_advisory_lock(bigint, integer) exists');
SELECT has_function('pgportfolio', 'recent_portfolios', ARRAY['integer'], 'recent_portfolios(integer) exists');
SELECT has_function('pgportfolio', 'server_wait_events', ARRAY[]::text[], 'server_wait_events() exists');
SELECT has_function('pgportfolio', 'current_lock_waits', ARRAY[]::text[], 'current_lock_waits() exists');
SELECT function_returns('pgportfolio', 'current_lock_waits', ARRAY[]::text[], 'setof pgportfolio.lock_waits',
    'current_lock_waits returns a set of lock_waits rows');

-- Defaults: only the trailing optional arguments have them.
SELECT is(
    pg_get_function_arguments('pgportfolio.apply_fill(bigint, text, numeric, numeric, numeric, text, bigint, timestamp with time zone, text, jsonb)'::regprocedure),
    'p_portfolio_id bigint, p_symbol text, p_quantity numeric, p_price numeric, p_fee numeric DEFAULT 0, '
    'p_request_id text DEFAULT NULL::text, p_expected_version bigint DEFAULT NULL::bigint, '
    'p_executed_at timestamp with time zone DEFAULT NULL::timestamp with time zone, p_order_id text DEFAULT NULL::text, '
    'p_tags jsonb DEFAULT NULL::jsonb',
    'apply_fill: fee defaults to 0, request id, expected version and the execution metadata to NULL'
);
SELECT is(
    pg_get_function_arguments('pgportfolio.close_position(bigint, text, numeric, numeric, text, bigint, timestamp with time zone, text, jsonb)'::regprocedure),
    'p_portfolio_id bigint, p_symbol text, p_price numeric, p_fee numeric DEFAULT 0, '
    'p_request_id text DEFAULT NULL::text, p_expected_version bigint DEFAULT NULL::bigint, '
    'p_executed_at timestamp with time zone DEFAULT NULL::timestamp with time zone, p_order_id text DEFAULT NULL::text, '
    'p_tags jsonb DEFAULT NULL::jsonb',
    'close_position: fee defaults to 0, request id, expected version and the execution metadata to NULL'
);
SELECT is(
    pg_get_function_arguments('pgportfolio.deposit_cash(bigint, numeric, text, bigint)'::regprocedure),
    'p_portfolio_id bigint, p_amount numeric, p_request_id text DEFAULT NULL::text, '
    'p_expected_version bigint DEFAULT NULL::bigint',
    'deposit_cash: request id and expected version default to NULL'
);
SELECT is(
    pg_get_function_arguments('pgportfolio.create_portfolio(text, numeric, text)'::regprocedure),
    'p_name text, p_initial_cash numeric, p_currency text DEFAULT ''USD''::text',
    'create_portfolio: currency defaults to USD'
);
SELECT is(
    pg_get_function_arguments('pgportfolio.update_market_price(text, numeric, timestamptz, text)'::regprocedure),
    'p_symbol text, p_price numeric, p_as_of timestamp with time zone DEFAULT NULL::timestamp with time zone, '
    'p_source text DEFAULT NULL::text',
    'update_market_price: as_of (NULL: the transaction time) and source default to NULL'
);
SELECT is(
    pg_get_function_arguments('pgportfolio.upsert_instrument(text, numeric, text)'::regprocedure),
    'p_symbol text, p_multiplier numeric DEFAULT 1, p_description text DEFAULT NULL::text',
    'upsert_instrument: multiplier defaults to 1, description to NULL'
);

-- ---------------------------------------------------------------- volatility
SELECT volatility_is('pgportfolio', 'verify_portfolio', ARRAY['bigint'], 'stable',
    'verify_portfolio is STABLE (one snapshot, no writes)');
SELECT volatility_is('pgportfolio', 'apply_fill', ARRAY['bigint', 'text', 'numeric', 'numeric', 'numeric', 'text', 'bigint', 'timestamp with time zone', 'text', 'jsonb'],
    'volatile', 'apply_fill is VOLATILE');
SELECT volatility_is('pgportfolio', 'deposit_cash', ARRAY['bigint', 'numeric', 'text', 'bigint'],
    'volatile', 'deposit_cash is VOLATILE');
SELECT volatility_is('pgportfolio', 'update_market_price', ARRAY['text', 'numeric', 'timestamp with time zone', 'text'],
    'volatile', 'update_market_price is VOLATILE');
SELECT volatility_is('pgportfolio', 'price_at', ARRAY['text', 'timestamp with time zone'],
    'stable', 'price_at is STABLE (a read)');
SELECT volatility_is('pgportfolio', '_bound_lock_wait', ARRAY[]::text[],
    'volatile', '_bound_lock_wait is VOLATILE (it sets lock_timeout)');

-- ---------------------------------------------------------------- _acting_role
SELECT is(pgportfolio._acting_role(), session_user, '_acting_role is the session user when no role is set');
SELECT * FROM finish();
ROLLBACK;
