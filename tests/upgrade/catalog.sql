-- The catalog of the medanon extension in this database, one fact a line, sorted:
-- what scripts/upgrade-test.sh compares between a database upgraded from 0.1.0
-- and a fresh install (`diff` of the two outputs). Generic: it walks every object
-- that pg_depend records as a member of the extension (deptype 'e'), and what
-- hangs off them (columns, constraints, indexes, triggers, policies, owned
-- sequences, comments, privileges), so an object added to sql/ or to a
-- #[pg_extern] is compared without being listed here. Also: the extension's
-- configuration tables (pg_extension_config_dump), the initial privileges
-- (pg_init_privs) of every non-system object, and the roles medanon makes
-- (medanon_*) with their attributes and memberships.
--
-- Not compared: column order (attnum). ALTER TABLE ADD COLUMN appends, so a
-- column that 0.2.0 declares in the middle of a table is last after an upgrade;
-- medanon reads its tables by column name everywhere (the keyring by attribute
-- name too, src/keyring.rs). The order is printed as an "order" line by
-- upgrade-test.sh, for information.
--
--   psql -X -At -f tests/upgrade/catalog.sql
\set ON_ERROR_STOP 1
SET search_path = pg_catalog, pg_temp;
SET TimeZone = 'UTC';
SET DateStyle = 'ISO';
SET extra_float_digits = 1;

-- Members of the extension: (classid, objid).
CREATE TEMP TABLE m AS
SELECT d.classid, d.objid
  FROM pg_depend d JOIN pg_extension e ON e.oid = d.refobjid
 WHERE d.refclassid = 'pg_extension'::regclass AND d.deptype::text = 'e' AND e.extname = 'medanon';

-- An ACL, sorted and with the owner's entry named "owner" (the two databases may
-- have different installing superusers).
CREATE FUNCTION pg_temp.acl(a aclitem[], owner oid) RETURNS text LANGUAGE sql STABLE AS $$
    SELECT coalesce(string_agg(
               CASE WHEN x.grantee = 0 THEN 'PUBLIC' WHEN x.grantee = owner THEN 'owner' ELSE x.grantee::regrole::text END
               || '=' || x.privilege_type || CASE WHEN x.is_grantable THEN '*' ELSE '' END
               || ' by ' || CASE WHEN x.grantor = owner THEN 'owner' ELSE x.grantor::regrole::text END,
               ', ' ORDER BY 1), '(default)')
      FROM (SELECT (aclexplode(a)).*) x
     WHERE a IS NOT NULL
$$;
CREATE FUNCTION pg_temp.oneline(t text) RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT replace(replace(t, E'\r', ''), E'\n', ' ⏎ ')
$$;

CREATE TEMP TABLE facts (line text);

-- Every member, by its description.
INSERT INTO facts
SELECT 'member ' || pg_describe_object(m.classid, m.objid, 0) FROM m;

-- The extension itself.
INSERT INTO facts
SELECT 'extension version=' || e.extversion || ' relocatable=' || e.extrelocatable
       || ' schema=' || e.extnamespace::regnamespace::text
  FROM pg_extension e WHERE e.extname = 'medanon';
INSERT INTO facts
SELECT 'config_dump ' || c.rel::regclass::text || ' condition=' || quote_literal(coalesce(c.cond, '(null)'))
  FROM pg_extension e,
       LATERAL unnest(e.extconfig, coalesce(e.extcondition, array_fill(NULL::text, ARRAY[cardinality(e.extconfig)]))) c(rel, cond)
 WHERE e.extname = 'medanon';

-- Schemas.
INSERT INTO facts
SELECT 'schema ' || n.nspname || ' acl=' || pg_temp.acl(n.nspacl, n.nspowner)
       || ' comment=' || coalesce(quote_literal(obj_description(n.oid, 'pg_namespace')), '(none)')
  FROM m JOIN pg_namespace n ON m.classid = 'pg_namespace'::regclass AND n.oid = m.objid;

-- Functions: everything CREATE FUNCTION sets, the privileges and the comment,
-- then the whole definition on one line.
INSERT INTO facts
SELECT 'function ' || p.oid::regprocedure::text
       || ' returns ' || pg_get_function_result(p.oid)
       || ' lang=' || l.lanname || ' kind=' || p.prokind::text || ' volatility=' || p.provolatile::text
       || ' parallel=' || p.proparallel::text || ' strict=' || p.proisstrict || ' security_definer=' || p.prosecdef
       || ' leakproof=' || p.proleakproof || ' cost=' || p.procost || ' rows=' || p.prorows
       || ' config=' || coalesce(array_to_string(p.proconfig, ','), '(none)')
       || ' acl=' || pg_temp.acl(p.proacl, p.proowner)
       || ' comment=' || coalesce(quote_literal(obj_description(p.oid, 'pg_proc')), '(none)')
  FROM m JOIN pg_proc p ON m.classid = 'pg_proc'::regclass AND p.oid = m.objid
  JOIN pg_language l ON l.oid = p.prolang;
INSERT INTO facts
SELECT 'function ' || p.oid::regprocedure::text || ' definition: ' || pg_temp.oneline(pg_get_functiondef(p.oid))
  FROM m JOIN pg_proc p ON m.classid = 'pg_proc'::regclass AND p.oid = m.objid WHERE p.prokind::text IN ('f', 'p', 'w');

-- Relations: tables, views, sequences, and whatever else is a member.
CREATE TEMP TABLE rel AS
SELECT c.oid, c.relname, c.relkind::text, c.relnamespace::regnamespace::text AS nsp,
       quote_ident(c.relnamespace::regnamespace::text) || '.' || quote_ident(c.relname) AS qname
  FROM m JOIN pg_class c ON m.classid = 'pg_class'::regclass AND c.oid = m.objid;
-- Sequences owned by (or the identity of) a member table, members or not.
INSERT INTO rel
SELECT s.oid, s.relname, s.relkind, s.relnamespace::regnamespace::text,
       quote_ident(s.relnamespace::regnamespace::text) || '.' || quote_ident(s.relname)
  FROM pg_depend d JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S'
 WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass AND d.deptype::text IN ('a', 'i')
   AND d.refobjid IN (SELECT r.oid FROM rel r)
   AND s.oid NOT IN (SELECT r.oid FROM rel r);

INSERT INTO facts
SELECT 'relation ' || r.qname || ' kind=' || c.relkind::text || ' persistence=' || c.relpersistence::text
       || ' rls=' || c.relrowsecurity || ' force_rls=' || c.relforcerowsecurity
       || ' options=' || coalesce(array_to_string(c.reloptions, ','), '(none)')
       || ' replica_identity=' || c.relreplident::text
       || ' acl=' || pg_temp.acl(c.relacl, c.relowner)
       || ' comment=' || coalesce(quote_literal(obj_description(c.oid, 'pg_class')), '(none)')
  FROM rel r JOIN pg_class c ON c.oid = r.oid;

-- Columns, by name.
INSERT INTO facts
SELECT 'column ' || r.qname || '.' || quote_ident(a.attname)
       || ' type=' || format_type(a.atttypid, a.atttypmod)
       || ' not_null=' || a.attnotnull
       || ' default=' || coalesce(pg_get_expr(ad.adbin, ad.adrelid), '(none)')
       || ' identity=' || CASE a.attidentity WHEN '' THEN '-' ELSE a.attidentity::text END
       || ' generated=' || CASE a.attgenerated WHEN '' THEN '-' ELSE a.attgenerated::text END
       || ' collation=' || coalesce(NULLIF(a.attcollation, 0)::regcollation::text, '-')
       || ' acl=' || pg_temp.acl(a.attacl, c.relowner)
       || ' comment=' || coalesce(quote_literal(col_description(c.oid, a.attnum)), '(none)')
  FROM rel r JOIN pg_class c ON c.oid = r.oid
  JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
  LEFT JOIN pg_attrdef ad ON ad.adrelid = c.oid AND ad.adnum = a.attnum
 WHERE r.relkind <> 'S';

-- Constraints, by name, with their definition.
INSERT INTO facts
SELECT 'constraint ' || r.qname || ' ' || quote_ident(k.conname) || ' ' || pg_get_constraintdef(k.oid)
       || ' deferrable=' || k.condeferrable || ' validated=' || k.convalidated
  FROM rel r JOIN pg_constraint k ON k.conrelid = r.oid;

-- Indexes (constraint indexes too), by name.
INSERT INTO facts
SELECT 'index ' || r.qname || ' ' || quote_ident(i.relname) || ' ' || pg_get_indexdef(x.indexrelid)
       || ' comment=' || coalesce(quote_literal(obj_description(i.oid, 'pg_class')), '(none)')
  FROM rel r JOIN pg_index x ON x.indrelid = r.oid JOIN pg_class i ON i.oid = x.indexrelid;

-- Triggers (not internal ones of foreign keys), with whether they fire.
INSERT INTO facts
SELECT 'trigger ' || r.qname || ' ' || quote_ident(t.tgname) || ' enabled=' || t.tgenabled::text
       || ' ' || pg_get_triggerdef(t.oid)
       || ' comment=' || coalesce(quote_literal(obj_description(t.oid, 'pg_trigger')), '(none)')
  FROM rel r JOIN pg_trigger t ON t.tgrelid = r.oid AND NOT t.tgisinternal;

-- Row-level security policies.
INSERT INTO facts
SELECT 'policy ' || r.qname || ' ' || quote_ident(p.polname) || ' cmd=' || p.polcmd::text || ' permissive=' || p.polpermissive
       || ' roles=' || (SELECT string_agg(CASE WHEN x = 0 THEN 'PUBLIC' ELSE x::regrole::text END, ',' ORDER BY 1) FROM unnest(p.polroles) x)
       || ' using=' || coalesce(pg_get_expr(p.polqual, p.polrelid), '(none)')
       || ' check=' || coalesce(pg_get_expr(p.polwithcheck, p.polrelid), '(none)')
  FROM rel r JOIN pg_policy p ON p.polrelid = r.oid;

-- Views: the definition.
INSERT INTO facts
SELECT 'view ' || r.qname || ' definition: ' || pg_temp.oneline(pg_get_viewdef(r.oid, true))
  FROM rel r WHERE r.relkind IN ('v', 'm');

-- Sequences: their parameters, and the column that owns them.
INSERT INTO facts
SELECT 'sequence ' || r.qname || ' type=' || s.seqtypid::regtype::text || ' start=' || s.seqstart
       || ' increment=' || s.seqincrement || ' min=' || s.seqmin || ' max=' || s.seqmax
       || ' cache=' || s.seqcache || ' cycle=' || s.seqcycle
       || ' owned_by=' || coalesce((SELECT d.refobjid::regclass::text || '.' || quote_ident(a.attname) || ' (' || d.deptype::text || ')'
                                      FROM pg_depend d JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
                                     WHERE d.classid = 'pg_class'::regclass AND d.objid = r.oid
                                       AND d.refclassid = 'pg_class'::regclass AND d.deptype::text IN ('a', 'i')), '(none)')
  FROM rel r JOIN pg_sequence s ON s.seqrelid = r.oid;

-- Types that are members in their own right (not a table's row type).
INSERT INTO facts
SELECT 'type ' || format_type(t.oid, NULL) || ' typtype=' || t.typtype::text
       || ' acl=' || pg_temp.acl(t.typacl, t.typowner)
       || ' comment=' || coalesce(quote_literal(obj_description(t.oid, 'pg_type')), '(none)')
  FROM m JOIN pg_type t ON m.classid = 'pg_type'::regclass AND t.oid = m.objid;

-- Initial privileges, of every object made after initdb: an extension script's
-- GRANT and REVOKE are recorded here for pg_dump, and an upgrade that granted on
-- an object that is not the extension's (a contract's view) would leave a row
-- that makes pg_dump skip that grant.
INSERT INTO facts
SELECT 'init_privs ' || pg_describe_object(ip.classoid, ip.objoid, ip.objsubid) || ' type=' || ip.privtype::text
       || ' privs=' || pg_temp.acl(ip.initprivs,
                                   coalesce((SELECT c.relowner FROM pg_class c WHERE ip.classoid = 'pg_class'::regclass AND c.oid = ip.objoid),
                                            (SELECT p.proowner FROM pg_proc p WHERE ip.classoid = 'pg_proc'::regclass AND p.oid = ip.objoid),
                                            (SELECT n.nspowner FROM pg_namespace n WHERE ip.classoid = 'pg_namespace'::regclass AND n.oid = ip.objoid),
                                            0))
  FROM pg_init_privs ip WHERE ip.objoid >= 16384;

-- The roles medanon makes: attributes and memberships. Roles are cluster-wide:
-- upgrade-test.sh compares two clusters.
INSERT INTO facts
SELECT 'role ' || r.rolname || ' login=' || r.rolcanlogin || ' inherit=' || r.rolinherit || ' super=' || r.rolsuper
       || ' createrole=' || r.rolcreaterole || ' createdb=' || r.rolcreatedb || ' bypassrls=' || r.rolbypassrls
       || ' replication=' || r.rolreplication || ' connlimit=' || r.rolconnlimit
       || ' comment=' || coalesce(quote_literal(shobj_description(r.oid, 'pg_authid')), '(none)')
  FROM pg_roles r WHERE r.rolname LIKE 'medanon\_%';
INSERT INTO facts
SELECT 'role_membership ' || g.rolname || ' has member ' || u.rolname || ' admin=' || am.admin_option
  FROM pg_auth_members am JOIN pg_roles g ON g.oid = am.roleid JOIN pg_roles u ON u.oid = am.member
 WHERE g.rolname LIKE 'medanon\_%' AND u.rolname LIKE 'medanon\_%';
-- Settings of those roles (ALTER ROLE ... SET).
INSERT INTO facts
SELECT 'role_setting ' || r.rolname || ' ' || array_to_string(s.setconfig, ',')
  FROM pg_db_role_setting s JOIN pg_roles r ON r.oid = s.setrole WHERE r.rolname LIKE 'medanon\_%';

SELECT line FROM facts ORDER BY line COLLATE "C";
