//! The models Chat has loaded, kept between messages: loading weights takes far longer than
//! writing a short reply. Two are kept so Compare (tuned and base model, one after the other)
//! never reloads either. A model is reloaded only when what it was loaded from changed: another
//! source, another checkpoint folder (a newer checkpoint of the run), or a rewritten weights file.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use candle_core::Device;
use tunesmith_engine::model::load::{self, LoadedModel};
use tunesmith_engine::Result;

/// How many loaded models are kept (Compare needs two).
const CAPACITY: usize = 2;

#[derive(Debug, Clone, PartialEq)]
struct Key {
    source: String,
    dir: PathBuf,
    modified: Option<SystemTime>,
}

#[derive(Default)]
pub struct ModelCache {
    /// Most recently used last.
    entries: Mutex<Vec<(Key, Arc<LoadedModel>)>>,
    loads: AtomicUsize,
}

impl ModelCache {
    /// The model in `dir` (resolved from what the user chose, `source`), loaded only if the cache
    /// has no copy of this exact checkpoint.
    pub fn get(&self, source: &str, dir: &Path, device: &Device) -> Result<Arc<LoadedModel>> {
        let key = Key {
            source: source.to_string(),
            dir: dir.to_path_buf(),
            modified: modified(dir),
        };
        {
            let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(i) = entries.iter().position(|(k, _)| *k == key) {
                let hit = entries.remove(i);
                let model = hit.1.clone();
                entries.push(hit);
                return Ok(model);
            }
        }
        // Loaded outside the lock: jobs run one at a time, and a slow load must not block others
        // that only ask how many loads there were.
        let model = Arc::new(load::load_dir(dir, device)?);
        self.loads.fetch_add(1, Ordering::SeqCst);
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        // A changed checkpoint of the same source replaces its old copy instead of crowding out
        // the other model.
        entries.retain(|(k, _)| k.source != key.source);
        if entries.len() >= CAPACITY {
            entries.remove(0);
        }
        entries.push((key, model.clone()));
        Ok(model)
    }

    /// Lets go of every loaded model (a reply being written keeps its own until it ends).
    pub fn clear(&self) {
        self.entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }

    /// How many times a model was read from disk (tests and diagnostics).
    pub fn loads(&self) -> usize {
        self.loads.load(Ordering::SeqCst)
    }
}

/// When the weights were last written (the folder's time when they are missing).
fn modified(dir: &Path) -> Option<SystemTime> {
    let weights = dir.join("model.safetensors");
    let probe = if weights.exists() {
        weights
    } else {
        dir.to_path_buf()
    };
    std::fs::metadata(probe).and_then(|m| m.modified()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("crates/engine/tests/fixtures/gpt2-tiny")
    }

    fn copy_model(to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for e in std::fs::read_dir(fixture()).unwrap().flatten() {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }

    #[test]
    fn loads_once_keeps_two_and_reloads_a_rewritten_checkpoint() {
        let tmp = tempfile::tempdir().unwrap();
        let (a, b, c) = (
            tmp.path().join("a"),
            tmp.path().join("b"),
            tmp.path().join("c"),
        );
        for d in [&a, &b, &c] {
            copy_model(d);
        }
        let cache = ModelCache::default();
        let dev = Device::Cpu;
        let first = cache.get("a", &a, &dev).unwrap();
        let again = cache.get("a", &a, &dev).unwrap();
        assert!(Arc::ptr_eq(&first, &again));
        assert_eq!(cache.loads(), 1);
        // Compare: alternating between two models loads each once.
        for _ in 0..3 {
            cache.get("b", &b, &dev).unwrap();
            cache.get("a", &a, &dev).unwrap();
        }
        assert_eq!(cache.loads(), 2);
        // A third model evicts the least recently used (b).
        cache.get("c", &c, &dev).unwrap();
        cache.get("a", &a, &dev).unwrap();
        assert_eq!(cache.loads(), 3);
        cache.get("b", &b, &dev).unwrap();
        assert_eq!(cache.loads(), 4);
        // Rewritten weights (a new checkpoint saved under the same name) are loaded again.
        let w = a.join("model.safetensors");
        let later = SystemTime::now() + std::time::Duration::from_secs(5);
        std::fs::File::options()
            .write(true)
            .open(&w)
            .unwrap()
            .set_modified(later)
            .unwrap();
        let reloaded = cache.get("a", &a, &dev).unwrap();
        assert!(!Arc::ptr_eq(&first, &reloaded));
        assert_eq!(cache.loads(), 5);
        // Cleared (training starts): nothing is held; the next message loads again.
        cache.clear();
        drop(reloaded);
        cache.get("a", &a, &dev).unwrap();
        assert_eq!(cache.loads(), 6);
    }
}
