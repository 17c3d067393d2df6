//! Linking as real roles: only the operator may link, only from a staging table it
//! can read, and nobody writes the link tables but link_patients.

use medanon_integration::*;
use postgres::error::SqlState;

fn staging(su: &mut postgres::Client) {
    su.batch_execute(
        "DROP SCHEMA IF EXISTS it_etl_area CASCADE;
         CREATE SCHEMA it_etl_area;
         CREATE TABLE it_etl_area.batch (institution_code text, local_patient_id text, name_kana text,
             name_kanji text, birth_date text, sex text, insurer_number text, insured_symbol text,
             insured_number text, postal_code text, address text);
         INSERT INTO it_etl_area.batch (institution_code, local_patient_id, name_kana, birth_date, sex)
              VALUES ('H1', '1', 'ｻﾄｳ ﾀﾛｳ', 'S50.3.1', 'M'), ('H2', '9', 'さとう たろう', '1975-03-01', '男');
         CREATE TABLE it_etl_area.secret (LIKE it_etl_area.batch);
         GRANT USAGE ON SCHEMA it_etl_area TO it_etl, it_outsider;
         GRANT SELECT ON it_etl_area.batch TO it_etl, it_outsider;",
    )
    .unwrap();
}

#[test]
fn only_the_operator_links_and_only_what_it_can_read() {
    let mut su = fresh_install();
    staging(&mut su);
    let mut outsider = connect_as("it_outsider");
    assert_sqlstate(&mut outsider, "SELECT medanon.link_patients('it_etl_area.batch')", SqlState::INSUFFICIENT_PRIVILEGE);
    assert_sqlstate(&mut outsider, "SELECT medanon.link_report()", SqlState::INSUFFICIENT_PRIVILEGE);
    assert_sqlstate(&mut outsider, "SELECT * FROM medanon.person_link", SqlState::INSUFFICIENT_PRIVILEGE);

    let mut etl = connect_as("it_etl");
    // A table the operator may not read is refused by PostgreSQL itself.
    assert_sqlstate(&mut etl, "SELECT medanon.link_patients('it_etl_area.secret')", SqlState::INSUFFICIENT_PRIVILEGE);
    let result: serde_json::Value = etl
        .query_one("SELECT medanon.link_patients('it_etl_area.batch')::text", &[])
        .map(|row| serde_json::from_str(row.get::<_, &str>(0)).unwrap())
        .unwrap();
    assert_eq!(result["linked"], 2);
    assert_eq!(result["new_persons"], 1);
    let persons: i64 = etl.query_one("SELECT count(DISTINCT person_id) FROM medanon.person_link", &[]).unwrap().get(0);
    assert_eq!(persons, 1);
    // The operator reads the link tables but cannot write them by hand.
    for sql in [
        "UPDATE medanon.person_link SET person_id = 42",
        "DELETE FROM medanon.link_quarantine",
        "INSERT INTO medanon.person DEFAULT VALUES",
        "TRUNCATE medanon.person_merge_log",
    ] {
        assert_sqlstate(&mut etl, sql, SqlState::INSUFFICIENT_PRIVILEGE);
    }
    // The batch ledger names who linked.
    let by: String = su.query_one("SELECT linked_by::text FROM medanon.link_batch", &[]).unwrap().get(0);
    assert_eq!(by, "it_etl");
}

#[test]
fn a_hostile_search_path_does_not_reach_the_owners_work() {
    let mut su = fresh_install();
    staging(&mut su);
    su.batch_execute(
        "DROP SCHEMA IF EXISTS it_trap CASCADE; CREATE SCHEMA it_trap; GRANT ALL ON SCHEMA it_trap TO it_etl;",
    )
    .unwrap();
    let mut etl = connect_as("it_etl");
    // A look-alike count() and = that would record that they ran as the owner.
    etl.batch_execute(
        "CREATE TABLE it_trap.ran (who text);
         CREATE FUNCTION it_trap.now() RETURNS timestamptz LANGUAGE sql AS
           $$ INSERT INTO it_trap.ran VALUES (current_user) RETURNING pg_catalog.now() $$;
         CREATE FUNCTION it_trap.int8eq(bigint, bigint) RETURNS boolean LANGUAGE sql AS
           $$ INSERT INTO it_trap.ran VALUES (current_user) RETURNING $1 OPERATOR(pg_catalog.=) $2 $$;
         CREATE OPERATOR it_trap.= (LEFTARG = bigint, RIGHTARG = bigint, FUNCTION = it_trap.int8eq);
         SET search_path = it_trap, pg_catalog, public;",
    )
    .unwrap();
    etl.query_one("SELECT medanon.link_patients('it_etl_area.batch')", &[]).unwrap();
    let ran: i64 = su.query_one("SELECT count(*) FROM it_trap.ran WHERE who <> 'it_etl'", &[]).unwrap().get(0);
    assert_eq!(ran, 0, "a caller's function ran with the owner's rights");
}
