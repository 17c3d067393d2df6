-- Traceability of analyst reads (トレーサビリティ, the certified operator's log
-- monitoring requirement), with pgaudit's object auditing.
--
-- pgaudit logs a statement when the role named by its superuser-only setting
-- `pgaudit.role` holds a privilege the statement uses on a relation; privileges
-- inherited through role membership count. medanon grants SELECT on every
-- relation a grantee may read (its contract's views and snapshots) to one NOLOGIN
-- role, medanon_read_audit, at publish, refresh and snapshot, when pgaudit is
-- loaded. The DBA then either sets `pgaudit.role = 'medanon_read_audit'`, or, if
-- the cluster already audits with a role of its own, grants medanon_read_audit to
-- that role. medanon never changes a server setting itself: pgaudit.role is the
-- DBA's (ALTER SYSTEM, superuser), and a function cannot run ALTER SYSTEM.
--
-- medanon_read_audit holds SELECT on the views but no USAGE on their schemas, so a
-- login that is made a member of it still reads nothing through it.

DO $roles$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'medanon_read_audit') THEN
        CREATE ROLE medanon_read_audit NOLOGIN;
    END IF;
END
$roles$;

-- Whether this cluster loaded pgaudit (it must be in shared_preload_libraries):
-- its settings exist only then. A `pgaudit.*` line in postgresql.conf without the
-- library is a placeholder, which pg_settings does not list.
CREATE FUNCTION _pgaudit_loaded() RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
    SELECT EXISTS (SELECT FROM pg_catalog.pg_settings s WHERE s.name = 'pgaudit.role');
END;

-- Called by publish, refresh and release_snapshot as the extension owner
-- (src/expose/audit.rs): grants SELECT on every relation of the contract's view
-- and snapshot schemas to medanon_read_audit when pgaudit is loaded, and does
-- nothing otherwise. The data schema is left out: only the owner reads it.
-- Returns how many relations it granted.
CREATE FUNCTION _audit_contract_reads(id text) RETURNS integer
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    rel regclass;
    granted integer := 0;
BEGIN
    IF NOT medanon._pgaudit_loaded() THEN
        RETURN 0;
    END IF;
    FOR rel IN
        SELECT c.oid::regclass
          FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname IN (SELECT s FROM medanon._contract_schemas(id) s)
           AND n.nspname IS DISTINCT FROM (SELECT k.data_schema FROM medanon.contract k WHERE k.contract_id = id)
           AND c.relkind IN ('r', 'v', 'm', 'p', 'f')
         ORDER BY c.oid
    LOOP
        EXECUTE pg_catalog.format('GRANT SELECT ON %s TO medanon_read_audit', rel);
        granted := granted + 1;
    END LOOP;
    RETURN granted;
END
$fn$;

-- Whether an audit role and a pgaudit log level, as a session would have them,
-- log a read of a relation granted to medanon_read_audit: the role is
-- medanon_read_audit or has its privileges, and the level is LOG (a lower level
-- may be filtered out by log_min_messages).
CREATE FUNCTION _audit_setting_ok(role_name text, log_level text) RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
    SELECT coalesce((SELECT pg_catalog.pg_has_role(r.oid, a.oid, 'USAGE')
                       FROM pg_catalog.pg_roles r, pg_catalog.pg_roles a
                      WHERE r.rolname = role_name AND a.rolname = 'medanon_read_audit'), false)
       AND pg_catalog.lower(log_level) = 'log';
END;

-- Whether a SELECT on a contract view reaches the server log as a pgaudit line
-- with the role, the view and the statement: pgaudit is loaded, its settings in
-- this session pass _audit_setting_ok, and each log line names the role (%u in
-- log_line_prefix, or csvlog/jsonlog, which always do).
CREATE FUNCTION reads_audited() RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
    SELECT medanon._pgaudit_loaded()
       AND medanon._audit_setting_ok(pg_catalog.current_setting('pgaudit.role', true),
                                     pg_catalog.current_setting('pgaudit.log_level', true))
       AND (pg_catalog.strpos(pg_catalog.replace(pg_catalog.current_setting('log_line_prefix'), '%%', ''), '%u') > 0
            OR pg_catalog.current_setting('log_destination') ~ '(csvlog|jsonlog)');
END;

-- One contract: reads_audited(), every relation its grantee may read (views and
-- snapshots) granted to medanon_read_audit, and no setting for its grantee
-- (ALTER ROLE ... [IN DATABASE ...] SET) or this database that would turn pgaudit
-- off in the grantee's sessions. A contract published before pgaudit was loaded
-- is audited from its next refresh.
CREATE FUNCTION reads_audited(id text) RETURNS boolean
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE c medanon.contract;
BEGIN
    SELECT * INTO c FROM medanon.contract k WHERE k.contract_id = id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'contract "%" does not exist', id USING ERRCODE = 'undefined_object';
    END IF;
    -- The view schema and the snapshot schemas, as medanon._contract_schemas (which
    -- is the owner's) lists them, from what the operator may read.
    RETURN medanon.reads_audited()
       AND NOT EXISTS (
           SELECT FROM pg_catalog.pg_class r JOIN pg_catalog.pg_namespace n ON n.oid = r.relnamespace
            WHERE (n.nspname = c.view_schema
                   OR n.nspname IN (SELECT (l.detail ->> 'schema')::name FROM medanon.provision_ledger l
                                     WHERE l.contract_id = id AND l.event = 'snapshot'))
              AND r.relkind IN ('r', 'v', 'm', 'p', 'f')
              AND NOT pg_catalog.has_table_privilege('medanon_read_audit', r.oid, 'SELECT'))
       AND NOT EXISTS (
           SELECT FROM pg_catalog.pg_db_role_setting s, pg_catalog.unnest(s.setconfig) setting
            WHERE s.setdatabase IN (0, (SELECT d.oid FROM pg_catalog.pg_database d WHERE d.datname = pg_catalog.current_database()))
              AND s.setrole IN (0, (SELECT r.oid FROM pg_catalog.pg_roles r WHERE r.rolname = c.grantee))
              AND CASE pg_catalog.split_part(setting, '=', 1)
                  WHEN 'pgaudit.role' THEN
                      NOT medanon._audit_setting_ok(pg_catalog.substr(setting, 14), 'log')
                  WHEN 'pgaudit.log_level' THEN
                      pg_catalog.lower(pg_catalog.substr(setting, 19)) <> 'log'
                  ELSE false END);
END
$fn$;
