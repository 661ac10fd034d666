//! The user's paths to a list of files: folders are walked recursively in sorted order (so the
//! split is reproducible), hidden files and folders are skipped, symbolic-link loops are cut, and
//! only formats Tunesmith reads are taken from folders (a file named directly is always tried, so
//! an unsupported one gets its own message).

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use super::is_supported;

/// A path that could not be listed, with the reason, beside the files that were found.
#[derive(Debug, Default)]
pub struct Walked {
    pub files: Vec<PathBuf>,
    pub problems: Vec<(PathBuf, String)>,
}

pub fn collect(paths: &[PathBuf]) -> Walked {
    let mut out = Walked::default();
    let mut seen_dirs = HashSet::new();
    for p in paths {
        match std::fs::metadata(p) {
            Ok(m) if m.is_dir() => {
                let before = out.files.len();
                walk(p, &mut seen_dirs, &mut out);
                if out.files.len() == before {
                    out.problems.push((
                        p.clone(),
                        "holds no files Tunesmith can read (text, Markdown, HTML, PDF, Word, OpenDocument, EPUB, RTF, CSV, JSON)".into(),
                    ));
                }
            }
            Ok(_) => out.files.push(p.clone()),
            Err(e) => out
                .problems
                .push((p.clone(), crate::Error::io(p, e).to_string())),
        }
    }
    out
}

fn hidden(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with('.'))
}

fn walk(dir: &Path, seen: &mut HashSet<PathBuf>, out: &mut Walked) {
    // A folder reached twice (a link back up the tree) is walked once.
    let Ok(real) = std::fs::canonicalize(dir) else {
        return;
    };
    if !seen.insert(real) {
        return;
    }
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            out.problems
                .push((dir.to_path_buf(), crate::Error::io(dir, e).to_string()));
            return;
        }
    };
    let mut children: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    children.sort();
    for path in children {
        if hidden(&path) {
            continue;
        }
        // `metadata` follows links; a dangling link is simply skipped.
        match std::fs::metadata(&path) {
            Ok(m) if m.is_dir() => walk(&path, seen, out),
            Ok(m) if m.is_file() && is_supported(&path) => out.files.push(path),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walks_sorted_skips_hidden_and_link_loops() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("sub/deeper")).unwrap();
        std::fs::create_dir_all(root.join(".git")).unwrap();
        std::fs::write(root.join("b.pdf"), "x").unwrap();
        std::fs::write(root.join("a.txt"), "x").unwrap();
        std::fs::write(root.join(".hidden.txt"), "x").unwrap();
        std::fs::write(root.join(".git/c.txt"), "x").unwrap();
        std::fs::write(root.join("sub/deeper/d.md"), "x").unwrap();
        std::fs::write(root.join("sub/photo.jpg"), "x").unwrap();
        #[cfg(unix)]
        std::os::unix::fs::symlink(root, root.join("sub/loop")).unwrap();
        let w = collect(&[root.to_path_buf()]);
        let names: Vec<String> = w
            .files
            .iter()
            .map(|p| p.strip_prefix(root).unwrap().display().to_string())
            .collect();
        assert_eq!(names, ["a.txt", "b.pdf", "sub/deeper/d.md"]);
        assert!(w.problems.is_empty());
        let empty = tempfile::tempdir().unwrap();
        let w = collect(&[empty.path().to_path_buf(), root.join("gone.txt")]);
        assert_eq!(w.problems.len(), 2);
        assert!(w.problems[1].1.contains("does not exist"));
    }
}
