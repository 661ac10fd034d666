//! What every command can reach: the job registry, the loaded chat models and the app's folders.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tunesmith_engine::runs::RunDir;
use tunesmith_engine::{paths, Error};

use crate::close::CloseGuard;
use crate::error::CommandResult;
use crate::jobs::JobRegistry;
use crate::models::ModelCache;

pub struct AppState {
    pub jobs: JobRegistry,
    /// Shared with generation jobs, which run on their own threads.
    pub models: Arc<ModelCache>,
    pub paths: Paths,
    /// Closing during training: not asked, asked and unanswered, or quitting (see `close`).
    pub close: CloseGuard,
    /// The model served on this computer, if any (Runs page → Serve).
    pub serving: crate::commands::sharing::Serving,
    /// Started by the end-to-end test (`TUNESMITH_E2E=1`): the page may add its test entry points.
    pub e2e: bool,
    /// The last run whose training text replies were checked against, kept loaded (its index is
    /// 4 bytes a training token).
    /// Keyed by the run and its training tokens' size and time, so a run trained again (or
    /// deleted and made anew) is not checked against its old text.
    pub copies: std::sync::Mutex<Option<(String, Arc<tunesmith_engine::eval::copied::RunCopies>)>>,
}

/// The app's folders, under `TUNESMITH_HOME` or the platform data folder.
pub struct Paths {
    pub home: PathBuf,
    pub runs: PathBuf,
}

impl AppState {
    pub fn new(home: PathBuf) -> Self {
        AppState {
            jobs: JobRegistry::default(),
            models: Arc::default(),
            paths: Paths {
                runs: home.join("runs"),
                home,
            },
            close: CloseGuard::default(),
            serving: Default::default(),
            e2e: false,
            copies: Default::default(),
        }
    }

    /// Stops the server, if one runs (Stop on the Runs page; quitting the app).
    pub fn stop_serving(&self) {
        let taken = self
            .serving
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some((_, server)) = taken {
            server.stop();
        }
    }
}

impl Paths {
    /// The real path of a run folder the page named: it must be a folder directly inside the
    /// runs folder (after following every symlink) that holds a `run.json`. Everything that
    /// reads or changes a run goes through here. The path comes back in the same form as
    /// `list_runs` gives it (the runs folder joined with the real folder's name), so the page can
    /// match it, even where the data folder itself sits behind a symlink (macOS's /var).
    pub fn run(&self, path: &Path) -> CommandResult<PathBuf> {
        let real = paths::confine(&self.runs, path)?;
        let runs = self
            .runs
            .canonicalize()
            .map_err(|e| Error::io(&self.runs, e))?;
        if real.parent() != Some(runs.as_path()) || !RunDir::new(&real).run_json().is_file() {
            return Err(Error::file(
                path,
                "is not one of Tunesmith's runs (a folder in the runs folder with a run.json); \
                 pick the run from the Runs page",
            )
            .into());
        }
        Ok(self.runs.join(real.file_name().unwrap_or_default()))
    }
}
