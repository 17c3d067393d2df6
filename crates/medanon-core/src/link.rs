//! Record linkage (名寄せ): what is keyed, and how records are grouped.
//!
//! Two exact keys per record, after the NDB: **ID1** from insurer number, card
//! symbol, card number, birth date and sex; **ID2** from the kana name, birth date
//! and sex. Both are HMACs under the link key (see `keyed`); this module only builds
//! the messages, unambiguously (each field length-prefixed, so `12|345` and `123|45`
//! differ), and leaves the keying to the caller.
//!
//! For typos and changed insurers, which break both exact keys, records are also
//! encoded as a **cryptographic long-term key** (CLK, Schnell, Bachteler & Reiher
//! 2011): the kana name's bigrams hashed into a Bloom filter with a keyed hash, and
//! compared by Dice similarity within blocks of equal birth date and sex.

use crate::calendar::Ymd;
use crate::normalize::Sex;

/// Builds a length-prefixed message from fields.
fn message(tag: &[u8], fields: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::with_capacity(tag.len() + fields.iter().map(|f| f.len() + 4).sum::<usize>());
    out.extend_from_slice(tag);
    for field in fields {
        out.extend_from_slice(&(field.len() as u32).to_be_bytes());
        out.extend_from_slice(field);
    }
    out
}

fn birth_bytes(birth: Ymd) -> [u8; 8] {
    birth.to_pg_days().to_be_bytes()
}

/// The ID1 message: insurer number, card symbol, card number, birth date, sex.
pub fn id1_message(insurer: &str, symbol: &str, number: &str, birth: Ymd, sex: Sex) -> Vec<u8> {
    message(b"id1", &[insurer.as_bytes(), symbol.as_bytes(), number.as_bytes(), &birth_bytes(birth), &[sex as u8]])
}

/// The ID2 message: normalized kana name, birth date, sex.
pub fn id2_message(kana: &str, birth: Ymd, sex: Sex) -> Vec<u8> {
    message(b"id2", &[kana.as_bytes(), &birth_bytes(birth), &[sex as u8]])
}

/// The blocking message for fuzzy candidates: birth date and sex.
pub fn block_message(birth: Ymd, sex: Sex) -> Vec<u8> {
    message(b"blk", &[&birth_bytes(birth), &[sex as u8]])
}

/// Bloom filter length in bits, and hash functions per bigram. Kana names have
/// 3 to 10 characters, so 4 to 11 padded bigrams; 512 bits with 15 positions each
/// keeps the filter under a third full, where Dice still separates names well.
pub const CLK_BITS: usize = 512;
pub const CLK_BYTES: usize = CLK_BITS / 8;
pub const CLK_HASHES: u64 = 15;

/// The CLK of a normalized kana name. `keyed_hash` is an HMAC under the link key:
/// without it, a Bloom filter of bigrams can be attacked by frequency analysis.
pub fn clk(kana: &str, mut keyed_hash: impl FnMut(&[u8]) -> [u8; 32]) -> [u8; CLK_BYTES] {
    let mut filter = [0u8; CLK_BYTES];
    let chars: Vec<char> = std::iter::once('_').chain(kana.chars()).chain(std::iter::once('_')).collect();
    for pair in chars.windows(2) {
        let mut bigram = [0u8; 8];
        let len = pair[0].encode_utf8(&mut bigram).len();
        let len = len + pair[1].encode_utf8(&mut bigram[len..]).len();
        let h = keyed_hash(&bigram[..len]);
        // Double hashing (Kirsch & Mitzenmacher): position_i = h1 + i * h2.
        let h1 = u64::from_be_bytes([h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7]]);
        let h2 = u64::from_be_bytes([h[8], h[9], h[10], h[11], h[12], h[13], h[14], h[15]]) | 1;
        for i in 0..CLK_HASHES {
            let bit = (h1.wrapping_add(i.wrapping_mul(h2)) % CLK_BITS as u64) as usize;
            filter[bit / 8] |= 1 << (bit % 8);
        }
    }
    filter
}

/// Dice similarity of two Bloom filters: 2|A∩B| / (|A|+|B|), 0 when both are empty.
pub fn dice(a: &[u8], b: &[u8]) -> f64 {
    let (mut both, mut total) = (0u32, 0u32);
    for (x, y) in a.iter().zip(b) {
        both += (x & y).count_ones();
        total += x.count_ones() + y.count_ones();
    }
    if total == 0 {
        0.0
    } else {
        2.0 * both as f64 / total as f64
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keyed::{MasterKey, Purpose};
    use crate::normalize::normalize_kana;
    use proptest::prelude::*;

    fn day(y: i32, m: u32, d: u32) -> Ymd {
        Ymd { year: y, month: m, day: d }
    }

    #[test]
    fn messages_are_unambiguous() {
        let b = day(1975, 3, 1);
        assert_ne!(id1_message("12", "345", "6", b, Sex::Male), id1_message("123", "45", "6", b, Sex::Male));
        assert_ne!(id1_message("12", "345", "6", b, Sex::Male), id1_message("12", "345", "6", b, Sex::Female));
        assert_ne!(id2_message("サトウ", b, Sex::Male), id2_message("サトウ", day(1975, 3, 2), Sex::Male));
        assert_ne!(id2_message("ab", b, Sex::Male), id1_message("ab", "", "", b, Sex::Male));
    }

    fn clk_of(name: &str) -> [u8; CLK_BYTES] {
        let key = MasterKey::from_bytes(&[9; 32]).unwrap().derive(Purpose::LinkKey, "clk");
        clk(&normalize_kana(name).unwrap(), |bigram| key.mac(bigram))
    }

    #[test]
    fn dice_separates_typos_from_other_names() {
        let same = dice(&clk_of("サトウタロウ"), &clk_of("サトウタロウ"));
        assert_eq!(same, 1.0);
        let typo = dice(&clk_of("スズキケンイチ"), &clk_of("スズキケソイチ"));
        let other = dice(&clk_of("スズキケンイチ"), &clk_of("タナカヨウコ"));
        let sibling = dice(&clk_of("スズキケンイチ"), &clk_of("スズキジロウ"));
        assert!(typo > 0.7, "typo {typo}");
        assert!(other < 0.3, "other {other}");
        assert!(typo > sibling, "typo {typo} sibling {sibling}");
        assert_eq!(dice(&[0; 4], &[0; 4]), 0.0);
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
    }

    proptest! {
        #[test]
        fn dice_is_symmetric_and_bounded(a in proptest::collection::vec(any::<u8>(), 64), b in proptest::collection::vec(any::<u8>(), 64)) {
            let d = dice(&a, &b);
            prop_assert!((0.0..=1.0).contains(&d));
            prop_assert_eq!(d, dice(&b, &a));
        }
    }
}
