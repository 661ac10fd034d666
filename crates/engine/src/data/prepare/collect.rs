//! `collect`: every file under the given paths imported, cleaned, deduplicated and (optionally)
//! scrubbed, in memory, with the report's per-file counts filled in as it goes. Each stage below is
//! one function; `collect` calls them in order, and the order matters (boilerplate is dropped
//! before duplicates are looked for, and the duplicate share is of what boilerplate left).

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use super::{Collected, Dropped, FileStats, FileStatus, PiiReview, PrepareOptions, Report, Unit};
use crate::data::clean::{self, CleanOptions};
use crate::data::dedupe::{self, Duplicate};
use crate::data::import::{self, walk, Imported};
use crate::data::pii::{self, PiiHit};
use crate::progress::{CancelToken, Event, ProgressSink};
use crate::{Error, Result};

/// A document or example read from a file, with the file's index in `report.files`.
struct Loaded {
    file: usize,
    unit: Unit,
}

/// Imports, cleans, deduplicates and (optionally) scrubs everything under `paths`.
pub fn collect(
    paths: &[PathBuf],
    opts: &PrepareOptions,
    sink: &mut impl ProgressSink,
) -> Result<Collected> {
    collect_cancellable(paths, opts, &CancelToken::new(), sink)
}

/// [`collect`] that stops with [`Error::Cancelled`] between two files when `cancel` is set.
pub fn collect_cancellable(
    paths: &[PathBuf],
    opts: &PrepareOptions,
    cancel: &CancelToken,
    sink: &mut impl ProgressSink,
) -> Result<Collected> {
    opts.validate()?;
    let walked = walk::collect(paths);
    let mut report = Report::default();
    for (path, why) in &walked.problems {
        report.files.push(failed(path, why.clone()));
    }
    let (mut loaded, streamed) = read_files(&walked.files, opts, &mut report, cancel, sink)?;
    if opts.clean.boilerplate {
        drop_boilerplate(&mut loaded, opts.clean.boilerplate_share, &mut report);
    }
    let keep = drop_duplicates(&mut loaded, opts, &mut report);
    let units = kept_units(loaded, keep, opts.scrub_pii, &mut report);
    warn_emptied_files(&mut report, &streamed);
    report.files_failed = report
        .files
        .iter()
        .filter(|f| f.status == FileStatus::Error)
        .count() as u64;
    report.files_ok = report.files.len() as u64 - report.files_failed;
    if units.is_empty() && streamed.is_empty() {
        return Err(nothing_usable(&report));
    }
    Ok(Collected {
        units,
        streamed,
        report,
    })
}

/// Reads each file into documents, one `report.files` entry per file (in order). Huge plain-text
/// files are only noted: they come back in the second list, for `write` to stream. A file that
/// cannot be read gets its error in the report and the others go on.
/// Stops with [`Error::Cancelled`] between two files when `cancel` is set (one file can take
/// seconds: a long PDF).
fn read_files(
    files: &[PathBuf],
    opts: &PrepareOptions,
    report: &mut Report,
    cancel: &CancelToken,
    sink: &mut impl ProgressSink,
) -> Result<(Vec<Loaded>, Vec<PathBuf>)> {
    let iopts = opts.import_options();
    let mut loaded: Vec<Loaded> = Vec::new();
    let mut streamed = Vec::new();
    let total = files.len() as u64;
    for (i, path) in files.iter().enumerate() {
        if cancel.is_cancelled() {
            return Err(Error::Cancelled);
        }
        sink.emit(Event::Progress {
            stage: "read files".into(),
            done: i as u64,
            total,
            unit: "files".into(),
        });
        let file = report.files.len();
        let mut stats = FileStats {
            path: path.display().to_string(),
            kind: import::kind(&import::extension(path)).into(),
            size_bytes: std::fs::metadata(path).map_or(0, |m| m.len()),
            ..Default::default()
        };
        let big_text = matches!(import::kind(&import::extension(path)), "text" | "markdown");
        if big_text && stats.size_bytes > opts.stream_above_mb << 20 {
            stats.status = FileStatus::Ok;
            stats.warnings.push(format!(
                "is large ({} MB): read in blocks; only exact duplicates among its blocks are dropped",
                stats.size_bytes >> 20
            ));
            report.files.push(stats);
            streamed.push(path.clone());
            continue;
        }
        match import::import_file(path, &iopts) {
            Ok(mut imp) => {
                stats.status = if imp.warnings.is_empty() {
                    FileStatus::Ok
                } else {
                    FileStatus::Warning
                };
                stats.warnings = std::mem::take(&mut imp.warnings);
                let units = units_of(path, &stats.kind, imp, &opts.clean);
                loaded.extend(units.into_iter().map(|unit| Loaded { file, unit }));
            }
            Err(e) => {
                let mut f = failed(path, e.to_string());
                f.size_bytes = stats.size_bytes;
                f.kind = stats.kind;
                sink.warn(format!("skipped: {e}"));
                report.files.push(f);
                continue;
            }
        }
        report.files.push(stats);
    }
    sink.emit(Event::Progress {
        stage: "read files".into(),
        done: total,
        total,
        unit: "files".into(),
    });
    Ok((loaded, streamed))
}

/// One imported file as cleaned units: its documents first, then its examples.
fn units_of(path: &Path, kind: &str, imp: Imported, opts: &CleanOptions) -> Vec<Unit> {
    let name = path.display().to_string();
    let at = |loc: &str| {
        if loc.is_empty() {
            name.clone()
        } else {
            format!("{name} ({loc})")
        }
    };
    let mut units = Vec::new();
    // A file's sections form one document (pages of one PDF belong together); a table's rows or a
    // JSON file's items are separate documents.
    let separate = matches!(kind, "table" | "json");
    if separate {
        for s in imp.sections {
            let text = clean::clean_text(&s.text, opts);
            units.push(Unit::Text {
                source: at(&s.location),
                text,
            });
        }
    } else if !imp.sections.is_empty() {
        let joined: Vec<String> = imp.sections.iter().map(|s| s.text.clone()).collect();
        let text = clean::clean_text(&joined.join("\n\n"), opts);
        units.push(Unit::Text {
            source: name.clone(),
            text,
        });
    }
    for e in imp.examples {
        units.push(Unit::Pair {
            source: at(&e.location),
            prompt: clean::clean_text(&e.prompt, opts),
            completion: clean::clean_text(&e.completion, opts),
            messages: e.messages.map(|m| {
                m.into_iter()
                    .map(|mut m| {
                        m.content = clean::clean_text(&m.content, opts);
                        m
                    })
                    .collect()
            }),
        });
    }
    units
}

/// Boilerplate: lines repeated across many files (one entry per file), dropped from every document.
fn drop_boilerplate(loaded: &mut [Loaded], share: f64, report: &mut Report) {
    let mut per_file: BTreeMap<usize, String> = BTreeMap::new();
    for l in loaded.iter() {
        if let Unit::Text { text, .. } = &l.unit {
            let s = per_file.entry(l.file).or_default();
            s.push_str(text);
            s.push('\n');
        }
    }
    let texts: Vec<&str> = per_file.values().map(String::as_str).collect();
    let lines = clean::boilerplate_lines(&texts, share);
    for l in loaded.iter_mut() {
        if let Unit::Text { text, .. } = &mut l.unit {
            let (kept, n) = clean::drop_lines(text, &lines);
            *text = kept;
            report.files[l.file].boilerplate_lines_dropped += n as u64;
        }
    }
}

/// Whole duplicate documents marked for dropping (`false` in the returned list), then paragraphs
/// already seen cut from the rest; sets the report's duplicate share of the imported characters.
fn drop_duplicates(loaded: &mut [Loaded], opts: &PrepareOptions, report: &mut Report) -> Vec<bool> {
    let imported_chars: usize = loaded.iter().map(|l| l.unit.full_text().len()).sum();
    let mut dropped_chars = 0usize;
    let mut keep = vec![true; loaded.len()];
    if opts.dedupe {
        dropped_chars += mark_duplicates(loaded, opts.near_dup_threshold, &mut keep, report);
        dropped_chars += drop_repeated_paragraphs(loaded, &keep, report);
    }
    report.duplicate_share = if imported_chars == 0 {
        0.0
    } else {
        dropped_chars as f64 / imported_chars as f64
    };
    keep
}

/// Exact and near duplicate documents: `keep` cleared for each, and a `Dropped` entry saying of
/// which. Returns the characters dropped.
fn mark_duplicates(
    loaded: &[Loaded],
    threshold: f64,
    keep: &mut [bool],
    report: &mut Report,
) -> usize {
    let mut dropped_chars = 0;
    let texts: Vec<String> = loaded.iter().map(|l| l.unit.full_text()).collect();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    for (i, verdict) in dedupe::find_duplicates(&refs, Some(threshold))
        .into_iter()
        .enumerate()
    {
        let Some(d) = verdict else { continue };
        let (of, reason) = match d {
            Duplicate::Exact { of } => (of, "an exact duplicate of".to_string()),
            Duplicate::Near { of, similarity } => {
                (of, format!("{:.0} % the same as", similarity * 100.0))
            }
        };
        keep[i] = false;
        dropped_chars += texts[i].len();
        report.files[loaded[i].file].duplicates_dropped += 1;
        report.dropped.push(Dropped {
            source: loaded[i].unit.source().to_string(),
            reason: format!("{reason} {}", loaded[of].unit.source()),
        });
    }
    dropped_chars
}

/// Paragraphs already seen in an earlier kept document, cut. Returns the characters dropped.
fn drop_repeated_paragraphs(loaded: &mut [Loaded], keep: &[bool], report: &mut Report) -> usize {
    let mut dropped_chars = 0;
    let mut seen = HashSet::new();
    for (l, _) in loaded.iter_mut().zip(keep).filter(|(_, k)| **k) {
        if let Unit::Text { text, .. } = &mut l.unit {
            let before = text.len();
            let (kept, n) = dedupe::drop_repeated_paragraphs(text, &mut seen);
            if n > 0 {
                dropped_chars += before - kept.len();
                report.files[l.file].duplicates_dropped += n as u64;
                *text = kept;
            }
        }
    }
    dropped_chars
}

/// The kept units, scrubbed if asked, without those left empty; each counted in its file's stats.
fn kept_units(loaded: Vec<Loaded>, keep: Vec<bool>, scrub: bool, report: &mut Report) -> Vec<Unit> {
    let mut units = Vec::new();
    for (l, k) in loaded.into_iter().zip(keep) {
        if !k {
            continue;
        }
        let mut unit = l.unit;
        if scrub {
            scrub_unit(&mut unit, l.file, report);
        }
        let text = unit.full_text();
        if text.trim().is_empty() {
            continue;
        }
        count_into(&mut report.files[l.file], &unit, &text);
        units.push(unit);
    }
    units
}

/// Personal data in `unit` replaced by placeholders; the hits counted per kind in its file's stats
/// and listed for review.
fn scrub_unit(unit: &mut Unit, file: usize, report: &mut Report) {
    let mut hits: Vec<PiiHit> = Vec::new();
    match unit {
        Unit::Text { text, .. } => scrub_into(text, &mut hits),
        Unit::Pair {
            prompt,
            completion,
            messages,
            ..
        } => {
            scrub_into(prompt, &mut hits);
            scrub_into(completion, &mut hits);
            // The same personal data again in the conversation; counted once, from the pair.
            let mut again = Vec::new();
            for m in messages.iter_mut().flatten() {
                scrub_into(&mut m.content, &mut again);
            }
        }
    }
    for (kind, n) in pii::count(&hits) {
        *report.files[file].pii.entry(kind).or_default() += n as u64;
    }
    report.pii_hits.extend(hits.into_iter().map(|h| PiiReview {
        source: unit.source().to_string(),
        kind: h.kind,
        text: h.text,
    }));
}

/// Adds a kept unit (whose full text is `text`) to its file's counts; the file's language is
/// detected from its first unit.
fn count_into(f: &mut FileStats, unit: &Unit, text: &str) {
    f.chars += text.chars().count() as u64;
    f.words += text.split_whitespace().count() as u64;
    if f.language.is_none() {
        f.language = whatlang::detect(&text.chars().take(4000).collect::<String>())
            .filter(|i| i.is_reliable())
            .map(|i| i.lang().eng_name().to_string());
    }
    match unit {
        Unit::Text { .. } => f.documents += 1,
        Unit::Pair { .. } => f.examples += 1,
    }
}

/// A file read without trouble but left with nothing (all of it duplicated) gets a warning.
fn warn_emptied_files(report: &mut Report, streamed: &[PathBuf]) {
    for f in &mut report.files {
        if f.status == FileStatus::Ok
            && f.documents + f.examples == 0
            && f.chars == 0
            && !streamed.iter().any(|p| p.display().to_string() == f.path)
        {
            f.status = FileStatus::Warning;
            f.warnings.push(
                "everything in it was a duplicate of other text, so nothing from it is used".into(),
            );
        }
    }
}

/// The error when nothing usable is left: one bad file's own error (kind `file`), as if it had been
/// read alone, or every file's reason.
fn nothing_usable(report: &Report) -> Error {
    if let [only] = report.files.as_slice() {
        if let Some(e) = &only.error {
            return Error::file(&only.path, e.clone());
        }
    }
    let reasons: Vec<String> = report
        .files
        .iter()
        .filter_map(|f| f.error.as_ref().map(|e| format!("{}: {e}", f.path)))
        .collect();
    Error::Data(format!(
        "No usable text in what was given. {}",
        if reasons.is_empty() {
            "Add text files.".to_string()
        } else {
            reasons.join("; ")
        }
    ))
}

fn scrub_into(text: &mut String, hits: &mut Vec<PiiHit>) {
    let (clean, h) = pii::scrub(text);
    *text = clean;
    hits.extend(h);
}

fn failed(path: &Path, message: String) -> FileStats {
    let message = message
        .strip_prefix(&format!("{}: ", path.display()))
        .map(str::to_string)
        .unwrap_or(message);
    FileStats {
        path: path.display().to_string(),
        kind: import::kind(&import::extension(path)).into(),
        status: FileStatus::Error,
        error: Some(message),
        ..Default::default()
    }
}
