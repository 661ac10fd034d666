//! A job folder that runs the *same* training run on GPUs with existing distributed trainers: the
//! run's tokenised data as JSONL (exactly the text it learned from, prompts separated from the
//! completions it was taught), its settings, a Hugging Face TRL `SFTTrainer` script (LoRA through
//! PEFT, or full), `accelerate`/`torchrun` launch lines for N GPUs or nodes, and an Axolotl YAML.
//! The base model is the run's hub id, or a Hugging Face folder written beside (for a local
//! model, and for a from-scratch run: the same initial weights and tokenizer).

use std::path::{Path, PathBuf};

use candle_core::Device;
use serde_json::json;

use super::{hf, ExportConfig, ExportFormat, ExportReport};
use crate::data::{dataset, tokenizer};
use crate::model::load::{self, Source};
use crate::progress::{CancelToken, Event, ProgressSink};
use crate::runs::RunDir;
use crate::settings::{ModelSpec, TrainConfig};
use crate::{fsutil, hub, Error, Result};

/// The TRL script; it reads `settings.json` beside it.
const SCRIPT: &str = include_str!("job_train_sft.py");

/// The run folder `cfg` names: `cfg.run`, or the run a checkpoint belongs to.
pub fn run_of(cfg: &ExportConfig) -> Result<PathBuf> {
    if let Some(r) = &cfg.run {
        return Ok(r.clone());
    }
    let m = &cfg.model;
    for candidate in [Some(m.as_path()), m.parent().and_then(|p| p.parent())]
        .into_iter()
        .flatten()
    {
        if candidate.join("run.json").is_file() {
            return Ok(candidate.to_path_buf());
        }
    }
    Err(Error::file(
        m,
        "is not a Tunesmith run or one of its checkpoints; --format job repeats a run's training, so give the run folder",
    ))
}

/// Writes the job folder.
pub fn write(
    cfg: &ExportConfig,
    cancel: &CancelToken,
    sink: &mut impl ProgressSink,
) -> Result<ExportReport> {
    let run = RunDir::new(run_of(cfg)?);
    let info = run.read_info()?.ok_or_else(|| {
        Error::file(
            run.path(),
            "has no run.json; it is not a run Tunesmith made",
        )
    })?;
    let (_, checkpoint) = run.latest_checkpoint().ok_or_else(|| {
        Error::file(
            run.path(),
            "has no checkpoint yet; train at least until the first checkpoint is saved",
        )
    })?;
    let data_dir = run.dataset();
    if !data_dir.join("train.tokens").is_file() {
        return Err(Error::file(
            &data_dir,
            "has no train.tokens; the run's data is gone, so the job cannot repeat it",
        ));
    }
    let tok = tokenizer::load(&checkpoint)?;
    let train_cfg = info.config.clone();
    let (files, _) = super::in_temp_dir(
        &cfg.out,
        cancel,
        |dir| {
            let mut files = Vec::new();
            sink.emit(Event::Progress {
                stage: "Writing the dataset".into(),
                done: 0,
                total: 2,
                unit: "files".into(),
            });
            let pairs = write_data(&data_dir, &tok, &dir.join("data"), cancel)?;
            files.extend(
                ["data/train.jsonl", "data/val.jsonl"]
                    .iter()
                    .map(|s| s.to_string()),
            );
            if pairs {
                files.push("data/axolotl_train.jsonl".into());
                files.push("data/axolotl_val.jsonl".into());
            }
            let model_id = base_model(&train_cfg, &checkpoint, dir, sink)?;
            if model_id == "./base" {
                files.push("base/".into());
            }
            let settings = settings_json(&train_cfg, &info, &model_id, pairs, &checkpoint)?;
            fsutil::write_json(&dir.join("settings.json"), &settings)?;
            fsutil::write_atomic(&dir.join("train_sft.py"), SCRIPT.as_bytes())?;
            fsutil::write_atomic(
                &dir.join("axolotl.yaml"),
                axolotl_yaml(&settings, pairs).as_bytes(),
            )?;
            fsutil::write_atomic(&dir.join("launch.sh"), LAUNCH.as_bytes())?;
            set_executable(&dir.join("launch.sh"));
            fsutil::write_atomic(&dir.join("README.md"), readme(&run, &settings).as_bytes())?;
            files.extend(
                [
                    "settings.json",
                    "train_sft.py",
                    "axolotl.yaml",
                    "launch.sh",
                    "README.md",
                ]
                .iter()
                .map(|s| s.to_string()),
            );
            Ok(files)
        },
        |_| cfg.out.clone(),
    )?;
    Ok(ExportReport {
        format: ExportFormat::Job,
        out: cfg.out.clone(),
        bytes: super::size_of(&cfg.out),
        files,
        verification: None,
        next_step: Some(format!(
            "cd {} && ./launch.sh 8   # on a machine with 8 GPUs",
            super::ollama::shell_quote(&cfg.out.display().to_string())
        )),
    })
}

#[cfg(unix)]
fn set_executable(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755));
}
#[cfg(not(unix))]
fn set_executable(_: &Path) {}

/// The run's train and validation tokens as JSONL, one example per line (examples end at the
/// end-of-text token): `{"text"}` rows, or `{"prompt","completion"}` rows when the run learned
/// completions of prompts (the prompt's tokens are the ones its mask leaves out). For Axolotl, the
/// pairs again as `input_output` segments. Returns whether there were pairs.
fn write_data(
    data_dir: &Path,
    tok: &tokenizers::Tokenizer,
    out: &Path,
    cancel: &CancelToken,
) -> Result<bool> {
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    let eot = tokenizer::eot_id(tok);
    let pairs = data_dir.join("train.mask").is_file();
    for split in ["train", "val"] {
        let ids = dataset::read_tokens(&data_dir.join(format!("{split}.tokens")))?;
        let mask_path = data_dir.join(format!("{split}.mask"));
        let mask = if pairs && mask_path.is_file() {
            std::fs::read(&mask_path).map_err(|e| Error::io(&mask_path, e))?
        } else {
            vec![1u8; ids.len()]
        };
        let (mut lines, mut segments) = (String::new(), String::new());
        let mut start = 0;
        for end in 0..=ids.len() {
            let boundary = end == ids.len() || Some(ids[end]) == eot;
            if !boundary {
                continue;
            }
            if cancel.is_cancelled() {
                return Err(Error::Cancelled);
            }
            let (unit, m) = (&ids[start..end], &mask[start..end.min(mask.len())]);
            start = end + 1;
            if unit.is_empty() {
                continue;
            }
            if pairs {
                let cut = m.iter().position(|&x| x == 1).unwrap_or(unit.len());
                let prompt = tokenizer::decode(tok, &unit[..cut])?;
                let completion = tokenizer::decode(tok, &unit[cut..])?;
                lines.push_str(&json!({"prompt": prompt, "completion": completion}).to_string());
                segments.push_str(
                    &json!({"segments": [{"label": false, "text": prompt}, {"label": true, "text": completion}]})
                        .to_string(),
                );
                segments.push('\n');
            } else {
                lines.push_str(&json!({"text": tokenizer::decode(tok, unit)?}).to_string());
            }
            lines.push('\n');
        }
        fsutil::write_atomic(&out.join(format!("{split}.jsonl")), lines.as_bytes())?;
        if pairs {
            fsutil::write_atomic(
                &out.join(format!("axolotl_{split}.jsonl")),
                segments.as_bytes(),
            )?;
        }
    }
    Ok(pairs)
}

/// The model the job starts from: the hub id the run started from, or `./base`, a Hugging Face
/// folder written into the job (a local model; a from-scratch run's initial weights).
fn base_model(
    cfg: &TrainConfig,
    checkpoint: &Path,
    dir: &Path,
    sink: &mut impl ProgressSink,
) -> Result<String> {
    let device = Device::Cpu;
    let src = match &cfg.model {
        ModelSpec::Source(s) if hub::is_hub_id(s) && !Path::new(s).exists() => return Ok(s.clone()),
        ModelSpec::Source(s) => {
            sink.emit(Event::Progress {
                stage: "Writing the base model".into(),
                done: 0,
                total: 1,
                unit: String::new(),
            });
            let dir = crate::source::resolve(s, sink)?;
            load::read_source(&dir, None, &device)?
        }
        ModelSpec::Scratch(_) => {
            // The same initial weights as the run (same config, same seed) and its tokenizer.
            let config = load::read_config(checkpoint)?;
            let weights = config.init_weights(cfg.seed, &device)?;
            Source {
                config,
                weights,
                tokenizer: tokenizer::load(checkpoint)?,
                template: crate::chat::ChatTemplate::load(checkpoint)?,
                side_files: load::read_side_files(checkpoint)?,
            }
        }
    };
    let base = dir.join("base");
    std::fs::create_dir_all(&base).map_err(|e| Error::io(&base, e))?;
    hf::write(&src, super::Quant::F32, &base)?;
    Ok("./base".into())
}

fn settings_json(
    cfg: &TrainConfig,
    info: &crate::runs::RunInfo,
    model_id: &str,
    pairs: bool,
    checkpoint: &Path,
) -> Result<serde_json::Value> {
    let model_cfg = load::read_config(checkpoint)?;
    let lora = match &cfg.lora {
        Some(l) => json!({
            // The dropout as written (0.05), not its nearest f64 (0.05000000074505806).
            "r": l.rank, "lora_alpha": l.alpha,
            "lora_dropout": l.dropout.to_string().parse::<f64>().unwrap_or(0.0),
            "target_modules": l.targets_for(&model_cfg)?,
        }),
        None => json!(null),
    };
    Ok(json!({
        "model": model_id,
        "model_type": model_cfg.model_type(),
        "data": if pairs { "prompt_completion" } else { "text" },
        "max_steps": info.total_steps,
        "learning_rate": cfg.lr,
        "min_lr_ratio": cfg.min_lr_ratio,
        "warmup_steps": cfg.warmup,
        "weight_decay": cfg.weight_decay,
        "adam_beta1": cfg.beta1,
        "adam_beta2": cfg.beta2,
        "max_grad_norm": cfg.clip,
        "batch_size": cfg.batch_size,
        "gradient_accumulation_steps": cfg.grad_accum,
        "block_size": cfg.block_size,
        "seed": cfg.seed,
        "dropout": cfg.dropout,
        "eval_every": cfg.eval_every,
        "save_every": cfg.save_every,
        "log_every": cfg.log_every,
        "gradient_checkpointing": cfg.recompute_activations,
        "only_train_transformer_layers": cfg.only_train_transformer_layers,
        "lora": lora,
    }))
}

fn axolotl_yaml(s: &serde_json::Value, pairs: bool) -> String {
    let mut y = String::from(
        "# Axolotl config of the same run: axolotl train axolotl.yaml\n# (multi-GPU: accelerate launch -m axolotl.cli.train axolotl.yaml)\n",
    );
    let model = s["model"].as_str().unwrap_or_default();
    y.push_str(&format!("base_model: {}\n", yaml_str(model)));
    y.push_str("datasets:\n");
    if pairs {
        y.push_str(
            "  - path: data/axolotl_train.jsonl\n    ds_type: json\n    type: input_output\n",
        );
    } else {
        y.push_str("  - path: data/train.jsonl\n    ds_type: json\n    type: completion\n    field: text\n");
    }
    y.push_str(if pairs {
        "test_datasets:\n  - path: data/axolotl_val.jsonl\n    ds_type: json\n    split: train\n    type: input_output\n"
    } else {
        "test_datasets:\n  - path: data/val.jsonl\n    ds_type: json\n    split: train\n    type: completion\n    field: text\n"
    });
    if let Some(l) = s["lora"].as_object() {
        y.push_str("adapter: lora\n");
        y.push_str(&format!("lora_r: {}\n", l["r"]));
        y.push_str(&format!("lora_alpha: {}\n", l["lora_alpha"]));
        y.push_str(&format!("lora_dropout: {}\n", l["lora_dropout"]));
        y.push_str("lora_target_modules:\n");
        for t in l["target_modules"].as_array().into_iter().flatten() {
            y.push_str(&format!("  - {}\n", t.as_str().unwrap_or_default()));
        }
    }
    let n = |k: &str| s[k].to_string();
    y.push_str(
        "# micro_batch_size is per GPU: the run's batch below is for one device; with N GPUs divide it\n# by N (when it divides) so each optimiser step sees the run's batch, as train_sft.py does.\n",
    );
    y.push_str(&format!(
        "sequence_len: {}\nsample_packing: true\nmicro_batch_size: {}\ngradient_accumulation_steps: {}\nmax_steps: {}\n",
        n("block_size"), n("batch_size"), n("gradient_accumulation_steps"), n("max_steps")
    ));
    y.push_str(&format!(
        "learning_rate: {}\nlr_scheduler: cosine\ncosine_min_lr_ratio: {}\nwarmup_steps: {}\noptimizer: adamw_torch\nweight_decay: {}\nadam_beta1: {}\nadam_beta2: {}\n",
        n("learning_rate"), n("min_lr_ratio"), n("warmup_steps"), n("weight_decay"), n("adam_beta1"), n("adam_beta2")
    ));
    if s["max_grad_norm"].as_f64().unwrap_or(0.0) > 0.0 {
        y.push_str(&format!("max_grad_norm: {}\n", n("max_grad_norm")));
    }
    y.push_str(&format!(
        "seed: {}\ngradient_checkpointing: {}\nbf16: auto\noutput_dir: ./output-axolotl\n",
        n("seed"),
        n("gradient_checkpointing")
    ));
    if s["eval_every"].as_u64().unwrap_or(0) > 0 {
        y.push_str(&format!("eval_steps: {}\n", n("eval_every")));
    }
    if s["save_every"].as_u64().unwrap_or(0) > 0 {
        y.push_str(&format!("save_steps: {}\n", n("save_every")));
    }
    y
}

fn yaml_str(s: &str) -> String {
    serde_json::to_string(s).expect("strings serialise")
}

const LAUNCH: &str = r#"#!/usr/bin/env bash
# Runs this job on the GPUs of this machine: ./launch.sh [GPUS]   (default: all of them)
# Several machines: on each, with the same MASTER (first machine's address) and its own rank:
#   NNODES=2 NODE_RANK=0 MASTER=10.0.0.1 ./launch.sh 8
# Needs: pip install torch transformers peft trl datasets accelerate
set -euo pipefail
cd "$(dirname "$0")"
GPUS=${1:-$(python3 -c 'import torch; print(max(torch.cuda.device_count(), 1))')}
if [ "${NNODES:-1}" -gt 1 ]; then
  exec torchrun --nnodes "$NNODES" --node_rank "${NODE_RANK:-0}" --nproc_per_node "$GPUS" \
    --rdzv_backend c10d --rdzv_endpoint "${MASTER:?set MASTER to the first machine}:29500" train_sft.py "${@:2}"
fi
exec torchrun --standalone --nproc_per_node "$GPUS" train_sft.py "${@:2}"
# The same with accelerate: accelerate launch --num_processes "$GPUS" train_sft.py
"#;

fn readme(run: &RunDir, s: &serde_json::Value) -> String {
    let name = run
        .path()
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    format!(
        "# Tunesmith run `{name}` as a GPU job\n\n\
This folder repeats the Tunesmith run `{name}` with Hugging Face TRL (or Axolotl) on GPUs: the same\n\
base model ({model}), data, learning rate and schedule, {steps} steps, block size {block}, batch \n\
{batch} × {accum} accumulation, seed {seed}{lora}.\n\n\
## Run it\n\n\
```\n\
pip install torch transformers peft trl datasets accelerate\n\
./launch.sh 8                      # 8 GPUs on this machine (torchrun)\n\
accelerate launch --num_processes 8 train_sft.py   # the same with accelerate\n\
NNODES=2 NODE_RANK=0 MASTER=10.0.0.1 ./launch.sh 8   # two machines (run on each, NODE_RANK 0 and 1)\n\
axolotl train axolotl.yaml         # or with Axolotl\n\
```\n\n\
The batch is split across the GPUs so that each optimiser step sees the same {batch} × {accum} \n\
examples as the run did. The result is written to `output/`: {result}. Give that folder to \n\
Tunesmith (`tunesmith chat --model output`, or Models → Add in the app) to talk to it, evaluate, \n\
serve or export it.\n\n\
## Files\n\n\
- `data/train.jsonl`, `data/val.jsonl`: exactly the text the run learned from and validated on \n\
  ({data} rows).\n\
- `settings.json`: the run's settings, read by `train_sft.py`.\n\
- `train_sft.py`: the TRL `SFTTrainer` script.\n\
- `axolotl.yaml`: the same run for Axolotl.\n\
- `launch.sh`: torchrun for one or several machines.\n",
        model = s["model"].as_str().unwrap_or_default(),
        steps = s["max_steps"],
        block = s["block_size"],
        batch = s["batch_size"],
        accum = s["gradient_accumulation_steps"],
        seed = s["seed"],
        lora = if s["lora"].is_null() {
            ", all weights trained".to_string()
        } else {
            format!(", LoRA rank {}", s["lora"]["r"])
        },
        result = if s["lora"].is_null() {
            "the whole model in Hugging Face's layout"
        } else {
            "the LoRA adapter in PEFT's layout"
        },
        data = if s["data"] == "text" {
            "`text`"
        } else {
            "`prompt` / `completion`; only the completion is learned"
        },
    )
}
