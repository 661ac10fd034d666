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
pub fn full_logits(model: &tunesmith_engine::model::Gpt2, ids: &[u32]) -> Vec<Vec<f32>> {
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
