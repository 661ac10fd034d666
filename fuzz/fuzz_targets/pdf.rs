//! PDF importer on arbitrary bytes. Errors are fine; panics, hangs and OOM are bugs.
//!
//! `pdf::extract` catches panics of the PDF parser and reports the file as damaged: that is the
//! intended handling, not a bug. libfuzzer-sys's panic hook aborts on every panic, caught or not,
//! so this target replaces it with one that only remembers the message, and aborts itself when a
//! panic gets out of `pdf::extract`.
#![no_main]

use std::cell::RefCell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

use libfuzzer_sys::fuzz_target;
use tunesmith_engine::data::import::pdf;

thread_local! {
    static LAST_PANIC: RefCell<String> = const { RefCell::new(String::new()) };
}

fuzz_target!(
    init: {
        std::panic::set_hook(Box::new(|info| {
            LAST_PANIC.with(|last| *last.borrow_mut() = info.to_string());
        }));
    },
    |data: &[u8]| {
        let result = catch_unwind(AssertUnwindSafe(|| pdf::extract(Path::new("fuzz.pdf"), data)));
        if result.is_err() {
            LAST_PANIC.with(|last| eprintln!("panic escaped pdf::extract: {}", last.borrow()));
            std::process::abort();
        }
    }
);
