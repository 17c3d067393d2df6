//! The ICD-10 hierarchy that rare diagnosis codes climb (特異な記述): a full code
//! (`E11.9`), its 3-character category (`E11`), its chapter (`E00-E90`), then
//! nothing (NULL).
//!
//! The chapters are WHO ICD-10's (2019 edition, the classification Japan's
//! 標準病名マスター maps to), as published in the WHO ICD-10 browser
//! (<https://icd.who.int/browse10/2019/en>); 22 ranges, which no maintained Rust
//! crate provides. A category between two chapters' ranges (a national
//! extension such as ICD-10-CM's `E89`) goes to the chapter whose range starts
//! at or before it.

use unicode_normalization::UnicodeNormalization;

/// WHO ICD-10 chapters: (first category, last category).
const CHAPTERS: [(&str, &str); 22] = [
    ("A00", "B99"),
    ("C00", "D48"),
    ("D50", "D89"),
    ("E00", "E90"),
    ("F00", "F99"),
    ("G00", "G99"),
    ("H00", "H59"),
    ("H60", "H95"),
    ("I00", "I99"),
    ("J00", "J99"),
    ("K00", "K93"),
    ("L00", "L99"),
    ("M00", "M99"),
    ("N00", "N99"),
    ("O00", "O99"),
    ("P00", "P96"),
    ("Q00", "Q99"),
    ("R00", "R99"),
    ("S00", "T98"),
    ("U00", "U85"),
    ("V01", "Y98"),
    ("Z00", "Z99"),
];

/// The 3-character category of a code, or None if it is not an ICD-10 code (a
/// letter, two digits, then anything). Full-width forms, case, spaces and the dot
/// are folded: `ｅ１１．９` is `E11`.
pub fn category(code: &str) -> Option<String> {
    let folded: String = code.nfkc().filter(|c| !c.is_whitespace() && *c != '.').collect::<String>().to_ascii_uppercase();
    let b = folded.as_bytes();
    if b.len() >= 3 && b[0].is_ascii_uppercase() && b[1].is_ascii_digit() && b[2].is_ascii_digit() {
        Some(folded[..3].to_string())
    } else {
        None
    }
}

/// The chapter of a code (or of a category) as its range, `E00-E90`.
pub fn chapter(code: &str) -> Option<String> {
    let category = category(code)?;
    let (first, last) = CHAPTERS.iter().rev().find(|(first, _)| *first <= category.as_str())?;
    Some(format!("{first}-{last}"))
}

/// A label's parent: a full code's category, a category's chapter, a chapter's
/// nothing. `level` is the label's level (0 a code as stored, 1 a category, 2 a
/// chapter), since a 3-character code as stored is its own category.
pub fn parent(label: &str, level: i32) -> Option<String> {
    match level {
        0 => category(label),
        1 => chapter(label),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_climb_to_category_then_chapter() {
        assert_eq!(category("E11.9").as_deref(), Some("E11"));
        assert_eq!(category(" ｅ１１．９ ").as_deref(), Some("E11"));
        assert_eq!(category("E119").as_deref(), Some("E11"));
        assert_eq!(category("I10").as_deref(), Some("I10"));
        assert_eq!(chapter("E11.9").as_deref(), Some("E00-E90"));
        assert_eq!(chapter("E11").as_deref(), Some("E00-E90"));
        assert_eq!(chapter("D50.0").as_deref(), Some("D50-D89"));
        assert_eq!(chapter("D48.9").as_deref(), Some("C00-D48"));
        assert_eq!(chapter("T14").as_deref(), Some("S00-T98"));
        assert_eq!(chapter("X59").as_deref(), Some("V01-Y98"));
        assert_eq!(chapter("U07.1").as_deref(), Some("U00-U85"));
        assert_eq!(chapter("Z99").as_deref(), Some("Z00-Z99"));
        assert_eq!(parent("E11.9", 0).as_deref(), Some("E11"));
        assert_eq!(parent("E11", 1).as_deref(), Some("E00-E90"));
        assert_eq!(parent("E00-E90", 2), None);
        for unreadable in ["", "11", "E1", "ＡＢＣ", "日本"] {
            assert_eq!(category(unreadable), None, "{unreadable}");
            assert_eq!(chapter(unreadable), None);
        }
    }

    #[test]
    fn chapters_are_ordered_and_cover_their_letters() {
        for pair in CHAPTERS.windows(2) {
            assert!(pair[0].1 < pair[1].0, "{pair:?}");
        }
        for (first, last) in CHAPTERS {
            assert_eq!(chapter(first).as_deref(), Some(format!("{first}-{last}").as_str()));
            assert_eq!(chapter(last).as_deref(), Some(format!("{first}-{last}").as_str()));
        }
    }

    proptest::proptest! {
        #[test]
        fn any_text_is_read_or_refused_without_panic(s in "\\PC{0,12}") {
            let c = category(&s);
            if let Some(c) = &c {
                proptest::prop_assert_eq!(c.len(), 3);
                proptest::prop_assert!(chapter(&s).is_some());
            }
        }
    }
}
