//! Review (`review_link`, `split_person`): the operator decides what the rules
//! leave open, and undoes a wrong merge. Both run as the extension owner, after
//! the same lock as `link_patients`, so a decision and a batch never interleave.
//! Argument checks are `medanon_core::link_review`; every decision goes into the
//! append-only `link_review` log.
//!
//! * `same` merges the two persons into the older id through the merge path of
//!   `link_patients` (`merge_persons`): the `person_link` triggers withhold the
//!   emptied person from every contract at once.
//! * `different` writes the pair into `link_apart`: `link_patients` never joins
//!   the persons of such a pair (`medanon_core::link_group::group_apart`).
//! * `split_person` moves records to a new person. It first moves every record
//!   of the person, so that the `person_link` triggers withhold it from every
//!   contract as having no record (the only withholding the contracts know for a
//!   person with no opt-out), then returns the records that stay. The new person
//!   is in no contract's map, so no view shows either until the next refresh.
//!   The two are kept apart from then on.

use crate::definer::as_owner;
use crate::error::{raise, raise_input, spi_failed};
use crate::keyring::keyring_and_owner;
use medanon_core::error::quoted;
use medanon_core::link_review::{parse_decision, parse_item, reviewer_and_reason, split_records, Decision, Item};
use pgrx::prelude::*;
use pgrx::spi::{SpiClient, SpiError};
use pgrx::{JsonB, PgSqlErrorCode};

fn lock(client: &mut SpiClient<'_>) -> Result<(), SpiError> {
    client.update("LOCK TABLE medanon.person_link IN SHARE ROW EXCLUSIVE MODE", None, &[]).map(|_| ())
}

/// A record's current person, if it is linked.
fn person_of(client: &SpiClient<'_>, inst: &str, local: &str) -> Result<Option<i64>, SpiError> {
    client
        .select(
            "SELECT person_id FROM medanon.person_link WHERE institution_code = $1 AND local_patient_id = $2",
            None,
            &[inst.into(), local.into()],
        )?
        .first()
        .get::<i64>(1)
        .or(Ok(None))
}

struct Reviewed {
    review_id: i64,
    person: i64,
    other: i64,
    merged: bool,
}

fn decide(
    client: &mut SpiClient<'_>,
    item: Item,
    id: i64,
    decision: Decision,
    reviewer: &str,
    reason: &str,
) -> Result<Reviewed, SpiError> {
    lock(client)?;
    let (table, key) = match item {
        Item::Candidate => ("medanon.link_candidates", "candidate_id"),
        Item::Conflict => ("medanon.link_conflict", "conflict_id"),
    };
    // Table and column names are ours, not the caller's.
    let row = client.select(
        &format!(
            "SELECT institution_code, local_patient_id, other_institution_code, other_local_patient_id, status
               FROM {table} WHERE {key} = $1 FOR UPDATE"
        ),
        None,
        &[id.into()],
    )?;
    if row.is_empty() {
        raise(
            PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT,
            format!("{} {id} does not exist", item.as_str()),
            None,
            Some("link_report() lists the pending candidates and conflicts with their ids".into()),
        );
    }
    let row = row.first();
    let field = |n: usize| -> Result<String, SpiError> { Ok(row.get::<String>(n)?.unwrap_or_default()) };
    let (inst, local, other_inst, other_local, status) = (field(1)?, field(2)?, field(3)?, field(4)?, field(5)?);
    if status != "pending" {
        raise(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            format!("{} {id} is already decided", item.as_str()),
            Some(format!("its status is {}", quoted(&status))),
            Some("a wrong 'same' is undone with split_person; a wrong 'different' by a 'same' on another pending pair of the two persons".into()),
        );
    }
    let (Some(person), Some(other)) = (person_of(client, &inst, &local)?, person_of(client, &other_inst, &other_local)?)
    else {
        raise(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            format!("a record of {} {id} is not linked", item.as_str()),
            Some(format!("records {inst}/{local} and {other_inst}/{other_local}")),
            Some("link the records with link_patients first".into()),
        );
    };
    let mut merged = false;
    match decision {
        Decision::Same if person != other => {
            let (from, into) = (person.max(other), person.min(other));
            client.update(
                "INSERT INTO medanon.person_merge_log (from_person_id, into_person_id, institution_code, local_patient_id, source)
                 VALUES ($1, $2, $3, $4, $5)",
                None,
                &[from.into(), into.into(), inst.clone().into(), local.clone().into(), format!("review_link {} {id}", item.as_str()).into()],
            )?;
            crate::link::merge_persons(client, &[from], &[into])?;
            // The two were kept apart before: this decision replaces that one.
            client.update(
                "DELETE FROM medanon.link_apart x
                  USING medanon.person_link a, medanon.person_link b
                  WHERE (a.institution_code, a.local_patient_id) = (x.institution_code, x.local_patient_id)
                    AND (b.institution_code, b.local_patient_id) = (x.other_institution_code, x.other_local_patient_id)
                    AND a.person_id = $1 AND b.person_id = $1",
                None,
                &[into.into()],
            )?;
            merged = true;
        }
        Decision::Same => {}
        Decision::Different if person == other => raise(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            format!("the records of {} {id} already belong to one person", item.as_str()),
            Some(format!("person {person} holds {inst}/{local} and {other_inst}/{other_local}")),
            Some("move the wrong records to a new person with split_person first".into()),
        ),
        Decision::Different => {}
    }
    let review_id = client
        .update(
            &format!(
                "INSERT INTO medanon.link_review (reviewer, reason, action, {key}, person_id, other_person_id)
                 VALUES ($1, $2, $3, $4, $5, $6) RETURNING review_id"
            ),
            None,
            &[reviewer.into(), reason.into(), decision.as_str().into(), id.into(), person.into(), other.into()],
        )?
        .first()
        .get::<i64>(1)?
        .unwrap_or(0);
    if decision == Decision::Different {
        client.update(
            "INSERT INTO medanon.link_apart (institution_code, local_patient_id, other_institution_code, other_local_patient_id, review_id)
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
            None,
            &[inst.into(), local.into(), other_inst.into(), other_local.into(), review_id.into()],
        )?;
    }
    client.update(
        &format!("UPDATE {table} SET status = $2 WHERE {key} = $1"),
        None,
        &[id.into(), item.status(decision).into()],
    )?;
    Ok(Reviewed { review_id, person, other, merged })
}

/// review_link(kind, id, decision, reviewer, reason): see the module documentation.
#[pg_extern(volatile, parallel_unsafe)]
fn review_link(
    kind: Option<&str>,
    id: Option<i64>,
    decision: Option<&str>,
    reviewer: Option<&str>,
    reason: Option<&str>,
) -> JsonB {
    let item = parse_item(kind).unwrap_or_else(|e| raise_input(e));
    let decision = parse_decision(decision).unwrap_or_else(|e| raise_input(e));
    let (reviewer, reason) = reviewer_and_reason(reviewer, reason).unwrap_or_else(|e| raise_input(e));
    let Some(id) = id else {
        raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            "id must not be NULL",
            None,
            Some("link_report() lists the pending candidates and conflicts with their ids".into()),
        )
    };
    let (reviewer, reason) = (reviewer.to_string(), reason.to_string());
    let (_, owner) = keyring_and_owner();
    let r = as_owner(owner, move || {
        Spi::connect_mut(|client| decide(client, item, id, decision, &reviewer, &reason))
            .unwrap_or_else(|e| spi_failed("review_link could not record the decision", e))
    });
    let merged_into = if r.merged { Some(r.person.min(r.other)) } else { None };
    JsonB(serde_json::json!({
        "review_id": r.review_id,
        "kind": item.as_str(),
        "id": id,
        "decision": decision.as_str(),
        "person_id": r.person,
        "other_person_id": r.other,
        "merged_into": merged_into,
    }))
}

fn split(
    client: &mut SpiClient<'_>,
    person: i64,
    records: &[(String, String)],
    reviewer: &str,
    reason: &str,
) -> Result<i64, SpiError> {
    lock(client)?;
    let state = client.select("SELECT merged_into FROM medanon.person WHERE person_id = $1 FOR UPDATE", None, &[person.into()])?;
    if state.is_empty() {
        raise(
            PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT,
            format!("person {person} does not exist"),
            None,
            Some("person ids are in medanon.person_link".into()),
        );
    }
    if let Some(into) = state.first().get::<i64>(1)? {
        raise(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            format!("person {person} was merged into person {into}"),
            None,
            Some(format!("split person {into}, which holds its records now")),
        );
    }
    let insts: Vec<String> = records.iter().map(|r| r.0.clone()).collect();
    let locals: Vec<String> = records.iter().map(|r| r.1.clone()).collect();
    let tally = client.select(
        "WITH m AS (SELECT * FROM ROWS FROM (pg_catalog.unnest($2::text[]), pg_catalog.unnest($3::text[])) AS m(inst, local))
         SELECT (SELECT pg_catalog.string_agg(m.inst || '/' || m.local, ', ') FROM m
                  WHERE NOT EXISTS (SELECT FROM medanon.person_link l WHERE l.person_id = $1
                                       AND (l.institution_code, l.local_patient_id) = (m.inst, m.local))),
                (SELECT pg_catalog.count(*) FROM medanon.person_link l WHERE l.person_id = $1)",
        None,
        &[person.into(), insts.clone().into(), locals.clone().into()],
    )?;
    let tally = tally.first();
    if let Some(foreign) = tally.get::<String>(1)? {
        raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            format!("records to move are not records of person {person}"),
            Some(format!("not of person {person}: {foreign}")),
            Some("name records (institution_code, local_patient_id) that person_link gives to this person".into()),
        );
    }
    let held = tally.get::<i64>(2)?.unwrap_or(0);
    if held <= records.len() as i64 {
        raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            format!("a split must leave person {person} at least one record"),
            Some(format!("the person has {held} records and {} are to move", records.len())),
            Some("name only the records that belong to another person".into()),
        );
    }
    let new_person = client
        .update("INSERT INTO medanon.person DEFAULT VALUES RETURNING person_id", None, &[])?
        .first()
        .get::<i64>(1)?
        .unwrap_or(0);
    // Every record to the new person: the person_link trigger withholds `person`
    // from every contract (no record left); then the records that stay go back.
    client.update(
        "UPDATE medanon.person_link SET person_id = $2, updated_at = pg_catalog.now() WHERE person_id = $1",
        None,
        &[person.into(), new_person.into()],
    )?;
    let kept = client.update(
        "UPDATE medanon.person_link l SET person_id = $1
          WHERE l.person_id = $2
            AND (l.institution_code, l.local_patient_id) NOT IN
                (SELECT * FROM ROWS FROM (pg_catalog.unnest($3::text[]), pg_catalog.unnest($4::text[])))
         RETURNING l.institution_code, l.local_patient_id",
        None,
        &[person.into(), new_person.into(), insts.clone().into(), locals.clone().into()],
    )?;
    let kept_record = kept.first();
    let (kept_inst, kept_local) = (kept_record.get::<String>(1)?.unwrap_or_default(), kept_record.get::<String>(2)?.unwrap_or_default());
    let moved = serde_json::Value::from(records.iter().map(|(i, l)| serde_json::json!([i, l])).collect::<Vec<_>>());
    let review_id = client
        .update(
            "INSERT INTO medanon.link_review (reviewer, reason, action, person_id, other_person_id, records)
             VALUES ($1, $2, 'split', $3, $4, $5) RETURNING review_id",
            None,
            &[reviewer.into(), reason.into(), person.into(), new_person.into(), JsonB(moved).into()],
        )?
        .first()
        .get::<i64>(1)?
        .unwrap_or(0);
    // Kept apart from now on: one pair of records names the two persons.
    client.update(
        "INSERT INTO medanon.link_apart (institution_code, local_patient_id, other_institution_code, other_local_patient_id, review_id)
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
        None,
        &[insts[0].clone().into(), locals[0].clone().into(), kept_inst.into(), kept_local.into(), review_id.into()],
    )?;
    Ok(new_person)
}

/// split_person(person_id, institution_codes, local_patient_ids, reviewer, reason):
/// see the module documentation. Returns the new person's id.
#[pg_extern(volatile, parallel_unsafe)]
fn split_person(
    person_id: Option<i64>,
    institution_codes: Option<Vec<Option<String>>>,
    local_patient_ids: Option<Vec<Option<String>>>,
    reviewer: Option<&str>,
    reason: Option<&str>,
) -> i64 {
    let Some(person) = person_id else {
        raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            "person_id must not be NULL",
            None,
            Some("name the person to split, as person_link gives it".into()),
        )
    };
    let records = split_records(institution_codes, local_patient_ids).unwrap_or_else(|e| raise_input(e));
    let (reviewer, reason) = reviewer_and_reason(reviewer, reason).unwrap_or_else(|e| raise_input(e));
    let (reviewer, reason) = (reviewer.to_string(), reason.to_string());
    let (_, owner) = keyring_and_owner();
    as_owner(owner, move || {
        Spi::connect_mut(|client| split(client, person, &records, &reviewer, &reason))
            .unwrap_or_else(|e| spi_failed("split_person could not move the records", e))
    })
}
