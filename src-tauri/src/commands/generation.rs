//! Chat and completion: streamed generation on the job thread, and saved conversations.

use std::path::{Path, PathBuf};

use tauri::ipc::Channel;
use tauri::State;
use tunesmith_engine::chats::{self, Chat};
use tunesmith_engine::generate::{self, GenerateConfig, Generation};
use tunesmith_engine::source;
use tunesmith_engine::{device, hub, paths, Event};

use crate::error::CommandResult;
use crate::jobs::{CurrentJob, JobKind};
use crate::state::AppState;

/// Generates from `model` (a run folder, model folder or hub id); tokens stream over `on_event`,
/// the samples are returned at the end. `job_id` (chosen by the page) lets Stop reach it, during
/// a download too. The loaded model is kept for the next message (see [`crate::models`]).
#[tauri::command]
pub async fn generate(
    state: State<'_, AppState>,
    job_id: String,
    model: String,
    config: GenerateConfig,
    on_event: Channel<Event>,
) -> CommandResult<Vec<Generation>> {
    config.validate()?;
    let models = state.models.clone();
    let info = CurrentJob {
        job_id,
        kind: JobKind::Generate,
        run_path: None,
        name: Some(model.clone()),
    };
    state
        .jobs
        .run(info, on_event, move |cancel, sink| {
            let dev = device::select("auto")?;
            // A hub model not yet cached downloads here, its progress shown in the chat; Stop
            // stops the download too.
            if !Path::new(&model).exists() && hub::is_hub_id(&model) {
                hub::download_cancellable(&model, &paths::hub_cache(), cancel, sink)?;
            }
            let dir = source::resolve(&model, sink)?;
            let loaded = models.get(&model, &dir, &dev)?;
            generate::generate_chat(
                &loaded.model,
                &loaded.tokenizer,
                loaded.template.as_ref(),
                &config,
                cancel,
                sink,
            )
        })
        .await
}

/// The saved conversations of a run (only Tunesmith's own runs).
#[tauri::command]
pub fn list_chats(state: State<'_, AppState>, run_path: PathBuf) -> CommandResult<Vec<Chat>> {
    let run_path = state.paths.run(&run_path)?;
    Ok(chats::list(&run_path))
}

/// Saves a conversation into its run's `chats/` folder (only Tunesmith's own runs).
#[tauri::command]
pub fn save_chat(state: State<'_, AppState>, run_path: PathBuf, chat: Chat) -> CommandResult<()> {
    let run_path = state.paths.run(&run_path)?;
    Ok(chats::save(&run_path, &chat)?)
}
