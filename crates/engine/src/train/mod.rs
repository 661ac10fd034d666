//! The training loop: [`train`] prepares (`setup`), then `trainer::Trainer::run` goes top to
//! bottom: (cancel check → lr → forward → loss → backward → clip/step → report →
//! eval/sample/checkpoint) × steps, and `Trainer::finish` does the final validation and save.
//!
//! Randomness (batches, dropout) is derived from `(seed, step, micro-batch)`, and a checkpoint
//! holds weights, AdamW moments and the step, so a run resumed from step k reaches the same loss at
//! step N as the uninterrupted run.

pub mod doctor;
pub mod estimate;
pub mod memory;
pub mod optim;
pub mod recompute;
pub mod schedule;
mod setup;
pub mod step;
mod trainer;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor, Var};
use serde::Serialize;
use tokenizers::Tokenizer;

// Re-exported so callers can keep naming the config beside the loop that reads it.
pub use crate::settings::{ModelSpec, TrainConfig};
use setup::Prepared;
use trainer::Trainer;

use crate::data::{dataset, tokenizer};
use crate::generate::{self, GenerateConfig};
use crate::model::{Model, ModelConfig, Weights};
use crate::progress::{CancelToken, Event, NullSink, ProgressSink};
use crate::runs::{now_unix, RunDir, RunInfo, RunStatus};
use crate::{device, fsutil, Error, Result};

/// Whether to continue a run folder's latest checkpoint or start from the base model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Restore {
    /// Continue from the latest checkpoint if there is one, otherwise start fresh.
    Latest,
    /// Start from the base model; refused when the folder already has checkpoints.
    Fresh,
    /// Go back to checkpoint `step` (0: the start) and continue from there: the checkpoints and
    /// metrics after it are discarded (the training doctor's remedy for a run that diverged).
    From(u64),
}

/// What a finished (or stopped) training job reports.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TrainSummary {
    /// `Completed` or `Stopped`.
    pub status: RunStatus,
    pub steps: u64,
    pub total_steps: u64,
    pub final_loss: Option<f32>,
    pub val_loss: Option<f32>,
    /// The lowest validation loss and the checkpoint that has it (kept beside the newest).
    pub best_val_loss: Option<f32>,
    pub best_checkpoint: Option<PathBuf>,
    /// Early stopping ended the run before its last step.
    pub stopped_early: bool,
    pub checkpoint: Option<PathBuf>,
    pub run_dir: PathBuf,
}

/// Trains according to `cfg` into `run_dir`. A run that fails after it started is marked
/// `failed` in its run.json, with the reason; its checkpoints stay resumable.
pub fn train(
    cfg: &TrainConfig,
    run_dir: &Path,
    restore: Restore,
    device: &Device,
    cancel: &CancelToken,
    sink: &mut impl ProgressSink,
) -> Result<TrainSummary> {
    cfg.validate()?; // before the lock creates the folder, so a bad config leaves nothing behind
    let _lock = RunDir::new(run_dir).lock_for_training()?; // held until the last run.json write
    let mut started = false;
    let result = run_training(cfg, run_dir, restore, device, cancel, sink, &mut started);
    let run = RunDir::new(run_dir);
    match (result, started) {
        // Stopped while the data or the model was being prepared: a stop like any other, with
        // no step taken.
        (Err(Error::Cancelled), true) => {
            let info = run.read_info().ok().flatten();
            if let Some(mut info) = info.clone() {
                info.status = RunStatus::Stopped;
                info.updated_unix = now_unix();
                let _ = run.write_info(&info);
            }
            sink.log("stopped before the first step");
            Ok(TrainSummary {
                status: RunStatus::Stopped,
                steps: 0,
                total_steps: info.map_or(0, |i| i.total_steps),
                final_loss: None,
                val_loss: None,
                best_val_loss: None,
                best_checkpoint: None,
                stopped_early: false,
                checkpoint: None,
                run_dir: run_dir.to_path_buf(),
            })
        }
        (Err(e), true) => {
            if let Ok(Some(mut info)) = run.read_info() {
                info.status = RunStatus::Failed;
                info.error = Some(e.to_string());
                info.updated_unix = now_unix();
                let _ = run.write_info(&info);
            }
            Err(e)
        }
        (result, _) => result,
    }
}

fn run_training(
    cfg: &TrainConfig,
    run_dir: &Path,
    restore: Restore,
    device: &Device,
    cancel: &CancelToken,
    sink: &mut impl ProgressSink,
    started: &mut bool,
) -> Result<TrainSummary> {
    cfg.validate()?;
    let run = RunDir::new(run_dir);
    run.tidy_checkpoints();
    // Put back on any failure before training resumes; committed once it has.
    let rewind = match restore {
        Restore::From(step) => Some(run.rewind_to(step)?),
        _ => None,
    };
    let latest = run.latest_checkpoint();
    if let (Some(_), Restore::Fresh) = (&latest, restore) {
        return Err(Error::file(run_dir, "already holds checkpoints of an earlier run; continue it (restore from latest) or choose a new output folder"));
    }
    // Refused before anything is written or loaded when it cannot fit, with the numbers. The
    // estimate is of CPU memory: a GPU's own memory is not checked here.
    if matches!(device, Device::Cpu) {
        if let (Some(model), Some(machine)) = (memory::model_config(cfg), crate::memory::system()) {
            let needed = memory::estimate_of(cfg, &model);
            memory::check_fits(cfg, &model, needed, machine.available_bytes)?;
            if needed.total_bytes > machine.available_bytes {
                sink.log(format!(
                    "this run may need about {:.1} GB, more than the {:.1} GB free now: close other programs, or lower the batch size or context length if it stops",
                    needed.total_bytes as f64 / 1e9,
                    machine.available_bytes as f64 / 1e9
                ));
            }
        }
    }
    if latest.is_none() {
        // A new run is a run from its first moment: preparing the data and the model can take
        // minutes, and a crash or kill in that time must leave a folder the app lists (as
        // interrupted; training it again starts it over), not an anonymous one. Its failures are
        // recorded from here.
        let created = run.read_info().ok().flatten().map(|i| i.created_unix);
        run.write_info(&RunInfo {
            config: cfg.clone(),
            status: RunStatus::Running,
            device: device::describe(device),
            step: 0,
            total_steps: cfg.steps.unwrap_or(0),
            best_val_loss: None,
            best_step: None,
            created_unix: created.unwrap_or_else(now_unix),
            updated_unix: now_unix(),
            error: None,
        })?;
        *started = true;
    }
    let prepared = match latest {
        Some((_, ckpt)) => setup::resume(cfg, &run, &ckpt, device, sink)?,
        None => setup::prepare_fresh(cfg, &run, device, cancel, sink)?,
    };
    let Prepared {
        model_cfg,
        side_files,
        lora_base,
        tok,
        weights,
        data,
        state,
    } = prepared;
    let mut trainer = Trainer::start(
        cfg, &run, &data, model_cfg, side_files, lora_base, tok, weights, state, device, sink,
    )?;
    *started = true; // from here a failure is recorded in run.json
    if let Some(r) = rewind {
        r.commit()?;
    }
    trainer.announce(sink)?;
    let stopped = trainer.run(cancel, sink)?;
    trainer.finish(stopped, sink)
}

/// Turns weights into the model's tensors plus the optimiser's parameters: trainable weights become
/// `Var`s (weight decay on matrices, not on biases, norms or embeddings); frozen ones stay plain
/// tensors and get no gradient. `only_layers` freezes everything outside the transformer blocks;
/// `lora` freezes every weight but the LoRA adapters.
pub fn into_trainable(
    weights: HashMap<String, Tensor>,
    model_cfg: &ModelConfig,
    only_layers: bool,
    lora: bool,
) -> Result<(Weights, Vec<optim::ParamSpec>)> {
    let mut params = Vec::new();
    let mut tensors = HashMap::new();
    for (name, t) in weights {
        let frozen = if lora {
            !crate::model::lora::is_adapter(&name)
        } else {
            only_layers && !model_cfg.is_block_weight(&name)
        };
        if frozen {
            tensors.insert(name, t);
            continue;
        }
        let var = Var::from_tensor(&t)?;
        let decay = model_cfg.decays(&name, t.rank());
        tensors.insert(name.clone(), var.as_tensor().clone());
        params.push((name, var, decay));
    }
    params.sort_by(|a, b| a.0.cmp(&b.0));
    Ok((tensors, params))
}

/// Validation loss on up to `eval_windows` windows of the held-out tokens; `None` without any.
#[allow(clippy::too_many_arguments)]
fn validate(
    model: &Model,
    tok: &Tokenizer,
    data: &dataset::TokenData,
    cfg: &TrainConfig,
    step: u64,
    run: &RunDir,
    cancel: &CancelToken,
    sink: &mut impl ProgressSink,
) -> Result<Option<f32>> {
    let val = &data.val;
    if val.len() < 2 {
        return Ok(None);
    }
    let window = (cfg.block_size + 1).min(val.len());
    // A stop request during validation skips it; the loop then stops and saves as usual.
    let (loss, _) = match crate::eval::loss_on_masked_tokens(
        model,
        val,
        data.val_mask.as_deref(),
        tokenizer::eot_id(tok),
        window,
        cfg.eval_windows.max(1),
        cancel,
        &mut NullSink,
    ) {
        Err(Error::Cancelled) => return Ok(None),
        other => other?,
    };
    let (val_loss, perplexity) = (loss as f32, loss.exp() as f32);
    fsutil::append_line(
        &run.metrics(),
        &serde_json::json!({"step": step, "valLoss": val_loss, "perplexity": perplexity})
            .to_string(),
    )?;
    sink.emit(Event::Eval {
        step,
        val_loss,
        perplexity,
    });
    Ok(Some(val_loss))
}

/// A short sample from an empty prompt, seeded by the step.
fn sample(
    model: &Model,
    tok: &Tokenizer,
    cfg: &TrainConfig,
    step: u64,
    run: &RunDir,
    sink: &mut impl ProgressSink,
) -> Result<()> {
    let gcfg = GenerateConfig {
        max_new_tokens: cfg.sample_tokens.max(1),
        temperature: 0.8,
        top_k: 40,
        seed: cfg.seed ^ step,
        stop_at_eot: true,
        ..Default::default()
    };
    let g = generate::generate_one(model, tok, &gcfg, 0, &CancelToken::new(), &mut NullSink)?;
    fsutil::append_line(
        &run.samples(),
        &serde_json::json!({"step": step, "text": g.text}).to_string(),
    )?;
    sink.emit(Event::Sample { step, text: g.text });
    Ok(())
}
