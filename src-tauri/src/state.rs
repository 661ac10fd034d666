//! What every command can reach: the job registry and the app's folders.

use std::path::PathBuf;

use crate::jobs::JobRegistry;

pub struct AppState {
    pub jobs: JobRegistry,
    pub paths: Paths,
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
            paths: Paths {
                runs: home.join("runs"),
                home,
            },
        }
    }
}
