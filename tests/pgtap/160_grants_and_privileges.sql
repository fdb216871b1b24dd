-- Privileges and access control (sql/900_privileges.sql, sql/110_access.sql,
-- sql/160_grants.sql): who may execute what, who may read or write which relation,
-- SECURITY DEFINER hygiene, and per-portfolio trading rights (owner, member of the
-- owner, or grant_portfolio). Roles are created inside the test transaction.
BEGIN;
SELECT plan(284);

CREATE FUNCTION pg_temp.pid(p_name text) RETURNS bigint LANGUAGE sql STABLE
AS $$ SELECT current_setting('test.pid_' || p_name)::bigint $$;

-- is_definer: the public API runs as the owner; the internals never do.
SELECT is_definer('pgportfolio', 'create_portfolio', ARRAY['text', 'numeric', 'text'], 'create_portfolio(text, numeric, text) is SECURITY DEFINER');
SELECT is_definer('pgportfolio', 'deposit_cash', ARRAY['bigint', 'numeric', 'text', 'bigint'], 'deposit_cash(bigint, numeric, text, bigint) is SECURITY DEFINER');
SELECT is_definer('pgportfolio', 'withdraw_cash', ARRAY['bigint', 'numeric', 'text', 'bigint'], 'withdraw_cash(bigint, numeric, text, bigint) is SECURITY DEFINER');
SELECT is_definer('pgportfolio', 'charge_fee', ARRAY['bigint', 'numeric', 'text', 'bigint'], 'charge_fee(bigint, numeric, text, bigint) is SECURITY DEFINER');
SELECT is_definer('pgportfolio', 'apply_fill', ARRAY['bigint', 'text', 'numeric', 'numeric', 'numeric', 'text', 'bigint', 'timestamp with time zone', 'text', 'jsonb'], 'apply_fill(bigint, text, numeric, numeric, numeric, text, bigint, timestamp with time zone, text, jsonb) is SECURITY DEFINER');
SELECT is_definer('pgportfolio', 'open_position', ARRAY['bigint', 'text', 'numeric', 'numeric', 'numeric', 'text', 'bigint', 'timestamp with time zone', 'text', 'jsonb'], 'open_position(bigint, text, numeric, numeric, numeric, text, bigint, timestamp with time zone, text, jsonb) is SECURITY DEFINER');
SELECT is_definer('pgportfolio', 'add_to_position', ARRAY['bigint', 'text', 'numeric', 'numeric', 'numeric', 'text', 'bigint', 'timestamp with time zone', 'text', 'jsonb'], 'add_to_position(bigint, text, numeric, numeric, numeric, text, bigint, timestamp with time zone, text, jsonb) is SECURITY DEFINER');
SELECT is_definer('pgportfolio', 'reduce_position', ARRAY['bigint', 'text', 'numeric', 'numeric', 'numeric', 'text', 'bigint', 'timestamp with time zone', 'text', 'jsonb'], 'reduce_position(bigint, text, numeric, numeric, numeric, text, bigint, timestamp with time zone, text, jsonb) is SECURITY DEFINER');
SELECT is_definer('pgportfolio', 'close_position', ARRAY['bigint', 'text', 'numeric', 'numeric', 'text', 'bigint', 'timestamp with time zone', 'text', 'jsonb'], 'close_position(bigint, text, numeric, numeric, text, bigint, timestamp with time zone, text, jsonb) is SECURITY DEFINER');
SELECT is_definer('pgportfolio', 'update_market_price', ARRAY['text', 'numeric', 'timestamp with time zone', 'text'], 'update_market_price(text, numeric, timestamptz, text) is SECURITY DEFINER');
SELECT is_definer('pgportfolio', 'grant_portfolio', ARRAY['bigint', 'name'], 'grant_portfolio(bigint, name) is SECURITY DEFINER');
SELECT is_definer('pgportfolio', 'revoke_portfolio', ARRAY['bigint', 'name'], 'revoke_portfolio(bigint, name) is SECURITY DEFINER');
SELECT is_definer('pgportfolio', 'price_at', ARRAY['text', 'timestamp with time zone'], 'price_at(text, timestamptz) is SECURITY DEFINER (the history is not readable)');
SELECT is_definer('pgportfolio', 'upsert_instrument', ARRAY['text', 'numeric', 'text'], 'upsert_instrument(text, numeric, text) is SECURITY DEFINER');
SELECT is_definer('pgportfolio', 'prune_price_history', ARRAY['timestamp with time zone'], 'prune_price_history(timestamptz) is SECURITY DEFINER');
SELECT isnt_definer('pgportfolio', '_check_mark', ARRAY['text', 'timestamp with time zone', 'text'], 'the internal _check_mark is not SECURITY DEFINER');
-- price_at: traders and analysts; upsert_instrument and prune_price_history: the owner alone.
SELECT function_privs_are('pgportfolio', 'price_at', ARRAY['text', 'timestamp with time zone'], 'pgportfolio_trader', ARRAY['EXECUTE'], 'pgportfolio_trader may execute price_at');
SELECT function_privs_are('pgportfolio', 'price_at', ARRAY['text', 'timestamp with time zone'], 'pgportfolio_analyst', ARRAY['EXECUTE'], 'pgportfolio_analyst may execute price_at');
SELECT function_privs_are('pgportfolio', 'price_at', ARRAY['text', 'timestamp with time zone'], 'public', ARRAY[]::name[], 'PUBLIC may not execute price_at');
SELECT function_privs_are('pgportfolio', 'upsert_instrument', ARRAY['text', 'numeric', 'text'], 'pgportfolio_trader', ARRAY[]::name[], 'pgportfolio_trader may not execute upsert_instrument');
SELECT function_privs_are('pgportfolio', 'upsert_instrument', ARRAY['text', 'numeric', 'text'], 'pgportfolio_analyst', ARRAY[]::name[], 'pgportfolio_analyst may not execute upsert_instrument');
SELECT function_privs_are('pgportfolio', 'upsert_instrument', ARRAY['text', 'numeric', 'text'], 'public', ARRAY[]::name[], 'PUBLIC may not execute upsert_instrument');
SELECT function_privs_are('pgportfolio', 'prune_price_history', ARRAY['timestamp with time zone'], 'pgportfolio_trader', ARRAY[]::name[], 'pgportfolio_trader may not execute prune_price_history');
SELECT function_privs_are('pgportfolio', 'prune_price_history', ARRAY['timestamp with time zone'], 'pgportfolio_analyst', ARRAY[]::name[], 'pgportfolio_analyst may not execute prune_price_history');
SELECT function_privs_are('pgportfolio', 'prune_price_history', ARRAY['timestamp with time zone'], 'public', ARRAY[]::name[], 'PUBLIC may not execute prune_price_history');
SELECT function_privs_are('pgportfolio', '_check_mark', ARRAY['text', 'timestamp with time zone', 'text'], 'pgportfolio_trader', ARRAY[]::name[], 'pgportfolio_trader may not execute the internal _check_mark');
SELECT is_definer('pgportfolio', 'verify_portfolio', ARRAY['bigint'], 'verify_portfolio(bigint) is SECURITY DEFINER');
SELECT is_definer('pgportfolio', 'get_portfolio', ARRAY['bigint'], 'get_portfolio(bigint) is SECURITY DEFINER');
SELECT is_definer('pgportfolio', 'find_request', ARRAY['bigint', 'text'], 'find_request(bigint, text) is SECURITY DEFINER');
SELECT is_definer('pgportfolio', 'events_since', ARRAY['bigint', 'bigint'], 'events_since(bigint, bigint) is SECURITY DEFINER');
SELECT is_definer('pgportfolio', 'events_after', ARRAY['bigint[]', 'bigint[]', 'integer'], 'events_after(bigint[], bigint[], integer) is SECURITY DEFINER');
SELECT is_definer('pgportfolio', 'recent_portfolios', ARRAY['integer'], 'recent_portfolios(integer) is SECURITY DEFINER');
SELECT isnt_definer('pgportfolio', 'acquire_advisory_lock', ARRAY['bigint', 'integer'], 'acquire_advisory_lock(bigint, integer) is not SECURITY DEFINER (it needs no rights its caller lacks)');
SELECT isnt_definer('pgportfolio', 'server_wait_events', ARRAY[]::name[], 'server_wait_events() is not SECURITY DEFINER (it needs no rights its caller lacks)');
SELECT isnt_definer('pgportfolio', 'current_lock_waits', ARRAY[]::name[], 'current_lock_waits() is not SECURITY DEFINER (it needs no rights its caller lacks)');
SELECT isnt_definer('pgportfolio', '_acting_role', ARRAY[]::name[], '_acting_role() is not SECURITY DEFINER (it runs as its caller, the definer functions)');
SELECT isnt_definer('pgportfolio', '_authorize', ARRAY['bigint', 'name'], '_authorize(bigint, name) is not SECURITY DEFINER (it runs as its caller, the definer functions)');
SELECT isnt_definer('pgportfolio', '_bound_lock_wait', ARRAY[]::name[], '_bound_lock_wait() is not SECURITY DEFINER (it runs as its caller, the definer functions)');
SELECT isnt_definer('pgportfolio', '_check_number', ARRAY['text', 'numeric', 'text'], '_check_number(text, numeric, text) is not SECURITY DEFINER (it runs as its caller, the definer functions)');
SELECT isnt_definer('pgportfolio', '_check_portfolio_attributes', ARRAY['text', 'text'], '_check_portfolio_attributes(text, text) is not SECURITY DEFINER (it runs as its caller, the definer functions)');
SELECT isnt_definer('pgportfolio', '_check_request', ARRAY['text', 'bigint'], '_check_request(text, bigint) is not SECURITY DEFINER (it runs as its caller, the definer functions)');
SELECT isnt_definer('pgportfolio', '_check_symbol', ARRAY['text'], '_check_symbol(text) is not SECURITY DEFINER (it runs as its caller, the definer functions)');
SELECT isnt_definer('pgportfolio', '_apply_one', ARRAY['text', 'bigint', 'text', 'numeric', 'numeric', 'numeric', 'numeric', 'text', 'bigint', 'timestamp with time zone', 'text', 'jsonb'], '_apply_one(text, bigint, text, numeric, numeric, numeric, numeric, text, bigint, timestamp with time zone, text, jsonb) is not SECURITY DEFINER (it runs as its caller, the definer functions)');
SELECT isnt_definer('pgportfolio', '_apply_operations', ARRAY['text[]', 'bigint[]', 'text[]', 'numeric[]', 'numeric[]', 'numeric[]', 'numeric[]', 'text[]', 'bigint[]', 'timestamp with time zone[]', 'text[]', 'jsonb[]'], '_apply_operations(text[], bigint[], text[], numeric[], numeric[], numeric[], numeric[], text[], bigint[], timestamp with time zone[], text[], jsonb[]) is not SECURITY DEFINER (it runs as its caller, the definer functions)');
SELECT isnt_definer('pgportfolio', '_authorization_refusals', ARRAY['bigint[]', 'name'], '_authorization_refusals(bigint[], name) is not SECURITY DEFINER (it runs as its caller, the definer functions)');
SELECT isnt_definer('pgportfolio', '_event_hash', ARRAY['bytea', 'bigint', 'bigint', 'text', 'text', 'text', 'numeric', 'numeric', 'numeric', 'numeric', 'numeric', 'numeric', 'numeric', 'numeric', 'numeric', 'text', 'timestamp with time zone', 'text', 'jsonb', 'numeric', 'name', 'timestamp with time zone'], '_event_hash(bytea, bigint, bigint, text, text, text, numeric, numeric, numeric, numeric, numeric, numeric, numeric, numeric, numeric, text, timestamp with time zone, text, jsonb, numeric, name, timestamp with time zone) is not SECURITY DEFINER (it runs as its caller, the definer functions)');
SELECT isnt_definer('pgportfolio', '_wide_read_merges_marks', ARRAY['bigint'], '_wide_read_merges_marks(bigint) is not SECURITY DEFINER (it runs as its caller, the definer functions)');
SELECT isnt_definer('pgportfolio', '_request_args', ARRAY['text', 'text', 'numeric', 'numeric', 'numeric', 'numeric', 'timestamp with time zone', 'text', 'jsonb'], '_request_args(text, text, numeric, numeric, numeric, numeric, timestamp with time zone, text, jsonb) is not SECURITY DEFINER (it runs as its caller, the definer functions)');
SELECT isnt_definer('pgportfolio', 'events_refuse_change', ARRAY[]::name[], 'events_refuse_change() is not SECURITY DEFINER (it runs as its caller, the definer functions)');

-- function_privs_are: traders call the API, analysts only the read functions, PUBLIC nothing, and nobody but the owner calls the internals.
SELECT function_privs_are('pgportfolio', 'create_portfolio', ARRAY['text', 'numeric', 'text'], 'pgportfolio_trader', ARRAY['EXECUTE'], 'pgportfolio_trader may execute create_portfolio(text, numeric, text)');
SELECT function_privs_are('pgportfolio', 'deposit_cash', ARRAY['bigint', 'numeric', 'text', 'bigint'], 'pgportfolio_trader', ARRAY['EXECUTE'], 'pgportfolio_trader may execute deposit_cash(bigint, numeric, text, bigint)');
SELECT function_privs_are('pgportfolio', 'withdraw_cash', ARRAY['bigint', 'numeric', 'text', 'bigint'], 'pgportfolio_trader', ARRAY['EXECUTE'], 'pgportfolio_trader may execute withdraw_cash(bigint, numeric, text, bigint)');
SELECT function_privs_are('pgportfolio', 'charge_fee', ARRAY['bigint', 'numeric', 'text', 'bigint'], 'pgportfolio_trader', ARRAY['EXECUTE'], 'pgportfolio_trader may execute charge_fee(bigint, numeric, text, bigint)');
SELECT function_privs_are('pgportfolio', 'apply_fill', ARRAY['bigint', 'text', 'numeric', 'numeric', 'numeric', 'text', 'bigint', 'timestamp with time zone', 'text', 'jsonb'], 'pgportfolio_trader', ARRAY['EXECUTE'], 'pgportfolio_trader may execute apply_fill(bigint, text, numeric, numeric, numeric, text, bigint, timestamp with time zone, text, jsonb)');
SELECT function_privs_are('pgportfolio', 'open_position', ARRAY['bigint', 'text', 'numeric', 'numeric', 'numeric', 'text', 'bigint', 'timestamp with time zone', 'text', 'jsonb'], 'pgportfolio_trader', ARRAY['EXECUTE'], 'pgportfolio_trader may execute open_position(bigint, text, numeric, numeric, numeric, text, bigint, timestamp with time zone, text, jsonb)');
SELECT function_privs_are('pgportfolio', 'add_to_position', ARRAY['bigint', 'text', 'numeric', 'numeric', 'numeric', 'text', 'bigint', 'timestamp with time zone', 'text', 'jsonb'], 'pgportfolio_trader', ARRAY['EXECUTE'], 'pgportfolio_trader may execute add_to_position(bigint, text, numeric, numeric, numeric, text, bigint, timestamp with time zone, text, jsonb)');
SELECT function_privs_are('pgportfolio', 'reduce_position', ARRAY['bigint', 'text', 'numeric', 'numeric', 'numeric', 'text', 'bigint', 'timestamp with time zone', 'text', 'jsonb'], 'pgportfolio_trader', ARRAY['EXECUTE'], 'pgportfolio_trader may execute reduce_position(bigint, text, numeric, numeric, numeric, text, bigint, timestamp with time zone, text, jsonb)');
SELECT function_privs_are('pgportfolio', 'close_position', ARRAY['bigint', 'text', 'numeric', 'numeric', 'text', 'bigint', 'timestamp with time zone', 'text', 'jsonb'], 'pgportfolio_trader', ARRAY['EXECUTE'], 'pgportfolio_trader may execute close_position(bigint, text, numeric, numeric, text, bigint, timestamp with time zone, text, jsonb)');
SELECT function_privs_are('pgportfolio', 'update_market_price', ARRAY['text', 'numeric', 'timestamp with time zone', 'text'], 'pgportfolio_trader', ARRAY['EXECUTE'], 'pgportfolio_trader may execute update_market_price(text, numeric, timestamptz, text)');
SELECT function_privs_are('pgportfolio', 'grant_portfolio', ARRAY['bigint', 'name'], 'pgportfolio_trader', ARRAY['EXECUTE'], 'pgportfolio_trader may execute grant_portfolio(bigint, name)');
SELECT function_privs_are('pgportfolio', 'revoke_portfolio', ARRAY['bigint', 'name'], 'pgportfolio_trader', ARRAY['EXECUTE'], 'pgportfolio_trader may execute revoke_portfolio(bigint, name)');
SELECT function_privs_are('pgportfolio', 'verify_portfolio', ARRAY['bigint'], 'pgportfolio_trader', ARRAY['EXECUTE'], 'pgportfolio_trader may execute verify_portfolio(bigint)');
SELECT function_privs_are('pgportfolio', 'get_portfolio', ARRAY['bigint'], 'pgportfolio_trader', ARRAY['EXECUTE'], 'pgportfolio_trader may execute get_portfolio(bigint)');
SELECT function_privs_are('pgportfolio', 'find_request', ARRAY['bigint', 'text'], 'pgportfolio_trader', ARRAY['EXECUTE'], 'pgportfolio_trader may execute find_request(bigint, text)');
SELECT function_privs_are('pgportfolio', 'events_since', ARRAY['bigint', 'bigint'], 'pgportfolio_trader', ARRAY['EXECUTE'], 'pgportfolio_trader may execute events_since(bigint, bigint)');
SELECT function_privs_are('pgportfolio', 'events_after', ARRAY['bigint[]', 'bigint[]', 'integer'], 'pgportfolio_trader', ARRAY['EXECUTE'], 'pgportfolio_trader may execute events_after(bigint[], bigint[], integer)');
SELECT function_privs_are('pgportfolio', 'recent_portfolios', ARRAY['integer'], 'pgportfolio_trader', ARRAY['EXECUTE'], 'pgportfolio_trader may execute recent_portfolios(integer)');
SELECT function_privs_are('pgportfolio', 'acquire_advisory_lock', ARRAY['bigint', 'integer'], 'pgportfolio_trader', ARRAY['EXECUTE'], 'pgportfolio_trader may execute acquire_advisory_lock(bigint, integer)');
SELECT function_privs_are('pgportfolio', 'server_wait_events', ARRAY[]::name[], 'pgportfolio_trader', ARRAY['EXECUTE'], 'pgportfolio_trader may execute server_wait_events()');
SELECT function_privs_are('pgportfolio', 'current_lock_waits', ARRAY[]::name[], 'pgportfolio_trader', ARRAY['EXECUTE'], 'pgportfolio_trader may execute current_lock_waits()');
SELECT function_privs_are('pgportfolio', 'create_portfolio', ARRAY['text', 'numeric', 'text'], 'pgportfolio_analyst', ARRAY[]::name[], 'pgportfolio_analyst may not execute create_portfolio(text, numeric, text)');
SELECT function_privs_are('pgportfolio', 'deposit_cash', ARRAY['bigint', 'numeric', 'text', 'bigint'], 'pgportfolio_analyst', ARRAY[]::name[], 'pgportfolio_analyst may not execute deposit_cash(bigint, numeric, text, bigint)');
SELECT function_privs_are('pgportfolio', 'withdraw_cash', ARRAY['bigint', 'numeric', 'text', 'bigint'], 'pgportfolio_analyst', ARRAY[]::name[], 'pgportfolio_analyst may not execute withdraw_cash(bigint, numeric, text, bigint)');
SELECT function_privs_are('pgportfolio', 'charge_fee', ARRAY['bigint', 'numeric', 'text', 'bigint'], 'pgportfolio_analyst', ARRAY[]::name[], 'pgportfolio_analyst may not execute charge_fee(bigint, numeric, text, bigint)');
SELECT function_privs_are('pgportfolio', 'apply_fill', ARRAY['bigint', 'text', 'numeric', 'numeric', 'numeric', 'text', 'bigint', 'timestamp with time zone', 'text', 'jsonb'], 'pgportfolio_analyst', ARRAY[]::name[], 'pgportfolio_analyst may not execute apply_fill(bigint, text, numeric, numeric, numeric, text, bigint, timestamp with time zone, text, jsonb)');
SELECT function_privs_are('pgportfolio', 'open_position', ARRAY['bigint', 'text', 'numeric', 'numeric', 'numeric', 'text', 'bigint', 'timestamp with time zone', 'text', 'jsonb'], 'pgportfolio_analyst', ARRAY[]::name[], 'pgportfolio_analyst may not execute open_position(bigint, text, numeric, numeric, numeric, text, bigint, timestamp with time zone, text, jsonb)');
SELECT function_privs_are('pgportfolio', 'add_to_position', ARRAY['bigint', 'text', 'numeric', 'numeric', 'numeric', 'text', 'bigint', 'timestamp with time zone', 'text', 'jsonb'], 'pgportfolio_analyst', ARRAY[]::name[], 'pgportfolio_analyst may not execute add_to_position(bigint, text, numeric, numeric, numeric, text, bigint, timestamp with time zone, text, jsonb)');
SELECT function_privs_are('pgportfolio', 'reduce_position', ARRAY['bigint', 'text', 'numeric', 'numeric', 'numeric', 'text', 'bigint', 'timestamp with time zone', 'text', 'jsonb'], 'pgportfolio_analyst', ARRAY[]::name[], 'pgportfolio_analyst may not execute reduce_position(bigint, text, numeric, numeric, numeric, text, bigint, timestamp with time zone, text, jsonb)');
SELECT function_privs_are('pgportfolio', 'close_position', ARRAY['bigint', 'text', 'numeric', 'numeric', 'text', 'bigint', 'timestamp with time zone', 'text', 'jsonb'], 'pgportfolio_analyst', ARRAY[]::name[], 'pgportfolio_analyst may not execute close_position(bigint, text, numeric, numeric, text, bigint, timestamp with time zone, text, jsonb)');
SELECT function_privs_are('pgportfolio', 'update_market_price', ARRAY['text', 'numeric', 'timestamp with time zone', 'text'], 'pgportfolio_analyst', ARRAY[]::name[], 'pgportfolio_analyst may not execute update_market_price(text, numeric, timestamptz, text)');
SELECT function_privs_are('pgportfolio', 'grant_portfolio', ARRAY['bigint', 'name'], 'pgportfolio_analyst', ARRAY[]::name[], 'pgportfolio_analyst may not execute grant_portfolio(bigint, name)');
SELECT function_privs_are('pgportfolio', 'revoke_portfolio', ARRAY['bigint', 'name'], 'pgportfolio_analyst', ARRAY[]::name[], 'pgportfolio_analyst may not execute revoke_portfolio(bigint, name)');
SELECT function_privs_are('pgportfolio', 'verify_portfolio', ARRAY['bigint'], 'pgportfolio_analyst', ARRAY['EXECUTE'], 'pgportfolio_analyst may execute verify_portfolio(bigint)');
SELECT function_privs_are('pgportfolio', 'get_portfolio', ARRAY['bigint'], 'pgportfolio_analyst', ARRAY['EXECUTE'], 'pgportfolio_analyst may execute get_portfolio(bigint)');
SELECT function_privs_are('pgportfolio', 'find_request', ARRAY['bigint', 'text'], 'pgportfolio_analyst', ARRAY[]::name[], 'pgportfolio_analyst may not execute find_request(bigint, text)');
SELECT function_privs_are('pgportfolio', 'events_since', ARRAY['bigint', 'bigint'], 'pgportfolio_analyst', ARRAY['EXECUTE'], 'pgportfolio_analyst may execute events_since(bigint, bigint)');
SELECT function_privs_are('pgportfolio', 'events_after', ARRAY['bigint[]', 'bigint[]', 'integer'], 'pgportfolio_analyst', ARRAY['EXECUTE'], 'pgportfolio_analyst may execute events_after(bigint[], bigint[], integer)');
SELECT function_privs_are('pgportfolio', 'recent_portfolios', ARRAY['integer'], 'pgportfolio_analyst', ARRAY['EXECUTE'], 'pgportfolio_analyst may execute recent_portfolios(integer)');
SELECT function_privs_are('pgportfolio', 'acquire_advisory_lock', ARRAY['bigint', 'integer'], 'pgportfolio_analyst', ARRAY[]::name[], 'pgportfolio_analyst may not execute acquire_advisory_lock(bigint, integer)');
SELECT function_privs_are('pgportfolio', 'server_wait_events', ARRAY[]::name[], 'pgportfolio_analyst', ARRAY['EXECUTE'], 'pgportfolio_analyst may execute server_wait_events()');
SELECT function_privs_are('pgportfolio', 'current_lock_waits', ARRAY[]::name[], 'pgportfolio_analyst', ARRAY['EXECUTE'], 'pgportfolio_analyst may execute current_lock_waits()');
SELECT function_privs_are('pgportfolio', 'create_portfolio', ARRAY['text', 'numeric', 'text'], 'public', ARRAY[]::name[], 'PUBLIC may not execute create_portfolio(text, numeric, text)');
SELECT function_privs_are('pgportfolio', 'deposit_cash', ARRAY['bigint', 'numeric', 'text', 'bigint'], 'public', ARRAY[]::name[], 'PUBLIC may not execute deposit_cash(bigint, numeric, text, bigint)');
SELECT function_privs_are('pgportfolio', 'withdraw_cash', ARRAY['bigint', 'numeric', 'text', 'bigint'], 'public', ARRAY[]::name[], 'PUBLIC may not execute withdraw_cash(bigint, numeric, text, bigint)');
SELECT function_privs_are('pgportfolio', 'charge_fee', ARRAY['bigint', 'numeric', 'text', 'bigint'], 'public', ARRAY[]::name[], 'PUBLIC may not execute charge_fee(bigint, numeric, text, bigint)');
SELECT function_privs_are('pgportfolio', 'apply_fill', ARRAY['bigint', 'text', 'numeric', 'numeric', 'numeric', 'text', 'bigint', 'timestamp with time zone', 'text', 'jsonb'], 'public', ARRAY[]::name[], 'PUBLIC may not execute apply_fill(bigint, text, numeric, numeric, numeric, text, bigint, timestamp with time zone, text, jsonb)');
SELECT function_privs_are('pgportfolio', 'open_position', ARRAY['bigint', 'text', 'numeric', 'numeric', 'numeric', 'text', 'bigint', 'timestamp with time zone', 'text', 'jsonb'], 'public', ARRAY[]::name[], 'PUBLIC may not execute open_position(bigint, text, numeric, numeric, numeric, text, bigint, timestamp with time zone, text, jsonb)');
SELECT function_privs_are('pgportfolio', 'add_to_position', ARRAY['bigint', 'text', 'numeric', 'numeric', 'numeric', 'text', 'bigint', 'timestamp with time zone', 'text', 'jsonb'], 'public', ARRAY[]::name[], 'PUBLIC may not execute add_to_position(bigint, text, numeric, numeric, numeric, text, bigint, timestamp with time zone, text, jsonb)');
SELECT function_privs_are('pgportfolio', 'reduce_position', ARRAY['bigint', 'text', 'numeric', 'numeric', 'numeric', 'text', 'bigint', 'timestamp with time zone', 'text', 'jsonb'], 'public', ARRAY[]::name[], 'PUBLIC may not execute reduce_position(bigint, text, numeric, numeric, numeric, text, bigint, timestamp with time zone, text, jsonb)');
SELECT function_privs_are('pgportfolio', 'close_position', ARRAY['bigint', 'text', 'numeric', 'numeric', 'text', 'bigint', 'timestamp with time zone', 'text', 'jsonb'], 'public', ARRAY[]::name[], 'PUBLIC may not execute close_position(bigint, text, numeric, numeric, text, bigint, timestamp with time zone, text, jsonb)');
SELECT function_privs_are('pgportfolio', 'update_market_price', ARRAY['text', 'numeric', 'timestamp with time zone', 'text'], 'public', ARRAY[]::name[], 'PUBLIC may not execute update_market_price(text, numeric, timestamptz, text)');
SELECT function_privs_are('pgportfolio', 'grant_portfolio', ARRAY['bigint', 'name'], 'public', ARRAY[]::name[], 'PUBLIC may not execute grant_portfolio(bigint, name)');
SELECT function_privs_are('pgportfolio', 'revoke_portfolio', ARRAY['bigint', 'name'], 'public', ARRAY[]::name[], 'PUBLIC may not execute revoke_portfolio(bigint, name)');
SELECT function_privs_are('pgportfolio', 'verify_portfolio', ARRAY['bigint'], 'public', ARRAY[]::name[], 'PUBLIC may not execute verify_portfolio(bigint)');
SELECT function_privs_are('pgportfolio', 'get_portfolio', ARRAY['bigint'], 'public', ARRAY[]::name[], 'PUBLIC may not execute get_portfolio(bigint)');
SELECT function_privs_are('pgportfolio', 'find_request', ARRAY['bigint', 'text'], 'public', ARRAY[]::name[], 'PUBLIC may not execute find_request(bigint, text)');
SELECT function_privs_are('pgportfolio', 'events_since', ARRAY['bigint', 'bigint'], 'public', ARRAY[]::name[], 'PUBLIC may not execute events_since(bigint, bigint)');
SELECT function_privs_are('pgportfolio', 'events_after', ARRAY['bigint[]', 'bigint[]', 'integer'], 'public', ARRAY[]::name[], 'PUBLIC may not execute events_after(bigint[], bigint[], integer)');
SELECT function_privs_are('pgportfolio', 'recent_portfolios', ARRAY['integer'], 'public', ARRAY[]::name[], 'PUBLIC may not execute recent_portfolios(integer)');
SELECT function_privs_are('pgportfolio', 'acquire_advisory_lock', ARRAY['bigint', 'integer'], 'public', ARRAY[]::name[], 'PUBLIC may not execute acquire_advisory_lock(bigint, integer)');
SELECT function_privs_are('pgportfolio', 'server_wait_events', ARRAY[]::name[], 'public', ARRAY[]::name[], 'PUBLIC may not execute server_wait_events()');
SELECT function_privs_are('pgportfolio', 'current_lock_waits', ARRAY[]::name[], 'public', ARRAY[]::name[], 'PUBLIC may not execute current_lock_waits()');
SELECT function_privs_are('pgportfolio', '_acting_role', ARRAY[]::name[], 'public', ARRAY[]::name[], 'PUBLIC may not execute _acting_role()');
SELECT function_privs_are('pgportfolio', '_authorize', ARRAY['bigint', 'name'], 'public', ARRAY[]::name[], 'PUBLIC may not execute _authorize(bigint, name)');
SELECT function_privs_are('pgportfolio', '_bound_lock_wait', ARRAY[]::name[], 'public', ARRAY[]::name[], 'PUBLIC may not execute _bound_lock_wait()');
SELECT function_privs_are('pgportfolio', '_check_number', ARRAY['text', 'numeric', 'text'], 'public', ARRAY[]::name[], 'PUBLIC may not execute _check_number(text, numeric, text)');
SELECT function_privs_are('pgportfolio', '_check_portfolio_attributes', ARRAY['text', 'text'], 'public', ARRAY[]::name[], 'PUBLIC may not execute _check_portfolio_attributes(text, text)');
SELECT function_privs_are('pgportfolio', '_check_request', ARRAY['text', 'bigint'], 'public', ARRAY[]::name[], 'PUBLIC may not execute _check_request(text, bigint)');
SELECT function_privs_are('pgportfolio', '_check_symbol', ARRAY['text'], 'public', ARRAY[]::name[], 'PUBLIC may not execute _check_symbol(text)');
SELECT function_privs_are('pgportfolio', '_apply_one', ARRAY['text', 'bigint', 'text', 'numeric', 'numeric', 'numeric', 'numeric', 'text', 'bigint', 'timestamp with time zone', 'text', 'jsonb'], 'public', ARRAY[]::name[], 'PUBLIC may not execute _apply_one(text, bigint, text, numeric, numeric, numeric, numeric, text, bigint, timestamp with time zone, text, jsonb)');
SELECT function_privs_are('pgportfolio', '_apply_operations', ARRAY['text[]', 'bigint[]', 'text[]', 'numeric[]', 'numeric[]', 'numeric[]', 'numeric[]', 'text[]', 'bigint[]', 'timestamp with time zone[]', 'text[]', 'jsonb[]'], 'public', ARRAY[]::name[], 'PUBLIC may not execute _apply_operations(text[], bigint[], text[], numeric[], numeric[], numeric[], numeric[], text[], bigint[], timestamp with time zone[], text[], jsonb[])');
SELECT function_privs_are('pgportfolio', '_authorization_refusals', ARRAY['bigint[]', 'name'], 'public', ARRAY[]::name[], 'PUBLIC may not execute _authorization_refusals(bigint[], name)');
SELECT function_privs_are('pgportfolio', '_event_hash', ARRAY['bytea', 'bigint', 'bigint', 'text', 'text', 'text', 'numeric', 'numeric', 'numeric', 'numeric', 'numeric', 'numeric', 'numeric', 'numeric', 'numeric', 'text', 'timestamp with time zone', 'text', 'jsonb', 'numeric', 'name', 'timestamp with time zone'], 'public', ARRAY[]::name[], 'PUBLIC may not execute _event_hash(bytea, bigint, bigint, text, text, text, numeric, numeric, numeric, numeric, numeric, numeric, numeric, numeric, numeric, text, timestamp with time zone, text, jsonb, numeric, name, timestamp with time zone)');
SELECT function_privs_are('pgportfolio', '_wide_read_merges_marks', ARRAY['bigint'], 'public', ARRAY[]::name[], 'PUBLIC may not execute _wide_read_merges_marks(bigint)');
SELECT function_privs_are('pgportfolio', '_request_args', ARRAY['text', 'text', 'numeric', 'numeric', 'numeric', 'numeric', 'timestamp with time zone', 'text', 'jsonb'], 'public', ARRAY[]::name[], 'PUBLIC may not execute _request_args(text, text, numeric, numeric, numeric, numeric, timestamp with time zone, text, jsonb)');
SELECT function_privs_are('pgportfolio', 'events_refuse_change', ARRAY[]::name[], 'public', ARRAY[]::name[], 'PUBLIC may not execute events_refuse_change()');
SELECT function_privs_are('pgportfolio', '_acting_role', ARRAY[]::name[], 'pgportfolio_trader', ARRAY[]::name[], 'pgportfolio_trader may not execute the internal _acting_role()');
SELECT function_privs_are('pgportfolio', '_authorize', ARRAY['bigint', 'name'], 'pgportfolio_trader', ARRAY[]::name[], 'pgportfolio_trader may not execute the internal _authorize(bigint, name)');
SELECT function_privs_are('pgportfolio', '_bound_lock_wait', ARRAY[]::name[], 'pgportfolio_trader', ARRAY[]::name[], 'pgportfolio_trader may not execute the internal _bound_lock_wait()');
SELECT function_privs_are('pgportfolio', '_check_number', ARRAY['text', 'numeric', 'text'], 'pgportfolio_trader', ARRAY[]::name[], 'pgportfolio_trader may not execute the internal _check_number(text, numeric, text)');
SELECT function_privs_are('pgportfolio', '_check_portfolio_attributes', ARRAY['text', 'text'], 'pgportfolio_trader', ARRAY[]::name[], 'pgportfolio_trader may not execute the internal _check_portfolio_attributes(text, text)');
SELECT function_privs_are('pgportfolio', '_check_request', ARRAY['text', 'bigint'], 'pgportfolio_trader', ARRAY[]::name[], 'pgportfolio_trader may not execute the internal _check_request(text, bigint)');
SELECT function_privs_are('pgportfolio', '_check_symbol', ARRAY['text'], 'pgportfolio_trader', ARRAY[]::name[], 'pgportfolio_trader may not execute the internal _check_symbol(text)');
SELECT function_privs_are('pgportfolio', '_apply_one', ARRAY['text', 'bigint', 'text', 'numeric', 'numeric', 'numeric', 'numeric', 'text', 'bigint', 'timestamp with time zone', 'text', 'jsonb'], 'pgportfolio_trader', ARRAY[]::name[], 'pgportfolio_trader may not execute the internal _apply_one(text, bigint, text, numeric, numeric, numeric, numeric, text, bigint, timestamp with time zone, text, jsonb)');
SELECT function_privs_are('pgportfolio', '_apply_operations', ARRAY['text[]', 'bigint[]', 'text[]', 'numeric[]', 'numeric[]', 'numeric[]', 'numeric[]', 'text[]', 'bigint[]', 'timestamp with time zone[]', 'text[]', 'jsonb[]'], 'pgportfolio_trader', ARRAY[]::name[], 'pgportfolio_trader may not execute the internal _apply_operations(text[], bigint[], text[], numeric[], numeric[], numeric[], numeric[], text[], bigint[], timestamp with time zone[], text[], jsonb[])');
SELECT function_privs_are('pgportfolio', '_authorization_refusals', ARRAY['bigint[]', 'name'], 'pgportfolio_trader', ARRAY[]::name[], 'pgportfolio_trader may not execute the internal _authorization_refusals(bigint[], name)');
SELECT function_privs_are('pgportfolio', '_event_hash', ARRAY['bytea', 'bigint', 'bigint', 'text', 'text', 'text', 'numeric', 'numeric', 'numeric', 'numeric', 'numeric', 'numeric', 'numeric', 'numeric', 'numeric', 'text', 'timestamp with time zone', 'text', 'jsonb', 'numeric', 'name', 'timestamp with time zone'], 'pgportfolio_trader', ARRAY[]::name[], 'pgportfolio_trader may not execute the internal _event_hash(bytea, bigint, bigint, text, text, text, numeric, numeric, numeric, numeric, numeric, numeric, numeric, numeric, numeric, text, timestamp with time zone, text, jsonb, numeric, name, timestamp with time zone)');
SELECT function_privs_are('pgportfolio', '_wide_read_merges_marks', ARRAY['bigint'], 'pgportfolio_trader', ARRAY[]::name[], 'pgportfolio_trader may not execute the internal _wide_read_merges_marks(bigint)');
SELECT function_privs_are('pgportfolio', '_request_args', ARRAY['text', 'text', 'numeric', 'numeric', 'numeric', 'numeric', 'timestamp with time zone', 'text', 'jsonb'], 'pgportfolio_trader', ARRAY[]::name[], 'pgportfolio_trader may not execute the internal _request_args(text, text, numeric, numeric, numeric, numeric, timestamp with time zone, text, jsonb)');
SELECT function_privs_are('pgportfolio', 'events_refuse_change', ARRAY[]::name[], 'pgportfolio_trader', ARRAY[]::name[], 'pgportfolio_trader may not execute the internal events_refuse_change()');
SELECT function_privs_are('pgportfolio', '_acting_role', ARRAY[]::name[], 'pgportfolio_analyst', ARRAY[]::name[], 'pgportfolio_analyst may not execute the internal _acting_role()');
SELECT function_privs_are('pgportfolio', '_authorize', ARRAY['bigint', 'name'], 'pgportfolio_analyst', ARRAY[]::name[], 'pgportfolio_analyst may not execute the internal _authorize(bigint, name)');
SELECT function_privs_are('pgportfolio', '_bound_lock_wait', ARRAY[]::name[], 'pgportfolio_analyst', ARRAY[]::name[], 'pgportfolio_analyst may not execute the internal _bound_lock_wait()');
SELECT function_privs_are('pgportfolio', '_check_number', ARRAY['text', 'numeric', 'text'], 'pgportfolio_analyst', ARRAY[]::name[], 'pgportfolio_analyst may not execute the internal _check_number(text, numeric, text)');
SELECT function_privs_are('pgportfolio', '_check_portfolio_attributes', ARRAY['text', 'text'], 'pgportfolio_analyst', ARRAY[]::name[], 'pgportfolio_analyst may not execute the internal _check_portfolio_attributes(text, text)');
SELECT function_privs_are('pgportfolio', '_check_request', ARRAY['text', 'bigint'], 'pgportfolio_analyst', ARRAY[]::name[], 'pgportfolio_analyst may not execute the internal _check_request(text, bigint)');
SELECT function_privs_are('pgportfolio', '_check_symbol', ARRAY['text'], 'pgportfolio_analyst', ARRAY[]::name[], 'pgportfolio_analyst may not execute the internal _check_symbol(text)');
SELECT function_privs_are('pgportfolio', '_apply_one', ARRAY['text', 'bigint', 'text', 'numeric', 'numeric', 'numeric', 'numeric', 'text', 'bigint', 'timestamp with time zone', 'text', 'jsonb'], 'pgportfolio_analyst', ARRAY[]::name[], 'pgportfolio_analyst may not execute the internal _apply_one(text, bigint, text, numeric, numeric, numeric, numeric, text, bigint, timestamp with time zone, text, jsonb)');
SELECT function_privs_are('pgportfolio', '_apply_operations', ARRAY['text[]', 'bigint[]', 'text[]', 'numeric[]', 'numeric[]', 'numeric[]', 'numeric[]', 'text[]', 'bigint[]', 'timestamp with time zone[]', 'text[]', 'jsonb[]'], 'pgportfolio_analyst', ARRAY[]::name[], 'pgportfolio_analyst may not execute the internal _apply_operations(text[], bigint[], text[], numeric[], numeric[], numeric[], numeric[], text[], bigint[], timestamp with time zone[], text[], jsonb[])');
SELECT function_privs_are('pgportfolio', '_authorization_refusals', ARRAY['bigint[]', 'name'], 'pgportfolio_analyst', ARRAY[]::name[], 'pgportfolio_analyst may not execute the internal _authorization_refusals(bigint[], name)');
SELECT function_privs_are('pgportfolio', '_event_hash', ARRAY['bytea', 'bigint', 'bigint', 'text', 'text', 'text', 'numeric', 'numeric', 'numeric', 'numeric', 'numeric', 'numeric', 'numeric', 'numeric', 'numeric', 'text', 'timestamp with time zone', 'text', 'jsonb', 'numeric', 'name', 'timestamp with time zone'], 'pgportfolio_analyst', ARRAY[]::name[], 'pgportfolio_analyst may not execute the internal _event_hash(bytea, bigint, bigint, text, text, text, numeric, numeric, numeric, numeric, numeric, numeric, numeric, numeric, numeric, text, timestamp with time zone, text, jsonb, numeric, name, timestamp with time zone)');
SELECT function_privs_are('pgportfolio', '_wide_read_merges_marks', ARRAY['bigint'], 'pgportfolio_analyst', ARRAY[]::name[], 'pgportfolio_analyst may not execute the internal _wide_read_merges_marks(bigint)');
SELECT function_privs_are('pgportfolio', '_request_args', ARRAY['text', 'text', 'numeric', 'numeric', 'numeric', 'numeric', 'timestamp with time zone', 'text', 'jsonb'], 'pgportfolio_analyst', ARRAY[]::name[], 'pgportfolio_analyst may not execute the internal _request_args(text, text, numeric, numeric, numeric, numeric, timestamp with time zone, text, jsonb)');
SELECT function_privs_are('pgportfolio', 'events_refuse_change', ARRAY[]::name[], 'pgportfolio_analyst', ARRAY[]::name[], 'pgportfolio_analyst may not execute the internal events_refuse_change()');

-- table_privs_are: no role but the owner has any privilege on a table; the views are read-only for traders and analysts.
SELECT table_privs_are('pgportfolio', 'portfolios', 'pgportfolio_trader', ARRAY[]::name[], 'pgportfolio_trader has no privilege on table portfolios');
SELECT table_privs_are('pgportfolio', 'portfolios', 'pgportfolio_analyst', ARRAY[]::name[], 'pgportfolio_analyst has no privilege on table portfolios');
SELECT table_privs_are('pgportfolio', 'portfolios', 'public', ARRAY[]::name[], 'PUBLIC has no privilege on table portfolios');
SELECT table_privs_are('pgportfolio', 'portfolio_access', 'pgportfolio_trader', ARRAY[]::name[], 'pgportfolio_trader has no privilege on table portfolio_access');
SELECT table_privs_are('pgportfolio', 'portfolio_access', 'pgportfolio_analyst', ARRAY[]::name[], 'pgportfolio_analyst has no privilege on table portfolio_access');
SELECT table_privs_are('pgportfolio', 'portfolio_access', 'public', ARRAY[]::name[], 'PUBLIC has no privilege on table portfolio_access');
SELECT table_privs_are('pgportfolio', 'positions', 'pgportfolio_trader', ARRAY[]::name[], 'pgportfolio_trader has no privilege on table positions');
SELECT table_privs_are('pgportfolio', 'positions', 'pgportfolio_analyst', ARRAY[]::name[], 'pgportfolio_analyst has no privilege on table positions');
SELECT table_privs_are('pgportfolio', 'positions', 'public', ARRAY[]::name[], 'PUBLIC has no privilege on table positions');
SELECT table_privs_are('pgportfolio', 'market_prices', 'pgportfolio_trader', ARRAY[]::name[], 'pgportfolio_trader has no privilege on table market_prices');
SELECT table_privs_are('pgportfolio', 'market_prices', 'pgportfolio_analyst', ARRAY[]::name[], 'pgportfolio_analyst has no privilege on table market_prices');
SELECT table_privs_are('pgportfolio', 'market_prices', 'public', ARRAY[]::name[], 'PUBLIC has no privilege on table market_prices');
SELECT table_privs_are('pgportfolio', 'events', 'pgportfolio_trader', ARRAY[]::name[], 'pgportfolio_trader has no privilege on table events');
SELECT table_privs_are('pgportfolio', 'events', 'pgportfolio_analyst', ARRAY[]::name[], 'pgportfolio_analyst has no privilege on table events');
SELECT table_privs_are('pgportfolio', 'events', 'public', ARRAY[]::name[], 'PUBLIC has no privilege on table events');
SELECT table_privs_are('pgportfolio', 'market_price_history', 'pgportfolio_trader', ARRAY[]::name[], 'pgportfolio_trader has no privilege on table market_price_history');
SELECT table_privs_are('pgportfolio', 'market_price_history', 'pgportfolio_analyst', ARRAY[]::name[], 'pgportfolio_analyst has no privilege on table market_price_history');
SELECT table_privs_are('pgportfolio', 'market_price_history', 'public', ARRAY[]::name[], 'PUBLIC has no privilege on table market_price_history');
SELECT table_privs_are('pgportfolio', 'instruments', 'pgportfolio_trader', ARRAY[]::name[], 'pgportfolio_trader has no privilege on table instruments');
SELECT table_privs_are('pgportfolio', 'instruments', 'pgportfolio_analyst', ARRAY[]::name[], 'pgportfolio_analyst has no privilege on table instruments');
SELECT table_privs_are('pgportfolio', 'instruments', 'public', ARRAY[]::name[], 'PUBLIC has no privilege on table instruments');
SELECT table_privs_are('pgportfolio', 'instrument_list', 'pgportfolio_trader', ARRAY['SELECT'], 'pgportfolio_trader may only SELECT from view instrument_list');
SELECT table_privs_are('pgportfolio', 'instrument_list', 'pgportfolio_analyst', ARRAY['SELECT'], 'pgportfolio_analyst may only SELECT from view instrument_list');
SELECT table_privs_are('pgportfolio', 'instrument_list', 'public', ARRAY[]::name[], 'PUBLIC has no privilege on view instrument_list');
SELECT sequence_privs_are('pgportfolio', 'market_price_history_mark_id_seq', 'pgportfolio_trader', ARRAY[]::name[], 'pgportfolio_trader has no privilege on the mark id sequence');
SELECT sequence_privs_are('pgportfolio', 'market_price_history_mark_id_seq', 'pgportfolio_analyst', ARRAY[]::name[], 'pgportfolio_analyst has no privilege on the mark id sequence');
SELECT sequence_privs_are('pgportfolio', 'market_price_history_mark_id_seq', 'public', ARRAY[]::name[], 'PUBLIC has no privilege on the mark id sequence');
SELECT table_privs_are('pgportfolio', 'portfolio_summary', 'pgportfolio_trader', ARRAY['SELECT'], 'pgportfolio_trader may only SELECT from view portfolio_summary');
SELECT table_privs_are('pgportfolio', 'portfolio_summary', 'pgportfolio_analyst', ARRAY['SELECT'], 'pgportfolio_analyst may only SELECT from view portfolio_summary');
SELECT table_privs_are('pgportfolio', 'portfolio_summary', 'public', ARRAY[]::name[], 'PUBLIC has no privilege on view portfolio_summary');
SELECT table_privs_are('pgportfolio', 'position_pnl', 'pgportfolio_trader', ARRAY['SELECT'], 'pgportfolio_trader may only SELECT from view position_pnl');
SELECT table_privs_are('pgportfolio', 'position_pnl', 'pgportfolio_analyst', ARRAY['SELECT'], 'pgportfolio_analyst may only SELECT from view position_pnl');
SELECT table_privs_are('pgportfolio', 'position_pnl', 'public', ARRAY[]::name[], 'PUBLIC has no privilege on view position_pnl');
SELECT table_privs_are('pgportfolio', 'event_log', 'pgportfolio_trader', ARRAY['SELECT'], 'pgportfolio_trader may only SELECT from view event_log');
SELECT table_privs_are('pgportfolio', 'event_log', 'pgportfolio_analyst', ARRAY['SELECT'], 'pgportfolio_analyst may only SELECT from view event_log');
SELECT table_privs_are('pgportfolio', 'event_log', 'public', ARRAY[]::name[], 'PUBLIC has no privilege on view event_log');
SELECT table_privs_are('pgportfolio', 'lock_waits', 'pgportfolio_trader', ARRAY['SELECT'], 'pgportfolio_trader may only SELECT from view lock_waits');
SELECT table_privs_are('pgportfolio', 'lock_waits', 'pgportfolio_analyst', ARRAY['SELECT'], 'pgportfolio_analyst may only SELECT from view lock_waits');
SELECT table_privs_are('pgportfolio', 'lock_waits', 'public', ARRAY[]::name[], 'PUBLIC has no privilege on view lock_waits');
SELECT sequence_privs_are('pgportfolio', 'portfolios_portfolio_id_seq', 'pgportfolio_trader', ARRAY[]::name[], 'pgportfolio_trader has no privilege on the portfolio id sequence');
SELECT sequence_privs_are('pgportfolio', 'portfolios_portfolio_id_seq', 'pgportfolio_analyst', ARRAY[]::name[], 'pgportfolio_analyst has no privilege on the portfolio id sequence');
SELECT sequence_privs_are('pgportfolio', 'portfolios_portfolio_id_seq', 'public', ARRAY[]::name[], 'PUBLIC has no privilege on the portfolio id sequence');
SELECT schema_privs_are('pgportfolio', 'pgportfolio_trader', ARRAY['USAGE'], 'pgportfolio_trader has USAGE (not CREATE) on schema pgportfolio');
SELECT schema_privs_are('pgportfolio', 'pgportfolio_analyst', ARRAY['USAGE'], 'pgportfolio_analyst has USAGE (not CREATE) on schema pgportfolio');
SELECT schema_privs_are('pgportfolio', 'public', ARRAY[]::name[], 'PUBLIC has no privilege on schema pgportfolio');

-- ---------------------------------------------------------------- catalog-wide hygiene
SELECT is(
    (SELECT array_agg(p.proname::text ORDER BY p.proname) FROM pg_proc AS p
     WHERE p.pronamespace = 'pgportfolio'::regnamespace AND p.prosecdef
       AND NOT coalesce('search_path=pg_catalog, pg_temp' = ANY (p.proconfig), false)),
    NULL,
    'every SECURITY DEFINER function pins search_path = pg_catalog, pg_temp in proconfig'
);
SELECT is(
    (SELECT array_agg(p.proname::text ORDER BY p.proname) FROM pg_proc AS p
     WHERE p.pronamespace = 'pgportfolio'::regnamespace AND p.prosecdef),
    ARRAY['_portfolio_lockers', 'add_to_position', 'apply_fill', 'apply_fills', 'apply_fills_arrays', 'charge_fee', 'close_day', 'close_position', 'create_portfolio',
          'deposit_cash', 'event_chain_head', 'events_after', 'events_since', 'find_request', 'get_portfolio', 'grant_portfolio',
          'open_position', 'portfolio_as_of', 'portfolio_at_version', 'portfolio_snapshot', 'portfolio_valuation', 'portfolio_version', 'positions_as_of', 'positions_at_version', 'price_at', 'prune_price_history',
          'recent_portfolios', 'reduce_position', 'revoke_portfolio',
          'update_market_price', 'update_market_prices', 'upsert_instrument', 'verify_portfolio', 'withdraw_cash'],
    'exactly the public API functions (mutations, grants, verify and the client reads) are SECURITY DEFINER'
);
SELECT is(
    (SELECT array_agg(p.proname::text ORDER BY p.proname) FROM pg_proc AS p
     WHERE p.pronamespace = 'pgportfolio'::regnamespace
       AND NOT coalesce('search_path=pg_catalog, pg_temp' = ANY (p.proconfig), false)),
    ARRAY['_acting_role', '_authorization_refusals', '_event_hash', '_execution_valid', '_invalid_tags',
          '_refused_characters', '_symbol_valid'],
    'every pgportfolio function pins its search_path, except the seven documented inlinable SQL helpers'
);
-- Why those seven may: a SQL function with SET is never inlined, and inlining is what makes
-- them cheap inside the per-batch statements. They are safe without it only because they
-- are plain SQL, run as their caller (never SECURITY DEFINER) and qualify every name.
SELECT is(
    (SELECT array_agg(format('%s:%s:%s', p.proname, l.lanname, p.prosecdef) ORDER BY p.proname) FROM pg_proc AS p
     JOIN pg_language AS l ON l.oid = p.prolang
     WHERE p.pronamespace = 'pgportfolio'::regnamespace
       AND p.proname IN ('_acting_role', '_authorization_refusals', '_event_hash', '_execution_valid',
                         '_invalid_tags', '_refused_characters', '_symbol_valid')),
    ARRAY['_acting_role:sql:f', '_authorization_refusals:sql:f', '_event_hash:sql:f', '_execution_valid:sql:f',
          '_invalid_tags:sql:f', '_refused_characters:sql:f', '_symbol_valid:sql:f'],
    'the seven exceptions are LANGUAGE sql and not SECURITY DEFINER'
);
CREATE SCHEMA pgtap_160_hostile;
CREATE FUNCTION pgtap_160_hostile.sha256(bytea) RETURNS bytea LANGUAGE sql AS $$ SELECT '\x00'::bytea $$;
CREATE FUNCTION pgtap_160_hostile.convert_to(text, name) RETURNS bytea LANGUAGE sql AS $$ SELECT '\x01'::bytea $$;
CREATE FUNCTION pgtap_160_hostile.format(text, bigint) RETURNS text LANGUAGE sql AS $$ SELECT 'hostile' $$;
DO $$
BEGIN
    PERFORM set_config('test.hash_pinned', encode(pgportfolio._event_hash(
        '\x01'::bytea, 1, 2, 'open', 'apply_fill', 'S', 1, 2, 0, NULL, -2, 0, 8, 1, 2, 'r', NULL, NULL, NULL, 1, 'postgres',
        '2024-01-01 00:00:00+00'), 'hex'), true);
END
$$;
SET LOCAL search_path = pgtap_160_hostile, pg_catalog, public;
SELECT is(
    format('%s', 1::bigint) || encode(sha256('\x01'::bytea), 'hex') || encode(convert_to('x', 'UTF8'), 'hex'),
    'hostile0001',
    'control: with that search_path, unqualified format, sha256 and convert_to are the hostile ones'
);
SELECT is(
    encode(pgportfolio._event_hash(
        '\x01'::bytea, 1, 2, 'open', 'apply_fill', 'S', 1, 2, 0, NULL, -2, 0, 8, 1, 2, 'r', NULL, NULL, NULL, 1, 'postgres', '2024-01-01 00:00:00+00'), 'hex'),
    current_setting('test.hash_pinned'),
    '_event_hash gives the same hash with a hostile schema (sha256, convert_to) first in search_path'
);
SELECT is(
    (SELECT array_agg(message ORDER BY portfolio_id) FROM pgportfolio._authorization_refusals(ARRAY[-1, -2]::bigint[], 'nobody')),
    ARRAY['portfolio -2 not found', 'portfolio -1 not found'],
    '_authorization_refusals uses pg_catalog.format with a hostile format() first in search_path'
);
RESET search_path;
SELECT is(
    (SELECT array_agg(p.proname::text ORDER BY p.proname) FROM pg_proc AS p
     WHERE p.pronamespace = 'pgportfolio'::regnamespace AND has_function_privilege('public', p.oid, 'EXECUTE')),
    NULL,
    'PUBLIC may execute no function in pgportfolio'
);
SELECT is(
    (SELECT array_agg(c.relname::text ORDER BY c.relname) FROM pg_class AS c
     WHERE c.relnamespace = 'pgportfolio'::regnamespace AND c.relkind IN ('r', 'v', 'S')
       AND (has_table_privilege('public', c.oid, 'SELECT') OR has_table_privilege('public', c.oid, 'INSERT')
            OR has_table_privilege('public', c.oid, 'UPDATE') OR has_table_privilege('public', c.oid, 'DELETE'))),
    NULL,
    'PUBLIC may read or write no relation in pgportfolio'
);
SELECT ok(NOT has_type_privilege('public', 'pgportfolio.mutation_result', 'USAGE'),
    'PUBLIC has no USAGE on pgportfolio.mutation_result');
SELECT is(
    (SELECT array_agg(c.relname::text ORDER BY c.relname) FROM pg_class AS c
     WHERE c.relnamespace = 'pgportfolio'::regnamespace AND c.relkind = 'r'
       AND (has_table_privilege('pgportfolio_trader', c.oid, 'INSERT') OR has_table_privilege('pgportfolio_trader', c.oid, 'UPDATE')
            OR has_table_privilege('pgportfolio_trader', c.oid, 'DELETE') OR has_table_privilege('pgportfolio_trader', c.oid, 'TRUNCATE')
            OR has_table_privilege('pgportfolio_analyst', c.oid, 'INSERT') OR has_table_privilege('pgportfolio_analyst', c.oid, 'UPDATE')
            OR has_table_privilege('pgportfolio_analyst', c.oid, 'DELETE') OR has_table_privilege('pgportfolio_analyst', c.oid, 'TRUNCATE'))),
    NULL,
    'neither traders nor analysts may write any table'
);
SELECT is(
    (SELECT array_agg(c.relname::text ORDER BY c.relname) FROM pg_class AS c
     WHERE c.relnamespace = 'pgportfolio'::regnamespace AND c.relkind = 'v' AND NOT c.relrowsecurity
       AND has_table_privilege('pgportfolio_analyst', c.oid, 'SELECT')),
    ARRAY['daily_pnl', 'daily_positions', 'event_log', 'instrument_list', 'lock_waits', 'portfolio_summary', 'position_pnl'],
    'the analyst can read exactly the seven views'
);

-- ---------------------------------------------------------------- behaviour with real roles
CREATE ROLE pgtap_160_alice IN ROLE pgportfolio_trader;
CREATE ROLE pgtap_160_bob IN ROLE pgportfolio_trader;
CREATE ROLE pgtap_160_ann IN ROLE pgportfolio_analyst;
CREATE ROLE pgtap_160_nobody;
CREATE ROLE pgtap_160_desk IN ROLE pgportfolio_trader;
CREATE ROLE pgtap_160_carol IN ROLE pgtap_160_desk;

SET LOCAL ROLE pgtap_160_alice;
DO $$
BEGIN
    PERFORM set_config('test.pid_alice', pgportfolio.create_portfolio('alice book', 1000)::text, true);
END
$$;
SELECT is(
    (SELECT (portfolio_version, cash_balance) FROM pgportfolio.deposit_cash(pg_temp.pid('alice'), 10, 'alice-dep')),
    ROW(2::bigint, 1010::numeric),
    'a trader may deposit into her own portfolio'
);
SELECT is(
    (SELECT position_quantity FROM pgportfolio.open_position(pg_temp.pid('alice'), 'GRNT', 2, 5)),
    2::numeric,
    'a trader may trade her own portfolio'
);
SELECT is(
    (SELECT (portfolio_version, cash_balance, duplicate) FROM pgportfolio.find_request(pg_temp.pid('alice'), 'alice-dep')),
    ROW(2::bigint, 1010::numeric, true),
    'the owner may look up her own request with find_request'
);
SELECT throws_ok($$SELECT * FROM pgportfolio.portfolios$$, '42501', NULL,
    'a trader may not SELECT from the portfolios table');
SELECT throws_ok($$SELECT * FROM pgportfolio.events$$, '42501', NULL,
    'a trader may not SELECT from the events table');
SELECT throws_ok(
    $$INSERT INTO pgportfolio.portfolios (name, currency, owner_role, initial_cash, cash_balance)
      VALUES ('forged', 'USD', 'pgtap_160_alice', 1e9, 1e9)$$,
    '42501', NULL, 'a trader may not INSERT into portfolios');
SELECT throws_ok($$UPDATE pgportfolio.positions SET quantity = 1000$$, '42501', NULL,
    'a trader may not UPDATE positions');
SELECT throws_ok($$DELETE FROM pgportfolio.portfolio_access$$, '42501', NULL,
    'a trader may not DELETE from portfolio_access');
SELECT throws_ok($$INSERT INTO pgportfolio.market_prices (symbol, price) VALUES ('GRNT', 1)$$, '42501', NULL,
    'a trader may not INSERT into market_prices (only update_market_price)');
SELECT throws_ok($$TRUNCATE pgportfolio.events$$, '42501', NULL, 'a trader may not TRUNCATE events');
SELECT throws_ok(
    $$SELECT pgportfolio._apply_one('deposit_cash', pg_temp.pid('alice'), NULL, NULL, NULL, NULL, 1, NULL, NULL)$$,
    '42501', NULL, 'a trader may not call the internal _apply_one directly');
SELECT throws_ok(
    $$SELECT * FROM pgportfolio._apply_operations(ARRAY['deposit_cash'], ARRAY[pg_temp.pid('alice')], ARRAY[NULL],
        ARRAY[NULL]::numeric[], ARRAY[NULL]::numeric[], ARRAY[NULL]::numeric[], ARRAY[1]::numeric[], ARRAY[NULL],
        ARRAY[NULL]::bigint[], ARRAY[NULL]::timestamptz[], ARRAY[NULL], ARRAY[NULL]::jsonb[])$$,
    '42501', NULL, 'a trader may not call the operations core _apply_operations directly');
SELECT throws_ok(
    $$SELECT pgportfolio._authorize(pg_temp.pid('alice'), 'pgtap_160_alice')$$,
    '42501', NULL, 'a trader may not call the internal _authorize directly');
RESET ROLE;

-- another trader is refused until granted
SET LOCAL ROLE pgtap_160_bob;
SELECT throws_ok($$SELECT pgportfolio.deposit_cash(pg_temp.pid('alice'), 1)$$, '42501', NULL,
    'another trader may not deposit into alice''s portfolio (42501)');
SELECT throws_ok($$SELECT pgportfolio.withdraw_cash(pg_temp.pid('alice'), 1)$$, '42501', NULL,
    'another trader may not withdraw from alice''s portfolio');
SELECT throws_ok($$SELECT pgportfolio.charge_fee(pg_temp.pid('alice'), 1)$$, '42501', NULL,
    'another trader may not charge a fee to alice''s portfolio');
SELECT throws_ok($$SELECT pgportfolio.apply_fill(pg_temp.pid('alice'), 'GRNT', 1, 5)$$, '42501', NULL,
    'another trader may not apply a fill to alice''s portfolio');
SELECT throws_ok($$SELECT pgportfolio.close_position(pg_temp.pid('alice'), 'GRNT', 5)$$, '42501', NULL,
    'another trader may not close alice''s position');
SELECT throws_ok($$SELECT pgportfolio.deposit_cash(pg_temp.pid('alice'), 10, 'alice-dep')$$, '42501', NULL,
    'another trader replaying alice''s request id is refused (42501), not answered with her result');
SELECT throws_ok($$SELECT pgportfolio.grant_portfolio(pg_temp.pid('alice'), 'pgtap_160_bob')$$, '42501', NULL,
    'another trader may not grant himself alice''s portfolio');
SELECT throws_ok($$SELECT pgportfolio.revoke_portfolio(pg_temp.pid('alice'), 'pgtap_160_alice')$$, '42501', NULL,
    'another trader may not revoke on alice''s portfolio');
SELECT throws_ok($$SELECT * FROM pgportfolio.find_request(pg_temp.pid('alice'), 'alice-dep')$$, '42501', NULL,
    'another trader may not look up alice''s request ids with find_request');
SELECT throws_ok($$SELECT pgportfolio.deposit_cash(-1, 1)$$, 'PF004', NULL,
    'an unknown portfolio is PF004 for any trader');
RESET ROLE;
SELECT is(
    (SELECT (version::bigint, cash_balance::numeric) FROM pgportfolio.portfolios WHERE portfolio_id = pg_temp.pid('alice')),
    ROW(3::bigint, 1000::numeric),
    'the refused calls left alice''s portfolio at version 3'
);

-- alice grants bob
SET LOCAL ROLE pgtap_160_alice;
SELECT lives_ok($$SELECT pgportfolio.grant_portfolio(pg_temp.pid('alice'), 'pgtap_160_bob')$$,
    'the owner may grant her portfolio to another role');
SELECT lives_ok($$SELECT pgportfolio.grant_portfolio(pg_temp.pid('alice'), 'pgtap_160_bob')$$,
    'granting the same role twice is harmless');
SELECT throws_ok($$SELECT pgportfolio.grant_portfolio(pg_temp.pid('alice'), 'pgtap_160_no_such_role')$$, '22023', NULL,
    'granting to a role that does not exist is 22023');
SELECT throws_ok($$SELECT pgportfolio.grant_portfolio(pg_temp.pid('alice'), NULL)$$, '22023', NULL,
    'granting to NULL is 22023');
SELECT throws_ok($$SELECT pgportfolio.grant_portfolio(NULL, 'pgtap_160_bob')$$, '22023', NULL,
    'granting a NULL portfolio is 22023');
SELECT throws_ok($$SELECT pgportfolio.grant_portfolio(-1, 'pgtap_160_bob')$$, 'PF004', NULL,
    'granting an unknown portfolio is PF004');
RESET ROLE;
SELECT is(
    (SELECT array_agg(grantee::text || ' by ' || granted_by::text) FROM pgportfolio.portfolio_access
     WHERE portfolio_id = pg_temp.pid('alice')),
    ARRAY['pgtap_160_bob by pgtap_160_alice'],
    'one access row records grantee and granter'
);

SET LOCAL ROLE pgtap_160_bob;
SELECT is(
    (SELECT (portfolio_version, cash_balance) FROM pgportfolio.deposit_cash(pg_temp.pid('alice'), 5)),
    ROW(4::bigint, 1005::numeric),
    'once granted, bob may deposit into alice''s portfolio'
);
SELECT is(
    (SELECT position_quantity FROM pgportfolio.add_to_position(pg_temp.pid('alice'), 'GRNT', 1, 5)),
    3::numeric,
    'once granted, bob may trade alice''s portfolio'
);
SELECT throws_ok($$SELECT pgportfolio.grant_portfolio(pg_temp.pid('alice'), 'pgtap_160_ann')$$, '42501', NULL,
    'a grantee may not pass the grant on (only the owner may grant)');
SELECT throws_ok($$SELECT pgportfolio.revoke_portfolio(pg_temp.pid('alice'), 'pgtap_160_bob')$$, '42501', NULL,
    'a grantee may not revoke');
RESET ROLE;
SELECT is(
    (SELECT array_agg(acting_role::text ORDER BY portfolio_version) FROM pgportfolio.events
     WHERE portfolio_id = pg_temp.pid('alice')),
    ARRAY['pgtap_160_alice', 'pgtap_160_alice', 'pgtap_160_alice', 'pgtap_160_bob', 'pgtap_160_bob'],
    'the log records who acted: alice for her own calls, bob for his'
);
SELECT is(
    (SELECT owner_role FROM pgportfolio.portfolios WHERE portfolio_id = pg_temp.pid('alice')),
    'pgtap_160_alice'::name,
    'a grant does not change the owner'
);

SET LOCAL ROLE pgtap_160_alice;
SELECT lives_ok($$SELECT pgportfolio.revoke_portfolio(pg_temp.pid('alice'), 'pgtap_160_bob')$$,
    'the owner may revoke a grant');
SELECT lives_ok($$SELECT pgportfolio.revoke_portfolio(pg_temp.pid('alice'), 'pgtap_160_bob')$$,
    'revoking a grant that is not there is harmless');
RESET ROLE;
SET LOCAL ROLE pgtap_160_bob;
SELECT throws_ok($$SELECT pgportfolio.deposit_cash(pg_temp.pid('alice'), 1)$$, '42501', NULL,
    'after the revoke bob is refused again');
RESET ROLE;

-- a dropped grantee must not break the portfolio for anyone else
CREATE ROLE pgtap_160_temp IN ROLE pgportfolio_trader;
SET LOCAL ROLE pgtap_160_alice;
SELECT lives_ok($$SELECT pgportfolio.grant_portfolio(pg_temp.pid('alice'), 'pgtap_160_temp')$$,
    'alice grants a short-lived role');
RESET ROLE;
DROP ROLE pgtap_160_temp;
SET LOCAL ROLE pgtap_160_bob;
SELECT throws_ok($$SELECT pgportfolio.deposit_cash(pg_temp.pid('alice'), 1)$$, '42501', NULL,
    'with a dropped grantee in the access list, an ungranted trader still gets 42501 (not an error about the role)');
RESET ROLE;
SET LOCAL ROLE pgtap_160_alice;
SELECT lives_ok($$SELECT pgportfolio.revoke_portfolio(pg_temp.pid('alice'), 'pgtap_160_temp')$$,
    'the owner can still revoke the dropped role''s grant');
SELECT throws_ok($$SELECT pgportfolio.revoke_portfolio(NULL, 'pgtap_160_temp')$$, '22023', NULL,
    'revoking on a NULL portfolio is 22023, as for grant_portfolio');
RESET ROLE;

-- a portfolio owned by a group role: every member may trade it
SET LOCAL ROLE pgtap_160_desk;
DO $$
BEGIN
    PERFORM set_config('test.pid_desk', pgportfolio.create_portfolio('desk book', 100)::text, true);
END
$$;
RESET ROLE;
SET LOCAL ROLE pgtap_160_carol;
SELECT is(
    (SELECT portfolio_version FROM pgportfolio.deposit_cash(pg_temp.pid('desk'), 1)),
    2::bigint,
    'a member of the owning role may trade the portfolio'
);
SELECT lives_ok($$SELECT pgportfolio.grant_portfolio(pg_temp.pid('desk'), 'pgtap_160_bob')$$,
    'a member of the owning role may grant it');
SELECT throws_ok($$SELECT pgportfolio.deposit_cash(pg_temp.pid('alice'), 1)$$, '42501', NULL,
    'carol may not trade alice''s portfolio');
RESET ROLE;
SET LOCAL ROLE pgtap_160_alice;
SELECT lives_ok($$SELECT pgportfolio.grant_portfolio(pg_temp.pid('alice'), 'pgtap_160_desk')$$,
    'alice grants her portfolio to the desk group');
RESET ROLE;
SET LOCAL ROLE pgtap_160_carol;
SELECT is(
    (SELECT portfolio_version FROM pgportfolio.deposit_cash(pg_temp.pid('alice'), 1)),
    6::bigint,
    'a member of a grantee role may trade the portfolio'
);
RESET ROLE;
SELECT is(
    (SELECT acting_role FROM pgportfolio.events WHERE portfolio_id = pg_temp.pid('alice') AND portfolio_version = 6),
    'pgtap_160_carol'::name,
    'the acting role is the member who called, not the group'
);

-- the analyst reads and verifies, nothing else
SET LOCAL ROLE pgtap_160_ann;
SELECT lives_ok($$SELECT count(*) FROM pgportfolio.portfolio_summary$$, 'an analyst may read portfolio_summary');
SELECT lives_ok($$SELECT count(*) FROM pgportfolio.position_pnl$$, 'an analyst may read position_pnl');
SELECT lives_ok($$SELECT count(*) FROM pgportfolio.event_log$$, 'an analyst may read event_log');
SELECT lives_ok($$SELECT count(*) FROM pgportfolio.lock_waits$$, 'an analyst may read lock_waits');
SELECT is(
    (SELECT count(*) FROM pgportfolio.verify_portfolio(pg_temp.pid('alice')) WHERE NOT ok),
    0::bigint,
    'an analyst may run verify_portfolio'
);
SELECT is(
    (SELECT count(*) FROM pgportfolio.get_portfolio(pg_temp.pid('alice'))),
    1::bigint,
    'an analyst may call get_portfolio (one row for alice''s one open position)'
);
SELECT throws_ok($$SELECT * FROM pgportfolio.find_request(pg_temp.pid('alice'), 'alice-dep')$$, '42501', NULL,
    'an analyst may not call find_request');
SELECT throws_ok($$SELECT pgportfolio.acquire_advisory_lock(1, 10)$$, '42501', NULL,
    'an analyst may not call acquire_advisory_lock');
SELECT throws_ok($$SELECT pgportfolio.create_portfolio('ann book', 1)$$, '42501', NULL, 'an analyst may not create a portfolio');
SELECT throws_ok($$SELECT pgportfolio.deposit_cash(pg_temp.pid('alice'), 1)$$, '42501', NULL, 'an analyst may not deposit');
SELECT throws_ok($$SELECT pgportfolio.apply_fill(pg_temp.pid('alice'), 'GRNT', 1, 1)$$, '42501', NULL, 'an analyst may not trade');
SELECT throws_ok($$SELECT pgportfolio.grant_portfolio(pg_temp.pid('alice'), 'pgtap_160_ann')$$, '42501', NULL,
    'an analyst may not call grant_portfolio');
SELECT throws_ok($$SELECT * FROM pgportfolio.portfolios$$, '42501', NULL, 'an analyst may not read the portfolios table');
SELECT throws_ok($$SELECT * FROM pgportfolio.positions$$, '42501', NULL, 'an analyst may not read the positions table');
SELECT throws_ok($$INSERT INTO pgportfolio.market_prices (symbol, price) VALUES ('X', 1)$$, '42501', NULL,
    'an analyst may not write market_prices');
RESET ROLE;

-- a role with no pgportfolio membership gets nothing at all
SET LOCAL ROLE pgtap_160_nobody;
SELECT throws_ok($$SELECT count(*) FROM pgportfolio.portfolio_summary$$, '42501', NULL,
    'a role outside pgportfolio may not read the views');
SELECT throws_ok($$SELECT pgportfolio.verify_portfolio(1)$$, '42501', NULL,
    'a role outside pgportfolio may not run verify_portfolio');
SELECT throws_ok($$SELECT pgportfolio.create_portfolio('nobody', 1)$$, '42501', NULL,
    'a role outside pgportfolio may not create a portfolio');
RESET ROLE;

SELECT is(
    (SELECT (version::bigint, cash_balance::numeric) FROM pgportfolio.portfolios WHERE portfolio_id = pg_temp.pid('alice')),
    ROW(6::bigint, 1001::numeric),
    'alice''s portfolio moved only through the permitted calls'
);
SELECT is(
    (SELECT count(*) FROM pgportfolio.verify_portfolio(pg_temp.pid('alice')) WHERE NOT ok),
    0::bigint,
    'verify_portfolio is clean after trading by several roles'
);

-- ---------------------------------------------------------------- objects the owner creates later start closed
SET LOCAL ROLE pgportfolio_owner;
CREATE FUNCTION pgportfolio.pgtap_160_later() RETURNS integer LANGUAGE sql SET search_path = pg_catalog, pg_temp
AS 'SELECT 1';
CREATE TYPE pgportfolio.pgtap_160_later_type AS (x integer);
RESET ROLE;
SELECT ok(NOT has_function_privilege('public', 'pgportfolio.pgtap_160_later()', 'EXECUTE'),
    'a function the owner creates later is not executable by PUBLIC (default privileges)');
SELECT ok(NOT has_function_privilege('pgportfolio_analyst', 'pgportfolio.pgtap_160_later()', 'EXECUTE'),
    'nor by analysts until granted');
SELECT ok(NOT has_type_privilege('public', 'pgportfolio.pgtap_160_later_type', 'USAGE'),
    'a type the owner creates later is not usable by PUBLIC (default privileges)');

SELECT * FROM finish();
ROLLBACK;
