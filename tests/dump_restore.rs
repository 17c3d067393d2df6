//! The keyring survives pg_dump and pg_restore (pg_extension_config_dump), so a
//! restored warehouse gives the same tokens and date offsets; and only a role that
//! may read the keys can dump them.

use medanon_integration::*;

const PROBE: &str = "SELECT medanon.tokenize('12345', 'patient'), medanon.date_offset('person-1', 'contract-a'), \
                     medanon.active_key_id(), (SELECT count(*) FROM medanon.keyring)::int";

fn probe(client: &mut postgres::Client) -> (String, i32, i32, i32) {
    let row = client.query_one(PROBE, &[]).unwrap();
    (row.get(0), row.get(1), row.get(2), row.get(3))
}

#[test]
fn tokens_and_offsets_are_the_same_after_dump_and_restore() {
    let mut su = fresh_install();
    // A rotated keyring: one retired install key, one active rotated key.
    su.batch_execute("SELECT medanon.rotate_key()").unwrap();
    let before = probe(&mut su);
    assert_eq!(before.3, 3, "pseudonym install key, link key, rotated pseudonym key");
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
    assert_eq!(before, after, "token, offset, active key id and key count after restore");
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
}

#[test]
fn a_role_that_cannot_read_the_keys_cannot_dump_them() {
    let _su = fresh_install();
    let db = std::env::var("MEDANON_TEST_DB").unwrap();
    let out = pg_program("pg_dump").args(["--username", "it_etl", "--format", "plain"]).arg(&db).output().unwrap();
    assert!(!out.status.success(), "pg_dump as it_etl should fail");
    let stderr = String::from_utf8_lossy(&out.stderr);
    // pg_dump reads the keyring's sequence or the table first; either is refused.
    assert!(stderr.contains("permission denied for") && stderr.contains("keyring"), "pg_dump said: {stderr}");
}
