//! Settings. Those that change what a pseudonym is are superuser-only (PGC_SUSET):
//! an operator who could lower `max_shift_days` for a session could make dates
//! nearly unshifted.

use pgrx::{GucContext, GucFlags, GucRegistry, GucSetting};

/// Half-width of the date-shift range in days. Offsets are whole weeks within it
/// (so at least 7); the default, 728 days (104 weeks), and why, are in
/// `medanon_core::keyed::DEFAULT_MAX_SHIFT_DAYS`.
pub static MAX_SHIFT_DAYS: GucSetting<i32> = GucSetting::<i32>::new(medanon_core::keyed::DEFAULT_MAX_SHIFT_DAYS as i32);

/// Dice similarity at or above which two records of different persons in one
/// block (birth date and sex) are proposed in `medanon.link_candidates`. 0.7: on
/// the synthetic data (20,000 patients, seed 7), unlinked pairs of one true person
/// score 0.6-0.9, mostly above 0.7, where only 12 pairs of different persons in the
/// same block do.
pub static LINK_CANDIDATE_THRESHOLD: GucSetting<f64> = GucSetting::<f64>::new(0.7);

/// Days between a notification and the first day a patient's records may flow
/// (the waiting period of the Act; about 30 days in practice).
pub static NOTICE_WAIT_DAYS: GucSetting<i32> = GucSetting::<i32>::new(30);

/// The operator's time zone, in which a contract's dates (approval, expiry) are
/// days: Japan's, unless the operator sets another. Superuser-only, and the views
/// hold it as a literal, so no analyst setting (TimeZone) moves an expiry.
pub static TIME_ZONE: GucSetting<Option<std::ffi::CString>> = GucSetting::<Option<std::ffi::CString>>::new(Some(c"Asia/Tokyo"));

/// The operator's time zone, as set.
pub fn time_zone() -> String {
    TIME_ZONE.get().map(|z| z.to_string_lossy().into_owned()).unwrap_or_else(|| "Asia/Tokyo".into())
}

pub fn init() {
    GucRegistry::define_int_guc(
        c"medanon.notice_wait_days",
        c"Days after a notification before a patient's records may flow into contracts.",
        c"A record is eligible when its patient was notified at least this many days ago and has not opted out.",
        &NOTICE_WAIT_DAYS,
        0,
        3650,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_float_guc(
        c"medanon.link_candidate_threshold",
        c"Dice similarity of kana-name encodings above which link_patients proposes a fuzzy candidate.",
        c"Candidates are only proposed for review; nothing is merged on their strength.",
        &LINK_CANDIDATE_THRESHOLD,
        0.0,
        1.0,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_string_guc(
        c"medanon.time_zone",
        c"The operator's time zone, in which contract dates such as expires_on are days.",
        c"Contract views and snapshots compare expires_on with today in this zone, whatever the session's TimeZone.",
        &TIME_ZONE,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"medanon.max_shift_days",
        c"Largest date shift, in days, that shift_date applies in either direction.",
        c"Offsets are whole weeks, uniform over -W..-1 and 1..W weeks with W = N/7, so weekdays are kept. Changing it changes every new shifted date.",
        &MAX_SHIFT_DAYS,
        *medanon_core::keyed::MAX_SHIFT_DAYS_RANGE.start() as i32,
        *medanon_core::keyed::MAX_SHIFT_DAYS_RANGE.end() as i32,
        GucContext::Suset,
        GucFlags::default(),
    );
    unsafe {
        pgrx::pg_sys::MarkGUCPrefixReserved(c"medanon".as_ptr());
    }
}
