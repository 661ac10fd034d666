//! PDF: the text layer, page by page (pdf-extract, on lopdf), then what a reader would not call
//! text is removed: page numbers, running headers and footers repeated across pages; words
//! hyphenated at line ends are joined and lines are reflowed into paragraphs.
//!
//! Chosen after trying two extractors on the fixture corpus (`examples/pdf_extractors.rs`):
//! pdf-extract found 100 % of the body words of `manual.pdf` in order, lopdf's own `extract_text`
//! 99.3 %; and on a password-protected file pdf-extract reports the password while lopdf opens it
//! as a document with no pages, which would read as "no text" instead of the real reason. Both
//! share lopdf's parser.

use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::sync::OnceLock;

use regex::Regex;

use super::Section;
use crate::{Error, Result};

pub fn extract(path: &Path, bytes: &[u8]) -> Result<Vec<Section>> {
    let head = &bytes[..bytes.len().min(1024)];
    if !head.windows(5).any(|w| w == b"%PDF-") {
        return Err(Error::file(
            path,
            "is not a PDF document (it does not start like one); check the file or remove it from the list",
        ));
    }
    // A damaged file can make the parser panic; that must cost one file, not the import.
    let pages = catch_unwind(AssertUnwindSafe(|| {
        pdf_extract::extract_text_from_mem_by_pages(bytes)
    }))
    .map_err(|_| damaged(path, "the reader gave up on it"))?
    .map_err(|e| classify(path, &e.to_string()))?;
    Ok(clean_pages(&pages)
        .into_iter()
        .enumerate()
        .map(|(i, text)| Section {
            location: format!("page {}", i + 1),
            text,
        })
        .collect())
}

fn damaged(path: &Path, why: &str) -> Error {
    Error::file(
        path,
        format!("is a damaged or incomplete PDF ({why}); open it in a PDF viewer and save or export it again"),
    )
}

fn classify(path: &Path, err: &str) -> Error {
    let lower = err.to_lowercase();
    if ["decrypt", "encrypt", "password"]
        .iter()
        .any(|w| lower.contains(w))
    {
        return Error::file(
            path,
            "is password-protected; save a copy without a password (or print it to a new PDF) and add that",
        );
    }
    damaged(path, err)
}

fn page_number() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(r"(?i)^[\s\-–—]*(page\s+)?(\d+|[ivxlc]+)(\s*(of|/)\s*\d+)?[\s\-–—]*$")
            .expect("valid pattern")
    })
}

/// A line with digits masked, so "Page 3 of 9" and "Page 4 of 9" compare equal.
fn shape(line: &str) -> String {
    line.trim()
        .chars()
        .map(|c| if c.is_ascii_digit() { '#' } else { c })
        .collect()
}

/// Pages' raw text to clean paragraphs, one string per page.
pub fn clean_pages(pages: &[String]) -> Vec<String> {
    let lines: Vec<Vec<&str>> = pages
        .iter()
        .map(|p| p.lines().map(str::trim).collect())
        .collect();
    // Running headers and footers: among the first and last 3 non-empty lines of each page, a
    // line shape found on at least half the pages (and at least 2).
    let edge = |ls: &[&str]| -> Vec<String> {
        let filled: Vec<&str> = ls.iter().copied().filter(|l| !l.is_empty()).collect();
        let n = filled.len();
        let mut v: Vec<String> = filled
            .iter()
            .take(3)
            .chain(filled.iter().skip(n.saturating_sub(3)))
            .map(|l| shape(l))
            .collect();
        v.sort();
        v.dedup();
        v
    };
    let mut seen: HashMap<String, usize> = HashMap::new();
    for ls in &lines {
        for s in edge(ls) {
            *seen.entry(s).or_default() += 1;
        }
    }
    let need = (pages.len() / 2).max(2);
    let running: Vec<String> = seen
        .into_iter()
        .filter(|(_, n)| *n >= need)
        .map(|(s, _)| s)
        .collect();
    let mut out: Vec<String> = lines
        .iter()
        .map(|ls| {
            let n = ls.len();
            let kept: Vec<&str> = ls
                .iter()
                .enumerate()
                .filter(|(i, l)| {
                    let near_edge = *i < 4 || *i + 4 >= n;
                    !(page_number().is_match(l) && !l.is_empty()
                        || near_edge && running.contains(&shape(l)))
                })
                .map(|(_, l)| *l)
                .collect();
            reflow(&kept)
        })
        .collect();
    // A word hyphenated across a page break.
    for i in 1..out.len() {
        let (a, b) = out.split_at_mut(i);
        let prev = a.last_mut().expect("i >= 1");
        if ends_hyphenated(prev) && b[0].starts_with(|c: char| c.is_lowercase()) {
            prev.pop();
            let first_word_end = b[0].find(char::is_whitespace).unwrap_or(b[0].len());
            prev.push_str(&b[0][..first_word_end]);
            b[0] = b[0][first_word_end..].trim_start().to_string();
        }
    }
    out
}

fn ends_hyphenated(s: &str) -> bool {
    let mut rev = s.chars().rev();
    rev.next() == Some('-') && rev.next().is_some_and(char::is_alphabetic)
}

/// Lines into paragraphs: a blank line ends a paragraph; other line breaks become spaces, or
/// nothing after a hyphen that splits a word ("docu-" + "ment").
fn reflow(lines: &[&str]) -> String {
    let mut paragraphs: Vec<String> = Vec::new();
    let mut current = String::new();
    for l in lines {
        if l.is_empty() {
            if !current.is_empty() {
                paragraphs.push(std::mem::take(&mut current));
            }
            continue;
        }
        if current.is_empty() {
            current.push_str(l);
        } else if ends_hyphenated(&current) && l.starts_with(|c: char| c.is_lowercase()) {
            current.pop();
            current.push_str(l);
        } else {
            current.push(' ');
            current.push_str(l);
        }
    }
    if !current.is_empty() {
        paragraphs.push(current);
    }
    paragraphs.join("\n\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_footers_numbers_and_hyphens() {
        let page = |n: usize, body: &str| format!("ACME Handbook\n\n{body}\n\nPage {n} of 3\n");
        let pages = vec![
            page(1, "The first docu-\nment is long\nand wraps."),
            page(2, "Second page text that ends in a hyphen-"),
            page(3, "ated word.\n\n7"),
        ];
        let out = clean_pages(&pages);
        assert_eq!(out[0], "The first document is long and wraps.");
        assert_eq!(out[1], "Second page text that ends in a hyphenated");
        assert_eq!(out[2], "word.");
    }

    #[test]
    fn not_a_pdf_and_damaged() {
        let p = Path::new("x.pdf");
        assert!(extract(p, b"hello")
            .unwrap_err()
            .to_string()
            .contains("not a PDF"));
        let e = extract(p, b"%PDF-1.4\n1 0 obj << /Type /Catalog").unwrap_err();
        assert!(e.to_string().contains("damaged"), "{e}");
    }
}
