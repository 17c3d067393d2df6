//! Synthetic objects for tests, the fuzzer's seeds and the benchmark: a CT slice
//! (CT Image Storage, Explicit VR Little Endian, 16-bit monochrome) with the
//! attributes the profile must treat, and hostile objects built on top of one.
//! Nothing here comes from a real patient.

use dicom_core::value::DataSetSequence;
use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_dictionary_std::{tags, uids};
use dicom_object::{FileMetaTableBuilder, InMemDicomObject};

/// What varies between the synthetic objects.
#[derive(Debug, Clone)]
pub struct Ct<'a> {
    pub patient_name: &'a str,
    pub patient_id: &'a str,
    pub study_uid: &'a str,
    pub series_uid: &'a str,
    pub sop_uid: &'a str,
    /// YYYYMMDD.
    pub study_date: &'a str,
    pub rows: u16,
    pub columns: u16,
    pub burned_in: Option<&'a str>,
}

impl Default for Ct<'_> {
    fn default() -> Self {
        Ct {
            patient_name: "Yamada^Taro",
            patient_id: "HOSP-000123",
            study_uid: "1.2.392.200036.9116.2.5.1.37.2417525831.1000000001.1",
            series_uid: "1.2.392.200036.9116.2.5.1.37.2417525831.1000000001.2",
            sop_uid: "1.2.392.200036.9116.2.5.1.37.2417525831.1000000001.3",
            study_date: "20240315",
            rows: 512,
            columns: 512,
            burned_in: None,
        }
    }
}

fn el(tag: dicom_core::Tag, vr: VR, v: impl Into<PrimitiveValue>) -> DataElement<InMemDicomObject> {
    DataElement::new(tag, vr, v.into())
}

/// A CT slice as a DICOM Part 10 file.
pub fn ct(c: &Ct<'_>) -> Vec<u8> {
    let pixels: Vec<u8> = (0..c.rows as usize * c.columns as usize)
        .flat_map(|i| (((i * 7) % 4096) as u16).to_le_bytes())
        .collect();
    let referenced = InMemDicomObject::from_element_iter([
        el(tags::REFERENCED_SOP_CLASS_UID, VR::UI, uids::CT_IMAGE_STORAGE),
        el(tags::REFERENCED_SOP_INSTANCE_UID, VR::UI, c.sop_uid),
        // A private attribute inside a sequence item.
        el(dicom_core::Tag(0x0029, 0x0010), VR::LO, "ACME PRIVATE"),
        el(dicom_core::Tag(0x0029, 0x1001), VR::LO, "Yamada Taro, ward 3"),
    ]);
    let mut elements = vec![
        el(tags::SPECIFIC_CHARACTER_SET, VR::CS, "ISO_IR 100"),
        el(tags::IMAGE_TYPE, VR::CS, PrimitiveValue::Strs(["ORIGINAL", "PRIMARY", "AXIAL"].iter().map(|s| s.to_string()).collect())),
        el(tags::INSTANCE_CREATION_DATE, VR::DA, c.study_date),
        el(tags::SOP_CLASS_UID, VR::UI, uids::CT_IMAGE_STORAGE),
        el(tags::SOP_INSTANCE_UID, VR::UI, c.sop_uid),
        el(tags::STUDY_DATE, VR::DA, c.study_date),
        el(tags::SERIES_DATE, VR::DA, c.study_date),
        el(tags::ACQUISITION_DATE_TIME, VR::DT, format!("{}101530.123456+0900", c.study_date)),
        el(tags::STUDY_TIME, VR::TM, "101500"),
        el(tags::ACCESSION_NUMBER, VR::SH, "ACC-778899"),
        el(tags::MODALITY, VR::CS, "CT"),
        el(tags::INSTITUTION_NAME, VR::LO, "Tokyo General Hospital"),
        el(tags::INSTITUTION_ADDRESS, VR::ST, "1-2-3 Chiyoda, Tokyo"),
        el(tags::REFERRING_PHYSICIAN_NAME, VR::PN, "Suzuki^Ichiro"),
        el(tags::STATION_NAME, VR::SH, "CT-ROOM-2"),
        el(tags::STUDY_DESCRIPTION, VR::LO, "CT abdomen pancreas"),
        el(tags::PERFORMING_PHYSICIAN_NAME, VR::PN, "Tanaka^Hanako"),
        el(tags::OPERATORS_NAME, VR::PN, "Sato^Jiro"),
        el(tags::PATIENT_NAME, VR::PN, c.patient_name),
        el(tags::PATIENT_ID, VR::LO, c.patient_id),
        el(tags::PATIENT_BIRTH_DATE, VR::DA, "19600704"),
        el(tags::PATIENT_SEX, VR::CS, "M"),
        el(tags::PATIENT_AGE, VR::AS, "063Y"),
        el(tags::PATIENT_TELEPHONE_NUMBERS, VR::SH, "03-1234-5678"),
        el(tags::PATIENT_ADDRESS, VR::LO, "Chiyoda-ku, Tokyo"),
        el(tags::DEVICE_SERIAL_NUMBER, VR::LO, "SN-4711"),
        el(dicom_core::Tag(0x0009, 0x0010), VR::LO, "ACME PRIVATE"),
        el(dicom_core::Tag(0x0009, 0x1001), VR::LO, "Yamada Taro 1960-07-04"),
        el(tags::STUDY_INSTANCE_UID, VR::UI, c.study_uid),
        el(tags::SERIES_INSTANCE_UID, VR::UI, c.series_uid),
        el(tags::STUDY_ID, VR::SH, "S1234"),
        el(tags::SERIES_NUMBER, VR::IS, "2"),
        el(tags::INSTANCE_NUMBER, VR::IS, "1"),
        el(tags::FRAME_OF_REFERENCE_UID, VR::UI, format!("{}.9", c.study_uid)),
        el(tags::SAMPLES_PER_PIXEL, VR::US, 1u16),
        el(tags::PHOTOMETRIC_INTERPRETATION, VR::CS, "MONOCHROME2"),
        el(tags::ROWS, VR::US, c.rows),
        el(tags::COLUMNS, VR::US, c.columns),
        el(tags::BITS_ALLOCATED, VR::US, 16u16),
        el(tags::BITS_STORED, VR::US, 12u16),
        el(tags::HIGH_BIT, VR::US, 11u16),
        el(tags::PIXEL_REPRESENTATION, VR::US, 0u16),
        el(tags::RESCALE_INTERCEPT, VR::DS, "-1024"),
        el(tags::RESCALE_SLOPE, VR::DS, "1"),
        el(tags::PIXEL_DATA, VR::OW, PrimitiveValue::U8(pixels.into())),
    ];
    elements.push(DataElement::new(tags::REFERENCED_IMAGE_SEQUENCE, VR::SQ, DataSetSequence::from(vec![referenced])));
    if let Some(b) = c.burned_in {
        elements.push(el(tags::BURNED_IN_ANNOTATION, VR::CS, b));
    }
    let obj = InMemDicomObject::from_element_iter(elements);
    let meta = FileMetaTableBuilder::new()
        .transfer_syntax(uids::EXPLICIT_VR_LITTLE_ENDIAN)
        .media_storage_sop_class_uid(uids::CT_IMAGE_STORAGE)
        .media_storage_sop_instance_uid(c.sop_uid)
        .source_application_entity_title("HOSPITAL_PACS");
    let mut out = Vec::new();
    // Built from constants: these cannot fail.
    obj.with_meta(meta).expect("a complete meta group").write_all(&mut out).expect("writing to a Vec");
    out
}

/// A small valid object, followed by raw data-set bytes `tail` (Explicit VR
/// Little Endian). The base ends with Patient ID, so `tail` must use higher tags.
pub fn with_tail(tail: &[u8]) -> Vec<u8> {
    let obj = InMemDicomObject::from_element_iter([
        el(tags::SOP_CLASS_UID, VR::UI, uids::SECONDARY_CAPTURE_IMAGE_STORAGE),
        el(tags::SOP_INSTANCE_UID, VR::UI, "1.2.3.4"),
        el(tags::PATIENT_ID, VR::LO, "X1"),
    ]);
    let meta = FileMetaTableBuilder::new()
        .transfer_syntax(uids::EXPLICIT_VR_LITTLE_ENDIAN)
        .media_storage_sop_class_uid(uids::SECONDARY_CAPTURE_IMAGE_STORAGE)
        .media_storage_sop_instance_uid("1.2.3.4");
    let mut out = Vec::new();
    obj.with_meta(meta).expect("a complete meta group").write_all(&mut out).expect("writing to a Vec");
    out.extend_from_slice(tail);
    out
}

/// Sequences nested `depth` deep (undefined lengths), closed properly.
pub fn deep(depth: usize) -> Vec<u8> {
    let mut tail = Vec::new();
    for _ in 0..depth {
        // (0040,A730) Content Sequence, SQ, undefined length; an item, undefined length.
        tail.extend_from_slice(&[0x40, 0x00, 0x30, 0xA7, b'S', b'Q', 0, 0, 0xFF, 0xFF, 0xFF, 0xFF]);
        tail.extend_from_slice(&[0xFE, 0xFF, 0x00, 0xE0, 0xFF, 0xFF, 0xFF, 0xFF]);
    }
    for _ in 0..depth {
        tail.extend_from_slice(&[0xFE, 0xFF, 0x0D, 0xE0, 0, 0, 0, 0]); // item delimiter
        tail.extend_from_slice(&[0xFE, 0xFF, 0xDD, 0xE0, 0, 0, 0, 0]); // sequence delimiter
    }
    with_tail(&tail)
}

/// Pixel Data declaring `len` bytes, followed by only 16.
pub fn absurd_length(len: u32) -> Vec<u8> {
    let mut tail = vec![0xE0, 0x7F, 0x10, 0x00, b'O', b'B', 0, 0];
    tail.extend_from_slice(&len.to_le_bytes());
    tail.extend_from_slice(&[0u8; 16]);
    with_tail(&tail)
}
