//! What the Data page shows per file before training: size, characters, words, a token estimate,
//! a preview of the cleaned text, or the reason the file cannot be used.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::text;

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
    /// `ok` or `error`.
    pub status: String,
    pub error: Option<String>,
    /// The start of the cleaned text the model will see.
    pub preview: String,
}

const PREVIEW_CHARS: usize = 2000;

/// Inspects each path; folders expand to the text files inside them.
pub fn inspect_paths(paths: &[std::path::PathBuf]) -> Vec<FileReport> {
    let mut out = Vec::new();
    for p in paths {
        match text::collect_files(std::slice::from_ref(p)) {
            Ok(files) => out.extend(files.iter().map(|f| inspect(f))),
            Err(e) => out.push(failed(p, e.to_string())),
        }
    }
    out
}

/// Inspects one file.
pub fn inspect(path: &Path) -> FileReport {
    match text::read_document(path) {
        Ok(doc) => {
            let chars = doc.text.chars().count() as u64;
            FileReport {
                size_bytes: std::fs::metadata(path).map_or(0, |m| m.len()),
                chars,
                words: doc.text.split_whitespace().count() as u64,
                tokens_estimate: chars.div_ceil(4),
                status: "ok".into(),
                error: None,
                preview: doc.text.chars().take(PREVIEW_CHARS).collect(),
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
        status: "error".into(),
        error: None,
        preview: String::new(),
    }
}

fn failed(path: &Path, message: String) -> FileReport {
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
            (r.status.as_str(), r.words, r.extension.as_str()),
            ("ok", 3, "md")
        );
        assert_eq!(r.preview, "Hello  world\n\nagain");
        let empty = dir.path().join("empty.txt");
        std::fs::write(&empty, "").unwrap();
        let r = inspect(&empty);
        assert_eq!(r.status, "error");
        assert!(r.error.unwrap().starts_with("is empty"));
        let all = inspect_paths(&[dir.path().to_path_buf(), dir.path().join("gone.txt")]);
        assert_eq!(all.len(), 3);
        assert!(all[2].error.as_deref().unwrap().contains("does not exist"));
    }
}
