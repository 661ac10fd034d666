//! Shared helpers for the engine's integration tests.
#![allow(dead_code)]

use std::path::PathBuf;

pub fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

pub fn reference() -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(fixtures().join("reference.json")).unwrap())
        .unwrap()
}

pub fn ids(v: &serde_json::Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

/// Full-sequence logits `(T, V)` of one sequence.
pub fn full_logits(model: &tunesmith_engine::model::Model, ids: &[u32]) -> Vec<Vec<f32>> {
    let dev = model.device().clone();
    let x = candle_core::Tensor::from_slice(ids, (1, ids.len()), &dev).unwrap();
    model
        .forward(&x)
        .unwrap()
        .squeeze(0)
        .unwrap()
        .to_vec2()
        .unwrap()
}

/// Trains `cfg` into `out` on the CPU and presses Stop at the first `Progress` event for which
/// `stop_at(stage, done, total)` holds: the summary, the training steps reported, and whether
/// Stop was pressed at all.
pub fn train_stopped_during_preparation(
    cfg: &tunesmith_engine::settings::TrainConfig,
    out: &std::path::Path,
    stop_at: impl Fn(&str, u64, u64) -> bool,
) -> (tunesmith_engine::train::TrainSummary, u64, bool) {
    use tunesmith_engine::{CancelToken, Event};
    let cancel = CancelToken::new();
    let c = cancel.clone();
    let mut steps = 0;
    let summary = tunesmith_engine::train::train(
        cfg,
        out,
        tunesmith_engine::train::Restore::Latest,
        &candle_core::Device::Cpu,
        &cancel,
        &mut |e: Event| match e {
            Event::Progress {
                stage, done, total, ..
            } if stop_at(&stage, done, total) => c.cancel(),
            Event::TrainStep { .. } => steps += 1,
            _ => {}
        },
    )
    .unwrap();
    (summary, steps, cancel.is_cancelled())
}

/// The largest absolute value of a tensor.
pub fn max_abs(t: &candle_core::Tensor) -> f32 {
    t.abs().unwrap().max_all().unwrap().to_scalar().unwrap()
}

/// The largest absolute difference between two tensors of one shape.
pub fn max_abs_diff(a: &candle_core::Tensor, b: &candle_core::Tensor) -> f32 {
    max_abs(&(a - b).unwrap())
}
