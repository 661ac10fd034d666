//! The training loop, top to bottom in [`train`]: prepare → (lr → forward → loss → backward →
//! clip/step → report → eval/sample/checkpoint → cancel check) × steps → final save.
//!
//! Randomness (batches, dropout) is derived from `(seed, step, micro-batch)`, and a checkpoint
//! holds weights, AdamW moments and the step, so a run resumed from step k reaches the same loss at
//! step N as the uninterrupted run.

pub mod config;
pub mod optim;
pub mod schedule;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{Device, Tensor, Var};
use serde::Serialize;
use tokenizers::Tokenizer;

pub use config::{ModelSpec, TrainConfig};
use optim::{AdamW, AdamWParams};

use crate::data::{dataset, prepare, tokenizer};
use crate::generate::{self, GenerateConfig};
use crate::model::gpt2::{init_weights, DropoutRng};
use crate::model::{load, source, Gpt2, Gpt2Config, Weights};
use crate::progress::{CancelToken, Event, NullSink, ProgressSink};
use crate::rng::Rng;
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

/// Everything the loop needs, whether fresh or resumed.
struct Prepared {
    model_cfg: Gpt2Config,
    tok: Tokenizer,
    weights: HashMap<String, Tensor>,
    data: dataset::TokenData,
    state: Option<(CheckpointState, HashMap<String, Tensor>)>,
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
        (Some((_, ckpt)), Restore::Latest) => resume(&run, ckpt, device, sink)?,
        (None, _) => prepare_fresh(cfg, &run, device, sink)?,
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
    if data.train.len() <= cfg.block_size {
        return Err(Error::Data(format!(
            "The training text is only {} tokens, less than one block of {} + 1. Add more text, or lower block_size to {} or less.",
            data.train.len(), cfg.block_size, data.train.len().saturating_sub(1).max(2)
        )));
    }

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
        let mut grads: Option<candle_core::backprop::GradStore> = None;
        let mut loss_sum = 0f32;
        for micro in 0..cfg.grad_accum as u64 {
            let batch = dataset::sample_batch(
                &data.train,
                data.train_mask.as_deref(),
                cfg.batch_size,
                cfg.block_size,
                cfg.seed,
                step,
                micro,
            );
            let ids = Tensor::from_vec(batch.inputs, (batch.batch, batch.block), device)?;
            let mut drop = DropoutRng(Rng::derive(cfg.seed, "dropout", &[step, micro]));
            let hidden = model.hidden(&ids, None, Some(&mut drop))?;
            let loss = model.loss(&hidden, &batch.targets)?;
            loss_sum += loss.to_scalar::<f32>()?;
            let g = loss.backward()?;
            grads = Some(match grads {
                None => g,
                Some(mut acc) => {
                    for p in &opt.params {
                        if let (Some(a), Some(b)) = (acc.get(&p.var), g.get(&p.var)) {
                            let sum = (a + b)?;
                            acc.insert(&p.var, sum);
                        }
                    }
                    acc
                }
            });
        }
        let grads = grads.expect("grad_accum >= 1");
        let loss = loss_sum / cfg.grad_accum as f32;
        if !loss.is_finite() {
            return Err(Error::Data(format!(
                "the loss became {loss} at step {}; lower the learning rate (lr) and start again",
                step + 1
            )));
        }
        // 4. clip the global gradient norm (of the averaged gradient) and take the AdamW step
        let scale = 1.0 / cfg.grad_accum as f64;
        let norm = opt.grad_norm(&grads)? * scale;
        opt.step(
            &grads,
            scale * schedule::clip_factor(norm, cfg.clip),
            hp(lr),
        )?;
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

/// A new run: read documents (bad files are skipped with a warning), get the model and tokenizer,
/// tokenise into the run's dataset folder.
fn prepare_fresh(
    cfg: &TrainConfig,
    run: &RunDir,
    device: &Device,
    sink: &mut impl ProgressSink,
) -> Result<Prepared> {
    let units = read_units(cfg, sink)?;
    let (model_cfg, tok, weights) = match &cfg.model {
        ModelSpec::Source(src) => {
            let dir = source::resolve(src, sink)?;
            let model_cfg = load::read_config(&dir)?;
            let weights = load::read_weights(&dir, &model_cfg, device)?;
            let tok = tokenizer::load(&dir)?;
            (model_cfg, tok, weights)
        }
        ModelSpec::Scratch(preset) => {
            sink.emit(Event::Progress {
                stage: "train tokenizer".into(),
                done: 0,
                total: 1,
                unit: "steps".into(),
            });
            let texts: Vec<String> = units.iter().map(|u| u.full_text()).collect();
            let tok = tokenizer::train_bpe(texts.iter(), cfg.vocab_size)?;
            sink.emit(Event::Progress {
                stage: "train tokenizer".into(),
                done: 1,
                total: 1,
                unit: "steps".into(),
            });
            let mut model_cfg =
                Gpt2Config::preset(preset, tok.get_vocab_size(true), cfg.block_size.max(64))?;
            model_cfg.eos_token_id = tokenizer::eot_id(&tok);
            model_cfg.bos_token_id = model_cfg.eos_token_id;
            let weights = init_weights(&model_cfg, cfg.seed, device)?;
            (model_cfg, tok, weights)
        }
    };
    let (built, _) =
        dataset::build_units(&units, &tok, cfg.val_frac, cfg.seed, &run.dataset(), sink)?;
    let data = built.data;
    Ok(Prepared {
        model_cfg,
        tok,
        weights,
        data,
        state: None,
    })
}

/// What the run learns from: a prepared dataset's documents, or the given files imported, cleaned
/// and deduplicated as `tunesmith prepare` does (a bad file is reported and skipped, unless none
/// is left).
fn read_units(cfg: &TrainConfig, sink: &mut impl ProgressSink) -> Result<Vec<prepare::Unit>> {
    if let Some(dir) = &cfg.dataset {
        return prepare::read_units(dir);
    }
    let opts = prepare::PrepareOptions {
        val_frac: cfg.val_frac,
        seed: cfg.seed,
        ..cfg.prepare.clone()
    };
    let collected = prepare::collect(&cfg.data, &opts, sink)?;
    let mut units = collected.units;
    let mut seen = std::collections::HashSet::new();
    for path in &collected.streamed {
        prepare::stream_blocks(path, &opts, &mut seen, |_, unit| {
            units.push(unit);
            Ok(())
        })?;
    }
    Ok(units)
}

/// Loads the latest checkpoint of a run and its dataset.
fn resume(
    run: &RunDir,
    ckpt: &Path,
    device: &Device,
    sink: &mut impl ProgressSink,
) -> Result<Prepared> {
    sink.log(format!("loading checkpoint {}", ckpt.display()));
    let model_cfg = load::read_config(ckpt)?;
    let weights = load::read_weights(ckpt, &model_cfg, device)?;
    let tok = tokenizer::load(ckpt)?;
    let state = RunDir::read_state(ckpt)?;
    let opt_path = ckpt.join("optimizer.safetensors");
    let moments = candle_core::safetensors::load(&opt_path, device).map_err(|e| {
        Error::file(
            &opt_path,
            format!(
                "is damaged ({e}); delete this checkpoint folder to resume from the one before"
            ),
        )
    })?;
    let data = dataset::load(&run.dataset())?;
    Ok(Prepared {
        model_cfg,
        tok,
        weights,
        data,
        state: Some((state, moments)),
    })
}
