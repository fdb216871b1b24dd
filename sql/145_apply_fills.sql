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
