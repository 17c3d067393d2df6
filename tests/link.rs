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

fn shown(c: &mut postgres::Client, sql: &str) -> i64 {
    c.query_one(sql, &[]).unwrap().get(0)
}

/// Review as real roles: only the operator reviews; a split withholds both
/// persons from a published contract at once, until its refresh; the review log
/// is append-only for everyone.
#[test]
fn a_split_withholds_both_persons_until_the_refresh() {
    let mut su = superuser();
    su.batch_execute(
        "DROP SCHEMA IF EXISTS contract_it_s, contract_it_s_data CASCADE;
         DROP VIEW IF EXISTS public.it_split_visit; DROP TABLE IF EXISTS public.it_sv;
         DO $$ BEGIN
           IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'it_lab_s') THEN CREATE ROLE it_lab_s LOGIN; END IF;
         END $$;",
    )
    .unwrap();
    let mut su = fresh_install();
    staging(&mut su);
    // Six persons at H1; H1/y, a namesake of H1/x (same kana name, birth date and
    // sex: one ID2), was wrongly merged with H1/x.
    su.batch_execute(
        "TRUNCATE it_etl_area.batch;
         INSERT INTO it_etl_area.batch (institution_code, local_patient_id, name_kana, name_kanji, birth_date, sex,
                                        insurer_number, insured_symbol, insured_number) VALUES
           ('H1', 'x', 'ヤマダハナコ', '山田 花子', '1980-05-05', '2', '01234567', '7', '1'),
           ('H1', 'y', 'ヤマダハナコ', '', '1980-05-05', '2', '', '', ''),
           ('H1', 'a', 'イトウマコト', '', '1970-01-01', '1', '', '', ''),
           ('H1', 'b', 'サトウアイ', '', '1971-01-01', '2', '', '', ''),
           ('H1', 'c', 'スズキケン', '', '1972-01-01', '1', '', '', ''),
           ('H1', 'd', 'タナカユイ', '', '1973-01-01', '2', '', '', '');
         CREATE TABLE public.it_sv AS
         SELECT institution_code, local_patient_id, DATE '2025-01-01' + g AS visit_date, 'I10'::text AS icd10
           FROM it_etl_area.batch, generate_series(1, 2) g;
         -- Visits reach a person through person_link, so a split moves them too.
         CREATE VIEW public.it_split_visit AS
         SELECT l.person_id, v.institution_code, v.visit_date, v.icd10
           FROM public.it_sv v JOIN medanon.person_link l USING (institution_code, local_patient_id);",
    )
    .unwrap();
    let mut etl = connect_as("it_etl");
    etl.batch_execute("SELECT medanon.link_patients('it_etl_area.batch')").unwrap();
    let person = |c: &mut postgres::Client, local: &str| -> i64 {
        c.query_one("SELECT person_id FROM medanon.person_link WHERE institution_code = 'H1' AND local_patient_id = $1", &[&local])
            .unwrap()
            .get(0)
    };
    let p = person(&mut etl, "x");
    assert_eq!(person(&mut etl, "y"), p);
    su.batch_execute(
        "SELECT medanon.register_institution('H1', 'Hospital', 'hospital');
         SELECT medanon.record_notification(institution_code, local_patient_id, now() - interval '40 days') FROM it_etl_area.batch;
         SELECT medanon.register_source('public.it_split_visit', 'person_id', 'institution_code');
         SELECT medanon.classify('public.it_split_visit', c, cls) FROM (VALUES ('person_id', 'identifier'),
             ('institution_code', 'quasi_identifier'), ('visit_date', 'static'), ('icd10', 'semi_static')) v(c, cls);
         SELECT medanon.create_contract('{\"id\": \"it_s\", \"grantee\": \"it_lab_s\", \"purpose\": \"split\",
             \"approved_on\": \"2026-01-01\", \"expires_on\": \"2099-01-01\", \"kind\": \"anonymized\", \"k\": 2,
             \"tables\": [{\"source\": \"public.it_split_visit\",
                          \"columns\": {\"person_id\": \"token\", \"visit_date\": \"shift\", \"icd10\": \"keep\"}}]}');
         SELECT medanon.publish_contract('it_s');",
    )
    .unwrap();
    let persons_shown = "SELECT count(DISTINCT person_id) FROM contract_it_s.it_split_visit";
    assert_eq!(shown(&mut su, persons_shown), 5);
    let state = |c: &mut postgres::Client, person: i64| -> Option<String> {
        c.query_opt("SELECT state FROM medanon.contract_person WHERE contract_id = 'it_s' AND person_id = $1", &[&person])
            .unwrap()
            .map(|r| r.get(0))
    };
    assert_eq!(state(&mut su, p).as_deref(), Some("visible"));

    // Only the operator reviews.
    let mut outsider = connect_as("it_outsider");
    let split = format!("SELECT medanon.split_person({p}, ARRAY['H1'], ARRAY['y'], 'dr. ito', 'the mother, not the patient')");
    assert_sqlstate(&mut outsider, &split, SqlState::INSUFFICIENT_PRIVILEGE);
    assert_sqlstate(&mut outsider, "SELECT medanon.review_link('conflict', 1, 'same', 'x', 'y')", SqlState::INSUFFICIENT_PRIVILEGE);
    let new: i64 = etl.query_one(&split, &[]).unwrap().get(0);
    assert_eq!(person(&mut etl, "y"), new);
    // At once, in the same commit: p is withheld, the new person is in no map.
    assert_ne!(state(&mut su, p).as_deref(), Some("visible"));
    assert_eq!(state(&mut su, new), None);
    assert_eq!(shown(&mut su, persons_shown), 4);
    // The refresh shows both again, as two persons.
    su.batch_execute("SELECT medanon.refresh_contract('it_s')").unwrap();
    assert_eq!(state(&mut su, p).as_deref(), Some("visible"));
    assert_eq!(state(&mut su, new).as_deref(), Some("visible"));
    assert_eq!(shown(&mut su, persons_shown), 6);
    // The log: who, why; nobody edits it, not even the owner.
    let (reviewer, by): (String, String) = su
        .query_one("SELECT reviewer, reviewed_by::text FROM medanon.link_review WHERE action = 'split'", &[])
        .map(|r| (r.get(0), r.get(1)))
        .unwrap();
    assert_eq!((reviewer.as_str(), by.as_str()), ("dr. ito", "it_etl"));
    assert_sqlstate(&mut etl, "UPDATE medanon.link_review SET reason = 'x'", SqlState::INSUFFICIENT_PRIVILEGE);
    assert_sqlstate(&mut su, "DELETE FROM medanon.link_review", SqlState::INSUFFICIENT_PRIVILEGE);
    assert_sqlstate(&mut su, "TRUNCATE medanon.link_review", SqlState::INSUFFICIENT_PRIVILEGE);
    // Bad input: SQLSTATE, message, DETAIL and HINT for a person.
    let err = etl
        .batch_execute(&format!("SELECT medanon.split_person({p}, ARRAY['H1'], ARRAY['x', 'a'], 'r', 'why')"))
        .unwrap_err();
    let db = err.as_db_error().unwrap();
    assert_eq!(db.code(), &SqlState::INVALID_PARAMETER_VALUE);
    assert_eq!(db.message(), "institution codes and local ids differ in number");
    assert_eq!(db.detail(), Some("1 institution codes, 2 local ids"));
    assert!(db.hint().unwrap().contains("two arrays of equal length"));
    su.batch_execute("SELECT medanon.revoke_contract('it_s'); DROP VIEW public.it_split_visit; DROP TABLE public.it_sv").unwrap();
}
