//! shift_date(value, person, domain): move every date of a person by one keyed
//! offset, so intervals within a person survive (drug to adverse event) while the
//! calendar dates no longer match outside records. The offset is whole weeks
//! (`medanon_core::keyed::DomainKey::week_offset`), so the weekday is kept and
//! tells nothing; `shift_candidates` counts what the holiday calendar still tells.

use crate::anonymize::token::check_domain;
use crate::error::{raise, OrRaise};
use crate::gucs::MAX_SHIFT_DAYS;
use crate::keyring::with_domain_key;
use medanon_core::keyed::Purpose;
use pgrx::datum::{Date, Timestamp, TimestampWithTimeZone};
use pgrx::{pg_sys, PgSqlErrorCode};

const USECS_PER_DAY: i64 = 86_400_000_000;

/// The person's offset in days in `domain`: whole weeks, never 0.
pub fn offset_days(person: &str, domain: &str) -> i32 {
    check_domain(domain.as_bytes());
    if person.is_empty() {
        raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            "person must not be empty",
            None,
            Some("pass the person's stable id; all rows with an empty id would share one offset".into()),
        );
    }
    let max = MAX_SHIFT_DAYS.get().max(1) as u32;
    with_domain_key(Purpose::DateShift, domain.as_bytes(), |key| key.week_offset(person.as_bytes(), max))
}

fn overflow() -> ! {
    raise(
        PgSqlErrorCode::ERRCODE_DATETIME_FIELD_OVERFLOW,
        "shifted date is out of range",
        None,
        Some("the value is too close to the end of the supported date range to be shifted".into()),
    )
}

pub fn shift_date(value: Date, person: &str, domain: &str) -> Date {
    let offset = offset_days(person, domain);
    if !value.is_finite() {
        return value;
    }
    // 2000-01-01 + days must stay inside PostgreSQL's date range (4713 BC .. 5874897 AD).
    const MIN_DAYS: i32 = -2_451_545; // 4714-11-24 BC, Julian day 0
    const MAX_DAYS: i32 = 2_147_483_494 - 2_451_545; // last Julian day PostgreSQL accepts
    let shifted = value.to_pg_epoch_days() as i64 + offset as i64;
    if shifted < MIN_DAYS as i64 || shifted >= MAX_DAYS as i64 {
        overflow();
    }
    // SAFETY: checked against the range PostgreSQL's date type accepts.
    unsafe { Date::from_pg_epoch_days(shifted as i32) }
}

fn shift_micros(micros: i64, offset: i32) -> i64 {
    micros.checked_add(offset as i64 * USECS_PER_DAY).unwrap_or_else(|| overflow())
}

/// Timestamps move by whole days of 24 hours, so the interval between two events
/// of a person is kept to the microsecond.
pub fn shift_timestamp(value: Timestamp, person: &str, domain: &str) -> Timestamp {
    let offset = offset_days(person, domain);
    if !value.is_finite() {
        return value;
    }
    let micros: pg_sys::Timestamp = value.into_inner();
    Timestamp::try_from(shift_micros(micros, offset)).unwrap_or_else(|_| overflow())
}

pub fn shift_timestamptz(value: TimestampWithTimeZone, person: &str, domain: &str) -> TimestampWithTimeZone {
    let offset = offset_days(person, domain);
    if !value.is_finite() {
        return value;
    }
    let micros: pg_sys::TimestampTz = value.into_inner();
    TimestampWithTimeZone::try_from(shift_micros(micros, offset)).unwrap_or_else(|_| overflow())
}

/// Internal to publish: how many whole-week offsets an analyst who knows the
/// Japanese outpatient calendar (weekends, national holidays, 12/29-1/3), the
/// study window and the offset range cannot rule out for one person, from the
/// person's real dates and true offset (`medanon_core::shift_attack`). NULL
/// elements and infinite dates show no calendar day and are skipped.
pub fn shift_candidates(
    real_dates: pgrx::datum::Array<'_, Date>,
    date_offset: i32,
    window_start: Date,
    window_end: Date,
    max_shift_days: i32,
) -> i32 {
    use medanon_core::shift_attack::{candidate_count, Window};
    if !window_start.is_finite() || !window_end.is_finite() {
        raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            "study window must be finite",
            None,
            Some("pass the first and the last real date of the study".into()),
        );
    }
    let allowed = medanon_core::keyed::MAX_SHIFT_DAYS_RANGE;
    if !u32::try_from(max_shift_days).is_ok_and(|m| allowed.contains(&m)) {
        raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            format!("max_shift_days must be between {} and {}", allowed.start(), allowed.end()),
            Some(format!("got {max_shift_days}")),
            Some("pass the setting medanon.max_shift_days, as the default does".into()),
        );
    }
    let real: Vec<i64> =
        real_dates.iter().flatten().filter(|d| d.is_finite()).map(|d| d.to_pg_epoch_days() as i64).collect();
    let calendar = medanon_core::closed_days::japan();
    // The window a publish passes is the span of the contract's real dates, which
    // may reach outside the holiday calendar (1970 to 2050): the count keeps to the
    // part the calendar covers, and dates outside it count as outside the window
    // (the truth breaking the rule, which the count tolerates). A window the
    // calendar does not cover at all says nothing the calendar could narrow.
    let (covered_first, covered_last) = calendar.coverage();
    let window = Window {
        first: (window_start.to_pg_epoch_days() as i64).max(covered_first),
        last: (window_end.to_pg_epoch_days() as i64).min(covered_last),
    };
    if window.first > window.last {
        if window_start > window_end {
            raise(
                PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
                "study window ends before it starts",
                None,
                Some("pass the first and the last real date of the study, in that order".into()),
            );
        }
        return i32::MAX;
    }
    let count = candidate_count(calendar, &real, date_offset as i64, window, max_shift_days as u32).or_raise();
    // At most 2 · 3650 candidates: always an integer.
    count.min(i32::MAX as u64) as i32
}
