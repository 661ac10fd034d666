//! Evaluating a run as the app shows it: the model it started from and any of its checkpoints,
//! answering the same held-out examples (a pairs file, or the run's own validation pairs), each
//! scored and checked for text copied from the run's training set. The app lays the answers
//! side by side and charts the scores across checkpoints.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::copied::{CopyIndex, DEFAULT_MIN_TOKENS};
use super::pairs::{evaluate_pairs, read_pairs, run_split_examples, EvalExample, PairEvalConfig};
use super::score::ScoreReport;
use crate::device::Device;
use crate::model::load;
use crate::progress::{CancelToken, Event, ProgressSink};
use crate::runs::RunDir;
use crate::settings::ModelSpec;
use crate::{source, Error, Result};

/// Which model of a run to evaluate.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum Target {
    /// The pretrained model the run started from (none for a model trained from scratch).
    Base,
    /// The run's checkpoint of this step.
    Checkpoint { step: u64 },
}

/// One model's answers and scores.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TargetReport {
    pub target: Target,
    /// "base model (gpt2)", "step 400 (best)".
    pub label: String,
    pub report: ScoreReport,
}

/// Evaluates `targets` of the run in `run_dir` on `pairs` (or its validation pairs).
pub fn evaluate_run(
    run_dir: &Path,
    pairs: Option<&Path>,
    targets: &[Target],
    cfg: &PairEvalConfig,
    device: &Device,
    cancel: &CancelToken,
    sink: &mut impl ProgressSink,
) -> Result<Vec<TargetReport>> {
    let run = RunDir::new(run_dir);
    let info = run
        .read_info()?
        .ok_or_else(|| Error::file(run_dir, "is not a run folder (it has no run.json)"))?;
    if targets.is_empty() {
        return Err(Error::config(
            "targets",
            "is empty; choose the base model or a checkpoint to evaluate",
        ));
    }
    let (file_examples, notes) = match pairs {
        Some(p) => {
            let (e, n) = read_pairs(p)?;
            (Some(e), n)
        }
        None => (None, Vec::new()),
    };
    let dataset = run.dataset();
    let copies = if dataset.join("train.tokens").is_file() {
        sink.emit(Event::Progress {
            stage: "Indexing the training text".into(),
            done: 0,
            total: 0,
            unit: String::new(),
        });
        Some(CopyIndex::for_dataset(&dataset, DEFAULT_MIN_TOKENS)?)
    } else {
        None
    };
    let best = info.best_step;
    let mut out = Vec::new();
    for (i, &target) in targets.iter().enumerate() {
        if cancel.is_cancelled() {
            return Err(Error::Cancelled);
        }
        let (dir, label): (PathBuf, String) = match target {
            Target::Base => match &info.config.model {
                ModelSpec::Source(s) => (source::resolve(s, sink)?, format!("base model ({s})")),
                ModelSpec::Scratch(_) => {
                    return Err(Error::config(
                        "targets",
                        "names the base model, but this run trained a new model from scratch: there is none to compare with",
                    ))
                }
            },
            Target::Checkpoint { step } => {
                let dir = run.checkpoints().join(format!("step-{step}"));
                if !dir.join("state.json").is_file() {
                    return Err(Error::file(
                        &dir,
                        "is not a checkpoint of this run (it was removed, or never saved)",
                    ));
                }
                let mark = if Some(step) == best { " (best)" } else { "" };
                (dir, format!("step {step}{mark}"))
            }
        };
        sink.emit(Event::Progress {
            stage: format!("Evaluating {label}"),
            done: i as u64,
            total: targets.len() as u64,
            unit: "models".into(),
        });
        let loaded = load::load_dir(&dir, device)?;
        let examples: Vec<EvalExample> = match &file_examples {
            Some(e) => e.clone(),
            None => run_split_examples(&dataset, &loaded.tokenizer)?,
        };
        let mut report = evaluate_pairs(&loaded, &examples, cfg, copies.as_ref(), cancel, sink)?;
        report.notes.splice(0..0, notes.iter().cloned());
        out.push(TargetReport {
            target,
            label,
            report,
        });
    }
    Ok(out)
}
