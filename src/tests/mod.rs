//! `#[pg_test]`s: every SQL function called through SQL in a real backend, with
//! good cases, edge cases and bad inputs with their SQLSTATE. Table-driven: each
//! test is a slice of (SQL expression, expected text or SQLSTATE).

use pgrx::prelude::*;

/// What a case expects: the value as text (NULL as `None`), or an error's SQLSTATE.
#[derive(Debug)]
pub enum Expect {
    Value(Option<&'static str>),
    Error(&'static str),
}
pub use Expect::{Error as Fails, Value as Val};

/// A plpgsql helper that evaluates an expression and returns its text, or the
/// SQLSTATE of the error it raised, prefixed with `ERROR `.
fn install_probe() {
    Spi::run(
        "CREATE OR REPLACE FUNCTION pg_temp.probe(expr text) RETURNS text LANGUAGE plpgsql AS $$
         DECLARE result text;
         BEGIN
             EXECUTE 'SELECT (' || expr || ')::text' INTO result;
             RETURN coalesce(result, '<NULL>');
         EXCEPTION WHEN OTHERS THEN
             RETURN 'ERROR ' || SQLSTATE;
         END $$",
    )
    .expect("probe installs");
}

pub fn check(cases: &[(&str, Expect)]) {
    install_probe();
    let mut failures = Vec::new();
    for (expr, expect) in cases {
        let got = Spi::get_one_with_args::<String>("SELECT pg_temp.probe($1)", &[(*expr).into()])
            .expect("probe runs")
            .expect("probe returns text");
        let want = match expect {
            Expect::Value(Some(v)) => v.to_string(),
            Expect::Value(None) => "<NULL>".to_string(),
            Expect::Error(code) => format!("ERROR {code}"),
        };
        if got != want {
            failures.push(format!("{expr}: got {got}, want {want}"));
        }
    }
    assert!(failures.is_empty(), "{} case(s) failed:\n{}", failures.len(), failures.join("\n"));
}

#[pg_schema]
mod tests {
    use super::{check, Fails, Val};
    use pgrx::prelude::*;

    // Linkage and risk tests live in their own files; the runner calls every test in
    // this schema.
    include!("link.rs");
    include!("risk.rs");

    #[pg_test]
    fn parse_japanese_date_cases() {
        check(&[
            ("medanon.parse_japanese_date('1975-03-01')", Val(Some("1975-03-01"))),
            ("medanon.parse_japanese_date('1975/3/1')", Val(Some("1975-03-01"))),
            ("medanon.parse_japanese_date('19750301')", Val(Some("1975-03-01"))),
            ("medanon.parse_japanese_date('１９７５－０３－０１')", Val(Some("1975-03-01"))),
            ("medanon.parse_japanese_date('昭和50年3月1日')", Val(Some("1975-03-01"))),
            ("medanon.parse_japanese_date('平成元年1月8日')", Val(Some("1989-01-08"))),
            ("medanon.parse_japanese_date('令和6年4月1日')", Val(Some("2024-04-01"))),
            ("medanon.parse_japanese_date('S50.3.1')", Val(Some("1975-03-01"))),
            ("medanon.parse_japanese_date('H01/03/01')", Val(Some("1989-03-01"))),
            ("medanon.parse_japanese_date('R6.4.1')", Val(Some("2024-04-01"))),
            ("medanon.parse_japanese_date('3500301')", Val(Some("1975-03-01"))),
            ("medanon.parse_japanese_date('平成31年4月30日')", Val(Some("2019-04-30"))),
            ("medanon.parse_japanese_date('令和元年5月1日')", Val(Some("2019-05-01"))),
            ("medanon.parse_japanese_date('2024-02-29')", Val(Some("2024-02-29"))),
            ("medanon.parse_japanese_date(NULL)", Val(None)),
            ("medanon.parse_japanese_date('平成31年5月1日')", Fails("22007")),
            ("medanon.parse_japanese_date('昭和64年1月8日')", Fails("22007")),
            ("medanon.parse_japanese_date('S99.13.1')", Fails("22007")),
            ("medanon.parse_japanese_date('2023-02-29')", Fails("22007")),
            ("medanon.parse_japanese_date('')", Fails("22007")),
            ("medanon.parse_japanese_date('   ')", Fails("22007")),
            ("medanon.parse_japanese_date('tomorrow')", Fails("22007")),
            ("medanon.parse_japanese_date(repeat('9', 1000000))", Fails("22007")),
            ("medanon.parse_japanese_date('😀')", Fails("22007")),
        ]);
    }

    #[pg_test]
    fn parse_error_has_a_hint() {
        let hint = Spi::get_one::<String>(
            "DO $$ BEGIN PERFORM medanon.parse_japanese_date('平成31年5月1日');
               EXCEPTION WHEN invalid_datetime_format THEN
                 DECLARE h text; BEGIN GET STACKED DIAGNOSTICS h = PG_EXCEPTION_HINT;
                 PERFORM set_config('medanon_test.hint', h, true); END;
             END $$; SELECT current_setting('medanon_test.hint')",
        );
        assert_eq!(hint.unwrap().as_deref(), Some("this day is written 令和元年5月1日"));
    }

    #[pg_test]
    fn generalize_age_cases() {
        check(&[
            ("medanon.generalize_age('1975-03-01', '2026-04-01')", Val(Some("[50,55)"))),
            ("medanon.generalize_age('1975-03-01', '2026-02-28')", Val(Some("[50,55)"))),
            ("medanon.generalize_age('1976-04-02', '2026-04-01')", Val(Some("[45,50)"))),
            ("medanon.generalize_age('2000-02-29', '2001-02-28', 1)", Val(Some("[0,1)"))),
            ("medanon.generalize_age('2000-02-29', '2001-03-01', 1)", Val(Some("[1,2)"))),
            ("medanon.generalize_age('1936-04-01', '2026-04-01')", Val(Some("[90,)"))),
            ("medanon.generalize_age('1900-01-01', '2026-04-01')", Val(Some("[90,)"))),
            ("medanon.generalize_age('1936-04-02', '2026-04-01')", Val(Some("[85,90)"))),
            ("medanon.generalize_age('1950-01-01', '2026-04-01', 10, 95)", Val(Some("[70,80)"))),
            ("medanon.generalize_age('1933-01-01', '2026-04-01', 10, 95)", Val(Some("[90,95)"))),
            ("medanon.generalize_age('2026-04-01', '2026-04-01')", Val(Some("[0,5)"))),
            ("medanon.generalize_age(NULL, '2026-04-01')", Val(None)),
            ("medanon.generalize_age('2026-04-02', '2026-04-01')", Fails("22023")),
            ("medanon.generalize_age('1975-03-01', '2026-04-01', 0)", Fails("22023")),
            ("medanon.generalize_age('1975-03-01', '2026-04-01', -5)", Fails("22023")),
            ("medanon.generalize_age('1975-03-01', '2026-04-01', 5, 0)", Fails("22023")),
            ("medanon.generalize_age('infinity', '2026-04-01')", Fails("22008")),
            ("medanon.generalize_age('1975-03-01', '-infinity')", Fails("22008")),
        ]);
    }

    #[pg_test]
    fn generalize_postal_code_cases() {
        check(&[
            ("medanon.generalize_postal_code('〒123-4567', 3)", Val(Some("123-****"))),
            ("medanon.generalize_postal_code('1234567', 7)", Val(Some("123-4567"))),
            ("medanon.generalize_postal_code('１２３－４５６７', 1)", Val(Some("1**-****"))),
            ("medanon.generalize_postal_code('1234567', 0)", Val(Some("***-****"))),
            ("medanon.generalize_postal_code(NULL, 3)", Val(None)),
            ("medanon.generalize_postal_code('123-456', 3)", Fails("22P02")),
            ("medanon.generalize_postal_code('', 3)", Fails("22P02")),
            ("medanon.generalize_postal_code('12345678', 3)", Fails("22P02")),
            ("medanon.generalize_postal_code('123-456a', 3)", Fails("22P02")),
            ("medanon.generalize_postal_code('1234567', 8)", Fails("22023")),
            ("medanon.generalize_postal_code('1234567', -1)", Fails("22023")),
        ]);
    }

    /// postal_prefix is the lenient form for contract views: what generalize_postal_code
    /// refuses as a value gives NULL, but a bad digit count is still an error.
    #[pg_test]
    fn postal_prefix_cases() {
        check(&[
            ("medanon.postal_prefix('〒123-4567', 3)", Val(Some("123-****"))),
            ("medanon.postal_prefix('１２３－４５６７', 3)", Val(Some("123-****"))),
            ("medanon.postal_prefix('1234567', 0)", Val(Some("***-****"))),
            ("medanon.postal_prefix(NULL, 3)", Val(None)),
            ("medanon.postal_prefix('123-456', 3)", Val(None)),
            ("medanon.postal_prefix('', 3)", Val(None)),
            ("medanon.postal_prefix('unknown', 3)", Val(None)),
            ("medanon.postal_prefix('1234567', 8)", Fails("22023")),
            ("medanon.postal_prefix('garbage', -1)", Fails("22023")),
        ]);
    }

    #[pg_test]
    fn prefecture_and_region_cases() {
        check(&[
            ("medanon.prefecture_of('東京都千代田区千代田1-1')", Val(Some("東京都"))),
            ("medanon.prefecture_of('〒100-0001 東京都千代田区')", Val(Some("東京都"))),
            ("medanon.prefecture_of('横浜市中区')", Val(Some("神奈川県"))),
            ("medanon.prefecture_of('京都市左京区')", Val(Some("京都府"))),
            ("medanon.prefecture_of('北海道札幌市')", Val(Some("北海道"))),
            ("medanon.prefecture_of('千代田区丸の内')", Val(None)),
            ("medanon.prefecture_of('')", Val(None)),
            ("medanon.prefecture_of(NULL)", Val(None)),
            ("medanon.municipality_of('東京都千代田区千代田1-1')", Val(Some("東京都千代田区"))),
            ("medanon.municipality_of('大阪市北区梅田')", Val(Some("大阪府大阪市北区"))),
            ("medanon.municipality_of('大阪市北区梅田', 'city')", Val(Some("大阪府大阪市"))),
            ("medanon.municipality_of('〒437-0604')", Val(Some("静岡県浜松市天竜区"))),
            ("medanon.municipality_of('府中市宮西町')", Val(None)),
            ("medanon.municipality_of('静岡県周智郡春野町')", Val(None)),
            ("medanon.municipality_of(NULL)", Val(None)),
            ("medanon.municipality_of('大阪市北区', 'town')", Fails("22023")),
            ("medanon.region_of('大阪府')", Val(Some("近畿地方"))),
            ("medanon.region_of('Narnia')", Val(None)),
        ]);
    }

    #[pg_test]
    fn top_bottom_and_truncate_cases() {
        check(&[
            ("medanon.top_code(612.5, 500)", Val(Some("500"))),
            ("medanon.top_code(499.9, 500)", Val(Some("499.9"))),
            ("medanon.top_code(NULL::numeric, 500)", Val(None)),
            ("medanon.top_code(612.5, NULL)", Val(Some("612.5"))),
            ("medanon.top_code(7, 5)", Val(Some("5"))),
            ("pg_typeof(medanon.top_code(7, 5))", Val(Some("integer"))),
            ("pg_typeof(medanon.top_code(7::bigint, 5))", Val(Some("bigint"))),
            ("pg_typeof(medanon.top_code(7.5::float8, 5))", Val(Some("double precision"))),
            ("medanon.bottom_code(-3.0, 0)", Val(Some("0"))),
            ("medanon.bottom_code(3, 0)", Val(Some("3"))),
            ("medanon.bottom_code(NULL::int, 0)", Val(None)),
            ("medanon.truncate_date('2026-11-24', 'month')", Val(Some("2026-11-01"))),
            ("medanon.truncate_date('2026-11-24', 'quarter')", Val(Some("2026-10-01"))),
            ("medanon.truncate_date('2026-11-24', 'year')", Val(Some("2026-01-01"))),
            ("medanon.truncate_date('2026-11-24', 'day')", Val(Some("2026-11-24"))),
            ("medanon.truncate_date('2024-02-29', 'QUARTER')", Val(Some("2024-01-01"))),
            ("medanon.truncate_date('infinity', 'month')", Val(Some("infinity"))),
            ("medanon.truncate_date(NULL, 'month')", Val(None)),
            ("medanon.truncate_date('2026-11-24', 'week')", Fails("22023")),
            ("medanon.truncate_date('2026-11-24', '')", Fails("22023")),
        ]);
    }

    #[pg_test]
    fn tokenize_cases() {
        check(&[
            ("length(medanon.tokenize('12345', 'patient'))", Val(Some("64"))),
            ("medanon.tokenize('12345', 'patient') ~ '^[0-9a-f]{64}$'", Val(Some("true"))),
            ("medanon.tokenize('12345', 'patient') = medanon.tokenize('12345', 'patient')", Val(Some("true"))),
            ("medanon.tokenize('12345', 'patient') = medanon.tokenize('12345', 'visit')", Val(Some("false"))),
            ("medanon.tokenize('12345', 'patient') = medanon.tokenize('12346', 'patient')", Val(Some("false"))),
            ("length(medanon.tokenize('', 'patient'))", Val(Some("64"))),
            ("length(medanon.tokenize(repeat('あ', 300000), 'patient'))", Val(Some("64"))),
            ("medanon.tokenize(NULL, 'patient')", Val(None)),
            ("medanon.tokenize('12345', NULL)", Val(None)),
            ("medanon.tokenize('12345', '')", Fails("22023")),
        ]);
    }

    /// tokenize reads its arguments in place: stored values of every kind (short,
    /// plain, compressed, out of line) must give the same token as the same value
    /// computed in memory, and the domain is read the same way.
    #[pg_test]
    fn tokenize_reads_every_storage_form_alike() {
        Spi::run(
            "CREATE TEMP TABLE stored (kind text, v text, d text);
             CREATE TEMP TABLE stored_external (kind text, v text, d text);
             ALTER TABLE stored_external ALTER COLUMN v SET STORAGE EXTERNAL, ALTER COLUMN d SET STORAGE EXTERNAL;
             INSERT INTO stored VALUES ('short', 'p-1', 'patient'),
                                       ('plain', repeat('x', 200), 'patient'),
                                       ('compressed', repeat('abc', 100000), repeat('domain', 10000));
             INSERT INTO stored_external VALUES ('external', repeat('ﾃｽﾄ', 50000), repeat('d', 5000));",
        )
        .unwrap();
        let compressed = Spi::get_one::<bool>(
            "SELECT pg_column_compression(v) IS NOT NULL FROM stored WHERE kind = 'compressed'",
        )
        .unwrap();
        assert_eq!(compressed, Some(true), "the test value should be stored compressed");
        let mismatched = Spi::get_one::<i64>(
            "SELECT count(*) FROM (SELECT kind, v, d FROM stored UNION ALL SELECT kind, v, d FROM stored_external) s
              WHERE medanon.tokenize(v, d) IS DISTINCT FROM medanon.tokenize(v || '', d || '')",
        )
        .unwrap();
        assert_eq!(mismatched, Some(0));
        let rows = Spi::get_one::<i64>(
            "SELECT count(DISTINCT medanon.tokenize(v, d)) FROM (SELECT v, d FROM stored UNION ALL SELECT v, d FROM stored_external) s",
        )
        .unwrap();
        assert_eq!(rows, Some(4));
    }

    #[pg_test]
    fn rotation_changes_tokens_and_is_seen_at_once() {
        let before = Spi::get_one::<String>("SELECT medanon.tokenize('12345', 'patient')").unwrap().unwrap();
        let id_before = Spi::get_one::<i32>("SELECT medanon.active_key_id()").unwrap().unwrap();
        let new_id = Spi::get_one::<i32>("SELECT medanon.rotate_key()").unwrap().unwrap();
        assert!(new_id > id_before);
        // The same backend, the same transaction: the cache was invalidated.
        assert_eq!(Spi::get_one::<i32>("SELECT medanon.active_key_id()").unwrap(), Some(new_id));
        let after = Spi::get_one::<String>("SELECT medanon.tokenize('12345', 'patient')").unwrap().unwrap();
        assert_ne!(before, after);
        let active = Spi::get_one::<i64>("SELECT count(*) FROM medanon.keyring WHERE active AND purpose = 'pseudonym'").unwrap();
        assert_eq!(active, Some(1));
        let len = Spi::get_one::<i32>(
            "SELECT octet_length(material) FROM medanon.keyring WHERE active AND purpose = 'pseudonym'",
        )
        .unwrap();
        assert_eq!(len, Some(32));
        // The link key is never rotated: stored link keys keep matching.
        let link_keys = Spi::get_two::<i64, String>(
            "SELECT count(*), min(origin) FROM medanon.keyring WHERE purpose = 'link'",
        )
        .unwrap();
        assert_eq!(link_keys, (Some(1), Some("install".to_string())));
    }

    #[pg_test]
    fn shift_date_cases() {
        check(&[
            ("medanon.shift_date('2026-04-01'::date, 'p1', 'c1') <> '2026-04-01'::date", Val(Some("true"))),
            (
                "medanon.shift_date('2026-04-01'::date, 'p1', 'c1') - '2026-04-01'::date \
                 = medanon.shift_date('2020-01-15'::date, 'p1', 'c1') - '2020-01-15'::date",
                Val(Some("true")),
            ),
            (
                "medanon.shift_date('2026-04-01'::date, 'p1', 'c1') - '2026-04-01'::date = medanon.date_offset('p1', 'c1')",
                Val(Some("true")),
            ),
            (
                "medanon.shift_date('2026-04-01 10:30'::timestamp, 'p1', 'c1') \
                 - (medanon.date_offset('p1', 'c1') * interval '1 day') = '2026-04-01 10:30'::timestamp",
                Val(Some("true")),
            ),
            (
                "medanon.shift_date('2026-04-01 10:30+09'::timestamptz, 'p1', 'c1') \
                 - (medanon.date_offset('p1', 'c1') * interval '24 hours') = '2026-04-01 10:30+09'::timestamptz",
                Val(Some("true")),
            ),
            // Whole weeks: the weekday is kept, so it tells nothing about the offset.
            ("medanon.date_offset('p1', 'c1') % 7 = 0", Val(Some("true"))),
            (
                "extract(isodow FROM medanon.shift_date('2026-04-01'::date, 'p1', 'c1')) \
                 = extract(isodow FROM '2026-04-01'::date)",
                Val(Some("true")),
            ),
            ("medanon.shift_date('infinity'::date, 'p1', 'c1')", Val(Some("infinity"))),
            ("medanon.shift_date(NULL::date, 'p1', 'c1')", Val(None)),
            ("medanon.shift_date('2026-04-01'::date, NULL, 'c1')", Val(None)),
            ("medanon.shift_date('2026-04-01'::date, '', 'c1')", Fails("22023")),
            ("medanon.shift_date('2026-04-01'::date, 'p1', '')", Fails("22023")),
            // Shifting past either end of the range is an error. Pick a person who
            // moves forward and one who moves back, so both ends are always tested.
            (
                "medanon.shift_date('294276-12-31 00:00'::timestamp, (SELECT 'p' || i FROM generate_series(1, 200) i \
                 WHERE medanon.date_offset('p' || i, 'c1') > 0 LIMIT 1), 'c1')",
                Fails("22008"),
            ),
            (
                "medanon.shift_date('4714-11-24 00:00 BC'::timestamp, (SELECT 'p' || i FROM generate_series(1, 200) i \
                 WHERE medanon.date_offset('p' || i, 'c1') < 0 LIMIT 1), 'c1')",
                Fails("22008"),
            ),
            (
                "medanon.shift_date('5874897-12-31'::date, (SELECT 'p' || i FROM generate_series(1, 200) i \
                 WHERE medanon.date_offset('p' || i, 'c1') > 0 LIMIT 1), 'c1')",
                Fails("22008"),
            ),
            (
                "medanon.shift_date('4714-11-24 BC'::date, (SELECT 'p' || i FROM generate_series(1, 200) i \
                 WHERE medanon.date_offset('p' || i, 'c1') < 0 LIMIT 1), 'c1')",
                Fails("22008"),
            ),
        ]);
    }

    /// DESIGN.md and issue 14: across many persons, one offset per person, whole
    /// weeks (every weekday kept), never 0, spread uniformly over ±104 weeks.
    #[pg_test]
    fn shift_date_offsets_are_per_person_nonzero_whole_weeks_and_spread() {
        let row = Spi::get_three::<i64, i64, i64>(
            "WITH persons AS (SELECT 'person-' || g AS person FROM generate_series(1, 10000) g),
                  shifted AS (
                    SELECT person, d::date AS d, medanon.shift_date(d::date, person, 'contract-x') AS s,
                           medanon.shift_date(d::date, person, 'contract-x') - d::date AS offset_days
                      FROM persons, generate_series('2020-01-01'::date, '2020-01-05'::date, '1 day') d)
             SELECT (SELECT count(*) FROM (SELECT person FROM shifted GROUP BY person
                                            HAVING count(DISTINCT offset_days) <> 1) s),
                    (SELECT count(*) FROM shifted WHERE offset_days = 0 OR abs(offset_days) > 728
                                                     OR offset_days % 7 <> 0 OR extract(isodow FROM s) <> extract(isodow FROM d)),
                    (SELECT count(DISTINCT offset_days) FROM shifted)",
        )
        .unwrap();
        assert_eq!(row.0, Some(0), "persons with more than one offset");
        assert_eq!(row.1, Some(0), "offsets that are 0, beyond 728 days, not whole weeks, or move the weekday");
        // 10,000 draws over 208 values (about 48 each): a uniform spread sees every one.
        assert_eq!(row.2, Some(208), "distinct offsets");
        let (lo, hi, mean) = Spi::get_three::<i32, i32, f64>(
            "SELECT min(o), max(o), avg(o)::float8 FROM (SELECT medanon.date_offset('p' || g, 'c') o
               FROM generate_series(1, 10000) g) s",
        )
        .unwrap();
        assert_eq!((lo, hi), (Some(-728), Some(728)), "range");
        // Mean of a uniform over ±104 weeks has standard error ≈ 4.2 days at n = 10,000.
        assert!(mean.unwrap().abs() < 20.0, "mean {mean:?}");
    }

    #[pg_test]
    fn max_shift_days_is_respected_and_superuser_only() {
        Spi::run("SET LOCAL medanon.max_shift_days = 20").unwrap();
        // 20 days hold two whole weeks: offsets ±7 and ±14, all four of them.
        let (bad, kinds) = Spi::get_two::<i64, i64>(
            "SELECT count(*) FILTER (WHERE abs(o) NOT IN (7, 14)), count(DISTINCT o)
               FROM (SELECT medanon.date_offset('p' || g, 'c') o FROM generate_series(1, 2000) g) s",
        )
        .unwrap();
        assert_eq!((bad, kinds), (Some(0), Some(4)));
        // _shift_candidates reads the same setting by default: no date leaves the four.
        let n = Spi::get_one::<i32>("SELECT medanon._shift_candidates('{}'::date[], 7, '2024-01-01', '2024-12-31')").unwrap();
        assert_eq!(n, Some(4));
        let context = Spi::get_one::<String>("SELECT context FROM pg_settings WHERE name = 'medanon.max_shift_days'").unwrap();
        assert_eq!(context.as_deref(), Some("superuser"));
        super::check(&[
            ("set_config('medanon.max_shift_days', '0', true)", Fails("22023")),
            // Less than a week cannot hold a whole-week offset.
            ("set_config('medanon.max_shift_days', '6', true)", Fails("22023")),
            ("set_config('medanon.max_shift_days', '3651', true)", Fails("22023")),
        ]);
    }

    /// The candidate count publish uses against the calendar attack (issue 14).
    /// The count itself is property-tested against the attack in medanon-core
    /// (shift_attack.rs); these cases pin the SQL glue.
    #[pg_test]
    fn shift_candidates_cases() {
        check(&[
            // No date: every whole week of ±104 but 0.
            ("medanon._shift_candidates('{}'::date[], 14, '2024-01-01', '2024-12-31')", Val(Some("208"))),
            ("medanon._shift_candidates('{}'::date[], 14, '2024-01-01', '2024-12-31', 70)", Val(Some("20"))),
            // A Tuesday in a window of one week: only the truth is left.
            ("medanon._shift_candidates(ARRAY['2024-06-04']::date[], 7, '2024-06-03', '2024-06-09')", Val(Some("1"))),
            // Two weeks: the Tuesday after, 06-11, too; 05-28 is outside.
            ("medanon._shift_candidates(ARRAY['2024-06-04']::date[], 14, '2024-06-03', '2024-06-16')", Val(Some("2"))),
            // ... unless that candidate is offset 0, which is never drawn.
            ("medanon._shift_candidates(ARRAY['2024-06-04']::date[], 7, '2024-06-03', '2024-06-16')", Val(Some("1"))),
            // 2024-05-07 (a Tuesday) and the Tuesday a week earlier, 04-30, are open;
            // the window ends on 05-12: only one more week back is in it.
            ("medanon._shift_candidates(ARRAY['2024-05-07']::date[], 7, '2024-04-29', '2024-05-12')", Val(Some("2"))),
            // 2024-05-06 was a substitute holiday (振替休日): the Monday before it,
            // 04-29 (昭和の日), too; 05-13 is open. The truth is a Monday, 05-13:
            // 05-06 and 04-29 are ruled out.
            ("medanon._shift_candidates(ARRAY['2024-05-13']::date[], 7, '2024-04-29', '2024-05-19')", Val(Some("1"))),
            // NULL and infinite elements show no day and are skipped.
            ("medanon._shift_candidates(ARRAY[NULL, 'infinity', '2024-06-04']::date[], 7, '2024-06-03', '2024-06-09')", Val(Some("1"))),
            // A daily offset (from a person map older than whole weeks) is counted on
            // the daily lattice: one weekday in a week of one date leaves 5 days, the
            // truth included, and 0 is never an offset.
            ("medanon._shift_candidates(ARRAY['2024-06-05']::date[], 3, '2024-06-03', '2024-06-09')", Val(Some("5"))),
            ("medanon._shift_candidates(NULL, 7, '2024-06-03', '2024-06-09')", Val(None)),
            ("medanon._shift_candidates('{}'::date[], NULL, '2024-06-03', '2024-06-09')", Val(None)),
            ("medanon._shift_candidates('{}'::date[], 7, '2024-06-09', '2024-06-03')", Fails("22023")),
            // A window reaching outside the holiday calendar (1970 to 2050) is clipped to
            // it: a person's birth dates may lie before 1970. No date: the range alone
            // (2 x 104 weeks). A window the calendar does not cover at all narrows nothing.
            ("medanon._shift_candidates('{}'::date[], 7, '1960-01-01', '2024-06-03')", Val(Some("208"))),
            ("medanon._shift_candidates(ARRAY['1960-05-13']::date[], 7, '1950-01-01', '1960-12-31')", Val(Some("2147483647"))),
            ("medanon._shift_candidates('{}'::date[], 7, '2024-01-01', 'infinity')", Fails("22023")),
            ("medanon._shift_candidates('{}'::date[], 7, '2024-01-01', '2024-12-31', 6)", Fails("22023")),
        ]);
        // Internal: nobody but the owner may call it.
        let public = Spi::get_one::<bool>(
            "SELECT has_function_privilege('public', 'medanon._shift_candidates(date[], integer, date, date, integer)', 'EXECUTE')
                 OR has_function_privilege('medanon_operator', 'medanon._shift_candidates(date[], integer, date, date, integer)', 'EXECUTE')",
        )
        .unwrap();
        assert_eq!(public, Some(false));
    }

    #[pg_test]
    fn k_anonymity_cases() {
        Spi::run(
            "CREATE TABLE pg_temp.\"Visits\" (\"Age band\" text, sex text, person int);
             INSERT INTO pg_temp.\"Visits\" VALUES
               ('40-44','F',1),('40-44','F',1),('40-44','F',2),
               ('40-44','M',3),('40-44','M',4),('40-44','M',5),('45-49','F',6),('45-49','F',6);
             CREATE TABLE pg_temp.empty_t (a int, p int);",
        )
        .unwrap();
        check(&[
            ("medanon.k_anonymity('pg_temp.\"Visits\"', ARRAY['Age band','sex'])", Val(Some("2"))),
            ("medanon.k_anonymity('pg_temp.\"Visits\"', ARRAY['Age band','sex'], 'person')", Val(Some("1"))),
            ("medanon.k_anonymity('pg_temp.\"Visits\"', ARRAY['Age band'], 'person')", Val(Some("1"))),
            ("medanon.k_anonymity('pg_temp.\"Visits\"', ARRAY['sex'], 'person')", Val(Some("3"))),
            ("medanon.k_anonymity('pg_temp.empty_t', ARRAY['a'], 'p')", Val(None)),
            ("medanon.k_anonymity(NULL, ARRAY['a'])", Val(None)),
            ("medanon.k_anonymity('pg_temp.\"Visits\"', ARRAY['age band'])", Fails("42703")),
            ("medanon.k_anonymity('pg_temp.\"Visits\"', ARRAY['sex'], 'nobody')", Fails("42703")),
            ("medanon.k_anonymity('pg_temp.\"Visits\"', ARRAY['sex; DROP TABLE x'])", Fails("42703")),
            ("medanon.k_anonymity('pg_temp.\"Visits\"', ARRAY[]::text[])", Fails("22023")),
            ("medanon.k_anonymity('pg_temp.\"Visits\"', ARRAY['sex', NULL])", Fails("22004")),
            ("medanon.k_anonymity('pg_temp.\"Visits\"', ARRAY['sex', 'sex'])", Fails("42701")),
            ("medanon.k_anonymity('no_such_table', ARRAY['sex'])", Fails("42P01")),
        ]);
    }

    #[pg_test]
    fn volatility_and_parallel_markings() {
        let wrong = Spi::get_one::<String>(
            "SELECT string_agg(p.proname || ':' || p.provolatile::text || p.proparallel::text, ', ' ORDER BY p.proname)
               FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
              WHERE n.nspname = 'medanon' AND NOT (
                    (p.proname IN ('tokenize','shift_date','date_offset','active_key_id','key_check_values')
                        AND p.provolatile = 's' AND p.proparallel = 's')
                 OR (p.proname IN ('k_anonymity','k_report','l_diversity','risk_profile','suggest_generalization')
                        AND p.provolatile = 's' AND p.proparallel = 'r')
                 OR (p.proname IN ('_link_problem','_link_id1','_link_id2','_link_block','_link_clk','link_report',
                                   '_link_kanji','_link_edits','_link_digest')
                        AND p.provolatile = 's' AND p.proparallel = 's')
                 OR (p.proname IN ('normalize_kana','normalize_kanji_name','normalize_sex','normalize_insurer_number',
                                   'normalize_insured_symbol','normalize_insured_number')
                        AND p.provolatile = 'i' AND p.proparallel = 's')
                 OR (p.proname IN ('link_patients','create_contract','_create_contract','review_link','split_person',
                                   '_link_review_append_only')
                        AND p.provolatile = 'v' AND p.proparallel = 'u')
                 OR (p.proname = '_suggest_generalization' AND p.provolatile = 's' AND p.proparallel = 'r')
                 -- Reads a sample through the caller's rights; the first rows a scan meets may differ between scans.
                 OR (p.proname = 'suggest_classes' AND p.provolatile = 'v' AND p.proparallel = 'r')
                 OR (p.proname IN ('publish_contract','refresh_contract','release_snapshot','revoke_contract',
                                   'expire_contracts','_contract_withhold','_contract_close','_contract_on_opt_out',
                                   '_contract_on_link','_contract_lock','safe_counts','record_export')
                        AND p.provolatile = 'v' AND p.proparallel = 'u')
                 OR (p.proname IN ('_contract_rare_resolve','_contract_value_fall') AND p.provolatile = 'v' AND p.proparallel = 'u')
                 OR (p.proname IN ('_hierarchy_parent','rare_values') AND p.provolatile = 's' AND p.proparallel = 's')
                 OR (p.proname IN ('icd10_category','icd10_chapter','_icd10_parent') AND p.provolatile = 'i' AND p.proparallel = 's')
                 OR (p.proname IN ('contract_report','_contract_schemas','verify_ledger','contract_lineage')
                        AND p.provolatile = 's' AND p.proparallel = 's')
                 OR (p.proname = '_contract_person_states' AND p.provolatile = 'i' AND p.proparallel = 's')
                 OR (p.proname = '_shift_candidates' AND p.provolatile = 'i' AND p.proparallel = 's')
                 -- Random bits from the operating system: a new value per call, safe in a parallel worker.
                 OR (p.proname = '_new_token' AND p.provolatile = 'v' AND p.proparallel = 's')
                 OR (p.proname = '_ledger_chain' AND p.provolatile = 'v' AND p.proparallel = 'u')
                 OR (p.proname = '_ledger_refusal' AND p.provolatile = 'i' AND p.proparallel = 's')
                 OR (p.proname = 'contract_today' AND p.provolatile = 's' AND p.proparallel = 'r')
                 OR (p.proname IN ('reads_audited','_pgaudit_loaded','_audit_setting_ok','_require_pg_cron')
                        AND p.provolatile = 's' AND p.proparallel = 's')
                 OR (p.proname = '_expiry_job_name' AND p.provolatile = 'i' AND p.proparallel = 's')
                 -- DICOM (issue 20): keyed or reading the map, and a keyless parse.
                 OR (p.proname IN ('deidentify_dicom','_dicom_object') AND p.provolatile = 's' AND p.proparallel = 's')
                 OR (p.proname IN ('_dicom_study_date', '_dicom_quasi_identifiers') AND p.provolatile = 'i' AND p.proparallel = 's')
                 OR (p.proname IN ('_audit_contract_reads','schedule_expiry','unschedule_expiry')
                        AND p.provolatile = 'v' AND p.proparallel = 'u')
                 OR (p.proname IN ('register_source','classify','register_certified_user','track_changes','untrack_changes',
                                   '_source_tracking_set','_source_changes','_consent_changes')
                        AND p.provolatile = 'v' AND p.proparallel = 'u')
                 OR (p.proname = '_source_changes_logged' AND p.provolatile = 's' AND p.proparallel = 's')
                 OR (p.proname = '_source_change_triggers' AND p.provolatile = 'i' AND p.proparallel = 's')
                 OR (p.proname IN ('notice_wait_days','is_eligible') AND p.provolatile = 's' AND p.proparallel = 's')
                 OR (p.proname IN ('register_institution','record_notification','opt_out','withdraw_opt_out',
                                   'check_intake','release_quarantine','ledger_append_only')
                        AND p.provolatile = 'v' AND p.proparallel = 'u')
                 OR (p.proname IN ('generalize_age','truncate_date','parse_japanese_date','generalize_postal_code','postal_prefix',
                                   'prefecture_of','municipality_of','region_of','top_code','bottom_code')
                        AND p.provolatile = 'i' AND p.proparallel = 's')
                 OR (p.proname IN ('rotate_key','_install_first_key','keyring_restore_guard',
                                   'citus_sync_keys','_keyring_apply','_keyring_transfer_apply')
                        AND p.provolatile = 'v'))",
        )
        .unwrap();
        assert_eq!(wrong, None, "functions with unexpected markings");
        let uncommented = Spi::get_one::<String>(
            "SELECT string_agg(p.oid::regprocedure::text, ', ')
               FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
              WHERE n.nspname = 'medanon' AND obj_description(p.oid, 'pg_proc') IS NULL",
        )
        .unwrap();
        assert_eq!(uncommented, None, "functions without COMMENT ON");
    }

    #[pg_test]
    fn keyed_functions_are_not_executable_by_public() {
        let public_exec = Spi::get_one::<String>(
            "SELECT string_agg(p.oid::regprocedure::text, ', ')
               FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
              WHERE n.nspname = 'medanon'
                AND p.proname IN ('tokenize','shift_date','date_offset','rotate_key','_install_first_key','active_key_id')
                AND has_function_privilege('public', p.oid, 'EXECUTE')",
        )
        .unwrap();
        assert_eq!(public_exec, None);
        let operator = Spi::get_one::<bool>(
            "SELECT has_function_privilege('medanon_operator', 'medanon.tokenize(text,text)', 'EXECUTE')
                AND NOT has_function_privilege('medanon_operator', 'medanon.rotate_key()', 'EXECUTE')
                AND NOT has_table_privilege('medanon_operator', 'medanon.keyring', 'SELECT')",
        )
        .unwrap();
        assert_eq!(operator, Some(true));
        let dumped = Spi::get_one::<bool>(
            "SELECT 'medanon.keyring'::regclass = ANY (extconfig) FROM pg_extension WHERE extname = 'medanon'",
        )
        .unwrap();
        assert_eq!(dumped, Some(true));
    }
}
