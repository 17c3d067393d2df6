-- Linkage benchmark (scripts/bench.sh): on about 1M synthetic staging records
-- (database :linkdb) and a 10k batch of other patients (synth_batch.registration,
-- in :linkdb and in the empty database :emptydb), in one run:
--
--   1. the first link of the 1M records;
--   2. the 10k batch linked into the 1M linked records, inside BEGIN ... ROLLBACK,
--      alternated three times with the same batch linked into an empty database,
--      first right after the big link (person_link not analyzed yet), then after
--      ANALYZE (as autovacuum will have done in production): the plan must not
--      depend on when ANALYZE ran, and the ratio must stay at most 2;
--   3. the same 1M batch again, unchanged (target: at most 0.2 of the first link);
--   4. the quality figures against the ground truth (bench/link_quality.sql).
\set QUIET on
\pset footer off
\c :linkdb
CREATE TABLE public.link_timing (run text, records bigint, seconds numeric, result jsonb);
-- One timed link_patients call, recorded under `run` (in the link database, over
-- dblink-free plain psql: the empty database reports its time through a temp file).
CREATE FUNCTION public.timed_link(staging regclass, run text) RETURNS numeric LANGUAGE plpgsql AS $$
DECLARE t0 timestamptz := clock_timestamp(); r jsonb; s numeric;
BEGIN
  r := medanon.link_patients(staging);
  s := round(extract(epoch FROM clock_timestamp() - t0)::numeric, 3);
  INSERT INTO public.link_timing VALUES (run, (r->>'records_in')::bigint, s, r);
  RETURN s;
END $$;
\c :emptydb
CREATE FUNCTION public.timed_link(staging regclass) RETURNS numeric LANGUAGE plpgsql AS $$
DECLARE t0 timestamptz := clock_timestamp();
BEGIN
  PERFORM medanon.link_patients(staging);
  RETURN round(extract(epoch FROM clock_timestamp() - t0)::numeric, 3);
END $$;

-- 1. The first link.
\c :linkdb
SELECT public.timed_link('synth.registration', 'first link, 1M') \g /dev/null

-- 2. 10k into 1M against 10k into empty, before and after ANALYZE.
\set phase 'not analyzed'
\i bench/link_batch_round.sql
\i bench/link_batch_round.sql
\i bench/link_batch_round.sql
\c :linkdb
ANALYZE medanon.person_link, medanon.person, medanon.link_conflict, medanon.link_candidates;
\set phase 'analyzed'
\i bench/link_batch_round.sql
\i bench/link_batch_round.sql
\i bench/link_batch_round.sql

-- 3. The same 1M batch again, unchanged.
\c :linkdb
SELECT public.timed_link('synth.registration', 'same 1M again, unchanged') \g /dev/null

\unset QUIET
SELECT run, records, seconds, result - 'records_in' AS result FROM public.link_timing ORDER BY run, seconds;
\set QUIET on
-- Ratios, each within this run: medians of three.
CREATE VIEW public.link_ratio AS
WITH m AS (SELECT run, percentile_disc(0.5) WITHIN GROUP (ORDER BY seconds) AS median FROM public.link_timing GROUP BY run)
SELECT (SELECT median FROM m WHERE run = 'first link, 1M') AS first_link,
       (SELECT median FROM m WHERE run = 'same 1M again, unchanged') AS relink,
       (SELECT median FROM m WHERE run = '10k into empty (not analyzed)') AS empty_1,
       (SELECT median FROM m WHERE run = '10k into 1M (not analyzed)') AS full_1,
       (SELECT median FROM m WHERE run = '10k into empty (analyzed)') AS empty_2,
       (SELECT median FROM m WHERE run = '10k into 1M (analyzed)') AS full_2;
\unset QUIET
SELECT first_link, relink, round(relink / first_link, 3) AS relink_ratio,
       empty_1, full_1, round(full_1 / empty_1, 2) AS ratio_not_analyzed,
       empty_2, full_2, round(full_2 / empty_2, 2) AS ratio_analyzed
  FROM public.link_ratio;
\i bench/link_quality.sql
\set QUIET on
\pset tuples_only on
\pset format unaligned
\o :outfile
SELECT '| link_patients, first link of ' || records || ' records | ' || seconds || ' s | 1 |'
  FROM public.link_timing WHERE run = 'first link, 1M';
SELECT '| link_patients, the same ' || t.records || ' records again, unchanged | ' || t.seconds || ' s | ' || round(r.relink / r.first_link, 3) || ' |'
  FROM public.link_timing t, public.link_ratio r WHERE t.run = 'same 1M again, unchanged';
SELECT '| 10k batch into empty, median of 3 (' || p || ') | ' || e || ' s | 1 |' || E'\n'
    || '| 10k batch into 1M linked, median of 3 (' || p || ') | ' || f || ' s | ' || round(f / e, 2) || ' |'
  FROM public.link_ratio, LATERAL (VALUES ('person_link not analyzed', empty_1, full_1), ('person_link analyzed', empty_2, full_2)) v(p, e, f);
\o
