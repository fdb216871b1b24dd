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
