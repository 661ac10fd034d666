//! Base models from the Hugging Face hub.

use tauri::ipc::Channel;
use tauri::State;
use tunesmith_engine::settings::TrainConfig;
use tunesmith_engine::train::memory::{self, TrainingMemory};
use tunesmith_engine::{hub, paths, Event};

use crate::error::CommandResult;
use crate::jobs::{CurrentJob, JobKind};
use crate::state::AppState;

/// The estimated memory of training with `config` (as it is, and with activation recomputation),
/// and this machine's memory: the Model and Train pages' "fits this machine".
#[tauri::command]
pub async fn training_memory(config: TrainConfig) -> TrainingMemory {
    // Off the main thread: it may read a model folder's config.json.
    tauri::async_runtime::spawn_blocking(move || memory::training_memory(&config))
        .await
        .unwrap_or(TrainingMemory {
            estimate: None,
            with_recompute: None,
            machine: None,
        })
}

/// Downloads `id` into the hub cache as a job (`stop_job(job_id)` stops it, leaving no partial
/// file) with progress events; returns the local folder.
#[tauri::command]
pub async fn download_model(
    state: State<'_, AppState>,
    job_id: String,
    id: String,
    on_event: Channel<Event>,
) -> CommandResult<String> {
    let info = CurrentJob {
        job_id,
        kind: JobKind::Download,
        run_path: None,
        name: Some(id.clone()),
    };
    state
        .jobs
        .run(info, on_event, move |cancel, sink| {
            hub::download_cancellable(&id, &paths::hub_cache(), cancel, sink)
                .map(|p| p.display().to_string())
        })
        .await
}
