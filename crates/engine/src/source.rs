//! Resolving what the user typed as a model: a model folder, a run folder (its latest checkpoint)
//! or a hub id. Above `runs` and `hub` on the ladder (it reads run folders and downloads), and
//! outside `model`, which `runs` and `train` build on.

use std::path::{Path, PathBuf};

use crate::progress::{CancelToken, ProgressSink};
use crate::runs::RunDir;
use crate::{hub, paths, Error, Result};

/// Returns a local model folder for `source`, downloading from the hub if needed.
pub fn resolve(source: &str, sink: &mut impl ProgressSink) -> Result<PathBuf> {
    resolve_cancellable(source, &CancelToken::new(), sink)
}

/// [`resolve`] whose download stops when `cancel` is set (see [`hub::download_cancellable`]).
pub fn resolve_cancellable(
    source: &str,
    cancel: &CancelToken,
    sink: &mut impl ProgressSink,
) -> Result<PathBuf> {
    let path = Path::new(source);
    if path.exists() {
        if RunDir::is_run(path) && !path.join("config.json").is_file() {
            // The best checkpoint (lowest validation loss), else the newest.
            return RunDir::new(path)
                .model_checkpoint()
                .map(|(_, p)| p)
                .ok_or_else(|| {
                    Error::model(
                        path,
                        "this run has no checkpoint yet; train it for a few steps first",
                    )
                });
        }
        return Ok(path.to_path_buf());
    }
    if hub::is_hub_id(source) {
        return hub::download_cancellable(source, &paths::hub_cache(), cancel, sink);
    }
    Err(Error::file(
        path,
        "does not exist; give a model folder, a run folder or a hub id such as gpt2",
    ))
}
