-- Consent: notifications, the waiting period, opt-outs by every kind of requester,
-- scope, withdrawal, requests before linking, the append-only ledger, and intake.
-- A fresh install, so the persons linked by 06_link do not count here.
SET client_min_messages = warning;
DROP EXTENSION medanon CASCADE;
CREATE EXTENSION medanon;
RESET client_min_messages;
SELECT medanon.register_institution('H1', '東都大学病院', 'hospital'),
       medanon.register_institution('H2', '城南クリニック', 'clinic'),
       medanon.register_institution('M1', '杉並区', 'municipality');
SELECT medanon.register_institution('X1', 'Somewhere', 'pharmacy');

-- Three persons; Taro at H1 and H2, Hanako at H1, Jiro at H2.
CREATE TABLE staging (institution_code text, local_patient_id text, name_kana text, birth_date text, sex text,
                      insurer_number text, insured_symbol text, insured_number text);
INSERT INTO staging VALUES
  ('H1', 'taro-1',   'サトウタロウ', '1975-03-01', '1', '', '', ''),
  ('H2', 'taro-2',   'さとう たろう', 'S50.3.1',   'M', '', '', ''),
  ('H1', 'hanako-1', 'ヤマダハナコ', '1980-05-05', '2', '', '', ''),
  ('H2', 'jiro-2',   'スズキジロウ', '1990-01-01', '1', '', '', '');
SELECT medanon.link_patients('staging')->>'new_persons' AS persons;
CREATE VIEW who AS
SELECT l.institution_code, l.local_patient_id, l.person_id FROM medanon.person_link l;
CREATE FUNCTION eligible() RETURNS TABLE (record text) LANGUAGE sql AS $$
  SELECT w.institution_code || '/' || w.local_patient_id FROM who w
    JOIN medanon.eligible_persons e USING (person_id, institution_code) ORDER BY 1 $$;

-- The waiting period: day 29 is not enough, day 30 is.
SHOW medanon.notice_wait_days;
SELECT medanon.record_notification('H1', 'taro-1', now() - interval '29 days') > 0 AS recorded;
SELECT * FROM eligible();
SELECT medanon.record_notification('H1', 'taro-1', now() - interval '30 days') > 0 AS recorded;
SELECT * FROM eligible();
SELECT medanon.record_notification('H2', 'taro-2', now() - interval '40 days', 'electronic'),
       medanon.record_notification('H1', 'hanako-1', now() - interval '31 days'),
       medanon.record_notification('H2', 'jiro-2', now() - interval '365 days') \gset
SELECT * FROM eligible();
SELECT medanon.record_notification('H9', 'nobody', now() - interval '40 days');
SELECT medanon.record_notification('H1', 'taro-1', now() + interval '1 day');
SELECT medanon.record_notification('H1', 'taro-1', now(), 'carrier pigeon');
-- An empty local id broke another constraint than the method's (it was reported as a bad method).
SELECT medanon.record_notification('H1', '', now());

-- Scope 'institution': Taro's records from H1 stop, those from H2 still flow.
SELECT medanon.opt_out('H1', 'taro-1', 'self', NULL, 'institution') > 0 AS opted_out;
SELECT * FROM eligible();
SELECT medanon.is_eligible(person_id, 'H1') AS from_h1, medanon.is_eligible(person_id, 'H2') AS from_h2,
       medanon.is_eligible(person_id) AS from_any
  FROM who WHERE local_patient_id = 'taro-1';
-- Scope 'all' (the default), by a guardian at H2: Taro is gone everywhere.
SELECT medanon.opt_out('H2', 'taro-2', 'guardian', 'parent', 'all') > 0 AS opted_out;
SELECT * FROM eligible();
-- Withdrawal: the guardian's opt-out at H2 is withdrawn; H1's institution opt-out stays.
SELECT medanon.withdraw_opt_out('H2', 'taro-2') AS withdrawn;
SELECT * FROM eligible();
SELECT medanon.withdraw_opt_out('H2', 'taro-2');
-- The bereaved family of Hanako, with the relationships the cabinet order lists.
SELECT medanon.opt_out('H1', 'hanako-1', 'bereaved_family', 'cousin', 'all');
SELECT medanon.opt_out('H1', 'hanako-1', 'bereaved_family', NULL, 'all');
SELECT medanon.opt_out('H1', 'hanako-1', 'bereaved_family', 'grandchild', 'all') > 0 AS opted_out;
SELECT * FROM eligible();
SELECT medanon.opt_out('H1', 'hanako-1', 'neighbour');
SELECT medanon.opt_out('H1', 'hanako-1', 'self', 'spouse', 'all');
SELECT medanon.opt_out('H1', 'hanako-1', 'self', NULL, 'everywhere');
SELECT requested_by, relationship, scope FROM medanon.opt_out ORDER BY opt_out_id;

-- A request naming a patient nobody has linked yet is kept, and applies on linking.
SELECT medanon.opt_out('H2', 'saburo-2') > 0 AS kept;
SELECT count(*) AS unresolved FROM medanon.opt_outs_in_force WHERE person_id IS NULL;
INSERT INTO staging VALUES ('H2', 'saburo-2', 'タナカサブロウ', '1960-06-06', '1', '', '', ''),
                           ('M1', 'saburo-m', 'たなか さぶろう', '昭和35年6月6日', '男', '', '', '');
SELECT medanon.record_notification('H2', 'saburo-2', now() - interval '60 days'),
       medanon.record_notification('M1', 'saburo-m', now() - interval '60 days') \gset
SELECT medanon.link_patients('staging')->>'new_persons' AS new_persons;
SELECT count(*) AS unresolved FROM medanon.opt_outs_in_force WHERE person_id IS NULL;
SELECT * FROM eligible();

-- The ledger is append-only, for every role.
UPDATE medanon.opt_out SET scope = 'institution';
DELETE FROM medanon.notification;
TRUNCATE medanon.opt_out_withdrawal;
DELETE FROM medanon.institution WHERE code = 'M1';

-- Intake: a new batch from H1 and H2 is checked before it is linked.
CREATE TABLE batch2 (institution_code text, local_patient_id text, name_kana text, note text);
INSERT INTO batch2 VALUES ('H2', 'jiro-2', 'スズキジロウ', 'notified a year ago'),
                          ('H1', 'new-1', 'イトウアイ', 'never notified'),
                          ('H1', 'new-2', 'イトウケン', 'notified 10 days ago'),
                          ('H1', 'taro-1', 'サトウタロウ', 'opted out at H1'),
                          ('M1', 'saburo-m', 'タナカサブロウ', 'opted out (scope all, at H2)');
SELECT medanon.record_notification('H1', 'new-2', now() - interval '10 days') > 0 AS recorded;
SELECT jsonb_pretty(medanon.check_intake('batch2')) AS intake;
SELECT institution_code, local_patient_id, note FROM batch2 ORDER BY 1, 2;
SELECT institution_code, local_patient_id, reason, record->>'note' AS note FROM medanon.intake_quarantine ORDER BY 1, 2;
-- Release: the opted-out records are deleted for good (a log entry stays) and the
-- others wait; once new-2's waiting period is over (an earlier notification comes to
-- light), it goes back to its staging table.
SELECT medanon.release_quarantine();
SELECT medanon.record_notification('H1', 'new-2', now() - interval '30 days') > 0 AS recorded;
-- As an operator login, which may delete quarantined records but not update them.
CREATE ROLE regress_releaser IN ROLE medanon_operator;
GRANT INSERT ON batch2 TO regress_releaser;
SET ROLE regress_releaser;
SELECT medanon.release_quarantine();
RESET ROLE;
DROP OWNED BY regress_releaser;
DROP ROLE regress_releaser;
SELECT institution_code, local_patient_id, note FROM batch2 ORDER BY 1, 2;
SELECT event, institution_code, local_patient_id, reason FROM medanon.intake_log ORDER BY entry_id;
SELECT count(*) AS held, string_agg(local_patient_id, ', ' ORDER BY local_patient_id) AS still_held FROM medanon.intake_quarantine;
SELECT medanon.check_intake('medanon.keyring');

DROP FUNCTION eligible();
DROP VIEW who;
DROP TABLE staging, batch2;
