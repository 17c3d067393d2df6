//! Issue 17: the incremental refresh. After changes of every kind (new persons
//! with visits, updated and deleted rows, a person who moves, codes that become
//! rare or common, an opt-out withdrawn, a new opt-out, a notification whose
//! wait ends), `refresh_contract(id)` reads only what changed, and what it leaves
//! equals, row for row, what `refresh_contract(id, full => true)` computes from
//! the same data: every view, the person map, the classes and the rare-value
//! counts. What it cannot see falls back to a full refresh, said in a NOTICE and
//! the ledger; and an analyst never waits for it, and reads the old rows until it
//! commits.

use medanon_integration::*;
use postgres::Client;

/// 400 persons at H1, those with i % 7 = 0 also at H2 (two rows in the
/// person-level patient table); 4 age bands x 2 sexes x 2 prefectures. Visits
/// with common codes and rare ones (E11.8, E11.7 and C34.1 climb the ICD-10
/// hierarchy; department 99 has none). Both sources tracked; contract inc_a
/// (k = 5, shifted dates, rare values) published.
fn warehouse() -> Client {
    let mut su = superuser();
    su.batch_execute(
        "DROP SCHEMA IF EXISTS it_inc, contract_inc_a, contract_inc_a_data, contract_inc_p, contract_inc_p_data CASCADE;
         DO $$ BEGIN
           IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'it_lab_i') THEN CREATE ROLE it_lab_i LOGIN; END IF;
         END $$;",
    )
    .expect("roles");
    let mut su = fresh_install();
    su.batch_execute(
        "CREATE SCHEMA it_inc;
         CREATE TABLE it_inc.staging (institution_code text, local_patient_id text, name_kana text,
             birth_date text, sex text, insurer_number text, insured_symbol text, insured_number text);
         SELECT medanon.register_institution('H1', 'Hospital 1', 'hospital');
         SELECT medanon.register_institution('H2', 'Hospital 2', 'hospital');
         GRANT USAGE ON SCHEMA it_inc TO it_etl;
         CREATE TABLE it_inc.patient (person_id bigint, institution_code text, birth_date date, sex smallint, address text, i integer);
         CREATE TABLE it_inc.visit (person_id bigint, institution_code text, visit_date date, icd10 text, department smallint);
         GRANT SELECT ON ALL TABLES IN SCHEMA it_inc TO it_etl;
         SELECT medanon.register_source('it_inc.patient', 'person_id', 'institution_code');
         SELECT medanon.register_source('it_inc.visit', 'person_id', 'institution_code');
         SELECT medanon.classify('it_inc.patient', c, cls) FROM (VALUES ('person_id', 'identifier'), ('institution_code', 'quasi_identifier'),
             ('birth_date', 'quasi_identifier'), ('sex', 'quasi_identifier'), ('address', 'quasi_identifier'), ('i', 'identifier')) v(c, cls);
         SELECT medanon.classify('it_inc.visit', c, cls) FROM (VALUES ('person_id', 'identifier'), ('institution_code', 'quasi_identifier'),
             ('visit_date', 'static'), ('icd10', 'semi_static'), ('department', 'semi_static')) v(c, cls);
         SELECT medanon.track_changes('it_inc.patient');
         SELECT medanon.track_changes('it_inc.visit');",
    )
    .expect("sources");
    add_persons(&mut su, 1, 400, "now() - interval '40 days'");
    let mut etl = connect_as("it_etl");
    etl.batch_execute(
        r#"SELECT medanon.create_contract('{"id": "inc_a", "grantee": "it_lab_i", "purpose": "incremental refresh",
              "approved_on": "2026-01-01", "expires_on": "2099-12-31", "kind": "anonymized", "k": 5, "reference_date": "2026-04-01",
              "tables": [{"source": "it_inc.patient", "columns": {"person_id": "token", "birth_date": {"age_band": {"band": 10}},
                                                                   "sex": "keep", "address": "prefecture"}},
                         {"source": "it_inc.visit", "columns": {"person_id": "token", "visit_date": "shift",
                                                                 "icd10": {"hierarchy": "icd10"}, "department": "keep"}}]}');
           SELECT medanon.publish_contract('inc_a');"#,
    )
    .expect("publish");
    su
}

/// Persons `first..=last`: staged, notified at `notified`, linked, and given
/// patient rows and three visits each (as the ETL would load them).
fn add_persons(su: &mut Client, first: i32, last: i32, notified: &str) {
    su.batch_execute(&format!(
        "INSERT INTO it_inc.staging
         SELECT h, 'p' || i, 'ﾀﾅｶ ' || chr(12450 + (i % 40)) || chr(12450 + (i / 40)), (DATE '1950-06-01' + (i % 4) * 3653 + i)::text,
                (1 + (i / 4) % 2)::text, '', '', ''
           FROM generate_series({first}, {last}) i, unnest(ARRAY['H1', 'H2']) h
          WHERE h = 'H1' OR i % 7 = 0;
         SELECT medanon.record_notification(institution_code, local_patient_id, {notified})
           FROM it_inc.staging WHERE substr(local_patient_id, 2)::int BETWEEN {first} AND {last};"
    ))
    .expect("staging");
    let mut etl = connect_as("it_etl");
    etl.batch_execute("SELECT medanon.link_patients('it_inc.staging')").expect("link");
    su.batch_execute(&format!(
        "INSERT INTO it_inc.patient
         SELECT l.person_id, s.institution_code, s.birth_date::date, s.sex::smallint,
                CASE WHEN substr(s.local_patient_id, 2)::int / 8 % 2 = 0 THEN '東京都新宿区1-1' ELSE '大阪府大阪市北区2-2' END,
                substr(s.local_patient_id, 2)::int
           FROM it_inc.staging s JOIN medanon.person_link l USING (institution_code, local_patient_id)
          WHERE substr(s.local_patient_id, 2)::int BETWEEN {first} AND {last};
         INSERT INTO it_inc.visit
         SELECT DISTINCT ON (p.person_id, g) p.person_id, 'H1',
                DATE '2024-01-09' + 7 * ((p.i * 7 + g * 13) % 90) + (g % 2),
                CASE WHEN g > 1 THEN (ARRAY['I10', 'E11.9'])[1 + p.i % 2]
                     WHEN p.i IN (2, 3) THEN 'E11.8' WHEN p.i IN (4, 7, 8) THEN 'E11.7' WHEN p.i = 12 THEN 'C34.1'
                     ELSE (ARRAY['I10', 'E11.9', 'J45'])[1 + p.i % 3] END,
                CASE WHEN p.i IN (13, 14) AND g = 1 THEN 99 ELSE 1 + p.i % 3 END
           FROM it_inc.patient p, generate_series(1, 3) g
          WHERE p.i BETWEEN {first} AND {last}
          ORDER BY p.person_id, g;"
    ))
    .expect("rows");
}

/// Everything a refresh decides, as sorted text: every view's rows (as the
/// grantee reads them), the person map, the classes, the rare columns, values
/// and counts, and the study window.
fn state(su: &mut Client) -> Vec<(String, Vec<String>)> {
    let queries = [
        ("patient view", "SELECT v::text FROM contract_inc_a.patient v"),
        ("visit view", "SELECT v::text FROM contract_inc_a.visit v"),
        (
            "person map",
            "SELECT concat_ws('|', person_id, token, date_offset, state, excluded_institutions, class_key, first_class, first_dates)
               FROM medanon.contract_person WHERE contract_id = 'inc_a'",
        ),
        ("classes", "SELECT concat_ws('|', class_key, persons) FROM medanon.contract_class WHERE contract_id = 'inc_a'"),
        (
            "rare columns",
            "SELECT concat_ws('|', view_name, column_name, min_persons, hierarchy, values_replaced, raw_column)
               FROM medanon.contract_column WHERE contract_id = 'inc_a'",
        ),
        (
            "shown values",
            "SELECT concat_ws('|', view_name, column_name, label, level, persons) FROM medanon.contract_value WHERE contract_id = 'inc_a'",
        ),
        (
            "raw values",
            "SELECT concat_ws('|', view_name, column_name, value, persons) FROM medanon.contract_raw_value WHERE contract_id = 'inc_a'",
        ),
        ("window", "SELECT concat_ws('|', date_column, first_date, last_date) FROM medanon.contract_window WHERE contract_id = 'inc_a'"),
        // Kept by publish, refresh and the consent triggers; a full refresh counts what it writes.
        ("row counts", "SELECT concat_ws('|', view_name, row_count) FROM medanon.contract_table WHERE contract_id = 'inc_a'"),
    ];
    queries
        .iter()
        .map(|(name, sql)| {
            let mut rows = strings(su, sql);
            rows.sort();
            (name.to_string(), rows)
        })
        .collect()
}

/// Records of patients `first..=last` whose person is in `state` in contract inc_a.
fn records_in_state(su: &mut Client, state: &str, first: i32, last: i32) -> i64 {
    su.query_one(
        "SELECT count(*) FROM medanon.contract_person m JOIN medanon.person_link l USING (person_id)
          WHERE m.contract_id = 'inc_a' AND m.state = $1 AND substr(l.local_patient_id, 2)::int BETWEEN $2 AND $3",
        &[&state, &first, &last],
    )
    .unwrap()
    .get(0)
}

/// Runs `SELECT call` (a refresh_contract call) and returns its jsonb.
fn refresh(etl: &mut Client, call: &str) -> serde_json::Value {
    let sql = format!("SELECT ({call})::text");
    let text: String = etl.query_one(&sql, &[]).unwrap_or_else(|e| panic!("{sql}: {e}")).get(0);
    serde_json::from_str(&text).expect("jsonb")
}

/// Asserts the incremental refresh left what a full one computes, table by table.
fn assert_same_as_full(su: &mut Client, etl: &mut Client) {
    let incremental = state(su);
    let full = refresh(etl, "medanon.refresh_contract('inc_a', full => true)");
    assert_eq!(full["mode"], "full", "{full}");
    let recomputed = state(su);
    for ((name, a), (_, b)) in incremental.iter().zip(&recomputed) {
        let only_incremental: Vec<_> = a.iter().filter(|r| !b.contains(r)).take(5).collect();
        let only_full: Vec<_> = b.iter().filter(|r| !a.contains(r)).take(5).collect();
        assert!(
            a == b,
            "{name} differs ({} rows incremental, {} full): only incremental {only_incremental:?}, only full {only_full:?}",
            a.len(),
            b.len()
        );
    }
}

#[test]
fn an_incremental_refresh_equals_a_full_one_row_for_row() {
    let mut su = warehouse();
    let mut etl = connect_as("it_etl");
    let before = state(&mut su);
    assert!(before[0].1.len() > 300 && before[1].1.len() > 900, "the views show most persons: {}", before[0].1.len());

    // Nothing changed: nothing is rewritten, and nothing differs.
    let r = refresh(&mut etl, "medanon.refresh_contract('inc_a')");
    assert_eq!(r["mode"], "incremental", "{r}");
    assert_eq!(r["persons_rewritten"], 0, "{r}");
    assert_eq!(state(&mut su), before, "a refresh with nothing changed changes nothing");

    // Round 1: new persons with visits (one rare code among them), updated and
    // deleted visits, a person who moves, codes made common and rare, an opt-out.
    add_persons(&mut su, 401, 440, "now() - interval '40 days'");
    su.batch_execute(
        "UPDATE it_inc.visit SET icd10 = 'E11.8' WHERE person_id IN (SELECT person_id FROM it_inc.patient WHERE i IN (20, 21, 22)) AND icd10 = 'I10';
         UPDATE it_inc.visit SET icd10 = 'K35' WHERE person_id IN (SELECT person_id FROM it_inc.patient WHERE i IN (30, 31));
         DELETE FROM it_inc.visit WHERE person_id IN (SELECT person_id FROM it_inc.patient WHERE i = 50);
         UPDATE it_inc.patient SET address = '東京都港区3-3' WHERE i IN (104, 105, 106);
         INSERT INTO it_inc.visit SELECT person_id, 'H1', DATE '2026-06-02', 'I10', 1 FROM it_inc.patient WHERE i = 60;",
    )
    .unwrap();
    etl.batch_execute("SELECT medanon.opt_out('H1', 'p70')").expect("opt-out");
    let r = refresh(&mut etl, "medanon.refresh_contract('inc_a')");
    assert_eq!(r["mode"], "incremental", "{r}");
    let rewritten = r["persons_rewritten"].as_i64().unwrap();
    assert!(rewritten >= 40 && rewritten < 200, "only the changed persons and their classes: {r}");
    assert_same_as_full(&mut su, &mut etl);

    // Round 2, after a full refresh: the opt-out is withdrawn, new persons still
    // waiting (notified 29 days ago), a person's every row deleted, codes made rare
    // without a hierarchy; then persons whose wait ends while the clock runs.
    etl.batch_execute("SELECT medanon.withdraw_opt_out('H1', 'p70')").expect("withdraw");
    add_persons(&mut su, 441, 470, "now() - interval '29 days'");
    su.batch_execute(
        "DELETE FROM it_inc.patient WHERE i = 90; DELETE FROM it_inc.visit WHERE person_id IN (SELECT l.person_id FROM medanon.person_link l WHERE l.local_patient_id = 'p90');
         UPDATE it_inc.visit SET department = 99 WHERE person_id IN (SELECT person_id FROM it_inc.patient WHERE i BETWEEN 200 AND 205);",
    )
    .unwrap();
    let r = refresh(&mut etl, "medanon.refresh_contract('inc_a')");
    assert_eq!(r["mode"], "incremental", "{r}");
    assert_same_as_full(&mut su, &mut etl);
    let waiting = records_in_state(&mut su, "consent", 441, 470);
    assert!(waiting >= 30, "persons still waiting are withheld: {waiting}");
    // Their wait ends, as time passes: consent changed, no row did.
    let r = refresh(&mut etl, "medanon.refresh_contract('inc_a')");
    assert_eq!(r["mode"], "incremental", "{r}");
    let waiting_left = |su: &mut Client| -> f64 {
        su.query_one("SELECT extract(epoch FROM max(eligible_from) - now())::float8 FROM medanon.notified_records
                       WHERE substr(local_patient_id, 2)::int BETWEEN 471 AND 490", &[]).unwrap().get(0)
    };
    add_persons(&mut su, 471, 490, "now() - interval '30 days' + interval '10 seconds'");
    let r = refresh(&mut etl, "medanon.refresh_contract('inc_a')");
    assert_eq!(r["mode"], "incremental", "{r}");
    assert!(waiting_left(&mut su) > 0.0, "the refresh ran before their wait ended");
    assert_same_as_full(&mut su, &mut etl);
    std::thread::sleep(std::time::Duration::from_secs_f64(waiting_left(&mut su).max(0.0) + 1.0));
    let r = refresh(&mut etl, "medanon.refresh_contract('inc_a')");
    assert_eq!(r["mode"], "incremental", "{r}");
    assert!(r["persons_rewritten"].as_i64().unwrap() >= 20, "the persons whose wait ended: {r}");
    let shown = records_in_state(&mut su, "visible", 471, 490);
    assert!(shown > 0, "persons whose wait ended are shown");
    assert_same_as_full(&mut su, &mut etl);
}

#[test]
fn what_the_incremental_path_cannot_see_is_refreshed_in_full() {
    let mut su = warehouse();
    let mut etl = connect_as("it_etl");
    let mode = |etl: &mut Client| refresh(etl, "medanon.refresh_contract('inc_a')");
    assert_eq!(mode(&mut etl)["mode"], "incremental");
    // An untracked source: its changes are not logged.
    su.batch_execute("SELECT medanon.untrack_changes('it_inc.visit')").unwrap();
    let r = mode(&mut etl);
    assert_eq!(r["mode"], "full", "{r}");
    assert!(r["full_because"].as_str().unwrap().contains("it_inc.visit"), "{r}");
    su.batch_execute("SELECT medanon.track_changes('it_inc.visit')").unwrap();
    // Tracking started after the last refresh: one more full refresh, then incremental.
    assert_eq!(mode(&mut etl)["mode"], "full");
    assert_eq!(mode(&mut etl)["mode"], "incremental");
    // A truncated source (reloaded with the same rows).
    su.batch_execute(
        "CREATE TEMP TABLE keep AS SELECT * FROM it_inc.visit; TRUNCATE it_inc.visit; INSERT INTO it_inc.visit SELECT * FROM keep;",
    )
    .unwrap();
    let r = mode(&mut etl);
    assert_eq!(r["mode"], "full", "{r}");
    assert!(r["full_because"].as_str().unwrap().contains("truncated"), "{r}");
    assert_eq!(mode(&mut etl)["mode"], "incremental");
    // Disabled triggers would hide changes: not tracked.
    su.batch_execute("ALTER TABLE it_inc.patient DISABLE TRIGGER medanon_changes_update").unwrap();
    assert_eq!(mode(&mut etl)["mode"], "full");
    su.batch_execute("SELECT medanon.track_changes('it_inc.patient')").unwrap();
    // A column reclassified changes what the contract shows: full.
    su.batch_execute("SELECT medanon.classify('it_inc.visit', 'department', 'static')").unwrap();
    assert_eq!(mode(&mut etl)["mode"], "full");
    // The ledger says which, and why.
    let entries = strings(
        &mut su,
        "SELECT concat_ws(' ', detail ->> 'mode', detail ->> 'full_because') FROM medanon.provision_ledger
          WHERE contract_id = 'inc_a' AND event = 'refresh' ORDER BY entry_id",
    );
    assert!(entries.iter().any(|e| e.starts_with("incremental")) && entries.iter().any(|e| e.contains("truncated")), "{entries:?}");
    // A percentile bound is moved by any row: such a contract refreshes in full.
    etl.batch_execute(
        r#"SELECT medanon.create_contract('{"id": "inc_p", "grantee": "it_lab_i", "purpose": "percentiles",
              "approved_on": "2026-01-01", "expires_on": "2099-12-31", "kind": "anonymized", "k": 5,
              "tables": [{"source": "it_inc.visit", "columns": {"person_id": "token", "department": {"top_code": {"percentile": 90}}}}]}');
           SELECT medanon.publish_contract('inc_p');"#,
    )
    .unwrap();
    let r = refresh(&mut etl, "medanon.refresh_contract('inc_p')");
    assert_eq!(r["mode"], "full", "{r}");
    assert!(r["full_because"].as_str().unwrap().contains("percentile"), "{r}");
}

#[test]
fn tracking_is_checked_and_deny_by_default() {
    let mut su = warehouse();
    su.batch_execute("CREATE TABLE it_inc.other (person_id bigint)").unwrap();
    assert_sqlstate(&mut su, "SELECT medanon.track_changes('it_inc.other')", postgres::error::SqlState::OBJECT_NOT_IN_PREREQUISITE_STATE);
    assert_sqlstate(&mut su, "SELECT medanon.track_changes(NULL)", postgres::error::SqlState::NULL_VALUE_NOT_ALLOWED);
    let again: bool = su.query_one("SELECT medanon.track_changes('it_inc.visit')", &[]).unwrap().get(0);
    assert!(!again, "tracking twice adds nothing");
    // The ETL role lacks TRIGGER on the source: refused by PostgreSQL.
    let mut etl = connect_as("it_etl");
    assert_sqlstate(&mut etl, "SELECT medanon.untrack_changes('it_inc.visit')", postgres::error::SqlState::INSUFFICIENT_PRIVILEGE);
    // Nobody but the owner writes the log or the tracking table; the grantee reads neither.
    assert_sqlstate(&mut etl, "INSERT INTO medanon.source_change VALUES ('it_inc', 'visit', 1)", postgres::error::SqlState::INSUFFICIENT_PRIVILEGE);
    assert_sqlstate(
        &mut etl,
        "INSERT INTO medanon.source_tracking (source_schema, source_table, since_system) VALUES ('it_inc', 'other', '1')",
        postgres::error::SqlState::INSUFFICIENT_PRIVILEGE,
    );
    let mut lab = connect_as("it_lab_i");
    assert_sqlstate(&mut lab, "SELECT * FROM medanon.source_change", postgres::error::SqlState::INSUFFICIENT_PRIVILEGE);
    assert_sqlstate(&mut lab, "SELECT medanon.refresh_contract('inc_a')", postgres::error::SqlState::INSUFFICIENT_PRIVILEGE);
    // A write logs its persons, once per statement and person.
    su.batch_execute("UPDATE it_inc.visit SET department = department WHERE person_id = (SELECT min(person_id) FROM it_inc.visit)").unwrap();
    let logged: i64 = su
        .query_one("SELECT count(*) FROM medanon.source_change WHERE source_table = 'visit' AND person_id IS NOT NULL", &[])
        .unwrap()
        .get(0);
    assert_eq!(logged, 1);
    // A refresh prunes what every contract's last refresh has seen.
    refresh(&mut etl, "medanon.refresh_contract('inc_a')");
    let left: i64 = su.query_one("SELECT count(*) FROM medanon.source_change", &[]).unwrap().get(0);
    assert_eq!(left, 0);
}

#[test]
fn an_analyst_never_waits_for_an_incremental_refresh_and_reads_old_rows_until_it_commits() {
    let mut su = warehouse();
    let mut lab = connect_as("it_lab_i");
    // An analyst inside a transaction that has read the views (it holds their locks).
    lab.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ").unwrap();
    let before: i64 = lab.query_one("SELECT count(*) FROM contract_inc_a.visit", &[]).unwrap().get(0);
    add_persons(&mut su, 401, 420, "now() - interval '40 days'");
    // The refresh neither waits for the analyst (the lock timeout would be 55P03
    // after 30 s) nor lets it see a half-written state.
    let mut etl = connect_as("it_etl");
    etl.batch_execute("SET lock_timeout = '2s'").unwrap();
    let r = refresh(&mut etl, "medanon.refresh_contract('inc_a')");
    assert_eq!(r["mode"], "incremental", "{r}");
    let during: i64 = lab.query_one("SELECT count(*) FROM contract_inc_a.visit", &[]).unwrap().get(0);
    assert_eq!(during, before, "the analyst's snapshot keeps the old rows");
    lab.batch_execute("COMMIT").unwrap();
    let after: i64 = lab.query_one("SELECT count(*) FROM contract_inc_a.visit", &[]).unwrap().get(0);
    assert!(after > before, "the new persons' visits are shown after the commit: {before} -> {after}");
}
