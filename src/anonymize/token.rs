//! tokenize(value, domain): the keyed, irreversible replacement of an identifier.
//!
//! `tokenize` runs once per row over whole columns, and its target is a quarter of
//! the time of pgcrypto's `encode(hmac(v, key, 'sha256'), 'hex')`. The HMAC itself
//! is two SHA-256 compressions (see `medanon_core::keyed`); in a `#[pg_extern]`
//! wrapper, argument and result conversion cost about as much again (three guarded
//! calls into PostgreSQL, a Rust String, a copy). So this one function has a plain
//! V1 entry point: it reads its arguments in place, detoasting only when it must, and
//! writes the hex digits straight into the palloc'd result. `make bench` measures it.

use crate::error::raise;
use crate::keyring::with_domain_key;
use medanon_core::keyed::{Purpose, TOKEN_HEX_LEN};
use pgrx::prelude::*;
use pgrx::varlena::{varatt_is_1b_e, varatt_is_4b_c, varlena_to_byte_slice};
use pgrx::{pg_sys, PgSqlErrorCode};

/// A new person's token in a contract (`medanon._new_token()`): 64 random bits
/// from `rand`'s thread-local CSPRNG (ChaCha12, seeded from the operating
/// system's source, reseeded after 64 KiB of output and after a fork, so every
/// backend and parallel worker has its own stream). Not derived from any key, so
/// nothing can compute it again: the contract's person map is the only place it
/// lives. Reading the operating system's source once per token (a system call
/// each) took 0.69 s a million; this takes 0.15 s.
pub fn new_token() -> i64 {
    use rand::RngCore;
    rand::thread_rng().next_u64() as i64
}

pub fn check_domain(domain: &[u8]) {
    if domain.is_empty() {
        raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            "domain must not be empty",
            None,
            Some("name the kind of value, for example 'patient_id'; tokens of different domains are unrelated".into()),
        );
    }
}

/// The bytes of a text argument, detoasted only when it is compressed or stored
/// out of line (short and plain values are read where they are).
///
/// # Safety
/// `fcinfo` is a live call's, and argument `n` is a non-NULL text.
unsafe fn text_arg<'a>(fcinfo: pg_sys::FunctionCallInfo, n: usize) -> &'a [u8] {
    unsafe {
        let mut ptr = pgrx::fcinfo::pg_getarg_datum_raw(fcinfo, n).cast_mut_ptr::<pg_sys::varlena>();
        if varatt_is_4b_c(ptr) || varatt_is_1b_e(ptr) {
            ptr = pg_sys::pg_detoast_datum_packed(ptr);
        }
        varlena_to_byte_slice(ptr)
    }
}

/// `pg_finfo_` record: tells PostgreSQL that `medanon_tokenize` uses the V1
/// calling convention (what PG_FUNCTION_INFO_V1 emits in C).
#[unsafe(no_mangle)]
pub extern "C" fn pg_finfo_medanon_tokenize() -> &'static pg_sys::Pg_finfo_record {
    const V1: pg_sys::Pg_finfo_record = pg_sys::Pg_finfo_record { api_version: 1 };
    &V1
}

/// `medanon.tokenize(value text, domain text) RETURNS text`, declared in
/// `sql/finalize.sql` as STRICT, so neither argument is ever NULL here.
///
/// # Safety
/// Called by PostgreSQL's function manager with a valid `fcinfo` of two text arguments.
#[pg_guard]
#[unsafe(no_mangle)]
pub unsafe extern "C-unwind" fn medanon_tokenize(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    let (value, domain) = unsafe { (text_arg(fcinfo, 0), text_arg(fcinfo, 1)) };
    check_domain(domain);
    unsafe {
        let size = pg_sys::VARHDRSZ + TOKEN_HEX_LEN;
        let result = pg_sys::palloc(size).cast::<pg_sys::varlena>();
        pgrx::varlena::set_varsize_4b(result, size as i32);
        let digits = &mut *result.cast::<u8>().add(pg_sys::VARHDRSZ).cast::<[u8; TOKEN_HEX_LEN]>();
        with_domain_key(Purpose::Token, domain, |key| key.token_into(value, digits));
        pg_sys::Datum::from(result)
    }
}
