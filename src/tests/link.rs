// #[pg_test]s of linkage (名寄せ): every normalization rule, incremental batches,
// merges, the twin conflict, idempotence and quarantine. Included into
// `mod tests` (src/tests/mod.rs), whose schema the test runner calls.

/// A staging table in the operator's shape, filled from rows of
/// (institution, local id, kana, birth date, sex, insurer, symbol, number).
fn staging(name: &str, rows: &[[&str; 8]]) {
    Spi::run(&format!(
        "DROP TABLE IF EXISTS {name};
         CREATE TABLE {name} (institution_code text, local_patient_id text, name_kana text, name_kanji text,
             birth_date text, sex text, insurer_number text, insured_symbol text, insured_number text,
             postal_code text, address text)"
    ))
    .unwrap();
    for r in rows {
        let v: Vec<String> = r
            .iter()
            .map(|f| if *f == "NULL" { "NULL".to_string() } else { format!("'{}'", f.replace('\'', "''")) })
            .collect();
        Spi::run(&format!(
            "INSERT INTO {name} (institution_code, local_patient_id, name_kana, birth_date, sex, insurer_number,
                                 insured_symbol, insured_number) VALUES ({})",
            v.join(", ")
        ))
        .unwrap();
    }
}

fn link(name: &str) -> serde_json::Value {
    Spi::get_one::<pgrx::JsonB>(&format!("SELECT medanon.link_patients('{name}')")).unwrap().unwrap().0
}

fn person_of(inst: &str, local: &str) -> Option<i64> {
    Spi::get_one_with_args::<i64>(
        "SELECT person_id FROM medanon.person_link WHERE institution_code = $1 AND local_patient_id = $2",
        &[inst.into(), local.into()],
    )
    .unwrap()
}

fn count(sql: &str) -> i64 {
    Spi::get_one::<i64>(sql).unwrap().unwrap_or(0)
}

#[pg_test]
fn normalize_cases() {
    check(&[
        ("medanon.normalize_kana('ｻﾄｳ ﾀﾛｳ')", Val(Some("サトウタロウ"))),
        ("medanon.normalize_kana('さとう　たろう')", Val(Some("サトウタロウ"))),
        ("medanon.normalize_kana('サトウ・タロウ')", Val(Some("サトウタロウ"))),
        ("medanon.normalize_kana('ﾔﾏｻﾞｷ')", Val(Some("ヤマザキ"))),
        ("medanon.normalize_kana('キャ') = medanon.normalize_kana('キヤ')", Val(Some("true"))),
        ("medanon.normalize_kana('ｵｰﾉ') = medanon.normalize_kana('オ－ノ')", Val(Some("true"))),
        ("medanon.normalize_kana('オーノ') = medanon.normalize_kana('オオノ')", Val(Some("false"))),
        ("medanon.normalize_kana('カヲル')", Val(Some("カオル"))),
        ("medanon.normalize_kana('　')", Val(None)),
        ("medanon.normalize_kana('')", Val(None)),
        ("medanon.normalize_kana(NULL)", Val(None)),
        ("medanon.normalize_kanji_name('髙橋　健一')", Val(Some("高橋健一"))),
        ("medanon.normalize_kanji_name('山﨑')", Val(Some("山崎"))),
        ("medanon.normalize_kanji_name('齋藤') = medanon.normalize_kanji_name('齊藤')", Val(Some("true"))),
        ("medanon.normalize_kanji_name('渡邉') = medanon.normalize_kanji_name('渡邊')", Val(Some("true"))),
        ("medanon.normalize_kanji_name('澤田 嶋')", Val(Some("沢田島"))),
        ("medanon.normalize_sex('男性')", Val(Some("1"))),
        ("medanon.normalize_sex('f')", Val(Some("2"))),
        ("medanon.normalize_sex('２')", Val(Some("2"))),
        ("medanon.normalize_sex('9')", Val(None)),
        ("medanon.normalize_sex('')", Val(None)),
        ("medanon.normalize_sex('X')", Fails("22P02")),
        ("medanon.normalize_insurer_number('０６１２３４５６')", Val(Some("06123456"))),
        ("medanon.normalize_insurer_number(' 06-123456 ')", Val(Some("06123456"))),
        ("medanon.normalize_insurer_number('138057')", Val(Some("138057"))),
        ("medanon.normalize_insurer_number('1234567')", Fails("22P02")),
        ("medanon.normalize_insurer_number('')", Val(None)),
        ("medanon.normalize_insured_symbol('東京 12-3')", Val(Some("東京123"))),
        ("medanon.normalize_insured_number('１－２３４')", Val(Some("1234"))),
        ("medanon.normalize_insured_number('12a')", Fails("22P02")),
        ("medanon.normalize_insured_number(repeat('1', 1000000)) IS NOT NULL", Val(Some("true"))),
    ]);
}

/// One person at three institutions, each writing them differently, linked in
/// three batches: the later batches attach to the person the first one made.
#[pg_test]
fn incremental_batches_attach_to_existing_persons() {
    staging_kanji("pg_temp.b1", &[["H1", "001", "ｻﾄｳ ﾀﾛｳ", "佐藤 太郎", "昭和50年3月1日", "M", "06123456", "123", "45"]]);
    let r1 = link("pg_temp.b1");
    assert_eq!((r1["new_persons"].as_i64(), r1["linked"].as_i64()), (Some(1), Some(1)));
    let p = person_of("H1", "001").unwrap();
    // Same kana (hiragana, spaces), same birth date written as an ISO date: ID2.
    staging("pg_temp.b2", &[["H2", "P9", "さとう　たろう", "1975-03-01", "男", "", "", ""]]);
    let r2 = link("pg_temp.b2");
    assert_eq!(r2["matched_existing"].as_i64(), Some(1));
    assert_eq!(person_of("H2", "P9"), Some(p));
    // No kana, but the same card in full-width digits and the same kanji name: ID1.
    staging_kanji("pg_temp.b3", &[["H3", "x-1", "", "佐藤　太郎", "S50.3.1", "1", "０６１２３４５６", "１２３", "4-5"]]);
    link("pg_temp.b3");
    assert_eq!(person_of("H3", "x-1"), Some(p));
    assert_eq!(count("SELECT count(DISTINCT person_id) FROM medanon.person_link"), 1);
    // The same card with no name at all: it may be a twin never seen with a name,
    // so it is not joined through the card; it waits for a reviewer.
    staging_kanji("pg_temp.b4", &[["H4", "n-1", "", "", "S50.3.1", "1", "06123456", "123", "45"]]);
    let r4 = link("pg_temp.b4");
    assert_eq!((r4["new_persons"].as_i64(), r4["conflicts"].as_i64()), (Some(1), Some(2)), "{r4}");
    assert_ne!(person_of("H4", "n-1"), Some(p));
    assert_eq!(
        count("SELECT count(*) FROM medanon.link_conflict WHERE local_patient_id = 'n-1' AND status = 'pending'
                 AND reason LIKE '%a name missing%'"),
        2
    );
}

/// Two persons that a later record proves to be one merge into the older id,
/// and the merge is logged; the older id never changes.
#[pg_test]
fn a_bridging_record_merges_into_the_older_person() {
    staging_kanji(
        "pg_temp.b1",
        &[
            ["H1", "A", "ヤマダハナコ", "", "1980-05-05", "2", "", "", ""],
            ["H2", "B", "", "山田 花子", "1980-05-05", "2", "01234567", "77", "1"],
        ],
    );
    link("pg_temp.b1");
    let (a, b) = (person_of("H1", "A").unwrap(), person_of("H2", "B").unwrap());
    assert_ne!(a, b);
    // C has A's kana name (ID2) and B's card and kanji name (ID1, names agree).
    staging_kanji("pg_temp.b2", &[["H3", "C", "ﾔﾏﾀﾞ ﾊﾅｺ", "山田　花子", "1980/5/5", "F", "01234567", "77", "1"]]);
    let r = link("pg_temp.b2");
    assert_eq!(r["merges"].as_i64(), Some(1));
    let older = a.min(b);
    for (inst, local) in [("H1", "A"), ("H2", "B"), ("H3", "C")] {
        assert_eq!(person_of(inst, local), Some(older), "{inst}/{local}");
    }
    assert_eq!(
        count(&format!(
            "SELECT count(*) FROM medanon.person_merge_log WHERE from_person_id = {} AND into_person_id = {older}
               AND institution_code = 'H3' AND local_patient_id = 'C'",
            a.max(b)
        )),
        1
    );
    assert_eq!(count(&format!("SELECT count(*) FROM medanon.person WHERE person_id = {} AND merged_into = {older}", a.max(b))), 1);
}

/// Twins of one sex on a family card share ID1; different kana names keep them
/// apart, as a conflict, also when they arrive in separate batches.
#[pg_test]
fn twins_on_one_card_are_a_conflict_not_a_merge() {
    staging(
        "pg_temp.b1",
        &[
            ["H1", "T1", "スズキイチロウ", "2010-07-07", "1", "06999999", "5", "10"],
            ["H1", "T2", "スズキジロウ", "2010-07-07", "1", "06999999", "5", "10"],
        ],
    );
    let r = link("pg_temp.b1");
    assert_eq!(r["new_persons"].as_i64(), Some(2));
    assert_eq!(r["conflicts"].as_i64(), Some(1));
    assert_ne!(person_of("H1", "T1"), person_of("H1", "T2"));
    // Jiro at another hospital: same card, same name, joins Jiro only.
    staging("pg_temp.b2", &[["H2", "J", "すずき じろう", "H22.7.7", "男", "06999999", "5", "10"]]);
    link("pg_temp.b2");
    assert_eq!(person_of("H2", "J"), person_of("H1", "T2"));
    assert_eq!(count("SELECT count(*) FROM medanon.link_conflict"), 2);
    assert_eq!(count("SELECT count(*) FROM medanon.person_merge_log"), 0);
}

/// Re-running a batch changes nothing: no table gains or changes a row.
#[pg_test]
fn rerunning_a_batch_changes_nothing() {
    staging(
        "pg_temp.b1",
        &[
            ["H1", "1", "タナカケイコ", "1960-01-01", "2", "06111111", "1", "1"],
            ["H1", "2", "タナカタロウ", "1960-01-01", "2", "06111111", "1", "1"],
            ["H2", "1", "ﾀﾅｶ ｹｲｺ", "1960-01-01", "F", "", "", ""],
            ["H2", "2", "", "不明", "F", "", "", ""],
            ["H3", "1", "タナカケイゴ", "1960-01-01", "2", "01999999", "1", "2"],
        ],
    );
    link("pg_temp.b1");
    let snapshot = "SELECT md5(string_agg(t, '|' ORDER BY t)) FROM (
        SELECT 'l' || l::text AS t FROM (SELECT institution_code, local_patient_id, person_id, id1, id2, block, name_clk, updated_at FROM medanon.person_link) l
        UNION ALL SELECT 'p' || p::text FROM medanon.person p
        UNION ALL SELECT 'm' || m::text FROM medanon.person_merge_log m
        UNION ALL SELECT 'c' || c::text FROM medanon.link_conflict c
        UNION ALL SELECT 'q' || q::text FROM medanon.link_quarantine q
        UNION ALL SELECT 'k' || k::text FROM medanon.link_candidates k) s";
    let before = Spi::get_one::<String>(snapshot).unwrap();
    let again = link("pg_temp.b1");
    assert_eq!(Spi::get_one::<String>(snapshot).unwrap(), before);
    assert_eq!(again["unchanged"].as_i64(), Some(4));
    assert_eq!(again["new_persons"].as_i64(), Some(0));
    assert_eq!(again["records_in"].as_i64(), Some(5));
    assert_eq!(again["quarantined"].as_i64(), Some(1));
}

/// What cannot be linked is quarantined with its reason and its raw record, and
/// records in = linked + quarantined.
#[pg_test]
fn unlinkable_records_are_quarantined_with_their_reason() {
    staging(
        "pg_temp.b1",
        &[
            ["H1", "ok", "イトウマコト", "1990-02-03", "1", "", "", ""],
            ["H1", "bad-date", "イトウマコト", "平成31年5月1日", "1", "", "", ""],
            ["H1", "no-date", "イトウマコト", "", "1", "", "", ""],
            ["H1", "no-sex", "イトウマコト", "1990-02-03", "", "", "", ""],
            ["H1", "odd-sex", "イトウマコト", "1990-02-03", "X", "", "", ""],
            ["H1", "no-keys", "", "1990-02-03", "1", "06123456", "", "1"],
            ["NULL", "orphan", "イトウマコト", "1990-02-03", "1", "", "", ""],
            ["H1", "dup", "イトウマコト", "1990-02-03", "1", "", "", ""],
            ["H1", "dup", "イトウマコト", "1990-02-03", "1", "", "", ""],
            ["H1", "clash", "イトウマコト", "1990-02-03", "1", "", "", ""],
            ["H1", "clash", "サトウマコト", "1990-02-03", "1", "", "", ""],
        ],
    );
    let r = link("pg_temp.b1");
    assert_eq!(r["records_in"].as_i64(), Some(11));
    assert_eq!(r["linked"].as_i64().unwrap() + r["quarantined"].as_i64().unwrap(), 11);
    assert_eq!(r["quarantined"].as_i64(), Some(7));
    let reasons = Spi::get_one::<String>(
        "SELECT string_agg(coalesce(local_patient_id, '?') || ':' || reason, '; ' ORDER BY local_patient_id, reason)
           FROM medanon.link_quarantine",
    )
    .unwrap()
    .unwrap();
    assert_eq!(
        reasons,
        "bad-date:unparseable birth date; clash:conflicting duplicate in batch; \
         no-date:unparseable birth date; no-keys:no link key: no kana name and no complete insurance card; \
         no-sex:missing sex; odd-sex:unrecognized sex code; orphan:missing institution_code or local_patient_id"
    );
    // The raw record is kept, so it can be corrected and linked again.
    let kept = Spi::get_one::<String>(
        "SELECT record->>'birth_date' FROM medanon.link_quarantine WHERE local_patient_id = 'bad-date'",
    )
    .unwrap();
    assert_eq!(kept.as_deref(), Some("平成31年5月1日"));
    // The two identical copies are one linked record.
    assert_eq!(count("SELECT count(*) FROM medanon.person_link WHERE local_patient_id = 'dup'"), 1);
    let in_ledger = Spi::get_two::<i64, i64>(
        "SELECT records_in, linked + quarantined FROM medanon.link_batch ORDER BY batch_id DESC LIMIT 1",
    )
    .unwrap();
    assert_eq!(in_ledger, (Some(11), Some(11)));
}

/// A typo in the kana name and a new insurance card break both exact keys; the
/// pair is proposed as a fuzzy candidate, not merged.
#[pg_test]
fn typo_and_new_card_give_a_candidate() {
    staging(
        "pg_temp.b1",
        &[
            ["H1", "1", "コバヤシケンイチ", "1970-10-10", "1", "06123456", "1", "1"],
            ["H2", "1", "コバヤツケンイチ", "1970-10-10", "1", "01765432", "9", "9"],
            ["H3", "1", "ナカムラマナブ", "1970-10-10", "1", "06555555", "2", "2"],
        ],
    );
    let r = link("pg_temp.b1");
    assert_eq!(r["new_persons"].as_i64(), Some(3));
    assert_eq!(r["candidates"].as_i64(), Some(1));
    let pair = Spi::get_two::<String, String>(
        "SELECT institution_code, other_institution_code FROM medanon.link_candidates WHERE status = 'pending'",
    )
    .unwrap();
    assert_eq!(pair, (Some("H1".into()), Some("H2".into())));
    let report = Spi::get_one::<pgrx::JsonB>("SELECT medanon.link_report()").unwrap().unwrap().0;
    assert_eq!(report["candidates_pending"].as_i64(), Some(1));
    assert_eq!(report["persons"].as_i64(), Some(3));
}

/// A staging table without the columns link_patients reads is refused up front.
#[pg_test]
fn staging_without_the_columns_is_refused() {
    Spi::run("CREATE TABLE pg_temp.thin (institution_code text, local_patient_id text)").unwrap();
    check(&[("medanon.link_patients('pg_temp.thin')", Fails("42703"))]);
    assert_eq!(count("SELECT count(*) FROM medanon.link_batch"), 0);
}

/// No plaintext identifier reaches person_link: its key columns are HMACs.
#[pg_test]
fn person_link_holds_no_plaintext() {
    staging("pg_temp.b1", &[["H1", "1", "ワタナベアイ", "1999-09-09", "2", "06123456", "12", "34"]]);
    link("pg_temp.b1");
    let row = Spi::get_one::<String>("SELECT l::text FROM medanon.person_link l").unwrap().unwrap();
    for plain in ["ワタナベ", "06123456", "1999"] {
        // In the text columns as text; in the binary ones (bytea, uuid) as bytes:
        // their hex text holds random digit runs such as 1999 by chance.
        let text = Spi::get_one::<String>(
            "SELECT concat_ws('|', institution_code, local_patient_id, person_id, block, linked_at, updated_at) FROM medanon.person_link",
        )
        .unwrap()
        .unwrap();
        assert!(!text.contains(plain), "{plain} in {row}");
        let in_bytes = Spi::get_one_with_args::<bool>(
            "SELECT bool_or(position(convert_to($1, 'UTF8') IN b) > 0) FROM medanon.person_link l,
                    unnest(ARRAY[l.name_clk, l.name_edits, uuid_send(l.id1), uuid_send(l.id2), uuid_send(l.kanji),
                                 uuid_send(l.digest)]) AS b",
            &[plain.into()],
        )
        .unwrap();
        assert_eq!(in_bytes, Some(false), "{plain} in {row}");
    }
}

/// A trigger that drops rows inserted into medanon.person cannot make
/// link_patients link records to a person that does not exist (before, to person
/// 0): it is refused with 55000, and nothing is linked.
#[pg_test]
fn persons_that_were_not_created_are_refused_not_invented() {
    // link_patients' lock first, as link_patients takes it: the pg_tests run in
    // concurrent sessions, and a trigger created on medanon.person before it
    // deadlocked with another test's link_patients (which holds it and inserts persons).
    Spi::run(
        "LOCK TABLE medanon.person_link IN SHARE ROW EXCLUSIVE MODE;
         CREATE FUNCTION pg_temp.swallow() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NULL; END $$;
         CREATE TRIGGER swallow BEFORE INSERT ON medanon.person FOR EACH ROW EXECUTE FUNCTION pg_temp.swallow();",
    )
    .unwrap();
    staging(
        "pg_temp.b1",
        &[
            ["H1", "1", "ヤマモトアキラ", "1985-04-04", "1", "", "", ""],
            ["H1", "2", "ヤマモトサクラ", "1987-08-08", "2", "", "", ""],
        ],
    );
    check(&[("medanon.link_patients('pg_temp.b1')", Fails("55000"))]);
    assert_eq!(count("SELECT count(*) FROM medanon.person_link"), 0);
    assert_eq!(count("SELECT count(*) FROM medanon.link_batch"), 0);
    // Without the trigger, the same batch links.
    Spi::run("DROP TRIGGER swallow ON medanon.person").unwrap();
    assert_eq!(link("pg_temp.b1")["new_persons"].as_i64(), Some(2));
    assert_eq!(count("SELECT count(*) FROM medanon.person_link WHERE person_id > 0"), 2);
}

// --- Linkage v2: kanji and one-edit evidence, review ------------------------------

/// A staging table with the kanji name, from rows of (institution, local id,
/// kana, kanji, birth date, sex, insurer, symbol, number).
fn staging_kanji(name: &str, rows: &[[&str; 9]]) {
    staging(name, &[]);
    for r in rows {
        let v: Vec<String> = r
            .iter()
            .map(|f| if *f == "NULL" { "NULL".to_string() } else { format!("'{}'", f.replace('\'', "''")) })
            .collect();
        Spi::run(&format!(
            "INSERT INTO {name} (institution_code, local_patient_id, name_kana, name_kanji, birth_date, sex,
                                 insurer_number, insured_symbol, insured_number) VALUES ({})",
            v.join(", ")
        ))
        .unwrap();
    }
}

fn status_of_conflict(inst: &str, local: &str, other_inst: &str, other_local: &str) -> Option<String> {
    Spi::get_one_with_args::<String>(
        "SELECT status FROM medanon.link_conflict
          WHERE (institution_code, local_patient_id, other_institution_code, other_local_patient_id) IN (($1, $2, $3, $4), ($3, $4, $1, $2))",
        &[inst.into(), local.into(), other_inst.into(), other_local.into()],
    )
    .unwrap()
}

/// The three card rules, each in one batch and across batches: a kana typo with
/// the same kanji name is one person; different kanji names are twins, decided and
/// never merged; a typo without a kanji name stays a conflict for review.
#[pg_test]
fn a_card_with_two_kana_names_is_resolved_by_the_kanji_name() {
    let card = ["06123456", "77", "8"];
    let row = |inst: &'static str, local: &'static str, kana: &'static str, kanji: &'static str| {
        [inst, local, kana, kanji, "1980-04-01", "1", card[0], card[1], card[2]]
    };
    staging_kanji(
        "pg_temp.b1",
        &[
            row("H1", "typo-a", "ハヤシケンイチ", "林 健一"),
            row("H2", "typo-b", "ﾊﾔｼ ｹﾝｷﾁ", "林　健一"),   // one substitution, same kanji
            row("H3", "twin", "ハヤシケンジ", "林 健二"),     // the twin: another given name
            row("H4", "nokanji", "ハヤシケンイツ", ""),       // a typo, but no kanji name
            row("H5", "onlykanji", "", "林 健一"),            // no kana, the first one's kanji
        ],
    );
    let r = link("pg_temp.b1");
    let ken = person_of("H1", "typo-a").unwrap();
    assert_eq!(person_of("H2", "typo-b"), Some(ken), "typo with the same kanji: one person");
    assert_eq!(person_of("H5", "onlykanji"), Some(ken), "no kana, same kanji: joins that twin");
    let twin = person_of("H3", "twin").unwrap();
    assert_ne!(twin, ken, "twins are never merged");
    let unknown = person_of("H4", "nokanji").unwrap();
    assert!(unknown != ken && unknown != twin, "missing kanji: not merged");
    assert_eq!(status_of_conflict("H1", "typo-a", "H3", "twin").as_deref(), Some("different"));
    assert_eq!(status_of_conflict("H1", "typo-a", "H4", "nokanji").as_deref(), Some("pending"));
    assert_eq!(status_of_conflict("H3", "twin", "H4", "nokanji").as_deref(), Some("pending"));
    assert!(r["twins"].as_i64().unwrap() >= 3, "{r}");
    assert_eq!(r["new_persons"].as_i64(), Some(3));
    // A later batch: the twin's typo, with its kanji name, joins the twin only.
    staging_kanji("pg_temp.b2", &[row("H6", "twin-typo", "ハヤシケソジ", "林 健二")]);
    link("pg_temp.b2");
    assert_eq!(person_of("H6", "twin-typo"), Some(twin));
    assert_eq!(count("SELECT count(*) FROM medanon.person_merge_log"), 0);
    // Kanji variants fold (髙/高 and 﨑/崎 are one name): a typo with the variant joins.
    staging_kanji(
        "pg_temp.b3",
        &[
            ["H1", "v1", "タカハシアキラ", "髙橋 昭", "1950-01-01", "1", "01234567", "1", "1"],
            ["H2", "v2", "タカハツアキラ", "高橋 昭", "1950-01-01", "1", "01234567", "1", "1"],
        ],
    );
    link("pg_temp.b3");
    assert_eq!(person_of("H1", "v1"), person_of("H2", "v2"));
    // The new columns hold no plaintext either.
    for plain in ["高橋", "髙橋", "タカハシ", "1950"] {
        let found = Spi::get_one_with_args::<bool>(
            "SELECT bool_or(position(convert_to($1, 'UTF8') IN b) > 0)
                    OR bool_or(concat_ws('|', l.institution_code, l.local_patient_id, l.block) LIKE '%' || $1 || '%')
               FROM medanon.person_link l,
                    unnest(ARRAY[l.name_clk, l.name_edits, uuid_send(l.id1), uuid_send(l.id2), uuid_send(l.kanji),
                                 uuid_send(l.digest)]) AS b
              WHERE l.local_patient_id = 'v1'",
            &[plain.into()],
        )
        .unwrap();
        assert_eq!(found, Some(false), "{plain} in person_link");
    }
}

fn pending(kind: &str) -> Vec<i64> {
    let report = Spi::get_one::<pgrx::JsonB>("SELECT medanon.link_report()").unwrap().unwrap().0;
    report["pending"][format!("{kind}s")]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            assert_eq!(c["kind"].as_str(), Some(kind));
            c["id"].as_i64().unwrap()
        })
        .collect()
}

/// review_link: same merges (logged with who and why), different keeps two
/// persons apart in every later batch, and neither is undone by a re-run.
#[pg_test]
fn review_decisions_merge_or_keep_apart_and_survive_a_rerun() {
    staging_kanji(
        "pg_temp.b1",
        &[
            // A conflict: one card, kana typo, no kanji names.
            ["H1", "a", "サトウタロウ", "", "1975-03-01", "1", "06111111", "1", "1"],
            ["H2", "b", "サトウタロ", "", "1975-03-01", "1", "06111111", "1", "1"],
            // A candidate: similar names, other cards.
            ["H1", "c", "コバヤシケンイチ", "", "1970-10-10", "1", "06123456", "1", "1"],
            ["H2", "d", "コバヤツケンイチ", "", "1970-10-10", "1", "01765432", "9", "9"],
        ],
    );
    link("pg_temp.b1");
    let conflicts = pending("conflict");
    // Two candidates: c and d, and also a and b (similar names, one block).
    assert_eq!((conflicts.len(), pending("candidate").len()), (1, 2));
    let candidates = vec![count("SELECT candidate_id FROM medanon.link_candidates WHERE local_patient_id = 'c'")];
    let (a, b) = (person_of("H1", "a").unwrap(), person_of("H2", "b").unwrap());
    let r = Spi::get_one_with_args::<pgrx::JsonB>(
        "SELECT medanon.review_link('conflict', $1, 'same', 'dr. sato', 'one card, kana typo')",
        &[conflicts[0].into()],
    )
    .unwrap()
    .unwrap()
    .0;
    assert_eq!(r["merged_into"].as_i64(), Some(a.min(b)));
    assert_eq!(person_of("H2", "b"), person_of("H1", "a"));
    assert_eq!(count("SELECT count(*) FROM medanon.person_merge_log WHERE source LIKE 'review_link conflict%'"), 1);
    Spi::run(&format!(
        "SELECT medanon.review_link('candidate', {}, 'different', 'dr. sato', 'different persons, checked the charts')",
        candidates[0]
    ))
    .unwrap();
    assert!(pending("conflict").is_empty() && pending("candidate").is_empty());
    assert_eq!(
        count("SELECT count(*) FROM medanon.link_review WHERE reviewer = 'dr. sato' AND reason <> '' AND reviewed_by = session_user"),
        2
    );
    // The log is append-only.
    Spi::run(
        "CREATE FUNCTION pg_temp.edit_log() RETURNS bigint LANGUAGE sql AS
           $$ UPDATE medanon.link_review SET reason = 'x' RETURNING review_id $$;
         CREATE FUNCTION pg_temp.drop_log() RETURNS bigint LANGUAGE sql AS
           $$ DELETE FROM medanon.link_review RETURNING review_id $$;",
    )
    .unwrap();
    check(&[("pg_temp.edit_log()", Fails("42501")), ("pg_temp.drop_log()", Fails("42501"))]);
    // Re-run, with every record written a little differently so it is keyed again
    // (sex as M, not 1): nothing changes back.
    Spi::run("UPDATE pg_temp.b1 SET sex = 'M'").unwrap();
    assert_eq!(link("pg_temp.b1")["unchanged"].as_i64(), Some(4));
    assert_eq!(person_of("H2", "b"), Some(a.min(b)));
    let (c, d) = (person_of("H1", "c").unwrap(), person_of("H2", "d").unwrap());
    assert_ne!(c, d);
    // H1 corrects c's kana to d's: its ID2 now points at d's person, its prior
    // link at c's. The decision holds, and the batch says it kept two apart.
    staging_kanji("pg_temp.b2", &[["H1", "c", "コバヤツケンイチ", "", "1970-10-10", "1", "06123456", "1", "1"]]);
    let r = link("pg_temp.b2");
    assert!(r["kept_apart"].as_i64() > Some(0), "{r}");
    assert_ne!(person_of("H1", "c"), person_of("H2", "d"));
    assert_eq!(count("SELECT count(*) FROM medanon.person_merge_log WHERE source NOT LIKE 'review_link%'"), 0);
    // Deciding twice is refused.
    let twice = format!("medanon.review_link('candidate', {}, 'same', 'x', 'y')", candidates[0]);
    check(&[(twice.as_str(), Fails("55000"))]);
}

/// split_person moves records to a new person, keeps the two apart in later
/// batches, and logs it; bad arguments are refused with their SQLSTATE.
#[pg_test]
fn split_person_undoes_a_wrong_merge() {
    // Two persons wrongly merged: namesakes (one kana name, birth date and sex: one ID2).
    staging_kanji(
        "pg_temp.b1",
        &[
            ["H1", "x", "ヤマダハナコ", "", "1980-05-05", "2", "01234567", "7", "1"],
            ["H2", "y", "ヤマダハナコ", "", "1980-05-05", "2", "", "", ""],
            ["H3", "z", "ﾔﾏﾀﾞ ﾊﾅｺ", "", "1980-05-05", "2", "", "", ""],
        ],
    );
    link("pg_temp.b1");
    let p = person_of("H1", "x").unwrap();
    assert_eq!(person_of("H2", "y"), Some(p));
    let new = Spi::get_one_with_args::<i64>(
        "SELECT medanon.split_person($1, ARRAY['H2'], ARRAY['y'], 'dr. ito', 'the mother, not the patient')",
        &[p.into()],
    )
    .unwrap()
    .unwrap();
    assert_ne!(new, p);
    assert_eq!(person_of("H2", "y"), Some(new));
    assert_eq!((person_of("H1", "x"), person_of("H3", "z")), (Some(p), Some(p)));
    assert_eq!(count(&format!("SELECT count(*) FROM medanon.link_review WHERE action = 'split' AND person_id = {p} AND other_person_id = {new}")), 1);
    // A re-run, keyed again (sex as F, not 2), does not merge them again.
    Spi::run("UPDATE pg_temp.b1 SET sex = 'F'").unwrap();
    let r = link("pg_temp.b1");
    assert!(r["kept_apart"].as_i64() > Some(0), "{r}");
    assert_eq!(person_of("H2", "y"), Some(new));
    assert_ne!(person_of("H1", "x"), Some(new));
    let p_s = p.to_string();
    let cases: Vec<(String, &str)> = vec![
        (format!("medanon.split_person({p_s}, ARRAY['H1', 'H3'], ARRAY['x', 'z'], 'r', 'why')"), "22023"), // nothing left
        (format!("medanon.split_person({p_s}, ARRAY['H2'], ARRAY['y'], 'r', 'why')"), "22023"), // not its record
        (format!("medanon.split_person({p_s}, ARRAY['H1'], ARRAY['x', 'z'], 'r', 'why')"), "22023"),
        (format!("medanon.split_person({p_s}, ARRAY[]::text[], ARRAY[]::text[], 'r', 'why')"), "22023"),
        (format!("medanon.split_person({p_s}, ARRAY['H1'], ARRAY['x'], '', 'why')"), "22023"),
        (format!("medanon.split_person({p_s}, ARRAY['H1'], ARRAY['x'], 'r', NULL)"), "22023"),
        ("medanon.split_person(NULL, ARRAY['H1'], ARRAY['x'], 'r', 'why')".to_string(), "22023"),
        ("medanon.split_person(987654, ARRAY['H1'], ARRAY['x'], 'r', 'why')".to_string(), "42704"),
        ("medanon.review_link('conflict', 987654, 'same', 'r', 'why')".to_string(), "42704"),
        ("medanon.review_link('conflicts', 1, 'same', 'r', 'why')".to_string(), "22023"),
        ("medanon.review_link('candidate', 1, 'maybe', 'r', 'why')".to_string(), "22023"),
        ("medanon.review_link('candidate', NULL, 'same', 'r', 'why')".to_string(), "22023"),
        ("medanon.review_link('candidate', 1, 'same', NULL, 'why')".to_string(), "22023"),
    ];
    let cases: Vec<(&str, super::Expect)> = cases.iter().map(|(sql, code)| (sql.as_str(), Fails(code))).collect();
    check(&cases);
}

/// A re-run of an unchanged batch keys nothing again (its digests match), and a
/// changed record is keyed again.
#[pg_test]
fn an_unchanged_record_is_not_keyed_again() {
    staging_kanji(
        "pg_temp.b1",
        &[
            ["H1", "1", "イノウエマコト", "井上 誠", "1991-01-01", "1", "", "", ""],
            ["H1", "2", "イノウエアイ", "井上 愛", "1992-01-01", "2", "", "", ""],
        ],
    );
    link("pg_temp.b1");
    let r = link("pg_temp.b1");
    assert_eq!(r["unchanged"].as_i64(), Some(2));
    assert_eq!(count("SELECT count(*) FROM pg_temp.medanon_link_batch WHERE skip AND id2 IS NULL"), 2);
    Spi::run("UPDATE pg_temp.b1 SET name_kana = 'イノウエマコ' WHERE local_patient_id = '1'").unwrap();
    let before = Spi::get_one::<pgrx::Uuid>("SELECT id2 FROM medanon.person_link WHERE local_patient_id = '1'").unwrap();
    let r = link("pg_temp.b1");
    assert_eq!(r["unchanged"].as_i64(), Some(1));
    let after = Spi::get_one::<pgrx::Uuid>("SELECT id2 FROM medanon.person_link WHERE local_patient_id = '1'").unwrap();
    assert_ne!(before, after);
}
