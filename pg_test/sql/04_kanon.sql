-- k_anonymity
CREATE TABLE visits ("Age band" text, sex text, person int);
INSERT INTO visits VALUES ('40-44','F',1), ('40-44','F',1), ('40-44','F',2), ('40-44','M',3),
                          ('40-44','M',4), ('40-44','M',5), ('45-49','F',6), ('45-49','F',6);
SELECT medanon.k_anonymity('visits', ARRAY['Age band', 'sex']) AS k_rows,
       medanon.k_anonymity('visits', ARRAY['Age band', 'sex'], 'person') AS k_persons,
       medanon.k_anonymity('visits', ARRAY['sex'], 'person') AS k_sex_only;
-- The same figure as the hand-written query.
SELECT min(n) AS hand_written FROM (SELECT count(DISTINCT person) AS n FROM visits GROUP BY "Age band", sex) s;
CREATE TABLE nothing (a int, p int);
SELECT medanon.k_anonymity('nothing', ARRAY['a'], 'p') IS NULL AS empty_gives_null;
SELECT medanon.k_anonymity('visits', ARRAY['age band']);
SELECT medanon.k_anonymity('visits', ARRAY['sex'], 'patient');
SELECT medanon.k_anonymity('visits', ARRAY['sex"; DROP TABLE visits; --']);
SELECT medanon.k_anonymity('visits', ARRAY[]::text[]);
SELECT medanon.k_anonymity('visits', ARRAY['sex', NULL]);
SELECT medanon.k_anonymity('visits', ARRAY['sex', 'sex']);
SELECT medanon.k_anonymity('no_such_table', ARRAY['sex']);
SELECT count(*) AS visits_still_there FROM visits;
-- Never IMMUTABLE: it reads a table.
SELECT provolatile, proparallel FROM pg_proc WHERE oid = 'medanon.k_anonymity'::regproc;
DROP TABLE visits, nothing;
