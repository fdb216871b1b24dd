-- apply_fills and apply_fills_arrays (sql/145_apply_fills.sql): a batch of operations across portfolios, one result row each.
BEGIN;
SELECT plan(54);

CREATE ROLE pgtap_batch_a IN ROLE pgportfolio_trader;
CREATE ROLE pgtap_batch_b IN ROLE pgportfolio_trader;
SET LOCAL ROLE pgtap_batch_a;
SELECT set_config('test.a', pgportfolio.create_portfolio('batch a', 1000)::text, true);
RESET ROLE;
SET LOCAL ROLE pgtap_batch_b;
SELECT set_config('test.b', pgportfolio.create_portfolio('batch b', 1000)::text, true);
RESET ROLE;

SET LOCAL ROLE pgtap_batch_a;
CREATE TEMP TABLE batch_result AS
SELECT * FROM pgportfolio.apply_fills(jsonb_build_array(
    jsonb_build_object('portfolio_id', current_setting('test.a')::bigint, 'symbol', 'AAA', 'quantity', 10, 'price', 10),
    jsonb_build_object('portfolio_id', current_setting('test.b')::bigint, 'symbol', 'AAA', 'quantity', 1, 'price', 1),
    jsonb_build_object('portfolio_id', current_setting('test.a')::bigint, 'symbol', 'AAA', 'quantity', -4, 'price', 12),
    jsonb_build_object('portfolio_id', current_setting('test.a')::bigint, 'symbol', 'BBB', 'quantity', 1, 'price', 5000)
));
RESET ROLE;

SELECT results_eq(
    'SELECT item, sqlstate FROM batch_result ORDER BY item',
    $$VALUES (1, NULL::text), (2, '42501'), (3, NULL), (4, 'PF002')$$,
    'one row per element, in input order, with its own SQLSTATE'
);
SELECT results_eq(
    'SELECT portfolio_version, position_quantity, realized_pnl FROM batch_result WHERE sqlstate IS NULL ORDER BY item',
    $$VALUES (2::bigint, 10::numeric, 0::numeric), (3, 6, 8)$$,
    'accepted fills carry their own version, position and realized P&L'
);
SELECT is(
    (SELECT version FROM pgportfolio.portfolio_summary WHERE portfolio_id = current_setting('test.b')::bigint),
    1::bigint,
    'the refused element changed nothing in the other trader''s portfolio'
);
SELECT is(
    (SELECT count(*) FROM pgportfolio.event_log WHERE portfolio_id = current_setting('test.a')::bigint),
    3::bigint,
    'the refusals did not undo the accepted fills'
);
SELECT ok(
    NOT EXISTS (SELECT FROM pgportfolio.verify_portfolio(current_setting('test.a')::bigint) WHERE NOT ok),
    'the batched portfolio verifies'
);
SELECT is(
    (SELECT operation FROM pgportfolio.event_log WHERE portfolio_id = current_setting('test.a')::bigint
     AND portfolio_version = 2),
    'apply_fill',
    'batched fills are logged as apply_fill, so request ids replay across both'
);
SELECT throws_ok(
    $$SELECT * FROM pgportfolio.apply_fills('{"portfolio_id": 1}')$$, '22023', NULL,
    'a batch that is not an array is invalid input'
);
SELECT is_empty($$SELECT * FROM pgportfolio.apply_fills('[]')$$, 'an empty batch returns nothing');

-- Cash moves in a batch: the semantics, events and request ids of the single calls.
SET LOCAL ROLE pgtap_batch_a;
SELECT pgportfolio.deposit_cash(current_setting('test.a')::bigint, 7, 'cash-once');
CREATE TEMP TABLE cash_result AS
SELECT * FROM pgportfolio.apply_fills(jsonb_build_array(
    jsonb_build_object('portfolio_id', current_setting('test.a')::bigint, 'operation', 'deposit_cash', 'amount', '100.50'),
    jsonb_build_object('portfolio_id', current_setting('test.a')::bigint, 'operation', 'withdraw_cash', 'amount', 1000000),
    jsonb_build_object('portfolio_id', current_setting('test.a')::bigint, 'operation', 'charge_fee', 'amount', 2.5),
    jsonb_build_object('portfolio_id', current_setting('test.a')::bigint, 'operation', 'deposit_cash', 'amount', 7,
        'request_id', 'cash-once'),
    jsonb_build_object('portfolio_id', current_setting('test.a')::bigint, 'operation', 'withdraw_cash', 'amount', 7,
        'request_id', 'cash-once'),
    jsonb_build_object('portfolio_id', current_setting('test.a')::bigint, 'operation', 'deposit_cash', 'amount', 1,
        'symbol', 'AAA'),
    jsonb_build_object('portfolio_id', current_setting('test.a')::bigint, 'operation', 'transfer', 'amount', 1),
    jsonb_build_object('portfolio_id', current_setting('test.a')::bigint, 'operation', 'deposit_cash', 'amount', 0),
    jsonb_build_object('portfolio_id', current_setting('test.a')::bigint, 'symbol', 'AAA', 'quantity', 1,
        'price', 1, 'amount', 1)
));
RESET ROLE;
SELECT results_eq(
    'SELECT item, sqlstate, duplicate FROM cash_result ORDER BY item',
    $$VALUES (1, NULL::text, false), (2, 'PF002', false), (3, NULL, false), (4, NULL, true), (5, 'PF005', false),
             (6, '22023', false), (7, '22023', false), (8, '22023', false), (9, '22023', false)$$,
    'cash elements: applied, refused for cash, replayed, PF005 for a reused id, 22023 for malformed ones'
);
SELECT results_eq(
    $$SELECT message FROM cash_result WHERE item IN (6, 7, 8, 9) ORDER BY item$$,
    $$VALUES ('a deposit_cash element takes no symbol, quantity, price, fee, executed_at, order_id or tags'::text), ('unknown operation ''transfer'''),
             ('amount must be positive'), ('a fill takes no amount')$$,
    'each malformed element says what is wrong with it'
);
SELECT results_eq(
    $$SELECT kind, operation, amount, cash_delta, fee, realized_pnl FROM pgportfolio.event_log
      WHERE portfolio_id = current_setting('test.a')::bigint AND kind IN ('deposit', 'withdraw', 'fee')
      ORDER BY portfolio_version$$,
    $$VALUES ('deposit'::text, 'deposit_cash'::text, 7::numeric, 7::numeric, 0::numeric, 0::numeric),
             ('deposit', 'deposit_cash', 100.5, 100.5, 0, 0),
             ('fee', 'charge_fee', 2.5, -2.5, 2.5, -2.5)$$,
    'batched cash moves are logged exactly as deposit_cash and charge_fee log them'
);
SELECT results_eq(
    'SELECT cash_balance FROM cash_result WHERE item = 3',
    $$SELECT cash_balance FROM pgportfolio.portfolio_summary WHERE portfolio_id = current_setting('test.a')::bigint$$,
    'the last applied element carries the portfolio''s cash'
);
SELECT is(
    (SELECT realized_pnl FROM cash_result WHERE item = 3),
    -2.5::numeric,
    'a fee in a batch reports realized P&L of -amount, as charge_fee does'
);
SELECT ok(
    NOT EXISTS (SELECT FROM pgportfolio.verify_portfolio(current_setting('test.a')::bigint) WHERE NOT ok),
    'the portfolio still verifies after batched cash moves'
);
SET LOCAL ROLE pgtap_batch_a;
SELECT pgportfolio.withdraw_cash(current_setting('test.a')::bigint, 1, 'cash-batch');
SELECT is(
    (SELECT duplicate FROM pgportfolio.apply_fills(jsonb_build_array(jsonb_build_object(
         'portfolio_id', current_setting('test.a')::bigint, 'operation', 'withdraw_cash', 'amount', 1,
         'request_id', 'cash-batch')))),
    true,
    'a request id applied by withdraw_cash replays in a batch'
);
SELECT throws_ok(
    $$SELECT pgportfolio.deposit_cash(current_setting('test.a')::bigint, 5, 'cash-once')$$, 'PF005', NULL,
    'a batch and the single calls share request ids (same id, other amount: PF005)'
);
RESET ROLE;

-- update_market_prices: all or nothing.
SELECT is(
    pgportfolio.update_market_prices('[{"symbol": "AAA", "price": "11"}, {"symbol": "CCC", "price": "2.50"}]'),
    2,
    'update_market_prices reports the symbols written'
);
SELECT throws_ok(
    $$SELECT pgportfolio.update_market_prices('[{"symbol": "AAA", "price": "12"}, {"symbol": "ccc", "price": "1"}]')$$,
    '22023', NULL,
    'one bad tick refuses the whole call'
);
SELECT is(
    (SELECT mark_price FROM pgportfolio.position_pnl
     WHERE portfolio_id = current_setting('test.a')::bigint AND symbol = 'AAA'),
    11::numeric,
    'and nothing of it was written'
);

-- ---------------------------------------------------------------- apply_fills_arrays: the typed form
-- The same batch through both forms, each run on the same state and then undone: the result
-- rows and the events written (chain_hash included: now() is the same in one transaction)
-- must be identical. Variables of PL/pgSQL keep their values when the block is undone.
CREATE FUNCTION pg_temp.run_undone(p_sql text) RETURNS text[] LANGUAGE plpgsql AS $$
DECLARE
    v_rows text;
    v_events text;
    v_before pgportfolio.portfolios[] := ARRAY(
        SELECT p FROM pgportfolio.portfolios AS p
        WHERE p.portfolio_id IN (current_setting('test.a')::bigint, current_setting('test.b')::bigint)
    );
BEGIN
    BEGIN
        EXECUTE format('SELECT string_agg(r::text, E''\n'' ORDER BY r.item) FROM (%s) AS r', p_sql) INTO v_rows;
        SELECT string_agg(e::text, E'\n' ORDER BY e.portfolio_id, e.portfolio_version) INTO v_events
        FROM pgportfolio.events AS e JOIN unnest(v_before) AS b ON b.portfolio_id = e.portfolio_id
        WHERE e.portfolio_version > b.version;
        RAISE EXCEPTION 'undo' USING ERRCODE = 'P0001';
    EXCEPTION WHEN raise_exception THEN
        NULL;
    END;
    RETURN ARRAY[v_rows, v_events];
END;
$$;
-- Elements: a fill with a fee and a request id, one without a fee, a verb on another portfolio,
-- a reduce beyond the position (PF003), a close, a deposit, the first request id again (a
-- duplicate), a stale expected version (PF001), a bad symbol (22023), a withdrawal beyond the cash (PF002).
DO $do$
BEGIN
    PERFORM set_config('test.typed', array_to_string(pg_temp.run_undone(format($$
    SELECT * FROM pgportfolio.apply_fills_arrays(
        p_portfolio_ids => ARRAY[%1$s, %1$s, %2$s, %1$s, %1$s, %1$s, %1$s, %1$s, %1$s, %2$s]::bigint[],
        p_symbols => ARRAY['EQ.C', 'EQ.C', 'EQ.B', 'AAA', 'EQ.C', NULL, 'EQ.C', NULL, 'eq', NULL],
        p_quantities => ARRAY[2, 1, 1, 100, NULL, NULL, 2, NULL, 1, NULL]::numeric[],
        p_prices => ARRAY[10, 10.5, 1, 12, 11, NULL, 10, NULL, 1, NULL]::numeric[],
        p_fees => ARRAY[1, NULL, NULL, NULL, 0.5, NULL, 1, NULL, NULL, NULL]::numeric[],
        p_request_ids => ARRAY['eq-1', NULL, NULL, NULL, NULL, NULL, 'eq-1', NULL, NULL, NULL],
        p_expected_versions => ARRAY[NULL, NULL, NULL, NULL, NULL, NULL, 1, 1, NULL, NULL]::bigint[],
        p_operations => ARRAY['apply_fill', NULL, 'open_position', 'reduce_position', 'close_position', 'deposit_cash',
                              'apply_fill', 'deposit_cash', 'apply_fill', 'withdraw_cash'],
        p_amounts => ARRAY[NULL, NULL, NULL, NULL, NULL, 10, NULL, 10, NULL, 1000000]::numeric[])
    $$, current_setting('test.a'), current_setting('test.b'))), E'\n--\n'), true);
END
$do$;
DO $do$
BEGIN
    PERFORM set_config('test.json', array_to_string(pg_temp.run_undone(format($$
    SELECT * FROM pgportfolio.apply_fills(jsonb_build_array(
        jsonb_build_object('portfolio_id', %1$s, 'symbol', 'EQ.C', 'quantity', 2, 'price', 10, 'fee', 1, 'request_id', 'eq-1'),
        jsonb_build_object('portfolio_id', %1$s, 'symbol', 'EQ.C', 'quantity', 1, 'price', 10.5),
        jsonb_build_object('portfolio_id', %2$s, 'operation', 'open_position', 'symbol', 'EQ.B', 'quantity', 1, 'price', 1),
        jsonb_build_object('portfolio_id', %1$s, 'operation', 'reduce_position', 'symbol', 'AAA', 'quantity', 100, 'price', 12),
        jsonb_build_object('portfolio_id', %1$s, 'operation', 'close_position', 'symbol', 'EQ.C', 'price', 11, 'fee', 0.5),
        jsonb_build_object('portfolio_id', %1$s, 'operation', 'deposit_cash', 'amount', 10),
        jsonb_build_object('portfolio_id', %1$s, 'symbol', 'EQ.C', 'quantity', 2, 'price', 10, 'fee', 1, 'request_id', 'eq-1',
            'expected_version', 1),
        jsonb_build_object('portfolio_id', %1$s, 'operation', 'deposit_cash', 'amount', 10, 'expected_version', 1),
        jsonb_build_object('portfolio_id', %1$s, 'symbol', 'eq', 'quantity', 1, 'price', 1),
        jsonb_build_object('portfolio_id', %2$s, 'operation', 'withdraw_cash', 'amount', 1000000)))
    $$, current_setting('test.a'), current_setting('test.b'))), E'\n--\n'), true);
END
$do$;
SELECT is(current_setting('test.typed'), current_setting('test.json'),
    'apply_fills_arrays and apply_fills give the same result rows and write the same events for the same batch');
SELECT is(
    (SELECT array_agg(split_part(line, ',', 10) ORDER BY n) FROM regexp_split_to_table(
        split_part(current_setting('test.typed'), E'\n--\n', 1), E'\n') WITH ORDINALITY AS t (line, n)),
    ARRAY['', '', '', 'PF003', '', '', '', 'PF001', '22023', 'PF002'],
    'that batch applied six elements and refused four, each for its own reason'
);
SELECT is(
    (SELECT count(*) FROM regexp_split_to_table(split_part(current_setting('test.typed'), E'\n--\n', 2), E'\n')),
    5::bigint,
    'and wrote five events (the duplicate writes none); both runs were undone'
);
SELECT is(
    (SELECT count(*) FROM pgportfolio.events WHERE portfolio_id = current_setting('test.a')::bigint AND symbol = 'EQ.C'),
    0::bigint,
    'nothing of the two undone runs is left'
);

-- Malformed calls refuse the whole call with 22023 and change nothing.
SET LOCAL ROLE pgtap_batch_a;
DO $$ BEGIN PERFORM set_config('test.c', pgportfolio.create_portfolio('arrays c', 100)::text, true); END $$;
SELECT throws_ok(
    format($$SELECT * FROM pgportfolio.apply_fills_arrays(ARRAY[%1$s, %1$s]::bigint[], ARRAY['AAA', 'AAA'],
        ARRAY[1]::numeric[], ARRAY[1, 1]::numeric[])$$, current_setting('test.c')),
    '22023', 'the argument arrays must all have one element per operation',
    'apply_fills_arrays: fewer quantities than portfolio ids is 22023'
);
SELECT throws_ok(
    format($$SELECT * FROM pgportfolio.apply_fills_arrays(ARRAY[%1$s]::bigint[], ARRAY['AAA'], ARRAY[1]::numeric[],
        ARRAY[1]::numeric[], p_request_ids => ARRAY['r1', 'r2'])$$, current_setting('test.c')),
    '22023', 'the argument arrays must all have one element per operation',
    'apply_fills_arrays: more request ids than portfolio ids is 22023'
);
SELECT throws_ok(
    format($$SELECT * FROM pgportfolio.apply_fills_arrays(ARRAY[%1$s, %1$s]::bigint[], NULL, NULL, NULL,
        p_operations => ARRAY['deposit_cash', 'deposit_cash'], p_amounts => ARRAY[1, 2, 3]::numeric[])$$,
        current_setting('test.c')),
    '22023', 'the argument arrays must all have one element per operation',
    'apply_fills_arrays: more amounts than operations is 22023'
);
SELECT throws_ok(
    format($$SELECT * FROM pgportfolio.apply_fills_arrays(ARRAY[%1$s, %1$s]::bigint[], ARRAY['AAA', 'AAA'],
        ARRAY[1, 1]::numeric[], ARRAY[1, 1]::numeric[], ARRAY[0, 0, 0]::numeric[])$$, current_setting('test.c')),
    '22023', 'the argument arrays must all have one element per operation',
    'apply_fills_arrays: more fees than portfolio ids is 22023'
);
-- The defaults (no fee is 0, no operation is apply_fill) must not lengthen a short array.
SELECT throws_ok(
    format($$SELECT * FROM pgportfolio.apply_fills_arrays(ARRAY[%1$s, %1$s]::bigint[], ARRAY['AAA', 'AAA'],
        ARRAY[1, 1]::numeric[], ARRAY[10, 10]::numeric[], ARRAY[5]::numeric[])$$, current_setting('test.c')),
    '22023', 'the argument arrays must all have one element per operation',
    'apply_fills_arrays: fewer fees than portfolio ids is 22023, not a fee of 0 for the rest'
);
SELECT throws_ok(
    format($$SELECT * FROM pgportfolio.apply_fills_arrays(ARRAY[%1$s, %1$s]::bigint[], ARRAY['AAA', 'AAA'],
        ARRAY[1, 1]::numeric[], ARRAY[10, 10]::numeric[], p_operations => ARRAY['add_to_position'])$$,
        current_setting('test.c')),
    '22023', 'the argument arrays must all have one element per operation',
    'apply_fills_arrays: fewer operations than portfolio ids is 22023, not apply_fill for the rest'
);
SELECT throws_ok(
    $$SELECT * FROM pgportfolio.apply_fills_arrays(NULL, ARRAY['AAA'], ARRAY[1]::numeric[], ARRAY[1]::numeric[])$$,
    '22023', 'p_portfolio_ids must not be null',
    'apply_fills_arrays: NULL portfolio ids is 22023'
);
SELECT is(
    (SELECT version FROM pgportfolio.portfolio_summary WHERE portfolio_id = current_setting('test.c')::bigint),
    1::bigint,
    'the refused calls changed nothing'
);
SELECT is_empty(
    $$SELECT * FROM pgportfolio.apply_fills_arrays('{}'::bigint[], '{}', '{}', '{}')$$,
    'apply_fills_arrays of empty arrays returns nothing'
);

-- A fill without a fee pays none: p_fees omitted, or a NULL element in it.
CREATE TEMP TABLE fee_result AS
SELECT * FROM pgportfolio.apply_fills_arrays(
    ARRAY[current_setting('test.c')::bigint], ARRAY['FEE.A'], ARRAY[1]::numeric[], ARRAY[10]::numeric[]);
INSERT INTO fee_result
SELECT * FROM pgportfolio.apply_fills_arrays(
    ARRAY[current_setting('test.c')::bigint, current_setting('test.c')::bigint, current_setting('test.c')::bigint],
    ARRAY['FEE.A', 'FEE.A', NULL], ARRAY[1, 1, NULL]::numeric[], ARRAY[10, 10, NULL]::numeric[],
    ARRAY[NULL, 2, NULL]::numeric[], p_operations => ARRAY[NULL, NULL, 'deposit_cash'],
    p_amounts => ARRAY[NULL, NULL, 5]::numeric[]);
SELECT results_eq(
    $$SELECT portfolio_version, sqlstate, cash_balance FROM fee_result ORDER BY portfolio_version$$,
    $$VALUES (2::bigint, NULL::text, 90::numeric), (3, NULL, 80), (4, NULL, 68), (5, NULL, 73)$$,
    'fills with no fee pay none (90, 80), the one with fee 2 pays it (68); a cash move with a NULL fee applies'
);
SELECT results_eq(
    $$SELECT portfolio_version, fee FROM pgportfolio.event_log
      WHERE portfolio_id = current_setting('test.c')::bigint AND portfolio_version > 1 ORDER BY portfolio_version$$,
    $$VALUES (2::bigint, 0::numeric), (3, 0), (4, 2), (5, 0)$$,
    'and the events log fee 0 for them'
);

-- Verbs in a batch: each refused alone with the single verb's refusal, while its neighbours commit.
CREATE TEMP TABLE verb_result AS
SELECT * FROM pgportfolio.apply_fills_arrays(
    p_portfolio_ids => array_fill(current_setting('test.c')::bigint, ARRAY[6]),
    p_symbols => ARRAY['FEE.A', 'VRB.B', 'FEE.A', 'VRB.C', 'FEE.A', 'FEE.A'],
    p_quantities => ARRAY[1, 1, 5, NULL, 1, NULL]::numeric[],
    p_prices => ARRAY[10, 10, 10, 10, 12, 13]::numeric[],
    p_operations => ARRAY['open_position', 'open_position', 'reduce_position', 'close_position', 'reduce_position',
                          'close_position']);
RESET ROLE;
SELECT results_eq(
    $$SELECT item, sqlstate, portfolio_version, position_quantity FROM verb_result ORDER BY item$$,
    $$VALUES (1, 'PF006'::text, NULL::bigint, NULL::numeric), (2, NULL, 6, 1), (3, 'PF003', NULL, NULL),
             (4, 'PF003', NULL, NULL), (5, NULL, 7, 2), (6, NULL, 8, 0)$$,
    'open_position of an open symbol is PF006, reduce beyond the position and close of none are PF003; the rest apply'
);
SELECT results_eq(
    $$SELECT concat_ws(' | ', sqlstate, message, detail, hint) FROM verb_result WHERE sqlstate IS NOT NULL ORDER BY item$$,
    format($$VALUES (%L), (%L), (%L)$$,
        format('PF006 | a position in FEE.A is already open in portfolio %s | Open quantity is 3. | Use add_to_position, reduce_position or apply_fill.', current_setting('test.c')),
        format('PF003 | not enough FEE.A in portfolio %s to reduce by 5 | Open quantity is 3.', current_setting('test.c')),
        format('PF003 | no VRB.C position in portfolio %s', current_setting('test.c'))),
    'each refused verb says why, with the DETAIL and HINT of the single call'
);
SELECT results_eq(
    $$SELECT portfolio_version, kind, operation, symbol, quantity FROM pgportfolio.event_log
      WHERE portfolio_id = current_setting('test.c')::bigint AND portfolio_version > 5 ORDER BY portfolio_version$$,
    $$VALUES (6::bigint, 'open'::text, 'open_position'::text, 'VRB.B'::text, 1::numeric),
             (7, 'reduce', 'reduce_position', 'FEE.A', -1), (8, 'close', 'close_position', 'FEE.A', -2)$$,
    'the applied verbs are logged under their own operation, the refused ones not at all'
);
SET LOCAL ROLE pgtap_batch_a;
CREATE FUNCTION pg_temp.error_parts(p_sql text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    v_state text; v_message text; v_detail text; v_hint text;
BEGIN
    EXECUTE p_sql;
    RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_message = MESSAGE_TEXT,
        v_detail = PG_EXCEPTION_DETAIL, v_hint = PG_EXCEPTION_HINT;
    RETURN concat_ws(' | ', v_state, v_message, nullif(v_detail, ''), nullif(v_hint, ''));
END;
$$;
SELECT is(
    pg_temp.error_parts(format($$SELECT pgportfolio.open_position(%s, 'VRB.B', 1, 10)$$, current_setting('test.c'))),
    (SELECT concat_ws(' | ', sqlstate, message, detail, hint) FROM pgportfolio.apply_fills_arrays(
        ARRAY[current_setting('test.c')::bigint], ARRAY['VRB.B'], ARRAY[1]::numeric[], ARRAY[10]::numeric[],
        p_operations => ARRAY['open_position'])),
    'open_position refused alone and in a batch: the same SQLSTATE, message, DETAIL and HINT'
);

-- Request ids within one batch.
CREATE TEMP TABLE rid_result AS
SELECT * FROM pgportfolio.apply_fills_arrays(
    p_portfolio_ids => array_fill(current_setting('test.c')::bigint, ARRAY[5]),
    p_symbols => ARRAY['RID.A', 'RID.A', 'RID.B', 'RID.C', 'RID.B'],
    p_quantities => ARRAY[1, 1, 1000, 1, 1]::numeric[],
    p_prices => ARRAY[2, 2, 2, 2, 2]::numeric[],
    p_request_ids => ARRAY['b-1', 'b-1', 'b-2', 'b-3', 'b-2'],
    p_expected_versions => ARRAY[8, 8, NULL, NULL, NULL]::bigint[]);
SELECT results_eq(
    $$SELECT item, sqlstate, duplicate, portfolio_version, cash_balance, position_quantity FROM rid_result ORDER BY item$$,
    $$VALUES (1, NULL::text, false, 9::bigint, 99::numeric, 1::numeric), (2, NULL, true, 9, 99, 1),
             (3, 'PF002', false, NULL, NULL, NULL), (4, NULL, false, 10, 97, 1), (5, NULL, false, 11, 95, 1)$$,
    'a repeated id in one batch is a duplicate of its first use (even with that use''s now stale version 8); '
    'an id whose first use was refused (PF002) applies later in the batch'
);
SELECT is(
    (SELECT (duplicate, portfolio_version, cash_balance, sqlstate) FROM pgportfolio.apply_fills_arrays(
        ARRAY[current_setting('test.c')::bigint], ARRAY['RID.A'], ARRAY[1]::numeric[], ARRAY[2]::numeric[],
        p_request_ids => ARRAY['b-1'], p_expected_versions => ARRAY[8]::bigint[])),
    ROW(true, 9::bigint, 99::numeric, NULL::text),
    'replaying b-1 in a later batch with its stale expected version (8, now 11) returns the duplicate, not PF001'
);
SELECT is(
    (SELECT sqlstate FROM pgportfolio.apply_fills_arrays(
        ARRAY[current_setting('test.c')::bigint], ARRAY['RID.A'], ARRAY[1]::numeric[], ARRAY[2]::numeric[],
        p_request_ids => ARRAY['b-new'], p_expected_versions => ARRAY[8]::bigint[])),
    'PF001',
    'control: a new request id with that stale version is PF001'
);
RESET ROLE;
SELECT results_eq(
    $$SELECT request_id, count(*) FROM pgportfolio.event_log
      WHERE portfolio_id = current_setting('test.c')::bigint AND request_id IS NOT NULL GROUP BY request_id ORDER BY request_id$$,
    $$VALUES ('b-1'::text, 1::bigint), ('b-2', 1), ('b-3', 1)$$,
    'each request id is logged once'
);
SELECT ok(
    NOT EXISTS (SELECT FROM pgportfolio.verify_portfolio(current_setting('test.c')::bigint) WHERE NOT ok),
    'the portfolio of the typed batches verifies'
);

-- Tags are checked for the whole call in one statement: each refusal must land on its own
-- element, whatever the neighbours carry.
SET LOCAL ROLE pgtap_batch_a;
CREATE TEMP TABLE tags_result AS
SELECT * FROM pgportfolio.apply_fills_arrays(
    array_fill(current_setting('test.a')::bigint, ARRAY[6]), ARRAY['TGA', 'TGA', 'TGA', 'TGA', 'TGA', 'TGA'],
    ARRAY[1, 1, 1, 1, 1, 1]::numeric[], ARRAY[1, 1, 1, 1, 1, 1]::numeric[],
    p_tags => ARRAY[
        '{"venue": "XNAS"}', '["venue"]', NULL, '{"venue": 1}', '{"": "v"}', '{"account": "A1"}'
    ]::jsonb[]
);
RESET ROLE;
SELECT results_eq(
    'SELECT item, sqlstate, message FROM tags_result ORDER BY item',
    $$VALUES (1, NULL::text, NULL::text), (2, '22023', 'tags must be a JSON object'), (3, NULL, NULL),
             (4, '22023', 'invalid tags'), (5, '22023', 'invalid tags'), (6, NULL, NULL)$$,
    'a batch refuses exactly the elements whose tags break the rule, each with its own message'
);
SELECT results_eq(
    $$SELECT tags FROM pgportfolio.event_log
      WHERE portfolio_id = current_setting('test.a')::bigint AND symbol = 'TGA' ORDER BY portfolio_version$$,
    $$VALUES ('{"venue": "XNAS"}'::jsonb), (NULL), ('{"account": "A1"}')$$,
    'and logs the others with their own tags'
);

SELECT function_privs_are('pgportfolio', 'apply_fills_arrays',
    ARRAY['bigint[]', 'text[]', 'numeric[]', 'numeric[]', 'numeric[]', 'text[]', 'bigint[]', 'text[]', 'numeric[]',
          'timestamp with time zone[]', 'text[]', 'jsonb[]'],
    'pgportfolio_trader', ARRAY['EXECUTE'], 'traders may call apply_fills_arrays');
SELECT function_privs_are('pgportfolio', 'apply_fills_arrays',
    ARRAY['bigint[]', 'text[]', 'numeric[]', 'numeric[]', 'numeric[]', 'text[]', 'bigint[]', 'text[]', 'numeric[]',
          'timestamp with time zone[]', 'text[]', 'jsonb[]'],
    'pgportfolio_analyst', ARRAY[]::text[], 'analysts may not call apply_fills_arrays');
SELECT function_privs_are('pgportfolio', 'apply_fills_arrays',
    ARRAY['bigint[]', 'text[]', 'numeric[]', 'numeric[]', 'numeric[]', 'text[]', 'bigint[]', 'text[]', 'numeric[]',
          'timestamp with time zone[]', 'text[]', 'jsonb[]'],
    'public', ARRAY[]::text[], 'PUBLIC may not call apply_fills_arrays');
SELECT is_definer('pgportfolio', 'apply_fills_arrays',
    ARRAY['bigint[]', 'text[]', 'numeric[]', 'numeric[]', 'numeric[]', 'text[]', 'bigint[]', 'text[]', 'numeric[]',
          'timestamp with time zone[]', 'text[]', 'jsonb[]'],
    'apply_fills_arrays is SECURITY DEFINER');

SELECT function_privs_are('pgportfolio', 'apply_fills', ARRAY['jsonb'], 'pgportfolio_trader', ARRAY['EXECUTE'],
    'traders may call apply_fills');
SELECT function_privs_are('pgportfolio', 'apply_fills', ARRAY['jsonb'], 'pgportfolio_analyst', ARRAY[]::text[],
    'analysts may not call apply_fills');
SELECT function_privs_are('pgportfolio', 'update_market_prices', ARRAY['jsonb'], 'public', ARRAY[]::text[],
    'PUBLIC may not call update_market_prices');
SELECT is_definer('pgportfolio', 'apply_fills', ARRAY['jsonb'], 'apply_fills is SECURITY DEFINER');
SELECT is_definer('pgportfolio', 'update_market_prices', ARRAY['jsonb'], 'update_market_prices is SECURITY DEFINER');

SELECT * FROM finish();
ROLLBACK;
