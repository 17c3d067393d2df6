-- Scheduled expiry: expire_contracts() once a day from pg_cron, in one call.
--
-- The job runs as the role that schedules it (pg_cron's rule; these functions are
-- not SECURITY DEFINER, so no operator makes the extension owner a cron job): a
-- superuser, or a medanon_operator that was granted USAGE on schema cron. The
-- views of an expired contract already show nothing from the day after
-- expires_on, so the job only drops them and writes the ledger; its hour matters
-- little.
--
-- pg_cron 1.4 (Debian 12's postgresql-15-cron) reads schedules in GMT: the
-- default, 15:05 GMT, is 00:05 in Japan, just after a contract's last day ends in
-- the operator's time zone.

-- pg_cron's job name; one per database owner of the job (pg_cron's rule).
-- Scheduling again replaces the schedule of the same job.
CREATE FUNCTION _expiry_job_name() RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN 'medanon_expire_contracts';

-- What is needed before a job can be scheduled or removed here, or the error that
-- says what is missing. pg_cron's settings and shared_preload_libraries are
-- superuser-only reading, so an operator is told what a superuser must do; a
-- superuser is told exactly which step is missing.
CREATE FUNCTION _require_pg_cron() RETURNS void
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    other_way constant text := 'or run "psql -c ''SELECT medanon.expire_contracts()''" daily from the system''s cron';
    reads_settings constant boolean := pg_catalog.pg_has_role('pg_read_all_settings', 'USAGE');
    cron_db text;
BEGIN
    IF EXISTS (SELECT FROM pg_catalog.pg_extension e WHERE e.extname = 'pg_cron') THEN
        IF NOT pg_catalog.has_schema_privilege('cron', 'USAGE') THEN
            RAISE EXCEPTION 'permission denied for schema cron'
                USING ERRCODE = 'insufficient_privilege',
                      DETAIL = pg_catalog.format('role %s may not schedule pg_cron jobs', pg_catalog.quote_ident(current_user)),
                      HINT = 'call it as a superuser, or GRANT USAGE ON SCHEMA cron TO the calling role';
        END IF;
        RETURN;
    END IF;
    IF NOT reads_settings THEN
        RAISE EXCEPTION 'extension pg_cron is not installed in database %', pg_catalog.current_database()
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'a superuser loads pg_cron (shared_preload_libraries, cron.database_name) and runs CREATE EXTENSION pg_cron here; '
                      || other_way;
    END IF;
    IF NOT 'pg_cron' = ANY (pg_catalog.string_to_array(pg_catalog.replace(pg_catalog.current_setting('shared_preload_libraries'), ' ', ''), ',')) THEN
        RAISE EXCEPTION 'pg_cron is not loaded'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  DETAIL = pg_catalog.format('shared_preload_libraries is "%s"', pg_catalog.current_setting('shared_preload_libraries')),
                  HINT = 'add pg_cron to shared_preload_libraries, set cron.database_name to this database and restart; ' || other_way;
    END IF;
    cron_db := pg_catalog.current_setting('cron.database_name', true);
    RAISE EXCEPTION 'extension pg_cron is not installed in database %', pg_catalog.current_database()
        USING ERRCODE = 'object_not_in_prerequisite_state',
              DETAIL = pg_catalog.format('cron.database_name is "%s"', cron_db),
              HINT = CASE WHEN cron_db = pg_catalog.current_database()
                          THEN 'run CREATE EXTENSION pg_cron here first; ' || other_way
                          ELSE pg_catalog.format('in database %s, run SELECT cron.schedule_in_database(%L, %L, %L, %L); ',
                                                 pg_catalog.quote_ident(cron_db), medanon._expiry_job_name(),
                                                 '5 15 * * *', 'SELECT medanon.expire_contracts()',
                                                 pg_catalog.current_database()) || other_way END;
END
$fn$;

CREATE FUNCTION schedule_expiry(at text DEFAULT '5 15 * * *') RETURNS bigint
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE job bigint;
BEGIN
    IF at IS NULL THEN
        RAISE EXCEPTION 'the schedule must not be NULL'
            USING ERRCODE = 'null_value_not_allowed', HINT = 'give a cron schedule such as ''5 15 * * *'' (GMT)';
    END IF;
    PERFORM medanon._require_pg_cron();
    -- The job runs as the caller: it must be able to run expire_contracts itself.
    IF NOT pg_catalog.has_function_privilege('medanon.expire_contracts()', 'EXECUTE') THEN
        RAISE EXCEPTION 'permission denied for function expire_contracts'
            USING ERRCODE = 'insufficient_privilege',
                  DETAIL = 'the job would run medanon.expire_contracts() as the role that schedules it',
                  HINT = 'schedule it as a superuser or a member of medanon_operator';
    END IF;
    EXECUTE 'SELECT cron.schedule($1, $2, $3)' INTO job
        USING medanon._expiry_job_name(), at, 'SELECT medanon.expire_contracts()';
    RETURN job;
END
$fn$;

CREATE FUNCTION unschedule_expiry() RETURNS boolean
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE found boolean;
BEGIN
    PERFORM medanon._require_pg_cron();
    -- cron.job shows each role its own jobs; unschedule removes the caller's.
    EXECUTE 'SELECT EXISTS (SELECT FROM cron.job j WHERE j.jobname = $1 AND j.username = current_user)' INTO found
        USING medanon._expiry_job_name();
    IF found THEN
        EXECUTE 'SELECT cron.unschedule($1)' USING medanon._expiry_job_name();
    END IF;
    RETURN found;
END
$fn$;
