//! Errors of the pure layer. They carry what PostgreSQL needs to report them well
//! (a class that maps to one SQLSTATE, a short message, DETAIL and HINT), but no
//! PostgreSQL types: the pgrx layer does the mapping in `src/error.rs`.

use std::fmt;

/// The kind of a bad input. Each maps to exactly one SQLSTATE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// 22007 invalid_datetime_format: a date string we cannot read.
    InvalidDatetimeFormat,
    /// 22008 datetime_field_overflow: a date we read but cannot represent or use.
    DatetimeFieldOverflow,
    /// 22023 invalid_parameter_value: an argument outside its allowed set or range.
    InvalidParameterValue,
    /// 22P02 invalid_text_representation: a code (postal code, ...) that is not well formed.
    InvalidTextRepresentation,
}

impl Kind {
    pub fn sqlstate(self) -> &'static str {
        match self {
            Kind::InvalidDatetimeFormat => "22007",
            Kind::DatetimeFieldOverflow => "22008",
            Kind::InvalidParameterValue => "22023",
            Kind::InvalidTextRepresentation => "22P02",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputError {
    pub kind: Kind,
    pub message: String,
    pub detail: Option<String>,
    pub hint: Option<String>,
}

impl InputError {
    pub fn new(kind: Kind, message: impl Into<String>) -> Self {
        InputError { kind, message: message.into(), detail: None, hint: None }
    }
    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind.sqlstate(), self.message)?;
        if let Some(d) = &self.detail {
            write!(f, " (detail: {d})")?;
        }
        Ok(())
    }
}

impl std::error::Error for InputError {}

pub type Result<T> = std::result::Result<T, InputError>;

/// Quote a user's value for an error message. Long values are cut, so that a
/// 1 MB string does not end up in the server log whole.
pub fn quoted(value: &str) -> String {
    const MAX_CHARS: usize = 40;
    let mut out = String::with_capacity(value.len().min(MAX_CHARS * 4) + 2);
    out.push('"');
    let mut chars = value.chars();
    for c in chars.by_ref().take(MAX_CHARS) {
        if c.is_control() {
            out.push('?');
        } else {
            out.push(c);
        }
    }
    if chars.next().is_some() {
        out.push('…');
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_cuts_long_values_and_masks_controls() {
        assert_eq!(quoted("abc"), "\"abc\"");
        assert_eq!(quoted("a\nb"), "\"a?b\"");
        let long = "x".repeat(100);
        let q = quoted(&long);
        assert_eq!(q.chars().count(), 40 + 3);
        assert!(q.ends_with("…\""));
    }
}
