//! Re-identification risk of a relation, counted in distinct persons, and the
//! search for the least damaging generalization that reaches k.
//!
//! The measures are one GROUP BY each, run as the caller through SPI with every
//! column checked against the catalog and quoted (`kanon::check`). The search loads
//! the quasi-identifiers once, dictionary-encodes every level of every hierarchy,
//! and evaluates lattice nodes in memory (`medanon_core::lattice`).

use crate::error::{raise, spi_failed, OrRaise};
use crate::kanon::{check, Checked};
use medanon_core::equivalence::{Encoder, Refusal, CLASS_KEY_BITS};
use medanon_core::error::InputError;
use medanon_core::hierarchy::{GeneralizationSpec, Hierarchy, HierarchySpec, SpecError, TableColumns, TableHierarchy};
use medanon_core::lattice::{self, search, Lattice};
use medanon_core::view::literal;
use pgrx::prelude::*;
use pgrx::spi::SpiError;
use pgrx::{pg_sys, JsonB, PgSqlErrorCode};
use serde_json::{json, Map, Value};

/// An argument that must not be NULL: a risk function that cannot answer refuses,
/// because an empty or NULL answer reads as "no risk".
pub fn required<T>(name: &str, value: Option<T>) -> T {
    match value {
        Some(v) => v,
        None => raise(
            PgSqlErrorCode::ERRCODE_NULL_VALUE_NOT_ALLOWED,
            format!("{name} must not be NULL"),
            None,
            Some(if name == "person_column" {
                "risk is counted in distinct persons: name the column that holds the person id".into()
            } else {
                format!("a risk function refuses a NULL {name} rather than answer as if there were no risk")
            }),
        ),
    }
}

fn positive_k(k: Option<i32>) -> i32 {
    let k = required("k", k);
    if k < 1 {
        raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            "k must be at least 1",
            Some(format!("k is {k}")),
            None,
        );
    }
    k
}

/// The classes below k, each as a jsonb object of its quasi-identifier values,
/// with its number of distinct persons; smallest first.
pub fn k_report(
    rel: Option<pg_sys::Oid>,
    qis: Option<&[Option<String>]>,
    person_column: Option<&str>,
    k: Option<i32>,
) -> Vec<(JsonB, i64)> {
    let (rel, qis, person) = (required("rel", rel), required("quasi_identifiers", qis), required("person_column", person_column));
    let k = positive_k(k);
    let c = check(rel, qis, Some(person));
    let object = c.qis.iter().map(|(name, quoted)| format!("{}, {quoted}", literal(name))).collect::<Vec<_>>().join(", ");
    let sql = format!(
        "SELECT pg_catalog.jsonb_build_object({object}), {count} AS persons FROM {rel} GROUP BY {group}
         HAVING {count} OPERATOR(pg_catalog.<) $1 ORDER BY 2, 1",
        count = c.count(),
        rel = c.relation,
        group = c.group_by()
    );
    Spi::connect(|client| {
        client
            .select(&sql, None, &[k.into()])?
            .map(|row| Ok((row.get::<JsonB>(1)?.unwrap_or(JsonB(Value::Null)), row.get::<i64>(2)?.unwrap_or(0))))
            .collect::<Result<Vec<_>, SpiError>>()
    })
    .unwrap_or_else(|e| spi_failed("could not report the classes below k", e))
}

/// Distinct l-diversity: the fewest distinct sensitive values in any class.
pub fn l_diversity(
    rel: Option<pg_sys::Oid>,
    qis: Option<&[Option<String>]>,
    sensitive: Option<&str>,
    person_column: Option<&str>,
) -> Option<i64> {
    let (rel, qis, sensitive) = (required("rel", rel), required("quasi_identifiers", qis), required("sensitive", sensitive));
    let c = check(rel, qis, Some(required("person_column", person_column)));
    let sensitive = c.column(sensitive);
    let sql = format!(
        "SELECT pg_catalog.min(l) FROM (SELECT pg_catalog.count(DISTINCT {sensitive}) AS l FROM {} GROUP BY {}) AS classes",
        c.relation,
        c.group_by()
    );
    Spi::get_one::<i64>(&sql).unwrap_or_else(|e| spi_failed("could not measure l", e))
}

/// Class sizes in distinct persons, with how many classes have each size.
fn class_size_histogram(c: &Checked) -> Vec<(i64, i64)> {
    let sql = format!(
        "SELECT size, pg_catalog.count(*) FROM (SELECT {} AS size FROM {} GROUP BY {}) AS classes GROUP BY size ORDER BY size",
        c.count(),
        c.relation,
        c.group_by()
    );
    Spi::connect(|client| {
        client
            .select(&sql, None, &[])?
            .map(|row| Ok((row.get::<i64>(1)?.unwrap_or(0), row.get::<i64>(2)?.unwrap_or(0))))
            .collect::<Result<Vec<_>, SpiError>>()
    })
    .unwrap_or_else(|e| spi_failed("could not measure class sizes", e))
}

/// The prosecutor-risk profile of a relation. A person in a class of n persons is
/// re-identified with probability 1/n by an attacker who knows they are in it.
pub fn risk_profile(
    rel: Option<pg_sys::Oid>,
    qis: Option<&[Option<String>]>,
    person_column: Option<&str>,
    k: Option<i32>,
) -> JsonB {
    let (rel, qis, person) = (required("rel", rel), required("quasi_identifiers", qis), required("person_column", person_column));
    let k = positive_k(k);
    let c = check(rel, qis, Some(person));
    let histogram = class_size_histogram(&c);
    let classes: i64 = histogram.iter().map(|&(_, n)| n).sum();
    // Persons counted per class; a person whose rows fall in two classes counts twice.
    let persons: i64 = histogram.iter().map(|&(size, n)| size * n).sum();
    let below_k: i64 = histogram.iter().filter(|&&(size, _)| size < k as i64).map(|&(size, n)| size * n).sum();
    let uniques: i64 = histogram.iter().filter(|&&(size, _)| size == 1).map(|&(_, n)| n).sum();
    let smallest = histogram.first().map(|&(size, _)| size);
    let ratio = |a: i64, b: i64| if b == 0 { Value::Null } else { json!(((a as f64 / b as f64) * 1e6).round() / 1e6) };
    // Buckets that read well in psql: 1, 2, 3-4, 5-9, 10-19, 20-49, 50-99, 100+.
    // The widest bar takes 40 characters, so a line with its label and count stays
    // within an 80-column terminal.
    const BAR_WIDTH: usize = 40;
    let buckets: [(i64, i64, &str); 8] =
        [(1, 1, "1"), (2, 2, "2"), (3, 4, "3-4"), (5, 9, "5-9"), (10, 19, "10-19"), (20, 49, "20-49"), (50, 99, "50-99"), (100, i64::MAX, "100+")];
    let counts: Vec<i64> = buckets
        .iter()
        .map(|&(lo, hi, _)| histogram.iter().filter(|&&(s, _)| s >= lo && s <= hi).map(|&(_, n)| n).sum())
        .collect();
    let widest = counts.iter().copied().max().unwrap_or(0).max(1);
    let bars: Vec<Value> = buckets
        .iter()
        .zip(&counts)
        .map(|(&(_, _, label), &n)| {
            let width = ((n as f64 / widest as f64) * BAR_WIDTH as f64).ceil() as usize;
            Value::String(format!("{label:>6} | {:<BAR_WIDTH$} {n}", "#".repeat(width)))
        })
        .collect();
    JsonB(json!({
        "k": k,
        "persons": persons,
        "classes": classes,
        "smallest_class": smallest,
        "max_prosecutor_risk": smallest.map(|s| ratio(1, s)).unwrap_or(Value::Null),
        "avg_prosecutor_risk": ratio(classes, persons),
        "persons_below_k": below_k,
        "share_below_k": ratio(below_k, persons),
        "sample_uniques": uniques,
        "class_sizes": bars,
    }))
}

fn spec_error(e: SpecError) -> ! {
    crate::error::raise_input(InputError::from(e))
}

/// A quasi-identifier's hierarchy from the spec: built in, or read from the user's
/// table as the caller (value, level 1, level 2, ...).
fn resolve(column: &str, spec: &HierarchySpec) -> Hierarchy {
    let table = match spec {
        HierarchySpec::BuiltIn(b) => return Hierarchy::BuiltIn(b.clone()),
        HierarchySpec::Table(table) => table,
    };
    let key = format!("quasi_identifiers.{column}");
    let oid = Spi::get_one_with_args::<pg_sys::Oid>("SELECT pg_catalog.to_regclass($1)::oid", &[table.as_str().into()])
        .ok()
        .flatten()
        .unwrap_or_else(|| spec_error(SpecError::new(&key, format!("table {} does not exist", medanon_core::error::quoted(table)))));
    let columns = TableColumns::new(&key, crate::catalog::column_names(oid)).unwrap_or_else(|e| spec_error(e));
    let (qualified, _) = crate::catalog::names(oid);
    let rows = Spi::connect(|client| {
        client
            .select(&format!("SELECT pg_catalog.to_jsonb(t) FROM {qualified} AS t"), None, &[])?
            .map(|r| r.get::<JsonB>(1))
            .collect::<Result<Vec<_>, SpiError>>()
    })
    .unwrap_or_else(|e| spi_failed("could not read the hierarchy table", e));
    Hierarchy::Table(TableHierarchy::from_rows(&columns, rows.iter().flatten().map(|j| &j.0)))
}

/// Finds the generalization of lowest loss that makes `rel` k-anonymous in
/// distinct persons while suppressing at most `max_suppression` of them.
pub fn suggest_generalization(
    rel: Option<pg_sys::Oid>,
    spec: Option<&Value>,
    k: Option<i32>,
    max_suppression: Option<f64>,
) -> JsonB {
    let (rel, spec) = (required("rel", rel), required("spec", spec));
    let k = positive_k(k);
    let max_suppression = required("max_suppression", max_suppression);
    if !(0.0..=1.0).contains(&max_suppression) {
        raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            "max_suppression must be between 0 and 1",
            Some(format!("max_suppression is {max_suppression}")),
            Some("it is the share of persons that may be suppressed, for example 0.01".into()),
        );
    }
    let spec = GeneralizationSpec::parse(spec).map_err(InputError::from).or_raise();
    let names: Vec<Option<String>> = spec.quasi_identifiers.iter().map(|(column, _)| Some(column.clone())).collect();
    let c = check(rel, &names, Some(&spec.person_column));
    let hierarchies: Vec<Hierarchy> = spec.quasi_identifiers.iter().map(|(column, h)| resolve(column, h)).collect();
    let lattice = Lattice::new(hierarchies.iter().map(Hierarchy::max_level).collect());
    if lattice.size() > lattice::MAX_NODES {
        raise(
            PgSqlErrorCode::ERRCODE_PROGRAM_LIMIT_EXCEEDED,
            "the generalization lattice is too large to search",
            Some(format!("{} nodes", lattice.size())),
            Some("name fewer quasi-identifiers, or give table hierarchies fewer levels".into()),
        );
    }

    // Load (person, value per QI) once, as the caller; dates as ISO text whatever
    // the session's DateStyle, so the date hierarchy reads them.
    let person = c.column(&spec.person_column);
    let columns = c.qis.iter().map(|(_, q)| format!("{q}::text")).collect::<Vec<_>>().join(", ");
    let sql = format!("SELECT {person}::text, {columns} FROM {} WHERE {person} IS NOT NULL", c.relation);
    let dims = hierarchies.len();
    let mut encoder = Encoder::new(dims);
    crate::definer::with_settings(&[(c"DateStyle", c"ISO, YMD")], || {
        Spi::connect(|client| {
            let table = client.select(&sql, None, &[])?;
            encoder.reserve(table.len());
            for row in table {
                let values = (0..dims).map(|i| row.get::<String>(i + 2)).collect::<Result<Vec<_>, _>>()?;
                // Never NULL: the query leaves those rows out.
                let Some(person) = row.get::<String>(1)? else { continue };
                encoder.push(person, values);
            }
            Ok::<_, SpiError>(())
        })
    })
    .unwrap_or_else(|e| spi_failed("could not read the relation", e));
    let classes = encoder.encode(&hierarchies).unwrap_or_else(|refusal| match refusal {
        Refusal::Unreadable { dimension, value } => raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            format!("column \"{}\" has a value its hierarchy cannot read", c.qis[dimension].0),
            Some(format!("value {}", medanon_core::error::quoted(&value))),
            Some("age takes whole years, date takes dates, postal takes 7-digit postal codes".into()),
        ),
        Refusal::TooManyValues { bits } => raise(
            PgSqlErrorCode::ERRCODE_PROGRAM_LIMIT_EXCEEDED,
            "too many distinct quasi-identifier values to search",
            Some(format!("the ungeneralized classes need {bits} bits, more than {CLASS_KEY_BITS}")),
            Some("name fewer quasi-identifiers, or pre-generalize the widest ones".into()),
        ),
    });
    let limit = classes.suppression_limit(max_suppression);
    let result = search(&lattice, |node| classes.evaluate(node, k, limit));

    let mut levels = Map::new();
    if let Some((node, _)) = &result.best {
        for (((name, _), h), &level) in c.qis.iter().zip(&hierarchies).zip(node) {
            levels.insert(name.clone(), json!({"level": level, "of": h.max_level(), "label": h.label(level)}));
        }
    }
    JsonB(json!({
        "k": k,
        "max_suppression": max_suppression,
        "persons": classes.persons(),
        "found": result.best.is_some(),
        "levels": levels,
        "suppressed_persons": result.best.as_ref().map(|(_, e)| e.suppressed),
        "loss": {
            "metric": "mean normalized generalization height (level / highest level, averaged over quasi-identifiers)",
            "value": result.best.as_ref().map(|(n, _)| (lattice.loss(n) * 1e6).round() / 1e6),
        },
        "nodes_evaluated": result.evaluated,
        "nodes_total": result.total,
    }))
}
