//! Equivalence classes of a relation under a generalization, counted in distinct
//! persons: what the lattice search (`lattice::search`) evaluates at each node.
//!
//! The rows are loaded once and dictionary-encoded: each person and each distinct
//! value of each quasi-identifier gets a number, and each value's generalization at
//! every level of its hierarchy gets one too. A node then maps every row to a class
//! key, packed into one `u128` (each quasi-identifier takes the bits its level's
//! codes need), and sorting the (class, person) pairs gives the class sizes.

use crate::hierarchy::Hierarchy;
use crate::lattice::Evaluation;
use std::collections::HashMap;

/// How a NULL quasi-identifier value is encoded: as this text, so NULLs form their
/// own class at level 0, and a hierarchy generalizes them like any value it cannot
/// read.
pub const NULL_VALUE: &str = "NULL";

/// The widest class key: every quasi-identifier's widest level, together.
pub const CLASS_KEY_BITS: u32 = u128::BITS;

/// Rows being loaded: each as its person's code and one value code per dimension.
pub struct Encoder {
    persons: HashMap<String, u32>,
    values: Vec<HashMap<String, u32>>,
    rows: Vec<(u32, Vec<u32>)>,
}

/// Why the rows cannot be searched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// A value its (built-in) hierarchy cannot read, in dimension `dimension`.
    Unreadable { dimension: usize, value: String },
    /// The ungeneralized class keys need more than [`CLASS_KEY_BITS`] bits.
    TooManyValues { bits: u32 },
}

impl Encoder {
    pub fn new(dimensions: usize) -> Encoder {
        Encoder { persons: HashMap::new(), values: vec![HashMap::new(); dimensions], rows: Vec::new() }
    }

    pub fn reserve(&mut self, rows: usize) {
        self.rows.reserve(rows);
    }

    /// Adds a row: its person and its value per dimension (NULL as `None`; a missing
    /// dimension reads as NULL, an extra value is ignored).
    pub fn push(&mut self, person: String, values: Vec<Option<String>>) {
        let next = self.persons.len() as u32;
        let person = *self.persons.entry(person).or_insert(next);
        let mut values = values.into_iter();
        let codes = self
            .values
            .iter_mut()
            .map(|dict| {
                let v = values.next().flatten().unwrap_or_else(|| NULL_VALUE.to_string());
                let next = dict.len() as u32;
                *dict.entry(v).or_insert(next)
            })
            .collect();
        self.rows.push((person, codes));
    }

    /// Encodes every level of every hierarchy (one per dimension, in order).
    pub fn encode(self, hierarchies: &[Hierarchy]) -> Result<Classes, Refusal> {
        // Each dimension's distinct values, in code order.
        let values: Vec<Vec<String>> = self
            .values
            .into_iter()
            .map(|dict| {
                let mut v: Vec<(String, u32)> = dict.into_iter().collect();
                v.sort_unstable_by_key(|&(_, code)| code);
                v.into_iter().map(|(value, _)| value).collect()
            })
            .collect();
        // A value the hierarchy cannot read is an error, not a silent class of its own.
        for (dimension, (h, values)) in hierarchies.iter().zip(&values).enumerate() {
            if let Some(bad) = values.iter().find(|v| v.as_str() != NULL_VALUE && !h.reads(v)) {
                return Err(Refusal::Unreadable { dimension, value: bad.clone() });
            }
        }
        let generalized: Vec<Vec<Vec<u32>>> = hierarchies
            .iter()
            .zip(&values)
            .map(|(h, values)| {
                (0..=h.max_level())
                    .map(|level| {
                        let mut codes: HashMap<String, u32> = HashMap::new();
                        values
                            .iter()
                            .map(|v| {
                                let next = codes.len() as u32;
                                *codes.entry(h.generalize(v, level)).or_insert(next)
                            })
                            .collect()
                    })
                    .collect()
            })
            .collect();
        let bits: Vec<Vec<u32>> = generalized
            .iter()
            .map(|levels| levels.iter().map(|codes| u32::BITS - codes.iter().copied().max().unwrap_or(0).leading_zeros()).collect())
            .collect();
        let widest: u32 = bits.iter().map(|b| b.iter().copied().max().unwrap_or(0)).sum();
        if widest > CLASS_KEY_BITS {
            return Err(Refusal::TooManyValues { bits: widest });
        }
        Ok(Classes { persons: self.persons.len() as u64, rows: self.rows, generalized, bits })
    }
}

/// The encoded rows, ready to evaluate lattice nodes over.
pub struct Classes {
    persons: u64,
    rows: Vec<(u32, Vec<u32>)>,
    /// Per dimension, per level, per value code: the generalized value's code.
    generalized: Vec<Vec<Vec<u32>>>,
    /// Per dimension, per level: the bits its codes need.
    bits: Vec<Vec<u32>>,
}

impl Classes {
    /// Distinct persons in the rows.
    pub fn persons(&self) -> u64 {
        self.persons
    }

    /// The most persons that may be suppressed: a share of them, rounded down.
    pub fn suppression_limit(&self, max_suppression: f64) -> u64 {
        (max_suppression * self.persons as f64).floor() as u64
    }

    /// Evaluates a node (one level per dimension): the persons in classes of fewer
    /// than `k` persons would be suppressed, and the node is anonymous when they are
    /// at most `suppression_limit` (and there is anyone at all).
    pub fn evaluate(&self, node: &[u8], k: i32, suppression_limit: u64) -> Evaluation {
        // (class, person) pairs, sorted and deduplicated: class sizes in persons.
        let mut pairs: Vec<(u128, u32)> = self
            .rows
            .iter()
            .map(|(p, codes)| {
                let mut key = 0u128;
                for (i, &v) in codes.iter().enumerate() {
                    let level = node[i] as usize;
                    key = (key << self.bits[i][level]) | self.generalized[i][level][v as usize] as u128;
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
        Evaluation { anonymous: self.persons > 0 && suppressed <= suppression_limit, suppressed }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hierarchy::{BuiltIn, TableColumns, TableHierarchy};
    use crate::lattice::{search, Lattice};
    use proptest::prelude::*;
    use std::collections::{BTreeMap, BTreeSet};

    fn age() -> Hierarchy {
        Hierarchy::BuiltIn(BuiltIn::Age { top: 90 })
    }

    fn load(rows: &[(&str, &[Option<&str>])], hierarchies: &[Hierarchy]) -> Result<Classes, Refusal> {
        let mut e = Encoder::new(hierarchies.len());
        for (p, values) in rows {
            e.push(p.to_string(), values.iter().map(|v| v.map(str::to_string)).collect());
        }
        e.encode(hierarchies)
    }

    #[test]
    fn classes_count_persons_not_rows() {
        // Person a has three visits at 41: still one person in that class.
        let rows: &[(&str, &[Option<&str>])] =
            &[("a", &[Some("41")]), ("a", &[Some("41")]), ("a", &[Some("41")]), ("b", &[Some("43")]), ("c", &[Some("47")])];
        let c = load(rows, &[age()]).unwrap();
        assert_eq!(c.persons(), 3);
        // Level 0 (1 year): three classes of one person each.
        assert_eq!(c.evaluate(&[0], 2, 0), Evaluation { anonymous: false, suppressed: 3 });
        assert_eq!(c.evaluate(&[0], 2, 3), Evaluation { anonymous: true, suppressed: 3 });
        // Level 1 (5 years): [40,45) holds a and b, [45,50) holds c.
        assert_eq!(c.evaluate(&[1], 2, 0), Evaluation { anonymous: false, suppressed: 1 });
        // Level 2 (10 years): one class of three.
        assert_eq!(c.evaluate(&[2], 3, 0), Evaluation { anonymous: true, suppressed: 0 });
        assert_eq!(c.suppression_limit(0.5), 1);
    }

    #[test]
    fn nulls_and_refusals() {
        let rows: &[(&str, &[Option<&str>])] = &[("a", &[None]), ("b", &[Some("40")]), ("c", &[])];
        let c = load(rows, &[age()]).unwrap();
        // a and c are NULL: one class of two at level 0.
        assert_eq!(c.evaluate(&[0], 2, 0).suppressed, 1);
        let bad: &[(&str, &[Option<&str>])] = &[("a", &[Some("40")]), ("b", &[Some("forty")])];
        assert_eq!(load(bad, &[age()]).err(), Some(Refusal::Unreadable { dimension: 0, value: "forty".into() }));
        // Nobody: never anonymous.
        assert!(!load(&[], &[age()]).unwrap().evaluate(&[4], 1, 0).anonymous);
    }

    #[test]
    fn too_many_values_for_one_key() {
        // Sixteen dimensions of 257 distinct values: 9 bits each at level 0, 144
        // together. (A one-level table hierarchy, which generalizes cheaply.)
        let columns = TableColumns::new("k", vec!["value".into(), "level".into()]).unwrap();
        let table = Hierarchy::Table(TableHierarchy::from_rows(&columns, &[]));
        let dims = 16;
        let hierarchies: Vec<Hierarchy> = (0..dims).map(|_| table.clone()).collect();
        let mut e = Encoder::new(dims);
        for i in 0..257 {
            e.push(i.to_string(), (0..dims).map(|_| Some(i.to_string())).collect());
        }
        assert_eq!(e.encode(&hierarchies).err(), Some(Refusal::TooManyValues { bits: 144 }));
        // One value fewer fits: 8 bits each, 128 together.
        let mut e = Encoder::new(dims);
        for i in 0..256 {
            e.push(i.to_string(), (0..dims).map(|_| Some(i.to_string())).collect());
        }
        assert!(e.encode(&hierarchies).is_ok());
    }

    /// Class sizes by brute force: generalize every value as text and count.
    fn brute_force(rows: &[(u8, Vec<u8>)], hierarchies: &[Hierarchy], node: &[u8], k: i32) -> u64 {
        let mut classes: BTreeMap<Vec<String>, BTreeSet<u8>> = BTreeMap::new();
        for (p, values) in rows {
            let key = values.iter().zip(hierarchies).zip(node).map(|((v, h), &l)| h.generalize(&v.to_string(), l)).collect();
            classes.entry(key).or_default().insert(*p);
        }
        let small: BTreeSet<u8> = classes.values().filter(|s| (s.len() as i64) < k as i64).flatten().copied().collect();
        small.len() as u64
    }

    proptest! {
        #[test]
        fn evaluation_equals_brute_force(rows in proptest::collection::vec((0u8..12, proptest::collection::vec(0u8..100, 2)), 0..40),
                                         k in 1i32..5) {
            let hierarchies = [age(), age()];
            let mut e = Encoder::new(2);
            for (p, values) in &rows {
                e.push(p.to_string(), values.iter().map(|v| Some(v.to_string())).collect());
            }
            let classes = e.encode(&hierarchies).unwrap();
            let lattice = Lattice::new(vec![4, 4]);
            for i in 0..lattice.size() as usize {
                let node = lattice.node(i);
                prop_assert_eq!(classes.evaluate(&node, k, 0).suppressed, brute_force(&rows, &hierarchies, &node, k));
            }
            // And the search over it finds an anonymous node whenever anyone is there.
            let result = search(&lattice, |n| classes.evaluate(n, k, classes.suppression_limit(0.0)));
            let persons: BTreeSet<u8> = rows.iter().map(|r| r.0).collect();
            prop_assert_eq!(result.best.is_some(), persons.len() as i64 >= k as i64);
        }
    }
}
