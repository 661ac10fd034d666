//! The corpus health report's finishing touches: totals, suggested training lengths and warnings
//! in plain words, and the preview the Data page shows before any tokenizer is chosen.

use std::path::PathBuf;

use super::{collect, PrepareOptions, Report, Suggestions, Unit};
use crate::progress::ProgressSink;
use crate::Result;

/// The report the Data page shows before training: everything `collect` does, with token counts
/// estimated from characters (the model's tokenizer is only known at training time).
pub fn preview(
    paths: &[PathBuf],
    opts: &PrepareOptions,
    sink: &mut impl ProgressSink,
) -> Result<Report> {
    let mut c = collect(paths, opts, sink)?;
    // English byte-level BPE averages about four characters per token.
    for f in &mut c.report.files {
        f.tokens = if c.streamed.iter().any(|p| p.display().to_string() == f.path) {
            f.size_bytes / 4
        } else {
            f.chars.div_ceil(4)
        };
    }
    let tokens: u64 = c.report.files.iter().map(|f| f.tokens).sum();
    let val = (tokens as f64 * opts.val_frac).round() as u64;
    let mut report = c.report;
    let documents = c
        .units
        .iter()
        .filter(|u| matches!(u, Unit::Text { .. }))
        .count() as u64;
    let examples = c.units.len() as u64 - documents;
    finish_report(&mut report, documents, examples, tokens - val, val);
    Ok(report)
}

/// Totals, suggestions and plain-language warnings.
pub fn finish_report(
    report: &mut Report,
    documents: u64,
    examples: u64,
    train_tokens: u64,
    val_tokens: u64,
) {
    report.documents = documents;
    report.examples = examples;
    report.chars = report.files.iter().map(|f| f.chars).sum();
    report.words = report.files.iter().map(|f| f.words).sum();
    report.train_tokens = train_tokens;
    report.val_tokens = val_tokens;
    report.tokens = train_tokens + val_tokens;
    report.tokens_per_word = if report.words == 0 {
        0.0
    } else {
        report.tokens as f64 / report.words as f64
    };
    // A step of the default settings sees batch 4 × block 128 tokens.
    let per_step = 512.0;
    let epochs = |e: f64| ((train_tokens as f64 * e / per_step).ceil() as u64).max(20);
    let small = train_tokens < 50_000;
    report.suggestions = Suggestions {
        quick_steps: epochs(1.0).min(300),
        balanced_steps: if small {
            epochs(3.0).min(300)
        } else {
            epochs(2.0)
        },
        thorough_steps: if small {
            epochs(5.0).min(600)
        } else {
            epochs(4.0)
        },
    };
    let mut w = Vec::new();
    if report.files_failed > 0 {
        w.push(format!(
            "{} file{} could not be used; see each file's reason.",
            report.files_failed,
            if report.files_failed == 1 { "" } else { "s" }
        ));
    }
    if small {
        w.push(format!(
            "Only {} tokens: the model will memorise rather than generalise; we suggest at most {} steps, or add more text.",
            group(report.tokens),
            report.suggestions.balanced_steps
        ));
    }
    if report.duplicate_share >= 0.1 {
        w.push(format!(
            "{:.0} % of the text was duplicated and has been left out.",
            report.duplicate_share * 100.0
        ));
    }
    if report.tokens_per_word > 2.5 {
        w.push(format!(
            "The tokenizer splits this text into many pieces ({:.1} tokens per word): a model trained from scratch on it, or one made for this language, will fit better.",
            report.tokens_per_word
        ));
    }
    if !report.pii_hits.is_empty() {
        w.push(format!(
            "{} pieces of personal data were replaced by placeholders such as [EMAIL]; review them before training.",
            report.pii_hits.len()
        ));
    }
    report.warnings = w;
}

/// 12000 → "12 000", as the wording has it.
fn group(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(' ');
        }
        out.push(c);
    }
    out
}
