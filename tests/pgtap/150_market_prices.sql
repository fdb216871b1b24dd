-- Market prices (sql/150_market_prices.sql): a tick records a mark in the history, makes
-- it current if its as_of is the latest, and never touches a portfolio, a position or the
-- event log. price_at reads the history; prune_price_history bounds it.
BEGIN;
SELECT plan(109);

CREATE FUNCTION pg_temp.pid(p_name text) RETURNS bigint LANGUAGE sql STABLE
AS $$ SELECT current_setting('test.pid_' || p_name)::bigint $$;

-- Everything a tick must leave alone.
CREATE FUNCTION pg_temp.ledger_state() RETURNS text LANGUAGE sql STABLE AS $$
    SELECT concat_ws(' / ',
        (SELECT string_agg(format('%s v%s cash %s pnl %s', portfolio_id, version::bigint, cash_balance::numeric, realized_pnl::numeric), ', '
                           ORDER BY portfolio_id)
         FROM pgportfolio.portfolios WHERE portfolio_id IN (pg_temp.pid('a'), pg_temp.pid('b'))),
        (SELECT string_agg(format('%s %s %s %s v%s pnl %s', portfolio_id, symbol::text, quantity::numeric, cost_basis::numeric, version::bigint,
                                  realized_pnl::numeric), ', ' ORDER BY portfolio_id, symbol::text)
         FROM pgportfolio.positions WHERE portfolio_id IN (pg_temp.pid('a'), pg_temp.pid('b'))),
        (SELECT format('%s events', count(*)) FROM pgportfolio.events
         WHERE portfolio_id IN (pg_temp.pid('a'), pg_temp.pid('b')))
    )
$$;

DO $$
BEGIN
    PERFORM set_config('test.pid_a', pgportfolio.create_portfolio('marks a', 10000)::text, true);
    PERFORM set_config('test.pid_b', pgportfolio.create_portfolio('marks b', 10000)::text, true);
    PERFORM pgportfolio.apply_fill(pg_temp.pid('a'), 'MKA', 10, 100);
    PERFORM pgportfolio.apply_fill(pg_temp.pid('a'), 'MKA', 5, 106);
    PERFORM pgportfolio.apply_fill(pg_temp.pid('b'), 'MKA', -4, 100);
    PERFORM set_config('test.ledger', pg_temp.ledger_state(), true);
END
$$;

-- ---------------------------------------------------------------- insert, then update
SELECT is_empty($$SELECT 1 FROM pgportfolio.market_prices WHERE symbol = 'MKA'$$, 'no mark for MKA before the first tick');
SELECT lives_ok($$SELECT pgportfolio.update_market_price('MKA', 101.5)$$, 'the first tick for a symbol is accepted');
SELECT is(
    (SELECT (price, version) FROM pgportfolio.market_prices WHERE symbol = 'MKA'),
    ROW(101.5::numeric, 1::bigint),
    'the first tick inserts the mark at version 1'
);
SELECT is(pg_temp.ledger_state(), current_setting('test.ledger'),
    'the first tick changed no portfolio, position or event');
SELECT lives_ok($$SELECT pgportfolio.update_market_price('MKA', 99.12345678)$$, 'a second tick is accepted');
SELECT is(
    (SELECT (price, version) FROM pgportfolio.market_prices WHERE symbol = 'MKA'),
    ROW(99.12345678::numeric, 2::bigint),
    'the second tick replaces the price (8 places kept) and bumps the mark''s own version'
);
SELECT lives_ok($$SELECT pgportfolio.update_market_price('MKA', 99.12345678)$$, 'the same price again is accepted');
SELECT is(
    (SELECT (price, version) FROM pgportfolio.market_prices WHERE symbol = 'MKA'),
    ROW(99.12345678::numeric, 3::bigint),
    'every tick counts as a new version of the mark, even an unchanged price'
);
SELECT is(
    (SELECT count(*) FROM pgportfolio.market_prices WHERE symbol = 'MKA'),
    1::bigint,
    'one mark row per symbol, however many ticks'
);
SELECT is(pg_temp.ledger_state(), current_setting('test.ledger'),
    'after three ticks: portfolio versions, cash, positions (quantity, basis, version) and events are unchanged');
SELECT is(
    (SELECT array_agg(version::bigint ORDER BY portfolio_id) FROM pgportfolio.portfolios
     WHERE portfolio_id IN (pg_temp.pid('a'), pg_temp.pid('b'))),
    ARRAY[3::bigint, 2::bigint],
    'portfolio versions are still 3 and 2'
);
SELECT is(
    (SELECT array_agg(version::bigint ORDER BY portfolio_id) FROM pgportfolio.positions WHERE symbol = 'MKA'
       AND portfolio_id IN (pg_temp.pid('a'), pg_temp.pid('b'))),
    ARRAY[2::bigint, 1::bigint],
    'position versions are still 2 and 1'
);
SELECT lives_ok($$SELECT pgportfolio.update_market_price('UNHELD', 5)$$, 'a symbol nobody holds can be marked');
SELECT lives_ok($$SELECT pgportfolio.update_market_price(repeat('Z', 32), 999999999999999.99999999)$$,
    'a 32-character symbol and the largest price below 10^15 are accepted');
SELECT lives_ok($$SELECT pgportfolio.update_market_price('TINY', 0.00000001)$$, 'the smallest positive price is accepted');

-- ---------------------------------------------------------------- the mark reaches every holder's read model
SELECT is(
    (SELECT array_agg(mark_price ORDER BY portfolio_id) FROM pgportfolio.position_pnl
     WHERE symbol = 'MKA' AND portfolio_id IN (pg_temp.pid('a'), pg_temp.pid('b'))),
    ARRAY[99.12345678, 99.12345678],
    'marks are global per symbol: both portfolios holding MKA see the same mark'
);
SELECT is(
    (SELECT unrealized_pnl FROM pgportfolio.position_pnl WHERE symbol = 'MKA' AND portfolio_id = pg_temp.pid('b')),
    -4 * 99.12345678 + 400,
    'the short sees unrealized P&L = quantity * mark - cost basis'
);

-- ---------------------------------------------------------------- refused ticks (22023) leave the mark alone
SELECT throws_ok($$SELECT pgportfolio.update_market_price('MKA', 'NaN')$$, '22023', NULL, 'a NaN price is 22023');
SELECT throws_ok($$SELECT pgportfolio.update_market_price('MKA', 'Infinity')$$, '22023', NULL, 'an Infinity price is 22023');
SELECT throws_ok($$SELECT pgportfolio.update_market_price('MKA', '-Infinity')$$, '22023', NULL, 'a -Infinity price is 22023');
SELECT throws_ok($$SELECT pgportfolio.update_market_price('MKA', 0)$$, '22023', NULL, 'a zero price is 22023');
SELECT throws_ok($$SELECT pgportfolio.update_market_price('MKA', -1)$$, '22023', NULL, 'a negative price is 22023');
SELECT throws_ok($$SELECT pgportfolio.update_market_price('MKA', 1.123456789)$$, '22023', NULL,
    'a price with 9 decimal places is 22023, not rounded');
SELECT throws_ok($$SELECT pgportfolio.update_market_price('MKA', 1e15)$$, '22023', NULL, 'a price of 1e15 is 22023');
SELECT throws_ok($$SELECT pgportfolio.update_market_price('MKA', NULL)$$, '22023', NULL, 'a NULL price is 22023');
SELECT throws_ok($$SELECT pgportfolio.update_market_price('', 1)$$, '22023', NULL, 'an empty symbol is 22023');
SELECT throws_ok($$SELECT pgportfolio.update_market_price('mka', 1)$$, '22023', NULL, 'a lower-case symbol is 22023');
SELECT throws_ok($$SELECT pgportfolio.update_market_price(repeat('Z', 33), 1)$$, '22023', NULL, 'a 33-character symbol is 22023');
SELECT throws_ok($$SELECT pgportfolio.update_market_price('MK''A', 1)$$, '22023', NULL, 'a symbol with a quote is 22023');
SELECT throws_ok($$SELECT pgportfolio.update_market_price(NULL, 1)$$, '22023', NULL, 'a NULL symbol is 22023');
SELECT is(
    (SELECT (price, version) FROM pgportfolio.market_prices WHERE symbol = 'MKA'),
    ROW(99.12345678::numeric, 3::bigint),
    'the refused ticks left the MKA mark as it was'
);
SELECT is(
    (SELECT count(*) FROM pgportfolio.market_prices WHERE symbol IN ('', 'mka', 'MK''A') OR symbol = repeat('Z', 33)),
    0::bigint,
    'no refused symbol was stored'
);

-- ---------------------------------------------------------------- every mark is kept
SELECT is(
    (SELECT array_agg(price ORDER BY mark_id) FROM pgportfolio.market_price_history WHERE symbol = 'MKA'),
    ARRAY[101.5, 99.12345678, 99.12345678],
    'the history holds every accepted MKA tick, in arrival order, and none of the refused ones'
);
SELECT is(
    (SELECT (as_of, source, mark_id) FROM pgportfolio.market_prices WHERE symbol = 'MKA'),
    (SELECT (as_of, source, mark_id) FROM pgportfolio.market_price_history WHERE symbol = 'MKA'
     ORDER BY as_of DESC, mark_id DESC LIMIT 1),
    'the current MKA mark is the latest history row; as_of defaulted to the transaction time, no source'
);
SELECT is((SELECT as_of FROM pgportfolio.market_prices WHERE symbol = 'MKA'), now(), 'a default as_of is now()');

-- ---------------------------------------------------------------- as_of decides which mark is current
SELECT lives_ok($$SELECT pgportfolio.update_market_price('HIS', 20, '2026-01-05 16:00+00', 'feed-a')$$,
    'a mark with an as_of and a source is accepted');
SELECT lives_ok($$SELECT pgportfolio.update_market_price('HIS', 10, '2026-01-02 16:00+00', 'feed-b')$$,
    'a late-arriving older mark is accepted');
SELECT is(
    (SELECT (price, as_of, source, version) FROM pgportfolio.market_prices WHERE symbol = 'HIS'),
    ROW(20::numeric, '2026-01-05 16:00+00'::timestamptz, 'feed-a'::text, 1::bigint),
    'the older mark did not replace the current one (price, as_of, source and version unchanged)'
);
SELECT is(
    (SELECT array_agg(price ORDER BY as_of) FROM pgportfolio.market_price_history WHERE symbol = 'HIS'),
    ARRAY[10::numeric, 20],
    'the older mark went to the history'
);
SELECT lives_ok($$SELECT pgportfolio.update_market_price(p_symbol => 'HIS', p_price => 30, p_as_of => '2026-01-06 16:00+00')$$,
    'a newer mark, by named arguments, without a source');
SELECT is(
    (SELECT (price, as_of, source, version) FROM pgportfolio.market_prices WHERE symbol = 'HIS'),
    ROW(30::numeric, '2026-01-06 16:00+00'::timestamptz, NULL::text, 2::bigint),
    'the newer mark is current, with its own (absent) source, and the mark''s version moved to 2'
);
SELECT lives_ok($$SELECT pgportfolio.update_market_price('HIS', 31, '2026-01-06 16:00+00', 'feed-c')$$,
    'a second mark with the same as_of');
SELECT is(
    (SELECT (price, source) FROM pgportfolio.market_prices WHERE symbol = 'HIS'),
    ROW(31::numeric, 'feed-c'::text),
    'between marks with one as_of, the later arrival is current'
);
SELECT lives_ok($$SELECT pgportfolio.update_market_price('HIS', 32, NULL, NULL)$$,
    'an explicit NULL as_of means now');
SELECT is(
    (SELECT (price, as_of) FROM pgportfolio.market_prices WHERE symbol = 'HIS'),
    ROW(32::numeric, now()),
    'the NULL as_of became the transaction time, later than the other marks, so it is current'
);
SELECT lives_ok($$SELECT pgportfolio.update_market_price('HIS', 33, now() + INTERVAL '50 seconds', 'skewed')$$,
    'an as_of 50 seconds ahead of the server is accepted (clock skew)');
SELECT is((SELECT price FROM pgportfolio.market_prices WHERE symbol = 'HIS'), 33::numeric,
    'the skewed mark is current');

-- ---------------------------------------------------------------- refused as_of and source (22023), nothing recorded
SELECT set_config('test.his_marks', (SELECT count(*) FROM pgportfolio.market_price_history)::text, true);
SELECT throws_ok($$SELECT pgportfolio.update_market_price('HIS', 1, now() + INTERVAL '5 minutes')$$, '22023',
    'p_as_of is in the future', 'an as_of five minutes ahead is 22023');
SELECT throws_ok($$SELECT pgportfolio.update_market_price('HIS', 1, 'infinity')$$, '22023',
    'p_as_of must be a finite time', 'an infinite as_of is 22023');
SELECT throws_ok($$SELECT pgportfolio.update_market_price('HIS', 1, '-infinity')$$, '22023',
    'p_as_of must be a finite time', 'a -infinity as_of is 22023');
SELECT throws_ok($$SELECT pgportfolio.update_market_price('HIS', 1, NULL, '')$$, '22023',
    'invalid source', 'an empty source is 22023');
SELECT throws_ok($$SELECT pgportfolio.update_market_price('HIS', 1, NULL, repeat('s', 65))$$, '22023',
    'invalid source', 'a 65-character source is 22023');
SELECT throws_ok($$SELECT pgportfolio.update_market_price('HIS', 1, NULL, E'feed\u202Eevil')$$, '22023',
    'invalid source', 'a source with U+202E (right-to-left override) is 22023');
SELECT throws_ok($$SELECT pgportfolio.update_market_price('HIS', 1, NULL, E'feed\ta')$$, '22023',
    'invalid source', 'a source with a tab is 22023');
SELECT is((SELECT count(*) FROM pgportfolio.market_price_history)::text, current_setting('test.his_marks'),
    'no refused mark reached the history');
SELECT lives_ok($$SELECT pgportfolio.update_market_price('HIS', 34, NULL, repeat('s', 64))$$,
    'a 64-character source is accepted');

-- ---------------------------------------------------------------- update_market_prices: as_of and source per element
SELECT is(
    pgportfolio.update_market_prices($$[
        {"symbol": "BLK", "price": "3", "as_of": "2026-02-03T16:00:00Z", "source": "eod"},
        {"symbol": "BLK", "price": "1", "as_of": "2026-02-01T16:00:00Z", "source": "eod"},
        {"symbol": "BLK", "price": "2", "as_of": "2026-02-02T16:00:00Z"},
        {"symbol": "BLL", "price": "7"}
    ]$$),
    2,
    'a bulk call with marks out of order sets one current mark per symbol'
);
SELECT is(
    (SELECT array_agg((symbol, price, source)::text ORDER BY symbol) FROM pgportfolio.market_prices
     WHERE symbol IN ('BLK', 'BLL')),
    ARRAY['(BLK,3,eod)', '(BLL,7,)'],
    'per symbol the latest as_of is current, not the last given'
);
SELECT is(
    (SELECT array_agg(price ORDER BY mark_id) FROM pgportfolio.market_price_history WHERE symbol = 'BLK'),
    ARRAY[3::numeric, 1, 2],
    'every element went to the history, in the order given'
);
SELECT is(
    pgportfolio.update_market_prices('[{"symbol": "BLK", "price": "9", "as_of": "2026-01-15T16:00:00Z"}]'),
    0,
    'a bulk call of only late marks sets no current mark (returns 0)'
);
SELECT is((SELECT (price, version) FROM pgportfolio.market_prices WHERE symbol = 'BLK'), ROW(3::numeric, 1::bigint),
    'the late bulk mark left the current BLK mark as it was');
SELECT is(
    pgportfolio.update_market_prices($$[
        {"symbol": "BLK", "price": "4", "as_of": "2026-02-03T16:00:00Z"},
        {"symbol": "BLK", "price": "5", "as_of": "2026-02-03T16:00:00Z"}
    ]$$),
    1,
    'two marks with the current as_of in one call'
);
SELECT is((SELECT (price, version) FROM pgportfolio.market_prices WHERE symbol = 'BLK'), ROW(5::numeric, 2::bigint),
    'among equal as_of in one call, the last given is current');
SELECT set_config('test.his_marks', (SELECT count(*) FROM pgportfolio.market_price_history)::text, true);
SELECT throws_ok(
    $$SELECT pgportfolio.update_market_prices('[{"symbol": "BLK", "price": "1"}, {"symbol": "BLK", "price": "1", "as_of": "yesterday-ish"}]')$$,
    '22023', NULL, 'a malformed as_of in one element is 22023 for the call'
);
SELECT throws_ok(
    $$SELECT pgportfolio.update_market_prices(jsonb_build_array(
        jsonb_build_object('symbol', 'BLK', 'price', 1),
        jsonb_build_object('symbol', 'BLK', 'price', 1, 'as_of', now() + INTERVAL '1 hour')))$$,
    '22023', 'as_of is in the future', 'a future as_of in one element is 22023 for the call'
);
SELECT throws_ok(
    $$SELECT pgportfolio.update_market_prices('[{"symbol": "BLK", "price": "1", "as_of": "infinity"}]')$$,
    '22023', 'as_of must be a finite time', 'an infinite as_of in an element is 22023'
);
SELECT throws_ok(
    $$SELECT pgportfolio.update_market_prices('[{"symbol": "BLK", "price": "1", "source": "a\u200bb"}]')$$,
    '22023', 'invalid source', 'a source with a zero-width space in an element is 22023'
);
SELECT is((SELECT count(*) FROM pgportfolio.market_price_history)::text, current_setting('test.his_marks'),
    'the refused bulk calls wrote nothing to the history');
SELECT is((SELECT (price, version) FROM pgportfolio.market_prices WHERE symbol = 'BLK'), ROW(5::numeric, 2::bigint),
    'nor to the current marks');

-- ---------------------------------------------------------------- price_at
SELECT is(pgportfolio.price_at('HIS', '2026-01-01 00:00+00'), NULL, 'price_at before the first mark is NULL');
SELECT is(pgportfolio.price_at('HIS', '2026-01-02 16:00+00'), 10::numeric, 'price_at exactly at a mark''s as_of is that mark');
SELECT is(pgportfolio.price_at('HIS', '2026-01-04 09:00+00'), 10::numeric, 'price_at between marks is the earlier mark');
SELECT is(pgportfolio.price_at('HIS', '2026-01-05 16:00+00'), 20::numeric,
    'price_at sees the mark that arrived before the late older one');
SELECT is(pgportfolio.price_at('HIS', '2026-01-06 17:00+00'), 31::numeric,
    'price_at among marks with one as_of is the later arrival');
SELECT is(pgportfolio.price_at('NEVER', now()), NULL, 'price_at of a symbol never marked is NULL');
SELECT is(
    (SELECT array_agg(symbol ORDER BY symbol) FROM pgportfolio.market_prices AS m
     WHERE pgportfolio.price_at(m.symbol, 'infinity') IS DISTINCT FROM m.price),
    NULL,
    'for every symbol, the current mark is price_at the end of time'
);
SELECT is(
    (SELECT array_agg(symbol ORDER BY symbol) FROM pgportfolio.market_prices AS m
     WHERE pgportfolio.price_at(m.symbol, m.as_of) IS DISTINCT FROM m.price),
    NULL,
    'for every symbol, the current mark is price_at its own as_of'
);
SELECT throws_ok($$SELECT pgportfolio.price_at('his', now())$$, '22023', NULL, 'price_at of an invalid symbol is 22023');
SELECT throws_ok($$SELECT pgportfolio.price_at('HIS', NULL)$$, '22023', 'p_at must not be null', 'price_at at NULL is 22023');

-- The look-up is one backward step in the history's key: no sort, no scan of the table.
DO $$
BEGIN
    PERFORM pgportfolio.update_market_price('IDX' || (i % 50), 1 + i, '2025-01-01 00:00+00'::timestamptz + i * INTERVAL '1 minute')
    FROM generate_series(1, 5000) AS i;
END
$$;
ANALYZE pgportfolio.market_price_history;
SELECT is(
    (SELECT count(*) FROM pgportfolio.market_price_history WHERE symbol LIKE 'IDX%'),
    5000::bigint,
    '5,000 marks over 50 symbols'
);
CREATE FUNCTION pg_temp.price_at_plan() RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    v_plan text := '';
    v_line text;
BEGIN
    FOR v_line IN EXPLAIN (COSTS OFF)
        SELECT h.price FROM pgportfolio.market_price_history AS h
        WHERE h.symbol = 'IDX7' AND h.as_of <= '2025-01-02 00:00+00'
        ORDER BY h.as_of DESC, h.mark_id DESC LIMIT 1
    LOOP
        v_plan := v_plan || v_line || E'\n';
    END LOOP;
    RETURN v_plan;
END;
$$;
SELECT matches(pg_temp.price_at_plan(), 'Index (Only )?Scan Backward using market_price_history_pkey',
    'price_at''s query walks the history''s key backward');
SELECT doesnt_match(pg_temp.price_at_plan(), '(Sort|Seq Scan)', 'price_at''s query neither sorts nor scans the table');
SELECT is(pgportfolio.price_at('IDX7', '2025-01-02 00:00+00'), 1 + 1407::numeric,
    'price_at finds the right mark among thousands (minute 1407 is the last IDX7 mark of 1 January)');

-- ---------------------------------------------------------------- prune_price_history
-- PRN: marks on days 1, 2, 3 (two), 5 of March; pruning before 4 March keeps the later of
-- day 3's marks (current at the boundary) and day 5's, so every answer from day 3 on is kept.
DO $$
BEGIN
    PERFORM pgportfolio.update_market_price('PRN', 1, '2026-03-01 16:00+00');
    PERFORM pgportfolio.update_market_price('PRN', 2, '2026-03-02 16:00+00');
    PERFORM pgportfolio.update_market_price('PRN', 3, '2026-03-03 16:00+00');
    PERFORM pgportfolio.update_market_price('PRN', 33, '2026-03-03 16:00+00');
    PERFORM pgportfolio.update_market_price('PRN', 5, '2026-03-05 16:00+00');
    PERFORM pgportfolio.update_market_price('PRO', 7, '2026-03-02 16:00+00');  -- alone: kept
END
$$;
CREATE TEMP TABLE probe_times AS
SELECT t FROM generate_series('2026-02-28 00:00+00'::timestamptz, '2026-03-06 00:00+00', INTERVAL '4 hours') AS t;
CREATE TEMP TABLE answers_before AS
SELECT s.symbol, p.t, pgportfolio.price_at(s.symbol, p.t) AS price
FROM probe_times AS p CROSS JOIN (VALUES ('PRN'), ('PRO')) AS s (symbol);
CREATE TEMP TABLE history_before AS SELECT symbol, count(*) AS marks FROM pgportfolio.market_price_history GROUP BY symbol;
SELECT set_config('test.pruned', pgportfolio.prune_price_history('2026-03-04 00:00+00')::text, true);
SELECT is(
    current_setting('test.pruned')::bigint,
    (SELECT sum(marks)::bigint FROM history_before) - (SELECT count(*) FROM pgportfolio.market_price_history),
    'prune_price_history returns the number of marks it deleted'
);
SELECT is(
    (SELECT marks FROM history_before WHERE symbol = 'PRN') - (SELECT count(*) FROM pgportfolio.market_price_history WHERE symbol = 'PRN'),
    3::bigint,
    'pruning before 4 March deleted the three PRN marks no time from then on needs'
);
SELECT is(
    (SELECT count(*) FROM pgportfolio.market_price_history WHERE symbol LIKE 'IDX%'),
    50::bigint,
    'of the 5,000 marks of 2025, one per symbol is kept (each symbol''s last)'
);
SELECT is(
    (SELECT array_agg(price ORDER BY mark_id) FROM pgportfolio.market_price_history WHERE symbol = 'PRN'),
    ARRAY[33::numeric, 5],
    'kept: the mark current at the boundary and the later one'
);
SELECT is(
    (SELECT array_agg(format('%s %s', a.symbol, a.t) ORDER BY a.symbol, a.t) FROM answers_before AS a
     WHERE a.t >= '2026-03-03 16:00+00' AND pgportfolio.price_at(a.symbol, a.t) IS DISTINCT FROM a.price),
    NULL,
    'price_at gives the same answer as before for every time from the oldest kept mark on'
);
SELECT is(
    (SELECT array_agg(format('%s %s', a.symbol, a.t) ORDER BY a.symbol, a.t) FROM answers_before AS a
     WHERE a.t < '2026-03-03 16:00+00' AND pgportfolio.price_at(a.symbol, a.t) IS NOT NULL
       AND pgportfolio.price_at(a.symbol, a.t) IS DISTINCT FROM a.price),
    NULL,
    'before it, price_at answers NULL (unknown) or what it answered before, never a different price'
);
SELECT is(pgportfolio.price_at('PRN', '2026-03-02 18:00+00'), NULL, 'a pruned time is NULL');
SELECT is(pgportfolio.price_at('PRO', '2026-03-03 18:00+00'), 7::numeric, 'a lone old mark is kept');
SELECT is((SELECT price FROM pgportfolio.market_prices WHERE symbol = 'PRN'), 5::numeric, 'the current mark is untouched');
SELECT is(pgportfolio.prune_price_history('2026-03-04 00:00+00'), 0::bigint, 'pruning again deletes nothing');
SELECT is(
    (SELECT array_agg(symbol ORDER BY symbol) FROM pgportfolio.market_prices AS m
     WHERE NOT EXISTS (SELECT FROM pgportfolio.market_price_history AS h WHERE h.mark_id = m.mark_id)),
    NULL,
    'every current mark is still in the history'
);
SELECT lives_ok($$SELECT pgportfolio.prune_price_history(now())$$, 'pruning up to now is accepted');
SELECT is(
    (SELECT array_agg(symbol ORDER BY symbol) FROM pgportfolio.market_prices AS m
     WHERE pgportfolio.price_at(m.symbol, 'infinity') IS DISTINCT FROM m.price
        OR NOT EXISTS (SELECT FROM pgportfolio.market_price_history AS h WHERE h.mark_id = m.mark_id)),
    NULL,
    'after pruning up to now, every current mark is kept and still price_at the end of time'
);
SELECT throws_ok($$SELECT pgportfolio.prune_price_history(NULL)$$, '22023', NULL, 'pruning before NULL is 22023');
SELECT throws_ok($$SELECT pgportfolio.prune_price_history('infinity')$$, '22023', NULL, 'pruning before infinity is 22023');
SELECT throws_ok($$SELECT pgportfolio.prune_price_history(now() + INTERVAL '1 day')$$, '22023',
    'p_before is in the future', 'pruning before a future time is 22023');

-- ---------------------------------------------------------------- only traders may tick
CREATE ROLE pgtap_150_analyst IN ROLE pgportfolio_analyst;
SET LOCAL ROLE pgtap_150_analyst;
SELECT throws_ok($$SELECT pgportfolio.update_market_price('MKA', 1)$$, '42501', NULL,
    'an analyst may not update a market price (42501)');
SELECT is(pgportfolio.price_at('HIS', 'infinity'), 33::numeric, 'an analyst may call price_at (the skewed mark is still the latest)');
SELECT throws_ok($$SELECT * FROM pgportfolio.market_price_history$$, '42501', NULL,
    'an analyst may not read the history table directly');
SELECT throws_ok($$SELECT pgportfolio.prune_price_history('2026-01-01')$$, '42501', NULL,
    'an analyst may not prune the history');
RESET ROLE;
CREATE ROLE pgtap_150_trader IN ROLE pgportfolio_trader;
SET LOCAL ROLE pgtap_150_trader;
SELECT lives_ok($$SELECT pgportfolio.update_market_price('TRD', 1, '2026-01-01 12:00+00', 'desk')$$,
    'a trader may mark with an as_of and a source');
SELECT is(pgportfolio.price_at('TRD', '2026-01-02'), 1::numeric, 'a trader may call price_at');
SELECT throws_ok($$SELECT pgportfolio.prune_price_history('2026-01-01')$$, '42501', NULL,
    'a trader may not prune the history');
SELECT throws_ok($$DELETE FROM pgportfolio.market_price_history$$, '42501', NULL,
    'a trader may not delete history rows');
RESET ROLE;
SELECT is(pg_temp.ledger_state(), current_setting('test.ledger'),
    'after every tick, late mark, bulk call and prune: portfolios, positions and events are unchanged');
SELECT is(
    (SELECT count(*) FROM pgportfolio.verify_portfolio(pg_temp.pid('a')) WHERE NOT ok)
    + (SELECT count(*) FROM pgportfolio.verify_portfolio(pg_temp.pid('b')) WHERE NOT ok),
    0::bigint,
    'verify_portfolio is clean on both portfolios after the ticks'
);

SELECT * FROM finish();
ROLLBACK;
