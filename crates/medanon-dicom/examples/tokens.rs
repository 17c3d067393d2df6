//! Prints the lazy tokens of a file's data set (a debugging aid for what the fuzzer finds).
use dicom_encoding::transfer_syntax::TransferSyntaxIndex;
use dicom_parser::dataset::lazy_read::LazyDataSetReader;
use dicom_parser::dataset::LazyDataToken;
use dicom_transfer_syntax_registry::TransferSyntaxRegistry;
use std::io::Cursor;

fn main() {
    let path = std::env::args().nth(1).expect("a file");
    let bytes = std::fs::read(path).expect("readable");
    let mut cur = Cursor::new(&bytes[128..]);
    let meta = dicom_object::meta::FileMetaTable::from_reader(&mut cur).expect("meta");
    println!("ts {} at {}", meta.transfer_syntax(), cur.position() + 128);
    let ts = TransferSyntaxRegistry.get(meta.transfer_syntax().trim_end_matches('\0')).expect("ts");
    let mut r = LazyDataSetReader::new_with_ts(cur, ts).expect("reader");
    while let Some(t) = r.advance() {
        match t {
            Ok(LazyDataToken::LazyValue { header, decoder }) => {
                println!("value {header:?}");
                let _ = LazyDataToken::LazyValue { header, decoder }.skip();
            }
            Ok(LazyDataToken::LazyItemValue { len, decoder }) => {
                println!("item value {len}");
                let _ = LazyDataToken::LazyItemValue { len, decoder }.skip();
            }
            Ok(other) => println!("{other:?}"),
            Err(e) => {
                println!("error {e}");
                break;
            }
        }
    }
}
