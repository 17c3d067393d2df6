//! Delivery files (issue 21): what a snapshot's rows hash to, defined once for
//! the extension (`release_snapshot` records it, `record_export` checks a manifest
//! against it) and for `medanon-export` and its recipient (who recompute it from
//! the CSV files alone).
//!
//! The hash of a table is the SHA-256 of its rows' text forms, PostgreSQL's
//! `record_out` (`row::text`), sorted bytewise, each followed by a newline; the
//! hash of a snapshot is that of the lines `<table>:<hex sha-256>\n` in table-name
//! order. The text of a value depends on a few settings (a date under DateStyle
//! German reads otherwise), so both sides fix them to [`TEXT_SETTINGS`].

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The settings under which values are turned into text for hashing: by
/// `release_snapshot` and by `medanon-export`, whatever the session had.
pub const TEXT_SETTINGS: &[(&str, &str)] = &[
    ("DateStyle", "ISO, YMD"),
    ("IntervalStyle", "postgres"),
    ("TimeZone", "UTC"),
    ("extra_float_digits", "1"),
    ("bytea_output", "hex"),
];

/// The manifest's format name.
pub const FORMAT: &str = "medanon-export/1";

/// `manifest.json`: what was exported, and each file's rows and hash.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub format: String,
    /// The snapshot's schema, as `release_snapshot` named it.
    pub snapshot: String,
    /// The snapshot's hash, as its ledger entry holds it (`detail.sha256`).
    pub snapshot_sha256: String,
    /// In table-name order.
    pub tables: Vec<ManifestTable>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestTable {
    pub table: String,
    pub file: String,
    pub columns: Vec<String>,
    pub rows: i64,
    pub sha256: String,
    /// The same rows as Parquet (every column UTF-8 text), when written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parquet_file: Option<String>,
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The text form of a row, as PostgreSQL's `record_out` writes it: `(a,b,)`, a
/// NULL as nothing, and a value double-quoted when it is empty or holds a quote,
/// a backslash, a parenthesis, a comma or white space, with quotes and
/// backslashes doubled inside.
pub fn record_text<S: AsRef<str>>(fields: &[Option<S>]) -> String {
    let mut out = String::from("(");
    for (i, field) in fields.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let Some(value) = field else { continue };
        let value = value.as_ref();
        let quote = value.is_empty()
            || value.bytes().any(|b| matches!(b, b'"' | b'\\' | b'(' | b')' | b',' | b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c));
        if quote {
            out.push('"');
        }
        for c in value.chars() {
            if c == '"' || c == '\\' {
                out.push(c);
            }
            out.push(c);
        }
        if quote {
            out.push('"');
        }
    }
    out.push(')');
    out
}

/// The hash and count of a table's rows, from their text forms in any order.
pub fn table_digest(mut lines: Vec<String>) -> (String, i64) {
    lines.sort_unstable_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    let mut hasher = Sha256::new();
    for line in &lines {
        hasher.update(line.as_bytes());
        hasher.update(b"\n");
    }
    (hex(&hasher.finalize()), lines.len() as i64)
}

/// The hash of a whole snapshot from its tables' hashes.
pub fn snapshot_digest<'a>(tables: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut tables: Vec<_> = tables.into_iter().collect();
    tables.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    let mut hasher = Sha256::new();
    for (table, digest) in tables {
        hasher.update(format!("{table}:{digest}\n").as_bytes());
    }
    hex(&hasher.finalize())
}

/// The SHA-256 of a manifest file's bytes, as the ledger's export entry holds it.
pub fn manifest_digest(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_text_quotes_as_postgres_does() {
        // Each expected text is what PostgreSQL 15 prints for ROW(...)::text.
        let cases: &[(&[Option<&str>], &str)] = &[
            (&[Some("1"), Some("abc")], "(1,abc)"),
            (&[None, Some("x")], "(,x)"),
            (&[Some(""), None], "(\"\",)"),
            (&[Some("a b")], "(\"a b\")"),
            (&[Some("[40,45)")], "(\"[40,45)\")"),
            (&[Some("say \"hi\"")], "(\"say \"\"hi\"\"\")"),
            (&[Some("c:\\x")], "(\"c:\\\\x\")"),
            (&[Some("東京都")], "(東京都)"),
            (&[Some("2026-04-01")], "(2026-04-01)"),
        ];
        for (fields, text) in cases {
            assert_eq!(record_text(fields), *text);
        }
    }

    #[test]
    fn digests_sort_their_input() {
        let a = table_digest(vec!["(2)".into(), "(1)".into()]);
        let b = table_digest(vec!["(1)".into(), "(2)".into()]);
        assert_eq!(a, b);
        assert_eq!(a.1, 2);
        assert_eq!(table_digest(vec![]).0, hex(&Sha256::digest(b"")));
        assert_eq!(snapshot_digest([("b", "2"), ("a", "1")]), hex(&Sha256::digest(b"a:1\nb:2\n")));
    }
}
