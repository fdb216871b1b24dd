-- Cash movements (sql/130_cash.sql): deposit_cash, withdraw_cash, charge_fee.
BEGIN;
SELECT plan(60);

CREATE FUNCTION pg_temp.pid(p_name text) RETURNS bigint LANGUAGE sql STABLE
AS $$ SELECT current_setting('test.pid_' || p_name)::bigint $$;

CREATE FUNCTION pg_temp.error_parts(p_sql text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    v_state text; v_message text; v_detail text;
BEGIN
    EXECUTE p_sql;
    RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_message = MESSAGE_TEXT, v_detail = PG_EXCEPTION_DETAIL;
    RETURN concat_ws(' | ', v_state, v_message, nullif(v_detail, ''));
END;
$$;

CREATE TEMP TABLE res (step text PRIMARY KEY, r pgportfolio.mutation_result NOT NULL);

DO $$
BEGIN
    PERFORM set_config('test.pid_a', pgportfolio.create_portfolio('cash book', 1000)::text, true);
    PERFORM set_config('test.pid_b', pgportfolio.create_portfolio('other book', 50)::text, true);
END
$$;

-- ---------------------------------------------------------------- deposit
INSERT INTO res SELECT 'dep', r FROM pgportfolio.deposit_cash(pg_temp.pid('a'), 250.5) AS r;
SELECT is(
    (SELECT r FROM res WHERE step = 'dep'),
    ROW(pg_temp.pid('a'), 2, 1250.5, NULL, NULL, NULL, 0, false)::pgportfolio.mutation_result,
    'deposit 250.5: version 2, cash 1250.5, no symbol or position, realized 0, not a duplicate'
);
SELECT is(
    (SELECT (cash_balance::numeric, realized_pnl::numeric, version::bigint, initial_cash::numeric) FROM pgportfolio.portfolios
     WHERE portfolio_id = pg_temp.pid('a')),
    ROW(1250.5::numeric, 0::numeric, 2::bigint, 1000::numeric),
    'deposit: the stored portfolio has the new cash and version; initial cash is untouched'
);
SELECT is(
    (SELECT (kind::text, operation, symbol::text, quantity::numeric, price::numeric, fee::numeric, amount::numeric, cash_delta::numeric, realized_pnl::numeric, cash_balance::numeric,
             position_quantity::numeric, request_id)
     FROM pgportfolio.events WHERE portfolio_id = pg_temp.pid('a') AND portfolio_version = 2),
    ROW('deposit'::text, 'deposit_cash'::text, NULL::text, NULL::numeric, NULL::numeric, 0::numeric, 250.5::numeric,
        250.5::numeric, 0::numeric, 1250.5::numeric, NULL::numeric, NULL::text),
    'deposit: event kind deposit with amount and cash delta 250.5'
);
SELECT is(
    (SELECT cash_balance FROM pgportfolio.deposit_cash(pg_temp.pid('a'), 0.00000001)),
    1250.50000001,
    'the smallest deposit (0.00000001) is kept exactly'
);

-- ---------------------------------------------------------------- withdraw
INSERT INTO res SELECT 'wd', r FROM pgportfolio.withdraw_cash(pg_temp.pid('a'), 200.25000001) AS r;
SELECT is(
    (SELECT r FROM res WHERE step = 'wd'),
    ROW(pg_temp.pid('a'), 4, 1050.25, NULL, NULL, NULL, 0, false)::pgportfolio.mutation_result,
    'withdraw 200.25000001: version 4, cash 1050.25, realized 0'
);
SELECT is(
    (SELECT (kind::text, operation, fee::numeric, amount::numeric, cash_delta::numeric, realized_pnl::numeric, cash_balance::numeric)
     FROM pgportfolio.events WHERE portfolio_id = pg_temp.pid('a') AND portfolio_version = 4),
    ROW('withdraw'::text, 'withdraw_cash'::text, 0::numeric, 200.25000001::numeric, -200.25000001::numeric,
        0::numeric, 1050.25::numeric),
    'withdraw: event kind withdraw with a negative cash delta'
);
SELECT throws_ok(
    $$SELECT pgportfolio.withdraw_cash(pg_temp.pid('a'), 1050.25000001)$$,
    'PF002', NULL,
    'withdrawing 0.00000001 more than the balance is PF002 insufficient cash'
);
SELECT is(
    pg_temp.error_parts($$SELECT pgportfolio.withdraw_cash(pg_temp.pid('a'), 2000)$$),
    'PF002 | insufficient cash in portfolio ' || pg_temp.pid('a') || ' | needed 2000, available 1050.25000000',
    'PF002 names the portfolio and its DETAIL says what was needed and what is available'
);
SELECT is(
    (SELECT (cash_balance::numeric, version::bigint) FROM pgportfolio.portfolios WHERE portfolio_id = pg_temp.pid('a')),
    ROW(1050.25::numeric, 4::bigint),
    'refused withdrawals changed neither cash nor version'
);

-- ---------------------------------------------------------------- fee
INSERT INTO res SELECT 'fee', r FROM pgportfolio.charge_fee(pg_temp.pid('a'), 10.25) AS r;
SELECT is(
    (SELECT r FROM res WHERE step = 'fee'),
    ROW(pg_temp.pid('a'), 5, 1040, NULL, NULL, NULL, -10.25, false)::pgportfolio.mutation_result,
    'charge_fee 10.25: cash 1040 and realized P&L -10.25 in the result'
);
SELECT is(
    (SELECT (cash_balance::numeric, realized_pnl::numeric, version::bigint) FROM pgportfolio.portfolios WHERE portfolio_id = pg_temp.pid('a')),
    ROW(1040::numeric, -10.25::numeric, 5::bigint),
    'a fee counts as realized P&L of -amount on the portfolio'
);
SELECT is(
    (SELECT (kind::text, operation, fee::numeric, amount::numeric, cash_delta::numeric, realized_pnl::numeric, cash_balance::numeric)
     FROM pgportfolio.events WHERE portfolio_id = pg_temp.pid('a') AND portfolio_version = 5),
    ROW('fee'::text, 'charge_fee'::text, 10.25::numeric, 10.25::numeric, -10.25::numeric, -10.25::numeric, 1040::numeric),
    'fee: event kind fee records fee, amount, cash delta and realized P&L'
);
SELECT throws_ok(
    $$SELECT pgportfolio.charge_fee(pg_temp.pid('b'), 50.00000001)$$,
    'PF002', NULL,
    'a fee larger than the cash is PF002'
);
SELECT is(
    (SELECT (cash_balance, realized_pnl) FROM pgportfolio.charge_fee(pg_temp.pid('b'), 50)),
    ROW(0::numeric, -50::numeric),
    'a fee equal to the cash leaves exactly 0'
);
SELECT throws_ok(
    $$SELECT pgportfolio.withdraw_cash(pg_temp.pid('b'), 0.00000001)$$,
    'PF002', NULL,
    'nothing can be withdrawn from an empty portfolio'
);
SELECT is(
    (SELECT (cash_balance, portfolio_version) FROM pgportfolio.deposit_cash(pg_temp.pid('b'), 5)),
    ROW(5::numeric, 3::bigint),
    'an empty portfolio accepts deposits'
);
SELECT is(
    (SELECT cash_balance FROM pgportfolio.withdraw_cash(pg_temp.pid('b'), 5)),
    0::numeric,
    'withdrawing the whole balance leaves exactly 0'
);

SELECT is(
    (SELECT (cash_balance, scale(cash_balance)) FROM pgportfolio.deposit_cash(pg_temp.pid('b'), 2.5000000000)),
    ROW(2.5::numeric, 1),
    'a deposit written with trailing zeros (2.5000000000) is accepted and kept in its shortest form'
);
SELECT is(
    (SELECT cash_balance FROM pgportfolio.withdraw_cash(pg_temp.pid('b'), 2.5)),
    0::numeric,
    'and can be withdrawn again'
);

-- ---------------------------------------------------------------- portfolios are independent
SELECT is(
    (SELECT (cash_balance::numeric, version::bigint) FROM pgportfolio.portfolios WHERE portfolio_id = pg_temp.pid('a')),
    ROW(1040::numeric, 5::bigint),
    'movements on one portfolio never touch another'
);

-- ---------------------------------------------------------------- optimistic version, accepted
SELECT is(
    (SELECT portfolio_version FROM pgportfolio.deposit_cash(pg_temp.pid('a'), 1, NULL, 5)),
    6::bigint,
    'deposit with the current expected version succeeds'
);
SELECT is(
    (SELECT portfolio_version FROM pgportfolio.withdraw_cash(pg_temp.pid('a'), 1, NULL, 6)),
    7::bigint,
    'withdraw with the current expected version succeeds'
);
SELECT is(
    (SELECT portfolio_version FROM pgportfolio.charge_fee(pg_temp.pid('a'), 1, NULL, 7)),
    8::bigint,
    'charge_fee with the current expected version succeeds'
);

-- ---------------------------------------------------------------- bad inputs: 22023, for all three verbs
SELECT throws_ok($$SELECT pgportfolio.deposit_cash(pg_temp.pid('a'), 'NaN')$$, '22023', NULL, 'deposit NaN is 22023');
SELECT throws_ok($$SELECT pgportfolio.deposit_cash(pg_temp.pid('a'), 'Infinity')$$, '22023', NULL, 'deposit Infinity is 22023');
SELECT throws_ok($$SELECT pgportfolio.deposit_cash(pg_temp.pid('a'), '-Infinity')$$, '22023', NULL, 'deposit -Infinity is 22023');
SELECT throws_ok($$SELECT pgportfolio.deposit_cash(pg_temp.pid('a'), 0)$$, '22023', NULL, 'deposit 0 is 22023');
SELECT throws_ok($$SELECT pgportfolio.deposit_cash(pg_temp.pid('a'), -5)$$, '22023', NULL, 'a negative deposit is 22023');
SELECT throws_ok($$SELECT pgportfolio.deposit_cash(pg_temp.pid('a'), 1.123456789)$$, '22023', NULL,
    'a deposit with 9 decimal places is 22023');
SELECT throws_ok($$SELECT pgportfolio.deposit_cash(pg_temp.pid('a'), 1e15)$$, '22023', NULL, 'a deposit of 1e15 is 22023');
SELECT throws_ok($$SELECT pgportfolio.deposit_cash(pg_temp.pid('a'), NULL)$$, '22023', NULL, 'a NULL deposit is 22023');
SELECT throws_ok($$SELECT pgportfolio.withdraw_cash(pg_temp.pid('a'), 'NaN')$$, '22023', NULL, 'withdraw NaN is 22023');
SELECT throws_ok($$SELECT pgportfolio.withdraw_cash(pg_temp.pid('a'), 'Infinity')$$, '22023', NULL, 'withdraw Infinity is 22023');
SELECT throws_ok($$SELECT pgportfolio.withdraw_cash(pg_temp.pid('a'), '-Infinity')$$, '22023', NULL, 'withdraw -Infinity is 22023');
SELECT throws_ok($$SELECT pgportfolio.withdraw_cash(pg_temp.pid('a'), 0)$$, '22023', NULL, 'withdraw 0 is 22023');
SELECT throws_ok($$SELECT pgportfolio.withdraw_cash(pg_temp.pid('a'), -5)$$, '22023', NULL,
    'a negative withdrawal is 22023 (it is not a deposit)');
SELECT throws_ok($$SELECT pgportfolio.withdraw_cash(pg_temp.pid('a'), 1.123456789)$$, '22023', NULL,
    'a withdrawal with 9 decimal places is 22023');
SELECT throws_ok($$SELECT pgportfolio.withdraw_cash(pg_temp.pid('a'), 1e15)$$, '22023', NULL, 'a withdrawal of 1e15 is 22023');
SELECT throws_ok($$SELECT pgportfolio.withdraw_cash(pg_temp.pid('a'), NULL)$$, '22023', NULL, 'a NULL withdrawal is 22023');
SELECT throws_ok($$SELECT pgportfolio.charge_fee(pg_temp.pid('a'), 'NaN')$$, '22023', NULL, 'fee NaN is 22023');
SELECT throws_ok($$SELECT pgportfolio.charge_fee(pg_temp.pid('a'), 'Infinity')$$, '22023', NULL, 'fee Infinity is 22023');
SELECT throws_ok($$SELECT pgportfolio.charge_fee(pg_temp.pid('a'), '-Infinity')$$, '22023', NULL, 'fee -Infinity is 22023');
SELECT throws_ok($$SELECT pgportfolio.charge_fee(pg_temp.pid('a'), 0)$$, '22023', NULL, 'a zero fee is 22023');
SELECT throws_ok($$SELECT pgportfolio.charge_fee(pg_temp.pid('a'), -5)$$, '22023', NULL,
    'a negative fee is 22023 (it is not a rebate)');
SELECT throws_ok($$SELECT pgportfolio.charge_fee(pg_temp.pid('a'), 1.123456789)$$, '22023', NULL,
    'a fee with 9 decimal places is 22023');
SELECT throws_ok($$SELECT pgportfolio.charge_fee(pg_temp.pid('a'), 1e15)$$, '22023', NULL, 'a fee of 1e15 is 22023');
SELECT throws_ok($$SELECT pgportfolio.charge_fee(pg_temp.pid('a'), NULL)$$, '22023', NULL, 'a NULL fee is 22023');
SELECT throws_ok($$SELECT pgportfolio.deposit_cash(NULL, 1)$$, '22023', NULL, 'a NULL portfolio id is 22023');
SELECT throws_ok($$SELECT pgportfolio.deposit_cash(pg_temp.pid('a'), 1, '')$$, '22023', NULL, 'an empty request id is 22023');
SELECT throws_ok($$SELECT pgportfolio.deposit_cash(pg_temp.pid('a'), 1, E'a\tb')$$, '22023', NULL,
    'a request id with a control character is 22023');
SELECT throws_ok($$SELECT pgportfolio.deposit_cash(pg_temp.pid('a'), 1, NULL, 0)$$, '22023', NULL,
    'expected version 0 is 22023');

-- ---------------------------------------------------------------- unknown portfolio: PF004
SELECT throws_ok($$SELECT pgportfolio.deposit_cash(-1, 1)$$, 'PF004', NULL, 'deposit to an unknown portfolio is PF004');
SELECT throws_ok(
    $$SELECT pgportfolio.withdraw_cash((SELECT max(portfolio_id) + 1000 FROM pgportfolio.portfolios), 1)$$,
    'PF004', NULL, 'withdraw from an unknown portfolio is PF004'
);
SELECT throws_ok($$SELECT pgportfolio.charge_fee(0, 1)$$, 'PF004', NULL, 'a fee on portfolio 0 is PF004');
SELECT is(
    pg_temp.error_parts($$SELECT pgportfolio.deposit_cash(-42, 1)$$),
    'PF004 | portfolio -42 not found',
    'PF004 names the portfolio id'
);

-- ---------------------------------------------------------------- the end state is consistent
SELECT is(
    (SELECT (cash_balance::numeric, realized_pnl::numeric, version::bigint) FROM pgportfolio.portfolios WHERE portfolio_id = pg_temp.pid('a')),
    ROW(1039::numeric, -11.25::numeric, 8::bigint),
    'after all calls: cash 1039, realized -11.25 (two fees), version 8; refused calls left no trace'
);
SELECT is(
    (SELECT count(*) FROM pgportfolio.events WHERE portfolio_id = pg_temp.pid('a')),
    8::bigint,
    'one event per successful call'
);
SELECT is(
    (SELECT cash_balance::numeric FROM pgportfolio.portfolios WHERE portfolio_id = pg_temp.pid('a')),
    (SELECT sum(cash_delta::numeric) FROM pgportfolio.events WHERE portfolio_id = pg_temp.pid('a')),
    'cash is the sum of the logged cash deltas'
);
SELECT is(
    (SELECT count(*) FROM pgportfolio.verify_portfolio(pg_temp.pid('a')) WHERE NOT ok),
    0::bigint,
    'verify_portfolio finds nothing wrong on the cash book'
);
SELECT is(
    (SELECT count(*) FROM pgportfolio.verify_portfolio(pg_temp.pid('b')) WHERE NOT ok),
    0::bigint,
    'verify_portfolio finds nothing wrong on the emptied book'
);

SELECT * FROM finish();
ROLLBACK;
