//! A Hugging Face folder transformers loads unchanged (`from_pretrained`): the weights under HF's
//! names with any LoRA merged in, `config.json`, `generation_config.json`, the tokenizer files
//! and the chat template. And the adapter alone, in PEFT's layout.

use std::path::Path;

use candle_core::DType;
use serde_json::json;

use super::Quant;
use crate::model::family::ModelConfig;
use crate::model::load::{self, Source};
use crate::model::lora;
use crate::{data::tokenizer, fsutil, Error, Result};

/// Writes `src` into the (empty) folder `dir`; returns the file names.
pub fn write(src: &Source, quant: Quant, dir: &Path) -> Result<Vec<String>> {
    let dtype = match quant {
        Quant::F16 => DType::F16,
        _ => DType::F32,
    };
    let mut weights = std::collections::HashMap::new();
    for (k, v) in &src.weights {
        if !lora::is_adapter(k) {
            weights.insert(k.clone(), v.to_dtype(dtype)?);
        }
    }
    load::save_weights(&weights, &src.config, &dir.join("model.safetensors"))?;
    let mut config = src.config.to_json();
    let dtype_name = if dtype == DType::F16 {
        "float16"
    } else {
        "float32"
    };
    // transformers 5 reads `dtype`; older releases `torch_dtype`.
    config["torch_dtype"] = json!(dtype_name);
    config["dtype"] = json!(dtype_name);
    fsutil::write_json(&dir.join("config.json"), &config)?;
    tokenizer::save(&src.tokenizer, dir)?;
    let mut files = vec![
        "model.safetensors".to_string(),
        "config.json".into(),
        "tokenizer.json".into(),
    ];
    for (name, bytes) in &src.side_files {
        fsutil::write_atomic(&dir.join(name), bytes)?;
        files.push(name.clone());
    }
    let has = |name: &str| src.side_files.iter().any(|(n, _)| n == name);
    if !has("generation_config.json") {
        fsutil::write_json(
            &dir.join("generation_config.json"),
            &generation_config(&src.config),
        )?;
        files.push("generation_config.json".into());
    }
    if !has("tokenizer_config.json") {
        fsutil::write_json(&dir.join("tokenizer_config.json"), &tokenizer_config(src))?;
        files.push("tokenizer_config.json".into());
    }
    if let Some(t) = &src.template {
        if !has("chat_template.jinja") && !template_in_config(src) {
            fsutil::write_atomic(&dir.join("chat_template.jinja"), t.source.as_bytes())?;
            files.push("chat_template.jinja".into());
        }
    }
    Ok(files)
}

fn generation_config(cfg: &ModelConfig) -> serde_json::Value {
    let eos = cfg.eos_ids();
    let bos = match cfg {
        ModelConfig::Gpt2(c) => c.bos_token_id.map(|b| json!(b)),
        ModelConfig::Llama(c) => c.bos_token_id.clone(),
    };
    let mut v = json!({"_from_model_config": true});
    if let Some(b) = bos {
        v["bos_token_id"] = b;
    }
    match eos.len() {
        0 => {}
        1 => v["eos_token_id"] = json!(eos[0]),
        _ => v["eos_token_id"] = json!(eos),
    }
    v
}

/// A `tokenizer_config.json` for a model that came without one (trained from scratch here): the
/// fast tokenizer from `tokenizer.json`, its end-of-text token, the context length.
fn tokenizer_config(src: &Source) -> serde_json::Value {
    let text = |id: Option<u32>| id.and_then(|i| src.tokenizer.id_to_token(i));
    let eos = text(src.config.eos_ids().first().copied());
    let mut v = json!({
        "tokenizer_class": "PreTrainedTokenizerFast",
        "model_max_length": src.config.context(),
        "clean_up_tokenization_spaces": false,
    });
    if let Some(e) = eos {
        v["eos_token"] = json!(e);
        v["bos_token"] = json!(e);
        v["unk_token"] = json!(e);
    }
    v
}

fn template_in_config(src: &Source) -> bool {
    src.side_files
        .iter()
        .find(|(n, _)| n == "tokenizer_config.json")
        .and_then(|(_, b)| serde_json::from_slice::<serde_json::Value>(b).ok())
        .is_some_and(|v| v.get("chat_template").is_some())
}

/// Copies the adapter of `adapter_dir` (PEFT's two files, and the tokenizer files when it has
/// them) into `dir`. A base model named by a relative folder is written as an absolute one, so the
/// copy still finds it; `base` replaces it.
pub fn write_adapter(adapter_dir: &Path, base: Option<&Path>, dir: &Path) -> Result<Vec<String>> {
    let config_path = adapter_dir.join(lora::ADAPTER_CONFIG);
    let text = std::fs::read_to_string(&config_path).map_err(|e| Error::io(&config_path, e))?;
    let mut config: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| Error::model(&config_path, format!("it is not valid JSON ({e})")))?;
    let named = config["base_model_name_or_path"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let base_text = match base {
        Some(b) => Some(std::path::absolute(b).unwrap_or_else(|_| b.to_path_buf())),
        None => {
            let relative = adapter_dir.join(&named);
            (!named.is_empty() && !Path::new(&named).exists() && relative.exists())
                .then(|| std::fs::canonicalize(&relative).unwrap_or(relative))
        }
    };
    if let Some(b) = base_text {
        config["base_model_name_or_path"] = json!(b.to_string_lossy());
    }
    fsutil::write_json(&dir.join(lora::ADAPTER_CONFIG), &config)?;
    let mut files = vec![lora::ADAPTER_CONFIG.to_string()];
    let mut names = vec![lora::ADAPTER_WEIGHTS, "tokenizer.json"];
    names.extend(load::SIDE_FILES);
    for name in names {
        let from = adapter_dir.join(name);
        if from.is_file() {
            let bytes = std::fs::read(&from).map_err(|e| Error::io(&from, e))?;
            fsutil::write_atomic(&dir.join(name), &bytes)?;
            files.push(name.to_string());
        }
    }
    Ok(files)
}
