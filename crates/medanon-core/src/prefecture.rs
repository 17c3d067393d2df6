//! The 47 prefectures (都道府県) and the eight regions (地方), and finding the
//! prefecture an address is in. Addresses in hospital systems often drop the
//! prefecture for the 20 designated cities (政令指定都市: 横浜市…), or drop the
//! suffix (神奈川 for 神奈川県), so both are recognised at the start of an address.

use unicode_normalization::UnicodeNormalization;

/// (full name, name without 都/道/府/県, region). Ordered by the JIS X 0401 code.
pub const PREFECTURES: [(&str, &str, &str); 47] = [
    ("北海道", "北海道", "北海道地方"),
    ("青森県", "青森", "東北地方"),
    ("岩手県", "岩手", "東北地方"),
    ("宮城県", "宮城", "東北地方"),
    ("秋田県", "秋田", "東北地方"),
    ("山形県", "山形", "東北地方"),
    ("福島県", "福島", "東北地方"),
    ("茨城県", "茨城", "関東地方"),
    ("栃木県", "栃木", "関東地方"),
    ("群馬県", "群馬", "関東地方"),
    ("埼玉県", "埼玉", "関東地方"),
    ("千葉県", "千葉", "関東地方"),
    ("東京都", "東京", "関東地方"),
    ("神奈川県", "神奈川", "関東地方"),
    ("新潟県", "新潟", "中部地方"),
    ("富山県", "富山", "中部地方"),
    ("石川県", "石川", "中部地方"),
    ("福井県", "福井", "中部地方"),
    ("山梨県", "山梨", "中部地方"),
    ("長野県", "長野", "中部地方"),
    ("岐阜県", "岐阜", "中部地方"),
    ("静岡県", "静岡", "中部地方"),
    ("愛知県", "愛知", "中部地方"),
    ("三重県", "三重", "近畿地方"),
    ("滋賀県", "滋賀", "近畿地方"),
    ("京都府", "京都", "近畿地方"),
    ("大阪府", "大阪", "近畿地方"),
    ("兵庫県", "兵庫", "近畿地方"),
    ("奈良県", "奈良", "近畿地方"),
    ("和歌山県", "和歌山", "近畿地方"),
    ("鳥取県", "鳥取", "中国地方"),
    ("島根県", "島根", "中国地方"),
    ("岡山県", "岡山", "中国地方"),
    ("広島県", "広島", "中国地方"),
    ("山口県", "山口", "中国地方"),
    ("徳島県", "徳島", "四国地方"),
    ("香川県", "香川", "四国地方"),
    ("愛媛県", "愛媛", "四国地方"),
    ("高知県", "高知", "四国地方"),
    ("福岡県", "福岡", "九州地方"),
    ("佐賀県", "佐賀", "九州地方"),
    ("長崎県", "長崎", "九州地方"),
    ("熊本県", "熊本", "九州地方"),
    ("大分県", "大分", "九州地方"),
    ("宮崎県", "宮崎", "九州地方"),
    ("鹿児島県", "鹿児島", "九州地方"),
    ("沖縄県", "沖縄", "九州地方"),
];

/// The designated cities (政令指定都市) whose addresses often omit the prefecture.
/// Cities that share the prefecture's bare name (千葉市, 京都市, ...) are already
/// found through the bare name.
const DESIGNATED_CITIES: [(&str, &str); 12] = [
    ("札幌市", "北海道"),
    ("仙台市", "宮城県"),
    ("さいたま市", "埼玉県"),
    ("横浜市", "神奈川県"),
    ("川崎市", "神奈川県"),
    ("相模原市", "神奈川県"),
    ("浜松市", "静岡県"),
    ("名古屋市", "愛知県"),
    ("堺市", "大阪府"),
    ("神戸市", "兵庫県"),
    ("北九州市", "福岡県"),
    ("新潟市", "新潟県"),
];

/// Leading parts of an address that come before the prefecture.
pub(crate) fn strip_preamble(mut s: &str) -> &str {
    loop {
        let before = s;
        s = s.trim_start();
        for prefix in ["日本国", "日本", "〒"] {
            if let Some(rest) = s.strip_prefix(prefix) {
                s = rest;
            }
        }
        // A postal code written before the address.
        let digits = s.trim_start_matches(|c: char| c.is_ascii_digit() || c == '-');
        if digits.len() != s.len() && s.len() - digits.len() >= 3 {
            s = digits;
        }
        if s.len() == before.len() {
            return s;
        }
    }
}

/// The prefecture an address is in, or `None` when it names none.
pub fn prefecture_of(address: &str) -> Option<&'static str> {
    let norm: String = address.nfkc().collect();
    let s = strip_preamble(&norm);
    for (full, _, _) in PREFECTURES.iter() {
        if s.starts_with(full) {
            return Some(full);
        }
    }
    for (city, pref) in DESIGNATED_CITIES.iter() {
        if s.starts_with(city) {
            return Some(pref);
        }
    }
    for (full, bare, _) in PREFECTURES.iter() {
        if s.starts_with(bare) {
            return Some(full);
        }
    }
    // Anywhere in the text, but only the full name with its suffix, so that a
    // surname or a station such as 石川町 is not taken for a prefecture.
    PREFECTURES
        .iter()
        .filter_map(|(full, _, _)| s.find(full).map(|at| (at, *full)))
        .min_by_key(|(at, _)| *at)
        .map(|(_, full)| full)
}

/// The region (地方) of a prefecture's full name.
pub fn region_of(prefecture: &str) -> Option<&'static str> {
    PREFECTURES.iter().find(|(full, _, _)| *full == prefecture).map(|(_, _, region)| *region)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_prefectures() {
        let cases = [
            ("東京都千代田区千代田1-1", Some("東京都")),
            ("〒100-0001 東京都千代田区", Some("東京都")),
            ("１００－０００１　東京都千代田区", Some("東京都")),
            ("日本国大阪府大阪市北区", Some("大阪府")),
            ("京都府京都市左京区", Some("京都府")),
            ("京都市左京区", Some("京都府")),
            ("北海道札幌市中央区", Some("北海道")),
            ("札幌市中央区", Some("北海道")),
            ("横浜市中区山下町", Some("神奈川県")),
            ("神奈川横浜市", Some("神奈川県")),
            ("鹿児島県鹿児島市", Some("鹿児島県")),
            ("沖縄県那覇市", Some("沖縄県")),
            ("港区六本木 (東京都)", Some("東京都")),
            ("府中市宮西町", None),
            ("千代田区丸の内", None),
            ("", None),
            ("不明", None),
        ];
        for (address, expected) in cases {
            assert_eq!(prefecture_of(address), expected, "{address}");
        }
    }

    #[test]
    fn every_prefecture_is_found_by_its_own_name() {
        for (full, bare, _) in PREFECTURES.iter() {
            assert_eq!(prefecture_of(&format!("{full}某市")), Some(*full));
            assert_eq!(prefecture_of(&format!("{bare}市内")), Some(*full), "{bare}");
            assert!(region_of(full).is_some());
        }
    }
}
