//! The run folder (DESIGN.md §4): `run.json`, `metrics.jsonl`, `samples.jsonl`, `dataset/` and
//! `checkpoints/step-N/`. A checkpoint is written under a temporary name and renamed when complete,
//! so the latest complete checkpoint survives a crash or `kill -9` at any moment.

use std::collections::HashMap;
use std::fs::{File, TryLockError};
use std::path::{Path, PathBuf};

use candle_core::Tensor;
use serde::{Deserialize, Serialize};
use tokenizers::Tokenizer;

use crate::data::tokenizer;
use crate::model::lora::{self, LoraSettings};
use crate::model::{load, ModelConfig};
use crate::settings::{ModelSpec, TrainConfig};
use crate::{fsutil, names};
use crate::{Error, Result};

/// Where a run stands. `run.json` holds one of the first four; `Interrupted` is never written but
/// decided by [`summarize`]: the file says `running` and yet no process holds the run's lock.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    Running,
    Completed,
    Stopped,
    Failed,
    Interrupted,
}

impl RunStatus {
    /// The word `run.json` and the page use.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Completed => "completed",
            RunStatus::Stopped => "stopped",
            RunStatus::Failed => "failed",
            RunStatus::Interrupted => "interrupted",
        }
    }
}

impl std::fmt::Display for RunStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What `run.json` holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunInfo {
    /// The fully resolved configuration (so resume, generate and eval need no flags).
    pub config: TrainConfig,
    /// `running`, `completed`, `stopped` or `failed` (never `interrupted`).
    pub status: RunStatus,
    pub device: String,
    pub step: u64,
    pub total_steps: u64,
    pub best_val_loss: Option<f32>,
    /// The step whose checkpoint has `best_val_loss`: what chat, eval and export use by default.
    #[serde(default)]
    pub best_step: Option<u64>,
    pub created_unix: u64,
    pub updated_unix: u64,
    /// The last error, for a failed run.
    #[serde(default)]
    pub error: Option<String>,
}

/// Proof that this process trains a run; dropping it releases the lock.
#[derive(Debug)]
pub struct TrainingLock {
    _file: Option<File>,
}

/// Training state saved in every checkpoint's `state.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CheckpointState {
    pub step: u64,
    pub total_steps: u64,
    pub optimizer_t: u64,
    pub best_val_loss: Option<f32>,
    pub tokens_seen: u64,
    /// The step whose checkpoint has the best validation loss so far.
    #[serde(default)]
    pub best_step: Option<u64>,
    /// Validation passes since the best one (for early stopping across a resume).
    #[serde(default)]
    pub evals_since_best: u64,
}

pub fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A run folder.
#[derive(Debug, Clone)]
pub struct RunDir(pub PathBuf);

impl RunDir {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        RunDir(path.into())
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
    pub fn run_json(&self) -> PathBuf {
        self.0.join("run.json")
    }
    pub fn metrics(&self) -> PathBuf {
        self.0.join("metrics.jsonl")
    }
    pub fn samples(&self) -> PathBuf {
        self.0.join("samples.jsonl")
    }
    /// The training doctor's findings, one JSON object a line.
    pub fn findings_file(&self) -> PathBuf {
        self.0.join("findings.jsonl")
    }

    /// The findings recorded for this run, oldest first (lines a crash tore are skipped).
    pub fn findings(&self) -> Vec<crate::train::doctor::Finding> {
        std::fs::read_to_string(self.findings_file())
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    pub fn dataset(&self) -> PathBuf {
        self.0.join("dataset")
    }
    pub fn checkpoints(&self) -> PathBuf {
        self.0.join("checkpoints")
    }
    /// Locked by the training process for the whole run; see [`RunDir::lock_for_training`].
    pub fn lock_file(&self) -> PathBuf {
        self.0.join("training.lock")
    }

    /// Takes the run's exclusive OS lock, held until the returned guard drops. The OS releases it
    /// when the process ends in any way (even `kill -9`), so a held lock proves a live trainer and
    /// `running` in run.json without one means the run was interrupted. The file stays behind:
    /// deleting it would let two processes lock two different files of the same name.
    pub fn lock_for_training(&self) -> Result<TrainingLock> {
        std::fs::create_dir_all(&self.0).map_err(|e| Error::io(&self.0, e))?;
        let path = self.lock_file();
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        match file.try_lock() {
            Ok(()) => Ok(TrainingLock { _file: Some(file) }),
            Err(TryLockError::WouldBlock) => Err(Error::file(
                &self.0,
                "is being trained by another Tunesmith window or command; wait for it to finish or stop it first",
            )),
            // A file system without locks (some network drives): train anyway, unguarded.
            Err(TryLockError::Error(e)) if e.kind() == std::io::ErrorKind::Unsupported => {
                Ok(TrainingLock { _file: None })
            }
            Err(TryLockError::Error(e)) => Err(Error::io(&path, e)),
        }
    }

    /// Whether a live process holds the training lock (see [`RunDir::lock_for_training`]).
    pub fn is_training(&self) -> bool {
        let Ok(file) = File::open(self.lock_file()) else {
            return false; // never locked by this version, or not a run
        };
        match file.try_lock() {
            Ok(()) => false, // the lock is released again when `file` drops
            Err(TryLockError::WouldBlock) => true,
            // Locks unsupported or unreadable: nothing proves the trainer gone, trust run.json.
            Err(TryLockError::Error(_)) => true,
        }
    }

    /// Whether `path` looks like a run folder.
    pub fn is_run(path: &Path) -> bool {
        path.join("run.json").is_file() || path.join("checkpoints").is_dir()
    }

    pub fn read_info(&self) -> Result<Option<RunInfo>> {
        let p = self.run_json();
        if !p.is_file() {
            return Ok(None);
        }
        let text = std::fs::read_to_string(&p).map_err(|e| Error::io(&p, e))?;
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| Error::file(&p, format!("is not a valid run description ({e})")))
    }

    pub fn write_info(&self, info: &RunInfo) -> Result<()> {
        fsutil::write_json(&self.run_json(), info)
    }

    /// Complete checkpoints, oldest first, as (step, folder).
    pub fn list_checkpoints(&self) -> Vec<(u64, PathBuf)> {
        let mut out: Vec<(u64, PathBuf)> = std::fs::read_dir(self.checkpoints())
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                let step = name.strip_prefix("step-")?.parse().ok()?;
                let path = e.path();
                path.join("state.json").is_file().then_some((step, path))
            })
            .collect();
        out.sort();
        out
    }

    pub fn latest_checkpoint(&self) -> Option<(u64, PathBuf)> {
        self.list_checkpoints().pop()
    }

    /// Goes back to checkpoint `step` (0: before the first step), in two stages so that a resume
    /// refused after it (a setting that does not fit the checkpoint, too little memory) loses
    /// nothing: the later checkpoints are first set aside (`.step-N.rewound`, put back by
    /// [`Rewind::drop`] and by [`RunDir::tidy_checkpoints`] after a crash), and removed, with the
    /// later lines of metrics.jsonl, samples.jsonl and findings.jsonl, only by [`Rewind::commit`].
    /// Refused, touching nothing, when `step` names no checkpoint.
    pub fn rewind_to(&self, step: u64) -> Result<Rewind> {
        let all = self.list_checkpoints();
        if step > 0 && !all.iter().any(|(s, _)| *s == step) {
            let have: Vec<String> = all.iter().map(|(s, _)| s.to_string()).collect();
            return Err(Error::file(
                self.checkpoints(),
                format!(
                    "has no checkpoint of step {step} to go back to (it has {}); choose one of those, or 0 for the start",
                    if have.is_empty() { "none".to_string() } else { have.join(", ") }
                ),
            ));
        }
        let mut rewind = Rewind {
            run: self.clone(),
            step,
            aside: Vec::new(),
            committed: false,
        };
        for (s, dir) in all.iter().filter(|(s, _)| *s > step) {
            let aside = self.checkpoints().join(format!(".step-{s}.rewound"));
            std::fs::rename(dir, &aside).map_err(|e| Error::io(dir, e))?;
            rewind.aside.push((dir.clone(), aside));
        }
        Ok(rewind)
    }

    /// The checkpoint with the best validation loss, when run.json names one that is still there.
    pub fn best_checkpoint(&self) -> Option<(u64, PathBuf)> {
        let step = self.read_info().ok().flatten()?.best_step?;
        let dir = self.checkpoints().join(format!("step-{step}"));
        dir.join("state.json").is_file().then_some((step, dir))
    }

    /// The checkpoint to use the run's model from: the best one, else the newest.
    pub fn model_checkpoint(&self) -> Option<(u64, PathBuf)> {
        self.best_checkpoint().or_else(|| self.latest_checkpoint())
    }

    /// Writes a complete, HF-loadable checkpoint and keeps only the newest `keep` of them and
    /// the one of step `best`.
    pub fn save_checkpoint(
        &self,
        state: &CheckpointState,
        weights: &HashMap<String, Tensor>,
        optimizer: &HashMap<String, Tensor>,
        tok: &Tokenizer,
        config: &ModelConfig,
        side_files: &[(String, Vec<u8>)],
        lora: Option<(&LoraSettings, &str)>,
        keep: usize,
        best: Option<u64>,
    ) -> Result<PathBuf> {
        let root = self.checkpoints();
        std::fs::create_dir_all(&root).map_err(|e| Error::io(&root, e))?;
        let final_dir = root.join(format!("step-{}", state.step));
        let tmp = root.join(format!(".step-{}.tmp", state.step));
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
        }
        std::fs::create_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
        match lora {
            // Only the adapters: the frozen base is never copied.
            Some((settings, base)) => lora::save_adapter(&tmp, weights, config, settings, base)?,
            None => load::save_weights(weights, config, &tmp.join("model.safetensors"))?,
        }
        fsutil::save_safetensors(optimizer, &tmp.join("optimizer.safetensors"))?;
        fsutil::write_json(&tmp.join("config.json"), &config.to_json())?;
        tokenizer::save(tok, &tmp)?;
        for (name, bytes) in side_files {
            fsutil::write_atomic(&tmp.join(name), bytes)?;
        }
        // state.json last: a folder without it is never taken for a checkpoint.
        fsutil::write_json(&tmp.join("state.json"), state)?;
        if final_dir.exists() {
            let old = root.join(format!(".step-{}.old", state.step));
            let _ = std::fs::remove_dir_all(&old);
            std::fs::rename(&final_dir, &old).map_err(|e| Error::io(&final_dir, e))?;
            std::fs::rename(&tmp, &final_dir).map_err(|e| Error::io(&final_dir, e))?;
            let _ = std::fs::remove_dir_all(&old);
        } else {
            std::fs::rename(&tmp, &final_dir).map_err(|e| Error::io(&final_dir, e))?;
        }
        let all = self.list_checkpoints();
        if keep > 0 && all.len() > keep {
            for (step, old) in all[..all.len() - keep]
                .iter()
                .filter(|(s, _)| Some(*s) != best)
            {
                // Renamed away first: a kill in the middle of removing the files must not leave
                // a `step-N` folder that still has its state.json but lost its weights.
                let doomed = root.join(format!(".step-{step}.pruned"));
                if std::fs::rename(old, &doomed).is_ok() {
                    let _ = std::fs::remove_dir_all(&doomed);
                }
            }
        }
        remove_leftovers(&root, Some(state.step));
        Ok(final_dir)
    }

    pub fn read_state(checkpoint: &Path) -> Result<CheckpointState> {
        let p = checkpoint.join("state.json");
        let text = std::fs::read_to_string(&p).map_err(|e| Error::io(&p, e))?;
        serde_json::from_str(&text).map_err(|e| {
            Error::file(
                &p,
                format!("is damaged ({e}); resume from another checkpoint"),
            )
        })
    }
}

/// A rewind in progress (see [`RunDir::rewind_to`]): dropped without [`Rewind::commit`], it puts
/// the checkpoints it set aside back.
pub struct Rewind {
    run: RunDir,
    step: u64,
    aside: Vec<(PathBuf, PathBuf)>,
    committed: bool,
}

impl Rewind {
    /// The resume has started: the later checkpoints and the log lines after `step` go.
    pub fn commit(mut self) -> Result<()> {
        self.committed = true;
        for (_, aside) in &self.aside {
            let _ = std::fs::remove_dir_all(aside);
        }
        let step = self.step;
        for file in [
            self.run.metrics(),
            self.run.samples(),
            self.run.findings_file(),
        ] {
            let Ok(text) = std::fs::read_to_string(&file) else {
                continue;
            };
            let kept: String = text
                .lines()
                .filter(|l| {
                    serde_json::from_str::<serde_json::Value>(l)
                        .ok()
                        .and_then(|v| v["step"].as_u64())
                        .is_some_and(|s| s <= step)
                })
                .map(|l| format!("{l}\n"))
                .collect();
            fsutil::write_atomic(&file, kept.as_bytes())?;
        }
        if let Ok(Some(mut info)) = self.run.read_info() {
            info.step = step;
            if info.best_step.is_some_and(|b| b > step) {
                info.best_step = None;
                info.best_val_loss = None;
            }
            self.run.write_info(&info)?;
        }
        Ok(())
    }
}

impl Drop for Rewind {
    fn drop(&mut self) {
        if !self.committed {
            for (dir, aside) in &self.aside {
                let _ = std::fs::rename(aside, dir);
            }
        }
    }
}

/// Lists the runs under `root` with their info (folders without a readable run.json are skipped).
pub fn list_runs(root: &Path) -> Vec<(PathBuf, RunInfo)> {
    let mut out: Vec<(PathBuf, RunInfo)> = std::fs::read_dir(root)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let run = RunDir::new(e.path());
            run.read_info().ok().flatten().map(|i| (e.path(), i))
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// A run as the Runs page lists it.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunSummary {
    pub name: String,
    pub path: String,
    pub status: RunStatus,
    /// Where the model came from: a hub id, a folder, or `scratch:<size>`.
    pub model: String,
    pub step: u64,
    pub total_steps: u64,
    pub best_val_loss: Option<f32>,
    pub updated_unix: u64,
    /// Has a checkpoint and was stopped, failed or interrupted: training can continue.
    pub resumable: bool,
    pub checkpoints: Vec<u64>,
    /// The checkpoint with the best validation loss (kept besides the newest).
    pub best_step: Option<u64>,
    pub error: Option<String>,
    /// Trains LoRA adapters (its checkpoints are adapters over the base model).
    pub lora: bool,
}

/// Summarises a run folder. This is the one place a run's status is decided: `running` in
/// run.json is believed only while a process holds the run's training lock.
pub fn summarize(path: &Path, info: &RunInfo) -> RunSummary {
    let run = RunDir::new(path);
    let checkpoints: Vec<u64> = run.list_checkpoints().into_iter().map(|c| c.0).collect();
    let status = match info.status {
        RunStatus::Running if !run.is_training() => RunStatus::Interrupted,
        s => s,
    };
    let resumable = !checkpoints.is_empty()
        && matches!(
            status,
            RunStatus::Stopped | RunStatus::Failed | RunStatus::Interrupted
        );
    RunSummary {
        name: path
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
        path: path.display().to_string(),
        status,
        model: match &info.config.model {
            ModelSpec::Source(s) => s.clone(),
            ModelSpec::Scratch(s) => format!("scratch:{s}"),
        },
        step: info.step,
        total_steps: info.total_steps,
        best_val_loss: info.best_val_loss,
        updated_unix: info.updated_unix,
        resumable,
        best_step: info.best_step.filter(|s| checkpoints.contains(s)),
        checkpoints,
        error: info.error.clone(),
        lora: info.config.lora.is_some(),
    }
}

/// Training curves and samples of a run, for reopening its charts.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunMetrics {
    pub steps: Vec<StepPoint>,
    pub evals: Vec<EvalPoint>,
    pub samples: Vec<SamplePoint>,
    /// What the training doctor said, oldest first.
    #[serde(default)]
    pub findings: Vec<crate::train::doctor::Finding>,
}

#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepPoint {
    pub step: u64,
    pub loss: f32,
}

#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EvalPoint {
    pub step: u64,
    pub val_loss: f32,
}

#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SamplePoint {
    pub step: u64,
    pub text: String,
}

/// Reads `metrics.jsonl` and `samples.jsonl`; a torn last line (crash mid-write) is skipped.
pub fn read_metrics(path: &Path) -> RunMetrics {
    let run = RunDir::new(path);
    let lines = |p: PathBuf| -> Vec<serde_json::Value> {
        std::fs::read_to_string(p)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    };
    let mut m = RunMetrics::default();
    for v in lines(run.metrics()) {
        let step = v["step"].as_u64().unwrap_or(0);
        if let Some(loss) = v["loss"].as_f64() {
            m.steps.push(StepPoint {
                step,
                loss: loss as f32,
            });
        } else if let Some(val) = v["valLoss"].as_f64() {
            m.evals.push(EvalPoint {
                step,
                val_loss: val as f32,
            });
        }
    }
    // A resumed run re-logs the steps after its checkpoint: keep the latest value per step.
    m.steps.reverse();
    let mut seen = std::collections::HashSet::new();
    m.steps.retain(|p| seen.insert(p.step));
    m.steps.reverse();
    m.steps.sort_by_key(|p| p.step);
    for v in lines(run.samples()) {
        if let (Some(step), Some(text)) = (v["step"].as_u64(), v["text"].as_str()) {
            m.samples.push(SamplePoint {
                step,
                text: text.to_string(),
            });
        }
    }
    m.findings = run.findings();
    m
}

/// Renames a run folder within its parent; the new name must pass [`names::validate_name`].
pub fn rename(path: &Path, new_name: &str) -> Result<PathBuf> {
    let name = names::validate_name("name", new_name.trim())?;
    made_by_tunesmith(path, "nothing was renamed")?;
    not_training(path, "renamed")?;
    let target = path.with_file_name(name);
    if target.exists() {
        return Err(Error::file(&target, "already exists; pick another name"));
    }
    std::fs::rename(path, &target).map_err(|e| Error::io(path, e))?;
    Ok(target)
}

/// Temporary folders that an interrupted save or prune left behind (`.step-N.tmp`, `.step-N.old`,
/// `.step-N.pruned`), except those of the step being saved (`current`). A re-save of step N cut
/// between its two renames leaves the complete old step N aside as `.step-N.old`: that one is
/// put back rather than removed.
fn remove_leftovers(root: &Path, current: Option<u64>) {
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some((step, kind)) = name
            .strip_prefix(".step-")
            .and_then(|r| r.split_once('.'))
            .and_then(|(n, kind)| Some((n.parse::<u64>().ok()?, kind)))
        else {
            continue;
        };
        if Some(step) == current
            || !matches!(kind, "tmp" | "old" | "pruned" | "rewound")
            || !e.file_type().is_ok_and(|t| t.is_dir())
        {
            continue;
        }
        let back = root.join(format!("step-{step}"));
        if matches!(kind, "old" | "rewound")
            && !back.exists()
            && e.path().join("state.json").is_file()
        {
            let _ = std::fs::rename(e.path(), &back);
            continue;
        }
        let _ = std::fs::remove_dir_all(e.path());
    }
}

impl RunDir {
    /// Cleans up after a save or prune that a crash cut short (see [`remove_leftovers`]); called
    /// before a run resumes, under its training lock.
    pub fn tidy_checkpoints(&self) {
        remove_leftovers(&self.checkpoints(), None);
    }
}

/// Deletes a run folder, only if it is a run Tunesmith made (it has a valid `run.json`).
pub fn delete(path: &Path) -> Result<()> {
    made_by_tunesmith(path, "nothing was deleted")?;
    not_training(path, "deleted")?;
    std::fs::remove_dir_all(path).map_err(|e| Error::io(path, e))
}

/// A folder counts as a run only with a readable `run.json`: a folder that merely has a
/// `checkpoints/` folder (or anything else the user points at) is left alone.
/// Refuses a run that a process is training (this app's job, or `tunesmith train` in a terminal):
/// its files are open and being replaced.
fn not_training(path: &Path, what: &str) -> Result<()> {
    if RunDir::new(path).is_training() {
        return Err(Error::file(
            path,
            format!("is being trained right now; stop the training first, then it can be {what}"),
        ));
    }
    Ok(())
}

fn made_by_tunesmith(path: &Path, consequence: &str) -> Result<RunInfo> {
    let not_run = || {
        Error::file(
            path,
            format!("is not a run made by Tunesmith (it has no valid run.json); {consequence}"),
        )
    };
    if path.is_symlink() {
        return Err(not_run());
    }
    RunDir::new(path)
        .read_info()
        .ok()
        .flatten()
        .ok_or_else(not_run)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_run(dir: &Path) {
        let info = RunInfo {
            config: TrainConfig::default(),
            status: RunStatus::Completed,
            device: "cpu".into(),
            step: 1,
            total_steps: 1,
            best_val_loss: None,
            best_step: None,
            created_unix: 0,
            updated_unix: 0,
            error: None,
        };
        std::fs::create_dir_all(dir).unwrap();
        RunDir::new(dir).write_info(&info).unwrap();
    }

    #[test]
    fn delete_and_rename_touch_only_runs_tunesmith_made() {
        let root = tempfile::tempdir().unwrap();
        // Looks like a run (checkpoints/) but has no run.json: refused.
        let lookalike = root.path().join("lookalike");
        std::fs::create_dir_all(lookalike.join("checkpoints")).unwrap();
        let e = delete(&lookalike).unwrap_err();
        assert!(e.to_string().contains("no valid run.json"), "{e}");
        assert!(lookalike.exists());
        std::fs::write(lookalike.join("run.json"), "not json").unwrap();
        assert!(delete(&lookalike).is_err());
        assert!(rename(&lookalike, "other").is_err());
        assert!(lookalike.exists());

        let run = root.path().join("real");
        fake_run(&run);
        for bad in ["../escaped", "CON", "a/b", ".hidden"] {
            let e = rename(&run, bad).unwrap_err();
            assert_eq!(e.kind(), "config", "{bad}: {e}");
        }
        assert!(!root.path().parent().unwrap().join("escaped").exists());
        let renamed = rename(&run, " kept ").unwrap();
        assert_eq!(renamed, root.path().join("kept"));
        // Not while something trains it (this app or `tunesmith train` in a terminal).
        let lock = RunDir::new(&renamed).lock_for_training().unwrap();
        let e = delete(&renamed).unwrap_err();
        assert!(e.to_string().contains("being trained"), "{e}");
        assert!(rename(&renamed, "other").is_err());
        drop(lock);
        delete(&renamed).unwrap();
        assert!(!renamed.exists());
    }

    #[test]
    fn pruning_and_interrupted_saves_leave_only_complete_checkpoints() {
        let root = tempfile::tempdir().unwrap();
        let run = RunDir::new(root.path());
        let cfg = ModelConfig::from(crate::model::Gpt2Config::preset("tiny", 384, 64).unwrap());
        let tok = tokenizer::load(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/gpt2-tiny"),
        )
        .unwrap();
        let weights = HashMap::from([(
            "wte.weight".to_string(),
            Tensor::zeros((2, 2), candle_core::DType::F32, &candle_core::Device::Cpu).unwrap(),
        )]);
        let state = |step| CheckpointState {
            step,
            total_steps: 10,
            optimizer_t: step,
            best_val_loss: None,
            tokens_seen: 0,
            best_step: Some(3),
            evals_since_best: 0,
        };
        // What a kill during an earlier save or prune leaves: half-written and half-removed folders,
        // and a complete step 9 set aside by a re-save that never put the new one in place.
        for left in [".step-1.tmp", ".step-2.pruned", ".step-3.old"] {
            std::fs::create_dir_all(run.checkpoints().join(left)).unwrap();
        }
        let aside = run.checkpoints().join(".step-9.old");
        std::fs::create_dir_all(&aside).unwrap();
        std::fs::write(aside.join("state.json"), "{}").unwrap();
        // And a checkpoint a rewind had set aside when the process died: put back too.
        let rewound = run.checkpoints().join(".step-12.rewound");
        std::fs::create_dir_all(&rewound).unwrap();
        std::fs::write(rewound.join("state.json"), "{}").unwrap();
        run.tidy_checkpoints();
        assert!(run.checkpoints().join("step-9/state.json").is_file());
        assert!(run.checkpoints().join("step-12/state.json").is_file());
        std::fs::remove_dir_all(run.checkpoints().join("step-9")).unwrap();
        std::fs::remove_dir_all(run.checkpoints().join("step-12")).unwrap();
        for step in 3..=5 {
            let saved = run
                .save_checkpoint(
                    &state(step),
                    &weights,
                    &HashMap::new(),
                    &tok,
                    &cfg,
                    &[],
                    None,
                    2,
                    Some(3),
                )
                .unwrap();
            assert!(saved.join("model.safetensors").is_file());
        }
        let mut names: Vec<String> = std::fs::read_dir(run.checkpoints())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        // The newest two, and the best (step 3) besides them.
        assert_eq!(names, ["step-3", "step-4", "step-5"]);
    }

    fn info(status: RunStatus) -> RunInfo {
        RunInfo {
            config: TrainConfig::default(),
            status,
            device: "cpu".into(),
            step: 50,
            total_steps: 100,
            best_val_loss: None,
            best_step: None,
            created_unix: 1,
            updated_unix: 2,
            error: None,
        }
    }

    /// A run folder whose run.json says `status`, with one complete checkpoint.
    fn run_folder(status: RunStatus) -> (tempfile::TempDir, RunDir) {
        let dir = tempfile::tempdir().unwrap();
        let run = RunDir::new(dir.path().join("notes"));
        run.write_info(&info(status)).unwrap();
        let ckpt = run.checkpoints().join("step-50");
        std::fs::create_dir_all(&ckpt).unwrap();
        std::fs::write(ckpt.join("state.json"), "{}").unwrap();
        (dir, run)
    }

    #[test]
    fn running_without_a_lock_holder_lists_as_interrupted_and_resumable() {
        let (_dir, run) = run_folder(RunStatus::Running);
        let s = summarize(run.path(), &run.read_info().unwrap().unwrap());
        assert_eq!((s.status, s.resumable), (RunStatus::Interrupted, true));
        // A trainer that died (here: dropped its lock) leaves the same verdict.
        drop(run.lock_for_training().unwrap());
        let s = summarize(run.path(), &run.read_info().unwrap().unwrap());
        assert_eq!((s.status, s.resumable), (RunStatus::Interrupted, true));
    }

    #[test]
    fn running_with_its_lock_held_lists_as_running_and_not_resumable() {
        let (_dir, run) = run_folder(RunStatus::Running);
        let holder = File::create(run.lock_file()).unwrap();
        holder.lock().unwrap();
        let s = summarize(run.path(), &run.read_info().unwrap().unwrap());
        assert_eq!((s.status, s.resumable), (RunStatus::Running, false));
        // A second trainer is refused with a sentence naming the folder, and takes nothing.
        let err = run.lock_for_training().unwrap_err().to_string();
        assert!(err.contains("notes") && err.contains("another"), "{err}");
        holder.unlock().unwrap();
        assert!(!run.is_training());
    }

    #[test]
    fn finished_statuses_are_taken_from_run_json() {
        for (status, resumable) in [
            (RunStatus::Completed, false),
            (RunStatus::Stopped, true),
            (RunStatus::Failed, true),
        ] {
            let (_dir, run) = run_folder(status);
            let s = summarize(run.path(), &run.read_info().unwrap().unwrap());
            assert_eq!((s.status, s.resumable), (status, resumable));
        }
    }

    #[test]
    fn run_json_written_before_the_enum_still_loads() {
        // The strings older versions wrote, in an otherwise current file.
        for word in ["running", "completed", "stopped", "failed"] {
            let mut old = serde_json::to_value(info(RunStatus::Completed)).unwrap();
            old["status"] = word.into();
            let dir = tempfile::tempdir().unwrap();
            std::fs::write(dir.path().join("run.json"), old.to_string()).unwrap();
            let got = RunDir::new(dir.path()).read_info().unwrap().unwrap();
            assert_eq!(got.status.as_str(), word);
            assert_eq!(serde_json::to_value(got).unwrap()["status"], word);
        }
    }
}
