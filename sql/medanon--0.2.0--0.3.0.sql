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
