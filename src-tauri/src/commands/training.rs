//! Training jobs and the run folders they write. Every run path from the page is resolved through
//! [`crate::state::Paths::run`], so only Tunesmith's own runs are read, renamed or deleted.

use std::path::PathBuf;

use serde::Serialize;
use tauri::ipc::Channel;
use tauri::{Manager, State};
use tunesmith_engine::runs::{self, RunDir, RunMetrics, RunSummary};
use tunesmith_engine::settings::TrainConfig;
use tunesmith_engine::train::estimate::{self, Estimate};
use tunesmith_engine::train::{self, Restore};
use tunesmith_engine::{device, names, paths, Error, Event};

use crate::error::{CommandError, CommandResult};
use crate::jobs::{CurrentJob, JobKind};
use crate::state::AppState;

#[cfg_attr(test, derive(ts_rs::TS))]
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JobStarted {
    pub job_id: String,
    pub run_path: String,
}

/// The folder for a new run called `name`, inside the runs folder.
fn new_run_path(state: &AppState, name: &str) -> CommandResult<PathBuf> {
    let name = names::validate_name("name", name.trim())?;
    let runs = &state.paths.runs;
    std::fs::create_dir_all(runs).map_err(|e| Error::io(runs, e))?;
    let path = runs.join(name);
    // An existing entry (e.g. a symlink someone left there) must still lead inside the folder.
    if path.symlink_metadata().is_ok() {
        paths::confine(runs, &path)?;
    }
    Ok(path)
}

/// Runs off the main thread, where a blocking call would freeze the window.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> CommandResult<T> + Send + 'static,
) -> CommandResult<T> {
    tauri::async_runtime::spawn_blocking(f)
        .await
        .map_err(|e| CommandError::new("internal", e.to_string()))?
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
    let info = CurrentJob {
        job_id: job_id.clone(),
        kind: JobKind::Train,
        run_path: Some(path.display().to_string()),
        name: path.file_name().map(|n| n.to_string_lossy().into_owned()),
    };
    state.jobs.start(
        info,
        on_event,
        move |cancel, sink| {
            let dev = device::select("auto")?;
            train::train(&config, &run, restore, &dev, cancel, sink)
        },
        |_| {},
    )?;
    // Training needs the memory more than Chat needs its loaded models; they reload afterwards.
    state.models.clear();
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
    let path = new_run_path(&state, &name)?;
    if RunDir::new(&path).latest_checkpoint().is_some() {
        return Err(Error::file(&path, "already holds a run with this name; continue it from the Runs page or pick another name").into());
    }
    spawn_training(&state, path, config, Restore::Fresh, on_event)
}

/// Measures `config` before it is started: a few real steps (nothing kept) give the run's time
/// and peak memory on this machine. A job with progress events; `stop_job(job_id)` stops it.
#[tauri::command]
pub async fn estimate_training(
    state: State<'_, AppState>,
    job_id: String,
    config: TrainConfig,
    on_event: Channel<Event>,
) -> CommandResult<Estimate> {
    config.validate()?;
    // Measuring needs the memory more than Chat needs its loaded models, and they must be gone
    // before the measurement's baseline is taken.
    state.models.clear();
    let scratch = state.paths.home.join("tmp");
    let info = CurrentJob {
        job_id,
        kind: JobKind::Estimate,
        run_path: None,
        name: None,
    };
    state
        .jobs
        .run(info, on_event, move |cancel, sink| {
            let dev = device::select("auto")?;
            std::fs::create_dir_all(&scratch).map_err(|e| Error::io(&scratch, e))?;
            estimate::estimate(&config, &dev, &scratch, cancel, sink)
        })
        .await
}

/// Continues a run from its latest checkpoint with its saved settings.
#[tauri::command]
pub fn resume_training(
    state: State<'_, AppState>,
    run_path: PathBuf,
    on_event: Channel<Event>,
) -> CommandResult<JobStarted> {
    let (run_path, config) = saved_run(&state, &run_path)?;
    spawn_training(&state, run_path, config, Restore::Latest, on_event)
}

/// A run of the data folder and the settings it was trained with.
fn saved_run(
    state: &AppState,
    run_path: &std::path::Path,
) -> CommandResult<(PathBuf, TrainConfig)> {
    let run_path = state.paths.run(run_path)?;
    let info = RunDir::new(&run_path)
        .read_info()?
        .ok_or_else(|| Error::file(&run_path, "is not a run folder (no run.json)"))?;
    Ok((run_path, info.config))
}

/// The training doctor's remedy for a run that diverged or stalled: goes back to checkpoint
/// `step` (0: the start; later checkpoints are discarded), or takes the newest when `None`, and
/// continues at learning rate `lr`.
#[tauri::command]
pub fn resume_training_from(
    state: State<'_, AppState>,
    run_path: PathBuf,
    step: Option<u64>,
    lr: f64,
    on_event: Channel<Event>,
) -> CommandResult<JobStarted> {
    let (run_path, saved) = saved_run(&state, &run_path)?;
    let config = TrainConfig { lr, ..saved };
    config.validate()?;
    let restore = step.map_or(Restore::Latest, Restore::From);
    spawn_training(&state, run_path, config, restore, on_event)
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

/// After a page reload: the running job of `kind`, if any, whose events go to `on_event` from now
/// on, starting with its latest progress, evaluation and step.
#[tauri::command]
pub fn current_job(
    state: State<'_, AppState>,
    kind: JobKind,
    on_event: Channel<Event>,
) -> Option<CurrentJob> {
    // A page that (re)loads has no close question open: a close now asks it again.
    state.close.answered();
    state.jobs.attach(kind, on_event)
}

/// Every run, newest first, with the status the engine decides (`interrupted` when run.json says
/// running but no process holds the run's training lock).
#[tauri::command]
pub async fn list_runs(state: State<'_, AppState>) -> CommandResult<Vec<RunSummary>> {
    let root = state.paths.runs.clone();
    blocking(move || {
        let mut out: Vec<RunSummary> = runs::list_runs(&root)
            .iter()
            .map(|(path, info)| runs::summarize(path, info))
            .collect();
        out.sort_by_key(|r| std::cmp::Reverse(r.updated_unix));
        Ok(out)
    })
    .await
}

#[tauri::command]
pub async fn run_metrics(
    state: State<'_, AppState>,
    run_path: PathBuf,
) -> CommandResult<RunMetrics> {
    let run_path = state.paths.run(&run_path)?;
    blocking(move || Ok(runs::read_metrics(&run_path))).await
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
    let run_path = state.paths.run(&run_path)?;
    let target = runs::rename(&run_path, &new_name)?;
    let info = RunDir::new(&target)
        .read_info()?
        .ok_or_else(|| Error::file(&target, "has no run.json"))?;
    Ok(runs::summarize(&target, &info))
}

/// Deleting a large run takes a while: off the main thread.
#[tauri::command]
pub async fn delete_run(state: State<'_, AppState>, run_path: PathBuf) -> CommandResult<()> {
    if state.jobs.running().is_some() {
        return Err(CommandError::new(
            "busy",
            "Wait for the running job to finish before deleting a run.",
        ));
    }
    let run_path = state.paths.run(&run_path)?;
    // The copy check's index of this run is memory no longer needed.
    *state.copies.lock().unwrap_or_else(|p| p.into_inner()) = None;
    blocking(move || Ok(runs::delete(&run_path)?)).await
}

/// Closing the window during training: stop, save a checkpoint, then quit. It waits off the main
/// thread, so the window keeps drawing (the page shows "saving…") until the checkpoint is written.
#[tauri::command]
pub async fn stop_and_quit<R: tauri::Runtime>(app: tauri::AppHandle<R>) -> CommandResult<()> {
    let handle = app.clone();
    blocking(move || {
        let state = handle.state::<AppState>();
        state.close.quitting();
        state.jobs.stop_all(crate::QUIT_WAIT);
        Ok(())
    })
    .await?;
    app.exit(0);
    Ok(())
}

/// The page's "Keep training" answer to closing during training: the next close asks again.
#[tauri::command]
pub fn keep_training(state: State<'_, AppState>) {
    state.close.answered();
}
