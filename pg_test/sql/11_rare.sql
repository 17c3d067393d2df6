-- Rare values (特異な記述): the ICD-10 hierarchy and rare_values().
SELECT code, medanon.icd10_category(code) AS category, medanon.icd10_chapter(code) AS chapter
  FROM (VALUES ('E11.9'), ('ｅ１１．９'), ('I10'), ('C34.1'), ('D48.9'), ('D50.0'), ('T14'), ('U07.1'), ('Z99.2'),
               ('not a code'), ('')) AS t(code);
CREATE TABLE rare_dx (person_id bigint, icd10 text);
INSERT INTO rare_dx SELECT p, CASE WHEN p <= 2 THEN 'E11.8' WHEN p <= 5 THEN 'E11.7' WHEN p = 6 THEN 'C34.1' ELSE 'I10' END
  FROM generate_series(1, 30) p, generate_series(1, 3) visit;
-- A person with three visits of the same code counts once.
SELECT * FROM medanon.rare_values('rare_dx', 'icd10', 'person_id', 5);
SELECT count(*) AS rare_under_2 FROM medanon.rare_values('rare_dx', 'icd10', 'person_id', 2);
-- Bad input: a person, not a backtrace.
SELECT * FROM medanon.rare_values('rare_dx', 'icd11', 'person_id', 5);
SELECT * FROM medanon.rare_values('rare_dx', 'icd10', 'patient', 5);
SELECT * FROM medanon.rare_values('rare_dx', 'icd10', 'person_id', 1);
SELECT * FROM medanon.rare_values('rare_dx', 'icd10', 'person_id', NULL);
DROP TABLE rare_dx;
