-- Who may do what. Roles are cluster-wide, so they are made and dropped here.
SET client_min_messages = warning;
DROP ROLE IF EXISTS regress_outsider;
DROP ROLE IF EXISTS regress_etl;
RESET client_min_messages;
CREATE ROLE regress_outsider;
CREATE ROLE regress_etl IN ROLE medanon_operator;
SET ROLE regress_outsider;
SELECT medanon.tokenize('12345', 'patient');
SELECT medanon.shift_date('2026-04-01'::date, 'p', 'c');
SELECT medanon.rotate_key();
SELECT * FROM medanon.keyring;
SELECT medanon.generalize_age('1975-03-01', '2026-04-01') AS open_to_all;
RESET ROLE;
SET ROLE regress_etl;
SELECT length(medanon.tokenize('12345', 'patient')) AS operator_tokenizes;
SELECT material FROM medanon.keyring;
SELECT medanon.rotate_key();
RESET ROLE;
-- Function privileges as the catalog sees them.
SELECT p.proname, has_function_privilege('regress_outsider', p.oid, 'EXECUTE') AS outsider,
       has_function_privilege('regress_etl', p.oid, 'EXECUTE') AS operator
  FROM pg_proc p WHERE p.pronamespace = 'medanon'::regnamespace
 GROUP BY p.proname, 2, 3 ORDER BY 1;
DROP ROLE regress_outsider;
DROP ROLE regress_etl;
