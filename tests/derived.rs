//! Issue 21 part 2, onward provision (第三者提供), over the wire as the real roles:
//! only the operator creates a derived contract; one that loosens k or a rule is
//! refused at its key; the ledger records the chain, which the auditor reads;
//! revoking the parent revokes the derived contracts, each with its own entry, and
//! the derived contract's analyst loses access at that commit.

use medanon_integration::*;
use postgres::error::SqlState;
use postgres::Client;

/// The spec of a contract derived from `parent`, for it_lab_d, with k and the
/// patient table's birth_date rule given.
fn derived(id: &str, parent: &str, k: i64, birth_date: &str) -> String {
    format!(
        r#"SELECT medanon.create_contract('{{"id": "{id}", "grantee": "it_lab_d", "purpose": "onward provision to a partner",
              "approved_on": "2026-02-01", "expires_on": "2099-12-31", "kind": "anonymized", "k": {k}, "reference_date": "2026-04-01",
              "derived_from": "{parent}",
              "tables": [{{"source": "it_clinical.patient", "columns": {{"person_id": "token", "birth_date": {birth_date}, "sex": "keep"}}}},
                         {{"source": "it_clinical.visit", "columns": {{"person_id": "token", "visit_date": {{"days_since": "first"}}, "icd10": "keep"}}}}]}}')"#
    )
}

/// The error of `sql`, which must fail.
fn error_of(client: &mut Client, sql: &str) -> postgres::error::DbError {
    let e = client.batch_execute(sql).expect_err(sql);
    e.as_db_error().unwrap_or_else(|| panic!("{sql}: not a server error: {e}")).clone()
}

fn warehouse() -> Client {
    let mut su = superuser();
    su.batch_execute(
        "DROP SCHEMA IF EXISTS contract_it_d1, contract_it_d1_data, contract_it_d1_snap_1, contract_it_d2, contract_it_d2_data CASCADE;
         DO $$ BEGIN
           IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'it_lab_d') THEN CREATE ROLE it_lab_d LOGIN; END IF;
         END $$;",
    )
    .expect("role it_lab_d");
    contract_warehouse()
}

#[test]
fn a_derived_contract_is_the_operators_and_never_looser_than_its_parent() {
    let mut su = warehouse();
    let mut etl = connect_as("it_etl");
    let band = r#"{"age_band": {"band": 50}}"#;
    // The parent's analyst may not hand its data on by itself, nor may anyone but the operator.
    for role in ["it_lab_a", "it_lab_d", "it_outsider", "it_auditor"] {
        assert_sqlstate(&mut connect_as(role), &derived("it_d1", "it_a", 3, band), SqlState::INSUFFICIENT_PRIVILEGE);
    }
    // Looser than it_a (k 3, 50-year age bands): refused at the key, 22023.
    for (sql, key) in [
        (derived("it_d1", "it_a", 2, band), "\"k\""),
        (derived("it_d1", "it_a", 3, r#""keep""#), "\"tables[0].columns.birth_date\""),
        (derived("it_d1", "it_a", 3, r#"{"age_band": {"band": 25}}"#), "\"tables[0].columns.birth_date\""),
    ] {
        let e = error_of(&mut etl, &sql);
        assert_eq!(e.code(), &SqlState::INVALID_PARAMETER_VALUE, "{sql}: {e}");
        assert!(e.message().contains(key), "{key}: {}", e.message());
        assert!(e.hint().unwrap_or("").contains("never less protective"), "{e:?}");
    }
    // it_b exposes no visit date: a derived contract may not show one.
    let e = error_of(&mut etl, &derived("it_d1", "it_b", 3, r#""drop""#));
    assert_eq!(e.code(), &SqlState::INVALID_PARAMETER_VALUE);
    assert!(e.message().contains("\"tables[1].columns.visit_date\""), "{}", e.message());
    // The parent must exist.
    let e = error_of(&mut etl, &derived("it_d1", "it_nothing", 3, band));
    assert_eq!(e.code(), &SqlState::UNDEFINED_OBJECT, "{e}");
    // Nothing of the refusals stayed.
    let n: i64 = su.query_one("SELECT count(*) FROM medanon.contract WHERE contract_id = 'it_d1'", &[]).unwrap().get(0);
    assert_eq!(n, 0);

    // Coarser (k 4, 100-year bands, intervals instead of shifted dates): accepted,
    // and its grandchild too.
    etl.batch_execute(&derived("it_d1", "it_a", 4, r#"{"age_band": {"band": 100}}"#)).expect("derived contract");
    etl.batch_execute(&derived("it_d2", "it_d1", 4, r#"{"age_band": {"band": 100}}"#)).expect("derived from a derived contract");
    etl.batch_execute("SELECT medanon.publish_contract('it_d1'); SELECT medanon.publish_contract('it_d2');").expect("publish");
    let row = su
        .query_one(
            "SELECT c.derived_from, l.detail -> 'derived_from' ->> 'contract_id', l.detail -> 'derived_from' ->> 'spec_sha256', p.spec_sha256
               FROM medanon.contract c JOIN medanon.provision_ledger l ON l.contract_id = c.contract_id AND l.event = 'create'
               JOIN medanon.contract p ON p.contract_id = 'it_a'
              WHERE c.contract_id = 'it_d1'",
            &[],
        )
        .unwrap();
    assert_eq!(row.get::<_, Option<String>>(0).as_deref(), Some("it_a"));
    assert_eq!(row.get::<_, Option<String>>(1).as_deref(), Some("it_a"), "the ledger names the parent");
    assert_eq!(row.get::<_, Option<String>>(2), row.get::<_, Option<String>>(3), "and the parent's spec hash");

    // The auditor follows the chain from the ledger, from any link of it.
    let mut auditor = connect_as("it_auditor");
    for from in ["it_a", "it_d1", "it_d2"] {
        let chain: Vec<(String, Option<String>, i32, String)> = auditor
            .query(&format!("SELECT contract_id, derived_from, depth, status FROM medanon.contract_lineage('{from}')"), &[])
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
            .collect();
        let ids: Vec<&str> = chain.iter().map(|c| c.0.as_str()).collect();
        assert_eq!(ids, ["it_a", "it_d1", "it_d2"], "from {from}");
        let parents: Vec<Option<&str>> = chain.iter().map(|c| c.1.as_deref()).collect();
        assert_eq!(parents, [None, Some("it_a"), Some("it_d1")]);
        assert!(chain.iter().all(|c| c.3 == "published"), "{chain:?}");
        let depth_of_d1 = chain[1].2;
        assert_eq!(depth_of_d1, match from { "it_a" => 1, "it_d1" => 0, _ => -1 });
    }
    assert_sqlstate(&mut auditor, "SELECT * FROM medanon.contract_lineage('it_nothing')", SqlState::UNDEFINED_OBJECT);
    assert_sqlstate(&mut connect_as("it_lab_d"), "SELECT * FROM medanon.contract_lineage('it_d1')", SqlState::INSUFFICIENT_PRIVILEGE);
    etl.batch_execute("SELECT medanon.revoke_contract('it_a')").expect("clean up");
}

#[test]
fn revoking_the_parent_revokes_the_derived_contracts_at_its_commit() {
    let mut su = warehouse();
    let mut etl = connect_as("it_etl");
    etl.batch_execute(&derived("it_d1", "it_a", 3, r#"{"age_band": {"band": 50}}"#)).expect("derived");
    etl.batch_execute(&derived("it_d2", "it_d1", 5, r#"{"age_band": {"band": 50}}"#)).expect("grandchild");
    etl.batch_execute("SELECT medanon.publish_contract('it_d1'); SELECT medanon.release_snapshot('it_d1');").expect("publish");
    let mut lab_d = connect_as("it_lab_d");
    let shown: i64 = lab_d.query_one("SELECT count(*) FROM contract_it_d1.patient", &[]).unwrap().get(0);
    assert!(shown > 0, "the derived contract's analyst reads its views");
    let snap: i64 = lab_d.query_one("SELECT count(*) FROM contract_it_d1_snap_1.patient", &[]).unwrap().get(0);
    assert_eq!(snap, shown);

    // Rolled back, the revocation revokes nothing.
    etl.batch_execute("BEGIN; SELECT medanon.revoke_contract('it_a'); ROLLBACK;").expect("revoke, rolled back");
    let again: i64 = lab_d.query_one("SELECT count(*) FROM contract_it_d1.patient", &[]).unwrap().get(0);
    assert_eq!(again, shown);

    let before: i64 = su.query_one("SELECT max(entry_id) FROM medanon.provision_ledger", &[]).unwrap().get(0);
    etl.batch_execute("SELECT medanon.revoke_contract('it_a')").expect("revoke the parent");
    for sql in ["SELECT count(*) FROM contract_it_d1.patient", "SELECT count(*) FROM contract_it_d1_snap_1.patient"] {
        let state = sqlstate_of(&mut lab_d, sql);
        assert!(
            matches!(state, Some(ref s) if *s == SqlState::UNDEFINED_TABLE || *s == SqlState::INSUFFICIENT_PRIVILEGE),
            "{sql}: {state:?}"
        );
    }
    let status = strings(&mut su, "SELECT contract_id || ' ' || status FROM medanon.contract WHERE contract_id IN ('it_a', 'it_d1', 'it_d2') ORDER BY 1");
    assert_eq!(status, ["it_a revoked", "it_d1 revoked", "it_d2 revoked"], "the created grandchild too");
    assert_eq!(strings(&mut su, "SELECT contract_id FROM medanon.contract WHERE contract_id = 'it_b' AND status = 'published'"), ["it_b"], "an unrelated contract stays");
    // One entry each, parent first; the derived ones say why.
    let entries: Vec<(String, Option<String>, Option<String>)> = su
        .query(
            "SELECT contract_id, detail ->> 'derived_from', detail ->> 'cause' FROM medanon.provision_ledger
              WHERE entry_id > $1 AND event = 'revoke'
              ORDER BY entry_id",
            &[&before],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(
        entries,
        [
            ("it_a".to_string(), None, None),
            ("it_d1".to_string(), Some("it_a".to_string()), Some("parent revoked".to_string())),
            ("it_d2".to_string(), Some("it_d1".to_string()), Some("parent revoked".to_string())),
        ]
    );
    let broken: Option<i64> = su.query_one("SELECT medanon.verify_ledger()", &[]).unwrap().get(0);
    assert_eq!(broken, None, "the chain verifies");
    // Nothing derives from a revoked contract.
    let e = error_of(&mut etl, &derived("it_d3", "it_a", 3, r#"{"age_band": {"band": 50}}"#));
    assert_eq!(e.code(), &SqlState::OBJECT_NOT_IN_PREREQUISITE_STATE, "{e}");
    // A derived contract revoked alone leaves its parent.
    etl.batch_execute(&derived("it_d3", "it_b", 2, r#""drop""#).replace(r#""visit_date": {"days_since": "first"}, "#, "")).expect("derived from it_b");
    etl.batch_execute("SELECT medanon.revoke_contract('it_d3')").expect("revoke the derived one");
    assert_eq!(strings(&mut su, "SELECT status FROM medanon.contract WHERE contract_id = 'it_b'"), ["published"]);
    let cause: Option<String> = su
        .query_one("SELECT detail ->> 'cause' FROM medanon.provision_ledger WHERE contract_id = 'it_d3' AND event = 'revoke'", &[])
        .unwrap()
        .get(0);
    assert_eq!(cause, None);
    // Nor from an expired one (its expiry moved into the past, as days pass).
    su.batch_execute("UPDATE medanon.contract SET expires_on = medanon.contract_today() - 1 WHERE contract_id = 'it_b'").unwrap();
    let e = error_of(&mut etl, &derived("it_d4", "it_b", 2, r#""drop""#).replace(r#""visit_date": {"days_since": "first"}, "#, ""));
    assert_eq!(e.code(), &SqlState::OBJECT_NOT_IN_PREREQUISITE_STATE, "{e}");
}
