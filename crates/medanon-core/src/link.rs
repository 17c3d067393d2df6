//! Record linkage (名寄せ): what is keyed, and which records are proposed as fuzzy
//! candidates. Grouping by the exact keys is `link_group`.
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
//! compared by Dice similarity within blocks of equal birth date and sex
//! ([`candidates`]).

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

/// A linked record's name, for fuzzy candidates: its block (birth date and sex),
/// person, whether its person is new in this batch, and its name CLK.
#[derive(Debug, Clone, PartialEq)]
pub struct NameRecord {
    pub block: i64,
    pub person: i64,
    pub new_person: bool,
    pub institution: String,
    pub local_id: String,
    pub clk: Vec<u8>,
}

/// A pair of records of different persons whose names are Dice-similar: indexes
/// into the records, the lower (institution, local id) first.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Candidate {
    pub first: usize,
    pub second: usize,
    pub dice: f64,
}

/// The fuzzy candidates among `records` (sorted here by block): every pair in one
/// block, of two different persons at least one of which is new, whose name CLKs
/// have a Dice similarity of at least `threshold`. Each pair once. Compared in
/// memory, block by block: as a SQL self-join with a function call per pair, this
/// step took 47 s of a 1M-record batch.
pub fn candidates(records: &mut [NameRecord], threshold: f64) -> Vec<Candidate> {
    records.sort_unstable_by_key(|r| r.block);
    let mut out = Vec::new();
    let mut start = 0;
    for block in records.chunk_by(|x, y| x.block == y.block) {
        for (i, x) in block.iter().enumerate() {
            for (j, y) in block.iter().enumerate().skip(i + 1) {
                if x.person == y.person || !(x.new_person || y.new_person) {
                    continue;
                }
                let d = dice(&x.clk, &y.clk);
                if d >= threshold {
                    let (a, b) = (start + i, start + j);
                    let (first, second) =
                        if (&x.institution, &x.local_id) < (&y.institution, &y.local_id) { (a, b) } else { (b, a) };
                    out.push(Candidate { first, second, dice: d });
                }
            }
        }
        start += block.len();
    }
    out
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
    fn candidates_pair_similar_names_of_different_persons_once() {
        let r = |block, person, new_person, inst: &str, name: &str| NameRecord {
            block,
            person,
            new_person,
            institution: inst.into(),
            local_id: "1".into(),
            clk: clk_of(name).to_vec(),
        };
        let mut records = vec![
            r(1, 2, true, "H2", "コバヤツケンイチ"),
            r(2, 3, true, "H3", "コバヤシケンイチ"), // another block
            r(1, 1, false, "H1", "コバヤシケンイチ"),
            r(1, 4, false, "H4", "コバヤシケンイチ"), // two old persons: not proposed to each other
            r(1, 5, true, "H5", "ナカムラマナブ"),   // not similar
            r(1, 2, true, "H6", "コバヤシケンイチ"), // same person as H2
        ];
        let found = candidates(&mut records, 0.7);
        let pairs: Vec<(&str, &str)> =
            found.iter().map(|c| (records[c.first].institution.as_str(), records[c.second].institution.as_str())).collect();
        let mut sorted = pairs.clone();
        sorted.sort();
        assert_eq!(sorted, [("H1", "H2"), ("H1", "H6"), ("H2", "H4"), ("H4", "H6")]);
        assert!(found.iter().all(|c| c.dice >= 0.7 && c.dice <= 1.0));
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
