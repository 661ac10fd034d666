//! The comparison behind the choice of PDF extractor: pdf-extract against lopdf's own
//! `extract_text` on the fixture PDFs, scored by the share of the expected body words found in
//! order (after our header/footer cleaning for both).
//!
//! `cargo run --release -p tunesmith-engine --example pdf_extractors`

// An example prints its results.
#![allow(clippy::print_stdout)]

use std::path::PathBuf;

use tunesmith_engine::data::import::pdf::clean_pages;

fn words(s: &str) -> Vec<String> {
    s.split_whitespace()
        .map(|w| {
            w.trim_matches(|c: char| !c.is_alphanumeric())
                .to_lowercase()
        })
        .filter(|w| !w.is_empty())
        .collect()
}

fn in_order(got: &[String], want: &[String]) -> f64 {
    let (mut at, mut found) = (0, 0);
    for w in want {
        if let Some(i) = got[at..].iter().position(|g| g == w) {
            at += i + 1;
            found += 1;
        }
    }
    found as f64 / want.len().max(1) as f64
}

fn main() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/import");
    let bytes = std::fs::read(dir.join("good/manual.pdf")).unwrap();
    let want = words(&std::fs::read_to_string(dir.join("expected/manual.pdf.txt")).unwrap());

    let a = pdf_extract::extract_text_from_mem_by_pages(&bytes).unwrap();
    let a_text = clean_pages(&a).join("\n\n");

    let doc = lopdf::Document::load_mem(&bytes).unwrap();
    let pages: Vec<u32> = doc.get_pages().keys().copied().collect();
    let b: Vec<String> = pages
        .iter()
        .map(|&p| doc.extract_text(&[p]).unwrap_or_default())
        .collect();
    let b_text = clean_pages(&b).join("\n\n");

    for (name, text) in [("pdf-extract", &a_text), ("lopdf extract_text", &b_text)] {
        println!(
            "{name:20} {:5.1} % of {} body words in order; first 80 chars: {:?}",
            100.0 * in_order(&words(text), &want),
            want.len(),
            text.chars().take(80).collect::<String>()
        );
    }
    for (name, path) in [
        ("locked.pdf", "bad/locked.pdf"),
        ("truncated.pdf", "bad/truncated.pdf"),
    ] {
        let bytes = std::fs::read(dir.join(path)).unwrap();
        let a = pdf_extract::extract_text_from_mem_by_pages(&bytes).map(|p| p.len());
        let b = lopdf::Document::load_mem(&bytes).map(|d| d.get_pages().len());
        println!("{name}: pdf-extract {a:?}; lopdf {b:?}");
    }
}
