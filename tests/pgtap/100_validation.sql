-- Input checks (sql/100_validation.sql): every refusal is SQLSTATE 22023, values are
-- never rounded, symbols are never folded, and the checks run before any lookup or lock.
BEGIN;
SELECT plan(93);

DO $$
BEGIN
    PERFORM set_config('test.n_events', (SELECT count(*) FROM pgportfolio.events)::text, true);
END
$$;

-- ---------------------------------------------------------------- _check_number
SELECT throws_ok($$SELECT pgportfolio._check_number('p_amount', NULL, 'positive')$$,
    '22023', 'p_amount must not be null', 'number: NULL is 22023 and names the argument');
SELECT throws_ok($$SELECT pgportfolio._check_number('p_amount', 'NaN', 'positive')$$,
    '22023', 'p_amount must be a finite number', 'number: NaN is 22023 (not finite)');
SELECT throws_ok($$SELECT pgportfolio._check_number('p_amount', 'Infinity', 'positive')$$,
    '22023', 'p_amount must be a finite number', 'number: Infinity is 22023 (not finite)');
SELECT throws_ok($$SELECT pgportfolio._check_number('p_amount', '-Infinity', 'non_negative')$$,
    '22023', 'p_amount must be a finite number', 'number: -Infinity is 22023 (not finite)');
SELECT throws_ok($$SELECT pgportfolio._check_number('p_price', 'NaN', 'nonzero')$$,
    '22023', 'p_price must be a finite number', 'number: NaN is refused whatever the sign rule');
SELECT throws_ok($$SELECT pgportfolio._check_number('p_amount', 1e15, 'positive')$$,
    '22023', 'p_amount is out of range', 'number: 1e15 is out of range');
SELECT throws_ok($$SELECT pgportfolio._check_number('p_quantity', -1e15, 'nonzero')$$,
    '22023', 'p_quantity is out of range', 'number: -1e15 is out of range');
SELECT throws_ok($$SELECT pgportfolio._check_number('p_amount', 1e300, 'positive')$$,
    '22023', 'p_amount is out of range', 'number: 1e300 is out of range');
SELECT throws_ok($$SELECT pgportfolio._check_number('p_amount', 1.123456789, 'positive')$$,
    '22023', 'p_amount has more than 8 decimal places', 'number: 9 decimal places (1.123456789) is refused, not rounded');
SELECT throws_ok($$SELECT pgportfolio._check_number('p_amount', 0.000000001, 'non_negative')$$,
    '22023', 'p_amount has more than 8 decimal places', 'number: 0.000000001 is refused, not rounded to 0');
SELECT throws_ok($$SELECT pgportfolio._check_number('p_amount', 0, 'positive')$$,
    '22023', 'p_amount must be positive', 'number: 0 is not positive');
SELECT throws_ok($$SELECT pgportfolio._check_number('p_amount', -5, 'positive')$$,
    '22023', 'p_amount must be positive', 'number: -5 is not positive');
SELECT throws_ok($$SELECT pgportfolio._check_number('p_fee', -0.00000001, 'non_negative')$$,
    '22023', 'p_fee must not be negative', 'number: -0.00000001 is negative');
SELECT throws_ok($$SELECT pgportfolio._check_number('p_quantity', 0, 'nonzero')$$,
    '22023', 'p_quantity must not be zero', 'number: 0 quantity is refused');
SELECT lives_ok($$SELECT pgportfolio._check_number('p_amount', 1.12345678, 'positive')$$,
    'number: 8 decimal places are accepted');
SELECT lives_ok($$SELECT pgportfolio._check_number('p_amount', 1.1234567800, 'positive')$$,
    'number: trailing zeros beyond 8 places do not count as decimal places');
SELECT lives_ok($$SELECT pgportfolio._check_number('p_amount', 999999999999999.99999999, 'positive')$$,
    'number: the largest value below 10^15 is accepted');
SELECT lives_ok($$SELECT pgportfolio._check_number('p_amount', 0.00000001, 'positive')$$,
    'number: the smallest positive value 0.00000001 is accepted');
SELECT lives_ok($$SELECT pgportfolio._check_number('p_fee', 0, 'non_negative')$$,
    'number: 0 is non-negative');
SELECT lives_ok($$SELECT pgportfolio._check_number('p_quantity', -999999999999999.99999999, 'nonzero')$$,
    'number: a negative quantity is accepted by the nonzero rule');

-- ---------------------------------------------------------------- _check_symbol
SELECT throws_ok($$SELECT pgportfolio._check_symbol(NULL)$$,
    '22023', 'symbol must not be null', 'symbol: NULL is 22023');
SELECT throws_ok($$SELECT pgportfolio._check_symbol('')$$,
    '22023', 'invalid symbol', 'symbol: empty is refused');
SELECT throws_ok($$SELECT pgportfolio._check_symbol('aapl')$$,
    '22023', 'invalid symbol', 'symbol: lower case is refused, not folded');
SELECT throws_ok($$SELECT pgportfolio._check_symbol('Aapl')$$,
    '22023', 'invalid symbol', 'symbol: mixed case is refused');
SELECT throws_ok($$SELECT pgportfolio._check_symbol(repeat('A', 33))$$,
    '22023', 'invalid symbol', 'symbol: 33 characters is too long');
SELECT throws_ok($$SELECT pgportfolio._check_symbol('A''B')$$,
    '22023', 'invalid symbol', 'symbol: a single quote is refused');
SELECT throws_ok($$SELECT pgportfolio._check_symbol('A"B')$$,
    '22023', 'invalid symbol', 'symbol: a double quote is refused');
SELECT throws_ok($$SELECT pgportfolio._check_symbol('BRK B')$$,
    '22023', 'invalid symbol', 'symbol: an inner space is refused');
SELECT throws_ok($$SELECT pgportfolio._check_symbol(' AAPL')$$,
    '22023', 'invalid symbol', 'symbol: a leading space is refused');
SELECT throws_ok($$SELECT pgportfolio._check_symbol(E'AAPL\n')$$,
    '22023', 'invalid symbol', 'symbol: a trailing newline is refused');
SELECT throws_ok($$SELECT pgportfolio._check_symbol(E'AA\tPL')$$,
    '22023', 'invalid symbol', 'symbol: a tab is refused');
SELECT throws_ok($$SELECT pgportfolio._check_symbol('ÄPFEL')$$,
    '22023', 'invalid symbol', 'symbol: non-ASCII letters are refused');
SELECT throws_ok($$SELECT pgportfolio._check_symbol('A;B')$$,
    '22023', 'invalid symbol', 'symbol: a semicolon is refused');
SELECT lives_ok($$SELECT pgportfolio._check_symbol('AAPL')$$, 'symbol: AAPL is accepted');
SELECT lives_ok($$SELECT pgportfolio._check_symbol(repeat('Z', 32))$$, 'symbol: 32 characters are accepted');
SELECT lives_ok($$SELECT pgportfolio._check_symbol('A')$$, 'symbol: 1 character is accepted');
SELECT lives_ok($$SELECT pgportfolio._check_symbol('BRK.B')$$, 'symbol: a dot is accepted');
SELECT lives_ok($$SELECT pgportfolio._check_symbol('BTC/USD')$$, 'symbol: a slash is accepted');
SELECT lives_ok($$SELECT pgportfolio._check_symbol('ES:H5_X-1')$$, 'symbol: colon, underscore, hyphen and digits are accepted');

-- ---------------------------------------------------------------- _check_request
SELECT throws_ok($$SELECT pgportfolio._check_request('', NULL)$$,
    '22023', 'invalid request id', 'request id: empty is refused');
SELECT throws_ok($$SELECT pgportfolio._check_request(repeat('r', 201), NULL)$$,
    '22023', 'invalid request id', 'request id: 201 characters is too long');
SELECT throws_ok($$SELECT pgportfolio._check_request(E'req\n1', NULL)$$,
    '22023', 'invalid request id', 'request id: a newline is refused');
SELECT throws_ok($$SELECT pgportfolio._check_request(E'req\x01', NULL)$$,
    '22023', 'invalid request id', 'request id: a control character is refused');
-- Unicode format characters (category Cf) are invisible or reorder the text after them.
SELECT throws_ok($$SELECT pgportfolio._check_request(E'order-\u202E1-redro', NULL)$$,
    '22023', 'invalid request id', 'request id: a right-to-left override (U+202E) is refused');
SELECT throws_ok($$SELECT pgportfolio._check_request(E'order\u200B1', NULL)$$,
    '22023', 'invalid request id', 'request id: a zero-width space (U+200B) is refused');
SELECT throws_ok($$SELECT pgportfolio._check_request(E'\uFEFForder', NULL)$$,
    '22023', 'invalid request id', 'request id: a byte order mark (U+FEFF) is refused');
SELECT throws_ok($$SELECT pgportfolio._check_request(E'order\U000E0041', NULL)$$,
    '22023', 'invalid request id', 'request id: a tag character (U+E0041, outside the BMP) is refused');
SELECT throws_ok($$SELECT pgportfolio._check_request(E'order\u00AD1', NULL)$$,
    '22023', 'invalid request id', 'request id: a soft hyphen (U+00AD) is refused');
SELECT lives_ok($$SELECT pgportfolio._check_request(E'ordre \u00E9t\u00E9 \u05D0\u05D1 \u4E2D', NULL)$$,
    'request: accented, Hebrew and CJK letters are still accepted');
SELECT throws_ok($$SELECT pgportfolio._check_request(NULL, 0)$$,
    '22023', 'expected_version must be at least 1', 'expected version: 0 is refused');
SELECT throws_ok($$SELECT pgportfolio._check_request('ok', -1)$$,
    '22023', 'expected_version must be at least 1', 'expected version: negative is refused');
SELECT lives_ok($$SELECT pgportfolio._check_request(NULL, NULL)$$, 'request: no id and no version is fine');
SELECT lives_ok($$SELECT pgportfolio._check_request(repeat('r', 200), 1)$$, 'request: a 200-character id and version 1 are fine');
SELECT lives_ok($$SELECT pgportfolio._check_request('order 42 / ünïcödé ''quoted''', 9223372036854775807)$$,
    'request: any printable id is opaque and accepted');

-- ---------------------------------------------------------------- _check_portfolio_attributes
SELECT throws_ok($$SELECT pgportfolio._check_portfolio_attributes(NULL, 'USD')$$,
    '22023', 'invalid portfolio name', 'name: NULL is refused');
SELECT throws_ok($$SELECT pgportfolio._check_portfolio_attributes('', 'USD')$$,
    '22023', 'invalid portfolio name', 'name: empty is refused');
SELECT throws_ok($$SELECT pgportfolio._check_portfolio_attributes(' book', 'USD')$$,
    '22023', 'invalid portfolio name', 'name: a leading space is refused');
SELECT throws_ok($$SELECT pgportfolio._check_portfolio_attributes('book ', 'USD')$$,
    '22023', 'invalid portfolio name', 'name: a trailing space is refused');
SELECT throws_ok($$SELECT pgportfolio._check_portfolio_attributes('   ', 'USD')$$,
    '22023', 'invalid portfolio name', 'name: only spaces is refused');
SELECT throws_ok($$SELECT pgportfolio._check_portfolio_attributes(E'my\tbook', 'USD')$$,
    '22023', 'invalid portfolio name', 'name: a tab (control character) is refused');
SELECT throws_ok($$SELECT pgportfolio._check_portfolio_attributes(E'my\nbook', 'USD')$$,
    '22023', 'invalid portfolio name', 'name: a newline (control character) is refused');
SELECT throws_ok($$SELECT pgportfolio._check_portfolio_attributes('my' || chr(27) || 'book', 'USD')$$,
    '22023', 'invalid portfolio name', 'name: an escape (control character) is refused');
SELECT throws_ok($$SELECT pgportfolio._check_portfolio_attributes('my' || chr(127) || 'book', 'USD')$$,
    '22023', 'invalid portfolio name', 'name: DEL (control character) is refused');
SELECT throws_ok($$SELECT pgportfolio._check_portfolio_attributes(E'Growth \u202Edlo', 'USD')$$,
    '22023', 'invalid portfolio name', 'name: a right-to-left override (U+202E) is refused');
SELECT throws_ok($$SELECT pgportfolio._check_portfolio_attributes(E'Gro\u200Dwth', 'USD')$$,
    '22023', 'invalid portfolio name', 'name: a zero-width joiner (U+200D) is refused');
SELECT throws_ok($$SELECT pgportfolio._check_portfolio_attributes(E'Growth\u2066', 'USD')$$,
    '22023', 'invalid portfolio name', 'name: a left-to-right isolate (U+2066) is refused');
SELECT lives_ok($$SELECT pgportfolio._check_portfolio_attributes(E'Croissance \u00E9t\u00E9', 'USD')$$,
    'name: accented letters are accepted');
SELECT throws_ok($$SELECT pgportfolio._check_symbol(E'AAPL\u200B')$$,
    '22023', 'invalid symbol', 'symbol: a zero-width space is refused (symbols are ASCII)');
SELECT throws_ok($$SELECT pgportfolio._check_portfolio_attributes(repeat('n', 201), 'USD')$$,
    '22023', 'invalid portfolio name', 'name: 201 characters is too long');
SELECT throws_ok($$SELECT pgportfolio._check_portfolio_attributes('book', NULL)$$,
    '22023', 'invalid currency', 'currency: NULL is refused');
SELECT throws_ok($$SELECT pgportfolio._check_portfolio_attributes('book', 'usd')$$,
    '22023', 'invalid currency', 'currency: lower case is refused');
SELECT throws_ok($$SELECT pgportfolio._check_portfolio_attributes('book', 'US')$$,
    '22023', 'invalid currency', 'currency: two letters is refused');
SELECT throws_ok($$SELECT pgportfolio._check_portfolio_attributes('book', 'USDT')$$,
    '22023', 'invalid currency', 'currency: four letters is refused');
SELECT throws_ok($$SELECT pgportfolio._check_portfolio_attributes('book', 'U$D')$$,
    '22023', 'invalid currency', 'currency: a symbol character is refused');
SELECT throws_ok($$SELECT pgportfolio._check_portfolio_attributes('book', '')$$,
    '22023', 'invalid currency', 'currency: empty is refused');
SELECT lives_ok($$SELECT pgportfolio._check_portfolio_attributes(repeat('n', 200), 'EUR')$$,
    'name: 200 characters and EUR are accepted');
SELECT lives_ok($$SELECT pgportfolio._check_portfolio_attributes('Überbuch – growth €', 'JPY')$$,
    'name: inner spaces and non-ASCII printable characters are accepted');

-- ---------------------------------------------------------------- the checks run first, before any lookup
-- An unknown portfolio with a bad argument reports the bad argument (22023), not PF004.
SELECT throws_ok($$SELECT pgportfolio.deposit_cash(-1, 'NaN')$$,
    '22023', NULL, 'deposit_cash validates the amount before looking up the portfolio');
SELECT throws_ok($$SELECT pgportfolio.withdraw_cash(-1, 1, '')$$,
    '22023', NULL, 'withdraw_cash validates the request id before looking up the portfolio');
SELECT throws_ok($$SELECT pgportfolio.charge_fee(-1, 1, NULL, 0)$$,
    '22023', NULL, 'charge_fee validates the expected version before looking up the portfolio');
SELECT throws_ok($$SELECT pgportfolio.apply_fill(-1, 'aapl', 1, 1)$$,
    '22023', NULL, 'apply_fill validates the symbol before looking up the portfolio');
SELECT throws_ok($$SELECT pgportfolio.open_position(-1, 'AAPL', 1, 1.123456789)$$,
    '22023', NULL, 'open_position validates the price before looking up the portfolio');
SELECT throws_ok($$SELECT pgportfolio.add_to_position(-1, 'AAPL', 0, 1)$$,
    '22023', NULL, 'add_to_position validates the quantity before looking up the portfolio');
SELECT throws_ok($$SELECT pgportfolio.reduce_position(-1, 'AAPL', -1, 1)$$,
    '22023', NULL, 'reduce_position validates the quantity (must be positive) before looking up the portfolio');
SELECT throws_ok($$SELECT pgportfolio.close_position(-1, 'AAPL', 1, -1)$$,
    '22023', NULL, 'close_position validates the fee before looking up the portfolio');
SELECT throws_ok($$SELECT pgportfolio.deposit_cash(NULL, 1)$$,
    '22023', 'portfolio_id must not be null', 'a NULL portfolio id is 22023');
SELECT throws_ok($$SELECT pgportfolio.apply_fill(NULL, 'AAPL', 1, 1)$$,
    '22023', 'portfolio_id must not be null', 'a NULL portfolio id is 22023 for fills too');
SELECT throws_ok($$SELECT pgportfolio.deposit_cash(-1, 1)$$,
    'PF004', NULL, 'with valid arguments an unknown portfolio is PF004');

-- The check messages carry the offending value in DETAIL and a HINT; spot-check one.
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
    pg_temp.error_parts($$SELECT pgportfolio._check_number('p_price', 1.123456789, 'positive')$$),
    '22023 | p_price has more than 8 decimal places | Got 1.123456789. | Values are never rounded; round before calling.',
    'too many decimal places: DETAIL shows the value, HINT says values are never rounded'
);
SELECT is(
    pg_temp.error_parts($$SELECT pgportfolio._check_symbol(repeat('X', 33))$$),
    '22023 | invalid symbol | Got ''' || repeat('X', 33) || ''' (33 characters). | A symbol is 1 to 32 characters of A-Z, 0-9 and . _ - / :',
    'invalid symbol: DETAIL quotes the symbol and its length'
);

-- ---------------------------------------------------------------- the checks are pure
SELECT is(
    (SELECT array_agg(proname::text ORDER BY proname) FROM pg_proc
     WHERE pronamespace = 'pgportfolio'::regnamespace AND proname LIKE '\_check\_%' AND provolatile = 'i'),
    ARRAY['_check_number', '_check_portfolio_attributes', '_check_request', '_check_symbol'],
    'the four check functions are IMMUTABLE'
);
SELECT is(
    (SELECT count(*) FROM pg_proc
     WHERE pronamespace = 'pgportfolio'::regnamespace AND proname LIKE '\_check\_%' AND prosecdef),
    0::bigint,
    'no check function is SECURITY DEFINER'
);
SELECT is(
    (SELECT count(*) FROM pgportfolio.events),
    current_setting('test.n_events')::bigint,
    'none of the refused calls wrote an event'
);

SELECT * FROM finish();
ROLLBACK;
