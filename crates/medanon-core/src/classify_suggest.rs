//! Suggesting a class for each column of a new source table, from its name and a
//! bounded sample of its values, as PostgreSQL Anonymizer's `anon.detect()` does
//! with its English and French dictionaries, here with Japanese, romaji and English
//! names and with the shapes of Japanese identifying values. It only suggests:
//! `medanon.classify` stays the operator's act.
//!
//! Values outweigh names when they are clear (a column named `memo` that holds phone
//! numbers is an identifier; one named `name` that holds drug names is not), and a
//! name decides when the values say nothing. Every suggestion says why.

use crate::generalize::parse_postal_code;
use crate::jpdate::parse_japanese_date;
use unicode_normalization::UnicodeNormalization;

pub const IDENTIFIER: &str = "identifier";
pub const QUASI_IDENTIFIER: &str = "quasi_identifier";
pub const STATIC: &str = "static";
pub const SEMI_STATIC: &str = "semi_static";
pub const DYNAMIC: &str = "dynamic";

/// The most values of a column the sample takes: enough for a share of 90% to mean
/// something, few enough to read in milliseconds from any table.
pub const SAMPLE_SIZE: i64 = 200;

/// The most rows a column's sample is looked for in (the first a scan meets).
pub const SCAN_ROWS: i64 = 10_000;

/// A suggestion: the class and the evidence, for a person to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Suggestion {
    pub class: &'static str,
    pub evidence: String,
}

/// What a name says: (class, what the column holds).
type NameHint = (&'static str, &'static str);

/// Names that are the whole normalized column name (short or ambiguous words).
const EXACT_NAMES: &[(&str, &str, &str)] = &[
    ("name", IDENTIFIER, "a name"),
    ("名前", IDENTIFIER, "a name"),
    ("namae", IDENTIFIER, "a name"),
    ("氏名", IDENTIFIER, "a name"),
    ("shimei", IDENTIFIER, "a name"),
    ("カナ", IDENTIFIER, "a kana name"),
    ("kana", IDENTIFIER, "a kana name"),
    ("記号", IDENTIFIER, "an insurance card symbol (記号)"),
    ("kigo", IDENTIFIER, "an insurance card symbol (記号)"),
    ("kigou", IDENTIFIER, "an insurance card symbol (記号)"),
    ("番号", IDENTIFIER, "an insurance card number (番号)"),
    ("bango", IDENTIFIER, "an insurance card number (番号)"),
    ("bangou", IDENTIFIER, "an insurance card number (番号)"),
    ("id", IDENTIFIER, "an ID"),
    ("sex", QUASI_IDENTIFIER, "sex"),
    ("gender", QUASI_IDENTIFIER, "sex"),
    ("性別", QUASI_IDENTIFIER, "sex"),
    ("seibetsu", QUASI_IDENTIFIER, "sex"),
    ("age", QUASI_IDENTIFIER, "an age"),
    ("年齢", QUASI_IDENTIFIER, "an age"),
    ("nenrei", QUASI_IDENTIFIER, "an age"),
    ("tel", IDENTIFIER, "a phone number"),
    ("fax", IDENTIFIER, "a fax number"),
    ("zip", QUASI_IDENTIFIER, "a postal code"),
    ("dob", QUASI_IDENTIFIER, "a birth date"),
];

/// Words that a normalized column name contains. Longer and more specific words
/// first: the first that matches decides (保険者番号 before 番号).
const NAME_WORDS: &[(&str, &str, &str)] = &[
    // Identifiers (識別子): they point straight at a person.
    ("マイナンバー", IDENTIFIER, "an individual number (マイナンバー)"),
    ("個人番号", IDENTIFIER, "an individual number (マイナンバー)"),
    ("mynumber", IDENTIFIER, "an individual number (マイナンバー)"),
    ("kojinbango", IDENTIFIER, "an individual number (マイナンバー)"),
    ("被保険者番号", IDENTIFIER, "an insured person's number (被保険者番号)"),
    ("被保険者証", IDENTIFIER, "an insurance card's symbol or number"),
    ("hihokensha", IDENTIFIER, "an insured person's symbol or number (被保険者)"),
    ("insured", IDENTIFIER, "an insured person's symbol or number"),
    ("保険者番号", QUASI_IDENTIFIER, "an insurer number (保険者番号): the insurer, an organisation"),
    ("hokensha", QUASI_IDENTIFIER, "an insurer number (保険者番号): the insurer, an organisation"),
    ("insurer", QUASI_IDENTIFIER, "an insurer number (保険者番号): the insurer, an organisation"),
    ("カルテ", IDENTIFIER, "a medical record number (カルテ番号)"),
    ("karte", IDENTIFIER, "a medical record number (カルテ番号)"),
    ("karute", IDENTIFIER, "a medical record number (カルテ番号)"),
    ("患者id", IDENTIFIER, "a patient ID (患者ID)"),
    ("患者番号", IDENTIFIER, "a patient ID (患者番号)"),
    ("kanjaid", IDENTIFIER, "a patient ID (患者ID)"),
    ("kanjabango", IDENTIFIER, "a patient ID (患者番号)"),
    ("patientid", IDENTIFIER, "a patient ID"),
    ("mrn", IDENTIFIER, "a medical record number"),
    ("氏名", IDENTIFIER, "a name (氏名)"),
    ("患者名", IDENTIFIER, "a name (患者名)"),
    ("フリガナ", IDENTIFIER, "a kana name (フリガナ)"),
    ("ふりがな", IDENTIFIER, "a kana name (ふりがな)"),
    ("furigana", IDENTIFIER, "a kana name (フリガナ)"),
    ("カナ", IDENTIFIER, "a kana name (カナ)"),
    ("かな", IDENTIFIER, "a kana name (かな)"),
    ("kana", IDENTIFIER, "a kana name"),
    ("kanji", IDENTIFIER, "a kanji name"),
    ("shimei", IDENTIFIER, "a name (氏名)"),
    ("fullname", IDENTIFIER, "a name"),
    ("firstname", IDENTIFIER, "a name"),
    ("lastname", IDENTIFIER, "a name"),
    ("familyname", IDENTIFIER, "a name"),
    ("givenname", IDENTIFIER, "a name"),
    ("patientname", IDENTIFIER, "a name"),
    ("電話", IDENTIFIER, "a phone number (電話番号)"),
    ("denwa", IDENTIFIER, "a phone number (電話番号)"),
    ("携帯", IDENTIFIER, "a mobile phone number (携帯)"),
    ("phone", IDENTIFIER, "a phone number"),
    ("mobile", IDENTIFIER, "a mobile phone number"),
    ("メール", IDENTIFIER, "an e-mail address (メール)"),
    ("email", IDENTIFIER, "an e-mail address"),
    ("mail", IDENTIFIER, "an e-mail address"),
    // Quasi-identifiers (準識別子): they identify when combined.
    ("生年月日", QUASI_IDENTIFIER, "a birth date (生年月日)"),
    ("seinengappi", QUASI_IDENTIFIER, "a birth date (生年月日)"),
    ("誕生", QUASI_IDENTIFIER, "a birth date"),
    ("birth", QUASI_IDENTIFIER, "a birth date"),
    ("郵便", QUASI_IDENTIFIER, "a postal code (郵便番号)"),
    ("〒", QUASI_IDENTIFIER, "a postal code (郵便番号)"),
    ("yubin", QUASI_IDENTIFIER, "a postal code (郵便番号)"),
    ("yuubin", QUASI_IDENTIFIER, "a postal code (郵便番号)"),
    ("postal", QUASI_IDENTIFIER, "a postal code"),
    ("zipcode", QUASI_IDENTIFIER, "a postal code"),
    ("住所", QUASI_IDENTIFIER, "an address (住所)"),
    ("所在地", QUASI_IDENTIFIER, "an address (所在地)"),
    ("jusho", QUASI_IDENTIFIER, "an address (住所)"),
    ("juusho", QUASI_IDENTIFIER, "an address (住所)"),
    ("address", QUASI_IDENTIFIER, "an address"),
    ("市区町村", QUASI_IDENTIFIER, "a municipality (市区町村)"),
    ("municipality", QUASI_IDENTIFIER, "a municipality"),
    ("都道府県", QUASI_IDENTIFIER, "a prefecture (都道府県)"),
    ("prefecture", QUASI_IDENTIFIER, "a prefecture"),
    ("性別", QUASI_IDENTIFIER, "sex (性別)"),
    ("gender", QUASI_IDENTIFIER, "sex"),
    ("医療機関", QUASI_IDENTIFIER, "an institution (医療機関): an organisation"),
    ("病院", QUASI_IDENTIFIER, "an institution (病院): an organisation"),
    ("institution", QUASI_IDENTIFIER, "an institution: an organisation"),
    ("hospital", QUASI_IDENTIFIER, "an institution: an organisation"),
    ("勤務先", QUASI_IDENTIFIER, "an employer: an organisation"),
    ("職業", QUASI_IDENTIFIER, "an occupation (職業)"),
    ("occupation", QUASI_IDENTIFIER, "an occupation"),
    ("国籍", QUASI_IDENTIFIER, "a nationality (国籍)"),
    ("nationality", QUASI_IDENTIFIER, "a nationality"),
    // Hospital-internal IDs and keys: identifiers of a record, and through it of a person.
    ("person_id", IDENTIFIER, "a person ID"),
    ("personid", IDENTIFIER, "a person ID"),
    ("_id", IDENTIFIER, "an ID"),
    ("id_", IDENTIFIER, "an ID"),
    // Static, semi-static and dynamic attributes (guideline examples).
    ("身長", STATIC, "a height (身長)"),
    ("height", STATIC, "a height"),
    ("血液型", STATIC, "a blood type (血液型)"),
    ("blood", STATIC, "a blood type"),
    ("アレルギー", STATIC, "an allergy (アレルギー)"),
    ("allergy", STATIC, "an allergy"),
    ("体重", SEMI_STATIC, "a weight (体重)"),
    ("weight", SEMI_STATIC, "a weight"),
    ("病名", SEMI_STATIC, "a disease (病名)"),
    ("傷病", SEMI_STATIC, "a disease (傷病名)"),
    ("diagnos", SEMI_STATIC, "a diagnosis"),
    ("icd", SEMI_STATIC, "a disease code (ICD-10)"),
    ("薬", SEMI_STATIC, "a drug (薬剤)"),
    ("drug", SEMI_STATIC, "a drug"),
    ("処方", SEMI_STATIC, "a prescription (処方)"),
    ("procedure", SEMI_STATIC, "a procedure"),
    ("手術", SEMI_STATIC, "a procedure (手術)"),
    ("診療科", SEMI_STATIC, "a department (診療科)"),
    ("department", SEMI_STATIC, "a department"),
    ("検査値", DYNAMIC, "a lab value (検査値)"),
    ("結果", DYNAMIC, "a lab value (結果)"),
    ("result", DYNAMIC, "a result value"),
    ("value", DYNAMIC, "a value"),
    ("unit", DYNAMIC, "a unit of a value"),
    ("単位", DYNAMIC, "a unit of a value"),
    ("日付", STATIC, "a date (日付)"),
    ("date", STATIC, "a date"),
    ("受診日", STATIC, "a visit date (受診日)"),
];

/// The column name folded for matching: NFKC (full-width letters), lowercase, no
/// spaces or hyphens; `_` is kept so that `_id` and `id_` match as suffix and prefix.
fn fold_name(name: &str) -> String {
    name.nfkc().flat_map(char::to_lowercase).filter(|c| !c.is_whitespace() && *c != '-').collect()
}

/// What the column's name says, if anything.
pub fn name_hint(name: &str) -> Option<NameHint> {
    let n = fold_name(name);
    let bare: String = n.chars().filter(|c| *c != '_').collect();
    if let Some((_, class, what)) = EXACT_NAMES.iter().find(|(w, _, _)| *w == bare) {
        return Some((class, what));
    }
    if n.ends_with("id") && n.len() > 2 && n.is_ascii() && n[..n.len() - 2].ends_with('_') {
        return Some((IDENTIFIER, "an ID"));
    }
    NAME_WORDS
        .iter()
        .find(|(w, _, _)| if w.contains('_') { n.contains(w) } else { bare.contains(w) })
        .map(|(_, class, what)| (*class, *what))
}

/// The shape of one value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Shape {
    MyNumber,
    Phone,
    PostalCode,
    KanaName,
    InsurerNumber,
    Address,
    EraDate,
    Date,
    Sex,
    Icd10,
    Drug,
    Email,
    Institution,
}

impl Shape {
    fn class(self) -> &'static str {
        match self {
            Shape::MyNumber | Shape::Phone | Shape::KanaName | Shape::Email => IDENTIFIER,
            Shape::PostalCode | Shape::InsurerNumber | Shape::Address | Shape::Sex | Shape::Institution => QUASI_IDENTIFIER,
            Shape::EraDate | Shape::Date => STATIC,
            Shape::Icd10 | Shape::Drug => SEMI_STATIC,
        }
    }

    fn what(self) -> &'static str {
        match self {
            Shape::MyNumber => "12-digit individual numbers (マイナンバー) with a valid check digit",
            Shape::Phone => "Japanese phone numbers",
            Shape::PostalCode => "postal codes that Japan Post lists",
            Shape::KanaName => "kana-only names",
            Shape::InsurerNumber => "insurer numbers (保険者番号: 6 digits, or 8 with a 法別番号)",
            Shape::Address => "addresses that name a prefecture or municipality",
            Shape::EraDate => "era dates (和暦)",
            Shape::Date => "dates",
            Shape::Sex => "sex codes",
            Shape::Icd10 => "ICD-10 codes",
            Shape::Drug => "drug names (錠, mg, カプセル…)",
            Shape::Email => "e-mail addresses",
            Shape::Institution => "names of medical institutions (病院, 医院, クリニック, 診療所, 薬局): organisations",
        }
    }
}

/// The check digit of a 12-digit individual number (個人番号), by the rule of 総務省令
/// 「行政手続における特定の個人を識別するための番号の利用等に関する法律の規定による通知カード
/// 及び個人番号カード並びに情報提供ネットワークシステムによる特定個人情報の提供等に関する省令」
/// 第5条: with Pn the n-th of the first 11 digits counted from the right and
/// Qn = n + 1 for n ≤ 6, n − 5 for n ≥ 7, the check digit is 11 − (Σ Pn×Qn mod 11),
/// or 0 when that remainder is 0 or 1.
pub fn my_number_check_digit(first_11: &[u8; 11]) -> u8 {
    let sum: u32 = (1..=11u32)
        .map(|n| {
            let p = u32::from(first_11[11 - n as usize]);
            let q = if n <= 6 { n + 1 } else { n - 5 };
            p * q
        })
        .sum();
    let r = sum % 11;
    if r <= 1 {
        0
    } else {
        (11 - r) as u8
    }
}

/// Whether a text is a 12-digit individual number with a valid check digit.
pub fn is_my_number(value: &str) -> bool {
    let digits: Vec<u8> = value.nfkc().filter(|c| !matches!(c, ' ' | '-')).map(|c| c as u32).map(|c| c.wrapping_sub('0' as u32) as u8).collect();
    if digits.len() != 12 || digits.iter().any(|d| *d > 9) {
        return false;
    }
    let mut first = [0u8; 11];
    first.copy_from_slice(&digits[..11]);
    my_number_check_digit(&first) == digits[11]
}

/// The digits of a value written as digits with hyphens, spaces or parentheses.
fn digits_of(value: &str) -> Option<String> {
    let mut out = String::new();
    for c in value.nfkc() {
        match c {
            '0'..='9' => out.push(c),
            '-' | '‐' | '−' | 'ー' | ' ' | '(' | ')' | '+' | '〒' => {}
            _ => return None,
        }
    }
    (!out.is_empty()).then_some(out)
}

/// 法別番号 (the first two digits of an 8-digit insurer number): 01 協会けんぽ,
/// 02-04 船員・日雇, 06 健康保険組合, 07 自衛官, 31-34 共済組合, 39 後期高齢者医療,
/// 63 特例退職, 67 国保退職, 72-75 国家公務員等 (厚生労働省 保険者番号の構成).
const HOUBETSU: &[&str] = &["01", "02", "03", "04", "06", "07", "31", "32", "33", "34", "39", "63", "67", "72", "73", "74", "75"];

fn shape_of(value: &str) -> Option<Shape> {
    let v = value.trim();
    if v.is_empty() {
        return None;
    }
    if let Some(d) = digits_of(v) {
        let hyphenated = v.contains(['-', '−', '‐', '(']);
        if d.len() == 12 && is_my_number(v) {
            return Some(Shape::MyNumber);
        }
        if d.starts_with('0') && (d.len() == 10 || d.len() == 11) && hyphenated || d.starts_with("81") && v.starts_with('+') {
            return Some(Shape::Phone);
        }
        if d.starts_with("0") && (d.len() == 11) && ["070", "080", "090"].contains(&&d[..3]) {
            return Some(Shape::Phone);
        }
        if d.len() == 7 && parse_postal_code(v).is_ok() && crate::municipality::postal_code_listed(&d) {
            return Some(Shape::PostalCode);
        }
        if (d.len() == 8 && HOUBETSU.contains(&&d[..2])) || (d.len() == 6 && !hyphenated) {
            return Some(Shape::InsurerNumber);
        }
    }
    if v.contains('@') && v.contains('.') && !v.contains(' ') {
        return Some(Shape::Email);
    }
    let n: String = v.nfkc().collect();
    if matches!(n.as_str(), "1" | "2" | "9" | "0" | "男" | "女" | "男性" | "女性" | "M" | "F" | "m" | "f" | "male" | "female") {
        return Some(Shape::Sex);
    }
    if let Ok(_day) = parse_japanese_date(v) {
        let era = ["明治", "大正", "昭和", "平成", "令和"].iter().any(|e| n.contains(e))
            || n.chars().next().is_some_and(|c| "MTSHRmtshr".contains(c));
        return Some(if era { Shape::EraDate } else { Shape::Date });
    }
    if crate::icd10::category(v).is_some() && n.len() <= 8 {
        return Some(Shape::Icd10);
    }
    if ["錠", "mg", "カプセル", "散", "注", "シロップ", "軟膏", "点眼", "顆粒", "ｍｇ", "μg"].iter().any(|w| n.contains(w)) {
        return Some(Shape::Drug);
    }
    // A hospital's name: the guideline's example of an organisation, which the
    // Cabinet Office's example ② removes along with the address.
    if ["病院", "医院", "クリニック", "診療所", "医療センター", "薬局"].iter().any(|w| n.contains(w)) {
        return Some(Shape::Institution);
    }
    let kana = n.chars().filter(|c| !c.is_whitespace() && *c != '・' && *c != '　');
    let (mut count, mut all_kana) = (0, true);
    for c in kana {
        count += 1;
        all_kana &= matches!(c, 'ぁ'..='ゖ' | 'ァ'..='ヺ' | 'ー' | 'ヽ' | 'ヾ' | 'ゝ' | 'ゞ');
    }
    if all_kana && (2..=20).contains(&count) && n.trim().contains([' ', '　']) {
        return Some(Shape::KanaName);
    }
    if crate::municipality::resolve(v, crate::municipality::WardLevel::City).is_ok()
        || crate::prefecture::PREFECTURES.iter().any(|(full, _, _)| n.starts_with(full) && n.len() > full.len())
    {
        return Some(Shape::Address);
    }
    None
}

/// The share of sampled values a shape needs to count as the column's values.
const VALUE_SHARE: f64 = 0.8;

/// Suggests a class for a column from its name, its type (as `format_type` gives
/// it) and a sample of its non-NULL values as text.
pub fn suggest(name: &str, type_name: &str, sample: &[String]) -> Suggestion {
    let hint = name_hint(name);
    let mut counts: std::collections::HashMap<Shape, usize> = std::collections::HashMap::new();
    for v in sample {
        if let Some(s) = shape_of(v) {
            *counts.entry(s).or_default() += 1;
        }
    }
    let total = sample.len();
    // Dates, era dates and sex codes: the shapes a column of one kind mixes.
    let share = |shapes: &[Shape]| shapes.iter().map(|s| counts.get(s).copied().unwrap_or(0)).sum::<usize>();
    let mut best: Option<(Shape, usize)> = counts.iter().map(|(s, c)| (*s, *c)).max_by_key(|(s, c)| (*c, *s as u8));
    if let Some((Shape::Date | Shape::EraDate, _)) = best {
        let both = share(&[Shape::Date, Shape::EraDate]);
        let era = counts.get(&Shape::EraDate).copied().unwrap_or(0);
        best = Some((if era > 0 { Shape::EraDate } else { Shape::Date }, both));
    }
    let by_name = |what: &str| format!("the name reads as {what}");
    let values = best.filter(|(_, c)| total > 0 && (*c as f64) >= VALUE_SHARE * total as f64);
    let numeric = ["smallint", "integer", "bigint", "numeric", "real", "double precision"].contains(&type_name);
    match (values, hint) {
        // A date column: a birth date by name is a quasi-identifier; dates that span
        // decades, one per person, read as birth dates too.
        (Some((s @ (Shape::Date | Shape::EraDate), c)), hint) => {
            let seen = format!("{c} of {total} sampled values are {}", s.what());
            match hint {
                Some((QUASI_IDENTIFIER, what)) => Suggestion { class: QUASI_IDENTIFIER, evidence: format!("{}; {seen}", by_name(what)) },
                Some((IDENTIFIER, what)) => Suggestion { class: QUASI_IDENTIFIER, evidence: format!("{}, but {seen}: a date identifies only when combined", by_name(what)) },
                _ if spans_decades(sample) => Suggestion {
                    class: QUASI_IDENTIFIER,
                    evidence: format!("{seen}, spread over more than 30 years as birth dates are"),
                },
                _ => Suggestion { class: STATIC, evidence: format!("{seen} (dates are static attributes; a birth date is a quasi-identifier)") },
            }
        }
        (Some((Shape::Sex, c)), _) if distinct(sample) <= 4 => {
            Suggestion { class: QUASI_IDENTIFIER, evidence: format!("{c} of {total} sampled values are {}", Shape::Sex.what()) }
        }
        (Some((Shape::Sex, _)), Some((class, what))) => Suggestion { class, evidence: by_name(what) },
        (Some((Shape::Sex, _)), None) => default_for(type_name, numeric),
        (Some((s, c)), hint) => {
            let seen = format!("{c} of {total} sampled values are {}", s.what());
            let evidence = match hint {
                Some((class, what)) if class == s.class() => format!("{}; {seen}", by_name(what)),
                Some((_, what)) => format!("{seen}, whatever the name says ({what})"),
                None => seen,
            };
            Suggestion { class: s.class(), evidence }
        }
        (None, Some((class, what))) => {
            let evidence = if total == 0 { format!("{} (no values to sample)", by_name(what)) } else { by_name(what) };
            Suggestion { class, evidence }
        }
        (None, None) => default_for(type_name, numeric),
    }
}

fn default_for(type_name: &str, numeric: bool) -> Suggestion {
    if numeric {
        Suggestion { class: DYNAMIC, evidence: format!("no identifying name or value; a {type_name} column reads as a measured value") }
    } else {
        Suggestion { class: SEMI_STATIC, evidence: format!("no identifying name or value in a {type_name} column") }
    }
}

fn distinct(sample: &[String]) -> usize {
    sample.iter().map(|s| s.trim()).collect::<std::collections::HashSet<_>>().len()
}

/// Whether sampled dates span more than 30 years (birth dates do; visit dates in a
/// hospital system rarely do).
fn spans_decades(sample: &[String]) -> bool {
    let years: Vec<i32> = sample.iter().filter_map(|v| parse_japanese_date(v).ok()).map(|d| d.year).collect();
    match (years.iter().min(), years.iter().max()) {
        (Some(lo), Some(hi)) => hi - lo > 30,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn s(values: &[&str]) -> Vec<String> {
        values.iter().map(|v| v.to_string()).collect()
    }

    #[test]
    fn my_number_check_digit_follows_the_ordinance() {
        // The example the ordinance's rule gives for 12345678901: check digit 8.
        assert!(is_my_number("123456789018"));
        assert!(is_my_number("1234 5678 9018"));
        assert!(!is_my_number("123456789019"));
        assert!(!is_my_number("12345678901"));
        // Remainders 0 and 1 give 0.
        for first in 0..2000u64 {
            let text = format!("{:011}", first * 7919 % 100_000_000_000);
            let d: Vec<u8> = text.bytes().map(|b| b - b'0').collect();
            let mut a = [0u8; 11];
            a.copy_from_slice(&d);
            let c = my_number_check_digit(&a);
            assert!(c <= 9);
            assert!(is_my_number(&format!("{text}{c}")));
            assert!(!is_my_number(&format!("{text}{}", (c + 1) % 10)));
        }
    }

    #[test]
    fn names() {
        let cases = [
            ("氏名", Some(IDENTIFIER)),
            ("カナ氏名", Some(IDENTIFIER)),
            ("患者ID", Some(IDENTIFIER)),
            ("カルテ番号", Some(IDENTIFIER)),
            ("被保険者番号", Some(IDENTIFIER)),
            ("保険者番号", Some(QUASI_IDENTIFIER)),
            ("記号", Some(IDENTIFIER)),
            ("番号", Some(IDENTIFIER)),
            ("マイナンバー", Some(IDENTIFIER)),
            ("生年月日", Some(QUASI_IDENTIFIER)),
            ("性別", Some(QUASI_IDENTIFIER)),
            ("住所", Some(QUASI_IDENTIFIER)),
            ("郵便番号", Some(QUASI_IDENTIFIER)),
            ("電話番号", Some(IDENTIFIER)),
            ("shimei", Some(IDENTIFIER)),
            ("seinengappi", Some(QUASI_IDENTIFIER)),
            ("yubin_bango", Some(QUASI_IDENTIFIER)),
            ("Patient_Name", Some(IDENTIFIER)),
            ("local_patient_id", Some(IDENTIFIER)),
            ("ＴＥＬ", Some(IDENTIFIER)),
            ("institution_name", Some(QUASI_IDENTIFIER)),
            ("lab_value", Some(DYNAMIC)),
            ("memo", None),
            ("code", None),
            ("valid", None),
        ];
        for (name, class) in cases {
            assert_eq!(name_hint(name).map(|h| h.0), class, "{name}");
        }
    }

    #[test]
    fn values_outweigh_misleading_names() {
        let phones = s(&["03-1234-5678", "090-1111-2222", "06-6123-4567", "0120-123-456"]);
        assert_eq!(suggest("memo", "text", &phones).class, IDENTIFIER);
        let numbers = s(&["123456789018", "000000000019", "111111111118"]);
        let got = suggest("code", "text", &numbers);
        assert!(got.evidence.contains("マイナンバー"), "{got:?}");
        assert_eq!(got.class, IDENTIFIER);
        let drugs = s(&["アムロジピン錠5mg", "ロキソプロフェンナトリウム錠60mg", "ムコスタ錠100mg"]);
        assert_eq!(suggest("name", "text", &drugs).class, SEMI_STATIC);
        let kana = s(&["ヤマダ タロウ", "すずき はなこ", "ｻﾄｳ ｼﾞﾛｳ"]);
        assert_eq!(suggest("col7", "text", &kana).class, IDENTIFIER);
        let postal = s(&["100-0001", "〒530-0001", "0600000"]);
        assert_eq!(suggest("x", "text", &postal).class, QUASI_IDENTIFIER);
        let births = s(&["昭和20年3月1日", "S45.1.2", "平成30年4月5日", "1990-01-02"]);
        assert_eq!(suggest("d", "text", &births).class, QUASI_IDENTIFIER);
        let visits = s(&["2026-01-05", "2026-03-02", "2025-12-01"]);
        assert_eq!(suggest("d", "date", &visits).class, STATIC);
        assert_eq!(suggest("birth_date", "date", &visits).class, QUASI_IDENTIFIER);
        let addresses = s(&["東京都千代田区丸の内1-1", "大阪市北区梅田2-2", "静岡県浜松市中央区元城町"]);
        assert_eq!(suggest("note", "text", &addresses).class, QUASI_IDENTIFIER);
        // A free-text column of nothing in particular: no identifier is claimed.
        let free = s(&["経過良好", "次回来院時に再検", "特記事項なし"]);
        assert_eq!(suggest("memo", "text", &free).class, SEMI_STATIC);
        assert_eq!(suggest("memo", "text", &[]).class, SEMI_STATIC);
        assert_eq!(suggest("value", "numeric", &s(&["5.4", "6.1"])).class, DYNAMIC);
        let hospitals = s(&["東京第一病院", "やまだ内科クリニック", "鈴木医院"]);
        assert_eq!(suggest("name", "text", &hospitals).class, QUASI_IDENTIFIER);
    }

    proptest! {
        #[test]
        fn never_panics(name in "\\PC{0,16}", values in proptest::collection::vec("\\PC{0,24}", 0..8)) {
            let got = suggest(&name, "text", &values);
            prop_assert!([IDENTIFIER, QUASI_IDENTIFIER, STATIC, SEMI_STATIC, DYNAMIC].contains(&got.class));
            prop_assert!(!got.evidence.is_empty());
        }
    }
}
