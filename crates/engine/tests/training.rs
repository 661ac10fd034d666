//! Training: gradients reach every variable, a batch overfits, a model learns from scratch, a
//! stopped run resumes to the same loss, and bad input fails clearly without touching earlier work.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor, Var};
use common::fixtures;
use tunesmith_engine::model::gpt2::DropoutRng;
use tunesmith_engine::model::load::{read_config, read_weights};
use tunesmith_engine::model::Gpt2;
use tunesmith_engine::rng::Rng;
use tunesmith_engine::runs::RunStatus;
use tunesmith_engine::train::optim::{AdamW, AdamWParams};
use tunesmith_engine::train::{train, ModelSpec, Restore, TrainConfig, TrainSummary};
use tunesmith_engine::{CancelToken, Error, Event, NullSink};

fn tiny_vars() -> (Gpt2, Vec<(String, Var)>) {
    let dir = fixtures().join("gpt2-tiny");
    let cfg = read_config(&dir).unwrap();
    let weights = read_weights(&dir, &cfg, &Device::Cpu).unwrap();
    let mut vars = Vec::new();
    let mut tensors = HashMap::new();
    for (name, t) in weights {
        let v = Var::from_tensor(&t).unwrap();
        tensors.insert(name.clone(), v.as_tensor().clone());
        vars.push((name, v));
    }
    (Gpt2::new(&tensors, &cfg).unwrap(), vars)
}

#[test]
fn every_trainable_variable_gets_a_gradient() {
    let (model, vars) = tiny_vars();
    let ids: Vec<u32> = (0..2 * 17).map(|i| (i * 37 % 384) as u32).collect();
    let x = Tensor::from_slice(&ids, (2, 17), &Device::Cpu)
        .unwrap()
        .narrow(1, 0, 16)
        .unwrap()
        .contiguous()
        .unwrap();
    let targets: Vec<u32> = ids.chunks(17).flat_map(|r| r[1..].to_vec()).collect();
    let mut drop = DropoutRng(Rng::new(1));
    let loss = model
        .loss(&model.hidden(&x, None, Some(&mut drop)).unwrap(), &targets)
        .unwrap();
    let grads = loss.backward().unwrap();
    assert_eq!(
        vars.len(),
        tunesmith_engine::model::gpt2::weight_shapes(model.config()).len()
    );
    for (name, v) in &vars {
        let g = grads
            .get(v)
            .unwrap_or_else(|| panic!("`{name}` got no gradient"));
        let s: f32 = g.abs().unwrap().sum_all().unwrap().to_scalar().unwrap();
        assert!(s > 0.0 && s.is_finite(), "`{name}` gradient sum {s}");
    }
}

#[test]
fn one_batch_overfits() {
    let (model, vars) = tiny_vars();
    let ids: Vec<u32> = (0..4 * 33).map(|i| ((i * 7919) % 383 + 1) as u32).collect();
    let inputs: Vec<u32> = ids.chunks(33).flat_map(|r| r[..32].to_vec()).collect();
    let targets: Vec<u32> = ids.chunks(33).flat_map(|r| r[1..].to_vec()).collect();
    let x = Tensor::from_vec(inputs, (4, 32), &Device::Cpu).unwrap();
    let mut opt = AdamW::new(vars.into_iter().map(|(n, v)| (n, v, false)).collect()).unwrap();
    let hp = AdamWParams {
        lr: 1e-2,
        beta1: 0.9,
        beta2: 0.99,
        eps: 1e-8,
        weight_decay: 0.0,
    };
    let mut first = None;
    let mut last = 0f32;
    for _ in 0..150 {
        let loss = model
            .loss(&model.hidden(&x, None, None).unwrap(), &targets)
            .unwrap();
        last = loss.to_scalar().unwrap();
        first.get_or_insert(last);
        opt.step(&loss.backward().unwrap(), 1.0, hp).unwrap();
    }
    let first = first.unwrap();
    assert!(last < 0.1 * first, "loss {first} -> {last}");
}

fn corpus() -> PathBuf {
    fixtures().join("corpus.txt")
}

fn finetune_cfg(steps: u64) -> TrainConfig {
    TrainConfig {
        model: ModelSpec::Source(fixtures().join("gpt2-tiny").display().to_string()),
        data: vec![corpus()],
        steps: Some(steps),
        batch_size: 4,
        block_size: 32,
        lr: 3e-3,
        warmup: 2,
        eval_every: 4,
        sample_every: 0,
        save_every: 4,
        log_every: 1,
        ..Default::default()
    }
}

fn run(
    cfg: &TrainConfig,
    dir: &Path,
    cancel_at: Option<u64>,
) -> (tunesmith_engine::Result<TrainSummary>, Vec<Event>) {
    let cancel = CancelToken::new();
    let mut events = Vec::new();
    let c = cancel.clone();
    let r = train(
        cfg,
        dir,
        Restore::Latest,
        &Device::Cpu,
        &cancel,
        &mut |e: Event| {
            if let (Some(at), Event::TrainStep { step, .. }) = (cancel_at, &e) {
                if *step == at {
                    c.cancel();
                }
            }
            events.push(e);
        },
    );
    (r, events)
}

fn step_losses(events: &[Event]) -> HashMap<u64, f32> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::TrainStep { step, loss, .. } => Some((*step, *loss)),
            _ => None,
        })
        .collect()
}

#[test]
fn stopped_run_resumes_to_the_same_loss() {
    let cfg = finetune_cfg(12);
    let straight = tempfile::tempdir().unwrap();
    let (r, ev) = run(&cfg, straight.path(), None);
    let r = r.unwrap();
    assert_eq!((r.status, r.steps), (RunStatus::Completed, 12));
    let want = step_losses(&ev);

    let parted = tempfile::tempdir().unwrap();
    let (r1, _) = run(&cfg, parted.path(), Some(6));
    let r1 = r1.unwrap();
    assert_eq!((r1.status, r1.steps), (RunStatus::Stopped, 6));
    assert!(parted
        .path()
        .join("checkpoints/step-6/optimizer.safetensors")
        .is_file());
    let info: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(parted.path().join("run.json")).unwrap())
            .unwrap();
    assert_eq!(info["status"], "stopped");

    let (r2, ev2) = run(&cfg, parted.path(), None);
    let r2 = r2.unwrap();
    assert_eq!((r2.status, r2.steps), (RunStatus::Completed, 12));
    let got = step_losses(&ev2);
    assert!(!got.contains_key(&6), "resumed after step 6");
    for s in 7..=12 {
        assert!(
            (got[&s] - want[&s]).abs() <= 1e-5 * want[&s].abs(),
            "step {s}: {} vs {}",
            got[&s],
            want[&s]
        );
    }
    // The final checkpoint is a model folder; keep_checkpoints (3) pruned the older ones.
    let steps: Vec<u64> = tunesmith_engine::runs::RunDir::new(parted.path())
        .list_checkpoints()
        .iter()
        .map(|c| c.0)
        .collect();
    assert_eq!(steps, vec![6, 8, 12]);
    // The curves read back once per step, the resumed values replacing none (they are equal).
    let m = tunesmith_engine::runs::read_metrics(parted.path());
    assert_eq!(
        m.steps.iter().map(|p| p.step).collect::<Vec<_>>(),
        (1..=12).collect::<Vec<_>>()
    );
    assert!(!m.evals.is_empty());
    tunesmith_engine::model::load::load_dir(
        &parted.path().join("checkpoints/step-12"),
        &Device::Cpu,
    )
    .unwrap();
}

#[test]
fn from_scratch_trains_a_tokenizer_and_learns() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = TrainConfig {
        model: ModelSpec::Scratch("tiny".into()),
        data: vec![corpus()],
        steps: Some(60),
        batch_size: 8,
        block_size: 32,
        vocab_size: 320,
        lr: 2e-3,
        warmup: 5,
        eval_every: 0,
        sample_every: 60,
        sample_tokens: 24,
        save_every: 0,
        log_every: 1,
        ..Default::default()
    };
    let (r, ev) = run(&cfg, dir.path(), None);
    let r = r.unwrap();
    let vocab = 320f32;
    let losses = step_losses(&ev);
    assert!(
        losses[&1] > vocab.ln() - 1.0,
        "starts near ln(V): {}",
        losses[&1]
    );
    let last = r.final_loss.unwrap();
    assert!(
        last < vocab.ln() - 2.0,
        "loss fell well below ln(V) = {}: {last}",
        vocab.ln()
    );
    let sample = ev
        .iter()
        .find_map(|e| match e {
            Event::Sample { text, .. } => Some(text.clone()),
            _ => None,
        })
        .unwrap();
    let letters = sample
        .chars()
        .filter(|c| c.is_alphabetic() || *c == ' ')
        .count();
    assert!(
        letters * 10 >= sample.chars().count() * 7,
        "sample is mostly letters: {sample:?}"
    );
    let tok =
        tunesmith_engine::data::tokenizer::load(&dir.path().join("checkpoints/step-60")).unwrap();
    assert!(tok.get_vocab_size(true) <= 320);
    assert!(r.val_loss.is_some());
}

fn expect_err(r: tunesmith_engine::Result<TrainSummary>, needle: &str) -> Error {
    let e = r.expect_err("should fail");
    assert!(e.to_string().contains(needle), "`{needle}` not in: {e}");
    e
}

#[test]
fn bad_input_fails_clearly_and_writes_nothing_over() {
    let tmp = tempfile::tempdir().unwrap();
    let empty = tmp.path().join("empty.txt");
    std::fs::write(&empty, "\n \n").unwrap();
    let binary = tmp.path().join("binary.txt");
    std::fs::write(&binary, [0u8, 1, 2, 255, 0, 7]).unwrap();
    let short = tmp.path().join("short.txt");
    std::fs::write(&short, "Only a few words.").unwrap();
    let out = tmp.path().join("run");
    let with = |data: Vec<PathBuf>| TrainConfig {
        data,
        ..finetune_cfg(2)
    };

    expect_err(run(&with(vec![empty.clone()]), &out, None).0, "is empty");
    expect_err(
        run(&with(vec![binary.clone()]), &out, None).0,
        "not a text file",
    );
    expect_err(
        run(&with(vec![tmp.path().join("missing.txt")]), &out, None).0,
        "does not exist",
    );
    expect_err(run(&with(vec![short]), &out, None).0, "less than one block");
    expect_err(
        run(
            &TrainConfig {
                lr: 0.0,
                ..finetune_cfg(2)
            },
            &out,
            None,
        )
        .0,
        "`lr`",
    );
    expect_err(
        run(
            &TrainConfig {
                batch_size: 0,
                ..finetune_cfg(2)
            },
            &out,
            None,
        )
        .0,
        "`batch_size`",
    );
    expect_err(
        run(
            &TrainConfig {
                val_frac: 1.0,
                ..finetune_cfg(2)
            },
            &out,
            None,
        )
        .0,
        "`val_frac`",
    );

    // One good file among bad ones: the bad ones are skipped with a warning.
    let (r, ev) = run(&with(vec![empty, binary, corpus()]), &out, None);
    assert_eq!(r.unwrap().steps, 2);
    let warnings = ev
        .iter()
        .filter(|e| {
            matches!(
                e,
                Event::Log {
                    level: tunesmith_engine::LogLevel::Warn,
                    ..
                }
            )
        })
        .count();
    assert_eq!(warnings, 2);

    // A run that fails after starting is marked failed, with the reason.
    let bad_lr = TrainConfig {
        lr: 0.9,
        warmup: 0,
        clip: 0.0,
        ..with(vec![corpus()])
    };
    let failing = tmp.path().join("failing");
    if run(
        &TrainConfig {
            steps: Some(30),
            ..bad_lr
        },
        &failing,
        None,
    )
    .0
    .is_err()
    {
        let info = tunesmith_engine::runs::RunDir::new(&failing)
            .read_info()
            .unwrap()
            .unwrap();
        assert_eq!(info.status, RunStatus::Failed);
        assert!(info.error.unwrap().contains("lower the learning rate"));
    }

    // Starting fresh over an existing run is refused, and its checkpoint is untouched.
    let ckpt = out.join("checkpoints/step-2/model.safetensors");
    let before = std::fs::read(&ckpt).unwrap();
    let e = train(
        &finetune_cfg(2),
        &out,
        Restore::Fresh,
        &Device::Cpu,
        &CancelToken::new(),
        &mut NullSink,
    )
    .unwrap_err();
    assert!(e.to_string().contains("already holds checkpoints"), "{e}");
    assert_eq!(std::fs::read(&ckpt).unwrap(), before);
}

#[test]
fn bad_models_fail_clearly() {
    let tmp = tempfile::tempdir().unwrap();
    // A folder that is not a model.
    let e = read_config(tmp.path()).unwrap_err();
    assert!(e.to_string().contains("no config.json"), "{e}");
    // A truncated safetensors file.
    let dir = tmp.path().join("broken");
    std::fs::create_dir(&dir).unwrap();
    let src = fixtures().join("gpt2-tiny");
    for f in ["config.json", "tokenizer.json"] {
        std::fs::copy(src.join(f), dir.join(f)).unwrap();
    }
    let weights = std::fs::read(src.join("model.safetensors")).unwrap();
    std::fs::write(dir.join("model.safetensors"), &weights[..weights.len() / 2]).unwrap();
    let cfg = read_config(&dir).unwrap();
    let e = read_weights(&dir, &cfg, &Device::Cpu).unwrap_err();
    assert!(e.to_string().contains("damaged or incomplete"), "{e}");
    // Weights that do not match the config.
    let mut big = cfg.clone();
    big.n_embd = 64;
    std::fs::write(dir.join("model.safetensors"), &weights).unwrap();
    let e = read_weights(&dir, &big, &Device::Cpu).unwrap_err();
    assert!(e.to_string().contains("do not match"), "{e}");
}
