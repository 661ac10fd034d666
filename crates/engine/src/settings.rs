//! Training configuration: one plain serde struct with defaults, presets and one `validate()`.
//! The resolved config is saved in `run.json`, so resume needs no flags.
//!
//! A leaf below `runs` and `train` on the ladder: the run folder stores a config and the loop reads
//! one, so neither has to import the other to name it.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::model::lora::LoraSettings;
use crate::{Error, Result};

/// Where the model comes from.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ModelSpec {
    /// A model folder, run folder or hub id.
    Source(String),
    /// A new model of a preset size (`tiny`, `small`, `base`) with a tokenizer trained on the data.
    Scratch(String),
}

/// Every training hyperparameter.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TrainConfig {
    pub model: ModelSpec,
    /// Files or folders to learn from (any format Tunesmith imports).
    pub data: Vec<PathBuf>,
    /// A dataset folder made by `tunesmith prepare`, used instead of `data`.
    pub dataset: Option<PathBuf>,
    /// How `data` is cleaned, deduplicated and scrubbed (its `val_frac` and `seed` are this
    /// config's own).
    pub prepare: crate::data::prepare::PrepareOptions,
    /// Number of optimiser steps; when neither this nor `epochs` is set, 1000.
    pub steps: Option<u64>,
    /// Passes over the training tokens (converted to steps).
    pub epochs: Option<f64>,
    pub batch_size: usize,
    pub block_size: usize,
    pub lr: f64,
    /// The cosine schedule ends at `lr × min_lr_ratio`.
    pub min_lr_ratio: f64,
    pub warmup: u64,
    pub weight_decay: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub grad_accum: usize,
    /// Global gradient-norm clip; 0 = off.
    pub clip: f64,
    /// Overrides the model's dropout (embedding, attention, residual) when set.
    pub dropout: Option<f32>,
    pub val_frac: f64,
    /// Steps between validation passes; 0 = only at the end.
    pub eval_every: u64,
    /// Validation windows per pass (at most).
    pub eval_windows: usize,
    /// Steps between samples; 0 = none.
    pub sample_every: u64,
    pub sample_tokens: usize,
    /// Steps between checkpoints; 0 = only at the end (and when stopped).
    pub save_every: u64,
    /// How many of the newest checkpoints to keep (the one with the best validation loss is kept
    /// besides them).
    pub keep_checkpoints: usize,
    /// End training when the validation loss has not improved for this many validation passes
    /// in a row ("stop when it stops improving"); `None` trains every step.
    pub early_stop_patience: Option<u64>,
    /// Tokenizer size for a from-scratch model.
    pub vocab_size: usize,
    /// Freeze the embeddings (and final norm): train only the transformer blocks.
    pub only_train_transformer_layers: bool,
    /// Train LoRA adapters instead of the model's own weights, which stay frozen.
    pub lora: Option<LoraSettings>,
    /// Keep only each block's input during the forward pass and recompute the rest while going
    /// back ("gradient checkpointing"): the same result in a fraction of the memory, for about a
    /// third more time per step. For long blocks and larger models.
    pub recompute_activations: bool,
    pub seed: u64,
    /// Steps between `TrainStep` events.
    pub log_every: u64,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            model: ModelSpec::Scratch("tiny".into()),
            data: Vec::new(),
            dataset: None,
            prepare: Default::default(),
            steps: None,
            epochs: None,
            batch_size: 4,
            block_size: 128,
            // The default model is a `tiny` one trained from scratch.
            lr: 1e-3,
            min_lr_ratio: 0.1,
            warmup: 20,
            weight_decay: 0.1,
            beta1: 0.9,
            beta2: 0.999,
            grad_accum: 1,
            clip: 1.0,
            dropout: None,
            val_frac: 0.1,
            eval_every: 100,
            eval_windows: 16,
            sample_every: 200,
            sample_tokens: 64,
            save_every: 200,
            keep_checkpoints: 3,
            early_stop_patience: None,
            vocab_size: 4096,
            only_train_transformer_layers: false,
            lora: None,
            recompute_activations: false,
            seed: 42,
            log_every: 10,
        }
    }
}

pub const DEFAULT_STEPS: u64 = 1000;

/// Validation passes without improvement after which the presets stop a run: three passes is
/// long enough to ride out the noise of a small validation set, short enough not to spend
/// most of a run over-fitting.
pub const PRESET_PATIENCE: u64 = 3;

/// The peak learning rate used when none is given. Fine-tuning keeps 3e-4 (a pretrained model
/// forgets what it knew when pushed harder). From scratch, smaller models take larger steps: the
/// GPT-3 paper's sizes go from 6e-4 at 125M parameters (`base`) upwards as models shrink, and
/// nanoGPT trains its 10M-parameter model at 1e-3, the rate the side-by-side comparison of `tiny`
/// with PyTorch used. Measured with `bench/learning.py` (tiny, licence texts, 120 steps,
/// validation loss, seeds 1 / 2): 6.26 / 5.77 at 3e-4, 6.20 / 5.45 at 1e-3, 6.65 / 5.85 at 3e-3,
/// so 1e-3 wins on both seeds (README, "Does it learn as PyTorch does?"). `small` has not been
/// swept yet and shares tiny's rate.
pub fn default_lr(model: &ModelSpec) -> f64 {
    match model {
        ModelSpec::Source(_) => 3e-4,
        ModelSpec::Scratch(size) => match size.as_str() {
            "tiny" => 1e-3,
            "small" => 1e-3,
            _ => 6e-4,
        },
    }
}

impl TrainConfig {
    /// Beginner presets: `quick`, `balanced`, `thorough`.
    pub fn preset(name: &str) -> Result<Self> {
        let base = TrainConfig::default();
        Ok(match name {
            "quick" => TrainConfig {
                steps: Some(200),
                lr: 1e-3,
                warmup: 10,
                eval_every: 50,
                sample_every: 50,
                save_every: 100,
                early_stop_patience: Some(PRESET_PATIENCE),
                ..base
            },
            // The presets serve fine-tuning and from-scratch alike, so their rates stay where
            // a pretrained model keeps what it knew (see `default_lr`); only Quick, a short run,
            // trades that for speed.
            "balanced" => TrainConfig {
                steps: Some(1000),
                lr: 3e-4,
                early_stop_patience: Some(PRESET_PATIENCE),
                ..base
            },
            "thorough" => TrainConfig {
                steps: Some(4000),
                lr: 2e-4,
                warmup: 100,
                save_every: 500,
                eval_every: 250,
                early_stop_patience: Some(PRESET_PATIENCE),
                ..base
            },
            other => {
                return Err(Error::config(
                    "preset",
                    format!("is `{other}`; use quick, balanced or thorough"),
                ))
            }
        })
    }

    /// Checks every field; the message names the field and the allowed range.
    pub fn validate(&self) -> Result<()> {
        let err = |f: &str, m: String| Err(Error::config(f, m));
        if let Some(lora) = &self.lora {
            lora.validate()?;
            if matches!(self.model, ModelSpec::Scratch(_)) {
                return err(
                    "lora",
                    "adapts a pretrained model; a model trained from scratch learns all its weights (turn LoRA off)".into(),
                );
            }
            if self.only_train_transformer_layers {
                return err(
                    "only_train_transformer_layers",
                    "cannot be combined with LoRA, which already freezes every base weight".into(),
                );
            }
        }
        if !(self.lr > 0.0 && self.lr.is_finite() && self.lr < 1.0) {
            return err(
                "lr",
                format!(
                    "is {}; the learning rate must be above 0 and below 1 (try 3e-4)",
                    self.lr
                ),
            );
        }
        if self.batch_size == 0 {
            return err("batch_size", "is 0; it must be at least 1".into());
        }
        if self.block_size < 2 {
            return err(
                "block_size",
                format!("is {}; it must be at least 2 tokens", self.block_size),
            );
        }
        if self.grad_accum == 0 {
            return err("grad_accum", "is 0; it must be at least 1".into());
        }
        if !(0.0..1.0).contains(&self.val_frac) || self.val_frac > 0.5 {
            return err(
                "val_frac",
                format!("is {}; use a value from 0 to 0.5 (e.g. 0.1)", self.val_frac),
            );
        }
        if let Some(p) = self.dropout {
            if !(0.0..1.0).contains(&p) {
                return err("dropout", format!("is {p}; use a value from 0 to 0.9"));
            }
        }
        if !(self.weight_decay >= 0.0 && self.weight_decay.is_finite()) {
            return err(
                "weight_decay",
                format!("is {}; it must be 0 or more", self.weight_decay),
            );
        }
        if !(self.clip >= 0.0 && self.clip.is_finite()) {
            return err(
                "clip",
                format!("is {}; it must be 0 (off) or more", self.clip),
            );
        }
        for (field, beta) in [("beta1", self.beta1), ("beta2", self.beta2)] {
            if !(0.0..1.0).contains(&beta) {
                return err(
                    field,
                    format!("is {beta}; use a value from 0 to below 1 (e.g. 0.9)"),
                );
            }
        }
        if !(0.0..=1.0).contains(&self.min_lr_ratio) {
            return err("min_lr_ratio", "must be from 0 to 1".into());
        }
        if self.steps == Some(0) {
            return err("steps", "is 0; it must be at least 1".into());
        }
        if let Some(p) = self.early_stop_patience {
            if p == 0 {
                return err(
                    "early_stop_patience",
                    "is 0; it must be at least 1 validation pass (or leave it out to train every step)".into(),
                );
            }
            if self.eval_every == 0 {
                return err(
                    "early_stop_patience",
                    "needs validation during training to notice when the model stops improving; set eval_every above 0".into(),
                );
            }
            if self.val_frac == 0.0 && self.dataset.is_none() {
                return err(
                    "early_stop_patience",
                    "needs validation text to measure improvement; set val_frac above 0".into(),
                );
            }
        }
        if let Some(e) = self.epochs {
            if !(e > 0.0 && e.is_finite()) {
                return err("epochs", format!("is {e}; it must be above 0"));
            }
            if self.steps.is_some() {
                return err("epochs", "and `steps` are both set; give only one".into());
            }
        }
        if self.log_every == 0 {
            return err("log_every", "is 0; it must be at least 1".into());
        }
        if let ModelSpec::Scratch(p) = &self.model {
            if !crate::model::config::SCRATCH_PRESETS.contains(&p.as_str()) {
                return err("scratch", format!("is `{p}`; use tiny, small or base"));
            }
            if self.vocab_size < 257 {
                return err(
                    "vocab_size",
                    format!("is {}; it must be at least 257", self.vocab_size),
                );
            }
        }
        if self.data.is_empty() && self.dataset.is_none() {
            return err(
                "data",
                "is empty; give at least one file or folder (or a prepared dataset)".into(),
            );
        }
        Ok(())
    }

    /// Tokens consumed by one optimiser step.
    pub fn tokens_per_step(&self) -> u64 {
        (self.batch_size * self.block_size * self.grad_accum) as u64
    }

    /// Steps to run for a training set of `train_tokens`.
    pub fn total_steps(&self, train_tokens: usize) -> u64 {
        match (self.steps, self.epochs) {
            (Some(s), _) => s,
            (None, Some(e)) => ((e * train_tokens as f64) / self.tokens_per_step() as f64)
                .ceil()
                .max(1.0) as u64,
            (None, None) => DEFAULT_STEPS,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok() -> TrainConfig {
        TrainConfig {
            data: vec!["x.txt".into()],
            ..Default::default()
        }
    }

    #[test]
    fn nonsense_values_name_their_field() {
        let cases: Vec<(TrainConfig, &str)> = vec![
            (TrainConfig { lr: 0.0, ..ok() }, "lr"),
            (TrainConfig { lr: -1.0, ..ok() }, "lr"),
            (
                TrainConfig {
                    batch_size: 0,
                    ..ok()
                },
                "batch_size",
            ),
            (
                TrainConfig {
                    val_frac: 1.0,
                    ..ok()
                },
                "val_frac",
            ),
            (
                TrainConfig {
                    block_size: 1,
                    ..ok()
                },
                "block_size",
            ),
            (
                TrainConfig {
                    dropout: Some(1.5),
                    ..ok()
                },
                "dropout",
            ),
            (
                TrainConfig {
                    steps: Some(0),
                    ..ok()
                },
                "steps",
            ),
            (
                TrainConfig {
                    data: vec![],
                    ..ok()
                },
                "data",
            ),
            (
                TrainConfig {
                    model: ModelSpec::Scratch("huge".into()),
                    ..ok()
                },
                "scratch",
            ),
        ];
        for (cfg, field) in cases {
            let e = cfg.validate().unwrap_err().to_string();
            assert!(e.contains(&format!("`{field}`")), "{field}: {e}");
        }
        ok().validate().unwrap();
        TrainConfig::preset("quick").unwrap();
    }

    /// The page mirrors these rules for instant feedback (ui/src/stores/trainConfig.ts); both
    /// suites check the same cases file, so a rule changed on one side only fails a test.
    #[test]
    fn rules_agree_with_the_page() {
        let file: serde_json::Value =
            serde_json::from_str(include_str!("../tests/fixtures/settings_cases.json")).unwrap();
        for case in file["cases"].as_array().unwrap() {
            let mut cfg = serde_json::to_value(TrainConfig::default()).unwrap();
            for part in [&file["base"], &case["patch"]] {
                for (k, v) in part.as_object().unwrap() {
                    cfg[k] = v.clone();
                }
            }
            let cfg: TrainConfig = serde_json::from_value(cfg).unwrap();
            let got = match cfg.validate() {
                Ok(()) => None,
                Err(Error::Config { field, .. }) => Some(field),
                Err(e) => panic!("{case}: not a settings error: {e}"),
            };
            assert_eq!(got.as_deref(), case["invalid"].as_str(), "case {case}");
        }
    }

    #[test]
    fn default_learning_rates_follow_the_model() {
        assert_eq!(
            TrainConfig::default().lr,
            default_lr(&TrainConfig::default().model)
        );
        assert_eq!(default_lr(&ModelSpec::Source("gpt2".into())), 3e-4);
        let lr = |s: &str| default_lr(&ModelSpec::Scratch(s.into()));
        assert!(lr("tiny") >= lr("small") && lr("small") > lr("base"));
        assert!(lr("base") > default_lr(&ModelSpec::Source("gpt2".into())));
        // The presets do not follow the default model's rate: the app fine-tunes GPT-2 with them.
        let preset_lr = |p: &str| TrainConfig::preset(p).unwrap().lr;
        assert_eq!(
            [
                preset_lr("quick"),
                preset_lr("balanced"),
                preset_lr("thorough")
            ],
            [1e-3, 3e-4, 2e-4]
        );
    }

    #[test]
    fn epochs_become_steps() {
        let c = TrainConfig {
            epochs: Some(2.0),
            batch_size: 2,
            block_size: 10,
            ..ok()
        };
        assert_eq!(c.total_steps(105), 11);
        assert_eq!(
            TrainConfig {
                steps: Some(7),
                ..ok()
            }
            .total_steps(1),
            7
        );
    }

    #[test]
    fn config_round_trips_through_json() {
        let c = TrainConfig {
            model: ModelSpec::Source("gpt2".into()),
            ..ok()
        };
        let back: TrainConfig = serde_json::from_str(&serde_json::to_string(&c).unwrap()).unwrap();
        assert_eq!(back, c);
    }
}
