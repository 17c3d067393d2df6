-- medanon contracts, live side: the per-contract person map, the k classes, the
-- contract's data tables, and the triggers that keep them true from the commit
-- of an opt-out on (DESIGN.md invariants 1 to 4).
--
-- publish_contract and refresh_contract (src/expose/publish.rs) fill the map as
-- the extension owner: one row per person of the contract's sources, with the
-- person's per-contract token and date offset (computed by the operator, so no
-- view calls a keyed function), the institutions whose records may not flow, the
-- person's quasi-identifier class, and a state: visible, or withheld by k, by
-- consent, or as unlinked (medanon_core::plan::PersonState names and documents
-- them; SQL reads the names from _contract_person_states()).
-- Then they write the rows of `visible` persons, anonymized, into one data table
-- per source in schema contract_<id>_data, which only the owner reads; the
-- grantee's views in contract_<id> select from those tables. When a person is
-- withheld, the triggers below delete the person's rows from every data table of
-- every contract in the same transaction, so one person is shown in all of a
-- contract's views or in none, and no view shows a person from the commit of an
-- opt-out on.

CREATE TABLE contract_person (
    -- No foreign key: publish and refresh are the only writers, and a per-row RI
    -- check and lock on the contract row was most of inserting 1M rows (12.7 s).
    -- _contract_close deletes a closed contract's rows.
    contract_id            text NOT NULL,
    person_id              bigint NOT NULL,
    -- 128 bits of HMAC-SHA256 under the contract's domain: a uuid is as strong as
    -- the text token for this use and much cheaper to join and count on.
    token                  uuid NOT NULL,
    date_offset            integer NOT NULL CHECK (date_offset <> 0),
    -- The names are the planner's (medanon_core::plan::PersonState), read here
    -- through _contract_person_states(), as by every SQL function below.
    state                  text NOT NULL CHECK (state IN (_contract_person_states() ->> 'visible', _contract_person_states() ->> 'k',
                                                          _contract_person_states() ->> 'consent', _contract_person_states() ->> 'unlinked')),
    -- Institutions whose records of this person stay out (NULL: none).
    excluded_institutions  text[],
    -- md5 of the person's generalized quasi-identifiers across the contract's
    -- views; NULL while the person is withheld by consent.
    class_key              uuid,
    changed_at             timestamptz NOT NULL DEFAULT pg_catalog.now(),
    PRIMARY KEY (contract_id, person_id)
);
CREATE INDEX contract_person_person ON contract_person (person_id);
CREATE INDEX contract_person_class ON contract_person (contract_id, class_key);
COMMENT ON TABLE contract_person IS 'Per-contract person map: token, date offset, class and state of every person of a contract. Written by publish/refresh and the consent triggers only.';

-- Consenting persons per class (visible or k). A class below the contract's k is
-- suppressed whole; it stays so until the next refresh, even if persons return.
CREATE TABLE contract_class (
    contract_id  text NOT NULL REFERENCES contract ON DELETE CASCADE,
    class_key    uuid NOT NULL,
    persons      integer NOT NULL,
    PRIMARY KEY (contract_id, class_key)
);
COMMENT ON TABLE contract_class IS 'Consenting persons per quasi-identifier class of each contract; a class below k is suppressed.';

-- The data table behind each view of a contract. Refresh writes a new generation
-- and points the view at it, so analysts read the old rows until it commits.
CREATE TABLE contract_table (
    contract_id  text NOT NULL REFERENCES contract ON DELETE CASCADE,
    view_name    name NOT NULL,
    data_schema  name NOT NULL,
    data_table   name NOT NULL,
    generation   integer NOT NULL,
    -- The view column that shows the person token (NULL: the view has none), and
    -- the data table's token column, by which withheld persons' rows are deleted.
    person_column  name,
    token_column   name NOT NULL,
    PRIMARY KEY (contract_id, view_name)
);
COMMENT ON TABLE contract_table IS 'The data table behind each view of a contract, and its person and token columns, as publish wrote them.';

DO $live$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['contract_person', 'contract_class', 'contract_table'] LOOP
        PERFORM pg_catalog.pg_extension_config_dump(t, '');
        EXECUTE pg_catalog.format('REVOKE ALL ON TABLE %I FROM PUBLIC', t);
        -- The operator computes these values anyway (it may call tokenize); it
        -- reads them for reports, and never writes them by hand.
        EXECUTE pg_catalog.format('GRANT SELECT ON TABLE %I TO medanon_operator', t);
    END LOOP;
END
$live$;

-- Withholds, in every contract, those of `persons` who may no longer be shown:
-- an opt-out in force names one of their records, or they have no record left.
-- Their classes lose them, and a class that falls below k is suppressed in the
-- same transaction: k holds from the commit on, not from the next refresh.
CREATE FUNCTION _contract_withhold(persons bigint[]) RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    withheld bigint;
    low_contracts text[];
    low_classes uuid[];
    gone_contracts text[];
    gone_tokens uuid[];
    more_contracts text[];
    more_tokens uuid[];
    t record;
    st constant jsonb := medanon._contract_person_states();
BEGIN
    IF persons IS NULL OR pg_catalog.cardinality(persons) = 0 THEN
        RETURN 0;
    END IF;
    -- Wait for a publish or refresh in progress, and make the next statements see
    -- what it wrote (each statement here takes a new snapshot at READ COMMITTED;
    -- at REPEATABLE READ a refresh committed meanwhile is a serialization error).
    -- Publish, refresh, snapshots and revoke take these rows through
    -- _contract_lock, which never holds one while it waits for an analyst longer
    -- than its lock_timeout: this waits for their own work, not for analysts.
    PERFORM FROM medanon.contract c WHERE c.status IN ('created', 'published') ORDER BY c.contract_id FOR SHARE;
    IF NOT FOUND THEN
        RETURN 0;
    END IF;
    WITH gone AS (
        UPDATE medanon.contract_person m
           SET state = CASE WHEN EXISTS (SELECT FROM medanon.person_link l WHERE l.person_id = m.person_id)
                            THEN st ->> 'consent' ELSE st ->> 'unlinked' END,
               changed_at = now()
         WHERE m.person_id = ANY (persons)
           AND m.state IN (st ->> 'visible', st ->> 'k')
           AND (NOT EXISTS (SELECT FROM medanon.person_link l WHERE l.person_id = m.person_id)
                OR EXISTS (SELECT FROM medanon.opt_outs_in_force o WHERE o.person_id = m.person_id))
        RETURNING m.contract_id, m.class_key, m.token
    ), shrunk AS (
        UPDATE medanon.contract_class cc
           SET persons = cc.persons - g.n
          FROM (SELECT gone.contract_id, gone.class_key, count(*) AS n FROM gone GROUP BY 1, 2) g
         WHERE cc.contract_id = g.contract_id AND cc.class_key = g.class_key
        RETURNING cc.contract_id, cc.class_key, cc.persons
    )
    SELECT (SELECT count(*) FROM gone), (SELECT array_agg(g.contract_id) FROM gone g), (SELECT array_agg(g.token) FROM gone g),
           array_agg(s.contract_id), array_agg(s.class_key)
      INTO withheld, gone_contracts, gone_tokens, low_contracts, low_classes
      FROM shrunk s JOIN medanon.contract c ON c.contract_id = s.contract_id
     WHERE s.persons < c.k;
    IF low_contracts IS NOT NULL THEN
        WITH suppressed AS (
            UPDATE medanon.contract_person m
               SET state = st ->> 'k', changed_at = now()
              FROM unnest(low_contracts, low_classes) AS low(contract_id, class_key)
             WHERE m.contract_id = low.contract_id AND m.class_key = low.class_key AND m.state = st ->> 'visible'
            RETURNING m.contract_id, m.token)
        SELECT array_agg(x.contract_id), array_agg(x.token) INTO more_contracts, more_tokens FROM suppressed x;
        gone_contracts := gone_contracts || more_contracts;
        gone_tokens := gone_tokens || more_tokens;
    END IF;
    -- Their rows leave every data table now (the views read nothing else).
    FOR t IN SELECT ct.contract_id, ct.data_schema, ct.data_table, ct.token_column,
                    ARRAY(SELECT x.token FROM unnest(gone_contracts, gone_tokens) AS x(contract_id, token)
                           WHERE x.contract_id = ct.contract_id) AS tokens
               FROM medanon.contract_table ct
              WHERE ct.contract_id = ANY (gone_contracts)
              ORDER BY ct.contract_id, ct.view_name LOOP
        EXECUTE format('DELETE FROM %I.%I WHERE %I = ANY ($1)', t.data_schema, t.data_table, t.token_column) USING t.tokens;
        -- Its statistics go too: they may hold the withheld persons' values (a
        -- histogram bound, a most common value), and an estimate is read by
        -- EXPLAIN. The planner falls back to defaults until the next refresh
        -- analyzes new data tables.
        DELETE FROM pg_catalog.pg_statistic s
         WHERE s.starelid = pg_catalog.format('%I.%I', t.data_schema, t.data_table)::regclass;
    END LOOP;
    RETURN withheld;
END
$fn$;

-- Takes, for each contract of `ids`, its row FOR UPDATE and, by `scope`, the
-- ACCESS EXCLUSIVE locks the caller's DDL will need:
--   'row'      the row alone (publish, snapshots);
--   'views'    also its views and their current data tables (refresh replaces them);
--   'schemas'  also every relation of its schemas: views, data tables, snapshots
--              (revoke and expire drop them).
-- An analyst that reads a view holds ACCESS SHARE on it until its transaction
-- ends, idle or not. Waiting for it while holding the contract row would make
-- every opt-out wait too (the consent triggers lock the rows FOR SHARE), for as
-- long as the analyst likes. So each attempt takes the row and the locks together
-- in a subtransaction, under lock_timeout (200 ms): when the timeout fires the
-- subtransaction rolls back, which lets go of the row, and a waiting opt-out goes
-- on at once. Rows first, then relations, as the consent triggers do (rows, then
-- the data tables they delete from), so the two never deadlock. Attempts are
-- retried after a growing pause (opt-outs run meanwhile) for `patience`; then
-- 55P03, naming the sessions that hold the relations. Once it returns, the
-- caller holds everything until it commits: analysts' new queries on those views
-- wait for the refresh or revoke to finish, and then read what it left.
CREATE FUNCTION _contract_lock(ids text[], scope text, patience interval DEFAULT '30 s') RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
SET lock_timeout = '200ms'
AS $fn$
DECLARE
    started constant timestamptz := clock_timestamp();
    pause double precision := 0.05;
    attempts integer := 0;
    rels oid[];
    holders text;
BEGIN
    IF scope IS NULL OR scope NOT IN ('row', 'views', 'schemas') THEN
        RAISE EXCEPTION 'unknown lock scope "%"', scope USING ERRCODE = 'invalid_parameter_value';
    END IF;
    LOOP
        attempts := attempts + 1;
        BEGIN
            PERFORM FROM medanon.contract c WHERE c.contract_id = ANY (ids) ORDER BY c.contract_id FOR UPDATE;
            -- Read after the row lock: a refresh that committed meanwhile named new tables.
            IF scope = 'views' THEN
                rels := ARRAY(SELECT x.oid FROM medanon.contract c
                                JOIN medanon.contract_table ct ON ct.contract_id = c.contract_id,
                                LATERAL (VALUES (to_regclass(format('%I.%I', c.view_schema, ct.view_name))::oid),
                                                (to_regclass(format('%I.%I', ct.data_schema, ct.data_table))::oid)) x(oid)
                               WHERE c.contract_id = ANY (ids) AND x.oid IS NOT NULL ORDER BY 1);
            ELSIF scope = 'schemas' THEN
                rels := ARRAY(SELECT r.oid FROM pg_class r JOIN pg_namespace n ON n.oid = r.relnamespace
                               WHERE r.relkind IN ('r', 'v', 'm', 'p', 'f')
                                 AND n.nspname IN (SELECT s FROM unnest(ids) i, medanon._contract_schemas(i) s)
                               ORDER BY 1);
            END IF;
            IF pg_catalog.cardinality(rels) > 0 THEN
                EXECUTE 'LOCK TABLE ' || (SELECT string_agg(r::regclass::text, ', ') FROM unnest(rels) r)
                     || ' IN ACCESS EXCLUSIVE MODE';
            END IF;
            RETURN;
        EXCEPTION WHEN lock_not_available OR deadlock_detected THEN
            -- Rolled back: the row is free again until the next attempt.
        END;
        IF clock_timestamp() - started >= patience THEN
            SELECT string_agg(DISTINCT format('pid %s (%s, %s)', a.pid, a.usename, a.state), ', ')
              INTO holders
              FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
             WHERE l.granted AND l.pid <> pg_backend_pid() AND l.relation = ANY (rels);
            RAISE EXCEPTION 'could not lock contract "%": it is in use', array_to_string(ids, '", "')
                USING ERRCODE = 'lock_not_available',
                      DETAIL = format('%s attempts in %s; sessions holding its views: %s', attempts,
                                      date_trunc('second', clock_timestamp() - started), coalesce(holders, 'none now')),
                      HINT = 'an analyst''s open transaction on the contract''s views holds them until it ends (publish sets '
                             || 'idle_in_transaction_session_timeout for grantees); try again, or end that session with pg_terminate_backend(pid)';
        END IF;
        PERFORM pg_sleep(pause * (0.5 + random()));
        pause := least(pause * 2, 2.0);
    END LOOP;
END
$fn$;

COMMENT ON FUNCTION _contract_lock(text[], text, interval) IS 'Internal: locks contract rows and the relations their DDL needs, retrying under lock_timeout so that no opt-out waits on an analyst.';

-- An opt-out hides the person it names from every contract at its commit.
CREATE FUNCTION _contract_on_opt_out() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    PERFORM medanon._contract_withhold(ARRAY(
        SELECT DISTINCT l.person_id
          FROM new_opt_outs o
          JOIN medanon.person_link l
            ON l.institution_code = o.institution_code AND l.local_patient_id = o.local_patient_id));
    RETURN NULL;
END
$fn$;
CREATE TRIGGER opt_out_withholds AFTER INSERT ON opt_out
    REFERENCING NEW TABLE AS new_opt_outs FOR EACH STATEMENT EXECUTE FUNCTION _contract_on_opt_out();

-- Linking can make an earlier opt-out apply (it named a record not linked yet),
-- join a person to one who opted out (a merge), or leave a person id with no
-- record: each withholds the person at once.
CREATE FUNCTION _contract_on_link() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE persons bigint[];
BEGIN
    IF TG_OP = 'INSERT' THEN
        persons := ARRAY(SELECT DISTINCT o.person_id FROM medanon.opt_outs_in_force o
                          WHERE o.person_id IN (SELECT n.person_id FROM new_links n));
    ELSIF TG_OP = 'UPDATE' THEN
        persons := ARRAY(SELECT DISTINCT o.person_id FROM medanon.opt_outs_in_force o
                          WHERE o.person_id IN (SELECT n.person_id FROM new_links n)
                         UNION
                         SELECT DISTINCT d.person_id FROM old_links d
                          WHERE NOT EXISTS (SELECT FROM medanon.person_link l WHERE l.person_id = d.person_id));
    ELSE
        persons := ARRAY(SELECT DISTINCT d.person_id FROM old_links d
                          WHERE NOT EXISTS (SELECT FROM medanon.person_link l WHERE l.person_id = d.person_id));
    END IF;
    PERFORM medanon._contract_withhold(persons);
    RETURN NULL;
END
$fn$;
CREATE TRIGGER person_link_withholds_insert AFTER INSERT ON person_link
    REFERENCING NEW TABLE AS new_links FOR EACH STATEMENT EXECUTE FUNCTION _contract_on_link();
CREATE TRIGGER person_link_withholds_update AFTER UPDATE ON person_link
    REFERENCING OLD TABLE AS old_links NEW TABLE AS new_links FOR EACH STATEMENT EXECUTE FUNCTION _contract_on_link();
CREATE TRIGGER person_link_withholds_delete AFTER DELETE ON person_link
    REFERENCING OLD TABLE AS old_links FOR EACH STATEMENT EXECUTE FUNCTION _contract_on_link();

REVOKE ALL ON FUNCTION _contract_withhold(bigint[]), _contract_on_opt_out(), _contract_on_link(),
    _contract_lock(text[], text, interval) FROM PUBLIC;

-- What a contract shows now. Runs as the caller (the operator reads the map).
CREATE FUNCTION contract_report(id text)
RETURNS TABLE (contract_id text, status text, k integer, expires_on date,
               persons_exposed bigint, persons_suppressed_k bigint, persons_excluded_consent bigint,
               persons_unlinked bigint, classes bigint, classes_suppressed bigint, min_class_size integer)
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE st constant jsonb := medanon._contract_person_states();
BEGIN
    IF NOT EXISTS (SELECT FROM medanon.contract c WHERE c.contract_id = id) THEN
        RAISE EXCEPTION 'contract "%" does not exist', id USING ERRCODE = 'undefined_object';
    END IF;
    -- One pass over the map and one over the classes (publish reads this too).
    RETURN QUERY
    SELECT c.contract_id, c.status, c.k, c.expires_on,
           p.visible, p.k_suppressed, p.consent, p.unlinked, cl.classes, cl.suppressed, cl.smallest
      FROM medanon.contract c,
           LATERAL (SELECT count(*) FILTER (WHERE m.state = st ->> 'visible') AS visible,
                           count(*) FILTER (WHERE m.state = st ->> 'k') AS k_suppressed,
                           count(*) FILTER (WHERE m.state = st ->> 'consent') AS consent,
                           count(*) FILTER (WHERE m.state = st ->> 'unlinked') AS unlinked
                      FROM medanon.contract_person m WHERE m.contract_id = c.contract_id) p,
           LATERAL (SELECT count(*) FILTER (WHERE cc.persons > 0) AS classes,
                           count(*) FILTER (WHERE cc.persons > 0 AND cc.persons < c.k) AS suppressed,
                           min(cc.persons) FILTER (WHERE cc.persons >= coalesce(c.k, 1)) AS smallest
                      FROM medanon.contract_class cc WHERE cc.contract_id = c.contract_id) cl
     WHERE c.contract_id = id;
END
$fn$;

-- The schemas a contract has: its views and its snapshots (from the ledger).
CREATE FUNCTION _contract_schemas(id text) RETURNS SETOF name
LANGUAGE sql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
    SELECT n.nspname FROM pg_namespace n
     WHERE n.nspname IN (SELECT unnest(ARRAY[c.view_schema, c.data_schema]) FROM medanon.contract c WHERE c.contract_id = id)
        OR n.nspname IN (SELECT (l.detail ->> 'schema')::name FROM medanon.provision_ledger l
                          WHERE l.contract_id = id AND l.event = 'snapshot');
END;

-- Ends a contract: its views and snapshots are dropped, its map deleted, and the
-- ledger records it with the persons who were exposed until then.
CREATE FUNCTION _contract_close(id text, event text) RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
-- The views and snapshots dropped are listed in the ledger, not as NOTICEs.
SET client_min_messages = warning
AS $fn$
DECLARE
    c medanon.contract;
    exposed bigint;
    schemas text[];
    s name;
BEGIN
    -- The row and every relation DROP SCHEMA will take, without holding the row
    -- while an analyst idles; then the status again (another session may have
    -- closed it meanwhile).
    PERFORM medanon._contract_lock(ARRAY[id], 'schemas');
    SELECT * INTO c FROM medanon.contract WHERE contract_id = id;
    IF c.status NOT IN ('created', 'published') THEN
        RAISE EXCEPTION 'contract "%" is % already', id, c.status USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    SELECT r.persons_exposed INTO exposed FROM medanon.contract_report(id) r;
    FOR s IN SELECT * FROM medanon._contract_schemas(id) LOOP
        EXECUTE format('DROP SCHEMA %I CASCADE', s);
        schemas := schemas || s::text;
    END LOOP;
    DELETE FROM medanon.contract_person m WHERE m.contract_id = id;
    DELETE FROM medanon.contract_class cc WHERE cc.contract_id = id;
    DELETE FROM medanon.contract_table ct WHERE ct.contract_id = id;
    UPDATE medanon.contract SET status = CASE event WHEN 'revoke' THEN 'revoked' ELSE 'expired' END
     WHERE contract_id = id;
    INSERT INTO medanon.provision_ledger (contract_id, event, spec_sha256, person_count, detail)
    VALUES (id, event, c.spec_sha256, exposed,
            jsonb_build_object('dropped_schemas', coalesce(to_jsonb(schemas), '[]'), 'status_before', c.status,
                               'expires_on', c.expires_on));
    RETURN exposed;
END
$fn$;
REVOKE ALL ON FUNCTION _contract_close(text, text), _contract_schemas(text) FROM PUBLIC;

CREATE FUNCTION revoke_contract(id text) RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE st text;
BEGIN
    SELECT c.status INTO st FROM medanon.contract c WHERE c.contract_id = id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'contract "%" does not exist', id USING ERRCODE = 'undefined_object';
    ELSIF st IN ('revoked', 'expired') THEN
        RAISE EXCEPTION 'contract "%" is % already', id, st USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    PERFORM medanon._contract_close(id, 'revoke');
END
$fn$;

-- Closes every contract past its expiry date, a day in the operator's time zone
-- (medanon.time_zone) as the views count it (run it daily, for example from
-- pg_cron). The views already show nothing after expires_on; this drops them and
-- records the expiry in the ledger. Returns the ids it closed.
CREATE FUNCTION expire_contracts() RETURNS SETOF text
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE id text;
BEGIN
    -- All of them at once: a contract closed here stays locked until the commit,
    -- and no opt-out may wait on it while the next one waits for an analyst.
    PERFORM medanon._contract_lock(ARRAY(SELECT c.contract_id FROM medanon.contract c
                                          WHERE c.status IN ('created', 'published')
                                            AND c.expires_on < medanon.contract_today()), 'schemas');
    FOR id IN SELECT c.contract_id FROM medanon.contract c
               WHERE c.status IN ('created', 'published')
                 AND c.expires_on < medanon.contract_today()
               ORDER BY c.contract_id LOOP
        PERFORM medanon._contract_close(id, 'expire');
        RETURN NEXT id;
    END LOOP;
END
$fn$;
