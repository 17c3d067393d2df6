//! Running code as a SECURITY DEFINER function would: with the extension owner's
//! privileges (`as_owner`), with `search_path = pg_catalog, pg_temp`
//! (`with_safe_search_path`), or with other settings changed for its duration
//! (`with_settings`).
//!
//! Linking, contracts and risk analysis use these; the keyed functions do not (they
//! read the keyring directly, see `keyring`). What each helper changes is restored
//! on the way out, and on error by PostgreSQL's abort processing, exactly as for a
//! function's `SECURITY DEFINER` and `SET` clauses.
//!
//! Both changes are allowed in a parallel worker too: `SetUserIdAndSecContext` only
//! sets two variables, and `set_config_option` accepts `GUC_ACTION_SAVE` (a
//! function's `SET` clause) during a parallel operation. The callers today are all
//! PARALLEL UNSAFE functions, so they run in the leader.

use pgrx::pg_sys;
use pgrx::prelude::*;

/// Run `f` with `search_path = pg_catalog, pg_temp`, as a function with that
/// `SET` clause would: nothing in a caller's schemas (a look-alike function or
/// operator) is resolved by the SQL `f` runs, or stored in objects it creates.
/// On error, PostgreSQL's abort processing restores the setting.
pub fn with_safe_search_path<R>(f: impl FnOnce() -> R) -> R {
    with_settings(&[(c"search_path", c"pg_catalog, pg_temp")], f)
}

/// Run `f` with settings changed as a function's `SET` clause would change them,
/// and restored afterwards (on error, by PostgreSQL's abort processing).
pub fn with_settings<R>(settings: &[(&std::ffi::CStr, &std::ffi::CStr)], f: impl FnOnce() -> R) -> R {
    let nest_level = unsafe {
        let level = pg_sys::NewGUCNestLevel();
        for (name, value) in settings {
            pg_sys::set_config_option(
                name.as_ptr(),
                value.as_ptr(),
                pg_sys::GucContext::PGC_USERSET,
                pg_sys::GucSource::PGC_S_SESSION,
                pg_sys::GucAction::GUC_ACTION_SAVE,
                true,
                0,
                false,
            );
        }
        level
    };
    let result = f();
    unsafe { pg_sys::AtEOXact_GUC(true, nest_level) };
    result
}

/// Run `f` with the privileges of `owner` (the extension owner, who owns the
/// keyring: see `keyring::keyring_and_owner`) and a safe search_path, as a
/// SECURITY DEFINER function with `SET search_path` would. The user is restored on
/// the way out, also on error (and PostgreSQL's abort processing restores it too).
pub fn as_owner<R>(owner: pg_sys::Oid, f: impl FnOnce() -> R + std::panic::UnwindSafe) -> R {
    let mut saved_user = pg_sys::InvalidOid;
    let mut saved_context = 0i32;
    unsafe {
        pg_sys::GetUserIdAndSecContext(&mut saved_user, &mut saved_context);
        pg_sys::SetUserIdAndSecContext(
            owner,
            saved_context
                | pg_sys::SECURITY_LOCAL_USERID_CHANGE as i32
                | pg_sys::SECURITY_RESTRICTED_OPERATION as i32,
        );
    }
    with_safe_search_path(|| {
        PgTryBuilder::new(f)
            .finally(|| unsafe { pg_sys::SetUserIdAndSecContext(saved_user, saved_context) })
            .execute()
    })
}
