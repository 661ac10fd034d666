//! Where Tunesmith keeps its data: the platform data folder, or `TUNESMITH_HOME` when set.

use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// The app's data folder (runs, datasets, hub cache).
pub fn home() -> PathBuf {
    if let Some(h) = std::env::var_os("TUNESMITH_HOME").filter(|h| !h.is_empty()) {
        return PathBuf::from(h);
    }
    directories::ProjectDirs::from("", "", "tunesmith")
        .map(|d| d.data_dir().to_path_buf())
        .unwrap_or_else(|| PathBuf::from(".tunesmith"))
}

/// The Hugging Face cache: `$HF_HOME/hub` when `HF_HOME` is set (shared with Python tools),
/// otherwise `<home>/hub`.
pub fn hub_cache() -> PathBuf {
    match std::env::var_os("HF_HOME").filter(|h| !h.is_empty()) {
        Some(h) => PathBuf::from(h).join("hub"),
        None => home().join("hub"),
    }
}

/// Default folder for runs.
pub fn runs_dir() -> PathBuf {
    home().join("runs")
}

/// The real location of `path` (every symlink followed) when it lies strictly inside `root`;
/// otherwise a file error naming `path`. Commands that change or read Tunesmith's own folders take
/// paths from the page through this, so `../x`, an absolute path elsewhere, or a symlink inside
/// the data folder that points out of it can never be written, renamed or deleted.
pub fn confine(root: &Path, path: &Path) -> Result<PathBuf> {
    let outside = || {
        Error::file(
            path,
            format!(
                "is not inside Tunesmith's data folder ({}); Tunesmith only changes its own runs \
                 there. Pick the run from the Runs page",
                root.display()
            ),
        )
    };
    let root = root.canonicalize().map_err(|_| outside())?;
    let real = path.canonicalize().map_err(|e| Error::io(path, e))?;
    if real != root && real.starts_with(&root) {
        Ok(real)
    } else {
        Err(outside())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confine_refuses_traversal_absolute_paths_and_symlink_escapes() {
        let home = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let runs = home.path().join("runs");
        std::fs::create_dir_all(runs.join("a")).unwrap();
        std::fs::create_dir_all(home.path().join("elsewhere")).unwrap();

        let real = confine(&runs, &runs.join("a")).unwrap();
        assert_eq!(real, runs.join("a").canonicalize().unwrap());
        // `runs/a/../../elsewhere` exists but is not inside `runs`.
        let up = confine(&runs, &runs.join("a/../../elsewhere")).unwrap_err();
        assert!(
            up.to_string()
                .contains("not inside Tunesmith's data folder"),
            "{up}"
        );
        assert!(confine(&runs, outside.path()).is_err());
        assert!(
            confine(&runs, &runs).is_err(),
            "the folder itself is not one of its runs"
        );
        assert_eq!(
            confine(&runs, &runs.join("missing")).unwrap_err().kind(),
            "file"
        );

        #[cfg(unix)]
        {
            let link = runs.join("escape");
            std::os::unix::fs::symlink(outside.path(), &link).unwrap();
            let e = confine(&runs, &link).unwrap_err();
            assert!(e.to_string().contains("not inside"), "{e}");
            // Through a symlinked parent, too.
            std::fs::create_dir(outside.path().join("inner")).unwrap();
            assert!(confine(&runs, &link.join("inner")).is_err());
        }
    }
}
