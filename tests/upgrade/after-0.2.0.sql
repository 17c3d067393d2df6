-- After ALTER EXTENSION medanon UPDATE from 0.2.0 (scripts/upgrade-test.sh): what
-- tests/upgrade/state-0.2.0.sql created, compared with the copies it kept in
-- schema upgrade_check. Every check raises when it does not hold.
--   psql -v version=0.3.0 -f tests/upgrade/after-0.2.0.sql
\ir check.sql
SET client_min_messages = warning;
-- The rows of a copy that the table no longer has, or has more of (each row
-- counted, on the columns the copy has: a new column of the table is not
-- compared; values compared as text, since some types, such as pg_snapshot, have
-- no equality).
CREATE FUNCTION pg_temp.rows_differ(copy text, tab text) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE cols text; n bigint;
BEGIN
    SELECT string_agg(quote_ident(attname) || '::text', ', ' ORDER BY attnum) INTO cols
      FROM pg_attribute WHERE attrelid = copy::regclass AND attnum > 0 AND NOT attisdropped;
    EXECUTE format('SELECT (SELECT count(*) FROM (SELECT %1$s FROM %2$s EXCEPT ALL SELECT %1$s FROM %3$s) a)
                         + (SELECT count(*) FROM (SELECT %1$s FROM %3$s EXCEPT ALL SELECT %1$s FROM %2$s) b)', cols, copy, tab)
       INTO n;
    RETURN n;
END $$;
GRANT EXECUTE ON FUNCTION pg_temp.rows_differ(text, text) TO PUBLIC;
CREATE FUNCTION pg_temp.count_rows(tab text) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE n bigint;
BEGIN
    EXECUTE format('SELECT count(*) FROM %s', tab) INTO n;
    RETURN n;
END $$;
SET client_min_messages = notice;

-- Every table of 0.2.0, row for row; the provision ledger gained one entry.
SELECT pg_temp.check(to_regclass('medanon.' || substr(c.relname, 3)) IS NOT NULL
                     AND pg_temp.rows_differ('upgrade_check.' || c.relname, 'medanon.' || substr(c.relname, 3))
                         = CASE c.relname WHEN 't_provision_ledger' THEN 1 WHEN 't_provision_ledger_head' THEN 2 ELSE 0 END,
                     'medanon.' || substr(c.relname, 3) || ': every row of 0.2.0 as it was ('
                     || pg_temp.count_rows('upgrade_check.' || c.relname) || ' rows)')
  FROM pg_class c WHERE c.relnamespace = 'upgrade_check'::regnamespace AND c.relkind = 'r' AND c.relname LIKE 't\_%'
 ORDER BY c.relname;
SELECT pg_temp.check(count(*) = 1 AND bool_and(detail ->> 'from' = '0.2.0' AND detail ->> 'to' = :'version'
                                               AND detail -> 'contracts' = '{"created": 1, "published": 3, "revoked": 1}'),
                     'one upgrade entry of the extension, after 0.2.0''s, with the contracts by status')
  FROM medanon.provision_ledger
 WHERE event = 'upgrade' AND contract_id IS NULL AND entry_id > (SELECT max(entry_id) FROM upgrade_check.t_provision_ledger);
SELECT pg_temp.check(medanon.verify_ledger() IS NULL, 'verify_ledger(): the whole ledger verifies');

-- Keyed values for the same inputs.
SELECT pg_temp.check(bool_and(k.v IS NOT DISTINCT FROM CASE k.f
        WHEN 'tokenize' THEN medanon.tokenize('山田太郎', 'upgrade')
        WHEN 'tokenize2' THEN medanon.tokenize('12345', 'contract:x')
        WHEN '_link_id1' THEN medanon._link_id1('06000001', '記1', '0001', '1950-10-28', '2')::text
        WHEN '_link_id2' THEN medanon._link_id2('ﾀﾅｶ ｱ', '1950-10-28', '2')::text
        WHEN '_link_block' THEN medanon._link_block('1950-10-28', '2')::text
        WHEN '_link_clk' THEN encode(medanon._link_clk('ﾀﾅｶ ｱ'), 'hex')
        WHEN 'active_key_id' THEN medanon.active_key_id()::text END) AND count(*) = 7,
    'tokenize, the link keys and the active key id give what 0.2.0 gave')
  FROM upgrade_check.keyed k;

-- The grantees read what they read before, row for row, tokens included.
SET ROLE up_lab;
SELECT pg_temp.check(pg_temp.rows_differ('upgrade_check.v_anon_patient', 'contract_up_anon.patient') = 0
                     AND pg_temp.rows_differ('upgrade_check.v_anon_visit', 'contract_up_anon.visit') = 0,
                     'up_lab reads contract_up_anon.patient and .visit as before (rare codes replaced, lab values top-coded)');
SELECT pg_temp.check(pg_temp.rows_differ('upgrade_check.v_anon_snap', 'contract_up_anon_snap_1.patient') = 0,
                     'up_lab reads the snapshot as released');
SELECT pg_temp.check(pg_temp.rows_differ('upgrade_check.v_days_visit', 'contract_up_days.visit') = 0,
                     'up_lab reads contract_up_days.visit (days since the first visit) as before');
RESET ROLE;
SET ROLE up_pharma;
SELECT pg_temp.check(pg_temp.rows_differ('upgrade_check.v_pseudo_visit', 'contract_up_pseudo.visit') = 0,
                     'up_pharma reads contract_up_pseudo.visit (shifted dates, refreshed incrementally) as before');
RESET ROLE;
SET ROLE up_old;
DO $$ BEGIN
    PERFORM FROM contract_up_anon.patient;
    RAISE EXCEPTION 'upgrade check failed: up_old read contract_up_anon.patient';
EXCEPTION WHEN insufficient_privilege THEN
    RAISE NOTICE 'ok: another contract''s grantee still cannot read the views (42501)';
END $$;
RESET ROLE;

-- The current version works on what 0.2.0 left: an opt-out withholds a person at
-- once, an incremental refresh picks up new visits, a contract created under
-- 0.2.0 publishes, linking the same batch again keeps every person.
SELECT medanon.opt_out('H1', 'p3', 'self');
SET ROLE up_lab;
SELECT pg_temp.check(count(*) < (SELECT count(*) FROM upgrade_check.v_anon_patient)
                     AND NOT EXISTS (SELECT person_id FROM contract_up_anon.patient EXCEPT SELECT person_id FROM upgrade_check.v_anon_patient),
                     'an opt-out after the upgrade withholds the person at once')
  FROM contract_up_anon.patient;
RESET ROLE;
-- 0.3.0 plans persons with other statements (the same classes), so the first
-- refresh after the update is full and says so; the next is incremental again.
INSERT INTO up.visit SELECT person_id, DATE '2025-09-01', 'J45', 20 FROM up.patient WHERE person_id::int % 4 = 0;
CREATE TEMP TABLE refreshed AS SELECT medanon.refresh_contract('up_pseudo') AS summary;
SELECT pg_temp.check(summary ->> 'mode' = 'full' AND summary ->> 'full_because' LIKE '%after an update of the extension%'
                     AND (SELECT count(*) FROM contract_up_pseudo.visit) > (SELECT count(*) FROM upgrade_check.v_pseudo_visit),
                     'the first refresh after the upgrade is full, says why, and adds the new visits: ' || summary::text)
  FROM refreshed;
SET ROLE up_pharma;
SELECT pg_temp.check(NOT EXISTS (SELECT person_id FROM contract_up_pseudo.visit EXCEPT SELECT person_id FROM upgrade_check.v_pseudo_visit)
                     AND NOT EXISTS (SELECT * FROM upgrade_check.v_pseudo_visit o
                                      WHERE o.person_id IN (SELECT v.person_id FROM contract_up_pseudo.visit v)
                                     EXCEPT SELECT * FROM contract_up_pseudo.visit),
                     'the full refresh keeps the tokens and shifted rows up_pharma read before the upgrade');
RESET ROLE;
CREATE TEMP TABLE before_second AS SELECT count(*) AS n FROM contract_up_pseudo.visit;
INSERT INTO up.visit SELECT person_id, DATE '2025-10-01', 'J45', 21 FROM up.patient WHERE person_id::int % 4 = 1;
CREATE TEMP TABLE refreshed_again AS SELECT medanon.refresh_contract('up_pseudo') AS summary;
SELECT pg_temp.check(summary ->> 'mode' = 'incremental'
                     AND (SELECT count(*) FROM contract_up_pseudo.visit) > (SELECT n FROM before_second),
                     'the next refresh after the upgrade is incremental and adds the new visits: ' || summary::text)
  FROM refreshed_again;
SELECT pg_temp.check((medanon.publish_contract('up_created') -> 'persons' ->> 'visible')::int > 30,
                     'a contract created under 0.2.0 publishes under ' || :'version');
SELECT medanon.link_patients('up.staging');
SELECT pg_temp.check(NOT EXISTS (SELECT institution_code, local_patient_id, person_id FROM upgrade_check.t_person_link
                                 EXCEPT SELECT institution_code, local_patient_id, person_id FROM medanon.person_link),
                     'linking the 0.2.0 batch again keeps every record with its person');
SELECT pg_temp.check(medanon.verify_ledger() IS NULL, 'the ledger still verifies');
\o
\echo upgrade checks: every check passed
