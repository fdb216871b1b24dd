-- verify_portfolio (sql/170_verify_portfolio.sql): every check holds after a mixed
-- sequence of mutations, and each kind of corrupted stored state is reported by the
-- checks that should see it (and only those).
BEGIN;
SELECT plan(46);

CREATE FUNCTION pg_temp.pid(p_name text) RETURNS bigint LANGUAGE sql STABLE
AS $$ SELECT current_setting('test.pid_' || p_name)::bigint $$;

-- The documented chain hash of event e after the hash p_previous (docs/sql-api.md, "Event log
-- integrity"), written out: what a writer must store, for the direct inserts below.
CREATE FUNCTION pg_temp.documented_hash(p_previous bytea, e pgportfolio.events) RETURNS bytea
LANGUAGE sql STABLE AS $$
    SELECT sha256(p_previous || convert_to(ROW(
        e.portfolio_id, e.portfolio_version, e.kind, e.operation, e.symbol, e.quantity, e.price, e.fee, e.amount,
        e.cash_delta, e.realized_pnl, e.cash_balance, e.position_quantity, e.position_cost_basis, e.request_id,
        EXTRACT(EPOCH FROM e.executed_at), e.order_id, e.tags, e.multiplier, e.acting_role,
        EXTRACT(EPOCH FROM e.created_at))::text, 'UTF8'))
$$;
-- A direct insert of one event with the hash a writer would give it: chained to the
-- portfolio's latest event before it (the one just before, unless the insert leaves a gap).
CREATE FUNCTION pg_temp.insert_chained(e pgportfolio.events) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    e.created_at := coalesce(e.created_at, now());
    e.chain_hash := pg_temp.documented_hash(
        (SELECT prev.chain_hash FROM pgportfolio.events AS prev
         WHERE prev.portfolio_id = e.portfolio_id AND prev.portfolio_version < e.portfolio_version
         ORDER BY prev.portfolio_version DESC LIMIT 1),
        e
    );
    INSERT INTO pgportfolio.events SELECT e.*;
    -- as the writers do: the portfolio's row keeps the head of its chain
    UPDATE pgportfolio.portfolios SET chain_head = e.chain_hash WHERE portfolio_id = e.portfolio_id;
END;
$$;

-- The names of the failing checks, sorted; NULL when everything is ok.
CREATE FUNCTION pg_temp.failing(p_portfolio_id bigint) RETURNS text[] LANGUAGE sql STABLE AS $$
    SELECT array_agg(check_name ORDER BY check_name)
    FROM pgportfolio.verify_portfolio(p_portfolio_id) WHERE ok IS DISTINCT FROM true
$$;

DO $$
BEGIN
    PERFORM set_config('test.pid_v', pgportfolio.create_portfolio('verify book', 50000)::text, true);
    PERFORM set_config('test.pid_other', pgportfolio.create_portfolio('bystander', 10)::text, true);
END
$$;

-- ---------------------------------------------------------------- shape, on a new portfolio
SELECT set_eq(
    $$SELECT check_name FROM pgportfolio.verify_portfolio(pg_temp.pid('v'))$$,
    ARRAY['version', 'versions_contiguous', 'cash_balance', 'cash_identity', 'cash_never_negative',
          'event_cash_balances', 'realized_pnl', 'realized_identity', 'event_position_quantities',
          'event_realized_pnl', 'event_hash_chain', 'open_positions', 'position_quantities', 'position_cost_basis',
          'position_multipliers'],
    'verify_portfolio reports the fifteen documented checks'
);
SELECT is(pg_temp.failing(pg_temp.pid('v')), NULL, 'every check is ok on a new portfolio');
SELECT is(
    (SELECT (expected, actual) FROM pgportfolio.verify_portfolio(pg_temp.pid('v')) WHERE check_name = 'cash_balance'),
    ROW(50000::numeric, 50000::numeric),
    'cash_balance: the create event alone rebuilds the initial cash'
);

-- ---------------------------------------------------------------- a mixed sequence
DO $$
DECLARE
    p bigint := current_setting('test.pid_v')::bigint;
BEGIN
    PERFORM pgportfolio.deposit_cash(p, 1000, 'v-dep');
    PERFORM pgportfolio.withdraw_cash(p, 250.5);
    PERFORM pgportfolio.charge_fee(p, 3.25);
    PERFORM pgportfolio.apply_fill(p, 'VAAA', 100, 12.5, 1);
    PERFORM pgportfolio.add_to_position(p, 'VAAA', 50, 13, 0, 'v-add');
    PERFORM pgportfolio.reduce_position(p, 'VAAA', 30, 14, 0.5);
    PERFORM pgportfolio.apply_fill(p, 'VBBB', -40, 20);
    PERFORM pgportfolio.apply_fill(p, 'VBBB', 100, 18, 2);
    PERFORM pgportfolio.update_market_price('VAAA', 15);
    PERFORM pgportfolio.update_market_price('VBBB', 19);
    PERFORM pgportfolio.apply_fill(p, 'VCCC', 3, 7.01);
    PERFORM pgportfolio.apply_fill(p, 'VCCC', 4, 7.02);
    PERFORM pgportfolio.apply_fill(p, 'VCCC', -2, 7.5, 0.01, NULL, 11);
    PERFORM pgportfolio.close_position(p, 'VBBB', 21);
    PERFORM pgportfolio.open_position(p, 'VDDD', -5, 3);
    -- a replay and a refused call must leave no trace for verify to find
    PERFORM pgportfolio.deposit_cash(p, 1000, 'v-dep');
    BEGIN
        PERFORM pgportfolio.withdraw_cash(p, 1e14);
    EXCEPTION WHEN SQLSTATE 'PF002' THEN NULL;
    END;
END
$$;

SELECT is(pg_temp.failing(pg_temp.pid('v')), NULL,
    'every check is ok after deposits, withdrawals, fees, long/short fills, a flip, a close, marks, a replay and a refusal');
SELECT is(
    (SELECT (expected, actual) FROM pgportfolio.verify_portfolio(pg_temp.pid('v')) WHERE check_name = 'version'),
    ROW(14::numeric, 14::numeric),
    'version: 14 events for version 14'
);
SELECT is(
    (SELECT (expected, actual) FROM pgportfolio.verify_portfolio(pg_temp.pid('v')) WHERE check_name = 'open_positions'),
    ROW(3::numeric, 3::numeric),
    'open_positions: VAAA, VCCC and VDDD are open, VBBB was closed'
);
SELECT is(
    (SELECT actual FROM pgportfolio.verify_portfolio(pg_temp.pid('v')) WHERE check_name = 'cash_balance'),
    (SELECT cash_balance::numeric FROM pgportfolio.portfolios WHERE portfolio_id = pg_temp.pid('v')),
    'cash_balance: actual is the stored cash'
);
SELECT is(
    (SELECT expected FROM pgportfolio.verify_portfolio(pg_temp.pid('v')) WHERE check_name = 'cash_identity'),
    50000 + 1000 - 250.5 - 3.25
    - 1250 - 650 + 420 + 800 - 1800 - 21.03 - 28.08 + 15 + 1260 + 15
    - 1 - 0.5 - 2 - 0.01,
    'cash_identity: initial + deposits - withdrawals + fill cash flows - fees, computed by hand'
);
SELECT is(
    (SELECT actual FROM pgportfolio.verify_portfolio(pg_temp.pid('v')) WHERE check_name = 'realized_pnl'),
    (SELECT realized_pnl::numeric FROM pgportfolio.portfolios WHERE portfolio_id = pg_temp.pid('v')),
    'realized_pnl: actual is the stored realized P&L'
);
SELECT is(
    (SELECT (expected, actual) FROM pgportfolio.verify_portfolio(pg_temp.pid('v')) WHERE check_name = 'cash_never_negative'),
    ROW(0::numeric, 0::numeric),
    'cash_never_negative: the lowest balance (capped at 0) is 0'
);
SELECT is(
    (SELECT version::bigint FROM pgportfolio.portfolios WHERE portfolio_id = pg_temp.pid('v')),
    14::bigint,
    'running verify_portfolio changed nothing (version still 14)'
);
SELECT is(pg_temp.failing(pg_temp.pid('other')), NULL, 'the bystander portfolio verifies clean');

-- ---------------------------------------------------------------- corruptions, each undone afterwards
-- cash: the brief's example, done as the superuser with a plain UPDATE
SAVEPOINT corrupt;
UPDATE pgportfolio.portfolios SET cash_balance = cash_balance + 1 WHERE portfolio_id = pg_temp.pid('v');
SELECT is(pg_temp.failing(pg_temp.pid('v')), ARRAY['cash_balance', 'cash_identity'],
    'cash + 1: exactly the cash checks (cash_balance, cash_identity) report ok = false');
SELECT is(
    (SELECT actual - expected FROM pgportfolio.verify_portfolio(pg_temp.pid('v')) WHERE check_name = 'cash_balance'),
    1::numeric,
    'cash + 1: cash_balance shows stored (actual) one above the log (expected)'
);
SELECT is(
    (SELECT ok FROM pgportfolio.verify_portfolio(pg_temp.pid('v')) WHERE check_name = 'cash_identity'),
    false,
    'cash + 1: cash_identity is ok = false'
);
SELECT is(pg_temp.failing(pg_temp.pid('other')), NULL, 'cash + 1 on one portfolio does not affect another''s checks');
ROLLBACK TO SAVEPOINT corrupt;
SELECT is(pg_temp.failing(pg_temp.pid('v')), NULL, 'after rolling the corruption back every check is ok again');

SAVEPOINT corrupt;
UPDATE pgportfolio.portfolios SET cash_balance = cash_balance - 0.00000001 WHERE portfolio_id = pg_temp.pid('v');
SELECT is(pg_temp.failing(pg_temp.pid('v')), ARRAY['cash_balance', 'cash_identity'],
    'cash - 0.00000001: even the smallest difference is reported');
ROLLBACK TO SAVEPOINT corrupt;

SAVEPOINT corrupt;
UPDATE pgportfolio.portfolios SET realized_pnl = realized_pnl + 1 WHERE portfolio_id = pg_temp.pid('v');
SELECT is(pg_temp.failing(pg_temp.pid('v')), ARRAY['realized_pnl'], 'stored realized P&L + 1: realized_pnl fails');
ROLLBACK TO SAVEPOINT corrupt;

SAVEPOINT corrupt;
UPDATE pgportfolio.portfolios SET version = version + 1 WHERE portfolio_id = pg_temp.pid('v');
SELECT is(pg_temp.failing(pg_temp.pid('v')), ARRAY['version'], 'stored version + 1: version fails');
ROLLBACK TO SAVEPOINT corrupt;

SAVEPOINT corrupt;
UPDATE pgportfolio.positions SET quantity = quantity + 1 WHERE portfolio_id = pg_temp.pid('v') AND symbol = 'VAAA';
SELECT is(pg_temp.failing(pg_temp.pid('v')), ARRAY['position_quantities'],
    'a stored position quantity + 1: position_quantities fails');
ROLLBACK TO SAVEPOINT corrupt;

SAVEPOINT corrupt;
UPDATE pgportfolio.positions SET cost_basis = cost_basis - 1 WHERE portfolio_id = pg_temp.pid('v') AND symbol = 'VDDD';
SELECT is(pg_temp.failing(pg_temp.pid('v')), ARRAY['position_cost_basis', 'realized_identity'],
    'a stored cost basis - 1: position_cost_basis and realized_identity fail');
ROLLBACK TO SAVEPOINT corrupt;

SAVEPOINT corrupt;
DELETE FROM pgportfolio.positions WHERE portfolio_id = pg_temp.pid('v') AND symbol = 'VCCC';
SELECT is(pg_temp.failing(pg_temp.pid('v')),
    ARRAY['open_positions', 'position_cost_basis', 'position_multipliers', 'position_quantities', 'realized_identity'],
    'a lost position: open_positions, position_quantities, position_cost_basis, position_multipliers and realized_identity fail');
ROLLBACK TO SAVEPOINT corrupt;

SAVEPOINT corrupt;
UPDATE pgportfolio.positions SET multiplier = 10 WHERE portfolio_id = pg_temp.pid('v') AND symbol = 'VDDD';
SELECT is(pg_temp.failing(pg_temp.pid('v')), ARRAY['position_multipliers'],
    'a stored multiplier that is not the one its fills were applied with: position_multipliers fails');
ROLLBACK TO SAVEPOINT corrupt;

SAVEPOINT corrupt;
INSERT INTO pgportfolio.positions (portfolio_id, symbol, quantity, cost_basis)
VALUES (pg_temp.pid('v'), 'GHOST', 1, 1);
SELECT is(pg_temp.failing(pg_temp.pid('v')),
    ARRAY['open_positions', 'position_cost_basis', 'position_multipliers', 'position_quantities', 'realized_identity'],
    'a position the log never opened is reported the same way');
ROLLBACK TO SAVEPOINT corrupt;

SAVEPOINT corrupt;
-- Nothing refuses a gap at insert time (no trigger looks the previous event up): verify does.
INSERT INTO pgportfolio.events (portfolio_id, portfolio_version, kind, operation, amount, cash_delta, cash_balance,
                                acting_role, chain_hash)
SELECT portfolio_id, version::bigint + 2, 'deposit', 'deposit_cash', 0, 0, cash_balance::numeric, 'postgres', '\x00'
FROM pgportfolio.portfolios WHERE portfolio_id = pg_temp.pid('v');
SELECT is(pg_temp.failing(pg_temp.pid('v')), ARRAY['event_hash_chain', 'version', 'versions_contiguous'],
    'an extra event after a gap in the versions: version, versions_contiguous and the hash chain fail');
ROLLBACK TO SAVEPOINT corrupt;

SAVEPOINT corrupt;
-- A gap with the hash computed as if it were not one (chained to the last event before it),
-- and the stored version moved along: the versions still show it.
SELECT pg_temp.insert_chained(ROW(
    pf.portfolio_id, pf.version::bigint + 2, 'deposit', 'deposit_cash', NULL, NULL, NULL, 0, 1, 1, 0, pf.cash_balance::numeric + 1,
    NULL, NULL, NULL, NULL, NULL, NULL, NULL, 'postgres', NULL, NULL)::pgportfolio.events)
FROM pgportfolio.portfolios AS pf WHERE pf.portfolio_id = pg_temp.pid('v');
UPDATE pgportfolio.portfolios SET version = version + 2, cash_balance = cash_balance + 1
WHERE portfolio_id = pg_temp.pid('v');
SELECT is(pg_temp.failing(pg_temp.pid('v')), ARRAY['event_hash_chain', 'version', 'versions_contiguous'],
    'a gap chained past the missing version, with the stored version and cash following it, still fails all three');
ROLLBACK TO SAVEPOINT corrupt;

SAVEPOINT corrupt;
-- A deposit written directly, with the portfolio moved consistently, but a wrong chain_hash.
INSERT INTO pgportfolio.events (portfolio_id, portfolio_version, kind, operation, amount, cash_delta, cash_balance,
                                acting_role, chain_hash)
SELECT portfolio_id, version::bigint + 1, 'deposit', 'deposit_cash', 5, 5, cash_balance::numeric + 5, 'postgres', sha256('forged'::bytea)
FROM pgportfolio.portfolios WHERE portfolio_id = pg_temp.pid('v');
UPDATE pgportfolio.portfolios SET version = version + 1, cash_balance = cash_balance + 5
WHERE portfolio_id = pg_temp.pid('v');
SELECT is(pg_temp.failing(pg_temp.pid('v')), ARRAY['event_hash_chain'],
    'a wrong chain_hash inserted directly is not refused, and fails event_hash_chain (and nothing else)');
ROLLBACK TO SAVEPOINT corrupt;

SAVEPOINT corrupt;
-- The same deposit with the documented hash: the control for the test above.
SELECT pg_temp.insert_chained(ROW(
    pf.portfolio_id, pf.version::bigint + 1, 'deposit', 'deposit_cash', NULL, NULL, NULL, 0, 5, 5, 0, pf.cash_balance::numeric + 5,
    NULL, NULL, NULL, NULL, NULL, NULL, NULL, 'postgres', NULL, NULL)::pgportfolio.events)
FROM pgportfolio.portfolios AS pf WHERE pf.portfolio_id = pg_temp.pid('v');
UPDATE pgportfolio.portfolios AS p SET version = version + 1, cash_balance = cash_balance + 5,
    chain_head = (SELECT e.chain_hash FROM pgportfolio.events AS e
                  WHERE e.portfolio_id = p.portfolio_id AND e.portfolio_version = p.version + 1)
WHERE p.portfolio_id = pg_temp.pid('v');
SELECT is(pg_temp.failing(pg_temp.pid('v')), NULL,
    'the same deposit with the documented chain_hash verifies clean (verify uses the documented formula)');
ROLLBACK TO SAVEPOINT corrupt;

-- ---------------------------------------------------------------- history rewritten by the table's owner
SELECT set_config('test.head', (SELECT chain_hash FROM pgportfolio.event_chain_head(pg_temp.pid('v'))), true);
SELECT set_config('test.head_version',
    (SELECT portfolio_version FROM pgportfolio.event_chain_head(pg_temp.pid('v')))::text, true);
SELECT is(
    (SELECT chain_hash FROM pgportfolio.event_chain_head(pg_temp.pid('v'), 2)),
    (SELECT encode(chain_hash, 'hex') FROM pgportfolio.events WHERE portfolio_id = pg_temp.pid('v') AND portfolio_version = 2),
    'event_chain_head of version 2 is the hex chain_hash of that event'
);
SELECT is(
    current_setting('test.head_version')::bigint,
    (SELECT version::bigint FROM pgportfolio.portfolios WHERE portfolio_id = pg_temp.pid('v')),
    'event_chain_head defaults to the latest event'
);

SAVEPOINT corrupt;
-- Blame another role for event 2, behind the append-only trigger's back: no amount changes,
-- so only the hash chain can see it.
ALTER TABLE pgportfolio.events DISABLE TRIGGER events_append_only;
UPDATE pgportfolio.events SET acting_role = 'pgportfolio_analyst'
WHERE portfolio_id = pg_temp.pid('v') AND portfolio_version = 2;
ALTER TABLE pgportfolio.events ENABLE ALWAYS TRIGGER events_append_only;
SELECT is(pg_temp.failing(pg_temp.pid('v')), ARRAY['event_hash_chain'],
    'an event edited with the trigger disabled: only event_hash_chain fails');
SELECT is(
    (SELECT actual FROM pgportfolio.verify_portfolio(pg_temp.pid('v')) WHERE check_name = 'event_hash_chain'),
    1::numeric,
    'event_hash_chain counts the one edited event'
);
ROLLBACK TO SAVEPOINT corrupt;

SAVEPOINT corrupt;
-- The same edit with every later hash recomputed: the chain is consistent again, and only an
-- anchor recorded before (the head hash) shows the rewrite.
ALTER TABLE pgportfolio.events DISABLE TRIGGER events_append_only;
UPDATE pgportfolio.events SET acting_role = 'pgportfolio_analyst'
WHERE portfolio_id = pg_temp.pid('v') AND portfolio_version = 2;
DO $$
DECLARE
    v_event pgportfolio.events;
    v_previous bytea;
BEGIN
    FOR v_event IN
        SELECT * FROM pgportfolio.events WHERE portfolio_id = pg_temp.pid('v') AND portfolio_version >= 2
        ORDER BY portfolio_version
    LOOP
        SELECT chain_hash INTO v_previous FROM pgportfolio.events
        WHERE portfolio_id = v_event.portfolio_id AND portfolio_version = v_event.portfolio_version - 1;
        UPDATE pgportfolio.events
        SET chain_hash = pg_temp.documented_hash(v_previous, v_event)
        WHERE portfolio_id = v_event.portfolio_id AND portfolio_version = v_event.portfolio_version;
    END LOOP;
END
$$;
ALTER TABLE pgportfolio.events ENABLE ALWAYS TRIGGER events_append_only;
-- The owner can also set the head kept on the portfolio's row: it is in the same database.
UPDATE pgportfolio.portfolios AS p
SET chain_head = (SELECT e.chain_hash FROM pgportfolio.events AS e
                  WHERE e.portfolio_id = p.portfolio_id AND e.portfolio_version = p.version)
WHERE p.portfolio_id = pg_temp.pid('v');
SELECT is(pg_temp.failing(pg_temp.pid('v')), NULL,
    'a rewrite with every later hash recomputed passes verify_portfolio (the documented limit)');
SELECT isnt(
    (SELECT chain_hash FROM pgportfolio.event_chain_head(pg_temp.pid('v'), current_setting('test.head_version')::bigint)),
    current_setting('test.head'),
    'but the head hash recorded before the rewrite no longer matches'
);
ROLLBACK TO SAVEPOINT corrupt;
SELECT is(
    (SELECT chain_hash FROM pgportfolio.event_chain_head(pg_temp.pid('v'), current_setting('test.head_version')::bigint)),
    current_setting('test.head'),
    'without a rewrite the recorded head hash still matches'
);

SAVEPOINT corrupt;
-- A fill event whose realized P&L does not follow from its cash flow and cost basis,
-- with the stored state moved consistently with the event, so only the P&L checks can see it.
-- (Each direct insert below carries the documented chain_hash, so the chain stays intact.)
SELECT pg_temp.insert_chained(ROW(
    pf.portfolio_id, pf.version::bigint + 1, 'add', 'apply_fill', 'VAAA', 1, 15, 0, NULL, -15, 5, pf.cash_balance::numeric - 15,
    p.quantity::numeric + 1, p.cost_basis::numeric + 15, NULL, NULL, NULL, NULL, 1, 'postgres', NULL, NULL)::pgportfolio.events)
FROM pgportfolio.portfolios AS pf JOIN pgportfolio.positions AS p USING (portfolio_id)
WHERE pf.portfolio_id = pg_temp.pid('v') AND p.symbol = 'VAAA';
UPDATE pgportfolio.portfolios
SET version = version + 1, cash_balance = cash_balance - 15, realized_pnl = realized_pnl + 5
WHERE portfolio_id = pg_temp.pid('v');
UPDATE pgportfolio.positions SET quantity = quantity + 1, cost_basis = cost_basis + 15
WHERE portfolio_id = pg_temp.pid('v') AND symbol = 'VAAA';
SELECT is(pg_temp.failing(pg_temp.pid('v')), ARRAY['event_realized_pnl', 'realized_identity'],
    'a logged fill with made-up realized P&L: event_realized_pnl and realized_identity fail');
ROLLBACK TO SAVEPOINT corrupt;

SAVEPOINT corrupt;
SELECT pg_temp.insert_chained(ROW(
    pf.portfolio_id, pf.version::bigint + 1, 'deposit', 'deposit_cash', NULL, NULL, NULL, 0, 5, 5, 0, pf.cash_balance::numeric + 6,
    NULL, NULL, NULL, NULL, NULL, NULL, NULL, 'postgres', NULL, NULL)::pgportfolio.events)
FROM pgportfolio.portfolios AS pf WHERE pf.portfolio_id = pg_temp.pid('v');
UPDATE pgportfolio.portfolios SET version = version + 1, cash_balance = cash_balance + 5
WHERE portfolio_id = pg_temp.pid('v');
SELECT is(pg_temp.failing(pg_temp.pid('v')), ARRAY['event_cash_balances'],
    'an event whose recorded balance is not the running sum: event_cash_balances fails');
ROLLBACK TO SAVEPOINT corrupt;

SAVEPOINT corrupt;
SELECT pg_temp.insert_chained(ROW(
    pf.portfolio_id, pf.version::bigint + 1, 'add', 'apply_fill', 'VCCC', 1, 1, 0, NULL, -1, 0, pf.cash_balance::numeric - 1,
    p.quantity::numeric + 2, p.cost_basis::numeric + 1, NULL, NULL, NULL, NULL, 1, 'postgres', NULL, NULL)::pgportfolio.events)
FROM pgportfolio.portfolios AS pf JOIN pgportfolio.positions AS p USING (portfolio_id)
WHERE pf.portfolio_id = pg_temp.pid('v') AND p.symbol = 'VCCC';
UPDATE pgportfolio.portfolios SET version = version + 1, cash_balance = cash_balance - 1
WHERE portfolio_id = pg_temp.pid('v');
UPDATE pgportfolio.positions SET quantity = quantity + 2, cost_basis = cost_basis + 1
WHERE portfolio_id = pg_temp.pid('v') AND symbol = 'VCCC';
SELECT is(pg_temp.failing(pg_temp.pid('v')), ARRAY['event_position_quantities', 'position_quantities'],
    'a fill event whose position quantity is not the running sum of fills: the quantity checks fail');
ROLLBACK TO SAVEPOINT corrupt;

SELECT is(pg_temp.failing(pg_temp.pid('v')), NULL, 'after all the rollbacks every check is ok again');

-- ---------------------------------------------------------------- errors
SELECT throws_ok($$SELECT * FROM pgportfolio.verify_portfolio(-1)$$, 'PF004', NULL,
    'verify_portfolio of an unknown portfolio is PF004');
SELECT throws_ok($$SELECT * FROM pgportfolio.verify_portfolio(NULL)$$, '22023', NULL,
    'verify_portfolio of NULL is invalid input (22023)');
SELECT throws_ok(
    $$SELECT * FROM pgportfolio.verify_portfolio((SELECT max(portfolio_id) + 1 FROM pgportfolio.portfolios))$$,
    'PF004', NULL,
    'verify_portfolio of the next, not yet created id is PF004'
);

SELECT throws_ok($$SELECT * FROM pgportfolio.event_chain_head(-1)$$, 'PF004', NULL,
    'event_chain_head of an unknown portfolio is PF004');
SELECT throws_ok($$SELECT * FROM pgportfolio.event_chain_head(NULL)$$, '22023', NULL,
    'event_chain_head of NULL is invalid input (22023)');

SELECT ok(
    (SELECT 'plan_cache_mode=force_custom_plan' = ANY (p.proconfig) FROM pg_proc AS p
     WHERE p.oid = 'pgportfolio.verify_portfolio(bigint)'::regprocedure),
    'verify_portfolio plans each call for its own portfolio (a generic plan scanned every portfolio''s rows)'
);

SELECT * FROM finish();
ROLLBACK;
