//! The generator. Every table is written in its own pass over the same persons;
//! each household, registration and visit draws from its own seeded stream, so a
//! pass regenerates exactly what the others saw without keeping 1M persons in memory.

use crate::kana::{to_halfwidth, to_hiragana};
use crate::names::*;
use crate::rng::Rng;
use medanon_core::calendar::Ymd;
use medanon_core::jpdate::{era_of, to_era_string};
use std::io::{self, Write};

pub struct Config {
    pub patients: u64,
    pub seed: u64,
    pub schema: String,
    pub visits_per_patient: u32,
}

impl Default for Config {
    fn default() -> Self {
        Config { patients: 1000, seed: 42, schema: "synth".into(), visits_per_patient: 3 }
    }
}

/// The day the data set is "taken": no visit or birth after it.
const DATA_END: Ymd = Ymd { year: 2026, month: 3, day: 31 };
const VISITS_START: Ymd = Ymd { year: 2019, month: 4, day: 1 };

#[derive(Clone)]
struct Card {
    insurer: String,
    symbol: String,
    number: String,
}

struct Person {
    id: u64,
    surname: usize,
    given: usize,
    /// 1 male, 2 female (the receipt code convention).
    sex: u8,
    birth: Ymd,
    place: usize,
    town: usize,
    block: (u32, u32, u32),
    postal: String,
    card: Card,
    /// The same-sex twin born before this person (same card, birth date, sex).
    twin_of: Option<u64>,
}

impl Person {
    fn given_name(&self) -> (String, String) {
        given_name(self.sex, self.given)
    }
    fn kana(&self) -> String {
        format!("{}\u{3000}{}", SURNAMES[self.surname].1, self.given_name().1)
    }
}

/// How many given names a sex has: the classic list, then the composed ones.
fn given_names(sex: u8) -> usize {
    if sex == 1 {
        MALE_NAMES.len() + MALE_HEADS.len() * MALE_TAILS.len()
    } else {
        FEMALE_NAMES.len() + FEMALE_HEADS.len() * FEMALE_TAILS.len()
    }
}

/// Given name number `i` of a sex, as (kanji, kana).
fn given_name(sex: u8, i: usize) -> (String, String) {
    let (classic, heads, tails) =
        if sex == 1 { (MALE_NAMES, MALE_HEADS, MALE_TAILS) } else { (FEMALE_NAMES, FEMALE_HEADS, FEMALE_TAILS) };
    if i < classic.len() {
        (classic[i].0.to_string(), classic[i].1.to_string())
    } else {
        let j = i - classic.len();
        let (head, tail) = (heads[j / tails.len()], tails[j % tails.len()]);
        (format!("{}{}", head.0, tail.0), format!("{}{}", head.1, tail.1))
    }
}

fn mix(seed: u64, stream: u64, index: u64) -> u64 {
    seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ stream.rotate_left(32) ^ index.wrapping_mul(0xD1B5_4A32_D192_ED03)
}

fn random_day(rng: &mut Rng, from: Ymd, to: Ymd) -> Ymd {
    let (a, b) = (from.to_pg_days(), to.to_pg_days());
    Ymd::from_pg_days(rng.range(a, b.max(a)))
}

fn year_day(rng: &mut Rng, year: i32) -> Ymd {
    let from = Ymd { year, month: 1, day: 1 };
    let to = Ymd { year, month: 12, day: 31 };
    random_day(rng, from, to).min(DATA_END)
}

fn digits(rng: &mut Rng, n: usize) -> String {
    (0..n).map(|_| char::from(b'0' + rng.below(10) as u8)).collect()
}

fn new_card(rng: &mut Rng) -> Card {
    let insurer = match rng.below(10) {
        0..=4 => format!("06{}", digits(rng, 6)), // 健康保険組合
        5..=7 => format!("01{}", digits(rng, 6)), // 協会けんぽ
        _ => digits(rng, 6),                      // 国民健康保険
    };
    let symbol_len = 3 + rng.below(6) as usize;
    let number_len = 1 + rng.below(7) as usize;
    Card { insurer, symbol: digits(rng, symbol_len), number: digits(rng, number_len) }
}

fn weighted<T>(rng: &mut Rng, items: &[T], weight: impl Fn(&T) -> u32) -> usize {
    let total: u64 = items.iter().map(|i| weight(i) as u64).sum();
    let mut pick = rng.below(total);
    for (i, item) in items.iter().enumerate() {
        let w = weight(item) as u64;
        if pick < w {
            return i;
        }
        pick -= w;
    }
    items.len() - 1
}

/// Calls `f` for every person, household by household.
fn for_each_person(config: &Config, mut f: impl FnMut(&Person)) {
    let mut next_id = 1u64;
    let mut household = 0u64;
    while next_id <= config.patients {
        let rng = &mut Rng::new(mix(config.seed, 1, household));
        household += 1;
        let remaining = config.patients - next_id + 1;
        let size = [1u64, 1, 1, 1, 2, 2, 2, 3, 3, 4][rng.below(10) as usize].min(remaining);
        let surname = rng.below(SURNAMES.len() as u64) as usize;
        let place = weighted(rng, PLACES, |p| p.3);
        let town = rng.below(TOWNS.len() as u64) as usize;
        let block = (1 + rng.below(5) as u32, 1 + rng.below(30) as u32, 1 + rng.below(20) as u32);
        let postal = format!("{}{}", PLACES[place].2, digits(rng, 4));
        let card = new_card(rng);
        let head_year = 1930 + rng.below(71) as i32;
        let head_sex = 1 + rng.below(2) as u8;
        let mut members: Vec<Person> = Vec::with_capacity(size as usize);
        for m in 0..size {
            let mut twin_of = None;
            let (sex, birth) = match m {
                0 => (head_sex, year_day(rng, head_year)),
                1 if size == 2 || rng.chance(0.6) => {
                    let year = head_year + rng.range(-5, 5) as i32;
                    (3 - head_sex, year_day(rng, year))
                }
                _ => {
                    let prev = members.last().filter(|p| p.birth.year > head_year + 10);
                    // Same-sex twins: same card, same birth date, same sex, so the same ID1.
                    match prev {
                        Some(p) if rng.chance(0.08) => {
                            twin_of = Some(p.id);
                            (p.sex, p.birth)
                        }
                        _ => {
                            let sex = 1 + rng.below(2) as u8;
                            let year = (head_year + rng.range(24, 40) as i32).min(2025);
                            (sex, year_day(rng, year))
                        }
                    }
                }
            };
            // Half classic names, half composed ones.
            let classic = if sex == 1 { MALE_NAMES.len() } else { FEMALE_NAMES.len() };
            let mut given = if rng.chance(0.5) {
                rng.below(classic as u64) as usize
            } else {
                classic + rng.below((given_names(sex) - classic) as u64) as usize
            };
            // Twins, half the time, get names as similar as parents choose: the
            // same first character, another second (悠斗 ユウト, 悠真 ユウマ;
            // 健一 ケンイチ, 健治 ケンジ), so the kana may be one edit apart.
            if let Some(twin) = twin_of.and_then(|t| members.iter().find(|p| p.id == t)) {
                let (heads, tails) = if sex == 1 { (MALE_HEADS.len(), MALE_TAILS.len()) } else { (FEMALE_HEADS.len(), FEMALE_TAILS.len()) };
                if twin.given >= classic && rng.chance(0.5) {
                    let j = twin.given - classic;
                    let (head, tail) = (j / tails, j % tails);
                    let other = (tail + 1 + rng.below(tails as u64 - 1) as usize) % tails;
                    given = classic + (head % heads) * tails + other;
                }
            }
            // Siblings of one sex never share a given name, and twins never share
            // a reading (their kana name, birth date and sex would be one ID2).
            let kana_of = |g: usize| given_name(sex, g).1;
            while members.iter().any(|p| p.sex == sex && (p.given == given || (Some(p.id) == twin_of && kana_of(p.given) == kana_of(given)))) {
                given = (given + 1) % given_names(sex);
            }
            members.push(Person {
                id: next_id,
                surname,
                given,
                sex,
                birth,
                place,
                town,
                block,
                postal: postal.clone(),
                card: card.clone(),
                twin_of,
            });
            next_id += 1;
        }
        members.iter().for_each(&mut f);
    }
}

/// How one institution's system writes a record.
struct Style {
    kana: fn(&str) -> String,
    birth: fn(Ymd) -> String,
    sex: [&'static str; 2],
    full_width_digits: bool,
    old_kanji: bool,
    drop_prefecture: bool,
    postal: fn(&str) -> String,
}

fn full_width(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '0'..='9' => char::from_u32(c as u32 - '0' as u32 + 0xFF10).unwrap_or(c),
            '-' => '－',
            _ => c,
        })
        .collect()
}

fn era_abbrev(d: Ymd) -> String {
    match era_of(d) {
        Some(e) => format!("{}{:02}.{:02}.{:02}", e.letter, d.year - e.first_day.year + 1, d.month, d.day),
        None => d.to_string(),
    }
}

fn receipt_code(d: Ymd) -> String {
    match era_of(d) {
        Some(e) => format!("{}{:02}{:02}{:02}", e.code, d.year - e.first_day.year + 1, d.month, d.day),
        None => d.to_string(),
    }
}

fn style_of(institution: usize) -> Style {
    match institution % 8 {
        0 => Style { kana: |k| k.to_string(), birth: |d| d.to_string(), sex: ["1", "2"], full_width_digits: false, old_kanji: false, drop_prefecture: false, postal: |p| format!("〒{}-{}", &p[..3], &p[3..]) },
        1 => Style { kana: to_halfwidth, birth: era_abbrev, sex: ["M", "F"], full_width_digits: false, old_kanji: true, drop_prefecture: true, postal: |p| p.to_string() },
        2 => Style { kana: |k| to_hiragana(k).replace('\u{3000}', ""), birth: |d| to_era_string(d).unwrap_or_else(|| d.to_string()), sex: ["男", "女"], full_width_digits: true, old_kanji: false, drop_prefecture: false, postal: |p| format!("{}-{}", &p[..3], &p[3..]) },
        3 => Style { kana: |k| k.replace('\u{3000}', ""), birth: |d| format!("{:04}{:02}{:02}", d.year, d.month, d.day), sex: ["男性", "女性"], full_width_digits: false, old_kanji: true, drop_prefecture: false, postal: |p| format!("{}-{}", &p[..3], &p[3..]) },
        4 => Style { kana: |k| k.replace('\u{3000}', " "), birth: |d| format!("{}/{}/{}", d.year, d.month, d.day), sex: ["m", "f"], full_width_digits: false, old_kanji: false, drop_prefecture: true, postal: |p| p.to_string() },
        5 => Style { kana: |k| k.to_string(), birth: receipt_code, sex: ["1", "2"], full_width_digits: false, old_kanji: false, drop_prefecture: false, postal: |p| format!("〒{}-{}", &p[..3], &p[3..]) },
        6 => Style { kana: |k| k.to_string(), birth: |d| full_width(&d.to_string()), sex: ["1", "2"], full_width_digits: true, old_kanji: false, drop_prefecture: false, postal: |p| full_width(&format!("{}-{}", &p[..3], &p[3..])) },
        _ => Style { kana: to_halfwidth, birth: |d| to_era_string(d).unwrap_or_else(|| d.to_string()), sex: ["M", "F"], full_width_digits: false, old_kanji: true, drop_prefecture: false, postal: |p| p.to_string() },
    }
}

struct Institution {
    code: String,
    name: String,
    kind: &'static str,
    prefecture: &'static str,
}

fn institutions() -> Vec<Institution> {
    INSTITUTIONS
        .iter()
        .map(|(code, name, kind, pref)| Institution { code: code.to_string(), name: name.to_string(), kind, prefecture: pref })
        .collect()
}

/// One record as an institution sent it.
struct Registration {
    institution: usize,
    local_id: String,
    fields: [String; 9],
    true_person: u64,
    /// What a perfect normalizer would read from this record: the kana name after
    /// any typo but before the institution's writing style ("" when the name was
    /// left out), the card as insurer|symbol|number ("" when left out), and the
    /// birth date ("" when it was written unreadably).
    clean: [String; 3],
}

/// One slip of hand-entered kana, one edit each: a confusion of look-alikes
/// (シ/ツ, ソ/ン, a dropped voiced mark, ウ for ー), a character dropped or
/// doubled, or two neighbours swapped.
fn typo(rng: &mut Rng, kana: &str) -> String {
    let chars: Vec<char> = kana.chars().collect();
    let swaps = [('シ', 'ツ'), ('ツ', 'シ'), ('ソ', 'ン'), ('ン', 'ソ'), ('ウ', 'ー'), ('ガ', 'カ'), ('ジ', 'シ'), ('ダ', 'タ'), ('ボ', 'ホ'), ('イ', 'キ')];
    let candidates: Vec<usize> = (0..chars.len()).filter(|&i| swaps.iter().any(|(a, _)| *a == chars[i])).collect();
    // Positions of letters (not the space between surname and given name).
    let letters: Vec<usize> = (0..chars.len()).filter(|&i| chars[i] != '\u{3000}').collect();
    let mut out = chars.clone();
    match rng.below(4) {
        0 if !candidates.is_empty() => {
            let i = *rng.pick(&candidates);
            out[i] = swaps.iter().find(|(a, _)| *a == chars[i]).map(|(_, b)| *b).unwrap_or(chars[i]);
        }
        1 if letters.len() > 3 => {
            out.remove(*rng.pick(&letters));
        }
        2 if !letters.is_empty() => {
            let i = *rng.pick(&letters);
            out.insert(i, chars[i]);
        }
        _ => {
            // Swap two neighbouring letters.
            let pairs: Vec<usize> = (0..chars.len().saturating_sub(1))
                .filter(|&i| chars[i] != '\u{3000}' && chars[i + 1] != '\u{3000}' && chars[i] != chars[i + 1])
                .collect();
            if !pairs.is_empty() {
                let i = *rng.pick(&pairs);
                out.swap(i, i + 1);
            }
        }
    }
    out.into_iter().collect()
}

fn for_each_registration(config: &Config, institutions: &[Institution], mut f: impl FnMut(&Person, &Registration)) {
    let mut counters = vec![0u64; institutions.len()];
    for_each_person(config, |person| {
        let rng = &mut Rng::new(mix(config.seed, 2, person.id));
        let visits = [1usize, 1, 1, 1, 1, 2, 2, 2, 3, 4][rng.below(10) as usize].min(institutions.len());
        let mut chosen: Vec<usize> = Vec::with_capacity(visits);
        while chosen.len() < visits {
            let i = weighted(rng, institutions, |inst| if inst.kind == "hospital" { 3 } else { 1 });
            if !chosen.contains(&i) {
                chosen.push(i);
            }
        }
        for (nth, &inst) in chosen.iter().enumerate() {
            counters[inst] += 1;
            let style = style_of(inst);
            let local_id = if inst % 2 == 0 { format!("{:08}", counters[inst]) } else { format!("P{}", 100_000 + counters[inst]) };
            let (given_kanji, _) = person.given_name();
            let given_kanji = given_kanji.as_str();
            let variants = SURNAMES[person.surname].0;
            let surname_kanji = if style.old_kanji { variants[variants.len() - 1] } else { variants[0] };
            let mut kana = person.kana();
            if rng.chance(0.02) {
                kana = typo(rng, &kana);
            }
            let (kana, clean_kana) = if rng.chance(0.005) { (String::new(), String::new()) } else { ((style.kana)(&kana), kana.replace('\u{3000}', "")) };
            let (birth, clean_birth) = if rng.chance(0.002) {
                (["不明", "0000-00-00", ""][rng.below(3) as usize].to_string(), String::new())
            } else {
                ((style.birth)(person.birth), person.birth.to_string())
            };
            let card = if nth > 0 && rng.chance(0.05) { new_card(rng) } else { person.card.clone() };
            let card_left_out = rng.chance(0.02);
            let clean_card = if card_left_out { String::new() } else { format!("{}|{}|{}", card.insurer, card.symbol, card.number) };
            let (insurer, symbol, number) = if card_left_out {
                (String::new(), String::new(), String::new())
            } else if style.full_width_digits {
                (full_width(&card.insurer), full_width(&card.symbol), full_width(&card.number))
            } else if inst % 8 == 3 {
                (format!(" {} ", card.insurer), card.symbol.clone(), format!("{}-{}", &card.number[..card.number.len().min(1)], &card.number[card.number.len().min(1)..]))
            } else {
                (card.insurer.clone(), card.symbol.clone(), card.number.clone())
            };
            let (pref, municipality, _, _) = PLACES[person.place];
            let (b1, b2, b3) = person.block;
            let street = format!("{municipality}{}{b1}丁目{b2}-{b3}", TOWNS[person.town]);
            let address = if style.drop_prefecture && municipality.contains('市') { street } else { format!("{pref}{street}") };
            let address = if style.full_width_digits { full_width(&address) } else { address };
            // Kanji names: one institution's system (style 4) sends none, and 3% of
            // the others' records leave the field empty.
            let kanji = if inst % 8 == 4 || rng.chance(0.03) {
                String::new()
            } else {
                format!("{surname_kanji}\u{3000}{given_kanji}")
            };
            let registration = Registration {
                institution: inst,
                local_id,
                true_person: person.id,
                clean: [clean_kana, clean_card, clean_birth],
                fields: [
                    kana,
                    kanji,
                    birth,
                    style.sex[(person.sex - 1) as usize].to_string(),
                    insurer,
                    symbol,
                    number,
                    (style.postal)(&person.postal),
                    address,
                ],
            };
            f(person, &registration);
        }
    });
}

struct Visit {
    id: u64,
    institution: usize,
    local_id: String,
    date: Ymd,
    department: &'static str,
    rng_seed: u64,
}

fn for_each_visit(config: &Config, institutions: &[Institution], mut f: impl FnMut(&Visit)) {
    if config.visits_per_patient == 0 {
        return;
    }
    let mut next_id = 1u64;
    let mean = config.visits_per_patient as u64;
    for_each_registration(config, institutions, |person, reg| {
        let rng = &mut Rng::new(mix(config.seed, 3, next_id));
        let n = 1 + rng.below(2 * mean - 1);
        let from = person.birth.max(VISITS_START);
        for _ in 0..n {
            let visit = Visit {
                id: next_id,
                institution: reg.institution,
                local_id: reg.local_id.clone(),
                date: random_day(rng, from, DATA_END),
                department: *rng.pick(DEPARTMENTS),
                rng_seed: mix(config.seed, 4, next_id),
            };
            next_id += 1;
            f(&visit);
        }
    });
}

/// Writes a COPY text-format row. Our values hold no tab, newline or backslash
/// (`\\N` is NULL);
/// a debug build checks that.
fn row(out: &mut (impl Write + ?Sized), fields: &[&str]) -> io::Result<()> {
    for (i, field) in fields.iter().enumerate() {
        debug_assert!(*field == "\\N" || !field.contains(['\t', '\n', '\\']), "{field:?}");
        if i > 0 {
            out.write_all(b"\t")?;
        }
        out.write_all(field.as_bytes())?;
    }
    out.write_all(b"\n")
}

fn copy_block(out: &mut impl Write, schema: &str, table: &str, body: impl FnOnce(&mut dyn Write) -> io::Result<()>) -> io::Result<()> {
    writeln!(out, "COPY {schema}.{table} FROM stdin;")?;
    body(out)?;
    writeln!(out, "\\.")
}

pub fn write_script(config: &Config, out: &mut impl Write) -> io::Result<()> {
    let s = &config.schema;
    let insts = institutions();
    writeln!(out, "-- medanon synthetic hospital data: {} persons, seed {}, {} visits per registration on average",
        config.patients, config.seed, config.visits_per_patient)?;
    writeln!(out, "\\set ON_ERROR_STOP on\nBEGIN;\nDROP SCHEMA IF EXISTS {s} CASCADE;\nCREATE SCHEMA {s};")?;
    writeln!(out, "
CREATE TABLE {s}.institution (code text, name text NOT NULL, kind text NOT NULL, prefecture text NOT NULL);
-- Staging: what institutions send, all text, as their systems write it.
CREATE TABLE {s}.registration (institution_code text, local_patient_id text, name_kana text, name_kanji text,
    birth_date text, sex text, insurer_number text, insured_symbol text, insured_number text, postal_code text, address text);
-- Ground truth: which records are the same person. Never given to the linker.
CREATE TABLE {s}.truth (institution_code text, local_patient_id text, true_person_id bigint NOT NULL,
    -- What a perfect normalizer reads from the record (NULL where the record left it out
    -- or wrote it unreadably): kana after typos, card as insurer|symbol|number, birth date.
    clean_kana text, clean_card text, clean_birth date);
-- The clean persons behind the records, for checks and the demo.
CREATE TABLE {s}.person (true_person_id bigint, name_kana text, name_kanji text, birth_date date, sex smallint,
    postal_code text, prefecture text, municipality text,
    -- The same-sex twin (same card, birth date and sex) born before, if any.
    twin_of bigint);
CREATE TABLE {s}.visit (visit_id bigint, institution_code text NOT NULL, local_patient_id text NOT NULL,
    visit_date date NOT NULL, department text);
CREATE TABLE {s}.diagnosis (visit_id bigint NOT NULL, icd10 text NOT NULL);
CREATE TABLE {s}.prescription (visit_id bigint NOT NULL, drug_code text NOT NULL, drug_name text, days integer);
CREATE TABLE {s}.lab_result (visit_id bigint NOT NULL, test_code text NOT NULL, value numeric, unit text);")?;

    copy_block(out, s, "institution", |out| {
        for i in &insts {
            row(out, &[&i.code, &i.name, i.kind, i.prefecture])?;
        }
        Ok(())
    })?;
    let mut result = Ok(());
    macro_rules! guarded {
        ($e:expr) => {
            if result.is_ok() {
                result = $e;
            }
        };
    }
    copy_block(out, s, "registration", |out| {
        for_each_registration(config, &insts, |_, r| {
            let f = &r.fields;
            guarded!(row(out, &[&insts[r.institution].code, &r.local_id, &f[0], &f[1], &f[2], &f[3], &f[4], &f[5], &f[6], &f[7], &f[8]]));
        });
        std::mem::replace(&mut result, Ok(()))
    })?;
    copy_block(out, s, "truth", |out| {
        for_each_registration(config, &insts, |_, r| {
            let null = |v: &str| if v.is_empty() { "\\N".to_string() } else { v.to_string() };
            guarded!(row(out, &[&insts[r.institution].code, &r.local_id, &r.true_person.to_string(),
                &null(&r.clean[0]), &null(&r.clean[1]), &null(&r.clean[2])]));
        });
        std::mem::replace(&mut result, Ok(()))
    })?;
    copy_block(out, s, "person", |out| {
        for_each_person(config, |p| {
            let given_kanji = p.given_name().0;
            let (pref, municipality, _, _) = PLACES[p.place];
            guarded!(row(out, &[&p.id.to_string(), &p.kana(), &format!("{}\u{3000}{}", SURNAMES[p.surname].0[0], given_kanji),
                &p.birth.to_string(), &p.sex.to_string(), &p.postal, pref, municipality,
                &p.twin_of.map_or("\\N".to_string(), |t| t.to_string())]));
        });
        std::mem::replace(&mut result, Ok(()))
    })?;
    copy_block(out, s, "visit", |out| {
        for_each_visit(config, &insts, |v| {
            guarded!(row(out, &[&v.id.to_string(), &insts[v.institution].code, &v.local_id, &v.date.to_string(), v.department]));
        });
        std::mem::replace(&mut result, Ok(()))
    })?;
    copy_block(out, s, "diagnosis", |out| {
        for_each_visit(config, &insts, |v| {
            let rng = &mut Rng::new(v.rng_seed);
            let n = if rng.chance(0.3) { 2 } else { 1 };
            for _ in 0..n {
                let code = ICD10[weighted(rng, ICD10, |c| c.1)].0;
                guarded!(row(out, &[&v.id.to_string(), code]));
            }
        });
        std::mem::replace(&mut result, Ok(()))
    })?;
    copy_block(out, s, "prescription", |out| {
        for_each_visit(config, &insts, |v| {
            let rng = &mut Rng::new(v.rng_seed ^ 0x5EED);
            if rng.chance(0.6) {
                for _ in 0..1 + rng.below(2) {
                    let (code, name, days) = *rng.pick(DRUGS);
                    guarded!(row(out, &[&v.id.to_string(), code, name, &days.to_string()]));
                }
            }
        });
        std::mem::replace(&mut result, Ok(()))
    })?;
    copy_block(out, s, "lab_result", |out| {
        for_each_visit(config, &insts, |v| {
            let rng = &mut Rng::new(v.rng_seed ^ 0x1AB);
            if rng.chance(0.5) {
                for _ in 0..1 + rng.below(3) {
                    let (code, unit, mean, sd, min) = *rng.pick(LABS);
                    let value = (mean + sd * rng.normal()).max(min);
                    guarded!(row(out, &[&v.id.to_string(), code, &format!("{value:.1}"), unit]));
                }
            }
        });
        std::mem::replace(&mut result, Ok(()))
    })?;
    writeln!(out, "
ALTER TABLE {s}.institution ADD PRIMARY KEY (code);
ALTER TABLE {s}.truth ADD PRIMARY KEY (institution_code, local_patient_id);
ALTER TABLE {s}.person ADD PRIMARY KEY (true_person_id);
ALTER TABLE {s}.visit ADD PRIMARY KEY (visit_id);
CREATE INDEX ON {s}.diagnosis (visit_id);
CREATE INDEX ON {s}.prescription (visit_id);
CREATE INDEX ON {s}.lab_result (visit_id);
COMMIT;
ANALYZE {s}.institution, {s}.registration, {s}.truth, {s}.person, {s}.visit, {s}.diagnosis, {s}.prescription, {s}.lab_result;")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn script(patients: u64, seed: u64) -> String {
        let config = Config { patients, seed, ..Config::default() };
        let mut out = Vec::new();
        write_script(&config, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn deterministic_per_seed() {
        assert_eq!(script(200, 7), script(200, 7));
        assert_ne!(script(200, 7), script(200, 8));
    }

    #[test]
    fn twins_typos_and_missing_kanji_are_planted() {
        let config = Config { patients: 20000, ..Config::default() };
        let mut persons: std::collections::HashMap<u64, (u8, Ymd, String)> = Default::default();
        let mut twins = Vec::new();
        for_each_person(&config, |p| {
            persons.insert(p.id, (p.sex, p.birth, p.kana()));
            if let Some(t) = p.twin_of {
                twins.push((t, p.id));
            }
        });
        assert!(twins.len() > 50, "{} twin pairs", twins.len());
        let mut similar = 0;
        for (a, b) in &twins {
            let (pa, pb) = (&persons[a], &persons[b]);
            assert_eq!((pa.0, pa.1), (pb.0, pb.1), "twins share sex and birth date");
            assert_ne!(pa.2, pb.2, "twins never share a reading");
            similar += medanon_core::link::osa_within_one(&pa.2, &pb.2) as usize;
        }
        assert!(similar > 0, "some twins' kana are one edit apart");
        let (mut typos, mut no_kanji, mut regs) = (0, 0, 0);
        for_each_registration(&config, &institutions(), |p, r| {
            regs += 1;
            if !r.clean[0].is_empty() && r.clean[0] != p.kana().replace('\u{3000}', "") {
                assert!(medanon_core::link::osa_within_one(&r.clean[0], &p.kana().replace('\u{3000}', "")), "{}", r.clean[0]);
                typos += 1;
            }
            no_kanji += r.fields[1].is_empty() as usize;
        });
        assert!(typos as f64 > regs as f64 * 0.01, "{typos} typos in {regs}");
        assert!(no_kanji as f64 > regs as f64 * 0.03, "{no_kanji} without kanji in {regs}");
    }

    #[test]
    fn every_registration_has_a_truth_row_and_dates_parse() {
        let config = Config { patients: 2000, ..Config::default() };
        let insts = institutions();
        let mut regs = 0;
        let mut parsed = 0;
        let mut persons = std::collections::HashSet::new();
        let mut multi = std::collections::HashMap::<u64, usize>::new();
        for_each_registration(&config, &insts, |p, r| {
            regs += 1;
            persons.insert(r.true_person);
            *multi.entry(p.id).or_default() += 1;
            if let Ok(d) = medanon_core::jpdate::parse_japanese_date(&r.fields[2]) {
                assert_eq!(d, p.birth, "{}", r.fields[2]);
                parsed += 1;
            }
        });
        assert_eq!(persons.len(), 2000);
        assert!(regs > 2600, "{regs} registrations");
        // All but the deliberately unreadable ~0.2% parse, to the true birth date.
        assert!(parsed as f64 > regs as f64 * 0.99, "{parsed} of {regs}");
        assert!(multi.values().filter(|&&n| n > 1).count() > 500);
    }
}
