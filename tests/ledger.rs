//! The provision ledger (提供記録) is written by medanon alone and is
//! tamper-evident: each entry is chained to the one before it by SHA-256, and
//! verify_ledger() names the first entry that does not verify. A contract's
//! objects say nothing that another contract's analyst may not know.

use medanon_integration::*;
use postgres::error::SqlState;

/// Entries in chain order: (entry_id, entry_hash recomputed in SQL as the README
/// defines it, entry_hash stored).
fn recomputed(su: &mut postgres::Client) -> Vec<(i64, String, String)> {
    su.batch_execute("SET TimeZone = 'UTC'").unwrap();
    let rows = su
        .query(
            "SELECT entry_id, encode(sha256(convert_to(prev_hash || (to_jsonb(l) - 'prev_hash' - 'entry_hash')::text, 'UTF8')), 'hex'),
                    entry_hash
               FROM medanon.provision_ledger l ORDER BY chain_seq",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    su.batch_execute("RESET TimeZone").unwrap();
    rows
}

#[test]
fn the_chain_is_recomputed_in_sql_and_an_edit_by_a_superuser_is_caught() {
    let mut su = contract_warehouse();
    let mut etl = connect_as("it_etl");
    etl.batch_execute("SELECT medanon.refresh_contract('it_a'); SELECT medanon.release_snapshot('it_a');").unwrap();
    su.batch_execute("SELECT medanon.rotate_key()").unwrap();
    let entries = recomputed(&mut su);
    assert!(entries.len() >= 6, "create x2, publish x2, refresh, snapshot, key rotation: {entries:?}");
    for (id, computed, stored) in &entries {
        assert_eq!(computed, stored, "entry {id} does not match the README's definition");
    }
    // Each entry names the hash of the one before it; the first names 64 zeros.
    let broken: i64 = su
        .query_one(
            "SELECT count(*) FROM (SELECT prev_hash, lag(entry_hash, 1, repeat('0', 64)) OVER (ORDER BY chain_seq) AS before
                                     FROM medanon.provision_ledger) c WHERE prev_hash <> before",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(broken, 0);
    let verified: Option<i64> = su.query_one("SELECT medanon.verify_ledger()", &[]).unwrap().get(0);
    assert_eq!(verified, None, "an untouched ledger verifies");
    // The auditor and the operator may check it.
    for role in ["it_etl", "it_auditor"] {
        let mut c = connect_as(role);
        let v: Option<i64> = c.query_one("SELECT medanon.verify_ledger()", &[]).unwrap().get(0);
        assert_eq!(v, None, "{role}");
    }

    // A superuser who disables the append-only trigger and edits one entry is caught there.
    let (victim, _, _) = entries[2].clone();
    su.batch_execute(&format!(
        "BEGIN;
         ALTER TABLE medanon.provision_ledger DISABLE TRIGGER provision_ledger_append_only;
         UPDATE medanon.provision_ledger SET person_count = coalesce(person_count, 0) + 1 WHERE entry_id = {victim};
         SELECT medanon.verify_ledger();"
    ))
    .unwrap();
    let found: Option<i64> = su.query_one("SELECT medanon.verify_ledger()", &[]).unwrap().get(0);
    assert_eq!(found, Some(victim), "an edited entry");
    su.batch_execute("ROLLBACK").unwrap();
    // Re-hashing the edited entry breaks the link from the next one.
    su.batch_execute(&format!(
        "BEGIN;
         ALTER TABLE medanon.provision_ledger DISABLE TRIGGER provision_ledger_append_only;
         SET LOCAL TimeZone = 'UTC';
         UPDATE medanon.provision_ledger l SET detail = '{{\"forged\": true}}' WHERE entry_id = {victim};
         UPDATE medanon.provision_ledger l
            SET entry_hash = encode(sha256(convert_to(prev_hash || (to_jsonb(l) - 'prev_hash' - 'entry_hash')::text, 'UTF8')), 'hex')
          WHERE entry_id = {victim};"
    ))
    .unwrap();
    let found: Option<i64> = su.query_one("SELECT medanon.verify_ledger()", &[]).unwrap().get(0);
    assert_eq!(found, Some(entries[3].0), "a re-hashed entry is caught at the next");
    su.batch_execute("ROLLBACK").unwrap();
    // A deleted entry, in the middle or at the end.
    for (deleted, expected) in [(entries[1].0, entries[2].0), (entries.last().unwrap().0, entries.last().unwrap().0)] {
        su.batch_execute(&format!(
            "BEGIN;
             ALTER TABLE medanon.provision_ledger DISABLE TRIGGER provision_ledger_append_only;
             DELETE FROM medanon.provision_ledger WHERE entry_id = {deleted};"
        ))
        .unwrap();
        let found: Option<i64> = su.query_one("SELECT medanon.verify_ledger()", &[]).unwrap().get(0);
        assert_eq!(found, Some(expected), "deleted {deleted}");
        su.batch_execute("ROLLBACK").unwrap();
    }
    assert_eq!(su.query_one("SELECT medanon.verify_ledger()", &[]).unwrap().get::<_, Option<i64>>(0), None);
}

#[test]
fn only_medanon_writes_the_ledger_and_contracts() {
    let _su = contract_warehouse();
    let mut etl = connect_as("it_etl");
    for sql in [
        "INSERT INTO medanon.provision_ledger (contract_id, event) VALUES ('it_a', 'revoke')",
        "INSERT INTO medanon.provision_ledger_head (entries, last_hash) VALUES (0, '')",
        "UPDATE medanon.provision_ledger_head SET entries = 0",
        "UPDATE medanon.contract SET status = 'revoked' WHERE contract_id = 'it_a'",
        "INSERT INTO medanon.contract (contract_id, kind, grantee, purpose, approved_on, expires_on, k, spec, spec_sha256, view_schema, data_schema)
         VALUES ('x', 'anonymized', 'it_lab_a', 'p', now(), now(), 5, '{}', '', 'x', 'y')",
        "DELETE FROM medanon.contract_person",
        "UPDATE medanon.contract_table SET token_column = 'x'",
    ] {
        assert_sqlstate(&mut etl, sql, SqlState::INSUFFICIENT_PRIVILEGE);
    }
    // The operator still reads them, and writes through medanon's functions.
    let status: String = etl.query_one("SELECT status FROM medanon.contract WHERE contract_id = 'it_a'", &[]).unwrap().get(0);
    assert_eq!(status, "published");
    etl.batch_execute("SELECT medanon.revoke_contract('it_b')").unwrap();
    let last: String = etl.query_one("SELECT event FROM medanon.provision_ledger ORDER BY chain_seq DESC LIMIT 1", &[]).unwrap().get(0);
    assert_eq!(last, "revoke");
}

#[test]
fn the_spec_hash_is_recomputed_from_the_stored_spec() {
    let mut su = contract_warehouse();
    let rows = su
        .query(
            "SELECT c.contract_id, c.spec_sha256 = encode(sha256(convert_to(c.spec::text, 'UTF8')), 'hex'),
                    bool_and(l.spec_sha256 = c.spec_sha256)
               FROM medanon.contract c JOIN medanon.provision_ledger l USING (contract_id)
              GROUP BY c.contract_id, c.spec_sha256, c.spec ORDER BY 1",
            &[],
        )
        .unwrap();
    assert_eq!(rows.len(), 2);
    for r in rows {
        let id: String = r.get(0);
        assert!(r.get::<_, bool>(1), "{id}: spec_sha256 is not sha256(spec::text)");
        assert!(r.get::<_, bool>(2), "{id}: a ledger entry names another hash");
    }
}

#[test]
fn another_contracts_objects_say_nothing_of_it() {
    let _su = contract_warehouse();
    let mut lab_b = connect_as("it_lab_b");
    // Every comment on any object of contract it_a's schemas, as it_lab_b reads them.
    let comments = strings(
        &mut lab_b,
        "SELECT coalesce(d.description, '') FROM pg_description d
           LEFT JOIN pg_class c ON d.classoid = 'pg_class'::regclass AND c.oid = d.objoid
           LEFT JOIN pg_namespace n ON n.oid = CASE WHEN d.classoid = 'pg_namespace'::regclass THEN d.objoid ELSE c.relnamespace END
          WHERE n.nspname LIKE 'contract_it_a%'",
    );
    assert!(comments.len() >= 4, "the schemas, views and data tables have comments: {comments:?}");
    for c in &comments {
        for secret in ["drug safety", "it_lab_a", "2099", "it_clinical", "patient", "visit"] {
            assert!(!c.contains(secret), "a comment tells another analyst {secret:?}: {c}");
        }
    }
}
