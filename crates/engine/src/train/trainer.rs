//! One training run in progress: the model, optimiser and counters the loop carries from step to
//! step. [`Trainer::run`] is the loop itself, top to bottom; each stage of a step is a method below
//! it, and [`Trainer::finish`] is the final validation, checkpoint and run.json update.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Instant;

use candle_core::backprop::GradStore;
use candle_core::{Device, Tensor};
use tokenizers::Tokenizer;

use super::doctor::{Doctor, Finding};
use super::optim::{AdamW, AdamWParams};
use super::{into_trainable, sample, schedule, step, validate, TrainSummary};
use crate::data::batches::Sampler;
use crate::data::dataset::TokenData;
use crate::data::tokenizer;
use crate::model::lora::LoraSettings;
use crate::model::{Model, ModelConfig, Weights};
use crate::progress::{CancelToken, Event, ProgressSink};
use crate::runs::{now_unix, CheckpointState, RunDir, RunInfo, RunStatus};
use crate::settings::TrainConfig;
use crate::{device, fsutil, Error, Result};

/// The loop's state. Borrows the run's token data (the sampler reads it in place) and owns the
/// rest; `step`, `best_val` and `tokens_seen` are what a checkpoint stores and a resume restores.
pub(super) struct Trainer<'a> {
    cfg: &'a TrainConfig,
    run: &'a RunDir,
    device: &'a Device,
    data: &'a TokenData,
    sampler: Sampler<'a>,
    /// The model's config with this run's dropout; saved beside each checkpoint.
    model_cfg: ModelConfig,
    /// Tokenizer config, chat template, generation config: copied into each checkpoint.
    side_files: Vec<(String, Vec<u8>)>,
    /// With LoRA: its settings and the base model the adapters belong to.
    lora: Option<(LoraSettings, String)>,
    tok: Tokenizer,
    /// The model's tensors (trainable ones are the optimiser's `Var`s), for checkpoints.
    tensors: Weights,
    model: Model,
    opt: AdamW,
    /// Steps in the whole run.
    total: u64,
    /// Optimiser steps taken, counting those before a resume.
    step: u64,
    best_val: Option<f32>,
    /// The step of `best_val`, whose checkpoint is kept whatever `keep_checkpoints` says.
    best_step: Option<u64>,
    /// Validation passes since `best_val` (early stopping counts these).
    evals_since_best: u64,
    /// Early stopping ended the loop.
    stopped_early: bool,
    tokens_seen: u64,
    last_loss: Option<f32>,
    val_loss: Option<f32>,
    last_checkpoint: Option<PathBuf>,
    /// Seconds per step, smoothed, for the ETA.
    step_secs_avg: Option<f64>,
    /// What run.json holds; rewritten at each checkpoint and at the end.
    info: RunInfo,
    /// Watches the run and says when something goes wrong.
    doctor: Doctor,
}

impl<'a> Trainer<'a> {
    /// Builds the model and optimiser from what setup prepared, restores a checkpoint's optimiser
    /// moments and counters when `state` holds them, and marks the run `running` in run.json.
    pub(super) fn start(
        cfg: &'a TrainConfig,
        run: &'a RunDir,
        data: &'a TokenData,
        model_cfg: ModelConfig,
        side_files: Vec<(String, Vec<u8>)>,
        lora_base: Option<String>,
        tok: Tokenizer,
        weights: HashMap<String, Tensor>,
        state: Option<(CheckpointState, HashMap<String, Tensor>)>,
        device: &'a Device,
        sink: &mut impl ProgressSink,
    ) -> Result<Self> {
        let model_cfg = fit_model_cfg(cfg, model_cfg)?;
        let sampler = Sampler::new(
            &data.train,
            data.train_mask.as_deref(),
            tokenizer::eot_id(&tok),
            cfg.block_size,
        )?;
        let lora = cfg.lora.clone().zip(lora_base);
        let (tensors, params) = into_trainable(
            weights,
            &model_cfg,
            cfg.only_train_transformer_layers,
            lora.is_some(),
        )?;
        let mut opt = AdamW::new(params)?;
        let model = Model::with_lora(
            &tensors,
            &model_cfg,
            lora.as_ref().map(|(s, _)| s.runtime()),
        )?;

        let total = cfg.total_steps(data.train.len());
        let (mut step, mut best_val, mut tokens_seen) = (0u64, None, 0u64);
        let (mut best_step, mut evals_since_best) = (None, 0);
        if let Some((st, moments)) = state {
            opt.load_state(&moments, st.optimizer_t)?;
            (step, best_val, tokens_seen) = (st.step, st.best_val_loss, st.tokens_seen);
            (best_step, evals_since_best) = (st.best_step, st.evals_since_best);
            sink.log(format!("resuming from step {step}"));
        }
        let info = RunInfo {
            config: cfg.clone(),
            status: RunStatus::Running,
            device: device::describe(device),
            step,
            total_steps: total,
            best_val_loss: best_val,
            best_step,
            created_unix: run
                .read_info()
                .ok()
                .flatten()
                .map_or(now_unix(), |i| i.created_unix),
            updated_unix: now_unix(),
            error: None,
        };
        run.write_info(&info)?;
        let doctor = Doctor::new(
            cfg.lr,
            cfg.warmup.min(total),
            total,
            cfg.clip,
            run.list_checkpoints().into_iter().map(|(s, _)| s).collect(),
            step,
            // What was said before a resume is not said again.
            run.findings()
                .into_iter()
                .filter(|f| f.step <= step)
                .map(|f| f.kind)
                .collect(),
        );
        Ok(Trainer {
            cfg,
            run,
            device,
            data,
            sampler,
            model_cfg,
            side_files,
            lora,
            tok,
            tensors,
            model,
            opt,
            total,
            step,
            best_val,
            best_step,
            evals_since_best,
            stopped_early: false,
            tokens_seen,
            last_loss: None,
            val_loss: None,
            last_checkpoint: None,
            step_secs_avg: None,
            info,
            doctor,
        })
    }

    /// Says what is about to be trained, on what, for how long, and what the doctor makes of the
    /// data.
    pub(super) fn announce(&mut self, sink: &mut impl ProgressSink) -> Result<()> {
        let trained: usize = self
            .opt
            .params
            .iter()
            .map(|p| p.var.as_tensor().elem_count())
            .sum();
        let what = match &self.lora {
            Some((s, _)) => format!(
                "{trained} LoRA parameters (rank {}) beside {} frozen ones",
                s.rank,
                self.model_cfg.num_params()
            ),
            None => format!("{trained} of {} parameters", self.model_cfg.num_params()),
        };
        sink.log(format!(
            "training {what} on {} train / {} validation tokens, {} steps on {}",
            self.data.train.len(),
            self.data.val.len(),
            self.total,
            self.info.device
        ));
        if self.step == 0 {
            let found = self.doctor.data(
                self.data.train.len(),
                self.data.val.len(),
                self.cfg.tokens_per_step(),
                self.cfg.block_size,
                self.cfg.val_frac > 0.0 || self.cfg.dataset.is_some(),
            );
            self.tell(found, sink)?;
        }
        Ok(())
    }

    /// The doctor's findings into the run's findings.jsonl and out as events.
    fn tell(&self, findings: Vec<Finding>, sink: &mut impl ProgressSink) -> Result<()> {
        for f in findings {
            fsutil::append_line(
                &self.run.findings_file(),
                &serde_json::to_string(&f).expect("findings serialise"),
            )?;
            sink.emit(Event::Finding {
                kind: f.kind,
                step: f.step,
                message: f.message,
                remedy: f.remedy,
            });
        }
        Ok(())
    }

    /// The loop, one optimiser step per pass, until the last step or a stop request. Returns
    /// whether it was stopped.
    pub(super) fn run(
        &mut self,
        cancel: &CancelToken,
        sink: &mut impl ProgressSink,
    ) -> Result<bool> {
        let cfg = self.cfg;
        while self.step < self.total {
            // 1. cancel: stop at a step boundary, save, say why
            if cancel.is_cancelled() {
                return Ok(true);
            }
            let step_start = Instant::now();
            // 2. learning rate for this step
            let lr = schedule::lr_at(
                self.step,
                self.total,
                cfg.warmup.min(self.total),
                cfg.lr,
                cfg.lr * cfg.min_lr_ratio,
            );
            // 3. forward, loss and backward over the micro-batches; gradients accumulate
            let (grads, loss) = self.forward_backward()?;
            if !loss.is_finite() {
                let found = self.doctor.step(self.step + 1, loss, f64::NAN);
                self.tell(found, sink)?;
                return Err(Error::Data(format!(
                    "the loss became {loss} at step {}; lower the learning rate (lr) and start again",
                    self.step + 1
                )));
            }
            // 4. clip the global gradient norm and take the AdamW step
            let norm = self.clip_and_step(grads, lr)?;
            self.step += 1;
            self.tokens_seen += cfg.tokens_per_step();
            self.last_loss = Some(loss);
            // 5. report, and what the doctor makes of it
            self.report(loss, lr, norm, step_start.elapsed().as_secs_f64(), sink)?;
            let found = self.doctor.step(self.step, loss, norm);
            self.tell(found, sink)?;
            // 6. validation, samples and checkpoints on their schedules
            self.on_schedule(cancel, sink)?;
            // 7. early stopping: validation has not improved for `patience` passes
            if self.stopped_early {
                break;
            }
        }
        Ok(false)
    }

    /// The step's micro-batches through the model and back: summed gradients and the step's loss.
    fn forward_backward(&self) -> Result<(GradStore, f32)> {
        let cfg = self.cfg;
        let batches: Vec<_> = (0..cfg.grad_accum as u64)
            .map(|micro| {
                self.sampler
                    .batch(cfg.batch_size, cfg.seed, self.step, micro)
            })
            .collect();
        let (grads, loss) = step::accumulate(
            &self.model,
            &self.opt.params,
            &batches,
            cfg.seed,
            self.step,
            cfg.recompute_activations,
            self.device,
        )?;
        Ok((grads, loss))
    }

    /// One AdamW step at `lr` with the gradients scaled down to the clip norm; returns the norm
    /// before clipping. The gradients are freed on return, before the next step's forward pass.
    fn clip_and_step(&mut self, grads: GradStore, lr: f64) -> Result<f64> {
        let cfg = self.cfg;
        let norm = self.opt.grad_norm(&grads)?;
        let hp = AdamWParams {
            lr,
            beta1: cfg.beta1,
            beta2: cfg.beta2,
            eps: 1e-8,
            weight_decay: cfg.weight_decay,
        };
        self.opt
            .step(&grads, schedule::clip_factor(norm, cfg.clip), hp)?;
        Ok(norm)
    }

    /// The step just taken (`secs` long) into metrics.jsonl, and a `TrainStep` event on the first
    /// step, every `log_every` steps and the last.
    fn report(
        &mut self,
        loss: f32,
        lr: f64,
        norm: f64,
        secs: f64,
        sink: &mut impl ProgressSink,
    ) -> Result<()> {
        let (cfg, step, total) = (self.cfg, self.step, self.total);
        let avg = self.step_secs_avg.map_or(secs, |a| 0.8 * a + 0.2 * secs);
        self.step_secs_avg = Some(avg);
        fsutil::append_line(&self.run.metrics(), &serde_json::json!({"step": step, "loss": loss, "lr": lr, "gradNorm": norm, "secs": secs}).to_string())?;
        if step % cfg.log_every == 0 || step == total || step == 1 {
            sink.emit(Event::TrainStep {
                step,
                total,
                loss,
                lr,
                tokens_per_sec: cfg.tokens_per_step() as f64 / secs.max(1e-9),
                eta_secs: avg * (total - step) as f64,
                epoch: self.tokens_seen as f64 / self.data.train.len() as f64,
            });
        }
        Ok(())
    }

    /// Validation, a sample and a checkpoint (with run.json updated), each when its schedule says
    /// so. Validation and checkpoints skip the last step, which [`Self::finish`] covers.
    fn on_schedule(&mut self, cancel: &CancelToken, sink: &mut impl ProgressSink) -> Result<()> {
        let (cfg, step) = (self.cfg, self.step);
        let mut new_best = false;
        if cfg.eval_every > 0 && step % cfg.eval_every == 0 && step < self.total {
            let val = validate(
                &self.model,
                &self.tok,
                self.data,
                cfg,
                step,
                self.run,
                cancel,
                sink,
            )?;
            if let Some(v) = val {
                new_best = self.record_val(v, sink);
                let found = self.doctor.validation(step, v);
                self.tell(found, sink)?;
            }
            self.val_loss = val.or(self.val_loss);
        }
        if cfg.sample_every > 0 && step % cfg.sample_every == 0 {
            sample(&self.model, &self.tok, cfg, step, self.run, sink)?;
        }
        // A new best is saved even off the checkpoint schedule: the best model must exist to be
        // kept. So is the step where early stopping ends the run.
        let scheduled = cfg.save_every > 0 && step % cfg.save_every == 0;
        if (scheduled || new_best) && step < self.total && !self.stopped_early {
            self.last_checkpoint = Some(self.save(sink)?);
            self.info.step = step;
            self.info.best_val_loss = self.best_val;
            self.info.best_step = self.best_step;
            self.info.updated_unix = now_unix();
            self.run.write_info(&self.info)?;
        }
        Ok(())
    }

    /// Takes a validation loss into the best-so-far and early-stopping counters; returns whether
    /// it is a new best.
    fn record_val(&mut self, v: f32, sink: &mut impl ProgressSink) -> bool {
        if self.best_val.is_none_or(|b| v < b) {
            self.best_val = Some(v);
            self.best_step = Some(self.step);
            self.evals_since_best = 0;
            return true;
        }
        self.evals_since_best += 1;
        if let Some(patience) = self.cfg.early_stop_patience {
            if self.evals_since_best >= patience && self.step < self.total {
                self.stopped_early = true;
                sink.log(format!(
                    "stopping early at step {} of {}: the validation loss has not improved for {} checks; the best model, kept, is the one of step {}",
                    self.step,
                    self.total,
                    self.evals_since_best,
                    self.best_step.unwrap_or(self.step)
                ));
            }
        }
        false
    }

    /// Final validation (when finished, not stopped), a checkpoint of where we are unless the last
    /// one already is, and run.json's final status.
    pub(super) fn finish(
        mut self,
        stopped: bool,
        sink: &mut impl ProgressSink,
    ) -> Result<TrainSummary> {
        let (step, total) = (self.step, self.total);
        // An early stop has just validated this step.
        if !stopped && !self.stopped_early {
            let val = validate(
                &self.model,
                &self.tok,
                self.data,
                self.cfg,
                step,
                self.run,
                &CancelToken::new(),
                sink,
            )?;
            if let Some(v) = val {
                self.record_val(v, sink);
                let found = self.doctor.validation(step, v);
                self.tell(found, sink)?;
            }
            self.val_loss = val.or(self.val_loss);
        }
        if self
            .last_checkpoint
            .as_ref()
            .is_none_or(|p| !p.ends_with(format!("step-{step}")))
        {
            self.last_checkpoint = Some(self.save(sink)?);
        }
        let status = if stopped {
            RunStatus::Stopped
        } else {
            RunStatus::Completed
        };
        if stopped {
            sink.log(format!("stopped at step {step} of {total}; the checkpoint was saved and the run can be resumed"));
        }
        self.info.status = status;
        self.info.step = step;
        self.info.best_val_loss = self.best_val;
        self.info.best_step = self.best_step;
        self.info.updated_unix = now_unix();
        self.run.write_info(&self.info)?;
        let best_checkpoint = self
            .best_step
            .map(|s| self.run.checkpoints().join(format!("step-{s}")))
            .filter(|p| p.is_dir());
        Ok(TrainSummary {
            status,
            steps: step,
            total_steps: total,
            final_loss: self.last_loss,
            val_loss: self.val_loss,
            best_val_loss: self.best_val,
            best_checkpoint,
            stopped_early: self.stopped_early,
            checkpoint: self.last_checkpoint,
            run_dir: self.run.path().to_path_buf(),
        })
    }

    /// Checkpoint `step-N` of the current step: weights, AdamW moments, counters, tokenizer and
    /// model config (with the tokenizer's end-of-text id), announced with a `Checkpoint` event.
    fn save(&mut self, sink: &mut impl ProgressSink) -> Result<PathBuf> {
        self.doctor.checkpoint(self.step);
        let state = CheckpointState {
            step: self.step,
            total_steps: self.total,
            optimizer_t: self.opt.t,
            best_val_loss: self.best_val,
            tokens_seen: self.tokens_seen,
            best_step: self.best_step,
            evals_since_best: self.evals_since_best,
        };
        let mut cfg_out = self.model_cfg.clone();
        cfg_out.set_end_token(tokenizer::eot_id(&self.tok));
        let path = self.run.save_checkpoint(
            &state,
            &self.tensors,
            &self.opt.state_tensors()?,
            &self.tok,
            &cfg_out,
            &self.side_files,
            self.lora.as_ref().map(|(s, base)| (s, base.as_str())),
            self.cfg.keep_checkpoints,
            self.best_step,
        )?;
        sink.emit(Event::Checkpoint {
            step: self.step,
            path: path.display().to_string(),
        });
        Ok(path)
    }
}

/// The model config this run trains with: the run's dropout (when set) in place of the model's,
/// and refused when the run's blocks are longer than the model's context.
fn fit_model_cfg(cfg: &TrainConfig, mut model_cfg: ModelConfig) -> Result<ModelConfig> {
    if let Some(p) = cfg.dropout {
        model_cfg.set_dropout(p);
    }
    if cfg.block_size > model_cfg.context() {
        return Err(Error::config(
            "block_size",
            format!(
                "is {}, longer than this model's context of {} tokens",
                cfg.block_size,
                model_cfg.context()
            ),
        ));
    }
    Ok(model_cfg)
}
