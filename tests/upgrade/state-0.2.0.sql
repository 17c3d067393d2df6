-- Real state in a database with medanon 0.2.0 (scripts/upgrade-test.sh), using
-- what 0.2.0 added: keys (one rotation), persons linked across two institutions
-- with a split decided by a reviewer, notifications, opt-outs (one withdrawn),
-- sources tracked for incremental refresh, an anonymized contract with rare
-- values replaced through the ICD-10 hierarchy, percentile top-coding and a
-- snapshot, one showing days since the first visit, a pseudonymized one with
-- shifted dates, one created only and one revoked; then an incremental refresh.
-- What must survive the upgrade is copied into schema upgrade_check (not the
-- extension's) for tests/upgrade/after-0.2.0.sql: every row of every table of
-- the extension, and each contract's views as its grantee reads them.
-- Only 0.2.0's functions are called here.
\set ON_ERROR_STOP 1
\set QUIET 1
SET client_min_messages = warning;

CREATE EXTENSION medanon VERSION '0.2.0';
DO $$ BEGIN
    IF (SELECT extversion FROM pg_extension WHERE extname = 'medanon') <> '0.2.0' THEN
        RAISE EXCEPTION 'medanon 0.2.0 is not what was installed';
    END IF;
END $$;
CREATE ROLE up_etl LOGIN;
CREATE ROLE up_lab LOGIN;
CREATE ROLE up_pharma LOGIN;
CREATE ROLE up_old LOGIN;
GRANT medanon_operator TO up_etl;
SELECT medanon.rotate_key();

-- 60 patients at H1, and 15 of them again at H2 (linked to the same person).
CREATE SCHEMA up;
CREATE TABLE up.staging (institution_code text, local_patient_id text, name_kana text,
    birth_date text, sex text, insurer_number text, insured_symbol text, insured_number text);
INSERT INTO up.staging
SELECT 'H1', 'p' || i, 'ﾀﾅｶ ' || chr(12450 + i % 40 * 2) || chr(12450 + i / 40 * 2), (DATE '1950-01-01' + i * 300)::text,
       (1 + i % 2)::text, '06' || lpad(i::text, 6, '0'), '記' || i, lpad(i::text, 4, '0')
  FROM generate_series(1, 60) i;
INSERT INTO up.staging
SELECT 'H2', 'q' || i, 'ﾀﾅｶ ' || chr(12450 + i % 40 * 2) || chr(12450 + i / 40 * 2), (DATE '1950-01-01' + i * 300)::text,
       (1 + i % 2)::text, '', '', ''
  FROM generate_series(1, 15) i;
GRANT USAGE ON SCHEMA up TO up_etl;
GRANT SELECT ON ALL TABLES IN SCHEMA up TO up_etl;

SET ROLE up_etl;
SELECT medanon.register_institution('H1', 'Hospital 1', 'hospital');
SELECT medanon.register_institution('H2', 'Clinic 2', 'clinic');
SELECT count(medanon.record_notification(institution_code, local_patient_id, now() - interval '40 days', 'written'))
  FROM up.staging;
SELECT medanon.link_patients('up.staging');
-- A reviewer splits H2's q15 off its person: the records were another patient's.
SELECT medanon.split_person(person_id, ARRAY['H2'], ARRAY['q15'], 'dr. ito', 'upgrade test: a different patient')
  FROM medanon.person_link WHERE institution_code = 'H2' AND local_patient_id = 'q15';
SELECT medanon.opt_out('H1', 'p7', 'self');
SELECT medanon.opt_out('H1', 'p8', 'bereaved_family', 'spouse', 'institution', now() - interval '1 day');
SELECT medanon.opt_out('H1', 'p9', 'self');
SELECT medanon.withdraw_opt_out('H1', 'p9');
RESET ROLE;

-- Sources: a patient table and a visit table, keyed by the internal person id.
CREATE TABLE up.patient AS
SELECT l.person_id, s.birth_date::date AS birth_date, s.sex::smallint AS sex
  FROM up.staging s JOIN medanon.person_link l USING (institution_code, local_patient_id)
 WHERE s.institution_code = 'H1';
CREATE TABLE up.visit AS
SELECT p.person_id, DATE '2024-01-01' + (p.person_id::int * 3 + g * 20) AS visit_date,
       CASE WHEN p.person_id::int % 29 = 0 THEN 'E119' ELSE (ARRAY['I10', 'E11', 'J45'])[1 + (p.person_id::int + g) % 3] END AS icd10,
       (p.person_id::int * 7 + g) % 300 AS lab_value
  FROM up.patient p, generate_series(1, 3) g;
GRANT SELECT ON ALL TABLES IN SCHEMA up TO up_etl;
SELECT medanon.register_certified_user('up_pharma');
SET ROLE up_etl;
SELECT medanon.register_source('up.patient', 'person_id');
SELECT medanon.register_source('up.visit', 'person_id');
SELECT medanon.classify('up.patient', c, cls)
  FROM (VALUES ('person_id', 'identifier'), ('birth_date', 'quasi_identifier'), ('sex', 'quasi_identifier')) v(c, cls);
SELECT medanon.classify('up.visit', c, cls)
  FROM (VALUES ('person_id', 'identifier'), ('visit_date', 'static'), ('icd10', 'semi_static'), ('lab_value', 'dynamic')) v(c, cls);
RESET ROLE;
SELECT medanon.track_changes('up.patient');
SELECT medanon.track_changes('up.visit');
SET ROLE up_etl;

-- An anonymized contract (k = 2, min_persons 3): E119 climbs to E11; lab values
-- top-coded at their 90th percentile; a snapshot.
SELECT medanon.create_contract('{"id": "up_anon", "grantee": "up_lab", "purpose": "upgrade test: anonymized",
    "approved_on": "2026-01-01", "expires_on": "2099-12-31", "kind": "anonymized", "k": 2, "min_persons": 3,
    "reference_date": "2026-04-01",
    "tables": [{"source": "up.patient", "columns": {"person_id": "token", "birth_date": {"age_band": {"band": 50}}, "sex": "keep"}},
               {"source": "up.visit", "columns": {"person_id": "token", "icd10": {"keep": true, "hierarchy": "icd10"},
                                                  "lab_value": {"top_code": {"percentile": 90}}}}]}');
SELECT medanon.publish_contract('up_anon');
SELECT medanon.release_snapshot('up_anon');
-- Intervals only: days since each person's first visit.
SELECT medanon.create_contract('{"id": "up_days", "grantee": "up_lab", "purpose": "upgrade test: intervals",
    "approved_on": "2026-01-01", "expires_on": "2099-12-31", "kind": "anonymized", "k": 2, "reference_date": "2026-04-01",
    "tables": [{"source": "up.visit", "columns": {"person_id": "token", "visit_date": {"days_since": "first"}}}]}');
SELECT medanon.publish_contract('up_days');
-- A pseudonymized contract with shifted dates.
SELECT medanon.create_contract('{"id": "up_pseudo", "grantee": "up_pharma", "purpose": "upgrade test: pseudonymized",
    "approved_on": "2026-01-01", "expires_on": "2099-12-31", "kind": "pseudonymized",
    "tables": [{"source": "up.visit", "columns": {"person_id": "token", "visit_date": "shift", "icd10": "keep"}}]}');
SELECT medanon.publish_contract('up_pseudo');
-- A contract created only, and one published and revoked.
SELECT medanon.create_contract('{"id": "up_created", "grantee": "up_lab", "purpose": "upgrade test: created",
    "approved_on": "2026-01-01", "expires_on": "2099-12-31", "kind": "anonymized", "k": 2, "reference_date": "2026-04-01",
    "tables": [{"source": "up.patient", "columns": {"person_id": "token", "sex": "keep"}}]}');
SELECT medanon.create_contract('{"id": "up_revoked", "grantee": "up_old", "purpose": "upgrade test: revoked",
    "approved_on": "2026-01-01", "expires_on": "2099-12-31", "kind": "anonymized", "k": 2, "reference_date": "2026-04-01",
    "tables": [{"source": "up.patient", "columns": {"person_id": "token", "sex": "keep"}}]}');
SELECT medanon.publish_contract('up_revoked');
SELECT medanon.revoke_contract('up_revoked');
RESET ROLE;
-- New visits, then an incremental refresh of the pseudonymized contract.
INSERT INTO up.visit SELECT person_id, DATE '2025-06-02', 'I10', 10 FROM up.patient WHERE person_id::int % 5 = 0;
SET ROLE up_etl;
SELECT medanon.refresh_contract('up_pseudo');
RESET ROLE;

-- What must survive: every table of the extension, row for row.
CREATE SCHEMA upgrade_check;
DO $$
DECLARE t name;
BEGIN
    FOR t IN SELECT c.relname FROM pg_class c WHERE c.relnamespace = 'medanon'::regnamespace AND c.relkind = 'r' ORDER BY 1 LOOP
        EXECUTE format('CREATE TABLE upgrade_check.%I AS SELECT * FROM medanon.%I', 't_' || t, t);
    END LOOP;
END $$;
-- Keyed values for fixed inputs, under the keys as they are.
CREATE TABLE upgrade_check.keyed AS
SELECT 'tokenize' AS f, medanon.tokenize('山田太郎', 'upgrade') AS v
UNION ALL SELECT 'tokenize2', medanon.tokenize('12345', 'contract:x')
UNION ALL SELECT '_link_id1', medanon._link_id1('06000001', '記1', '0001', '1950-10-28', '2')::text
UNION ALL SELECT '_link_id2', medanon._link_id2('ﾀﾅｶ ｱ', '1950-10-28', '2')::text
UNION ALL SELECT '_link_block', medanon._link_block('1950-10-28', '2')::text
UNION ALL SELECT '_link_clk', encode(medanon._link_clk('ﾀﾅｶ ｱ'), 'hex')
UNION ALL SELECT 'active_key_id', medanon.active_key_id()::text;
-- Each contract's views and snapshot, as their grantee reads them.
GRANT USAGE, CREATE ON SCHEMA upgrade_check TO up_lab, up_pharma;
SET ROLE up_lab;
CREATE TABLE upgrade_check.v_anon_patient AS SELECT * FROM contract_up_anon.patient;
CREATE TABLE upgrade_check.v_anon_visit AS SELECT * FROM contract_up_anon.visit;
CREATE TABLE upgrade_check.v_anon_snap AS SELECT * FROM contract_up_anon_snap_1.patient;
CREATE TABLE upgrade_check.v_days_visit AS SELECT * FROM contract_up_days.visit;
RESET ROLE;
SET ROLE up_pharma;
CREATE TABLE upgrade_check.v_pseudo_visit AS SELECT * FROM contract_up_pseudo.visit;
RESET ROLE;

DO $$ BEGIN
    IF (SELECT count(*) FROM upgrade_check.t_person_link) <> 75
       OR (SELECT count(*) FROM upgrade_check.t_link_review) < 1
       OR (SELECT count(*) FROM upgrade_check.v_anon_visit WHERE icd10 = 'E11') < 1
       OR EXISTS (SELECT FROM upgrade_check.v_anon_visit WHERE icd10 = 'E119')
       OR (SELECT count(*) FROM upgrade_check.v_days_visit WHERE visit_date = 0) < 30
       OR (SELECT count(*) FROM upgrade_check.v_pseudo_visit) < 150
       OR (SELECT count(*) FROM upgrade_check.v_anon_snap) < 30 THEN
        RAISE EXCEPTION 'the 0.2.0 state is not what the test expects: % links, % reviews, % rows of days_since, % pseudonymized rows',
            (SELECT count(*) FROM upgrade_check.t_person_link), (SELECT count(*) FROM upgrade_check.t_link_review),
            (SELECT count(*) FROM upgrade_check.v_days_visit), (SELECT count(*) FROM upgrade_check.v_pseudo_visit);
    END IF;
END $$;
\echo 0.2.0 state created
