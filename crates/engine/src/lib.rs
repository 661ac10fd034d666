//! Tunesmith's engine: everything that reads data, builds and trains models, generates and
//! evaluates. It knows nothing of its faces (CLI, desktop app): long jobs take a config, a
//! [`CancelToken`] and a [`ProgressSink`], and return a typed result or an [`Error`].

pub mod bench;
pub mod chat;
pub mod chats;
pub mod data;
pub mod device;
pub mod error;
pub mod eval;
pub mod export;
pub mod fsutil;
pub mod generate;
pub mod hub;
pub mod memory;
pub mod model;
pub mod names;
pub mod paths;
pub mod progress;
pub mod rng;
pub mod runs;
pub mod settings;
pub mod source;
pub mod train;

pub use error::{Error, Result};
pub use progress::{CancelToken, Event, LogLevel, NullSink, ProgressSink};
