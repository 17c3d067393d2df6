//! The generalization lattice and its search (after ARX's Flash, Kohlmayer et al.
//! 2012). A node gives one generalization level per quasi-identifier; a node is a
//! *predecessor* of another when every level is lower or equal. Being k-anonymous
//! within a suppression limit is monotone: if a node is, every successor is too.
//! The search uses that twice:
//!
//! * **monotonicity pruning with predictive tagging**: when a node is evaluated as
//!   anonymous, all its successors are tagged anonymous without evaluation; when it
//!   is not, all its predecessors are tagged not anonymous;
//! * **paths and binary search**: from the lowest untagged node, a path is built
//!   upward through untagged nodes (at each step the successor with the lowest
//!   loss), and the boundary between not-anonymous and anonymous on that path is
//!   found by binary search.
//!
//! Every node is then tagged; the result is the anonymous node with the lowest loss.
//! The loss is the mean normalized generalization height (each level divided by
//! that quasi-identifier's highest level), the "generalization intensity" ARX also
//! reports; ties go to the node that suppresses fewer persons, then to the lower
//! levels in order.

/// A lattice node: one level per quasi-identifier.
pub type Node = Vec<u8>;

/// The most nodes a search takes. The tags take a byte per node; a million nodes is
/// far beyond any useful search.
pub const MAX_NODES: u64 = 1_000_000;

/// The lattice of all level combinations, `0..=max[i]` for each dimension.
#[derive(Debug, Clone)]
pub struct Lattice {
    pub max: Vec<u8>,
}

impl Lattice {
    pub fn new(max: Vec<u8>) -> Self {
        Lattice { max }
    }

    /// How many nodes the lattice has.
    pub fn size(&self) -> u64 {
        self.max.iter().map(|&m| m as u64 + 1).product()
    }

    /// A dense index for a node (mixed radix).
    pub fn index(&self, node: &[u8]) -> usize {
        let mut idx = 0usize;
        for (i, &l) in node.iter().enumerate() {
            idx = idx * (self.max[i] as usize + 1) + l as usize;
        }
        idx
    }

    pub fn node(&self, mut idx: usize) -> Node {
        let mut node = vec![0u8; self.max.len()];
        for i in (0..self.max.len()).rev() {
            let radix = self.max[i] as usize + 1;
            node[i] = (idx % radix) as u8;
            idx /= radix;
        }
        node
    }

    /// The mean normalized generalization height, in [0, 1].
    pub fn loss(&self, node: &[u8]) -> f64 {
        let dims = self.max.len().max(1) as f64;
        node.iter()
            .zip(&self.max)
            .map(|(&l, &m)| if m == 0 { 0.0 } else { l as f64 / m as f64 })
            .sum::<f64>()
            / dims
    }

    pub fn height(node: &[u8]) -> u32 {
        node.iter().map(|&l| l as u32).sum()
    }

    /// Direct successors: one dimension one level higher.
    pub fn successors(&self, node: &[u8]) -> Vec<Node> {
        (0..node.len())
            .filter(|&i| node[i] < self.max[i])
            .map(|i| {
                let mut n = node.to_vec();
                n[i] += 1;
                n
            })
            .collect()
    }

    pub fn predecessors(&self, node: &[u8]) -> Vec<Node> {
        (0..node.len())
            .filter(|&i| node[i] > 0)
            .map(|i| {
                let mut n = node.to_vec();
                n[i] -= 1;
                n
            })
            .collect()
    }
}

/// What evaluating a node found.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Evaluation {
    /// Anonymous within the suppression limit.
    pub anonymous: bool,
    /// Persons in classes below k, which would be suppressed.
    pub suppressed: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tag {
    Unknown,
    Anonymous,
    NotAnonymous,
}

/// The outcome of a search.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchResult {
    /// The anonymous node of lowest loss, if any node is anonymous.
    pub best: Option<(Node, Evaluation)>,
    pub evaluated: u64,
    pub total: u64,
}

/// The state of one search: a tag and, once computed, an evaluation per node.
struct Searcher<'a, F> {
    lattice: &'a Lattice,
    evaluate: F,
    tags: Vec<Tag>,
    evaluations: Vec<Option<Evaluation>>,
    evaluated: u64,
}

impl<F: FnMut(&[u8]) -> Evaluation> Searcher<'_, F> {
    fn tag(&self, node: &[u8]) -> Tag {
        self.tags[self.lattice.index(node)]
    }

    /// Evaluates a node (once), records the result, and tags by monotonicity:
    /// anonymous tags the node's whole up-set, not anonymous its down-set.
    fn evaluate(&mut self, node: &[u8]) -> Evaluation {
        let i = self.lattice.index(node);
        if let Some(e) = self.evaluations[i] {
            return e;
        }
        let e = (self.evaluate)(node);
        self.evaluated += 1;
        self.evaluations[i] = Some(e);
        let (tag, up) = if e.anonymous { (Tag::Anonymous, true) } else { (Tag::NotAnonymous, false) };
        let mut stack = vec![node.to_vec()];
        while let Some(n) = stack.pop() {
            let j = self.lattice.index(&n);
            if self.tags[j] == tag {
                continue;
            }
            self.tags[j] = tag;
            stack.extend(if up { self.lattice.successors(&n) } else { self.lattice.predecessors(&n) });
        }
        e
    }

    /// Whether a node is anonymous, from its tag or by evaluating it.
    fn anonymous(&mut self, node: &[u8]) -> bool {
        match self.tag(node) {
            Tag::Anonymous => true,
            Tag::NotAnonymous => false,
            Tag::Unknown => self.evaluate(node).anonymous,
        }
    }
}

/// Searches the lattice. `evaluate` computes a node's anonymity (the expensive
/// part); it is called only for nodes the tags cannot decide.
pub fn search(lattice: &Lattice, evaluate: impl FnMut(&[u8]) -> Evaluation) -> SearchResult {
    let total = lattice.size();
    let n = total as usize;
    let mut s = Searcher { lattice, evaluate, tags: vec![Tag::Unknown; n], evaluations: vec![None; n], evaluated: 0 };

    // Visit nodes bottom-up (by height, then by loss), so paths start low. Losses
    // are non-negative, so their bit patterns sort as the numbers do.
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by_cached_key(|&i| {
        let node = lattice.node(i);
        (Lattice::height(&node), lattice.loss(&node).to_bits(), node)
    });
    for &start in &order {
        if s.tags[start] != Tag::Unknown {
            continue;
        }
        // A path upward through untagged nodes, cheapest successor first.
        let mut path = vec![lattice.node(start)];
        while let Some(next) = path
            .last()
            .map(|last| lattice.successors(last))
            .unwrap_or_default()
            .into_iter()
            .filter(|succ| s.tag(succ) == Tag::Unknown)
            .min_by(|a, b| lattice.loss(a).total_cmp(&lattice.loss(b)).then(a.cmp(b)))
        {
            path.push(next);
        }
        // Binary search for the lowest anonymous node on the path.
        let (mut lo, mut hi) = (0usize, path.len());
        while lo < hi {
            let mid = (lo + hi) / 2;
            if s.anonymous(&path[mid]) {
                hi = mid;
            } else {
                lo = mid + 1;
            }
        }
        // Path nodes the binary search skipped are tagged by now, except where the
        // path had no anonymous node at all; tag what is left of it from the top.
        for node in &path {
            if s.tag(node) == Tag::Unknown {
                s.evaluate(node);
            }
        }
    }

    // The best node is minimal among the anonymous ones, so it is either evaluated
    // or a node whose predecessors are all not anonymous; evaluate such untested
    // minimal candidates to learn their suppression, then choose by loss.
    let mut best: Option<(Node, Evaluation)> = None;
    for i in 0..n {
        if s.tags[i] != Tag::Anonymous {
            continue;
        }
        let node = lattice.node(i);
        let minimal = lattice.predecessors(&node).iter().all(|p| s.tag(p) == Tag::NotAnonymous);
        if !minimal {
            continue;
        }
        let e = s.evaluate(&node);
        let better = match &best {
            None => true,
            Some((b, be)) => {
                let (l, bl) = (lattice.loss(&node), lattice.loss(b));
                l < bl - 1e-12 || ((l - bl).abs() <= 1e-12 && (e.suppressed, &node) < (be.suppressed, b))
            }
        };
        if better {
            best = Some((node, e));
        }
    }
    SearchResult { best, evaluated: s.evaluated, total }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A monotone predicate: anonymous when a weighted height reaches a threshold.
    fn threshold(weights: &[u32], t: u32) -> impl Fn(&[u8]) -> bool + '_ {
        move |node: &[u8]| node.iter().zip(weights).map(|(&l, &w)| l as u32 * w).sum::<u32>() >= t
    }

    fn brute_force(lattice: &Lattice, anonymous: &dyn Fn(&[u8]) -> bool) -> Option<Node> {
        (0..lattice.size() as usize)
            .map(|i| lattice.node(i))
            .filter(|n| anonymous(n))
            .min_by(|a, b| lattice.loss(a).total_cmp(&lattice.loss(b)).then(a.cmp(b)))
    }

    #[test]
    fn indexes_round_trip() {
        let l = Lattice::new(vec![3, 4, 2, 3]);
        assert_eq!(l.size(), 4 * 5 * 3 * 4);
        for i in 0..l.size() as usize {
            assert_eq!(l.index(&l.node(i)), i);
        }
    }

    #[test]
    fn finds_the_optimum_and_evaluates_under_half() {
        let lattice = Lattice::new(vec![4, 3, 3, 4]); // 400 nodes
        let weights = [3, 2, 5, 1];
        let anonymous = threshold(&weights, 11);
        let result = search(&lattice, |n| Evaluation { anonymous: anonymous(n), suppressed: 0 });
        let expected = brute_force(&lattice, &anonymous).unwrap();
        assert!((lattice.loss(&result.best.clone().unwrap().0) - lattice.loss(&expected)).abs() < 1e-9);
        assert_eq!(result.total, 400);
        assert!(result.evaluated * 2 < result.total, "evaluated {} of {}", result.evaluated, result.total);
    }

    #[test]
    fn nothing_anonymous_gives_none() {
        let lattice = Lattice::new(vec![2, 2]);
        let result = search(&lattice, |_| Evaluation { anonymous: false, suppressed: 0 });
        assert_eq!(result.best, None);
    }

    proptest! {
        #[test]
        fn search_equals_brute_force(max in proptest::collection::vec(1u8..4, 1..5),
                                     weights in proptest::collection::vec(1u32..6, 5),
                                     t in 0u32..25) {
            let lattice = Lattice::new(max);
            let anonymous = threshold(&weights, t);
            let result = search(&lattice, |n| Evaluation { anonymous: anonymous(n), suppressed: 0 });
            let expected = brute_force(&lattice, &anonymous);
            // Equal losses may differ in the last bit (sums of different fractions).
            match (&result.best, &expected) {
                (Some((n, _)), Some(e)) => prop_assert!((lattice.loss(n) - lattice.loss(e)).abs() < 1e-9,
                                                        "search {:?} ({}), brute force {:?} ({})", n, lattice.loss(n), e, lattice.loss(e)),
                (None, None) => {}
                (got, want) => prop_assert!(false, "search {:?}, brute force {:?}", got, want),
            }
            if let Some((n, _)) = &result.best {
                prop_assert!(anonymous(n));
            }
            prop_assert!(result.evaluated <= result.total);
        }
    }
}
