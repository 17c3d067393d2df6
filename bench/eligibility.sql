-- The consent rule at 1M records (issue 12): eligible_records, built on the two
-- views that own the rule (notified_records, refused_records), against a copy of
-- the 0.1.0 view that wrote the rule inline; same rows, and the time of each.
-- Run in an empty database: psql -d scratch -f bench/eligibility.sql
DROP EXTENSION IF EXISTS medanon CASCADE;
CREATE EXTENSION medanon;
SELECT count(*) FROM (SELECT medanon.register_institution('H' || i, 'h', 'hospital') FROM generate_series(1, 10) i) x;
ALTER TABLE medanon.person_link DISABLE TRIGGER USER;
INSERT INTO medanon.person_link (institution_code, local_patient_id, person_id, block)
SELECT 'H' || (1 + i % 10), 'p' || i, i / 2, 0 FROM generate_series(1, 1000000) i;
INSERT INTO medanon.notification (institution_code, local_patient_id, notified_at, method)
SELECT 'H' || (1 + i % 10), 'p' || i, now() - interval '40 days', 'written' FROM generate_series(1, 1000000) i WHERE i % 50 <> 0;
ALTER TABLE medanon.opt_out DISABLE TRIGGER USER;
INSERT INTO medanon.opt_out (institution_code, local_patient_id, requested_by, received_at, scope)
SELECT 'H' || (1 + i % 10), 'p' || i, 'self', now(), CASE WHEN i % 2 = 0 THEN 'all' ELSE 'institution' END FROM generate_series(1, 1000000, 97) i;
ANALYZE;
\timing on
SELECT count(*) FROM medanon.eligible_records;
SELECT count(*) FROM medanon.eligible_records;
SELECT count(*) FROM medanon.eligible_records;
\timing off
-- the rule as it was before (a copy of the 0.1.0 view), for the same count and time
CREATE TEMP VIEW old_eligible AS
SELECT l.institution_code, l.local_patient_id, l.person_id
  FROM medanon.person_link l
 WHERE EXISTS (SELECT FROM medanon.notification n WHERE n.institution_code = l.institution_code AND n.local_patient_id = l.local_patient_id
                  AND n.notified_at <= now() - make_interval(days => medanon.notice_wait_days()))
   AND NOT EXISTS (SELECT FROM medanon.opt_outs_in_force o WHERE o.person_id = l.person_id
                      AND (o.scope = 'all' OR o.institution_code = l.institution_code));
\timing on
SELECT count(*) FROM old_eligible;
SELECT count(*) FROM old_eligible;
SELECT count(*) FROM old_eligible;
\timing off
SELECT count(*) AS differ FROM (SELECT * FROM medanon.eligible_records EXCEPT SELECT * FROM old_eligible
                                UNION ALL SELECT * FROM old_eligible EXCEPT SELECT * FROM medanon.eligible_records) d;
