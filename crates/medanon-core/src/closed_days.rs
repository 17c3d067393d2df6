//! The days a Japanese hospital's outpatient clinic is closed, which an analyst
//! may assume no outpatient visit falls on (issue 14, invariant 8):
//!
//! * Saturdays and Sundays;
//! * national holidays (国民の祝日), with substitute holidays (振替休日) and the
//!   citizens' holidays between two holidays (国民の休日), as published;
//! * the year-end closure, 12/29 to 1/3: not a national holiday, but the custom of
//!   public offices (行政機関の休日に関する法律, art. 1) that hospitals follow for
//!   outpatient clinics.
//!
//! The holidays are not typed in here: they come from `data/holidays_jp.csv`, the
//! data of the holiday_jp project (MIT; `data/README.md` says where it comes from
//! and how to refresh it), 1970 to 2050. Dates from the Cabinet Office's list
//! (内閣府「国民の祝日」) up to the year it has published; later years are the
//! project's projection under the current law (the equinoxes by the usual
//! astronomical formula), which a law change could move.
//!
//! The closed days are kept as one bitset per weekday, indexed by week number, so
//! that "is day d − 7k closed" for a whole run of k is a slice of one bitset: the
//! candidate count of `shift_attack` ANDs a few words per date instead of probing
//! every (date, offset) pair.

use crate::calendar::{weekday_of_pg_day, Ymd};
use std::sync::OnceLock;

/// The vendored national holidays: `date,name,name_en`, one holiday a line.
const HOLIDAYS_CSV: &str = include_str!("../data/holidays_jp.csv");

/// First and last year of the vendored holiday data.
pub const FIRST_YEAR: i32 = 1970;
pub const LAST_YEAR: i32 = 2050;

/// A set of closed days over a range of PostgreSQL day numbers.
#[derive(Debug, Clone)]
pub struct ClosedDays {
    /// First and last day covered (PostgreSQL day numbers, inclusive).
    first: i64,
    last: i64,
    /// The Monday on or before `first`: week 0 starts there.
    anchor: i64,
    /// `by_weekday[w]` bit q is set when day `anchor + 7q + w` is closed.
    by_weekday: [Vec<u64>; 7],
}

impl ClosedDays {
    /// The closed days of `first..=last` by a predicate on the day number.
    pub fn from_fn(first: i64, last: i64, closed: impl Fn(i64) -> bool) -> ClosedDays {
        let anchor = first - weekday_of_pg_day(first) as i64;
        let weeks = ((last - anchor).div_euclid(7) + 1).max(0) as usize;
        let words = weeks.div_ceil(64);
        let mut by_weekday: [Vec<u64>; 7] = std::array::from_fn(|_| vec![0u64; words]);
        for day in first..=last {
            if closed(day) {
                let q = (day - anchor).div_euclid(7) as usize;
                by_weekday[(day - anchor).rem_euclid(7) as usize][q / 64] |= 1 << (q % 64);
            }
        }
        ClosedDays { first, last, anchor, by_weekday }
    }

    /// First and last day covered.
    pub fn coverage(&self) -> (i64, i64) {
        (self.first, self.last)
    }

    pub fn covers(&self, day: i64) -> bool {
        (self.first..=self.last).contains(&day)
    }

    /// Whether `day` is closed; `None` outside the coverage.
    pub fn is_closed(&self, day: i64) -> Option<bool> {
        if !self.covers(day) {
            return None;
        }
        let q = (day - self.anchor).div_euclid(7) as usize;
        let w = (day - self.anchor).rem_euclid(7) as usize;
        Some(self.by_weekday[w][q / 64] >> (q % 64) & 1 == 1)
    }

    /// ORs into `out` the closed bits of the days `day, day + 7, day + 14, ...`
    /// (`out.len() * 64` of them, bit j of `out` for `day + 7j`). `day` and every
    /// day of the run must be covered; bits past the run's end are left alone.
    pub(crate) fn or_weekly_run(&self, day: i64, len: usize, out: &mut [u64]) {
        debug_assert!(self.covers(day) && self.covers(day + 7 * (len as i64 - 1)));
        let w = (day - self.anchor).rem_euclid(7) as usize;
        let start = (day - self.anchor).div_euclid(7) as usize;
        let bits = &self.by_weekday[w];
        let (word, shift) = (start / 64, start % 64);
        for (j, slot) in out.iter_mut().enumerate().take(len.div_ceil(64)) {
            let lo = bits.get(word + j).copied().unwrap_or(0);
            let hi = bits.get(word + j + 1).copied().unwrap_or(0);
            let mut v = if shift == 0 { lo } else { (lo >> shift) | (hi << (64 - shift)) };
            let remaining = len - 64 * j;
            if remaining < 64 {
                v &= (1u64 << remaining) - 1;
            }
            *slot |= v;
        }
    }
}

/// The vendored national holidays, as PostgreSQL day numbers, sorted.
pub fn national_holidays() -> &'static [i64] {
    static HOLIDAYS: OnceLock<Vec<i64>> = OnceLock::new();
    HOLIDAYS.get_or_init(|| {
        let mut days: Vec<i64> = HOLIDAYS_CSV
            .lines()
            .skip(1)
            .filter(|line| !line.is_empty())
            .map(|line| {
                let date = line.split(',').next().unwrap_or("");
                parse_iso(date).unwrap_or_else(|| panic!("data/holidays_jp.csv: bad date {date:?}"))
            })
            .collect();
        days.sort_unstable();
        days.dedup();
        days
    })
}

fn parse_iso(s: &str) -> Option<i64> {
    let mut parts = s.splitn(3, '-');
    let y = parts.next()?.parse().ok()?;
    let m = parts.next()?.parse().ok()?;
    let d = parts.next()?.parse().ok()?;
    Some(Ymd::new(y, m, d)?.to_pg_days())
}

/// Whether a day falls in the year-end closure, 12/29 to 1/3.
pub fn is_year_end_closure(day: i64) -> bool {
    let d = Ymd::from_pg_days(day);
    (d.month == 12 && d.day >= 29) || (d.month == 1 && d.day <= 3)
}

/// The outpatient calendar of Japan, 1970-01-01 to 2050-12-31: weekends, national
/// holidays and the year-end closure. Built once (about 30,000 days) per process.
pub fn japan() -> &'static ClosedDays {
    static JAPAN: OnceLock<ClosedDays> = OnceLock::new();
    JAPAN.get_or_init(|| {
        let first = Ymd { year: FIRST_YEAR, month: 1, day: 1 }.to_pg_days();
        let last = Ymd { year: LAST_YEAR, month: 12, day: 31 }.to_pg_days();
        let holidays = national_holidays();
        ClosedDays::from_fn(first, last, |day| {
            weekday_of_pg_day(day) >= 5 || is_year_end_closure(day) || holidays.binary_search(&day).is_ok()
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn day(y: i32, m: u32, d: u32) -> i64 {
        Ymd::new(y, m, d).unwrap().to_pg_days()
    }

    #[test]
    fn vendored_data_parses_and_spans_its_years() {
        let h = national_holidays();
        assert_eq!(h.len(), HOLIDAYS_CSV.lines().count() - 1, "one holiday a line, no duplicates");
        assert_eq!(Ymd::from_pg_days(h[0]), Ymd::new(1970, 1, 1).unwrap());
        assert_eq!(Ymd::from_pg_days(*h.last().unwrap()).year, LAST_YEAR);
        // Every year has between 12 and 22 holidays (2019 had the enthronement's).
        for year in FIRST_YEAR..=LAST_YEAR {
            let n = h.iter().filter(|&&d| Ymd::from_pg_days(d).year == year).count();
            assert!((12..=22).contains(&n), "{year}: {n} holidays");
        }
    }

    #[test]
    fn known_days() {
        let cal = japan();
        let closed = |y, m, d| cal.is_closed(day(y, m, d)).unwrap();
        // National holidays, substitute holidays and the 2020/2021 Olympic moves.
        assert!(closed(2024, 2, 12), "振替休日 after 建国記念の日 on a Sunday");
        assert!(closed(2021, 7, 22) && closed(2021, 7, 23), "海の日 and スポーツの日 moved for the Olympics");
        assert!(!closed(2021, 7, 19), "海の日 was not on its usual Monday in 2021");
        assert!(closed(2019, 5, 1) && closed(2019, 4, 30) && closed(2019, 5, 2), "the enthronement");
        assert!(closed(2025, 9, 15) && closed(2025, 9, 23), "敬老の日, 秋分の日");
        // Year-end closure on weekdays.
        assert!(closed(2025, 12, 29) && closed(2026, 1, 2) && closed(2025, 12, 31));
        assert!(!closed(2025, 12, 26) && !closed(2026, 1, 5));
        // Weekends.
        assert!(closed(2026, 11, 28) && closed(2026, 11, 29) && !closed(2026, 11, 30));
        // Outside the data: unknown, not open.
        assert_eq!(cal.is_closed(day(1969, 12, 31)), None);
        assert_eq!(cal.is_closed(day(2051, 1, 1)), None);
        // About 1 weekday in 13 is closed: 17 holidays and the closure a year.
        let (a, b) = (day(2015, 1, 1), day(2024, 12, 31));
        let weekdays = (a..=b).filter(|&d| weekday_of_pg_day(d) < 5).count() as f64;
        let closed_weekdays = (a..=b).filter(|&d| weekday_of_pg_day(d) < 5 && cal.is_closed(d).unwrap()).count() as f64;
        let share = closed_weekdays / weekdays;
        assert!((0.06..0.09).contains(&share), "closed share of weekdays {share}");
    }

    proptest! {
        #[test]
        fn weekly_runs_match_single_days(first in 0i64..400, len in 1usize..300, start_off in 0i64..200) {
            let cal = ClosedDays::from_fn(first, first + 3000, |d| (d * 7919 + d / 3) % 11 < 3);
            let start = first + start_off;
            let len = len.min(((first + 3000 - start) / 7 + 1) as usize);
            let mut out = vec![0u64; len.div_ceil(64) + 1];
            out[len.div_ceil(64)] = 0xdead;
            cal.or_weekly_run(start, len, &mut out);
            for j in 0..len {
                prop_assert_eq!(out[j / 64] >> (j % 64) & 1 == 1, cal.is_closed(start + 7 * j as i64).unwrap());
            }
            for j in len..(out.len() - 1) * 64 {
                prop_assert_eq!(out[j / 64] >> (j % 64) & 1, 0);
            }
            prop_assert_eq!(out[len.div_ceil(64)], 0xdead);
        }
    }
}
