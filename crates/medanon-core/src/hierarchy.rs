//! Generalization hierarchies for the lattice search: for each quasi-identifier,
//! what its value becomes at each level. Level 0 is the value as stored; the top
//! level is always `*` (suppressed to one class), so every lattice has an anonymous
//! top when enough persons exist.
//!
//! * `age` (an age in years): 1, 5, 10, 20-year bands, then `*`, with every age at
//!   or above the top code in `[top,)`;
//! * `date` (YYYY-MM-DD): day, month, quarter, year, `*`;
//! * `postal` (a Japanese postal code): 7, 3, 1, 0 digits kept;
//! * `geography` (an address or a postal code): as stored, municipality (市区町村, a
//!   designated city's ward), prefecture, region (地方), national (`*`); the order is
//!   [`GeographyLevel`], the one place that defines it.
//!
//! A value the hierarchy cannot read (an unparseable date, a postal code without 7
//! digits) generalizes to `?` at every level below the top, so it forms its own
//! class rather than disappearing.
//!
//! Besides the built-ins, a hierarchy can be a user's table ([`TableHierarchy`]).
//! [`GeneralizationSpec`] reads the spec of `suggest_generalization`, which names
//! each quasi-identifier's hierarchy; every refusal names its key.

use crate::error::{InputError, Kind};
use crate::generalize::{age_band, parse_postal_code, truncate_date, DateUnit};
use crate::municipality::{resolve as resolve_municipality, prefecture_of_value, WardLevel};
use crate::prefecture::region_of;
use serde_json::Value;
use std::collections::HashMap;

#[derive(Debug, Clone, PartialEq)]
pub enum BuiltIn {
    Age { top: i32 },
    Date,
    Postal,
    Geography,
}

pub const SUPPRESSED: &str = "*";
const UNREADABLE: &str = "?";

impl BuiltIn {
    pub fn parse(name: &str, top: Option<i32>) -> Option<BuiltIn> {
        match name {
            "age" => Some(BuiltIn::Age { top: top.unwrap_or(90) }),
            "date" => Some(BuiltIn::Date),
            "postal" => Some(BuiltIn::Postal),
            "geography" => Some(BuiltIn::Geography),
            _ => None,
        }
    }

    /// The highest level (which is `*`).
    pub fn max_level(&self) -> u8 {
        match self {
            BuiltIn::Age { .. } | BuiltIn::Date => 4,
            BuiltIn::Postal => 3,
            BuiltIn::Geography => 4,
        }
    }

    /// A short description of a level, for reports.
    pub fn label(&self, level: u8) -> String {
        let labels: &[&str] = match self {
            BuiltIn::Age { .. } => &["1 year", "5 years", "10 years", "20 years", "suppressed"],
            BuiltIn::Date => &["day", "month", "quarter", "year", "suppressed"],
            BuiltIn::Postal => &["7 digits", "3 digits", "1 digit", "0 digits"],
            BuiltIn::Geography => &["as stored", "municipality", "prefecture", "region", "national"],
        };
        labels.get(level as usize).unwrap_or(&"?").to_string()
    }

    /// Whether the hierarchy can read a value. Geography reads every address (one
    /// that names no prefecture stays itself at level 0 and is `?` above).
    pub fn reads(&self, value: &str) -> bool {
        match self {
            BuiltIn::Geography => true,
            _ => self.generalize(value, 0) != UNREADABLE,
        }
    }

    pub fn generalize(&self, value: &str, level: u8) -> String {
        if level >= self.max_level() {
            return SUPPRESSED.to_string();
        }
        match self {
            BuiltIn::Age { top } => {
                let Ok(age) = value.trim().parse::<i32>() else { return UNREADABLE.to_string() };
                let band = [1, 5, 10, 20][level as usize];
                match age_band(age, band, *top) {
                    Ok(b) => match b.upper {
                        Some(u) => format!("[{},{})", b.lower, u),
                        None => format!("[{},)", b.lower),
                    },
                    Err(_) => UNREADABLE.to_string(),
                }
            }
            BuiltIn::Date => {
                let Ok(day) = crate::jpdate::parse_japanese_date(value) else { return UNREADABLE.to_string() };
                let unit = [DateUnit::Day, DateUnit::Month, DateUnit::Quarter, DateUnit::Year][level as usize];
                truncate_date(day, unit).to_string()
            }
            BuiltIn::Postal => {
                let Ok(digits) = parse_postal_code(value) else { return UNREADABLE.to_string() };
                let keep = [7usize, 3, 1][level as usize];
                let shown: String = digits.iter().enumerate().map(|(i, &d)| if i < keep { char::from(d) } else { '*' }).collect();
                format!("{}-{}", &shown[..3], &shown[3..])
            }
            // Each level is a function of the one below (the lattice's monotonicity
            // needs it): a value whose municipality is unknown reads as its
            // prefecture and `?` (東京都?), and the prefecture is the municipality's.
            BuiltIn::Geography => match level {
                0 => value.trim().to_string(),
                1 => match resolve_municipality(value, WardLevel::Ward) {
                    Ok(m) => m.label,
                    Err(_) => format!("{}{UNREADABLE}", prefecture_of_value(value).unwrap_or("")),
                },
                2 => prefecture_of_value(value).unwrap_or(UNREADABLE).to_string(),
                _ => prefecture_of_value(value).and_then(region_of).unwrap_or(UNREADABLE).to_string(),
            },
        }
    }
}

/// The levels of geography, finest first: the one definition of their order, for
/// the `geography` hierarchy above and for comparing two contract rules on an
/// address (`keep` < `municipality` < `{"municipality": "city"}` < `prefecture` <
/// region < `drop`). A designated city's ward is finer than the city.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum GeographyLevel {
    AsStored,
    Municipality(WardLevel),
    Prefecture,
    Region,
    National,
}

impl GeographyLevel {
    /// Whether `self` shows no more than `other` (the same level or coarser).
    pub fn at_least_as_coarse_as(self, other: GeographyLevel) -> bool {
        compare_geography(self, other) != std::cmp::Ordering::Less
    }
}

/// Compares two geography levels: `Less` when `a` is finer than `b`.
pub fn compare_geography(a: GeographyLevel, b: GeographyLevel) -> std::cmp::Ordering {
    a.cmp(&b)
}

/// The most quasi-identifiers one search takes. With the deepest built-in
/// hierarchies (age and date: 5 levels, `*` included), 8 make 5^8 = 390,625 lattice
/// nodes, within [`crate::lattice::MAX_NODES`]; a ninth would pass it (1,953,125).
/// Beyond a handful, k is reached only by generalizing nearly everything anyway.
pub const MAX_QUASI_IDENTIFIERS: usize = 8;

/// The highest top code an age hierarchy takes. Above the oldest recorded age (122)
/// a top code puts nobody in the top band, so the bound has only to refuse what is
/// no age at all (a year such as 1990, or 1e308); 200 does that without overruling
/// a deliberately high top.
pub const MAX_TOP_AGE: i64 = 200;

/// The most level columns a hierarchy table has (after its value column). Deeper
/// than any code system such a table models (ICD-10: chapter, block, category,
/// subcategory; municipality codes: 3), and each level multiplies the lattice.
pub const MAX_TABLE_LEVELS: usize = 19;

/// A refusal of a generalization spec: the key at fault and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecError {
    /// `(top)`, a top-level key, or `quasi_identifiers.<column>`.
    pub key: String,
    pub what: String,
}

impl SpecError {
    pub fn new(key: impl Into<String>, what: impl Into<String>) -> Self {
        SpecError { key: key.into(), what: what.into() }
    }
}

/// The hint of every spec refusal: a spec that uses every kind of hierarchy.
pub const SPEC_EXAMPLE: &str = r#"for example {"person_column": "person_id", "quasi_identifiers": {"age": {"hierarchy": "age", "top": 90}, "visit_date": "date", "postal_code": "postal", "address": "geography", "job": {"hierarchy": "table", "table": "public.job_levels"}}}"#;

impl From<SpecError> for InputError {
    fn from(e: SpecError) -> InputError {
        InputError::new(Kind::InvalidParameterValue, format!("invalid generalization spec at \"{}\": {}", e.key, e.what))
            .hint(SPEC_EXAMPLE)
    }
}

/// What the spec names as one quasi-identifier's hierarchy.
#[derive(Debug, Clone, PartialEq)]
pub enum HierarchySpec {
    BuiltIn(BuiltIn),
    /// A user's table, by the name the spec gives (resolved by the caller).
    Table(String),
}

/// The spec of a generalization search.
#[derive(Debug, Clone, PartialEq)]
pub struct GeneralizationSpec {
    pub person_column: String,
    /// Column and hierarchy, in the spec's order.
    pub quasi_identifiers: Vec<(String, HierarchySpec)>,
}

impl GeneralizationSpec {
    /// Reads a spec: `{"person_column": ..., "quasi_identifiers": {column: hierarchy}}`
    /// where a hierarchy is a built-in's name, `{"hierarchy": name, "top": age}` or
    /// `{"hierarchy": "table", "table": name}`.
    pub fn parse(spec: &Value) -> Result<GeneralizationSpec, SpecError> {
        let Value::Object(spec) = spec else { return Err(SpecError::new("(top)", "must be an object")) };
        if let Some(key) = spec.keys().find(|k| *k != "person_column" && *k != "quasi_identifiers") {
            return Err(SpecError::new(key.as_str(), "unknown key (person_column, quasi_identifiers)"));
        }
        let person_column = spec
            .get("person_column")
            .and_then(Value::as_str)
            .ok_or_else(|| SpecError::new("person_column", "must name a column"))?;
        let Some(Value::Object(columns)) = spec.get("quasi_identifiers") else {
            return Err(SpecError::new("quasi_identifiers", "must be an object of column: hierarchy"));
        };
        if columns.is_empty() || columns.len() > MAX_QUASI_IDENTIFIERS {
            return Err(SpecError::new("quasi_identifiers", format!("must name 1 to {MAX_QUASI_IDENTIFIERS} columns")));
        }
        let quasi_identifiers = columns
            .iter()
            .map(|(column, h)| Ok((column.clone(), hierarchy_spec(&format!("quasi_identifiers.{column}"), h)?)))
            .collect::<Result<_, SpecError>>()?;
        Ok(GeneralizationSpec { person_column: person_column.to_string(), quasi_identifiers })
    }
}

fn hierarchy_spec(key: &str, spec: &Value) -> Result<HierarchySpec, SpecError> {
    let (name, top, table) = match spec {
        Value::String(s) => (s.as_str(), None, None),
        Value::Object(o) => {
            let name = o.get("hierarchy").and_then(Value::as_str).ok_or_else(|| SpecError::new(key, "needs \"hierarchy\""))?;
            let top = match o.get("top") {
                None => None,
                Some(v) => Some(
                    v.as_i64()
                        .filter(|t| (1..=MAX_TOP_AGE).contains(t))
                        .ok_or_else(|| SpecError::new(key, format!("\"top\" must be an age from 1 to {MAX_TOP_AGE}")))?
                        as i32,
                ),
            };
            (name, top, o.get("table").and_then(Value::as_str))
        }
        _ => return Err(SpecError::new(key, "must be a hierarchy name or an object")),
    };
    if name == "table" {
        return table.map(|t| HierarchySpec::Table(t.to_string())).ok_or_else(|| SpecError::new(key, "a table hierarchy needs \"table\""));
    }
    BuiltIn::parse(name, top).map(HierarchySpec::BuiltIn).ok_or_else(|| {
        SpecError::new(key, format!("unknown hierarchy {} (age, date, postal, geography or table)", crate::error::quoted(name)))
    })
}

/// The columns of a hierarchy table, checked: a value column, then 1 to
/// [`MAX_TABLE_LEVELS`] level columns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableColumns(Vec<String>);

impl TableColumns {
    /// `key` is the spec's key for the refusal.
    pub fn new(key: &str, names: Vec<String>) -> Result<TableColumns, SpecError> {
        if !(2..=MAX_TABLE_LEVELS + 1).contains(&names.len()) {
            return Err(SpecError::new(
                key,
                format!("a hierarchy table has a value column and 1 to {MAX_TABLE_LEVELS} level columns"),
            ));
        }
        Ok(TableColumns(names))
    }
}

/// A user's hierarchy table: for each value, its generalization at each level.
#[derive(Debug, Clone, PartialEq)]
pub struct TableHierarchy {
    levels: HashMap<String, Vec<String>>,
    depth: u8,
}

impl TableHierarchy {
    /// From the table's rows, each a JSON object of column: value (`to_jsonb(t)`).
    /// A NULL or missing cell reads `?`; a value listed twice takes its last row.
    pub fn from_rows<'a>(columns: &TableColumns, rows: impl IntoIterator<Item = &'a Value>) -> TableHierarchy {
        let cell = |row: &Value, column: &str| match row.get(column) {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Null) | None => UNREADABLE.to_string(),
            Some(other) => other.to_string(),
        };
        // TableColumns holds at least two names.
        let (value, rest) = columns.0.split_first().map(|(v, r)| (v.as_str(), r)).unwrap_or(("", &[]));
        let levels = rows
            .into_iter()
            .map(|row| (cell(row, value), rest.iter().map(|c| cell(row, c)).collect()))
            .collect();
        TableHierarchy { levels, depth: rest.len() as u8 }
    }
}

/// A quasi-identifier's hierarchy, ready to generalize.
#[derive(Debug, Clone, PartialEq)]
pub enum Hierarchy {
    BuiltIn(BuiltIn),
    Table(TableHierarchy),
}

impl Hierarchy {
    /// The highest level (which is `*`).
    pub fn max_level(&self) -> u8 {
        match self {
            Hierarchy::BuiltIn(b) => b.max_level(),
            Hierarchy::Table(t) => t.depth + 1,
        }
    }

    pub fn generalize(&self, value: &str, level: u8) -> String {
        match self {
            Hierarchy::BuiltIn(b) => b.generalize(value, level),
            Hierarchy::Table(_) if level == 0 => value.to_string(),
            Hierarchy::Table(t) if level > t.depth => SUPPRESSED.to_string(),
            Hierarchy::Table(t) => t
                .levels
                .get(value)
                .and_then(|l| l.get(level as usize - 1))
                .cloned()
                .unwrap_or_else(|| UNREADABLE.to_string()),
        }
    }

    pub fn label(&self, level: u8) -> String {
        match self {
            Hierarchy::BuiltIn(b) => b.label(level),
            Hierarchy::Table(_) if level == 0 => "as stored".into(),
            Hierarchy::Table(t) if level > t.depth => "suppressed".into(),
            Hierarchy::Table(_) => format!("table level {level}"),
        }
    }

    /// Whether the hierarchy can read a value. A table reads every value (one it
    /// does not list is `?` above level 0).
    pub fn reads(&self, value: &str) -> bool {
        match self {
            Hierarchy::BuiltIn(b) => b.reads(value),
            Hierarchy::Table(_) => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels() {
        let age = BuiltIn::Age { top: 90 };
        let got: Vec<String> = (0..=4).map(|l| age.generalize("47", l)).collect();
        assert_eq!(got, ["[47,48)", "[45,50)", "[40,50)", "[40,60)", "*"]);
        assert_eq!(age.generalize("93", 2), "[90,)");
        assert_eq!(age.generalize("x", 1), "?");
        let date = BuiltIn::Date;
        let got: Vec<String> = (0..=4).map(|l| date.generalize("2026-11-24", l)).collect();
        assert_eq!(got, ["2026-11-24", "2026-11-01", "2026-10-01", "2026-01-01", "*"]);
        let postal = BuiltIn::Postal;
        let got: Vec<String> = (0..=3).map(|l| postal.generalize("〒123-4567", l)).collect();
        assert_eq!(got, ["123-4567", "123-****", "1**-****", "*"]);
        let geo = BuiltIn::Geography;
        let got: Vec<String> = (0..=4).map(|l| geo.generalize("横浜市中区山下町", l)).collect();
        assert_eq!(got, ["横浜市中区山下町", "神奈川県横浜市中区", "神奈川県", "関東地方", "*"]);
        // A postal code climbs the same way; an unknown municipality keeps its prefecture.
        let got: Vec<String> = (0..=4).map(|l| geo.generalize("〒437-0604", l)).collect();
        assert_eq!(got, ["〒437-0604", "静岡県浜松市天竜区", "静岡県", "中部地方", "*"]);
        let got: Vec<String> = (0..=2).map(|l| geo.generalize("静岡県周智郡春野町宮川", l)).collect();
        assert_eq!(got, ["静岡県周智郡春野町宮川", "静岡県?", "静岡県"]);
        assert_eq!(geo.generalize("どこか", 1), "?");
        assert_eq!(geo.generalize("どこか", 2), "?");
    }

    #[test]
    fn geography_levels_are_ordered() {
        use GeographyLevel::*;
        let order = [AsStored, Municipality(WardLevel::Ward), Municipality(WardLevel::City), Prefecture, Region, National];
        for (i, a) in order.iter().enumerate() {
            for (j, b) in order.iter().enumerate() {
                assert_eq!(compare_geography(*a, *b), i.cmp(&j), "{a:?} {b:?}");
                assert_eq!(a.at_least_as_coarse_as(*b), i >= j);
            }
        }
    }

    /// Geography's levels nest: two values in one class at a level stay in one
    /// class at every higher level (the lattice search relies on it).
    #[test]
    fn geography_levels_only_coarsen() {
        let geo = BuiltIn::Geography;
        let values = [
            "横浜市中区山下町", "神奈川県横浜市中区", "横浜市", "神奈川県", "東京都府中市", "府中市", "広島県府中市",
            "〒004-0000", "004-0000", "札幌市厚別区", "静岡県周智郡春野町", "静岡県浜松市天竜区春野町", "〒437-0604",
            "港区六本木 (東京都)", "不明", "", "035-0000", "000-0000", "大阪市北区", "堺市北区", "北区",
        ];
        for l in 0..geo.max_level() {
            for a in values {
                for b in values {
                    if geo.generalize(a, l) == geo.generalize(b, l) {
                        assert_eq!(geo.generalize(a, l + 1), geo.generalize(b, l + 1), "{a} {b} at {l}");
                    }
                }
            }
        }
    }

    #[test]
    fn levels_only_coarsen() {
        // Two values in one class at a level stay in one class at every higher level.
        let date = BuiltIn::Date;
        let days = ["2026-01-01", "2026-01-31", "2026-02-01", "2026-03-31", "2026-12-31", "2025-12-31"];
        for l in 0..date.max_level() {
            for a in days {
                for b in days {
                    if date.generalize(a, l) == date.generalize(b, l) {
                        assert_eq!(date.generalize(a, l + 1), date.generalize(b, l + 1), "{a} {b} at {l}");
                    }
                }
            }
        }
    }

    use proptest::prelude::*;
    use serde_json::json;

    fn refusal(spec: Value) -> (String, String) {
        let e = GeneralizationSpec::parse(&spec).unwrap_err();
        (e.key, e.what)
    }

    #[test]
    fn spec_reads_every_kind_of_hierarchy() {
        let spec = GeneralizationSpec::parse(&json!({
            "person_column": "p",
            "quasi_identifiers": {"age": {"hierarchy": "age", "top": 70}, "visit": "date", "job": {"hierarchy": "table", "table": "public.jobs"}}
        }))
        .unwrap();
        assert_eq!(spec.person_column, "p");
        let mut qis = spec.quasi_identifiers.clone();
        qis.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(
            qis,
            [
                ("age".to_string(), HierarchySpec::BuiltIn(BuiltIn::Age { top: 70 })),
                ("job".to_string(), HierarchySpec::Table("public.jobs".into())),
                ("visit".to_string(), HierarchySpec::BuiltIn(BuiltIn::Date)),
            ]
        );
    }

    #[test]
    fn spec_refusals_name_their_key() {
        let qi = |h: Value| json!({"person_column": "p", "quasi_identifiers": {"a": h}});
        let at = "quasi_identifiers.a";
        let cases: Vec<(Value, &str, &str)> = vec![
            (json!([1, 2]), "(top)", "must be an object"),
            (json!({"person_column": "p", "quasi_identifiers": {"a": "age"}, "extra": 1}), "extra", "unknown key"),
            (json!({"quasi_identifiers": {"a": "age"}}), "person_column", "must name a column"),
            (json!({"person_column": 5, "quasi_identifiers": {"a": "age"}}), "person_column", "must name a column"),
            (json!({"person_column": "p"}), "quasi_identifiers", "must be an object"),
            (json!({"person_column": "p", "quasi_identifiers": {}}), "quasi_identifiers", "1 to 8 columns"),
            (json!({"person_column": "p", "quasi_identifiers": {"a": "age", "b": "age", "c": "age", "d": "age", "e": "age",
                                                                  "f": "age", "g": "age", "h": "age", "i": "age"}}),
             "quasi_identifiers", "1 to 8 columns"),
            (qi(json!("shoe size")), at, "unknown hierarchy \"shoe size\""),
            (qi(json!(3)), at, "must be a hierarchy name or an object"),
            (qi(json!({"top": 90})), at, "needs \"hierarchy\""),
            (qi(json!({"hierarchy": "age", "top": 0})), at, "from 1 to 200"),
            (qi(json!({"hierarchy": "age", "top": 201})), at, "from 1 to 200"),
            (qi(json!({"hierarchy": "age", "top": 1e308})), at, "from 1 to 200"),
            (qi(json!({"hierarchy": "age", "top": "90"})), at, "from 1 to 200"),
            (qi(json!({"hierarchy": "table"})), at, "needs \"table\""),
        ];
        for (spec, key, what) in cases {
            let (k, w) = refusal(spec.clone());
            assert_eq!(k, key, "{spec}");
            assert!(w.contains(what), "{spec}: {w}");
        }
        // The bounds themselves are accepted.
        for top in [1, MAX_TOP_AGE] {
            assert!(GeneralizationSpec::parse(&qi(json!({"hierarchy": "age", "top": top}))).is_ok());
        }
        let e: InputError = SpecError::new("quasi_identifiers.a", "needs \"hierarchy\"").into();
        assert_eq!(e.kind, Kind::InvalidParameterValue);
        assert_eq!(e.message, "invalid generalization spec at \"quasi_identifiers.a\": needs \"hierarchy\"");
        assert_eq!(e.hint.as_deref(), Some(SPEC_EXAMPLE));
    }

    #[test]
    fn table_hierarchies() {
        assert!(TableColumns::new("k", vec!["value".into()]).is_err());
        let too_deep: Vec<String> = (0..=MAX_TABLE_LEVELS + 1).map(|i| format!("c{i}")).collect();
        assert_eq!(TableColumns::new("k", too_deep).unwrap_err().key, "k");
        let columns = TableColumns::new("k", vec!["job".into(), "group".into(), "sector".into()]).unwrap();
        let rows = [
            json!({"job": "nurse", "group": "care", "sector": "health"}),
            json!({"job": "surgeon", "group": "medicine", "sector": "health"}),
            json!({"job": 7, "group": null, "sector": "x"}),
        ];
        let h = Hierarchy::Table(TableHierarchy::from_rows(&columns, &rows));
        assert_eq!(h.max_level(), 3);
        let got: Vec<String> = (0..=3).map(|l| h.generalize("nurse", l)).collect();
        assert_eq!(got, ["nurse", "care", "health", "*"]);
        // Numbers read as their JSON text; NULL cells and unlisted values as `?`.
        assert_eq!(h.generalize("7", 2), "x");
        assert_eq!(h.generalize("7", 1), "?");
        assert_eq!(h.generalize("pilot", 0), "pilot");
        assert_eq!(h.generalize("pilot", 1), "?");
        assert_eq!([h.label(0), h.label(2), h.label(3)], ["as stored", "table level 2", "suppressed"]);
        assert!(h.reads("anything"));
        assert!(!Hierarchy::BuiltIn(BuiltIn::Age { top: 90 }).reads("forty"));
    }

    /// Any JSON value, a few levels deep.
    fn any_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map(Value::Number).unwrap_or(Value::Null)),
            prop_oneof![
                Just("age".to_string()), Just("date".to_string()), Just("postal".to_string()),
                Just("geography".to_string()), Just("table".to_string()), Just("hierarchy".to_string()),
                Just("top".to_string()), Just("person_column".to_string()), Just("quasi_identifiers".to_string()),
                ".{0,12}",
            ]
            .prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            let key = prop_oneof![
                Just("hierarchy".to_string()), Just("top".to_string()), Just("table".to_string()),
                Just("person_column".to_string()), Just("quasi_identifiers".to_string()), ".{0,8}",
            ];
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
                proptest::collection::vec((key, inner), 0..6)
                    .prop_map(|kv| Value::Object(kv.into_iter().collect())),
            ]
        })
    }

    fn check_refusal(spec: &Value, e: &SpecError) -> Result<(), TestCaseError> {
        let top_keys: Vec<&String> = spec.as_object().map(|o| o.keys().collect()).unwrap_or_default();
        let columns: Vec<String> = spec
            .get("quasi_identifiers")
            .and_then(Value::as_object)
            .map(|o| o.keys().map(|c| format!("quasi_identifiers.{c}")).collect())
            .unwrap_or_default();
        let named = e.key == "(top)"
            || e.key == "person_column"
            || e.key == "quasi_identifiers"
            || top_keys.contains(&&e.key)
            || columns.contains(&e.key);
        prop_assert!(named, "refusal of {} names {:?}", spec, e.key);
        prop_assert!(!e.what.is_empty());
        let message = InputError::from(e.clone()).message;
        let quoted_key = format!("\"{}\"", e.key);
        prop_assert!(message.contains(&quoted_key), "{} lacks {}", message, quoted_key);
        Ok(())
    }

    proptest! {
        #[test]
        fn spec_parsing_never_panics_and_names_the_key(spec in any_json()) {
            if let Err(e) = GeneralizationSpec::parse(&spec) {
                check_refusal(&spec, &e)?;
            }
        }

        /// Near-valid specs: the two keys present, each quasi-identifier anything.
        #[test]
        fn near_valid_specs_parse_or_name_the_column(person in any_json(), qis in proptest::collection::vec((".{0,6}", any_json()), 0..10)) {
            let spec = json!({"person_column": person, "quasi_identifiers": Value::Object(qis.into_iter().collect())});
            match GeneralizationSpec::parse(&spec) {
                Ok(parsed) => {
                    prop_assert!(!parsed.quasi_identifiers.is_empty() && parsed.quasi_identifiers.len() <= MAX_QUASI_IDENTIFIERS);
                    prop_assert_eq!(Some(parsed.person_column.as_str()), spec["person_column"].as_str());
                }
                Err(e) => check_refusal(&spec, &e)?,
            }
        }
    }
}
