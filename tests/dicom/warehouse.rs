#![allow(dead_code)]
//! The DICOM warehouse of tests/dicom.rs and tests/dicom_bad_input.rs: linked
//! patients with records and synthetic CT slices (512x512, 16-bit, names in
//! ISO 2022 IR 87 and IR 13 and plain ASCII), made by tests/dicom/ct.py with
//! pydicom, and the helpers that call that script.

use medanon_integration::*;
use postgres::Client;
use serde_json::{json, Value};
use std::io::Write;
use std::process::{Command, Stdio};

pub const TABLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../crates/medanon-dicom/data/ps3.15-e1-1.tsv");
const HELPER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/dicom/ct.py");

/// Runs the pydicom helper with a JSON document on its standard input.
pub fn helper(args: &[&str], input: &Value) -> String {
    let mut child = Command::new("python3")
        .arg(HELPER)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 runs");
    child.stdin.take().unwrap().write_all(input.to_string().as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "ct.py {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// A scratch directory of this test run.
pub fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("medanon-dicom-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// One source image as the test made it.
#[derive(Debug, Clone)]
pub struct Image {
    pub local_id: String,
    pub study_uid: String,
    pub sop_uid: String,
    /// YYYYMMDD.
    pub study_date: String,
    pub burned_in: bool,
    pub charset: &'static str,
}

/// The local ids of the warehouse's patients: p1..p30, and p99, born in 1920,
/// alone in the oldest age band (withheld by k).
pub fn local_ids() -> Vec<String> {
    (1..=30).map(|i| format!("p{i}")).chain(["p99".to_string()]).collect()
}

fn date_plus(date: &str, days: i64) -> String {
    let y: i32 = date[..4].parse().unwrap();
    let m: u32 = date[4..6].parse().unwrap();
    let d: u32 = date[6..8].parse().unwrap();
    // Days from civil (Howard Hinnant), to stay free of a date crate here.
    let (y2, m2) = if m <= 2 { (y - 1, m + 9) } else { (y, m - 3) };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let doy = (153 * m2 + 2) / 5 + d - 1;
    let doe = yoe as i64 * 365 + yoe as i64 / 4 - yoe as i64 / 100 + doy as i64;
    let n = era as i64 * 146097 + doe - 719468 + days;
    let z = n + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + if month <= 2 { 1 } else { 0 };
    format!("{year:04}{month:02}{day:02}")
}

/// Days from `a` to `b` (YYYYMMDD).
pub fn days_between(a: &str, b: &str) -> i64 {
    (-5000..5000).find(|d| date_plus(a, *d) == b).unwrap_or_else(|| panic!("{a} to {b}"))
}

pub fn shift(date: &str, days: i32) -> String {
    date_plus(date, days as i64)
}

/// The images: for each patient a study of two slices; every fourth patient a
/// second study 35 days later; the second slice of every fifth patient's first
/// study says BurnedInAnnotation = YES.
pub fn images() -> Vec<Image> {
    let mut v = Vec::new();
    for (i, id) in local_ids().iter().enumerate() {
        let i = i as i64 + 1;
        // Weekdays in 2024 away from holidays, spread over two months.
        let first = date_plus("20240603", (i % 8) * 7 + (i % 5));
        let charset = ["ir87", "ir13", "ascii"][(i % 3) as usize];
        let study = |n: i64| format!("1.2.392.200036.9116.2.6.{i}.{n}");
        for slice in 1..=2 {
            v.push(Image {
                local_id: id.clone(),
                study_uid: study(1),
                sop_uid: format!("{}.1.{slice}", study(1)),
                study_date: first.clone(),
                burned_in: slice == 2 && i % 5 == 1,
                charset,
            });
        }
        if i % 4 == 0 {
            v.push(Image {
                local_id: id.clone(),
                study_uid: study(2),
                sop_uid: format!("{}.1.1", study(2)),
                study_date: date_plus(&first, 35),
                burned_in: false,
                charset,
            });
        }
    }
    v
}

fn name_of(charset: &str, n: usize) -> String {
    let (kana, kanji, hira) = [("ﾔﾏﾀﾞ^ﾀﾛｳ", "山田^太郎", "やまだ^たろう"), ("ｽｽﾞｷ^ﾊﾅｺ", "鈴木^花子", "すずき^はなこ"), ("ｻﾄｳ^ｲﾁﾛｳ", "佐藤^一郎", "さとう^いちろう")][n % 3];
    match charset {
        "ir87" => format!("{}={kanji}={hira}", ["Yamada^Taro", "Suzuki^Hanako", "Sato^Ichiro"][n % 3]),
        "ir13" => format!("{kana}={kanji}={hira}"),
        _ => ["Yamada^Taro", "Suzuki^Hanako", "Sato^Ichiro"][n % 3].to_string(),
    }
}

/// Writes the images with the pydicom helper and returns each with its bytes.
pub fn make_images(images: &[Image]) -> Vec<(Image, Vec<u8>)> {
    let dir = scratch("src");
    let spec: Vec<Value> = images
        .iter()
        .enumerate()
        .map(|(n, im)| {
            json!({"path": dir.join(format!("{n}.dcm")), "patient_id": format!("H1-{}", im.local_id), "name": name_of(im.charset, n),
                   "charset": im.charset, "study_uid": im.study_uid, "series_uid": format!("{}.1", im.study_uid),
                   "sop_uid": im.sop_uid, "study_date": im.study_date, "burned_in": if im.burned_in { "YES" } else { "NO" }})
        })
        .collect();
    helper(&["make"], &Value::Array(spec));
    images.iter().enumerate().map(|(n, im)| (im.clone(), std::fs::read(dir.join(format!("{n}.dcm"))).unwrap())).collect()
}

/// A fresh install with the patients linked, their records and images loaded
/// into it_dicom (registered and classified), and the roles it_lab_da and
/// it_lab_db. Returns the superuser connection and the images.
pub fn dicom_warehouse() -> (Client, Vec<(Image, Vec<u8>)>) {
    let mut su = superuser();
    su.batch_execute(
        "DROP SCHEMA IF EXISTS it_dicom, contract_it_da, contract_it_da_data, contract_it_db, contract_it_db_data CASCADE;
         DO $$ BEGIN
           IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'it_lab_da') THEN CREATE ROLE it_lab_da LOGIN; END IF;
           IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'it_lab_db') THEN CREATE ROLE it_lab_db LOGIN; END IF;
         END $$;",
    )
    .expect("roles");
    let mut su = fresh_install();
    su.batch_execute(
        "CREATE SCHEMA it_dicom;
         CREATE TABLE it_dicom.staging (institution_code text, local_patient_id text, name_kana text,
             birth_date text, sex text, insurer_number text, insured_symbol text, insured_number text);
         INSERT INTO it_dicom.staging
         SELECT 'H1', 'p' || i, 'ﾔﾏﾀﾞ ' || chr(12450 + i * 2), (DATE '1950-01-01' + i * 200)::text, (1 + i % 2)::text, '', '', ''
           FROM generate_series(1, 30) i;
         INSERT INTO it_dicom.staging VALUES ('H1', 'p99', 'ﾌﾙｲ ﾋﾄ', '1920-01-01', '2', '', '', '');
         SELECT medanon.register_institution('H1', 'Hospital 1', 'hospital');
         SELECT medanon.record_notification('H1', local_patient_id, now() - interval '40 days') FROM it_dicom.staging;
         GRANT USAGE ON SCHEMA it_dicom TO it_etl;
         GRANT SELECT ON ALL TABLES IN SCHEMA it_dicom TO it_etl;",
    )
    .expect("staging");
    let mut etl = connect_as("it_etl");
    etl.batch_execute("SELECT medanon.link_patients('it_dicom.staging')").expect("link");
    su.batch_execute(
        "CREATE TABLE it_dicom.patient AS
         SELECT l.person_id, s.local_patient_id, s.birth_date::date AS birth_date, s.sex::smallint AS sex
           FROM it_dicom.staging s JOIN medanon.person_link l USING (institution_code, local_patient_id);
         CREATE TABLE it_dicom.visit AS
         SELECT p.person_id, 'H1'::text AS institution_code, DATE '2024-05-20' + (p.person_id::int % 9) * 7 AS visit_date
           FROM it_dicom.patient p;
         CREATE TABLE it_dicom.ct (person_id bigint, institution_code text, object bytea);",
    )
    .expect("records");
    let images = make_images(&images());
    for (im, bytes) in &images {
        su.execute(
            "INSERT INTO it_dicom.ct SELECT l.person_id, 'H1', $2 FROM medanon.person_link l WHERE l.local_patient_id = $1",
            &[&im.local_id, bytes],
        )
        .expect("an image");
    }
    su.batch_execute(
        "GRANT SELECT ON ALL TABLES IN SCHEMA it_dicom TO it_etl;
         SELECT medanon.register_source('it_dicom.patient', 'person_id');
         SELECT medanon.register_source('it_dicom.visit', 'person_id', 'institution_code');
         SELECT medanon.register_source('it_dicom.ct', 'person_id', 'institution_code');
         SELECT medanon.classify('it_dicom.patient', c, cls) FROM (VALUES ('person_id', 'identifier'), ('local_patient_id', 'identifier'),
             ('birth_date', 'quasi_identifier'), ('sex', 'quasi_identifier')) v(c, cls);
         SELECT medanon.classify('it_dicom.visit', c, cls) FROM (VALUES ('person_id', 'identifier'),
             ('institution_code', 'quasi_identifier'), ('visit_date', 'static')) v(c, cls);
         SELECT medanon.classify('it_dicom.ct', c, cls) FROM (VALUES ('person_id', 'identifier'),
             ('institution_code', 'quasi_identifier'), ('object', 'image')) v(c, cls);",
    )
    .expect("sources");
    (su, images)
}

/// Contract it_da (k = 3, ages in bands of 20, dates shifted, the basic profile's
/// defaults for images) and it_db (k = 2, images with burned-in annotations
/// accepted and sex kept), published by the ETL login.
pub fn publish_both(etl: &mut Client) {
    etl.batch_execute(
        r#"SELECT medanon.create_contract('{"id": "it_da", "grantee": "it_lab_da", "purpose": "AI diagnostic support for pancreatic cancer",
              "approved_on": "2026-01-01", "expires_on": "2099-12-31", "kind": "anonymized", "k": 3, "reference_date": "2026-04-01",
              "tables": [{"source": "it_dicom.patient", "columns": {"person_id": "token", "birth_date": {"age_band": {"band": 20, "top": 90}}, "sex": "keep"}},
                         {"source": "it_dicom.visit", "columns": {"person_id": "token", "visit_date": "shift"}},
                         {"source": "it_dicom.ct", "columns": {"person_id": "token", "object": "dicom"}}]}');
           SELECT medanon.create_contract('{"id": "it_db", "grantee": "it_lab_db", "purpose": "CT cohort",
              "approved_on": "2026-01-01", "expires_on": "2099-12-31", "kind": "anonymized", "k": 2,
              "tables": [{"source": "it_dicom.patient", "columns": {"person_id": "token", "sex": "keep"}},
                         {"source": "it_dicom.ct", "columns": {"person_id": "token",
                              "object": {"dicom": {"burned_in_annotation": "accept", "patient_sex": "keep"}}}}]}');
           SELECT medanon.publish_contract('it_da');
           SELECT medanon.publish_contract('it_db');"#,
    )
    .expect("publish");
}
