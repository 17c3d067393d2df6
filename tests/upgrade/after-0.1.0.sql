-- After ALTER EXTENSION medanon UPDATE from 0.1.0 (scripts/upgrade-test.sh): what
-- tests/upgrade/state-0.1.0.sql created, compared with the copies it kept in
-- schema upgrade_check. Every check raises when it does not hold. The update
-- goes through every script from 0.1.0 to the current version; the data changes
-- checked here are those of its first step, medanon--0.1.0--0.2.0.sql.
--   psql -v version=0.3.0 -f tests/upgrade/after-0.1.0.sql
\ir check.sql

-- Keys: the same rows, and the same keyed values for the same inputs.
SELECT pg_temp.check(NOT EXISTS (SELECT key_id, purpose, material, active, origin, created_at, retired_at FROM medanon.keyring
                                 EXCEPT SELECT * FROM upgrade_check.keyring)
                     AND (SELECT count(*) FROM medanon.keyring) = (SELECT count(*) FROM upgrade_check.keyring),
                     'the keyring is unchanged (' || (SELECT count(*) FROM upgrade_check.keyring) || ' keys, one retired)');
SELECT pg_temp.check(count(*) = 2, 'the active keys got their check values')
  FROM medanon.keyring WHERE active AND length(check_value) = 8;
SELECT pg_temp.check(bool_and(k.v IS NOT DISTINCT FROM CASE k.f
        WHEN 'tokenize' THEN medanon.tokenize('山田太郎', 'upgrade')
        WHEN 'tokenize2' THEN medanon.tokenize('12345', 'contract:x')
        WHEN '_link_id1' THEN medanon._link_id1('06000001', '記1', '0001', '1950-10-28', '2')::text
        WHEN '_link_id2' THEN medanon._link_id2('ﾀﾅｶ ｱ', '1950-10-28', '2')::text
        WHEN '_link_block' THEN medanon._link_block('1950-10-28', '2')::text
        WHEN '_link_clk' THEN encode(medanon._link_clk('ﾀﾅｶ ｱ'), 'hex')
        WHEN 'active_key_id' THEN medanon.active_key_id()::text END) AND count(*) = 7,
    'tokenize, the link keys (_link_id1, _link_id2, _link_block, _link_clk) and the active key id give what 0.1.0 gave')
  FROM upgrade_check.keyed k;

-- Links and the consent ledgers: every row, every 0.1.0 column.
SELECT pg_temp.check(NOT EXISTS (SELECT * FROM upgrade_check.person EXCEPT SELECT * FROM medanon.person)
                     AND (SELECT count(*) FROM medanon.person) = 40, 'persons unchanged (40)');
SELECT pg_temp.check(NOT EXISTS (SELECT * FROM upgrade_check.person_link
                                 EXCEPT SELECT institution_code, local_patient_id, person_id, id1, id2, block, name_clk, linked_at, updated_at
                                          FROM medanon.person_link)
                     AND (SELECT count(*) FROM medanon.person_link) = 52
                     AND (SELECT count(DISTINCT person_id) FROM medanon.person_link WHERE institution_code = 'H2') = 12
                     AND NOT EXISTS (SELECT FROM medanon.person_link WHERE kanji IS NOT NULL OR digest IS NOT NULL),
                     'person_link unchanged (52 records, the 12 of H2 linked to persons of H1); the new keyed columns empty');
SELECT pg_temp.check(NOT EXISTS (SELECT * FROM upgrade_check.person_merge_log EXCEPT SELECT * FROM medanon.person_merge_log),
                     'the merge log unchanged');
SELECT pg_temp.check(NOT EXISTS (SELECT * FROM upgrade_check.institution EXCEPT SELECT * FROM medanon.institution)
                     AND NOT EXISTS (SELECT * FROM upgrade_check.notification EXCEPT SELECT * FROM medanon.notification)
                     AND NOT EXISTS (SELECT * FROM upgrade_check.opt_out EXCEPT SELECT * FROM medanon.opt_out)
                     AND NOT EXISTS (SELECT * FROM upgrade_check.opt_out_withdrawal EXCEPT SELECT * FROM medanon.opt_out_withdrawal)
                     AND (SELECT count(*) FROM medanon.notification) = 52 AND (SELECT count(*) FROM medanon.opt_out) = 3
                     AND (SELECT count(*) FROM medanon.opt_out_withdrawal) = 1,
                     'the consent ledger unchanged: 2 institutions, 52 notifications, 3 opt-outs, 1 withdrawal');
SELECT pg_temp.check(count(*) = 2, 'opt-outs in force: the two not withdrawn') FROM medanon.opt_outs_in_force;
SELECT pg_temp.check(NOT EXISTS (SELECT * FROM upgrade_check.source EXCEPT SELECT * FROM medanon.source)
                     AND NOT EXISTS (SELECT * FROM upgrade_check.source_column EXCEPT SELECT * FROM medanon.source_column)
                     AND NOT EXISTS (SELECT * FROM upgrade_check.certified_user EXCEPT SELECT * FROM medanon.certified_user),
                     'sources, their classified columns and the certified users unchanged');

-- The provision ledger: the old entries as they were, chained; one 'upgrade'
-- entry per contract, each published one rebuilt by a refresh.
SELECT pg_temp.check(NOT EXISTS (SELECT * FROM upgrade_check.provision_ledger
                                 EXCEPT SELECT entry_id, recorded_at, recorded_by, contract_id, event, spec_sha256, row_count,
                                               person_count, detail FROM medanon.provision_ledger),
                     'the ' || (SELECT count(*) FROM upgrade_check.provision_ledger) || ' entries 0.1.0 wrote are unchanged');
SELECT pg_temp.check(medanon.verify_ledger() IS NULL, 'verify_ledger(): the whole ledger, 0.1.0''s entries included, verifies');
SELECT pg_temp.check(array_agg(contract_id ORDER BY contract_id) = ARRAY['up_anon', 'up_created', 'up_expired', 'up_pseudo', 'up_revoked']
                     AND bool_and(detail ->> 'from' = '0.1.0' AND detail ->> 'to' = '0.2.0'
                                  AND detail -> 'spec_sha256' ->> 'before' = (SELECT c.spec_sha256 FROM upgrade_check.contract c
                                                                              WHERE c.contract_id = l.contract_id)
                                  AND detail -> 'spec_sha256' ->> 'after' = l.spec_sha256),
                     'one upgrade entry per contract, with the spec hash before and after')
  FROM medanon.provision_ledger l WHERE event = 'upgrade' AND contract_id IS NOT NULL;
SELECT pg_temp.check(array_agg(detail ->> 'from' ORDER BY entry_id) = ARRAY['0.1.0', '0.2.0']
                     AND bool_and(detail ->> 'from' <> '0.1.0'
                                  OR ((detail ->> 'chained_at_upgrade')::int = (SELECT count(*) FROM upgrade_check.provision_ledger)
                                      AND detail -> 'contracts' = '{"created": 1, "published": 3, "revoked": 1}'))
                     AND bool_and(detail ->> 'from' <> '0.2.0'
                                  OR (detail ->> 'to' = :'version'
                                      AND detail -> 'contracts' = '{"created": 1, "expired": 1, "published": 2, "revoked": 1}')),
                     'one upgrade entry of the extension per step: 0.1.0 to 0.2.0 (the entries it chained, the contracts by status), then 0.2.0 to ' || :'version')
  FROM medanon.provision_ledger WHERE event = 'upgrade' AND contract_id IS NULL;
SELECT pg_temp.check(bool_and((SELECT n.event FROM medanon.provision_ledger n WHERE n.contract_id = u.contract_id
                                 AND n.entry_id > u.entry_id ORDER BY n.entry_id LIMIT 1) = 'refresh')
                     AND bool_and((u.detail -> 'tokens' ->> 'persons')::int = 40 AND u.detail -> 'tokens' ? 'before'),
                     'each published contract: the upgrade entry says its tokens changed, and a refresh follows it')
  FROM medanon.provision_ledger u WHERE u.event = 'upgrade' AND u.contract_id IN ('up_anon', 'up_pseudo');
SELECT pg_temp.check(detail -> 'snapshots_kept' = '["contract_up_anon_snap_1"]', 'the upgrade entry lists the snapshot kept as released')
  FROM medanon.provision_ledger WHERE event = 'upgrade' AND contract_id = 'up_anon';
SELECT pg_temp.check(bool_and(spec_sha256 = encode(sha256(convert_to(spec::text, 'UTF8')), 'hex')),
                     'every contract''s spec hash is the one (since 0.2.0) which the README tells an auditor to recompute')
  FROM medanon.contract;

-- Contracts: the same statuses; the published ones readable by their grantees,
-- with the same rows, bigint tokens consistent across views, offsets kept.
SELECT pg_temp.check(NOT EXISTS (SELECT contract_id, status, grantee, kind, spec FROM upgrade_check.contract WHERE contract_id <> 'up_expired'
                                 EXCEPT SELECT contract_id, status, grantee, kind, spec FROM medanon.contract),
                     'every contract keeps its status, grantee, kind and spec');
SELECT pg_temp.check(c.status = 'expired' AND to_regnamespace('contract_up_expired') IS NULL
                     AND (SELECT array_agg(l.event ORDER BY l.entry_id) FROM medanon.provision_ledger l
                           WHERE l.contract_id = 'up_expired' AND l.entry_id > (SELECT max(entry_id) FROM upgrade_check.provision_ledger))
                         = ARRAY['upgrade', 'expire']
                     AND NOT EXISTS (SELECT FROM medanon.contract_person m WHERE m.contract_id = 'up_expired'),
                     'a published contract past its expiry is closed by the upgrade as expire_contracts() would: upgrade, then expire')
  FROM medanon.contract c WHERE c.contract_id = 'up_expired';
SELECT pg_temp.check(NOT EXISTS (SELECT contract_id, person_id, date_offset FROM upgrade_check.contract_person WHERE contract_id <> 'up_expired'
                                 EXCEPT SELECT contract_id, person_id, date_offset FROM medanon.contract_person)
                     AND (SELECT count(*) FROM medanon.contract_person)
                         = (SELECT count(*) FROM upgrade_check.contract_person WHERE contract_id <> 'up_expired'),
                     'every person of every contract keeps its date offset');
SELECT pg_temp.check(format_type(atttypid, atttypmod) = 'bigint', 'contract_person.token is a bigint')
  FROM pg_attribute WHERE attrelid = 'medanon.contract_person'::regclass AND attname = 'token';
SELECT pg_temp.check(NOT EXISTS (SELECT contract_id, token FROM medanon.contract_person GROUP BY 1, 2 HAVING count(*) > 1)
                     AND NOT EXISTS (SELECT FROM medanon.contract_person m JOIN upgrade_check.contract_person o USING (contract_id, person_id)
                                      WHERE m.token::text = o.token),
                     'every person has a new token, unique in its contract');
SELECT pg_temp.check(count(*) FILTER (WHERE first_class IS NULL) = 0 AND count(*) > 30,
                     'the refresh fixed the first class of every person it shows in the anonymized contract')
  FROM medanon.contract_person WHERE contract_id = 'up_anon' AND state = 'visible';
SELECT pg_temp.check(format_type(a.atttypid, a.atttypmod) = 'bigint', 'the view ' || c.relnamespace::regnamespace || '.' || c.relname || ' shows a bigint token')
  FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'person_id'
 WHERE c.relnamespace IN ('contract_up_anon'::regnamespace, 'contract_up_pseudo'::regnamespace);
SET ROLE up_lab;
SELECT pg_temp.check(count(*) = (SELECT n FROM upgrade_check.view_rows WHERE contract_id = 'up_anon' AND view_name = 'patient')
                     AND count(DISTINCT person_id) = (SELECT persons FROM upgrade_check.view_rows WHERE contract_id = 'up_anon' AND view_name = 'patient'),
                     'the grantee reads contract_up_anon.patient: ' || count(*) || ' rows, as before')
  FROM contract_up_anon.patient;
SELECT pg_temp.check(count(*) = (SELECT n FROM upgrade_check.view_rows WHERE contract_id = 'up_anon' AND view_name = 'visit'),
                     'the grantee reads contract_up_anon.visit: ' || count(*) || ' rows, as before')
  FROM contract_up_anon.visit;
SELECT pg_temp.check(NOT EXISTS (SELECT person_id FROM contract_up_anon.visit EXCEPT SELECT person_id FROM contract_up_anon.patient),
                     'the tokens of the anonymized contract join across its views');
SELECT pg_temp.check(count(*) = (SELECT n FROM upgrade_check.view_rows WHERE contract_id = 'up_anon_snap_1'),
                     'the snapshot is readable as released (' || count(*) || ' rows)')
  FROM contract_up_anon_snap_1.patient;
RESET ROLE;
SELECT pg_temp.check(NOT EXISTS (SELECT * FROM upgrade_check.snapshot EXCEPT SELECT * FROM contract_up_anon_snap_1.patient),
                     'the snapshot''s rows are unchanged (0.1.0''s tokens)');
SET ROLE up_pharma;
SELECT pg_temp.check(count(*) = (SELECT n FROM upgrade_check.view_rows WHERE contract_id = 'up_pseudo'),
                     'the grantee reads contract_up_pseudo.visit: ' || count(*) || ' rows, as before')
  FROM contract_up_pseudo.visit;
RESET ROLE;
SELECT pg_temp.check(NOT EXISTS (SELECT m.person_id, array_agg(v.visit_date ORDER BY v.visit_date)
                                   FROM contract_up_pseudo.visit v JOIN medanon.contract_person m ON m.contract_id = 'up_pseudo' AND m.token = v.person_id
                                  GROUP BY m.person_id
                                 EXCEPT SELECT * FROM upgrade_check.shifted)
                     AND (SELECT count(DISTINCT person_id) FROM contract_up_pseudo.visit) = (SELECT count(*) FROM upgrade_check.shifted),
                     'every person of the pseudonymized contract shows the same shifted dates as before');
SELECT pg_temp.check(NOT EXISTS (SELECT FROM pg_depend d JOIN pg_class r ON d.classid = 'pg_class'::regclass AND r.oid = d.objid
                                  WHERE d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e'
                                    AND r.relnamespace::regnamespace::text LIKE 'contract\_%'),
                     'no object of a contract is a member of the extension');
SELECT pg_temp.check(obj_description('contract_up_anon'::regnamespace, 'pg_namespace') = 'medanon contract views'
                     AND obj_description('contract_up_anon_snap_1'::regnamespace, 'pg_namespace') = 'medanon contract snapshot, frozen for delivery',
                     'schema comments no longer name the contract''s purpose, grantee or expiry');

-- The current version works on what 0.1.0 left: an opt-out withholds a person of an upgraded
-- contract at once, a contract created under 0.1.0 publishes, and linking the
-- same batch again keeps every person.
SELECT medanon.opt_out('H1', 'p3', 'self');
SET ROLE up_lab;
SELECT pg_temp.check(count(*) = (SELECT n FROM upgrade_check.view_rows WHERE contract_id = 'up_anon' AND view_name = 'visit') - 3,
                     'an opt-out after the upgrade withholds the person''s 3 visits at once')
  FROM contract_up_anon.visit;
RESET ROLE;
SELECT pg_temp.check((medanon.publish_contract('up_created') -> 'persons' ->> 'visible')::int > 30,
                     'a contract created under 0.1.0 publishes under ' || :'version');
SELECT medanon.link_patients('up.staging');
SELECT pg_temp.check(NOT EXISTS (SELECT institution_code, local_patient_id, person_id FROM upgrade_check.person_link
                                 EXCEPT SELECT institution_code, local_patient_id, person_id FROM medanon.person_link)
                     AND NOT EXISTS (SELECT FROM medanon.person_link WHERE digest IS NULL),
                     'linking the 0.1.0 batch again keys every record (digest) and keeps every person');
SELECT pg_temp.check(medanon.verify_ledger() IS NULL, 'the ledger still verifies');
\o
\echo upgrade checks: every check passed
