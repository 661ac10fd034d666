//! CSV and TSV importer on arbitrary text, read as text and as (prompt, completion) pairs.
//! Errors are fine; panics, hangs and OOM are bugs.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::Path;
use tunesmith_engine::data::import::structured;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    // The column names of the seed tables (good/pairs.tsv and good/products.csv).
    let tsv_pairs = ("question".to_string(), "answer".to_string());
    let csv_pairs = ("name".to_string(), "description".to_string());
    let csv = Path::new("fuzz.csv");
    let tsv = Path::new("fuzz.tsv");
    let _ = structured::table(csv, &text, false, None);
    let _ = structured::table(csv, &text, false, Some(&csv_pairs));
    let _ = structured::table(tsv, &text, true, None);
    let _ = structured::table(tsv, &text, true, Some(&tsv_pairs));
});
