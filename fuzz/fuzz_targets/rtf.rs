//! RTF importer on arbitrary text. Errors are fine; panics, hangs and OOM are bugs.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::Path;
use tunesmith_engine::data::import::rtf;

fuzz_target!(|data: &[u8]| {
    let _ = rtf::extract(Path::new("fuzz.rtf"), &String::from_utf8_lossy(data));
});
