//! Chat and completion: streamed generation on the job thread, and saved conversations.

use std::path::PathBuf;

use tauri::ipc::Channel;
use tauri::State;
use tunesmith_engine::chats::{self, Chat};
use tunesmith_engine::generate::{self, GenerateConfig, Generation};
use tunesmith_engine::model::load;
use tunesmith_engine::source;
use tunesmith_engine::{device, Event};

use super::finish;
use crate::error::{CommandError, CommandResult};
use crate::sink::ChannelSink;
use crate::state::AppState;

/// Generates from `model` (a run folder, model folder or hub id); tokens stream over `on_event`,
/// the samples are returned at the end. `job_id` (chosen by the page) lets Stop reach it.
#[tauri::command]
pub async fn generate(
    state: State<'_, AppState>,
    job_id: String,
    model: String,
    config: GenerateConfig,
    on_event: Channel<Event>,
) -> CommandResult<Vec<Generation>> {
    config.validate()?;
    let (tx, rx) = std::sync::mpsc::channel();
    state.jobs.start(
        &job_id,
        "generate",
        move |cancel| {
            let mut sink = ChannelSink::new(on_event);
            let result = (|| {
                let dev = device::select("auto")?;
                // A hub model not yet cached downloads here, its progress shown in the chat.
                let dir = source::resolve(&model, &mut sink)?;
                let loaded = load::load_dir(&dir, &dev)?;
                generate::generate(
                    &loaded.model,
                    &loaded.tokenizer,
                    &config,
                    &cancel,
                    &mut sink,
                )
            })();
            (sink, result)
        },
        move |(mut sink, result)| {
            let _ = tx.send(
                result
                    .as_ref()
                    .map(Clone::clone)
                    .map_err(CommandError::from_engine),
            );
            finish(&mut sink, result);
        },
    )?;
    tauri::async_runtime::spawn_blocking(move || rx.recv())
        .await
        .map_err(|e| CommandError::new("internal", e.to_string()))?
        .map_err(|_| CommandError::new("internal", "the generation thread ended unexpectedly"))?
}

#[tauri::command]
pub fn list_chats(run_path: PathBuf) -> Vec<Chat> {
    chats::list(&run_path)
}

#[tauri::command]
pub fn save_chat(run_path: PathBuf, chat: Chat) -> CommandResult<()> {
    Ok(chats::save(&run_path, &chat)?)
}
