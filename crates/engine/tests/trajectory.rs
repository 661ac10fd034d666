//! Does Tunesmith learn as PyTorch does? The real training loop, on a from-scratch `tiny` GPT-2
//! with dropout off, must take the same steps as PyTorch (AdamW with the same parameter groups,
//! the same warm-up/cosine schedule and clipping) from the same initial weights over the same
//! batches: per-step losses agree within 1e-3 relative for 30 steps.
//!
//! `fixtures/trajectory.json` holds PyTorch's losses. To make it again:
//!
//! ```text
//! TUNESMITH_TRAJECTORY_OUT=/tmp/traj cargo test --workspace --test trajectory -- --ignored
//! python3 crates/engine/tests/fixtures/make_trajectory.py /tmp/traj
//! ```
//!
//! The first command exports the initial weights (`model/`), the batches the loop draws
//! (`batches.json`) and the settings (`settings.json`); the script trains on them in PyTorch.

mod common;

use std::collections::HashMap;
use std::path::Path;

use candle_core::Device;
use common::fixtures;
use tunesmith_engine::data::batches::Sampler;
use tunesmith_engine::data::{dataset, tokenizer};
use tunesmith_engine::model::load::save_weights;
use tunesmith_engine::model::{Gpt2Config, ModelConfig};
use tunesmith_engine::settings::{ModelSpec, TrainConfig};
use tunesmith_engine::train::{train, Restore};
use tunesmith_engine::{CancelToken, Event, NullSink};

const STEPS: u64 = 30;

/// A freshly initialised `tiny` model (the fixture tokenizer's 384 tokens, 64 positions) in
/// `dir/model`, and the settings that train it.
fn setup(dir: &Path) -> TrainConfig {
    let model = dir.join("model");
    std::fs::create_dir_all(&model).unwrap();
    let mut cfg = Gpt2Config::preset("tiny", 384, 64).unwrap();
    (cfg.embd_pdrop, cfg.attn_pdrop, cfg.resid_pdrop) = (0.0, 0.0, 0.0);
    cfg.eos_token_id = Some(0);
    let cfg = ModelConfig::from(cfg);
    let weights = cfg.init_weights(7, &Device::Cpu).unwrap();
    save_weights(&weights, &cfg, &model.join("model.safetensors")).unwrap();
    std::fs::write(model.join("config.json"), cfg.to_json().to_string()).unwrap();
    std::fs::copy(
        fixtures().join("gpt2-tiny/tokenizer.json"),
        model.join("tokenizer.json"),
    )
    .unwrap();
    TrainConfig {
        model: ModelSpec::Source(model.display().to_string()),
        data: vec![fixtures().join("corpus.txt")],
        steps: Some(STEPS),
        batch_size: 2,
        block_size: 64,
        lr: 1e-3,
        warmup: 5,
        min_lr_ratio: 0.1,
        weight_decay: 0.1,
        beta1: 0.9,
        beta2: 0.999,
        clip: 1.0,
        dropout: Some(0.0),
        eval_every: 0,
        sample_every: 0,
        save_every: 0,
        log_every: 1,
        seed: 7,
        ..Default::default()
    }
}

/// Per-step training losses of the real loop.
fn losses(cfg: &TrainConfig, run: &Path) -> Vec<f32> {
    let mut by_step = HashMap::new();
    let mut sink = |e: Event| {
        if let Event::TrainStep { step, loss, .. } = e {
            by_step.insert(step, loss);
        }
    };
    let cancel = CancelToken::new();
    train(cfg, run, Restore::Fresh, &Device::Cpu, &cancel, &mut sink).unwrap();
    (1..=STEPS).map(|s| by_step[&s]).collect()
}

/// What the PyTorch side must use: the hyperparameters, named as the script reads them.
fn settings(cfg: &TrainConfig) -> serde_json::Value {
    serde_json::json!({
        "steps": STEPS, "batch_size": cfg.batch_size, "block_size": cfg.block_size,
        "lr": cfg.lr, "warmup": cfg.warmup, "min_lr_ratio": cfg.min_lr_ratio,
        "weight_decay": cfg.weight_decay, "beta1": cfg.beta1, "beta2": cfg.beta2,
        "eps": 1e-8, "clip": cfg.clip,
    })
}

#[test]

fn per_step_losses_match_pytorch() {
    let want: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixtures().join("trajectory.json")).unwrap())
            .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let cfg = setup(tmp.path());
    assert_eq!(
        want["settings"],
        settings(&cfg),
        "the fixture was made with other settings"
    );
    let got = losses(&cfg, &tmp.path().join("run"));
    let want: Vec<f64> = want["losses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    assert_eq!(want.len(), got.len());
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        let rel = (*g as f64 - w).abs() / w.abs();
        assert!(
            rel <= 1e-3,
            "step {}: Tunesmith {g}, PyTorch {w} (relative difference {rel:.2e})\nall: {got:?}",
            i + 1
        );
    }
}

/// Writes the initial weights, batches and settings for `make_trajectory.py`.
#[test]
#[ignore = "run by hand to regenerate fixtures/trajectory.json"]
fn export_trajectory_inputs() {
    let Ok(out) = std::env::var("TUNESMITH_TRAJECTORY_OUT") else {
        panic!("set TUNESMITH_TRAJECTORY_OUT to the folder to write");
    };
    let out = Path::new(&out);
    let _ = std::fs::remove_dir_all(out);
    std::fs::create_dir_all(out).unwrap();
    let cfg = setup(out);
    // One step makes the run's dataset; the batches are those the loop draws from it.
    let run = out.join("run");
    train(
        &TrainConfig {
            steps: Some(1),
            ..cfg.clone()
        },
        &run,
        Restore::Fresh,
        &Device::Cpu,
        &CancelToken::new(),
        &mut NullSink,
    )
    .unwrap();
    let data = dataset::load(&run.join("dataset")).unwrap();
    let tok = tokenizer::load(&out.join("model")).unwrap();
    let sampler = Sampler::new(
        &data.train,
        data.train_mask.as_deref(),
        tokenizer::eot_id(&tok),
        cfg.block_size,
    )
    .unwrap();
    let batches: Vec<serde_json::Value> = (0..STEPS)
        .map(|step| {
            let b = sampler.batch(cfg.batch_size, cfg.seed, step, 0);
            serde_json::json!({"inputs": b.inputs, "targets": b.targets})
        })
        .collect();
    std::fs::write(
        out.join("batches.json"),
        serde_json::Value::from(batches).to_string(),
    )
    .unwrap();
    std::fs::write(out.join("settings.json"), settings(&cfg).to_string()).unwrap();
    let _ = std::fs::remove_dir_all(&run);
}
