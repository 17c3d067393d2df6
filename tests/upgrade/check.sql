-- The checks' common start, read by tests/upgrade/after-*.sql: pg_temp.check(ok,
-- what) raises when a check does not hold and prints "ok: <what>" when it does;
-- then the extension's version, the first check of every upgrade.
\set ON_ERROR_STOP 1
\set QUIET 1
\o /dev/null
SET client_min_messages = warning;
CREATE FUNCTION pg_temp.check(ok boolean, what text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF ok IS NOT TRUE THEN
        RAISE EXCEPTION 'upgrade check failed: %', what;
    END IF;
    RAISE NOTICE 'ok: %', what;
END $$;
GRANT EXECUTE ON FUNCTION pg_temp.check(boolean, text) TO PUBLIC;
SET client_min_messages = notice;

SELECT pg_temp.check(extversion = :'version', 'the extension is at version ' || :'version')
  FROM pg_extension WHERE extname = 'medanon';
