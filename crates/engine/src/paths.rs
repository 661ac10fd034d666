//! Where Tunesmith keeps its data: the platform data folder, or `TUNESMITH_HOME` when set.

use std::path::PathBuf;

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
