//! Link: one stable person id for the records of one patient across institutions
//! (名寄せ), from keyed link keys, never from plaintext.
//!
//! `link_patients(staging)` runs in four steps, each set-based:
//!
//! 1. **Key** (as the caller, who must be able to read the staging table): every
//!    staging row becomes a row of a temporary batch table with its reason for
//!    quarantine, or its keys ID1, ID2, block, name CLK, kanji name and name edits
//!    (`keys`); over a distributed Citus staging table, the keys are computed on
//!    the workers (`Keying::OnWorkers`).
//! 2. **Group** (`medanon_core::link_group`): batch records and the existing
//!    persons they touch are joined in a union-find over equal ID2, and over equal
//!    ID1 where the records' names agree (a card may be a family card, shared by
//!    twins). The rest of a card's pairs are recorded as twins or conflicts,
//!    never merged. The glue reads the keys and writes what the core decides.
//! 3. **Write** (as the extension owner): new persons, merges into the oldest id
//!    (logged), upserts into `person_link`, quarantine rows, conflicts.
//! 4. **Propose**: fuzzy candidates by Dice similarity of name CLKs within blocks
//!    of equal birth date and sex, for records that started a new person.
//!
//! Re-running a batch changes nothing: every write is an upsert or an insert that
//! skips what is already there. Concurrent runs are serialized by a lock on
//! `person_link`; readers are not blocked.

pub mod keys;
pub mod normalize;
pub mod review;

use crate::error::{raise, spi_failed};
use crate::gucs::LINK_CANDIDATE_THRESHOLD;
use crate::definer::{as_owner, with_safe_search_path};
use crate::keyring::keyring_and_owner;
use medanon_core::link::{candidates, NameRecord};
use medanon_core::link_group::{self, Assignment, BatchRecord, CardHolder, Grouping, PersonIdCount, PriorLink};
use pgrx::prelude::*;
use pgrx::spi::{quote_identifier, SpiClient, SpiError};
use pgrx::{pg_sys, JsonB, PgSqlErrorCode};

/// The staging columns link_patients reads; any others are ignored.
const REQUIRED_COLUMNS: [&str; 8] = [
    "institution_code",
    "local_patient_id",
    "name_kana",
    "birth_date",
    "sex",
    "insurer_number",
    "insured_symbol",
    "insured_number",
];

fn key_of(uuid: Option<pgrx::Uuid>) -> Option<link_group::Key> {
    uuid.map(|u| *u)
}

/// The staging column with the kanji name: optional, as older staging tables
/// lack it; without it, no record carries kanji evidence.
const KANJI_COLUMN: &str = "name_kanji";

/// The staging relation's qualified name, after checking it has every column we
/// read, and whether it has the kanji name.
fn staging_name(staging: pg_sys::Oid) -> (String, bool) {
    let relation = crate::catalog::describe(staging);
    let missing: Vec<&str> = REQUIRED_COLUMNS.iter().copied().filter(|c| !relation.columns.contains(*c)).collect();
    if !missing.is_empty() {
        raise(
            PgSqlErrorCode::ERRCODE_UNDEFINED_COLUMN,
            format!("staging relation \"{}\" lacks columns link_patients reads", relation.display),
            Some(format!("missing: {}", missing.join(", "))),
            Some(format!(
                "a staging table needs the text columns {} (and may have {KANJI_COLUMN})",
                REQUIRED_COLUMNS.join(", ")
            )),
        );
    }
    let has_kanji = relation.columns.contains(KANJI_COLUMN);
    (relation.qualified, has_kanji)
}

/// Where the link keys are computed.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Keying {
    /// On this node, from the batch table, for the records whose digest changed.
    Here,
    /// On the Citus workers, where the staging table's shards are: one statement
    /// over the distributed table computes every row's keys there (keying is most
    /// of a first link's cost, and each row's keys depend on that row alone), and
    /// only the results travel to the coordinator. Every row is keyed, changed or
    /// not: a re-run still skips grouping and writing the unchanged ones.
    OnWorkers,
}

/// Whether `staging` is a hash-distributed Citus table (its rows are on the
/// workers). Without Citus, never.
fn keying_for(staging: pg_sys::Oid) -> Keying {
    if !crate::citus::present() {
        return Keying::Here;
    }
    let distributed = Spi::get_one_with_args::<bool>(
        "SELECT EXISTS (SELECT FROM pg_catalog.pg_dist_partition
                         WHERE logicalrelid OPERATOR(pg_catalog.=) $1 AND partmethod OPERATOR(pg_catalog.=) 'h')",
        &[staging.into()],
    );
    match distributed {
        Ok(Some(true)) => Keying::OnWorkers,
        _ => Keying::Here,
    }
}

/// Step 1, as the caller: the batch table, one row per staging row.
///
/// Two passes, so that every join with `person_link` is planned with statistics
/// on both sides whatever the staging table's: `medanon_link_raw` holds the
/// fields as sent, their keyed digest and the reason for quarantine, and is
/// ANALYZEd; the batch table then joins it with `person_link` by primary key and
/// keys only the records whose digest changed (a re-run of an unchanged batch
/// computes no link key at all). When `person_link` holds no record yet (a first
/// link), there is nothing to probe, and no record is skipped.
///
/// Over a distributed staging table (`Keying::OnWorkers`), a first statement
/// computes every row's digest, reason and keys on the workers into
/// `medanon_link_keyed`, whose columns carry the staging columns' names, and the
/// two passes read that table instead, with the keys as columns.
fn build_batch(staging: &str, has_kanji: bool, keying: Keying) {
    let c = |name: &str| format!("s.{}::text", quote_identifier(name));
    let (inst, local, kana, birth, sex) =
        (c("institution_code"), c("local_patient_id"), c("name_kana"), c("birth_date"), c("sex"));
    let (insurer, symbol, number) = (c("insurer_number"), c("insured_symbol"), c("insured_number"));
    // The kanji name in the staging table, and in the table pass 1 reads (the
    // keyed table always has the column).
    let kanji_in = if has_kanji { c(KANJI_COLUMN) } else { "NULL::text".to_string() };
    let kanji = if keying == Keying::OnWorkers { c(KANJI_COLUMN) } else { kanji_in.clone() };
    let digest_call = format!("medanon._link_digest({inst}, {local}, {kana}, {kanji_in}, {birth}, {sex}, {insurer}, {symbol}, {number})");
    let problem_call = format!("medanon._link_problem({inst}, {local}, {kana}, {birth}, {sex}, {insurer}, {symbol}, {number})");
    let mut sql = String::new();
    // (source of pass 1, digest, problem, the raw row as jsonb [inner, outer], key columns [inner, outer])
    let (source, digest, problem, srow, outer_record, keys_in, keys_out);
    match keying {
        Keying::Here => {
            source = format!("{staging} AS s");
            (digest, problem) = (digest_call, problem_call);
            srow = "s AS srow".to_string();
            outer_record = "pg_catalog.to_jsonb(k.srow)".to_string();
            (keys_in, keys_out) = (String::new(), String::new());
        }
        Keying::OnWorkers => {
            let pass = |col: &str, v: &str| format!("{v} AS {}", quote_identifier(col));
            // A plain projection of the distributed table: Citus runs it on every
            // shard, keys included. A record's raw form is kept only when it may not
            // be linked; a conflicting duplicate (known only here, on the
            // coordinator) keeps the fields link_patients read.
            sql.push_str(&format!(
                "CREATE TEMP TABLE medanon_link_keyed ON COMMIT DROP AS
                 SELECT {}, {}, {}, {}, {}, {}, {}, {}, {},
                        {digest_call} AS medanon_digest, {problem_call} AS medanon_problem,
                        CASE WHEN {problem_call} IS NOT NULL THEN pg_catalog.to_jsonb(s) END AS medanon_record,
                        medanon._link_id1({insurer}, {symbol}, {number}, {birth}, {sex}) AS medanon_id1,
                        medanon._link_id2({kana}, {birth}, {sex}) AS medanon_id2,
                        medanon._link_block({birth}, {sex}) AS medanon_block,
                        medanon._link_clk({kana}) AS medanon_clk,
                        medanon._link_kanji({kanji_in}, {birth}, {sex}) AS medanon_kanji,
                        medanon._link_edits({kana}, {birth}, {sex}) AS medanon_edits
                   FROM {staging} AS s;
                 ",
                pass("institution_code", &inst),
                pass("local_patient_id", &local),
                pass("name_kana", &kana),
                pass(KANJI_COLUMN, &kanji_in),
                pass("birth_date", &birth),
                pass("sex", &sex),
                pass("insurer_number", &insurer),
                pass("insured_symbol", &symbol),
                pass("insured_number", &number),
            ));
            source = "pg_temp.medanon_link_keyed AS s".to_string();
            (digest, problem) = ("s.medanon_digest".to_string(), "s.medanon_problem".to_string());
            srow = "s.medanon_record AS srow".to_string();
            outer_record = format!(
                "coalesce(k.srow, pg_catalog.jsonb_build_object('institution_code', k.inst, 'local_patient_id', k.local,
                    'name_kana', k.kana, '{KANJI_COLUMN}', k.kanji, 'birth_date', k.birth, 'sex', k.sex,
                    'insurer_number', k.insurer, 'insured_symbol', k.symbol, 'insured_number', k.number))"
            );
            keys_in = ", s.medanon_id1 AS id1, s.medanon_id2 AS id2, s.medanon_block AS block, s.medanon_clk AS clk,
                       s.medanon_kanji AS kanji_key, s.medanon_edits AS edits"
                .to_string();
            keys_out = ", k.id1, k.id2, k.block, k.clk, k.kanji_key, k.edits".to_string();
        }
    }
    let key = |function: &str, column: &str| match keying {
        Keying::Here => format!("CASE WHEN k.keyed THEN medanon.{function} END"),
        Keying::OnWorkers => format!("CASE WHEN k.keyed THEN k.{column} END"),
    };
    let (id1, id2, block, clk, kanji_key, edits) = (
        key("_link_id1(k.insurer, k.symbol, k.number, k.birth, k.sex)", "id1"),
        key("_link_id2(k.kana, k.birth, k.sex)", "id2"),
        key("_link_block(k.birth, k.sex)", "block"),
        key("_link_clk(k.kana)", "clk"),
        key("_link_kanji(k.kanji, k.birth, k.sex)", "kanji_key"),
        key("_link_edits(k.kana, k.birth, k.sex)", "edits"),
    );
    // Unchanged since it was keyed: a record sent once, whose digest is the stored one.
    // One primary-key probe per record, whatever the statistics (OFFSET 0 keeps the
    // planner from turning it into a scan of all of person_link): O(batch), not
    // O(linked records). Into an empty person_link, nothing to probe.
    let pass1 = format!(
        "SELECT k.rn, k.inst, k.local, k.kana, k.kanji, k.birth, k.sex, k.insurer, k.symbol, k.number,
                k.digest, k.problem, k.repeated{keys_out},
                -- Only records that may not be linked keep their raw form.
                CASE WHEN k.problem IS NOT NULL OR k.repeated THEN {outer_record} END AS record
           FROM (SELECT pg_catalog.row_number() OVER () AS rn, {inst} AS inst, {local} AS local,
                        {kana} AS kana, {kanji} AS kanji, {birth} AS birth, {sex} AS sex, {insurer} AS insurer,
                        {symbol} AS symbol, {number} AS number, {digest} AS digest, {problem} AS problem,
                        {srow}, d.inst IS NOT NULL AS repeated{keys_in}
                   FROM {source}
                   LEFT JOIN (SELECT {inst} AS inst, {local} AS local FROM {source}
                               GROUP BY 1, 2 HAVING pg_catalog.count(*) > 1) AS d
                     ON d.inst = {inst} AND d.local = {local}) AS k"
    );
    sql.push_str(&format!("CREATE TEMP TABLE medanon_link_raw ON COMMIT DROP AS {pass1}; ANALYZE pg_temp.medanon_link_raw;\n"));
    let skip = "SELECT r.*, NOT r.repeated AND r.problem IS NULL AND p.digest = r.digest AS skip0
           FROM pg_temp.medanon_link_raw r
           LEFT JOIN LATERAL (SELECT p.digest FROM medanon.person_link p
                               WHERE p.institution_code = r.inst AND p.local_patient_id = r.local
                              OFFSET 0) AS p ON true"
        .to_string();
    sql.push_str(&format!(
        "CREATE TEMP TABLE medanon_link_batch ON COMMIT DROP AS
         SELECT k.rn, k.inst, k.local, k.problem, k.repeated, k.record, k.digest, k.skip,
                k.problem IS NULL AND NOT k.repeated AS first_of_record,
                {id1} AS id1, {id2} AS id2, {block} AS block, {clk} AS clk, {kanji_key} AS kanji, {edits} AS edits
           FROM (SELECT r.*, r.problem IS NULL AND NOT coalesce(r.skip0, false) AS keyed,
                        coalesce(r.skip0, false) AS skip
                   FROM ({skip}) AS r) AS k;
         CREATE INDEX ON pg_temp.medanon_link_batch (rn);
         -- A record sent more than once in one batch: the first copy that can be
         -- linked is; a later copy with the same keys is the same record, and one
         -- with other keys is quarantined.
         UPDATE pg_temp.medanon_link_batch b SET first_of_record = true
           FROM (SELECT pg_catalog.min(rn) AS rn FROM pg_temp.medanon_link_batch
                  WHERE repeated AND problem IS NULL GROUP BY inst, local) AS f
          WHERE b.rn = f.rn;
         UPDATE pg_temp.medanon_link_batch b
            SET problem = 'conflicting duplicate in batch'
           FROM pg_temp.medanon_link_batch f
          WHERE b.repeated AND f.repeated AND f.first_of_record AND NOT b.first_of_record AND b.problem IS NULL
            AND f.inst = b.inst AND f.local = b.local
            AND (f.id1, f.id2, f.kanji) IS DISTINCT FROM (b.id1, b.id2, b.kanji);
         UPDATE pg_temp.medanon_link_batch SET record = NULL WHERE repeated AND problem IS NULL;
         ANALYZE pg_temp.medanon_link_batch;
         -- Filled by the grouping step, which runs as the extension owner and so
         -- may not create temporary objects itself.
         CREATE TEMP TABLE medanon_link_assign (rn bigint, person_id bigint, new_person boolean, linked_before boolean)
             ON COMMIT DROP;
         CREATE TEMP TABLE medanon_link_result (rn bigint, inst text, local text, id1 uuid, id2 uuid, block bigint,
             clk bytea, kanji uuid, edits bytea, digest uuid, person_id bigint, new_person boolean,
             linked_before boolean) ON COMMIT DROP;"
    ));
    // What an earlier call in this transaction left (ON COMMIT DROP waits for commit).
    let leftover = Spi::get_one::<bool>("SELECT pg_catalog.to_regclass('pg_temp.medanon_link_batch') IS NOT NULL");
    if leftover == Ok(Some(true)) {
        Spi::run(
            "DROP TABLE IF EXISTS pg_temp.medanon_link_result;
             DROP TABLE IF EXISTS pg_temp.medanon_link_assign;
             DROP TABLE IF EXISTS pg_temp.medanon_link_raw;
             DROP TABLE IF EXISTS pg_temp.medanon_link_keyed;
             DROP TABLE pg_temp.medanon_link_batch",
        )
        .unwrap_or_else(|e| spi_failed("link_patients could not drop the previous batch", e));
    }
    Spi::run(&sql).unwrap_or_else(|e| spi_failed("link_patients could not read the staging relation", e));
}

/// Step 2: reads the batch's keys and the linked records that share them; the
/// grouping itself is `medanon_core::link_group`. Records skipped as unchanged
/// take no part: their keys are in `person_link` already, where the queries
/// below find them for the records that did change.
fn group(client: &SpiClient<'_>, apart: &[(i64, i64)]) -> Result<Grouping, SpiError> {
    let mut batch = Vec::new();
    for r in client.select(
        "SELECT rn, id1, id2, kanji, edits FROM pg_temp.medanon_link_batch WHERE first_of_record AND NOT skip ORDER BY rn",
        None,
        &[],
    )? {
        // rn is a row_number(), never NULL.
        let Some(rn) = r.get::<i64>(1)? else { continue };
        batch.push(BatchRecord {
            rn,
            id1: key_of(r.get(2)?),
            id2: key_of(r.get(3)?),
            kanji: key_of(r.get(4)?),
            edits: r.get::<Vec<u8>>(5)?,
        });
    }
    // The record itself, linked before.
    let mut prior = Vec::new();
    for r in client.select(
        "SELECT b.rn, p.person_id,
                -- Keys, not the digest: a record written differently with the same
                -- keys is unchanged (its new digest is stored all the same).
                (p.id1, p.id2, p.block, p.name_clk, p.kanji, p.name_edits)
                IS NOT DISTINCT FROM (b.id1, b.id2, b.block, b.clk, b.kanji, b.edits)
           FROM pg_temp.medanon_link_batch b
           -- Every lookup into person_link below is a probe of one of its indexes per
           -- batch key (LATERAL ... OFFSET 0): a scan of all of person_link, which
           -- the planner prefers once person_link has statistics, made a 10k batch
           -- into 1M linked records 25 to 50 times slower than into an empty one.
           JOIN LATERAL (SELECT p.* FROM medanon.person_link p
                          WHERE p.institution_code = b.inst AND p.local_patient_id = b.local OFFSET 0) AS p ON true
          WHERE b.first_of_record AND NOT b.skip",
        None,
        &[],
    )? {
        let (Some(rn), Some(person)) = (r.get::<i64>(1)?, r.get::<i64>(2)?) else { continue };
        prior.push(PriorLink { rn, person, keys_unchanged: r.get::<bool>(3)?.unwrap_or(false) });
    }
    // Persons with a kana name (ID2) of the batch.
    let mut same_name = Vec::new();
    for r in client.select(
        "SELECT DISTINCT p.id2, p.person_id
           FROM (SELECT DISTINCT id2 FROM pg_temp.medanon_link_batch WHERE first_of_record AND NOT skip AND id2 IS NOT NULL) b
           JOIN LATERAL (SELECT p.id2, p.person_id FROM medanon.person_link p
                          WHERE p.id2 = b.id2 AND p.id2 IS NOT NULL OFFSET 0) AS p ON true",
        None,
        &[],
    )? {
        let (Some(k), Some(person)) = (key_of(r.get(1)?), r.get::<i64>(2)?) else { continue };
        same_name.push((k, person));
    }
    // Linked records with a card (ID1) of the batch.
    let mut same_card = Vec::new();
    for r in client.select(
        "SELECT p.id1, p.person_id, p.id2, p.institution_code, p.local_patient_id, p.kanji, p.name_edits
           FROM (SELECT DISTINCT id1 FROM pg_temp.medanon_link_batch WHERE first_of_record AND NOT skip AND id1 IS NOT NULL) b
           JOIN LATERAL (SELECT p.* FROM medanon.person_link p WHERE p.id1 = b.id1 AND p.id1 IS NOT NULL OFFSET 0) AS p ON true",
        None,
        &[],
    )? {
        let (Some(id1), Some(person), Some(institution), Some(local_id)) =
            (key_of(r.get(1)?), r.get::<i64>(2)?, r.get::<String>(4)?, r.get::<String>(5)?)
        else {
            continue;
        };
        same_card.push(CardHolder {
            id1,
            person,
            id2: key_of(r.get(3)?),
            kanji: key_of(r.get(6)?),
            edits: r.get::<Vec<u8>>(7)?,
            institution,
            local_id,
        });
    }
    Ok(link_group::group_apart(&batch, &prior, &same_name, &same_card, apart))
}

/// The persons that reviews decided are different (`link_apart`), as their
/// records' persons are now. Reviews are few: all of them are read.
fn apart_persons(client: &SpiClient<'_>) -> Result<Vec<(i64, i64)>, SpiError> {
    let mut out = Vec::new();
    for r in client.select(
        "SELECT DISTINCT a.person_id, b.person_id FROM medanon.link_apart x
           JOIN medanon.person_link a ON (a.institution_code, a.local_patient_id) = (x.institution_code, x.local_patient_id)
           JOIN medanon.person_link b ON (b.institution_code, b.local_patient_id) = (x.other_institution_code, x.other_local_patient_id)
          WHERE a.person_id <> b.person_id",
        None,
        &[],
    )? {
        if let (Some(a), Some(b)) = (r.get::<i64>(1)?, r.get::<i64>(2)?) {
            out.push((a, b));
        }
    }
    Ok(out)
}

#[derive(Default)]
struct Counts {
    records_in: i64,
    linked: i64,
    quarantined: i64,
    new_persons: i64,
    matched_existing: i64,
    unchanged: i64,
    merges: i64,
    conflicts: i64,
    twins: i64,
    kept_apart: i64,
    candidates: i64,
}

/// Step 3, as the extension owner: persons, merges, person_link, quarantine, conflicts.
fn write(client: &mut SpiClient<'_>, grouping: Grouping, source: &str, counts: &mut Counts) -> Result<(), SpiError> {
    // New persons for groups without one.
    let fresh = grouping.new_persons() as i64;
    let mut new_ids: Vec<i64> = Vec::new();
    if fresh > 0 {
        for r in client.update(
            "INSERT INTO medanon.person (created_at) SELECT pg_catalog.now() FROM pg_catalog.generate_series(1, $1) \
             RETURNING person_id",
            None,
            &[fresh.into()],
        )? {
            new_ids.extend(r.get::<i64>(1)?);
        }
    }
    let assignment = grouping.assign(&new_ids).unwrap_or_else(|PersonIdCount { needed, got }| {
        // Only a trigger or rule on medanon.person that drops or rewrites rows gets here.
        raise(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            "link_patients could not create the new persons",
            Some(format!("medanon.person returned {got} new person ids for {needed} new persons")),
            Some("a trigger or rule on medanon.person discards or rewrites inserted rows: drop it and link again".into()),
        )
    });
    let Assignment { persons, new_person, merges, matched_existing, unchanged } = assignment;
    counts.new_persons = fresh;
    counts.merges = merges.len() as i64;
    counts.matched_existing = matched_existing;
    counts.unchanged = unchanged;
    if !merges.is_empty() {
        let merge_from: Vec<i64> = merges.iter().map(|m| m.from).collect();
        let merge_into: Vec<i64> = merges.iter().map(|m| m.into).collect();
        let merge_rn: Vec<i64> = merges.iter().map(|m| m.rn).collect();
        client.update(
            "WITH m AS (SELECT * FROM ROWS FROM (pg_catalog.unnest($1::bigint[]), pg_catalog.unnest($2::bigint[]), pg_catalog.unnest($3::bigint[])) AS m(from_id, into_id, rn))
             INSERT INTO medanon.person_merge_log (from_person_id, into_person_id, institution_code, local_patient_id, source)
             SELECT m.from_id, m.into_id, b.inst, b.local, $4 FROM m LEFT JOIN pg_temp.medanon_link_batch b ON b.rn = m.rn",
            None,
            &[merge_from.clone().into(), merge_into.clone().into(), merge_rn.into(), source.into()],
        )?;
        merge_persons(client, &merge_from, &merge_into)?;
    }
    let rns: Vec<i64> = grouping.rows.iter().map(|&(rn, _)| rn).collect();
    let linked_before = grouping.linked_before();
    // Rows into a fresh table rather than an UPDATE of the batch: writing 1M rows is
    // a fraction of the cost of updating 1M (7 s in `make bench`).
    client.update(
        "INSERT INTO pg_temp.medanon_link_assign
         SELECT * FROM ROWS FROM (pg_catalog.unnest($1::bigint[]), pg_catalog.unnest($2::bigint[]),
                                  pg_catalog.unnest($3::boolean[]), pg_catalog.unnest($4::boolean[]))
                    AS a(rn, person_id, new_person, linked_before)",
        None,
        &[rns.into(), persons.into(), new_person.into(), linked_before.into()],
    )?;
    client.update("ANALYZE pg_temp.medanon_link_assign", None, &[])?;
    // What goes into person_link, materialized and analyzed, so that the writes
    // below are planned from statistics on both sides: index probes into
    // person_link for a small batch, a hash join for a large one, whenever
    // person_link was last analyzed.
    client.update(
        "INSERT INTO pg_temp.medanon_link_result
         SELECT b.rn, b.inst, b.local, b.id1, b.id2, b.block, b.clk, b.kanji, b.edits, b.digest, a.person_id, a.new_person,
                a.linked_before
           FROM pg_temp.medanon_link_batch b JOIN pg_temp.medanon_link_assign a ON a.rn = b.rn
          WHERE b.first_of_record",
        None,
        &[],
    )?;
    client.update("ANALYZE pg_temp.medanon_link_result", None, &[])?;
    let tally = client
        .select(
            "SELECT count(*) FILTER (WHERE problem IS NULL), count(*) FILTER (WHERE problem IS NOT NULL), count(*),
                    count(*) FILTER (WHERE skip)
               FROM pg_temp.medanon_link_batch",
            None,
            &[],
        )?
        .first();
    let count = |n: usize| -> Result<i64, SpiError> { Ok(tally.get::<i64>(n)?.unwrap_or(0)) };
    counts.linked = count(1)?;
    counts.quarantined = count(2)?;
    counts.records_in = count(3)?;
    counts.unchanged += count(4)?;

    // Records linked before whose person or keys changed; then the new records, as
    // a plain INSERT (an upsert's speculative insertion costs twice as much per row).
    // Which is which the grouping read under the lock (`linked_before`), so the
    // planner sees from the analyzed result how many rows each touches: none of a
    // new batch goes to the UPDATE, which then probes person_link by primary key.
    client.update(
        "UPDATE medanon.person_link p
            SET person_id = r.person_id, id1 = r.id1, id2 = r.id2, block = r.block, name_clk = r.clk,
                kanji = r.kanji, name_edits = r.edits, digest = r.digest, updated_at = pg_catalog.now()
           FROM pg_temp.medanon_link_result r
          WHERE r.linked_before AND p.institution_code = r.inst AND p.local_patient_id = r.local
            AND (p.person_id, p.id1, p.id2, p.block, p.name_clk, p.kanji, p.name_edits, p.digest)
                IS DISTINCT FROM (r.person_id, r.id1, r.id2, r.block, r.clk, r.kanji, r.edits, r.digest)",
        None,
        &[],
    )?;
    client.update(
        "INSERT INTO medanon.person_link (institution_code, local_patient_id, person_id, id1, id2, block, name_clk,
                                          kanji, name_edits, digest)
         SELECT r.inst, r.local, r.person_id, r.id1, r.id2, r.block, r.clk, r.kanji, r.edits, r.digest
           FROM pg_temp.medanon_link_result r
          WHERE NOT r.linked_before
          -- Which records are linked already the grouping read under the lock, which
          -- keeps other linkers out: no NOT EXISTS against person_link itself. (Into
          -- a person_link just emptied, with statistics of its full state, that
          -- anti-join was planned as a nested loop over a sequential scan of the
          -- table this statement fills: quadratic, a first link ran past 10 minutes.)
          -- No ORDER BY: person ids follow the batch's order already, and sorting
          -- 1M rows spilled 273 MB to disk in a first link.
          ",
        None,
        &[],
    )?;
    client.update(
        "INSERT INTO medanon.link_quarantine (source, institution_code, local_patient_id, reason, record)
         SELECT $1, inst, local, problem,
                coalesce(record, pg_catalog.jsonb_build_object('institution_code', inst, 'local_patient_id', local))
           FROM pg_temp.medanon_link_batch WHERE problem IS NOT NULL
         ON CONFLICT DO NOTHING",
        None,
        &[source.into()],
    )?;
    // Conflicts and twins, each pair once whichever record came first; the batch's
    // own pairs are written with the lower row first. Twins are decided by the
    // rules ('different'); conflicts wait for a reviewer ('pending').
    let pending = ("one insurance card, different kana names", "pending");
    let twins = ("one insurance card, different kanji names: twins", "different");
    let unnamed = ("one insurance card, a name missing: cannot tell from a twin", "pending");
    let mut written = [0i64; 3];
    for (n, (with_linked, in_batch, (reason, status))) in [
        (&grouping.conflicts_with_linked, &grouping.conflicts_in_batch, pending),
        (&grouping.twins_with_linked, &grouping.twins_in_batch, twins),
        (&grouping.unnamed_with_linked, &grouping.unnamed_in_batch, unnamed),
    ]
    .into_iter()
    .enumerate()
    {
        let rn: Vec<i64> = with_linked.iter().map(|c| c.0).collect();
        let other_inst: Vec<String> = with_linked.iter().map(|c| c.1.clone()).collect();
        let other_local: Vec<String> = with_linked.iter().map(|c| c.2.clone()).collect();
        let linked = client.update(
            "INSERT INTO medanon.link_conflict (institution_code, local_patient_id, other_institution_code,
                                                other_local_patient_id, reason, source, status)
             SELECT DISTINCT b.inst, b.local, c.other_inst, c.other_local, $4, $5, $6
               FROM ROWS FROM (pg_catalog.unnest($1::bigint[]), pg_catalog.unnest($2::text[]), pg_catalog.unnest($3::text[])) AS c(rn, other_inst, other_local)
               JOIN pg_temp.medanon_link_batch b ON b.rn = c.rn
              WHERE (b.inst, b.local) <> (c.other_inst, c.other_local)
                AND NOT EXISTS (SELECT FROM medanon.link_conflict x
                                 WHERE (x.institution_code, x.local_patient_id, x.other_institution_code, x.other_local_patient_id)
                                       = (c.other_inst, c.other_local, b.inst, b.local))
             ON CONFLICT DO NOTHING",
            None,
            &[rn.into(), other_inst.into(), other_local.into(), reason.into(), source.into(), status.into()],
        )?;
        let (a, b): (Vec<i64>, Vec<i64>) = in_batch.iter().copied().unzip();
        let within = client.update(
            "INSERT INTO medanon.link_conflict (institution_code, local_patient_id, other_institution_code,
                                                other_local_patient_id, reason, source, status)
             SELECT DISTINCT x.inst, x.local, y.inst, y.local, $3, $4, $5
               FROM ROWS FROM (pg_catalog.unnest($1::bigint[]), pg_catalog.unnest($2::bigint[])) AS c(a, b)
               JOIN pg_temp.medanon_link_batch x ON x.rn = c.a
               JOIN pg_temp.medanon_link_batch y ON y.rn = c.b
              WHERE NOT EXISTS (SELECT FROM medanon.link_conflict z
                                 WHERE (z.institution_code, z.local_patient_id, z.other_institution_code, z.other_local_patient_id)
                                       = (y.inst, y.local, x.inst, x.local))
             ON CONFLICT DO NOTHING",
            None,
            &[a.into(), b.into(), reason.into(), source.into(), status.into()],
        )?;
        written[n] = (linked.len() + within.len()) as i64;
    }
    counts.conflicts = written[0] + written[2];
    counts.twins = written[1];
    counts.kept_apart = grouping.kept_apart as i64;
    Ok(())
}

/// Merges each person of `from` into the one of `into` at the same index: their
/// records move (the `person_link` triggers withhold the emptied person from
/// every contract at once, sql/contract_live.sql) and the person points to the
/// one it merged into. The caller logs the merge.
pub(crate) fn merge_persons(client: &mut SpiClient<'_>, from: &[i64], into: &[i64]) -> Result<(), SpiError> {
    client.update(
        "UPDATE medanon.person_link p SET person_id = m.into_id, updated_at = pg_catalog.now()
           FROM ROWS FROM (pg_catalog.unnest($1::bigint[]), pg_catalog.unnest($2::bigint[])) AS m(from_id, into_id) WHERE p.person_id = m.from_id",
        None,
        &[from.to_vec().into(), into.to_vec().into()],
    )?;
    client.update(
        "UPDATE medanon.person p SET merged_into = m.into_id, merged_at = pg_catalog.now()
           FROM ROWS FROM (pg_catalog.unnest($1::bigint[]), pg_catalog.unnest($2::bigint[])) AS m(from_id, into_id) WHERE p.person_id = m.from_id",
        None,
        &[from.to_vec().into(), into.to_vec().into()],
    )?;
    Ok(())
}

/// Step 4: fuzzy candidates for records that started a new person: every record
/// of another person in the same block (birth date and sex) whose name CLK is
/// Dice-similar (`medanon_core::link::candidates`).
fn propose(
    client: &mut SpiClient<'_>,
    source: &str,
    apart: &[(i64, i64)],
    counts: &mut Counts,
) -> Result<(), SpiError> {
    let mut records = Vec::new();
    let query =
        "SELECT p.block, p.person_id, coalesce(a.new_person, false), p.institution_code, p.local_patient_id, p.name_clk,
                p.kanji, p.name_edits
           FROM (SELECT DISTINCT a2.block FROM pg_temp.medanon_link_result a2 WHERE a2.new_person) b
           JOIN LATERAL (SELECT p.* FROM medanon.person_link p
                          WHERE p.block = b.block AND p.name_clk IS NOT NULL OFFSET 0) AS p ON true
           LEFT JOIN pg_temp.medanon_link_result a
             ON a.inst = p.institution_code AND a.local = p.local_patient_id";
    for r in client.select(query, None, &[])? {
        // All NOT NULL in person_link but name_clk, which the query requires.
        let (Some(block), Some(person), Some(institution), Some(local_id), Some(clk)) =
            (r.get::<i64>(1)?, r.get::<i64>(2)?, r.get::<String>(4)?, r.get::<String>(5)?, r.get::<Vec<u8>>(6)?)
        else {
            continue;
        };
        let new_person = r.get::<bool>(3)?.unwrap_or(false);
        let kanji = key_of(r.get(7)?);
        let edits = r.get::<Vec<u8>>(8)?;
        records.push(NameRecord { block, person, new_person, institution, local_id, clk, kanji, edits });
    }
    let kept_apart: std::collections::HashSet<(i64, i64)> =
        apart.iter().flat_map(|&(a, b)| [(a, b), (b, a)]).collect();
    let found: Vec<_> = candidates(&mut records, LINK_CANDIDATE_THRESHOLD.get())
        .into_iter()
        .filter(|c| !kept_apart.contains(&(records[c.first].person, records[c.second].person)))
        .collect();
    let column = |pick: fn(&NameRecord) -> &String, first: bool| -> Vec<String> {
        found.iter().map(|c| pick(&records[if first { c.first } else { c.second }]).clone()).collect()
    };
    let dice: Vec<f64> = found.iter().map(|c| c.dice).collect();
    let score: Vec<f64> = found.iter().map(|c| c.score).collect();
    let kanji: Vec<String> = found.iter().map(|c| c.kanji.as_str().to_string()).collect();
    let one_edit: Vec<bool> = found.iter().map(|c| c.one_edit).collect();
    let inserted = client.update(
        "INSERT INTO medanon.link_candidates (institution_code, local_patient_id, other_institution_code,
                                              other_local_patient_id, dice, score, kanji, one_edit, source)
         SELECT *, $9 FROM ROWS FROM (pg_catalog.unnest($1::text[]), pg_catalog.unnest($2::text[]),
                                      pg_catalog.unnest($3::text[]), pg_catalog.unnest($4::text[]),
                                      pg_catalog.unnest($5::float8[]), pg_catalog.unnest($6::float8[]),
                                      pg_catalog.unnest($7::text[]), pg_catalog.unnest($8::boolean[]))
         ON CONFLICT DO NOTHING",
        None,
        &[
            column(|r| &r.institution, true).into(),
            column(|r| &r.local_id, true).into(),
            column(|r| &r.institution, false).into(),
            column(|r| &r.local_id, false).into(),
            dice.into(),
            score.into(),
            kanji.into(),
            one_edit.into(),
            source.into(),
        ],
    )?;
    counts.candidates = inserted.len() as i64;
    Ok(())
}

pub fn link_patients(staging: pg_sys::Oid) -> JsonB {
    let keying = keying_for(staging);
    let (staging, has_kanji) = staging_name(staging);
    // As the caller, but resolving nothing in the caller's schemas: the batch
    // tables built here are read later with the owner's rights.
    with_safe_search_path(|| build_batch(&staging, has_kanji, keying));
    let (_, owner) = keyring_and_owner();
    let counts = as_owner(owner, move || {
        let mut counts = Counts::default();
        let result = Spi::connect_mut(|client| {
            // One linker at a time: the grouping needs a stable person_link.
            client.update("LOCK TABLE medanon.person_link IN SHARE ROW EXCLUSIVE MODE", None, &[])?;
            let apart = apart_persons(client)?;
            let grouping = group(client, &apart)?;
            write(client, grouping, &staging, &mut counts)?;
            propose(client, &staging, &apart, &mut counts)?;
            client.update(
                "INSERT INTO medanon.link_batch (source, records_in, linked, quarantined, new_persons, merges, conflicts, candidates, twins)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                None,
                &[
                    staging.as_str().into(),
                    counts.records_in.into(),
                    counts.linked.into(),
                    counts.quarantined.into(),
                    counts.new_persons.into(),
                    counts.merges.into(),
                    counts.conflicts.into(),
                    counts.candidates.into(),
                    counts.twins.into(),
                ],
            )?;
            Ok::<_, SpiError>(())
        });
        if let Err(e) = result {
            spi_failed("link_patients could not write the links", e);
        }
        counts
    });
    JsonB(serde_json::json!({
        "records_in": counts.records_in,
        "linked": counts.linked,
        "quarantined": counts.quarantined,
        "new_persons": counts.new_persons,
        "matched_existing": counts.matched_existing,
        "unchanged": counts.unchanged,
        "merges": counts.merges,
        "conflicts": counts.conflicts,
        "twins": counts.twins,
        "kept_apart": counts.kept_apart,
        "candidates": counts.candidates,
    }))
}
