//! Issue 20: DICOM objects de-identified per contract, checked as the issue's
//! "How we will check" says, with pydicom as the second reader
//! (tests/dicom/ct.py): a contract over a table of synthetic CT slices with
//! Japanese patient names (ISO 2022 IR 87 and IR 13).
//!
//! - the analyst's objects open in pydicom;
//! - they contain no attribute of the profile's list with its original value;
//! - they carry the contract's token as PatientID and shifted dates, with
//!   intervals kept (between images, and between images and records);
//! - one study has one UID within a contract, and other UIDs in another contract;
//! - an opt-out hides that person's images at its commit.
//!
//! And the guarantees of every other column: k, expiry, the ledger, the
//! incremental refresh, burned-in annotations withheld and counted, no keyed
//! function for the analyst.

#[path = "dicom/warehouse.rs"]
mod warehouse;

use medanon_integration::*;
use postgres::error::SqlState;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use warehouse::*;

/// (token, object) of every row of the analyst's view `schema.ct`.
fn analyst_rows(role: &str, schema: &str) -> Vec<(i64, Option<Vec<u8>>)> {
    let mut lab = connect_as(role);
    lab.query(&format!("SELECT person_id, object FROM {schema}.ct"), &[])
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

/// person_id -> (token, date offset, state) in a contract's map.
fn map_of(su: &mut postgres::Client, contract: &str) -> BTreeMap<i64, (i64, i32, String)> {
    su.query("SELECT person_id, token, date_offset, state FROM medanon.contract_person WHERE contract_id = $1", &[&contract])
        .unwrap()
        .iter()
        .map(|r| (r.get(0), (r.get(1), r.get(2), r.get(3))))
        .collect()
}

fn person_of(su: &mut postgres::Client, local_id: &str) -> i64 {
    su.query_one("SELECT person_id FROM medanon.person_link WHERE local_patient_id = $1", &[&local_id]).unwrap().get(0)
}

/// The analyst's objects of a contract, each paired with its source image: the
/// operator's deidentify_dicom gives the same bytes for the same person and
/// object, so each analyst object is matched by equality (and the two paths are
/// shown to agree).
struct Paired {
    image: Image,
    person: i64,
    out: Vec<u8>,
}

fn pair(su: &mut postgres::Client, contract: &str, role: &str, images: &[(Image, Vec<u8>)]) -> (Vec<Paired>, usize) {
    let rows = analyst_rows(role, &format!("contract_{contract}"));
    let map = map_of(su, contract);
    let mut etl = connect_as("it_etl");
    let mut shown: BTreeMap<Vec<u8>, usize> = BTreeMap::new();
    let mut nulls = 0;
    for (_, object) in &rows {
        match object {
            Some(o) => *shown.entry(o.clone()).or_default() += 1,
            None => nulls += 1,
        }
    }
    let mut paired = Vec::new();
    for (im, bytes) in images {
        let person = person_of(su, &im.local_id);
        let visible = map.get(&person).is_some_and(|(_, _, s)| s == "visible");
        if !visible {
            continue;
        }
        let expected: Option<Vec<u8>> = etl
            .query_one("SELECT medanon.deidentify_dicom($1, $2, $3)", &[bytes, &contract, &person])
            .unwrap()
            .get(0);
        let Some(expected) = expected else { continue };
        let n = shown.get_mut(&expected).unwrap_or_else(|| panic!("{contract}: the analyst lacks the object of {im:?}"));
        assert!(*n > 0, "{contract}: an object of {im:?} is shown fewer times than it is stored");
        *n -= 1;
        paired.push(Paired { image: im.clone(), person, out: expected });
    }
    assert!(shown.values().all(|n| *n == 0), "{contract}: the analyst sees objects no visible person's source gives");
    (paired, nulls)
}

/// pydicom's reading of each pair (source, analyst's object).
fn checked(name: &str, paired: &[Paired], images: &[(Image, Vec<u8>)]) -> Vec<Value> {
    let dir = scratch(name);
    let mut pairs = Vec::new();
    for (n, p) in paired.iter().enumerate() {
        let src = &images.iter().find(|(im, _)| im.sop_uid == p.image.sop_uid).unwrap().1;
        let (a, b) = (dir.join(format!("{n}.in.dcm")), dir.join(format!("{n}.out.dcm")));
        std::fs::write(&a, src).unwrap();
        std::fs::write(&b, &p.out).unwrap();
        pairs.push(json!({"in": a, "out": b}));
    }
    let out = helper(&["check", TABLE], &Value::Array(pairs));
    let v: Vec<Value> = serde_json::from_str(&out).unwrap();
    assert_eq!(v.len(), paired.len());
    v
}

fn s<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or_else(|| panic!("{key} missing in {v}"))
}

#[test]
fn the_issue_s_checks_hold_for_a_contract_over_japanese_ct_slices() {
    let (mut su, images) = dicom_warehouse();
    let mut etl = connect_as("it_etl");
    publish_both(&mut etl);
    let map_a = map_of(&mut su, "it_da");
    let map_b = map_of(&mut su, "it_db");
    let (a, nulls_a) = pair(&mut su, "it_da", "it_lab_da", &images);
    let (b, nulls_b) = pair(&mut su, "it_db", "it_lab_db", &images);
    assert!(a.len() >= 30, "most images are shown: {}", a.len());
    let ra = checked("a", &a, &images);
    let rb = checked("b", &b, &images);
    let mut japanese = 0;
    let kept_a = json!([]);
    // it_db's rule keeps PatientSex ("patient_sex": "keep"): the only attribute of the list it may keep.
    let kept_b = json!(["(0010,0040) PatientSex"]);
    let both = a.iter().zip(&ra).map(|x| (x, &kept_a)).chain(b.iter().zip(&rb).map(|x| (x, &kept_b)));
    for ((p, r), kept) in both {
        let what = format!("{:?} -> {r}", p.image);
        // 1. pydicom opens it (no force).
        assert_eq!(r["opened"], true, "{what}");
        // 2. No attribute of the profile keeps its original value; no private one is left.
        assert_eq!(&r["kept_original"], kept, "{what}");
        assert_eq!(r["private_left"], 0, "{what}");
        assert_eq!(s(r, "patient_name"), "", "{what}");
        assert_eq!(r["name_bytes_in_input"], true, "{what}");
        assert_eq!(r["name_bytes_in_output"], false, "the name's bytes are gone: {what}");
        if p.image.charset != "ascii" {
            japanese += 1;
            assert!(s(r, "input_name").contains('^') && !s(r, "input_name").is_ascii(), "pydicom read a Japanese name: {what}");
        }
        assert_eq!(s(r, "PatientIdentityRemoved"), "YES");
        assert!(s(r, "DeidentificationMethod").contains("PS3.15"), "{what}");
        assert!(r["codes"].as_array().unwrap().contains(&json!("113100")), "{what}");
        assert_eq!(s(r, "media_sop_uid"), s(r, "SOPInstanceUID"), "{what}");
        assert_eq!(r["pixels_kept"], true, "{what}");
        assert_eq!(s(r, "PatientBirthDate"), "", "{what}");
        assert_eq!(s(r, "AccessionNumber"), "", "{what}");
        for uid in ["StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"] {
            assert!(s(r, uid).starts_with("2.25.") && s(r, uid).len() <= 64, "{what}");
        }
    }
    assert!(japanese >= 20, "the check read Japanese names: {japanese}");
    // 3. The token of the contract as PatientID; dates moved by the person's offset.
    for (map, pairs, results) in [(&map_a, &a, &ra), (&map_b, &b, &rb)] {
        for (p, r) in pairs.iter().zip(results) {
            let (token, offset, _) = &map[&p.person];
            assert_eq!(s(r, "PatientID"), token.to_string(), "{:?}", p.image);
            assert_eq!(s(r, "StudyDate"), shift(&p.image.study_date, *offset), "{:?}", p.image);
            assert_eq!(&s(r, "AcquisitionDateTime")[..8], shift(&p.image.study_date, *offset));
            assert_eq!(s(r, "StudyTime"), "093000", "times of day are kept (whole-day shift)");
        }
    }
    // Intervals kept: between a person's two studies, and between an image and a visit.
    let mut intervals = 0;
    for (p, r) in a.iter().zip(&ra) {
        for (q, t) in a.iter().zip(&ra) {
            if p.person == q.person && p.image.study_uid != q.image.study_uid {
                assert_eq!(
                    days_between(s(r, "StudyDate"), s(t, "StudyDate")),
                    days_between(&p.image.study_date, &q.image.study_date)
                );
                intervals += 1;
            }
        }
    }
    assert!(intervals >= 2, "persons with two studies are shown: {intervals}");
    let mut lab = connect_as("it_lab_da");
    let visits: BTreeMap<String, String> = lab
        .query("SELECT person_id::text, to_char(visit_date, 'YYYYMMDD') FROM contract_it_da.visit", &[])
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let raw_visits: BTreeMap<i64, String> = su
        .query("SELECT person_id, to_char(visit_date, 'YYYYMMDD') FROM it_dicom.visit", &[])
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    for (p, r) in a.iter().zip(&ra) {
        let shown_visit = &visits[s(r, "PatientID")];
        assert_eq!(
            days_between(shown_visit, s(r, "StudyDate")),
            days_between(&raw_visits[&p.person], &p.image.study_date),
            "image and record keep their interval"
        );
    }
    // 4. One study, one UID within a contract; other UIDs in the other contract.
    for (pairs, results) in [(&a, &ra), (&b, &rb)] {
        let mut by_study: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
        let mut sops = BTreeSet::new();
        for (p, r) in pairs.iter().zip(results) {
            by_study.entry(p.image.study_uid.as_str()).or_default().insert(s(r, "StudyInstanceUID"));
            assert!(sops.insert(s(r, "SOPInstanceUID")), "SOP Instance UIDs stay distinct");
        }
        assert!(by_study.values().all(|u| u.len() == 1), "{by_study:?}");
        let distinct: BTreeSet<_> = by_study.values().flatten().collect();
        assert_eq!(distinct.len(), by_study.len(), "two studies never share a UID");
    }
    let uids = |results: &[Value]| -> BTreeSet<String> {
        results
            .iter()
            .flat_map(|r| ["StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "FrameOfReferenceUID"].map(|k| s(r, k).to_string()))
            .collect()
    };
    assert!(uids(&ra).is_disjoint(&uids(&rb)), "two contracts share no UID");
    assert!(map_a.values().all(|(t, ..)| map_b.values().all(|(u, ..)| t != u)), "nor a token");
    // Burned-in annotations: withheld (NULL) in it_da, counted; shown in it_db, which accepts them.
    let burned_visible = |map: &BTreeMap<i64, (i64, i32, String)>, su: &mut postgres::Client| {
        images.iter().filter(|(im, _)| im.burned_in && map[&person_of(su, &im.local_id)].2 == "visible").count()
    };
    let expected_a = burned_visible(&map_a, &mut su);
    assert!(expected_a > 0, "a visible person has a burned-in slice");
    assert_eq!(nulls_a, expected_a, "each burned-in slice shows as NULL in it_da");
    assert_eq!(nulls_b, 0, "it_db accepts them");
    assert!(b.iter().filter(|p| p.image.burned_in).count() >= 1);
    let withheld: i64 =
        etl.query_one("SELECT images_withheld FROM medanon.contract_report('it_da')", &[]).unwrap().get(0);
    assert_eq!(withheld, expected_a as i64, "contract_report counts the withheld images");
    let withheld_b: i64 =
        etl.query_one("SELECT images_withheld FROM medanon.contract_report('it_db')", &[]).unwrap().get(0);
    assert_eq!(withheld_b, 0);
    // it_db keeps sex (M) and accepts; it_da empties it.
    assert!(rb.iter().all(|r| s(r, "PatientSex") == "M"));
    assert!(ra.iter().all(|r| s(r, "PatientSex") == ""));
    // The ledger's publish entry counts the view's rows.
    let ledger: i64 = su
        .query_one(
            "SELECT (detail -> 'views' ->> 'ct')::bigint FROM medanon.provision_ledger
              WHERE contract_id = 'it_da' AND event = 'publish'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(ledger as usize, a.len() + nulls_a, "the ledger records the rows of the ct view");
}

#[test]
fn k_expiry_opt_out_and_the_incremental_refresh_hold_for_images() {
    let (mut su, images) = dicom_warehouse();
    let mut etl = connect_as("it_etl");
    publish_both(&mut etl);
    let map = map_of(&mut su, "it_da");
    // k: p99, alone in the oldest band, is withheld, and so are the images.
    let p99 = person_of(&mut su, "p99");
    assert_eq!(map[&p99].2, "k", "{:?}", map[&p99]);
    let count_for = |token: &i64, role: &str, schema: &str| -> i64 {
        connect_as(role).query_one(&format!("SELECT count(*) FROM {schema}.ct WHERE person_id = $1"), &[&token]).unwrap().get(0)
    };
    assert_eq!(count_for(&map[&p99].0, "it_lab_da", "contract_it_da"), 0);
    let stored: i64 = su.query_one("SELECT count(*) FROM it_dicom.ct WHERE person_id = $1", &[&p99]).unwrap().get(0);
    assert_eq!(stored, 2, "p99 has images in the source");
    // The operator gets no object of a withheld person either.
    let (_, bytes) = images.iter().find(|(im, _)| im.local_id == "p99").unwrap();
    let e = etl.query_one("SELECT medanon.deidentify_dicom($1, 'it_da', $2)", &[bytes, &p99]).unwrap_err();
    assert_eq!(e.code(), Some(&SqlState::OBJECT_NOT_IN_PREREQUISITE_STATE), "{e}");

    // Opt-out: a visible person's images vanish at the commit, without a refresh.
    let with_images: BTreeSet<i64> =
        su.query("SELECT DISTINCT person_id FROM it_dicom.ct", &[]).unwrap().iter().map(|r| r.get(0)).collect();
    let (victim, (token, ..)) = map
        .iter()
        .find(|(p, (_, _, s))| s == "visible" && with_images.contains(p))
        .map(|(p, v)| (*p, v.clone()))
        .unwrap();
    let local: String =
        su.query_one("SELECT local_patient_id FROM medanon.person_link WHERE person_id = $1", &[&victim]).unwrap().get(0);
    let before = count_for(&token, "it_lab_da", "contract_it_da");
    assert!(before >= 1, "the person's images are shown before: {before}");
    let race = race_an_opt_out(
        vec![(connect_as("it_lab_da"), "SELECT count(*) FROM contract_it_da.ct WHERE person_id::text = $1".into(), token.to_string())],
        &format!("SELECT medanon.opt_out('H1', '{local}')"),
    );
    assert_opt_out_was_immediate(&race);
    assert_eq!(count_for(&token, "it_lab_da", "contract_it_da"), 0);

    // Incremental refresh: a new slice of a shown person's first study appears,
    // de-identified, in that study's UID.
    let (shown, (shown_token, ..)) = map
        .iter()
        .find(|(p, (_, _, s))| s == "visible" && **p != victim && with_images.contains(p))
        .map(|(p, v)| (*p, v.clone()))
        .unwrap();
    let local: String =
        su.query_one("SELECT local_patient_id FROM medanon.person_link WHERE person_id = $1", &[&shown]).unwrap().get(0);
    let first = images.iter().find(|(im, _)| im.local_id == local).unwrap().0.clone();
    let extra = Image { sop_uid: format!("{}.1.9", first.study_uid), burned_in: false, ..first.clone() };
    let (_, extra_bytes) = make_images(&[extra]).pop().unwrap();
    su.execute("INSERT INTO it_dicom.ct VALUES ($1, 'H1', $2)", &[&shown, &extra_bytes]).unwrap();
    let before = count_for(&shown_token, "it_lab_da", "contract_it_da");
    // A key rotation between the publish and the refresh changes no UID: the
    // operator's copy of the new slice is the same before and after it.
    let deidentified = |etl: &mut postgres::Client| -> Option<Vec<u8>> {
        etl.query_one("SELECT medanon.deidentify_dicom($1, 'it_da', $2)", &[&extra_bytes, &shown]).unwrap().get(0)
    };
    let before_rotation = deidentified(&mut etl);
    assert!(before_rotation.is_some(), "the slice is shown");
    su.batch_execute("SELECT medanon.rotate_key()").unwrap();
    assert_eq!(deidentified(&mut etl), before_rotation, "a rotate_key() changes no UID of a contract's objects");
    let refreshed: String = etl.query_one("SELECT medanon.refresh_contract('it_da')::text", &[]).unwrap().get(0);
    assert_eq!(count_for(&shown_token, "it_lab_da", "contract_it_da"), before + 1, "{refreshed}");
    let mut lab = connect_as("it_lab_da");
    let objects: Vec<Vec<u8>> = lab
        .query("SELECT object FROM contract_it_da.ct WHERE person_id = $1 AND object IS NOT NULL", &[&shown_token])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let dir = scratch("refresh");
    let pairs: Vec<Value> = objects
        .iter()
        .enumerate()
        .map(|(n, o)| {
            let (a, b) = (dir.join(format!("{n}.in.dcm")), dir.join(format!("{n}.out.dcm")));
            std::fs::write(&a, &extra_bytes).unwrap();
            std::fs::write(&b, o).unwrap();
            json!({"in": a, "out": b})
        })
        .collect();
    let results: Vec<Value> = serde_json::from_str(&helper(&["check", TABLE], &Value::Array(pairs))).unwrap();
    let new_sop = results.iter().filter(|r| r["opened"] == true).count();
    assert_eq!(new_sop, objects.len());
    let study_uids: BTreeSet<&str> = results
        .iter()
        .filter(|r| s(r, "StudyDate") == shift(&first.study_date, map[&shown].1))
        .map(|r| s(r, "StudyInstanceUID"))
        .collect();
    assert_eq!(study_uids.len(), 1, "the new slice joins its study's UID, after a key rotation too: {study_uids:?}");
    let refreshes: i64 = su
        .query_one("SELECT count(*) FROM medanon.provision_ledger WHERE contract_id = 'it_da' AND event = 'refresh'", &[])
        .unwrap()
        .get(0);
    assert_eq!(refreshes, 1, "the refresh is in the ledger");

    // Expiry: a contract past its last day is closed; its images go with its views.
    su.batch_execute("UPDATE medanon.contract SET expires_on = medanon.contract_today() - 1 WHERE contract_id = 'it_db'").unwrap();
    etl.batch_execute("SELECT medanon.expire_contracts()").unwrap();
    let mut lab_b = connect_as("it_lab_db");
    let e = lab_b.query("SELECT count(*) FROM contract_it_db.ct", &[]).unwrap_err();
    assert!(matches!(e.code(), Some(c) if *c == SqlState::UNDEFINED_TABLE || *c == SqlState::INVALID_SCHEMA_NAME), "{e}");
    let e = etl.query_one("SELECT medanon.deidentify_dicom($1, 'it_db', $2)", &[&extra_bytes, &shown]).unwrap_err();
    assert_eq!(e.code(), Some(&SqlState::OBJECT_NOT_IN_PREREQUISITE_STATE), "{e}");
}

#[test]
fn the_analyst_calls_nothing_keyed_and_the_rule_needs_the_image_class() {
    let (mut su, images) = dicom_warehouse();
    let mut etl = connect_as("it_etl");
    publish_both(&mut etl);
    let (_, bytes) = &images[0];
    let mut lab = connect_as("it_lab_da");
    for sql in [
        "SELECT medanon.deidentify_dicom($1, 'it_da', 1)",
        "SELECT medanon._dicom_object($1, 1, 7, 'it_da', NULL, NULL, false, false)",
        "SELECT medanon._dicom_study_date($1)",
    ] {
        let e = lab.query(sql, &[bytes]).unwrap_err();
        assert_eq!(e.code(), Some(&SqlState::INSUFFICIENT_PRIVILEGE), "{sql}: {e}");
    }
    for sql in ["SELECT * FROM contract_it_da_data.t2_g1", "SELECT * FROM medanon.contract_image", "SELECT * FROM it_dicom.ct"] {
        assert_sqlstate(&mut lab, sql, SqlState::INSUFFICIENT_PRIVILEGE);
    }
    // The view shows the token and the object, nothing else of the source.
    let columns: Vec<String> = strings(
        &mut su,
        "SELECT attname::text FROM pg_attribute WHERE attrelid = 'contract_it_da.ct'::regclass AND attnum > 0 ORDER BY attnum",
    );
    assert_eq!(columns, ["person_id", "object"]);
    // Refusals name the key: an image column kept as is, a dicom rule on text,
    // a class image on a column exposed otherwise.
    let spec = |columns: &str| {
        format!(
            r#"SELECT medanon.create_contract('{{"id": "it_dx", "grantee": "it_lab_da", "purpose": "x",
                 "approved_on": "2026-01-01", "expires_on": "2099-12-31", "kind": "anonymized", "k": 3,
                 "tables": [{{"source": "it_dicom.ct", "columns": {columns}}}]}}')"#
        )
    };
    for (columns, state) in [
        (r#"{"person_id": "token", "object": "keep"}"#, SqlState::INVALID_PARAMETER_VALUE),
        (r#"{"person_id": "token", "institution_code": "dicom"}"#, SqlState::INVALID_PARAMETER_VALUE),
        (r#"{"person_id": "token", "object": {"dicom": {"burned_in_annotation": "sometimes"}}}"#, SqlState::INVALID_PARAMETER_VALUE),
        (r#"{"person_id": "token", "object": {"dicom": {"patient_age": "age_band"}}}"#, SqlState::INVALID_PARAMETER_VALUE),
    ] {
        let e = etl.batch_execute(&spec(columns)).unwrap_err();
        assert_eq!(e.code(), Some(&state), "{columns}: {e}");
        assert!(e.as_db_error().unwrap().message().contains("tables[0].columns."), "{e}");
    }
    assert_sqlstate(&mut etl, "SELECT medanon.classify('it_dicom.ct', 'object', 'picture')", SqlState::INVALID_PARAMETER_VALUE);
}
