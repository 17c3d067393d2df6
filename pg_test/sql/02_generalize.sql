-- generalize_age, generalize_postal_code, prefecture_of, region_of, top_code, bottom_code.
SET datestyle = ISO;
SELECT birth, ref, band, top, medanon.generalize_age(birth, ref, band, top) AS age_band
  FROM (VALUES ('1975-03-01'::date, '2026-04-01'::date, 5, 90),
               ('1975-03-01', '2026-02-28', 5, 90),
               ('2000-02-29', '2001-02-28', 1, 90),
               ('2000-02-29', '2001-03-01', 1, 90),
               ('1936-04-01', '2026-04-01', 5, 90),
               ('1936-04-02', '2026-04-01', 5, 90),
               ('1933-01-01', '2026-04-01', 10, 95),
               ('2026-04-01', '2026-04-01', 5, 90)) AS t(birth, ref, band, top);
-- Defaults: 5-year bands, top code 90.
SELECT medanon.generalize_age('1950-06-15', '2026-04-01') AS default_band;
SELECT medanon.generalize_age('2026-04-02', '2026-04-01');
SELECT medanon.generalize_age('1975-03-01', '2026-04-01', 0);
SELECT medanon.generalize_age('1975-03-01', '2026-04-01', 5, -1);
SELECT medanon.generalize_age('infinity', '2026-04-01');
-- Postal codes
SELECT code, keep, medanon.generalize_postal_code(code, keep) AS generalized
  FROM (VALUES ('〒123-4567', 7), ('〒123-4567', 3), ('1234567', 1), ('１２３－４５６７', 3), ('123 4567', 0)) AS t(code, keep);
SELECT medanon.generalize_postal_code('123-456', 3);
SELECT medanon.generalize_postal_code('1234567', 9);
-- Prefectures and regions
SELECT address, medanon.prefecture_of(address) AS prefecture, medanon.region_of(medanon.prefecture_of(address)) AS region
  FROM (VALUES ('東京都千代田区千代田1-1'), ('〒530-0001 大阪府大阪市北区梅田'), ('横浜市中区山下町'),
               ('京都市左京区'), ('神奈川横浜市'), ('沖縄県那覇市'), ('千代田区丸の内'), ('')) AS t(address);
SELECT count(DISTINCT medanon.region_of(p)) AS regions
  FROM unnest(ARRAY['北海道','青森県','東京都','愛知県','大阪府','広島県','香川県','福岡県','沖縄県']) AS p;
-- Top and bottom coding keep the argument type and are inlined (SQL functions).
SELECT medanon.top_code(612.5, 500) AS top_numeric, medanon.top_code(7, 5) AS top_int,
       medanon.bottom_code(-2.5::float8, 0) AS bottom_float, medanon.top_code(NULL::numeric, 1) AS top_null,
       medanon.top_code(3, NULL) AS no_cap;
EXPLAIN (COSTS OFF, VERBOSE) SELECT medanon.top_code(x, 10) FROM generate_series(1, 3) AS x;
