-- medanon change tracking of sources: what an incremental refresh reads
-- (src/expose/publish.rs, medanon_core::refresh).
--
-- track_changes(source) puts four statement triggers on a registered source
-- (insert, update, delete, truncate; ENABLE ALWAYS, so session_replication_role
-- does not silence them). They write the person of every row a statement
-- inserts, updates (before and after) or deletes into source_change, once per
-- statement and person, with the writing transaction's id; a TRUNCATE writes one
-- entry without a person (everything changed). refresh_contract reads the
-- entries the snapshot of the contract's last refresh did not see, so a change
-- committed while a refresh ran is read by the next one, never lost.

-- Sources whose changes are tracked, and since which transaction: a contract
-- refreshed before tracking started refreshes in full once.
CREATE TABLE source_tracking (
    source_schema  name NOT NULL,
    source_table   name NOT NULL,
    since          xid8 NOT NULL DEFAULT pg_catalog.pg_current_xact_id(),
    -- The cluster (pg_control_system().system_identifier) `since` counts in: after a
    -- restore into another cluster transaction ids start again.
    since_system   text NOT NULL,
    tracked_at     timestamptz NOT NULL DEFAULT pg_catalog.now(),
    tracked_by     name NOT NULL DEFAULT session_user,
    PRIMARY KEY (source_schema, source_table),
    FOREIGN KEY (source_schema, source_table) REFERENCES source ON DELETE CASCADE
);
COMMENT ON TABLE source_tracking IS 'Sources whose changes are logged for incremental refreshes (track_changes), and since which transaction.';

-- The persons whose rows of a tracked source changed, by transaction. Pruned by
-- refresh_contract once every published contract's last refresh has seen them.
CREATE TABLE source_change (
    source_schema  name NOT NULL,
    source_table   name NOT NULL,
    -- NULL: the source was truncated.
    person_id      bigint,
    xid            xid8 NOT NULL DEFAULT pg_catalog.pg_current_xact_id()
);
CREATE INDEX source_change_source ON source_change (source_schema, source_table, xid);
COMMENT ON TABLE source_change IS 'Persons whose source rows changed, by writing transaction: what an incremental refresh reads.';

-- The persons whose consent may have changed, by transaction: a notification,
-- an opt-out or its withdrawal names one of their records, or a link of theirs was
-- added, moved or removed. Filled by medanon's own triggers (below), always; the
-- consent ledger is append-only, so inserts are all there is to log. Waiting
-- periods that end are found by time (notified_records.eligible_from).
CREATE TABLE consent_change (
    person_id  bigint NOT NULL,
    xid        xid8 NOT NULL DEFAULT pg_catalog.pg_current_xact_id()
);
CREATE INDEX consent_change_xid ON consent_change (xid);
COMMENT ON TABLE consent_change IS 'Persons whose consent or links changed, by writing transaction: what an incremental refresh reads.';

DO $changes$
BEGIN
    PERFORM pg_catalog.pg_extension_config_dump('source_tracking', '');
    REVOKE ALL ON TABLE source_tracking, source_change, consent_change FROM PUBLIC;
    GRANT SELECT ON TABLE source_tracking TO medanon_operator;
END
$changes$;

-- Logs the persons of a consent-ledger or person_link statement's rows.
CREATE FUNCTION _consent_changes() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    IF TG_TABLE_NAME = 'person_link' THEN
        IF TG_OP = 'INSERT' THEN
            INSERT INTO medanon.consent_change (person_id) SELECT DISTINCT n.person_id FROM new_rows n;
        ELSIF TG_OP = 'UPDATE' THEN
            INSERT INTO medanon.consent_change (person_id)
            SELECT n.person_id FROM new_rows n UNION SELECT o.person_id FROM old_rows o;
        ELSE
            INSERT INTO medanon.consent_change (person_id) SELECT DISTINCT o.person_id FROM old_rows o;
        END IF;
    ELSIF TG_TABLE_NAME = 'opt_out_withdrawal' THEN
        INSERT INTO medanon.consent_change (person_id)
        SELECT DISTINCT l.person_id FROM new_rows n
          JOIN medanon.opt_out o ON o.opt_out_id = n.opt_out_id
          JOIN medanon.person_link l ON l.institution_code = o.institution_code AND l.local_patient_id = o.local_patient_id;
    ELSE
        -- notification, opt_out: the person of the record they name, once linked
        -- (linking it later is logged by person_link's trigger).
        INSERT INTO medanon.consent_change (person_id)
        SELECT DISTINCT l.person_id FROM new_rows n
          JOIN medanon.person_link l ON l.institution_code = n.institution_code AND l.local_patient_id = n.local_patient_id;
    END IF;
    RETURN NULL;
END
$fn$;
CREATE TRIGGER consent_changes AFTER INSERT ON notification
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION _consent_changes();
CREATE TRIGGER consent_changes AFTER INSERT ON opt_out
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION _consent_changes();
CREATE TRIGGER consent_changes AFTER INSERT ON opt_out_withdrawal
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION _consent_changes();
CREATE TRIGGER consent_changes_insert AFTER INSERT ON person_link
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION _consent_changes();
CREATE TRIGGER consent_changes_update AFTER UPDATE ON person_link
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION _consent_changes();
CREATE TRIGGER consent_changes_delete AFTER DELETE ON person_link
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION _consent_changes();
-- Under any session_replication_role, as track_changes' triggers.
ALTER TABLE notification ENABLE ALWAYS TRIGGER consent_changes;
ALTER TABLE opt_out ENABLE ALWAYS TRIGGER consent_changes;
ALTER TABLE opt_out_withdrawal ENABLE ALWAYS TRIGGER consent_changes;
ALTER TABLE person_link ENABLE ALWAYS TRIGGER consent_changes_insert;
ALTER TABLE person_link ENABLE ALWAYS TRIGGER consent_changes_update;
ALTER TABLE person_link ENABLE ALWAYS TRIGGER consent_changes_delete;

-- The triggers' function: logs the persons of the statement's rows. A definer,
-- since the log is the owner's; trigger functions cannot be called directly.
CREATE FUNCTION _source_changes() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    col name;
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        INSERT INTO medanon.source_change (source_schema, source_table, person_id) VALUES (TG_TABLE_SCHEMA, TG_TABLE_NAME, NULL);
        RETURN NULL;
    END IF;
    SELECT s.person_column INTO col FROM medanon.source s
     WHERE s.source_schema = TG_TABLE_SCHEMA AND s.source_table = TG_TABLE_NAME;
    IF col IS NULL THEN
        -- No longer registered: nothing reads its changes.
        RETURN NULL;
    END IF;
    IF TG_OP = 'INSERT' THEN
        EXECUTE format('INSERT INTO medanon.source_change (source_schema, source_table, person_id)
                        SELECT DISTINCT $1, $2, n.%1$I::bigint FROM new_rows n WHERE n.%1$I IS NOT NULL', col)
            USING TG_TABLE_SCHEMA, TG_TABLE_NAME;
    ELSIF TG_OP = 'UPDATE' THEN
        EXECUTE format('INSERT INTO medanon.source_change (source_schema, source_table, person_id)
                        SELECT $1, $2, x.p FROM (SELECT n.%1$I::bigint AS p FROM new_rows n
                                                 UNION SELECT o.%1$I::bigint FROM old_rows o) x WHERE x.p IS NOT NULL', col)
            USING TG_TABLE_SCHEMA, TG_TABLE_NAME;
    ELSE
        EXECUTE format('INSERT INTO medanon.source_change (source_schema, source_table, person_id)
                        SELECT DISTINCT $1, $2, o.%1$I::bigint FROM old_rows o WHERE o.%1$I IS NOT NULL', col)
            USING TG_TABLE_SCHEMA, TG_TABLE_NAME;
    END IF;
    RETURN NULL;
END
$fn$;

-- The trigger names track_changes gives, by event.
CREATE FUNCTION _source_change_triggers() RETURNS text[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
RETURN ARRAY['medanon_changes_insert', 'medanon_changes_update', 'medanon_changes_delete', 'medanon_changes_truncate'];

-- Whether `rel` carries all of track_changes' triggers, enabled.
CREATE FUNCTION _source_changes_logged(rel regclass) RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
    SELECT count(*) = 4 FROM pg_catalog.pg_trigger t
     WHERE t.tgrelid = rel AND t.tgname = ANY (medanon._source_change_triggers()) AND t.tgenabled = 'A'
       AND t.tgfoid = 'medanon._source_changes()'::pg_catalog.regprocedure;
END;

-- Records (or forgets) that a source's changes are logged, once its triggers are
-- there (or gone): the owner's table, written only through here.
CREATE FUNCTION _source_tracking_set(rel regclass, tracked boolean) RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE nsp name; tbl name;
BEGIN
    SELECT n.nspname, c.relname INTO nsp, tbl FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = rel;
    IF tracked AND NOT medanon._source_changes_logged(rel) THEN
        RAISE EXCEPTION 'relation % does not log its changes', rel
            USING ERRCODE = 'object_not_in_prerequisite_state', HINT = 'call medanon.track_changes()';
    END IF;
    IF tracked THEN
        INSERT INTO medanon.source_tracking (source_schema, source_table, since_system)
        VALUES (nsp, tbl, (SELECT s.system_identifier::text FROM pg_catalog.pg_control_system() s))
        ON CONFLICT (source_schema, source_table) DO NOTHING;
    ELSE
        DELETE FROM medanon.source_tracking st WHERE st.source_schema = nsp AND st.source_table = tbl;
    END IF;
END
$fn$;

CREATE FUNCTION track_changes(source regclass) RETURNS boolean
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    nsp name; tbl name; kind "char";
    distributed boolean := false;
    names constant text[] := medanon._source_change_triggers();
BEGIN
    IF source IS NULL THEN
        RAISE EXCEPTION 'track_changes needs a source table' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    SELECT n.nspname, c.relname, c.relkind INTO nsp, tbl, kind
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = source;
    IF NOT EXISTS (SELECT FROM medanon.source s WHERE s.source_schema = nsp AND s.source_table = tbl) THEN
        RAISE EXCEPTION 'relation % is not a registered source', source
            USING ERRCODE = 'object_not_in_prerequisite_state', HINT = 'register it first with medanon.register_source()';
    END IF;
    -- Creating the triggers needs the TRIGGER privilege, but enabling them ALWAYS
    -- (and dropping them) needs the table's owner: say so before anything is done.
    IF NOT pg_catalog.pg_has_role(current_user, (SELECT c.relowner FROM pg_class c WHERE c.oid = source), 'USAGE') THEN
        RAISE EXCEPTION 'must be owner of table % to track its changes', source
            USING ERRCODE = 'insufficient_privilege', HINT = 'run medanon.track_changes() as the table''s owner';
    END IF;
    IF kind NOT IN ('r', 'p') THEN
        RAISE EXCEPTION 'relation % is not a table, so its changes cannot be tracked', source
            USING ERRCODE = 'wrong_object_type', HINT = 'refresh_contract refreshes contracts over it in full';
    END IF;
    IF to_regclass('pg_catalog.pg_dist_partition') IS NOT NULL THEN
        -- Citus's catalog, read only where Citus is installed.
        EXECUTE 'SELECT EXISTS (SELECT FROM pg_catalog.pg_dist_partition d WHERE d.logicalrelid = $1)' INTO distributed USING source;
    END IF;
    IF distributed THEN
        RAISE EXCEPTION 'relation % is a Citus distributed or reference table: its changes cannot be tracked', source
            USING ERRCODE = 'feature_not_supported',
                  HINT = 'refresh_contract refreshes contracts over it in full';
    END IF;
    IF medanon._source_changes_logged(source) THEN
        PERFORM medanon._source_tracking_set(source, true);
        RETURN false;
    END IF;
    -- Only the triggers that are there: DROP TRIGGER IF EXISTS would tell the
    -- caller about every one that is not.
    FOR i IN 1..4 LOOP
        IF EXISTS (SELECT FROM pg_catalog.pg_trigger t WHERE t.tgrelid = source AND t.tgname = names[i]) THEN
            EXECUTE format('DROP TRIGGER %I ON %s', names[i], source);
        END IF;
    END LOOP;
    EXECUTE format('CREATE TRIGGER %I AFTER INSERT ON %s REFERENCING NEW TABLE AS new_rows
                    FOR EACH STATEMENT EXECUTE FUNCTION medanon._source_changes()', names[1], source);
    EXECUTE format('CREATE TRIGGER %I AFTER UPDATE ON %s REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
                    FOR EACH STATEMENT EXECUTE FUNCTION medanon._source_changes()', names[2], source);
    EXECUTE format('CREATE TRIGGER %I AFTER DELETE ON %s REFERENCING OLD TABLE AS old_rows
                    FOR EACH STATEMENT EXECUTE FUNCTION medanon._source_changes()', names[3], source);
    EXECUTE format('CREATE TRIGGER %I AFTER TRUNCATE ON %s
                    FOR EACH STATEMENT EXECUTE FUNCTION medanon._source_changes()', names[4], source);
    FOR i IN 1..4 LOOP
        EXECUTE format('ALTER TABLE %s ENABLE ALWAYS TRIGGER %I', source, names[i]);
    END LOOP;
    PERFORM medanon._source_tracking_set(source, false);
    PERFORM medanon._source_tracking_set(source, true);
    RETURN true;
END
$fn$;

CREATE FUNCTION untrack_changes(source regclass) RETURNS boolean
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    names constant text[] := medanon._source_change_triggers();
    had boolean;
BEGIN
    IF source IS NULL THEN
        RAISE EXCEPTION 'untrack_changes needs a source table' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF NOT pg_catalog.pg_has_role(current_user, (SELECT c.relowner FROM pg_class c WHERE c.oid = source), 'USAGE') THEN
        RAISE EXCEPTION 'must be owner of table % to stop tracking its changes', source
            USING ERRCODE = 'insufficient_privilege', HINT = 'run medanon.untrack_changes() as the table''s owner';
    END IF;
    had := EXISTS (SELECT FROM pg_catalog.pg_trigger t WHERE t.tgrelid = source AND t.tgname = ANY (names));
    -- Only the triggers that are there: DROP TRIGGER IF EXISTS would tell the
    -- caller about every one that is not.
    FOR i IN 1..4 LOOP
        IF EXISTS (SELECT FROM pg_catalog.pg_trigger t WHERE t.tgrelid = source AND t.tgname = names[i]) THEN
            EXECUTE format('DROP TRIGGER %I ON %s', names[i], source);
        END IF;
    END LOOP;
    PERFORM medanon._source_tracking_set(source, false);
    RETURN had;
END
$fn$;

REVOKE ALL ON FUNCTION _source_changes(), _source_tracking_set(regclass, boolean), _source_change_triggers(),
    _source_changes_logged(regclass), _consent_changes() FROM PUBLIC;
COMMENT ON FUNCTION _consent_changes() IS 'Internal: the trigger function that logs the persons of consent-ledger and person_link changes.';
COMMENT ON FUNCTION _source_changes() IS 'Internal: the trigger function of track_changes; logs the persons of the changed rows.';
COMMENT ON FUNCTION _source_change_triggers() IS 'Internal: the names of the triggers track_changes puts on a source.';
COMMENT ON FUNCTION _source_changes_logged(regclass) IS 'Internal: whether a source carries all of track_changes'' triggers, enabled.';
COMMENT ON FUNCTION _source_tracking_set(regclass, boolean) IS 'Internal: records that a source''s changes are logged (checked) or no longer are.';
COMMENT ON FUNCTION track_changes(regclass) IS
'Logs the persons of every row a registered source inserts, updates, deletes (and its truncations), so refresh_contract rewrites only what changed. Run it as the table''s owner; true if it added the triggers, false if they were there.';
COMMENT ON FUNCTION untrack_changes(regclass) IS
'Removes track_changes'' triggers from a source (as its owner); contracts over it refresh in full from then on. True if it had them.';
