//! Text decoding (BOMs, UTF-16, legacy encodings) on arbitrary bytes. Errors are fine; panics,
//! hangs and OOM are bugs.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::Path;
use tunesmith_engine::data::import::encoding;

fuzz_target!(|data: &[u8]| {
    let _ = encoding::decode(Path::new("fuzz.txt"), data);
});
