-- Linkage benchmark: link_patients on the whole synthetic staging table (about
-- 1.8 records per patient), timed, then the same batch again (idempotent re-run),
-- then the quality figures against the ground truth. Run by scripts/bench.sh.
\set QUIET on
\pset footer off
CREATE TEMP TABLE link_timing (run text, records bigint, seconds numeric, result jsonb);
-- One timed link_patients call on the staging table, recorded under `run`.
CREATE FUNCTION pg_temp.timed_link(run text) RETURNS void LANGUAGE plpgsql AS $$
DECLARE t0 timestamptz := clock_timestamp(); r jsonb;
BEGIN
  r := medanon.link_patients('synth.registration');
  INSERT INTO link_timing VALUES (run, (r->>'records_in')::bigint,
                                  round(extract(epoch FROM clock_timestamp() - t0)::numeric, 1), r);
END $$;
SELECT pg_temp.timed_link('first batch') \g /dev/null
SELECT pg_temp.timed_link('same batch again') \g /dev/null
\unset QUIET
SELECT run, records, seconds, result - 'records_in' AS result FROM link_timing ORDER BY seconds DESC;
\i bench/link_quality.sql
\set QUIET on
\pset tuples_only on
\pset format unaligned
\o :outfile
SELECT '| link_patients, ' || run || ' | ' || records || ' | ' || seconds || ' s |' FROM link_timing ORDER BY seconds DESC;
\o
