//! Cleaning that is safe for any language: Unicode NFC, control and zero-width characters,
//! whitespace and blank lines, and boilerplate lines repeated across many files (page footers,
//! "Confidential — do not distribute", navigation left in exported pages).

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};
use unicode_normalization::UnicodeNormalization;

#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CleanOptions {
    /// Compose characters (é as one code point, not e + accent), so equal text is equal bytes.
    pub nfc: bool,
    /// Drop control characters other than tab and newline, and invisible zero-width ones.
    pub control_chars: bool,
    /// Line endings, trailing spaces, runs of blank lines.
    pub whitespace: bool,
    /// Drop lines that repeat in many files (at least 3, and at least `boilerplate_share` of them).
    pub boilerplate: bool,
    pub boilerplate_share: f64,
}

impl Default for CleanOptions {
    fn default() -> Self {
        CleanOptions {
            nfc: true,
            control_chars: true,
            whitespace: true,
            boilerplate: true,
            boilerplate_share: 0.5,
        }
    }
}

/// One text, on its own.
pub fn clean_text(text: &str, opts: &CleanOptions) -> String {
    let mut s: String = if opts.nfc {
        text.nfc().collect()
    } else {
        text.to_string()
    };
    if opts.control_chars {
        s.retain(|c| !is_junk(c));
    }
    if opts.whitespace {
        s = normalise(&s);
    }
    s
}

fn is_junk(c: char) -> bool {
    (c.is_control() && !matches!(c, '\n' | '\t' | '\r'))
        || matches!(
            c,
            '\u{200b}' | '\u{200c}' | '\u{200d}' | '\u{2060}' | '\u{feff}' | '\u{00ad}'
        )
}

/// Lines that occur in at least 3 of `docs` and in at least `share` of them: the same footer or
/// disclaimer in every file. Short lines only (up to 200 characters): a repeated paragraph is a
/// duplicate, which deduplication handles.
pub fn boilerplate_lines(docs: &[&str], share: f64) -> HashSet<String> {
    if docs.len() < 3 {
        return HashSet::new();
    }
    let mut count: HashMap<&str, usize> = HashMap::new();
    for d in docs {
        let unique: HashSet<&str> = d
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && l.chars().count() <= 200)
            .collect();
        for l in unique {
            *count.entry(l).or_default() += 1;
        }
    }
    let need = ((docs.len() as f64 * share).ceil() as usize).max(3);
    count
        .into_iter()
        .filter(|&(_, n)| n >= need)
        .map(|(l, _)| l.to_string())
        .collect()
}

/// `text` without the boilerplate lines; returns how many lines went.
pub fn drop_lines(text: &str, lines: &HashSet<String>) -> (String, usize) {
    if lines.is_empty() {
        return (text.to_string(), 0);
    }
    let mut dropped = 0;
    let kept: Vec<&str> = text
        .lines()
        .filter(|l| {
            let hit = lines.contains(l.trim());
            dropped += hit as usize;
            !hit
        })
        .collect();
    (normalise(&kept.join("\n")), dropped)
}

/// Newlines to `\n`, no BOM, no trailing spaces, at most one blank line in a row, no leading or
/// trailing blank lines. Inner spacing and indentation are kept: they are part of the style the
/// model should learn.
pub fn normalise(text: &str) -> String {
    let text = text
        .trim_start_matches('\u{feff}')
        .replace("\r\n", "\n")
        .replace('\r', "\n");
    let mut out = String::with_capacity(text.len());
    let mut blank_run = 0;
    for line in text.lines() {
        let line = line.trim_end();
        if line.is_empty() {
            blank_run += 1;
            continue;
        }
        if !out.is_empty() {
            out.push_str(if blank_run > 0 { "\n\n" } else { "\n" });
        }
        blank_run = 0;
        out.push_str(line);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalise_cleans_line_endings_and_blank_runs() {
        let s = "\u{feff}\r\n\nTitle  \r\n\r\n\r\n\r\n  indented\rlast \n\n";
        assert_eq!(normalise(s), "Title\n\n  indented\nlast");
    }

    #[test]
    fn nfc_controls_and_whitespace() {
        let s = "Cafe\u{301}\u{200b} \u{7}ok  \r\n\r\n\r\n\tnext\u{feff}";
        assert_eq!(clean_text(s, &CleanOptions::default()), "Café ok\n\n\tnext");
        let off = CleanOptions {
            nfc: false,
            control_chars: false,
            whitespace: false,
            ..Default::default()
        };
        assert_eq!(clean_text(s, &off), s);
    }

    #[test]
    fn repeated_lines_across_files_are_boilerplate() {
        let docs = [
            "Report one\nConfidential\nbody a",
            "Report two\nConfidential\nbody b",
            "Report three\nConfidential\nbody c",
            "Report four\nbody d",
        ];
        let lines = boilerplate_lines(&docs, 0.5);
        assert_eq!(lines.len(), 1);
        assert_eq!(
            drop_lines(docs[0], &lines),
            ("Report one\nbody a".into(), 1)
        );
        assert!(boilerplate_lines(&docs[..2], 0.5).is_empty());
    }
}
