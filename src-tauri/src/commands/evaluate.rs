//! The Evaluate page: a run's base model and checkpoints answering held-out examples, scored.
//! All the work is the engine's (`eval::checkpoints`); this resolves the run inside the data
//! folder and runs it as a job with progress and Stop.

use std::path::PathBuf;

use tauri::ipc::Channel;
use tauri::State;
use tunesmith_engine::eval::checkpoints::{self, Target, TargetReport};
use tunesmith_engine::eval::copied::{CopyReport, RunCopies};
use tunesmith_engine::eval::PairEvalConfig;
use tunesmith_engine::{device, Error, Event};

use crate::error::{CommandError, CommandResult};
use crate::jobs::{CurrentJob, JobKind};
use crate::state::AppState;

/// Evaluates `targets` of the run on `pairs` (a JSONL file the user chose; the run's own
/// validation pairs when absent).
#[tauri::command]
pub async fn evaluate_run(
    state: State<'_, AppState>,
    job_id: String,
    run_path: PathBuf,
    pairs: Option<PathBuf>,
    targets: Vec<Target>,
    on_event: Channel<Event>,
) -> CommandResult<Vec<TargetReport>> {
    let run = state.paths.run(&run_path)?;
    if let Some(p) = &pairs {
        if !p.is_file() {
            return Err(Error::file(p, "is not a file; choose a .jsonl file of examples").into());
        }
    }
    let name = run.file_name().map(|n| n.to_string_lossy().into_owned());
    let info = CurrentJob {
        job_id,
        kind: JobKind::Evaluate,
        run_path: Some(run.display().to_string()),
        name,
    };
    state
        .jobs
        .run(info, on_event, move |cancel, sink| {
            let dev = device::select("auto")?;
            checkpoints::evaluate_run(
                &run,
                pairs.as_deref(),
                &targets,
                &PairEvalConfig::default(),
                &dev,
                cancel,
                sink,
            )
        })
        .await
}

/// How much of `text` (a reply of the run's model) was copied word for word from the run's
/// training text, cut into copied and new pieces for highlighting; `None` when the run's
/// training tokens are gone. The run's index is built on first use and kept for the next reply.
#[tauri::command]
pub async fn check_copied(
    state: State<'_, AppState>,
    run_path: PathBuf,
    text: String,
) -> CommandResult<Option<CopyReport>> {
    let run = state.paths.run(&run_path)?;
    let tokens = tunesmith_engine::runs::RunDir::new(&run)
        .dataset()
        .join("train.tokens");
    let meta = std::fs::metadata(&tokens).ok();
    let key = format!(
        "{}|{:?}|{:?}",
        run.display(),
        meta.as_ref().map(|m| m.len()),
        meta.as_ref().and_then(|m| m.modified().ok())
    );
    let cached = {
        let guard = state.copies.lock().unwrap_or_else(|p| p.into_inner());
        guard
            .as_ref()
            .filter(|(k, _)| *k == key)
            .map(|(_, c)| c.clone())
    };
    let copies = match cached {
        Some(c) => c,
        None => {
            let dir = run.clone();
            let loaded = tauri::async_runtime::spawn_blocking(move || RunCopies::for_run(&dir))
                .await
                .map_err(|e| CommandError::new("internal", e.to_string()))??;
            let Some(loaded) = loaded else {
                return Ok(None);
            };
            let loaded = std::sync::Arc::new(loaded);
            *state.copies.lock().unwrap_or_else(|p| p.into_inner()) = Some((key, loaded.clone()));
            loaded
        }
    };
    Ok(Some(copies.check(&text)?))
}
