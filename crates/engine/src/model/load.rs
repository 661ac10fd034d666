//! Loading a model from a Hugging Face-style folder: `config.json` (GPT-2 or the Llama family),
//! `generation_config.json`, `model.safetensors` or shards listed by `model.safetensors.index.json`
//! (f32, f16 or bf16; GPT-2 keys with or without `transformer.`, buffers ignored, head tied unless
//! the config unties it) and the tokenizer files.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use tokenizers::Tokenizer;

use super::family::{Model, ModelConfig};
use super::layers::Weights;
use super::{gguf, lora};
use crate::chat::ChatTemplate;
use crate::data::tokenizer;
use crate::{Error, Result};

/// Files of a model folder that describe how to talk to it rather than its weights; copied
/// unchanged into every checkpoint, so a fine-tuned model keeps its chat template and end ids.
pub const SIDE_FILES: [&str; 4] = [
    "tokenizer_config.json",
    "chat_template.jinja",
    "special_tokens_map.json",
    "generation_config.json",
];

/// The [`SIDE_FILES`] a folder has, with their bytes.
pub fn read_side_files(dir: &Path) -> Result<Vec<(String, Vec<u8>)>> {
    let mut out = Vec::new();
    for name in SIDE_FILES {
        let path = dir.join(name);
        if path.is_file() {
            out.push((
                name.to_string(),
                std::fs::read(&path).map_err(|e| Error::io(&path, e))?,
            ));
        }
    }
    Ok(out)
}

/// A model ready for generation or evaluation.
pub struct LoadedModel {
    pub model: Model,
    pub tokenizer: Tokenizer,
    pub config: ModelConfig,
    /// The model's chat template; `None` for models chatted with through the plain transcript.
    pub template: Option<ChatTemplate>,
    pub dir: PathBuf,
}

/// Loads config, weights and tokenizer from a model folder, or from a LoRA adapter folder (PEFT's
/// layout, Tunesmith's LoRA checkpoints) over its base model, with the adapter merged in.
pub fn load_dir(dir: &Path, device: &Device) -> Result<LoadedModel> {
    load_dir_with(dir, None, false, device)
}

/// [`load_dir`] where an adapter's base model is `base` rather than the one its
/// `adapter_config.json` names.
pub fn load_dir_with_base(dir: &Path, base: Option<&Path>, device: &Device) -> Result<LoadedModel> {
    load_dir_with(dir, base, false, device)
}

/// [`load_dir_with_base`]; a GGUF file's quantised projections stay quantised for inference
/// unless `dequantize` (the CLI's `--dtype f32`).
pub fn load_dir_with(
    dir: &Path,
    base: Option<&Path>,
    dequantize: bool,
    device: &Device,
) -> Result<LoadedModel> {
    if base.is_some() && !lora::is_adapter_dir(dir) {
        return Err(Error::model(
            dir,
            "it is not a LoRA adapter folder (no adapter_config.json), so --base does not apply; leave --base out",
        ));
    }
    if gguf::is_gguf(dir) && !dequantize {
        let g = gguf::read_with(dir, device, true)?;
        check_vocab(dir, &g.config, &g.tokenizer)?;
        let model = Model::quantized(&g.weights, &g.quantized, &g.config)?;
        return Ok(LoadedModel {
            model,
            tokenizer: g.tokenizer,
            config: g.config,
            template: g.template,
            dir: dir.to_path_buf(),
        });
    }
    let Source {
        config,
        weights,
        tokenizer,
        template,
        ..
    } = read_source(dir, base, device)?;
    check_vocab(dir, &config, &tokenizer)?;
    let model = Model::new(&weights, &config)?;
    Ok(LoadedModel {
        model,
        tokenizer,
        config,
        template,
        dir: dir.to_path_buf(),
    })
}

/// Everything a model source gives: a model folder, an adapter folder over its base, or a GGUF
/// file.
pub struct Source {
    pub config: ModelConfig,
    pub weights: Weights,
    pub tokenizer: Tokenizer,
    pub template: Option<ChatTemplate>,
    /// Tokenizer config, chat template and generation config to keep in checkpoints.
    pub side_files: Vec<(String, Vec<u8>)>,
}

/// Reads a model source whole (weights as f32; an adapter merged into its base).
pub fn read_source(path: &Path, base: Option<&Path>, device: &Device) -> Result<Source> {
    if lora::is_adapter_dir(path) {
        let (_, mut base_src, adapter) = read_adapter_model(path, base, device)?;
        lora::merge(&mut base_src.weights, &base_src.config, adapter.runtime)?;
        // The adapter folder's own tokenizer and template when it has them (Tunesmith's
        // checkpoints do), else the base model's.
        if path.join("tokenizer.json").is_file() {
            base_src.tokenizer = tokenizer::load(path)?;
            base_src.template = ChatTemplate::load(path)?;
            base_src.side_files = read_side_files(path)?;
        }
        return Ok(base_src);
    }
    if gguf::is_gguf(path) {
        let g = gguf::read(path, device)?;
        // A checkpoint of a GGUF model keeps its template and special tokens as HF files.
        let mut side_files = Vec::new();
        if let Some(t) = &g.template {
            side_files.push((
                "chat_template.jinja".to_string(),
                t.source.clone().into_bytes(),
            ));
            let config = serde_json::Value::Object(t.tokens.clone());
            side_files.push((
                "tokenizer_config.json".to_string(),
                config.to_string().into_bytes(),
            ));
        }
        return Ok(Source {
            config: g.config,
            weights: g.weights,
            tokenizer: g.tokenizer,
            template: g.template,
            side_files,
        });
    }
    let config = read_config(path)?;
    let weights = read_weights(path, &config, device)?;
    Ok(Source {
        config,
        weights,
        tokenizer: tokenizer::load(path)?,
        template: ChatTemplate::load(path)?,
        side_files: read_side_files(path)?,
    })
}

/// An adapter folder's base model (where it is, and all of it) with the adapter's weights added
/// to the base's under their own names (not merged), and the adapter's settings.
pub fn read_adapter_model(
    dir: &Path,
    base: Option<&Path>,
    device: &Device,
) -> Result<(PathBuf, Source, lora::AdapterConfig)> {
    let adapter = lora::read_adapter_config(dir)?;
    let base_dir = match base {
        Some(b) => b.to_path_buf(),
        None => find_base(dir, &adapter.base)?,
    };
    if lora::is_adapter_dir(&base_dir) {
        return Err(Error::model(
            dir,
            "its base model is itself a LoRA adapter; give the model that adapter was made for with --base",
        ));
    }
    let mut source = read_source(&base_dir, None, device)?;
    let adapters = lora::read_adapter_weights(dir, &source.config, device)?;
    source.weights.extend(adapters);
    Ok((base_dir, source, adapter))
}

/// The folder of an adapter's base model: a folder as named (or relative to the adapter), or a hub
/// id already in the download cache. Never downloads.
pub(crate) fn find_base(adapter_dir: &Path, base: &str) -> Result<PathBuf> {
    if base.is_empty() {
        return Err(Error::model(
            adapter_dir,
            "its adapter_config.json names no base model (base_model_name_or_path); give the base model with --base",
        ));
    }
    // A relative base is looked for beside the adapter first (a job folder's adapter names
    // `../base`), then from where the command runs, as PEFT would.
    for candidate in [adapter_dir.join(base), PathBuf::from(base)] {
        if candidate.join("config.json").is_file() || gguf::is_gguf(&candidate) {
            return Ok(candidate);
        }
    }
    if crate::hub::is_hub_id(base) {
        if let Some(dir) = crate::hub::cached(base, &crate::paths::hub_cache()) {
            return Ok(dir);
        }
    }
    let how = if crate::hub::is_hub_id(base) && !base.contains(std::path::MAIN_SEPARATOR) {
        format!("download it first (tunesmith download {base}) or give its folder with --base")
    } else {
        "put the base model back in that folder, or give its new place with --base".to_string()
    };
    Err(Error::model(
        adapter_dir,
        format!("its base model `{base}` is not on this computer; {how}"),
    ))
}

/// The folder's `config.json` (with the end-of-turn ids of `generation_config.json` added), with a
/// plain error if this is not a model folder.
pub fn read_config(dir: &Path) -> Result<ModelConfig> {
    if !dir.is_dir() {
        return Err(Error::model(dir, "it is not a folder"));
    }
    let path = dir.join("config.json");
    if !path.is_file() {
        return Err(Error::model(
            dir,
            "it has no config.json; choose a folder holding a Hugging Face model \
             (config.json, model.safetensors, tokenizer files), a Tunesmith run folder, or a hub id such as gpt2",
        ));
    }
    let mut cfg = ModelConfig::load(&path)?;
    let generation = dir.join("generation_config.json");
    if generation.is_file() {
        let text = std::fs::read_to_string(&generation).map_err(|e| Error::io(&generation, e))?;
        let v: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| Error::model(&generation, format!("it is not valid JSON ({e})")))?;
        cfg.merge_generation_eos(&v);
    }
    Ok(cfg)
}

fn check_vocab(dir: &Path, cfg: &ModelConfig, tok: &Tokenizer) -> Result<()> {
    let n = tok.get_vocab_size(true);
    if n > cfg.vocab_size() {
        return Err(Error::model(
            dir,
            format!("its tokenizer has {n} tokens but the model only {}; the files do not belong together", cfg.vocab_size()),
        ));
    }
    Ok(())
}

/// Reads the weights (as f32), maps HF names onto ours and checks every shape against the config.
pub fn read_weights(dir: &Path, cfg: &ModelConfig, device: &Device) -> Result<Weights> {
    let mut raw = HashMap::new();
    for file in weight_files(dir)? {
        let tensors = candle_core::safetensors::load(&file, device).map_err(|e| {
            Error::model(
                &file,
                format!(
                    "the weights file is damaged or incomplete ({e}); download or copy it again"
                ),
            )
        })?;
        raw.extend(tensors);
    }
    let mut weights = Weights::new();
    for (name, t) in raw {
        if let Some(name) = cfg.our_name(&name) {
            weights.insert(name, t.to_dtype(DType::F32)?);
        }
    }
    let mut problems = Vec::new();
    for (name, shape) in cfg.weight_shapes() {
        match weights.get(&name) {
            None => problems.push(format!("`{name}` is missing")),
            Some(t) if t.dims() != shape.as_slice() => problems.push(format!(
                "`{name}` has shape {:?}, config.json says {shape:?}",
                t.dims()
            )),
            _ => {}
        }
    }
    if !problems.is_empty() {
        let n = problems.len();
        problems.truncate(3);
        return Err(Error::model(
            dir,
            format!(
                "its weights do not match its config.json ({n} problems, e.g. {})",
                problems.join("; ")
            ),
        ));
    }
    Ok(weights)
}

fn weight_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let single = dir.join("model.safetensors");
    if single.is_file() {
        return Ok(vec![single]);
    }
    let index = dir.join("model.safetensors.index.json");
    if index.is_file() {
        let text = std::fs::read_to_string(&index).map_err(|e| Error::io(&index, e))?;
        let v: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| Error::model(&index, format!("the index is not valid JSON ({e})")))?;
        let files: Vec<PathBuf> = crate::hub::index_shards(&v)
            .map_err(|bad| {
                Error::model(
                    &index,
                    format!(
                        "the index lists `{bad}`, which is not a plain .safetensors file name in this folder; the index is damaged or not trustworthy"
                    ),
                )
            })?
            .iter()
            .map(|f| dir.join(f))
            .collect();
        if files.is_empty() {
            return Err(Error::model(
                &index,
                "the index lists no weight files (its weight_map is empty or missing); download the model again",
            ));
        }
        let missing: Vec<String> = files
            .iter()
            .filter(|f| !f.is_file())
            .filter_map(|f| f.file_name().map(|n| n.to_string_lossy().into_owned()))
            .collect();
        if !missing.is_empty() {
            return Err(Error::model(
                dir,
                format!(
                    "{} of its {} weight files listed in model.safetensors.index.json {} missing ({}); \
                     download the model again or copy the missing files into the folder",
                    missing.len(),
                    files.len(),
                    if missing.len() == 1 { "is" } else { "are" },
                    missing.join(", ")
                ),
            ));
        }
        return Ok(files);
    }
    let hint = if dir.join("pytorch_model.bin").is_file() {
        "it has only pytorch_model.bin; Tunesmith reads the safer .safetensors format — \
         convert it, or download the safetensors version of the model"
    } else {
        "it has no model.safetensors"
    };
    Err(Error::model(dir, hint))
}

/// Saves weights under HF's names, loadable by transformers.
pub fn save_weights(
    weights: &HashMap<String, Tensor>,
    cfg: &ModelConfig,
    path: &Path,
) -> Result<()> {
    let prefixed: HashMap<String, Tensor> = weights
        .iter()
        .map(|(k, v)| (cfg.hf_name(k), v.clone()))
        .collect();
    crate::fsutil::save_safetensors(&prefixed, path)
}
