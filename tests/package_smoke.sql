-- The smoke test of an installed package (scripts/test-package.sh): one call or
-- more of every function family, on a fresh cluster, as a superuser, an operator
-- login and an analyst login. Every check raises when it does not hold.
--   psql -v version=0.1.0 -f tests/package_smoke.sql
\set ON_ERROR_STOP 1
\set QUIET 1
-- Only the NOTICEs (stderr) and the last line show.
\o /dev/null
SET client_min_messages = warning;

CREATE EXTENSION medanon;
CREATE ROLE smoke_etl LOGIN;
CREATE ROLE smoke_lab LOGIN;
GRANT medanon_operator TO smoke_etl;

CREATE FUNCTION pg_temp.check(ok boolean, what text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF ok IS NOT TRUE THEN
        RAISE EXCEPTION 'smoke test failed: %', what;
    END IF;
    RAISE NOTICE 'ok: %', what;
END $$;
-- The SQLSTATE a statement fails with, or NULL.
CREATE FUNCTION pg_temp.sqlstate_of(sql text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE sql;
    RETURN NULL;
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE;
END $$;
GRANT EXECUTE ON FUNCTION pg_temp.check(boolean, text), pg_temp.sqlstate_of(text) TO PUBLIC;
SET client_min_messages = notice;

SELECT pg_temp.check(extversion = :'version', 'CREATE EXTENSION medanon installs version ' || :'version')
  FROM pg_extension WHERE extname = 'medanon';
SELECT pg_temp.check(count(*) = 1, 'the first pseudonym key exists') FROM medanon.keyring WHERE active AND purpose = 'pseudonym';

-- Keyless functions, as the analyst.
SET ROLE smoke_lab;
SELECT pg_temp.check(medanon.generalize_age('1980-05-01', '2026-04-01') = int4range(45, 50), 'generalize_age');
SELECT pg_temp.check(medanon.parse_japanese_date('昭和55年5月1日') = DATE '1980-05-01', 'parse_japanese_date');
SELECT pg_temp.check(medanon.generalize_postal_code('123-4567', 3) = '123-****', 'generalize_postal_code');
SELECT pg_temp.check(medanon.prefecture_of('大阪市北区梅田1-1') = '大阪府', 'prefecture_of');
SELECT pg_temp.check(medanon.icd10_category('E11.9') = 'E11', 'icd10_category');
SELECT pg_temp.check(medanon.normalize_kana('ﾀﾅｶ ﾀﾛｳ') = 'タナカタロウ', 'normalize_kana');
SELECT pg_temp.check(pg_temp.sqlstate_of('SELECT medanon.parse_japanese_date(''平成31年5月1日'')') = '22007',
                     'a date that cannot be is 22007');
-- Keyed functions are the operator's: the analyst gets 42501.
SELECT pg_temp.check(pg_temp.sqlstate_of('SELECT medanon.tokenize(''x'', ''d'')') = '42501', 'tokenize is denied to the analyst');
RESET ROLE;

-- Keyed functions, as the operator.
SET ROLE smoke_etl;
SELECT pg_temp.check(medanon.tokenize('x', 'd') ~ '^[0-9a-f]{64}$', 'tokenize as the operator');
SELECT pg_temp.check(medanon.tokenize('x', 'd') <> medanon.tokenize('x', 'e'), 'tokens differ across domains');
SELECT pg_temp.check(medanon.shift_date(DATE '2024-01-01', 'p1', 'd') <> DATE '2024-01-01'
                     AND (medanon.shift_date(DATE '2024-01-01', 'p1', 'd') - DATE '2024-01-01') % 7 = 0, 'shift_date');
RESET ROLE;

-- Linking and consent: 30 patients at one hospital, notified 40 days ago.
CREATE SCHEMA smoke;
CREATE TABLE smoke.staging (institution_code text, local_patient_id text, name_kana text,
    birth_date text, sex text, insurer_number text, insured_symbol text, insured_number text);
INSERT INTO smoke.staging
SELECT 'H1', 'p' || i, 'ﾀﾅｶ ' || chr(12450 + i * 2), (DATE '1950-01-01' + i * 300)::text, (1 + i % 2)::text, '', '', ''
  FROM generate_series(1, 30) i;
GRANT USAGE ON SCHEMA smoke TO smoke_etl;
GRANT SELECT ON ALL TABLES IN SCHEMA smoke TO smoke_etl;
SET ROLE smoke_etl;
SELECT medanon.register_institution('H1', 'Hospital 1', 'hospital');
SELECT count(medanon.record_notification('H1', local_patient_id, now() - interval '40 days')) FROM smoke.staging;
SELECT pg_temp.check((medanon.link_patients('smoke.staging') ->> 'linked')::int = 30, 'link_patients links 30 records');
SELECT pg_temp.check((medanon.link_report() ->> 'persons')::int = 30, 'link_report counts 30 persons');
SELECT pg_temp.check(count(DISTINCT person_id) = 30, 'eligible_persons after notice and the wait') FROM medanon.eligible_persons;
SELECT medanon.opt_out('H1', 'p7', 'self');
SELECT pg_temp.check(count(DISTINCT person_id) = 29, 'an opt-out removes the person') FROM medanon.eligible_persons;
RESET ROLE;

-- A tiny contract, published by the operator and read by the analyst.
CREATE TABLE smoke.patient AS
SELECT l.person_id, s.birth_date::date AS birth_date, s.sex::smallint AS sex
  FROM smoke.staging s JOIN medanon.person_link l USING (institution_code, local_patient_id);
CREATE TABLE smoke.visit AS
SELECT p.person_id, DATE '2024-01-01' + (p.person_id::int * 3 + g * 20) AS visit_date, (ARRAY['I10', 'E11'])[1 + g % 2] AS icd10
  FROM smoke.patient p, generate_series(1, 3) g;
GRANT SELECT ON ALL TABLES IN SCHEMA smoke TO smoke_etl;
SET ROLE smoke_etl;
SELECT medanon.register_source('smoke.patient', 'person_id');
SELECT medanon.register_source('smoke.visit', 'person_id');
SELECT medanon.classify('smoke.patient', c, cls)
  FROM (VALUES ('person_id', 'identifier'), ('birth_date', 'quasi_identifier'), ('sex', 'quasi_identifier')) v(c, cls);
SELECT medanon.classify('smoke.visit', c, cls)
  FROM (VALUES ('person_id', 'identifier'), ('visit_date', 'static'), ('icd10', 'semi_static')) v(c, cls);
SELECT medanon.create_contract('{"id": "smoke", "grantee": "smoke_lab", "purpose": "package smoke test",
    "approved_on": "2026-01-01", "expires_on": "2099-12-31", "kind": "anonymized", "k": 2, "reference_date": "2026-04-01",
    "tables": [{"source": "smoke.patient", "columns": {"person_id": "token", "birth_date": {"age_band": {"band": 50}}, "sex": "keep"}},
               {"source": "smoke.visit", "columns": {"person_id": "token", "visit_date": "shift", "icd10": "keep"}}]}');
-- 29 persons may be shown; the calendar check withholds the few whose shifted
-- dates the calendar would give back (their number depends on the key).
SELECT medanon.publish_contract('smoke') -> 'persons' AS persons \gset
SELECT pg_temp.check((:'persons'::jsonb ->> 'visible')::int + (:'persons'::jsonb ->> 'calendar')::int = 29
                     AND (:'persons'::jsonb ->> 'visible')::int >= 20, 'publish_contract shows the 29 persons not opted out: ' || :'persons');
SELECT pg_temp.check(persons_excluded_consent = 1, 'contract_report counts the opt-out') FROM medanon.contract_report('smoke');
RESET ROLE;
SET ROLE smoke_lab;
SELECT pg_temp.check(count(DISTINCT person_id) = (:'persons'::jsonb ->> 'visible')::int, 'the analyst reads the contract view')
  FROM contract_smoke.patient;
SELECT pg_temp.check(medanon.k_anonymity('contract_smoke.patient', ARRAY['birth_date', 'sex'], 'person_id') >= 2,
                     'k_anonymity of the view holds k');
SELECT pg_temp.check(pg_temp.sqlstate_of('SELECT * FROM smoke.patient') = '42501', 'the analyst cannot read the source');
RESET ROLE;
SET ROLE smoke_etl;
SELECT pg_temp.check(medanon.release_snapshot('smoke') = 'contract_smoke_snap_1', 'release_snapshot');
SELECT medanon.revoke_contract('smoke');
SELECT pg_temp.check(medanon.verify_ledger() IS NULL, 'the provision ledger verifies');
-- Operations, on a cluster without pgaudit and pg_cron.
SELECT pg_temp.check(NOT medanon.reads_audited(), 'reads_audited() says reads are not audited without pgaudit');
SELECT pg_temp.check(pg_temp.sqlstate_of('SELECT medanon.schedule_expiry()') = '55000', 'schedule_expiry() without pg_cron is 55000');
SELECT pg_temp.check(array_agg(event ORDER BY entry_id) = ARRAY['create', 'publish', 'snapshot', 'revoke'],
                     'the ledger records create, publish, snapshot, revoke')
  FROM medanon.provision_ledger WHERE contract_id = 'smoke';
RESET ROLE;
SELECT pg_temp.check(to_regnamespace('contract_smoke') IS NULL, 'revoke drops the views');
DROP EXTENSION medanon CASCADE;
\echo package smoke test: every check passed
