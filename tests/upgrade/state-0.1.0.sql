-- Real state in a database with medanon 0.1.0 (scripts/upgrade-test.sh): keys
-- (one rotation, so a retired key too), linked persons across two institutions,
-- notifications, opt-outs (one withdrawn), four contracts (an anonymized one with
-- a snapshot, a pseudonymized one with shifted dates, one created only, one
-- revoked), and their ledger entries. Then what must survive the upgrade is
-- copied into schema upgrade_check (not the extension's), for tests/upgrade/after.sql.
-- Only 0.1.0's functions are called here.
\set ON_ERROR_STOP 1
\set QUIET 1
SET client_min_messages = warning;

CREATE EXTENSION medanon VERSION '0.1.0';
DO $$ BEGIN
    IF (SELECT extversion FROM pg_extension WHERE extname = 'medanon') <> '0.1.0' THEN
        RAISE EXCEPTION 'medanon 0.1.0 is not what was installed';
    END IF;
END $$;
CREATE ROLE up_etl LOGIN;
CREATE ROLE up_lab LOGIN;
CREATE ROLE up_pharma LOGIN;
CREATE ROLE up_old LOGIN;
GRANT medanon_operator TO up_etl;

-- A rotation: tokens follow the new key; the retired key stays in the keyring.
SELECT medanon.rotate_key();

-- 40 patients at H1, and 12 of them again at H2 (same kana name, birth date and
-- sex: linked to the same person), all notified 40 days ago.
CREATE SCHEMA up;
CREATE TABLE up.staging (institution_code text, local_patient_id text, name_kana text,
    birth_date text, sex text, insurer_number text, insured_symbol text, insured_number text);
INSERT INTO up.staging
SELECT 'H1', 'p' || i, 'ﾀﾅｶ ' || chr(12450 + i * 2), (DATE '1950-01-01' + i * 300)::text, (1 + i % 2)::text,
       '06' || lpad(i::text, 6, '0'), '記' || i, lpad(i::text, 4, '0')
  FROM generate_series(1, 40) i;
INSERT INTO up.staging
SELECT 'H2', 'q' || i, 'ﾀﾅｶ ' || chr(12450 + i * 2), (DATE '1950-01-01' + i * 300)::text, (1 + i % 2)::text, '', '', ''
  FROM generate_series(1, 12) i;
GRANT USAGE ON SCHEMA up TO up_etl;
GRANT SELECT ON ALL TABLES IN SCHEMA up TO up_etl;

SET ROLE up_etl;
SELECT medanon.register_institution('H1', 'Hospital 1', 'hospital');
SELECT medanon.register_institution('H2', 'Clinic 2', 'clinic');
SELECT count(medanon.record_notification(institution_code, local_patient_id, now() - interval '40 days', 'written'))
  FROM up.staging;
SELECT medanon.link_patients('up.staging');
-- Opt-outs: p7 by the patient (all institutions); p8 by the bereaved family, at
-- H1 only; p9 by the patient, withdrawn since.
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
       (ARRAY['I10', 'E11', 'J45'])[1 + (p.person_id::int + g) % 3] AS icd10
  FROM up.patient p, generate_series(1, 3) g;
GRANT SELECT ON ALL TABLES IN SCHEMA up TO up_etl;
SELECT medanon.register_certified_user('up_pharma');
SET ROLE up_etl;
SELECT medanon.register_source('up.patient', 'person_id');
SELECT medanon.register_source('up.visit', 'person_id');
SELECT medanon.classify('up.patient', c, cls)
  FROM (VALUES ('person_id', 'identifier'), ('birth_date', 'quasi_identifier'), ('sex', 'quasi_identifier')) v(c, cls);
SELECT medanon.classify('up.visit', c, cls)
  FROM (VALUES ('person_id', 'identifier'), ('visit_date', 'static'), ('icd10', 'semi_static')) v(c, cls);

-- An anonymized contract (k = 2), published, with a snapshot.
SELECT medanon.create_contract('{"id": "up_anon", "grantee": "up_lab", "purpose": "upgrade test: anonymized",
    "approved_on": "2026-01-01", "expires_on": "2099-12-31", "kind": "anonymized", "k": 2, "reference_date": "2026-04-01",
    "tables": [{"source": "up.patient", "columns": {"person_id": "token", "birth_date": {"age_band": {"band": 50}}, "sex": "keep"}},
               {"source": "up.visit", "columns": {"person_id": "token", "icd10": "keep"}}]}');
SELECT medanon.publish_contract('up_anon');
SELECT medanon.release_snapshot('up_anon');
-- A pseudonymized contract with shifted dates, published.
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
-- And one published whose expiry date has passed, not closed yet (expire_contracts
-- has not run since): its date moved back by hand, as time would.
SELECT medanon.create_contract('{"id": "up_expired", "grantee": "up_old", "purpose": "upgrade test: expired",
    "approved_on": "2026-01-01", "expires_on": "2099-12-31", "kind": "anonymized", "k": 2, "reference_date": "2026-04-01",
    "tables": [{"source": "up.patient", "columns": {"person_id": "token", "sex": "keep"}}]}');
SELECT medanon.publish_contract('up_expired');
RESET ROLE;
UPDATE medanon.contract SET expires_on = DATE '2026-02-01' WHERE contract_id = 'up_expired';

-- What must survive, copied out of the extension's tables.
CREATE SCHEMA upgrade_check;
CREATE TABLE upgrade_check.keyring AS SELECT key_id, purpose, material, active, origin, created_at, retired_at FROM medanon.keyring;
CREATE TABLE upgrade_check.person AS SELECT * FROM medanon.person;
CREATE TABLE upgrade_check.person_link AS SELECT * FROM medanon.person_link;
CREATE TABLE upgrade_check.person_merge_log AS SELECT * FROM medanon.person_merge_log;
CREATE TABLE upgrade_check.institution AS SELECT * FROM medanon.institution;
CREATE TABLE upgrade_check.notification AS SELECT * FROM medanon.notification;
CREATE TABLE upgrade_check.opt_out AS SELECT * FROM medanon.opt_out;
CREATE TABLE upgrade_check.opt_out_withdrawal AS SELECT * FROM medanon.opt_out_withdrawal;
CREATE TABLE upgrade_check.source AS SELECT * FROM medanon.source;
CREATE TABLE upgrade_check.source_column AS SELECT * FROM medanon.source_column;
CREATE TABLE upgrade_check.certified_user AS SELECT * FROM medanon.certified_user;
CREATE TABLE upgrade_check.contract AS SELECT * FROM medanon.contract;
CREATE TABLE upgrade_check.provision_ledger AS SELECT * FROM medanon.provision_ledger;
CREATE TABLE upgrade_check.contract_person AS SELECT contract_id, person_id, token::text AS token, date_offset, state FROM medanon.contract_person;
-- Keyed values for fixed inputs, under the keys as they are.
CREATE TABLE upgrade_check.keyed AS
SELECT 'tokenize' AS f, medanon.tokenize('山田太郎', 'upgrade') AS v
UNION ALL SELECT 'tokenize2', medanon.tokenize('12345', 'contract:x')
UNION ALL SELECT '_link_id1', medanon._link_id1('06000001', '記1', '0001', '1950-10-28', '2')::text
UNION ALL SELECT '_link_id2', medanon._link_id2('ﾀﾅｶ ｱ', '1950-10-28', '2')::text
UNION ALL SELECT '_link_block', medanon._link_block('1950-10-28', '2')::text
UNION ALL SELECT '_link_clk', encode(medanon._link_clk('ﾀﾅｶ ｱ'), 'hex')
UNION ALL SELECT 'active_key_id', medanon.active_key_id()::text;
-- The contracts' views as their grantees read them, and the shifted dates of
-- each person of the pseudonymized contract.
CREATE TABLE upgrade_check.view_rows (contract_id text, view_name text, grantee text, n bigint, persons bigint);
GRANT SELECT, INSERT ON upgrade_check.view_rows TO up_lab, up_pharma;
GRANT USAGE ON SCHEMA upgrade_check TO up_lab, up_pharma;
SET ROLE up_lab;
INSERT INTO upgrade_check.view_rows SELECT 'up_anon', 'patient', 'up_lab', count(*), count(DISTINCT person_id) FROM contract_up_anon.patient;
INSERT INTO upgrade_check.view_rows SELECT 'up_anon', 'visit', 'up_lab', count(*), count(DISTINCT person_id) FROM contract_up_anon.visit;
INSERT INTO upgrade_check.view_rows SELECT 'up_anon_snap_1', 'patient', 'up_lab', count(*), count(DISTINCT person_id) FROM contract_up_anon_snap_1.patient;
RESET ROLE;
SET ROLE up_pharma;
INSERT INTO upgrade_check.view_rows SELECT 'up_pseudo', 'visit', 'up_pharma', count(*), count(DISTINCT person_id) FROM contract_up_pseudo.visit;
RESET ROLE;
CREATE TABLE upgrade_check.shifted AS
SELECT m.person_id, array_agg(v.visit_date ORDER BY v.visit_date) AS dates
  FROM contract_up_pseudo.visit v JOIN medanon.contract_person m ON m.contract_id = 'up_pseudo' AND m.token = v.person_id
 GROUP BY m.person_id;
CREATE TABLE upgrade_check.snapshot AS SELECT * FROM contract_up_anon_snap_1.patient;

DO $$ BEGIN
    IF (SELECT count(*) FROM upgrade_check.person_link) <> 52 OR (SELECT count(*) FROM upgrade_check.person) <> 40
       OR (SELECT count(*) FROM upgrade_check.shifted) < 30 OR (SELECT count(*) FROM upgrade_check.opt_out) <> 3 THEN
        RAISE EXCEPTION 'the 0.1.0 state is not what the test expects: % links, % persons, % shifted persons, % opt-outs',
            (SELECT count(*) FROM upgrade_check.person_link), (SELECT count(*) FROM upgrade_check.person),
            (SELECT count(*) FROM upgrade_check.shifted), (SELECT count(*) FROM upgrade_check.opt_out);
    END IF;
END $$;
\echo 0.1.0 state created
