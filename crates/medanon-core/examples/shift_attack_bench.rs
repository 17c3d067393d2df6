//! Speed of the candidate count (`shift_attack::candidate_count`) against the
//! reference attack written from the definition (`shift_attack::attack`), on the
//! same persons in one run; then, for persons some of whose dates fall on closed
//! days (the truth breaks the rule), against the count written from its
//! definition (every candidate, every date). BENCHMARKS.md, "Calendar candidate
//! count".
//!
//!     cargo run --release -p medanon-core --example shift_attack_bench

use medanon_core::calendar::Ymd;
use medanon_core::closed_days::japan;
use medanon_core::shift_attack::{attack, candidate_count, Window};
use std::time::Instant;

fn main() {
    let cal = japan();
    let day = |y, m, d| Ymd::new(y, m, d).unwrap().to_pg_days();
    let window = Window { first: day(2023, 4, 1), last: day(2025, 3, 31) };
    // 100,000 persons, 1 to 20 open-day visits each (mean about 10), whole-week offsets.
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut draw = |open_only: bool| -> Vec<(Vec<i64>, i64)> {
        (0..100_000)
            .map(|_| {
                let n = 1 + next() % 20;
                let mut dates = Vec::new();
                while (dates.len() as u64) < n {
                    let d = window.first + (next() % 731) as i64;
                    if !open_only || cal.is_closed(d) == Some(false) {
                        dates.push(d);
                    }
                }
                let o = ((next() % 208) as i64 - 104) * 7;
                (dates, if o >= 0 { o + 7 } else { o })
            })
            .collect()
    };
    let persons = draw(true);
    let any_day = draw(false);
    let visits: usize = persons.iter().map(|p| p.0.len()).sum();

    let t = Instant::now();
    let fast: u64 = persons.iter().map(|(d, o)| candidate_count(cal, d, *o, window, 728).unwrap()).sum();
    let fast_s = t.elapsed().as_secs_f64();

    let t = Instant::now();
    let reference: u64 = persons
        .iter()
        .map(|(d, o)| {
            let shifted: Vec<i64> = d.iter().map(|r| r + o).collect();
            attack(cal, &shifted, window, 728, 7).unwrap().len() as u64
        })
        .sum();
    let reference_s = t.elapsed().as_secs_f64();

    assert_eq!(fast, reference, "the two counts differ");
    println!("{} persons, {visits} visits, window {} days, ±104 weeks", persons.len(), window.last - window.first + 1);
    println!("candidate_count (bitset): {fast_s:.3} s ({:.2} µs a person)", fast_s * 1e6 / persons.len() as f64);
    println!("attack (reference, one candidate at a time): {reference_s:.3} s");
    println!("ratio: {:.3}", fast_s / reference_s);

    // Dates on any day: most persons have one on a weekend or holiday.
    let t = Instant::now();
    let fast: u64 = any_day.iter().map(|(d, o)| candidate_count(cal, d, *o, window, 728).unwrap()).sum();
    let fast_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let bad = |dates: &[i64], delta: i64| dates.iter().filter(|&&r| {
        let d = r - delta;
        d < window.first || d > window.last || cal.is_closed(d) != Some(false)
    }).count();
    let reference: u64 = any_day
        .iter()
        .map(|(d, o)| {
            let mut d = d.clone();
            d.sort_unstable();
            d.dedup();
            let truth = bad(&d, 0);
            (-104i64..=104).map(|k| k * 7).filter(|&c| c != 0 && bad(&d, c - o) <= truth).count() as u64
        })
        .sum();
    let reference_s = t.elapsed().as_secs_f64();
    assert_eq!(fast, reference, "the two counts differ on dates of any day");
    let broken = any_day.iter().filter(|(d, _)| d.iter().any(|&r| cal.is_closed(r) != Some(false))).count();
    println!("{} persons on any day ({broken} with a date on a closed day)", any_day.len());
    println!("candidate_count (bitset, counted per offset): {fast_s:.3} s ({:.2} µs a person)", fast_s * 1e6 / any_day.len() as f64);
    println!("every candidate, every date: {reference_s:.3} s");
    println!("ratio: {:.3}", fast_s / reference_s);
}
