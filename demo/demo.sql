-- make demo: the foundation of medanon on synthetic hospital data.
\pset footer off
\pset null '∅'
\set ECHO none

CREATE EXTENSION medanon;
-- An ETL login for the operator; the demo's superuser plays the DBA.
DO $$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'demo_etl') THEN CREATE ROLE demo_etl LOGIN; END IF;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'demo_analyst') THEN CREATE ROLE demo_analyst LOGIN; END IF;
END $$;
SET client_min_messages = warning;  -- quiet on a re-run, when the roles exist
GRANT medanon_operator TO demo_etl;
RESET client_min_messages;
GRANT USAGE ON SCHEMA synth TO demo_etl;
GRANT SELECT ON ALL TABLES IN SCHEMA synth TO demo_etl;

\echo
\echo '1. What arrived: one person at several institutions, written as each hospital system writes it'
SELECT r.institution_code AS inst, i.kind, r.name_kana, r.name_kanji, r.birth_date, r.sex,
       r.insurer_number AS insurer, r.postal_code
  FROM synth.registration r
  JOIN synth.truth t USING (institution_code, local_patient_id)
  JOIN synth.institution i ON i.code = r.institution_code
 WHERE t.true_person_id = (SELECT true_person_id FROM synth.truth GROUP BY 1 HAVING count(*) >= 3 ORDER BY 1 LIMIT 1)
 ORDER BY 1;

\echo '2. Linking (名寄せ): every record gets a person id from keyed ID1/ID2, as the ETL role'
SET ROLE demo_etl;
SELECT key, value FROM jsonb_each(medanon.link_patients('synth.registration'))
 ORDER BY array_position(ARRAY['records_in','linked','quarantined','new_persons','matched_existing','unchanged',
                               'merges','conflicts','candidates'], key);
\echo 'The person from section 1, now one person_id at every institution (the link keys are HMACs, not names):'
SELECT l.institution_code AS inst, l.local_patient_id, l.person_id, left(l.id1::text, 13) || '…' AS id1,
       left(l.id2::text, 13) || '…' AS id2
  FROM medanon.person_link l
 WHERE l.person_id = (SELECT l2.person_id FROM medanon.person_link l2 JOIN synth.truth t USING (institution_code, local_patient_id)
                       WHERE t.true_person_id = (SELECT true_person_id FROM synth.truth GROUP BY 1 HAVING count(*) >= 3 ORDER BY 1 LIMIT 1)
                       LIMIT 1)
 ORDER BY 1;
\echo 'Linking the same batch again changes nothing:'
SELECT medanon.link_patients('synth.registration') - 'records_in' - 'linked' - 'quarantined' AS rerun;
\echo 'Records on one insurance card with different kana names share ID1 but are not merged: a conflict.'
\echo 'They are twins on a family card, or one person with a typo (the ground truth tells which):'
SELECT kana, other_kana, birth_date, truth FROM (
SELECT r1.name_kana AS kana, r2.name_kana AS other_kana, r1.birth_date,
       CASE WHEN t1.true_person_id = t2.true_person_id THEN 'one person, typo' ELSE 'twins' END AS truth,
       row_number() OVER (PARTITION BY t1.true_person_id = t2.true_person_id ORDER BY r1.name_kana) AS nth
  FROM medanon.link_conflict c
  JOIN synth.registration r1 ON (r1.institution_code, r1.local_patient_id) = (c.institution_code, c.local_patient_id)
  JOIN synth.registration r2 ON (r2.institution_code, r2.local_patient_id) = (c.other_institution_code, c.other_local_patient_id)
  JOIN synth.truth t1 ON (t1.institution_code, t1.local_patient_id) = (c.institution_code, c.local_patient_id)
  JOIN synth.truth t2 ON (t2.institution_code, t2.local_patient_id) = (c.other_institution_code, c.other_local_patient_id)
 WHERE (c.institution_code = c.other_institution_code OR t1.true_person_id = t2.true_person_id)
   AND r1.name_kana <> '' AND r2.name_kana <> '') s
 WHERE nth <= 2 ORDER BY truth, kana;
\echo 'Fuzzy candidates: records of different persons with one birth date and sex and similar kana names,'
\echo 'proposed for review (a typo, with a new insurance card, breaks both exact keys):'
SELECT r1.name_kana AS kana, r2.name_kana AS other_kana, r1.insurer_number AS insurer, r2.insurer_number AS other_insurer,
       round(c.dice::numeric, 3) AS dice
  FROM medanon.link_candidates c
  JOIN synth.registration r1 ON (r1.institution_code, r1.local_patient_id) = (c.institution_code, c.local_patient_id)
  JOIN synth.registration r2 ON (r2.institution_code, r2.local_patient_id) = (c.other_institution_code, c.other_local_patient_id)
 ORDER BY medanon.normalize_insurer_number(r1.insurer_number) IS DISTINCT FROM medanon.normalize_insurer_number(r2.insurer_number) DESC,
          c.dice DESC, 1 LIMIT 4;
\echo 'The link report:'
SELECT jsonb_pretty(medanon.link_report()) AS link_report;
RESET ROLE;
\echo 'Checked against the generator''s ground truth (pairs of records of one person):'
\i bench/link_quality.sql

\echo '3. Notification and opt-out (通知・提供停止の求め): records flow only after notice and a 30-day wait'
SET ROLE demo_etl;
SELECT count(medanon.register_institution(code, name, kind)) AS institutions_registered FROM synth.institution;
-- Most patients were notified at their first visit long ago; one record in 50 only 10 days ago.
SELECT count(medanon.record_notification(institution_code, local_patient_id,
             now() - CASE WHEN hashtext(local_patient_id) % 50 = 0 THEN interval '10 days' ELSE interval '200 days' END))
       AS notifications_recorded
  FROM synth.registration WHERE institution_code IS NOT NULL AND local_patient_id <> '';
SELECT (SELECT count(DISTINCT person_id) FROM medanon.person_link) AS persons,
       (SELECT count(DISTINCT person_id) FROM medanon.eligible_persons) AS eligible_persons,
       (SELECT count(*) FROM medanon.eligible_persons) AS eligible_person_institution_pairs;
\set demo_person '(SELECT l.person_id FROM medanon.person_link l JOIN synth.truth t USING (institution_code, local_patient_id) WHERE t.true_person_id = (SELECT true_person_id FROM synth.truth GROUP BY 1 HAVING count(*) >= 3 ORDER BY 1 LIMIT 1) LIMIT 1)'
\echo 'The person from section 1 asks one hospital to stop providing their data (scope all: every institution):'
SELECT medanon.opt_out(l.institution_code, l.local_patient_id, 'self') AS opt_out_id
  FROM medanon.person_link l WHERE l.person_id = :demo_person ORDER BY 1 LIMIT 1;
SELECT l.institution_code AS inst, medanon.is_eligible(l.person_id, l.institution_code) AS eligible
  FROM medanon.person_link l WHERE l.person_id = :demo_person ORDER BY 1;
SELECT count(DISTINCT person_id) AS eligible_persons_now FROM medanon.eligible_persons;
\echo 'A bereaved family member must be one the cabinet order lists:'
\set ON_ERROR_STOP off
SELECT medanon.opt_out('141003', '00000001', 'bereaved_family', 'cousin', 'all');
\set ON_ERROR_STOP on
\echo 'The ledger is append-only: the operator has no right to change it, and even a superuser is refused:'
\set ON_ERROR_STOP off
DELETE FROM medanon.opt_out;
RESET ROLE;
DELETE FROM medanon.opt_out;
SET ROLE demo_etl;
\set ON_ERROR_STOP on
\echo 'Intake: a new batch is checked before linking; held records wait in a quarantine, nothing is lost.'
CREATE TEMP TABLE new_batch AS
(SELECT * FROM synth.registration WHERE hashtext(local_patient_id) % 50 = 0 LIMIT 1)
UNION ALL (SELECT * FROM synth.registration WHERE hashtext(local_patient_id) % 50 <> 0 ORDER BY local_patient_id LIMIT 2);
INSERT INTO new_batch (institution_code, local_patient_id, name_kana, birth_date, sex)
SELECT l.institution_code, l.local_patient_id, 'ｻﾝﾌﾟﾙ', '1970-01-01', '1' FROM medanon.person_link l
 WHERE l.person_id = :demo_person LIMIT 1;
INSERT INTO new_batch (institution_code, local_patient_id, name_kana, birth_date, sex)
VALUES ('1310000011', 'NEW-0001', 'ｼﾝｷ ｶﾝｼﾞｬ', '2001-02-03', '2');
SELECT jsonb_pretty(medanon.check_intake('new_batch')) AS intake;
SELECT local_patient_id, reason FROM medanon.intake_quarantine ORDER BY reason, local_patient_id;
RESET ROLE;

\echo '4. Birth dates in every form, read by parse_japanese_date (refusals are counted, not hidden)'
CREATE FUNCTION pg_temp.parse_or_refusal(input text, OUT parsed date, OUT refusal text) LANGUAGE plpgsql AS $$
BEGIN
    parsed := medanon.parse_japanese_date(input);
EXCEPTION WHEN invalid_datetime_format THEN
    GET STACKED DIAGNOSTICS refusal = PG_EXCEPTION_DETAIL;
END $$;
CREATE TEMP TABLE birth_forms AS
SELECT birth_date AS written, (pg_temp.parse_or_refusal(birth_date)).*,
       CASE WHEN birth_date ~ '^[明大昭平令]' THEN 'era, kanji'
            WHEN birth_date ~ '^[MTSHR][0-9]' THEN 'era, abbreviated'
            WHEN birth_date ~ '^[1-5][0-9]{6}$' THEN 'receipt code GYYMMDD'
            WHEN birth_date ~ '^[0-9]{8}$' THEN 'YYYYMMDD'
            WHEN birth_date ~ '^[０-９]' THEN 'full-width digits'
            WHEN birth_date ~ '/' THEN 'YYYY/M/D'
            WHEN birth_date ~ '^[0-9]{4}-' THEN 'ISO'
            ELSE 'other'
       END AS form
  FROM synth.registration;
SELECT form, count(*) AS records, count(parsed) AS parsed, count(refusal) AS refused,
       min(written) FILTER (WHERE parsed IS NOT NULL) AS example,
       min(parsed) FILTER (WHERE written = (SELECT min(written) FROM birth_forms b2
                                            WHERE b2.form = b.form AND b2.parsed IS NOT NULL)) AS example_parsed
  FROM birth_forms b GROUP BY form ORDER BY records DESC;
\echo 'Records refused, with the reason (the linkage step will quarantine them):'
SELECT written, refusal, count(*) AS records FROM birth_forms WHERE refusal IS NOT NULL GROUP BY 1, 2 ORDER BY 3 DESC, 1;

\echo 'A date that cannot be: 平成31年5月1日 (Heisei ended on 2019-04-30)'
\set VERBOSITY default
\set ON_ERROR_STOP off
SELECT medanon.parse_japanese_date('平成31年5月1日');
\set ON_ERROR_STOP on

\echo
\echo '5. Keyed pseudonyms, as the operator''s ETL role (the key never leaves the keyring)'
SET ROLE demo_etl;
SELECT p.true_person_id AS person,
       left(medanon.tokenize(p.true_person_id::text, 'contract_a'), 16) || '…' AS token_in_a,
       left(medanon.tokenize(p.true_person_id::text, 'contract_b'), 16) || '…' AS token_in_b,
       medanon.date_offset(p.true_person_id::text, 'contract_a') AS offset_a,
       medanon.date_offset(p.true_person_id::text, 'contract_b') AS offset_b
  FROM synth.person p ORDER BY 1 LIMIT 4;

\echo 'Shifted visit dates keep every interval within a person (first person with 3+ visits):'
WITH v AS (
  SELECT t.true_person_id::text AS person, v.visit_date
    FROM synth.visit v JOIN synth.truth t USING (institution_code, local_patient_id)
   WHERE t.true_person_id = (SELECT t2.true_person_id FROM synth.visit v2 JOIN synth.truth t2 USING (institution_code, local_patient_id)
                              GROUP BY 1 HAVING count(*) >= 3 ORDER BY 1 LIMIT 1))
SELECT visit_date, medanon.shift_date(visit_date, person, 'contract_a') AS shifted,
       visit_date - lag(visit_date) OVER (ORDER BY visit_date) AS gap,
       medanon.shift_date(visit_date, person, 'contract_a')
         - lag(medanon.shift_date(visit_date, person, 'contract_a')) OVER (ORDER BY visit_date) AS shifted_gap
  FROM v ORDER BY visit_date LIMIT 5;
RESET ROLE;

\echo 'And an analyst outside the operator role gets no oracle:'
SET ROLE demo_analyst;
\set ON_ERROR_STOP off
SELECT medanon.tokenize('12345', 'contract_a');
\set ON_ERROR_STOP on
RESET ROLE;

\echo
\echo '6. Generalizing quasi-identifiers (reference date 2026-04-01)'
SELECT p.birth_date, medanon.generalize_age(p.birth_date, '2026-04-01') AS age_band,
       p.postal_code, medanon.generalize_postal_code(p.postal_code, 3) AS postal_3,
       medanon.prefecture_of(p.prefecture || p.municipality) AS prefecture,
       medanon.region_of(p.prefecture) AS region
  FROM synth.person p ORDER BY p.true_person_id LIMIT 5;

\echo
\echo '7. k-anonymity of the persons, as the quasi-identifiers are generalized'
CREATE TEMP TABLE qi AS
SELECT true_person_id AS person,
       birth_date, sex, postal_code,
       medanon.generalize_age(birth_date, '2026-04-01', 1) AS age_1,
       medanon.generalize_age(birth_date, '2026-04-01', 5) AS age_5,
       medanon.generalize_age(birth_date, '2026-04-01', 10) AS age_10,
       medanon.generalize_postal_code(postal_code, 3) AS postal_3,
       medanon.generalize_postal_code(postal_code, 1) AS postal_1,
       prefecture, medanon.region_of(prefecture) AS region
  FROM synth.person;
CREATE TEMP TABLE qi_steps (n int, step text, qis text[]);
INSERT INTO qi_steps VALUES
  (1, 'birth date + sex + postal code', ARRAY['birth_date','sex','postal_code']),
  (2, 'age (1 y) + sex + postal 3 digits', ARRAY['age_1','sex','postal_3']),
  (3, 'age (5 y) + sex + prefecture', ARRAY['age_5','sex','prefecture']),
  (4, 'age (10 y) + sex + region', ARRAY['age_10','sex','region']),
  (5, 'age (10 y) + sex', ARRAY['age_10','sex']);
-- The persons in classes smaller than 5, by a hand-written GROUP BY (k_report comes later).
CREATE FUNCTION pg_temp.persons_below(qis text[], k int) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE cols text := (SELECT string_agg(quote_ident(c), ', ') FROM unnest(qis) c); n bigint;
BEGIN
    EXECUTE format('SELECT coalesce(sum(n), 0) FROM (SELECT count(DISTINCT person) AS n FROM qi GROUP BY %s) s WHERE n < %s', cols, k)
       INTO n;
    RETURN n;
END $$;
SELECT step AS quasi_identifiers, medanon.k_anonymity('qi', qis, 'person') AS k,
       pg_temp.persons_below(qis, 5) AS "persons in classes < 5"
  FROM qi_steps ORDER BY n;

\echo
\echo '8. Risk before and after the least damaging generalization that reaches k = 5 (at most 1% of persons suppressed)'
CREATE TEMP TABLE release AS
SELECT true_person_id AS person, extract(year FROM age(DATE '2026-04-01', birth_date))::int AS age, sex::text AS sex,
       postal_code, prefecture || municipality AS address
  FROM synth.person;
CREATE TEMP TABLE sex_levels (value text, level1 text);
INSERT INTO sex_levels VALUES ('1', '*'), ('2', '*');
\echo 'Before: age in years, sex, 7-digit postal code, municipality'
SELECT key AS measure, value FROM jsonb_each(medanon.risk_profile('release', ARRAY['age','sex','postal_code','address'], 'person', 5))
 WHERE key <> 'class_sizes' ORDER BY key;
SELECT jsonb_array_elements_text(medanon.risk_profile('release', ARRAY['age','sex','postal_code','address'], 'person', 5)->'class_sizes')
       AS "persons per class (before)";
SELECT medanon.suggest_generalization('release',
  '{"person_column": "person", "quasi_identifiers": {"age": "age", "sex": {"hierarchy": "table", "table": "pg_temp.sex_levels"},
    "postal_code": "postal", "address": "geography"}}', 5, 0.01) AS suggestion \gset
\echo 'The search (Flash-style: predictive tagging and binary search on paths through the lattice):'
SELECT key, value FROM jsonb_each(:'suggestion'::jsonb) WHERE key IN ('levels', 'suppressed_persons', 'loss', 'nodes_evaluated', 'nodes_total')
 ORDER BY key;
SELECT (:'suggestion'::jsonb #>> '{levels,age,level}')::int AS lv_age, (:'suggestion'::jsonb #>> '{levels,sex,level}')::int AS lv_sex,
       (:'suggestion'::jsonb #>> '{levels,postal_code,level}')::int AS lv_postal,
       (:'suggestion'::jsonb #>> '{levels,address,level}')::int AS lv_address \gset
CREATE TEMP TABLE released AS
SELECT person,
       CASE WHEN :lv_age >= 4 THEN '*' WHEN age >= 90 THEN '[90,)'
            ELSE int4range(age / (ARRAY[1,5,10,20])[:lv_age + 1] * (ARRAY[1,5,10,20])[:lv_age + 1],
                           age / (ARRAY[1,5,10,20])[:lv_age + 1] * (ARRAY[1,5,10,20])[:lv_age + 1] + (ARRAY[1,5,10,20])[:lv_age + 1])::text
       END AS age,
       CASE WHEN :lv_sex = 0 THEN sex ELSE '*' END AS sex,
       CASE WHEN :lv_postal >= 3 THEN '*' ELSE medanon.generalize_postal_code(postal_code, (ARRAY[7,3,1])[:lv_postal + 1]) END AS postal_code,
       CASE :lv_address WHEN 0 THEN address WHEN 1 THEN medanon.prefecture_of(address)
                        WHEN 2 THEN medanon.region_of(medanon.prefecture_of(address)) ELSE '*' END AS address
  FROM release;
-- Classes still below k are suppressed (the search counted them).
DELETE FROM released r USING (SELECT age, sex, postal_code, address FROM released GROUP BY 1, 2, 3, 4
                               HAVING count(DISTINCT person) < 5) small
 WHERE (r.age, r.sex, r.postal_code, r.address) = (small.age, small.sex, small.postal_code, small.address);
\echo 'After:'
SELECT key AS measure, value FROM jsonb_each(medanon.risk_profile('released', ARRAY['age','sex','postal_code','address'], 'person', 5))
 WHERE key <> 'class_sizes' ORDER BY key;
SELECT jsonb_array_elements_text(medanon.risk_profile('released', ARRAY['age','sex','postal_code','address'], 'person', 5)->'class_sizes')
       AS "persons per class (after)";

\echo
\echo '9. The keyring: a pseudonym key (rotated by rotate_key) and a link key (never rotated), readable only by its owner'
SELECT key_id, purpose, active, origin, created_at::date AS created, octet_length(material) * 8 AS bits FROM medanon.keyring ORDER BY key_id;
SELECT has_table_privilege('demo_etl', 'medanon.keyring', 'SELECT') AS etl_can_read_keyring,
       has_function_privilege('demo_analyst', 'medanon.tokenize(text,text)', 'EXECUTE') AS analyst_can_tokenize;

\echo
\echo '10. Contracts (匿名加工医療情報の提供): one schema of anonymized views per research contract'
\echo 'The warehouse''s raw tables, as the operator''s ETL keeps them (person_id from person_link):'
CREATE FUNCTION pg_temp.sex_or_null(v text) RETURNS smallint LANGUAGE plpgsql AS $$
BEGIN RETURN medanon.normalize_sex(v); EXCEPTION WHEN invalid_text_representation THEN RETURN NULL; END $$;
CREATE SCHEMA clinical;
CREATE TABLE clinical.patient AS
SELECT DISTINCT ON (l.person_id) l.person_id, r.name_kanji AS name, f.parsed AS birth_date, pg_temp.sex_or_null(r.sex) AS sex,
       r.postal_code, r.address
  FROM medanon.person_link l JOIN synth.registration r USING (institution_code, local_patient_id)
 CROSS JOIN LATERAL pg_temp.parse_or_refusal(r.birth_date) f
 ORDER BY l.person_id, f.parsed IS NULL, r.institution_code;
CREATE TABLE clinical.visit AS
SELECT l.person_id, v.institution_code, v.visit_date, v.department, d.icd10
  FROM synth.visit v JOIN medanon.person_link l USING (institution_code, local_patient_id) JOIN synth.diagnosis d USING (visit_id);
CREATE TABLE clinical.lab AS
SELECT l.person_id, v.institution_code, v.visit_date, x.test_code, x.value
  FROM synth.lab_result x JOIN synth.visit v USING (visit_id) JOIN medanon.person_link l USING (institution_code, local_patient_id);
GRANT USAGE ON SCHEMA clinical TO demo_etl;
GRANT SELECT ON ALL TABLES IN SCHEMA clinical TO demo_etl;
SELECT (SELECT count(*) FROM clinical.patient) AS patients, (SELECT count(*) FROM clinical.visit) AS visit_diagnoses,
       (SELECT count(*) FROM clinical.lab) AS lab_results;
DO $$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'demo_lab_a') THEN CREATE ROLE demo_lab_a LOGIN; END IF;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'demo_lab_b') THEN CREATE ROLE demo_lab_b LOGIN; END IF;
END $$;

\echo 'The operator registers the sources and classifies every column it may ever expose (the guideline''s five classes):'
SET ROLE demo_etl;
SELECT medanon.register_source('clinical.patient', 'person_id') AS source, NULL AS institution_column
UNION ALL SELECT medanon.register_source('clinical.visit', 'person_id', 'institution_code'), 'institution_code'
UNION ALL SELECT medanon.register_source('clinical.lab', 'person_id', 'institution_code'), 'institution_code';
SELECT count(*) AS columns_classified FROM (
  SELECT medanon.classify(t::regclass, c, cls) FROM (VALUES
    ('clinical.patient', 'person_id', 'identifier'), ('clinical.patient', 'name', 'identifier'),
    ('clinical.patient', 'birth_date', 'quasi_identifier'), ('clinical.patient', 'sex', 'quasi_identifier'),
    ('clinical.patient', 'postal_code', 'quasi_identifier'), ('clinical.patient', 'address', 'quasi_identifier'),
    ('clinical.visit', 'person_id', 'identifier'), ('clinical.visit', 'institution_code', 'quasi_identifier'),
    ('clinical.visit', 'visit_date', 'static'), ('clinical.visit', 'department', 'semi_static'),
    ('clinical.visit', 'icd10', 'semi_static'),
    ('clinical.lab', 'person_id', 'identifier'), ('clinical.lab', 'institution_code', 'quasi_identifier'),
    ('clinical.lab', 'visit_date', 'static'), ('clinical.lab', 'test_code', 'semi_static'), ('clinical.lab', 'value', 'dynamic')
  ) v(t, c, cls)) s;
RESET ROLE;
\echo 'The tables'' owner logs their changes, so a refresh reads only the persons whose rows changed:'
SELECT medanon.track_changes(t::regclass) AS tracking_added, t AS source
  FROM unnest(ARRAY['clinical.patient', 'clinical.visit', 'clinical.lab']) t;
SET ROLE demo_etl;
\echo 'A spec that keeps a name is refused, naming the key:'
\set ON_ERROR_STOP off
SELECT medanon.create_contract('{"id": "c2026_bad", "grantee": "demo_lab_a", "purpose": "x", "approved_on": "2026-11-01",
  "expires_on": "2027-03-31", "kind": "anonymized", "k": 5, "tables": [{"source": "clinical.patient", "columns": {"name": "keep"}}]}');
\set ON_ERROR_STOP on
\echo 'Two contracts approved by the review committee: drug safety for lab A (shifted dates, k = 5),'
\echo 'a cross-hospital cohort for lab B (months only, coarser ages, k = 10):'
SELECT medanon.create_contract('{"id": "c2026_001", "grantee": "demo_lab_a", "purpose": "post-marketing safety of drug X",
  "approved_on": "2026-11-01", "expires_on": "2027-03-31", "kind": "anonymized", "k": 5, "reference_date": "2026-04-01",
  "tables": [
    {"source": "clinical.patient", "columns": {"person_id": "token", "birth_date": {"age_band": {"band": 10, "top": 90}},
                                               "sex": "keep", "address": "prefecture"}},
    {"source": "clinical.visit", "columns": {"person_id": "token", "visit_date": "shift", "department": "keep", "icd10": {"hierarchy": "icd10", "min_persons": 400}}},
    {"source": "clinical.lab", "columns": {"person_id": "token", "visit_date": "shift", "test_code": "keep", "value": {"top_code": 200}}}]}')
  AS contract_a,
  medanon.create_contract('{"id": "c2026_002", "grantee": "demo_lab_b", "purpose": "cross-hospital diabetes cohort",
  "approved_on": "2026-11-01", "expires_on": "2027-12-31", "kind": "anonymized", "k": 10, "reference_date": "2026-04-01",
  "tables": [
    {"source": "clinical.patient", "columns": {"person_id": "token", "birth_date": {"age_band": {"band": 20, "top": 80}}, "sex": "keep"}},
    {"source": "clinical.visit", "columns": {"person_id": "token", "visit_date": {"truncate_date": "month"}, "icd10": "keep"}}]}')
  AS contract_b;
\timing on
\echo 'Before publishing, the operator looks for rare values (特異な記述): diagnosis codes few persons hold. The synthetic'
\echo 'codes are all common (none under k = 5 persons), so contract A raises min_persons to 400 for icd10 to show it:'
\echo 'each code under 400 persons climbs to its ICD-10 category, then chapter, or is NULL.'
SELECT value AS icd10, persons, medanon.icd10_category(value) AS category, medanon.icd10_chapter(value) AS chapter
  FROM medanon.rare_values('clinical.visit', 'icd10', 'person_id', 400) LIMIT 6;
SELECT jsonb_pretty(medanon.publish_contract('c2026_001')) AS published_a;
SELECT jsonb_pretty(medanon.publish_contract('c2026_002') - 'schema') AS published_b;
\timing off
SELECT * FROM medanon.contract_report('c2026_001')
UNION ALL SELECT * FROM medanon.contract_report('c2026_002');
RESET ROLE;

\echo 'Lab A logs in and writes plain SQL against its views: the gap from a visit to the next is kept (one offset per person):'
SET ROLE demo_lab_a;
\d contract_c2026_001.visit
SELECT left(person_id::text, 13) || '…' AS person, visit_date, department, icd10,
       visit_date - lag(visit_date) OVER (ORDER BY visit_date) AS days_since_last
  FROM (SELECT DISTINCT ON (visit_date) * FROM contract_c2026_001.visit
         WHERE person_id = (SELECT person_id FROM contract_c2026_001.visit GROUP BY 1 HAVING count(DISTINCT visit_date) >= 4
                             ORDER BY 1 LIMIT 1)
         ORDER BY visit_date, icd10) v
 ORDER BY visit_date LIMIT 5;
SELECT birth_date AS age, sex, count(DISTINCT person_id) AS persons
  FROM contract_c2026_001.patient GROUP BY 1, 2 ORDER BY 1, 2 LIMIT 6;
\echo 'The fewest persons any diagnosis code shown to lab A is held by (never under min_persons = 400), and the codes shown as a category or chapter:'
SELECT min(persons) AS fewest_persons_per_code_shown, count(*) FILTER (WHERE icd10 !~ '[.]') AS codes_shown_generalized
  FROM (SELECT icd10, count(DISTINCT person_id) AS persons FROM contract_c2026_001.visit WHERE icd10 IS NOT NULL GROUP BY 1) c;
\echo 'Anything outside its schema is refused:'
\set ON_ERROR_STOP off
SELECT count(*) FROM contract_c2026_002.patient;
SELECT count(*) FROM clinical.patient;
SELECT medanon.tokenize('1', 'contract:c2026_001');
\set ON_ERROR_STOP on
RESET ROLE;

\echo 'Lab B publishes counts with safe_counts: cells under min_cell persons (10 by default, the NDB rule) are hidden,'
\echo 'and so is another cell wherever a hidden one could be recovered from a total. The synthetic cells are all'
\echo 'large, so this table uses min_cell = 300 to show it:'
SET ROLE demo_lab_b;
SELECT cell, persons, suppression
  FROM medanon.safe_counts('c2026_002', 'patient', ARRAY['birth_date', 'sex'], 300)
 ORDER BY cell ->> 'birth_date' NULLS LAST, cell ->> 'sex' NULLS LAST;
RESET ROLE;

\echo 'One person, two contracts: unrelated tokens and offsets (the operator''s map; analysts never see it):'
SELECT a.token AS token_in_a, b.token AS token_in_b,
       a.date_offset AS offset_in_a, b.date_offset AS offset_in_b
  FROM medanon.contract_person a JOIN medanon.contract_person b USING (person_id)
 WHERE a.contract_id = 'c2026_001' AND b.contract_id = 'c2026_002' AND a.state = 'visible' AND b.state = 'visible'
 ORDER BY a.person_id LIMIT 3;
SELECT count(*) AS tokens_shared_by_the_two_contracts
  FROM contract_c2026_001.patient a JOIN contract_c2026_002.patient b USING (person_id);

\echo 'An opt-out hides the person from both contracts at its commit, and any class it leaves below k with it:'
SELECT a.person_id AS optout_person, a.token AS token_a, b.token AS token_b, l.institution_code AS optout_inst,
       l.local_patient_id AS optout_local
  FROM medanon.contract_person a JOIN medanon.contract_person b USING (person_id) JOIN medanon.person_link l USING (person_id)
 WHERE a.contract_id = 'c2026_001' AND b.contract_id = 'c2026_002' AND a.state = 'visible' AND b.state = 'visible'
 ORDER BY a.person_id DESC LIMIT 1 \gset
SET ROLE demo_lab_a;
SELECT 'before' AS "when", (SELECT count(*) FROM contract_c2026_001.visit WHERE person_id = :'token_a') AS rows_in_a;
RESET ROLE;
SET ROLE demo_etl;
SELECT medanon.opt_out(:'optout_inst', :'optout_local', 'self') AS opt_out_id;
RESET ROLE;
SET ROLE demo_lab_a;
SELECT 'after' AS "when", (SELECT count(*) FROM contract_c2026_001.visit WHERE person_id = :'token_a') AS rows_in_a;
RESET ROLE;
SET ROLE demo_lab_b;
SELECT 'after' AS "when", (SELECT count(*) FROM contract_c2026_002.visit WHERE person_id = :'token_b') AS rows_in_b;
RESET ROLE;
SET ROLE demo_etl;
SELECT contract_id, persons_exposed, persons_suppressed_k, persons_excluded_consent, classes_suppressed, min_class_size, values_replaced
  FROM medanon.contract_report('c2026_001') UNION ALL
SELECT contract_id, persons_exposed, persons_suppressed_k, persons_excluded_consent, classes_suppressed, min_class_size, values_replaced
  FROM medanon.contract_report('c2026_002');

\echo 'A frozen snapshot for delivery, hashed into the provision ledger (提供記録), which only the auditor may read:'
SELECT medanon.release_snapshot('c2026_001') AS snapshot_schema;
RESET ROLE;
\echo 'Five patients move to another prefecture; at the next refresh they are withheld (changed), so lab A, joining'
\echo 'the snapshot to the live views on the token, finds every person with the same age band, sex and prefecture in both:'
UPDATE clinical.patient SET address = CASE WHEN address LIKE '東京都%' THEN '大阪府大阪市北区1-1' ELSE '東京都新宿区1-1' END
 WHERE person_id IN (SELECT m.person_id FROM medanon.contract_person m
                      WHERE m.contract_id = 'c2026_001' AND m.state = 'visible' ORDER BY m.person_id LIMIT 5);
SET ROLE demo_etl;
SELECT r ->> 'mode' AS refresh, r -> 'persons_rewritten' AS persons_rewritten, r -> 'persons' AS refreshed_persons
  FROM medanon.refresh_contract('c2026_001') r;
RESET ROLE;
SET ROLE demo_lab_a;
SELECT count(*) AS tokens_in_both_releases,
       count(*) FILTER (WHERE (s.birth_date, s.sex, s.address) IS DISTINCT FROM (l.birth_date, l.sex, l.address)) AS tokens_whose_class_differs
  FROM contract_c2026_001_snap_1.patient s JOIN contract_c2026_001.patient l USING (person_id);
RESET ROLE;
SET ROLE medanon_auditor;
SELECT entry_id, event, contract_id, recorded_by, row_count AS rows, person_count AS persons,
       coalesce(left(detail ->> 'sha256', 16) || '…', '') AS content_sha256, left(entry_hash, 12) || '…' AS chained_hash
  FROM medanon.provision_ledger ORDER BY chain_seq;
\echo 'Each entry is chained to the one before it by SHA-256; the auditor checks the whole chain (NULL: every entry verifies):'
SELECT medanon.verify_ledger() AS first_entry_that_does_not_verify;
RESET ROLE;
\echo 'A superuser who edits an entry behind the append-only trigger is caught:'
BEGIN;
ALTER TABLE medanon.provision_ledger DISABLE TRIGGER provision_ledger_append_only;
UPDATE medanon.provision_ledger SET person_count = person_count + 1 WHERE event = 'publish' AND contract_id = 'c2026_002';
SELECT medanon.verify_ledger() AS first_entry_that_does_not_verify;
ROLLBACK;
