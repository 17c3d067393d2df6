-- Publish with the session's JIT on and off (issue 14), run by scripts/bench.sh
-- with MEDANON_BENCH_ONLY=publish_jit: the bench contract of bench/contract.sql
-- (:persons persons, :visits visits) published six times as six contracts,
-- alternating the session's jit setting (on, off, off, on, on, off), each revoked
-- after its publish so every publish starts from the same state, a CHECKPOINT
-- before each. Until commit ee92941 publish ran with the session's jit; since,
-- it turns JIT off for its own statements, so the two columns should agree.
\i bench/contract_data.sql
CREATE TEMP TABLE publish_jit (n int, session_jit text, ms numeric);
SELECT medanon.create_contract(pg_temp.bench_spec('w' || i)) FROM generate_series(1, 6) i;
\set n 1
\set jit on
\i bench/publish_jit_run.sql
\set n 2
\set jit off
\i bench/publish_jit_run.sql
\set n 3
\set jit off
\i bench/publish_jit_run.sql
\set n 4
\set jit on
\i bench/publish_jit_run.sql
\set n 5
\set jit on
\i bench/publish_jit_run.sql
\set n 6
\set jit off
\i bench/publish_jit_run.sql
\set QUIET off
\pset footer off
SELECT session_jit, count(*) AS publishes, round(min(ms) / 1000, 1) AS min_s, round(avg(ms) / 1000, 1) AS mean_s,
       round(max(ms) / 1000, 1) AS max_s
  FROM publish_jit GROUP BY session_jit ORDER BY session_jit DESC;
\set QUIET on
\pset format unaligned
\pset tuples_only on
\o :outfile
SELECT format('| publish_contract, session jit %s | %s | %s s | %s s | %s s |', session_jit, count(*),
              round(min(ms) / 1000, 1), round(avg(ms) / 1000, 1), round(max(ms) / 1000, 1))
  FROM publish_jit GROUP BY session_jit ORDER BY session_jit DESC;
\o
