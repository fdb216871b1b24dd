-- Every query the client sends. Each block starts with "-- name: <name>" and a one-line
-- description; each query is one call of a pgportfolio function. Parsed once by queries.py.

-- name: create_portfolio
-- Create a portfolio owned by the connected role; returns its id.
SELECT pgportfolio.create_portfolio(p_name => %(name)s, p_initial_cash => %(initial_cash)s, p_currency => %(currency)s);

-- name: deposit_cash
-- Add cash.
SELECT * FROM pgportfolio.deposit_cash(p_portfolio_id => %(portfolio_id)s, p_amount => %(amount)s, p_request_id => %(request_id)s, p_expected_version => %(expected_version)s);

-- name: withdraw_cash
-- Take cash out.
SELECT * FROM pgportfolio.withdraw_cash(p_portfolio_id => %(portfolio_id)s, p_amount => %(amount)s, p_request_id => %(request_id)s, p_expected_version => %(expected_version)s);

-- name: charge_fee
-- Charge a fee that is not part of a fill.
SELECT * FROM pgportfolio.charge_fee(p_portfolio_id => %(portfolio_id)s, p_amount => %(amount)s, p_request_id => %(request_id)s, p_expected_version => %(expected_version)s);

-- name: apply_fill
-- A signed fill netted against the open position.
SELECT * FROM pgportfolio.apply_fill(p_portfolio_id => %(portfolio_id)s, p_symbol => %(symbol)s, p_quantity => %(quantity)s, p_price => %(price)s, p_fee => %(fee)s, p_request_id => %(request_id)s, p_expected_version => %(expected_version)s, p_executed_at => %(executed_at)s, p_order_id => %(order_id)s, p_tags => %(tags)s);

-- name: open_position
-- Open a position; PF006 if one is open.
SELECT * FROM pgportfolio.open_position(p_portfolio_id => %(portfolio_id)s, p_symbol => %(symbol)s, p_quantity => %(quantity)s, p_price => %(price)s, p_fee => %(fee)s, p_request_id => %(request_id)s, p_expected_version => %(expected_version)s, p_executed_at => %(executed_at)s, p_order_id => %(order_id)s, p_tags => %(tags)s);

-- name: add_to_position
-- Add to an open position on its side.
SELECT * FROM pgportfolio.add_to_position(p_portfolio_id => %(portfolio_id)s, p_symbol => %(symbol)s, p_quantity => %(quantity)s, p_price => %(price)s, p_fee => %(fee)s, p_request_id => %(request_id)s, p_expected_version => %(expected_version)s, p_executed_at => %(executed_at)s, p_order_id => %(order_id)s, p_tags => %(tags)s);

-- name: reduce_position
-- Reduce an open position by a positive quantity.
SELECT * FROM pgportfolio.reduce_position(p_portfolio_id => %(portfolio_id)s, p_symbol => %(symbol)s, p_quantity => %(quantity)s, p_price => %(price)s, p_fee => %(fee)s, p_request_id => %(request_id)s, p_expected_version => %(expected_version)s, p_executed_at => %(executed_at)s, p_order_id => %(order_id)s, p_tags => %(tags)s);

-- name: close_position
-- Close the whole position.
SELECT * FROM pgportfolio.close_position(p_portfolio_id => %(portfolio_id)s, p_symbol => %(symbol)s, p_price => %(price)s, p_fee => %(fee)s, p_request_id => %(request_id)s, p_expected_version => %(expected_version)s, p_executed_at => %(executed_at)s, p_order_id => %(order_id)s, p_tags => %(tags)s);

-- name: update_market_price
-- Record a mark of a symbol (as of a time, default now; optional source).
SELECT pgportfolio.update_market_price(p_symbol => %(symbol)s, p_price => %(price)s, p_as_of => %(as_of)s, p_source => %(source)s);

-- name: price_at
-- The price of the mark current at a time, or NULL.
SELECT pgportfolio.price_at(p_symbol => %(symbol)s, p_at => %(at)s);

-- name: upsert_instrument
-- Create or replace an instrument (owner role only).
SELECT pgportfolio.upsert_instrument(p_symbol => %(symbol)s, p_multiplier => %(multiplier)s, p_description => %(description)s);

-- name: grant_portfolio
-- Let another role trade a portfolio.
SELECT pgportfolio.grant_portfolio(p_portfolio_id => %(portfolio_id)s, p_role => %(role)s);

-- name: revoke_portfolio
-- Withdraw a grant.
SELECT pgportfolio.revoke_portfolio(p_portfolio_id => %(portfolio_id)s, p_role => %(role)s);

-- name: verify_portfolio
-- Rebuild a portfolio from its event log and compare.
SELECT check_name, ok, expected, actual FROM pgportfolio.verify_portfolio(p_portfolio_id => %(portfolio_id)s);

-- name: portfolio_snapshot
-- A portfolio and its open positions, one snapshot, in one row (position columns as arrays).
SELECT * FROM pgportfolio.portfolio_snapshot(p_portfolio_id => %(portfolio_id)s);

-- name: find_request
-- The stored result of a request id; no row if it was never applied.
SELECT * FROM pgportfolio.find_request(p_portfolio_id => %(portfolio_id)s, p_request_id => %(request_id)s);

-- name: events_since
-- Events of one portfolio after a version, in order.
SELECT portfolio_id, portfolio_version, kind FROM pgportfolio.events_since(p_portfolio_id => %(portfolio_id)s, p_after_version => %(after_version)s);

-- name: advisory_lock
-- Take a session-level advisory lock, waiting at most the timeout (cross-process sections).
SELECT pgportfolio.acquire_advisory_lock(p_key => %(key)s, p_timeout_ms => %(timeout_ms)s);

-- name: advisory_unlock
-- Release a session-level advisory lock.
SELECT pg_advisory_unlock(%(key)s);

-- name: recent_portfolios
-- The most recently changed portfolios and their versions (pgportfolio top).
SELECT portfolio_id, name, version, updated_at FROM pgportfolio.recent_portfolios(p_limit => %(limit)s);

-- name: server_wait_events
-- Sessions of this database by state and wait event (pgportfolio top).
SELECT state, wait_event_type, wait_event, sessions FROM pgportfolio.server_wait_events();

-- name: current_lock_waits
-- Who waits for a lock, behind whom (pgportfolio top).
SELECT waiting_pid, waiting_role, relation::text, mode, extract(epoch FROM waiting_for), blocking_pids, waiting_query FROM pgportfolio.current_lock_waits();

-- name: portfolio_lock_holders
-- Who holds each locked portfolio, for how long, idle or not (pgportfolio top).
SELECT portfolio_id, holder_pid, holder_role, state, extract(epoch FROM held_for), extract(epoch FROM idle_for), holder_query FROM pgportfolio.portfolio_lock_holders();

-- name: apply_fills_arrays
-- Many operations in one call (coalescing), one typed array per field; one result row per element, in order.
SELECT item, portfolio_id, portfolio_version, cash_balance, symbol, position_quantity, position_avg_price, realized_pnl, duplicate, sqlstate, message, detail, hint FROM pgportfolio.apply_fills_arrays(p_portfolio_ids => %(portfolio_id)s::bigint[], p_symbols => %(symbol)s::text[], p_quantities => %(quantity)s::numeric[], p_prices => %(price)s::numeric[], p_fees => %(fee)s::numeric[], p_request_ids => %(request_id)s::text[], p_expected_versions => %(expected_version)s::bigint[], p_operations => %(operation)s::text[], p_amounts => %(amount)s::numeric[], p_executed_ats => %(executed_at)s::timestamptz[], p_order_ids => %(order_id)s::text[], p_tags => %(tags)s::jsonb[]);

-- name: update_market_prices
-- Many marks at once, all or nothing; returns the number of symbols written.
SELECT pgportfolio.update_market_prices(p_prices => %(prices)s::jsonb);

-- name: portfolio_version
-- The current version of a portfolio.
SELECT pgportfolio.portfolio_version(p_portfolio_id => %(portfolio_id)s);

-- name: portfolio_versions
-- The current version of each portfolio, NULL for none (subscribe's resync events).
SELECT p.portfolio_id, pgportfolio.portfolio_version(p_portfolio_id => p.portfolio_id) FROM unnest(%(portfolio_ids)s::bigint[]) AS p (portfolio_id);

-- name: events_after
-- Push updates: the events after the last version seen of each portfolio (subscribe).
SELECT portfolio_id, portfolio_version, kind FROM pgportfolio.events_after(p_portfolio_ids => %(portfolio_ids)s::bigint[], p_after_versions => %(after_versions)s::bigint[], p_limit => %(limit)s);

-- name: event_log
-- Every column of a portfolio's events after a version and at or after a time, in order (frames).
SELECT portfolio_id, portfolio_version, kind, operation, symbol, quantity, price, fee, amount, cash_delta, realized_pnl, cash_balance, position_quantity, request_id, acting_role, created_at, executed_at, order_id, tags, multiplier FROM pgportfolio.event_log WHERE portfolio_id = %(portfolio_id)s AND portfolio_version > %(after_version)s AND created_at >= %(since)s ORDER BY portfolio_version;

-- name: portfolio_as_of
-- A portfolio as of a ledger time, valued at the marks current then.
SELECT portfolio_id, name, currency, cash_balance, market_value, unrealized_pnl, realized_pnl, equity, open_positions, version, updated_at, marks_at FROM pgportfolio.portfolio_as_of(p_portfolio_id => %(portfolio_id)s, p_at => %(at)s);

-- name: positions_as_of
-- The open positions of a portfolio as of a ledger time, in symbol order.
SELECT portfolio_id, symbol, quantity, avg_price, cost_basis, mark_price, mark_as_of, multiplier, market_value, unrealized_pnl, realized_pnl, version, opened_at, updated_at FROM pgportfolio.positions_as_of(p_portfolio_id => %(portfolio_id)s, p_at => %(at)s);

-- name: portfolio_at_version
-- A portfolio right after a version, valued at the marks of a time (default: that version's).
SELECT portfolio_id, name, currency, cash_balance, market_value, unrealized_pnl, realized_pnl, equity, open_positions, version, updated_at, marks_at FROM pgportfolio.portfolio_at_version(p_portfolio_id => %(portfolio_id)s, p_version => %(version)s, p_marks_at => %(marks_at)s);

-- name: positions_at_version
-- The open positions right after a version, in symbol order.
SELECT portfolio_id, symbol, quantity, avg_price, cost_basis, mark_price, mark_as_of, multiplier, market_value, unrealized_pnl, realized_pnl, version, opened_at, updated_at FROM pgportfolio.positions_at_version(p_portfolio_id => %(portfolio_id)s, p_version => %(version)s, p_marks_at => %(marks_at)s);

-- name: close_day
-- Write (or return) the end-of-day snapshots of a UTC day (owner role only).
SELECT portfolio_id, day, portfolio_version, cash_balance, market_value, cost_basis, unrealized_pnl, realized_pnl, net_deposits, equity, open_positions, closed_at, recorded_at FROM pgportfolio.close_day(p_day => %(day)s, p_portfolio_id => %(portfolio_id)s);

-- name: daily_pnl
-- A portfolio's closes and day-over-day changes, between two days inclusive, in day order.
SELECT portfolio_id, day, previous_day, portfolio_version, cash_balance, market_value, realized_pnl, unrealized_pnl, net_deposits, equity, open_positions, equity_change, realized_change, unrealized_change, cash_moves, closed_at FROM pgportfolio.daily_pnl WHERE portfolio_id = %(portfolio_id)s AND day BETWEEN %(since)s AND %(until)s ORDER BY day;
-- name: replication_lag
-- On a primary each standby's lag, on a standby its own (pgportfolio top).
SELECT standby, seen_from, state, sync_state, unflushed_bytes, unreplayed_bytes, flush_lag, replay_lag FROM pgportfolio.replication_lag();

-- name: server_identity
-- Which server answers (subscribe sees a failover by it changing).
SELECT inet_server_addr()::text, inet_server_port();
