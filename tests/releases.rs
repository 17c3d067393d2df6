//! Issue 14: anonymized across releases. A hostile grantee holds a snapshot and
//! the live views, and joins them on the token; it reads rare diagnosis codes
//! (特異な記述) next to a person's class; it counts a person's rows in a
//! person-level view. Each attack must fail, and each test shows it failing:
//!
//! (a) joining the snapshot to the live views yields no quasi-identifier
//!     combination shared by fewer than k persons, although some persons moved
//!     between the two refreshes;
//! (b) no code held by fewer than min_persons visible persons appears in any
//!     view; rarer codes climb the ICD-10 hierarchy, and an opt-out that takes a
//!     code below min_persons replaces it in the same transaction;
//! (d) a token shows on as many rows of the person-level view as every other
//!     token of its class.

use medanon_integration::*;
use postgres::Client;
use std::collections::{BTreeMap, BTreeSet};

const K: i64 = 5;

/// 320 persons at H1; those with i % 5 < 2 also registered at H2 (two rows in
/// the person-level patient table). Classes: 4 age bands x 2 sexes x 2
/// prefectures, 20 persons each, about 8 of them registered twice. Visits on business days, with common
/// codes and a few rare ones: E11.8 (2 persons) and E11.7 (3) climb to E11 (5
/// persons together), C34.1 (1) climbs to its chapter and, held by one person
/// there too, is suppressed; department 99 (2 persons) has no hierarchy: NULL.
fn warehouse() -> Client {
    let mut su = superuser();
    su.batch_execute(
        "DROP SCHEMA IF EXISTS it_rel, contract_rel_a, contract_rel_a_data, contract_rel_a_snap_1, contract_rel_h, contract_rel_h_data,
             contract_rel_d, contract_rel_d_data, contract_rel_k, contract_rel_k_data CASCADE;
         DO $$ BEGIN
           IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'it_lab_r') THEN CREATE ROLE it_lab_r LOGIN; END IF;
         END $$;",
    )
    .expect("roles");
    let mut su = fresh_install();
    su.batch_execute(
        "CREATE SCHEMA it_rel;
         CREATE TABLE it_rel.staging (institution_code text, local_patient_id text, name_kana text,
             birth_date text, sex text, insurer_number text, insured_symbol text, insured_number text);
         INSERT INTO it_rel.staging
         SELECT h, 'p' || i, 'ﾀﾅｶ ' || chr(12450 + (i % 40)) || chr(12450 + (i / 40)), (DATE '1950-06-01' + (i % 4) * 3653 + i)::text,
                (1 + (i / 4) % 2)::text, '', '', ''
           FROM generate_series(1, 320) i, unnest(ARRAY['H1', 'H2']) h
          WHERE h = 'H1' OR i % 5 < 2;
         SELECT medanon.register_institution('H1', 'Hospital 1', 'hospital');
         SELECT medanon.register_institution('H2', 'Hospital 2', 'hospital');
         SELECT medanon.record_notification(institution_code, local_patient_id, now() - interval '40 days') FROM it_rel.staging;
         GRANT USAGE ON SCHEMA it_rel TO it_etl;
         GRANT SELECT ON ALL TABLES IN SCHEMA it_rel TO it_etl;",
    )
    .expect("staging");
    let mut etl = connect_as("it_etl");
    etl.batch_execute("SELECT medanon.link_patients('it_rel.staging')").expect("link");
    su.batch_execute(
        "CREATE TABLE it_rel.patient AS
         SELECT l.person_id, s.institution_code, s.birth_date::date AS birth_date, s.sex::smallint AS sex,
                CASE WHEN substr(s.local_patient_id, 2)::int / 8 % 2 = 0 THEN '東京都新宿区1-1' ELSE '大阪府大阪市北区2-2' END AS address,
                substr(s.local_patient_id, 2)::int AS i
           FROM it_rel.staging s JOIN medanon.person_link l USING (institution_code, local_patient_id);
         CREATE TABLE it_rel.visit AS
         SELECT DISTINCT ON (p.person_id, g) p.person_id, 'H1'::text AS institution_code,
                -- Tuesdays and Wednesdays of 2024 and 2025, away from holidays' weeks
                DATE '2024-01-09' + 7 * ((p.i * 7 + g * 13) % 90) + (g % 2) AS visit_date,
                CASE WHEN g > 1 THEN (ARRAY['I10', 'E11.9'])[1 + p.i % 2]
                     WHEN p.i IN (2, 3) THEN 'E11.8' WHEN p.i IN (4, 7, 8) THEN 'E11.7' WHEN p.i = 12 THEN 'C34.1'
                     ELSE (ARRAY['I10', 'E11.9'])[1 + p.i % 2] END AS icd10,
                CASE WHEN p.i IN (13, 14) AND g = 1 THEN 99 ELSE 1 + p.i % 3 END::smallint AS department,
                (p.i % 50 + g)::numeric AS lab_value
           FROM it_rel.patient p, generate_series(1, 3) g ORDER BY p.person_id, g;
         -- One person seen in 2021 and 2028 widens the study window to seven years,
         -- so that everyone else's dates lie more than the largest offset (104 weeks)
         -- inside it: the calendar check then leaves them candidates whatever offset
         -- the install's key gives them, and the rare codes below are held by visible
         -- persons on every run (that person is the one the calendar withholds).
         INSERT INTO it_rel.visit
         SELECT p.person_id, 'H1', v.d, 'E11.9', 1::smallint, 1::numeric
           FROM it_rel.patient p, (VALUES (DATE '2021-06-01'), (DATE '2028-06-06')) v(d) WHERE p.i = 303;
         GRANT SELECT ON ALL TABLES IN SCHEMA it_rel TO it_etl;
         SELECT medanon.register_source('it_rel.patient', 'person_id', 'institution_code');
         SELECT medanon.register_source('it_rel.visit', 'person_id', 'institution_code');
         SELECT medanon.classify('it_rel.patient', c, cls) FROM (VALUES ('person_id', 'identifier'), ('institution_code', 'quasi_identifier'),
             ('birth_date', 'quasi_identifier'), ('sex', 'quasi_identifier'), ('address', 'quasi_identifier'), ('i', 'identifier')) v(c, cls);
         SELECT medanon.classify('it_rel.visit', c, cls) FROM (VALUES ('person_id', 'identifier'), ('institution_code', 'quasi_identifier'),
             ('visit_date', 'static'), ('icd10', 'semi_static'), ('department', 'semi_static'), ('lab_value', 'dynamic')) v(c, cls);",
    )
    .expect("sources");
    etl.batch_execute(
        r#"SELECT medanon.create_contract('{"id": "rel_a", "grantee": "it_lab_r", "purpose": "releases",
              "approved_on": "2026-01-01", "expires_on": "2099-12-31", "kind": "anonymized", "k": 5, "reference_date": "2026-04-01",
              "tables": [{"source": "it_rel.patient", "columns": {"person_id": "token", "birth_date": {"age_band": {"band": 10}},
                                                                   "sex": "keep", "address": "prefecture"}},
                         {"source": "it_rel.visit", "columns": {"person_id": "token", "visit_date": "shift",
                                                                 "icd10": {"hierarchy": "icd10"}, "department": "keep",
                                                                 "lab_value": {"top_code": {"percentile": 95}, "bottom_code": {"percentile": 5}}}}]}');
           SELECT medanon.publish_contract('rel_a');"#,
    )
    .expect("publish");
    su
}

fn count(client: &mut Client, sql: &str) -> i64 {
    client.query_one(sql, &[]).unwrap_or_else(|e| panic!("{sql}: {e}")).get(0)
}

/// Quasi-identifier combinations, and their distinct tokens, of `sql` (token first).
fn combinations(client: &mut Client, sql: &str) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for row in client.query(sql, &[]).unwrap_or_else(|e| panic!("{sql}: {e}")) {
        let token: String = row.get(0);
        let combo: String = row.get(1);
        out.entry(combo).or_default().insert(token);
    }
    out
}

#[test]
fn joining_a_snapshot_to_the_live_views_singles_out_no_one() {
    let mut su = warehouse();
    let mut etl = connect_as("it_etl");
    etl.batch_execute("SELECT medanon.release_snapshot('rel_a')").expect("snapshot");
    // Three persons move from Osaka to Tokyo (all their rows), then a refresh.
    let movers = "SELECT DISTINCT person_id FROM it_rel.patient WHERE address LIKE '大阪府%' AND i > 100 ORDER BY 1 LIMIT 3";
    su.batch_execute(&format!("UPDATE it_rel.patient SET address = '東京都港区3-3' WHERE person_id IN ({movers})")).unwrap();
    etl.batch_execute("SELECT medanon.refresh_contract('rel_a')").expect("refresh");
    assert_eq!(count(&mut etl, "SELECT persons_changed FROM medanon.contract_report('rel_a')"), 3, "the movers are withheld");

    let mut lab = connect_as("it_lab_r");
    let joined = combinations(
        &mut lab,
        "SELECT s.person_id::text, concat_ws('|', s.birth_date, s.sex, s.address, l.birth_date, l.sex, l.address)
           FROM contract_rel_a_snap_1.patient s JOIN contract_rel_a.patient l ON l.person_id = s.person_id",
    );
    assert!(!joined.is_empty());
    let small: Vec<_> = joined.iter().filter(|(_, t)| (t.len() as i64) < K).collect();
    assert!(small.is_empty(), "combinations of the two releases shared by fewer than {K}: {small:?}");
    // Every token shows the same quasi-identifiers in both releases.
    let differ = count(
        &mut lab,
        "SELECT count(*) FROM contract_rel_a_snap_1.patient s JOIN contract_rel_a.patient l ON l.person_id = s.person_id
          WHERE (s.birth_date, s.sex, s.address) IS DISTINCT FROM (l.birth_date, l.sex, l.address)",
    );
    assert_eq!(differ, 0);
    // And the live release alone is k-anonymous too.
    let live = combinations(&mut lab, "SELECT person_id::text, concat_ws('|', birth_date, sex, address) FROM contract_rel_a.patient");
    assert!(live.values().all(|t| t.len() as i64 >= K), "{live:?}");
    // A mover whose address returns is shown again: the class is the one of the first exposure.
    su.batch_execute(&format!(
        "UPDATE it_rel.patient SET address = '大阪府大阪市北区2-2' WHERE address = '東京都港区3-3'"
    ))
    .unwrap();
    etl.batch_execute("SELECT medanon.refresh_contract('rel_a')").expect("refresh");
    assert_eq!(count(&mut etl, "SELECT persons_changed FROM medanon.contract_report('rel_a')"), 0);
}

#[test]
fn a_token_on_more_rows_than_others_is_in_a_class_that_counts_them() {
    let _su = warehouse();
    let mut lab = connect_as("it_lab_r");
    // What the analyst can tell persons apart by: the quasi-identifiers shown, and
    // how many rows of the person-level view a token has.
    let rows = lab
        .query(
            "SELECT concat_ws('|', birth_date, sex, address) || ' x' || count(*), person_id::text
               FROM contract_rel_a.patient GROUP BY birth_date, sex, address, person_id",
            &[],
        )
        .unwrap();
    let mut groups: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for r in &rows {
        groups.entry(r.get(0)).or_default().insert(r.get(1));
    }
    let small: Vec<_> = groups.iter().filter(|(_, t)| (t.len() as i64) < K).map(|(g, t)| (g, t.len())).collect();
    assert!(small.is_empty(), "persons singled out by their number of rows: {small:?}");
    assert!(groups.keys().any(|g| g.ends_with(" x2")), "persons registered twice are shown, in classes that count it");
    assert!(groups.keys().any(|g| g.ends_with(" x1")));
}

#[test]
fn rare_codes_climb_or_vanish_and_an_opt_out_replaces_them_at_once() {
    let mut su = warehouse();
    let mut lab = connect_as("it_lab_r");
    let shown = |lab: &mut Client, column: &str| -> BTreeMap<String, i64> {
        lab.query(
            &format!("SELECT {column}::text, count(DISTINCT person_id) FROM contract_rel_a.visit WHERE {column} IS NOT NULL GROUP BY 1"),
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
    };
    let codes = shown(&mut lab, "icd10");
    assert!(codes.values().all(|n| *n >= K), "every shown code is held by {K} or more: {codes:?}");
    assert_eq!(codes.get("E11"), Some(&5), "E11.8 and E11.7 climb to their category together: {codes:?}");
    for gone in ["E11.8", "E11.7", "C34.1", "C34", "C00-D48"] {
        assert!(!codes.contains_key(gone), "{gone} is shown: {codes:?}");
    }
    let departments = shown(&mut lab, "department");
    assert!(!departments.contains_key("99") && departments.values().all(|n| *n >= K), "{departments:?}");
    let mut etl = connect_as("it_etl");
    assert_eq!(count(&mut etl, "SELECT values_replaced FROM medanon.contract_report('rel_a')"), 4, "E11.8, E11.7, C34.1, 99");
    // What rare_values reports of the source, as the caller.
    let rare = strings(&mut etl, "SELECT value FROM medanon.rare_values('it_rel.visit', 'icd10', 'person_id', 5)");
    assert_eq!(rare, ["C34.1", "E11.8", "E11.7"]);
    // Percentile bounds: in the ledger, and no lab value beyond them.
    let bounds = count(
        &mut su,
        "SELECT count(*) FROM medanon.provision_ledger, jsonb_each(detail -> 'bounds')
          WHERE contract_id = 'rel_a' AND event = 'publish'",
    );
    assert_eq!(bounds, 2);
    let beyond = count(
        &mut su,
        "SELECT count(*) FROM contract_rel_a.visit v, medanon.provision_ledger l
          WHERE l.contract_id = 'rel_a' AND l.event = 'publish'
            AND (v.lab_value > (l.detail -> 'bounds' ->> '1.lab_value.top')::numeric
                 OR v.lab_value < (l.detail -> 'bounds' ->> '1.lab_value.bottom')::numeric)",
    );
    assert_eq!(beyond, 0);
    // An opt-out of one of E11's five holders: in the same transaction, E11 is
    // replaced (its chapter holds no one else, so by NULL).
    let holder: String = su
        .query_one(
            "SELECT local_patient_id FROM medanon.person_link l JOIN it_rel.patient p USING (person_id)
              WHERE p.i = 2 AND l.institution_code = 'H1'",
            &[],
        )
        .unwrap()
        .get(0);
    // (As the superuser, who may read the data table inside the same transaction.)
    su.batch_execute(&format!(
        "BEGIN; SELECT medanon.opt_out('H1', '{holder}', 'self');
         DO $$ BEGIN
           IF EXISTS (SELECT FROM contract_rel_a_data.t1_g1 WHERE icd10 = 'E11') THEN
             RAISE EXCEPTION 'E11 still shown inside the opt-out''s transaction';
           END IF;
         END $$;
         COMMIT;"
    ))
    .expect("opt-out");
    let codes = shown(&mut lab, "icd10");
    assert!(!codes.contains_key("E11"), "{codes:?}");
    assert!(codes.values().all(|n| *n >= K));
    assert_eq!(count(&mut etl, "SELECT values_replaced FROM medanon.contract_report('rel_a')"), 5);
}

/// A person's class key is the md5 of its quasi-identifier rows joined in sorted
/// order (`view::person_class_select`): publish hands them to `string_agg` from a
/// sorted subquery rather than through the aggregate's own ORDER BY, and this
/// holds it to the definition. Every person here has rows of both views ('0:' of
/// the patient view, '1:' of each distinct department), so a key built from rows
/// in another order would differ for everyone.
#[test]
fn class_keys_are_the_sorted_rows_of_each_person() {
    let mut su = warehouse();
    su.batch_execute("SELECT medanon.classify('it_rel.visit', 'department', 'quasi_identifier')").unwrap();
    let mut etl = connect_as("it_etl");
    etl.batch_execute(
        r#"SELECT medanon.create_contract('{"id": "rel_k", "grantee": "it_lab_r", "purpose": "class keys",
              "approved_on": "2026-01-01", "expires_on": "2099-12-31", "kind": "anonymized", "k": 2, "reference_date": "2026-04-01",
              "tables": [{"source": "it_rel.patient", "columns": {"person_id": "token", "birth_date": {"age_band": {"band": 10}},
                                                                   "sex": "keep", "address": "prefecture"}},
                         {"source": "it_rel.visit", "columns": {"person_id": "token", "department": "keep"}}]}');
           SELECT medanon.publish_contract('rel_k');"#,
    )
    .expect("publish");
    // What the views show of each visible person, as the class rows are written:
    // every row of the person-level view, each distinct row of the visit view.
    let expected = "WITH v AS (
            SELECT p.\"_token\" AS token, '0:' || ROW(p.birth_date, p.sex, p.address)::text AS v FROM contract_rel_k_data.t0_g1 p
            UNION ALL
            SELECT DISTINCT d.\"_token\", '1:' || ROW(d.department)::text FROM contract_rel_k_data.t1_g1 d)
        SELECT token, md5(string_agg(v, '|' ORDER BY v))::uuid AS k FROM v GROUP BY token";
    let persons = count(&mut su, "SELECT count(*) FROM medanon.contract_person WHERE contract_id = 'rel_k' AND state = 'visible'");
    assert!(persons > 200, "most persons are visible: {persons}");
    let multi = count(&mut su, &format!("SELECT count(*) FROM ({expected}) e"));
    assert_eq!(multi, persons, "every visible person has rows in both views");
    let differ = count(
        &mut su,
        &format!(
            "SELECT count(*) FROM medanon.contract_person m JOIN ({expected}) e ON e.token = m.token
              WHERE m.contract_id = 'rel_k' AND m.state = 'visible' AND m.class_key IS DISTINCT FROM e.k"
        ),
    );
    assert_eq!(differ, 0, "class keys that are not the md5 of the person's sorted rows");
    // And the full refresh computes the same keys: nobody's class changed.
    etl.batch_execute("SELECT medanon.refresh_contract('rel_k', full => true)").expect("refresh");
    assert_eq!(count(&mut su, "SELECT persons_changed FROM medanon.contract_report('rel_k')"), 0);
}

#[test]
fn days_since_the_first_date_shows_intervals_without_a_calendar() {
    let mut su = warehouse();
    let mut etl = connect_as("it_etl");
    etl.batch_execute(
        r#"SELECT medanon.create_contract('{"id": "rel_d", "grantee": "it_lab_r", "purpose": "intervals",
              "approved_on": "2026-01-01", "expires_on": "2099-12-31", "kind": "anonymized", "k": 5, "reference_date": "2026-04-01",
              "tables": [{"source": "it_rel.visit", "columns": {"person_id": "token", "visit_date": {"days_since": "first"}, "lab_value": "keep"}}]}');
           SELECT medanon.publish_contract('rel_d');"#,
    )
    .expect("publish");
    let mut lab = connect_as("it_lab_r");
    let firsts = count(&mut lab, "SELECT count(*) FROM (SELECT person_id, min(visit_date) m FROM contract_rel_d.visit GROUP BY 1) x WHERE m <> 0");
    assert_eq!(firsts, 0, "every person's first visit is day 0");
    let intervals = count(
        &mut lab,
        "SELECT count(*) FROM (SELECT person_id, max(visit_date) - min(visit_date) AS d FROM contract_rel_d.visit GROUP BY 1) x",
    );
    assert!(intervals > 0);
    let raw_span: i64 = count(&mut su, "SELECT max(d)::bigint FROM (SELECT max(visit_date) - min(visit_date) AS d FROM it_rel.visit GROUP BY person_id) x");
    let shown_span: i64 = count(&mut lab, "SELECT max(visit_date)::bigint FROM contract_rel_d.visit");
    assert_eq!(raw_span, shown_span, "intervals are exact");
    // An earlier record arrives: the first date stays, so days_since is negative
    // for it and every other day is unchanged.
    su.batch_execute(
        "INSERT INTO it_rel.visit SELECT person_id, institution_code, visit_date - 14, icd10, department, lab_value
           FROM it_rel.visit WHERE visit_date = (SELECT min(visit_date) FROM it_rel.visit) LIMIT 1",
    )
    .unwrap();
    etl.batch_execute("SELECT medanon.refresh_contract('rel_d')").expect("refresh");
    assert_eq!(count(&mut lab, "SELECT count(*) FROM contract_rel_d.visit WHERE visit_date = -14"), 1);
}

#[test]
fn rare_codes_climb_a_hierarchy_table_of_the_operators() {
    let mut su = warehouse();
    su.batch_execute(
        "CREATE TABLE it_rel.dx_levels (code text, grp text, chapter text);
         INSERT INTO it_rel.dx_levels VALUES ('E11.8', 'DM', 'ENDO'), ('E11.7', 'DM', 'ENDO'), ('E11.9', 'DM', 'ENDO'),
                                             ('C34.1', 'LUNG CANCER', 'CANCER'), ('I10', 'HT', 'CIRC');
         GRANT SELECT ON it_rel.dx_levels TO it_etl;",
    )
    .unwrap();
    let mut etl = connect_as("it_etl");
    let spec = |id: &str, table: &str| {
        format!(
            r#"SELECT medanon.create_contract('{{"id": "{id}", "grantee": "it_lab_r", "purpose": "hierarchy table",
                 "approved_on": "2026-01-01", "expires_on": "2099-12-31", "kind": "anonymized", "k": 5, "reference_date": "2026-04-01",
                 "tables": [{{"source": "it_rel.visit", "columns": {{"person_id": "token", "icd10": {{"hierarchy": "{table}"}}}}}}]}}');
               SELECT medanon.publish_contract('{id}');"#
        )
    };
    etl.batch_execute(&spec("rel_h", "it_rel.dx_levels")).expect("publish with a hierarchy table");
    let mut lab = connect_as("it_lab_r");
    let codes: BTreeMap<String, i64> = lab
        .query("SELECT icd10, count(DISTINCT person_id) FROM contract_rel_h.visit WHERE icd10 IS NOT NULL GROUP BY 1", &[])
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    // E11.8 (2 persons) and E11.7 (3) meet in DM; C34.1 (1) climbs to LUNG CANCER
    // and CANCER alone, so it is NULL.
    assert_eq!(codes.get("DM"), Some(&5), "{codes:?}");
    assert!(codes.values().all(|n| *n >= K), "{codes:?}");
    for gone in ["E11.8", "E11.7", "C34.1", "LUNG CANCER", "CANCER"] {
        assert!(!codes.contains_key(gone), "{gone}: {codes:?}");
    }
    // A hierarchy table that does not exist, or that the publishing role may not read.
    use postgres::error::SqlState;
    etl.batch_execute(&spec("rel_h2", "it_rel.no_such_levels").replace("SELECT medanon.publish_contract('rel_h2');", ""))
        .expect("create checks no catalog");
    assert_sqlstate(&mut etl, "SELECT medanon.publish_contract('rel_h2')", SqlState::UNDEFINED_TABLE);
    su.batch_execute("REVOKE SELECT ON it_rel.dx_levels FROM it_etl").unwrap();
    etl.batch_execute(&spec("rel_h3", "it_rel.dx_levels").replace("SELECT medanon.publish_contract('rel_h3');", ""))
        .expect("create");
    assert_sqlstate(&mut etl, "SELECT medanon.publish_contract('rel_h3')", SqlState::INSUFFICIENT_PRIVILEGE);
}
