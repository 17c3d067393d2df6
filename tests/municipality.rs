//! The municipality level (issue 21, part 1) over the wire: a contract whose
//! address and postal code are shown as their municipality (市区町村), at ward and at
//! city level for a designated city, with k computed on it; and free-text columns
//! (an institution's name, a memo) that cannot be kept unless classified.

use medanon_integration::*;
use postgres::error::SqlState;
use postgres::Client;
use std::collections::BTreeMap;

/// 15 persons: 5 in 大阪市北区 (written four ways), 4 in 大阪市中央区, 4 in a town
/// merged into 浜松市 in 2005 (春野町: by today's name with the old one as 町域, and
/// by postal code), 1 in 堺市北区 (a ward of another city with the same name), and
/// 1 written with the merged town's old name (静岡県周智郡春野町), which no
/// registry-published merger list resolves: NULL, counted.
const PEOPLE: &[(&str, &str)] = &[
    ("大阪府大阪市北区梅田1-1-1", "530-0001"),
    ("大阪市北区梅田2丁目", "530-0001"),
    ("大阪府 大阪市 北区 中之島1", "530-0005"),
    ("〒530-0001 大阪府大阪市北区梅田3", "〒530-0001"),
    ("大阪大阪市北区天満1", "530-0043"),
    ("大阪府大阪市中央区大手前2", "540-0008"),
    ("大阪市中央区難波5", "542-0076"),
    ("大阪府大阪市中央区本町1", "541-0053"),
    ("大阪府大阪市中央区城見1", "540-0001"),
    ("静岡県浜松市天竜区春野町宮川1", "437-0604"),
    ("浜松市天竜区春野町気田2", "437-0603"),
    ("静岡県浜松市天竜区春野町堀之内3", "437-0604"),
    ("静岡県浜松市天竜区春野町気田4", "437-0603"),
    ("大阪府堺市北区新金岡町1", "591-8021"),
    ("静岡県周智郡春野町宮川9", "437-0604"),
];

fn setup() -> Client {
    let mut su = superuser();
    su.batch_execute(
        "DROP SCHEMA IF EXISTS it_muni, contract_it_mw, contract_it_mw_data, contract_it_mc, contract_it_mc_data CASCADE;
         DO $$ BEGIN
           IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'it_lab_m') THEN CREATE ROLE it_lab_m LOGIN; END IF;
         END $$;",
    )
    .expect("roles");
    let mut su = fresh_install();
    let values: Vec<String> = PEOPLE
        .iter()
        .enumerate()
        .map(|(i, (address, postal))| format!("({}, '{address}', '{postal}')", i + 1))
        .collect();
    su.batch_execute(&format!(
        "CREATE SCHEMA it_muni;
         CREATE TABLE it_muni.patient (person_id bigint, address text, postal_code text, sex smallint,
                                       institution_name text, memo text);
         INSERT INTO it_muni.patient (person_id, address, postal_code, sex, institution_name, memo)
         SELECT v.id, v.address, v.postal, 1, '市立病院', '特記事項なし'
           FROM (VALUES {}) v(id, address, postal);
         GRANT USAGE ON SCHEMA it_muni TO it_etl;
         GRANT SELECT ON ALL TABLES IN SCHEMA it_muni TO it_etl;",
        values.join(", ")
    ))
    .expect("patients");
    // The source's persons must be linked persons: link one staging record each.
    su.batch_execute(
        "CREATE TABLE it_muni.staging (institution_code text, local_patient_id text, name_kana text,
             birth_date text, sex text, insurer_number text, insured_symbol text, insured_number text);
         INSERT INTO it_muni.staging SELECT 'H1', 'm' || i, 'ﾀﾅｶ ' || chr(12450 + i * 2), (DATE '1950-01-01' + i * 300)::text, '1', '', '', ''
           FROM generate_series(1, 15) i;
         SELECT medanon.register_institution('H1', 'Hospital 1', 'hospital');
         SELECT medanon.record_notification('H1', local_patient_id, now() - interval '40 days') FROM it_muni.staging;
         GRANT SELECT ON it_muni.staging TO it_etl;",
    )
    .expect("staging");
    let mut etl = connect_as("it_etl");
    etl.batch_execute("SELECT medanon.link_patients('it_muni.staging')").expect("link");
    su.batch_execute(
        "UPDATE it_muni.patient p SET person_id = l.person_id
           FROM medanon.person_link l WHERE l.local_patient_id = 'm' || p.person_id;
         SELECT medanon.register_source('it_muni.patient', 'person_id');
         SELECT medanon.classify('it_muni.patient', c, cls) FROM (VALUES ('person_id', 'identifier'),
             ('address', 'quasi_identifier'), ('postal_code', 'quasi_identifier'), ('sex', 'quasi_identifier')) v(c, cls);",
    )
    .expect("source");
    su
}

fn contract(id: &str, columns: &str) -> String {
    format!(
        r#"SELECT medanon.create_contract('{{"id": "{id}", "grantee": "it_lab_m", "purpose": "health by municipality",
              "approved_on": "2026-01-01", "expires_on": "2099-12-31", "kind": "anonymized", "k": 3,
              "tables": [{{"source": "it_muni.patient", "columns": {{"person_id": "token", {columns}}}}}]}}')"#
    )
}

/// Persons per shown value of `column` in a contract's view, as the grantee reads it.
fn classes(client: &mut Client, sql: &str) -> BTreeMap<Option<String>, i64> {
    client.query(sql, &[]).unwrap_or_else(|e| panic!("{sql}: {e}")).iter().map(|r| (r.get(0), r.get(1))).collect()
}

#[test]
fn addresses_and_postal_codes_generalize_to_their_municipality_and_k_holds_on_it() {
    let _su = setup();
    let mut etl = connect_as("it_etl");
    // Ward level: 大阪市北区 and 中央区 apart; 堺市北区 is another ward (one person,
    // under k = 3: suppressed); the old name 周智郡春野町 is NULL, and alone.
    etl.batch_execute(&contract("it_mw", r#""address": "municipality", "sex": "keep""#)).expect("create ward-level contract");
    etl.batch_execute("SELECT medanon.publish_contract('it_mw')").expect("publish");
    let mut lab = connect_as("it_lab_m");
    let shown = classes(&mut lab, "SELECT address, count(*) FROM contract_it_mw.patient GROUP BY 1");
    let expected: BTreeMap<Option<String>, i64> = [
        (Some("大阪府大阪市北区".to_string()), 5),
        (Some("大阪府大阪市中央区".to_string()), 4),
        (Some("静岡県浜松市天竜区".to_string()), 4),
    ]
    .into_iter()
    .collect();
    assert_eq!(shown, expected, "municipalities at ward level, classes under k suppressed");
    let report = etl
        .query_one("SELECT k, persons_exposed, persons_suppressed_k, min_class_size::bigint FROM medanon.contract_report('it_mw')", &[])
        .unwrap();
    let (k, exposed, suppressed, min_class): (i32, i64, i64, Option<i64>) = (report.get(0), report.get(1), report.get(2), report.get(3));
    assert_eq!((k, exposed, suppressed), (3, 13, 2), "堺市北区 and the unresolved old name are each a class of 1");
    assert!(min_class.is_some_and(|m| m >= 3), "k holds on the municipality: {min_class:?}");
    // The raw addresses are nowhere in the view.
    let raw: i64 = lab
        .query_one("SELECT count(*) FROM contract_it_mw.patient WHERE address LIKE '%梅田%' OR address LIKE '%春野%'", &[])
        .unwrap()
        .get(0);
    assert_eq!(raw, 0);

    // City level, and the postal code: 大阪市 is one class of 9; 堺市 stays alone; the
    // postal codes of 春野町, the old name's included, are today's 浜松市.
    etl.batch_execute(&contract("it_mc", r#""address": {"municipality": "city"}, "postal_code": {"municipality": "city"}"#))
        .expect("create city-level contract");
    etl.batch_execute("SELECT medanon.publish_contract('it_mc')").expect("publish");
    let shown = classes(&mut lab, "SELECT address || ' / ' || postal_code, count(*) FROM contract_it_mc.patient GROUP BY 1");
    let expected: BTreeMap<Option<String>, i64> = [
        (Some("大阪府大阪市 / 大阪府大阪市".to_string()), 9),
        (Some("静岡県浜松市 / 静岡県浜松市".to_string()), 4),
    ]
    .into_iter()
    .collect();
    assert_eq!(shown, expected);
    let suppressed: i64 = etl.query_one("SELECT persons_suppressed_k FROM medanon.contract_report('it_mc')", &[]).unwrap().get(0);
    assert_eq!(suppressed, 2);
    // k on the municipality, measured by k_anonymity on the same expressions.
    let mut su = superuser();
    su.batch_execute(
        "CREATE TEMP TABLE m AS SELECT person_id, medanon.municipality_of(address) AS m FROM it_muni.patient;",
    )
    .unwrap();
    let k: i64 = su.query_one("SELECT medanon.k_anonymity('pg_temp.m', ARRAY['m'], 'person_id')", &[]).unwrap().get(0);
    assert_eq!(k, 1, "before suppression, 堺市北区 and the NULL class hold one person each");
    let nulls: i64 = su.query_one("SELECT count(*) FROM pg_temp.m WHERE m IS NULL", &[]).unwrap().get(0);
    assert_eq!(nulls, 1, "the unresolved old name is counted, not guessed");
}

#[test]
fn suggest_generalization_climbs_through_the_municipality() {
    let mut su = setup();
    let text: String = su
        .query_one(
            r#"SELECT medanon.suggest_generalization('it_muni.patient',
                 '{"person_column": "person_id", "quasi_identifiers": {"address": "geography"}}', 4, 0.2)::text"#,
            &[],
        )
        .unwrap()
        .get(0);
    let result: serde_json::Value = serde_json::from_str(&text).unwrap();
    // 5 + 4 + 4 at ward level (大阪市北区, 中央区, 浜松市天竜区) with 2 of 15 suppressed
    // (13%, within 20%): the search stops at the municipality, below the prefecture.
    assert_eq!(result["levels"]["address"]["level"], 1, "{result}");
    assert_eq!(result["levels"]["address"]["label"], "municipality", "{result}");
}

#[test]
fn free_text_columns_cannot_be_kept_unless_classified() {
    let _su = setup();
    let mut etl = connect_as("it_etl");
    for column in ["institution_name", "memo"] {
        let sql = contract("it_mw", &format!(r#""address": "municipality", "{column}": "keep""#));
        let err = etl.batch_execute(&sql).expect_err("an unclassified column is refused");
        let db = err.as_db_error().expect("a server error");
        assert_eq!(db.code(), &SqlState::INVALID_PARAMETER_VALUE, "{column}: {db:?}");
        assert!(db.message().contains(column) && db.message().contains("not classified"), "{}", db.message());
    }
    // Classified as an identifier, it still cannot be kept; as a quasi-identifier it
    // can, and k then covers it.
    let mut su = superuser();
    su.batch_execute("SELECT medanon.classify('it_muni.patient', 'institution_name', 'identifier')").unwrap();
    let sql = contract("it_mw", r#""address": "municipality", "institution_name": "keep""#);
    let err = etl.batch_execute(&sql).expect_err("an identifier is refused");
    assert_eq!(err.code(), Some(&SqlState::INVALID_PARAMETER_VALUE));
    su.batch_execute("SELECT medanon.classify('it_muni.patient', 'institution_name', 'quasi_identifier')").unwrap();
    etl.batch_execute(&sql).expect("a classified quasi-identifier may be kept");
}
