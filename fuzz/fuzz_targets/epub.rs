//! EPUB importer on arbitrary bytes. Errors are fine; panics, hangs and OOM are bugs.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::Path;
use tunesmith_engine::data::import::{epub, Limits};

fuzz_target!(|data: &[u8]| {
    let limits = Limits {
        max_unpacked_bytes: 64 << 20,
        max_file_bytes: 64 << 20,
    };
    let _ = epub::extract(Path::new("fuzz.epub"), data, &limits);
});
