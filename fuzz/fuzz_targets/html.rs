//! HTML visible-text extraction on arbitrary text. Panics, hangs and OOM are bugs.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tunesmith_engine::data::import::html;

fuzz_target!(|data: &[u8]| {
    let _ = html::visible_text(&String::from_utf8_lossy(data));
});
