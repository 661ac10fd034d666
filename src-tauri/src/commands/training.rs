//! Training jobs and the run folders they write.

use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;
use tauri::ipc::Channel;
use tauri::State;
use tunesmith_engine::runs::{self, RunDir, RunMetrics, RunSummary};
use tunesmith_engine::train::{self, Restore, TrainConfig};
use tunesmith_engine::{device, Error, Event};

use super::finish;
use crate::error::{CommandError, CommandResult};
use crate::sink::ChannelSink;
use crate::state::AppState;

#[cfg_attr(test, derive(ts_rs::TS))]
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JobStarted {
    pub job_id: String,
    pub run_path: String,
}

fn run_path(state: &AppState, name: &str) -> CommandResult<PathBuf> {
    let name = name.trim();
    if name.is_empty() || name.contains(['/', '\\']) || name.starts_with('.') {
        return Err(Error::config(
            "name",
            "must be a plain name (no slashes, not starting with a dot)",
        )
        .into());
    }
    Ok(state.paths.runs.join(name))
}

fn spawn_training(
    state: &AppState,
    path: PathBuf,
    config: TrainConfig,
    restore: Restore,
    on_event: Channel<Event>,
) -> CommandResult<JobStarted> {
    config.validate()?;
    let job_id = format!("train-{}", runs::now_unix());
    let run = path.clone();
    state.jobs.start(
        &job_id,
        "train",
        move |cancel| {
            let mut sink = ChannelSink::new(on_event);
            let result = device::select("auto")
                .and_then(|dev| train::train(&config, &run, restore, &dev, &cancel, &mut sink));
            (sink, result)
        },
        |(mut sink, result)| finish(&mut sink, result),
    )?;
    Ok(JobStarted {
        job_id,
        run_path: path.display().to_string(),
    })
}

/// Starts a new run called `name`.
#[tauri::command]
pub fn start_training(
    state: State<'_, AppState>,
    name: String,
    config: TrainConfig,
    on_event: Channel<Event>,
) -> CommandResult<JobStarted> {
    let path = run_path(&state, &name)?;
    if RunDir::new(&path).latest_checkpoint().is_some() {
        return Err(Error::file(&path, "already holds a run with this name; continue it from the Runs page or pick another name").into());
    }
    spawn_training(&state, path, config, Restore::Fresh, on_event)
}

/// Continues a run from its latest checkpoint with its saved settings.
#[tauri::command]
pub fn resume_training(
    state: State<'_, AppState>,
    run_path: PathBuf,
    on_event: Channel<Event>,
) -> CommandResult<JobStarted> {
    let info = RunDir::new(&run_path)
        .read_info()?
        .ok_or_else(|| Error::file(&run_path, "is not a run folder (no run.json)"))?;
    spawn_training(&state, run_path, info.config, Restore::Latest, on_event)
}

/// Asks a job to stop at its next step boundary (training saves a checkpoint).
#[tauri::command]
pub fn stop_job(state: State<'_, AppState>, job_id: String) -> CommandResult<()> {
    if state.jobs.cancel(&job_id) {
        Ok(())
    } else {
        Err(CommandError::new(
            "notRunning",
            "That job has already finished.",
        ))
    }
}

/// Every run, newest first, with the status the engine decides (`interrupted` when run.json says
/// running but no process holds the run's training lock).
#[tauri::command]
pub fn list_runs(state: State<'_, AppState>) -> Vec<RunSummary> {
    let mut out: Vec<RunSummary> = runs::list_runs(&state.paths.runs)
        .iter()
        .map(|(path, info)| runs::summarize(path, info))
        .collect();
    out.sort_by_key(|r| std::cmp::Reverse(r.updated_unix));
    out
}

#[tauri::command]
pub fn run_metrics(run_path: PathBuf) -> RunMetrics {
    runs::read_metrics(&run_path)
}

#[tauri::command]
pub fn rename_run(
    state: State<'_, AppState>,
    run_path: PathBuf,
    new_name: String,
) -> CommandResult<RunSummary> {
    if state.jobs.running().is_some() {
        return Err(CommandError::new(
            "busy",
            "Wait for the running job to finish before renaming a run.",
        ));
    }
    let target = runs::rename(&run_path, &new_name)?;
    let info = RunDir::new(&target)
        .read_info()?
        .ok_or_else(|| Error::file(&target, "has no run.json"))?;
    Ok(runs::summarize(&target, &info))
}

#[tauri::command]
pub fn delete_run(state: State<'_, AppState>, run_path: PathBuf) -> CommandResult<()> {
    if state.jobs.running().is_some() {
        return Err(CommandError::new(
            "busy",
            "Wait for the running job to finish before deleting a run.",
        ));
    }
    Ok(runs::delete(&run_path)?)
}

/// Closing the window during training: stop, save a checkpoint, then quit.
#[tauri::command]
pub fn stop_and_quit<R: tauri::Runtime>(app: tauri::AppHandle<R>, state: State<'_, AppState>) {
    state.jobs.stop_all(Duration::from_secs(120));
    app.exit(0);
}
