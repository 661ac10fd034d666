//! Thin commands, grouped by domain: convert arguments, call the engine or the job registry, return.

pub mod app;
pub mod datasets;
pub mod generation;
pub mod models;
pub mod training;

use tunesmith_engine::{Event, ProgressSink};

use crate::sink::ChannelSink;

/// Ends a job's stream with `finished` or `failed` (always last), whatever the job returned.
pub(crate) fn finish<T: serde::Serialize>(
    sink: &mut ChannelSink,
    result: tunesmith_engine::Result<T>,
) {
    match result {
        Ok(v) => sink.emit(Event::Finished {
            summary: serde_json::to_value(v).unwrap_or_default(),
        }),
        Err(e) => sink.emit(Event::Failed {
            kind: e.kind().into(),
            message: e.to_string(),
        }),
    }
    sink.flush();
}
