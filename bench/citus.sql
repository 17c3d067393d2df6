-- Citus benchmark (issue 16), run by scripts/bench-citus.sh on the coordinator of a
-- cluster of a coordinator and two workers, all on this machine:
--  1. tokenize over :rows values: a table on the coordinator alone (one node, with
--     PostgreSQL's parallel query at its defaults) against the same rows in a
--     distributed table (pushed down to the two workers);
--  2. an analyst's aggregate on a contract's visit view (:visits rows, :persons
--     persons): the contract over local sources (one node) against the same contract
--     over distributed sources (its data tables distributed on the token).
-- Queries alternate, best of :runs. On one 2-core machine the workers share the
-- coordinator's cores, so the ratios show Citus's overhead, not a speed-up.
\set QUIET on
\pset footer off
SET client_min_messages = warning;
DROP SCHEMA IF EXISTS bench_local, bench_dist, contract_bench_l, contract_bench_l_data, contract_bench_d, contract_bench_d_data CASCADE;
DO $$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'bench_lab_l') THEN CREATE ROLE bench_lab_l LOGIN; END IF;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'bench_lab_d') THEN CREATE ROLE bench_lab_d LOGIN; END IF;
END $$;
-- The timing helpers are temporary functions: Citus need not try to copy them.
SET citus.enable_ddl_propagation = off;
\i bench/harness.sql
-- A query timed as another role.
CREATE OR REPLACE FUNCTION pg_temp.as_role(role text, query text) RETURNS numeric LANGUAGE plpgsql AS $$
DECLARE ms numeric;
BEGIN
  EXECUTE pg_catalog.format('SET LOCAL ROLE %I', role);
  ms := pg_temp.elapsed_ms(query);
  RESET ROLE;
  RETURN ms;
END $$;
RESET citus.enable_ddl_propagation;
SELECT medanon.citus_sync_keys() AS workers \gset

-- 1. tokenize
CREATE SCHEMA bench_local;
CREATE SCHEMA bench_dist;
CREATE TABLE bench_local.vals AS SELECT i::bigint AS id, 'value-' || i AS v FROM generate_series(1, :rows) i;
CREATE TABLE bench_dist.vals (id bigint, v text);
SELECT create_distributed_table('bench_dist.vals', 'id') \g /dev/null
INSERT INTO bench_dist.vals SELECT * FROM bench_local.vals;
VACUUM ANALYZE bench_local.vals;
VACUUM ANALYZE bench_dist.vals;
\set q_tok_l 'SELECT count(medanon.tokenize(v, ''bench'')) FROM bench_local.vals'
\set q_tok_d 'SELECT count(medanon.tokenize(v, ''bench'')) FROM bench_dist.vals'
-- warm both (key load, connections to the workers)
:q_tok_l \g /dev/null
:q_tok_d \g /dev/null
SELECT ours_ms AS tok_d, theirs_ms AS tok_l FROM pg_temp.best_pair(:'q_tok_d', :'q_tok_l', :runs) \gset

-- 2. a contract's aggregate. Persons linked and notified directly, as in bench/contract.sql.
SELECT count(medanon.register_institution('B' || i, 'Hospital ' || i, 'hospital')) FROM generate_series(0, 19) i \g /dev/null
INSERT INTO medanon.person (person_id) SELECT i FROM generate_series(1::bigint, :persons) i;
INSERT INTO medanon.person_link (institution_code, local_patient_id, person_id, block)
SELECT 'B' || (i % 20), 'p' || i, i, i FROM generate_series(1::bigint, :persons) i;
INSERT INTO medanon.notification (institution_code, local_patient_id, notified_at, method)
SELECT 'B' || (i % 20), 'p' || i, now() - interval '90 days', 'written' FROM generate_series(1::bigint, :persons) i;
CREATE TABLE bench_local.patient AS
SELECT i::bigint AS person_id, DATE '1930-01-01' + (i * 7919 % 32000)::int AS birth_date, (1 + i % 2)::smallint AS sex
  FROM generate_series(1::bigint, :persons) i;
CREATE TABLE bench_local.visit AS
SELECT 1 + (g * 104729) % :persons AS person_id, 'B' || ((1 + (g * 104729) % :persons) % 20) AS institution_code,
       DATE '2019-04-01' + (g % 2557)::int AS visit_date,
       (ARRAY['I10', 'E11.9', 'J45.9', 'E78.5', 'K21.9', 'M54.5', 'F32.9', 'N18.3'])[1 + (g * 31) % 8] AS icd10
  FROM generate_series(1::bigint, :visits) g;
CREATE TABLE bench_dist.patient (LIKE bench_local.patient);
CREATE TABLE bench_dist.visit (LIKE bench_local.visit);
SELECT create_distributed_table('bench_dist.patient', 'person_id') \g /dev/null
SELECT create_distributed_table('bench_dist.visit', 'person_id', colocate_with => 'bench_dist.patient') \g /dev/null
INSERT INTO bench_dist.patient SELECT * FROM bench_local.patient;
INSERT INTO bench_dist.visit SELECT * FROM bench_local.visit;
VACUUM ANALYZE bench_local.patient;
VACUUM ANALYZE bench_local.visit;
VACUUM ANALYZE bench_dist.patient;
VACUUM ANALYZE bench_dist.visit;
VACUUM ANALYZE medanon.person_link;
VACUUM ANALYZE medanon.notification;
SELECT count(*) FROM (SELECT medanon.register_source(t::regclass, 'person_id', i)
  FROM (VALUES ('bench_local.patient', NULL), ('bench_local.visit', 'institution_code'),
               ('bench_dist.patient', NULL), ('bench_dist.visit', 'institution_code')) v(t, i)) s \g /dev/null
SELECT count(medanon.classify(t::regclass, c, cls)) FROM (VALUES
  ('patient', 'person_id', 'identifier'), ('patient', 'birth_date', 'quasi_identifier'), ('patient', 'sex', 'quasi_identifier'),
  ('visit', 'person_id', 'identifier'), ('visit', 'institution_code', 'quasi_identifier'),
  ('visit', 'visit_date', 'static'), ('visit', 'icd10', 'semi_static')) v(t0, c, cls),
  LATERAL (VALUES ('bench_local.' || t0), ('bench_dist.' || t0)) s(t) \g /dev/null
SELECT medanon.create_contract(pg_catalog.format('{"id": "bench_%s", "grantee": "bench_lab_%s", "purpose": "benchmark",
  "approved_on": "2026-01-01", "expires_on": "2099-12-31", "kind": "anonymized", "k": 5, "reference_date": "2026-04-01",
  "tables": [{"source": "bench_%s.patient", "columns": {"person_id": "token", "birth_date": {"age_band": {"band": 10, "top": 90}}, "sex": "keep"}},
             {"source": "bench_%s.visit", "columns": {"person_id": "token", "visit_date": "shift", "icd10": "keep"}}]}',
  x, x, s, s)::jsonb) FROM (VALUES ('l', 'local'), ('d', 'dist')) v(x, s) \g /dev/null
SELECT pg_temp.elapsed_ms($$SELECT medanon.publish_contract('bench_l')$$) AS pub_l \gset
SELECT pg_temp.elapsed_ms($$SELECT medanon.publish_contract('bench_d')$$) AS pub_d \gset
-- The analysts: each reads its own contract's view, timed through SET ROLE. Citus
-- runs the shard queries as the analyst, so an analyst role must be able to log in
-- to the workers (README, "Scale out with Citus").
\set q_cnt_l 'SELECT icd10, count(*) FROM contract_bench_l.visit GROUP BY icd10'
\set q_cnt_d 'SELECT icd10, count(*) FROM contract_bench_d.visit GROUP BY icd10'
\set q_agg_l 'SELECT icd10, count(*), count(DISTINCT person_id) FROM contract_bench_l.visit GROUP BY icd10'
\set q_agg_d 'SELECT icd10, count(*), count(DISTINCT person_id) FROM contract_bench_d.visit GROUP BY icd10'
GRANT bench_lab_l, bench_lab_d TO CURRENT_USER;
SET ROLE bench_lab_l;
SELECT count(*) AS rows_l FROM contract_bench_l.visit \gset
SET ROLE bench_lab_d;
SELECT count(*) AS rows_d FROM contract_bench_d.visit \gset
RESET ROLE;
SELECT ours_ms AS cnt_d, theirs_ms AS cnt_l FROM pg_temp.best_pair(
  pg_catalog.format('SELECT pg_temp.as_role(%L, %L)', 'bench_lab_d', :'q_cnt_d'),
  pg_catalog.format('SELECT pg_temp.as_role(%L, %L)', 'bench_lab_l', :'q_cnt_l'), :runs) \gset
SELECT ours_ms AS agg_d, theirs_ms AS agg_l FROM pg_temp.best_pair(
  pg_catalog.format('SELECT pg_temp.as_role(%L, %L)', 'bench_lab_d', :'q_agg_d'),
  pg_catalog.format('SELECT pg_temp.as_role(%L, %L)', 'bench_lab_l', :'q_agg_l'), :runs) \gset

SELECT round(:tok_d / :tok_l, 2) AS r_tok, round(:agg_d / :agg_l, 2) AS r_agg, round(:cnt_d / :cnt_l, 2) AS r_cnt,
       round(:pub_l) AS pub_l, round(:pub_d) AS pub_d, round(:pub_d / :pub_l, 2) AS r_pub \gset
\o :outfile
\qecho '| tokenize,' :rows 'values |' :tok_l 'ms |' :tok_d 'ms |' :r_tok 'x |'
\qecho '| publish_contract,' :persons 'persons,' :visits 'visits |' :pub_l 'ms |' :pub_d 'ms |' :r_pub 'x |'
\qecho '| analyst: count(*) GROUP BY icd10 on the contract''s visit view (' :rows_l 'rows) |' :cnt_l 'ms |' :cnt_d 'ms |' :r_cnt 'x |'
\qecho '| analyst: count(*), count(DISTINCT person_id) GROUP BY icd10, same view |' :agg_l 'ms |' :agg_d 'ms |' :r_agg 'x |'
\o
