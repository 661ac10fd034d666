//! The Data page: what each dropped file holds, or why it cannot be used, and the health report.

use std::path::PathBuf;

use tunesmith_engine::data::inspect::{inspect_paths, FileReport};
use tunesmith_engine::data::prepare::{preview, PrepareOptions, Report};
use tunesmith_engine::NullSink;

use crate::error::{CommandError, CommandResult};

#[tauri::command]
pub async fn inspect_files(paths: Vec<PathBuf>) -> Vec<FileReport> {
    // Reading large files must not block the window: run off the main thread.
    tauri::async_runtime::spawn_blocking(move || inspect_paths(&paths))
        .await
        .unwrap_or_default()
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
