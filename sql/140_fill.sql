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
