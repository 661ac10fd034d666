//! The Data page: what each dropped file holds, or why it cannot be used.

use std::path::PathBuf;

use tunesmith_engine::data::inspect::{inspect_paths, FileReport};

#[tauri::command]
pub async fn inspect_files(paths: Vec<PathBuf>) -> Vec<FileReport> {
    // Reading large files must not block the window: run off the main thread.
    tauri::async_runtime::spawn_blocking(move || inspect_paths(&paths))
        .await
        .unwrap_or_default()
}
