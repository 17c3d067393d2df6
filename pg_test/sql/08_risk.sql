-- Risk analysis: k_report, l_diversity, risk_profile and the generalization search.
CREATE TABLE cohort (person int, age int, sex text, postal text, address text, visit date, diagnosis text);
INSERT INTO cohort
SELECT p, 20 + (p * 7) % 60, CASE WHEN p % 2 = 0 THEN '1' ELSE '2' END,
       (ARRAY['100-0001','100-0002','160-0022','530-0001','530-0012'])[1 + p % 5],
       (ARRAY['東京都千代田区','東京都新宿区','大阪府大阪市北区','横浜市中区','京都市左京区'])[1 + p % 5],
       DATE '2025-01-01' + (p * 37) % 365,
       (ARRAY['E11','I10','J45'])[1 + (p + v) % 3]
  FROM generate_series(1, 200) p, generate_series(1, 1 + p % 3) v;

SELECT class, persons FROM medanon.k_report('cohort', ARRAY['sex', 'address'], 'person', 41);
SELECT count(*) AS classes_below_5, sum(persons) AS persons FROM medanon.k_report('cohort', ARRAY['age', 'sex'], 'person', 5);
SELECT medanon.l_diversity('cohort', ARRAY['sex', 'address'], 'diagnosis', 'person') AS l_sex_address,
       medanon.l_diversity('cohort', ARRAY['age', 'sex', 'address'], 'diagnosis', 'person') AS l_fine;
SELECT jsonb_pretty(medanon.risk_profile('cohort', ARRAY['age', 'sex', 'address'], 'person', 5)) AS profile;

CREATE TABLE sex_levels (value text, level1 text);
INSERT INTO sex_levels VALUES ('1', '*'), ('2', '*');
SELECT jsonb_pretty(medanon.suggest_generalization('cohort',
  '{"person_column": "person",
    "quasi_identifiers": {"age": {"hierarchy": "age", "top": 70}, "sex": {"hierarchy": "table", "table": "sex_levels"},
                          "postal": "postal", "visit": "date"}}', 5, 0.05)) AS suggestion;
-- Nothing suppressed allowed, and k larger than the data: the top of the lattice.
SELECT medanon.suggest_generalization('cohort', '{"person_column": "person", "quasi_identifiers": {"age": "age"}}', 200, 0)
       -> 'levels' AS levels_for_k_200;
SELECT medanon.suggest_generalization('cohort', '{"person_column": "person", "quasi_identifiers": {"age": "age"}}', 201, 0)
       -> 'found' AS found_for_k_201;

-- Bad input.
SELECT medanon.k_report('cohort', ARRAY['sex'], 'person', 0);
SELECT medanon.k_report('cohort', ARRAY['sex'], 'nobody', 5);
SELECT medanon.l_diversity('cohort', ARRAY['sex'], 'no_such', 'person');
SELECT medanon.risk_profile('cohort', ARRAY[]::text[], 'person', 5);
SELECT medanon.suggest_generalization('cohort', '{"person_column": "person", "quasi_identifiers": {"age": "shoe size"}}', 5, 0.01);
SELECT medanon.suggest_generalization('cohort', '{"person_column": "person", "quasi_identifiers": {"age": "age"}, "extra": 1}', 5, 0.01);
SELECT medanon.suggest_generalization('cohort', '{"quasi_identifiers": {"age": "age"}}', 5, 0.01);
SELECT medanon.suggest_generalization('cohort', '{"person_column": "person", "quasi_identifiers": {"age": "age"}}', 5, 1.5);
SELECT medanon.suggest_generalization('cohort', '{"person_column": "person", "quasi_identifiers": {"sex": {"hierarchy": "table"}}}', 5, 0.01);
SELECT medanon.suggest_generalization('cohort', '[1, 2]', 5, 0.01);

-- A NULL argument is refused (22004), never answered with zero rows or NULL: an
-- empty k_report would read as "no class below k".
SELECT * FROM medanon.k_report(NULL, ARRAY['sex'], 'person', 5);
SELECT * FROM medanon.k_report('cohort', NULL, 'person', 5);
SELECT * FROM medanon.k_report('cohort', ARRAY['sex'], NULL, 5);
SELECT * FROM medanon.k_report('cohort', ARRAY['sex'], 'person', NULL);
SELECT medanon.l_diversity(NULL, ARRAY['sex'], 'diagnosis', 'person');
SELECT medanon.l_diversity('cohort', NULL, 'diagnosis', 'person');
SELECT medanon.l_diversity('cohort', ARRAY['sex'], NULL, 'person');
SELECT medanon.l_diversity('cohort', ARRAY['sex'], 'diagnosis', NULL);
SELECT medanon.risk_profile(NULL, ARRAY['sex'], 'person', 5);
SELECT medanon.risk_profile('cohort', NULL, 'person', 5);
SELECT medanon.risk_profile('cohort', ARRAY['sex'], NULL, 5);
SELECT medanon.risk_profile('cohort', ARRAY['sex'], 'person', NULL);
SELECT medanon.suggest_generalization(NULL, '{"person_column": "person", "quasi_identifiers": {"age": "age"}}', 5, 0.01);
SELECT medanon.suggest_generalization('cohort', NULL, 5, 0.01);
SELECT medanon.suggest_generalization('cohort', '{"person_column": "person", "quasi_identifiers": {"age": "age"}}', NULL, 0.01);
SELECT medanon.suggest_generalization('cohort', '{"person_column": "person", "quasi_identifiers": {"age": "age"}}', 5, NULL);
-- A NULL inside the array, and a JSON null person column, are refused as before.
SELECT * FROM medanon.k_report('cohort', ARRAY['sex', NULL], 'person', 5);
SELECT medanon.suggest_generalization('cohort', '{"person_column": null, "quasi_identifiers": {"age": "age"}}', 5, 0.01);

-- A value its hierarchy cannot read is refused, not made a class of its own.
CREATE TABLE odd (person int, age text);
INSERT INTO odd VALUES (1, '40'), (2, 'forty');
SELECT medanon.suggest_generalization('odd', '{"person_column": "person", "quasi_identifiers": {"age": "age"}}', 2, 0);
DROP TABLE odd;
-- A lattice beyond a million nodes is refused before any data is read.
SELECT format('CREATE TABLE deep (value text, %s)', string_agg(format('l%s text', i), ', ')) FROM generate_series(1, 19) i \gexec
SELECT medanon.suggest_generalization('cohort', '{"person_column": "person", "quasi_identifiers": {
  "age": {"hierarchy": "table", "table": "deep"}, "sex": {"hierarchy": "table", "table": "deep"},
  "postal": {"hierarchy": "table", "table": "deep"}, "address": {"hierarchy": "table", "table": "deep"},
  "diagnosis": {"hierarchy": "table", "table": "deep"}}}', 5, 0.01);
DROP TABLE deep;
DROP TABLE cohort, sex_levels;
