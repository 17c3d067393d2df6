-- The bench contract's data (bench/contract.sql, bench/publish_jit.sql):
-- :persons persons linked and notified directly (the linker has its own benchmark),
-- 1,000 of them opted out; patient and visit sources (:visits visits), tracked
-- (track_changes) and classified; and pg_temp.bench_spec(id), the contract's spec.
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
CREATE FUNCTION pg_temp.bench_spec(id text) RETURNS jsonb LANGUAGE sql AS $f$
SELECT jsonb_set('{"id": "", "grantee": "bench_lab", "purpose": "benchmark", "approved_on": "2026-01-01",
  "expires_on": "2099-12-31", "kind": "anonymized", "k": 5, "reference_date": "2026-04-01",
  "tables": [{"source": "bench_clinical.patient", "columns": {"person_id": "token", "birth_date": {"age_band": {"band": 10, "top": 90}},
                                                             "sex": "keep", "address": "prefecture"}},
             {"source": "bench_clinical.visit", "columns": {"person_id": "token", "visit_date": "shift", "icd10": "keep",
                                                           "lab_value": {"top_code": 250}}}]}'::jsonb, '{id}', to_jsonb(id)) $f$;
