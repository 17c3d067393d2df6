-- Timing helpers shared by the benchmark scripts (\i bench/harness.sql). Times are
-- wall clock in ms, rounded to 0.1.

-- One run of a query.
CREATE OR REPLACE FUNCTION pg_temp.elapsed_ms(query text) RETURNS numeric LANGUAGE plpgsql AS $$
DECLARE t0 timestamptz := clock_timestamp();
BEGIN
  EXECUTE query;
  RETURN extract(epoch FROM clock_timestamp() - t0) * 1000;
END $$;

-- The fastest of `runs` runs.
CREATE OR REPLACE FUNCTION pg_temp.best_ms(query text, runs int) RETURNS numeric LANGUAGE sql AS $$
  SELECT round(min(pg_temp.elapsed_ms(query)), 1) FROM generate_series(1, runs)
$$;

-- Two queries run alternately, `runs` times each, the fastest of each: the machine
-- is shared, and alternating spreads its noise over both.
CREATE OR REPLACE FUNCTION pg_temp.best_pair(ours text, theirs text, runs int, OUT ours_ms numeric, OUT theirs_ms numeric)
LANGUAGE plpgsql AS $$
BEGIN
  FOR i IN 1..runs LOOP
    ours_ms := least(coalesce(ours_ms, 'Infinity'), pg_temp.elapsed_ms(ours));
    theirs_ms := least(coalesce(theirs_ms, 'Infinity'), pg_temp.elapsed_ms(theirs));
  END LOOP;
  ours_ms := round(ours_ms, 1);
  theirs_ms := round(theirs_ms, 1);
END $$;
