//! DICOM objects de-identified per contract (issue 20): the glue around
//! `medanon-dicom`, which does all the work. Here: the keyed UID derivation (the
//! keyring's, under the contract's domain), the person's token and offset, and
//! the errors as SQLSTATEs.
//!
//! A contract's `dicom` column is written by publish and refresh, as the
//! extension owner, through `_dicom_object` with the token and offset of the
//! contract's map: the analyst reads bytes and calls nothing keyed. The
//! operator's ETL calls `deidentify_dicom`, which looks the person up in the map.

use crate::error::{raise, spi_failed};
use crate::keyring::with_domain_key;
use medanon_core::contract::{dicom_age_band, parse, Rule};
use medanon_core::keyed::Purpose;
use medanon_dicom::{AgePolicy, DicomError, ErrorKind, Options, Outcome, Person};
use pgrx::datum::Date;
use pgrx::prelude::*;
use pgrx::PgSqlErrorCode;

/// The domain of a contract's UIDs: the contract's domain (`contract:<id>`, as
/// its date offsets), a NUL, and a label. No SQL text holds a NUL, so no
/// `tokenize(value, domain)` call reaches this subkey.
fn uid_domain(contract_id: &str) -> Vec<u8> {
    let mut d = format!("contract:{contract_id}").into_bytes();
    d.push(0);
    d.extend_from_slice(b"dicom-uid");
    d
}

/// 128 bits of the keyed MAC of a UID, under the contract's UID subkey of the
/// link key: the one key never rotated (sql/bootstrap.sql), so a rotate_key()
/// leaves every UID of a contract as it was, and a slice that a refresh adds after
/// a rotation joins its study's UID. The subkey's domain (the contract's, a NUL,
/// a label) is no domain of a link key's.
fn uid_bits(domain: &[u8], uid: &[u8]) -> u128 {
    let mac = with_domain_key(Purpose::LinkKey, domain, |key| key.mac(uid));
    let mut first = [0u8; 16];
    first.copy_from_slice(&mac[..16]);
    u128::from_be_bytes(first)
}

/// Raises a refusal of medanon-dicom. 22P03 invalid_binary_representation: the
/// bytes are not a readable DICOM object (not one at all, truncated, or a length
/// that runs past the end). 54000 program_limit_exceeded: a limit of medanon's
/// (nesting, size), not a fault of the standard. 0A000: a transfer syntax that
/// needs a codec.
fn raise_dicom(e: DicomError) -> ! {
    let code = match e.kind {
        ErrorKind::Malformed => PgSqlErrorCode::ERRCODE_INVALID_BINARY_REPRESENTATION,
        ErrorKind::Limit => PgSqlErrorCode::ERRCODE_PROGRAM_LIMIT_EXCEEDED,
        ErrorKind::Unsupported => PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
    };
    raise(code, e.message, Some(e.detail), Some(e.hint))
}

fn run(object: &[u8], contract_id: &str, person: Person<'_>, options: Options) -> Outcome {
    let domain = uid_domain(contract_id);
    let key = |uid: &[u8]| uid_bits(&domain, uid);
    medanon_dicom::deidentify(object, person, options, &key).unwrap_or_else(|e| raise_dicom(e))
}

/// `_dicom_object`: one object of a contract's data table. NULL for an object
/// withheld for its burned-in annotation (publish counts them).
#[allow(clippy::too_many_arguments)]
pub fn contract_object(
    object: &[u8],
    token: i64,
    date_offset: i32,
    contract_id: &str,
    age_band: Option<i32>,
    age_top: Option<i32>,
    keep_sex: bool,
    accept_burned_in: bool,
) -> Option<Vec<u8>> {
    let options = Options { age: age_policy(age_band, age_top), keep_sex, accept_burned_in };
    // The token is the contract's random bigint; PatientID (LO) holds its decimal.
    let token = token.to_string();
    match run(object, contract_id, Person { token: &token, date_offset }, options) {
        Outcome::Object(bytes) => Some(bytes),
        Outcome::BurnedInAnnotation => None,
    }
}

/// The age policy of a `dicom` column's band and top (both, positive) or none.
fn age_policy(age_band: Option<i32>, age_top: Option<i32>) -> AgePolicy {
    match (age_band, age_top) {
        (Some(band), Some(top)) if band > 0 && top > 0 => AgePolicy::Band { band: band as u32, top: top as u32 },
        _ => AgePolicy::Remove,
    }
}

/// `_dicom_quasi_identifiers`: the PatientAge and PatientSex the object shows
/// once de-identified under these options, as one text (`age|sex`, empty where
/// it shows none), for the person's class: k counts what the images show.
pub fn quasi_identifiers(object: &[u8], age_band: Option<i32>, age_top: Option<i32>, keep_sex: bool) -> String {
    let options = Options { age: age_policy(age_band, age_top), keep_sex, accept_burned_in: true };
    let (age, sex) = medanon_dicom::shown_demographics(object, options).unwrap_or_else(|e| raise_dicom(e));
    format!("{}|{}", age.unwrap_or_default(), sex.unwrap_or_default())
}

/// `_dicom_study_date`: the object's study date, unshifted, for the calendar check.
pub fn study_date(object: &[u8]) -> Option<Date> {
    use chrono::Datelike;
    let date = medanon_dicom::study_date(object).unwrap_or_else(|e| raise_dicom(e))?;
    // A DA date is within years 0000-9999, inside PostgreSQL's date range.
    Date::new(date.year(), date.month() as u8, date.day() as u8).ok()
}

/// `deidentify_dicom(object, contract_id, person_id)`, for the operator's ETL:
/// the object as the contract's `dicom` column would show it for that person.
/// The contract must be published and not expired, and the person shown in it.
pub fn for_person(object: &[u8], contract_id: &str, person_id: i64) -> Option<Vec<u8>> {
    let row = Spi::connect(|client| {
        let rows = client.select(
            "SELECT c.status, c.spec::text, (c.expires_on < medanon.contract_today()), m.token, m.date_offset, m.state
               FROM medanon.contract c
               LEFT JOIN medanon.contract_person m ON m.contract_id = c.contract_id AND m.person_id = $2
              WHERE c.contract_id = $1",
            Some(1),
            &[contract_id.into(), person_id.into()],
        )?;
        match rows.into_iter().next() {
            None => Ok(None),
            Some(r) => Ok(Some((
                r.get::<String>(1)?.unwrap_or_default(),
                r.get::<String>(2)?.unwrap_or_default(),
                r.get::<bool>(3)?.unwrap_or(true),
                r.get::<i64>(4)?,
                r.get::<i32>(5)?,
                r.get::<String>(6)?,
            ))),
        }
    })
    .unwrap_or_else(|e| spi_failed("could not read the contract", e));
    let Some((status, spec, expired, token, offset, state)) = row else {
        raise(PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT, format!("contract \"{contract_id}\" does not exist"), None, None);
    };
    if status != "published" || expired {
        raise(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            format!("contract \"{contract_id}\" is not in force"),
            Some(format!("its status is {status}{}", if expired { ", and it has expired" } else { "" })),
            Some("publish the contract first; an expired or revoked contract provides nothing".into()),
        );
    }
    // The stored spec passed these checks when it was created; its expiry was checked above.
    let far_past = medanon_core::calendar::Ymd { year: 1900, month: 1, day: 1 };
    let contract = parse(&spec, far_past).unwrap_or_else(|e| crate::expose::refuse(e));
    let Some(rule) = contract.spec.tables.iter().flat_map(|t| t.columns.values()).find_map(|c| match c.rule {
        Rule::Dicom(d) => Some(d),
        _ => None,
    }) else {
        raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            format!("contract \"{contract_id}\" provides no DICOM objects"),
            Some("none of its columns has the dicom rule".into()),
            Some("add a column of class image with the rule \"dicom\" to the contract's spec".into()),
        );
    };
    let (Some(token), Some(offset), Some(state)) = (token, offset, state) else {
        raise(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            format!("person {person_id} is not in contract \"{contract_id}\""),
            Some("the contract's map has no such person; it holds the persons of its sources at the last publish or refresh".into()),
            Some("refresh the contract after loading the person's records".into()),
        );
    };
    if state != medanon_core::plan::PersonState::Visible.name() {
        raise(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            format!("person {person_id} is not shown in contract \"{contract_id}\""),
            Some(format!("the person's state in the contract is {state}")),
            Some("a withheld person's objects are not provided".into()),
        );
    }
    let band = if rule.age_band { dicom_age_band(&contract.spec) } else { None };
    let out = contract_object(object, token, offset, contract_id, band.map(|b| b.0), band.map(|b| b.1), rule.keep_sex, rule.accept_burned_in);
    if out.is_none() {
        pgrx::notice!("the object says BurnedInAnnotation = YES and contract \"{contract_id}\" does not accept that: NULL");
    }
    out
}
