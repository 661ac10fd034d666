//! JSON and JSONL importers on arbitrary text. Errors are fine; panics, hangs and OOM are bugs.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::Path;
use tunesmith_engine::data::import::structured;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = structured::json(Path::new("fuzz.json"), &text);
    let _ = structured::jsonl(Path::new("fuzz.jsonl"), &text);
});
