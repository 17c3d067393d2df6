//! Turning errors into PostgreSQL ERRORs with a specific SQLSTATE, DETAIL and HINT.
//! Nothing here may format a key: callers pass only what a user may read.

use medanon_core::error::{InputError, Kind};
use pgrx::pg_sys::panic::ErrorReport;
use pgrx::{PgLogLevel, PgSqlErrorCode};

fn code_of(kind: Kind) -> PgSqlErrorCode {
    match kind {
        Kind::InvalidDatetimeFormat => PgSqlErrorCode::ERRCODE_INVALID_DATETIME_FORMAT,
        Kind::DatetimeFieldOverflow => PgSqlErrorCode::ERRCODE_DATETIME_FIELD_OVERFLOW,
        Kind::InvalidParameterValue => PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
        Kind::InvalidTextRepresentation => PgSqlErrorCode::ERRCODE_INVALID_TEXT_REPRESENTATION,
    }
}

/// Raise an ERROR. Does not return.
pub fn raise(code: PgSqlErrorCode, message: impl Into<String>, detail: Option<String>, hint: Option<String>) -> ! {
    let mut report = ErrorReport::new(code, message.into(), "medanon");
    if let Some(d) = detail {
        report = report.set_detail(d);
    }
    if let Some(h) = hint {
        report = report.set_hint(h);
    }
    report.report(PgLogLevel::ERROR);
    unreachable!("ereport(ERROR) returned")
}

/// Raise an internal ERROR (XX000) for an SPI failure medanon did not expect: a
/// bug, never a bad input. What SPI said goes in DETAIL, and what to do in HINT.
///
/// Only pgrx's own SPI failures arrive here (an unexpected status, a value of an
/// unexpected type). An ERROR that PostgreSQL raises inside SPI (a missing role, a
/// permission, a constraint) never becomes a `SpiError`: it leaves medanon as it
/// was raised, with its own SQLSTATE, message, DETAIL and HINT, and without a Rust
/// backtrace (see `init`).
pub fn spi_failed(message: impl Into<String>, e: pgrx::spi::SpiError) -> ! {
    raise(
        PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
        message,
        Some(format!("a query inside medanon gave a result it did not expect ({e})")),
        Some("this is a bug in medanon, not in the input: report it with the statement that raised it".into()),
    )
}

/// Keep Rust backtraces out of every error medanon raises.
///
/// pgrx's panic hook captures a backtrace for each error that unwinds through Rust
/// code (a panic, but also a PostgreSQL ERROR raised inside SPI or any other call
/// into PostgreSQL) and appends it to the DETAIL that the client sees, whenever the
/// server runs with RUST_BACKTRACE or RUST_LIB_BACKTRACE set. That is 20 lines of
/// internals in front of an analyst, and nothing a DBA can act on.
///
/// std decides whether `Backtrace::capture` captures once per library, at its first
/// call, and caches the answer (std::backtrace's module documentation), and
/// RUST_LIB_BACKTRACE takes precedence over RUST_BACKTRACE. So the first capture
/// happens here, with RUST_LIB_BACKTRACE=0, and the environment is put back as it
/// was for other libraries and child processes. Should a future std read the
/// environment every time, the variable stays set to 0 instead.
pub fn init() {
    const VAR: &str = "RUST_LIB_BACKTRACE";
    use std::backtrace::{Backtrace, BacktraceStatus};
    let saved = std::env::var_os(VAR);
    // A PostgreSQL backend (and the postmaster, when medanon is preloaded) is
    // single-threaded, so changing the environment races with no one.
    std::env::set_var(VAR, "0");
    let _ = Backtrace::capture();
    match saved {
        Some(value) => std::env::set_var(VAR, value),
        None => std::env::remove_var(VAR),
    }
    if Backtrace::capture().status() == BacktraceStatus::Captured {
        std::env::set_var(VAR, "0");
    }
}

/// Raise an ERROR for a bad input found by the pure layer.
pub fn raise_input(err: InputError) -> ! {
    raise(code_of(err.kind), err.message, err.detail, err.hint)
}

/// Unwrap a pure-layer result or raise its ERROR.
pub trait OrRaise<T> {
    fn or_raise(self) -> T;
}

impl<T> OrRaise<T> for Result<T, InputError> {
    fn or_raise(self) -> T {
        match self {
            Ok(v) => v,
            Err(e) => raise_input(e),
        }
    }
}

/// A jsonb argument, received as its text and parsed here, so that JSON nested too
/// deeply for serde_json is a clear 22023 and not a conversion failure (XX000).
pub fn json_arg(name: &str, text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| {
        raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            format!("{name} cannot be read"),
            Some(e.to_string()),
            Some("JSON may nest at most 128 levels".into()),
        )
    })
}
