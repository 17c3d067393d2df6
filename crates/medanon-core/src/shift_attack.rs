//! How far the calendar narrows a person's date offset (issue 14, invariant 8).
//!
//! An analyst sees a person's shifted dates `s = r + o` and knows public facts:
//! outpatient visits fall on days the clinic is open ([`crate::closed_days`]),
//! every real date lies in the study window, and offsets are whole weeks within
//! ±`medanon.max_shift_days`, never 0 ([`crate::keyed::DomainKey::week_offset`]).
//! Its candidates for `o` are the offsets on that lattice that put every shifted
//! date back on an open day inside the window. The fewer, the closer the analyst
//! is to the real dates, and through them to outside records.
//!
//! [`candidate_count`] is the operator's side: from the real dates and the true
//! offset, how many candidates the analyst is left with. [`attack`] is the
//! analyst's side, written straight from the definition: it is the reference the
//! count is tested against, and what `tests/calendar_attack.rs` runs on a view.
//!
//! A real date on a closed day (an emergency visit, a birth date) makes the truth
//! itself break the rule. The analyst then cannot rule out a candidate for
//! breaking it too: a candidate counts when it puts no more dates on closed days
//! or outside the window than the truth does. With every real date open and
//! inside the window this is exactly "every date open and inside".

use crate::closed_days::ClosedDays;
use crate::error::{InputError, Kind, Result};
use crate::keyed::shift_weeks;

/// The study window: first and last real date an analyst may assume, as
/// PostgreSQL day numbers, inclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub first: i64,
    pub last: i64,
}

impl Window {
    fn contains(self, day: i64) -> bool {
        (self.first..=self.last).contains(&day)
    }
}

/// The lattice an offset lies on: 7 days for whole-week offsets (what
/// `week_offset` draws), 1 for any other, such as a daily offset kept in a person
/// map from before whole weeks.
pub fn lattice_step(offset: i64) -> i64 {
    if offset % 7 == 0 {
        7
    } else {
        1
    }
}

/// The largest offset an analyst must consider on a lattice: whole weeks up to
/// `max_shift_days`, or every day up to it.
pub fn range_days(step: i64, max_shift_days: u32) -> i64 {
    if step == 7 {
        shift_weeks(max_shift_days) as i64 * 7
    } else {
        max_shift_days.max(1) as i64
    }
}

fn check_window(cal: &ClosedDays, window: Window) -> Result<()> {
    if window.first > window.last {
        return Err(InputError::new(Kind::InvalidParameterValue, "study window ends before it starts")
            .hint("pass the first and the last real date of the study, in that order"));
    }
    let (first, last) = cal.coverage();
    if window.first < first || window.last > last {
        let show = |d: i64| crate::calendar::Ymd::from_pg_days(d).to_string();
        return Err(InputError::new(Kind::InvalidParameterValue, "study window is outside the holiday calendar")
            .detail(format!("the window is {} to {}; the calendar covers {} to {}", show(window.first), show(window.last), show(first), show(last)))
            .hint("only dates an analyst may assume to be outpatient business days belong in the count"));
    }
    Ok(())
}

/// Dates that break the analyst's rule when every date moves by `-delta`: on a
/// closed day or outside the window. Stops counting past `limit`.
fn violations(cal: &ClosedDays, dates: &[i64], delta: i64, window: Window, limit: usize) -> usize {
    let mut n = 0;
    for &r in dates {
        let d = r - delta;
        if !window.contains(d) || cal.is_closed(d) != Some(false) {
            n += 1;
            if n > limit {
                break;
            }
        }
    }
    n
}

/// The number of offsets an analyst who knows the calendar, the window and the
/// offset range cannot rule out for a person whose real dates are `real` and whose
/// true offset is `offset` (days). Always at least 1 (the truth) when the truth is
/// in the range. `real` may hold duplicates and need not be sorted.
///
/// Errors: a window that ends before it starts, or reaches outside the calendar
/// (22023).
pub fn candidate_count(cal: &ClosedDays, real: &[i64], offset: i64, window: Window, max_shift_days: u32) -> Result<u64> {
    check_window(cal, window)?;
    let mut dates = real.to_vec();
    dates.sort_unstable();
    dates.dedup();
    let step = lattice_step(offset);
    let range = range_days(step, max_shift_days).max(offset.abs());
    let truth = violations(cal, &dates, 0, window, usize::MAX);
    if step == 7 && truth == 0 {
        return Ok(weekly_count(cal, &dates, offset, window, range));
    }
    if step == 7 {
        return Ok(weekly_count_tolerant(cal, &dates, offset, window, range, truth));
    }
    // A daily lattice (offsets kept from before whole weeks): every candidate of
    // the range, each stopped as soon as it is worse than the truth.
    let mut count = 0;
    let mut o = -range + (offset + range).rem_euclid(step);
    while o <= range {
        if o != 0 && violations(cal, &dates, o - offset, window, truth) <= truth {
            count += 1;
        }
        o += step;
    }
    Ok(count)
}

/// The whole-week count when every real date is open and inside the window. The
/// window alone leaves deltas 7k with k in [k_lo, k_hi]; a date r rules out the k
/// whose day r − 7k is closed, and those days are one weekly run of r's weekday:
/// one slice of the calendar's bitset per date, ORed together.
fn weekly_count(cal: &ClosedDays, dates: &[i64], offset: i64, window: Window, range: i64) -> u64 {
    let (Some(&r_min), Some(&r_max)) = (dates.first(), dates.last()) else {
        // No date: only the range and o ≠ 0 constrain.
        return (2 * (range / 7)) as u64;
    };
    let lo = (r_max - window.last).max(-range - offset);
    let hi = (r_min - window.first).min(range - offset);
    let (k_lo, k_hi) = (lo.div_euclid(7) + i64::from(lo.rem_euclid(7) != 0), hi.div_euclid(7));
    if k_lo > k_hi {
        return 0;
    }
    let n = (k_hi - k_lo + 1) as usize;
    // Bit j of `closed` stands for k = k_hi − j, whose day for date r is r − 7k_hi + 7j.
    let mut closed = vec![0u64; n.div_ceil(64)];
    for &r in dates {
        cal.or_weekly_run(r - 7 * k_hi, n, &mut closed);
    }
    let open = n as u64 - closed.iter().map(|w| w.count_ones() as u64).sum::<u64>();
    // o = offset + 7k is 0 for k = −offset/7: never an offset, so never a candidate.
    let k_zero = -offset / 7;
    let zero_open = (k_lo..=k_hi).contains(&k_zero) && {
        let j = (k_hi - k_zero) as usize;
        closed[j / 64] >> (j % 64) & 1 == 0
    };
    open - u64::from(zero_open)
}

/// The whole-week count when the truth itself breaks the rule `truth` times (a
/// real date on a closed day or outside the window): for each k of the range, how
/// many dates r − 7k are outside the window or closed, the closed ones read from
/// one slice of the calendar's bitset per date as in [`weekly_count`]; a candidate
/// is a k no worse than the truth. One probe per (date, offset) took 10 µs a
/// person at 10 dates and ±104 weeks, the most expensive step of a publish.
fn weekly_count_tolerant(cal: &ClosedDays, dates: &[i64], offset: i64, window: Window, range: i64, truth: usize) -> u64 {
    let ceil7 = |x: i64| x.div_euclid(7) + i64::from(x.rem_euclid(7) != 0);
    // o = offset + 7k within ±range.
    let (k_min, k_max) = (ceil7(-range - offset), (range - offset).div_euclid(7));
    if k_min > k_max {
        return 0;
    }
    let n = (k_max - k_min + 1) as usize;
    let mut bad = vec![0usize; n];
    let mut run = vec![0u64; n.div_ceil(64)];
    for &r in dates {
        // The k that keep r − 7k inside the window; every other k breaks the rule.
        let (lo, hi) = (ceil7(r - window.last).max(k_min), (r - window.first).div_euclid(7).min(k_max));
        if lo > hi {
            bad.iter_mut().for_each(|b| *b += 1);
            continue;
        }
        let (lo_i, hi_i) = ((lo - k_min) as usize, (hi - k_min) as usize);
        let (before, rest) = bad.split_at_mut(lo_i);
        before.iter_mut().chain(rest[hi_i - lo_i + 1..].iter_mut()).for_each(|b| *b += 1);
        // Bit j of `run` stands for k = hi − j, whose day is r − 7hi + 7j.
        run.iter_mut().for_each(|w| *w = 0);
        cal.or_weekly_run(r - 7 * hi, hi_i - lo_i + 1, &mut run);
        for (w, &word) in run.iter().enumerate() {
            let mut bits = word;
            while bits != 0 {
                let j = w * 64 + bits.trailing_zeros() as usize;
                bad[hi_i - j] += 1;
                bits &= bits - 1;
            }
        }
    }
    // o = offset + 7k is 0 for k = −offset/7: never an offset, so never a candidate.
    let k_zero = -offset / 7;
    (0..n).filter(|&i| k_min + i as i64 != k_zero && bad[i] <= truth).count() as u64
}

/// The analyst's side: every offset on the lattice of `step` days (7 or 1), within
/// the range and never 0, that puts all of `shifted` back on open days inside the
/// window. Written from the definition, one candidate at a time.
pub fn attack(cal: &ClosedDays, shifted: &[i64], window: Window, max_shift_days: u32, step: i64) -> Result<Vec<i64>> {
    check_window(cal, window)?;
    let range = range_days(step, max_shift_days);
    let mut out = Vec::new();
    let mut o = -(range / step) * step;
    while o <= range {
        if o != 0 && shifted.iter().all(|&s| window.contains(s - o) && cal.is_closed(s - o) == Some(false)) {
            out.push(o);
        }
        o += step;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calendar::{weekday_of_pg_day, Ymd};
    use crate::closed_days::japan;
    use proptest::prelude::*;

    fn day(y: i32, m: u32, d: u32) -> i64 {
        Ymd::new(y, m, d).unwrap().to_pg_days()
    }

    /// A small xorshift generator, so the figures below are the same on every run.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    /// `n` distinct open days of `cal` inside `window`.
    fn open_days(cal: &ClosedDays, rng: &mut Rng, window: Window, n: usize) -> Vec<i64> {
        let mut out = Vec::new();
        while out.len() < n {
            let d = window.first + rng.below((window.last - window.first + 1) as u64) as i64;
            if cal.is_closed(d) == Some(false) && !out.contains(&d) {
                out.push(d);
            }
        }
        out
    }

    /// A uniformly drawn offset of the lattice within the range, never 0.
    fn draw_offset(rng: &mut Rng, step: i64, max_days: u32) -> i64 {
        let slots = range_days(step, max_days) / step;
        let i = rng.below(2 * slots as u64) as i64;
        (if i < slots { i - slots } else { i - slots + 1 }) * step
    }

    #[test]
    fn weekly_offsets_hide_the_weekday_and_daily_ones_do_not() {
        // Only weekends closed: the weekday part of the attack, alone.
        let window = Window { first: day(2023, 4, 1), last: day(2025, 3, 31) };
        let weekends = ClosedDays::from_fn(day(2020, 1, 1), day(2028, 12, 31), |d| weekday_of_pg_day(d) >= 5);
        let mut rng = Rng(0x5eed_1234);
        let (mut daily_pinned_mod7, mut weekly_lost) = (0, 0);
        let persons = 300;
        for _ in 0..persons {
            let n = 5 + rng.below(11) as usize;
            let real = open_days(&weekends, &mut rng, window, n);
            // Daily offsets: the candidates all share the true offset's residue
            // mod 7, since only that residue puts five-day weeks back on weekdays.
            let o = draw_offset(&mut rng, 1, 365);
            let shifted: Vec<i64> = real.iter().map(|r| r + o).collect();
            let cands = attack(&weekends, &shifted, window, 365, 1).unwrap();
            assert!(cands.contains(&o));
            if o % 7 != 0 {
                assert_eq!(cands.len() as u64, candidate_count(&weekends, &real, o, window, 365).unwrap());
            }
            if cands.iter().all(|c| (c - o).rem_euclid(7) == 0) {
                daily_pinned_mod7 += 1;
            }
            // Whole weeks: weekends rule out nothing; the candidates are every week
            // the window leaves, as if the analyst knew no calendar at all.
            let o = draw_offset(&mut rng, 7, 728);
            let shifted: Vec<i64> = real.iter().map(|r| r + o).collect();
            let cands = attack(&weekends, &shifted, window, 728, 7).unwrap();
            let no_calendar = ClosedDays::from_fn(day(2020, 1, 1), day(2028, 12, 31), |_| false);
            let blind = attack(&no_calendar, &shifted, window, 728, 7).unwrap();
            assert_eq!(cands, blind, "the weekday told the analyst something");
            weekly_lost += blind.len() - cands.len();
        }
        // With 5 to 15 visits, the weekday pattern gives the residue away for most.
        eprintln!("daily offsets: residue mod 7 pinned for {daily_pinned_mod7} of {persons}");
        assert!(daily_pinned_mod7 > persons * 6 / 10, "daily: residue pinned for only {daily_pinned_mod7} of {persons}");
        assert_eq!(weekly_lost, 0);
    }

    #[test]
    fn holidays_narrow_heavy_users_most() {
        // The Japanese calendar, whole weeks of ±104: a person with 5 visits keeps
        // many candidates; one with 120 is nearly pinned by holidays alone. This is
        // why publish withholds persons with too few candidates.
        let cal = japan();
        let window = Window { first: day(2023, 4, 1), last: day(2025, 3, 31) };
        let mut rng = Rng(42);
        let mean = |rng: &mut Rng, visits: usize| {
            let total: u64 = (0..100)
                .map(|_| {
                    let real = open_days(cal, rng, window, visits);
                    let o = draw_offset(rng, 7, 728);
                    candidate_count(cal, &real, o, window, 728).unwrap()
                })
                .sum();
            total as f64 / 100.0
        };
        let (light, heavy) = (mean(&mut rng, 5), mean(&mut rng, 120));
        assert!(light > 20.0, "5 visits: mean {light}");
        assert!(heavy < 4.0, "120 visits: mean {heavy}");
    }

    #[test]
    fn edge_cases() {
        let cal = japan();
        let window = Window { first: day(2024, 1, 1), last: day(2024, 12, 31) };
        // No date: every week of the range but 0.
        assert_eq!(candidate_count(cal, &[], 14, window, 728).unwrap(), 208);
        // A date on a holiday counts against the truth and the candidates alike:
        // the truth is always among them.
        let holiday = day(2024, 5, 3);
        assert!(candidate_count(cal, &[holiday], 7, window, 728).unwrap() >= 1);
        // A date outside the window likewise.
        assert!(candidate_count(cal, &[day(2023, 6, 1), day(2024, 6, 3)], -21, window, 728).unwrap() >= 1);
        // Errors.
        let e = candidate_count(cal, &[], 7, Window { first: window.last, last: window.first }, 728).unwrap_err();
        assert_eq!(e.kind, Kind::InvalidParameterValue);
        let e = candidate_count(cal, &[], 7, Window { first: day(1960, 1, 1), last: window.last }, 728).unwrap_err();
        assert!(e.message.contains("outside the holiday calendar"), "{e}");
        // A window of one week: one candidate at most per weekday, and o = 0 is not one.
        let week = Window { first: day(2024, 6, 3), last: day(2024, 6, 9) };
        assert_eq!(candidate_count(cal, &[day(2024, 6, 4)], 7, week, 728).unwrap(), 1);
    }

    proptest! {
        /// The fast count is the reference attack's count, on the real calendar.
        #[test]
        fn count_matches_the_attack(
            seed in 1u64..u64::MAX, n in 0usize..40, len in 7i64..1500, max_days in 7u32..1200, daily in 0u8..4,
        ) {
            let cal = japan();
            let mut rng = Rng(seed);
            let first = day(2010, 1, 1) + rng.below(3000) as i64;
            let window = Window { first, last: first + len - 1 };
            let step = if daily == 0 { 1 } else { 7 };
            let real = open_days(cal, &mut rng, window, n.min(((len * 5 / 7) as usize).saturating_sub(12)));
            let o = draw_offset(&mut rng, step, max_days);
            // A daily offset that happens to be whole weeks is counted on the weekly lattice.
            prop_assume!(step == 7 || o % 7 != 0);
            let shifted: Vec<i64> = real.iter().map(|r| r + o).collect();
            let cands = attack(cal, &shifted, window, max_days, step).unwrap();
            prop_assert!(cands.contains(&o));
            prop_assert_eq!(candidate_count(cal, &real, o, window, max_days).unwrap(), cands.len() as u64);
        }

        /// With dates that break the rule, the count is the number of candidates no
        /// worse than the truth, counted one by one.
        #[test]
        fn count_with_closed_dates_matches_brute_force(
            seed in 1u64..u64::MAX, n in 1usize..15, max_days in 7u32..1200, len in 7i64..1200,
        ) {
            let cal = japan();
            let mut rng = Rng(seed);
            // Windows from a week to three years; dates around them, some outside.
            let window = Window { first: day(2019, 1, 1), last: day(2019, 1, 1) + len - 1 };
            let real: Vec<i64> = (0..n).map(|_| day(2019, 1, 1) - 60 + rng.below(len as u64 + 120) as i64).collect();
            let o = draw_offset(&mut rng, 7, max_days);
            let bad = |delta: i64| real.iter().collect::<std::collections::BTreeSet<_>>().iter()
                .filter(|&&&r| !window.contains(r - delta) || cal.is_closed(r - delta) != Some(false)).count();
            let truth = bad(0);
            let range = range_days(7, max_days);
            let expect = (-range / 7..=range / 7).map(|k| k * 7).filter(|&c| c != 0 && bad(c - o) <= truth).count();
            prop_assert_eq!(candidate_count(cal, &real, o, window, max_days).unwrap(), expect as u64);
        }
    }
}
