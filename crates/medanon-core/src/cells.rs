//! Small-cell suppression for published counts (safe_counts).
//!
//! Primary suppression follows the NDB publication rule: a cell counting fewer
//! than `min_cell` persons (1 to 9 at the default 10) is not shown. Zero cells do
//! not appear at all.
//!
//! Secondary suppression: counts come with their margins (the totals over each
//! grouping column, as `GROUP BY CUBE` gives them). A line is a margin cell and
//! the cells it totals along one column. If exactly one member of a line is
//! hidden, it could be recovered by subtracting the others from the total, so the
//! smallest shown cell of that line is hidden too (the margin itself only when it
//! is the line's one other member). This repeats until no line has exactly one
//! hidden member: the usual heuristic for tables published with totals.

use std::collections::{BTreeMap, BTreeSet};

/// One value of a grouping column: `Total` in a margin, else the value (NULL too).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    Value(Option<String>),
    Total,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Suppression {
    Primary,
    Secondary,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Cell {
    pub key: Vec<Level>,
    pub persons: i64,
    pub suppressed: Option<Suppression>,
}

impl Cell {
    pub fn new(key: Vec<Level>, persons: i64) -> Cell {
        Cell { key, persons, suppressed: None }
    }
}

/// The lines of a set of cells: for each (margin key, column), the indexes of the
/// cells it totals, and the index of the margin cell if it is present.
fn lines(cells: &[Cell]) -> Vec<(Option<usize>, Vec<usize>)> {
    let index: BTreeMap<&[Level], usize> = cells.iter().enumerate().map(|(i, c)| (c.key.as_slice(), i)).collect();
    let mut groups: BTreeMap<(Vec<Level>, usize), Vec<usize>> = BTreeMap::new();
    for (i, cell) in cells.iter().enumerate() {
        for (d, level) in cell.key.iter().enumerate() {
            if *level != Level::Total {
                let mut margin = cell.key.clone();
                margin[d] = Level::Total;
                groups.entry((margin, d)).or_default().push(i);
            }
        }
    }
    groups
        .into_iter()
        .map(|((margin, _), members)| (index.get(margin.as_slice()).copied(), members))
        .collect()
}

/// Marks the cells to hide: primary below `min_cell`, then secondary until no line
/// has exactly one hidden member.
pub fn suppress(cells: &mut [Cell], min_cell: i64) {
    for c in cells.iter_mut() {
        if c.persons < min_cell {
            c.suppressed = Some(Suppression::Primary);
        }
    }
    let lines = lines(cells);
    loop {
        let mut changed = false;
        for (margin, members) in &lines {
            let hidden = members.iter().chain(margin.iter()).filter(|&&i| cells[i].suppressed.is_some()).count();
            if hidden != 1 {
                continue;
            }
            // Hide the smallest shown cell of the line; the margin only if none is left.
            let pick = members
                .iter()
                .copied()
                .filter(|&i| cells[i].suppressed.is_none())
                .min_by_key(|&i| (cells[i].persons, i))
                .or(*margin);
            if let Some(i) = pick {
                if cells[i].suppressed.is_none() {
                    cells[i].suppressed = Some(Suppression::Secondary);
                    changed = true;
                }
            }
        }
        if !changed {
            break;
        }
    }
}

/// Whether any line has exactly one hidden member (for tests and assertions).
pub fn has_lone_hidden_cell(cells: &[Cell]) -> bool {
    lines(cells).iter().any(|(margin, members)| {
        members.iter().chain(margin.iter()).filter(|&&i| cells[i].suppressed.is_some()).count() == 1
    })
}

/// The distinct keys, for checks.
pub fn keys(cells: &[Cell]) -> BTreeSet<Vec<Level>> {
    cells.iter().map(|c| c.key.clone()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn v(s: &str) -> Level {
        Level::Value(Some(s.into()))
    }

    /// A full table with margins from a grid of detail counts (additive, as for
    /// one row per person).
    fn table(grid: &[(&str, &str, i64)]) -> Vec<Cell> {
        let mut sums: BTreeMap<Vec<Level>, i64> = BTreeMap::new();
        for &(a, b, n) in grid {
            for key in [vec![v(a), v(b)], vec![v(a), Level::Total], vec![Level::Total, v(b)], vec![Level::Total, Level::Total]] {
                *sums.entry(key).or_default() += n;
            }
        }
        sums.into_iter().map(|(k, n)| Cell::new(k, n)).collect()
    }

    fn hidden(cells: &[Cell]) -> Vec<(Vec<Level>, Suppression)> {
        cells.iter().filter_map(|c| c.suppressed.map(|s| (c.key.clone(), s))).collect()
    }

    #[test]
    fn one_small_cell_takes_a_partner_in_its_row_and_column() {
        let mut cells = table(&[("m", "a", 3), ("m", "b", 40), ("m", "c", 50), ("f", "a", 30), ("f", "b", 45), ("f", "c", 60)]);
        suppress(&mut cells, 10);
        let h = hidden(&cells);
        assert!(h.contains(&(vec![v("m"), v("a")], Suppression::Primary)));
        // Row m: the next smallest is m/b (40); column a: f/a (30).
        assert!(h.contains(&(vec![v("m"), v("b")], Suppression::Secondary)), "{h:?}");
        assert!(h.contains(&(vec![v("f"), v("a")], Suppression::Secondary)), "{h:?}");
        assert!(!has_lone_hidden_cell(&cells));
        // Totals stay shown: every line now has two hidden members.
        assert!(cells.iter().filter(|c| c.key.contains(&Level::Total)).all(|c| c.suppressed.is_none()));
    }

    #[test]
    fn a_lone_cell_in_its_line_hides_the_margin() {
        // One dimension with a single value: the cell equals the grand total.
        let mut cells = vec![Cell::new(vec![v("x")], 4), Cell::new(vec![Level::Total], 4)];
        suppress(&mut cells, 10);
        assert!(cells.iter().all(|c| c.suppressed.is_some()));
    }

    #[test]
    fn nothing_small_nothing_hidden() {
        let mut cells = table(&[("m", "a", 30), ("f", "a", 30)]);
        suppress(&mut cells, 10);
        assert!(hidden(&cells).is_empty());
    }

    proptest! {
        #[test]
        fn no_line_keeps_exactly_one_hidden_cell(
            grid in proptest::collection::vec((0u8..4, 0u8..4, 1i64..40), 1..16),
            min_cell in 1i64..20,
        ) {
            let grid: Vec<(String, String, i64)> = grid.into_iter().map(|(a, b, n)| (a.to_string(), b.to_string(), n)).collect();
            let refs: Vec<(&str, &str, i64)> = grid.iter().map(|(a, b, n)| (a.as_str(), b.as_str(), *n)).collect();
            let mut cells = table(&refs);
            suppress(&mut cells, min_cell);
            prop_assert!(!has_lone_hidden_cell(&cells));
            for c in &cells {
                if c.persons < min_cell {
                    prop_assert_eq!(c.suppressed, Some(Suppression::Primary));
                }
            }
            // Running it again hides nothing more.
            let before = cells.clone();
            suppress(&mut cells, min_cell);
            prop_assert_eq!(before, cells);
        }
    }
}
