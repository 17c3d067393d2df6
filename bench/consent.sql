-- Consent benchmark: eligible_persons over the linked synthetic records (run by
-- scripts/bench.sh after bench/link.sql, in the same database). Every record is
-- notified 100 days back and the first 1,000 records opt out. One core, best of 3.
\set QUIET on
\pset footer off
SET max_parallel_workers_per_gather = 0;
SET jit = off;
INSERT INTO medanon.institution (code, name, kind) SELECT code, name, kind FROM synth.institution ON CONFLICT DO NOTHING;
INSERT INTO medanon.notification (institution_code, local_patient_id, notified_at, method)
SELECT institution_code, local_patient_id, now() - interval '100 days', 'written' FROM medanon.person_link;
SELECT count(medanon.opt_out(institution_code, local_patient_id))
  FROM (SELECT institution_code, local_patient_id FROM medanon.person_link ORDER BY 1, 2 LIMIT 1000) s \g /dev/null
ANALYZE;
\i bench/harness.sql
CREATE TEMP TABLE consent_results (n int, query text, ms numeric);
INSERT INTO consent_results SELECT 1, 'SELECT count(*) FROM eligible_persons (all pairs)',
  pg_temp.best_ms('SELECT count(*) FROM medanon.eligible_persons', 3);
INSERT INTO consent_results SELECT 2, 'is_eligible(one person)',
  pg_temp.best_ms('SELECT medanon.is_eligible(person_id) FROM medanon.person_link ORDER BY person_id LIMIT 1', 3);
INSERT INTO consent_results SELECT 3, 'records of 1,000 persons filtered through eligible_persons (DISTINCT)',
  pg_temp.best_ms('SELECT count(*) FROM medanon.person_link l WHERE l.person_id < 1000 AND EXISTS
                   (SELECT FROM medanon.eligible_persons e WHERE e.person_id = l.person_id AND e.institution_code = l.institution_code)', 3);
INSERT INTO consent_results SELECT 4, 'records of 1,000 persons filtered through eligible_records',
  pg_temp.best_ms('SELECT count(*) FROM medanon.person_link l WHERE l.person_id < 1000 AND EXISTS
                   (SELECT FROM medanon.eligible_records e WHERE e.institution_code = l.institution_code
                                                             AND e.local_patient_id = l.local_patient_id)', 3);
INSERT INTO consent_results SELECT 5, 'the same 1,000 persons, no consent filter (baseline)',
  pg_temp.best_ms('SELECT count(*) FROM medanon.person_link l WHERE l.person_id < 1000', 3);
\unset QUIET
SELECT (SELECT count(*) FROM medanon.person_link) AS records, (SELECT count(*) FROM medanon.opt_out) AS opt_outs;
SELECT query, ms FROM consent_results ORDER BY n;
\set QUIET on
\pset tuples_only on
\pset format unaligned
\o :outfile
SELECT '| ' || query || ' | ' || ms || ' |' FROM consent_results ORDER BY n;
\o
