-- Risk benchmarks (issue 6), run by scripts/bench.sh:
--  1. k_anonymity on :big_rows rows with 4 quasi-identifiers against the hand-written
--     GROUP BY/min query, in rows and in distinct persons, one core, best of :runs.
--  2. suggest_generalization on the synthetic persons (loaded by bench.sh into
--     synth.person), 4 quasi-identifiers, 400 lattice nodes.
\set QUIET on
\pset footer off
SET max_parallel_workers_per_gather = 0;
SET jit = off;
SET client_min_messages = warning;
DROP TABLE IF EXISTS risk_big;
RESET client_min_messages;
CREATE TABLE risk_big AS
SELECT g / 3 AS person,
       (g / 3 * 7919) % 80 AS age,
       (g / 3) % 2 AS sex,
       ((g / 3 * 104729) % 47) AS prefecture,
       ((g / 3 * 15485863) % 12) AS visit_month
  FROM generate_series(1::bigint, :big_rows) g;
VACUUM ANALYZE risk_big;
\i bench/harness.sql
CREATE TEMP TABLE risk_results (n int, benchmark text, medanon_ms numeric, baseline text, baseline_ms numeric);
INSERT INTO risk_results SELECT 1, 'k_anonymity(risk_big, 4 QIs) in rows', p.ours_ms,
  'SELECT min(n) FROM (SELECT count(*) n ... GROUP BY 4 QIs)', p.theirs_ms
  FROM pg_temp.best_pair($q$SELECT medanon.k_anonymity('risk_big', ARRAY['age','sex','prefecture','visit_month'])$q$,
                         'SELECT min(n) FROM (SELECT count(*) n FROM risk_big GROUP BY age, sex, prefecture, visit_month) s', :runs) p;
INSERT INTO risk_results SELECT 2, 'k_anonymity(risk_big, 4 QIs, person) in persons', p.ours_ms,
  'SELECT min(n) FROM (SELECT count(DISTINCT person) n ... GROUP BY 4 QIs)', p.theirs_ms
  FROM pg_temp.best_pair($q$SELECT medanon.k_anonymity('risk_big', ARRAY['age','sex','prefecture','visit_month'], 'person')$q$,
                         'SELECT min(n) FROM (SELECT count(DISTINCT person) n FROM risk_big GROUP BY age, sex, prefecture, visit_month) s', :runs) p;
\unset QUIET
SELECT benchmark, medanon_ms, baseline_ms, round(medanon_ms / nullif(baseline_ms, 0), 3) AS ratio,
       (SELECT count(*) FROM risk_big) AS rows FROM risk_results ORDER BY n;
\set QUIET on

-- The search: 4 quasi-identifiers of every synthetic person (age on the reference
-- date, birth date, 7-digit postal code, address), 5 x 5 x 4 x 4 = 400 nodes.
DROP TABLE IF EXISTS risk_persons;
CREATE TABLE risk_persons AS
SELECT true_person_id AS person,
       extract(year FROM age(DATE '2026-04-01', birth_date))::int AS age,
       birth_date, postal_code, prefecture || municipality AS address
  FROM synth.person;
VACUUM ANALYZE risk_persons;
CREATE TEMP TABLE search_run (result jsonb, seconds numeric);
DO $$
DECLARE t0 timestamptz := clock_timestamp(); r jsonb;
BEGIN
  r := medanon.suggest_generalization('risk_persons',
         '{"person_column": "person", "quasi_identifiers": {"age": "age", "birth_date": "date",
           "postal_code": "postal", "address": "geography"}}', 5, 0.01);
  INSERT INTO search_run VALUES (r, round(extract(epoch FROM clock_timestamp() - t0)::numeric, 1));
END $$;
\unset QUIET
SELECT (SELECT count(*) FROM risk_persons) AS persons,
       seconds AS seconds_incl_read,
       result->'nodes_evaluated' AS evaluated, result->'nodes_total' AS total,
       result->'suppressed_persons' AS suppressed, result->'loss'->'value' AS loss,
       (SELECT string_agg(key || '=' || (value->>'label'), ', ') FROM jsonb_each(result->'levels')) AS levels
  FROM search_run;
\set QUIET on
\pset tuples_only on
\pset format unaligned
\o :outfile
SELECT '| ' || benchmark || ' | ' || medanon_ms || ' | ' || baseline_ms || ' | ' || round(medanon_ms / nullif(baseline_ms, 0), 3) || ' |'
  FROM risk_results ORDER BY n;
SELECT '| suggest_generalization, ' || (SELECT count(*) FROM risk_persons) || ' persons | ' || seconds || ' s | '
       || (result->>'nodes_evaluated') || ' of ' || (result->>'nodes_total') || ' nodes |' FROM search_run;
\o
