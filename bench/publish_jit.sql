-- Publish with the session's JIT on and off (issue 14), run by scripts/bench.sh
-- with MEDANON_BENCH_ONLY=publish_jit: the bench contract of bench/contract.sql
-- (:persons persons, :visits visits) published six times as six contracts,
-- alternating the session's jit setting (on, off, off, on, on, off), each revoked
-- after its publish so every publish starts from the same state, a CHECKPOINT
-- before each. Until commit 4c2f0e1 publish ran with the session's jit; since,
-- it turns JIT off for its own statements, so the two columns should agree.
\set QUIET on
\pset footer off
SET client_min_messages = warning;
DROP SCHEMA IF EXISTS bench_clinical, contract_bench_c CASCADE;
DO $$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'bench_lab') THEN CREATE ROLE bench_lab; END IF;
END $$;
RESET client_min_messages;
\i bench/harness.sql

CREATE SCHEMA bench_clinical;
SELECT count(medanon.register_institution('B' || i, 'Hospital ' || i, 'hospital')) FROM generate_series(0, 19) i;
-- Links and notifications for every person, as link_patients and record_notification would leave them.
INSERT INTO medanon.person (person_id) SELECT i FROM generate_series(1::bigint, :persons) i;
INSERT INTO medanon.person_link (institution_code, local_patient_id, person_id, block)
SELECT 'B' || (i % 20), 'p' || i, i, i FROM generate_series(1::bigint, :persons) i;
INSERT INTO medanon.notification (institution_code, local_patient_id, notified_at, method)
SELECT 'B' || (i % 20), 'p' || i, now() - interval '90 days', 'written' FROM generate_series(1::bigint, :persons) i;
SELECT count(medanon.opt_out('B' || (i % 20), 'p' || i)) FROM generate_series(1, :persons, :persons / 1000) i;

CREATE TABLE bench_clinical.patient AS
SELECT i::bigint AS person_id, DATE '1930-01-01' + (i * 7919 % 32000)::int AS birth_date, (1 + i % 2)::smallint AS sex,
       (ARRAY['東京都千代田区', '大阪府大阪市北区', '北海道札幌市中央区', '福岡県福岡市博多区', '愛知県名古屋市中区'])[1 + i % 5] AS address
  FROM generate_series(1::bigint, :persons) i;
CREATE TABLE bench_clinical.visit AS
SELECT 1 + (g * 104729) % :persons AS person_id, 'B' || ((1 + (g * 104729) % :persons) % 20) AS institution_code,
       DATE '2019-04-01' + (g % 2557)::int AS visit_date,
       (ARRAY['I10', 'E11.9', 'J45.9', 'E78.5', 'K21.9', 'M54.5', 'F32.9', 'N18.3'])[1 + (g * 31) % 8] AS icd10,
       round((40 + (g * 7) % 300)::numeric, 1) AS lab_value
  FROM generate_series(1::bigint, :visits) g;
CREATE INDEX ON bench_clinical.visit (person_id);
VACUUM ANALYZE bench_clinical.patient, bench_clinical.visit, medanon.person_link, medanon.notification;
SELECT medanon.register_source('bench_clinical.patient', 'person_id'),
       medanon.register_source('bench_clinical.visit', 'person_id', 'institution_code');
SELECT medanon.track_changes('bench_clinical.patient'), medanon.track_changes('bench_clinical.visit');
SELECT count(medanon.classify(t::regclass, c, cls)) FROM (VALUES
  ('bench_clinical.patient', 'person_id', 'identifier'), ('bench_clinical.patient', 'birth_date', 'quasi_identifier'),
  ('bench_clinical.patient', 'sex', 'quasi_identifier'), ('bench_clinical.patient', 'address', 'quasi_identifier'),
  ('bench_clinical.visit', 'person_id', 'identifier'), ('bench_clinical.visit', 'institution_code', 'quasi_identifier'),
  ('bench_clinical.visit', 'visit_date', 'static'), ('bench_clinical.visit', 'icd10', 'semi_static'),
  ('bench_clinical.visit', 'lab_value', 'dynamic')) v(t, c, cls);
CREATE TEMP TABLE publish_jit (n int, session_jit text, ms numeric);
CREATE FUNCTION pg_temp.spec(id text) RETURNS text LANGUAGE sql AS $f$
SELECT format('{"id": "%s", "grantee": "bench_lab", "purpose": "benchmark", "approved_on": "2026-01-01",
  "expires_on": "2099-12-31", "kind": "anonymized", "k": 5, "reference_date": "2026-04-01",
  "tables": [{"source": "bench_clinical.patient", "columns": {"person_id": "token", "birth_date": {"age_band": {"band": 10, "top": 90}},
                                                             "sex": "keep", "address": "prefecture"}},
             {"source": "bench_clinical.visit", "columns": {"person_id": "token", "visit_date": "shift", "icd10": "keep",
                                                           "lab_value": {"top_code": 250}}}]}', id) $f$;
SELECT medanon.create_contract(pg_temp.spec('w' || i)::jsonb) FROM generate_series(1, 6) i;
CHECKPOINT;
SET jit = on;
INSERT INTO publish_jit SELECT 1, current_setting('jit'), pg_temp.elapsed_ms($$SELECT medanon.publish_contract('w1')$$);
RESET jit;
SELECT medanon.revoke_contract('w1');
CHECKPOINT;
SET jit = off;
INSERT INTO publish_jit SELECT 2, current_setting('jit'), pg_temp.elapsed_ms($$SELECT medanon.publish_contract('w2')$$);
RESET jit;
SELECT medanon.revoke_contract('w2');
CHECKPOINT;
SET jit = off;
INSERT INTO publish_jit SELECT 3, current_setting('jit'), pg_temp.elapsed_ms($$SELECT medanon.publish_contract('w3')$$);
RESET jit;
SELECT medanon.revoke_contract('w3');
CHECKPOINT;
SET jit = on;
INSERT INTO publish_jit SELECT 4, current_setting('jit'), pg_temp.elapsed_ms($$SELECT medanon.publish_contract('w4')$$);
RESET jit;
SELECT medanon.revoke_contract('w4');
CHECKPOINT;
SET jit = on;
INSERT INTO publish_jit SELECT 5, current_setting('jit'), pg_temp.elapsed_ms($$SELECT medanon.publish_contract('w5')$$);
RESET jit;
SELECT medanon.revoke_contract('w5');
CHECKPOINT;
SET jit = off;
INSERT INTO publish_jit SELECT 6, current_setting('jit'), pg_temp.elapsed_ms($$SELECT medanon.publish_contract('w6')$$);
RESET jit;
SELECT medanon.revoke_contract('w6');
\set QUIET off
\pset footer off
SELECT session_jit, count(*) AS publishes, round(min(ms) / 1000, 1) AS min_s, round(avg(ms) / 1000, 1) AS mean_s,
       round(max(ms) / 1000, 1) AS max_s
  FROM publish_jit GROUP BY session_jit ORDER BY session_jit DESC;
\set QUIET on
\pset format unaligned
\pset tuples_only on
\o :outfile
SELECT format('| publish_contract, session jit %s | %s | %s s | %s s | %s s |', session_jit, count(*),
              round(min(ms) / 1000, 1), round(avg(ms) / 1000, 1), round(max(ms) / 1000, 1))
  FROM publish_jit GROUP BY session_jit ORDER BY session_jit DESC;
\o
