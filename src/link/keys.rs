//! Per-record link keys, as SQL functions that `link_patients` calls over the whole
//! staging table in one statement. Each is keyed with the link key (never rotated),
//! and none returns anything but an HMAC, a keyed Bloom filter or a reason.

use crate::keyring::with_domain_key;
use pgrx::datum::Uuid;
use medanon_core::calendar::Ymd;
use medanon_core::jpdate::parse_japanese_date;
use medanon_core::keyed::Purpose;
use medanon_core::link::{block_message, clk, digest_message, id1_message, id2_message, kanji_message, name_edits};
use medanon_core::normalize::{
    normalize_insured_number, normalize_insured_symbol, normalize_insurer_number, normalize_kana, normalize_kanji_name,
    normalize_sex, DigitsField, Sex, SexField,
};

/// A link key: the HMAC-SHA256 under the link key, truncated to 128 bits and
/// stored as `uuid`. 128 bits keep collisions out of reach (2^64 records for an
/// even chance), and a fixed 16-byte type makes the indexes on person_link half the
/// size of 32-byte `bytea` ones, with cheaper comparisons.
fn link_key(domain: &[u8], message: &[u8]) -> Uuid {
    let mac = with_domain_key(Purpose::LinkKey, domain, |key| key.mac(message));
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&mac[..16]);
    Uuid::from_bytes(bytes)
}

/// The normalized birth date and sex, when both are usable.
fn birth_and_sex(birth: Option<&str>, sex: Option<&str>) -> Option<(Ymd, Sex)> {
    let birth = parse_japanese_date(birth?).ok()?;
    match normalize_sex(sex?) {
        SexField::Known(sex) => Some((birth, sex)),
        _ => None,
    }
}

/// The card's three fields, when all are present and well-formed.
fn card(insurer: Option<&str>, symbol: Option<&str>, number: Option<&str>) -> Option<(String, String, String)> {
    let DigitsField::Digits(insurer) = normalize_insurer_number(insurer?) else { return None };
    let symbol = normalize_insured_symbol(symbol?)?;
    let DigitsField::Digits(number) = normalize_insured_number(number?) else { return None };
    Some((insurer, symbol, number))
}

/// Why a record cannot be linked, or `None` when it can.
#[allow(clippy::too_many_arguments)]
pub fn problem(
    institution_code: Option<&str>,
    local_patient_id: Option<&str>,
    kana: Option<&str>,
    birth: Option<&str>,
    sex: Option<&str>,
    insurer: Option<&str>,
    symbol: Option<&str>,
    number: Option<&str>,
) -> Option<&'static str> {
    let blank = |v: Option<&str>| v.is_none_or(|s| s.trim().is_empty());
    if blank(institution_code) || blank(local_patient_id) {
        return Some("missing institution_code or local_patient_id");
    }
    match birth {
        None => return Some("missing birth date"),
        Some(b) if parse_japanese_date(b).is_err() => return Some("unparseable birth date"),
        _ => {}
    }
    match sex.map(normalize_sex) {
        None | Some(SexField::Unknown) => return Some("missing sex"),
        Some(SexField::Unrecognized) => return Some("unrecognized sex code"),
        Some(SexField::Known(_)) => {}
    }
    let has_kana = kana.and_then(normalize_kana).is_some();
    if !has_kana && card(insurer, symbol, number).is_none() {
        return Some("no link key: no kana name and no complete insurance card");
    }
    None
}

pub fn id1(insurer: Option<&str>, symbol: Option<&str>, number: Option<&str>, birth: Option<&str>, sex: Option<&str>) -> Option<Uuid> {
    let (birth, sex) = birth_and_sex(birth, sex)?;
    let (insurer, symbol, number) = card(insurer, symbol, number)?;
    Some(link_key(b"id1", &id1_message(&insurer, &symbol, &number, birth, sex)))
}

pub fn id2(kana: Option<&str>, birth: Option<&str>, sex: Option<&str>) -> Option<Uuid> {
    let (birth, sex) = birth_and_sex(birth, sex)?;
    let kana = normalize_kana(kana?)?;
    Some(link_key(b"id2", &id2_message(&kana, birth, sex)))
}

/// The block of birth date and sex, as 64 keyed bits: blocks only need to be
/// told apart, and a `bigint` is the cheapest key to group and join on.
pub fn block(birth: Option<&str>, sex: Option<&str>) -> Option<i64> {
    let (birth, sex) = birth_and_sex(birth, sex)?;
    let mac = with_domain_key(Purpose::LinkKey, b"block", |key| key.mac(&block_message(birth, sex)));
    Some(i64::from_be_bytes([mac[0], mac[1], mac[2], mac[3], mac[4], mac[5], mac[6], mac[7]]))
}

pub fn name_clk(kana: Option<&str>) -> Option<Vec<u8>> {
    let kana = normalize_kana(kana?)?;
    Some(with_domain_key(Purpose::LinkKey, b"clk", |key| clk(&kana, |bigram| key.mac(bigram)).to_vec()))
}

/// The keyed normalized kanji name (variants folded), with birth date and sex:
/// what tells a typo in the kana (same kanji) from a twin (another given name).
pub fn kanji(name_kanji: Option<&str>, birth: Option<&str>, sex: Option<&str>) -> Option<Uuid> {
    let (birth, sex) = birth_and_sex(birth, sex)?;
    let kanji = normalize_kanji_name(name_kanji?)?;
    Some(link_key(b"kanji", &kanji_message(&kanji, birth, sex)))
}

/// The kana name's edit encoding (`medanon_core::link::name_edits`), under a
/// SipHash key derived from the link key and the record's birth date and sex, so
/// two records' encodings compare only within one block.
pub fn edits(kana: Option<&str>, birth: Option<&str>, sex: Option<&str>) -> Option<Vec<u8>> {
    let (birth, sex) = birth_and_sex(birth, sex)?;
    let kana = normalize_kana(kana?)?;
    let mac = with_domain_key(Purpose::LinkKey, b"edits", |key| key.mac(&block_message(birth, sex)));
    let mut sip = [0u8; 16];
    sip.copy_from_slice(&mac[..16]);
    Some(name_edits(&kana, &sip).to_vec())
}

/// The keyed digest of a record's fields as sent: equal digests mean the record
/// is unchanged since it was keyed, and a re-run skips it.
pub fn digest(fields: &[Option<&str>]) -> Uuid {
    link_key(b"digest", &digest_message(fields))
}

// The SQL faces of the keys added with linkage v2, declared here rather than in
// lib.rs beside the older ones: internal to link_patients, operator only
// (sql/finalize.sql), like `_link_id1`.

#[pgrx::pg_extern(stable, parallel_safe)]
fn _link_kanji(name_kanji: Option<&str>, birth_date: Option<&str>, sex: Option<&str>) -> Option<Uuid> {
    kanji(name_kanji, birth_date, sex)
}

#[pgrx::pg_extern(stable, parallel_safe)]
fn _link_edits(name_kana: Option<&str>, birth_date: Option<&str>, sex: Option<&str>) -> Option<Vec<u8>> {
    edits(name_kana, birth_date, sex)
}

#[allow(clippy::too_many_arguments)]
#[pgrx::pg_extern(stable, parallel_safe)]
fn _link_digest(
    institution_code: Option<&str>,
    local_patient_id: Option<&str>,
    name_kana: Option<&str>,
    name_kanji: Option<&str>,
    birth_date: Option<&str>,
    sex: Option<&str>,
    insurer_number: Option<&str>,
    insured_symbol: Option<&str>,
    insured_number: Option<&str>,
) -> Uuid {
    digest(&[
        institution_code,
        local_patient_id,
        name_kana,
        name_kanji,
        birth_date,
        sex,
        insurer_number,
        insured_symbol,
        insured_number,
    ])
}
