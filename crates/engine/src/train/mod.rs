//! The training loop, top to bottom in [`train`]: prepare → (lr → forward → loss → backward →
//! clip/step → report → eval/sample/checkpoint → cancel check) × steps → final save.
//!
//! Randomness (batches, dropout) is derived from `(seed, step, micro-batch)`, and a checkpoint
//! holds weights, AdamW moments and the step, so a run resumed from step k reaches the same loss at
//! step N as the uninterrupted run.

pub mod optim;
pub mod schedule;
mod setup;
pub mod step;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{Device, Tensor, Var};
use serde::Serialize;

// Re-exported so callers can keep naming the config beside the loop that reads it.
pub use crate::settings::{ModelSpec, TrainConfig};
use optim::{AdamW, AdamWParams};

use setup::Prepared;
use tokenizers::Tokenizer;

use crate::data::batches::Sampler;
use crate::data::{dataset, tokenizer};
use crate::generate::{self, GenerateConfig};
use crate::model::{Gpt2, Weights};
use crate::progress::{CancelToken, Event, NullSink, ProgressSink};
use crate::runs::{now_unix, CheckpointState, RunDir, RunInfo, RunStatus};
use crate::{device, fsutil, Error, Result};

/// Whether to continue a run folder's latest checkpoint or start from the base model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Restore {
    /// Continue from the latest checkpoint if there is one, otherwise start fresh.
    Latest,
    /// Start from the base model; refused when the folder already has checkpoints.
    Fresh,
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
    if let (Err(e), true) = (&result, started) {
        let run = RunDir::new(run_dir);
        if let Ok(Some(mut info)) = run.read_info() {
            info.status = RunStatus::Failed;
            info.error = Some(e.to_string());
            info.updated_unix = now_unix();
            let _ = run.write_info(&info);
        }
    }
    result
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
    let latest = run.latest_checkpoint();
    let prepared = match (&latest, restore) {
        (Some(_), Restore::Fresh) => {
            return Err(Error::file(run_dir, "already holds checkpoints of an earlier run; continue it (restore from latest) or choose a new output folder"));
        }
        (Some((_, ckpt)), Restore::Latest) => setup::resume(&run, ckpt, device, sink)?,
        (None, _) => setup::prepare_fresh(cfg, &run, device, sink)?,
    };
    let Prepared {
        mut model_cfg,
        tok,
        weights,
        data,
        state,
    } = prepared;
    if let Some(p) = cfg.dropout {
        (
            model_cfg.embd_pdrop,
            model_cfg.attn_pdrop,
            model_cfg.resid_pdrop,
        ) = (p, p, p);
    }
    if cfg.block_size > model_cfg.n_positions {
        return Err(Error::config(
            "block_size",
            format!(
                "is {}, longer than this model's context of {} tokens",
                cfg.block_size, model_cfg.n_positions
            ),
        ));
    }
    let sampler = Sampler::new(
        &data.train,
        data.train_mask.as_deref(),
        tokenizer::eot_id(&tok),
        cfg.block_size,
    )?;

    let (tensors, params) = into_trainable(weights, cfg.only_train_transformer_layers)?;
    let mut opt = AdamW::new(params)?;
    let model = Gpt2::new(&tensors, &model_cfg)?;

    let total = cfg.total_steps(data.train.len());
    let (mut step, mut best_val, mut tokens_seen) = (0u64, None, 0u64);
    if let Some((st, moments)) = state {
        opt.load_state(&moments, st.optimizer_t)?;
        (step, best_val, tokens_seen) = (st.step, st.best_val_loss, st.tokens_seen);
        sink.log(format!("resuming from step {step}"));
    }
    let mut info = RunInfo {
        config: cfg.clone(),
        status: RunStatus::Running,
        device: device::describe(device),
        step,
        total_steps: total,
        best_val_loss: best_val,
        created_unix: run
            .read_info()
            .ok()
            .flatten()
            .map_or(now_unix(), |i| i.created_unix),
        updated_unix: now_unix(),
        error: None,
    };
    run.write_info(&info)?;
    *started = true;
    sink.log(format!(
        "training {} parameters on {} train / {} validation tokens, {} steps on {}",
        model_cfg.num_params(),
        data.train.len(),
        data.val.len(),
        total,
        info.device
    ));

    let save = |step: u64,
                opt: &AdamW,
                best_val: Option<f32>,
                tokens_seen: u64,
                sink: &mut dyn FnMut(Event)|
     -> Result<PathBuf> {
        let state = CheckpointState {
            step,
            total_steps: total,
            optimizer_t: opt.t,
            best_val_loss: best_val,
            tokens_seen,
        };
        let mut cfg_out = model_cfg.clone();
        cfg_out.eos_token_id = tokenizer::eot_id(&tok).or(cfg_out.eos_token_id);
        cfg_out.bos_token_id = cfg_out.eos_token_id;
        let path = run.save_checkpoint(
            &state,
            &tensors,
            &opt.state_tensors(),
            &tok,
            &cfg_out,
            cfg.keep_checkpoints,
        )?;
        sink(Event::Checkpoint {
            step,
            path: path.display().to_string(),
        });
        Ok(path)
    };

    let hp = |lr: f64| AdamWParams {
        lr,
        beta1: cfg.beta1,
        beta2: cfg.beta2,
        eps: 1e-8,
        weight_decay: cfg.weight_decay,
    };
    let mut last_loss = None;
    let mut val_loss = None;
    let mut last_checkpoint = None;
    let mut step_secs_avg: Option<f64> = None;
    let mut stopped = false;
    while step < total {
        // 1. cancel: stop at a step boundary, save, say why
        if cancel.is_cancelled() {
            stopped = true;
            break;
        }
        let step_start = Instant::now();
        // 2. learning rate for this step
        let lr = schedule::lr_at(
            step,
            total,
            cfg.warmup.min(total),
            cfg.lr,
            cfg.lr * cfg.min_lr_ratio,
        );
        // 3. forward, loss and backward over the micro-batches; gradients accumulate
        let batches: Vec<_> = (0..cfg.grad_accum as u64)
            .map(|micro| sampler.batch(cfg.batch_size, cfg.seed, step, micro))
            .collect();
        let (grads, loss) =
            step::accumulate(&model, &opt.params, &batches, cfg.seed, step, device)?;
        if !loss.is_finite() {
            return Err(Error::Data(format!(
                "the loss became {loss} at step {}; lower the learning rate (lr) and start again",
                step + 1
            )));
        }
        // 4. clip the global gradient norm and take the AdamW step
        let norm = opt.grad_norm(&grads)?;
        opt.step(&grads, schedule::clip_factor(norm, cfg.clip), hp(lr))?;
        drop(grads);
        step += 1;
        tokens_seen += cfg.tokens_per_step();
        last_loss = Some(loss);

        // 5. report
        let secs = step_start.elapsed().as_secs_f64();
        let avg = step_secs_avg.map_or(secs, |a| 0.8 * a + 0.2 * secs);
        step_secs_avg = Some(avg);
        fsutil::append_line(&run.metrics(), &serde_json::json!({"step": step, "loss": loss, "lr": lr, "gradNorm": norm, "secs": secs}).to_string())?;
        if step % cfg.log_every == 0 || step == total || step == 1 {
            sink.emit(Event::TrainStep {
                step,
                total,
                loss,
                lr,
                tokens_per_sec: cfg.tokens_per_step() as f64 / secs.max(1e-9),
                eta_secs: avg * (total - step) as f64,
                epoch: tokens_seen as f64 / data.train.len() as f64,
            });
        }
        // 6. validation, samples and checkpoints on their schedules
        if cfg.eval_every > 0 && step % cfg.eval_every == 0 && step < total {
            val_loss = validate(&model, &data, cfg, step, &run, cancel, sink)?.or(val_loss);
            best_val = min_opt(best_val, val_loss);
        }
        if cfg.sample_every > 0 && step % cfg.sample_every == 0 {
            sample(&model, &tok, cfg, step, &run, sink)?;
        }
        if cfg.save_every > 0 && step % cfg.save_every == 0 && step < total {
            last_checkpoint = Some(save(step, &opt, best_val, tokens_seen, &mut |e| {
                sink.emit(e)
            })?);
            info.step = step;
            info.best_val_loss = best_val;
            info.updated_unix = now_unix();
            run.write_info(&info)?;
        }
    }

    // Final validation (when finished) and a checkpoint of where we are.
    if !stopped {
        val_loss =
            validate(&model, &data, cfg, step, &run, &CancelToken::new(), sink)?.or(val_loss);
        best_val = min_opt(best_val, val_loss);
    }
    if last_checkpoint
        .as_ref()
        .is_none_or(|p| !p.ends_with(format!("step-{step}")))
    {
        last_checkpoint = Some(save(step, &opt, best_val, tokens_seen, &mut |e| {
            sink.emit(e)
        })?);
    }
    let status = if stopped {
        RunStatus::Stopped
    } else {
        RunStatus::Completed
    };
    if stopped {
        sink.log(format!("stopped at step {step} of {total}; the checkpoint was saved and the run can be resumed"));
    }
    info.status = status;
    info.step = step;
    info.best_val_loss = best_val;
    info.updated_unix = now_unix();
    run.write_info(&info)?;
    Ok(TrainSummary {
        status,
        steps: step,
        total_steps: total,
        final_loss: last_loss,
        val_loss,
        checkpoint: last_checkpoint,
        run_dir: run_dir.to_path_buf(),
    })
}

/// Turns weights into the model's tensors plus the optimiser's parameters: trainable weights become
/// `Var`s (weight decay on matrices, not on biases, norms or embeddings); frozen ones stay plain
/// tensors and get no gradient. `only_layers` freezes everything outside the transformer blocks.
pub fn into_trainable(
    weights: HashMap<String, Tensor>,
    only_layers: bool,
) -> Result<(Weights, Vec<optim::ParamSpec>)> {
    let mut params = Vec::new();
    let mut tensors = HashMap::new();
    for (name, t) in weights {
        if only_layers && !name.starts_with("h.") {
            tensors.insert(name, t);
            continue;
        }
        let var = Var::from_tensor(&t)?;
        let decay = t.rank() == 2 && name != "wte.weight" && name != "wpe.weight";
        tensors.insert(name.clone(), var.as_tensor().clone());
        params.push((name, var, decay));
    }
    params.sort_by(|a, b| a.0.cmp(&b.0));
    Ok((tensors, params))
}

fn min_opt(a: Option<f32>, b: Option<f32>) -> Option<f32> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Validation loss on up to `eval_windows` windows of the held-out tokens; `None` without any.
fn validate(
    model: &Gpt2,
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
    model: &Gpt2,
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
