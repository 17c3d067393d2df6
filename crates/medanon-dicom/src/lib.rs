//! DICOM de-identification for medanon, with dicom-rs: the PS3.15 Annex E Basic
//! Application Level Confidentiality Profile ([`profile`]), with the Retain
//! Longitudinal Temporal Information with Modified Dates option (dates moved by the
//! person's offset in the contract), PatientID replaced by the person's token, and
//! every UID the profile replaces derived by a keyed function the caller supplies.
//!
//! Nothing here sees a key: the caller hands in the token, the offset and a
//! [`UidKey`]. No PostgreSQL types either, so plain `cargo test` and the fuzzer
//! reach all of it.
//!
//! Hostile input: dicom-rs allocates a value's declared length before reading it
//! (0xFFFFFFF0 bytes made it zero 4.2 GB) and parses nested sequences by recursion
//! (5,000 levels overflowed the stack and aborted the process; research notes of
//! issue 20). So [`prescan`] walks the object first with dicom-rs' lazy reader,
//! which skips values without allocating, and refuses a declared length longer
//! than the input or nesting deeper than [`MAX_DEPTH`].

pub mod profile;
pub mod sample;

use dicom_core::value::{DataSetSequence, Value};
use dicom_core::{DataElement, PrimitiveValue, Tag, VR};
use dicom_dictionary_std::tags;
use dicom_encoding::transfer_syntax::TransferSyntaxIndex;
use dicom_object::file::ReadPreamble;
use dicom_object::{InMemDicomObject, OpenFileOptions};
use dicom_parser::dataset::lazy_read::LazyDataSetReader;
use dicom_parser::dataset::LazyDataToken;
use dicom_transfer_syntax_registry::TransferSyntaxRegistry;
use profile::Action;
use std::io::Cursor;

/// The deepest nesting of sequences accepted. Real objects nest a few levels (a
/// structured report rarely more than 10); dicom-rs' recursive parse used about
/// 8 KB of stack a level in the research probe, so 32 levels stay far below a
/// backend's stack.
pub const MAX_DEPTH: usize = 32;

/// The largest object accepted: 256 MiB. A CT slice is about 0.5 MB; the
/// in-memory object and the output each take about the input's size again.
pub const MAX_OBJECT_BYTES: usize = 256 << 20;

/// What `DeidentificationMethod` (0012,0063) says: LO, at most 64 characters.
pub const METHOD: &str = "DICOM PS3.15 2026c E.1-1 Basic Profile, Modified Dates (medanon)";

/// Explicit VR Little Endian: the file meta group's encoding (PS3.10 7.1).
const EXPLICIT_VR_LE: &str = "1.2.840.10008.1.2.1";

/// The kind of a refusal; the extension maps each to one SQLSTATE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Not a DICOM Part 10 object (no `DICM` magic), or unreadable, truncated or
    /// inconsistent bytes (22P03 invalid_binary_representation).
    Malformed,
    /// Past one of medanon's limits: nesting or size (54000 program_limit_exceeded).
    Limit,
    /// A transfer syntax medanon cannot read without a codec, such as Deflated
    /// Explicit VR Little Endian (0A000 feature_not_supported).
    Unsupported,
}

/// Why an object was refused: a short message, the variable part, and the fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DicomError {
    pub kind: ErrorKind,
    pub message: String,
    pub detail: String,
    pub hint: String,
}

impl std::fmt::Display for DicomError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.message, self.detail)
    }
}

fn malformed(detail: impl Into<String>) -> DicomError {
    DicomError {
        kind: ErrorKind::Malformed,
        message: "invalid DICOM object".into(),
        detail: detail.into(),
        hint: "store each object as a whole DICOM Part 10 file (128-byte preamble, \"DICM\", file meta group, data set)".into(),
    }
}

fn limit(detail: impl Into<String>) -> DicomError {
    DicomError {
        kind: ErrorKind::Limit,
        message: "DICOM object exceeds a medanon limit".into(),
        detail: detail.into(),
        hint: format!(
            "medanon accepts objects up to {} MiB with sequences nested at most {MAX_DEPTH} deep; check the object with a DICOM validator",
            MAX_OBJECT_BYTES >> 20
        ),
    }
}

/// The keyed UID derivation, supplied by the caller (the extension derives it
/// from the keyring under the contract's domain). 128 bits of a keyed MAC of the
/// original UID's bytes.
pub trait UidKey {
    fn uid_bits(&self, uid: &[u8]) -> u128;
}

impl<F: Fn(&[u8]) -> u128> UidKey for F {
    fn uid_bits(&self, uid: &[u8]) -> u128 {
        self(uid)
    }
}

/// A UID under the `2.25` root (PS3.5 B.2): the decimal of a 128-bit value,
/// without leading zeros; at most 44 characters, within UI's 64.
pub fn uid_of(bits: u128) -> String {
    format!("2.25.{bits}")
}

/// What becomes of PatientAge (0010,1010).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgePolicy {
    /// The basic profile: removed.
    Remove,
    /// The lower bound of the age's band in years (`band` wide), top-coded at
    /// `top`: 47Y in bands of 5 is `045Y`, 93Y with top 90 is `090Y`. AS holds
    /// four characters, so a band is written as its lower bound.
    Band { band: u32, top: u32 },
}

/// The contract's choices for one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    pub age: AgePolicy,
    /// Keep PatientSex (0010,0040) when it is M, F or O; otherwise it is emptied
    /// (the basic profile's Z).
    pub keep_sex: bool,
    /// Give out objects that say BurnedInAnnotation = YES.
    pub accept_burned_in: bool,
}

impl Default for Options {
    fn default() -> Options {
        Options { age: AgePolicy::Remove, keep_sex: false, accept_burned_in: false }
    }
}

/// The person the object belongs to, in the contract.
#[derive(Debug, Clone, Copy)]
pub struct Person<'a> {
    /// The person's token in the contract: the new PatientID.
    pub token: &'a str,
    /// The person's date offset in the contract, in days (the `shift` rule's).
    pub date_offset: i32,
}

/// The result of [`deidentify`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The de-identified object, as a DICOM Part 10 file.
    Object(Vec<u8>),
    /// Withheld: the object says BurnedInAnnotation = YES and the contract does
    /// not accept that (the profile does not clean pixels).
    BurnedInAnnotation,
}

/// Where the data set starts, after the preamble (if any) and `DICM`.
fn magic(bytes: &[u8]) -> Result<(ReadPreamble, usize), DicomError> {
    if bytes.len() > MAX_OBJECT_BYTES {
        return Err(limit(format!("the object has {} bytes, more than {MAX_OBJECT_BYTES}", bytes.len())));
    }
    if bytes.len() >= 132 && &bytes[128..132] == b"DICM" {
        Ok((ReadPreamble::Always, 132))
    } else if bytes.len() >= 4 && &bytes[..4] == b"DICM" {
        Ok((ReadPreamble::Never, 4))
    } else {
        Err(malformed(format!("no \"DICM\" magic at byte 128 (or 0) of {} bytes: not a DICOM Part 10 file", bytes.len())))
    }
}

/// Checks, without building the object, that no value declares more bytes than
/// the input holds and that no sequence nests deeper than [`MAX_DEPTH`]: the two
/// things that make dicom-rs allocate gigabytes or overflow the stack. Returns the
/// transfer syntax UID.
pub fn prescan(bytes: &[u8]) -> Result<String, DicomError> {
    guarded(|| prescan_unguarded(bytes))
}

fn prescan_unguarded(bytes: &[u8]) -> Result<String, DicomError> {
    let (_, start) = magic(bytes)?;
    let total = bytes.len() as u64;
    let too_long = |tag: Tag, len: u32| {
        malformed(format!("element {tag} declares {len} bytes, but the whole object has {total}"))
    };
    // The file meta group (always Explicit VR Little Endian): its lengths first,
    // since dicom-object's meta reader allocates each declared length before it
    // reads, for every element within the group length, whatever its tag.
    let explicit = TransferSyntaxRegistry
        .get(EXPLICIT_VR_LE)
        .ok_or_else(|| malformed("Explicit VR Little Endian is not registered"))?;
    fn meta_error(e: impl std::fmt::Display) -> DicomError {
        malformed(format!("file meta group: {e}"))
    }
    let mut first = LazyDataSetReader::new_with_ts(Cursor::new(&bytes[start..]), explicit).map_err(meta_error)?;
    match first.advance() {
        Some(Ok(LazyDataToken::ElementHeader(h))) if h.tag == Tag(0x0002, 0x0000) && h.vr == VR::UL && h.len.0 == 4 => {}
        Some(Err(e)) => return Err(meta_error(e)),
        _ => return Err(malformed("the file meta group does not start with its group length (0002,0000)")),
    }
    // Its value follows the 8-byte header of an Explicit VR UL element.
    let group_length = bytes
        .get(start + 8..start + 12)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
        .ok_or_else(|| malformed("the file meta group ends inside its group length"))?;
    let meta_end = start.saturating_add(12).saturating_add(group_length).min(bytes.len());
    let mut meta_reader =
        LazyDataSetReader::new_with_ts(Cursor::new(&bytes[(start + 12).min(meta_end)..meta_end]), explicit).map_err(meta_error)?;
    while let Some(token) = meta_reader.advance() {
        match token.map_err(meta_error)? {
            // The header comes first, then the value: both are checked.
            LazyDataToken::ElementHeader(header) => {
                if header.len.0 as u64 > total {
                    return Err(too_long(header.tag, header.len.0));
                }
            }
            LazyDataToken::LazyValue { header, decoder } => {
                if header.len.0 as u64 > total {
                    return Err(too_long(header.tag, header.len.0));
                }
                LazyDataToken::LazyValue { header, decoder }.skip().map_err(meta_error)?;
            }
            // The meta group holds no sequence or item; dicom-object's meta reader
            // would take a sequence's length as a value's (4 GB; fuzzer).
            other => return Err(meta_error(format!("{other:?} where only elements belong"))),
        }
    }
    // The meta reader checks "DICM" itself.
    let mut cursor = Cursor::new(&bytes[start - 4..]);
    let meta = dicom_object::meta::FileMetaTable::from_reader(&mut cursor)
        .map_err(|e| malformed(format!("file meta group: {e}")))?;
    let ts_uid = meta.transfer_syntax().trim_end_matches(['\0', ' ']).to_string();
    let ts = TransferSyntaxRegistry.get(&ts_uid).ok_or_else(|| DicomError {
        kind: ErrorKind::Unsupported,
        message: "unsupported DICOM transfer syntax".into(),
        detail: format!("transfer syntax {ts_uid} is not known to medanon"),
        hint: "convert the object to Explicit VR Little Endian (for example with dcmconv +te) before storing it".into(),
    })?;
    if !ts.can_decode_dataset() {
        return Err(DicomError {
            kind: ErrorKind::Unsupported,
            message: "unsupported DICOM transfer syntax".into(),
            detail: format!("transfer syntax {ts_uid} ({}) needs a codec medanon does not build with", ts.name()),
            hint: "convert the object to Explicit VR Little Endian (for example with dcmconv +te) before storing it".into(),
        });
    }
    let mut reader =
        LazyDataSetReader::new_with_ts(cursor, ts).map_err(|e| malformed(format!("data set: {e}")))?;
    let mut depth = 0usize;
    while let Some(token) = reader.advance() {
        match token.map_err(|e| malformed(format!("data set: {e}")))? {
            LazyDataToken::SequenceStart { tag, len } => {
                if len.is_defined() && len.0 as u64 > total {
                    return Err(too_long(tag, len.0));
                }
                depth += 1;
                if depth > MAX_DEPTH {
                    return Err(limit(format!("sequence {tag} is nested more than {MAX_DEPTH} deep")));
                }
            }
            LazyDataToken::PixelSequenceStart => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Err(limit(format!("pixel data is nested more than {MAX_DEPTH} deep")));
                }
            }
            // A delimiter outside any sequence: dicom-rs reads it as an element and
            // writes an object it cannot read back (found by the fuzzer).
            LazyDataToken::SequenceEnd | LazyDataToken::ItemEnd | LazyDataToken::ItemStart { .. } if depth == 0 => {
                return Err(malformed("an item or sequence delimiter stands outside any sequence"));
            }
            LazyDataToken::SequenceEnd => depth -= 1,
            LazyDataToken::ItemStart { len } if len.is_defined() && len.0 as u64 > total => {
                return Err(too_long(Tag(0xFFFE, 0xE000), len.0));
            }
            LazyDataToken::LazyValue { header, decoder } => {
                if header.len.0 as u64 > total {
                    return Err(too_long(header.tag, header.len.0));
                }
                // A binary value that is not a whole number of its words: dicom-rs'
                // full parse reads the whole words only, and what follows is then
                // read out of step (1.4 GB allocated for a 1,552-byte object; fuzzer).
                let word = match header.vr {
                    VR::SS | VR::US | VR::OW => 2,
                    VR::SL | VR::UL | VR::FL | VR::AT | VR::OL | VR::OF => 4,
                    VR::FD | VR::SV | VR::UV | VR::OD | VR::OV => 8,
                    _ => 1,
                };
                if header.len.is_defined() && header.len.0 % word != 0 {
                    return Err(malformed(format!(
                        "element {} ({}) declares {} bytes, not a whole number of {word}-byte values",
                        header.tag, header.vr, header.len.0
                    )));
                }
                LazyDataToken::LazyValue { header, decoder }.skip().map_err(|e| malformed(format!("data set: {e}")))?;
            }
            LazyDataToken::LazyItemValue { len, decoder } => {
                if len as u64 > total {
                    return Err(too_long(Tag(0xFFFE, 0xE000), len));
                }
                LazyDataToken::LazyItemValue { len, decoder }.skip().map_err(|e| malformed(format!("data set: {e}")))?;
            }
            _ => {}
        }
    }
    Ok(ts_uid)
}

/// Runs dicom-rs on untrusted bytes, with its internal assertions turned into a
/// refusal: dicom-parser 0.10.1's lazy reader panics on an item header outside a
/// sequence in some states (found by the fuzzer), which would reach PostgreSQL as
/// an internal error (XX000). Only the parse runs here, no callback of the caller.
fn guarded<T>(f: impl FnOnce() -> Result<T, DicomError>) -> Result<T, DicomError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|_| {
        Err(malformed("dicom-rs stopped on an inconsistency in the object's structure (an item or delimiter out of place)"))
    })
}

/// Reads an object after [`prescan`] accepted it. `until`: stop before this tag
/// (to read the header only).
fn read(bytes: &[u8], until: Option<Tag>) -> Result<dicom_object::DefaultDicomObject, DicomError> {
    guarded(|| {
        prescan_unguarded(bytes)?;
        let (preamble, _) = magic(bytes)?;
        let mut options = OpenFileOptions::new().read_preamble(preamble);
        if let Some(tag) = until {
            options = options.read_until(tag);
        }
        options.from_reader(bytes).map_err(|e| malformed(format!("{e}")))
    })
}

/// The object's StudyDate (0008,0020), or its first other date of acquisition
/// (SeriesDate, AcquisitionDate, ContentDate), unshifted; None when it has none
/// that reads as a date. Read up to the pixel data only. Publish uses it with the
/// person's table dates, so the calendar check (issue 10) counts image dates too.
pub fn study_date(bytes: &[u8]) -> Result<Option<chrono::NaiveDate>, DicomError> {
    let obj = read(bytes, Some(tags::PIXEL_DATA))?;
    for tag in [tags::STUDY_DATE, tags::SERIES_DATE, tags::ACQUISITION_DATE, tags::CONTENT_DATE] {
        if let Some(e) = obj.get(tag) {
            if let Ok(s) = e.value().to_str() {
                if let Some(d) = s.split('\\').next().and_then(|v| parse_da(v.trim())) {
                    return Ok(Some(d));
                }
            }
        }
    }
    Ok(None)
}

/// The PatientAge a de-identified object shows under `policy`, from the
/// object's own: its band, or nothing.
fn shown_age(age: Option<&str>, policy: AgePolicy) -> Option<String> {
    match policy {
        AgePolicy::Band { band, top } => age.and_then(|a| age_band(a, band, top)),
        AgePolicy::Remove => None,
    }
}

/// The PatientSex a de-identified object shows: M, F or O when kept, else nothing.
fn shown_sex(sex: Option<&str>, keep: bool) -> Option<&'static str> {
    match (keep, sex) {
        (true, Some("M")) => Some("M"),
        (true, Some("F")) => Some("F"),
        (true, Some("O")) => Some("O"),
        _ => None,
    }
}

/// The PatientAge and PatientSex that [`deidentify`] writes into the object
/// under `options` (None where it writes none). They are quasi-identifiers the
/// object shows: publish puts them into the person's class, so k counts them.
/// Read up to the pixel data only.
pub fn shown_demographics(bytes: &[u8], options: Options) -> Result<(Option<String>, Option<&'static str>), DicomError> {
    let obj = read(bytes, Some(tags::PIXEL_DATA))?;
    let text = |tag: Tag| obj.get(tag).and_then(|e| e.value().to_str().ok().map(|s| s.trim().to_string()));
    Ok((shown_age(text(tags::PATIENT_AGE).as_deref(), options.age), shown_sex(text(tags::PATIENT_SEX).as_deref(), options.keep_sex)))
}

/// Whether the object says BurnedInAnnotation (0028,0301) = YES.
fn burned_in(obj: &InMemDicomObject) -> bool {
    obj.get(tags::BURNED_IN_ANNOTATION)
        .and_then(|e| e.value().to_str().ok().map(|s| s.trim().eq_ignore_ascii_case("YES")))
        .unwrap_or(false)
}

fn parse_da(s: &str) -> Option<chrono::NaiveDate> {
    if s.len() != 8 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n = |r: std::ops::Range<usize>| s[r].parse::<u32>().ok();
    chrono::NaiveDate::from_ymd_opt(n(0..4)? as i32, n(4..6)?, n(6..8)?)
}

fn shift_da(s: &str, days: i32) -> Option<String> {
    let d = parse_da(s)?;
    let moved = d.checked_add_signed(chrono::TimeDelta::try_days(days as i64)?)?;
    // DA holds years 0000-9999 only.
    if !(1..=9999).contains(&chrono::Datelike::year(&moved)) {
        return None;
    }
    Some(moved.format("%Y%m%d").to_string())
}

/// A DT value (YYYYMMDDHHMMSS.FFFFFF&ZZXX) with its date moved; coarser than a day
/// it cannot be moved (None).
fn shift_dt(s: &str, days: i32) -> Option<String> {
    if s.len() < 8 || !s.is_char_boundary(8) {
        return None;
    }
    let rest = &s[8..];
    if !rest.bytes().all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'+' | b'-')) {
        return None;
    }
    Some(format!("{}{rest}", shift_da(&s[..8], days)?))
}

/// Moves every value of a DA or DT element; None if one of them is not a date
/// that can be moved (the element is then emptied).
fn shift_values(text: &str, vr: VR, days: i32) -> Option<String> {
    let mut out = Vec::new();
    for v in text.split('\\') {
        let v = v.trim_matches([' ', '\0']);
        if v.is_empty() {
            out.push(String::new());
            continue;
        }
        out.push(if vr == VR::DA { shift_da(v, days)? } else { shift_dt(v, days)? });
    }
    Some(out.join("\\"))
}

/// PatientAge (AS, `nnnD|W|M|Y`) in completed years.
fn age_years(s: &str) -> Option<u32> {
    let s = s.trim();
    if s.len() != 4 {
        return None;
    }
    let n: u32 = s[..3].parse().ok()?;
    match &s[3..] {
        "Y" => Some(n),
        "M" => Some(n / 12),
        "W" => Some(n / 52),
        "D" => Some(n / 365),
        _ => None,
    }
}

/// The AS value of an age's band: its lower bound, top-coded.
pub fn age_band(value: &str, band: u32, top: u32) -> Option<String> {
    let years = age_years(value)?;
    let band = band.max(1);
    let lower = if years >= top { top } else { years / band * band };
    (lower <= 999).then(|| format!("{lower:03}Y"))
}

struct Walk<'a> {
    person: Person<'a>,
    uids: &'a dyn UidKey,
}

impl Walk<'_> {
    fn map_uid(&self, uid: &str) -> String {
        uid_of(self.uids.uid_bits(uid.trim_end_matches(['\0', ' ']).as_bytes()))
    }

    fn map_uids(&self, text: &str) -> String {
        text.split('\\').map(|u| if u.trim_matches(['\0', ' ']).is_empty() { String::new() } else { self.map_uid(u) }).collect::<Vec<_>>().join("\\")
    }

    /// D: a dummy value consistent with the VR. Text gets `ANONYMIZED`, numbers 0,
    /// dates the fixed 19000101 (only for dates that are not moved), binary values
    /// nothing.
    fn dummy(vr: VR) -> PrimitiveValue {
        match vr {
            VR::AE | VR::CS | VR::LO | VR::LT | VR::PN | VR::SH | VR::ST | VR::UC | VR::UT | VR::UR => "ANONYMIZED".into(),
            VR::DS | VR::IS => "0".into(),
            VR::AS => "000Y".into(),
            VR::DA => "19000101".into(),
            VR::DT => "19000101000000".into(),
            VR::TM => "000000".into(),
            VR::US => PrimitiveValue::from(0u16),
            VR::SS => PrimitiveValue::from(0i16),
            VR::UL => PrimitiveValue::from(0u32),
            VR::SL => PrimitiveValue::from(0i32),
            VR::FL => PrimitiveValue::from(0f32),
            VR::FD => PrimitiveValue::from(0f64),
            _ => PrimitiveValue::Empty,
        }
    }

    /// Applies the profile to one data set (the object, or an item of a sequence).
    fn clean(&self, obj: &mut InMemDicomObject, depth: usize) {
        // Private attributes (odd groups, with their creators): X (E.1-1's last row).
        // Item and delimitation tags (FFFE) are no attributes, and the command
        // group (0000) belongs to messages, not stored objects: never written back.
        obj.retain(|e| {
            let group = e.header().tag.group();
            group % 2 == 0 && group != 0xFFFE && group != 0x0000
        });
        let tags: Vec<Tag> = obj.tags().collect();
        for tag in tags {
            let Some(e) = obj.get(tag) else { continue };
            let vr = e.vr();
            let action = profile::action(tag.group(), tag.element());
            if vr == VR::SQ {
                match action {
                    Some(Action::X) => {
                        obj.remove_element(tag);
                    }
                    // Not listed, or listed as "keep the UID references": clean each item.
                    None | Some(Action::XZUStar) | Some(Action::U) => {
                        // The pre-scan bounds the nesting; this bounds the walk too.
                        if depth < MAX_DEPTH {
                            obj.update_value(tag, |v: &mut Value<InMemDicomObject, _>| {
                                if let Some(items) = v.items_mut() {
                                    for item in items.iter_mut() {
                                        self.clean(item, depth + 1);
                                    }
                                }
                            });
                        } else {
                            obj.put(DataElement::new(tag, VR::SQ, DataSetSequence::<InMemDicomObject>::empty()));
                        }
                    }
                    // Z, D and the combined codes: a sequence with no item. A dummy
                    // item would have to invent content; no item keeps nothing.
                    Some(_) => {
                        obj.put(DataElement::new(tag, VR::SQ, DataSetSequence::<InMemDicomObject>::empty()));
                    }
                }
                continue;
            }
            // Modified Dates option: every date outside the patient group moves by
            // the person's offset, listed or not, so intervals between images and
            // records agree. Birth and other patient dates follow the profile.
            // Times of day stay as they are: the shift is whole days.
            if vr == VR::TM && tag.group() != 0x0010 {
                continue;
            }
            if matches!(vr, VR::DA | VR::DT) && tag.group() != 0x0010 {
                let text = e.value().to_str().map(|s| s.into_owned()).unwrap_or_default();
                match shift_values(&text, vr, self.person.date_offset) {
                    Some(moved) => obj.put(DataElement::new(tag, vr, PrimitiveValue::from(moved))),
                    None => obj.put(DataElement::new(tag, vr, PrimitiveValue::Empty)),
                };
                continue;
            }
            match action {
                // A date or time of the patient that the table does not list (a later
                // edition's attribute): removed, never shown as it is.
                None if tag.group() == 0x0010 && matches!(vr, VR::DA | VR::DT | VR::TM) => {
                    obj.remove_element(tag);
                }
                None => {}
                Some(Action::X) | Some(Action::XZUStar) => {
                    obj.remove_element(tag);
                }
                // Z and X/Z: empty (a Type 2 attribute stays, empty).
                Some(Action::Z) | Some(Action::XZ) => {
                    obj.put(DataElement::new(tag, vr, PrimitiveValue::Empty));
                }
                Some(Action::D) | Some(Action::ZD) | Some(Action::XD) | Some(Action::XZD) => {
                    let value = if vr == VR::UI {
                        PrimitiveValue::from(self.map_uids(&e.value().to_str().unwrap_or_default()))
                    } else {
                        Self::dummy(vr)
                    };
                    obj.put(DataElement::new(tag, vr, value));
                }
                Some(Action::U) => {
                    if vr == VR::UI {
                        let mapped = self.map_uids(&e.value().to_str().unwrap_or_default());
                        obj.put(DataElement::new(tag, vr, PrimitiveValue::from(mapped)));
                    } else {
                        obj.remove_element(tag);
                    }
                }
            }
        }
    }
}

fn code_item(value: &str, meaning: &str) -> InMemDicomObject {
    InMemDicomObject::from_element_iter([
        DataElement::new(tags::CODE_VALUE, VR::SH, PrimitiveValue::from(value)),
        DataElement::new(tags::CODING_SCHEME_DESIGNATOR, VR::SH, PrimitiveValue::from("DCM")),
        DataElement::new(tags::CODE_MEANING, VR::LO, PrimitiveValue::from(meaning)),
    ])
}

/// De-identifies one DICOM Part 10 object for one person of a contract.
pub fn deidentify(bytes: &[u8], person: Person<'_>, options: Options, uids: &dyn UidKey) -> Result<Outcome, DicomError> {
    let mut obj = read(bytes, None)?;
    // The meta group is written in ASCII: a UID of other characters would be
    // written longer than its declared length (found by the fuzzer).
    let meta = obj.meta();
    for (name, uid) in [("Media Storage SOP Class UID", meta.media_storage_sop_class_uid()), ("Transfer Syntax UID", meta.transfer_syntax())] {
        if !uid.bytes().all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'\0' | b' ')) {
            return Err(malformed(format!("the file meta group's {name} is not a UID")));
        }
    }
    if burned_in(&obj) && !options.accept_burned_in {
        return Ok(Outcome::BurnedInAnnotation);
    }
    let walk = Walk { person, uids };
    // Read before the walk: Patient's Age and Sex are X and Z in the profile.
    let text = |obj: &InMemDicomObject, tag: Tag| obj.get(tag).and_then(|e| e.value().to_str().ok().map(|s| s.trim().to_string()));
    let age = text(&obj, tags::PATIENT_AGE);
    let sex = text(&obj, tags::PATIENT_SEX);
    walk.clean(&mut obj, 0);
    obj.put(DataElement::new(tags::PATIENT_ID, VR::LO, PrimitiveValue::from(person.token)));
    if let Some(banded) = shown_age(age.as_deref(), options.age) {
        obj.put(DataElement::new(tags::PATIENT_AGE, VR::AS, PrimitiveValue::from(banded)));
    }
    if let Some(s) = shown_sex(sex.as_deref(), options.keep_sex) {
        obj.put(DataElement::new(tags::PATIENT_SEX, VR::CS, PrimitiveValue::from(s)));
    }
    obj.put(DataElement::new(tags::PATIENT_IDENTITY_REMOVED, VR::CS, PrimitiveValue::from("YES")));
    obj.put(DataElement::new(tags::DEIDENTIFICATION_METHOD, VR::LO, PrimitiveValue::from(METHOD)));
    let mut codes = vec![
        code_item("113100", "Basic Application Confidentiality Profile"),
        code_item("113107", "Retain Longitudinal Temporal Information Modified Dates Option"),
    ];
    if options.keep_sex || options.age != AgePolicy::Remove {
        codes.push(code_item("113108", "Retain Patient Characteristics Option"));
    }
    obj.put(DataElement::new(tags::DEIDENTIFICATION_METHOD_CODE_SEQUENCE, VR::SQ, DataSetSequence::from(codes)));
    obj.put(DataElement::new(tags::LONGITUDINAL_TEMPORAL_INFORMATION_MODIFIED, VR::CS, PrimitiveValue::from("MODIFIED")));
    // The file meta group: the SOP Instance UID as in the data set, and nothing
    // that names a site or a device.
    let meta_uid = obj.meta().media_storage_sop_instance_uid().to_string();
    let sop_uid = walk.map_uid(&meta_uid);
    obj.update_meta(|m| {
        m.media_storage_sop_instance_uid = sop_uid;
        m.source_application_entity_title = None;
        m.sending_application_entity_title = None;
        m.receiving_application_entity_title = None;
        m.private_information_creator_uid = None;
        m.private_information = None;
        // The writer is now dicom-rs, under medanon (PS3.10 7.1): and an odd-length
        // name of the sender's would come back padded past the 16 characters of SH
        // (found by the fuzzer).
        m.implementation_class_uid = dicom_object::IMPLEMENTATION_CLASS_UID.to_string();
        m.implementation_version_name = Some(dicom_object::IMPLEMENTATION_VERSION_NAME.to_string());
    });
    let mut out = Vec::with_capacity(bytes.len() + 512);
    obj.write_all(&mut out).map_err(|e| malformed(format!("the object could not be written back: {e}")))?;
    Ok(Outcome::Object(out))
}

/// Whether dicom-rs reads the object (pre-scan and full parse), as [`deidentify`]
/// would: the fuzzer's check that what medanon writes reads back.
pub fn readable(bytes: &[u8]) -> Result<(), DicomError> {
    read(bytes, None).map(|_| ())
}

/// Reads and writes back an object without changing it: the baseline of the
/// benchmark (what parsing and writing cost alone).
pub fn roundtrip(bytes: &[u8]) -> Result<Vec<u8>, DicomError> {
    let obj = read(bytes, None)?;
    let mut out = Vec::with_capacity(bytes.len() + 512);
    obj.write_all(&mut out).map_err(|e| malformed(format!("{e}")))?;
    Ok(out)
}

#[cfg(test)]
mod tests;
