//! The calendar attack on shifted dates (issue 14, section 3; invariant 8).
//!
//! The grantee of an anonymized contract whose visit dates are shifted knows three
//! public facts: outpatient visits fall on days the clinic is open (not on
//! weekends, national holidays or 12/29-1/3), every real visit lies in the study
//! window, and the offsets are whole weeks within ±`medanon.max_shift_days`, never
//! 0 (it reads the setting). For every person it sees, it lists the offsets that
//! put all the person's shifted dates back on open days inside the window.
//!
//! Target: no person pinned to one candidate, at most 1% narrowed to three or
//! fewer. For comparison the test runs the same attack on the same real dates
//! under daily offsets of ±365 days (the rule before issue 14), and counts what
//! the calendar leaves for every person before publish withholds anyone.
//!
//! Run alone: `flock /tmp/medanon-db.lock make test` runs it in tier 4; its figures
//! print with `-- --nocapture` (SECURITY.md, "Shifted dates and the calendar").

use medanon_core::calendar::Ymd;
use medanon_core::closed_days::{japan, ClosedDays};
use medanon_core::shift_attack::{candidate_count, Window};
use medanon_integration::*;
use std::collections::BTreeMap;

const PERSONS: usize = 1000;

fn day(y: i32, m: u32, d: u32) -> i64 {
    Ymd::new(y, m, d).expect("a real date").to_pg_days()
}

fn iso(d: i64) -> String {
    Ymd::from_pg_days(d).to_string()
}

/// The study: fiscal years 2023 and 2024.
fn window() -> Window {
    Window { first: day(2023, 4, 1), last: day(2025, 3, 31) }
}

/// xorshift64: the same data on every run.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
}

/// One person's real visits: an episode that starts on a random day of the window
/// and returns every few days or weeks, always on an open day (a visit that would
/// fall on a closed day moves to the next open one), cut at the window's end.
/// Visit counts as outpatient clinics see them: most persons come a few times,
/// some are followed for months, 3% are heavy users with 50-150 visits
/// (dialysis, rehabilitation).
fn visits(rng: &mut Rng) -> Vec<i64> {
    let cal = japan();
    let w = window();
    let (n, gap) = match rng.range(0, 99) {
        0..=44 => (rng.range(1, 3), (14, 60)),
        45..=74 => (rng.range(4, 10), (14, 45)),
        75..=89 => (rng.range(11, 30), (7, 30)),
        90..=96 => (rng.range(31, 49), (5, 15)),
        _ => (rng.range(50, 150), (3, 7)),
    };
    let mut d = w.first + rng.range(0, (w.last - w.first) as u64) as i64;
    let mut out = Vec::new();
    while out.len() < n as usize {
        while cal.is_closed(d) == Some(true) {
            d += 1;
        }
        if d > w.last {
            break;
        }
        out.push(d);
        d += rng.range(gap.0, gap.1) as i64;
    }
    out
}

/// The analyst's attack, from the definition: every offset on the lattice of
/// `step` days within ±`range`, not 0, that puts each shifted date on an open day
/// inside the window.
fn candidates(shifted: &[i64], step: i64, range: i64) -> Vec<i64> {
    let (cal, w) = (japan(), window());
    let mut out = Vec::new();
    let mut o = -(range / step) * step;
    while o <= range {
        if o != 0 && shifted.iter().all(|&s| (w.first..=w.last).contains(&(s - o)) && cal.is_closed(s - o) == Some(false)) {
            out.push(o);
        }
        o += step;
    }
    out
}

/// What the attack left, over a set of persons.
#[derive(Debug, Default)]
struct Figures {
    persons: usize,
    pinned: usize,
    at_most_3: usize,
    mean: f64,
    median: u64,
    /// Daily offsets: persons whose candidates all share one residue modulo 7, so
    /// the weekdays alone gave away the offset modulo 7.
    residue_known: usize,
    histogram: BTreeMap<&'static str, usize>,
}

fn figures(counts: &[(u64, bool)]) -> Figures {
    let mut sorted: Vec<u64> = counts.iter().map(|c| c.0).collect();
    sorted.sort_unstable();
    let mut f = Figures {
        persons: counts.len(),
        pinned: sorted.iter().filter(|&&c| c == 1).count(),
        at_most_3: sorted.iter().filter(|&&c| c <= 3).count(),
        mean: sorted.iter().sum::<u64>() as f64 / sorted.len().max(1) as f64,
        median: sorted.get(sorted.len() / 2).copied().unwrap_or(0),
        residue_known: counts.iter().filter(|c| c.1).count(),
        histogram: BTreeMap::new(),
    };
    for c in sorted {
        let bucket = match c {
            0 => "0",
            1 => "1",
            2..=3 => "2-3",
            4..=10 => "4-10",
            11..=30 => "11-30",
            31..=100 => "31-100",
            _ => ">100",
        };
        *f.histogram.entry(bucket).or_default() += 1;
    }
    f
}

fn print(label: &str, f: &Figures) {
    println!(
        "{label}: {} persons, pinned {} ({:.1}%), <=3 candidates {} ({:.1}%), mean {:.1}, median {}, residue mod 7 known {} ({:.1}%), histogram {:?}",
        f.persons,
        f.pinned,
        100.0 * f.pinned as f64 / f.persons.max(1) as f64,
        f.at_most_3,
        100.0 * f.at_most_3 as f64 / f.persons.max(1) as f64,
        f.mean,
        f.median,
        f.residue_known,
        100.0 * f.residue_known as f64 / f.persons.max(1) as f64,
        f.histogram
    );
}

/// The candidates' count and, for daily candidates, whether they all share one
/// residue mod 7. Whole-week candidates all do, by construction: that residue (0)
/// is public and tells nothing about the person, so it is not counted.
fn summary(cands: &[i64], daily: bool) -> (u64, bool) {
    let residue_known = daily && cands.first().is_some_and(|c0| cands.iter().all(|c| (c - c0).rem_euclid(7) == 0));
    (cands.len() as u64, residue_known)
}

#[test]
fn the_calendar_does_not_give_shifted_dates_back() {
    let mut su = superuser();
    su.batch_execute(
        "DROP SCHEMA IF EXISTS it_cal, contract_it_cal, contract_it_cal_data CASCADE;
         DO $$ BEGIN
           IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'it_lab_cal') THEN CREATE ROLE it_lab_cal LOGIN; END IF;
         END $$;",
    )
    .expect("role");
    let mut su = fresh_install();

    // Persons: distinct birth dates, so linking gives one person per record.
    su.batch_execute(&format!(
        "CREATE SCHEMA it_cal;
         CREATE TABLE it_cal.staging (institution_code text, local_patient_id text, name_kana text,
             birth_date text, sex text, insurer_number text, insured_symbol text, insured_number text);
         INSERT INTO it_cal.staging
         SELECT 'H1', 'c' || i, 'ﾔﾏﾀﾞ ' || chr(12450 + (i % 40) * 2), (DATE '1940-01-01' + i * 17)::text, (1 + i % 2)::text, '', '', ''
           FROM generate_series(1, {PERSONS}) i;
         SELECT medanon.register_institution('H1', 'Hospital 1', 'hospital');
         SELECT medanon.record_notification('H1', local_patient_id, now() - interval '40 days') FROM it_cal.staging;
         GRANT USAGE ON SCHEMA it_cal TO it_etl;
         GRANT SELECT ON ALL TABLES IN SCHEMA it_cal TO it_etl;"
    ))
    .expect("staging");
    let mut etl = connect_as("it_etl");
    etl.batch_execute("SELECT medanon.link_patients('it_cal.staging')").expect("link");

    // Visits, generated here: open days only, inside the window.
    let mut rng = Rng(0x1234_5678_9abc_def1);
    let mut locals = Vec::new();
    let mut dates = Vec::new();
    let mut real: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for i in 1..=PERSONS {
        let v = visits(&mut rng);
        for &d in &v {
            locals.push(format!("c{i}"));
            dates.push(iso(d));
        }
        real.insert(format!("c{i}"), v);
    }
    su.execute(
        "CREATE TABLE it_cal.visit AS
         SELECT l.person_id, 'H1'::text AS institution_code, v.visit_date::date AS visit_date
           FROM unnest($1::text[], $2::text[]) v(local_patient_id, visit_date)
           JOIN medanon.person_link l ON l.institution_code = 'H1' AND l.local_patient_id = v.local_patient_id",
        &[&locals, &dates],
    )
    .expect("visits");
    su.batch_execute(
        "CREATE TABLE it_cal.patient AS
         SELECT l.person_id, s.birth_date::date AS birth_date, s.sex::smallint AS sex
           FROM it_cal.staging s JOIN medanon.person_link l USING (institution_code, local_patient_id);
         GRANT SELECT ON ALL TABLES IN SCHEMA it_cal TO it_etl;
         SELECT medanon.register_source('it_cal.patient', 'person_id');
         SELECT medanon.register_source('it_cal.visit', 'person_id', 'institution_code');
         SELECT medanon.classify('it_cal.patient', c, cls) FROM (VALUES ('person_id', 'identifier'),
             ('birth_date', 'quasi_identifier'), ('sex', 'quasi_identifier')) v(c, cls);
         SELECT medanon.classify('it_cal.visit', c, cls) FROM (VALUES ('person_id', 'identifier'),
             ('institution_code', 'quasi_identifier'), ('visit_date', 'static')) v(c, cls);",
    )
    .expect("sources");
    let visits_total: i64 = su.query_one("SELECT count(*) FROM it_cal.visit", &[]).unwrap().get(0);
    assert_eq!(visits_total as usize, dates.len(), "every generated visit is in the table");
    etl.batch_execute(
        r#"SELECT medanon.create_contract('{"id": "it_cal", "grantee": "it_lab_cal", "purpose": "drug safety, FY2023-2024",
              "approved_on": "2026-01-01", "expires_on": "2099-12-31", "kind": "anonymized", "k": 5, "reference_date": "2026-04-01",
              "tables": [{"source": "it_cal.patient", "columns": {"person_id": "token", "birth_date": {"age_band": {"band": 50}}, "sex": "keep"}},
                         {"source": "it_cal.visit", "columns": {"person_id": "token", "visit_date": "shift"}}]}');
           SELECT medanon.publish_contract('it_cal');"#,
    )
    .expect("publish");

    // The operator's count in a new session, as its first statement: the default
    // of max_shift_days reads the setting, which exists once medanon's library is
    // loaded, and calling the function loads it first.
    let fresh: i32 = superuser()
        .query_one("SELECT medanon._shift_candidates('{}'::date[], 7, '2024-01-01', '2024-12-31')", &[])
        .expect("a first call in a new session")
        .get(0);
    assert_eq!(fresh, 208, "every whole week of ±104 but 0");

    // The analyst: the view, and the range, which it may read like anyone once any
    // medanon function has loaded the library in its session.
    let mut lab = connect_as("it_lab_cal");
    let max_days: i64 = lab
        .query_one("SELECT current_setting('medanon.max_shift_days')::int8 FROM medanon.region_of('東京都')", &[])
        .expect("the setting is readable")
        .get(0);
    let mut shifted: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for row in lab.query("SELECT person_id::text, (visit_date - DATE '2000-01-01')::int8 FROM contract_it_cal.visit", &[]).unwrap() {
        shifted.entry(row.get(0)).or_default().push(row.get(1));
    }
    let range = (max_days / 7) * 7;
    let mut after = Vec::new();
    let mut truth_missing = Vec::new();
    let offsets: BTreeMap<String, i64> = su
        .query("SELECT token::text, date_offset::int8 FROM medanon.contract_person WHERE contract_id = 'it_cal'", &[])
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    // The operator's count in SQL, as publish runs it: it must be the attack's,
    // person for person.
    let operator: BTreeMap<String, i32> = su
        .query(
            "SELECT m.token::text, medanon._shift_candidates(array_agg(v.visit_date), m.date_offset, $1::text::date, $2::text::date)
               FROM it_cal.visit v JOIN medanon.contract_person m ON m.contract_id = 'it_cal' AND m.person_id = v.person_id
              GROUP BY m.token, m.date_offset",
            &[&iso(window().first), &iso(window().last)],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let mut disagree = Vec::new();
    for (token, s) in &shifted {
        let cands = candidates(s, 7, range);
        if !offsets.get(token).is_some_and(|o| cands.contains(o)) {
            truth_missing.push(token.clone());
        }
        if operator.get(token).map(|&n| n as usize) != Some(cands.len()) {
            disagree.push((token.clone(), operator.get(token).copied(), cands.len()));
        }
        after.push(summary(&cands, false));
    }
    let after = figures(&after);

    // The same attack on the same real dates, under the daily offsets of ±365 days
    // that shift used before issue 14.
    let mut rng = Rng(0x0ddb_a11c_afe5_eed5);
    let daily: Vec<(u64, bool)> = real
        .values()
        .filter(|v| !v.is_empty())
        .map(|v| {
            let o = loop {
                let o = rng.range(0, 729) as i64 - 365;
                if o != 0 {
                    break o;
                }
            };
            let s: Vec<i64> = v.iter().map(|d| d + o).collect();
            summary(&candidates(&s, 1, 365), true)
        })
        .collect();
    let before = figures(&daily);

    // What the calendar leaves every person under whole weeks, before publish
    // withholds anyone: the operator's count on the raw dates.
    let with_offsets: Vec<(Vec<i64>, i64)> = su
        .query(
            "SELECT array_agg(v.visit_date - DATE '2000-01-01'), min(m.date_offset)::int8
               FROM it_cal.visit v JOIN medanon.contract_person m ON m.contract_id = 'it_cal' AND m.person_id = v.person_id
              GROUP BY v.person_id",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| {
            let days: Vec<i32> = r.get(0);
            (days.into_iter().map(i64::from).collect(), r.get(1))
        })
        .collect();
    let count_all = |cal: &ClosedDays, max: u32| -> Figures {
        let counts: Vec<(u64, bool)> =
            with_offsets.iter().map(|(days, o)| (candidate_count(cal, days, *o, window(), max).unwrap(), false)).collect();
        figures(&counts)
    };
    let unwithheld = count_all(japan(), max_days as u32);
    // The window alone: a calendar with weekends only tells nothing under whole
    // weeks, so what is left is what the window and the range leave.
    let (first, last) = japan().coverage();
    let weekends = ClosedDays::from_fn(first, last, |d| medanon_core::calendar::weekday_of_pg_day(d) >= 5);
    let window_only = count_all(&weekends, max_days as u32);
    // A narrower range, ±52 weeks, on the same real dates (offsets drawn here).
    let mut rng = Rng(0x5eed_0052);
    let narrow: Vec<(u64, bool)> = with_offsets
        .iter()
        .map(|(days, _)| {
            let k = rng.range(0, 103) as i64 - 52;
            let o = if k >= 0 { (k + 1) * 7 } else { k * 7 };
            (candidate_count(japan(), days, o, window(), 364).unwrap(), false)
        })
        .collect();
    let narrow = figures(&narrow);

    let visit_counts: Vec<usize> = real.values().map(Vec::len).collect();
    println!(
        "calendar attack: {} persons with visits, {} visits, {} heavy users (50+), window {} to {}, whole weeks within ±{max_days} days",
        visit_counts.iter().filter(|&&n| n > 0).count(),
        dates.len(),
        visit_counts.iter().filter(|&&n| n >= 50).count(),
        iso(window().first),
        iso(window().last)
    );
    print("before (daily offsets, ±365 days)", &before);
    print("whole weeks, every person (operator's count, before withholding)", &unwithheld);
    print("  of which the window and range alone (no holidays)", &window_only);
    print("  the same dates under ±52 weeks (operator's count)", &narrow);
    print("after (whole weeks, the published view)", &after);

    assert!(truth_missing.is_empty(), "the attack's model is wrong: the true offset is not a candidate for {truth_missing:?}");
    assert!(disagree.is_empty(), "_shift_candidates and the attack disagree (token, operator, attack): {disagree:?}");
    // The old rule fails the target, so this test can tell the two apart.
    assert!(before.at_most_3 * 100 > before.persons, "daily offsets should fail the target: {before:?}");
    // The contract still shows most persons.
    assert!(after.persons * 2 >= PERSONS, "only {} of {PERSONS} persons are shown", after.persons);
    // The target (issue 14, "How we will check" (c)).
    assert_eq!(after.pinned, 0, "persons pinned to one offset: {after:?}");
    assert!(after.at_most_3 * 100 <= after.persons, "more than 1% narrowed to three or fewer: {after:?}");
}
