//! Opt-out takes effect at once (DESIGN.md invariant 3): one session queries a
//! contract-style view over `eligible_persons` in a loop, as an analyst, while
//! another commits an opt-out. No query that starts after the commit returns the
//! person. And the ledger is append-only for the operator too.

use medanon_integration::*;
use postgres::error::SqlState;

/// Three patients at two institutions, notified 40 days ago, linked; a view in the
/// shape the contracts will have, readable by an analyst role only through it.
fn warehouse() -> postgres::Client {
    let mut su = fresh_install();
    su.batch_execute(
        "DO $$ BEGIN
           IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'it_analyst') THEN CREATE ROLE it_analyst LOGIN; END IF;
         END $$;
         DROP SCHEMA IF EXISTS it_contract CASCADE;
         CREATE SCHEMA it_contract;
         CREATE TABLE it_contract.staging (institution_code text, local_patient_id text, name_kana text,
             birth_date text, sex text, insurer_number text, insured_symbol text, insured_number text);
         INSERT INTO it_contract.staging VALUES
           ('H1', 'a', 'サトウタロウ', '1975-03-01', '1', '', '', ''),
           ('H2', 'a2', 'ｻﾄｳ ﾀﾛｳ', 'S50.3.1', 'M', '', '', ''),
           ('H1', 'b', 'ヤマダハナコ', '1980-05-05', '2', '', '', ''),
           ('H2', 'c', 'スズキジロウ', '1990-01-01', '1', '', '', '');
         SELECT medanon.register_institution('H1', 'Hospital 1', 'hospital');
         SELECT medanon.register_institution('H2', 'Clinic 2', 'clinic');
         SELECT medanon.record_notification(institution_code, local_patient_id, now() - interval '40 days')
           FROM it_contract.staging;
         SELECT medanon.link_patients('it_contract.staging');
         CREATE VIEW it_contract.patients WITH (security_barrier) AS
           SELECT DISTINCT l.person_id FROM medanon.person_link l
             JOIN medanon.eligible_persons e USING (person_id, institution_code);
         GRANT USAGE ON SCHEMA it_contract TO it_analyst;
         GRANT SELECT ON it_contract.patients TO it_analyst;",
    )
    .expect("set up the warehouse");
    su
}

#[test]
fn no_query_started_after_an_opt_out_commits_sees_the_person() {
    let mut su = warehouse();
    let target: i64 = su
        .query_one("SELECT person_id FROM medanon.person_link WHERE local_patient_id = 'a2'", &[])
        .unwrap()
        .get(0);
    let mut analyst = connect_as("it_analyst");
    assert_sqlstate(&mut analyst, "SELECT * FROM medanon.person_link", SqlState::INSUFFICIENT_PRIVILEGE);
    assert_sqlstate(&mut analyst, "SELECT * FROM medanon.eligible_persons", SqlState::INSUFFICIENT_PRIVILEGE);
    // The opt-out names the person's record at H1; scope all reaches the H2 record too.
    let race = race_an_opt_out(
        vec![(analyst, "SELECT count(*) FROM it_contract.patients WHERE person_id = $1::text::bigint".into(), target.to_string())],
        "SELECT medanon.opt_out('H1', 'a', 'self')",
    );
    assert_opt_out_was_immediate(&race);
    // The other persons are still there.
    let others: i64 = su.query_one("SELECT count(*) FROM it_contract.patients", &[]).unwrap().get(0);
    assert_eq!(others, 2);
}

#[test]
fn the_ledger_is_append_only_for_the_operator_too() {
    let _su = warehouse();
    let mut etl = connect_as("it_etl");
    etl.batch_execute("SELECT medanon.opt_out('H2', 'c', 'guardian', 'parent', 'institution', now())").unwrap();
    for sql in [
        "UPDATE medanon.opt_out SET scope = 'all'",
        "DELETE FROM medanon.opt_out",
        "DELETE FROM medanon.notification",
        "TRUNCATE medanon.opt_out",
        "INSERT INTO medanon.opt_out_withdrawal (opt_out_id, received_at) SELECT opt_out_id, now() FROM medanon.opt_out; \
         DELETE FROM medanon.opt_out_withdrawal",
    ] {
        assert_sqlstate(&mut etl, sql, SqlState::INSUFFICIENT_PRIVILEGE);
    }
    // An analyst can neither read nor write the ledger.
    let mut analyst = connect_as("it_analyst");
    assert_sqlstate(&mut analyst, "SELECT * FROM medanon.opt_out", SqlState::INSUFFICIENT_PRIVILEGE);
    assert_sqlstate(&mut analyst, "SELECT medanon.opt_out('H1', 'a')", SqlState::INSUFFICIENT_PRIVILEGE);
    let opt_outs: i64 = etl.query_one("SELECT count(*) FROM medanon.opt_out", &[]).unwrap().get(0);
    assert_eq!(opt_outs, 1);
}
