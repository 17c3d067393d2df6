//! Grouping records into persons (名寄せ): which records of a batch, and which
//! persons already linked, are one person; which records on one insurance card are
//! kept apart; and, once the new persons exist, who gets which id and what merges.
//!
//! The rules, over the keyed link keys of `link` (never plaintext):
//!
//! * records with equal **ID2** (kana name, birth date, sex) are one person;
//! * records with equal **ID1** (card, birth date, sex) are one person only when
//!   their names agree: a card may be shared (twins, or a parent and child of one
//!   sex and birth date as the card records them). The card's records are
//!   clustered by name ([`card_clusters`]): equal kana; or the **same kanji name**
//!   with kana **one edit apart** (a typo) or with the kana missing on one side.
//!   Clusters are joined (they are one person); nothing else is joined through
//!   the card. Each pair of records of two clusters is either **twins** (both
//!   kanji names present and different: decided, never merged), a **conflict**
//!   for a person to review (kana that differ, a kanji name missing), or
//!   **unnamed** (no name on one side to compare, or kana facing a kanji name
//!   only), also for review. A record without a name is not joined even on a
//!   card that shows one name: the other twin may never have been seen on it
//!   with a name (on this project's generator that merged 3 of 4,970 twin pairs);
//! * persons a reviewer decided are different (`apart`) are never joined: a union
//!   that would put them in one group is refused (the first evidence, in the
//!   order prior links, ID2, cards, wins, and the refusal is counted);
//! * a record linked before stays with its person;
//! * a group that holds several existing persons merges them into the oldest
//!   (lowest) id, which never changes.
//!
//! The glue (`src/link`) reads the batch's keys and the existing links that share
//! them, calls [`group`], inserts [`Grouping::new_persons`] persons, calls
//! [`Grouping::assign`] with their ids, and writes what it returns.

use std::collections::{BTreeSet, HashMap};

/// A link key (ID1 or ID2): 128 bits of an HMAC under the link key.
pub type Key = [u8; 16];

/// One record of the batch (the first copy of each institution's record).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchRecord {
    /// Its row number in the batch; unique.
    pub rn: i64,
    pub id1: Option<Key>,
    pub id2: Option<Key>,
    /// Keyed normalized kanji name (with birth date and sex).
    pub kanji: Option<Key>,
    /// The kana name's edit encoding (`link::name_edits`), for the one-edit test.
    pub edits: Option<Vec<u8>>,
}

/// A batch record that was linked before (same institution and local id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PriorLink {
    pub rn: i64,
    pub person: i64,
    /// Whether its stored keys equal the batch's.
    pub keys_unchanged: bool,
}

/// A linked record whose ID1 some batch record carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardHolder {
    pub id1: Key,
    pub person: i64,
    pub id2: Option<Key>,
    pub kanji: Option<Key>,
    pub edits: Option<Vec<u8>>,
    pub institution: String,
    pub local_id: String,
}

/// A set of records that are one person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    /// The row number of its first batch record (in batch order), which a merge log
    /// entry names.
    pub first_rn: i64,
    /// The existing persons it holds, ascending: none for a new person, several for
    /// a merge.
    pub persons: Vec<i64>,
}

/// What [`group`] decides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grouping {
    /// Per batch record, in batch order: its row number and the index of its group.
    pub rows: Vec<(i64, usize)>,
    pub groups: Vec<Group>,
    /// Per batch record, in batch order: its person and whether its keys are
    /// unchanged, if it was linked before.
    prior: Vec<Option<(i64, bool)>>,
    /// Card conflicts of a batch record with a linked record: (row number,
    /// institution, local id); sorted, each once.
    pub conflicts_with_linked: Vec<(i64, String, String)>,
    /// Card conflicts between two batch records: (lower row number, higher); sorted,
    /// each once.
    pub conflicts_in_batch: Vec<(i64, i64)>,
    /// Twins decided by the rules (one card, different kanji names), in the same
    /// two forms: never merged, and not left for review.
    pub twins_with_linked: Vec<(i64, String, String)>,
    pub twins_in_batch: Vec<(i64, i64)>,
    /// Pairs on one card whose names neither agree nor contradict (a record
    /// without any name, or kana on one side and only a kanji name on the
    /// other), in the same two forms: not joined through the card, for review.
    pub unnamed_with_linked: Vec<(i64, String, String)>,
    pub unnamed_in_batch: Vec<(i64, i64)>,
    /// Unions refused because a reviewer decided the persons are different.
    pub kept_apart: usize,
}

/// A merge of one existing person into an older one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Merge {
    pub from: i64,
    pub into: i64,
    /// The batch record that brought it about (the group's first).
    pub rn: i64,
}

/// Who each batch record is, once the new persons exist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    /// Per batch record, in batch order: its person.
    pub persons: Vec<i64>,
    /// Per batch record: whether its person is new in this batch.
    pub new_person: Vec<bool>,
    pub merges: Vec<Merge>,
    /// Records not linked before that joined an existing person.
    pub matched_existing: i64,
    /// Records linked before whose person and keys stay as they were.
    pub unchanged: i64,
}

/// The new person ids given to [`Grouping::assign`] are not one per new person.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PersonIdCount {
    pub needed: usize,
    pub got: usize,
}

/// Disjoint sets over `0..n`, with path halving and union by size.
pub struct UnionFind {
    parent: Vec<u32>,
    size: Vec<u32>,
}

impl UnionFind {
    pub fn new(n: usize) -> Self {
        UnionFind { parent: (0..n as u32).collect(), size: vec![1; n] }
    }

    pub fn len(&self) -> usize {
        self.parent.len()
    }

    pub fn is_empty(&self) -> bool {
        self.parent.is_empty()
    }

    /// Adds a node and returns its index.
    pub fn push(&mut self) -> usize {
        self.parent.push(self.parent.len() as u32);
        self.size.push(1);
        self.parent.len() - 1
    }

    pub fn find(&mut self, mut x: usize) -> usize {
        while self.parent[x] as usize != x {
            let grand = self.parent[self.parent[x] as usize];
            self.parent[x] = grand;
            x = grand as usize;
        }
        x
    }

    pub fn union(&mut self, a: usize, b: usize) {
        let (mut a, mut b) = (self.find(a), self.find(b));
        if a == b {
            return;
        }
        if self.size[a] < self.size[b] {
            std::mem::swap(&mut a, &mut b);
        }
        self.parent[b] = a as u32;
        self.size[a] += self.size[b];
    }
}

/// What two records of one card in different name clusters are.
#[derive(Clone, Copy)]
enum CardPair {
    Twins,
    Conflict,
    Unnamed,
}

/// One record on a card: a batch record or a linked one, with its name evidence.
#[derive(Clone, Copy)]
struct CardItem<'a> {
    /// The union-find node: a batch index, or an existing person's node.
    node: usize,
    /// `Some(i)` for batch record `i`; `None` for a linked record.
    batch: Option<usize>,
    holder: Option<&'a CardHolder>,
    id2: Option<Key>,
    kanji: Option<Key>,
    edits: Option<&'a [u8]>,
}

/// The name evidence of one record, as [`card_clusters`] compares it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NameEvidence<'a> {
    pub kana: Option<Key>,
    pub kanji: Option<Key>,
    pub edits: Option<&'a [u8]>,
}

/// Whether two records on one card are one person by their names: equal kana, or
/// the same kanji name with kana one edit apart (a typo) or missing on one side.
pub fn same_by_name(a: &NameEvidence, b: &NameEvidence) -> bool {
    if a.kana.is_some() && a.kana == b.kana {
        return true;
    }
    let same_kanji = a.kanji.is_some() && a.kanji == b.kanji;
    if !same_kanji {
        return false;
    }
    match (a.kana, b.kana) {
        (Some(_), Some(_)) => match (a.edits, b.edits) {
            (Some(x), Some(y)) => crate::link::within_one_edit(x, y),
            _ => false,
        },
        // Kanji alone: the same kanji name, birth date and sex on one card.
        _ => true,
    }
}

/// Whether two records' names contradict: different kana, or different kanji names.
pub fn names_contradict(a: &NameEvidence, b: &NameEvidence) -> bool {
    let differ = |x: Option<Key>, y: Option<Key>| x.is_some() && y.is_some() && x != y;
    differ(a.kana, b.kana) || differ(a.kanji, b.kanji)
}

/// Clusters the records of one card by [`same_by_name`], transitively: the
/// cluster index of each record, numbered in order of first appearance.
pub fn card_clusters(names: &[NameEvidence]) -> Vec<usize> {
    let mut uf = UnionFind::new(names.len());
    for i in 0..names.len() {
        for j in i + 1..names.len() {
            if same_by_name(&names[i], &names[j]) {
                uf.union(i, j);
            }
        }
    }
    let mut index: HashMap<usize, usize> = HashMap::new();
    (0..names.len())
        .map(|i| {
            let root = uf.find(i);
            let next = index.len();
            *index.entry(root).or_insert(next)
        })
        .collect()
}

/// A union-find that refuses to join persons a reviewer kept apart.
struct Apart {
    /// Per person: the persons it must stay apart from.
    banned: HashMap<i64, Vec<i64>>,
    /// Per root that holds a person of `banned`: (its persons, the persons it bans).
    sets: HashMap<usize, (BTreeSet<i64>, BTreeSet<i64>)>,
    refused: usize,
}

impl Apart {
    fn new(pairs: &[(i64, i64)]) -> Self {
        let mut banned: HashMap<i64, Vec<i64>> = HashMap::new();
        for &(a, b) in pairs {
            if a != b {
                banned.entry(a).or_default().push(b);
                banned.entry(b).or_default().push(a);
            }
        }
        Apart { banned, sets: HashMap::new(), refused: 0 }
    }

    /// Called when a node for `person` is made.
    fn person_node(&mut self, node: usize, person: i64) {
        if let Some(b) = self.banned.get(&person) {
            self.sets.insert(node, (BTreeSet::from([person]), b.iter().copied().collect()));
        }
    }

    /// Joins the sets of `a` and `b` unless that would join persons kept apart.
    fn union(&mut self, uf: &mut UnionFind, a: usize, b: usize) -> bool {
        let (ra, rb) = (uf.find(a), uf.find(b));
        if ra == rb {
            return true;
        }
        if self.sets.is_empty() {
            uf.union(ra, rb);
            return true;
        }
        let clash = match (self.sets.get(&ra), self.sets.get(&rb)) {
            (Some((pa, ba)), Some((pb, bb))) => !ba.is_disjoint(pb) || !bb.is_disjoint(pa),
            _ => false,
        };
        if clash {
            self.refused += 1;
            return false;
        }
        let (xa, xb) = (self.sets.remove(&ra), self.sets.remove(&rb));
        uf.union(ra, rb);
        let root = uf.find(ra);
        let merged = match (xa, xb) {
            (Some((mut p, mut b)), Some((p2, b2))) => {
                p.extend(p2);
                b.extend(b2);
                Some((p, b))
            }
            (x, None) | (None, x) => x,
        };
        if let Some(m) = merged {
            self.sets.insert(root, m);
        }
        true
    }
}

/// Groups the batch records, and the existing persons they touch, into persons.
///
/// `prior` are the batch records linked before, `same_name` the existing persons
/// with an ID2 of the batch, and `same_card` the linked records with an ID1 of the
/// batch. Rows of `prior` for a row number not in `batch`, and of `same_name` or
/// `same_card` for a key not in `batch`, are ignored.
pub fn group(batch: &[BatchRecord], prior: &[PriorLink], same_name: &[(Key, i64)], same_card: &[CardHolder]) -> Grouping {
    group_apart(batch, prior, same_name, same_card, &[])
}

/// [`group`], never joining two persons of a pair in `apart` (a reviewer's
/// decision that they are different).
pub fn group_apart(
    batch: &[BatchRecord],
    prior: &[PriorLink],
    same_name: &[(Key, i64)],
    same_card: &[CardHolder],
    apart: &[(i64, i64)],
) -> Grouping {
    let n = batch.len();
    // Nodes 0..n are the batch records; an existing person gets a node when first met.
    let mut uf = UnionFind::new(n);
    let mut ap = Apart::new(apart);
    let mut person_node: HashMap<i64, usize> = HashMap::new();
    let mut node_of = |uf: &mut UnionFind, ap: &mut Apart, person: i64| {
        *person_node.entry(person).or_insert_with(|| {
            let node = uf.push();
            ap.person_node(node, person);
            node
        })
    };

    // The record itself, linked before: it stays with its person.
    let index_of: HashMap<i64, usize> = batch.iter().enumerate().map(|(i, r)| (r.rn, i)).collect();
    let mut prior_of = vec![None; n];
    for p in prior {
        let Some(&i) = index_of.get(&p.rn) else { continue };
        prior_of[i] = Some((p.person, p.keys_unchanged));
        let node = node_of(&mut uf, &mut ap, p.person);
        ap.union(&mut uf, i, node);
    }

    // ID2: equal kana name, birth date and sex.
    let mut by_id2: HashMap<Key, usize> = HashMap::new();
    for (i, r) in batch.iter().enumerate() {
        if let Some(k) = r.id2 {
            let first = *by_id2.entry(k).or_insert(i);
            ap.union(&mut uf, first, i);
        }
    }
    for &(k, person) in same_name {
        if let Some(&i) = by_id2.get(&k) {
            let node = node_of(&mut uf, &mut ap, person);
            ap.union(&mut uf, i, node);
        }
    }

    // ID1: equal card, birth date and sex, where the names agree.
    // Cards in key order, so that refusals (kept apart) do not depend on hashing.
    let mut cards: std::collections::BTreeMap<Key, (Vec<usize>, Vec<&CardHolder>)> = Default::default();
    for (i, r) in batch.iter().enumerate() {
        if let Some(k) = r.id1 {
            cards.entry(k).or_default().0.push(i);
        }
    }
    for holder in same_card {
        if let Some(card) = cards.get_mut(&holder.id1) {
            card.1.push(holder);
        }
    }
    let mut conflicts_with_linked = Vec::new();
    let mut conflicts_in_batch = Vec::new();
    let mut twins_with_linked = Vec::new();
    let mut twins_in_batch = Vec::new();
    let mut unnamed_with_linked = Vec::new();
    let mut unnamed_in_batch = Vec::new();
    for (batch_items, holders) in cards.values() {
        let mut items: Vec<CardItem> = Vec::with_capacity(batch_items.len() + holders.len());
        for &i in batch_items {
            let r = &batch[i];
            items.push(CardItem { node: i, batch: Some(i), holder: None, id2: r.id2, kanji: r.kanji, edits: r.edits.as_deref() });
        }
        for &h in holders {
            let node = node_of(&mut uf, &mut ap, h.person);
            items.push(CardItem { node, batch: None, holder: Some(h), id2: h.id2, kanji: h.kanji, edits: h.edits.as_deref() });
        }
        let names: Vec<NameEvidence> =
            items.iter().map(|it| NameEvidence { kana: it.id2, kanji: it.kanji, edits: it.edits }).collect();
        let cluster = card_clusters(&names);
        // Join within clusters on the new evidence (kanji; equal kana is ID2's to
        // join). Nothing else is joined through the card: a record whose name
        // agrees with no other record's (no name at all, or kana where the others
        // have only a kanji name) cannot be told from a twin, even on a card that
        // shows one name, since the other twin may never have been seen on it.
        for x in 0..items.len() {
            for y in x + 1..items.len() {
                if cluster[x] == cluster[y] && same_by_name(&names[x], &names[y]) && !(names[x].kana.is_some() && names[x].kana == names[y].kana) {
                    ap.union(&mut uf, items[x].node, items[y].node);
                }
            }
        }
        // Pairs across clusters, with a batch record on one side: twins (two kanji
        // names), a conflict (names that differ, a kanji name missing), or a name
        // missing; the last two wait for a reviewer.
        for x in 0..items.len() {
            for y in x + 1..items.len() {
                if cluster[x] == cluster[y] {
                    continue;
                }
                let kind = if names[x].kanji.is_some() && names[y].kanji.is_some() && names[x].kanji != names[y].kanji {
                    CardPair::Twins
                } else if names_contradict(&names[x], &names[y]) {
                    CardPair::Conflict
                } else {
                    CardPair::Unnamed
                };
                let (a, b) = (&items[x], &items[y]);
                match (a.batch, b.batch, a.holder, b.holder) {
                    (Some(i), Some(j), ..) => {
                        let (p, q) = (batch[i].rn, batch[j].rn);
                        let pair = (p.min(q), p.max(q));
                        match kind {
                            CardPair::Twins => twins_in_batch.push(pair),
                            CardPair::Conflict => conflicts_in_batch.push(pair),
                            CardPair::Unnamed => unnamed_in_batch.push(pair),
                        }
                    }
                    (Some(i), None, _, Some(h)) | (None, Some(i), Some(h), _) => {
                        let c = (batch[i].rn, h.institution.clone(), h.local_id.clone());
                        match kind {
                            CardPair::Twins => twins_with_linked.push(c),
                            CardPair::Conflict => conflicts_with_linked.push(c),
                            CardPair::Unnamed => unnamed_with_linked.push(c),
                        }
                    }
                    _ => {}
                }
            }
        }
    }
    // Conflicts are few; sorted, they come out the same whatever the input order.
    for v in [&mut conflicts_with_linked, &mut twins_with_linked, &mut unnamed_with_linked] {
        v.sort_unstable();
        v.dedup();
    }
    for v in [&mut conflicts_in_batch, &mut twins_in_batch, &mut unnamed_in_batch] {
        v.sort_unstable();
        v.dedup();
    }

    // Groups in order of their first batch record, with their existing persons.
    let mut group_of_root: HashMap<usize, usize> = HashMap::new();
    let mut groups: Vec<Group> = Vec::new();
    let mut rows = Vec::with_capacity(n);
    for (i, r) in batch.iter().enumerate() {
        let root = uf.find(i);
        let g = *group_of_root.entry(root).or_insert_with(|| {
            groups.push(Group { first_rn: r.rn, persons: Vec::new() });
            groups.len() - 1
        });
        rows.push((r.rn, g));
    }
    for (&person, &node) in &person_node {
        // A person node not joined to any batch record (a holder of a card whose
        // names contradict) belongs to no group.
        if let Some(&g) = group_of_root.get(&uf.find(node)) {
            groups[g].persons.push(person);
        }
    }
    for g in &mut groups {
        g.persons.sort_unstable();
    }
    Grouping {
        rows,
        groups,
        prior: prior_of,
        conflicts_with_linked,
        conflicts_in_batch,
        twins_with_linked,
        twins_in_batch,
        unnamed_with_linked,
        unnamed_in_batch,
        kept_apart: ap.refused,
    }
}

impl Grouping {
    /// Per batch record, in batch order: whether it was linked before.
    pub fn linked_before(&self) -> Vec<bool> {
        self.prior.iter().map(Option::is_some).collect()
    }

    /// How many new persons the batch needs: one per group without an existing person.
    pub fn new_persons(&self) -> usize {
        self.groups.iter().filter(|g| g.persons.is_empty()).count()
    }

    /// Gives each group its person: the oldest existing one, into which the others
    /// merge, or the next of `new_ids` (one per new person, in group order).
    pub fn assign(&self, new_ids: &[i64]) -> Result<Assignment, PersonIdCount> {
        let count = PersonIdCount { needed: self.new_persons(), got: new_ids.len() };
        let mut fresh = new_ids.iter().copied();
        let person_of_group: Vec<i64> = self
            .groups
            .iter()
            .map(|g| g.persons.first().copied().or_else(|| fresh.next()))
            .collect::<Option<_>>()
            .ok_or(count)?;
        if fresh.next().is_some() {
            return Err(count);
        }
        let merges: Vec<Merge> = self
            .groups
            .iter()
            .flat_map(|g| g.persons.iter().skip(1).map(move |&from| Merge { from, into: g.persons[0], rn: g.first_rn }))
            .collect();
        let persons: Vec<i64> = self.rows.iter().map(|&(_, g)| person_of_group[g]).collect();
        let new_person: Vec<bool> = self.rows.iter().map(|&(_, g)| self.groups[g].persons.is_empty()).collect();
        let (mut matched_existing, mut unchanged) = (0, 0);
        for (i, &(_, g)) in self.rows.iter().enumerate() {
            match self.prior[i] {
                Some((person, keys_unchanged)) => unchanged += (keys_unchanged && person == person_of_group[g]) as i64,
                None => matched_existing += !self.groups[g].persons.is_empty() as i64,
            }
        }
        Ok(Assignment { persons, new_person, merges, matched_existing, unchanged })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    fn key(n: u8) -> Key {
        [n; 16]
    }

    fn rec(rn: i64, id1: Option<u8>, id2: Option<u8>) -> BatchRecord {
        BatchRecord { rn, id1: id1.map(key), id2: id2.map(key), kanji: None, edits: None }
    }

    fn holder(id1: u8, person: i64, id2: Option<u8>, local: &str) -> CardHolder {
        CardHolder {
            id1: key(id1),
            person,
            id2: id2.map(key),
            kanji: None,
            edits: None,
            institution: "H0".into(),
            local_id: local.into(),
        }
    }

    /// A record with a kana name (by its text, for the edit encoding and ID2) and a
    /// kanji name (by number).
    fn named(rn: i64, card: u8, kana: Option<&str>, kanji: Option<u8>) -> BatchRecord {
        let id2 = kana.map(|k| {
            let mut out = [0u8; 16];
            for (i, b) in k.bytes().enumerate() {
                out[i % 16] = out[i % 16].wrapping_mul(31).wrapping_add(b);
            }
            out
        });
        BatchRecord {
            rn,
            id1: Some(key(card)),
            id2,
            kanji: kanji.map(|n| key(100 + n)),
            edits: kana.map(|k| crate::link::name_edits(k, &[1; 16]).to_vec()),
        }
    }

    #[test]
    fn a_typo_on_a_card_is_one_person_when_the_kanji_agree() {
        // 林健一 written ハヤシケンイチ and, once, ハヤシケンキチ: one person.
        let batch = [named(1, 5, Some("ハヤシケンイチ"), Some(1)), named(2, 5, Some("ハヤシケンキチ"), Some(1))];
        let g = group(&batch, &[], &[], &[]);
        assert_eq!(partition(&g).len(), 1);
        assert!(g.conflicts_in_batch.is_empty() && g.twins_in_batch.is_empty());
        // The same typo with the kanji name missing on one side: a conflict for review.
        let batch = [named(1, 5, Some("ハヤシケンイチ"), Some(1)), named(2, 5, Some("ハヤシケンキチ"), None)];
        let g = group(&batch, &[], &[], &[]);
        assert_eq!(partition(&g).len(), 2);
        assert_eq!(g.conflicts_in_batch, [(1, 2)]);
        // Two edits apart with the same kanji: not a typo this rule knows; a conflict.
        let batch = [named(1, 5, Some("ハヤシケンイチ"), Some(1)), named(2, 5, Some("ハヤシケンジ"), Some(1))];
        assert_eq!(group(&batch, &[], &[], &[]).conflicts_in_batch, [(1, 2)]);
    }

    #[test]
    fn twins_with_similar_names_are_never_merged() {
        // 悠人 ユウト and 悠真 ユウマ: one edit apart, different kanji names: twins.
        let batch = [
            named(1, 5, Some("ヤマダユウト"), Some(1)),
            named(2, 5, Some("ヤマダユウマ"), Some(2)),
            // The first twin again, without kana: joins by the kanji name.
            named(3, 5, None, Some(1)),
            // Without kana or kanji: cannot be told apart; a pair for review with each.
            named(4, 5, None, None),
        ];
        let g = group(&batch, &[], &[], &[]);
        assert_eq!(
            partition(&g),
            BTreeSet::from([BTreeSet::from([1, 3]), BTreeSet::from([2]), BTreeSet::from([4])])
        );
        assert_eq!(g.twins_in_batch, [(1, 2), (2, 3)]);
        assert_eq!(g.unnamed_in_batch, [(1, 4), (2, 4), (3, 4)]);
        assert!(g.conflicts_in_batch.is_empty());
        // A twin without kana whose kanji differs from the only kana name on the
        // card is not joined through the card (the card now carries two names).
        let batch = [named(1, 6, Some("ヤマダユウト"), Some(1)), named(2, 6, None, Some(2))];
        let g = group(&batch, &[], &[], &[]);
        assert_eq!(partition(&g).len(), 2);
        assert_eq!(g.twins_in_batch, [(1, 2)]);
    }

    #[test]
    fn a_typo_joins_a_linked_person_and_twins_stay_apart_from_it() {
        let mut h = holder(5, 100, None, "L1");
        let linked = named(0, 5, Some("ハヤシケンイチ"), Some(1));
        h.id2 = linked.id2;
        h.kanji = linked.kanji;
        h.edits = linked.edits.clone();
        let batch = [named(1, 5, Some("ハヤシケンキチ"), Some(1)), named(2, 5, Some("ハヤシケンジ"), Some(2))];
        let g = group(&batch, &[], &[], &[h]);
        assert_eq!(persons_of(&g)[&1], [100]);
        assert!(persons_of(&g)[&2].is_empty());
        assert_eq!(g.twins_with_linked, [(2, "H0".to_string(), "L1".to_string())]);
    }

    #[test]
    fn persons_kept_apart_are_never_joined() {
        // A record that shares a name with person 7 and a card with person 3.
        let batch = [BatchRecord { kanji: Some(key(101)), ..rec(1, Some(4), Some(2)) }];
        let card = [CardHolder { kanji: Some(key(101)), ..holder(4, 3, None, "B") }];
        let g = group_apart(&batch, &[], &[(key(2), 7)], &card, &[(3, 7)]);
        assert_eq!(persons_of(&g)[&1], [7]);
        assert_eq!(g.kept_apart, 1);
        assert!(g.assign(&[]).unwrap().merges.is_empty());
        // Without the decision they merge.
        let g = group_apart(&batch, &[], &[(key(2), 7)], &card, &[(3, 8)]);
        assert_eq!(persons_of(&g)[&1], [3, 7]);
    }

    proptest! {
        /// Kept-apart persons never share a group, whatever the batch.
        #[test]
        fn apart_persons_never_share_a_group(batch in batch_strategy(), existing in existing_strategy(),
                                             apart in proptest::collection::vec((100i64..106, 100i64..106), 0..6)) {
            let (prior, same_name, same_card) = inputs(&batch, &existing);
            let g = group_apart(&batch, &prior, &same_name, &same_card, &apart);
            for grp in &g.groups {
                for &(a, b) in &apart {
                    prop_assert!(a == b || !(grp.persons.contains(&a) && grp.persons.contains(&b)), "{:?} {:?}", grp, (a, b));
                }
            }
            if apart.is_empty() {
                prop_assert_eq!(g.kept_apart, 0);
                prop_assert_eq!(partition(&g), partition(&group(&batch, &prior, &same_name, &same_card)));
            }
        }
    }

    /// The batch's row numbers, grouped: a canonical form of the partition.
    fn partition(g: &Grouping) -> BTreeSet<BTreeSet<i64>> {
        let mut by_group: BTreeMap<usize, BTreeSet<i64>> = BTreeMap::new();
        for &(rn, i) in &g.rows {
            by_group.entry(i).or_default().insert(rn);
        }
        by_group.into_values().collect()
    }

    fn persons_of(g: &Grouping) -> BTreeMap<i64, Vec<i64>> {
        g.rows.iter().map(|&(rn, i)| (rn, g.groups[i].persons.clone())).collect()
    }

    #[test]
    fn union_find_groups_transitively() {
        let mut uf = UnionFind::new(5);
        uf.union(0, 1);
        uf.union(3, 4);
        uf.union(1, 4);
        assert_eq!(uf.find(0), uf.find(3));
        assert_ne!(uf.find(0), uf.find(2));
        let n = uf.push();
        assert_eq!(n, 5);
        assert_ne!(uf.find(5), uf.find(0));
        assert_eq!(uf.len(), 6);
    }

    #[test]
    fn same_name_and_same_card_join() {
        // 1 and 2 share a name; 2 and 3 a card and a kanji name (3 has no kana); 4 is alone.
        let kanji = |r: BatchRecord, n: u8| BatchRecord { kanji: Some(key(100 + n)), ..r };
        let batch = [rec(1, None, Some(7)), kanji(rec(2, Some(9), Some(7)), 1), kanji(rec(3, Some(9), None), 1), rec(4, Some(8), Some(6))];
        let g = group(&batch, &[], &[], &[]);
        assert_eq!(partition(&g), BTreeSet::from([BTreeSet::from([1, 2, 3]), BTreeSet::from([4])]));
        assert_eq!(g.new_persons(), 2);
        assert!(g.conflicts_in_batch.is_empty() && g.unnamed_in_batch.is_empty());
    }

    #[test]
    fn a_record_without_a_name_is_not_joined_through_a_card() {
        // The card shows one name; record 3 has neither kana nor kanji name: it may be
        // a twin never seen on the card with a name. Not joined; a pair for review.
        let batch = [rec(1, None, Some(7)), rec(2, Some(9), Some(7)), rec(3, Some(9), None)];
        let g = group(&batch, &[], &[], &[]);
        assert_eq!(partition(&g), BTreeSet::from([BTreeSet::from([1, 2]), BTreeSet::from([3])]));
        assert_eq!(g.unnamed_in_batch, [(2, 3)]);
        assert!(g.conflicts_in_batch.is_empty() && g.twins_in_batch.is_empty());
        // Nor a linked record without a name, nor one with kana facing one with only
        // a kanji name: nothing on either to compare.
        let g = group(&[rec(5, Some(9), Some(7))], &[], &[], &[holder(9, 100, None, "L")]);
        assert!(g.groups[0].persons.is_empty());
        assert_eq!(g.unnamed_with_linked, [(5, "H0".to_string(), "L".to_string())]);
        let only_kanji = CardHolder { kanji: Some(key(101)), ..holder(9, 100, None, "K") };
        let g = group(&[rec(5, Some(9), Some(7))], &[], &[], &[only_kanji]);
        assert!(g.groups[0].persons.is_empty());
        assert_eq!(g.unnamed_with_linked, [(5, "H0".to_string(), "K".to_string())]);
    }

    #[test]
    fn twins_on_one_card_stay_apart_as_a_conflict() {
        let batch = [rec(1, Some(5), Some(1)), rec(2, Some(5), Some(2))];
        let g = group(&batch, &[], &[], &[]);
        assert_eq!(partition(&g).len(), 2);
        assert_eq!(g.conflicts_in_batch, [(1, 2)]);
        // Later, the second twin at another hospital: joins that twin (by name) only,
        // and conflicts with the first twin's linked record.
        let later = [rec(10, Some(5), Some(2))];
        let linked = [holder(5, 100, Some(1), "T1"), holder(5, 101, Some(2), "T2")];
        let g = group(&later, &[], &[(key(2), 101)], &linked);
        assert_eq!(g.groups[0].persons, [101]);
        assert_eq!(g.conflicts_with_linked, [(10, "H0".to_string(), "T1".to_string())]);
    }

    #[test]
    fn a_bridge_merges_into_the_oldest_person() {
        // Person 7 by name, person 3 by card and kanji name: one record proves them one.
        let batch = [BatchRecord { kanji: Some(key(101)), ..rec(1, Some(4), Some(2)) }];
        let card = CardHolder { kanji: Some(key(101)), ..holder(4, 3, None, "B") };
        let g = group(&batch, &[], &[(key(2), 7)], &[card]);
        assert_eq!(g.groups, [Group { first_rn: 1, persons: vec![3, 7] }]);
        let a = g.assign(&[]).unwrap();
        assert_eq!(a.persons, [3]);
        assert_eq!(a.merges, [Merge { from: 7, into: 3, rn: 1 }]);
        assert_eq!((a.matched_existing, a.unchanged), (1, 0));
    }

    #[test]
    fn assign_takes_one_id_per_new_person() {
        let batch = [rec(1, None, Some(1)), rec(2, None, Some(2)), rec(3, None, Some(1))];
        let g = group(&batch, &[PriorLink { rn: 2, person: 50, keys_unchanged: true }], &[], &[]);
        assert_eq!(g.new_persons(), 1);
        assert_eq!(g.assign(&[]), Err(PersonIdCount { needed: 1, got: 0 }));
        assert_eq!(g.assign(&[60, 61]), Err(PersonIdCount { needed: 1, got: 2 }));
        let a = g.assign(&[60]).unwrap();
        assert_eq!(a.persons, [60, 50, 60]);
        assert_eq!(a.new_person, [true, false, true]);
        assert_eq!((a.matched_existing, a.unchanged), (0, 1));
        assert!(a.merges.is_empty());
    }

    /// Small key domains, so that records collide on names and cards often; a
    /// kanji name (by number) on some records.
    fn batch_strategy() -> impl Strategy<Value = Vec<BatchRecord>> {
        proptest::collection::vec(
            (proptest::option::of(0u8..4), proptest::option::of(0u8..5), proptest::option::of(0u8..3)),
            0..24,
        )
        .prop_map(|v| {
            v.into_iter()
                .enumerate()
                .map(|(i, (id1, id2, kanji))| BatchRecord { kanji: kanji.map(|k| key(100 + k)), ..rec(i as i64 * 3 + 1, id1, id2) })
                .collect()
        })
    }

    /// Existing links, by small numbers: (name, person), (card, person, name,
    /// kanji name), and (batch index, person, keys unchanged).
    type Existing = (Vec<(u8, i64)>, Vec<(u8, i64, Option<u8>, Option<u8>)>, Vec<(usize, i64, bool)>);

    fn existing_strategy() -> impl Strategy<Value = Existing> {
        (
            proptest::collection::vec((0u8..5, 100i64..106), 0..6),
            proptest::collection::vec(
                (0u8..4, 100i64..106, proptest::option::of(0u8..5), proptest::option::of(0u8..3)),
                0..6,
            ),
            proptest::collection::vec((0usize..24, 100i64..106, any::<bool>()), 0..4),
        )
    }

    /// The grouping's inputs as the glue reads them: every linked record's
    /// kana name is also found by its ID2 (`same_name`), as in person_link.
    fn inputs(
        batch: &[BatchRecord],
        (names, cards, priors): &Existing,
    ) -> (Vec<PriorLink>, Vec<(Key, i64)>, Vec<CardHolder>) {
        let mut seen = BTreeSet::new();
        let prior = priors
            .iter()
            .filter(|(i, ..)| *i < batch.len() && seen.insert(*i))
            .map(|&(i, person, keys_unchanged)| PriorLink { rn: batch[i].rn, person, keys_unchanged })
            .collect();
        let same_card: Vec<CardHolder> = cards
            .iter()
            .enumerate()
            .map(|(i, &(k, p, id2, kanji))| CardHolder { kanji: kanji.map(|n| key(100 + n)), ..holder(k, p, id2, &format!("L{i}")) })
            .collect();
        let same_name = names
            .iter()
            .map(|&(k, p)| (key(k), p))
            .chain(same_card.iter().filter_map(|h| h.id2.map(|k| (k, h.person))))
            .collect();
        (prior, same_name, same_card)
    }

    /// What group should decide, by brute force over records and persons: two
    /// records, or a record and a person, are joined when they share an ID2, a
    /// prior person, or a card on which their names agree (equal kana, or the same
    /// kanji name with the kana missing on a side: these inputs carry no edit
    /// encodings). A card joins nothing else, whatever names it carries.
    fn reference(batch: &[BatchRecord], prior: &[PriorLink], same_name: &[(Key, i64)], same_card: &[CardHolder]) -> BTreeSet<BTreeSet<i64>> {
        let agree = |kana: (Option<Key>, Option<Key>), kanji: (Option<Key>, Option<Key>)| {
            (kana.0.is_some() && kana.0 == kana.1) || (kanji.0.is_some() && kanji.0 == kanji.1 && (kana.0.is_none() || kana.1.is_none()))
        };
        let batch_cards: BTreeSet<Key> = batch.iter().filter_map(|r| r.id1).collect();
        // Nodes: the batch records, then every person met.
        let mut persons: Vec<i64> = prior.iter().map(|p| p.person).chain(same_name.iter().map(|s| s.1)).chain(same_card.iter().map(|h| h.person)).collect();
        persons.sort_unstable();
        persons.dedup();
        let n = batch.len();
        let node = |person: i64| n + persons.binary_search(&person).unwrap();
        let mut edges: Vec<(usize, usize)> = Vec::new();
        for (i, a) in batch.iter().enumerate() {
            for (j, b) in batch.iter().enumerate().skip(i + 1) {
                let card = a.id1.is_some() && a.id1 == b.id1 && agree((a.id2, b.id2), (a.kanji, b.kanji));
                if (a.id2.is_some() && a.id2 == b.id2) || card {
                    edges.push((i, j));
                }
            }
            edges.extend(prior.iter().filter(|p| p.rn == a.rn).map(|p| (i, node(p.person))));
            edges.extend(same_name.iter().filter(|(k, _)| Some(*k) == a.id2).map(|&(_, p)| (i, node(p))));
            for h in same_card.iter().filter(|h| Some(h.id1) == a.id1) {
                // Equal kana is ID2's to join (same_name holds every linked ID2).
                if a.id2.is_none() || a.id2 != h.id2 {
                    if agree((a.id2, h.id2), (a.kanji, h.kanji)) {
                        edges.push((i, node(h.person)));
                    }
                }
            }
        }
        for (x, g) in same_card.iter().enumerate() {
            for h in &same_card[x + 1..] {
                let on_card = g.id1 == h.id1 && batch_cards.contains(&g.id1);
                if on_card && (g.id2.is_none() || g.id2 != h.id2) && agree((g.id2, h.id2), (g.kanji, h.kanji)) {
                    edges.push((node(g.person), node(h.person)));
                }
            }
        }
        // Transitive closure by repeated relaxation: plain, slow, obviously right.
        let mut label: Vec<usize> = (0..n + persons.len()).collect();
        loop {
            let mut changed = false;
            for &(a, b) in &edges {
                let m = label[a].min(label[b]);
                for x in [a, b] {
                    if label[x] != m {
                        label[x] = m;
                        changed = true;
                    }
                }
            }
            if !changed {
                break;
            }
        }
        let mut by_label: BTreeMap<usize, BTreeSet<i64>> = BTreeMap::new();
        for (i, r) in batch.iter().enumerate() {
            by_label.entry(label[i]).or_default().insert(r.rn);
        }
        by_label.into_values().collect()
    }

    proptest! {
        #[test]
        fn grouping_is_a_partition_and_ids_are_well_spent(batch in batch_strategy(), existing in existing_strategy()) {
            let (prior, same_name, same_card) = inputs(&batch, &existing);
            let g = group(&batch, &prior, &same_name, &same_card);
            // Every record in exactly one group, in batch order; no empty group.
            prop_assert_eq!(g.rows.iter().map(|r| r.0).collect::<Vec<_>>(), batch.iter().map(|r| r.rn).collect::<Vec<_>>());
            let mut sizes = vec![0usize; g.groups.len()];
            for &(_, i) in &g.rows {
                prop_assert!(i < g.groups.len());
                sizes[i] += 1;
            }
            prop_assert!(sizes.iter().all(|&s| s > 0));
            // Each existing person in at most one group; persons ascending.
            let mut seen = BTreeSet::new();
            for grp in &g.groups {
                prop_assert!(grp.persons.windows(2).all(|w| w[0] < w[1]));
                for &p in &grp.persons {
                    prop_assert!(seen.insert(p), "person {} in two groups", p);
                }
            }
            // Ids: one per new person; every record gets one; merges go to the oldest.
            let new_ids: Vec<i64> = (0..g.new_persons() as i64).map(|i| 1000 + i).collect();
            let a = g.assign(&new_ids).unwrap();
            prop_assert_eq!(a.persons.len(), batch.len());
            prop_assert!(a.persons.iter().all(|&p| p >= 100));
            for m in &a.merges {
                prop_assert!(m.into < m.from);
            }
            let distinct: BTreeSet<i64> = a.persons.iter().copied().collect();
            prop_assert_eq!(distinct.len(), g.groups.len());
        }

        #[test]
        fn grouping_follows_the_rules(batch in batch_strategy(), existing in existing_strategy()) {
            let (prior, same_name, same_card) = inputs(&batch, &existing);
            let g = group(&batch, &prior, &same_name, &same_card);
            prop_assert_eq!(partition(&g), reference(&batch, &prior, &same_name, &same_card));
        }

        #[test]
        fn grouping_is_independent_of_input_order(batch in batch_strategy(), existing in existing_strategy(), seed in any::<u64>()) {
            let (prior, same_name, same_card) = inputs(&batch, &existing);
            let g = group(&batch, &prior, &same_name, &same_card);
            // A deterministic shuffle of every input.
            fn shuffled<T: Clone>(v: &[T], seed: u64) -> Vec<T> {
                let mut out = v.to_vec();
                let mut s = seed | 1;
                for i in (1..out.len()).rev() {
                    s ^= s << 13;
                    s ^= s >> 7;
                    s ^= s << 17;
                    out.swap(i, (s % (i as u64 + 1)) as usize);
                }
                out
            }
            let h = group(&shuffled(&batch, seed), &shuffled(&prior, seed ^ 1), &shuffled(&same_name, seed ^ 2), &shuffled(&same_card, seed ^ 3));
            prop_assert_eq!(partition(&g), partition(&h));
            prop_assert_eq!(persons_of(&g), persons_of(&h));
            prop_assert_eq!(&g.conflicts_with_linked, &h.conflicts_with_linked);
            prop_assert_eq!(&g.conflicts_in_batch, &h.conflicts_in_batch);
            prop_assert_eq!(&g.unnamed_with_linked, &h.unnamed_with_linked);
            prop_assert_eq!(&g.unnamed_in_batch, &h.unnamed_in_batch);
            prop_assert_eq!(&g.twins_in_batch, &h.twins_in_batch);
        }

        /// The family-card rule: two records with different names on one card are
        /// never joined through it, and neither is a record without a name, even
        /// on a card that shows one name (the other twin may never have been seen
        /// on it). With nothing else to join them (no shared name, no existing
        /// person), they stay apart: a conflict when both have a name, and a pair
        /// for review when one has none.
        #[test]
        fn only_an_equal_name_joins_through_a_card(
            names in proptest::collection::vec(proptest::option::of(0u8..6), 2..10),
            linked_names in proptest::collection::vec(proptest::option::of(0u8..6), 0..4),
        ) {
            let batch: Vec<BatchRecord> = names.iter().enumerate().map(|(i, &n)| rec(i as i64 + 1, Some(1), n)).collect();
            let same_card: Vec<CardHolder> =
                linked_names.iter().enumerate().map(|(i, &n)| holder(1, 200 + i as i64, n, &format!("L{i}"))).collect();
            let g = group(&batch, &[], &[], &same_card);
            for (i, a) in batch.iter().enumerate() {
                for b in &batch[i + 1..] {
                    let together = g.rows[(a.rn - 1) as usize].1 == g.rows[(b.rn - 1) as usize].1;
                    // Only an equal name joins them, and then they are no conflict.
                    let same_name = a.id2.is_some() && a.id2 == b.id2;
                    let both_named = a.id2.is_some() && b.id2.is_some();
                    prop_assert_eq!(together, same_name, "{:?} {:?}", a, b);
                    prop_assert_eq!(g.conflicts_in_batch.contains(&(a.rn, b.rn)), !same_name && both_named);
                    prop_assert_eq!(g.unnamed_in_batch.contains(&(a.rn, b.rn)), !both_named);
                }
            }
            // No linked person is pulled in through the card (equal kana joins a
            // linked person through ID2, which this card-only input leaves out).
            prop_assert!(g.groups.iter().all(|grp| grp.persons.is_empty()));
        }

        /// Twins on a family card (one card, birth date and sex; kana one edit
        /// apart, different kanji names), each record with its kana, a kana typo
        /// (the first twin's is one edit from both names), or no kana, and with or without its kanji
        /// name, in the batch or linked before: no group ever holds both twins.
        #[test]
        fn twins_on_a_card_are_never_merged_whatever_their_records_leave_out(
            records in proptest::collection::vec((0usize..2, 0usize..3, any::<bool>(), any::<bool>()), 1..10),
        ) {
            const KANA: [[Option<&str>; 3]; 2] =
                [[Some("ヤマダユウト"), Some("ヤマダユウ"), None], [Some("ヤマダユウマ"), Some("ヤマダユマ"), None]];
            let (mut batch, mut linked, mut twin_of_rn) = (Vec::new(), Vec::new(), BTreeMap::new());
            for (i, &(twin, kana, with_kanji, in_batch)) in records.iter().enumerate() {
                let r = named(i as i64 + 1, 5, KANA[twin][kana], with_kanji.then_some(twin as u8 + 1));
                if in_batch {
                    twin_of_rn.insert(r.rn, twin);
                    batch.push(r);
                } else {
                    // Linked before, rightly: twin 0 is person 100, twin 1 person 101.
                    linked.push(CardHolder { id1: key(5), person: 100 + twin as i64, id2: r.id2, kanji: r.kanji, edits: r.edits,
                                             institution: "H9".into(), local_id: format!("L{i}") });
                }
            }
            let same_name: Vec<(Key, i64)> = linked.iter().filter_map(|h| h.id2.map(|k| (k, h.person))).collect();
            let g = group(&batch, &[], &same_name, &linked);
            let mut twins_in: BTreeMap<usize, BTreeSet<usize>> = BTreeMap::new();
            for &(rn, grp) in &g.rows {
                twins_in.entry(grp).or_default().insert(twin_of_rn[&rn]);
            }
            for (grp, twins) in &twins_in {
                let persons: BTreeSet<usize> = g.groups[*grp].persons.iter().map(|&p| (p - 100) as usize).collect();
                let all: BTreeSet<usize> = twins.union(&persons).copied().collect();
                prop_assert!(all.len() == 1, "both twins in one group: {:?}, {:?}", g.groups[*grp], twins);
            }
        }
    }
}
