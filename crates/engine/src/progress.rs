//! The one event stream every long job reports through, and the cancel token it obeys.
//!
//! Life cycle: a job emits any number of `Progress`, `Log`, `TrainStep`, `Eval`, `Sample`,
//! `Checkpoint`, `Finding` and `Token` events, and its runner (CLI or app) ends the stream with exactly one
//! `Finished` or `Failed`, which is always last (STYLE.md principle 6).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// A progress event from any job. Serialised tagged by `type`, fields in camelCase.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(
    tag = "type",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
#[non_exhaustive]
pub enum Event {
    /// Generic progress of a stage: `done` of `total` `unit`s (total 0 = unknown).
    Progress {
        stage: String,
        done: u64,
        total: u64,
        unit: String,
    },
    /// A human-readable message.
    Log { level: LogLevel, message: String },
    /// One optimiser step. `step` is 1-based.
    TrainStep {
        step: u64,
        total: u64,
        loss: f32,
        lr: f64,
        tokens_per_sec: f64,
        eta_secs: f64,
        epoch: f64,
    },
    /// A validation pass.
    Eval {
        step: u64,
        val_loss: f32,
        perplexity: f32,
    },
    /// A text sample generated during training.
    Sample { step: u64, text: String },
    /// A checkpoint was written completely.
    Checkpoint { step: u64, path: String },
    /// The training doctor noticed something, in plain words, with a fix when there is one.
    Finding {
        kind: crate::train::doctor::FindingKind,
        step: u64,
        message: String,
        remedy: Option<crate::train::doctor::Remedy>,
    },
    /// A piece of generated text (UTF-8 safe).
    Token { text: String },
    /// The job ended normally; `summary` is job-specific JSON.
    Finished {
        #[cfg_attr(feature = "ts", ts(type = "unknown"))]
        summary: serde_json::Value,
    },
    /// The job failed; `kind` is [`crate::Error::kind`].
    Failed { kind: String, message: String },
}

/// Severity of a [`Event::Log`].
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum LogLevel {
    Info,
    Warn,
}

/// Where events go. Any `FnMut(Event)` is a sink.
pub trait ProgressSink {
    fn emit(&mut self, event: Event);

    fn log(&mut self, message: impl Into<String>) {
        self.emit(Event::Log {
            level: LogLevel::Info,
            message: message.into(),
        });
    }

    fn warn(&mut self, message: impl Into<String>) {
        self.emit(Event::Log {
            level: LogLevel::Warn,
            message: message.into(),
        });
    }
}

impl<F: FnMut(Event)> ProgressSink for F {
    fn emit(&mut self, event: Event) {
        self(event)
    }
}

/// A sink that drops everything.
pub struct NullSink;

impl ProgressSink for NullSink {
    fn emit(&mut self, _event: Event) {}
}

/// A shared flag: set by the UI or Ctrl-C, checked by jobs at step boundaries.
#[derive(Debug, Clone, Default)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst)
    }

    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_serialise_tagged_camel_case() {
        let e = Event::TrainStep {
            step: 3,
            total: 10,
            loss: 1.5,
            lr: 1e-3,
            tokens_per_sec: 100.0,
            eta_secs: 2.0,
            epoch: 0.5,
        };
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["type"], "trainStep");
        assert_eq!(v["step"], 3);
        assert_eq!(v["tokensPerSec"], 100.0);
        let back: Event = serde_json::from_value(v).unwrap();
        assert_eq!(back, e);
    }

    #[test]
    fn cancel_token_is_shared() {
        let t = CancelToken::new();
        let t2 = t.clone();
        assert!(!t.is_cancelled());
        t2.cancel();
        assert!(t.is_cancelled());
    }
}
