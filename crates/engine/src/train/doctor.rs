//! The training doctor: watches the losses, gradient norms and validation of a run as it trains
//! and says in plain words when something is wrong, with what to do about it. Each kind of
//! finding is raised once per run (a finding that repeats every step would drown the others).
//!
//! The rules and their thresholds, and why:
//! - diverging: the loss is not a number, or its moving average has risen 30 % (and at least
//!   0.5) above its lowest so far. A healthy run's average wobbles by a few per
//!   cent; a learning rate that is too high sends it up and keeps it there.
//! - over-fitting: validation has risen for two checks in a row above its best, by 2 % or more,
//!   while the training loss kept falling: the model is learning the training text by heart.
//! - stalled: a quarter of the run (at least 50 steps past warm-up) has brought the moving
//!   average down by less than 2 %. Any run that learns drops far more than that early on; the
//!   check stops at half-way, where a cosine schedule's plateau is expected.
//! - too little data: the steps planned read the training text more than 20 times over, or the
//!   held-back text is shorter than one window.
//! - exploding gradients: the gradient was clipped on at least 45 of the last 50 steps with a
//!   median norm over three times the clip; clipping then does all the steering.

use serde::{Deserialize, Serialize};

/// What was found.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum FindingKind {
    Diverging,
    Overfitting,
    Stalled,
    TooLittleData,
    ExplodingGradients,
}

/// The one-click fix a finding offers.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "camelCase")]
pub enum Remedy {
    /// Continue with the learning rate `lr` from checkpoint `step` (0: from the start; later
    /// checkpoints are discarded), or from the newest checkpoint when `None`.
    ResumeFrom { step: Option<u64>, lr: f64 },
    /// Stop now: the best model, of step `step`, is kept and is the run's model.
    StopKeepBest { step: u64 },
    /// Train with fewer steps (the text is read `epochs` times instead).
    FewerSteps { steps: u64, epochs: f64 },
}

/// One finding, in plain words.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Finding {
    pub kind: FindingKind,
    /// The step it was noticed at.
    pub step: u64,
    pub message: String,
    pub remedy: Option<Remedy>,
}

/// Smoothing of the moving average of the training loss (about the last 20 steps).
const EMA: f64 = 0.1;
const CLIP_WINDOW: usize = 50;

/// The doctor's memory of the run so far.
#[derive(Debug, Clone)]
pub struct Doctor {
    lr: f64,
    warmup: u64,
    total: u64,
    clip: f64,
    ema: Option<f64>,
    /// The lowest moving average so far, and its step.
    lowest: Option<(f64, u64)>,
    /// The moving average when warm-up ended.
    after_warmup: Option<f64>,
    best_val: Option<(f32, u64, f64)>,
    rising_checks: u32,
    norms: std::collections::VecDeque<f64>,
    raised: Vec<FindingKind>,
    /// Steps of the run's checkpoints, for where to resume from.
    checkpoints: Vec<u64>,
    /// The step this process started from (0, or where a resume picked up): the averages
    /// settle from there.
    first: u64,
}

impl Doctor {
    /// A doctor for a run starting (or resuming) after step `first`; `raised` are the kinds of
    /// finding already reported for this run (not repeated).
    pub fn new(
        lr: f64,
        warmup: u64,
        total: u64,
        clip: f64,
        checkpoints: Vec<u64>,
        first: u64,
        raised: Vec<FindingKind>,
    ) -> Self {
        Doctor {
            lr,
            warmup,
            total,
            clip,
            ema: None,
            lowest: None,
            after_warmup: None,
            best_val: None,
            rising_checks: 0,
            norms: Default::default(),
            raised,
            checkpoints,
            first,
        }
    }

    /// Findings about the data before the first step.
    pub fn data(
        &mut self,
        train_tokens: usize,
        val_tokens: usize,
        tokens_per_step: u64,
        block_size: usize,
        has_val: bool,
    ) -> Vec<Finding> {
        let mut out = Vec::new();
        let reads = self.total as f64 * tokens_per_step as f64 / train_tokens.max(1) as f64;
        if reads > 20.0 {
            let steps = ((5.0 * train_tokens as f64) / tokens_per_step as f64)
                .ceil()
                .max(1.0) as u64;
            out.extend(self.raise(
                FindingKind::TooLittleData,
                0,
                format!(
                    "Too little text for this many steps: {} steps read your {} training tokens about {:.0} times over, so the model will learn them by heart rather than learn from them. Add more text, or train for about {steps} steps (5 passes).",
                    self.total, train_tokens, reads
                ),
                Some(Remedy::FewerSteps { steps, epochs: 5.0 }),
            ));
        } else if has_val && val_tokens < block_size + 1 {
            out.extend(self.raise(
                FindingKind::TooLittleData,
                0,
                format!(
                    "The held-back text is only {val_tokens} tokens, shorter than one window of {block_size}: its checks will say little. Hold back a larger share or add text."
                ),
                None,
            ));
        }
        out
    }

    /// A training step's loss and gradient norm (before clipping).
    pub fn step(&mut self, step: u64, loss: f32, norm: f64) -> Vec<Finding> {
        let mut out = Vec::new();
        if !loss.is_finite() || !norm.is_finite() {
            let from = self.last_checkpoint_before(step);
            out.extend(self.raise(
                FindingKind::Diverging,
                step,
                format!(
                    "Training broke down at step {step}: the loss became {loss}. The learning rate is too high; go back to {} (the checkpoints after it are discarded) and continue at a third of it ({:.2e}).",
                    describe_from(from),
                    self.lr / 3.0
                ),
                Some(Remedy::ResumeFrom { step: Some(from), lr: self.lr / 3.0 }),
            ));
            return out;
        }
        let ema = self
            .ema
            .map_or(loss as f64, |e| e + EMA * (loss as f64 - e));
        self.ema = Some(ema);
        // The lowest average counts from the first step: a rate that blows the loss up during
        // warm-up is the plainest divergence there is.
        if self.lowest.is_none_or(|(l, _)| ema < l) {
            self.lowest = Some((ema, step));
        }
        let (low, low_step) = self.lowest.expect("set above");
        if step == self.warmup + 10 {
            self.after_warmup = Some(ema);
        }
        // The first 10 steps (of this process) let the average settle.
        if step < self.first + 10 {
            return out;
        }
        if ema > low * 1.3 && ema - low > 0.5 {
            let from = self.last_checkpoint_before(low_step);
            out.extend(self.raise(
                FindingKind::Diverging,
                step,
                format!(
                    "The training loss is climbing: {ema:.2} now against {low:.2} at step {low_step}. The learning rate is too high; go back to {} (the checkpoints after it are discarded) and continue at a third of it ({:.2e}).",
                    describe_from(from),
                    self.lr / 3.0
                ),
                Some(Remedy::ResumeFrom { step: Some(from), lr: self.lr / 3.0 }),
            ));
        }
        let window = (self.total / 4).max(50);
        // A run resumed past the start of the window has no start to compare with.
        if let (true, Some(start)) = (
            step == self.warmup + 10 + window && step <= self.total / 2 + 1,
            self.after_warmup,
        ) {
            if ema > start * 0.98 {
                out.extend(self.raise(
                    FindingKind::Stalled,
                    step,
                    format!(
                        "No progress: {window} steps brought the training loss from {start:.2} to {ema:.2}. Raise the learning rate (try {:.2e}) or train longer.",
                        self.lr * 3.0
                    ),
                    Some(Remedy::ResumeFrom { step: None, lr: self.lr * 3.0 }),
                ));
            }
        }
        if self.clip > 0.0 {
            self.norms.push_back(norm);
            if self.norms.len() > CLIP_WINDOW {
                self.norms.pop_front();
            }
            if self.norms.len() == CLIP_WINDOW {
                let hits = self.norms.iter().filter(|&&n| n > self.clip).count();
                let mut sorted: Vec<f64> = self.norms.iter().copied().collect();
                sorted.sort_by(f64::total_cmp);
                let median = sorted[CLIP_WINDOW / 2];
                if hits >= CLIP_WINDOW * 9 / 10 && median > 3.0 * self.clip {
                    out.extend(self.raise(
                        FindingKind::ExplodingGradients,
                        step,
                        format!(
                            "The gradients are exploding: {hits} of the last {CLIP_WINDOW} steps were clipped, typically at {median:.1} against a limit of {}. Lower the learning rate (try {:.2e}).",
                            self.clip,
                            self.lr / 2.0
                        ),
                        Some(Remedy::ResumeFrom { step: None, lr: self.lr / 2.0 }),
                    ));
                }
            }
        }
        out
    }

    /// A validation loss at `step`.
    pub fn validation(&mut self, step: u64, val: f32) -> Vec<Finding> {
        let ema = self.ema.unwrap_or(f64::NAN);
        let Some((best, best_step, ema_then)) = self.best_val else {
            self.best_val = Some((val, step, ema));
            return Vec::new();
        };
        if val < best {
            self.best_val = Some((val, step, ema));
            self.rising_checks = 0;
            return Vec::new();
        }
        if val > best * 1.02 {
            self.rising_checks += 1;
        } else {
            self.rising_checks = 0;
        }
        if self.rising_checks >= 2 && ema < ema_then {
            return self.raise(
                FindingKind::Overfitting,
                step,
                format!(
                    "Over-fitting: the loss on held-back text rose from {best:.2} (step {best_step}) to {val:.2} while the training loss kept falling — the model is memorising your text. The best model was at step {best_step}; keep it."
                ),
                Some(Remedy::StopKeepBest { step: best_step }),
            );
        }
        Vec::new()
    }

    /// A checkpoint was saved at `step`.
    pub fn checkpoint(&mut self, step: u64) {
        if !self.checkpoints.contains(&step) {
            self.checkpoints.push(step);
            self.checkpoints.sort_unstable();
        }
    }

    fn last_checkpoint_before(&self, step: u64) -> u64 {
        self.checkpoints
            .iter()
            .copied()
            .filter(|&s| s <= step)
            .max()
            .unwrap_or(0)
    }

    fn raise(
        &mut self,
        kind: FindingKind,
        step: u64,
        message: String,
        remedy: Option<Remedy>,
    ) -> Vec<Finding> {
        if self.raised.contains(&kind) {
            return Vec::new();
        }
        self.raised.push(kind);
        vec![Finding {
            kind,
            step,
            message,
            remedy,
        }]
    }
}

fn describe_from(step: u64) -> String {
    if step == 0 {
        "the start".into()
    } else {
        format!("step {step}")
    }
}
