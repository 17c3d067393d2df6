use super::*;
use crate::sample::{absurd_length, ct, deep, Ct};
use dicom_object::OpenFileOptions;

/// A stand-in for the keyed derivation: a different "key" gives unrelated bits.
fn key(k: u8) -> impl Fn(&[u8]) -> u128 {
    move |uid: &[u8]| {
        // FNV-1a over (k, uid), twice, for 128 bits: enough to tell UIDs apart in tests.
        let mut a: u64 = 0xcbf29ce484222325 ^ k as u64;
        let mut b: u64 = 0x84222325cbf29ce4 ^ (k as u64).rotate_left(7);
        for &x in uid {
            a = (a ^ x as u64).wrapping_mul(0x100000001b3);
            b = (b ^ x as u64).wrapping_mul(0x1000193);
        }
        ((a as u128) << 64) | b as u128
    }
}

const PERSON: Person<'static> = Person { token: "3f9a0c1d2e4b5a6f", date_offset: -91 };

fn deid(bytes: &[u8], options: Options, k: u8) -> Vec<u8> {
    match deidentify(bytes, PERSON, options, &key(k)).unwrap() {
        Outcome::Object(out) => out,
        other => panic!("{other:?}"),
    }
}

fn open(bytes: &[u8]) -> dicom_object::DefaultDicomObject {
    OpenFileOptions::new().read_preamble(ReadPreamble::Always).from_reader(bytes).unwrap()
}

fn text(obj: &InMemDicomObject, tag: Tag) -> Option<String> {
    obj.get(tag).map(|e| e.value().to_str().map(|s| s.trim_end_matches(['\0', ' ']).to_string()).unwrap_or_default())
}

#[test]
fn the_profile_removes_replaces_and_shifts() {
    let input = ct(&Ct::default());
    let out = open(&deid(&input, Options::default(), 1));
    // Replaced: PatientID is the person's token.
    assert_eq!(text(&out, tags::PATIENT_ID).as_deref(), Some(PERSON.token));
    // Z: emptied.
    for tag in [tags::PATIENT_NAME, tags::PATIENT_BIRTH_DATE, tags::ACCESSION_NUMBER, tags::REFERRING_PHYSICIAN_NAME, tags::PATIENT_SEX] {
        assert_eq!(text(&out, tag).as_deref(), Some(""), "{tag} should be empty");
    }
    // X: gone.
    for tag in [
        tags::PATIENT_AGE,
        tags::PATIENT_ADDRESS,
        tags::PATIENT_TELEPHONE_NUMBERS,
        tags::INSTITUTION_ADDRESS,
        tags::PERFORMING_PHYSICIAN_NAME,
        tags::STUDY_DESCRIPTION,
    ] {
        assert!(out.get(tag).is_none(), "{tag} should be removed");
    }
    // D and X/Z/D: a dummy.
    for tag in [tags::INSTITUTION_NAME, tags::STATION_NAME, tags::OPERATORS_NAME, tags::DEVICE_SERIAL_NUMBER] {
        assert_eq!(text(&out, tag).as_deref(), Some("ANONYMIZED"), "{tag}");
    }
    // Private attributes, at the top and inside a sequence item.
    assert!(out.iter().all(|e| e.header().tag.group() % 2 == 0), "a private attribute is left");
    let item = out.get(tags::REFERENCED_IMAGE_SEQUENCE).and_then(|e| e.items()).map(|i| i[0].clone()).expect("the sequence is kept");
    assert!(item.iter().all(|e| e.header().tag.group() % 2 == 0), "a private attribute is left inside an item");
    // Dates moved by the offset (2024-03-15 - 91 days = 2023-12-15), times kept.
    assert_eq!(text(&out, tags::STUDY_DATE).as_deref(), Some("20231215"));
    assert_eq!(text(&out, tags::SERIES_DATE).as_deref(), Some("20231215"));
    assert_eq!(text(&out, tags::INSTANCE_CREATION_DATE).as_deref(), Some("20231215"));
    assert_eq!(text(&out, tags::ACQUISITION_DATE_TIME).as_deref(), Some("20231215101530.123456+0900"));
    assert_eq!(text(&out, tags::STUDY_TIME).as_deref(), Some("101500"));
    // Markers.
    assert_eq!(text(&out, tags::PATIENT_IDENTITY_REMOVED).as_deref(), Some("YES"));
    assert_eq!(text(&out, tags::DEIDENTIFICATION_METHOD).as_deref(), Some(METHOD));
    assert!(METHOD.len() <= 64 && METHOD.contains(profile::EDITION));
    assert_eq!(text(&out, tags::LONGITUDINAL_TEMPORAL_INFORMATION_MODIFIED).as_deref(), Some("MODIFIED"));
    let codes: Vec<String> = out
        .get(tags::DEIDENTIFICATION_METHOD_CODE_SEQUENCE)
        .and_then(|e| e.items())
        .unwrap()
        .iter()
        .filter_map(|i| text(i, tags::CODE_VALUE))
        .collect();
    assert_eq!(codes, ["113100", "113107"]);
    // Kept: the image itself, and what describes it.
    let pixels = |o: &InMemDicomObject| o.get(tags::PIXEL_DATA).unwrap().value().to_bytes().unwrap().into_owned();
    assert_eq!(pixels(&out), pixels(&open(&input)));
    assert_eq!(text(&out, tags::MODALITY).as_deref(), Some("CT"));
    assert_eq!(text(&out, tags::SOP_CLASS_UID).as_deref(), Some(dicom_dictionary_std::uids::CT_IMAGE_STORAGE));
    // The meta group: the new SOP Instance UID, no AE title.
    assert_eq!(out.meta().media_storage_sop_instance_uid().trim_end_matches('\0'), text(&out, tags::SOP_INSTANCE_UID).unwrap());
    assert_eq!(out.meta().source_application_entity_title, None);
    // No original value anywhere in the bytes.
    let bytes = deid(&input, Options::default(), 1);
    for needle in ["Yamada", "HOSP-000123", "19600704", "ACC-778899", "Tokyo General", "Suzuki", "ward 3", "HOSPITAL_PACS", "20240315", "1.2.392.200036"] {
        assert!(!bytes.windows(needle.len()).any(|w| w == needle.as_bytes()), "{needle} is still in the output");
    }
}

#[test]
fn uids_are_consistent_within_a_key_and_unrelated_across_keys() {
    let a = Ct::default();
    let b = Ct { sop_uid: "1.2.392.200036.9116.2.5.1.37.2417525831.1000000001.4", ..Ct::default() };
    let (a1, b1) = (open(&deid(&ct(&a), Options::default(), 1)), open(&deid(&ct(&b), Options::default(), 1)));
    let a2 = open(&deid(&ct(&a), Options::default(), 2));
    let uid = |o: &InMemDicomObject, t| text(o, t).unwrap();
    assert_eq!(uid(&a1, tags::STUDY_INSTANCE_UID), uid(&b1, tags::STUDY_INSTANCE_UID), "one study stays one study");
    assert_eq!(uid(&a1, tags::SERIES_INSTANCE_UID), uid(&b1, tags::SERIES_INSTANCE_UID));
    assert_ne!(uid(&a1, tags::SOP_INSTANCE_UID), uid(&b1, tags::SOP_INSTANCE_UID));
    assert_ne!(uid(&a1, tags::STUDY_INSTANCE_UID), uid(&a2, tags::STUDY_INSTANCE_UID), "another contract, another UID");
    assert_ne!(uid(&a1, tags::STUDY_INSTANCE_UID), a.study_uid);
    // References follow: the Referenced SOP Instance UID inside the sequence is the image's new UID.
    let item = a1.get(tags::REFERENCED_IMAGE_SEQUENCE).and_then(|e| e.items()).unwrap()[0].clone();
    assert_eq!(uid(&item, tags::REFERENCED_SOP_INSTANCE_UID), uid(&a1, tags::SOP_INSTANCE_UID));
    for o in [&a1, &b1, &a2] {
        for t in [tags::STUDY_INSTANCE_UID, tags::SERIES_INSTANCE_UID, tags::SOP_INSTANCE_UID, tags::FRAME_OF_REFERENCE_UID] {
            let u = uid(o, t);
            assert!(u.starts_with("2.25.") && u.len() <= 64 && u[5..].bytes().all(|c| c.is_ascii_digit()), "{u}");
            assert!(u == "2.25.0" || !u[5..].starts_with('0'), "{u}");
        }
    }
    assert_eq!(uid_of(0), "2.25.0");
    assert_eq!(uid_of(u128::MAX).len(), 5 + 39);
}

#[test]
fn burned_in_annotations_are_withheld_unless_accepted() {
    let yes = ct(&Ct { burned_in: Some("YES"), ..Ct::default() });
    assert_eq!(deidentify(&yes, PERSON, Options::default(), &key(1)).unwrap(), Outcome::BurnedInAnnotation);
    let accept = Options { accept_burned_in: true, ..Options::default() };
    assert!(matches!(deidentify(&yes, PERSON, accept, &key(1)).unwrap(), Outcome::Object(_)));
    let no = ct(&Ct { burned_in: Some("NO"), ..Ct::default() });
    assert!(matches!(deidentify(&no, PERSON, Options::default(), &key(1)).unwrap(), Outcome::Object(_)));
}

#[test]
fn age_follows_the_band_and_sex_is_kept_only_when_asked() {
    let input = ct(&Ct::default());
    let o = Options { age: AgePolicy::Band { band: 5, top: 90 }, keep_sex: true, accept_burned_in: false };
    let out = open(&deid(&input, o, 1));
    assert_eq!(text(&out, tags::PATIENT_AGE).as_deref(), Some("060Y"));
    assert_eq!(text(&out, tags::PATIENT_SEX).as_deref(), Some("M"));
    let codes = out.get(tags::DEIDENTIFICATION_METHOD_CODE_SEQUENCE).and_then(|e| e.items()).unwrap().len();
    assert_eq!(codes, 3, "113108 is named when patient characteristics are kept");
    // What publish puts into the person's class is what the object shows.
    assert_eq!(shown_demographics(&input, o).unwrap(), (Some("060Y".to_string()), Some("M")));
    let basic = open(&deid(&input, Options::default(), 1));
    assert_eq!((text(&basic, tags::PATIENT_AGE).filter(|s| !s.is_empty()), text(&basic, tags::PATIENT_SEX).filter(|s| !s.is_empty())), (None, None));
    assert_eq!(shown_demographics(&input, Options::default()).unwrap(), (None, None));
    let cases = [("047Y", 5, 90, Some("045Y")), ("093Y", 5, 90, Some("090Y")), ("090Y", 10, 90, Some("090Y")),
                 ("011M", 5, 90, Some("000Y")), ("030M", 5, 90, Some("000Y")), ("4Y", 5, 90, None), ("abcY", 5, 90, None)];
    for (v, band, top, want) in cases {
        assert_eq!(age_band(v, band, top).as_deref(), want, "{v}");
    }
}

#[test]
fn dates_that_cannot_be_moved_are_emptied_and_multi_values_all_move() {
    assert_eq!(shift_values("20240315\\20240101", VR::DA, 7).as_deref(), Some("20240322\\20240108"));
    assert_eq!(shift_values("2024.03.15", VR::DA, 7), None, "a legacy date cannot be moved");
    assert_eq!(shift_values("20240230", VR::DA, 7), None);
    assert_eq!(shift_values("2024", VR::DT, 7), None, "a DT coarser than a day cannot be moved");
    assert_eq!(shift_values("20240101235959", VR::DT, -1).as_deref(), Some("20231231235959"));
    assert_eq!(shift_values("00010101", VR::DA, -7), None, "before year 1");
}

#[test]
fn hostile_objects_are_refused_with_a_kind() {
    let kind = |b: &[u8]| deidentify(b, PERSON, Options::default(), &key(1)).unwrap_err().kind;
    assert_eq!(kind(b""), ErrorKind::Malformed);
    assert_eq!(kind(b"not a dicom object at all"), ErrorKind::Malformed);
    assert_eq!(kind(&[0u8; 132]), ErrorKind::Malformed);
    let mut magic_only = vec![0u8; 128];
    magic_only.extend_from_slice(b"DICM");
    assert_eq!(kind(&magic_only), ErrorKind::Malformed);
    let whole = ct(&Ct::default());
    for cut in [140, 400, whole.len() / 2, whole.len() - 1] {
        assert_eq!(kind(&whole[..cut]), ErrorKind::Malformed, "truncated at {cut}");
    }
    let e = deidentify(&absurd_length(0xFFFF_FFF0), PERSON, Options::default(), &key(1)).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Malformed);
    assert!(e.detail.contains("4294967280"), "{}", e.detail);
    let e = deidentify(&deep(5000), PERSON, Options::default(), &key(1)).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Limit);
    assert!(e.detail.contains("32"), "{}", e.detail);
    assert_eq!(kind(&deep(MAX_DEPTH + 1)), ErrorKind::Limit);
    assert!(deidentify(&deep(MAX_DEPTH), PERSON, Options::default(), &key(1)).is_ok(), "the limit itself is accepted");
    // Found by the fuzzer (fuzz/fuzz_targets/dicom.rs): a file meta element whose
    // unknown VR gives it a 4-byte length of 774,975,029 (dicom-object's meta reader
    // zeroed 760 MB for it), and delimiters outside any sequence (dicom-rs read
    // them, and wrote an object it could not read back).
    let e = deidentify(include_bytes!("../testdata/meta_length_bomb.dcm"), PERSON, Options::default(), &key(1)).unwrap_err();
    assert!(e.detail.contains("774975029"), "{e:?}");
    assert_eq!(kind(include_bytes!("../testdata/stray_delimiters.dcm")), ErrorKind::Malformed);
    // An implementation version name of 17 characters: written back padded to 18,
    // which dicom-rs then refused to read; the writer's own name is written now.
    let once = deid(include_bytes!("../testdata/odd_version_name.dcm"), Options { accept_burned_in: true, ..Options::default() }, 1);
    assert!(deidentify(&once, PERSON, Options::default(), &key(1)).is_ok(), "the output reads back");
    // An item header where dicom-parser's lazy reader asserts a sequence (it panicked).
    assert_eq!(kind(include_bytes!("../testdata/item_outside_sequence.dcm")), ErrorKind::Malformed);
    assert!(study_date(include_bytes!("../testdata/item_outside_sequence.dcm")).is_err());
    // An SL value of 10 bytes: dicom-rs read 8 and the rest out of step (1.4 GB).
    let e = deidentify(include_bytes!("../testdata/partial_words.dcm"), PERSON, Options::default(), &key(1)).unwrap_err();
    assert!(e.detail.contains("whole number"), "{e:?}");
    // A meta element of VR SQ with a length of 0xFFFF0001 (4 GB in the meta reader).
    assert_eq!(kind(include_bytes!("../testdata/meta_sequence.dcm")), ErrorKind::Malformed);
    // A SOP Class UID of non-ASCII characters in the meta group.
    assert_eq!(kind(include_bytes!("../testdata/meta_uid_not_ascii.dcm")), ErrorKind::Malformed);
    // The meta reader goes on past a tag of another group within the group length.
    let e = deidentify(include_bytes!("../testdata/meta_foreign_tag_bomb.dcm"), PERSON, Options::default(), &key(1)).unwrap_err();
    assert!(e.detail.contains("875703863"), "{e:?}");
    // Deflated Explicit VR Little Endian: no codec.
    let mut deflated = ct(&Ct { rows: 2, columns: 2, ..Ct::default() });
    let explicit = b"1.2.840.10008.1.2.1\0";
    let at = deflated.windows(explicit.len()).position(|w| w == explicit).unwrap();
    // Same length: "1.2.840.10008.1.2.1.99" does not fit, so use an unknown private syntax of 20 bytes.
    deflated[at..at + explicit.len()].copy_from_slice(b"1.2.3.4.5.6.7.8.9.10");
    assert_eq!(kind(&deflated), ErrorKind::Unsupported);
}

#[test]
fn study_date_reads_the_first_date() {
    assert_eq!(study_date(&ct(&Ct::default())).unwrap(), chrono::NaiveDate::from_ymd_opt(2024, 3, 15));
    assert!(study_date(b"nope").is_err());
}

#[test]
fn roundtrip_keeps_the_object() {
    let input = ct(&Ct { rows: 4, columns: 4, ..Ct::default() });
    let out = open(&roundtrip(&input).unwrap());
    assert_eq!(text(&out, tags::PATIENT_NAME).as_deref(), Some("Yamada^Taro"));
}

/// With MEDANON_DICOM_PROBE=path: de-identifies that file into path.out (a
/// manual check against files from other writers; the integration tests do it
/// with pydicom's).
#[test]
fn probe_a_file_when_asked() {
    let Ok(path) = std::env::var("MEDANON_DICOM_PROBE") else { return };
    let bytes = std::fs::read(&path).unwrap();
    let out = deid(&bytes, Options { accept_burned_in: true, ..Options::default() }, 1);
    std::fs::write(format!("{path}.out"), out).unwrap();
}
