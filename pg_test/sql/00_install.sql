-- Installing medanon: schema, control settings, the first key.
CREATE EXTENSION medanon;
SELECT extname, extrelocatable, extnamespace::regnamespace AS schema FROM pg_extension WHERE extname = 'medanon';
-- CREATE EXTENSION made one active 256-bit key per purpose.
SELECT purpose, count(*) AS keys, bool_and(active) AS active, min(octet_length(material)) * 8 AS bits, min(origin) AS origin
  FROM medanon.keyring GROUP BY purpose ORDER BY purpose;
-- The keyring and its sequence are extension config tables, so pg_dump keeps them.
SELECT c::regclass::text AS dumped FROM pg_extension, unnest(extconfig) AS c WHERE extname = 'medanon' ORDER BY 1;
-- The operator role exists and cannot log in.
SELECT rolname, rolcanlogin FROM pg_roles WHERE rolname = 'medanon_operator';
-- Every function is documented.
SELECT p.oid::regprocedure AS undocumented
  FROM pg_proc p WHERE p.pronamespace = 'medanon'::regnamespace AND obj_description(p.oid, 'pg_proc') IS NULL;
-- The extension cannot be moved to another schema.
CREATE SCHEMA elsewhere;
ALTER EXTENSION medanon SET SCHEMA elsewhere;
DROP SCHEMA elsewhere;
