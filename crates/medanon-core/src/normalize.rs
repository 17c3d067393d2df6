//! Normalizing the identifying fields that institutions send, before they are keyed
//! for linkage (名寄せ). Each hospital system writes the same patient differently:
//! full-width, half-width (半角) or hiragana kana, with or without spaces, variant
//! kanji (異体字), full-width digits, hyphens. Two records of one person must come
//! out byte-identical, or their link keys differ.
//!
//! Every function returns `None` for a field that is empty after normalization: an
//! empty field is "unknown", never a value two records can share.
//!
//! Choices, documented once here:
//!
//! * **Kana names.** NFKC (half-width kana become full-width, ｶﾞ becomes ガ,
//!   full-width letters become ASCII), hiragana to katakana, and every space
//!   (U+0020, U+3000, tabs) and the middle dot ・ removed.
//!   - **Small kana are folded to full size** (ャ→ヤ, ッ→ツ, ァ→ア, ヮ→ワ, ヵ→カ, ヶ→ケ).
//!     Older systems and hand-keyed half-width entry often lose the distinction
//!     (キヤ for キャ); two different names that differ only in a small kana are
//!     very rare, so folding gains links and costs almost no precision.
//!   - **Obsolete kana** are folded to their modern sound: ヰ→イ, ヱ→エ, ヲ→オ.
//!   - **Long vowels are kept, not folded.** Every dash a system may use for the long
//!     vowel (ｰ, -, －, ‐, ‑, –, —, ―, −) becomes ー, but ー is not replaced by the
//!     vowel it lengthens: whether オー, オウ or オオ is meant depends on the reading
//!     (大野 オオノ, 王 オウ), and guessing would merge different names. A name keyed
//!     once as オオノ and once as オーノ is left to the fuzzy candidates.
//!   - Voiced marks are kept (ガ is not カ), and ヂ/ジ, ヅ/ズ are not folded.
//!   - ASCII letters (romanized names) are upper-cased; other characters are kept.
//! * **Kanji names.** NFKC, the variant table [`KANJI_VARIANTS`], spaces removed.
//!   Kanji names are not part of a link key (the NDB keys use kana); they are
//!   normalized for review and display.
//! * **Sex.** `1`/`2`, `M`/`F`, `m`/`f`, `男`/`女`, `男性`/`女性` (also full-width).
//!   `0` and `9` (ISO 5218 "unknown", "not applicable") are unknown.
//! * **Insurer numbers** (保険者番号) have 8 digits; 国民健康保険 uses 6. Digits only
//!   after NFKC, hyphens and spaces removed; a 6-digit number is kept as 6 digits
//!   (padding would make it collide with an 8-digit number starting 00).
//! * **Card symbols and numbers** (記号・番号). NFKC, spaces and hyphens removed.
//!   Symbols may hold kanji or kana (e.g. 東京), so they are not restricted to
//!   digits; numbers must be digits.

use unicode_normalization::UnicodeNormalization;

/// Variant kanji (異体字) in names, folded to the common form.
pub const KANJI_VARIANTS: &[(char, char)] = &[
    ('髙', '高'),
    ('﨑', '崎'),
    ('嵜', '崎'),
    ('齋', '斎'),
    ('齊', '斎'),
    ('邊', '辺'),
    ('邉', '辺'),
    ('澤', '沢'),
    ('嶋', '島'),
    ('嶌', '島'),
    ('濱', '浜'),
    ('濵', '浜'),
    ('廣', '広'),
    ('國', '国'),
    ('櫻', '桜'),
    ('德', '徳'),
    ('惠', '恵'),
    ('眞', '真'),
    ('實', '実'),
    ('關', '関'),
    ('榮', '栄'),
    ('藏', '蔵'),
    ('圓', '円'),
    ('條', '条'),
    ('壽', '寿'),
    ('萬', '万'),
    ('淺', '浅'),
    ('瀨', '瀬'),
    ('彌', '弥'),
    ('冨', '富'),
    ('槇', '槙'),
    ('檜', '桧'),
    ('峯', '峰'),
    ('舘', '館'),
];

/// Recomposes what removing spaces or upper-casing left apart (NFKC turns ¯ into a
/// space and a combining macron; without the space, y and the macron compose to ȳ),
/// so that normalizing twice gives the same string. `None` when nothing is left.
fn finish(folded: &str) -> Option<String> {
    let out: String = folded.nfc().collect();
    (!out.is_empty()).then_some(out)
}

fn is_space_or_dot(c: char) -> bool {
    c.is_whitespace() || c == '・' || c == '\u{200B}' || c == '\u{FEFF}'
}

fn is_dash(c: char) -> bool {
    matches!(c, '-' | '－' | 'ｰ' | '‐' | '‑' | '‒' | '–' | '—' | '―' | '−' | 'ー')
}

fn fold_kana(c: char) -> char {
    let c = match c {
        // Hiragana ぁ..ゖ to katakana ァ..ヶ; ゝゞ to ヽヾ.
        '\u{3041}'..='\u{3096}' | '\u{309D}' | '\u{309E}' => char::from_u32(c as u32 + 0x60).unwrap_or(c),
        _ => c,
    };
    match c {
        'ァ' => 'ア',
        'ィ' => 'イ',
        'ゥ' => 'ウ',
        'ェ' => 'エ',
        'ォ' => 'オ',
        'ッ' => 'ツ',
        'ャ' => 'ヤ',
        'ュ' => 'ユ',
        'ョ' => 'ヨ',
        'ヮ' => 'ワ',
        'ヵ' => 'カ',
        'ヶ' => 'ケ',
        'ヰ' => 'イ',
        'ヱ' => 'エ',
        'ヲ' => 'オ',
        c if is_dash(c) => 'ー',
        c => c.to_ascii_uppercase(),
    }
}

/// A kana name, normalized as described in the module documentation.
pub fn normalize_kana(name: &str) -> Option<String> {
    let folded: String = name.nfkc().filter(|&c| !is_space_or_dot(c)).map(fold_kana).collect();
    finish(&folded)
}

/// A kanji name with variant characters folded and spaces removed.
pub fn normalize_kanji_name(name: &str) -> Option<String> {
    let folded: String = name
        .nfkc()
        .filter(|&c| !is_space_or_dot(c))
        .map(|c| KANJI_VARIANTS.iter().find(|(v, _)| *v == c).map_or(c, |&(_, n)| n))
        .collect();
    finish(&folded)
}

/// Sex as the receipt code: 1 male, 2 female.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sex {
    Male = 1,
    Female = 2,
}

/// What a sex field said: a sex, nothing (empty or an "unknown" code), or
/// something that is not a sex code at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SexField {
    Known(Sex),
    Unknown,
    Unrecognized,
}

pub fn normalize_sex(value: &str) -> SexField {
    let v: String = value.nfkc().filter(|c| !c.is_whitespace()).collect();
    match v.as_str() {
        "1" | "M" | "m" | "男" | "男性" => SexField::Known(Sex::Male),
        "2" | "F" | "f" | "女" | "女性" => SexField::Known(Sex::Female),
        "" | "0" | "9" => SexField::Unknown,
        _ => SexField::Unrecognized,
    }
}

/// NFKC, then spaces and dashes removed.
fn compact(value: &str) -> String {
    let kept: String = value.nfkc().filter(|&c| !c.is_whitespace() && !is_dash(c)).collect();
    finish(&kept).unwrap_or_default()
}

/// What a numeric field said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DigitsField {
    Digits(String),
    Empty,
    /// Not digits: the field cannot be used in a key.
    Invalid,
}

fn digits_only(value: &str) -> DigitsField {
    let v = compact(value);
    if v.is_empty() {
        DigitsField::Empty
    } else if v.bytes().all(|b| b.is_ascii_digit()) {
        DigitsField::Digits(v)
    } else {
        DigitsField::Invalid
    }
}

/// An insurer number (保険者番号): 6 digits (国民健康保険) or 8 digits.
pub fn normalize_insurer_number(value: &str) -> DigitsField {
    match digits_only(value) {
        DigitsField::Digits(d) if d.len() == 6 || d.len() == 8 => DigitsField::Digits(d),
        DigitsField::Digits(_) => DigitsField::Invalid,
        other => other,
    }
}

/// An insured person's card number (被保険者証番号): digits.
pub fn normalize_insured_number(value: &str) -> DigitsField {
    digits_only(value)
}

/// A card symbol (被保険者証記号): any characters, spaces and dashes removed.
pub fn normalize_insured_symbol(value: &str) -> Option<String> {
    let v = compact(value);
    (!v.is_empty()).then_some(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn kana_written_every_way_comes_out_the_same() {
        for written in [
            "サトウ　タロウ",
            "サトウ タロウ",
            "サトウタロウ",
            "ｻﾄｳ ﾀﾛｳ",
            "ｻﾄｳﾀﾛｳ",
            "さとう たろう",
            "さとうたろう",
            " サトウ\tタロウ ",
            "サトウ・タロウ",
        ] {
            assert_eq!(normalize_kana(written).as_deref(), Some("サトウタロウ"), "{written:?}");
        }
        assert_eq!(normalize_kana("ﾔﾏｻﾞｷ ｼﾞﾛｳ").as_deref(), Some("ヤマザキジロウ"));
        assert_eq!(normalize_kana("ﾊﾟｸ").as_deref(), Some("パク"));
        assert_eq!(normalize_kana("がっこう").as_deref(), Some("ガツコウ"));
    }

    #[test]
    fn small_and_obsolete_kana_and_dashes() {
        assert_eq!(normalize_kana("キャ"), normalize_kana("キヤ"));
        assert_eq!(normalize_kana("ｷｬ"), normalize_kana("キヤ"));
        assert_eq!(normalize_kana("カヲル"), normalize_kana("カオル"));
        assert_eq!(normalize_kana("ヰヱ").as_deref(), Some("イエ"));
        for dash in ["ｵｰﾉ", "オ-ノ", "オ－ノ", "オ―ノ", "オ—ノ", "オ−ノ"] {
            assert_eq!(normalize_kana(dash).as_deref(), Some("オーノ"), "{dash:?}");
        }
        // The long vowel is not folded into a vowel.
        assert_ne!(normalize_kana("オーノ"), normalize_kana("オオノ"));
        // Voiced marks matter.
        assert_ne!(normalize_kana("カトウ"), normalize_kana("ガトウ"));
    }

    #[test]
    fn empty_kana_is_none_and_romaji_is_upper_cased() {
        for empty in ["", " ", "\u{3000}", "・", " ・ "] {
            assert_eq!(normalize_kana(empty), None, "{empty:?}");
        }
        assert_eq!(normalize_kana("Smith John").as_deref(), Some("SMITHJOHN"));
        assert_eq!(normalize_kana("ＳＭＩＴＨ").as_deref(), Some("SMITH"));
    }

    #[test]
    fn kanji_variants_fold() {
        for (a, b) in [
            ("髙橋　健一", "高橋健一"),
            ("山﨑 誠", "山崎誠"),
            ("齋藤", "斎藤"),
            ("齊藤", "斎藤"),
            ("渡邊", "渡辺"),
            ("渡邉", "渡辺"),
            ("澤田", "沢田"),
            ("中嶋", "中島"),
            ("濱田", "浜田"),
            ("廣瀬", "広瀬"),
            ("邊見", "辺見"),
        ] {
            assert_eq!(normalize_kanji_name(a).as_deref(), Some(b), "{a}");
        }
        assert_eq!(normalize_kanji_name("　"), None);
        // Every entry of the table maps to a different character.
        for (v, n) in KANJI_VARIANTS {
            assert_ne!(v, n);
        }
    }

    #[test]
    fn sex_codes() {
        for m in ["1", "M", "m", "男", "男性", "１", "Ｍ", " 1 "] {
            assert_eq!(normalize_sex(m), SexField::Known(Sex::Male), "{m:?}");
        }
        for f in ["2", "F", "f", "女", "女性", "２", "ｆ"] {
            assert_eq!(normalize_sex(f), SexField::Known(Sex::Female), "{f:?}");
        }
        for u in ["", " ", "0", "9"] {
            assert_eq!(normalize_sex(u), SexField::Unknown, "{u:?}");
        }
        for x in ["X", "3", "男女", "male"] {
            assert_eq!(normalize_sex(x), SexField::Unrecognized, "{x:?}");
        }
    }

    #[test]
    fn insurer_and_card_numbers() {
        use DigitsField::*;
        assert_eq!(normalize_insurer_number("06123456"), Digits("06123456".into()));
        assert_eq!(normalize_insurer_number("０６１２３４５６"), Digits("06123456".into()));
        assert_eq!(normalize_insurer_number(" 06123456 "), Digits("06123456".into()));
        assert_eq!(normalize_insurer_number("06-123456"), Digits("06123456".into()));
        assert_eq!(normalize_insurer_number("138057"), Digits("138057".into()));
        assert_eq!(normalize_insurer_number("1234567"), Invalid);
        assert_eq!(normalize_insurer_number("06a23456"), Invalid);
        assert_eq!(normalize_insurer_number("  "), Empty);
        assert_eq!(normalize_insured_number("1-234"), Digits("1234".into()));
        assert_eq!(normalize_insured_number("１２３"), Digits("123".into()));
        assert_eq!(normalize_insured_number("12a"), Invalid);
        assert_eq!(normalize_insured_symbol("東京 12-3").as_deref(), Some("東京123"));
        assert_eq!(normalize_insured_symbol("１２３"), Some("123".into()));
        assert_eq!(normalize_insured_symbol(" - "), None);
    }

    proptest! {
        #[test]
        fn normalizers_never_panic_and_are_idempotent(s in "\\PC{0,40}") {
            if let Some(k) = normalize_kana(&s) {
                prop_assert_eq!(normalize_kana(&k), Some(k.clone()));
                prop_assert!(!k.chars().any(char::is_whitespace));
            }
            if let Some(k) = normalize_kanji_name(&s) {
                prop_assert_eq!(normalize_kanji_name(&k), Some(k.clone()));
            }
            let _ = normalize_sex(&s);
            if let DigitsField::Digits(d) = normalize_insurer_number(&s) {
                prop_assert!(d.len() == 6 || d.len() == 8);
            }
            if let Some(sym) = normalize_insured_symbol(&s) {
                prop_assert_eq!(normalize_insured_symbol(&sym), Some(sym.clone()));
            }
        }

        #[test]
        fn hiragana_and_katakana_agree(s in "[ぁ-ゖ]{1,12}") {
            let kata: String = s.chars().map(|c| char::from_u32(c as u32 + 0x60).unwrap()).collect();
            prop_assert_eq!(normalize_kana(&s), normalize_kana(&kata));
        }
    }
}
