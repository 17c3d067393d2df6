-- Foundation benchmarks: each medanon function against its baseline on the same
-- rows, best of :runs runs. Run by scripts/bench.sh.
--   1-4: one core (no parallel workers): the targets in DESIGN.md are per core.
--   5-6: the keyed functions at PostgreSQL's default parallel settings (two
--        workers per Gather) against a serial plan of the same query, alternated.
\set QUIET on
\pset footer off
SET max_parallel_workers_per_gather = 0;
SET jit = off;

SET client_min_messages = warning;
DROP TABLE IF EXISTS bench_values;
RESET client_min_messages;
CREATE TABLE bench_values AS
SELECT g AS id,
       'patient-' || g AS v,                                   -- a 12-16 character identifier
       DATE '1930-01-01' + (g::bigint * 7919 % 30000)::int AS birth,
       DATE '2019-04-01' + (g::bigint * 104729 % 2500)::int AS d
  FROM generate_series(1, :rows) g;
VACUUM ANALYZE bench_values;
CREATE EXTENSION IF NOT EXISTS pgcrypto;

\i bench/harness.sql

-- pgcrypto gets the same 256-bit key material as text of the same length.
SELECT encode(gen_random_bytes(32), 'hex') AS hmac_key \gset

CREATE TEMP TABLE results (n int, benchmark text, medanon_ms numeric, baseline text, baseline_ms numeric);
-- Warm the key cache and the table.
SELECT count(medanon.tokenize(v, 'w')) FROM bench_values \g /dev/null

INSERT INTO results SELECT 1, 'tokenize(v, domain)',
  pg_temp.best_ms('SELECT count(medanon.tokenize(v, ''patient'')) FROM bench_values', :runs),
  'encode(hmac(v, key, ''sha256''), ''hex'')',
  pg_temp.best_ms(format('SELECT count(encode(hmac(v, %L, ''sha256''), ''hex'')) FROM bench_values', :'hmac_key'), :runs);
INSERT INTO results SELECT 2, 'shift_date(d, person, domain)',
  pg_temp.best_ms('SELECT count(medanon.shift_date(d, v, ''contract'')) FROM bench_values', :runs),
  'd + 17',
  pg_temp.best_ms('SELECT count(d + 17) FROM bench_values', :runs);
INSERT INTO results SELECT 3, 'generalize_age(birth, ref)',
  pg_temp.best_ms('SELECT count(medanon.generalize_age(birth, DATE ''2026-04-01'')) FROM bench_values', :runs),
  'hand-written int4range(age/5*5, ...) SQL',
  pg_temp.best_ms($q$SELECT count(CASE WHEN a >= 90 THEN int4range(90, NULL) ELSE int4range(a / 5 * 5, a / 5 * 5 + 5) END)
                      FROM (SELECT extract(year FROM age(DATE '2026-04-01', birth))::int AS a FROM bench_values) s$q$, :runs);
INSERT INTO results SELECT 4, 'row scan, no function',
  pg_temp.best_ms('SELECT count(v) FROM bench_values', :runs), '(floor of every query above)', NULL;

-- Parallel plans. The query runs alternately with two workers per Gather (the
-- default) and with none, so the machine's noise falls on both.
CREATE FUNCTION pg_temp.best_parallel_pair(query text, runs int, OUT parallel_ms numeric, OUT serial_ms numeric)
LANGUAGE plpgsql AS $$
BEGIN
  FOR i IN 1..runs LOOP
    PERFORM pg_catalog.set_config('max_parallel_workers_per_gather', '2', false);
    parallel_ms := least(coalesce(parallel_ms, 'Infinity'), pg_temp.elapsed_ms(query));
    PERFORM pg_catalog.set_config('max_parallel_workers_per_gather', '0', false);
    serial_ms := least(coalesce(serial_ms, 'Infinity'), pg_temp.elapsed_ms(query));
  END LOOP;
  parallel_ms := round(parallel_ms, 1);
  serial_ms := round(serial_ms, 1);
END $$;
-- The workers a query really got, from EXPLAIN ANALYZE, with two allowed.
CREATE FUNCTION pg_temp.workers_launched(query text) RETURNS int LANGUAGE plpgsql AS $$
DECLARE plan jsonb;
BEGIN
  PERFORM pg_catalog.set_config('max_parallel_workers_per_gather', '2', false);
  EXECUTE 'EXPLAIN (ANALYZE, FORMAT JSON) ' || query INTO plan;
  PERFORM pg_catalog.set_config('max_parallel_workers_per_gather', '0', false);
  RETURN coalesce((SELECT sum(w::int) FROM jsonb_path_query(plan, 'strict $.**."Workers Launched"') w), 0);
END $$;
\set q_token 'SELECT count(medanon.tokenize(v, ''patient'')) FROM bench_values'
\set q_shift 'SELECT count(medanon.shift_date(d, v, ''contract'')) FROM bench_values'
SELECT pg_temp.workers_launched(:'q_token') AS token_workers, pg_temp.workers_launched(:'q_shift') AS shift_workers \gset
SELECT parallel_ms AS token_par, serial_ms AS token_ser FROM pg_temp.best_parallel_pair(:'q_token', :runs) \gset
SELECT parallel_ms AS shift_par, serial_ms AS shift_ser FROM pg_temp.best_parallel_pair(:'q_shift', :runs) \gset
INSERT INTO results VALUES
  (5, format('tokenize(v, domain), parallel plan (%s workers launched)', :token_workers), :token_par,
   'the same query, serial plan', :token_ser),
  (6, format('shift_date(d, person, domain), parallel plan (%s workers launched)', :shift_workers), :shift_par,
   'the same query, serial plan', :shift_ser);

\pset format aligned
\unset QUIET
SELECT benchmark, medanon_ms, baseline, baseline_ms,
       round(medanon_ms / nullif(baseline_ms, 0), 3) AS ratio
  FROM results ORDER BY n;
\set QUIET on
\pset tuples_only on
\pset format unaligned
\o :outfile
SELECT '| ' || benchmark || ' | ' || medanon_ms || ' | ' || baseline || ' | ' || coalesce(baseline_ms::text, '') || ' | '
       || coalesce(round(medanon_ms / nullif(baseline_ms, 0), 3)::text, '') || ' |'
  FROM results ORDER BY n;
\o
