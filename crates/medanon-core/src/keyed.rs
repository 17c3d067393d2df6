//! Keyed pseudonyms: tokens (HMAC-SHA256) and per-person date offsets.
//!
//! Every use of the master key goes through a subkey derived for one purpose and
//! one domain: `HMAC(master, purpose || 0x00 || domain)`. Tokens of different
//! domains are therefore unrelated, and a token can never be confused with a date
//! offset. The derived subkey's HMAC state (inner and outer pads already absorbed)
//! is kept, so that each row costs two SHA-256 compressions for short values,
//! where a fresh `hmac(value, key, 'sha256')` costs four plus its set-up.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

type HmacSha256 = Hmac<Sha256>;

/// Length of a master key in bytes (256 bits).
pub const KEY_BYTES: usize = 32;

/// Length of a key check value in bytes (see `MasterKey::check_value`).
pub const CHECK_VALUE_BYTES: usize = 8;

/// The purposes a subkey may be derived for. Part of the derivation input, so that
/// the same domain name used for tokens and for date shifts gives unrelated keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Purpose {
    Token,
    DateShift,
    LinkKey,
}

impl Purpose {
    fn label(self) -> &'static [u8] {
        match self {
            Purpose::Token => b"medanon/token/v1",
            Purpose::DateShift => b"medanon/date-shift/v1",
            Purpose::LinkKey => b"medanon/link-key/v1",
        }
    }
}

/// A master key. The bytes are wiped from memory when it is dropped.
pub struct MasterKey(Zeroizing<[u8; KEY_BYTES]>);

impl MasterKey {
    pub fn from_bytes(bytes: &[u8]) -> Option<MasterKey> {
        let array: [u8; KEY_BYTES] = bytes.try_into().ok()?;
        Some(MasterKey(Zeroizing::new(array)))
    }

    /// The key check value (KCV): the first 8 bytes of HMAC-SHA256 of a fixed label
    /// under the key. Two nodes hold the same key exactly when their check values
    /// agree (up to a 2^-64 chance), and the value tells nothing about the key, so it
    /// may be stored beside the key, compared across a Citus cluster and shown to
    /// the operator.
    pub fn check_value(&self) -> [u8; CHECK_VALUE_BYTES] {
        let mut mac = HmacSha256::new_from_slice(&self.0[..]).expect("HMAC accepts any key length");
        mac.update(b"medanon/key-check-value/v1");
        let full: [u8; 32] = mac.finalize().into_bytes().into();
        let mut out = [0u8; CHECK_VALUE_BYTES];
        out.copy_from_slice(&full[..CHECK_VALUE_BYTES]);
        out
    }

    /// The keyed state for one purpose and domain.
    /// The domain is taken as bytes: it is a name, and its bytes are what is keyed.
    pub fn derive(&self, purpose: Purpose, domain: impl AsRef<[u8]>) -> DomainKey {
        // A key of any length is valid for HMAC, so `new_from_slice` cannot fail here.
        let mut mac = HmacSha256::new_from_slice(&self.0[..]).expect("HMAC accepts any key length");
        mac.update(purpose.label());
        mac.update(&[0]);
        mac.update(domain.as_ref());
        let subkey: Zeroizing<[u8; 32]> = Zeroizing::new(mac.finalize().into_bytes().into());
        let state = HmacSha256::new_from_slice(&subkey[..]).expect("HMAC accepts any key length");
        DomainKey { state }
    }
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(<redacted>)")
    }
}

/// The HMAC state of one derived subkey.
#[derive(Clone)]
pub struct DomainKey {
    state: HmacSha256,
}

impl std::fmt::Debug for DomainKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DomainKey(<redacted>)")
    }
}

/// Length of a token in hex characters: the full 256-bit HMAC output.
pub const TOKEN_HEX_LEN: usize = 64;

impl DomainKey {
    pub fn mac(&self, message: &[u8]) -> [u8; 32] {
        let mut mac = self.state.clone();
        mac.update(message);
        mac.finalize().into_bytes().into()
    }

    /// The token of a value: lowercase hex of its HMAC-SHA256 under this subkey.
    pub fn token_into(&self, value: &[u8], out: &mut [u8; TOKEN_HEX_LEN]) {
        hex_into(&self.mac(value), out);
    }

    pub fn token(&self, value: &[u8]) -> String {
        let mut buf = [0u8; TOKEN_HEX_LEN];
        self.token_into(value, &mut buf);
        // hex digits are ASCII
        buf.iter().map(|&b| b as char).collect()
    }

    /// The date offset of a person, in days: a whole number of weeks, uniform over
    /// `[-W, -1] ∪ [1, W]` weeks with `W = max_days / 7` (at least 1), never 0, the
    /// same for every call with the same person. See [`shift_weeks`] for why weeks.
    /// Uses the top 64 bits of the MAC and Lemire's multiply-shift, whose bias
    /// (2·W / 2^64) is negligible.
    pub fn week_offset(&self, person: &[u8], max_days: u32) -> i32 {
        let max = shift_weeks(max_days) as u64;
        let mac = self.mac(person);
        let x = u64::from_be_bytes([mac[0], mac[1], mac[2], mac[3], mac[4], mac[5], mac[6], mac[7]]);
        let idx = ((x as u128 * (2 * max) as u128) >> 64) as i64; // 0 .. 2*max-1
        let max = max as i64;
        let weeks = if idx < max { idx - max } else { idx - max + 1 };
        (weeks * 7) as i32
    }
}

/// Default half-width of the date shift, in days: 104 weeks (728 days).
///
/// Offsets are whole weeks (invariant 8): a shift by a multiple of 7 keeps every
/// weekday, so the weekday pattern of outpatient visits (business days only) says
/// nothing about the offset; with daily offsets it gave the offset modulo 7 away
/// for 31.5% of persons (tests/calendar_attack.rs). What is left to an analyst is
/// the holiday calendar and the study window: a candidate offset must put every
/// real date on an open day inside the window. The window binds before the range
/// does: for a study window of W days, a person whose dates span L days has at most
/// (W − L)/7 + 1 candidates whatever the range, once the range is as wide as the
/// window. ±104 weeks is wider than study windows of up to four years (fiscal-year
/// cohorts are usually 1 to 3), so the range rarely cuts candidates off. On the
/// attack's data (two fiscal years, 1,000 persons) ±104 weeks left a mean of 48.5
/// candidates and 8.3% of persons at three or fewer, ±52 weeks 39.2 and 9.9%;
/// SECURITY.md, "Shifted dates and the calendar", has the figures.
pub const DEFAULT_MAX_SHIFT_DAYS: u32 = 728;

/// The values `medanon.max_shift_days` accepts: at least one whole week, at most
/// about ten years.
pub const MAX_SHIFT_DAYS_RANGE: std::ops::RangeInclusive<u32> = 7..=3650;

/// The number of whole weeks W a shift may reach under `max_days`: offsets are
/// uniform over ±1..W weeks. At least one week, so an offset is never 0.
pub fn shift_weeks(max_days: u32) -> u32 {
    (max_days / 7).max(1)
}

const HEX: &[u8; 16] = b"0123456789abcdef";

pub fn hex_into(bytes: &[u8; 32], out: &mut [u8; TOKEN_HEX_LEN]) {
    for (i, b) in bytes.iter().enumerate() {
        out[2 * i] = HEX[(b >> 4) as usize];
        out[2 * i + 1] = HEX[(b & 0x0f) as usize];
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn key(byte: u8) -> MasterKey {
        MasterKey::from_bytes(&[byte; KEY_BYTES]).unwrap()
    }

    #[test]
    fn rfc4231_vector_holds_for_the_underlying_hmac() {
        // RFC 4231 test case 2, to show we use plain HMAC-SHA256.
        let mut mac = HmacSha256::new_from_slice(b"Jefe").unwrap();
        mac.update(b"what do ya want for nothing?");
        let mut out = [0u8; 64];
        hex_into(&mac.finalize().into_bytes().into(), &mut out);
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn tokens_are_deterministic_fixed_length_and_domain_separated() {
        let k = key(7);
        let a = k.derive(Purpose::Token, "patient");
        let t1 = a.token(b"12345");
        assert_eq!(t1, a.token(b"12345"));
        assert_eq!(t1.len(), TOKEN_HEX_LEN);
        assert!(t1.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
        assert_ne!(t1, a.token(b"12346"));
        assert_ne!(t1, k.derive(Purpose::Token, "patient2").token(b"12345"));
        assert_ne!(t1, key(8).derive(Purpose::Token, "patient").token(b"12345"));
        // Same domain name, different purpose: unrelated.
        assert_ne!(a.mac(b"12345"), k.derive(Purpose::DateShift, "patient").mac(b"12345"));
    }

    #[test]
    fn check_values_tell_keys_apart_and_are_stable() {
        assert_eq!(key(1).check_value(), key(1).check_value());
        assert_ne!(key(1).check_value(), key(2).check_value());
        // Not a token of any domain under the key: a check value is no oracle.
        let kcv = key(1).check_value();
        assert_ne!(&key(1).derive(Purpose::Token, "").mac(b"")[..CHECK_VALUE_BYTES], &kcv[..]);
    }

    #[test]
    fn domain_and_value_boundary_is_unambiguous() {
        // ("ab", "c") and ("a", "bc") must differ: the domain goes into the subkey,
        // not into the message.
        let k = key(1);
        assert_ne!(k.derive(Purpose::Token, "ab").token(b"c"), k.derive(Purpose::Token, "a").token(b"bc"));
    }

    #[test]
    fn offsets_are_whole_weeks_never_zero_and_cover_the_range() {
        let d = key(3).derive(Purpose::DateShift, "c1");
        let mut seen: HashMap<i32, u32> = HashMap::new();
        for p in 0..20_000u32 {
            let o = d.week_offset(p.to_string().as_bytes(), 728);
            assert!(o != 0 && (-728..=728).contains(&o), "offset {o}");
            assert_eq!(o % 7, 0, "offset {o} is not whole weeks");
            assert_eq!(o, d.week_offset(p.to_string().as_bytes(), 728));
            *seen.entry(o).or_default() += 1;
        }
        assert!(seen.contains_key(&728) && seen.contains_key(&-728));
        // 208 values, 20,000 draws (about 96 each): a uniform spread sees all of them,
        // and no value more than twice its share.
        assert_eq!(seen.len(), 208, "only {} distinct offsets", seen.len());
        assert!(seen.values().all(|&n| (40..200).contains(&n)), "uneven: {:?}", seen.values().max());
        let negative: u32 = seen.iter().filter(|(o, _)| **o < 0).map(|(_, n)| n).sum();
        assert!((9_000..11_000).contains(&negative), "negative {negative}");
    }

    #[test]
    fn week_range_follows_max_days() {
        let d = key(4).derive(Purpose::DateShift, "c2");
        // Below a week the range is still one week each way: never 0.
        for max in [0, 1, 6, 7, 13] {
            for p in 0..200u32 {
                assert_eq!(d.week_offset(p.to_string().as_bytes(), max).abs(), 7);
            }
        }
        // 365 days: whole weeks up to 52 (364 days).
        let far = (0..5_000u32).map(|p| d.week_offset(p.to_string().as_bytes(), 365).abs()).max();
        assert_eq!(far, Some(364));
        assert_eq!(shift_weeks(DEFAULT_MAX_SHIFT_DAYS), 104);
    }
}
