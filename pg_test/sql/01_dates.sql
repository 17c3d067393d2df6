-- parse_japanese_date and truncate_date.
SET datestyle = ISO;
SELECT input, medanon.parse_japanese_date(input) AS parsed
  FROM (VALUES ('1975-03-01'), ('1975/3/1'), ('19750301'), ('１９７５－０３－０１'), ('1975年3月1日'),
               ('昭和50年3月1日'), ('昭和５０年３月１日'), ('㍼50年3月1日'), ('S50.3.1'), ('s50.03.01'), ('S500301'),
               ('3500301'), ('平成元年1月8日'), ('H01/03/01'), ('H元.3.1'), ('平成31年4月30日'),
               ('令和元年5月1日'), ('R6.4.1'), ('5060401'), ('大正15年12月24日'), ('昭和元年12月25日'),
               ('昭和64年1月7日'), ('2024-02-29'), ('  2000-01-01　')) AS t(input);
SELECT medanon.parse_japanese_date(NULL) IS NULL AS null_gives_null;
-- Era boundaries are checked.
SELECT medanon.parse_japanese_date('平成31年5月1日');
SELECT medanon.parse_japanese_date('昭和64年1月8日');
SELECT medanon.parse_japanese_date('平成元年1月7日');
SELECT medanon.parse_japanese_date('令和0年5月1日');
-- Days that do not exist, and things that are not dates.
SELECT medanon.parse_japanese_date('S99.13.1');
SELECT medanon.parse_japanese_date('2023-02-29');
SELECT medanon.parse_japanese_date('');
SELECT medanon.parse_japanese_date('75-03-01');
SELECT medanon.parse_japanese_date('6060401');
SELECT medanon.parse_japanese_date(repeat('x', 100));
-- truncate_date
SELECT unit, medanon.truncate_date('2026-11-24', unit) AS truncated
  FROM unnest(ARRAY['day', 'month', 'quarter', 'year', 'Month']) AS unit;
SELECT medanon.truncate_date('infinity', 'year') AS stays_infinite;
SELECT medanon.truncate_date('2026-11-24', 'week');
