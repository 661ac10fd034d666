//! Plain-text documents (.txt, .md): find them, read them, normalise them. Each failure names the
//! file and says what to do; the caller decides whether one bad file stops the job.

use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// Extensions read as plain text. Rich formats (PDF, Word, HTML…) arrive with the importers.
pub const TEXT_EXTENSIONS: &[&str] = &["txt", "md", "markdown", "text"];

/// One document: where it came from and its normalised text.
#[derive(Debug, Clone)]
pub struct Document {
    pub source: PathBuf,
    pub text: String,
}

/// Expands the user's paths: files are taken as they are, folders are searched recursively for
/// text files (sorted, so the order — and hence the split — is reproducible).
pub fn collect_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in paths {
        let meta = std::fs::metadata(p).map_err(|e| Error::io(p, e))?;
        if meta.is_dir() {
            let mut found = Vec::new();
            walk(p, &mut found)?;
            if found.is_empty() {
                return Err(Error::file(
                    p,
                    format!(
                        "this folder holds no text files ({})",
                        TEXT_EXTENSIONS.join(", ")
                    ),
                ));
            }
            found.sort();
            out.extend(found);
        } else {
            out.push(p.clone());
        }
    }
    Ok(out)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let path = entry.map_err(|e| Error::io(dir, e))?.path();
        if path.is_dir() {
            walk(&path, out)?;
        } else if has_text_extension(&path) {
            out.push(path);
        }
    }
    Ok(())
}

fn has_text_extension(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| TEXT_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

/// Reads one text file and normalises it.
pub fn read_document(path: &Path) -> Result<Document> {
    if !has_text_extension(path) {
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .unwrap_or("(none)");
        return Err(Error::file(
            path,
            format!(
                "has extension `.{ext}`; Tunesmith reads {} files — save it as plain text first",
                TEXT_EXTENSIONS.join(", ")
            ),
        ));
    }
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let text = decode(path, &bytes)?;
    let text = normalise(&text);
    if text.is_empty() {
        return Err(Error::file(
            path,
            "is empty (or only whitespace); add text or remove it",
        ));
    }
    Ok(Document {
        source: path.to_path_buf(),
        text,
    })
}

/// UTF-8 text, tolerating a few stray bytes; binary data is refused.
fn decode(path: &Path, bytes: &[u8]) -> Result<String> {
    let not_text = || {
        Error::file(
            path,
            "is not a text file (it looks like binary data); remove it from the list",
        )
    };
    if bytes.contains(&0) {
        return Err(not_text());
    }
    match std::str::from_utf8(bytes) {
        Ok(s) => Ok(s.to_string()),
        Err(_) => {
            let s = String::from_utf8_lossy(bytes);
            let bad = s
                .chars()
                .filter(|&c| c == char::REPLACEMENT_CHARACTER)
                .count();
            // A handful of bad bytes in a real text file is common (Latin-1 quotes); keep the text.
            if bad * 100 > s.chars().count() {
                Err(not_text())
            } else {
                Ok(s.into_owned())
            }
        }
    }
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
    fn bad_files_have_plain_errors() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.txt");
        std::fs::write(&empty, "  \n\n").unwrap();
        assert!(read_document(&empty)
            .unwrap_err()
            .to_string()
            .contains("is empty"));
        let bin = dir.path().join("bin.txt");
        std::fs::write(&bin, [0u8, 159, 146, 150, 1, 2, 3]).unwrap();
        assert!(read_document(&bin)
            .unwrap_err()
            .to_string()
            .contains("not a text file"));
        let missing = dir.path().join("nope.txt");
        assert!(read_document(&missing)
            .unwrap_err()
            .to_string()
            .contains("does not exist"));
        let pdf = dir.path().join("x.pdf");
        std::fs::write(&pdf, "hi").unwrap();
        assert!(read_document(&pdf)
            .unwrap_err()
            .to_string()
            .contains(".pdf"));
        let latin1 = dir.path().join("l.txt");
        std::fs::write(
            &latin1,
            [
                &b"caf\xe9"[..],
                &b" au lait is a drink that many people like to have in the morning. ".repeat(3),
            ]
            .concat(),
        )
        .unwrap();
        assert!(read_document(&latin1).unwrap().text.starts_with("caf"));
    }

    #[test]
    fn folders_are_searched_for_text_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/b.md"), "b").unwrap();
        std::fs::write(dir.path().join("a.txt"), "a").unwrap();
        std::fs::write(dir.path().join("skip.bin"), "x").unwrap();
        let files = collect_files(&[dir.path().to_path_buf()]).unwrap();
        assert_eq!(files.len(), 2);
        let empty = tempfile::tempdir().unwrap();
        assert!(collect_files(&[empty.path().to_path_buf()]).is_err());
    }
}
