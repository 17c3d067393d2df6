-- tokenize, shift_date, rotate_key. The key is random, so the output shows
-- properties of tokens and offsets, not their values.
SELECT length(medanon.tokenize('12345', 'patient')) AS token_length,
       medanon.tokenize('12345', 'patient') ~ '^[0-9a-f]{64}$' AS lowercase_hex,
       medanon.tokenize('12345', 'patient') = medanon.tokenize('12345', 'patient') AS deterministic,
       medanon.tokenize('12345', 'patient') <> medanon.tokenize('12345', 'visit') AS domains_differ,
       medanon.tokenize(NULL, 'patient') IS NULL AS null_gives_null;
SELECT medanon.tokenize('12345', '');
-- One offset per person and domain, never 0, whole weeks within ±728 days (the
-- default, 104 weeks), so every weekday is kept.
SELECT count(DISTINCT medanon.shift_date(d, 'p-1', 'c') - d) AS offsets_for_one_person,
       bool_and(medanon.shift_date(d, 'p-1', 'c') <> d) AS never_unshifted
  FROM generate_series('2020-01-01'::date, '2020-12-31', '1 day') AS g(d);
SELECT count(*) FILTER (WHERE o = 0) AS zero_offsets, count(*) FILTER (WHERE abs(o) > 728) AS beyond_728,
       count(*) FILTER (WHERE o % 7 <> 0) AS not_whole_weeks, count(DISTINCT sign(o)) AS both_signs
  FROM (SELECT medanon.date_offset('p-' || g, 'c') AS o FROM generate_series(1, 5000) g) s;
SELECT count(*) FILTER (WHERE extract(isodow FROM medanon.shift_date(d, 'p-' || g, 'c')) <> extract(isodow FROM d)) AS weekday_moved
  FROM generate_series(1, 200) g, generate_series('2026-04-01'::date, '2026-04-07', '1 day') AS s(t), CAST(t AS date) AS d;
-- Timestamps move by whole 24-hour days, by the same offset as dates.
SELECT medanon.shift_date('2026-04-01 10:30'::timestamp, 'p-1', 'c')
     - medanon.date_offset('p-1', 'c') * interval '1 day' = '2026-04-01 10:30'::timestamp AS timestamp_same_offset,
       medanon.shift_date('2026-04-01 10:30+09'::timestamptz, 'p-1', 'c')
     - medanon.date_offset('p-1', 'c') * interval '24 hours' = '2026-04-01 10:30+09'::timestamptz AS timestamptz_same_offset;
SELECT medanon.shift_date('2026-04-01'::date, '', 'c');
-- The setting is superuser-only and bounded.
SELECT name, setting, context FROM pg_settings WHERE name = 'medanon.max_shift_days';
SET medanon.max_shift_days = 0;
SET medanon.max_shift_days = 7;
SELECT max(abs(medanon.date_offset('p-' || g, 'c'))) <= 7 AS within_7 FROM generate_series(1, 1000) g;
RESET medanon.max_shift_days;
SET medanon.no_such_setting = 1;
-- Rotation makes a new active key and changes tokens.
CREATE TEMP TABLE before AS SELECT medanon.tokenize('12345', 'patient') AS t, medanon.active_key_id() AS id;
SELECT medanon.rotate_key() > (SELECT id FROM before) AS new_id;
SELECT (SELECT t FROM before) <> medanon.tokenize('12345', 'patient') AS token_changed,
       (SELECT count(*) FROM medanon.keyring WHERE active) AS active_keys,
       (SELECT count(*) FROM medanon.keyring WHERE purpose = 'pseudonym') AS pseudonym_keys,
       (SELECT count(*) FROM medanon.keyring WHERE purpose = 'link') AS link_keys;
-- The rotation is in the provision ledger; the keys of the install are not.
SELECT event, detail->>'purpose' AS purpose, (detail->>'key_id')::int = medanon.active_key_id() AS names_the_new_key
  FROM medanon.provision_ledger;
