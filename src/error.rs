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
/// bug, never a bad input. The SPI error goes in DETAIL.
pub fn spi_failed(message: impl Into<String>, e: pgrx::spi::SpiError) -> ! {
    raise(PgSqlErrorCode::ERRCODE_INTERNAL_ERROR, message, Some(e.to_string()), None)
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
