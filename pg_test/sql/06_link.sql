-- Linkage (名寄せ): normalizers, then one patient at three hospitals, twins on a
-- family card, and records that cannot be linked. Keys are random per install,
-- so the output shows which records share a person, not the ids or keys.
SELECT input, medanon.normalize_kana(input) AS kana
  FROM unnest(ARRAY['ｻﾄｳ ﾀﾛｳ', 'さとう　たろう', 'サトウ・タロウ', 'ｷｬﾛﾙ', 'ｵｰﾉ', 'カヲル', '　']) AS input;
SELECT input, medanon.normalize_kanji_name(input) AS kanji
  FROM unnest(ARRAY['髙橋　健一', '山﨑', '齋藤', '齊藤', '渡邊', '渡邉', '澤田', '中嶋', '濱田', '廣瀬']) AS input;
SELECT input, medanon.normalize_sex(input) AS sex
  FROM unnest(ARRAY['1', '2', 'M', 'f', '男', '女性', '１', '0', '9', '']) AS input;
SELECT medanon.normalize_sex('X');
SELECT medanon.normalize_insurer_number('０６１２３４５６') AS full_width, medanon.normalize_insurer_number(' 138057 ') AS kokuho,
       medanon.normalize_insured_symbol('東京 12-3') AS symbol, medanon.normalize_insured_number('1-234') AS number;
SELECT medanon.normalize_insurer_number('1234567');

CREATE TABLE staging (institution_code text, local_patient_id text, name_kana text, name_kanji text, birth_date text,
                      sex text, insurer_number text, insured_symbol text, insured_number text, postal_code text,
                      address text, extra_column int);
INSERT INTO staging (institution_code, local_patient_id, name_kana, name_kanji, birth_date, sex, insurer_number, insured_symbol, insured_number) VALUES
  ('H1', '0001', 'ｻﾄｳ ﾀﾛｳ',       '佐藤 太郎', '昭和50年3月1日', 'M',  '06123456',         '123',    '45'),
  ('H2', 'P100', 'さとう　たろう', NULL,        '1975-03-01',    '男', '',                 '',       ''),
  ('H3', 'x-1',  '',              '佐藤　太郎', 'S50.3.1',       '1',  '０６１２３４５６', '１２３', '4-5'),
  ('H1', '0002', 'スズキイチロウ', NULL,        '2010-07-07',    '1',  '06999999',         '5',      '10'),
  ('H1', '0003', 'スズキジロウ',   NULL,        '2010-07-07',    '1',  '06999999',         '5',      '10'),
  ('H2', 'P101', 'ヤマダ ハナコ',  NULL,        '平成31年5月1日', '2', '',                 '',       ''),
  ('H2', 'P102', 'ヤマダ ハナコ',  NULL,        '1980-01-01',    'X',  '',                 '',       '');
-- (Fuzzy candidates depend on the random link key's Bloom-filter positions, so they are left out here.)
SELECT jsonb_pretty(medanon.link_patients('staging') - 'unchanged' - 'candidates') AS first_run;
-- Who is linked with whom (person ids shown as letters in order of first appearance).
SELECT l.institution_code, l.local_patient_id,
       chr(64 + dense_rank() OVER (ORDER BY first_seen)::int) AS person
  FROM medanon.person_link l
  JOIN (SELECT person_id, min(institution_code || local_patient_id) AS first_seen FROM medanon.person_link GROUP BY 1) f USING (person_id)
 ORDER BY 1, 2;
SELECT institution_code, local_patient_id, other_institution_code, other_local_patient_id, reason FROM medanon.link_conflict;
SELECT local_patient_id, reason, record->>'birth_date' AS birth_date FROM medanon.link_quarantine ORDER BY 1;
-- Idempotent: the same batch again changes nothing.
SELECT medanon.link_patients('staging')->>'unchanged' AS unchanged, (SELECT count(*) FROM medanon.person_link) AS links;
SELECT jsonb_pretty(medanon.link_report() - 'batches' - 'candidates_pending' - 'pending') AS report;
-- A staging table that lacks the columns, and one that is not a table.
CREATE TABLE thin (institution_code text, local_patient_id text);
SELECT medanon.link_patients('thin');
SELECT medanon.link_patients('no_such_staging');
DROP TABLE staging, thin;

-- Linkage v2: on one card, the kanji name tells a kana typo (same kanji: one
-- person) from a twin (another kanji name: never merged); without a kanji name
-- the pair waits for review.
CREATE TABLE staging2 (institution_code text, local_patient_id text, name_kana text, name_kanji text, birth_date text,
                       sex text, insurer_number text, insured_symbol text, insured_number text);
INSERT INTO staging2 VALUES
  ('H1', 'k1', 'ハヤシケンイチ', '林 健一', '1980-04-01', '1', '06123456', '77', '8'),
  ('H2', 'k2', 'ﾊﾔｼ ｹﾝｷﾁ',      '林　健一', '1980-04-01', '1', '06123456', '77', '8'),
  ('H3', 'k3', 'ハヤシケンジ',   '林 健二', '1980-04-01', '1', '06123456', '77', '8'),
  ('H4', 'k4', 'ハヤシケンイツ', '',       '1980-04-01', '1', '06123456', '77', '8'),
  -- Neither kana nor kanji name: cannot be told from a twin; for review.
  ('H5', 'k5', '',              '',       '1980-04-01', '1', '06123456', '77', '8');
SELECT medanon.link_patients('staging2') - 'unchanged' - 'candidates' - 'matched_existing' AS linked;
SELECT l.local_patient_id, chr(64 + dense_rank() OVER (ORDER BY f.first_seen)::int) AS person
  FROM medanon.person_link l
  JOIN (SELECT person_id, min(local_patient_id) AS first_seen FROM medanon.person_link GROUP BY 1) f USING (person_id)
 WHERE l.local_patient_id LIKE 'k%' ORDER BY 1;
SELECT local_patient_id, other_local_patient_id, status, reason FROM medanon.link_conflict
 WHERE local_patient_id LIKE 'k%' ORDER BY 1, 2;
-- Review: bad arguments are refused with a hint.
SELECT medanon.review_link('conflicts', 1, 'same', 'dr. sato', 'typo');
SELECT medanon.review_link('conflict', 999999, 'same', 'dr. sato', 'typo');
SELECT medanon.review_link('conflict', 1, 'merge', 'dr. sato', 'typo');
SELECT medanon.review_link('conflict', 1, 'same', ' ', 'typo');
SELECT medanon.review_link('conflict', (SELECT conflict_id FROM medanon.link_conflict WHERE local_patient_id = 'k1' AND other_local_patient_id = 'k3'),
                           'same', 'dr. sato', 'twins after all?');
SELECT medanon.split_person((SELECT person_id FROM medanon.person_link WHERE local_patient_id = 'k1'),
                            ARRAY['H1', 'H2'], ARRAY['k1'], 'dr. ito', 'wrong merge');
SELECT medanon.split_person((SELECT person_id FROM medanon.person_link WHERE local_patient_id = 'k1'),
                            ARRAY['H1', 'H2'], ARRAY['k1', 'k2'], 'dr. ito', 'wrong merge');
SELECT medanon.split_person(-1, ARRAY['H1'], ARRAY['k1'], 'dr. ito', 'wrong merge');
-- The pending conflicts, as link_report lists them for review_link.
SELECT c->>'kind' AS kind, c->'record' AS record, c->'other_record' AS other_record, c->>'reason' AS reason
  FROM jsonb_array_elements(medanon.link_report() -> 'pending' -> 'conflicts') c ORDER BY 2, 3;
-- Leave the link tables as the later files expect them.
DELETE FROM medanon.link_conflict WHERE local_patient_id LIKE 'k%';
DELETE FROM medanon.link_candidates WHERE local_patient_id LIKE 'k%';
DELETE FROM medanon.person_link WHERE local_patient_id LIKE 'k%';
DELETE FROM medanon.link_batch WHERE source LIKE '%staging2';
DROP TABLE staging2;
