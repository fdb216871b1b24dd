-- Market prices (sql/150_market_prices.sql): a tick upserts one mark and never touches
-- a portfolio, a position or the event log.
BEGIN;
SELECT plan(34);

CREATE FUNCTION pg_temp.pid(p_name text) RETURNS bigint LANGUAGE sql STABLE
AS $$ SELECT current_setting('test.pid_' || p_name)::bigint $$;

-- Everything a tick must leave alone.
CREATE FUNCTION pg_temp.ledger_state() RETURNS text LANGUAGE sql STABLE AS $$
    SELECT concat_ws(' / ',
        (SELECT string_agg(format('%s v%s cash %s pnl %s', portfolio_id, version, cash_balance, realized_pnl), ', '
                           ORDER BY portfolio_id)
         FROM pgportfolio.portfolios WHERE portfolio_id IN (pg_temp.pid('a'), pg_temp.pid('b'))),
        (SELECT string_agg(format('%s %s %s %s v%s pnl %s', portfolio_id, symbol, quantity, cost_basis, version,
                                  realized_pnl), ', ' ORDER BY portfolio_id, symbol)
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
    (SELECT array_agg(version ORDER BY portfolio_id) FROM pgportfolio.portfolios
     WHERE portfolio_id IN (pg_temp.pid('a'), pg_temp.pid('b'))),
    ARRAY[3::bigint, 2::bigint],
    'portfolio versions are still 3 and 2'
);
SELECT is(
    (SELECT array_agg(version ORDER BY portfolio_id) FROM pgportfolio.positions WHERE symbol = 'MKA'
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

-- ---------------------------------------------------------------- only traders may tick
CREATE ROLE pgtap_150_analyst IN ROLE pgportfolio_analyst;
SET LOCAL ROLE pgtap_150_analyst;
SELECT throws_ok($$SELECT pgportfolio.update_market_price('MKA', 1)$$, '42501', NULL,
    'an analyst may not update a market price (42501)');
RESET ROLE;
SELECT is(
    (SELECT count(*) FROM pgportfolio.verify_portfolio(pg_temp.pid('a')) WHERE NOT ok)
    + (SELECT count(*) FROM pgportfolio.verify_portfolio(pg_temp.pid('b')) WHERE NOT ok),
    0::bigint,
    'verify_portfolio is clean on both portfolios after the ticks'
);

SELECT * FROM finish();
ROLLBACK;
