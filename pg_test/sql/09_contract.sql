-- Contracts, first part: the source catalog and create_contract's checks. The
-- example spec is the one of the contracts issue.
CREATE SCHEMA clinical;
CREATE TABLE clinical.patient (person_id bigint, name_kanji text, birth_date date, sex text, postal_code text, address text);
CREATE TABLE clinical.visit (person_id bigint, visit_date date, icd10 text, lab_value numeric, note text);
SELECT medanon.register_source('clinical.patient', 'person_id'), medanon.register_source('clinical.visit', 'person_id');
SELECT medanon.classify('clinical.patient', c, cls)
  FROM (VALUES ('person_id', 'identifier'), ('name_kanji', 'identifier'), ('birth_date', 'quasi_identifier'),
               ('sex', 'quasi_identifier'), ('postal_code', 'quasi_identifier'), ('address', 'quasi_identifier')) v(c, cls);
SELECT medanon.classify('clinical.visit', c, cls)
  FROM (VALUES ('person_id', 'identifier'), ('visit_date', 'static'), ('icd10', 'semi_static'), ('lab_value', 'dynamic')) v(c, cls);
SELECT medanon.classify('clinical.visit', 'note', 'secret');
SELECT medanon.classify('clinical.visit', 'nothing', 'static');
SELECT medanon.register_source('clinical.visit', 'no_person');
SET client_min_messages = warning;
DROP ROLE IF EXISTS regress_lab_a;
RESET client_min_messages;
CREATE ROLE regress_lab_a;

\set spec '{"id": "c2026_001", "grantee": "regress_lab_a", "purpose": "post-marketing safety of drug X", "approved_on": "2026-11-01", "expires_on": "2099-03-31", "kind": "anonymized", "k": 5, "reference_date": "2026-04-01", "tables": [{"source": "clinical.patient", "columns": {"person_id": "token", "birth_date": {"age_band": {"band": 5, "top": 90}}, "sex": "keep", "postal_code": {"postal_prefix": 3}, "address": "prefecture"}}, {"source": "clinical.visit", "columns": {"person_id": "token", "visit_date": "shift", "icd10": "keep", "lab_value": {"top_code": 500}}}]}'
SELECT medanon.create_contract(:'spec');
SELECT contract_id, kind, grantee, k, expires_on, status, length(spec_sha256) AS sha_len FROM medanon.contract;
SELECT event, contract_id, detail->>'grantee' AS grantee, length(spec_sha256) AS sha_len FROM medanon.provision_ledger;

-- Refusals, each naming its key.
SELECT medanon.create_contract(:'spec');
SELECT medanon.create_contract(jsonb_set(:'spec', '{id}', '"c2"') #- '{tables,0,columns,person_id}' || '{}'
       || jsonb_build_object('tables', jsonb_build_array(jsonb_build_object('source', 'clinical.patient',
          'columns', jsonb_build_object('name_kanji', 'keep')))));
SELECT medanon.create_contract(jsonb_set(jsonb_set(:'spec', '{id}', '"c3"'), '{tables,1,columns,note}', '"keep"'));
SELECT medanon.create_contract(jsonb_set(jsonb_set(:'spec', '{id}', '"c4"'), '{tables,1,source}', '"clinical.nothing"'));
SELECT medanon.create_contract(jsonb_set(jsonb_set(:'spec', '{id}', '"c5"'), '{tables,1,columns,nothing}', '"keep"'));
SELECT medanon.create_contract(jsonb_set(jsonb_set(:'spec', '{id}', '"c6"'), '{tables,1,columns,icd10}', '"shift"'));
SELECT medanon.create_contract(jsonb_set(jsonb_set(:'spec', '{id}', '"c7"'), '{k}', '1'));
SELECT medanon.create_contract(jsonb_set(jsonb_set(:'spec', '{id}', '"c8"'), '{expires_on}', '"2020-01-01"'));
SELECT medanon.create_contract(jsonb_set(jsonb_set(jsonb_set(:'spec', '{id}', '"c8"'), '{expires_on}', '"2020-01-01"'),
                                         '{approved_on}', '"2019-04-01"'));
SELECT medanon.create_contract(jsonb_set(jsonb_set(:'spec', '{id}', '"c9"'), '{grantee}', '"nobody_at_all"'));
SELECT medanon.create_contract(jsonb_set(jsonb_set(:'spec', '{id}', '"c10"'), '{tables,0,columns,person_id}', '"keep"'));
SELECT medanon.create_contract(jsonb_set(jsonb_set(:'spec', '{id}', '"c11"'), '{tables,0,columns,sex}', '{"age_band": {"band": 5}}'));
SELECT medanon.create_contract(jsonb_set(jsonb_set(:'spec', '{id}', '"c12"'), '{kind}', '"pseudonymized"'));
SELECT medanon.create_contract(jsonb_set(jsonb_set(:'spec', '{id}', '"c13"'), '{tables,1,columns,visit_date}', '"shiftt"'));
SELECT medanon.create_contract('{"id": "c14"}');
SELECT count(*) AS contracts, (SELECT count(*) FROM medanon.provision_ledger) AS ledger_entries FROM medanon.contract;

-- A pseudonymized contract for a certified user may leave out k.
SELECT medanon.register_certified_user('regress_lab_a');
SELECT medanon.create_contract(jsonb_set(jsonb_set(:'spec', '{id}', '"c2026_002"'), '{kind}', '"pseudonymized"') - 'k');
SELECT contract_id, kind, k FROM medanon.contract ORDER BY 1;
-- The ledger is append-only; an auditor may read it.
UPDATE medanon.provision_ledger SET event = 'revoke';
SELECT has_table_privilege('medanon_auditor', 'medanon.provision_ledger', 'SELECT') AS auditor_reads,
       has_table_privilege('medanon_auditor', 'medanon.contract', 'SELECT') AS auditor_reads_contracts;
DROP SCHEMA clinical CASCADE;
DROP ROLE regress_lab_a;
