-- Contracts, second part: publish, the views as their grantees see them, live
-- consent and k, reports, snapshots, safe_counts, refresh, revoke and expiry.
-- Keys are random per install, so tokens and offsets are never printed: the
-- output shows what holds of them.
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS medanon CASCADE;
CREATE EXTENSION medanon;
DROP ROLE IF EXISTS regress_lab_a;
DROP ROLE IF EXISTS regress_lab_b;
DROP ROLE IF EXISTS regress_etl;
DROP ROLE IF EXISTS regress_lab_s;
RESET client_min_messages;
CREATE ROLE regress_lab_a;
CREATE ROLE regress_lab_b;
CREATE ROLE regress_etl;
CREATE ROLE regress_lab_s;
GRANT medanon_operator TO regress_etl;

-- 40 patients at H1, 10 of them also at H2 (birth dates written as ISO text, whatever
-- the session's DateStyle: pg_regress runs with Postgres, MDY). Notified 60 days ago, except p40
-- (notified 5 days ago: still in the waiting period).
CREATE TABLE staging (institution_code text, local_patient_id text, name_kana text, birth_date text, sex text,
                      insurer_number text, insured_symbol text, insured_number text);
INSERT INTO staging
SELECT 'H1', 'p' || i, 'ﾀﾅｶ ' || chr(12450 + i * 2), to_char(DATE '1950-01-01' + i * 400, 'YYYY-MM-DD'), (1 + i % 2)::text, '', '', ''
  FROM generate_series(1, 40) i;
INSERT INTO staging SELECT 'H2', 'q' || local_patient_id, name_kana, birth_date, sex, '', '', ''
  FROM staging WHERE substring(local_patient_id from '[0-9]+')::int <= 10;
SELECT medanon.link_patients('staging') ->> 'new_persons' AS persons;
SELECT medanon.register_institution('H1', '東都大学病院', 'hospital'), medanon.register_institution('H2', '城南クリニック', 'clinic');
SELECT count(medanon.record_notification(institution_code, local_patient_id,
             now() - CASE WHEN local_patient_id = 'p40' THEN interval '5 days' ELSE interval '60 days' END)) AS notified
  FROM staging;

-- The raw tables the ETL keeps, with person_id from person_link.
CREATE SCHEMA clinical;
CREATE TABLE clinical.patient AS
SELECT l.person_id, s.name_kana AS name, s.birth_date::date AS birth_date, s.sex::smallint AS sex,
       CASE WHEN substring(s.local_patient_id from '[0-9]+')::int <= 20 THEN '100-0001' ELSE '530-0001' END AS postal_code,
       CASE WHEN substring(s.local_patient_id from '[0-9]+')::int <= 20 THEN '東京都千代田区' ELSE '大阪府大阪市北区' END AS address,
       'A' AS blood_type
  FROM staging s JOIN medanon.person_link l USING (institution_code, local_patient_id) WHERE s.institution_code = 'H1';
CREATE TABLE clinical.visit AS
SELECT l.person_id, s.institution_code, DATE '2024-01-01' + (g * 30 + 7 * substring(s.local_patient_id from '[0-9]+')::int) AS visit_date,
       (ARRAY['I10', 'E11', 'J45'])[1 + g % 3] AS icd10, (200 + g * 150)::numeric AS lab_value
  FROM staging s JOIN medanon.person_link l USING (institution_code, local_patient_id), generate_series(0, 2) g;
-- p39 also visited years before and after everyone else (on open days). The study
-- window, the span of the real dates shown, is then wide enough that no other
-- person's shifted dates are narrowed by it, whatever their random offsets; p39,
-- whose dates span the whole window, is withheld by the calendar check (state
-- calendar) in every run.
INSERT INTO clinical.visit
SELECT l.person_id, 'H1', v.d, 'I10', 200
  FROM medanon.person_link l, (VALUES (DATE '2020-01-06'), (DATE '2028-12-04')) v(d)
 WHERE l.institution_code = 'H1' AND l.local_patient_id = 'p39';
SELECT medanon.register_source('clinical.patient', 'person_id'),
       medanon.register_source('clinical.visit', 'person_id', 'institution_code');
SELECT count(medanon.classify('clinical.patient', c, cls)) AS classified
  FROM (VALUES ('person_id', 'identifier'), ('name', 'identifier'), ('birth_date', 'quasi_identifier'),
               ('sex', 'quasi_identifier'), ('postal_code', 'quasi_identifier'), ('address', 'quasi_identifier')) v(c, cls);
SELECT count(medanon.classify('clinical.visit', c, cls)) AS classified
  FROM (VALUES ('person_id', 'identifier'), ('institution_code', 'quasi_identifier'), ('visit_date', 'static'),
               ('icd10', 'semi_static'), ('lab_value', 'dynamic')) v(c, cls);
-- The operator's ETL role reads the raw tables it publishes (blood_type is never classified).
GRANT USAGE ON SCHEMA clinical TO regress_etl;
GRANT SELECT ON clinical.patient, clinical.visit TO regress_etl;

-- Contract A: the issue's example (k = 5, ages in 30-year bands). Contract B: the
-- visits only, for another grantee, with months instead of shifted dates (k = 2).
\set spec_a '{"id": "ca", "grantee": "regress_lab_a", "purpose": "post-marketing safety of drug X", "approved_on": "2026-11-01", "expires_on": "2099-03-31", "kind": "anonymized", "k": 5, "reference_date": "2026-04-01", "tables": [{"source": "clinical.patient", "columns": {"person_id": "token", "birth_date": {"age_band": {"band": 30, "top": 90}}, "sex": "keep", "postal_code": {"postal_prefix": 3}, "address": "prefecture"}}, {"source": "clinical.visit", "columns": {"person_id": "token", "visit_date": "shift", "icd10": "keep", "lab_value": {"top_code": 500}}}]}'
\set spec_b '{"id": "cb", "grantee": "regress_lab_b", "purpose": "cohort", "approved_on": "2026-11-01", "expires_on": "2099-03-31", "kind": "anonymized", "k": 2, "tables": [{"source": "clinical.visit", "columns": {"person_id": "token", "visit_date": {"truncate_date": "month"}, "icd10": "keep"}}]}'
SET ROLE regress_etl;
SELECT medanon.create_contract(:'spec_a'), medanon.create_contract(:'spec_b');
SELECT medanon.publish_contract('ca') AS published_a;
SELECT medanon.publish_contract('cb') - 'schema' AS published_b;
SELECT * FROM medanon.contract_report('ca');
-- Publish gave each grantee an idle-in-transaction timeout: an analyst's forgotten
-- open transaction does not hold the views for long.
SELECT rolname, rolconfig FROM pg_roles WHERE rolname IN ('regress_lab_a', 'regress_lab_b') ORDER BY 1;
-- Publishing twice, refreshing what is not published, an unknown contract, an old snapshot.
SELECT medanon.publish_contract('ca');
SELECT medanon.create_contract(jsonb_set(:'spec_a', '{id}', '"cc"'));
SELECT medanon.refresh_contract('cc');
SELECT medanon.publish_contract('nope');
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT medanon.publish_contract('cc');
ROLLBACK;
RESET ROLE;

-- The views: named like the sources, columns named like theirs, in their order;
-- dropped and unnamed columns are not there.
SELECT table_schema, table_name, string_agg(column_name || ' ' || data_type, ', ' ORDER BY ordinal_position) AS columns
  FROM information_schema.columns WHERE table_schema IN ('contract_ca', 'contract_cb') GROUP BY 1, 2 ORDER BY 1, 2;
SELECT c.relnamespace::regnamespace AS schema, c.relname, c.relkind, c.reloptions, has_table_privilege('regress_lab_a', c.oid, 'SELECT') AS a_reads,
       has_table_privilege('regress_lab_b', c.oid, 'SELECT') AS b_reads, has_table_privilege('public', c.oid, 'SELECT') AS public_reads
  FROM pg_class c WHERE c.relnamespace::regnamespace::text LIKE 'contract_c_%' ORDER BY 1, 2;
-- No view calls a keyed function (the analyst could not run it anyway).
SELECT count(*) AS views_with_keyed_functions FROM pg_views
 WHERE schemaname LIKE 'contract_%' AND definition ~ '(tokenize|shift_date|date_offset|_link_\w+)\(';

-- As grantee A.
SET ROLE regress_lab_a;
SELECT birth_date AS age_band, sex, postal_code, address, count(*) AS persons
  FROM contract_ca.patient GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4;
-- One token per person across the contract's tables: every visit joins its patient.
SELECT count(*) AS visits, count(p.person_id) AS joined, count(DISTINCT v.person_id) AS persons,
       pg_typeof(min(v.person_id))::text AS token_type, max(lab_value) AS max_lab
  FROM contract_ca.visit v LEFT JOIN contract_ca.patient p USING (person_id);
-- A leaky function sees only the rows the view shows: withheld persons' rows are not
-- in the data table at all, so there is nothing under the view to leak.
CREATE TEMP TABLE seen (postal_code text);
CREATE FUNCTION pg_temp.peek(t text) RETURNS boolean LANGUAGE plpgsql COST 0.0000001 AS $$
BEGIN INSERT INTO seen VALUES (t); RETURN true; END $$;
SELECT count(*) AS rows_returned FROM contract_ca.patient WHERE pg_temp.peek(postal_code);
SELECT count(*) AS rows_the_function_saw FROM seen;
DROP FUNCTION pg_temp.peek(text);
DROP TABLE seen;
-- What an analyst cannot do.
SELECT count(*) FROM contract_cb.patient;
SELECT count(*) FROM clinical.patient;
SELECT count(*) FROM medanon.keyring;
SELECT count(*) FROM medanon.contract_person;
SELECT count(*) FROM medanon.provision_ledger;
SELECT count(*) FROM medanon.person_link;
SELECT medanon.tokenize('1', 'contract:ca');
SELECT medanon.date_offset('1', 'contract:ca');
SELECT medanon.contract_report('ca');
CREATE VIEW contract_ca.mine AS SELECT 1;
RESET ROLE;

-- Tokens differ between contracts; offsets are per person and per contract, never
-- 0, whole weeks within max_shift_days, and the same for every date of a person.
SELECT count(*) AS shared_tokens FROM medanon.contract_person a JOIN medanon.contract_person b USING (token)
 WHERE a.contract_id = 'ca' AND b.contract_id = 'cb';
SELECT count(*) FILTER (WHERE a.date_offset = b.date_offset) < 3 AS offsets_differ,
       bool_and(a.date_offset <> 0 AND abs(a.date_offset) <= 728 AND a.date_offset % 7 = 0) AS offsets_in_range
  FROM medanon.contract_person a JOIN medanon.contract_person b USING (person_id)
 WHERE a.contract_id = 'ca' AND b.contract_id = 'cb';
-- Every shown visit date of a person, moved back by the person's offset, is the raw date.
WITH shown AS (
  SELECT m.person_id, array_agg(v.visit_date - m.date_offset ORDER BY v.visit_date) AS dates
    FROM contract_ca.visit v JOIN medanon.contract_person m ON m.contract_id = 'ca' AND m.token = v.person_id GROUP BY 1),
raw AS (SELECT person_id, array_agg(visit_date ORDER BY visit_date) AS dates FROM clinical.visit GROUP BY 1)
SELECT count(*) AS persons_shown, count(*) FILTER (WHERE s.dates = r.dates) AS dates_moved_by_one_offset
  FROM shown s JOIN raw r USING (person_id);

-- Consent: p40 waits; an opt-out hides a person from every view at once, and a
-- class that falls below k goes with it.
SELECT state, count(*) FROM medanon.contract_person WHERE contract_id = 'ca' GROUP BY 1 ORDER BY 1;
SELECT l.person_id AS p3 FROM medanon.person_link l WHERE l.local_patient_id = 'p3' \gset
SELECT cp.class_key AS p3_class, cc.persons AS p3_class_persons FROM medanon.contract_person cp
  JOIN medanon.contract_class cc USING (contract_id, class_key) WHERE cp.contract_id = 'ca' AND cp.person_id = :p3 \gset
SELECT :p3_class_persons >= 5 AS p3_class_shown;
-- Opt out everyone of p3's class but p3 and four others: the class keeps exactly 5 ...
SELECT count(medanon.opt_out(l.institution_code, l.local_patient_id, 'self')) AS opted_out
  FROM medanon.contract_person cp JOIN medanon.person_link l USING (person_id)
 WHERE cp.contract_id = 'ca' AND cp.class_key = :'p3_class' AND l.institution_code = 'H1'
   AND cp.person_id IN (SELECT person_id FROM medanon.contract_person WHERE contract_id = 'ca' AND class_key = :'p3_class'
                         ORDER BY person_id = :p3 DESC, person_id OFFSET 5);
SELECT persons FROM medanon.contract_class WHERE contract_id = 'ca' AND class_key = :'p3_class';
SELECT count(*) AS p3_class_visible FROM medanon.contract_person WHERE contract_id = 'ca' AND class_key = :'p3_class' AND state = 'visible';
-- ... and p3's own opt-out takes it to 4: the whole class is suppressed at once.
SELECT medanon.opt_out('H2', 'qp3', 'bereaved_family', 'child', 'all', now()) > 0 AS opted_out;
SELECT state, count(*) FROM medanon.contract_person WHERE contract_id = 'ca' AND class_key = :'p3_class' GROUP BY 1 ORDER BY 1;
SELECT count(*) AS p3_in_views FROM contract_ca.patient p JOIN medanon.contract_person m ON m.contract_id = 'ca' AND m.token = p.person_id
 WHERE m.person_id = :p3;
-- In every contract: p3 is gone from B too, whose k is still met.
SELECT contract_id, state FROM medanon.contract_person WHERE person_id = :p3 ORDER BY 1;
-- Every class shown holds at least k persons, counted in the views themselves.
SET ROLE regress_lab_a;
SELECT coalesce(min(n) >= 5, false) AS k_holds, count(*) AS classes FROM (SELECT count(DISTINCT person_id) AS n FROM contract_ca.patient GROUP BY birth_date, sex, postal_code, address) c;
RESET ROLE;
SELECT * FROM medanon.contract_report('ca');

-- An opt-out limited to one institution keeps that institution's records out
-- after the next refresh; until then the person is withheld whole.
SELECT l.person_id AS p5 FROM medanon.person_link l WHERE l.local_patient_id = 'p5' \gset
SELECT medanon.opt_out('H2', 'qp5', 'self', NULL, 'institution', now()) > 0 AS opted_out;
SELECT state FROM medanon.contract_person WHERE contract_id = 'cb' AND person_id = :p5;
SET ROLE regress_etl;
SELECT medanon.refresh_contract('cb') -> 'persons' AS refreshed_b;
RESET ROLE;
SELECT state, excluded_institutions FROM medanon.contract_person WHERE contract_id = 'cb' AND person_id = :p5;
SELECT count(*) AS p5_visits_in_b FROM contract_cb.visit v JOIN medanon.contract_person m ON m.contract_id = 'cb' AND m.token = v.person_id
 WHERE m.person_id = :p5;

-- Refresh takes in new data and a person whose wait is over; tokens stay.
CREATE TEMP TABLE tokens_before AS SELECT person_id, token, date_offset FROM medanon.contract_person WHERE contract_id = 'ca';
INSERT INTO clinical.visit SELECT person_id, 'H1', DATE '2025-06-01', 'C34', 900 FROM clinical.patient;
SET ROLE regress_etl;
SELECT medanon.refresh_contract('ca') -> 'views' AS refreshed_a;
RESET ROLE;
SELECT count(*) AS tokens_kept, count(*) FILTER (WHERE b.token <> m.token OR b.date_offset <> m.date_offset) AS changed
  FROM tokens_before b JOIN medanon.contract_person m ON m.contract_id = 'ca' AND m.person_id = b.person_id;

-- safe_counts: as the grantee, on its own views only.
SET ROLE regress_lab_a;
SELECT * FROM medanon.safe_counts('ca', 'visit', ARRAY['icd10']);
SELECT * FROM medanon.safe_counts('ca', 'patient', ARRAY['sex', 'address'], 12);
SELECT * FROM medanon.safe_counts('cb', 'visit', ARRAY['icd10']);
SELECT * FROM medanon.safe_counts('ca', 'visit', ARRAY['icd10'], 0);
SELECT * FROM medanon.safe_counts('ca', 'nothing', ARRAY['icd10']);
SELECT * FROM medanon.safe_counts('ca', 'visit', ARRAY['no_such']);
SELECT * FROM medanon.safe_counts('ca', 'visit', ARRAY['icd10', 'icd10']);
-- The floor is the contract's (min_cell, 10 by default): asking for 1 is raised to it.
SELECT * FROM medanon.safe_counts('ca', 'patient', ARRAY['sex', 'address'], 1);
RESET ROLE;

-- A snapshot: frozen, hashed into the ledger, readable by the grantee only.
SET ROLE regress_etl;
SELECT medanon.release_snapshot('ca') AS snapshot;
RESET ROLE;
SELECT (SELECT count(*) FROM contract_ca_snap_1.patient) = (SELECT count(*) FROM contract_ca.patient) AS same_rows,
       (SELECT count(*) FROM contract_ca_snap_1.visit) = (SELECT count(*) FROM contract_ca.visit) AS same_visits;
-- The ledger's hash is the one the README defines, recomputed here in SQL.
SELECT l.detail #>> '{tables,patient,sha256}' = encode(sha256(convert_to(
         (SELECT string_agg(t::text || E'\n', '' ORDER BY t::text COLLATE "C") FROM contract_ca_snap_1.patient t), 'UTF8')), 'hex')
       AS hash_matches,
       l.row_count = (SELECT count(*) FROM contract_ca_snap_1.patient) + (SELECT count(*) FROM contract_ca_snap_1.visit) AS rows_match
  FROM medanon.provision_ledger l WHERE l.event = 'snapshot';
SET ROLE regress_lab_b;
SELECT count(*) FROM contract_ca_snap_1.patient;
RESET ROLE;
-- A later opt-out leaves the delivered copy as it was, and leaves the live views.
SELECT count(*) AS snap_rows_before FROM contract_ca_snap_1.patient \gset
SELECT medanon.opt_out('H1', 'p30', 'self') > 0 AS opted_out;
SELECT (SELECT count(*) FROM contract_ca_snap_1.patient) = :snap_rows_before AS snapshot_frozen,
       (SELECT count(*) FROM contract_ca.patient) < :snap_rows_before AS live_view_smaller;

-- The provision ledger: every event, append-only.
SELECT event, contract_id, row_count IS NOT NULL AS rows, person_count IS NOT NULL AS persons, length(spec_sha256) AS sha
  FROM medanon.provision_ledger ORDER BY entry_id;
DELETE FROM medanon.provision_ledger;

-- A pseudonymized contract (仮名加工医療情報): for a registered certified user only,
-- no k, exact dates kept; identifiers still tokenized.
SELECT medanon.register_certified_user('regress_lab_b');
SET ROLE regress_etl;
SELECT medanon.create_contract('{"id": "cp", "grantee": "regress_lab_b", "purpose": "pseudonymized research", "approved_on": "2026-11-01", "expires_on": "2099-03-31", "kind": "pseudonymized", "tables": [{"source": "clinical.patient", "columns": {"person_id": "token", "birth_date": "keep", "postal_code": "keep"}}, {"source": "clinical.visit", "columns": {"person_id": "token", "visit_date": "keep", "icd10": "keep"}}]}');
SELECT medanon.publish_contract('cp') -> 'persons' AS persons_p;
RESET ROLE;
SET ROLE regress_lab_b;
-- Exact birth dates, one person per class: nothing suppressed for want of k.
SELECT count(*) AS patients, count(DISTINCT birth_date) AS distinct_birth_dates FROM contract_cp.patient;
RESET ROLE;
SELECT count(*) AS visits_with_exact_dates
  FROM contract_cp.visit v JOIN medanon.contract_person m ON m.contract_id = 'cp' AND m.token = v.person_id
  JOIN clinical.visit r ON r.person_id = m.person_id AND r.visit_date = v.visit_date AND r.icd10 = v.icd10;
SELECT count(*) AS tokens_shared_with_ca FROM medanon.contract_person a JOIN medanon.contract_person b USING (token)
 WHERE a.contract_id = 'cp' AND b.contract_id = 'ca';
SET ROLE regress_etl;
SELECT medanon.revoke_contract('cp');
RESET ROLE;

-- A statistics contract (統計情報として提供): built like an anonymized one, but its
-- grantee reads no view; it gets counts of at least the contract's min_cell (12)
-- from safe_counts, suppressed cells left out, and each call is in the ledger.
SET ROLE regress_etl;
SELECT medanon.create_contract('{"id": "cst", "grantee": "regress_lab_s", "purpose": "trial feasibility", "approved_on": "2026-11-01", "expires_on": "2099-03-31", "kind": "statistics", "k": 2, "min_cell": 12, "tables": [{"source": "clinical.visit", "columns": {"person_id": "token", "icd10": "keep", "institution_code": "keep"}}]}');
SELECT medanon.publish_contract('cst') -> 'persons' AS persons_st;
SELECT medanon.create_contract('{"id": "cst2", "grantee": "regress_lab_s", "purpose": "x", "approved_on": "2026-11-01", "expires_on": "2099-03-31", "kind": "statistics", "tables": [{"source": "clinical.visit", "columns": {"person_id": "token"}}]}');
SELECT medanon.create_contract('{"id": "cst2", "grantee": "regress_lab_s", "purpose": "x", "approved_on": "2026-11-01", "expires_on": "2099-03-31", "kind": "statistics", "k": 2, "min_cell": 1, "tables": [{"source": "clinical.visit", "columns": {"person_id": "token"}}]}');
SELECT medanon.release_snapshot('cst');
RESET ROLE;
SELECT c.relname, has_schema_privilege('regress_lab_s', c.relnamespace, 'USAGE') AS s_uses_schema,
       has_table_privilege('regress_lab_s', c.oid, 'SELECT') AS s_reads
  FROM pg_class c WHERE c.relnamespace = 'contract_cst'::regnamespace ORDER BY 1;
SET ROLE regress_lab_s;
SELECT count(*) FROM contract_cst.visit;
SELECT * FROM medanon.safe_counts('cst', 'visit', ARRAY['institution_code', 'icd10'], 1);
SELECT * FROM medanon.safe_counts('ca', 'visit', ARRAY['icd10']);
RESET ROLE;
SET ROLE regress_lab_a;
SELECT * FROM medanon.safe_counts('cst', 'visit', ARRAY['icd10']);
RESET ROLE;
SELECT recorded_by, person_count, detail - 'call' AS detail FROM medanon.provision_ledger WHERE event = 'safe_counts' ORDER BY entry_id;
SET ROLE regress_etl;
SELECT medanon.revoke_contract('cst');
RESET ROLE;

-- The views show nothing after expires_on: the condition is in each view, and
-- expire_contracts closes contracts past it.
SELECT count(*) AS views_with_expiry FROM pg_views WHERE schemaname = 'contract_ca' AND definition LIKE '%CURRENT_DATE <= ''2099-03-31''::date%';
SELECT count(*) AS snapshot_policies FROM pg_policies WHERE schemaname = 'contract_ca_snap_1' AND qual LIKE '%CURRENT_DATE <= ''2099-03-31''::date%';
UPDATE medanon.contract SET expires_on = CURRENT_DATE - 1 WHERE contract_id = 'cb';
SET ROLE regress_etl;
-- (the message names yesterday's date; the SQLSTATE says what matters)
\set VERBOSITY sqlstate
SELECT medanon.refresh_contract('cb');
\set VERBOSITY default
SELECT medanon.expire_contracts() AS expired;
SELECT medanon.revoke_contract('ca');
SELECT medanon.revoke_contract('ca');
RESET ROLE;
SELECT contract_id, status FROM medanon.contract ORDER BY 1;
SELECT nspname FROM pg_namespace WHERE nspname LIKE 'contract%';
SELECT count(*) AS map_rows_left FROM medanon.contract_person;
SELECT event, contract_id, person_count IS NOT NULL AS persons, detail -> 'dropped_schemas' AS dropped
  FROM medanon.provision_ledger WHERE event IN ('revoke', 'expire') ORDER BY entry_id;

-- An operator cannot publish what it may not read itself.
CREATE TABLE clinical.secret (person_id bigint, diagnosis text);
SELECT medanon.register_source('clinical.secret', 'person_id');
SELECT medanon.classify('clinical.secret', 'person_id', 'identifier'), medanon.classify('clinical.secret', 'diagnosis', 'semi_static');
SET ROLE regress_etl;
SELECT medanon.create_contract('{"id": "cs", "grantee": "regress_etl", "purpose": "x", "approved_on": "2026-11-01", "expires_on": "2099-01-01", "kind": "anonymized", "k": 2, "tables": [{"source": "clinical.secret", "columns": {"person_id": "token", "diagnosis": "keep"}}]}');
SELECT medanon.publish_contract('cs');
RESET ROLE;

SET client_min_messages = warning;
DROP SCHEMA clinical CASCADE;
DROP TABLE staging;
DROP EXTENSION medanon CASCADE;
RESET client_min_messages;
DROP ROLE regress_lab_a;
DROP ROLE regress_lab_b;
DROP ROLE regress_etl;
DROP ROLE regress_lab_s;
