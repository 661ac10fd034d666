//! Training: gradients reach every variable, a batch overfits, a model learns from scratch, a
//! stopped run resumes to the same loss, and bad input fails clearly without touching earlier work.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor, Var};
use common::fixtures;
use tunesmith_engine::data::batches::{Batch, Sampler};
use tunesmith_engine::data::{dataset, prepare, tokenizer};
use tunesmith_engine::model::load::{read_config, read_weights, save_weights};
use tunesmith_engine::model::ops::IGNORE_INDEX;
use tunesmith_engine::model::DropoutRng;
use tunesmith_engine::model::{Model, ModelConfig};
use tunesmith_engine::rng::Rng;
use tunesmith_engine::runs::RunStatus;
use tunesmith_engine::settings::{ModelSpec, TrainConfig};
use tunesmith_engine::train::doctor::{FindingKind, Remedy};
use tunesmith_engine::train::optim::{AdamW, AdamWParams};
use tunesmith_engine::train::step::accumulate;
use tunesmith_engine::train::{into_trainable, train, Restore, TrainSummary};
use tunesmith_engine::{CancelToken, Error, Event, NullSink};

fn tiny_vars() -> (Model, Vec<(String, Var)>) {
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
    (Model::new(&tensors, &cfg).unwrap(), vars)
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
    assert_eq!(vars.len(), model.config().weight_shapes().len());
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

/// A resumed run's step losses equal the straight run's over `steps` (to 1e-5, relative).
fn assert_same_losses(
    got: &HashMap<u64, f32>,
    want: &HashMap<u64, f32>,
    steps: std::ops::RangeInclusive<u64>,
    label: &str,
) {
    for s in steps {
        assert!(
            (got[&s] - want[&s]).abs() <= 1e-5 * want[&s].abs(),
            "{label} step {s}: {} vs {}",
            got[&s],
            want[&s]
        );
    }
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
    assert_same_losses(&got, &want, 7..=12, "");
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

/// The Llama family trains through the same loop: Qwen2 (biases, untied head, two end ids) learns,
/// a stopped run resumes to the same losses, and each checkpoint is a HF folder with HF's names
/// and the model's own end ids.
#[test]
fn a_llama_family_model_trains_resumes_and_saves_a_hf_folder() {
    let cfg = TrainConfig {
        model: ModelSpec::Source(fixtures().join("qwen2-tiny").display().to_string()),
        lr: 1e-2,
        ..finetune_cfg(8)
    };
    let straight = tempfile::tempdir().unwrap();
    let (r, ev) = run(&cfg, straight.path(), None);
    r.unwrap();
    let want = step_losses(&ev);
    assert!(want[&8] < want[&1] - 0.5, "{want:?}");
    let parted = tempfile::tempdir().unwrap();
    let (r1, _) = run(&cfg, parted.path(), Some(4));
    assert_eq!(r1.unwrap().steps, 4);
    let (r2, ev2) = run(&cfg, parted.path(), None);
    assert_eq!(r2.unwrap().steps, 8);
    let got = step_losses(&ev2);
    assert_same_losses(&got, &want, 5..=8, "");
    let ckpt = parted.path().join("checkpoints/step-8");
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(ckpt.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["model_type"], "qwen2");
    assert_eq!(config["eos_token_id"], serde_json::json!([0, 5]));
    let raw = candle_core::safetensors::load(ckpt.join("model.safetensors"), &Device::Cpu).unwrap();
    assert!(raw.contains_key("model.layers.1.self_attn.q_proj.bias"));
    assert!(raw.contains_key("lm_head.weight"));
    let m = tunesmith_engine::model::load::load_dir(&ckpt, &Device::Cpu).unwrap();
    assert_eq!(m.config.eos_ids(), vec![0, 5]);
}

/// LoRA for both families: only the adapters are trained and saved (PEFT's files, no copy of the
/// base), a stopped run resumes to the same losses, the checkpoint loads as a model (merged) with
/// the logits of the unmerged adapters, and PEFT itself loads it to the same logits when installed.
#[test]
fn lora_trains_only_adapters_resumes_and_merges() {
    use tunesmith_engine::model::lora::{is_adapter, LoraSettings};
    for (model, lr) in [("qwen2-tiny", 1e-2), ("gpt2-tiny", 1e-2)] {
        let cfg = TrainConfig {
            model: ModelSpec::Source(fixtures().join(model).display().to_string()),
            lr,
            lora: Some(LoraSettings::default()),
            ..finetune_cfg(8)
        };
        let straight = tempfile::tempdir().unwrap();
        let (r, ev) = run(&cfg, straight.path(), None);
        r.unwrap();
        let want = step_losses(&ev);
        assert!(want[&8] < want[&1], "{model}: {want:?}");
        let parted = tempfile::tempdir().unwrap();
        run(&cfg, parted.path(), Some(4)).0.unwrap();
        let (r2, ev2) = run(&cfg, parted.path(), None);
        assert_eq!(r2.unwrap().steps, 8);
        let got = step_losses(&ev2);
        assert_same_losses(&got, &want, 5..=8, model);
        let ckpt = parted.path().join("checkpoints/step-8");
        assert!(
            !ckpt.join("model.safetensors").exists(),
            "the base is not copied"
        );
        let raw =
            candle_core::safetensors::load(ckpt.join("adapter_model.safetensors"), &Device::Cpu)
                .unwrap();
        assert!(raw
            .keys()
            .all(|k| k.starts_with("base_model.model.") && is_adapter(k)));
        let opt = candle_core::safetensors::load(ckpt.join("optimizer.safetensors"), &Device::Cpu)
            .unwrap();
        assert!(
            opt.keys().all(|k| k.contains(".lora_")),
            "only adapters are in the optimiser"
        );
        // Merged (as chat and export load it) equals unmerged (as training runs it).
        let (base_dir, source, adapter) =
            tunesmith_engine::model::load::read_adapter_model(&ckpt, None, &Device::Cpu).unwrap();
        let (mcfg, weights) = (source.config, source.weights);
        assert_eq!(
            std::fs::canonicalize(&base_dir).unwrap(),
            std::fs::canonicalize(fixtures().join(model)).unwrap()
        );
        let unmerged = Model::with_lora(&weights, &mcfg, Some(adapter.runtime)).unwrap();
        let merged = tunesmith_engine::model::load::load_dir(&ckpt, &Device::Cpu).unwrap();
        let ids = [5u32, 17, 33, 2, 90, 11];
        let a = common::full_logits(&unmerged, &ids);
        let b = common::full_logits(&merged.model, &ids);
        let base =
            tunesmith_engine::model::load::load_dir(&fixtures().join(model), &Device::Cpu).unwrap();
        let c = common::full_logits(&base.model, &ids);
        let diff = |x: &[Vec<f32>], y: &[Vec<f32>]| {
            x.iter()
                .flatten()
                .zip(y.iter().flatten())
                .map(|(p, q)| (p - q).abs())
                .fold(0f32, f32::max)
        };
        assert!(diff(&a, &b) < 1e-4, "{model}: merged {}", diff(&a, &b));
        assert!(diff(&a, &c) > 1e-3, "{model}: the adapter changed nothing");
        peft_agrees(&ckpt, &fixtures().join(model), &ids, &a);
    }
}

/// A GGUF file is a source for training too (LoRA here: the adapter names the .gguf as its base),
/// and a LoRA run continues only the way it started.
#[test]
fn gguf_sources_train_and_lora_runs_keep_their_settings() {
    use tunesmith_engine::model::lora::LoraSettings;
    let gguf = fixtures().join("gguf/llama-tiny-f32.gguf");
    let cfg = TrainConfig {
        model: ModelSpec::Source(gguf.display().to_string()),
        lora: Some(LoraSettings::default()),
        ..finetune_cfg(2)
    };
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    run(&cfg, &out, None).0.unwrap();
    let ckpt = out.join("checkpoints/step-2");
    let adapter: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(ckpt.join("adapter_config.json")).unwrap())
            .unwrap();
    assert!(adapter["base_model_name_or_path"]
        .as_str()
        .unwrap()
        .ends_with("llama-tiny-f32.gguf"));
    tunesmith_engine::model::load::load_dir(&ckpt, &Device::Cpu).unwrap();
    // Continuing with LoRA off, or with another rank, is refused with the reason.
    let off = TrainConfig {
        lora: None,
        ..cfg.clone()
    };
    expect_err(run(&off, &out, None).0, "this run trains LoRA adapters");
    let other = TrainConfig {
        lora: Some(LoraSettings {
            rank: 4,
            ..LoraSettings::default()
        }),
        ..cfg.clone()
    };
    expect_err(run(&other, &out, None).0, "rank 8");
    // A GGUF whose rope scaling cannot be written into config.json is not trained from.
    let llama3 = TrainConfig {
        model: ModelSpec::Source(
            fixtures()
                .join("gguf/llama3-tiny-f32.gguf")
                .display()
                .to_string(),
        ),
        ..finetune_cfg(2)
    };
    expect_err(run(&llama3, &tmp.path().join("l3"), None).0, "rope scaling");
}

/// Chat transcripts and question–answer pairs are learned in the model's own chat template: the
/// prompt is what chat gives the model (read, not learned), the reply and its end-of-turn tokens
/// are learned.
#[test]
fn chat_and_pair_examples_train_in_the_models_own_template() {
    use tunesmith_engine::chat::{ChatTemplate, Message};
    let tmp = tempfile::tempdir().unwrap();
    let chats = tmp.path().join("support.jsonl");
    let mut lines = String::new();
    for i in 0..6 {
        lines.push_str(
            &serde_json::json!({"messages": [
                {"role": "system", "content": "You answer refund questions."},
                {"role": "user", "content": format!("Can I return order {i}?")},
                {"role": "assistant", "content": format!("Yes, order {i} can be returned within 30 days.")}
            ]})
            .to_string(),
        );
        lines.push('\n');
        lines.push_str(
            &serde_json::json!({"prompt": format!("Who approves refund {i}?"), "completion": "A manager."})
                .to_string(),
        );
        lines.push('\n');
    }
    std::fs::write(&chats, lines).unwrap();
    let model = fixtures().join("smollm2-chat-tiny");
    let cfg = TrainConfig {
        model: ModelSpec::Source(model.display().to_string()),
        data: vec![chats],
        val_frac: 0.0,
        block_size: 64,
        ..finetune_cfg(2)
    };
    let out = tmp.path().join("run");
    run(&cfg, &out, None).0.unwrap();
    let data = dataset::load(&out.join("dataset")).unwrap();
    let (ids, mask) = (
        &data.train,
        data.train_mask.as_ref().expect("pairs are masked"),
    );
    let template = ChatTemplate::load(&model).unwrap().unwrap();
    let tok = tunesmith_engine::data::tokenizer::load(&model).unwrap();
    let enc = |s: &str| tunesmith_engine::data::tokenizer::encode(&tok, s).unwrap();
    let none = serde_json::Map::new();
    let expect = |messages: &[Message]| {
        let prompt = template
            .render(&messages[..messages.len() - 1], true, &none)
            .unwrap();
        let full = template.render(messages, false, &none).unwrap();
        let reply = full.strip_prefix(prompt.as_str()).unwrap().to_string();
        assert!(reply.contains("<|im_end|>"), "{reply:?}");
        let (p, r) = (enc(&prompt), enc(&reply));
        let want: Vec<u32> = [p.clone(), r.clone()].concat();
        let at = ids
            .windows(want.len())
            .position(|w| w == want.as_slice())
            .unwrap_or_else(|| panic!("not in the token stream: {prompt:?} + {reply:?}"));
        assert!(
            mask[at..at + p.len()].iter().all(|&m| m == 0),
            "the prompt is read"
        );
        assert!(
            mask[at + p.len()..at + want.len()].iter().all(|&m| m == 1),
            "the reply is learned"
        );
    };
    expect(&[
        Message::new("system", "You answer refund questions."),
        Message::new("user", "Can I return order 3?"),
        Message::new("assistant", "Yes, order 3 can be returned within 30 days."),
    ]);
    // A plain pair is one user turn and one reply (SmolLM2's template adds its default system).
    expect(&[
        Message::new("user", "Who approves refund 4?"),
        Message::new("assistant", "A manager."),
    ]);
}

/// PEFT loads the adapter onto the base model and gives `want`; skipped (said so) without Python's
/// peft.
fn peft_agrees(adapter: &Path, base: &Path, ids: &[u32], want: &[Vec<f32>]) {
    let script = fixtures().join("make_peft_fixtures.py");
    let mut cmd = std::process::Command::new("python3");
    cmd.arg(&script).arg("--logits").arg(adapter).arg(base);
    cmd.args(ids.iter().map(|i| i.to_string()));
    let out = match cmd.output() {
        Ok(o) if o.status.success() => o,
        Ok(o) => {
            let err = String::from_utf8_lossy(&o.stderr);
            if err.contains("No module named") {
                eprintln!(
                    "skipped the PEFT check: {}",
                    err.lines().last().unwrap_or("")
                );
                return;
            }
            panic!("PEFT could not load the adapter: {err}");
        }
        Err(e) => {
            eprintln!("skipped the PEFT check: no python3 ({e})");
            return;
        }
    };
    let theirs: Vec<Vec<f32>> = serde_json::from_slice(&out.stdout).unwrap();
    let max = want
        .iter()
        .flatten()
        .zip(theirs.iter().flatten())
        .map(|(p, q)| (p - q).abs())
        .fold(0f32, f32::max);
    assert!(max < 1e-4, "PEFT's logits differ from ours by {max}");
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
    // A new run is listed from its first moment; one that fails while its data is prepared says
    // why in its run.json.
    let info = tunesmith_engine::runs::RunDir::new(&out)
        .read_info()
        .unwrap()
        .expect("run.json written before the data is prepared");
    assert_eq!(info.status, RunStatus::Failed);
    assert!(info.error.unwrap().contains("is empty"));
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

    // A run that fails after starting (a model whose weights hold NaN: the first loss is NaN) is
    // marked failed, with the reason.
    let poisoned = tmp.path().join("poisoned");
    copy_model(&fixtures().join("gpt2-tiny"), &poisoned, |w| {
        let t = &w["h.0.ln_1.weight"];
        let nan = Tensor::full(f32::NAN, t.dims(), &Device::Cpu).unwrap();
        w.insert("h.0.ln_1.weight".into(), nan);
    });
    let failing = tmp.path().join("failing");
    let bad = TrainConfig {
        model: ModelSpec::Source(poisoned.display().to_string()),
        ..with(vec![corpus()])
    };
    expect_err(run(&bad, &failing, None).0, "lower the learning rate");
    let info = tunesmith_engine::runs::RunDir::new(&failing)
        .read_info()
        .unwrap()
        .unwrap();
    assert_eq!(info.status, RunStatus::Failed);
    assert!(info.error.unwrap().contains("lower the learning rate"));

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
    let ModelConfig::Gpt2(mut big) = cfg.clone() else {
        panic!("a GPT-2 fixture")
    };
    big.n_embd = 64;
    let big = ModelConfig::from(big);
    std::fs::write(dir.join("model.safetensors"), &weights).unwrap();
    let e = read_weights(&dir, &big, &Device::Cpu).unwrap_err();
    assert!(e.to_string().contains("do not match"), "{e}");
}

/// A copy of the model folder `from` in `to`, its weights changed by `edit`.
fn copy_model(from: &Path, to: &Path, edit: impl FnOnce(&mut HashMap<String, Tensor>)) {
    std::fs::create_dir_all(to).unwrap();
    for f in ["config.json", "tokenizer.json"] {
        std::fs::copy(from.join(f), to.join(f)).unwrap();
    }
    let cfg = read_config(from).unwrap();
    let mut w = read_weights(from, &cfg, &Device::Cpu).unwrap();
    edit(&mut w);
    save_weights(&w, &cfg, &to.join("model.safetensors")).unwrap();
}

/// The fixture model with dropout off, its weights trainable.
fn trainable_tiny() -> (Model, AdamW) {
    let dir = fixtures().join("gpt2-tiny");
    let mut cfg = read_config(&dir).unwrap();
    cfg.set_dropout(0.0);
    let (tensors, params) = into_trainable(
        read_weights(&dir, &cfg, &Device::Cpu).unwrap(),
        &cfg,
        false,
        false,
    )
    .unwrap();
    (
        Model::new(&tensors, &cfg).unwrap(),
        AdamW::new(params).unwrap(),
    )
}

fn batch_of(rows: &[(Vec<u32>, Vec<u32>)]) -> Batch {
    Batch {
        inputs: rows.iter().flat_map(|r| r.0.clone()).collect(),
        targets: rows.iter().flat_map(|r| r.1.clone()).collect(),
        batch: rows.len(),
        block: rows[0].0.len(),
    }
}

#[test]
fn accumulated_gradients_equal_those_of_one_batch_holding_every_micro_batch() {
    let (model, opt) = trainable_tiny();
    // A row of 16 inputs whose last `learn` targets are learned (the rest are prompt).
    let row = |seed: u32, learn: usize| {
        let ids: Vec<u32> = (0..17).map(|i| (seed * 31 + i * 7) % 383 + 1).collect();
        let targets = (0..16)
            .map(|j| {
                if j >= 16 - learn {
                    ids[j + 1]
                } else {
                    IGNORE_INDEX
                }
            })
            .collect();
        (ids[..16].to_vec(), targets)
    };
    // The first micro-batch learns 3 targets, the second 24.
    let rows = [row(1, 1), row(2, 2), row(3, 12), row(4, 12)];
    let micro = [batch_of(&rows[..2]), batch_of(&rows[2..])];
    let dev = Device::Cpu;
    let (g2, loss2) = accumulate(&model, &opt.params, &micro, 0, 0, false, &dev).unwrap();
    let (g1, loss1) =
        accumulate(&model, &opt.params, &[batch_of(&rows)], 0, 0, false, &dev).unwrap();
    assert!((loss2 - loss1).abs() <= 1e-5 * loss1, "{loss2} vs {loss1}");
    for p in &opt.params {
        let (a, b) = (g2.get(&p.var).unwrap(), g1.get(&p.var).unwrap());
        let diff: f32 = common::max_abs_diff(a, b);
        let size: f32 = common::max_abs(b);
        assert!(
            diff <= 1e-5 * size.max(1e-6),
            "{}: {diff} of {size}",
            p.name
        );
    }
    // The mean of the two micro-batches' means is a different number.
    let mean = |b: &Batch| -> f32 {
        let ids = Tensor::from_slice(&b.inputs, (b.batch, b.block), &dev).unwrap();
        let h = model.hidden(&ids, None, None).unwrap();
        model
            .eval_loss(&h, &b.targets)
            .unwrap()
            .to_scalar()
            .unwrap()
    };
    let mean_of_means = (mean(&micro[0]) + mean(&micro[1])) / 2.0;
    assert!(
        (mean_of_means - loss1).abs() > 1e-3,
        "{mean_of_means} vs {loss1}"
    );
}

/// A question–answer file whose questions run far past a block of 16 tokens.
fn long_prompt_examples(dir: &Path) -> PathBuf {
    let path = dir.join("qa.jsonl");
    let lines: Vec<String> = (0..24)
        .map(|i| {
            let prompt = format!(
                "Question {i}: the warehouse ships every order within two days, the shop opens at nine, and returns are free for business customers; so what should customer number {i} be told?"
            );
            let completion = format!("Customer {i} gets a refund.");
            serde_json::json!({"prompt": prompt, "completion": completion}).to_string()
        })
        .collect();
    std::fs::write(&path, lines.join("\n")).unwrap();
    path
}

#[test]
fn examples_with_prompts_longer_than_the_block_train_and_resume_checks_the_mask() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = TrainConfig {
        data: vec![long_prompt_examples(tmp.path())],
        block_size: 16,
        steps: Some(6),
        eval_every: 0,
        save_every: 2,
        ..finetune_cfg(6)
    };
    let out = tmp.path().join("run");
    let (r, ev) = run(&cfg, &out, Some(3));
    let r = r.unwrap();
    assert_eq!((r.status.as_str(), r.steps), ("stopped", 3));
    assert!(step_losses(&ev).values().all(|l| l.is_finite()));
    // The prompts really are longer than the block: most of the training tokens are masked.
    let data = dataset::load(&out.join("dataset")).unwrap();
    let mask = data.train_mask.unwrap();
    assert!(mask.iter().filter(|&&m| m == 0).count() * 2 > mask.len());
    // A mask that does not belong to its tokens stops the resume with an error naming the file.
    std::fs::write(out.join("dataset/train.mask"), &mask[..mask.len() - 3]).unwrap();
    let e = expect_err(run(&cfg, &out, None).0, "train.mask");
    assert!(e.to_string().contains("do not belong together"), "{e}");
}

#[test]
fn chunking_options_apply_when_training_from_files() {
    let tmp = tempfile::tempdir().unwrap();
    let eots = |run: &Path| {
        let d = dataset::load(&run.join("dataset")).unwrap();
        d.train.iter().chain(&d.val).filter(|&&t| t == 0).count()
    };
    let plain = tmp.path().join("plain");
    run(&finetune_cfg(1), &plain, None).0.unwrap();
    assert_eq!(eots(&plain), 1, "the corpus is one document");
    let chunked = tmp.path().join("chunked");
    let mut cfg = finetune_cfg(1);
    cfg.prepare.chunk_tokens = 200;
    cfg.prepare.overlap = 20;
    run(&cfg, &chunked, None).0.unwrap();
    assert!(eots(&chunked) > 5, "{} chunks", eots(&chunked));
}

#[test]
fn training_from_a_dataset_keeps_its_split() {
    let tmp = tempfile::tempdir().unwrap();
    let opts = prepare::PrepareOptions {
        val_frac: 0.3,
        seed: 5,
        chunk_tokens: 200,
        ..Default::default()
    };
    let model = fixtures().join("gpt2-tiny");
    let tok = tokenizer::load(&model).unwrap();
    let ds = tmp.path().join("dataset");
    let c = prepare::collect(&[corpus()], &opts, &mut NullSink).unwrap();
    prepare::write(&ds, c, &opts, &tok, "gpt2-tiny", &mut NullSink).unwrap();
    let want = dataset::load(&ds).unwrap();
    let cfg = TrainConfig {
        data: vec![],
        dataset: Some(ds),
        ..finetune_cfg(1)
    };
    let out = tmp.path().join("run");
    run(&cfg, &out, None).0.unwrap();
    let got = dataset::load(&out.join("dataset")).unwrap();
    assert!(!want.val.is_empty());
    assert_eq!((got.train, got.val), (want.train, want.val));
}

#[test]
fn weight_decay_applies_to_matrices_and_freezing_keeps_the_rest() {
    let dir = fixtures().join("gpt2-tiny");
    let cfg = read_config(&dir).unwrap();
    let weights = read_weights(&dir, &cfg, &Device::Cpu).unwrap();
    let (_, params) = into_trainable(weights.clone(), &cfg, false, false).unwrap();
    assert_eq!(params.len(), weights.len());
    for (name, _, decay) in &params {
        let matrix = name.ends_with("c_attn.weight")
            || name.ends_with("c_proj.weight")
            || name.ends_with("c_fc.weight");
        assert_eq!(*decay, matrix, "{name}");
    }
    let (_, layers) = into_trainable(weights, &cfg, true, false).unwrap();
    assert!(layers.iter().all(|(n, _, _)| n.starts_with("h.")));
    assert_eq!(layers.len(), 12 * 2);

    // A run that trains only the blocks leaves embeddings and the final norm as they were.
    let tmp = tempfile::tempdir().unwrap();
    let frozen = TrainConfig {
        only_train_transformer_layers: true,
        ..finetune_cfg(2)
    };
    run(&frozen, tmp.path(), None).0.unwrap();
    let ckpt = tmp.path().join("checkpoints/step-2");
    let before = read_weights(&dir, &cfg, &Device::Cpu).unwrap();
    let after = read_weights(&ckpt, &read_config(&ckpt).unwrap(), &Device::Cpu).unwrap();
    let same = |n: &str| {
        let d: f32 = common::max_abs_diff(&before[n], &after[n]);
        d == 0.0
    };
    for n in ["wte.weight", "wpe.weight", "ln_f.weight", "ln_f.bias"] {
        assert!(same(n), "{n} changed");
    }
    assert!(!same("h.0.attn.c_attn.weight"));
}

#[test]
fn dropout_override_and_grad_accum_shape_the_first_step() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = TrainConfig {
        dropout: Some(0.0),
        grad_accum: 2,
        eval_every: 0,
        ..finetune_cfg(1)
    };
    let out = tmp.path().join("off");
    let (r, ev) = run(&cfg, &out, None);
    r.unwrap();
    let got = step_losses(&ev)[&1];
    // Without dropout the first loss is the evaluation-mode loss of both micro-batches' windows.
    let dir = fixtures().join("gpt2-tiny");
    let model = Model::new(
        &read_weights(&dir, &read_config(&dir).unwrap(), &Device::Cpu).unwrap(),
        &read_config(&dir).unwrap(),
    )
    .unwrap();
    let data = dataset::load(&out.join("dataset")).unwrap();
    let sampler = Sampler::new(&data.train, None, Some(0), cfg.block_size).unwrap();
    let want: f32 = (0..2)
        .map(|micro| {
            let b = sampler.batch(cfg.batch_size, cfg.seed, 0, micro);
            let ids = Tensor::from_slice(&b.inputs, (b.batch, b.block), &Device::Cpu).unwrap();
            let h = model.hidden(&ids, None, None).unwrap();
            model
                .loss(&h, &b.targets)
                .unwrap()
                .to_scalar::<f32>()
                .unwrap()
                / 2.0
        })
        .sum();
    assert!((got - want).abs() <= 1e-5 * want, "{got} vs {want}");
    // The fixture's own dropout (0.1), or a larger override, changes that loss.
    let (r, ev) = run(
        &TrainConfig {
            dropout: Some(0.5),
            ..cfg.clone()
        },
        &tmp.path().join("half"),
        None,
    );
    r.unwrap();
    assert!((step_losses(&ev)[&1] - want).abs() > 1e-3);
}

#[test]
fn an_untied_head_is_loaded_and_saved() {
    let tmp = tempfile::tempdir().unwrap();
    let src = fixtures().join("gpt2-tiny");
    let untied = tmp.path().join("untied");
    let mut rng = Rng::new(3);
    copy_model(&src, &untied, |w| {
        let (v, c) = w["wte.weight"].dims2().unwrap();
        let head: Vec<f32> = (0..v * c).map(|_| rng.normal() * 0.5).collect();
        w.insert(
            "lm_head.weight".into(),
            Tensor::from_vec(head, (v, c), &Device::Cpu).unwrap(),
        );
    });
    let mut json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(untied.join("config.json")).unwrap())
            .unwrap();
    json["tie_word_embeddings"] = false.into();
    std::fs::write(untied.join("config.json"), json.to_string()).unwrap();

    let ids = [5u32, 17, 33, 2, 90];
    let tied = tunesmith_engine::model::load::load_dir(&src, &Device::Cpu).unwrap();
    let loaded = tunesmith_engine::model::load::load_dir(&untied, &Device::Cpu).unwrap();
    let cfg = read_config(&untied).unwrap();
    let w = read_weights(&untied, &cfg, &Device::Cpu).unwrap();
    let head = w.get("lm_head.weight").expect("the untied head is kept");
    // Logits are the final hidden states times the untied head, not the embedding.
    let x = Tensor::from_slice(&ids, (1, 5), &Device::Cpu).unwrap();
    let h = loaded.model.hidden(&x, None, None).unwrap();
    let want = h.matmul(&head.t().unwrap()).unwrap();
    let got = loaded.model.logits(&h).unwrap();
    let diff: f32 = common::max_abs_diff(&got, &want);
    assert!(diff < 1e-5, "{diff}");
    let tied_logits = tied.model.forward(&x).unwrap().squeeze(0).unwrap();
    let apart: f32 = common::max_abs_diff(&got, &tied_logits);
    assert!(apart > 0.1, "the head made no difference: {apart}");
    // Saved again (as a checkpoint would), the head is where Hugging Face looks for it.
    let again = tmp.path().join("again.safetensors");
    save_weights(&w, &cfg, &again).unwrap();
    let raw = candle_core::safetensors::load(&again, &Device::Cpu).unwrap();
    assert!(
        raw.contains_key("lm_head.weight"),
        "{:?}",
        raw.keys().collect::<Vec<_>>()
    );
}

/// Stop while the documents are read (or the model downloads) ends the run there, as a stop: no
/// step is taken and the run says `stopped`, not `failed`.
#[test]
fn stop_during_preparation_stops_before_the_first_step() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    // The first progress report of the preparation is the moment Stop is pressed.
    let (summary, steps, _) =
        common::train_stopped_during_preparation(&finetune_cfg(3), &out, |_, _, _| true);
    assert_eq!(
        (summary.status, summary.steps, steps),
        (RunStatus::Stopped, 0, 0)
    );
    assert!(summary.checkpoint.is_none());
    let info = tunesmith_engine::runs::RunDir::new(&out)
        .read_info()
        .unwrap()
        .unwrap();
    assert_eq!((info.status, info.error), (RunStatus::Stopped, None));
}

/// Recomputing each block's activations during the backward pass gives the plain pass's loss and
/// gradients, with dropout on (the recomputed blocks draw the same masks), for both families,
/// full fine-tuning (a tied token table gets both of its gradients) and LoRA.
#[test]
fn recomputed_activations_give_the_plain_gradients() {
    use tunesmith_engine::model::lora::{init_adapters, LoraSettings};
    for (name, lora) in [
        ("gpt2-tiny", false),
        ("gpt2-tiny", true),
        ("qwen2-tiny", false),
        ("qwen2-tiny", true),
    ] {
        let dir = fixtures().join(name);
        let mut cfg = read_config(&dir).unwrap();
        cfg.set_dropout(0.2);
        let mut weights = read_weights(&dir, &cfg, &Device::Cpu).unwrap();
        let settings = LoraSettings {
            dropout: 0.1,
            ..LoraSettings::default()
        };
        if lora {
            let mut rng = Rng::new(9);
            for (k, t) in init_adapters(&cfg, &settings, 1, &Device::Cpu).unwrap() {
                // A non-zero B, so that A's gradient is not trivially zero.
                let t = if k.contains("lora_B") {
                    let n = t.elem_count();
                    let v: Vec<f32> = (0..n).map(|_| rng.normal() * 0.1).collect();
                    Tensor::from_vec(v, t.shape(), &Device::Cpu).unwrap()
                } else {
                    t
                };
                weights.insert(k, t);
            }
        }
        let (tensors, params) = into_trainable(weights, &cfg, false, lora).unwrap();
        let model = if lora {
            Model::with_lora(&tensors, &cfg, Some(settings.runtime())).unwrap()
        } else {
            Model::new(&tensors, &cfg).unwrap()
        };
        let opt = AdamW::new(params).unwrap();
        let rows: Vec<(Vec<u32>, Vec<u32>)> = (0..3u32)
            .map(|s| {
                let ids: Vec<u32> = (0..13).map(|i| (s * 31 + i * 7) % 97 + 1).collect();
                let mut targets = ids[1..].to_vec();
                targets[0] = IGNORE_INDEX;
                (ids[..12].to_vec(), targets)
            })
            .collect();
        let micro = [batch_of(&rows[..2]), batch_of(&rows[2..])];
        let dev = Device::Cpu;
        let (plain, l1) = accumulate(&model, &opt.params, &micro, 7, 3, false, &dev).unwrap();
        let (re, l2) = accumulate(&model, &opt.params, &micro, 7, 3, true, &dev).unwrap();
        assert!((l1 - l2).abs() <= 1e-6 * l1, "{name}: {l1} vs {l2}");
        for p in &opt.params {
            let a = plain
                .get(&p.var)
                .unwrap_or_else(|| panic!("{name}: `{}` has no gradient", p.name));
            let b = re
                .get(&p.var)
                .unwrap_or_else(|| panic!("{name}: `{}` lost its gradient", p.name));
            let diff: f32 = common::max_abs_diff(a, b);
            let size: f32 = common::max_abs(a);
            assert!(size > 0.0, "{name}: `{}` has a zero gradient", p.name);
            // Detached: a kept gradient must not keep its forward pass's tensors alive.
            assert!(
                !a.track_op() && !b.track_op(),
                "{name}: `{}` holds its graph",
                p.name
            );
            assert!(
                diff <= 1e-5 * size,
                "{name}: `{}` differs by {diff} of {size}",
                p.name
            );
        }
    }
}

/// A run made to over-fit (a tiny text, a high learning rate): validation falls, then rises.
/// Early stopping ends it `patience` checks after the best one; the best checkpoint is kept
/// besides the newest (keep_checkpoints 1) and is what the run's model means from then on.
#[test]
fn early_stopping_ends_an_over_fitting_run_and_keeps_the_best() {
    let tmp = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(corpus()).unwrap();
    let small = tmp.path().join("small.txt");
    std::fs::write(&small, &text[..1200]).unwrap();
    let cfg = TrainConfig {
        data: vec![small],
        steps: Some(200),
        lr: 1e-2,
        eval_every: 10,
        save_every: 20,
        keep_checkpoints: 1,
        val_frac: 0.3,
        early_stop_patience: Some(3),
        ..finetune_cfg(200)
    };
    let dir = tmp.path().join("run");
    let (summary, events) = run(&cfg, &dir, None);
    let summary = summary.unwrap();
    let evals: Vec<(u64, f32)> = events
        .iter()
        .filter_map(|e| match e {
            Event::Eval { step, val_loss, .. } => Some((*step, *val_loss)),
            _ => None,
        })
        .collect();
    let (best_step, best) =
        evals
            .iter()
            .copied()
            .fold((0, f32::INFINITY), |b, e| if e.1 < b.1 { e } else { b });
    assert!(summary.stopped_early, "{evals:?}");
    assert_eq!(summary.status, tunesmith_engine::runs::RunStatus::Completed);
    assert_eq!(summary.steps, best_step + 3 * 10, "{evals:?}");
    assert!(summary.steps < 200);
    assert_eq!(summary.best_val_loss, Some(best));
    let best_dir = dir.join("checkpoints").join(format!("step-{best_step}"));
    assert_eq!(summary.best_checkpoint.as_deref(), Some(best_dir.as_path()));
    let mut kept: Vec<String> = std::fs::read_dir(dir.join("checkpoints"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    kept.sort();
    let mut want = vec![
        format!("step-{best_step}"),
        format!("step-{}", summary.steps),
    ];
    want.sort();
    assert_eq!(kept, want);
    let info = tunesmith_engine::runs::RunDir::new(&dir)
        .read_info()
        .unwrap()
        .unwrap();
    assert_eq!(info.best_step, Some(best_step));
    let resolved =
        tunesmith_engine::source::resolve(&dir.display().to_string(), &mut NullSink).unwrap();
    assert_eq!(resolved, best_dir);
    // The best checkpoint holds the best model: its validation loss is the best one.
    assert!(events
        .iter()
        .any(|e| matches!(e, Event::Log { message, .. } if message.contains("stopping early"))));
}

fn findings(events: &[Event]) -> Vec<(FindingKind, Option<Remedy>)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Finding { kind, remedy, .. } => Some((*kind, remedy.clone())),
            _ => None,
        })
        .collect()
}

/// The training doctor on runs made to go wrong: each finding raised, with its remedy; nothing
/// said about a healthy run. A diverged run goes back to the checkpoint the remedy names.
#[test]
fn the_doctor_names_what_goes_wrong_and_only_that() {
    let tmp = tempfile::tempdir().unwrap();
    let go = |name: &str, cfg: TrainConfig| {
        let dir = tmp.path().join(name);
        let (r, events) = run(&cfg, &dir, None);
        (r, findings(&events), dir)
    };
    let base = TrainConfig {
        eval_every: 10,
        save_every: 20,
        ..finetune_cfg(100)
    };

    let (r, found, _) = go("healthy", base.clone());
    r.unwrap();
    assert_eq!(found, vec![], "a healthy run");
    // Healthy too: LoRA on a Llama-family model, and a resumed run (which must not misjudge
    // where it picked up).
    let (r, found, _) = go(
        "healthy-lora",
        TrainConfig {
            model: ModelSpec::Source(fixtures().join("llama-tiny").display().to_string()),
            lr: 1e-2,
            lora: Some(Default::default()),
            ..base.clone()
        },
    );
    r.unwrap();
    assert_eq!(found, vec![], "a healthy LoRA run");
    let resumed = tmp.path().join("healthy-resumed");
    run(&base, &resumed, Some(40)).0.unwrap();
    let (r, events) = run(&base, &resumed, None);
    r.unwrap();
    assert_eq!(findings(&events), vec![], "a healthy resumed run");

    let (r, found, dir) = go(
        "diverging",
        TrainConfig {
            lr: 0.9,
            clip: 0.0,
            ..base.clone()
        },
    );
    r.unwrap();
    let [(
        FindingKind::Diverging,
        Some(Remedy::ResumeFrom {
            step: Some(step),
            lr,
        }),
    )] = found[..]
    else {
        panic!("{found:?}");
    };
    assert!((lr - 0.3).abs() < 1e-9 && step < 100, "{found:?}");
    // Going back with settings the checkpoint cannot take is refused and loses nothing.
    let before = tunesmith_engine::runs::RunDir::new(&dir).list_checkpoints();
    let refused = train(
        &TrainConfig {
            lr,
            block_size: 128,
            ..base.clone()
        },
        &dir,
        Restore::From(step),
        &Device::Cpu,
        &CancelToken::new(),
        &mut NullSink,
    );
    assert!(refused.is_err());
    assert_eq!(
        tunesmith_engine::runs::RunDir::new(&dir).list_checkpoints(),
        before
    );
    // The remedy, taken: back to that checkpoint at a third of the rate.
    let (r, _) = {
        let cfg = TrainConfig { lr, ..base.clone() };
        let mut events = Vec::new();
        let r = train(
            &cfg,
            &dir,
            Restore::From(step),
            &Device::Cpu,
            &CancelToken::new(),
            &mut |e: Event| events.push(e),
        );
        (r, events)
    };
    r.unwrap();
    let metrics = std::fs::read_to_string(dir.join("metrics.jsonl")).unwrap();
    let steps: Vec<u64> = metrics
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v.get("loss").is_some())
        .map(|v| v["step"].as_u64().unwrap())
        .collect();
    assert_eq!(steps, (1..=100).collect::<Vec<_>>(), "one line per step");

    let (r, found, _) = go(
        "exploding",
        TrainConfig {
            lr: 0.9,
            ..base.clone()
        },
    );
    r.unwrap();
    assert!(
        found
            .iter()
            .any(|(k, _)| *k == FindingKind::ExplodingGradients),
        "{found:?}"
    );

    let (r, found, _) = go(
        "stalled",
        TrainConfig {
            lr: 1e-7,
            ..finetune_cfg(200)
        },
    );
    r.unwrap();
    assert!(
        matches!(
            found[..],
            [(FindingKind::Stalled, Some(Remedy::ResumeFrom { .. }))]
        ),
        "{found:?}"
    );

    let text = std::fs::read_to_string(corpus()).unwrap();
    let small = tmp.path().join("small.txt");
    std::fs::write(&small, &text[..1200]).unwrap();
    let cfg = TrainConfig {
        data: vec![small],
        steps: Some(200),
        lr: 1e-2,
        val_frac: 0.3,
        ..base.clone()
    };
    let dir = tmp.path().join("overfit");
    let (r, events) = run(&cfg, &dir, None);
    r.unwrap();
    let found = findings(&events);
    let best = events
        .iter()
        .filter_map(|e| match e {
            Event::Eval { step, val_loss, .. } => Some((*step, *val_loss)),
            _ => None,
        })
        .fold((0, f32::INFINITY), |b, e| if e.1 < b.1 { e } else { b })
        .0;
    assert!(
        found.contains(&(
            FindingKind::Overfitting,
            Some(Remedy::StopKeepBest { step: best })
        )),
        "{found:?}"
    );
    assert!(
        matches!(
            found[0],
            (FindingKind::TooLittleData, Some(Remedy::FewerSteps { .. }))
        ),
        "{found:?}"
    );
    // Written beside the run for the app to show after training.
    let kinds: Vec<FindingKind> = tunesmith_engine::runs::RunDir::new(&dir)
        .findings()
        .into_iter()
        .map(|f| f.kind)
        .collect();
    assert_eq!(kinds, found.iter().map(|f| f.0).collect::<Vec<_>>());
}
