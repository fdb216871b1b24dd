-- What an operation does to a portfolio: the one definition. Every mutation of cash or
-- positions (apply_fill, the verbs, the cash functions and apply_fills) is a list of
-- operations handed to _apply_operations; the single-call functions hand it a list of one
-- and raise its refusal (_apply_one). So the input rules, the replay check, the money
-- arithmetic, the cash floor and the event written are the same on every path, by
-- construction.
--
-- Operations: apply_fill (a signed fill), open_position, add_to_position,
-- reduce_position, close_position (checked special cases of a fill), deposit_cash,
-- withdraw_cash, charge_fee (cash moves, with an amount).
--
-- Money: a fill's notional is quantity * price * multiplier (the instrument's contract size,
-- 1 for a symbol without an instruments row; a position keeps the one it opened with). A buy
-- debits the notional plus fee, a sell credits the notional minus fee. cost_basis is signed
-- like the position. realized P&L = cash flow + change in cost basis - fee, so for every
-- portfolio, exactly:
--   cash = initial + deposits - withdrawals + sum(fill cash flows) - sum(fees)
--   sum(realized before fees) = sum(fill cash flows) + sum(open cost basis)
-- A partial reduction removes cost basis in proportion, rounded half away from zero to 16
-- places (the scale of quantity * price at multiplier 1); the identities hold exactly because realized
-- P&L is defined from the stored change, not recomputed.
--
-- Lock order: portfolio rows in id order, then position rows in (portfolio id, symbol)
-- order. Every mutation takes them in this order, so two calls cannot deadlock.
--
-- An element refused for a reason of its own (22023, 42501, PF001 to PF006) comes back as
-- its own row with its SQLSTATE, message, DETAIL and HINT, and does not undo the others;
-- anything else (a lock timeout, a deadlock, a broken constraint) fails the whole call.
--
-- Why it is written this way: it runs while the portfolio's row is locked, so its cost per
-- element bounds a hot portfolio's throughput. The state lives in arrays indexed by slot
-- (each portfolio, position and request id gets a slot, assigned in one statement before
-- the loop), the loop is plain arithmetic on them, and the writes are one statement per
-- table. Measured per fill inside the lock, batches of 50 on one portfolio: 62 to 80 µs
-- with the earlier JSON-driven loop, record appends and a per-row chain trigger; see
-- docs/performance.md for today's figure.

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

CREATE FUNCTION pgportfolio._apply_operations(
    p_operations text[],
    p_portfolio_ids bigint[],
    p_symbols text[],
    p_quantities numeric[],
    p_prices numeric[],
    p_fees numeric[],
    p_amounts numeric[],
    p_request_ids text[],
    p_expected_versions bigint[],
    p_executed_ats timestamptz[],
    p_order_ids text[],
    p_tags jsonb[]
)
RETURNS SETOF pgportfolio.fill_result
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
-- Plans: every statement here reaches rows by key, driven by the call's arrays (LATERAL
-- look-ups, one primary-key probe per key), and the plans are generic, made once per
-- session. With custom plans (the default) most statements were planned again on every
-- call (about 400 µs for a single apply_fill), and both kinds, made while the tables were
-- small (a new deployment, before autovacuum analyzes them), could start from a whole scan
-- of a table and keep doing so as it grew: per fill 57 µs at the start of a fresh database
-- and 228 µs (generic) or 6,300 µs (custom) after 1,000 calls of 50. Sequential scans and
-- hash and merge joins are priced out so that no plan depends on the statistics.
SET plan_cache_mode = force_generic_plan
SET enable_seqscan = off
SET enable_hashjoin = off
SET enable_mergejoin = off
AS $$
DECLARE
    v_actor name := pgportfolio._acting_role();
    v_refused_characters text := pgportfolio._refused_characters();
    v_n integer := coalesce(cardinality(p_operations), 0);
    v_saved_lock_timeout text;
    v_now timestamptz := now();
    v_latest_execution timestamptz := clock_timestamp() + interval '1 minute';
    v_error_message text;
    v_error_detail text;
    v_error_hint text;
    v_dims text := format('[1:%s]', v_n);
    v_needs_message boolean := false;
    v_request_ok boolean;  -- the element broke an input rule: which one?
    v_portfolio_slots integer;
    v_position_slots integer;
    -- portfolios refused to the acting role
    a_id bigint[];
    a_state text[];
    a_message text[];
    a_hint text[];
    -- per element: a refusal (SQLSTATE, message, DETAIL, HINT) or what it did
    f_state text[];
    f_message text[];
    f_detail text[];
    f_hint text[];
    f_tags_refused boolean[];  -- true where the element's tags break their rule
    f_ps integer[];       -- portfolio slot
    f_ks integer[];       -- position slot (fills)
    f_first integer[];    -- the first element with the same request id (its group)
    f_version bigint[];
    f_kind text[];
    f_fill numeric[];     -- signed fill quantity
    f_fee numeric[];      -- the fee charged (a fill's fee, or charge_fee's amount)
    f_cash_delta numeric[];
    f_realized numeric[];
    f_cash numeric[];
    f_position_quantity numeric[];
    f_position_basis numeric[];
    f_hash bytea[];
    f_duplicate boolean[];
    f_multiplier numeric[];
    -- per portfolio slot (ids ascending)
    s_id bigint[];
    s_cash numeric[];
    s_realized numeric[];
    s_version bigint[];
    s_first_version bigint[];
    s_head bytea[];       -- chain hash of the portfolio's latest event (portfolios.chain_head)
    s_row tid[];          -- the locked row, which the writes reach directly
    -- per position slot ((portfolio id, symbol) ascending)
    k_pid bigint[];
    k_symbol text[];
    k_existed boolean[];
    k_quantity numeric[];
    k_basis numeric[];
    k_realized numeric[];
    k_version bigint[];
    k_reopened boolean[];
    k_changed boolean[];
    k_action text[];      -- what the writes do to the slot's row: see step 6
    k_multiplier numeric[];
    k_row tid[];          -- the locked row, if the position exists
    -- per request-id group, at its first element: the event the request produced
    r_version bigint[];
    r_operation text[];
    r_symbol text[];
    r_quantity numeric[];  -- the quantity as requested (reduce: positive; close: none)
    r_price numeric[];
    r_fee numeric[];
    r_amount numeric[];
    r_executed_at timestamptz[];
    r_order_id text[];
    r_tags jsonb[];
    r_multiplier numeric[];
    r_cash numeric[];
    r_position_quantity numeric[];
    r_position_basis numeric[];
    r_realized numeric[];
    v_row record;
    -- the events the log holds for this call's request ids, and the element of each
    l_items bigint[];
    l_events pgportfolio.events[];
    v_logged pgportfolio.events;
    -- the element at hand
    v_operation text;
    v_is_cash boolean;
    ps integer;
    ks integer;
    j integer;
    v_held numeric;
    v_basis numeric;
    v_fill numeric;
    v_new_quantity numeric;
    v_new_basis numeric;
    v_kind text;
    v_fee numeric;
    v_cash_delta numeric;
    v_realized numeric;
    v_multiplier numeric;
BEGIN
    IF v_n = 0 THEN
        RETURN;
    END IF;
    IF v_n > 10000 THEN
        RAISE EXCEPTION 'at most 10000 operations per call' USING ERRCODE = '22023', DETAIL = format('Got %s.', v_n);
    END IF;
    -- One-dimensional, numbered from 1, one element per operation: the loops and the
    -- unnest() of the writes pair the arrays up by position.
    IF NOT coalesce(
        array_dims(p_operations) = v_dims AND array_dims(p_portfolio_ids) = v_dims AND array_dims(p_symbols) = v_dims
        AND array_dims(p_quantities) = v_dims AND array_dims(p_prices) = v_dims AND array_dims(p_fees) = v_dims
        AND array_dims(p_amounts) = v_dims AND array_dims(p_request_ids) = v_dims
        AND array_dims(p_expected_versions) = v_dims AND array_dims(p_executed_ats) = v_dims
        AND array_dims(p_order_ids) = v_dims AND array_dims(p_tags) = v_dims,
        false
    ) THEN
        RAISE EXCEPTION 'the argument arrays must all have one element per operation'
            USING ERRCODE = '22023', HINT = 'Pass one-dimensional arrays of equal length, numbered from 1.';
    END IF;

    -- 1. Input rules, per element, before any lock: every rule of 100_validation.sql in one
    --    expression; the raising checks run only for an element that fails it, inside an
    --    exception block (a subtransaction), to capture the exact message. The bounds refuse
    --    NaN and the infinities too (numeric orders NaN above Infinity), so no NOT IN
    --    ('NaN', 'Infinity', '-Infinity') is needed: three comparisons a number saved.
    f_state := array_fill(NULL::text, ARRAY[v_n]);
    f_message := f_state;
    f_detail := f_state;
    f_hint := f_state;
    -- The tags' rule reads each object's members: one statement for the call's tags
    -- (_invalid_tags), where a function call per element cost ten times as much.
    IF num_nonnulls(VARIADIC p_tags) > 0 THEN
        f_tags_refused := array_fill(NULL::boolean, ARRAY[v_n]);
        FOR v_row IN SELECT t.item FROM pgportfolio._invalid_tags(p_tags) AS t LOOP
            f_tags_refused[v_row.item] := true;
        END LOOP;
    END IF;
    FOR i IN 1 .. v_n LOOP
        v_operation := p_operations[i];
        -- the rules of the request id and the expected version, which every operation takes
        v_request_ok := coalesce(
            (p_request_ids[i] IS NULL OR (
                length(p_request_ids[i]) BETWEEN 1 AND 200 AND p_request_ids[i] !~ v_refused_characters
            ))
            AND (p_expected_versions[i] IS NULL OR p_expected_versions[i] >= 1),
            false
        );
        IF v_operation IS NULL OR v_operation NOT IN (
            'apply_fill', 'open_position', 'add_to_position', 'reduce_position', 'close_position',
            'deposit_cash', 'withdraw_cash', 'charge_fee'
        ) THEN
            f_state[i] := '22023';
            f_message[i] := format('unknown operation %s', coalesce(quote_literal(left(v_operation, 40)), 'NULL'));
        ELSIF p_portfolio_ids[i] IS NULL THEN
            f_state[i] := '22023';
            f_message[i] := 'portfolio_id must not be null';
        ELSIF v_operation IN ('deposit_cash', 'withdraw_cash', 'charge_fee') THEN
            IF num_nonnulls(
                p_symbols[i], p_quantities[i], p_prices[i], p_fees[i], p_executed_ats[i], p_order_ids[i], p_tags[i]
            ) > 0 THEN
                f_state[i] := '22023';
                f_message[i] := format(
                    'a %s element takes no symbol, quantity, price, fee, executed_at, order_id or tags', v_operation
                );
            ELSIF NOT coalesce(
                p_amounts[i] > 0 AND p_amounts[i] < 1e15 AND min_scale(p_amounts[i]) <= 8
                AND v_request_ok,
                false
            ) THEN
                v_needs_message := true;
            END IF;
        ELSIF p_amounts[i] IS NOT NULL THEN
            f_state[i] := '22023';
            f_message[i] := 'a fill takes no amount';
        ELSIF v_operation = 'close_position' AND p_quantities[i] IS NOT NULL THEN
            f_state[i] := '22023';
            f_message[i] := 'close_position takes no quantity';
            f_hint[i] := 'It closes the whole open position.';
        ELSIF NOT coalesce(
            pgportfolio._symbol_valid(p_symbols[i])
            AND (v_operation = 'close_position' OR (
                p_quantities[i] <> 0 AND (v_operation <> 'reduce_position' OR p_quantities[i] > 0)
                AND abs(p_quantities[i]) < 1e15 AND min_scale(p_quantities[i]) <= 8
            ))
            AND p_prices[i] > 0 AND p_prices[i] < 1e15 AND min_scale(p_prices[i]) <= 8
            AND p_fees[i] >= 0 AND p_fees[i] < 1e15 AND min_scale(p_fees[i]) <= 8
            AND v_request_ok
            -- execution metadata is optional: its rules run only for an element that has some
            AND (
                num_nonnulls(p_executed_ats[i], p_order_ids[i]) = 0
                OR pgportfolio._execution_valid(p_executed_ats[i], p_order_ids[i], v_latest_execution)
            )
            AND f_tags_refused[i] IS NULL,
            false
        ) THEN
            v_needs_message := true;
        END IF;
        -- The raising checks of 100_validation.sql, for the exact message of the rule the
        -- element broke (an exception block is a subtransaction: only a failing element
        -- pays for one).
        IF v_needs_message THEN
            v_needs_message := false;
            BEGIN
                IF v_operation IN ('deposit_cash', 'withdraw_cash', 'charge_fee') THEN
                    PERFORM pgportfolio._check_number('amount', p_amounts[i], 'positive');
                ELSE
                    PERFORM pgportfolio._check_symbol(p_symbols[i]);
                    IF v_operation <> 'close_position' THEN
                        PERFORM pgportfolio._check_number(
                            'quantity', p_quantities[i],
                            CASE WHEN v_operation = 'reduce_position' THEN 'positive' ELSE 'nonzero' END
                        );
                    END IF;
                    PERFORM pgportfolio._check_number('price', p_prices[i], 'positive');
                    PERFORM pgportfolio._check_number('fee', p_fees[i], 'non_negative');
                    PERFORM pgportfolio._check_execution(
                        p_executed_ats[i], p_order_ids[i], p_tags[i], v_latest_execution
                    );
                END IF;
                PERFORM pgportfolio._check_request(p_request_ids[i], p_expected_versions[i]);
            EXCEPTION WHEN invalid_parameter_value THEN
                GET STACKED DIAGNOSTICS
                    v_error_message = MESSAGE_TEXT, v_error_detail = PG_EXCEPTION_DETAIL, v_error_hint = PG_EXCEPTION_HINT;
                f_state[i] := '22023';
                f_message[i] := v_error_message;
                f_detail[i] := nullif(v_error_detail, '');
                f_hint[i] := nullif(v_error_hint, '');
            END;
        END IF;
        -- 1.50 and 1.5 are the same amount: keep the shortest exact form, so that trailing
        -- zeros never count as decimal places downstream. This is not rounding.
        IF f_state[i] IS NULL THEN
            IF p_amounts[i] IS NULL THEN
                p_quantities[i] := trim_scale(p_quantities[i]);
                p_prices[i] := trim_scale(p_prices[i]);
                p_fees[i] := trim_scale(p_fees[i]);
            ELSE
                p_amounts[i] := trim_scale(p_amounts[i]);
            END IF;
        END IF;
    END LOOP;

    -- 2. Who may trade what: every distinct portfolio in one statement.
    SELECT array_agg(r.portfolio_id), array_agg(r.sqlstate), array_agg(r.message), array_agg(r.hint)
    INTO a_id, a_state, a_message, a_hint
    FROM pgportfolio._authorization_refusals(p_portfolio_ids, v_actor) AS r;
    FOR j IN 1 .. coalesce(cardinality(a_id), 0) LOOP
        FOR i IN 1 .. v_n LOOP
            IF p_portfolio_ids[i] = a_id[j] AND f_state[i] IS NULL THEN
                f_state[i] := a_state[j];
                f_message[i] := a_message[j];
                f_hint[i] := a_hint[j];
            END IF;
        END LOOP;
    END LOOP;

    -- 3. Slots: each element's portfolio and position, numbered in lock order: the
    --    elements sorted once by (portfolio id, symbol), cash moves last within their
    --    portfolio, and numbered in one pass. (A call of one needs no statement: its slots
    --    are 1.) Two dense_rank windows and two ordered array_aggs did the same in four
    --    sorts, about 1.4 million instructions for 50 elements; this is a third of that.
    IF v_n = 1 THEN
        IF f_state[1] IS NULL THEN
            f_ps := ARRAY[1];
            s_id := ARRAY[p_portfolio_ids[1]];
            v_portfolio_slots := 1;
            IF p_symbols[1] IS NOT NULL THEN
                f_ks := ARRAY[1];
                k_pid := s_id;
                k_symbol := ARRAY[p_symbols[1]];
                v_position_slots := 1;
            ELSE
                f_ks := ARRAY[NULL::integer];
            END IF;
        ELSE
            f_ps := ARRAY[NULL::integer];
            f_ks := f_ps;
        END IF;
    ELSE
        f_ps := array_fill(NULL::integer, ARRAY[v_n]);
        f_ks := f_ps;
        v_portfolio_slots := 0;
        v_position_slots := 0;
        FOR v_row IN
            -- Symbols are ASCII: byte order is their order in any collation, and cheaper.
            SELECT u.item, u.id, u.sym
            FROM unnest(p_portfolio_ids, p_symbols, f_state) WITH ORDINALITY AS u (id, sym, st, item)
            WHERE u.st IS NULL
            ORDER BY u.id, u.sym COLLATE "C" NULLS LAST
        LOOP
            IF v_portfolio_slots = 0 OR v_row.id <> s_id[v_portfolio_slots] THEN
                v_portfolio_slots := v_portfolio_slots + 1;
                s_id[v_portfolio_slots] := v_row.id;
            END IF;
            f_ps[v_row.item] := v_portfolio_slots;
            IF v_row.sym IS NOT NULL THEN
                IF v_position_slots = 0 OR v_row.id <> k_pid[v_position_slots]
                   OR v_row.sym <> k_symbol[v_position_slots] THEN
                    v_position_slots := v_position_slots + 1;
                    k_pid[v_position_slots] := v_row.id;
                    k_symbol[v_position_slots] := v_row.sym;
                END IF;
                f_ks[v_row.item] := v_position_slots;
            END IF;
        END LOOP;
        v_portfolio_slots := nullif(v_portfolio_slots, 0);
        v_position_slots := nullif(v_position_slots, 0);
    END IF;

    -- 4. Locks, then what the log already holds for this call's request ids. Each query's
    --    rows are put in their slots by a loop: an ordered array_agg per column costs a
    --    sort of its own to set up, which was about a tenth of a single fill's work.
    IF s_id IS NOT NULL THEN
        s_cash := array_fill(NULL::numeric, ARRAY[v_portfolio_slots]);
        s_realized := s_cash;
        s_version := array_fill(NULL::bigint, ARRAY[v_portfolio_slots]);
        s_head := array_fill(NULL::bytea, ARRAY[v_portfolio_slots]);
        s_row := array_fill(NULL::tid, ARRAY[v_portfolio_slots]);
        v_saved_lock_timeout := pgportfolio._bound_lock_wait();
        FOR v_row IN
            -- s_id is in id order: the rows are locked in that order, one probe each.
            SELECT u.slot, p.cash_balance, p.realized_pnl, p.version, p.chain_head, p.ctid AS row_id
            FROM unnest(s_id) WITH ORDINALITY AS u (id, slot)
            CROSS JOIN LATERAL (
                SELECT l.cash_balance, l.realized_pnl, l.version, l.chain_head, l.ctid
                FROM pgportfolio.portfolios AS l
                WHERE l.portfolio_id = u.id
                FOR UPDATE
            ) AS p
        LOOP
            s_cash[v_row.slot] := v_row.cash_balance;
            s_realized[v_row.slot] := v_row.realized_pnl;
            s_version[v_row.slot] := v_row.version;
            s_head[v_row.slot] := v_row.chain_head;
            s_row[v_row.slot] := v_row.row_id;
        END LOOP;
        IF array_position(s_version, NULL) IS NOT NULL THEN
            RAISE EXCEPTION 'a portfolio of this call disappeared while it was being locked' USING ERRCODE = 'PF004';
        END IF;
        s_first_version := s_version;

        IF k_pid IS NOT NULL THEN
            k_existed := array_fill(false, ARRAY[v_position_slots]);
            k_quantity := array_fill(0::numeric, ARRAY[v_position_slots]);
            k_basis := k_quantity;
            k_realized := k_quantity;
            k_version := array_fill(0::bigint, ARRAY[v_position_slots]);
            k_reopened := k_existed;
            k_changed := k_existed;
            k_multiplier := array_fill(1::numeric, ARRAY[v_position_slots]);
            k_row := array_fill(NULL::tid, ARRAY[v_position_slots]);
            -- Driven by the keys, one primary-key probe each: a wide portfolio's other
            -- positions are never read (filtering them by portfolio id read all 10,000).
            FOR v_row IN
                -- The keys are in (portfolio, symbol) order: so are the locks.
                SELECT k.slot, p.quantity, p.cost_basis, p.realized_pnl, p.version, p.multiplier, p.ctid AS row_id
                FROM unnest(k_pid, k_symbol) WITH ORDINALITY AS k (pid, sym, slot)
                CROSS JOIN LATERAL (
                    SELECT l.quantity, l.cost_basis, l.realized_pnl, l.version, l.multiplier, l.ctid
                    FROM pgportfolio.positions AS l
                    WHERE l.portfolio_id = k.pid AND l.symbol = k.sym
                    FOR UPDATE
                ) AS p
            LOOP
                k_existed[v_row.slot] := true;
                k_quantity[v_row.slot] := v_row.quantity;
                k_basis[v_row.slot] := v_row.cost_basis;
                k_realized[v_row.slot] := v_row.realized_pnl;
                k_version[v_row.slot] := v_row.version;
                k_multiplier[v_row.slot] := v_row.multiplier;
                k_row[v_row.slot] := v_row.row_id;
            END LOOP;
        END IF;
        -- A position not held yet opens at its instrument's multiplier. Taking ROW
        -- EXCLUSIVE on positions first (as the writes below would) makes a concurrent
        -- multiplier change either wait for this call or be committed before the read
        -- below, whose statement then sees it (upsert_instrument, 155_instruments.sql).
        -- A REPEATABLE READ snapshot cannot see a change committed after it began:
        -- locking multiplier_changes turns such a change into 40001 (retryable).
        IF k_pid IS NOT NULL AND NOT k_existed <@ ARRAY[true] THEN
            LOCK TABLE pgportfolio.positions IN ROW EXCLUSIVE MODE;
            IF current_setting('transaction_isolation') <> 'read committed' THEN
                PERFORM FROM pgportfolio.multiplier_changes FOR SHARE;
            END IF;
            FOR v_row IN
                SELECT k.slot, i.multiplier
                FROM unnest(k_symbol, k_existed) WITH ORDINALITY AS k (sym, existed, slot)
                CROSS JOIN LATERAL (
                    SELECT l.multiplier FROM pgportfolio.instruments AS l WHERE l.symbol = k.sym
                ) AS i
                WHERE NOT k.existed
            LOOP
                k_multiplier[v_row.slot] := v_row.multiplier;
            END LOOP;
        END IF;
        -- An assignment (set_config returns the value it set), not PERFORM, which runs a
        -- query of its own: 5,000 instructions more.
        v_saved_lock_timeout := set_config('lock_timeout', v_saved_lock_timeout, true);

        -- Request ids: the elements that share one (same portfolio and id) are a group,
        -- represented by its first element j; r_*[j] is the event the request produced,
        -- from the log (looked up once per group) or, once an element of the group
        -- applies in this call, from that element. A later element of the group is its
        -- replay.
        -- f_first and r_* start null and take only the elements a group assigns: a
        -- subscript outside an array reads null, and an assignment extends it. (Filled to
        -- full length first, they cost a single apply_fill 2% of its instructions.)
        -- Groups: only requests that more than one element of this call shares (a
        -- request alone in the call, most of them, forms none: nothing in the call
        -- replays it).
        -- Whether any request is shared is asked first, by hashing with a count per id
        -- (grouping with array_agg kept an array per id: 9,000 instructions per element in
        -- a call of 5,000, and more memory than work_mem at 10,000); only then the window.
        -- (A call of one asks nothing: a condition with a subquery is a statement of its own.)
        IF v_n > 1 THEN
            IF EXISTS (
                SELECT FROM unnest(p_portfolio_ids, p_request_ids, f_state) AS u (id, rid, st)
                WHERE u.st IS NULL AND u.rid IS NOT NULL
                GROUP BY u.id, u.rid
                HAVING count(*) > 1
            ) THEN
                FOR v_row IN
                    SELECT x.item, x.first
                    FROM (
                        SELECT u.item, min(u.item) OVER w AS first, count(*) OVER w AS members
                        FROM unnest(p_portfolio_ids, p_request_ids, f_state) WITH ORDINALITY AS u (id, rid, st, item)
                        WHERE u.st IS NULL AND u.rid IS NOT NULL
                        WINDOW w AS (PARTITION BY u.id, u.rid)
                    ) AS x
                    WHERE x.members > 1
                LOOP
                    f_first[v_row.item] := v_row.first;
                END LOOP;
            END IF;
        END IF;
        -- What the log holds for the call's request ids, one probe of the request-id
        -- index (request_id, portfolio_id) each. Both statements are planned once per
        -- session, so their plans must not depend on the statistics of that moment:
        -- - the portfolio is compared as portfolio_id + 0, which no index can use, so a
        --   plan cannot reach the events by the primary key's portfolio_id prefix (plans
        --   made on a nearly empty table did, and read every event of the portfolio for
        --   every element: 15.7 ms a call after 12 s of a fresh bench);
        -- - a call of many probes in a subquery of its own per element (OFFSET 0 keeps it
        --   one): as a plain join, the plan made at one event scanned the whole index once
        --   per element (which an index ordered for a merge join offers) instead of probing.
        -- tests/test_plan_stability.py checks both against a grown table.
        IF v_n = 1 THEN
            SELECT array_agg(1::bigint), array_agg(e)
            INTO l_items, l_events
            FROM pgportfolio.events AS e
            WHERE
                f_state[1] IS NULL AND e.request_id = p_request_ids[1]
                AND e.portfolio_id + 0 = p_portfolio_ids[1];
        ELSE
            SELECT array_agg(k.item), array_agg(e.l)
            INTO l_items, l_events
            FROM unnest(p_portfolio_ids, p_request_ids, f_state) WITH ORDINALITY AS k (id, rid, st, item)
            CROSS JOIN LATERAL (
                SELECT l FROM pgportfolio.events AS l
                WHERE l.request_id = k.rid AND l.portfolio_id + 0 = k.id
                OFFSET 0
            ) AS e
            WHERE k.st IS NULL;
        END IF;
        FOR g IN 1 .. coalesce(cardinality(l_items), 0) LOOP
            v_logged := l_events[g];
            -- the event belongs to the group's first element (every member finds it)
            j := coalesce(f_first[l_items[g]], l_items[g]);
            CONTINUE WHEN j <> l_items[g];
            f_first[j] := j;
            r_version[j] := v_logged.portfolio_version;
            r_operation[j] := v_logged.operation;
            r_symbol[j] := v_logged.symbol;
            -- the quantity as requested: reduce_position logs the signed fill, and
            -- close_position takes none
            r_quantity[j] := CASE v_logged.operation
                WHEN 'reduce_position' THEN abs(v_logged.quantity)
                WHEN 'close_position' THEN NULL
                ELSE v_logged.quantity
            END;
            r_price[j] := v_logged.price;
            r_fee[j] := CASE WHEN v_logged.symbol IS NOT NULL THEN v_logged.fee END;
            r_amount[j] := v_logged.amount;
            r_executed_at[j] := v_logged.executed_at;
            r_order_id[j] := v_logged.order_id;
            r_tags[j] := v_logged.tags;
            r_multiplier[j] := v_logged.multiplier;
            r_cash[j] := v_logged.cash_balance;
            r_position_quantity[j] := v_logged.position_quantity;
            r_position_basis[j] := v_logged.position_cost_basis;
            r_realized[j] := v_logged.realized_pnl;
        END LOOP;
    END IF;

    -- 5. Apply, element by element, in input order, on the state in the slots.
    -- Every per-element array starts full length: assigning to element i of an empty
    -- array would number it from i.
    f_version := array_fill(NULL::bigint, ARRAY[v_n]);
    f_kind := array_fill(NULL::text, ARRAY[v_n]);
    f_fill := array_fill(NULL::numeric, ARRAY[v_n]);
    f_fee := f_fill;
    f_cash_delta := f_fill;
    f_realized := f_fill;
    f_cash := f_fill;
    f_position_quantity := f_fill;
    f_position_basis := f_fill;
    f_hash := array_fill(NULL::bytea, ARRAY[v_n]);
    f_duplicate := array_fill(false, ARRAY[v_n]);
    f_multiplier := f_fill;
    FOR i IN 1 .. v_n LOOP
        CONTINUE WHEN f_state[i] IS NOT NULL;
        v_operation := p_operations[i];
        v_is_cash := v_operation IN ('deposit_cash', 'withdraw_cash', 'charge_fee');
        ps := f_ps[i];
        j := f_first[i];

        IF j IS NOT NULL AND r_version[j] IS NOT NULL THEN
            IF r_operation[j] = v_operation
               AND r_symbol[j] IS NOT DISTINCT FROM p_symbols[i]
               AND r_quantity[j] IS NOT DISTINCT FROM p_quantities[i]
               AND r_price[j] IS NOT DISTINCT FROM p_prices[i]
               AND r_fee[j] IS NOT DISTINCT FROM p_fees[i]
               AND r_amount[j] IS NOT DISTINCT FROM p_amounts[i]
               AND r_executed_at[j] IS NOT DISTINCT FROM p_executed_ats[i]
               AND r_order_id[j] IS NOT DISTINCT FROM p_order_ids[i]
               AND r_tags[j] IS NOT DISTINCT FROM p_tags[i] THEN
                f_duplicate[i] := true;
                f_multiplier[i] := r_multiplier[j];
                f_version[i] := r_version[j];
                f_cash[i] := r_cash[j];
                f_position_quantity[i] := r_position_quantity[j];
                f_position_basis[i] := r_position_basis[j];
                f_realized[i] := r_realized[j];
            ELSE
                f_state[i] := 'PF005';
                f_message[i] := format('request id %s was already used with different arguments', quote_literal(p_request_ids[i]));
                f_detail[i] := format(
                    'portfolio %s version %s: first %s, now %s', p_portfolio_ids[i], r_version[j],
                    pgportfolio._request_args(
                        r_operation[j], r_symbol[j], r_quantity[j], r_price[j], r_fee[j], r_amount[j],
                        r_executed_at[j], r_order_id[j], r_tags[j]
                    ),
                    pgportfolio._request_args(
                        v_operation, p_symbols[i], p_quantities[i], p_prices[i], p_fees[i], p_amounts[i],
                        p_executed_ats[i], p_order_ids[i], p_tags[i]
                    )
                );
                f_hint[i] := 'Use a new request id for a new operation.';
            END IF;
            CONTINUE;
        END IF;

        IF p_expected_versions[i] IS NOT NULL AND p_expected_versions[i] <> s_version[ps] THEN
            f_state[i] := 'PF001';
            f_message[i] := format('version conflict on portfolio %s', p_portfolio_ids[i]);
            f_detail[i] := format('expected version %s, found version %s', p_expected_versions[i], s_version[ps]);
            f_hint[i] := 'Reload the portfolio and retry with its current version.';
            CONTINUE;
        END IF;

        IF v_is_cash THEN
            v_fee := CASE WHEN v_operation = 'charge_fee' THEN p_amounts[i] ELSE 0 END;
            v_cash_delta := CASE WHEN v_operation = 'deposit_cash' THEN p_amounts[i] ELSE -p_amounts[i] END;
            v_realized := -v_fee;
            v_kind := CASE v_operation WHEN 'deposit_cash' THEN 'deposit' WHEN 'withdraw_cash' THEN 'withdraw' ELSE 'fee' END;
        ELSE
            ks := f_ks[i];
            v_held := k_quantity[ks];
            v_basis := k_basis[ks];
            v_multiplier := k_multiplier[ks];
            v_fee := p_fees[i];
            -- Turn the verb into a signed fill, refusing what the verb does not allow.
            CASE v_operation
                WHEN 'apply_fill' THEN
                    v_fill := p_quantities[i];
                WHEN 'open_position' THEN
                    IF v_held <> 0 THEN
                        f_state[i] := 'PF006';
                        f_message[i] := format('a position in %s is already open in portfolio %s', p_symbols[i], p_portfolio_ids[i]);
                        f_detail[i] := format('Open quantity is %s.', v_held);
                        f_hint[i] := 'Use add_to_position, reduce_position or apply_fill.';
                        CONTINUE;
                    END IF;
                    v_fill := p_quantities[i];
                WHEN 'add_to_position' THEN
                    IF v_held = 0 THEN
                        f_state[i] := 'PF003';
                        f_message[i] := format('no %s position in portfolio %s', p_symbols[i], p_portfolio_ids[i]);
                        f_hint[i] := 'Use open_position first.';
                        CONTINUE;
                    END IF;
                    IF sign(p_quantities[i]) <> sign(v_held) THEN
                        f_state[i] := '22023';
                        f_message[i] := 'add_to_position must be on the side of the open position';
                        f_detail[i] := format('Open quantity is %s, quantity is %s.', v_held, p_quantities[i]);
                        f_hint[i] := 'Positive adds to a long, negative to a short; use reduce_position to reduce.';
                        CONTINUE;
                    END IF;
                    v_fill := p_quantities[i];
                WHEN 'reduce_position' THEN
                    IF p_quantities[i] > abs(v_held) THEN
                        f_state[i] := 'PF003';
                        f_message[i] := format(
                            'not enough %s in portfolio %s to reduce by %s', p_symbols[i], p_portfolio_ids[i], p_quantities[i]
                        );
                        f_detail[i] := format('Open quantity is %s.', v_held);
                        CONTINUE;
                    END IF;
                    v_fill := -sign(v_held) * p_quantities[i];
                ELSE  -- close_position
                    IF v_held = 0 THEN
                        f_state[i] := 'PF003';
                        f_message[i] := format('no %s position in portfolio %s', p_symbols[i], p_portfolio_ids[i]);
                        CONTINUE;
                    END IF;
                    v_fill := -v_held;
            END CASE;

            v_new_quantity := v_held + v_fill;
            IF abs(v_new_quantity) >= 1e15 THEN
                f_state[i] := '22023';
                f_message[i] := format('position in %s would be out of range', p_symbols[i]);
                f_detail[i] := format(
                    'Open %s plus fill %s; the absolute value must stay below 10^15.', v_held, v_fill
                );
                CONTINUE;
            END IF;

            IF v_held = 0 THEN
                v_kind := 'open';
                v_new_basis := v_fill * p_prices[i] * v_multiplier;
            ELSIF sign(v_fill) = sign(v_held) THEN
                v_kind := 'add';
                v_new_basis := v_basis + v_fill * p_prices[i] * v_multiplier;
            ELSIF v_new_quantity = 0 THEN
                v_kind := 'close';
                v_new_basis := 0;
            ELSIF sign(v_new_quantity) = sign(v_held) THEN
                v_kind := 'reduce';
                -- The 1.0...0 factor gives the division 22 places, so round() decides, not
                -- numeric's default division scale (about 16 significant digits).
                v_new_basis := v_basis - trim_scale(
                    round(v_basis * abs(v_fill) * 1.0000000000000000000000 / abs(v_held), 16)
                );
            ELSE
                v_kind := 'flip';
                v_new_basis := v_new_quantity * p_prices[i] * v_multiplier;
            END IF;
            v_cash_delta := -(v_fill * p_prices[i] * v_multiplier) - v_fee;
            v_realized := v_new_basis - v_basis + v_cash_delta;
        END IF;

        IF s_cash[ps] + v_cash_delta < 0 THEN
            f_state[i] := 'PF002';
            f_message[i] := format('insufficient cash in portfolio %s', p_portfolio_ids[i]);
            f_detail[i] := format('needed %s, available %s', -v_cash_delta, s_cash[ps]);
            CONTINUE;
        END IF;

        -- Applied: the portfolio's state, the position's, the event and the answer.
        s_cash[ps] := s_cash[ps] + v_cash_delta;
        s_realized[ps] := s_realized[ps] + v_realized;
        s_version[ps] := s_version[ps] + 1;
        IF NOT v_is_cash THEN
            -- A position that went flat and opens again starts a new row life, as after a
            -- DELETE and an INSERT.
            IF v_held = 0 THEN
                k_reopened[ks] := k_existed[ks];
                k_version[ks] := 1;
                k_realized[ks] := v_realized;
            ELSE
                k_version[ks] := k_version[ks] + 1;
                k_realized[ks] := k_realized[ks] + v_realized;
            END IF;
            -- A flat position holds plain 0, as a deleted row read back would: a
            -- reopening fill then keeps its own decimal places, not the closing sum's.
            k_quantity[ks] := CASE WHEN v_new_quantity = 0 THEN 0 ELSE v_new_quantity END;
            k_basis[ks] := v_new_basis;
            k_changed[ks] := true;
            f_fill[i] := v_fill;
            f_position_quantity[i] := v_new_quantity;
            f_position_basis[i] := v_new_basis;
            f_multiplier[i] := v_multiplier;
        END IF;
        f_version[i] := s_version[ps];
        f_kind[i] := v_kind;
        f_fee[i] := v_fee;
        f_cash_delta[i] := v_cash_delta;
        f_realized[i] := v_realized;
        f_cash[i] := s_cash[ps];
        s_head[ps] := pgportfolio._event_hash(
            s_head[ps], p_portfolio_ids[i], s_version[ps], v_kind, v_operation, p_symbols[i], f_fill[i],
            p_prices[i], v_fee, p_amounts[i], v_cash_delta, v_realized, s_cash[ps], f_position_quantity[i],
            f_position_basis[i], p_request_ids[i], p_executed_ats[i], p_order_ids[i], p_tags[i], f_multiplier[i],
            v_actor, v_now
        );
        f_hash[i] := s_head[ps];
        IF j IS NOT NULL THEN
            -- A later element with the same request id in this call is its replay.
            r_version[j] := s_version[ps];
            r_operation[j] := v_operation;
            r_symbol[j] := p_symbols[i];
            r_quantity[j] := p_quantities[i];
            r_price[j] := p_prices[i];
            r_fee[j] := p_fees[i];
            r_amount[j] := p_amounts[i];
            r_executed_at[j] := p_executed_ats[i];
            r_order_id[j] := p_order_ids[i];
            r_tags[j] := p_tags[i];
            r_multiplier[j] := f_multiplier[i];
            r_cash[j] := s_cash[ps];
            r_position_quantity[j] := f_position_quantity[i];
            r_position_basis[j] := f_position_basis[i];
            r_realized[j] := v_realized;
        END IF;
    END LOOP;

    -- 6. Write: one statement per table, and none with nothing to do (a statement that
    --    changes no row still costs its run: a single fill writes one position, not three).
    --    What becomes of each position slot: nothing (unchanged, or opened and closed within
    --    the call), delete (closed), insert (opened), replace (closed and opened again: a
    --    new row life, as after a DELETE and an INSERT), or update.
    --    The statements read the arrays by subscript over generate_subscripts(): unnest() of
    --    n arrays materializes n function results and joins them, about 500 instructions
    --    per element and array (13,000 per fill for the events alone, at 50 a call). Only
    --    statements that run at once do: a FOR loop's query runs as a cursor, which copies
    --    its parameters flat, and a subscript of a flat array walks it from the start (a
    --    call of 5,000 paid 110,000 instructions per element for it), so loops use unnest().
    IF k_pid IS NOT NULL THEN
        k_action := array_fill(NULL::text, ARRAY[cardinality(k_pid)]);
        FOR k IN 1 .. cardinality(k_pid) LOOP
            IF k_changed[k] THEN
                k_action[k] := CASE
                    WHEN k_quantity[k] = 0 THEN CASE WHEN k_existed[k] THEN 'delete' END
                    WHEN NOT k_existed[k] THEN 'insert'
                    WHEN k_reopened[k] THEN 'replace'
                    ELSE 'update'
                END;
            END IF;
        END LOOP;
    END IF;

    IF s_version IS DISTINCT FROM s_first_version THEN
        -- Each row is reached by the tuple id its lock returned (s_row, k_row): it cannot
        -- have moved, since this transaction holds the lock, and the plan starts from the
        -- call's arrays whatever the table's size was when it was made.
        UPDATE pgportfolio.portfolios AS p
        SET cash_balance = s_cash[s], realized_pnl = s_realized[s], version = s_version[s], updated_at = v_now,
            chain_head = s_head[s]
        FROM generate_subscripts(s_id, 1) AS s
        WHERE s_version[s] <> s_first_version[s] AND p.ctid = s_row[s];
    END IF;

    IF k_action && ARRAY['delete', 'replace'] THEN
        DELETE FROM pgportfolio.positions AS p
        USING generate_subscripts(k_pid, 1) AS k
        WHERE k_action[k] IN ('delete', 'replace') AND p.ctid = k_row[k];
    END IF;

    IF k_action && ARRAY['update'] THEN
        UPDATE pgportfolio.positions AS p
        SET quantity = k_quantity[k], cost_basis = k_basis[k], realized_pnl = k_realized[k], version = k_version[k],
            updated_at = v_now
        FROM generate_subscripts(k_pid, 1) AS k
        WHERE k_action[k] = 'update' AND p.ctid = k_row[k];
    END IF;

    IF k_action && ARRAY['insert', 'replace'] THEN
        INSERT INTO pgportfolio.positions (portfolio_id, symbol, quantity, cost_basis, realized_pnl, version, multiplier)
        SELECT k_pid[k], k_symbol[k], k_quantity[k], k_basis[k], k_realized[k], k_version[k], k_multiplier[k]
        FROM generate_subscripts(k_pid, 1) AS k
        WHERE k_action[k] IN ('insert', 'replace');
    END IF;

    -- f_kind is set only for applied elements, so this writes exactly their events, in
    -- input order, which is version order within each portfolio.
    IF s_version IS DISTINCT FROM s_first_version THEN
        INSERT INTO pgportfolio.events (
            portfolio_id, portfolio_version, kind, operation, symbol, quantity, price, fee, amount, cash_delta,
            realized_pnl, cash_balance, position_quantity, position_cost_basis, request_id, executed_at, order_id, tags,
            multiplier, acting_role, created_at, chain_hash
        )
        SELECT
            p_portfolio_ids[i], f_version[i], f_kind[i], p_operations[i], p_symbols[i], f_fill[i], p_prices[i],
            f_fee[i], p_amounts[i], f_cash_delta[i], f_realized[i], f_cash[i], f_position_quantity[i],
            f_position_basis[i], p_request_ids[i], p_executed_ats[i], p_order_ids[i], p_tags[i], f_multiplier[i],
            v_actor, v_now, f_hash[i]
        FROM generate_subscripts(f_kind, 1) AS i
        WHERE f_kind[i] IS NOT NULL;
    END IF;

    RETURN QUERY
    SELECT
        i, p_portfolio_ids[i],
        CASE WHEN f_state[i] IS NULL THEN f_version[i] END,
        CASE WHEN f_state[i] IS NULL THEN f_cash[i] END,
        p_symbols[i],
        CASE WHEN f_state[i] IS NULL THEN f_position_quantity[i] END,
        CASE
            WHEN f_state[i] IS NULL AND f_position_quantity[i] <> 0
                THEN round(f_position_basis[i] / (f_position_quantity[i] * f_multiplier[i]), 8)
        END,
        CASE WHEN f_state[i] IS NULL THEN f_realized[i] END,
        f_duplicate[i], f_state[i], f_message[i], f_detail[i], f_hint[i]
    FROM generate_series(1, v_n) AS i
    ORDER BY i;
END;
$$;

-- One operation: the list of one, its refusal raised as the error it is.
CREATE FUNCTION pgportfolio._apply_one(
    p_operation text,
    p_portfolio_id bigint,
    p_symbol text,
    p_quantity numeric,
    p_price numeric,
    p_fee numeric,
    p_amount numeric,
    p_request_id text,
    p_expected_version bigint,
    p_executed_at timestamptz DEFAULT NULL,
    p_order_id text DEFAULT NULL,
    p_tags jsonb DEFAULT NULL
)
RETURNS pgportfolio.mutation_result
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r pgportfolio.fill_result;
BEGIN
    SELECT * INTO STRICT r
    FROM pgportfolio._apply_operations(
        ARRAY[p_operation], ARRAY[p_portfolio_id], ARRAY[p_symbol], ARRAY[p_quantity], ARRAY[p_price],
        ARRAY[p_fee], ARRAY[p_amount], ARRAY[p_request_id], ARRAY[p_expected_version], ARRAY[p_executed_at],
        ARRAY[p_order_id], ARRAY[p_tags]
    );
    IF r.sqlstate IS NOT NULL THEN
        -- RAISE refuses a null DETAIL or HINT: an absent one is left out, not sent empty.
        IF r.detail IS NOT NULL AND r.hint IS NOT NULL THEN
            RAISE EXCEPTION USING ERRCODE = r.sqlstate, MESSAGE = r.message, DETAIL = r.detail, HINT = r.hint;
        ELSIF r.detail IS NOT NULL THEN
            RAISE EXCEPTION USING ERRCODE = r.sqlstate, MESSAGE = r.message, DETAIL = r.detail;
        ELSIF r.hint IS NOT NULL THEN
            RAISE EXCEPTION USING ERRCODE = r.sqlstate, MESSAGE = r.message, HINT = r.hint;
        END IF;
        RAISE EXCEPTION USING ERRCODE = r.sqlstate, MESSAGE = r.message;
    END IF;
    RETURN ROW(
        r.portfolio_id, r.portfolio_version, r.cash_balance, r.symbol, r.position_quantity, r.position_avg_price,
        r.realized_pnl, r.duplicate
    );
END;
$$;
