//! Contract views over the wire, as the real roles: the operator's ETL login
//! publishes two contracts, and each grantee logs in and reads. An analyst reads
//! its own contract's views and nothing else (DESIGN.md invariants 1 and 2), and
//! an opt-out hides the person from the next query on (invariant 3).

use medanon_integration::*;
use postgres::error::SqlState;
use postgres::Client;
use std::collections::HashSet;

fn tokens(client: &mut Client, sql: &str) -> HashSet<String> {
    strings(client, sql).into_iter().collect()
}

#[test]
fn an_analyst_reads_its_own_views_and_nothing_else() {
    let _su = contract_warehouse();
    let mut lab_a = connect_as("it_lab_a");
    let patients: i64 = lab_a.query_one("SELECT count(*) FROM contract_it_a.patient", &[]).unwrap().get(0);
    assert!(patients >= 50, "the contract shows its persons ({patients})");
    for sql in [
        // Raw data, links, keys, ledgers, maps, another contract.
        "SELECT * FROM it_clinical.patient",
        "SELECT * FROM it_clinical.staging",
        "SELECT * FROM medanon.keyring",
        "SELECT * FROM medanon.person_link",
        "SELECT * FROM medanon.provision_ledger",
        "SELECT * FROM medanon.contract",
        "SELECT * FROM medanon.contract_person",
        "SELECT * FROM medanon.contract_class",
        "SELECT * FROM medanon.opt_out",
        "SELECT * FROM medanon.link_quarantine",
        "SELECT * FROM medanon.intake_quarantine",
        "SELECT * FROM medanon.eligible_records",
        "SELECT * FROM contract_it_b.patient",
        "SELECT * FROM contract_it_b.visit",
        // Every keyed function, and the operator's.
        "SELECT medanon.tokenize('1', 'contract:it_a')",
        "SELECT medanon.shift_date(date '2026-01-01', '1', 'contract:it_a')",
        "SELECT medanon.shift_date(timestamp '2026-01-01', '1', 'contract:it_a')",
        "SELECT medanon.shift_date(timestamptz '2026-01-01', '1', 'contract:it_a')",
        "SELECT medanon.date_offset('1', 'contract:it_a')",
        "SELECT medanon._link_id1('06139999', 'A', '1', '1970-01-01', '1')",
        "SELECT medanon._link_id2('ﾀﾅｶ', '1970-01-01', '1')",
        "SELECT medanon.link_patients('contract_it_a.patient')",
        "SELECT medanon.publish_contract('it_a')",
        "SELECT medanon.refresh_contract('it_a')",
        "SELECT medanon.release_snapshot('it_a')",
        "SELECT medanon.revoke_contract('it_b')",
        "SELECT * FROM medanon.contract_report('it_a')",
        "SELECT medanon.rotate_key()",
        // No objects of its own where others look.
        "CREATE TABLE medanon.mine (x int)",
        "CREATE VIEW contract_it_a.mine AS SELECT 1",
        "CREATE FUNCTION contract_it_a.f() RETURNS int LANGUAGE sql RETURN 1",
        // counts of another contract
        "SELECT * FROM medanon.safe_counts('it_b', 'visit', ARRAY['icd10'])",
    ] {
        assert_sqlstate(&mut lab_a, sql, SqlState::INSUFFICIENT_PRIVILEGE);
    }
    // Its views are for reading: a write fails (the join makes them not updatable,
    // which PostgreSQL says before it checks the grant) and changes nothing.
    for sql in ["DELETE FROM contract_it_a.visit", "UPDATE contract_it_a.patient SET sex = 1"] {
        let state = sqlstate_of(&mut lab_a, sql);
        assert!(
            state == Some(SqlState::INSUFFICIENT_PRIVILEGE) || state == Some(SqlState::OBJECT_NOT_IN_PREREQUISITE_STATE),
            "{sql}: {state:?}"
        );
    }
    let after: i64 = lab_a.query_one("SELECT count(*) FROM contract_it_a.patient", &[]).unwrap().get(0);
    assert_eq!(after, patients);
    // Everything the analyst may read is in its own contract's schema.
    let readable = strings(&mut lab_a, "SELECT n.nspname || '.' || c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE c.relkind IN ('r', 'v', 'm', 'p', 'f') AND has_table_privilege(c.oid, 'SELECT')
                AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'
              ORDER BY 1");
    assert_eq!(readable, vec!["contract_it_a.patient", "contract_it_a.visit"]);
    // It may call no SECURITY DEFINER function of medanon's.
    let definer = strings(&mut lab_a, "SELECT p.proname::text FROM pg_proc p WHERE p.pronamespace = 'medanon'::regnamespace AND p.prosecdef
                AND has_function_privilege(p.oid, 'EXECUTE') ORDER BY 1");
    assert!(definer.is_empty(), "{definer:?}");
    // safe_counts on its own view works, with small cells hidden.
    let cells = lab_a.query("SELECT cell::text, persons FROM medanon.safe_counts('it_a', 'visit', ARRAY['icd10'])", &[]).unwrap();
    assert_eq!(cells.len(), 3, "two codes and the total");
}

#[test]
fn tokens_join_within_a_contract_and_differ_between_contracts() {
    let _su = contract_warehouse();
    let mut lab_a = connect_as("it_lab_a");
    let mut lab_b = connect_as("it_lab_b");
    let a_patients = tokens(&mut lab_a, "SELECT person_id::text FROM contract_it_a.patient");
    let a_visits = tokens(&mut lab_a, "SELECT person_id::text FROM contract_it_a.visit");
    let b_patients = tokens(&mut lab_b, "SELECT person_id::text FROM contract_it_b.patient");
    assert!(a_visits.is_subset(&a_patients), "every visit joins its patient");
    // it_b shows every person; it_a every person but those its calendar check
    // withholds (shifted visit dates that the holidays would narrow too far).
    let calendar: i64 = connect_as("it_etl")
        .query_one("SELECT persons_calendar FROM medanon.contract_report('it_a')", &[])
        .unwrap()
        .get(0);
    assert_eq!(a_patients.len() as i64 + calendar, b_patients.len() as i64, "both contracts show every person they may");
    assert!(a_patients.is_disjoint(&b_patients), "one person has a different token in each contract");
    // Tokens are 64-bit integers (random surrogates), unrelated to the person ids.
    assert!(a_patients.iter().all(|t| t.parse::<i64>().is_ok()));
    let ids = tokens(&mut superuser(), "SELECT person_id::text FROM it_clinical.patient");
    assert!(a_patients.is_disjoint(&ids), "no token is a person id");
    // it_a shows every date of a person moved by one offset, never 0; it_b shows no date.
    let mut su = superuser();
    let row = su
        .query_one(
            "WITH shown AS (SELECT m.person_id, m.date_offset, array_agg(v.visit_date - m.date_offset ORDER BY v.visit_date) AS dates
                              FROM contract_it_a.visit v JOIN medanon.contract_person m ON m.contract_id = 'it_a' AND m.token = v.person_id
                             GROUP BY 1, 2),
                  raw AS (SELECT person_id, array_agg(visit_date ORDER BY visit_date) AS dates FROM it_clinical.visit GROUP BY 1)
             SELECT count(*), count(*) FILTER (WHERE s.dates = r.dates AND s.date_offset <> 0)
               FROM shown s JOIN raw r USING (person_id)",
            &[],
        )
        .unwrap();
    let (persons, moved): (i64, i64) = (row.get(0), row.get(1));
    assert!(persons >= 50);
    assert_eq!(moved, persons, "every person's dates moved by the person's one offset");
    let b_columns: i64 = lab_b
        .query_one("SELECT count(*) FROM information_schema.columns WHERE table_schema = 'contract_it_b' AND data_type = 'date'", &[])
        .unwrap()
        .get(0);
    assert_eq!(b_columns, 0);
}

#[test]
fn no_query_started_after_an_opt_out_commits_sees_the_person_in_any_view() {
    let mut su = contract_warehouse();
    let row = su
        .query_one(
            "SELECT a.token::text, b.token::text FROM medanon.contract_person a JOIN medanon.contract_person b USING (person_id)
               JOIN medanon.person_link l USING (person_id)
              WHERE a.contract_id = 'it_a' AND b.contract_id = 'it_b' AND l.local_patient_id = 'p7' AND a.state = 'visible'",
            &[],
        )
        .expect("p7 is visible in both contracts");
    let (token_a, token_b): (String, String) = (row.get(0), row.get(1));
    // Two analysts, each querying both of its views in a loop.
    let probes = [("it_lab_a", "contract_it_a", token_a), ("it_lab_b", "contract_it_b", token_b)]
        .into_iter()
        .map(|(role, schema, token)| {
            let sql = format!(
                "SELECT (SELECT count(*) FROM {schema}.patient WHERE person_id = $1::text::bigint)
                      + (SELECT count(*) FROM {schema}.visit WHERE person_id = $1::text::bigint)"
            );
            (connect_as(role), sql, token)
        })
        .collect();
    let race = race_an_opt_out(probes, "SELECT medanon.opt_out('H1', 'p7', 'self')");
    assert_opt_out_was_immediate(&race);
    // And k still holds in every class it_a shows.
    let mut lab_a = connect_as("it_lab_a");
    let smallest: i64 = lab_a
        .query_one(
            "SELECT min(n) FROM (SELECT count(DISTINCT person_id) AS n FROM contract_it_a.patient GROUP BY birth_date, sex) c",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(smallest >= 3, "smallest class {smallest}");
}

#[test]
fn a_revoked_contract_and_its_snapshot_are_gone_for_the_grantee() {
    let _su = contract_warehouse();
    let mut etl = connect_as("it_etl");
    let schema: String = etl.query_one("SELECT medanon.release_snapshot('it_a')", &[]).unwrap().get(0);
    assert_eq!(schema, "contract_it_a_snap_1");
    let mut lab_a = connect_as("it_lab_a");
    let rows: i64 = lab_a.query_one("SELECT count(*) FROM contract_it_a_snap_1.visit", &[]).unwrap().get(0);
    assert!(rows > 0);
    let mut lab_b = connect_as("it_lab_b");
    assert_sqlstate(&mut lab_b, "SELECT * FROM contract_it_a_snap_1.visit", SqlState::INSUFFICIENT_PRIVILEGE);
    etl.batch_execute("SELECT medanon.revoke_contract('it_a')").unwrap();
    assert_sqlstate(&mut lab_a, "SELECT * FROM contract_it_a.visit", SqlState::UNDEFINED_TABLE);
    assert_sqlstate(&mut lab_a, "SELECT * FROM contract_it_a_snap_1.visit", SqlState::UNDEFINED_TABLE);
    // The auditor's view of it: publish, snapshot and revoke, by the ETL login.
    let mut su = superuser();
    let events: Vec<(String, String)> = su
        .query(
            "SELECT event, recorded_by::text FROM medanon.provision_ledger WHERE contract_id = 'it_a' ORDER BY entry_id",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let expected: Vec<(String, String)> =
        ["create", "publish", "snapshot", "revoke"].iter().map(|e| (e.to_string(), "it_etl".to_string())).collect();
    assert_eq!(events, expected);
}

/// The floor belongs to the contract (issue 15, item 4): under a spec's min_cell of
/// 40, safe_counts shows no cell under 40 persons, whatever min_cell the grantee
/// passes; a cell under it is suppressed.
#[test]
fn safe_counts_never_shows_a_cell_under_the_contracts_floor() {
    let _su = contract_warehouse();
    let mut etl = connect_as("it_etl");
    etl.batch_execute(
        r#"SELECT medanon.create_contract('{"id": "it_f", "grantee": "it_lab_b", "purpose": "floor", "min_cell": 40,
              "approved_on": "2026-01-01", "expires_on": "2099-12-31", "kind": "anonymized", "k": 2,
              "tables": [{"source": "it_clinical.patient", "columns": {"person_id": "token", "sex": "keep"}}]}');
           SELECT medanon.publish_contract('it_f');"#,
    )
    .unwrap();
    let mut lab_b = connect_as("it_lab_b");
    let by_sex: Vec<i64> = lab_b
        .query("SELECT count(DISTINCT person_id) FROM contract_it_f.patient GROUP BY sex", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(by_sex.len() == 2 && by_sex.iter().all(|n| (10..40).contains(n)), "{by_sex:?}");
    for asked in [1, 10, 39] {
        let rows = lab_b.query("SELECT persons, suppression FROM medanon.safe_counts('it_f', 'patient', ARRAY['sex'], $1)", &[&asked]).unwrap();
        let shown: Vec<i64> = rows.iter().filter_map(|r| r.get::<_, Option<i64>>(0)).collect();
        assert!(shown.iter().all(|n| *n >= 40), "min_cell {asked}: {shown:?}");
        assert_eq!(rows.iter().filter(|r| r.get::<_, Option<String>>(1).is_some()).count(), 2, "both sexes hidden");
    }
    // A spec floor under 2 is refused, naming the key.
    let err = etl
        .batch_execute(
            r#"SELECT medanon.create_contract('{"id": "it_g", "grantee": "it_lab_b", "purpose": "floor", "min_cell": 1,
                  "approved_on": "2026-01-01", "expires_on": "2099-12-31", "kind": "anonymized", "k": 2,
                  "tables": [{"source": "it_clinical.patient", "columns": {"person_id": "token", "sex": "keep"}}]}')"#,
        )
        .unwrap_err();
    let db = err.as_db_error().unwrap();
    assert_eq!(db.code(), &SqlState::INVALID_PARAMETER_VALUE);
    assert!(db.message().contains("\"min_cell\""), "{}", db.message());
}
