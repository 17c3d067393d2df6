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
    -- A random 64-bit surrogate drawn for this contract and person from a CSPRNG
    -- seeded from the operating system (_new_token()), kept for the life of the contract: nothing
    -- computes it, so it is no oracle, and draws are independent across contracts.
    -- A bigint joins and counts as fast as the raw person_id (a uuid cost analysts'
    -- count(DISTINCT) 1.29x).
    token                  bigint NOT NULL,
    date_offset            integer NOT NULL CHECK (date_offset <> 0),
    -- The names are the planner's (medanon_core::plan::PersonState), read here
    -- through _contract_person_states(), as by every SQL function below.
    state                  text NOT NULL CHECK (state IN (_contract_person_states() ->> 'visible', _contract_person_states() ->> 'k',
                                                          _contract_person_states() ->> 'consent', _contract_person_states() ->> 'unlinked',
                                                          _contract_person_states() ->> 'changed', _contract_person_states() ->> 'calendar')),
    -- Institutions whose records of this person stay out (NULL: none).
    excluded_institutions  text[],
    -- md5 of the person's generalized quasi-identifiers across the contract's
    -- views; NULL while the person is withheld by consent.
    class_key              uuid,
    -- The class at the person's first exposure in the contract, kept for its life:
    -- a person whose class differs later is 'changed' and shown in no view, so
    -- every release an analyst may join on the token shows the same
    -- quasi-identifiers for them (NULL until first shown; always NULL without k).
    first_class            uuid,
    -- Each days_since column's first date of the person, by key (view.column),
    -- kept across refreshes as the token and offset are.
    first_dates            jsonb,
    changed_at             timestamptz NOT NULL DEFAULT pg_catalog.now(),
    PRIMARY KEY (contract_id, person_id)
);
CREATE INDEX contract_person_person ON contract_person (person_id);
-- A token names one person of a contract: publish and refresh, its only writers,
-- draw again until no token is shared (ContractPlan::redraw_tokens_sql and
-- tokens_shared_sql). Not a unique index: its random inserts cost 4 s of a
-- publish at 1M persons.
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

-- The columns of a contract whose rare values are replaced (特異な記述): a value
-- held by fewer than min_persons of the contract's visible persons is shown as
-- its first ancestor in the hierarchy that enough persons hold, or NULL.
CREATE TABLE contract_column (
    contract_id      text NOT NULL REFERENCES contract ON DELETE CASCADE,
    view_name        name NOT NULL,
    column_name      name NOT NULL,
    min_persons      integer NOT NULL CHECK (min_persons >= 2),
    -- 'icd10', or 'table:<schema.table>' (first column the value, each next the level up).
    hierarchy        text,
    -- Values replaced so far: at the last publish or refresh, and live since.
    values_replaced  integer NOT NULL DEFAULT 0,
    -- The data table's column that keeps a row's value before replacement where
    -- one was replaced (NULL elsewhere; never in the view): persons are counted
    -- by coalesce(raw_column, column_name).
    raw_column       name,
    PRIMARY KEY (contract_id, view_name, column_name)
);
COMMENT ON TABLE contract_column IS 'Columns of each contract whose rare values are replaced, with their min_persons and hierarchy.';

-- The values the views show of each such column, with the visible persons who
-- hold them (a lower bound: the consent triggers decrement it, and replace a
-- value in the same transaction once it falls below min_persons).
CREATE TABLE contract_value (
    contract_id  text NOT NULL,
    view_name    name NOT NULL,
    column_name  name NOT NULL,
    label        text NOT NULL,
    -- 0 a value as stored; n its n-th ancestor in the hierarchy.
    level        integer NOT NULL,
    persons      bigint NOT NULL,
    PRIMARY KEY (contract_id, view_name, column_name, label),
    FOREIGN KEY (contract_id, view_name, column_name) REFERENCES contract_column ON DELETE CASCADE
);
COMMENT ON TABLE contract_value IS 'Values shown by each rare-checked column of a contract, and the visible persons holding them.';

-- Every value of each such column before replacement, with the visible persons
-- who hold it: exact, since the consent triggers decrement it as they delete a
-- withheld person's rows. An incremental refresh counts from it.
CREATE TABLE contract_raw_value (
    contract_id  text NOT NULL,
    view_name    name NOT NULL,
    column_name  name NOT NULL,
    value        text NOT NULL,
    persons      bigint NOT NULL,
    PRIMARY KEY (contract_id, view_name, column_name, value),
    FOREIGN KEY (contract_id, view_name, column_name) REFERENCES contract_column ON DELETE CASCADE
);
COMMENT ON TABLE contract_raw_value IS 'Values of each rare-checked column of a contract before replacement, and the visible persons holding them.';

-- The study window of each shifted column of a contract (date_column: its number
-- across the contract's views; NULL: all of them together), against which the
-- calendar check counts a person's offsets: the span of the real dates shown,
-- widened at each refresh, never narrowed.
CREATE TABLE contract_window (
    contract_id  text NOT NULL REFERENCES contract ON DELETE CASCADE,
    date_column  integer,
    first_date   date NOT NULL,
    last_date    date NOT NULL,
    UNIQUE NULLS NOT DISTINCT (contract_id, date_column)
);
COMMENT ON TABLE contract_window IS 'The study window of each shifted column of a contract, widened by every refresh.';

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
    -- At most one row per person and institution in the source, as measured at
    -- publish: every row of such a view counts in a person's class.
    person_level   boolean NOT NULL DEFAULT false,
    -- The rows of the data table: set by publish and refresh, decremented by the
    -- consent triggers as they delete (for the ledger, without counting them).
    row_count      bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (contract_id, view_name)
);
COMMENT ON TABLE contract_table IS 'The data table behind each view of a contract, and its person and token columns, as publish wrote them.';

DO $live$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['contract_person', 'contract_class', 'contract_table', 'contract_column', 'contract_value',
                             'contract_raw_value', 'contract_window'] LOOP
        PERFORM pg_catalog.pg_extension_config_dump(t, '');
        EXECUTE pg_catalog.format('REVOKE ALL ON TABLE %I FROM PUBLIC', t);
        -- The operator computes these values anyway (it may call tokenize); it
        -- reads them for reports, and never writes them by hand.
        EXECUTE pg_catalog.format('GRANT SELECT ON TABLE %I TO medanon_operator', t);
    END LOOP;
END
$live$;

-- The parent of `label` (at `level`: 0 a value as stored) in a contract
-- column's hierarchy: 'icd10', or 'table:<name>', a table whose first column is
-- the value and each next column the next level up (read as the extension
-- owner, which publishes). NULL at the top, or for a label the hierarchy does
-- not know.
CREATE FUNCTION _hierarchy_parent(hierarchy text, label text, level integer) RETURNS text
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    rel regclass;
    cols name[];
    parent text;
BEGIN
    IF hierarchy IS NULL OR label IS NULL THEN
        RETURN NULL;
    ELSIF hierarchy = 'icd10' THEN
        RETURN medanon._icd10_parent(label, level);
    ELSIF hierarchy LIKE 'table:%' THEN
        rel := pg_catalog.to_regclass(substr(hierarchy, 7));
        IF rel IS NULL THEN
            RAISE EXCEPTION 'hierarchy table "%" does not exist', substr(hierarchy, 7) USING ERRCODE = 'undefined_table';
        END IF;
        cols := ARRAY(SELECT a.attname FROM pg_catalog.pg_attribute a
                       WHERE a.attrelid = rel AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum);
        IF level + 2 > pg_catalog.cardinality(cols) THEN
            RETURN NULL;
        END IF;
        EXECUTE format('SELECT %I::text FROM %s WHERE %I::text = $1 AND %I IS NOT NULL ORDER BY 1 LIMIT 1',
                       cols[level + 2], rel, cols[level + 1], cols[level + 2])
            INTO parent USING label;
        RETURN parent;
    END IF;
    RAISE EXCEPTION 'unknown hierarchy "%"', hierarchy USING ERRCODE = 'invalid_parameter_value';
END
$fn$;

-- Resolves the rare values of one rare column of a publish or refresh, in the
-- scratch tables of data schema `data_schema` (ContractPlan::prepare_sql):
-- _rare_counts holds every value with its visible persons; the holders of the
-- rare ones climb the hierarchy together, level by level: a label that is shown
-- already takes them, a label that min_persons of them hold is shown, the rest
-- climb on; what reaches the top is NULL. Writes _values (value -> what is
-- shown, NULL suppressed) and _shown (labels rare values climbed to).
CREATE FUNCTION _contract_rare_resolve(data_schema name, key integer, min_persons integer, hierarchy text) RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    counts constant text := format('%I._rare_counts', data_schema);
    holders constant text := format('%I._holders', data_schema);
    shown constant text := format('%I._shown', data_schema);
    vals constant text := format('%I._values', data_schema);
    steps integer := 0;
    left_over boolean;
BEGIN
    IF hierarchy IS NULL THEN
        EXECUTE format('INSERT INTO %s (key, v, shown) SELECT c.key, c.v, NULL FROM %s c WHERE c.key = $1 AND c.persons < $2', vals, counts)
            USING key, min_persons;
        RETURN;
    END IF;
    LOOP
        steps := steps + 1;
        EXECUTE format('UPDATE %s h SET label = medanon._hierarchy_parent($2, h.label, h.level), level = h.level + 1
                         WHERE h.key = $1 AND NOT h.done', holders) USING key, hierarchy;
        -- Suppressed at the top, or taken by a label shown already (as stored or climbed to).
        EXECUTE format('UPDATE %1$s h SET done = true WHERE h.key = $1 AND NOT h.done
                           AND (h.label IS NULL
                                OR EXISTS (SELECT FROM %2$s c WHERE c.key = $1 AND c.v = h.label AND c.persons >= $2)
                                OR EXISTS (SELECT FROM %3$s s WHERE s.key = $1 AND s.label = h.label))',
                       holders, counts, shown) USING key, min_persons;
        EXECUTE format('WITH g AS (SELECT h.label, max(h.level) AS level, count(DISTINCT h.person_id) AS n
                                     FROM %1$s h WHERE h.key = $1 AND NOT h.done
                                    GROUP BY h.label HAVING count(DISTINCT h.person_id) >= $2),
                             ins AS (INSERT INTO %2$s (key, label, level, persons) SELECT $1, g.label, g.level, g.n FROM g)
                        UPDATE %1$s h SET done = true FROM g WHERE h.key = $1 AND NOT h.done AND h.label = g.label',
                       holders, shown) USING key, min_persons;
        EXECUTE format('SELECT EXISTS (SELECT FROM %s h WHERE h.key = $1 AND NOT h.done)', holders) INTO left_over USING key;
        EXIT WHEN NOT left_over OR steps >= 32;
    END LOOP;
    EXECUTE format('INSERT INTO %1$s (key, v, shown)
                    SELECT DISTINCT ON (h.v) $1, h.v, CASE WHEN h.done THEN h.label END
                      FROM %2$s h WHERE h.key = $1 ORDER BY h.v', vals, holders) USING key;
END
$fn$;

-- A shown value of a rare-checked column fell below its min_persons (an opt-out,
-- a merge or a suppressed class took its holders): it is replaced in the data
-- table now, by its first ancestor that enough persons hold already, else NULL,
-- and the ancestor counts its new holders. Called by _contract_withhold only.
CREATE FUNCTION _contract_value_fall(id text, view_nm name, col name, fallen text, data_schema name, data_table name, token_column name)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    c medanon.contract_column;
    lvl integer;
    up text;
    target text;
    holders bigint[];
    joined bigint;
    keep text;
BEGIN
    SELECT * INTO c FROM medanon.contract_column cc WHERE cc.contract_id = id AND cc.view_name = view_nm AND cc.column_name = col;
    SELECT v.level INTO lvl FROM medanon.contract_value v
     WHERE v.contract_id = id AND v.view_name = view_nm AND v.column_name = col AND v.label = fallen;
    up := fallen;
    WHILE c.hierarchy IS NOT NULL AND target IS NULL LOOP
        up := medanon._hierarchy_parent(c.hierarchy, up, lvl);
        lvl := lvl + 1;
        EXIT WHEN up IS NULL OR lvl > 32;
        SELECT v.label INTO target FROM medanon.contract_value v
         WHERE v.contract_id = id AND v.view_name = view_nm AND v.column_name = col AND v.label = up AND v.persons >= c.min_persons;
    END LOOP;
    EXECUTE format('SELECT array_agg(DISTINCT %I) FROM %I.%I WHERE %I::text = $1', token_column, data_schema, data_table, col)
        INTO holders USING fallen;
    IF target IS NOT NULL AND holders IS NOT NULL THEN
        EXECUTE format('SELECT count(*) FROM unnest($1) h(token)
                         WHERE NOT EXISTS (SELECT FROM %I.%I d WHERE d.%I = h.token AND d.%I::text = $2)',
                       data_schema, data_table, token_column, col)
            INTO joined USING holders, target;
        UPDATE medanon.contract_value v SET persons = v.persons + joined
         WHERE v.contract_id = id AND v.view_name = view_nm AND v.column_name = col AND v.label = target;
    END IF;
    -- A hierarchy's labels are text, and only text columns take one; without a
    -- target the value is suppressed, whatever the column's type.
    -- The value before replacement is kept (c.raw_column), as publish keeps it.
    keep := CASE WHEN c.raw_column IS NOT NULL THEN format(', %1$I = coalesce(%1$I, %2$I)', c.raw_column, col) ELSE '' END;
    IF target IS NULL THEN
        EXECUTE format('UPDATE %I.%I SET %I = NULL%s WHERE %I = ANY ($1) AND %I::text = $2',
                       data_schema, data_table, col, keep, token_column, col)
            USING holders, fallen;
    ELSE
        EXECUTE format('UPDATE %I.%I SET %I = $3%s WHERE %I = ANY ($1) AND %I::text = $2',
                       data_schema, data_table, col, keep, token_column, col)
            USING holders, fallen, target;
    END IF;
    DELETE FROM medanon.contract_value v
     WHERE v.contract_id = id AND v.view_name = view_nm AND v.column_name = col AND v.label = fallen;
    UPDATE medanon.contract_column cc SET values_replaced = cc.values_replaced + 1
     WHERE cc.contract_id = id AND cc.view_name = view_nm AND cc.column_name = col;
END
$fn$;

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
    gone_tokens bigint[];
    more_contracts text[];
    more_tokens bigint[];
    t record;
    col record;
    fallen record;
    labels text[];
    counts bigint[];
    deleted bigint;
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
    -- Their rows leave every data table now (the views read nothing else), and
    -- the values they held lose them: a value that falls below its column's
    -- min_persons is replaced in the same transaction (_contract_value_fall).
    FOR t IN SELECT ct.contract_id, ct.view_name, ct.data_schema, ct.data_table, ct.token_column,
                    ARRAY(SELECT x.token FROM unnest(gone_contracts, gone_tokens) AS x(contract_id, token)
                           WHERE x.contract_id = ct.contract_id) AS tokens
               FROM medanon.contract_table ct
              WHERE ct.contract_id = ANY (gone_contracts)
              ORDER BY ct.contract_id, ct.view_name LOOP
        FOR col IN SELECT cc.* FROM medanon.contract_column cc
                    WHERE cc.contract_id = t.contract_id AND cc.view_name = t.view_name ORDER BY cc.column_name LOOP
            EXECUTE format('SELECT array_agg(x.label), array_agg(x.n) FROM (SELECT %1$I::text AS label, count(DISTINCT %2$I) AS n
                              FROM %3$I.%4$I WHERE %2$I = ANY ($1) AND %1$I IS NOT NULL GROUP BY 1) x',
                           col.column_name, t.token_column, t.data_schema, t.data_table)
                INTO labels, counts USING t.tokens;
            IF labels IS NOT NULL THEN
                UPDATE medanon.contract_value v SET persons = v.persons - x.n
                  FROM unnest(labels, counts) AS x(label, n)
                 WHERE v.contract_id = col.contract_id AND v.view_name = col.view_name
                   AND v.column_name = col.column_name AND v.label = x.label;
            END IF;
            CONTINUE WHEN col.raw_column IS NULL;
            -- The values before replacement: kept where one was replaced, else shown.
            EXECUTE format('SELECT array_agg(x.v), array_agg(x.n) FROM (SELECT coalesce(%1$I, %5$I)::text AS v, count(DISTINCT %2$I) AS n
                              FROM %3$I.%4$I WHERE %2$I = ANY ($1) AND coalesce(%1$I, %5$I) IS NOT NULL GROUP BY 1) x',
                           col.raw_column, t.token_column, t.data_schema, t.data_table, col.column_name)
                INTO labels, counts USING t.tokens;
            IF labels IS NOT NULL THEN
                UPDATE medanon.contract_raw_value v SET persons = v.persons - x.n
                  FROM unnest(labels, counts) AS x(value, n)
                 WHERE v.contract_id = col.contract_id AND v.view_name = col.view_name
                   AND v.column_name = col.column_name AND v.value = x.value;
            END IF;
        END LOOP;
        EXECUTE format('DELETE FROM %I.%I WHERE %I = ANY ($1)', t.data_schema, t.data_table, t.token_column) USING t.tokens;
        GET DIAGNOSTICS deleted = ROW_COUNT;
        UPDATE medanon.contract_table ct SET row_count = ct.row_count - deleted
         WHERE ct.contract_id = t.contract_id AND ct.view_name = t.view_name;
        FOR fallen IN SELECT v.* FROM medanon.contract_value v JOIN medanon.contract_column cc USING (contract_id, view_name, column_name)
                       WHERE v.contract_id = t.contract_id AND v.view_name = t.view_name AND v.persons < cc.min_persons
                       ORDER BY v.column_name, v.level, v.label LOOP
            PERFORM medanon._contract_value_fall(fallen.contract_id, fallen.view_name, fallen.column_name, fallen.label,
                                                 t.data_schema, t.data_table, t.token_column);
        END LOOP;
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
    _contract_lock(text[], text, interval), _hierarchy_parent(text, text, integer),
    _contract_rare_resolve(name, integer, integer, text),
    _contract_value_fall(text, name, name, text, name, name, name) FROM PUBLIC;
COMMENT ON FUNCTION _hierarchy_parent(text, text, integer) IS 'Internal: the parent of a label in a contract column''s hierarchy (icd10, or a table), NULL at the top.';
COMMENT ON FUNCTION _contract_rare_resolve(name, integer, integer, text) IS 'Internal: resolves the rare values of one column during publish or refresh, climbing its hierarchy.';
COMMENT ON FUNCTION _contract_value_fall(text, name, name, text, name, name, name) IS 'Internal: replaces a shown value that fell below min_persons, in the same transaction as the opt-out that took it there.';

-- What a contract shows now. Runs as the caller (the operator reads the map).
CREATE FUNCTION contract_report(id text)
RETURNS TABLE (contract_id text, status text, k integer, expires_on date,
               persons_exposed bigint, persons_suppressed_k bigint, persons_excluded_consent bigint,
               persons_unlinked bigint, persons_changed bigint, persons_calendar bigint,
               classes bigint, classes_suppressed bigint, min_class_size integer, values_replaced bigint,
               reads_audited boolean, images_withheld bigint)
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
           p.visible, p.k_suppressed, p.consent, p.unlinked, p.changed, p.calendar, cl.classes, cl.suppressed, cl.smallest,
           (SELECT coalesce(sum(cc.values_replaced), 0)::bigint FROM medanon.contract_column cc WHERE cc.contract_id = c.contract_id),
           -- Whether the grantee's reads reach the server log (pgaudit; sql/read_audit.sql).
           medanon.reads_audited(c.contract_id),
           -- DICOM objects withheld for a burned-in annotation at the last publish
           -- or refresh (sql/dicom.sql), while the contract is in force.
           (SELECT coalesce(sum(ci.images_withheld), 0)::bigint FROM medanon.contract_image ci
             WHERE ci.contract_id = c.contract_id AND c.status = 'published')
      FROM medanon.contract c,
           LATERAL (SELECT count(*) FILTER (WHERE m.state = st ->> 'visible') AS visible,
                           count(*) FILTER (WHERE m.state = st ->> 'k') AS k_suppressed,
                           count(*) FILTER (WHERE m.state = st ->> 'consent') AS consent,
                           count(*) FILTER (WHERE m.state = st ->> 'unlinked') AS unlinked,
                           count(*) FILTER (WHERE m.state = st ->> 'changed') AS changed,
                           count(*) FILTER (WHERE m.state = st ->> 'calendar') AS calendar
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
    DELETE FROM medanon.contract_column cc WHERE cc.contract_id = id;
    DELETE FROM medanon.contract_window cw WHERE cw.contract_id = id;
    UPDATE medanon.contract SET status = CASE event WHEN 'revoke' THEN 'revoked' ELSE 'expired' END
     WHERE contract_id = id;
    INSERT INTO medanon.provision_ledger (contract_id, event, spec_sha256, person_count, detail)
    VALUES (id, event, c.spec_sha256, exposed,
            jsonb_build_object('dropped_schemas', coalesce(to_jsonb(schemas), '[]'), 'status_before', c.status,
                               'expires_on', c.expires_on)
            -- A derived contract names its parent, and says so when it goes because
            -- the parent was revoked (revoke_contract closes the parent first).
            || CASE WHEN c.derived_from IS NULL THEN '{}'::jsonb
                    ELSE jsonb_build_object('derived_from', c.derived_from)
                         || CASE WHEN event = 'revoke' AND (SELECT p.status FROM medanon.contract p
                                                             WHERE p.contract_id = c.derived_from) = 'revoked'
                                 THEN jsonb_build_object('cause', 'parent revoked') ELSE '{}'::jsonb END
               END);
    RETURN exposed;
END
$fn$;
REVOKE ALL ON FUNCTION _contract_close(text, text), _contract_schemas(text) FROM PUBLIC;

CREATE FUNCTION revoke_contract(id text) RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE st text; child text;
BEGIN
    SELECT c.status INTO st FROM medanon.contract c WHERE c.contract_id = id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'contract "%" does not exist', id USING ERRCODE = 'undefined_object';
    ELSIF st IN ('revoked', 'expired') THEN
        RAISE EXCEPTION 'contract "%" is % already', id, st USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    PERFORM medanon._contract_close(id, 'revoke');
    -- Then every live contract derived from it, at any depth, parents first, each
    -- with its own ledger entry, in this transaction: their grantees lose access
    -- at this commit too. Read after the parent's row lock, so a derived contract
    -- created meanwhile (its create holds the parent FOR SHARE) is found.
    FOR child IN
        WITH RECURSIVE d(contract_id, depth) AS (
            SELECT c.contract_id, 1 FROM medanon.contract c WHERE c.derived_from = id
            UNION ALL
            SELECT c.contract_id, d.depth + 1 FROM medanon.contract c JOIN d ON c.derived_from = d.contract_id
        ) CYCLE contract_id SET is_cycle USING path
        SELECT d.contract_id FROM d JOIN medanon.contract c ON c.contract_id = d.contract_id
         WHERE NOT d.is_cycle AND c.status IN ('created', 'published')
         ORDER BY d.depth, d.contract_id
    LOOP
        PERFORM medanon._contract_close(child, 'revoke');
    END LOOP;
END
$fn$;

-- A contract's chain of onward provision, read from the provision ledger alone
-- (its create entries name their parent), so an auditor sees it too: the contract
-- (depth 0), the contracts it derives from (depth -1, -2, ...) and those derived
-- from it (1, 2, ...), with the status the ledger gives each. Runs as the caller.
CREATE FUNCTION contract_lineage(id text)
RETURNS TABLE (contract_id text, derived_from text, depth integer, status text, created_at timestamptz, created_by name)
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    IF NOT EXISTS (SELECT FROM medanon.provision_ledger l WHERE l.contract_id = id AND l.event = 'create') THEN
        RAISE EXCEPTION 'contract "%" does not exist', id USING ERRCODE = 'undefined_object';
    END IF;
    RETURN QUERY
    WITH RECURSIVE created AS (
        SELECT l.contract_id AS cid, l.detail -> 'derived_from' ->> 'contract_id' AS parent, l.recorded_at, l.recorded_by
          FROM medanon.provision_ledger l WHERE l.event = 'create'
    ), up(cid, depth) AS (
        SELECT id, 0
        UNION ALL
        SELECT c.parent, up.depth - 1 FROM up JOIN created c ON c.cid = up.cid WHERE c.parent IS NOT NULL
    ) CYCLE cid SET up_cycle USING up_path,
    down(cid, depth) AS (
        SELECT c.cid, 1 FROM created c WHERE c.parent = id
        UNION ALL
        SELECT c.cid, down.depth + 1 FROM down JOIN created c ON c.parent = down.cid
    ) CYCLE cid SET down_cycle USING down_path,
    chain AS (
        SELECT up.cid, up.depth FROM up WHERE NOT up.up_cycle
        UNION
        SELECT down.cid, down.depth FROM down WHERE NOT down.down_cycle
    )
    SELECT chain.cid, c.parent, chain.depth,
           CASE WHEN EXISTS (SELECT FROM medanon.provision_ledger l WHERE l.contract_id = chain.cid AND l.event = 'revoke') THEN 'revoked'
                WHEN EXISTS (SELECT FROM medanon.provision_ledger l WHERE l.contract_id = chain.cid AND l.event = 'expire') THEN 'expired'
                WHEN EXISTS (SELECT FROM medanon.provision_ledger l WHERE l.contract_id = chain.cid AND l.event = 'publish') THEN 'published'
                ELSE 'created' END,
           c.recorded_at, c.recorded_by
      FROM chain LEFT JOIN created c ON c.cid = chain.cid
     ORDER BY chain.depth, chain.cid;
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

-- Values of rel.column_name held by fewer than min_persons distinct persons
-- (特異な記述), with how many hold each: what an anonymized contract would
-- replace. Runs as the caller, over what the caller may read.
CREATE FUNCTION rare_values(rel regclass, column_name text, person_column text, min_persons integer)
RETURNS TABLE (value text, persons bigint)
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    IF rel IS NULL OR column_name IS NULL OR person_column IS NULL OR min_persons IS NULL THEN
        RAISE EXCEPTION 'rare_values needs a table, a column, the person column and min_persons'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF min_persons < 2 THEN
        RAISE EXCEPTION 'min_persons must be at least 2, not %', min_persons
            USING ERRCODE = 'invalid_parameter_value', HINT = 'a value held by one person is the rarest there is: ask for 2 or more';
    END IF;
    FOR i IN 1..2 LOOP
        IF NOT EXISTS (SELECT FROM pg_catalog.pg_attribute a WHERE a.attrelid = rel AND a.attnum > 0 AND NOT a.attisdropped
                          AND a.attname = (ARRAY[column_name, person_column])[i]) THEN
            RAISE EXCEPTION 'column "%" of relation % does not exist', (ARRAY[column_name, person_column])[i], rel
                USING ERRCODE = 'undefined_column';
        END IF;
    END LOOP;
    RETURN QUERY EXECUTE format(
        'SELECT x.v, count(*) FROM (SELECT DISTINCT t.%1$I::text AS v, t.%2$I AS p FROM %3$s t
                                     WHERE t.%1$I IS NOT NULL AND t.%2$I IS NOT NULL) x
          GROUP BY x.v HAVING count(*) < $1 ORDER BY 2, 1', column_name, person_column, rel)
        USING min_persons;
END
$fn$;
COMMENT ON FUNCTION rare_values(regclass, text, text, integer) IS
'Values of a column held by fewer than min_persons distinct persons (unusual descriptions, 特異な記述), with their counts, fewest first. Runs as the caller.';
