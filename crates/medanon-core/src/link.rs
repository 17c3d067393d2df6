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

/// The kanji-name message: normalized kanji name (variants folded), birth date, sex.
/// Keyed like ID2, so equal kanji names are visible only within one birth date
/// and sex, where linking compares them.
pub fn kanji_message(kanji: &str, birth: Ymd, sex: Sex) -> Vec<u8> {
    message(b"kjn", &[kanji.as_bytes(), &birth_bytes(birth), &[sex as u8]])
}

/// The record-content message: every field linking reads, as sent, with the
/// record's identity. Its keyed digest, stored per record, lets a re-run skip a
/// record whose fields have not changed since it was keyed.
pub fn digest_message(fields: &[Option<&str>]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + fields.iter().map(|f| f.map_or(1, |v| v.len() + 5)).sum::<usize>());
    out.extend_from_slice(b"dig");
    for field in fields {
        match field {
            None => out.push(0),
            Some(v) => {
                out.push(1);
                out.extend_from_slice(&(v.len() as u32).to_be_bytes());
                out.extend_from_slice(v.as_bytes());
            }
        }
    }
    out
}

/// Slots of the name-edit encoding: kana names longer than this carry no
/// one-edit evidence (full kana names are 3 to 15 characters).
pub const EDIT_SLOTS: usize = 24;
/// Bytes per slot: 32 bits. Only records of one card or one block (birth date and
/// sex) are compared, a few dozen pairs each, so a false match of two 32-bit values
/// (about 625 slot pairs × 2^-32 per record pair) is out of practical reach, and the
/// encoding stays 100 bytes.
const EDIT_HASH_BYTES: usize = 4;
pub const EDITS_BYTES: usize = (1 + EDIT_SLOTS) * EDIT_HASH_BYTES;

/// SipHash-2-4 of `salt` (4 bytes, little-endian) and then `parts`, as one
/// stream, cut to 32 bits. SipHash is a byte stream, so this equals hashing the
/// concatenation; `write_u32` is the little-endian bytes (siphasher's own rule).
fn sip32(key: &[u8; 16], salt: u32, parts: &[&[u8]]) -> [u8; EDIT_HASH_BYTES] {
    use siphasher::sip::SipHasher24;
    use std::hash::Hasher;
    let mut h = SipHasher24::new_with_key(key);
    h.write(&salt.to_le_bytes());
    for part in parts {
        h.write(part);
    }
    let v = h.finish();
    [(v >> 56) as u8, (v >> 48) as u8, (v >> 40) as u8, (v >> 32) as u8]
}

/// The **name-edit encoding** of a normalized kana name: a keyed hash of the name,
/// then, in order, a keyed hash of the name with its i-th character deleted, for
/// each i; unused slots hold keyed filler that no name can match. From two such
/// encodings [`within_one_edit`] decides whether the names are at most one
/// substitution, insertion, deletion or swap of neighbours apart (optimal string
/// alignment distance ≤ 1) without either name: two names are one substitution
/// apart when deleting the same position leaves equal strings, one insertion apart
/// when the shorter equals the longer with one character deleted, and a swap when
/// deleting positions i and i+1 crosswise leaves equal strings both ways.
///
/// `key` is the 128-bit SipHash-2-4 key of the record's block (derived from the
/// link key and the birth date and sex), so encodings of different blocks are
/// unrelated, and the fixed length tells nothing of the name's length.
pub fn name_edits(kana: &str, key: &[u8; 16]) -> [u8; EDITS_BYTES] {
    // Each character's UTF-8 bytes and a separator 0xFF (UTF-8 never holds 0xFF:
    // no character can fake it), once; a deletion hashes the bytes around one
    // character. (Hashing character by character cost 3.6 s per 1M records.)
    let mut bytes = Vec::with_capacity(kana.len() + 2 * EDIT_SLOTS);
    let mut ends = Vec::with_capacity(EDIT_SLOTS + 1);
    ends.push(0);
    for c in kana.chars() {
        let mut buf = [0u8; 4];
        bytes.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
        bytes.push(0xFF);
        ends.push(bytes.len());
    }
    let chars = ends.len() - 1;
    let mut out = [0u8; EDITS_BYTES];
    let full = sip32(key, 0, &[&bytes]);
    out[..EDIT_HASH_BYTES].copy_from_slice(&full);
    for slot in 0..EDIT_SLOTS {
        let h = if chars <= EDIT_SLOTS && slot < chars {
            sip32(key, 0, &[&bytes[..ends[slot]], &bytes[ends[slot + 1]..]])
        } else {
            // Filler: salted, so it equals no deletion hash of any name.
            sip32(key, 1 + slot as u32, &[&bytes])
        };
        let at = (1 + slot) * EDIT_HASH_BYTES;
        out[at..at + EDIT_HASH_BYTES].copy_from_slice(&h);
    }
    out
}

/// Whether two names' edit encodings (of one block) are at most one edit apart:
/// see [`name_edits`]. `false` for malformed encodings.
pub fn within_one_edit(a: &[u8], b: &[u8]) -> bool {
    if a.len() != EDITS_BYTES || b.len() != EDITS_BYTES {
        return false;
    }
    let slot = |e: &[u8], i: usize| -> [u8; EDIT_HASH_BYTES] {
        let at = (1 + i) * EDIT_HASH_BYTES;
        [e[at], e[at + 1], e[at + 2], e[at + 3]]
    };
    let full = |e: &[u8]| -> [u8; EDIT_HASH_BYTES] { [e[0], e[1], e[2], e[3]] };
    if full(a) == full(b) {
        return true;
    }
    for i in 0..EDIT_SLOTS {
        // Substitution: the same position deleted leaves the same string.
        if slot(a, i) == slot(b, i) {
            return true;
        }
        // Insertion or deletion: the shorter name is the longer one less a character.
        if slot(a, i) == full(b) || slot(b, i) == full(a) {
            return true;
        }
        // Swap of neighbours i, i+1.
        if i + 1 < EDIT_SLOTS && slot(a, i) == slot(b, i + 1) && slot(a, i + 1) == slot(b, i) {
            return true;
        }
    }
    false
}

/// Optimal string alignment distance ≤ 1, on plain strings: the reference that
/// [`within_one_edit`] is tested against, and what the quality benchmark means by
/// "one edit".
pub fn osa_within_one(a: &str, b: &str) -> bool {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    if a == b {
        return true;
    }
    if a.len() == b.len() {
        let diff: Vec<usize> = (0..a.len()).filter(|&i| a[i] != b[i]).collect();
        return diff.len() == 1 || (diff.len() == 2 && diff[1] == diff[0] + 1 && a[diff[0]] == b[diff[1]] && a[diff[1]] == b[diff[0]]);
    }
    let (short, long) = if a.len() < b.len() { (&a, &b) } else { (&b, &a) };
    if long.len() != short.len() + 1 {
        return false;
    }
    (0..long.len()).any(|skip| long.iter().enumerate().filter(|&(i, _)| i != skip).map(|(_, c)| c).eq(short.iter()))
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
/// person, whether its person is new in this batch, its name CLK, and, when
/// known, its keyed kanji name and name-edit encoding.
#[derive(Debug, Clone, PartialEq)]
pub struct NameRecord {
    pub block: i64,
    pub person: i64,
    pub new_person: bool,
    pub institution: String,
    pub local_id: String,
    pub clk: Vec<u8>,
    pub kanji: Option<[u8; 16]>,
    pub edits: Option<Vec<u8>>,
}

/// How two records' kanji names compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kanji {
    Same,
    Different,
    /// Missing on one side or both.
    Unknown,
}

impl Kanji {
    pub fn of(a: Option<[u8; 16]>, b: Option<[u8; 16]>) -> Kanji {
        match (a, b) {
            (Some(x), Some(y)) if x == y => Kanji::Same,
            (Some(_), Some(_)) => Kanji::Different,
            _ => Kanji::Unknown,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Kanji::Same => "same",
            Kanji::Different => "different",
            Kanji::Unknown => "unknown",
        }
    }
}

/// A pair of records of different persons whose names are similar: indexes into
/// the records, the lower (institution, local id) first.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Candidate {
    pub first: usize,
    pub second: usize,
    pub dice: f64,
    pub kanji: Kanji,
    pub one_edit: bool,
    /// What a reviewer sorts by: the Dice similarity, moved halfway to 1 by an
    /// equal kanji name and halved by a different one (within one birth date and
    /// sex, two persons rarely share a kanji name, and one person's kanji name
    /// rarely changes once variants are folded).
    pub score: f64,
}

/// The score of a pair: see [`Candidate::score`].
pub fn candidate_score(dice: f64, kanji: Kanji) -> f64 {
    match kanji {
        Kanji::Same => (1.0 + dice) / 2.0,
        Kanji::Different => dice / 2.0,
        Kanji::Unknown => dice,
    }
}

/// The fuzzy candidates among `records` (sorted here by block): every pair in one
/// block, of two different persons at least one of which is new, whose score
/// (Dice of the name CLKs, with the kanji names: [`candidate_score`]) is at least
/// `threshold`, or whose kana are one edit apart with the same kanji name. Each
/// pair once. Compared in memory, block by block: as a SQL self-join with a
/// function call per pair, this step took 47 s of a 1M-record batch.
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
                let kanji = Kanji::of(x.kanji, y.kanji);
                let one_edit = match (&x.edits, &y.edits) {
                    (Some(a), Some(b)) => within_one_edit(a, b),
                    _ => false,
                };
                let score = candidate_score(d, kanji);
                if score >= threshold || (one_edit && kanji == Kanji::Same) {
                    let (a, b) = (start + i, start + j);
                    let (first, second) =
                        if (&x.institution, &x.local_id) < (&y.institution, &y.local_id) { (a, b) } else { (b, a) };
                    out.push(Candidate { first, second, dice: d, kanji, one_edit, score });
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
            kanji: None,
            edits: None,
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

    #[test]
    fn kanji_moves_a_candidate() {
        let r = |person, inst: &str, name: &str, kanji: Option<u8>| NameRecord {
            block: 1,
            person,
            new_person: true,
            institution: inst.into(),
            local_id: "1".into(),
            clk: clk_of(name).to_vec(),
            kanji: kanji.map(|k| [k; 16]),
            edits: Some(name_edits(&normalize_kana(name).unwrap(), &[5; 16]).to_vec()),
        };
        // One edit apart with the same kanji: proposed even below the Dice threshold.
        let mut records = vec![r(1, "H1", "ハヤシケンイチ", Some(1)), r(2, "H2", "ハヤシケンキチ", Some(1))];
        let found = candidates(&mut records, 0.99);
        assert_eq!(found.len(), 1);
        assert!(found[0].one_edit && found[0].kanji == Kanji::Same && found[0].score > found[0].dice);
        // Different kanji names: the score halves, and twins are not proposed.
        let mut records = vec![r(1, "H1", "ヤマダユウト", Some(1)), r(2, "H2", "ヤマダユウマ", Some(2))];
        assert!(candidates(&mut records, 0.5).is_empty());
        assert_eq!(candidate_score(0.8, Kanji::Unknown), 0.8);
        assert_eq!(candidate_score(0.8, Kanji::Different), 0.4);
        assert!((candidate_score(0.8, Kanji::Same) - 0.9).abs() < 1e-12);
    }

    fn edits_of(name: &str) -> [u8; EDITS_BYTES] {
        name_edits(&normalize_kana(name).unwrap(), &[7; 16])
    }

    #[test]
    fn one_edit_is_told_from_two() {
        let yes = [
            ("ハヤシケンイチ", "ハヤシケンキチ"), // substitution
            ("サトウタロウ", "サトウタロ"),       // deletion
            ("サトウタロ", "サトウタロウ"),       // insertion
            ("スズキケンイチ", "スズキケインチ"), // swap of neighbours
            ("サトウタロウ", "サトウタロウ"),
        ];
        for (a, b) in yes {
            assert!(within_one_edit(&edits_of(a), &edits_of(b)), "{a} {b}");
        }
        let no = [
            ("ハヤシケンイチ", "ハヤシケンジ"),
            ("ユウト", "ユマトウ"),
            ("アイウエオ", "イウエオカ"), // two edits, though one deletion each leaves イウエオ
            ("アイウ", "イウア"),
            ("スズキケンイチ", "スズキケイチン"),
        ];
        for (a, b) in no {
            assert!(!within_one_edit(&edits_of(a), &edits_of(b)), "{a} {b}");
        }
        // Another block's key: unrelated encodings.
        assert!(!within_one_edit(&edits_of("サトウ"), &name_edits("サトウ", &[8; 16])));
        assert!(!within_one_edit(&[0; 3], &edits_of("サトウ")));
    }

    /// The encoding as it was first written, a character at a time: what
    /// person_link already stores, so [`name_edits`] must give it byte for byte.
    fn name_edits_per_char(kana: &str, key: &[u8; 16]) -> [u8; EDITS_BYTES] {
        use siphasher::sip::SipHasher24;
        use std::hash::Hasher;
        let sip = |chars: &[char], skip: Option<usize>, salt: u32| {
            let mut h = SipHasher24::new_with_key(key);
            h.write_u32(salt);
            let mut buf = [0u8; 4];
            for (i, c) in chars.iter().enumerate() {
                if Some(i) != skip {
                    h.write(c.encode_utf8(&mut buf).as_bytes());
                    h.write_u8(0xFF);
                }
            }
            let v = h.finish();
            [(v >> 56) as u8, (v >> 48) as u8, (v >> 40) as u8, (v >> 32) as u8]
        };
        let chars: Vec<char> = kana.chars().collect();
        let mut out = [0u8; EDITS_BYTES];
        out[..4].copy_from_slice(&sip(&chars, None, 0));
        for slot in 0..EDIT_SLOTS {
            let h = if chars.len() <= EDIT_SLOTS && slot < chars.len() { sip(&chars, Some(slot), 0) } else { sip(&chars, None, 1 + slot as u32) };
            out[(1 + slot) * 4..(2 + slot) * 4].copy_from_slice(&h);
        }
        out
    }

    proptest! {
        /// Hashing the bytes around a character equals hashing character by
        /// character: encodings stored before and after stay comparable.
        #[test]
        fn name_edits_are_unchanged(a in "[アイウエオカーｶﾞa-z]{0,30}", key in any::<[u8; 16]>()) {
            prop_assert_eq!(name_edits(&a, &key), name_edits_per_char(&a, &key));
        }

        /// The keyed encoding agrees with the plain-text definition.
        #[test]
        fn within_one_edit_is_osa_distance_one(a in "[アイウエオカ]{1,8}", b in "[アイウエオカ]{1,8}") {
            let key = [3u8; 16];
            prop_assert_eq!(within_one_edit(&name_edits(&a, &key), &name_edits(&b, &key)), osa_within_one(&a, &b), "{} {}", a, b);
        }
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
