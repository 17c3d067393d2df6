//! tokenize(value, domain): the keyed, irreversible replacement of an identifier.

use crate::error::raise;
use crate::keyring::with_domain_key;
use medanon_core::keyed::{Purpose, TOKEN_HEX_LEN};
use pgrx::PgSqlErrorCode;

pub fn check_domain(domain: &str) {
    if domain.is_empty() {
        raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            "domain must not be empty",
            None,
            Some("name the kind of value, for example 'patient_id'; tokens of different domains are unrelated".into()),
        );
    }
}

pub fn tokenize(value: &str, domain: &str) -> String {
    check_domain(domain);
    let mut out = [0u8; TOKEN_HEX_LEN];
    with_domain_key(Purpose::Token, domain, |key| key.token_into(value.as_bytes(), &mut out));
    // Hex digits are ASCII, so this cannot fail; a plain check of 64 ASCII bytes is
    // cheap, where `from_utf8_lossy` was 11% of the time in `make bench`.
    match std::str::from_utf8(&out) {
        Ok(token) => token.to_owned(),
        Err(_) => unreachable!("hex digits are ASCII"),
    }
}
