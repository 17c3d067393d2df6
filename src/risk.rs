//! Re-identification risk of a relation, counted in distinct persons, and the
//! search for the least damaging generalization that reaches k.
//!
//! The measures are one GROUP BY each, run as the caller through SPI with every
//! column checked against the catalog and quoted (`kanon::check`). The search loads
//! the quasi-identifiers once, dictionary-encodes every level of every hierarchy,
//! and evaluates lattice nodes in memory (`medanon_core::lattice`).

use crate::error::{raise, spi_failed};
use crate::kanon::{check, Checked};
use medanon_core::hierarchy::{BuiltIn, SUPPRESSED};
use medanon_core::lattice::{search, Evaluation, Lattice};
use pgrx::prelude::*;
use pgrx::spi::SpiError;
use pgrx::{pg_sys, JsonB, PgSqlErrorCode};
use serde_json::{json, Map, Value};
use std::collections::HashMap;

fn positive_k(k: i32) {
    if k < 1 {
        raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            "k must be at least 1",
            Some(format!("k is {k}")),
            None,
        );
    }
}

fn person_required(person_column: Option<&str>) -> &str {
    match person_column {
        Some(p) => p,
        None => raise(
            PgSqlErrorCode::ERRCODE_NULL_VALUE_NOT_ALLOWED,
            "person_column must not be NULL",
            None,
            Some("risk is counted in distinct persons: name the column that holds the person id".into()),
        ),
    }
}

/// The classes below k, each as a jsonb object of its quasi-identifier values,
/// with its number of distinct persons; smallest first.
pub fn k_report(rel: pg_sys::Oid, qis: &[Option<String>], person_column: Option<&str>, k: i32) -> Vec<(JsonB, i64)> {
    positive_k(k);
    let c = check(rel, qis, Some(person_required(person_column)));
    let object = c
        .qis
        .iter()
        .map(|(name, quoted)| format!("{}, {quoted}", pg_literal(name)))
        .collect::<Vec<_>>()
        .join(", ");
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

fn pg_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// Distinct l-diversity: the fewest distinct sensitive values in any class.
pub fn l_diversity(rel: pg_sys::Oid, qis: &[Option<String>], sensitive: &str, person_column: Option<&str>) -> Option<i64> {
    let c = check(rel, qis, Some(person_required(person_column)));
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
pub fn risk_profile(rel: pg_sys::Oid, qis: &[Option<String>], person_column: Option<&str>, k: i32) -> JsonB {
    positive_k(k);
    let c = check(rel, qis, Some(person_required(person_column)));
    let histogram = class_size_histogram(&c);
    let classes: i64 = histogram.iter().map(|&(_, n)| n).sum();
    // Persons counted per class; a person whose rows fall in two classes counts twice.
    let persons: i64 = histogram.iter().map(|&(size, n)| size * n).sum();
    let below_k: i64 = histogram.iter().filter(|&&(size, _)| size < k as i64).map(|&(size, n)| size * n).sum();
    let uniques: i64 = histogram.iter().filter(|&&(size, _)| size == 1).map(|&(_, n)| n).sum();
    let smallest = histogram.first().map(|&(size, _)| size);
    let ratio = |a: i64, b: i64| if b == 0 { Value::Null } else { json!(((a as f64 / b as f64) * 1e6).round() / 1e6) };
    // Buckets that read well in psql: 1, 2, 3-4, 5-9, 10-19, 20-49, 50-99, 100+.
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
            let width = ((n as f64 / widest as f64) * 40.0).ceil() as usize;
            Value::String(format!("{label:>6} | {:<40} {n}", "#".repeat(width)))
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

/// A quasi-identifier's hierarchy: built in, or a user table whose first column
/// is the value and whose next columns are its levels.
enum Hierarchy {
    BuiltIn(BuiltIn),
    Table { levels: HashMap<String, Vec<String>>, depth: u8 },
}

impl Hierarchy {
    fn max_level(&self) -> u8 {
        match self {
            Hierarchy::BuiltIn(b) => b.max_level(),
            Hierarchy::Table { depth, .. } => *depth + 1,
        }
    }

    fn generalize(&self, value: &str, level: u8) -> String {
        match self {
            Hierarchy::BuiltIn(b) => b.generalize(value, level),
            Hierarchy::Table { levels, depth } => {
                if level == 0 {
                    value.to_string()
                } else if level > *depth {
                    SUPPRESSED.to_string()
                } else {
                    levels.get(value).and_then(|l| l.get(level as usize - 1)).cloned().unwrap_or_else(|| "?".into())
                }
            }
        }
    }

    fn label(&self, level: u8) -> String {
        match self {
            Hierarchy::BuiltIn(b) => b.label(level),
            Hierarchy::Table { .. } if level == 0 => "as stored".into(),
            Hierarchy::Table { depth, .. } if level > *depth => "suppressed".into(),
            Hierarchy::Table { .. } => format!("table level {level}"),
        }
    }
}

fn spec_error(key: &str, what: &str) -> ! {
    raise(
        PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
        format!("invalid generalization spec at \"{key}\": {what}"),
        None,
        Some(r#"for example {"person_column": "person_id", "quasi_identifiers": {"age": {"hierarchy": "age", "top": 90}, "visit_date": "date", "postal_code": "postal", "address": "geography", "job": {"hierarchy": "table", "table": "public.job_levels"}}}"#.into()),
    )
}

fn hierarchy_of(column: &str, spec: &Value) -> Hierarchy {
    let key = format!("quasi_identifiers.{column}");
    let (name, top, table) = match spec {
        Value::String(s) => (s.as_str(), None, None),
        Value::Object(o) => {
            let name = o.get("hierarchy").and_then(Value::as_str).unwrap_or_else(|| spec_error(&key, "needs \"hierarchy\""));
            let top = match o.get("top") {
                None => None,
                Some(v) => Some(v.as_i64().filter(|t| (1..=200).contains(t)).unwrap_or_else(|| spec_error(&key, "\"top\" must be an age from 1 to 200")) as i32),
            };
            (name, top, o.get("table").and_then(Value::as_str))
        }
        _ => spec_error(&key, "must be a hierarchy name or an object"),
    };
    if name == "table" {
        let Some(table) = table else { spec_error(&key, "a table hierarchy needs \"table\"") };
        return table_hierarchy(&key, table);
    }
    match BuiltIn::parse(name, top) {
        Some(b) => Hierarchy::BuiltIn(b),
        None => spec_error(&key, &format!("unknown hierarchy \"{name}\" (age, date, postal, geography or table)")),
    }
}

/// Reads a user hierarchy table as the caller: value, level 1, level 2, ...
fn table_hierarchy(key: &str, table: &str) -> Hierarchy {
    let oid = Spi::get_one_with_args::<pg_sys::Oid>("SELECT pg_catalog.to_regclass($1)::oid", &[table.into()])
        .ok()
        .flatten()
        .unwrap_or_else(|| spec_error(key, &format!("table \"{table}\" does not exist")));
    let depth = Spi::get_one_with_args::<i64>(
        "SELECT pg_catalog.count(*) FROM pg_catalog.pg_attribute WHERE attrelid OPERATOR(pg_catalog.=) $1
           AND attnum OPERATOR(pg_catalog.>) 0 AND NOT attisdropped",
        &[oid.into()],
    )
    .ok()
    .flatten()
    .unwrap_or(0);
    if !(2..=20).contains(&depth) {
        spec_error(key, "a hierarchy table has a value column and 1 to 19 level columns");
    }
    let rows = Spi::connect(|client| {
        let sql = format!(
            "SELECT pg_catalog.to_jsonb(t) FROM {} AS t",
            Spi::get_one_with_args::<String>("SELECT $1::regclass::text", &[oid.into()]).ok().flatten().unwrap_or_default()
        );
        client.select(&sql, None, &[])?.map(|r| r.get::<JsonB>(1)).collect::<Result<Vec<_>, SpiError>>()
    })
    .unwrap_or_else(|e| spi_failed("could not read the hierarchy table", e));
    let columns = Spi::connect(|client| {
        client
            .select(
                "SELECT attname::text FROM pg_catalog.pg_attribute WHERE attrelid OPERATOR(pg_catalog.=) $1
                   AND attnum OPERATOR(pg_catalog.>) 0 AND NOT attisdropped ORDER BY attnum",
                None,
                &[oid.into()],
            )?
            .map(|r| r.get::<String>(1))
            .collect::<Result<Vec<_>, SpiError>>()
    })
    .unwrap_or_else(|e| spi_failed("could not read the hierarchy table", e));
    let columns: Vec<String> = columns.into_iter().flatten().collect();
    let text = |v: Option<&Value>| match v {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => "?".into(),
        Some(other) => other.to_string(),
    };
    let mut levels = HashMap::new();
    for row in rows.into_iter().flatten() {
        let value = text(row.0.get(&columns[0]));
        let rest: Vec<String> = columns[1..].iter().map(|c| text(row.0.get(c))).collect();
        levels.insert(value, rest);
    }
    Hierarchy::Table { levels, depth: (depth - 1) as u8 }
}

/// Finds the generalization of lowest loss that makes `rel` k-anonymous in
/// distinct persons while suppressing at most `max_suppression` of them.
pub fn suggest_generalization(rel: pg_sys::Oid, spec: &Value, k: i32, max_suppression: f64) -> JsonB {
    positive_k(k);
    if !(0.0..=1.0).contains(&max_suppression) {
        raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            "max_suppression must be between 0 and 1",
            Some(format!("max_suppression is {max_suppression}")),
            Some("it is the share of persons that may be suppressed, for example 0.01".into()),
        );
    }
    let Value::Object(spec) = spec else { spec_error("(top)", "must be an object") };
    for key in spec.keys() {
        if key != "person_column" && key != "quasi_identifiers" {
            spec_error(key, "unknown key (person_column, quasi_identifiers)");
        }
    }
    let person = spec.get("person_column").and_then(Value::as_str).unwrap_or_else(|| spec_error("person_column", "must name a column"));
    let Some(Value::Object(qi_spec)) = spec.get("quasi_identifiers") else {
        spec_error("quasi_identifiers", "must be an object of column: hierarchy")
    };
    if qi_spec.is_empty() || qi_spec.len() > 8 {
        spec_error("quasi_identifiers", "must name 1 to 8 columns");
    }
    let names: Vec<Option<String>> = qi_spec.keys().map(|k| Some(k.clone())).collect();
    let c = check(rel, &names, Some(person));
    let hierarchies: Vec<Hierarchy> = qi_spec.iter().map(|(col, h)| hierarchy_of(col, h)).collect();
    let lattice = Lattice::new(hierarchies.iter().map(Hierarchy::max_level).collect());
    // The tags take a byte per node; a million nodes is far beyond any useful search.
    if lattice.size() > 1_000_000 {
        raise(
            PgSqlErrorCode::ERRCODE_PROGRAM_LIMIT_EXCEEDED,
            "the generalization lattice is too large to search",
            Some(format!("{} nodes", lattice.size())),
            Some("name fewer quasi-identifiers, or give table hierarchies fewer levels".into()),
        );
    }

    // Load (person, value per QI) once, as the caller; dates as ISO text whatever
    // the session's DateStyle, so the date hierarchy reads them.
    let columns = c.qis.iter().map(|(_, q)| format!("{q}::text")).collect::<Vec<_>>().join(", ");
    let sql = format!("SELECT {}::text, {columns} FROM {} WHERE {} IS NOT NULL", c.person.clone().unwrap_or_default(), c.relation, c.person.clone().unwrap_or_default());
    let dims = hierarchies.len();
    let mut person_codes: HashMap<String, u32> = HashMap::new();
    let mut value_codes: Vec<HashMap<String, u32>> = vec![HashMap::new(); dims];
    let mut rows: Vec<(u32, Vec<u32>)> = Vec::new();
    crate::definer::with_settings(&[(c"DateStyle", c"ISO, YMD")], || Spi::connect(|client| {
        let table = client.select(&sql, None, &[])?;
        rows.reserve(table.len());
        for row in table {
            let p = row.get::<String>(1)?.unwrap_or_default();
            let next = person_codes.len() as u32;
            let pc = *person_codes.entry(p).or_insert(next);
            let mut codes = Vec::with_capacity(dims);
            for (i, dict) in value_codes.iter_mut().enumerate() {
                let v = row.get::<String>(i + 2)?.unwrap_or_else(|| "NULL".into());
                let next = dict.len() as u32;
                codes.push(*dict.entry(v).or_insert(next));
            }
            rows.push((pc, codes));
        }
        Ok::<_, SpiError>(())
    }))
    .unwrap_or_else(|e| spi_failed("could not read the relation", e));
    // A value the hierarchy cannot read is an error, not a silent class of its own.
    for (((name, _), h), dict) in c.qis.iter().zip(&hierarchies).zip(&value_codes) {
        if let Hierarchy::BuiltIn(b) = h {
            if let Some(bad) = dict.keys().find(|v| v.as_str() != "NULL" && !b.reads(v)) {
                raise(
                    PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
                    format!("column \"{name}\" has a value its hierarchy cannot read"),
                    Some(format!("value {}", medanon_core::error::quoted(bad))),
                    Some("age takes whole years, date takes dates, postal takes 7-digit postal codes".into()),
                );
            }
        }
    }
    let persons = person_codes.len() as u64;

    // Every level of every hierarchy as a code per distinct value.
    let generalized: Vec<Vec<Vec<u32>>> = hierarchies
        .iter()
        .zip(&value_codes)
        .map(|(h, dict)| {
            let mut values: Vec<(&String, &u32)> = dict.iter().collect();
            values.sort_by_key(|(_, &code)| code);
            (0..=h.max_level())
                .map(|level| {
                    let mut codes: HashMap<String, u32> = HashMap::new();
                    values
                        .iter()
                        .map(|(v, _)| {
                            let g = h.generalize(v, level);
                            let next = codes.len() as u32;
                            *codes.entry(g).or_insert(next)
                        })
                        .collect()
                })
                .collect()
        })
        .collect();

    let suppression_limit = (max_suppression * persons as f64).floor() as u64;
    // A class is packed into one u128: each dimension gets the bits its level needs.
    let bits: Vec<Vec<u32>> = generalized
        .iter()
        .map(|levels| levels.iter().map(|codes| 32 - codes.iter().copied().max().unwrap_or(0).leading_zeros()).collect())
        .collect();
    let widest: u32 = bits.iter().map(|b| b.iter().copied().max().unwrap_or(0)).sum();
    if widest > 128 {
        raise(
            PgSqlErrorCode::ERRCODE_PROGRAM_LIMIT_EXCEEDED,
            "too many distinct quasi-identifier values to search",
            Some(format!("the ungeneralized classes need {widest} bits, more than 128")),
            Some("name fewer quasi-identifiers, or pre-generalize the widest ones".into()),
        );
    }
    let evaluate = |node: &[u8]| -> Evaluation {
        // (class, person) pairs, sorted and deduplicated: class sizes in persons.
        let mut pairs: Vec<(u128, u32)> = rows
            .iter()
            .map(|(p, codes)| {
                let mut key = 0u128;
                for (i, &v) in codes.iter().enumerate() {
                    let level = node[i] as usize;
                    key = (key << bits[i][level]) | generalized[i][level][v as usize] as u128;
                }
                (key, *p)
            })
            .collect();
        pairs.sort_unstable();
        pairs.dedup();
        let mut small_persons: Vec<u32> = Vec::new();
        for class in pairs.chunk_by(|a, b| a.0 == b.0) {
            if (class.len() as i64) < k as i64 {
                small_persons.extend(class.iter().map(|&(_, p)| p));
            }
        }
        small_persons.sort_unstable();
        small_persons.dedup();
        let suppressed = small_persons.len() as u64;
        Evaluation { anonymous: persons > 0 && suppressed <= suppression_limit, suppressed }
    };
    let result = search(&lattice, evaluate);

    let mut levels = Map::new();
    if let Some((node, _)) = &result.best {
        for (((name, _), h), &level) in c.qis.iter().zip(&hierarchies).zip(node) {
            levels.insert(name.clone(), json!({"level": level, "of": h.max_level(), "label": h.label(level)}));
        }
    }
    JsonB(json!({
        "k": k,
        "max_suppression": max_suppression,
        "persons": persons,
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
