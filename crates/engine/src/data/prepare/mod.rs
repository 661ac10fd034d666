//! The user's documents to a training set: import every file (a bad one gets its own error while
//! the others go on), clean, drop duplicates, scrub personal data if asked, chunk, split, and
//! report what happened in words a non-programmer understands. `collect` does the work in memory;
//! `write` puts a dataset folder on disk (manifest.json, documents.jsonl, token files) atomically;
//! `read` loads that folder back for training; `report` adds totals, suggestions and warnings.
//!
//! This file holds the options and the report's types; the work lives in the submodules, whose
//! public functions are re-exported here so callers name `data::prepare::collect` and so on.

mod collect;
mod read;
mod report;
mod write;

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::clean::CleanOptions;
use super::import::{ImportOptions, Limits};
pub use super::inspect::FileStatus;
pub use super::unit::Unit;
use crate::{Error, Result};

pub use collect::{collect, collect_cancellable};
pub use read::{read_dataset, read_units, DatasetUnits};
pub use report::{finish_report, preview};
pub use write::{chunk_units, stream_blocks, write};

/// Plain-text files above this size (by default) are read in blocks, so memory stays bounded.
pub const STREAM_ABOVE: u64 = 64 << 20;

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
    pub status: FileStatus,
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

/// The dataset folder's `manifest.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DatasetManifest {
    pub options: PrepareOptions,
    pub tokenizer: String,
    pub split: String,
    pub report: Report,
}
