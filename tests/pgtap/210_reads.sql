-- Reads for programs (sql/210_reads.sql): get_portfolio, portfolio_snapshot, events_since, find_request,
-- and events_after, which push updates follow.
BEGIN;
SELECT plan(45);

SELECT set_config('test.pid', pgportfolio.create_portfolio('reads', 1000)::text, true);
SELECT pgportfolio.apply_fill(current_setting('test.pid')::bigint, 'BBB', 2, 10, 0, 'rq-1');
SELECT pgportfolio.apply_fill(current_setting('test.pid')::bigint, 'AAA', -3, 5);
SELECT pgportfolio.update_market_price('AAA', 4);

-- get_portfolio: one row per open position, in symbol order, portfolio columns on each.
SELECT results_eq(
    $$SELECT symbol, quantity, cost_basis, mark_price, version
      FROM pgportfolio.get_portfolio(current_setting('test.pid')::bigint)$$,
    $$VALUES ('AAA'::text, -3::numeric, -15::numeric, 4::numeric, 3::bigint),
             ('BBB', 2, 20, NULL, 3)$$,
    'get_portfolio returns every open position with its mark and the portfolio version'
);
SELECT set_config('test.empty', pgportfolio.create_portfolio('empty', 1)::text, true);
SELECT is(
    (SELECT count(*) FROM pgportfolio.get_portfolio(current_setting('test.empty')::bigint)),
    1::bigint,
    'a portfolio without positions yields one row'
);
SELECT is(
    (SELECT symbol FROM pgportfolio.get_portfolio(current_setting('test.empty')::bigint)),
    NULL,
    'that row has no symbol'
);
SELECT throws_ok(
    'SELECT * FROM pgportfolio.get_portfolio(-1)', 'PF004', 'portfolio -1 not found',
    'get_portfolio of an unknown portfolio is PF004'
);

-- portfolio_snapshot: the same snapshot in one row, each position column as one
-- comma-separated text in symbol order; an empty mark where there is none.
SELECT results_eq(
    $$SELECT version, symbols, quantities, cost_bases, mark_prices, position_realized_pnls, position_versions,
             multipliers
      FROM pgportfolio.portfolio_snapshot(current_setting('test.pid')::bigint)$$,
    $$VALUES (3::bigint, 'AAA,BBB'::text, '-3,2'::text, '-15,20'::text, '4,'::text, '0,0'::text, '1,1'::text,
              '1,1'::text)$$,
    'portfolio_snapshot returns one row with the positions as comma-separated texts in symbol order'
);
SELECT is(
    (SELECT count(*) FROM pgportfolio.get_portfolio(current_setting('test.pid')::bigint) AS g
     JOIN pgportfolio.positions AS p ON g.portfolio_id = p.portfolio_id AND g.symbol = p.symbol
     WHERE g.quantity = p.quantity AND g.cost_basis = p.cost_basis AND g.position_realized_pnl = p.realized_pnl
       AND g.position_version = p.version AND g.multiplier = p.multiplier),
    2::bigint,
    'get_portfolio agrees with the positions, position by position'
);
SELECT results_eq(
    $$SELECT symbols, quantities, mark_prices, multipliers
      FROM pgportfolio.portfolio_snapshot(current_setting('test.empty')::bigint)$$,
    $$VALUES (''::text, ''::text, ''::text, ''::text)$$,
    'a portfolio without positions has empty texts'
);

-- Multipliers: written directly (as the superuser running this file) with the cost basis
-- that includes them. Every value travels as its exact text.
SELECT set_config('test.mult', pgportfolio.create_portfolio('multipliers', 1000)::text, true);
INSERT INTO pgportfolio.positions (portfolio_id, symbol, quantity, cost_basis, realized_pnl, multiplier, version)
VALUES (current_setting('test.mult')::bigint, 'RDFUT', 3, 15000.50, -1.25, 50, 4),
       (current_setting('test.mult')::bigint, 'RDMINI', -2, -40, 0, 0.5, 2);
SELECT pgportfolio.update_market_price('RDFUT', 102.125);
SELECT results_eq(
    $$SELECT symbols, quantities, cost_bases, mark_prices, position_realized_pnls, position_versions, multipliers
      FROM pgportfolio.portfolio_snapshot(current_setting('test.mult')::bigint)$$,
    $$VALUES ('RDFUT,RDMINI'::text, '3,-2'::text, '15000.50,-40'::text, '102.125,'::text, '-1.25,0'::text,
              '4,2'::text, '50,0.5'::text)$$,
    'portfolio_snapshot shows each position''s multiplier, every value as its exact text'
);
SELECT results_eq(
    $$SELECT symbol, quantity, cost_basis, mark_price, position_realized_pnl, position_version, multiplier
      FROM pgportfolio.get_portfolio(current_setting('test.mult')::bigint)$$,
    $$VALUES ('RDFUT'::text, 3::numeric, 15000.50::numeric, 102.125::numeric, -1.25::numeric, 4::bigint, 50::numeric),
             ('RDMINI', -2, -40, NULL, 0, 2, 0.5)$$,
    'get_portfolio shows the multiplier last, and NULL where there is no mark'
);
SELECT is(
    (SELECT scale(cost_basis) FROM pgportfolio.get_portfolio(current_setting('test.mult')::bigint)
     WHERE symbol = 'RDFUT'),
    2,
    'get_portfolio keeps each value''s scale (15000.50, not 15000.5)'
);

-- A wide portfolio (1,000 positions or more) finds its marks by a merge of the two keys
-- instead of one probe per position: both plans give the same snapshot.
SELECT set_config('test.wide', pgportfolio.create_portfolio('wide', 1000)::text, true);
INSERT INTO pgportfolio.positions (portfolio_id, symbol, quantity, cost_basis, realized_pnl, multiplier, version)
SELECT current_setting('test.wide')::bigint, 'RDW' || n, n, n * 10 * (1 + n % 3), n % 5, 1 + n % 3, 1 + n % 7
FROM generate_series(1, 1000) AS n;
SELECT pgportfolio.update_market_prices(
    (SELECT jsonb_agg(jsonb_build_object('symbol', 'RDW' || n, 'price', (n + 0.5)::text))
     FROM generate_series(1, 1000, 2) AS n)
);
SELECT is(
    (SELECT (symbols, quantities, cost_bases, mark_prices, position_realized_pnls, position_versions, multipliers)
     FROM pgportfolio.portfolio_snapshot(current_setting('test.wide')::bigint)),
    (SELECT (
        string_agg(p.symbol::text, ',' ORDER BY p.symbol::text),
        string_agg(p.quantity::text, ',' ORDER BY p.symbol::text),
        string_agg(p.cost_basis::text, ',' ORDER BY p.symbol::text),
        string_agg(coalesce(m.price::text, ''), ',' ORDER BY p.symbol::text),
        string_agg(p.realized_pnl::text, ',' ORDER BY p.symbol::text),
        string_agg(p.version::text, ',' ORDER BY p.symbol::text),
        string_agg(p.multiplier::text, ',' ORDER BY p.symbol::text))
     FROM pgportfolio.positions AS p LEFT JOIN pgportfolio.market_prices AS m ON p.symbol = m.symbol
     WHERE p.portfolio_id = current_setting('test.wide')::bigint),
    'the snapshot of 1,000 positions (merge plan) is the positions and their marks, in symbol order'
);
SELECT is(
    (SELECT count(*) FROM pgportfolio.get_portfolio(current_setting('test.wide')::bigint) AS g
     JOIN pgportfolio.positions AS p ON g.portfolio_id = p.portfolio_id AND g.symbol::text = p.symbol::text
     LEFT JOIN pgportfolio.market_prices AS m ON m.symbol::text = p.symbol::text
     WHERE g.quantity::numeric = p.quantity::numeric AND g.cost_basis::numeric = p.cost_basis::numeric AND g.position_realized_pnl = p.realized_pnl::numeric
       AND g.position_version = p.version::bigint AND g.multiplier::numeric = p.multiplier::numeric
       AND g.mark_price IS NOT DISTINCT FROM m.price::numeric),
    1000::bigint,
    'get_portfolio of 1,000 positions (merge plan) agrees with the positions and their marks'
);
DELETE FROM pgportfolio.positions
WHERE portfolio_id = current_setting('test.wide')::bigint AND symbol = 'RDW1000';
SELECT is(
    (SELECT (symbols, mark_prices, multipliers)
     FROM pgportfolio.portfolio_snapshot(current_setting('test.wide')::bigint)),
    (SELECT (
        string_agg(p.symbol::text, ',' ORDER BY p.symbol::text),
        string_agg(coalesce(m.price::text, ''), ',' ORDER BY p.symbol::text),
        string_agg(p.multiplier::text, ',' ORDER BY p.symbol::text))
     FROM pgportfolio.positions AS p LEFT JOIN pgportfolio.market_prices AS m ON p.symbol = m.symbol
     WHERE p.portfolio_id = current_setting('test.wide')::bigint),
    'the snapshot of 999 positions (one probe per position) is the same'
);
SELECT is(
    (SELECT count(*) FROM pgportfolio.get_portfolio(current_setting('test.wide')::bigint) AS g
     JOIN pgportfolio.positions AS p ON g.portfolio_id = p.portfolio_id AND g.symbol = p.symbol
     LEFT JOIN pgportfolio.market_prices AS m ON m.symbol = p.symbol
     WHERE g.quantity = p.quantity AND g.cost_basis = p.cost_basis AND g.position_realized_pnl = p.realized_pnl
       AND g.position_version = p.version AND g.multiplier = p.multiplier
       AND g.mark_price IS NOT DISTINCT FROM m.price),
    999::bigint,
    'get_portfolio of 999 positions (one probe per position) agrees with the positions and their marks'
);
SELECT throws_ok(
    'SELECT * FROM pgportfolio.portfolio_snapshot(-1)', 'PF004', 'portfolio -1 not found',
    'portfolio_snapshot of an unknown portfolio is PF004'
);
SELECT throws_ok(
    'SELECT * FROM pgportfolio.portfolio_snapshot(NULL)', '22023', 'p_portfolio_id must not be null',
    'portfolio_snapshot of NULL is 22023'
);

-- find_request: the original result, or nothing.
SELECT results_eq(
    $$SELECT portfolio_version, symbol, position_quantity, duplicate
      FROM pgportfolio.find_request(current_setting('test.pid')::bigint, 'rq-1')$$,
    $$VALUES (2::bigint, 'BBB'::text, 2::numeric, true)$$,
    'find_request returns the stored result, marked duplicate'
);
SELECT is_empty(
    $$SELECT * FROM pgportfolio.find_request(current_setting('test.pid')::bigint, 'never')$$,
    'find_request of an unknown request id returns no row'
);
SELECT throws_ok(
    $$SELECT * FROM pgportfolio.find_request(-1, 'rq-1')$$, 'PF004', NULL,
    'find_request on an unknown portfolio is PF004'
);
SELECT is(
    (SELECT version FROM pgportfolio.portfolio_summary WHERE portfolio_id = current_setting('test.pid')::bigint),
    3::bigint,
    'reads change no version'
);

-- events_since: ordered, strictly after the version.
SELECT results_eq(
    $$SELECT portfolio_version, kind FROM pgportfolio.events_since(current_setting('test.pid')::bigint, 1)$$,
    $$VALUES (2::bigint, 'open'::text), (3, 'open')$$,
    'events_since returns later events in version order'
);
SELECT is_empty(
    $$SELECT * FROM pgportfolio.events_since(current_setting('test.pid')::bigint, 3)$$,
    'nothing after the current version'
);

-- events_after: push updates follow the log, for many portfolios in one call. (test.empty
-- was created after test.pid, so its id is the larger.)
SELECT results_eq(
    $$SELECT portfolio_id, portfolio_version, kind FROM pgportfolio.events_after(
          ARRAY[current_setting('test.empty')::bigint, current_setting('test.pid')::bigint], ARRAY[0, 1]::bigint[])$$,
    $$VALUES (current_setting('test.pid')::bigint, 2::bigint, 'open'::text),
             (current_setting('test.pid')::bigint, 3::bigint, 'open'::text),
             (current_setting('test.empty')::bigint, 1::bigint, 'create'::text)$$,
    'events_after returns each portfolio''s events after its own version, by portfolio then version'
);
SELECT results_eq(
    $$SELECT portfolio_version FROM pgportfolio.events_after(
          ARRAY[current_setting('test.pid')::bigint], ARRAY[0]::bigint[], p_limit => 2)$$,
    $$VALUES (1::bigint), (2::bigint)$$,
    'p_limit caps the events per portfolio, oldest first'
);
SELECT is_empty(
    $$SELECT * FROM pgportfolio.events_after(
          ARRAY[current_setting('test.pid')::bigint, current_setting('test.empty')::bigint], ARRAY[3, 1]::bigint[])$$,
    'nothing after the current versions'
);
SELECT is_empty(
    $$SELECT * FROM pgportfolio.events_after(ARRAY[-1]::bigint[], ARRAY[0]::bigint[])$$,
    'an unknown portfolio has no events (and no error: a subscriber may wait for it)'
);
SELECT is_empty(
    $$SELECT * FROM pgportfolio.events_after('{}'::bigint[], '{}'::bigint[])$$,
    'no portfolios, no events'
);
SELECT throws_ok(
    $$SELECT * FROM pgportfolio.events_after(ARRAY[1, 2]::bigint[], ARRAY[0]::bigint[])$$, '22023', NULL,
    'arrays of different lengths are 22023'
);
SELECT throws_ok(
    $$SELECT * FROM pgportfolio.events_after(NULL, ARRAY[0]::bigint[])$$, '22023', NULL,
    'a NULL array is 22023'
);
SELECT throws_ok(
    $$SELECT * FROM pgportfolio.events_after(ARRAY[1]::bigint[], ARRAY[NULL]::bigint[])$$, '22023', NULL,
    'a NULL version is 22023'
);
SELECT throws_ok(
    $$SELECT * FROM pgportfolio.events_after(ARRAY[1, 1]::bigint[], ARRAY[0, 5]::bigint[])$$, '22023', NULL,
    'a repeated portfolio is 22023'
);
SELECT throws_ok(
    $$SELECT * FROM pgportfolio.events_after(ARRAY[[1]]::bigint[], ARRAY[[0]]::bigint[])$$, '22023', NULL,
    'two-dimensional arrays are 22023'
);
SELECT throws_ok(
    $$SELECT * FROM pgportfolio.events_after(ARRAY[1]::bigint[], ARRAY[0]::bigint[], 0)$$, '22023', NULL,
    'p_limit 0 is 22023'
);
SELECT throws_ok(
    $$SELECT * FROM pgportfolio.events_after(
          (SELECT array_agg(g) FROM generate_series(1, 10001) AS g)::bigint[],
          array_fill(0::bigint, ARRAY[10001]))$$, '22023', NULL,
    'more than 10,000 portfolios is 22023'
);
SELECT function_privs_are(
    'pgportfolio', 'events_after', ARRAY['bigint[]', 'bigint[]', 'integer'], 'pgportfolio_analyst', ARRAY['EXECUTE'],
    'analysts may call events_after'
);
SELECT function_privs_are(
    'pgportfolio', 'events_after', ARRAY['bigint[]', 'bigint[]', 'integer'], 'public', ARRAY[]::text[],
    'PUBLIC may not call events_after'
);
SELECT is_definer(
    'pgportfolio', 'events_after', ARRAY['bigint[]', 'bigint[]', 'integer'], 'events_after is SECURITY DEFINER'
);

-- Nothing is pushed through NOTIFY: any role may LISTEN on any channel and NOTIFY on it,
-- so a channel could neither keep a secret nor be trusted. A commit that sent a NOTIFY
-- would also queue on PostgreSQL's cluster-wide notify lock.
SELECT is(
    (SELECT array_agg(p.proname::text ORDER BY p.proname) FROM pg_proc AS p
     WHERE p.pronamespace = 'pgportfolio'::regnamespace AND p.prosrc ~* 'notify'),
    NULL,
    'no pgportfolio function sends a notification'
);

-- Privileges: traders and analysts read, PUBLIC does not; find_request is for traders.
SELECT function_privs_are(
    'pgportfolio', 'get_portfolio', ARRAY['bigint'], 'pgportfolio_analyst', ARRAY['EXECUTE'],
    'analysts may call get_portfolio'
);
SELECT function_privs_are(
    'pgportfolio', 'find_request', ARRAY['bigint', 'text'], 'pgportfolio_analyst', ARRAY[]::text[],
    'analysts may not call find_request'
);
SELECT function_privs_are(
    'pgportfolio', 'events_since', ARRAY['bigint', 'bigint'], 'public', ARRAY[]::text[],
    'PUBLIC may not call events_since'
);
SELECT is_definer('pgportfolio', 'get_portfolio', ARRAY['bigint'], 'get_portfolio is SECURITY DEFINER');
SELECT function_privs_are(
    'pgportfolio', 'portfolio_snapshot', ARRAY['bigint'], 'pgportfolio_analyst', ARRAY['EXECUTE'],
    'analysts may call portfolio_snapshot'
);

SELECT ok(
    (SELECT 'plan_cache_mode=force_generic_plan' = ANY (p.proconfig) FROM pg_proc AS p
     WHERE p.oid = 'pgportfolio.portfolio_snapshot(bigint)'::regprocedure),
    'portfolio_snapshot''s plans are generic, made once per session (custom plans were made again on every call)'
);
SELECT is(
    (SELECT array_agg(p.proname::text ORDER BY p.proname) FROM pg_proc AS p
     WHERE p.pronamespace = 'pgportfolio'::regnamespace
       AND 'jit=off' = ANY (p.proconfig) AND 'max_parallel_workers_per_gather=0' = ANY (p.proconfig)),
    ARRAY['events_since', 'get_portfolio', 'portfolio_as_of', 'portfolio_at_version', 'portfolio_snapshot',
          'portfolio_valuation', 'positions_as_of', 'positions_at_version', 'verify_portfolio'],
    'the reads of one portfolio, planned without its id, run without JIT and parallel workers'
);

SELECT * FROM finish();
ROLLBACK;
