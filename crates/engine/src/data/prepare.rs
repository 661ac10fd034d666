//! The user's documents to a training set: import every file (a bad one gets its own error while
//! the others go on), clean, drop duplicates, scrub personal data if asked, chunk, split, and
//! report what happened in words a non-programmer understands. `collect` does the work in memory;
//! `write` puts a dataset folder on disk (manifest.json, documents.jsonl, token files) atomically.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tokenizers::Tokenizer;

use super::clean::{self, CleanOptions};
use super::dataset::{self, Split};
use super::dedupe::{self, Duplicate};
use super::import::{self, encoding, walk, ImportOptions, Limits};
use super::pii::{self, PiiHit};
pub use super::unit::Unit;
use super::{chunk, tokenizer, unit};
use crate::progress::{Event, ProgressSink};
use crate::{fsutil, Error, Result};

/// Plain-text files above this size (by default) are read in blocks, so memory stays bounded.
pub const STREAM_ABOVE: u64 = 64 << 20;
const STREAM_BLOCK: usize = 4 << 20;

#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PrepareOptions {
    pub val_frac: f64,
    pub seed: u64,
    /// Documents longer than this many tokens are cut on paragraph boundaries (0 = never).
    pub chunk_tokens: usize,
    /// Tokens of context repeated at the start of the next chunk.
    pub overlap: usize,
    pub dedupe: bool,
    /// Jaccard similarity above which two documents count as near duplicates.
    pub near_dup_threshold: f64,
    pub scrub_pii: bool,
    pub clean: CleanOptions,
    /// For .csv/.tsv files: the prompt and completion columns that make rows into examples.
    pub pair_columns: Option<(String, String)>,
    /// Most bytes a .docx/.odt/.epub may unpack to.
    pub max_unpacked_mb: u64,
    /// Plain-text files larger than this are read block by block, so memory stays bounded.
    pub stream_above_mb: u64,
}

impl Default for PrepareOptions {
    fn default() -> Self {
        PrepareOptions {
            val_frac: 0.1,
            seed: 42,
            chunk_tokens: 0,
            overlap: 0,
            dedupe: true,
            near_dup_threshold: 0.8,
            scrub_pii: false,
            clean: CleanOptions::default(),
            pair_columns: None,
            max_unpacked_mb: 512,
            stream_above_mb: STREAM_ABOVE >> 20,
        }
    }
}

impl PrepareOptions {
    pub fn validate(&self) -> Result<()> {
        if !(0.0..=0.5).contains(&self.val_frac) {
            return Err(Error::config("val_frac", "must be from 0 to 0.5"));
        }
        if !(0.0..=1.0).contains(&self.near_dup_threshold) || self.near_dup_threshold < 0.3 {
            return Err(Error::config(
                "near_dup_threshold",
                "must be from 0.3 to 1 (0.8 is a good choice)",
            ));
        }
        if self.chunk_tokens > 0 && self.overlap >= self.chunk_tokens {
            return Err(Error::config(
                "overlap",
                "must be smaller than chunk_tokens",
            ));
        }
        Ok(())
    }

    fn import_options(&self) -> ImportOptions {
        ImportOptions {
            limits: Limits {
                max_unpacked_bytes: self.max_unpacked_mb << 20,
                ..Limits::default()
            },
            pair_columns: self.pair_columns.clone(),
        }
    }
}

/// What happened to one file.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FileStats {
    pub path: String,
    pub kind: String,
    /// `ok`, `warning` (used, with skipped parts) or `error` (not used).
    pub status: String,
    pub error: Option<String>,
    pub warnings: Vec<String>,
    pub size_bytes: u64,
    pub chars: u64,
    pub words: u64,
    /// Filled in once a tokenizer is known (`write`).
    pub tokens: u64,
    pub language: Option<String>,
    pub documents: u64,
    pub examples: u64,
    pub duplicates_dropped: u64,
    pub boilerplate_lines_dropped: u64,
    pub pii: BTreeMap<String, u64>,
}

/// A document left out, and why.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Dropped {
    pub source: String,
    pub reason: String,
}

/// A scrubbed hit, for review before training.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PiiReview {
    pub source: String,
    pub kind: String,
    pub text: String,
}

/// Suggested training lengths for the presets, from the amount of text.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Suggestions {
    pub quick_steps: u64,
    pub balanced_steps: u64,
    pub thorough_steps: u64,
}

/// The corpus health report: per file, totals, and warnings in plain words.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub files: Vec<FileStats>,
    pub files_ok: u64,
    pub files_failed: u64,
    pub documents: u64,
    pub examples: u64,
    pub chars: u64,
    pub words: u64,
    pub tokens: u64,
    pub train_tokens: u64,
    pub val_tokens: u64,
    /// Share of the imported characters dropped as duplicates.
    pub duplicate_share: f64,
    /// Tokens per word: near 1.3 for English with a fitting tokenizer; much higher means it fits badly.
    pub tokens_per_word: f64,
    pub dropped: Vec<Dropped>,
    pub pii_hits: Vec<PiiReview>,
    pub warnings: Vec<String>,
    pub suggestions: Suggestions,
}

/// Documents ready to tokenise, and the report so far.
#[derive(Debug, Clone)]
pub struct Collected {
    pub units: Vec<Unit>,
    /// Huge plain-text files, read block by block in `write`.
    pub streamed: Vec<PathBuf>,
    pub report: Report,
}

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
    opts.validate()?;
    let walked = walk::collect(paths);
    let mut report = Report::default();
    for (path, why) in &walked.problems {
        report.files.push(failed(path, why.clone()));
    }
    let iopts = opts.import_options();
    let mut loaded: Vec<Loaded> = Vec::new();
    let mut streamed = Vec::new();
    let total = walked.files.len() as u64;
    for (i, path) in walked.files.iter().enumerate() {
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
            stats.status = "ok".into();
            stats.warnings.push(format!(
                "is large ({} MB): read in blocks; only exact duplicates among its blocks are dropped",
                stats.size_bytes >> 20
            ));
            report.files.push(stats);
            streamed.push(path.clone());
            continue;
        }
        match import::import_file(path, &iopts) {
            Ok(imp) => {
                stats.status = if imp.warnings.is_empty() {
                    "ok"
                } else {
                    "warning"
                }
                .into();
                stats.warnings = imp.warnings;
                let name = path.display().to_string();
                let at = |loc: &str| {
                    if loc.is_empty() {
                        name.clone()
                    } else {
                        format!("{name} ({loc})")
                    }
                };
                // A file's sections form one document (pages of one PDF belong together); a
                // table's rows or a JSON file's items are separate documents.
                let separate = matches!(stats.kind.as_str(), "table" | "json");
                if separate {
                    for s in imp.sections {
                        let text = clean::clean_text(&s.text, &opts.clean);
                        loaded.push(Loaded {
                            file,
                            unit: Unit::Text {
                                source: at(&s.location),
                                text,
                            },
                        });
                    }
                } else if !imp.sections.is_empty() {
                    let joined: Vec<String> = imp.sections.iter().map(|s| s.text.clone()).collect();
                    let text = clean::clean_text(&joined.join("\n\n"), &opts.clean);
                    loaded.push(Loaded {
                        file,
                        unit: Unit::Text {
                            source: name.clone(),
                            text,
                        },
                    });
                }
                for e in imp.examples {
                    loaded.push(Loaded {
                        file,
                        unit: Unit::Pair {
                            source: at(&e.location),
                            prompt: clean::clean_text(&e.prompt, &opts.clean),
                            completion: clean::clean_text(&e.completion, &opts.clean),
                        },
                    });
                }
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

    // Boilerplate: lines repeated across many files (one entry per file).
    if opts.clean.boilerplate {
        let mut per_file: BTreeMap<usize, String> = BTreeMap::new();
        for l in &loaded {
            if let Unit::Text { text, .. } = &l.unit {
                let s = per_file.entry(l.file).or_default();
                s.push_str(text);
                s.push('\n');
            }
        }
        let texts: Vec<&str> = per_file.values().map(String::as_str).collect();
        let lines = clean::boilerplate_lines(&texts, opts.clean.boilerplate_share);
        for l in &mut loaded {
            if let Unit::Text { text, .. } = &mut l.unit {
                let (kept, n) = clean::drop_lines(text, &lines);
                *text = kept;
                report.files[l.file].boilerplate_lines_dropped += n as u64;
            }
        }
    }

    let imported_chars: usize = loaded.iter().map(|l| l.unit.full_text().len()).sum();
    let mut dropped_chars = 0usize;
    let mut keep = vec![true; loaded.len()];
    if opts.dedupe {
        let texts: Vec<String> = loaded.iter().map(|l| l.unit.full_text()).collect();
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        for (i, verdict) in dedupe::find_duplicates(&refs, Some(opts.near_dup_threshold))
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
        let mut seen = HashSet::new();
        for (l, _) in loaded.iter_mut().zip(&keep).filter(|(_, k)| **k) {
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
    }
    report.duplicate_share = if imported_chars == 0 {
        0.0
    } else {
        dropped_chars as f64 / imported_chars as f64
    };

    let mut units = Vec::new();
    for (l, k) in loaded.into_iter().zip(keep) {
        if !k {
            continue;
        }
        let mut unit = l.unit;
        if opts.scrub_pii {
            let mut hits: Vec<PiiHit> = Vec::new();
            match &mut unit {
                Unit::Text { text, .. } => scrub_into(text, &mut hits),
                Unit::Pair {
                    prompt, completion, ..
                } => {
                    scrub_into(prompt, &mut hits);
                    scrub_into(completion, &mut hits);
                }
            }
            for (kind, n) in pii::count(&hits) {
                *report.files[l.file].pii.entry(kind).or_default() += n as u64;
            }
            report.pii_hits.extend(hits.into_iter().map(|h| PiiReview {
                source: unit.source().to_string(),
                kind: h.kind,
                text: h.text,
            }));
        }
        let text = unit.full_text();
        if text.trim().is_empty() {
            continue;
        }
        let f = &mut report.files[l.file];
        f.chars += text.chars().count() as u64;
        f.words += text.split_whitespace().count() as u64;
        if f.language.is_none() {
            f.language = whatlang::detect(&text.chars().take(4000).collect::<String>())
                .filter(|i| i.is_reliable())
                .map(|i| i.lang().eng_name().to_string());
        }
        match &unit {
            Unit::Text { .. } => f.documents += 1,
            Unit::Pair { .. } => f.examples += 1,
        }
        units.push(unit);
    }
    for f in &mut report.files {
        if f.status == "ok"
            && f.documents + f.examples == 0
            && f.chars == 0
            && !streamed.iter().any(|p| p.display().to_string() == f.path)
        {
            f.status = "warning".into();
            f.warnings.push(
                "everything in it was a duplicate of other text, so nothing from it is used".into(),
            );
        }
    }
    report.files_failed = report.files.iter().filter(|f| f.status == "error").count() as u64;
    report.files_ok = report.files.len() as u64 - report.files_failed;
    if units.is_empty() && streamed.is_empty() {
        // One bad file: its own error (kind `file`), as if it had been read alone.
        if let [only] = report.files.as_slice() {
            if let Some(e) = &only.error {
                return Err(Error::file(&only.path, e.clone()));
            }
        }
        let reasons: Vec<String> = report
            .files
            .iter()
            .filter_map(|f| f.error.as_ref().map(|e| format!("{}: {e}", f.path)))
            .collect();
        return Err(Error::Data(format!(
            "No usable text in what was given. {}",
            if reasons.is_empty() {
                "Add text files.".to_string()
            } else {
                reasons.join("; ")
            }
        )));
    }
    Ok(Collected {
        units,
        streamed,
        report,
    })
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
        status: "error".into(),
        error: Some(message),
        ..Default::default()
    }
}

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

/// Units cut to `chunk_tokens` on paragraph boundaries (pairs are never cut).
pub fn chunk_units(units: Vec<Unit>, opts: &PrepareOptions, tok: &Tokenizer) -> Vec<Unit> {
    if opts.chunk_tokens == 0 {
        return units;
    }
    let count = |s: &str| tokenizer::encode(tok, s).map_or(s.len() / 4, |v| v.len());
    let mut out = Vec::new();
    for u in units {
        match u {
            Unit::Text { source, text } => {
                let pieces = chunk::chunk(&text, opts.chunk_tokens, opts.overlap, &count);
                let n = pieces.len();
                for (i, t) in pieces.into_iter().enumerate() {
                    let source = if n > 1 {
                        format!("{source} (part {} of {n})", i + 1)
                    } else {
                        source.clone()
                    };
                    out.push(Unit::Text { source, text: t });
                }
            }
            pair => out.push(pair),
        }
    }
    out
}

/// The dataset folder's `manifest.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DatasetManifest {
    pub options: PrepareOptions,
    pub tokenizer: String,
    pub split: String,
    pub report: Report,
}

/// Tokenises `collected` with `tok`, splits it and writes `dir` (replacing it as a whole, never
/// half-written): `manifest.json`, `documents.jsonl`, `train.tokens`/`val.tokens` and, when there
/// are examples, `train.mask`/`val.mask`. `tokenizer_name` is recorded in the manifest.
pub fn write(
    dir: &Path,
    mut collected: Collected,
    opts: &PrepareOptions,
    tok: &Tokenizer,
    tokenizer_name: &str,
    sink: &mut impl ProgressSink,
) -> Result<DatasetManifest> {
    let units = chunk_units(std::mem::take(&mut collected.units), opts, tok);
    let tmp = fsutil::temp_sibling(dir);
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
    let split = Split::Seeded {
        val_frac: opts.val_frac,
        seed: opts.seed,
    };
    let (data, split) = dataset::build_units(&units, tok, split, &tmp, sink)?;
    let mut report = collected.report;
    // Token counts per file, from the units' sources.
    for f in &mut report.files {
        f.tokens = 0;
    }
    for (u, n) in units.iter().zip(&data.unit_tokens) {
        if let Some(f) = report
            .files
            .iter_mut()
            .find(|f| u.source().starts_with(&f.path))
        {
            f.tokens += *n as u64;
        }
    }
    let docs: Vec<String> = units
        .iter()
        .zip(&data.is_val)
        .map(|(u, &v)| unit::to_line(u, v))
        .collect();
    fsutil::write_atomic(
        &tmp.join("documents.jsonl"),
        (docs.join("\n") + "\n").as_bytes(),
    )?;
    let documents = units
        .iter()
        .filter(|u| matches!(u, Unit::Text { .. }))
        .count() as u64;
    let examples = units.len() as u64 - documents;
    let (mut train_tokens, mut val_tokens) = (data.train_tokens as u64, data.val_tokens as u64);
    let has_mask = data.data.train_mask.is_some();
    drop(data);
    let streamed = std::mem::take(&mut collected.streamed);
    let mut streamed_docs = 0;
    if !streamed.is_empty() {
        let s = append_streamed(&tmp, &streamed, opts, tok, has_mask, &mut report)?;
        (train_tokens, val_tokens) = (train_tokens + s.train, val_tokens + s.val);
        streamed_docs = s.documents;
    }
    finish_report(
        &mut report,
        documents + streamed_docs,
        examples,
        train_tokens,
        val_tokens,
    );
    let manifest = DatasetManifest {
        options: opts.clone(),
        tokenizer: tokenizer_name.to_string(),
        split,
        report,
    };
    fsutil::write_json(&tmp.join("manifest.json"), &manifest)?;
    tokenizer::save(tok, &tmp)?;
    fsutil::replace_dir(&tmp, dir)?;
    Ok(manifest)
}

struct Appended {
    train: u64,
    val: u64,
    documents: u64,
}

/// Huge text files, block by block straight onto the end of the token files and documents.jsonl,
/// so memory holds one block at a time: cleaned, exact duplicate blocks dropped, scrubbed if
/// asked, chunked, and each block sent to training or validation by a seeded draw.
fn append_streamed(
    dir: &Path,
    files: &[PathBuf],
    opts: &PrepareOptions,
    tok: &Tokenizer,
    has_mask: bool,
    report: &mut Report,
) -> Result<Appended> {
    use std::io::Write;
    let open = |name: &str| -> Result<std::io::BufWriter<std::fs::File>> {
        let p = dir.join(name);
        let f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&p)
            .map_err(|e| Error::io(&p, e))?;
        Ok(std::io::BufWriter::new(f))
    };
    let (mut train, mut val, mut docs) = (
        open("train.tokens")?,
        open("val.tokens")?,
        open("documents.jsonl")?,
    );
    let mut masks = if has_mask {
        Some((open("train.mask")?, open("val.mask")?))
    } else {
        None
    };
    let eot = tokenizer::eot_id(tok);
    let mut seen = HashSet::new();
    let mut out = Appended {
        train: 0,
        val: 0,
        documents: 0,
    };
    for (fi, path) in files.iter().enumerate() {
        let name = path.display().to_string();
        let mut part = 0u64;
        let mut file_tokens = 0u64;
        stream_blocks(path, opts, &mut seen, |p, unit| {
            part = p;
            for u in chunk_units(vec![unit], opts, tok) {
                let Unit::Text { text, .. } = &u else {
                    continue;
                };
                let mut ids = tokenizer::encode_long(tok, text)?;
                ids.extend(eot);
                let to_val = crate::rng::Rng::derive(opts.seed, "stream-split", &[fi as u64, part])
                    .next_f64()
                    < opts.val_frac;
                let bytes: Vec<u8> = ids.iter().flat_map(|i| i.to_le_bytes()).collect();
                let w = if to_val { &mut val } else { &mut train };
                w.write_all(&bytes).map_err(|e| Error::io(dir, e))?;
                if let Some((tm, vm)) = &mut masks {
                    let m = if to_val { vm } else { tm };
                    m.write_all(&vec![1u8; ids.len()])
                        .map_err(|e| Error::io(dir, e))?;
                }
                *if to_val { &mut out.val } else { &mut out.train } += ids.len() as u64;
                file_tokens += ids.len() as u64;
                writeln!(docs, "{}", unit::to_line(&u, to_val)).map_err(|e| Error::io(dir, e))?;
                out.documents += 1;
            }
            Ok(())
        })?;
        if let Some(f) = report.files.iter_mut().find(|f| f.path == name) {
            f.tokens = file_tokens;
            f.documents = part;
        }
    }
    for mut w in [train, val, docs] {
        w.flush().map_err(|e| Error::io(dir, e))?;
    }
    if let Some((mut a, mut b)) = masks {
        a.flush().map_err(|e| Error::io(dir, e))?;
        b.flush().map_err(|e| Error::io(dir, e))?;
    }
    Ok(out)
}

/// A huge text file as documents of one block each (numbered from 1), cleaned, scrubbed if asked,
/// and without blocks already in `seen` when deduplicating; memory holds one block at a time.
pub fn stream_blocks(
    path: &Path,
    opts: &PrepareOptions,
    seen: &mut HashSet<u64>,
    mut each: impl FnMut(u64, Unit) -> Result<()>,
) -> Result<()> {
    let mut part = 0u64;
    encoding::read_text_streamed(path, STREAM_BLOCK, |block| {
        part += 1;
        let text = clean::clean_text(&block, &opts.clean);
        if text.trim().is_empty() || (opts.dedupe && !seen.insert(fxhash(&text))) {
            return Ok(());
        }
        let text = if opts.scrub_pii {
            pii::scrub(&text).0
        } else {
            text
        };
        let source = format!("{} (block {part})", path.display());
        each(part, Unit::Text { source, text })
    })
}

fn fxhash(s: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    s.hash(&mut h);
    h.finish()
}

/// Reads the units of a dataset folder written by [`write`].
pub fn read_units(dir: &Path) -> Result<Vec<Unit>> {
    Ok(unit::read_lines(&dir.join("documents.jsonl"))?
        .into_iter()
        .map(|(u, _)| u)
        .collect())
}

/// A dataset folder as training reads it: its units, the options it was prepared with, and the
/// split it made, so a run trained from it learns from and validates on the same text.
pub struct DatasetUnits {
    pub units: Vec<Unit>,
    pub manifest: DatasetManifest,
    /// Per unit, whether it is held out; `None` for a dataset made before the split was recorded
    /// (the manifest's `val_frac` and `seed` then split it again).
    pub is_val: Option<Vec<bool>>,
}

impl DatasetUnits {
    /// The division of [`Self::units`] the dataset made.
    pub fn split(&self) -> Split<'_> {
        let opts = &self.manifest.options;
        match &self.is_val {
            Some(is_val) => Split::Given {
                is_val,
                // A lone document was split by holding out its end.
                tail: (self.manifest.split == "tail" && is_val.len() == 1).then_some(opts.val_frac),
            },
            None => Split::Seeded {
                val_frac: opts.val_frac,
                seed: opts.seed,
            },
        }
    }
}

/// Reads a dataset folder written by [`write`] for training.
pub fn read_dataset(dir: &Path) -> Result<DatasetUnits> {
    let path = dir.join("manifest.json");
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    let manifest: DatasetManifest = serde_json::from_str(&text).map_err(|e| {
        Error::file(
            &path,
            format!("is not a dataset manifest ({e}); prepare the dataset again"),
        )
    })?;
    let (units, split): (Vec<Unit>, Vec<Option<bool>>) =
        unit::read_lines(&dir.join("documents.jsonl"))?
            .into_iter()
            .unzip();
    let is_val = split.into_iter().collect::<Option<Vec<bool>>>();
    Ok(DatasetUnits {
        units,
        manifest,
        is_val,
    })
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
