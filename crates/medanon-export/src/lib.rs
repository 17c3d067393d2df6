//! medanon-export: a released snapshot (`medanon.release_snapshot`) written out as
//! delivery files for the data user's own environment (情報系): one CSV file per
//! table and `manifest.json`, and the export recorded in the provision ledger
//! (`medanon.record_export`). [`verify`] is the recipient's check: it recomputes
//! every hash from the files alone, as the ledger defines them
//! (`medanon_core::export`).
//!
//! Beside each CSV file, `<table>.parquet` holds the same rows, every column as
//! UTF-8 text (the same text), NULLs kept; [`verify`] hashes it the same way.
//!
//! The CSV files are UTF-8, RFC 4180 (comma, CRLF, a header line), written by the
//! csv crate's writer with every value quoted; a NULL is an empty, unquoted field,
//! as PostgreSQL's `COPY ... (FORMAT csv)` writes and reads it. So `""` (an empty
//! string) and an empty field (NULL) differ, which the row hash needs.

use medanon_core::export::{hex, manifest_digest, record_text, snapshot_digest, table_digest, Manifest, ManifestTable, FORMAT, TEXT_SETTINGS};
use arrow_array::{Array, ArrayRef, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ArrowWriter;
use postgres::{Client, SimpleQueryMessage};
use std::sync::Arc;
use sha2::{Digest, Sha256};
use std::fs;
use std::io::Write;
use std::path::Path;

/// A failure, said for a person.
pub type Error = String;

/// Rows fetched per round trip.
const BATCH: usize = 5000;

/// One CSV record: the fields, NULL as an empty unquoted field, every value
/// quoted, ending in CRLF.
pub fn csv_record<S: AsRef<str>>(fields: &[Option<S>], out: &mut Vec<u8>) {
    let mut w = csv_core::WriterBuilder::new().quote_style(csv_core::QuoteStyle::Always).terminator(csv_core::Terminator::CRLF).build();
    let mut buf = vec![0u8; 64];
    let mut written_any = false;
    for (i, field) in fields.iter().enumerate() {
        if i > 0 {
            push(&mut buf, out, |b| w.delimiter(b));
            written_any = true;
        }
        if let Some(value) = field {
            let mut input = value.as_ref().as_bytes();
            // An empty value still opens its quotes.
            loop {
                if buf.len() < 2 + 2 * input.len() {
                    buf.resize(2 + 2 * input.len(), 0);
                }
                let (res, nin, nout) = w.field(input, &mut buf);
                out.extend_from_slice(&buf[..nout]);
                input = &input[nin..];
                if res == csv_core::WriteResult::InputEmpty {
                    break;
                }
            }
            written_any = true;
        }
    }
    if written_any {
        push(&mut buf, out, |b| w.terminator(b));
    } else {
        // One NULL field: an empty line (csv-core would write "", an empty string).
        out.extend_from_slice(b"\r\n");
    }
}

fn push(buf: &mut [u8], out: &mut Vec<u8>, f: impl FnOnce(&mut [u8]) -> (csv_core::WriteResult, usize)) {
    let (_, n) = f(buf);
    out.extend_from_slice(&buf[..n]);
}

/// Reads CSV as [`csv_record`] writes it (and any RFC 4180 file): each record's
/// fields, an empty unquoted field as NULL. Line ends CRLF or LF.
pub fn parse_csv(bytes: &[u8]) -> Result<Vec<Vec<Option<String>>>, Error> {
    let text = std::str::from_utf8(bytes).map_err(|e| format!("not UTF-8: {e}"))?;
    let mut records = vec![];
    let mut record: Vec<Option<String>> = vec![];
    let mut chars = text.chars().peekable();
    let mut line = 1usize;
    while chars.peek().is_some() {
        // One field.
        let field = if chars.peek() == Some(&'"') {
            chars.next();
            let mut value = String::new();
            loop {
                match chars.next() {
                    Some('"') if chars.peek() == Some(&'"') => {
                        chars.next();
                        value.push('"');
                    }
                    Some('"') => break,
                    Some(c) => {
                        if c == '\n' {
                            line += 1;
                        }
                        value.push(c);
                    }
                    None => return Err(format!("line {line}: a quoted field is not closed")),
                }
            }
            Some(value)
        } else {
            let mut value = String::new();
            while let Some(&c) = chars.peek() {
                if c == ',' || c == '\r' || c == '\n' {
                    break;
                }
                if c == '"' {
                    return Err(format!("line {line}: a quote inside an unquoted field"));
                }
                value.push(c);
                chars.next();
            }
            (!value.is_empty()).then_some(value)
        };
        record.push(field);
        match chars.next() {
            Some(',') => {
                if chars.peek().is_none() {
                    record.push(None);
                    records.push(std::mem::take(&mut record));
                }
            }
            Some('\r') if chars.peek() == Some(&'\n') => {
                chars.next();
                records.push(std::mem::take(&mut record));
                line += 1;
            }
            Some('\n') => {
                records.push(std::mem::take(&mut record));
                line += 1;
            }
            None => records.push(std::mem::take(&mut record)),
            Some(c) => return Err(format!("line {line}: {c:?} after a quoted field")),
        }
    }
    Ok(records)
}

/// Double-quotes an identifier for SQL.
fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Runs a simple-protocol query and returns its rows as text (PostgreSQL's output
/// functions: the text `record_out` quotes).
fn text_rows(client: &mut Client, sql: &str) -> Result<Vec<Vec<Option<String>>>, Error> {
    let messages = client.simple_query(sql).map_err(|e| db_error(&e))?;
    Ok(messages
        .into_iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(row) => Some((0..row.len()).map(|i| row.get(i).map(str::to_string)).collect()),
            _ => None,
        })
        .collect())
}

/// A server error with its SQLSTATE, DETAIL and HINT, or a connection error.
pub fn db_error(e: &postgres::Error) -> Error {
    match e.as_db_error() {
        Some(db) => {
            let mut s = format!("{}: {}", db.code().code(), db.message());
            if let Some(d) = db.detail() {
                s.push_str(&format!("\nDETAIL: {d}"));
            }
            if let Some(h) = db.hint() {
                s.push_str(&format!("\nHINT: {h}"));
            }
            s
        }
        None => e.to_string(),
    }
}

/// A literal for the simple protocol.
fn literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// Exports `snapshot` into `dir` (created; it must be empty or absent): one CSV
/// per table, then records the export (`medanon.record_export`, in the same
/// transaction that read the rows) and writes `manifest.json` last, so a
/// directory without one holds no recorded export. Returns the manifest.
pub fn export(client: &mut Client, snapshot: &str, dir: &Path) -> Result<(Manifest, String), Error> {
    if dir.exists() && fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?.next().is_some() {
        return Err(format!("{} is not empty: export into a new directory", dir.display()));
    }
    fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    // One snapshot of the database for every table and the record.
    client.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ").map_err(|e| db_error(&e))?;
    for (name, value) in TEXT_SETTINGS {
        client
            .batch_execute(&format!("SET LOCAL {name} TO {}", literal(value)))
            .map_err(|e| db_error(&e))?;
    }
    let tables = text_rows(
        client,
        &format!(
            "SELECT c.relname FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
              WHERE n.nspname = {} AND c.relkind IN ('r', 'p') ORDER BY c.relname COLLATE \"C\"",
            literal(snapshot)
        ),
    )?;
    if tables.is_empty() {
        return Err(format!("snapshot \"{snapshot}\" has no table this role can see (is it the schema release_snapshot returned?)"));
    }
    let mut entries = vec![];
    for row in tables {
        let table = row.into_iter().next().flatten().unwrap_or_default();
        if table.is_empty() || table.starts_with('.') || table.contains(['/', '\\', '\0']) {
            return Err(format!("table name {table:?} cannot name a file"));
        }
        entries.push(export_table(client, snapshot, &table, dir)?);
    }
    let snapshot_sha256 = snapshot_digest(entries.iter().map(|t: &ManifestTable| (t.table.as_str(), t.sha256.as_str())));
    let manifest = Manifest { format: FORMAT.into(), snapshot: snapshot.into(), snapshot_sha256, tables: entries };
    let mut text = serde_json::to_string_pretty(&manifest).map_err(|e| e.to_string())?;
    text.push('\n');
    let recorded = text_rows(client, &format!("SELECT medanon.record_export({})", literal(&text)))?;
    let digest = recorded.into_iter().next().and_then(|r| r.into_iter().next().flatten()).unwrap_or_default();
    if digest != manifest_digest(text.as_bytes()) {
        return Err("the ledger recorded another manifest hash".into());
    }
    client.batch_execute("COMMIT").map_err(|e| db_error(&e))?;
    fs::write(dir.join("manifest.json"), &text).map_err(|e| format!("manifest.json: {e}"))?;
    Ok((manifest, digest))
}

fn export_table(client: &mut Client, snapshot: &str, table: &str, dir: &Path) -> Result<ManifestTable, Error> {
    let qualified = format!("{}.{}", ident(snapshot), ident(table));
    let columns: Vec<String> = text_rows(
        client,
        &format!(
            "SELECT a.attname FROM pg_catalog.pg_attribute a WHERE a.attrelid = {}::regclass AND a.attnum > 0 AND NOT a.attisdropped
              ORDER BY a.attnum",
            literal(&qualified)
        ),
    )?
    .into_iter()
    .map(|r| r.into_iter().next().flatten().unwrap_or_default())
    .collect();
    let file = format!("{table}.csv");
    let mut out = fs::File::create(dir.join(&file)).map_err(|e| format!("{file}: {e}"))?;
    let mut buf = vec![];
    csv_record(&columns.iter().map(Some).collect::<Vec<_>>(), &mut buf);
    // The rows in the order the hash takes them (bytewise by their text), and the
    // server's own text of each row beside its fields: the row rebuilt from the
    // fields must be it, or the recipient could not check the file.
    client
        .batch_execute(&format!(
            "DECLARE medanon_export NO SCROLL CURSOR FOR SELECT t::text COLLATE \"C\", t.* FROM {qualified} t ORDER BY 1"
        ))
        .map_err(|e| db_error(&e))?;
    let parquet_file = format!("{table}.parquet");
    let schema = Arc::new(Schema::new(columns.iter().map(|c| Field::new(c, DataType::Utf8, true)).collect::<Vec<_>>()));
    let pq = fs::File::create(dir.join(&parquet_file)).map_err(|e| format!("{parquet_file}: {e}"))?;
    let mut pq = ArrowWriter::try_new(pq, schema.clone(), None).map_err(|e| format!("{parquet_file}: {e}"))?;
    let mut hasher = Sha256::new();
    let mut rows = 0i64;
    loop {
        let batch = text_rows(client, &format!("FETCH {BATCH} FROM medanon_export"))?;
        if batch.is_empty() {
            break;
        }
        let arrays: Vec<ArrayRef> = (1..=columns.len())
            .map(|i| Arc::new(batch.iter().map(|r| r.get(i).cloned().flatten()).collect::<StringArray>()) as ArrayRef)
            .collect();
        let record_batch = RecordBatch::try_new(schema.clone(), arrays).map_err(|e| format!("{parquet_file}: {e}"))?;
        pq.write(&record_batch).map_err(|e| format!("{parquet_file}: {e}"))?;
        for row in batch {
            let line = row[0].clone().unwrap_or_default();
            let fields = &row[1..];
            let rebuilt = record_text(fields);
            if rebuilt != line {
                return Err(format!("table {table}: row {line:?} does not rebuild from its fields ({rebuilt:?})"));
            }
            hasher.update(line.as_bytes());
            hasher.update(b"\n");
            csv_record(fields, &mut buf);
            rows += 1;
        }
        out.write_all(&buf).map_err(|e| format!("{file}: {e}"))?;
        buf.clear();
    }
    out.write_all(&buf).map_err(|e| format!("{file}: {e}"))?;
    out.sync_all().map_err(|e| format!("{file}: {e}"))?;
    pq.close().map_err(|e| format!("{parquet_file}: {e}"))?;
    client.batch_execute("CLOSE medanon_export").map_err(|e| db_error(&e))?;
    Ok(ManifestTable { table: table.into(), file, columns, rows, sha256: hex(&hasher.finalize()), parquet_file: Some(parquet_file) })
}

/// The recipient's check of an export directory, from its files alone: every
/// CSV file's header, rows and SHA-256 (rebuilt as the ledger defines them), and
/// the snapshot's hash. Returns the manifest and its SHA-256, which equals the
/// `manifest_sha256` of the export's ledger entry.
pub fn verify(dir: &Path) -> Result<(Manifest, String), Error> {
    let text = fs::read(dir.join("manifest.json")).map_err(|e| format!("manifest.json: {e}"))?;
    let manifest: Manifest = serde_json::from_slice(&text).map_err(|e| format!("manifest.json: {e}"))?;
    if manifest.format != FORMAT {
        return Err(format!("manifest.json: format {:?} is not {FORMAT}", manifest.format));
    }
    for t in &manifest.tables {
        if t.file.contains(['/', '\\']) || t.file.starts_with('.') {
            return Err(format!("manifest.json: file name {:?}", t.file));
        }
        let bytes = fs::read(dir.join(&t.file)).map_err(|e| format!("{}: {e}", t.file))?;
        let mut records = parse_csv(&bytes).map_err(|e| format!("{}: {e}", t.file))?.into_iter();
        let header: Vec<String> = records.next().unwrap_or_default().into_iter().map(Option::unwrap_or_default).collect();
        if header != t.columns {
            return Err(format!("{}: the header is not the manifest's columns", t.file));
        }
        let mut lines = vec![];
        for (i, r) in records.enumerate() {
            // A one-column row whose value is NULL is an empty line.
            let r = if r.is_empty() { vec![None] } else { r };
            if r.len() != t.columns.len() {
                return Err(format!("{}: record {} has {} fields, not {}", t.file, i + 2, r.len(), t.columns.len()));
            }
            lines.push(record_text(&r));
        }
        let (sha256, rows) = table_digest(lines);
        if rows != t.rows || sha256 != t.sha256 {
            return Err(format!("{}: {rows} rows with SHA-256 {sha256}, the manifest says {} and {}", t.file, t.rows, t.sha256));
        }
        if let Some(file) = &t.parquet_file {
            if file.contains(['/', '\\']) || file.starts_with('.') {
                return Err(format!("manifest.json: file name {file:?}"));
            }
            let (sha256, rows) = table_digest(parquet_lines(&dir.join(file), t.columns.len()).map_err(|e| format!("{file}: {e}"))?);
            if rows != t.rows || sha256 != t.sha256 {
                return Err(format!("{file}: {rows} rows with SHA-256 {sha256}, the manifest says {} and {}", t.rows, t.sha256));
            }
        }
    }
    let whole = snapshot_digest(manifest.tables.iter().map(|t| (t.table.as_str(), t.sha256.as_str())));
    if whole != manifest.snapshot_sha256 {
        return Err(format!("the snapshot's SHA-256 is {whole}, the manifest says {}", manifest.snapshot_sha256));
    }
    Ok((manifest, manifest_digest(&text)))
}

/// The row texts of a Parquet file written by [`export`] (every column text).
fn parquet_lines(path: &Path, columns: usize) -> Result<Vec<String>, Error> {
    let file = fs::File::open(path).map_err(|e| e.to_string())?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(file).and_then(|b| b.build()).map_err(|e| e.to_string())?;
    let mut lines = vec![];
    for batch in reader {
        let batch = batch.map_err(|e| e.to_string())?;
        if batch.num_columns() != columns {
            return Err(format!("{} columns, not {columns}", batch.num_columns()));
        }
        let cols: Vec<&StringArray> = batch
            .columns()
            .iter()
            .map(|c| c.as_any().downcast_ref::<StringArray>().ok_or("a column is not UTF-8 text"))
            .collect::<Result<_, _>>()?;
        for i in 0..batch.num_rows() {
            let fields: Vec<Option<&str>> = cols.iter().map(|c| (!c.is_null(i)).then(|| c.value(i))).collect();
            lines.push(record_text(&fields));
        }
    }
    Ok(lines)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn line(fields: &[Option<&str>]) -> String {
        let mut out = vec![];
        csv_record(fields, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn values_are_quoted_and_null_is_an_empty_field() {
        assert_eq!(line(&[Some("1"), None, Some(""), Some("a\"b")]), "\"1\",,\"\",\"a\"\"b\"\r\n");
        assert_eq!(line(&[None, None]), ",\r\n");
        assert_eq!(line(&[None]), "\r\n");
        assert_eq!(line(&[Some("")]), "\"\"\r\n");
        assert_eq!(parse_csv(b"\"1\",,\"\",\"a\"\"b\"\r\n").unwrap(), vec![vec![Some("1".into()), None, Some("".into()), Some("a\"b".into())]]);
        assert_eq!(parse_csv(b"\r\n\"\"\r\n").unwrap(), vec![vec![None], vec![Some("".into())]]);
        for bad in [&b"\"open"[..], b"a\"b", b"\"x\"y"] {
            assert!(parse_csv(bad).is_err(), "{bad:?}");
        }
    }

    proptest! {
        /// What the writer writes, the reader reads back, NULLs and empty strings apart.
        #[test]
        fn csv_round_trips(rows in prop::collection::vec(prop::collection::vec(proptest::option::of("\\PC{0,6}|[\",\r\n ]{0,3}"), 1..5), 0..6)) {
            let mut out = vec![];
            for r in &rows {
                csv_record(r, &mut out);
            }
            let back = parse_csv(&out).unwrap();
            let back: Vec<Vec<Option<String>>> = back.into_iter().map(|r| if r.is_empty() { vec![None] } else { r }).collect();
            prop_assert_eq!(back, rows.clone());
            // The csv crate reads the same values (NULL as empty).
            let mut reader = csv::ReaderBuilder::new().has_headers(false).flexible(true).from_reader(&out[..]);
            let values: Vec<Vec<String>> = reader.records().map(|r| r.unwrap().iter().map(str::to_string).collect()).collect();
            let expected: Vec<Vec<String>> = rows.iter().filter(|r| !(r.len() == 1 && r[0].is_none()))
                .map(|r| r.iter().map(|f| f.clone().unwrap_or_default()).collect()).collect();
            prop_assert_eq!(values, expected);
        }
    }
}
