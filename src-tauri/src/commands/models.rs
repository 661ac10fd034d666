//! Base models from the Hugging Face hub.

use tauri::ipc::Channel;
use tunesmith_engine::{hub, paths, Event};

use super::finish;
use crate::error::{CommandError, CommandResult};
use crate::sink::ChannelSink;

/// Downloads `id` into the hub cache with progress events; returns the local folder.
#[tauri::command]
pub async fn download_model(id: String, on_event: Channel<Event>) -> CommandResult<String> {
    tauri::async_runtime::spawn_blocking(move || {
        let mut sink = ChannelSink::new(on_event);
        let result = hub::download(&id, &paths::hub_cache(), &mut sink);
        let out = result
            .as_ref()
            .map(|p| p.display().to_string())
            .map_err(CommandError::from_engine);
        finish(&mut sink, result);
        out
    })
    .await
    .map_err(|e| CommandError::new("internal", e.to_string()))?
}
