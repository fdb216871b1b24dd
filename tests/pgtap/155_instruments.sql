-- Instruments (sql/035_instruments.sql, sql/155_instruments.sql): upsert_instrument writes
-- the multiplier and description of a symbol, is the owner role's alone, and refuses
-- (PF007) to change the multiplier of a symbol that any portfolio holds. instrument_list
-- (sql/200_views.sql) is how traders and analysts read them.
BEGIN;
SELECT plan(55);

CREATE FUNCTION pg_temp.instrument(p_symbol text) RETURNS text LANGUAGE sql STABLE AS $$
    SELECT format('%s x%s %s', symbol, multiplier, coalesce(description, '-'))
    FROM pgportfolio.instruments WHERE symbol = p_symbol
$$;

DO $$
BEGIN
    PERFORM set_config('test.pid', pgportfolio.create_portfolio('instruments', 1000000)::text, true);
    PERFORM pgportfolio.apply_fill(current_setting('test.pid')::bigint, 'HELD', 2, 100);
    PERFORM pgportfolio.apply_fill(current_setting('test.pid')::bigint, 'HELDROW', -3, 50);
END
$$;

-- ---------------------------------------------------------------- create and replace
SELECT lives_ok($$SELECT pgportfolio.upsert_instrument('ES:2027H', 50, 'E-mini S&P 500, March 2027')$$,
    'the owner creates an instrument with a multiplier and a description');
SELECT is(pg_temp.instrument('ES:2027H'), 'ES:2027H x50 E-mini S&P 500, March 2027', 'the instrument is stored');
SELECT lives_ok($$SELECT pgportfolio.upsert_instrument('PLAIN')$$, 'a symbol alone: multiplier 1, no description');
SELECT is(pg_temp.instrument('PLAIN'), 'PLAIN x1 -', 'the defaults are multiplier 1 and no description');
SELECT lives_ok($$SELECT pgportfolio.upsert_instrument('ES:2027H', 50.000, 'E-mini, March 2027')$$,
    'the same multiplier, written with trailing zeros, and a new description');
SELECT is(pg_temp.instrument('ES:2027H'), 'ES:2027H x50 E-mini, March 2027',
    'the description is replaced; the multiplier is stored in its shortest form');
SELECT lives_ok($$SELECT pgportfolio.upsert_instrument('ES:2027H', 0.5)$$, 'an unheld symbol''s multiplier may change');
SELECT is(pg_temp.instrument('ES:2027H'), 'ES:2027H x0.5 -',
    'every field is replaced: a NULL description clears it');
SELECT lives_ok($$SELECT pgportfolio.upsert_instrument('TINY', 0.00000001)$$, 'the smallest multiplier is accepted');
SELECT lives_ok($$SELECT pgportfolio.upsert_instrument('HUGE', 999999999999999.99999999, repeat('d', 200))$$,
    'the largest multiplier below 10^15 and a 200-character description are accepted');
SELECT is((SELECT count(*) FROM pgportfolio.instruments), 4::bigint, 'one row per symbol written');

-- ---------------------------------------------------------------- a held symbol's multiplier cannot change (PF007)
SELECT throws_ok($$SELECT pgportfolio.upsert_instrument('HELD', 10, 'ten')$$, 'PF007',
    'symbol HELD is held: its multiplier cannot change',
    'giving a held symbol without an instrument row a multiplier other than 1 is PF007');
SELECT is(pg_temp.instrument('HELD'), NULL, 'the refused upsert left no row behind');
SELECT lives_ok($$SELECT pgportfolio.upsert_instrument('HELD', 1, 'held, described')$$,
    'a held symbol may get a row with multiplier 1 (the one in force)');
SELECT is(pg_temp.instrument('HELD'), 'HELD x1 held, described', 'the described row is stored');
SELECT throws_ok($$SELECT pgportfolio.upsert_instrument('HELD', 2)$$, 'PF007', NULL,
    'changing the multiplier of a held symbol with a row is PF007');
SELECT is(pg_temp.instrument('HELD'), 'HELD x1 held, described', 'the refused change left the row as it was');
SELECT lives_ok($$SELECT pgportfolio.upsert_instrument('HELD', 1.0, 'held, redescribed')$$,
    'the description of a held symbol may change');
SELECT throws_ok($$SELECT pgportfolio.upsert_instrument('HELDROW', 100)$$, 'PF007', NULL,
    'a short position counts as held too');
DO $$
BEGIN
    PERFORM pgportfolio.close_position(current_setting('test.pid')::bigint, 'HELDROW', 40);
END
$$;
SELECT lives_ok($$SELECT pgportfolio.upsert_instrument('HELDROW', 100)$$,
    'once every position in the symbol is closed, its multiplier may change');
SELECT is(pg_temp.instrument('HELDROW'), 'HELDROW x100 -', 'the new multiplier is stored');

-- ---------------------------------------------------------------- bad input (22023), nothing written
SELECT throws_ok($$SELECT pgportfolio.upsert_instrument('BAD', 0)$$, '22023', 'p_multiplier must be positive',
    'a zero multiplier is 22023');
SELECT throws_ok($$SELECT pgportfolio.upsert_instrument('BAD', -1)$$, '22023', 'p_multiplier must be positive',
    'a negative multiplier is 22023');
SELECT throws_ok($$SELECT pgportfolio.upsert_instrument('BAD', 'NaN')$$, '22023', 'p_multiplier must be a finite number',
    'a NaN multiplier is 22023');
SELECT throws_ok($$SELECT pgportfolio.upsert_instrument('BAD', 'Infinity')$$, '22023', NULL,
    'an infinite multiplier is 22023');
SELECT throws_ok($$SELECT pgportfolio.upsert_instrument('BAD', NULL)$$, '22023', 'p_multiplier must not be null',
    'a NULL multiplier is 22023');
SELECT throws_ok($$SELECT pgportfolio.upsert_instrument('BAD', 1e15)$$, '22023', NULL, 'a multiplier of 10^15 is 22023');
SELECT throws_ok($$SELECT pgportfolio.upsert_instrument('BAD', 0.000000001)$$, '22023', NULL,
    'a multiplier with 9 decimal places is 22023, not rounded');
SELECT throws_ok($$SELECT pgportfolio.upsert_instrument('bad', 1)$$, '22023', 'invalid symbol', 'a lower-case symbol is 22023');
SELECT throws_ok($$SELECT pgportfolio.upsert_instrument(NULL, 1)$$, '22023', NULL, 'a NULL symbol is 22023');
SELECT throws_ok($$SELECT pgportfolio.upsert_instrument('BAD', 1, '')$$, '22023', 'invalid description',
    'an empty description is 22023');
SELECT throws_ok($$SELECT pgportfolio.upsert_instrument('BAD', 1, repeat('d', 201))$$, '22023', 'invalid description',
    'a 201-character description is 22023');
SELECT throws_ok($$SELECT pgportfolio.upsert_instrument('BAD', 1, E'a\u202Eb')$$, '22023', 'invalid description',
    'a description with U+202E is 22023');
SELECT throws_ok($$SELECT pgportfolio.upsert_instrument('HELD', 0)$$, '22023', NULL,
    'bad input is 22023 before the held check');
SELECT is((SELECT count(*) FROM pgportfolio.instruments WHERE symbol IN ('BAD', 'bad')), 0::bigint,
    'no refused instrument was stored');

-- ---------------------------------------------------------------- multiplier_changes counts changes
-- Fills at REPEATABLE READ lock its one row to see a change their snapshot missed
-- (sql/035_instruments.sql): every real change must write it, and nothing else may.
CREATE FUNCTION pg_temp.changes() RETURNS bigint LANGUAGE sql STABLE AS $$
    SELECT changes FROM pgportfolio.multiplier_changes
$$;
DO $$ BEGIN PERFORM set_config('test.changes', pg_temp.changes()::text, true); END $$;
SELECT pgportfolio.upsert_instrument('COUNTED', 3);
SELECT is(pg_temp.changes(), current_setting('test.changes')::bigint + 1, 'a new multiplier counts as a change');
SELECT pgportfolio.upsert_instrument('COUNTED', 3.000, 'same multiplier, a description');
SELECT pgportfolio.upsert_instrument('NEWONE', 1);
SELECT is(pg_temp.changes(), current_setting('test.changes')::bigint + 1,
    'a description, or a new symbol at multiplier 1, is not a change');
SELECT throws_ok($$SELECT pgportfolio.upsert_instrument('HELD', 4)$$, 'PF007', NULL, 'a refused change');
SELECT is(pg_temp.changes(), current_setting('test.changes')::bigint + 1, 'a refused change leaves no count behind');
SELECT is((SELECT count(*) FROM pgportfolio.multiplier_changes), 1::bigint, 'multiplier_changes has its one row');
SELECT throws_ok($$INSERT INTO pgportfolio.multiplier_changes (singleton) VALUES (false)$$, '23514', NULL,
    'a second row is refused');

-- ---------------------------------------------------------------- who may read and write
CREATE ROLE pgtap_155_trader IN ROLE pgportfolio_trader;
CREATE ROLE pgtap_155_analyst IN ROLE pgportfolio_analyst;
CREATE ROLE pgtap_155_admin IN ROLE pgportfolio_owner;
SET LOCAL ROLE pgtap_155_analyst;
SELECT is((SELECT multiplier FROM pgportfolio.instrument_list WHERE symbol = 'HELDROW'), 100::numeric,
    'an analyst reads the instruments through instrument_list');
SELECT throws_ok($$SELECT * FROM pgportfolio.instruments$$, '42501', NULL,
    'an analyst may not read the table itself');
SELECT throws_ok($$SELECT pgportfolio.upsert_instrument('ANL', 2)$$, '42501', NULL,
    'an analyst may not upsert an instrument');
SELECT throws_ok($$UPDATE pgportfolio.instruments SET multiplier = 3$$, '42501', NULL,
    'an analyst may not update the table');
SELECT throws_ok($$SELECT * FROM pgportfolio.multiplier_changes$$, '42501', NULL,
    'an analyst may not read multiplier_changes');
RESET ROLE;
SET LOCAL ROLE pgtap_155_trader;
SELECT is((SELECT multiplier FROM pgportfolio.instrument_list WHERE symbol = 'ES:2027H'), 0.5,
    'a trader reads the instruments through instrument_list');
SELECT throws_ok($$SELECT pgportfolio.upsert_instrument('TRD', 2)$$, '42501', NULL,
    'a trader may not upsert an instrument');
SELECT throws_ok($$INSERT INTO pgportfolio.instruments (symbol, multiplier) VALUES ('TRD', 2)$$, '42501', NULL,
    'a trader may not insert into the table');
SELECT throws_ok($$SELECT * FROM pgportfolio.multiplier_changes FOR SHARE$$, '42501', NULL,
    'a trader may not read or lock multiplier_changes (only the SECURITY DEFINER fill does)');
SELECT throws_ok($$UPDATE pgportfolio.multiplier_changes SET changes = 0$$, '42501', NULL,
    'a trader may not write multiplier_changes');
RESET ROLE;
SET LOCAL ROLE pgtap_155_admin;
SELECT lives_ok($$SELECT pgportfolio.upsert_instrument('ADM', 25, 'by a member of the owner role')$$,
    'a member of pgportfolio_owner may upsert an instrument');
SELECT throws_ok($$SELECT pgportfolio.upsert_instrument('HELD', 3)$$, 'PF007', NULL,
    'and is refused a held symbol''s multiplier change like anyone');
RESET ROLE;
SELECT is(pg_temp.instrument('ADM'), 'ADM x25 by a member of the owner role', 'the member''s upsert is stored');
SELECT is(
    (SELECT count(*) FROM pgportfolio.verify_portfolio(current_setting('test.pid')::bigint) WHERE NOT ok),
    0::bigint,
    'verify_portfolio is clean on the holding portfolio'
);

SELECT * FROM finish();
ROLLBACK;
