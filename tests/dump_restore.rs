//! The keyring survives pg_dump and pg_restore (pg_extension_config_dump), so a
//! restored warehouse gives the same tokens and date offsets; links, consent,
//! contracts (map, views, snapshots) and the provision ledger come back as they
//! were, and the restored contract still withholds an opt-out; only a role that may
//! read the keys can dump them.

use medanon_integration::*;

const PROBE: &str = "SELECT medanon.tokenize('12345', 'patient'), medanon.date_offset('person-1', 'contract-a'), \
                     medanon.active_key_id(), (SELECT count(*) FROM medanon.keyring)::int,
                     (SELECT string_agg(l::text, ';' ORDER BY institution_code, local_patient_id) FROM medanon.person_link l),
                     (SELECT string_agg(o::text, ';' ORDER BY opt_out_id) FROM medanon.opt_out o),
                     (SELECT string_agg(e::text, ';' ORDER BY person_id, institution_code) FROM medanon.eligible_persons e),
                     (SELECT string_agg(m::text, ';' ORDER BY contract_id, person_id) FROM medanon.contract_person m),
                     (SELECT string_agg(v::text, ';' ORDER BY v::text) FROM contract_it_d.it_visit v),
                     (SELECT string_agg(v::text, ';' ORDER BY v::text) FROM contract_it_d_snap_1.it_visit v),
                     (SELECT string_agg(format('%s %s %s %s %s %s', entry_id, event, contract_id, spec_sha256, row_count, detail),
                                        ';' ORDER BY entry_id) FROM medanon.provision_ledger)";

type Probe = (String, i32, i32, i32, Vec<Option<String>>);

fn probe(client: &mut postgres::Client) -> Probe {
    let row = client.query_one(PROBE, &[]).unwrap();
    (row.get(0), row.get(1), row.get(2), row.get(3), (4..11).map(|i| row.get(i)).collect())
}

#[test]
fn tokens_and_offsets_are_the_same_after_dump_and_restore() {
    let mut su = superuser();
    su.batch_execute(
        "DROP SCHEMA IF EXISTS contract_it_d, contract_it_d_data, contract_it_d_snap_1 CASCADE;
         DROP TABLE IF EXISTS public.it_visit;
         DO $$ BEGIN
           IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'it_lab_d') THEN CREATE ROLE it_lab_d LOGIN; END IF;
         END $$;",
    )
    .unwrap();
    let mut su = fresh_install();
    // A rotated keyring: one retired install key, one active rotated key; links, a
    // consent ledger, and a published contract with a snapshot.
    su.batch_execute(
        "SELECT medanon.rotate_key();
         CREATE TABLE public.it_staging (institution_code text, local_patient_id text, name_kana text,
             birth_date text, sex text, insurer_number text, insured_symbol text, insured_number text);
         INSERT INTO public.it_staging VALUES ('H1', 'a', 'サトウタロウ', '1975-03-01', '1', '', '', ''),
                                             ('H2', 'b', 'ｻﾄｳ ﾀﾛｳ', 'S50.3.1', 'M', '', '', ''),
                                             ('H1', 'c', 'ヤマダハナコ', '1980-05-05', '2', '06123456', '1', '2'),
                                             ('H1', 'd', 'スズキイチロウ', '1985-01-01', '1', '', '', ''),
                                             ('H1', 'e', 'タナカハナ', '1990-02-02', '2', '', '', ''),
                                             ('H2', 'f', 'イトウジロウ', '1970-07-07', '1', '', '', '');
         SELECT medanon.link_patients('public.it_staging');
         SELECT medanon.register_institution('H1', 'Hospital', 'hospital'), medanon.register_institution('H2', 'Clinic', 'clinic');
         SELECT medanon.record_notification(institution_code, local_patient_id, now() - interval '40 days') FROM public.it_staging;
         SELECT medanon.opt_out('H1', 'c', 'bereaved_family', 'child', 'all', now());
         CREATE TABLE public.it_visit AS
         SELECT l.person_id, l.institution_code, DATE '2025-01-01' + g AS visit_date, 'I10'::text AS icd10
           FROM medanon.person_link l, generate_series(1, 3) g;
         SELECT medanon.register_source('public.it_visit', 'person_id', 'institution_code');
         SELECT medanon.classify('public.it_visit', c, cls) FROM (VALUES ('person_id', 'identifier'),
             ('institution_code', 'quasi_identifier'), ('visit_date', 'static'), ('icd10', 'semi_static')) v(c, cls);
         SELECT medanon.create_contract('{\"id\": \"it_d\", \"grantee\": \"it_lab_d\", \"purpose\": \"restore\",
             \"approved_on\": \"2026-01-01\", \"expires_on\": \"2099-01-01\", \"kind\": \"anonymized\", \"k\": 2,
             \"tables\": [{\"source\": \"public.it_visit\",
                          \"columns\": {\"person_id\": \"token\", \"visit_date\": \"shift\", \"icd10\": \"keep\"}}]}');
         SELECT medanon.publish_contract('it_d');
         SELECT medanon.release_snapshot('it_d');
         DROP TABLE public.it_staging;",
    )
    .unwrap();
    let before = probe(&mut su);
    assert_eq!(before.3, 3, "pseudonym install key, link key, rotated pseudonym key");
    assert!(before.4.iter().all(|p| p.is_some()), "every probe has something to compare: {:?}", before.4);
    let max_id: i32 = su.query_one("SELECT max(key_id) FROM medanon.keyring", &[]).unwrap().get(0);

    let dump = std::env::temp_dir().join(format!("medanon-it-{}.dump", std::process::id()));
    let db = std::env::var("MEDANON_TEST_DB").unwrap();
    let out = pg_program("pg_dump").args(["--username", "postgres", "--format", "custom", "--file"]).arg(&dump).arg(&db).output().unwrap();
    assert!(out.status.success(), "pg_dump: {}", String::from_utf8_lossy(&out.stderr));

    su.batch_execute("DROP DATABASE IF EXISTS medanon_it_restored").unwrap();
    su.batch_execute("CREATE DATABASE medanon_it_restored").unwrap();
    let out = pg_program("pg_restore")
        .args(["--username", "postgres", "--exit-on-error", "--dbname", "medanon_it_restored"])
        .arg(&dump)
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&dump);
    assert!(out.status.success(), "pg_restore: {}", String::from_utf8_lossy(&out.stderr));

    let mut restored = connect_to("medanon_it_restored", "postgres");
    let after = probe(&mut restored);
    assert_eq!(
        before, after,
        "token, offset, keys, person_link, opt-outs, eligibility, contract map, view, snapshot and ledger after restore"
    );
    // The restored contract is live: an opt-out there takes the person out of its view.
    let shown = |c: &mut postgres::Client| -> i64 { c.query_one("SELECT count(DISTINCT person_id) FROM contract_it_d.it_visit", &[]).unwrap().get(0) };
    let persons = shown(&mut restored);
    restored.batch_execute("SELECT medanon.opt_out('H1', 'a', 'self')").unwrap();
    assert_eq!(shown(&mut restored), persons - 1);
    // The sequence came along too: the next rotation does not reuse an id.
    let next: i32 = restored.query_one("SELECT medanon.rotate_key()", &[]).unwrap().get(0);
    assert_eq!(next, max_id + 1);
    let one_active: i64 = restored
        .query_one("SELECT count(*) FROM medanon.keyring WHERE active AND purpose = 'pseudonym'", &[])
        .unwrap()
        .get(0);
    assert_eq!(one_active, 1);
    drop(restored);
    su.batch_execute("DROP DATABASE medanon_it_restored").unwrap();
    su.batch_execute("SELECT medanon.revoke_contract('it_d'); DROP TABLE public.it_visit").unwrap();
}

#[test]
fn a_role_that_cannot_read_the_keys_cannot_dump_them() {
    let mut su = fresh_install();
    let keys: Vec<String> = su
        .query("SELECT encode(material, 'hex') FROM medanon.keyring", &[])
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    let db = std::env::var("MEDANON_TEST_DB").unwrap();
    let out = pg_program("pg_dump").args(["--username", "it_etl", "--format", "plain"]).arg(&db).output().unwrap();
    // pg_dump stops at the first extension table or sequence it may not read.
    assert!(!out.status.success(), "pg_dump as it_etl should fail");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("permission denied for"), "pg_dump said: {stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    for key in &keys {
        assert!(!stdout.contains(key.as_str()), "key material in a dump by it_etl");
    }
    let mut etl = connect_as("it_etl");
    assert_sqlstate(&mut etl, "COPY medanon.keyring TO STDOUT", postgres::error::SqlState::INSUFFICIENT_PRIVILEGE);
}

/// Review decisions survive pg_dump and pg_restore: the log, the pairs kept
/// apart, the decided conflicts and candidates, and the links they made; in the
/// restored database a batch still keeps the persons apart, the log is still
/// append-only and its ids go on.
#[test]
fn review_decisions_survive_dump_and_restore() {
    let mut su = fresh_install();
    su.batch_execute(
        "DROP TABLE IF EXISTS public.it_rv;
         CREATE TABLE public.it_rv (institution_code text, local_patient_id text, name_kana text, name_kanji text,
             birth_date text, sex text, insurer_number text, insured_symbol text, insured_number text);
         INSERT INTO public.it_rv VALUES
             ('H1', 'a', 'サトウタロウ', '', '1975-03-01', '1', '06111111', '1', '1'),
             ('H2', 'b', 'サトウタロ', '', '1975-03-01', '1', '06111111', '1', '1'),
             ('H1', 'c', 'コバヤシケンイチ', '', '1970-10-10', '1', '06123456', '1', '1'),
             ('H2', 'd', 'コバヤツケンイチ', '', '1970-10-10', '1', '01765432', '9', '9'),
             ('H1', 'x', 'ヤマダハナコ', '山田 花子', '1980-05-05', '2', '01234567', '7', '1'),
             -- A namesake (same kana name, birth date and sex: one ID2), merged, then split.
             ('H1', 'y', 'ヤマダハナコ', '', '1980-05-05', '2', '', '', '');
         SELECT medanon.link_patients('public.it_rv');
         SELECT medanon.review_link('conflict', (SELECT conflict_id FROM medanon.link_conflict WHERE local_patient_id = 'a'),
                                    'same', 'dr. sato', 'one card, kana typo');
         SELECT medanon.review_link('candidate', (SELECT candidate_id FROM medanon.link_candidates WHERE local_patient_id = 'c'),
                                    'different', 'dr. sato', 'checked the charts');
         SELECT medanon.split_person((SELECT person_id FROM medanon.person_link WHERE local_patient_id = 'x'),
                                     ARRAY['H1'], ARRAY['y'], 'dr. ito', 'the mother');
         -- Twins without kanji names: a conflict left pending across the restore.
         INSERT INTO public.it_rv VALUES
             ('H3', 't1', 'スズキイチロウ', '', '2010-07-07', '1', '06999999', '5', '10'),
             ('H3', 't2', 'スズキジロウ', '', '2010-07-07', '1', '06999999', '5', '10');
         SELECT medanon.link_patients('public.it_rv');",
    )
    .unwrap();
    const LINKS: &str = "SELECT (SELECT string_agg(r::text, ';' ORDER BY review_id) FROM medanon.link_review r),
                                (SELECT string_agg(a::text, ';' ORDER BY a::text) FROM medanon.link_apart a),
                                (SELECT string_agg(c::text, ';' ORDER BY conflict_id) FROM medanon.link_conflict c),
                                (SELECT string_agg(k::text, ';' ORDER BY candidate_id) FROM medanon.link_candidates k),
                                (SELECT string_agg(l::text, ';' ORDER BY institution_code, local_patient_id) FROM medanon.person_link l),
                                (SELECT string_agg(m::text, ';' ORDER BY merge_id) FROM medanon.person_merge_log m)";
    let probe = |c: &mut postgres::Client| -> Vec<Option<String>> {
        let row = c.query_one(LINKS, &[]).unwrap();
        (0..6).map(|i| row.get(i)).collect()
    };
    let before = probe(&mut su);
    assert!(before.iter().all(|v| v.is_some()), "{before:?}");
    let dump = std::env::temp_dir().join(format!("medanon-it-review-{}.dump", std::process::id()));
    let db = std::env::var("MEDANON_TEST_DB").unwrap();
    let out = pg_program("pg_dump").args(["--username", "postgres", "--format", "custom", "--file"]).arg(&dump).arg(&db).output().unwrap();
    assert!(out.status.success(), "pg_dump: {}", String::from_utf8_lossy(&out.stderr));
    su.batch_execute("DROP DATABASE IF EXISTS medanon_it_review").unwrap();
    su.batch_execute("CREATE DATABASE medanon_it_review").unwrap();
    let out = pg_program("pg_restore")
        .args(["--username", "postgres", "--exit-on-error", "--dbname", "medanon_it_review"])
        .arg(&dump)
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&dump);
    assert!(out.status.success(), "pg_restore: {}", String::from_utf8_lossy(&out.stderr));
    let mut restored = connect_to("medanon_it_review", "postgres");
    assert_eq!(probe(&mut restored), before, "review log, kept-apart pairs, decisions and links after restore");
    // Keyed again (sex written as M/F): the decisions hold in the restored database.
    restored.batch_execute("UPDATE public.it_rv SET sex = CASE sex WHEN '1' THEN 'M' ELSE 'F' END").unwrap();
    let r: String = restored.query_one("SELECT medanon.link_patients('public.it_rv')::text", &[]).unwrap().get(0);
    let r: serde_json::Value = serde_json::from_str(&r).unwrap();
    assert!(r["kept_apart"].as_i64() > Some(0), "{r}");
    assert_eq!(r["merges"], 0, "{r}");
    let apart: i64 = restored
        .query_one(
            "SELECT count(DISTINCT person_id) FROM medanon.person_link WHERE local_patient_id IN ('x', 'y')",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(apart, 2);
    assert_sqlstate(&mut restored, "DELETE FROM medanon.link_review", postgres::error::SqlState::INSUFFICIENT_PRIVILEGE);
    let max_before: i64 = su.query_one("SELECT max(review_id) FROM medanon.link_review", &[]).unwrap().get(0);
    let next: i64 = restored
        .query_one(
            "SELECT (medanon.review_link('conflict', (SELECT conflict_id FROM medanon.link_conflict WHERE local_patient_id = 't1'),
                                         'different', 'dr. ito', 'after restore') ->> 'review_id')::bigint",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(next, max_before + 1);
    drop(restored);
    su.batch_execute("DROP DATABASE medanon_it_review").unwrap();
    su.batch_execute("DROP TABLE public.it_rv").unwrap();
}
