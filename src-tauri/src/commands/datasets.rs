//! The Data page: what each dropped file holds, or why it cannot be used, and the health report.
//! These read the user's own files wherever they are (that is what the page is for); they never
//! write.

use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};

use tunesmith_engine::data::inspect::{self, inspect_paths, FileReport};
use tunesmith_engine::data::prepare::{preview, PrepareOptions, Report};
use tunesmith_engine::NullSink;

use crate::error::{CommandError, CommandResult};

/// A report per file; a file that cannot be used is reported with its reason, never dropped.
#[tauri::command]
pub async fn inspect_files(paths: Vec<PathBuf>) -> CommandResult<Vec<FileReport>> {
    // Reading large files must not block the window: run off the main thread.
    tauri::async_runtime::spawn_blocking(move || inspect_each(&paths, inspect_paths))
        .await
        .map_err(|e| {
            CommandError::new(
                "internal",
                format!("The files could not be inspected because of an internal error ({e}). Try adding them again."),
            )
        })
}

/// Inspects the dropped paths one by one, so that a crash on one file becomes that file's error
/// and the others are still reported.
pub fn inspect_each(
    paths: &[PathBuf],
    inspect: impl Fn(&[PathBuf]) -> Vec<FileReport>,
) -> Vec<FileReport> {
    paths
        .iter()
        .flat_map(|p| {
            std::panic::catch_unwind(AssertUnwindSafe(|| inspect(std::slice::from_ref(p))))
                .unwrap_or_else(|_| vec![crashed(p)])
        })
        .collect()
}

fn crashed(path: &Path) -> FileReport {
    inspect::failed(
        path,
        "Tunesmith hit an internal error while reading this file; remove it from the list, \
         or save it in another format (plain text works best) and add it again"
            .into(),
    )
}

/// The corpus health report for the files on the Data page: duplicates, personal data found (when
/// scrubbing is on), warnings and suggested training lengths, exactly as training will see the text.
#[tauri::command]
pub async fn data_report(paths: Vec<PathBuf>, options: PrepareOptions) -> CommandResult<Report> {
    tauri::async_runtime::spawn_blocking(move || preview(&paths, &options, &mut NullSink))
        .await
        .map_err(|e| CommandError::new("internal", e.to_string()))?
        .map_err(CommandError::from)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tunesmith_engine::data::inspect::FileStatus;

    #[test]
    fn a_file_that_crashes_the_reader_is_reported_not_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("good.txt");
        let bad = dir.path().join("bad.txt");
        std::fs::write(&good, "Plenty of words here to read.").unwrap();
        std::fs::write(&bad, "this one crashes").unwrap();
        let reports = inspect_each(&[bad.clone(), good.clone()], |paths| {
            assert!(paths[0] != bad, "simulated reader crash");
            inspect_paths(paths)
        });
        assert_eq!(reports.len(), 2, "{reports:?}");
        assert_eq!(reports[0].status, FileStatus::Error);
        assert_eq!(reports[0].name, "bad.txt");
        assert!(reports[0].error.as_deref().unwrap().contains("remove it"));
        assert_eq!(reports[1].status, FileStatus::Ok);
    }
}
