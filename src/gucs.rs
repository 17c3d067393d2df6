//! Settings. Those that change what a pseudonym is are superuser-only (PGC_SUSET):
//! an operator who could lower `max_shift_days` for a session could make dates
//! nearly unshifted.

use pgrx::{GucContext, GucFlags, GucRegistry, GucSetting};

/// Half-width of the date-shift window in days (DESIGN.md: default 365).
pub static MAX_SHIFT_DAYS: GucSetting<i32> = GucSetting::<i32>::new(365);

pub fn init() {
    GucRegistry::define_int_guc(
        c"medanon.max_shift_days",
        c"Largest date shift, in days, that shift_date applies in either direction.",
        c"Offsets are uniform over [-N, -1] and [1, N]. Changing it changes every shifted date.",
        &MAX_SHIFT_DAYS,
        1,
        3650,
        GucContext::Suset,
        GucFlags::default(),
    );
    unsafe {
        pgrx::pg_sys::MarkGUCPrefixReserved(c"medanon".as_ptr());
    }
}
