//! What the Data page shows per file before training: size, characters, words, a token estimate,
//! a preview of the cleaned text, or the reason the file cannot be used.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::clean::{self, CleanOptions};
use super::import::{self, walk, ImportOptions};

/// Whether a file's text is used: `ok`, `warning` (used, with parts skipped or nothing left after
/// removing duplicates) or `error` (not used; the report says why).
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FileStatus {
    #[default]
    Ok,
    Warning,
    Error,
}

/// One file as the user will see it in the list.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FileReport {
    pub path: String,
    pub name: String,
    pub extension: String,
    pub size_bytes: u64,
    pub chars: u64,
    pub words: u64,
    /// About four characters per token for English byte-level BPE; the exact count comes with
    /// the tokenizer at training time.
    pub tokens_estimate: u64,
    /// `ok` or `error` (inspection does not warn).
    pub status: FileStatus,
    pub error: Option<String>,
    /// The start of the cleaned text the model will see.
    pub preview: String,
}

const PREVIEW_CHARS: usize = 2000;

/// Inspects each path; folders expand to the files inside them that Tunesmith reads.
pub fn inspect_paths(paths: &[std::path::PathBuf]) -> Vec<FileReport> {
    let walked = walk::collect(paths);
    let mut out: Vec<FileReport> = walked.files.iter().map(|f| inspect(f)).collect();
    out.extend(walked.problems.into_iter().map(|(p, why)| failed(&p, why)));
    out
}

/// Inspects one file: imported and cleaned as training will see it (before deduplication).
pub fn inspect(path: &Path) -> FileReport {
    let imported = import::import_file(path, &ImportOptions::default()).map(|imp| {
        let mut parts: Vec<String> = imp.sections.into_iter().map(|s| s.text).collect();
        parts.extend(
            imp.examples
                .into_iter()
                .map(|e| format!("{}\n{}", e.prompt, e.completion)),
        );
        clean::clean_text(&parts.join("\n\n"), &CleanOptions::default())
    });
    match imported {
        Ok(text) => {
            let chars = text.chars().count() as u64;
            FileReport {
                size_bytes: std::fs::metadata(path).map_or(0, |m| m.len()),
                chars,
                words: text.split_whitespace().count() as u64,
                tokens_estimate: chars.div_ceil(4),
                status: FileStatus::Ok,
                error: None,
                preview: text.chars().take(PREVIEW_CHARS).collect(),
                ..base(path)
            }
        }
        Err(e) => failed(path, e.to_string()),
    }
}

fn base(path: &Path) -> FileReport {
    FileReport {
        path: path.display().to_string(),
        name: path.file_name().map_or_else(
            || path.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        ),
        extension: path
            .extension()
            .map(|e| e.to_string_lossy().to_lowercase())
            .unwrap_or_default(),
        size_bytes: 0,
        chars: 0,
        words: 0,
        tokens_estimate: 0,
        status: FileStatus::Error,
        error: None,
        preview: String::new(),
    }
}

/// The report of a file that could not be read, with `message` as its error.
pub fn failed(path: &Path, message: String) -> FileReport {
    // The error names the path already; the list shows the file name beside it.
    let message = message
        .strip_prefix(&format!("{}: ", path.display()))
        .map(str::to_string)
        .unwrap_or(message);
    FileReport {
        error: Some(message),
        size_bytes: std::fs::metadata(path).map_or(0, |m| m.len()),
        ..base(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_good_and_bad_files() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("notes.md");
        std::fs::write(&good, "Hello  world\r\n\r\n\r\nagain").unwrap();
        let r = inspect(&good);
        assert_eq!(
            (r.status, r.words, r.extension.as_str()),
            (FileStatus::Ok, 3, "md")
        );
        assert_eq!(r.preview, "Hello  world\n\nagain");
        let empty = dir.path().join("empty.txt");
        std::fs::write(&empty, "").unwrap();
        let r = inspect(&empty);
        assert_eq!(r.status, FileStatus::Error);
        assert!(r.error.unwrap().starts_with("is empty"));
        let all = inspect_paths(&[dir.path().to_path_buf(), dir.path().join("gone.txt")]);
        assert_eq!(all.len(), 3);
        assert!(all[2].error.as_deref().unwrap().contains("does not exist"));
        let html = dir.path().join("page.html");
        std::fs::write(&html, "<html><body><nav>Menu</nav><p>Hello <b>there</b></p><script>x()</script></body></html>").unwrap();
        assert_eq!(inspect(&html).preview, "Hello there");
    }
}
