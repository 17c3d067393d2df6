//! Onward provision (第三者提供): a contract derived from another (`"derived_from"`)
//! hands the parent's data on to a third party, under a contract of its own. It may
//! never show more than its parent: [`check_derived`] compares the two specs and
//! refuses the first key at which the derived one is looser, naming it the way
//! every other spec refusal does (`tables[1].columns.icd10`).
//!
//! "The same or coarser" is decided per rule, conservatively: two rules that are
//! not comparable (a token against a prefecture, a percentile cap against a value
//! cap) are refused, since the derived one could then show something the parent
//! does not. A column or a table that the parent does not expose (absent, or
//! dropped) may only be absent or dropped in the derived spec.

use crate::contract::{Bound, ColumnSpec, Contract, Kind, Refusal, Rule, SpecError, TableSpec};
use crate::generalize::age_band;

/// The units of `truncate_date`, finest first.
const DATE_UNITS: &[&str] = &["month", "quarter", "year"];

/// How protective a contract kind is: a derived contract's kind is at least its
/// parent's. Row-level pseudonymized data (exact values) < anonymized rows <
/// statistics only.
fn kind_rank(kind: Kind) -> u8 {
    match kind {
        Kind::Pseudonymized => 0,
        Kind::Anonymized => 1,
        Kind::Statistics => 2,
    }
}

/// The ages a band rule separates: for each age a from 0 to 150, whether a and
/// a + 1 fall in different bands. A band rule is coarser than another exactly when
/// it separates no pair of ages that the other keeps together (each of its bands
/// is a union of the other's).
fn band_cuts(band: i32, top: i32) -> Vec<bool> {
    (0..=150)
        .map(|a| match (age_band(a, band, top), age_band(a + 1, band, top)) {
            (Ok(x), Ok(y)) => x != y,
            // Bounds are checked by the spec parser; an unreadable band separates
            // everything, so nothing is taken as coarser than it by mistake.
            _ => true,
        })
        .collect()
}

/// Whether age bands `child` are the same as or a merge of `parent`'s.
pub fn bands_coarser(parent: (i32, i32), child: (i32, i32)) -> bool {
    let (p, c) = (band_cuts(parent.0, parent.1), band_cuts(child.0, child.1));
    p.iter().zip(&c).all(|(p, c)| !*c || *p)
}

/// Whether a cap (top code) `child` hides at least what `parent` hides. None is no
/// cap. Percentiles compare with percentiles only: both are computed over their
/// own contract's visible persons, and a value against a percentile has no order.
fn top_coarser(parent: Option<Bound>, child: Option<Bound>) -> bool {
    match (parent, child) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(Bound::Value(p)), Some(Bound::Value(c))) => c <= p,
        (Some(Bound::Percentile(p)), Some(Bound::Percentile(c))) => c <= p,
        _ => false,
    }
}

/// As [`top_coarser`], for a floor (bottom code): the derived floor is at or above.
fn bottom_coarser(parent: Option<Bound>, child: Option<Bound>) -> bool {
    match (parent, child) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(Bound::Value(p)), Some(Bound::Value(c))) => c >= p,
        (Some(Bound::Percentile(p)), Some(Bound::Percentile(c))) => c >= p,
        _ => false,
    }
}

/// Whether rule `child` shows the same as or less than rule `parent` on one column.
/// Why it is not, when it is not.
pub fn rule_coarser(parent: &Rule, child: &Rule) -> Result<(), String> {
    use Rule::*;
    if child == parent || *child == Drop {
        return Ok(());
    }
    let ok = match (parent, child) {
        // Nothing shows more than the value as stored; `auto` never reaches a
        // stored contract (the planner refuses it).
        (Keep, Auto) => false,
        (Keep, _) => true,
        // From a date moved by the person's offset, the days since the person's
        // first date follow (differences of shifted dates): they show less.
        (Shift, DaysSince) => true,
        (TruncateDate(p), TruncateDate(c)) => {
            matches!((DATE_UNITS.iter().position(|u| u == p), DATE_UNITS.iter().position(|u| u == c)), (Some(p), Some(c)) if c >= p)
        }
        (AgeBand { band: pb, top: pt }, AgeBand { band: cb, top: ct }) => bands_coarser((*pb, *pt), (*cb, *ct)),
        (PostalPrefix(p), PostalPrefix(c)) => c <= p,
        (Code { top: pt, bottom: pb }, Code { top: ct, bottom: cb }) => top_coarser(*pt, *ct) && bottom_coarser(*pb, *cb),
        // A DICOM object shows an age band, the sex or a burned-in annotation only
        // where the parent's rule did.
        (Dicom(p), Dicom(c)) => {
            (!c.age_band || p.age_band) && (!c.keep_sex || p.keep_sex) && (!c.accept_burned_in || p.accept_burned_in)
        }
        // The geography order, owned by crate::hierarchy::GeographyLevel (as stored
        // < ward < city < prefecture < region < national): a derived column may
        // climb it, never descend it.
        (p, c) => matches!((p.geography_level(), c.geography_level()), (Some(p), Some(c)) if c > p),
    };
    if ok {
        Ok(())
    } else {
        Err(format!("\"{}\" shows more than, or other than, the parent's \"{}\"", describe(child), describe(parent)))
    }
}

/// A rule as a person reads it in a refusal.
fn describe(rule: &Rule) -> String {
    let bound = |b: &Bound| match b {
        Bound::Value(v) => format!("{v}"),
        Bound::Percentile(p) => format!("percentile {p}"),
    };
    match rule {
        Rule::AgeBand { band, top } => format!("age_band {band} years, top {top}"),
        Rule::PostalPrefix(n) => format!("postal_prefix {n}"),
        Rule::TruncateDate(u) => format!("truncate_date {u}"),
        Rule::Code { top, bottom } => {
            let mut parts = vec![];
            if let Some(t) = top {
                parts.push(format!("top_code {}", bound(t)));
            }
            if let Some(b) = bottom {
                parts.push(format!("bottom_code {}", bound(b)));
            }
            parts.join(", ")
        }
        other => other.name().to_string(),
    }
}

fn loosens(path: impl Into<String>, message: impl Into<String>) -> SpecError {
    SpecError::new(Refusal::InvalidSpec, path, message)
        .hint("a derived contract (derived_from) is never less protective than its parent: the same or higher k and min_persons, each rule the same or coarser")
}

/// The smallest number of persons a shown value of this column needs: its own
/// `min_persons`, or the contract's (which is k by default). None without k.
fn column_floor(contract: &Contract, column: &ColumnSpec) -> Option<i32> {
    contract.min_persons().map(|m| column.min_persons.map_or(m, |c| c.max(m)))
}

fn check_table(parent: &Contract, p: &TableSpec, child: &Contract, c: &TableSpec, i: usize) -> Result<(), SpecError> {
    for (name, cc) in &c.columns {
        let at = format!("tables[{i}].columns.{name}");
        if cc.rule == Rule::Drop {
            continue;
        }
        let Some(pc) = p.columns.get(name).filter(|pc| pc.rule != Rule::Drop) else {
            return Err(loosens(at, format!("the parent contract does not expose {}.{name}", c.source)));
        };
        rule_coarser(&pc.rule, &cc.rule).map_err(|m| loosens(at.clone(), m))?;
        if let (Rule::AgeBand { .. }, Rule::AgeBand { .. }) = (&pc.rule, &cc.rule) {
            if child.reference_date != parent.reference_date {
                return Err(loosens(
                    "reference_date",
                    format!("age bands on another reference date than the parent's ({}) are not a merge of its bands",
                        parent.reference_date.map_or("none".to_string(), |d| d.to_string())),
                ));
            }
        }
        // Rare values (特異な記述): a column that shows values needs at least as many
        // persons per value, and climbs no hierarchy its parent does not (a
        // parent without one removes a rare value; climbing would show its parent
        // label).
        if let Some(pf) = column_floor(parent, pc) {
            match column_floor(child, cc) {
                Some(cf) if cf >= pf => {}
                cf => {
                    return Err(loosens(
                        at,
                        format!("min_persons {} is below the parent's {pf}", cf.map_or("(none)".to_string(), |n| n.to_string())),
                    ))
                }
            }
        }
        if cc.hierarchy.is_some() && cc.hierarchy != pc.hierarchy && column_floor(parent, pc).is_some() {
            return Err(loosens(
                at,
                format!(
                    "hierarchy {} climbs where the parent {}",
                    cc.hierarchy.as_ref().map(|h| h.stored()).unwrap_or_default(),
                    pc.hierarchy.as_ref().map_or("removes rare values".to_string(), |h| format!("climbs {}", h.stored()))
                ),
            ));
        }
    }
    Ok(())
}

/// Checks that `child`, a spec with `derived_from`, is never less protective than
/// `parent`: kind, k, `min_persons`, `min_cell`, expiry, and every exposed column
/// of every table. The first looser key is refused (22023), in spec order.
pub fn check_derived(parent: &Contract, child: &Contract) -> Result<(), SpecError> {
    let (p, c) = (&parent.spec, &child.spec);
    if kind_rank(c.kind) < kind_rank(p.kind) {
        return Err(loosens("kind", format!("\"{}\" shows more than the parent's \"{}\"", c.kind.name(), p.kind.name())));
    }
    if let Some(pk) = p.k {
        match c.k {
            Some(ck) if ck >= pk => {}
            ck => return Err(loosens("k", format!("{} is below the parent's {pk}", ck.map_or("(none)".to_string(), |k| k.to_string())))),
        }
    }
    if let Some(pm) = parent.min_persons() {
        match child.min_persons() {
            Some(cm) if cm >= pm => {}
            cm => {
                return Err(loosens(
                    "min_persons",
                    format!("{} is below the parent's {pm}", cm.map_or("(none)".to_string(), |n| n.to_string())),
                ))
            }
        }
    }
    if p.kind == Kind::Statistics && child.min_cell() < parent.min_cell() {
        return Err(loosens("min_cell", format!("{} is below the parent's {}", child.min_cell(), parent.min_cell())));
    }
    if child.expires_on > parent.expires_on {
        return Err(loosens("expires_on", format!("{} is after the parent's expiry, {}", child.expires_on, parent.expires_on)));
    }
    for (i, t) in c.tables.iter().enumerate() {
        let exposes = t.columns.values().any(|col| col.rule != Rule::Drop);
        match p.tables.iter().find(|pt| pt.source == t.source) {
            Some(pt) => check_table(parent, pt, child, t, i)?,
            None if exposes => {
                return Err(loosens(format!("tables[{i}].source"), format!("the parent contract does not expose \"{}\"", t.source)))
            }
            None => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calendar::Ymd;
    use crate::contract::parse;
    use proptest::prelude::*;

    const TODAY: Ymd = Ymd { year: 2026, month: 11, day: 24 };

    const PARENT: &str = r#"{"id": "c2026_001", "grantee": "lab_a", "purpose": "post-marketing safety of drug X",
        "approved_on": "2026-11-01", "expires_on": "2027-03-31", "kind": "anonymized", "k": 5,
        "reference_date": "2026-04-01",
        "tables": [
          {"source": "clinical.patient",
           "columns": {"person_id": "token", "birth_date": {"age_band": {"band": 5, "top": 90}},
                       "sex": "keep", "postal_code": {"postal_prefix": 3}, "address": "prefecture", "note": "drop"}},
          {"source": "clinical.visit",
           "columns": {"person_id": "token", "visit_date": "shift", "icd10": {"hierarchy": "icd10", "min_persons": 8},
                       "lab_value": {"top_code": 500, "bottom_code": 10}, "ward": "keep",
                       "admitted": {"truncate_date": "month"}, "pct": {"top_code": {"percentile": 99}}}}
        ]}"#;

    fn contract(json: &str) -> Contract {
        parse(json, TODAY).unwrap_or_else(|e| panic!("{e}: {json}"))
    }

    /// The parent with its id and grantee changed, and `derived_from` set: the
    /// derived contract that is the same as its parent.
    fn same() -> String {
        PARENT.replacen(r#""id": "c2026_001", "grantee": "lab_a""#, r#""id": "c2026_002", "grantee": "pharma_b", "derived_from": "c2026_001""#, 1)
    }

    fn with(from: &str, to: &str) -> String {
        let s = same();
        assert!(s.contains(from), "{from}");
        s.replacen(from, to, 1)
    }

    fn check(child: &str) -> Result<(), SpecError> {
        check_derived(&contract(PARENT), &contract(child))
    }

    #[test]
    fn the_same_spec_and_coarsenings_are_accepted() {
        assert_eq!(contract(&same()).spec.derived_from.as_deref(), Some("c2026_001"));
        let coarser = [
            same(),
            with(r#""k": 5"#, r#""k": 7"#),
            with(r#""k": 5"#, r#""k": 5, "min_persons": 8"#),
            with(r#""kind": "anonymized""#, r#""kind": "statistics""#),
            with(r#""expires_on": "2027-03-31""#, r#""expires_on": "2027-01-31""#),
            with(r#"{"band": 5, "top": 90}"#, r#"{"band": 10, "top": 90}"#),
            with(r#"{"band": 5, "top": 90}"#, r#"{"band": 5, "top": 80}"#),
            with(r#"{"band": 5, "top": 90}"#, r#"{"band": 20, "top": 80}"#),
            with(r#"{"band": 5, "top": 90}"#, r#"{"band": 30, "top": 90}"#),
            with(r#"{"postal_prefix": 3}"#, r#"{"postal_prefix": 1}"#),
            with(r#""sex": "keep""#, r#""sex": "drop""#),
            with(r#""sex": "keep""#, r#""sex": "token""#),
            with(r#""ward": "keep""#, r#""ward": "prefecture""#),
            with(r#""visit_date": "shift""#, r#""visit_date": {"days_since": "first"}"#),
            with(r#"{"truncate_date": "month"}"#, r#"{"truncate_date": "year"}"#),
            with(r#"{"top_code": 500, "bottom_code": 10}"#, r#"{"top_code": 400, "bottom_code": 20}"#),
            with(r#"{"top_code": {"percentile": 99}}"#, r#"{"top_code": {"percentile": 95}, "bottom_code": {"percentile": 5}}"#),
            with(r#"{"hierarchy": "icd10", "min_persons": 8}"#, r#"{"min_persons": 8}"#),
            with(r#"{"hierarchy": "icd10", "min_persons": 8}"#, r#"{"hierarchy": "icd10", "min_persons": 12}"#),
            with(r#""note": "drop""#, r#""note": "drop", "other": "drop""#),
            // A table left out is not exposed.
            with(r#""ward": "keep","#, r#""ward": "drop","#),
        ];
        for json in coarser {
            assert_eq!(check(&json), Ok(()), "{json}");
        }
    }

    #[test]
    fn every_loosening_is_refused_naming_its_key() {
        let looser = [
            (with(r#""k": 5"#, r#""k": 4"#), "k"),
            (
                with(r#""kind": "anonymized", "k": 5"#, r#""kind": "pseudonymized""#)
                    .replacen(r#"{"hierarchy": "icd10", "min_persons": 8}"#, r#""keep""#, 1),
                "kind",
            ),
            (with(r#""expires_on": "2027-03-31""#, r#""expires_on": "2027-04-01""#), "expires_on"),
            (with(r#""reference_date": "2026-04-01""#, r#""reference_date": "2026-05-01""#), "reference_date"),
            (with(r#"{"band": 5, "top": 90}"#, r#"{"band": 1, "top": 90}"#), "tables[0].columns.birth_date"),
            (with(r#"{"band": 5, "top": 90}"#, r#"{"band": 5, "top": 95}"#), "tables[0].columns.birth_date"),
            // 7-year bands are no merge of 5-year ones.
            (with(r#"{"band": 5, "top": 90}"#, r#"{"band": 7, "top": 90}"#), "tables[0].columns.birth_date"),
            (with(r#"{"band": 5, "top": 90}"#, r#"{"band": 10, "top": 87}"#), "tables[0].columns.birth_date"),
            (with(r#"{"postal_prefix": 3}"#, r#"{"postal_prefix": 4}"#), "tables[0].columns.postal_code"),
            (with(r#"{"postal_prefix": 3}"#, r#""keep""#), "tables[0].columns.postal_code"),
            (with(r#""address": "prefecture""#, r#""address": "keep""#), "tables[0].columns.address"),
            (with(r#""person_id": "token""#, r#""person_id": "keep""#), "tables[0].columns.person_id"),
            (with(r#""note": "drop""#, r#""note": "keep""#), "tables[0].columns.note"),
            (with(r#""note": "drop""#, r#""note": "drop", "secret": "token""#), "tables[0].columns.secret"),
            (with(r#""visit_date": "shift""#, r#""visit_date": "keep""#), "tables[1].columns.visit_date"),
            (with(r#""visit_date": "shift""#, r#""visit_date": {"truncate_date": "year"}"#), "tables[1].columns.visit_date"),
            (with(r#"{"truncate_date": "month"}"#, r#"{"days_since": "first"}"#), "tables[1].columns.admitted"),
            (with(r#"{"truncate_date": "month"}"#, r#""shift""#), "tables[1].columns.admitted"),
            (with(r#"{"top_code": 500, "bottom_code": 10}"#, r#"{"top_code": 600, "bottom_code": 10}"#), "tables[1].columns.lab_value"),
            (with(r#"{"top_code": 500, "bottom_code": 10}"#, r#"{"top_code": 500, "bottom_code": 5}"#), "tables[1].columns.lab_value"),
            (with(r#"{"top_code": 500, "bottom_code": 10}"#, r#"{"top_code": 500}"#), "tables[1].columns.lab_value"),
            (with(r#"{"top_code": 500, "bottom_code": 10}"#, r#"{"top_code": {"percentile": 50}, "bottom_code": 10}"#), "tables[1].columns.lab_value"),
            (with(r#"{"top_code": {"percentile": 99}}"#, r#"{"top_code": {"percentile": 99.5}}"#), "tables[1].columns.pct"),
            (with(r#"{"hierarchy": "icd10", "min_persons": 8}"#, r#"{"hierarchy": "icd10", "min_persons": 6}"#), "tables[1].columns.icd10"),
            (with(r#"{"hierarchy": "icd10", "min_persons": 8}"#, r#"{"hierarchy": "ref.icd_levels", "min_persons": 8}"#), "tables[1].columns.icd10"),
            (with(r#""ward": "keep""#, r#""ward": {"hierarchy": "ref.wards"}"#), "tables[1].columns.ward"),
            (with(r#""source": "clinical.visit""#, r#""source": "clinical.lab""#), "tables[1].source"),
        ];
        for (json, path) in looser {
            let e = check(&json).expect_err(&json);
            assert_eq!(e.path, path, "{json}: {e}");
            assert_eq!(e.refusal, Refusal::InvalidSpec);
            assert!(e.hint.as_deref().unwrap_or("").contains("never less protective"), "{e:?}");
        }
        // A pseudonymized parent has no k: anything with k is at least as strict.
        let pseudo = contract(&PARENT.replacen(r#""kind": "anonymized", "k": 5"#, r#""kind": "pseudonymized""#, 1).replacen(r#", "min_persons": 8"#, "", 1).replacen(r#""hierarchy": "icd10""#, r#""keep": true"#, 1));
        assert_eq!(check_derived(&pseudo, &contract(&same())), Ok(()));
    }

    #[test]
    fn the_geography_order_is_the_hierarchy_s() {
        use crate::municipality::WardLevel;
        let (ward, city) = (Rule::Municipality(WardLevel::Ward), Rule::Municipality(WardLevel::City));
        for (finer, coarser) in [(&Rule::Keep, &ward), (&ward, &city), (&city, &Rule::Prefecture), (&ward, &Rule::Prefecture)] {
            assert!(rule_coarser(finer, coarser).is_ok(), "{coarser:?} after {finer:?}");
            assert!(rule_coarser(coarser, finer).is_err(), "{finer:?} after {coarser:?}");
        }
        assert!(rule_coarser(&Rule::Prefecture, &Rule::PostalPrefix(0)).is_err(), "not comparable");
    }

    #[test]
    fn age_bands_are_coarser_only_as_merges() {
        assert!(bands_coarser((5, 90), (5, 90)));
        assert!(bands_coarser((5, 90), (10, 90)));
        assert!(bands_coarser((5, 90), (15, 90)));
        assert!(bands_coarser((5, 90), (5, 70)));
        assert!(bands_coarser((1, 90), (3, 89)), "89 is a 1-year boundary");
        assert!(bands_coarser((5, 90), (10, 85)), "[80,85) and [85,) merge the parent's bands");
        assert!(!bands_coarser((5, 90), (10, 87)), "87 cuts the parent's [85,90)");
        assert!(!bands_coarser((10, 90), (5, 90)));
        assert!(!bands_coarser((5, 88), (5, 90)), "[85,88) and [88,) in the parent; the child cuts at 90");
        assert!(!bands_coarser((5, 90), (5, 91)));
    }

    /// Rules a column may take, for the property tests.
    fn rule() -> impl Strategy<Value = Rule> {
        let bound = prop_oneof![(0i32..1000).prop_map(|v| Bound::Value(v as f64)), (1i32..99).prop_map(|p| Bound::Percentile(p as f64))];
        prop_oneof![
            Just(Rule::Drop),
            Just(Rule::Keep),
            Just(Rule::Token),
            Just(Rule::Shift),
            Just(Rule::DaysSince),
            Just(Rule::Prefecture),
            Just(Rule::Municipality(crate::municipality::WardLevel::Ward)),
            Just(Rule::Municipality(crate::municipality::WardLevel::City)),
            (any::<bool>(), any::<bool>(), any::<bool>()).prop_map(|(age_band, keep_sex, accept_burned_in)| {
                Rule::Dicom(crate::contract::DicomRule { age_band, keep_sex, accept_burned_in })
            }),
            (1i32..=30, 1i32..=100).prop_map(|(band, top)| Rule::AgeBand { band, top }),
            (0i32..=7).prop_map(Rule::PostalPrefix),
            prop_oneof![Just("month"), Just("quarter"), Just("year")].prop_map(|u| Rule::TruncateDate(u.to_string())),
            (proptest::option::of(bound.clone()), proptest::option::of(bound)).prop_filter_map("a bound", |(top, bottom)| {
                (top.is_some() || bottom.is_some()).then_some(Rule::Code { top, bottom })
            }),
        ]
    }

    /// Every loosening of one key of the parent: (the JSON to put in place of the
    /// key's text, the key path).
    fn loosenings() -> Vec<(String, &'static str)> {
        vec![
            (with(r#""k": 5"#, r#""k": 2"#), "k"),
            (with(r#""postal_prefix": 3"#, r#""postal_prefix": 5"#), "tables[0].columns.postal_code"),
            (with(r#""sex": "keep""#, r#""sex": "keep", "name": "keep""#), "tables[0].columns.name"),
            (with(r#""min_persons": 8"#, r#""min_persons": 5"#), "tables[1].columns.icd10"),
            (with(r#""top_code": 500"#, r#""top_code": 501"#), "tables[1].columns.lab_value"),
            (with(r#""bottom_code": 10"#, r#""bottom_code": 9"#), "tables[1].columns.lab_value"),
            (with(r#""truncate_date": "month""#, r#""keep": true"#), "tables[1].columns.admitted"),
            (with(r#""band": 5"#, r#""band": 2"#), "tables[0].columns.birth_date"),
            (with(r#""address": "prefecture""#, r#""address": "keep""#), "tables[0].columns.address"),
        ]
    }

    proptest! {
        /// Any rule compared with itself is accepted, and dropping it always is.
        #[test]
        fn a_rule_is_coarser_than_itself_and_drop_than_all(r in rule()) {
            prop_assert!(rule_coarser(&r, &r).is_ok());
            prop_assert!(rule_coarser(&r, &Rule::Drop).is_ok());
            prop_assert!(rule_coarser(&r, &Rule::Keep).is_ok() == matches!(r, Rule::Keep));
        }

        /// Coarser is a partial order: never both ways between different rules,
        /// and transitive.
        #[test]
        fn coarser_is_antisymmetric_and_transitive(a in rule(), b in rule(), c in rule()) {
            if a != b && rule_coarser(&a, &b).is_ok() && rule_coarser(&b, &a).is_ok() {
                // Only two band rules that cut the same ages (band 30 and 40 under top 30).
                match (&a, &b) {
                    (Rule::AgeBand { band: x, top: s }, Rule::AgeBand { band: y, top: t }) => {
                        prop_assert_eq!(band_cuts(*x, *s), band_cuts(*y, *t));
                    }
                    _ => prop_assert!(false, "{a:?} and {b:?} both coarser than the other"),
                }
            }
            if rule_coarser(&a, &b).is_ok() && rule_coarser(&b, &c).is_ok() {
                prop_assert!(rule_coarser(&a, &c).is_ok(), "{a:?} {b:?} {c:?}");
            }
        }

        /// A coarser age band puts together every two ages its parent puts together.
        #[test]
        fn coarser_bands_merge_the_parents(pb in 1i32..=30, pt in 1i32..=120, cb in 1i32..=30, ct in 1i32..=120, x in 0i32..=150, y in 0i32..=150) {
            if bands_coarser((pb, pt), (cb, ct)) && age_band(x, pb, pt).ok() == age_band(y, pb, pt).ok() {
                prop_assert_eq!(age_band(x, cb, ct).ok(), age_band(y, cb, ct).ok());
            }
        }

        /// Any rule put on any one column: accepted exactly when it is the same as or
        /// coarser than the parent's rule there, and refused at that column otherwise.
        #[test]
        fn any_one_column_is_refused_at_its_key_exactly_when_looser(r in rule(), which in 0usize..11) {
            let columns = [(0, "person_id"), (0, "birth_date"), (0, "sex"), (0, "postal_code"), (0, "address"), (0, "note"),
                           (1, "visit_date"), (1, "lab_value"), (1, "ward"), (1, "admitted"), (1, "pct")];
            let (t, column) = columns[which];
            let parent = contract(PARENT);
            let mut child = contract(&same());
            child.spec.tables[t].columns.insert(column.into(), r.clone().into());
            let result = check_derived(&parent, &child);
            let parent_rule = parent.spec.tables[t].columns[column].rule.clone();
            match rule_coarser(&parent_rule, &r) {
                Ok(()) => prop_assert_eq!(result, Ok(())),
                Err(_) => prop_assert_eq!(result.map_err(|e| e.path), Err(format!("tables[{t}].columns.{column}"))),
            }
        }

        /// The whole spec: a spec compared with itself is accepted, a coarsening of
        /// any one column is accepted, and a loosening of any one key is refused at
        /// that key.
        #[test]
        fn one_key_changed(r in rule(), which in 0usize..9) {
            let child = contract(&same());
            prop_assert_eq!(check_derived(&child, &child), Ok(()));
            // Put r on the parent's sex column (kept): every rule is at least as coarse.
            let mut coarser = child.clone();
            coarser.spec.tables[0].columns.insert("sex".into(), r.clone().into());
            prop_assert_eq!(check_derived(&contract(PARENT), &coarser), Ok(()));
            let cases = loosenings();
            let (json, path) = &cases[which % cases.len()];
            let e = check_derived(&contract(PARENT), &contract(json)).expect_err("loosened");
            prop_assert_eq!(&e.path, path);
        }
    }
}
