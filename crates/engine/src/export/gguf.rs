//! A model as one GGUF file for llama.cpp, Ollama and LM Studio: the inverse of [`model::gguf`].
//! Tensors get llama.cpp's names and layouts (q/k rows permuted for the llama architecture,
//! GPT-2's Conv1D weights as (out, in)); the tokenizer is written as `tokenizer.ggml.*` with the
//! pre-tokenizer name llama.cpp uses for it, found by encoding a test text both ways; the weights
//! are F32, F16, Q8_0, or llama.cpp's Q4_K_M mixture (its per-tensor choices and fallbacks).
//!
//! [`model::gguf`]: crate::model::gguf

use std::io::{BufWriter, Write};
use std::path::Path;

use candle_core::quantized::gguf_file::{self, Value};
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::Tensor;
use serde_json::Value as Json;
use tokenizers::Tokenizer;

use super::Quant;
use crate::model::family::ModelConfig;
use crate::model::gguf::{pre_tokenizer_spec, GPT2_MODULES, KNOWN_PRE, LLAMA_MODULES};
use crate::model::load::Source;
use crate::progress::{CancelToken, Event, ProgressSink};
use crate::{fsutil, Error, Result};

/// Writes `src` as a GGUF file at `path` (through a temporary file and a rename).
pub fn write(
    src: &Source,
    quant: Quant,
    name: &str,
    path: &Path,
    cancel: &CancelToken,
    sink: &mut impl ProgressSink,
) -> Result<()> {
    let arch = architecture(&src.config)?;
    let mut metadata = model_metadata(&src.config, arch, name, quant)?;
    metadata.extend(tokenizer_metadata(src)?);
    let tensors = tensors(src, arch)?;
    let layers = match &src.config {
        ModelConfig::Gpt2(c) => c.n_layer,
        ModelConfig::Llama(c) => c.num_hidden_layers,
    };
    let tied = !tensors.iter().any(|(n, _)| n == "output.weight");
    let mut quantized = Vec::with_capacity(tensors.len());
    let total = tensors.len() as u64;
    for (i, (tensor_name, t)) in tensors.into_iter().enumerate() {
        if cancel.is_cancelled() {
            return Err(Error::Cancelled);
        }
        let ty = tensor_type(&tensor_name, t.dims(), quant, layers, tied);
        quantized.push((tensor_name, QTensor::quantize(&t, ty)?));
        sink.emit(Event::Progress {
            stage: format!("Converting to {}", quant.label()),
            done: i as u64 + 1,
            total,
            unit: "tensors".into(),
        });
    }
    let meta_refs: Vec<(&str, &Value)> = metadata.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let tensor_refs: Vec<(&str, &QTensor)> =
        quantized.iter().map(|(k, v)| (k.as_str(), v)).collect();
    fsutil::write_atomic_with(path, |file| {
        let mut w = BufWriter::new(file);
        gguf_file::write(&mut w, &meta_refs, &tensor_refs)
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        w.flush()?;
        Ok(())
    })
}

/// llama.cpp's architecture name for the model.
fn architecture(cfg: &ModelConfig) -> Result<&'static str> {
    match cfg {
        ModelConfig::Gpt2(c) => {
            if c.activation_function != "gelu_new" && c.activation_function != "gelu" {
                return Err(unsupported(format!(
                    "its activation `{}` is not the one llama.cpp's gpt2 architecture computes (gelu)",
                    c.activation_function
                )));
            }
            Ok("gpt2")
        }
        ModelConfig::Llama(c) => match c.model_type.as_str() {
            // Mistral's architecture is llama.cpp's llama one.
            "llama" | "mistral" => Ok("llama"),
            "qwen2" => Ok("qwen2"),
            other => Err(unsupported(format!(
                "its architecture `{other}` has no GGUF writer here (llama, qwen2 and gpt2 do)"
            ))),
        },
    }
}

fn unsupported(message: String) -> Error {
    Error::Unsupported {
        format: "GGUF".into(),
        message,
    }
}

fn u32v(x: usize) -> Value {
    Value::U32(x as u32)
}

fn model_metadata(
    cfg: &ModelConfig,
    arch: &str,
    name: &str,
    quant: Quant,
) -> Result<Vec<(String, Value)>> {
    let k = |s: &str| format!("{arch}.{s}");
    let mut m: Vec<(String, Value)> = vec![
        ("general.architecture".into(), Value::String(arch.into())),
        ("general.type".into(), Value::String("model".into())),
        ("general.name".into(), Value::String(name.into())),
        ("general.file_type".into(), Value::U32(quant.file_type())),
        ("general.quantization_version".into(), Value::U32(2)),
    ];
    match cfg {
        ModelConfig::Gpt2(c) => {
            m.push((k("block_count"), u32v(c.n_layer)));
            m.push((k("context_length"), u32v(c.n_positions)));
            m.push((k("embedding_length"), u32v(c.n_embd)));
            m.push((k("feed_forward_length"), u32v(c.inner())));
            m.push((k("attention.head_count"), u32v(c.n_head)));
            m.push((
                k("attention.layer_norm_epsilon"),
                Value::F32(c.layer_norm_epsilon as f32),
            ));
        }
        ModelConfig::Llama(c) => {
            m.push((k("block_count"), u32v(c.num_hidden_layers)));
            m.push((k("context_length"), u32v(c.max_position_embeddings)));
            m.push((k("embedding_length"), u32v(c.hidden_size)));
            m.push((k("feed_forward_length"), u32v(c.intermediate_size)));
            m.push((k("attention.head_count"), u32v(c.num_attention_heads)));
            m.push((k("attention.head_count_kv"), u32v(c.kv_heads())));
            m.push((k("rope.freq_base"), Value::F32(c.theta() as f32)));
            m.push((
                k("attention.layer_norm_rms_epsilon"),
                Value::F32(c.rms_norm_eps as f32),
            ));
            m.push((k("attention.key_length"), u32v(c.head_dim())));
            m.push((k("attention.value_length"), u32v(c.head_dim())));
            m.push((k("vocab_size"), u32v(c.vocab_size)));
            m.push((k("rope.dimension_count"), u32v(c.head_dim())));
            if c.hidden_act != "silu" {
                return Err(unsupported(format!(
                    "its activation `{}` is not the SiLU llama.cpp's {arch} architecture computes",
                    c.hidden_act
                )));
            }
            if c.mlp_bias || (arch == "llama" && c.attention_bias) {
                return Err(unsupported(
                    "it has biases on its projections, which llama.cpp's llama architecture does not read".into(),
                ));
            }
            match c.rope().map_err(|e| unsupported(e.to_string()))? {
                crate::model::llama_config::RopeScaling::None => {}
                crate::model::llama_config::RopeScaling::Linear { factor } => {
                    m.push((k("rope.scaling.type"), Value::String("linear".into())));
                    m.push((k("rope.scaling.factor"), Value::F32(factor as f32)));
                }
                // Written as the `rope_freqs.weight` divisors (see `tensors`).
                crate::model::llama_config::RopeScaling::Llama3 { .. } => {}
            }
        }
    }
    Ok(m)
}

/// llama.cpp's name for end-of-turn tokens it recognises by their text.
const END_OF_TURN: [&str; 5] = [
    "<|im_end|>",
    "<|eot_id|>",
    "<|end|>",
    "<end_of_turn>",
    "<|endoftext|>",
];

/// The tokenizer as `tokenizer.ggml.*`, and the chat template.
fn tokenizer_metadata(src: &Source) -> Result<Vec<(String, Value)>> {
    let tok = &src.tokenizer;
    let spec: Json = serde_json::from_str(
        &tok.to_string(false)
            .map_err(|e| Error::Tokenizer(format!("could not be written out ({e})")))?,
    )
    .map_err(|e| Error::Tokenizer(format!("could not be written out ({e})")))?;
    let model = &spec["model"];
    if model["type"].as_str() != Some("BPE") || model["byte_fallback"].as_bool() == Some(true) {
        return Err(unsupported(
            "its tokenizer is a SentencePiece-style one (byte fallback or not BPE, as Mistral's and Llama 2's are), and Tunesmith writes only byte-level BPE tokenizers (GPT-2's, Llama 3's, Qwen2's, SmolLM2's) to GGUF; export it as hf and convert that folder with llama.cpp's convert_hf_to_gguf.py".into(),
        ));
    }
    let pre = pre_tokenizer_name(tok, &spec)?;
    let n = src.config.vocab_size();
    let mut tokens: Vec<Option<String>> = vec![None; n];
    let mut types = vec![1i32; n];
    let mut place = |id: u64, text: &str| -> Result<()> {
        let slot = tokens.get_mut(id as usize).ok_or_else(|| {
            unsupported(format!(
                "its tokenizer has token id {id}, beyond the model's {n} embeddings"
            ))
        })?;
        *slot = Some(text.to_string());
        Ok(())
    };
    if let Some(vocab) = model["vocab"].as_object() {
        for (text, id) in vocab {
            place(id.as_u64().unwrap_or(u64::MAX), text)?;
        }
    }
    for added in spec["added_tokens"].as_array().into_iter().flatten() {
        let id = added["id"].as_u64().unwrap_or(u64::MAX);
        place(id, added["content"].as_str().unwrap_or_default())?;
        // Control tokens (3) are special; user-defined ones (4) are matched whole but are text.
        types[id as usize] = if added["special"].as_bool() == Some(true) {
            3
        } else {
            4
        };
    }
    // Embedding rows no token uses (a vocabulary padded to a round size), as llama.cpp's
    // converter names them.
    let tokens: Vec<Value> = tokens
        .into_iter()
        .enumerate()
        .map(|(i, t)| {
            Value::String(t.unwrap_or_else(|| {
                types[i] = 5;
                format!("[PAD{i}]")
            }))
        })
        .collect();
    let merges: Vec<Value> = model["merges"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|m| match m {
            Json::Array(pair) => Value::String(
                pair.iter()
                    .filter_map(|p| p.as_str())
                    .collect::<Vec<_>>()
                    .join(" "),
            ),
            other => Value::String(other.as_str().unwrap_or_default().to_string()),
        })
        .collect();
    let mut m: Vec<(String, Value)> = vec![
        ("tokenizer.ggml.model".into(), Value::String("gpt2".into())),
        ("tokenizer.ggml.pre".into(), Value::String(pre.into())),
        ("tokenizer.ggml.tokens".into(), Value::Array(tokens)),
        (
            "tokenizer.ggml.token_type".into(),
            Value::Array(types.into_iter().map(Value::I32).collect()),
        ),
        ("tokenizer.ggml.merges".into(), Value::Array(merges)),
    ];
    let side = tokenizer_config(src);
    let id_of = |key: &str| -> Option<u32> {
        let text = match side.get(key)? {
            Json::String(s) => s.clone(),
            Json::Object(o) => o.get("content")?.as_str()?.to_string(),
            _ => return None,
        };
        tok.token_to_id(&text)
    };
    let bos = match &src.config {
        ModelConfig::Gpt2(c) => c.bos_token_id,
        ModelConfig::Llama(c) => crate::model::llama_config::ids_of(c.bos_token_id.as_ref())
            .first()
            .copied(),
    }
    .or_else(|| id_of("bos_token"));
    let eos_ids = src.config.eos_ids();
    let eos = eos_ids.first().copied().or_else(|| id_of("eos_token"));
    let eot = eos_ids.iter().copied().find(|&id| {
        tok.id_to_token(id)
            .is_some_and(|t| END_OF_TURN[..4].contains(&t.as_str()))
    });
    for (key, id) in [
        ("bos_token_id", bos),
        ("eos_token_id", eos),
        ("eot_token_id", eot),
        ("unknown_token_id", id_of("unk_token")),
        ("padding_token_id", id_of("pad_token")),
    ] {
        if let Some(id) = id {
            m.push((format!("tokenizer.ggml.{key}"), Value::U32(id)));
        }
    }
    if let Some(add) = side.get("add_bos_token").and_then(|v| v.as_bool()) {
        m.push(("tokenizer.ggml.add_bos_token".into(), Value::Bool(add)));
    }
    if let Some(t) = &src.template {
        m.push((
            "tokenizer.chat_template".into(),
            Value::String(t.source.clone()),
        ));
    }
    Ok(m)
}

/// The model's `tokenizer_config.json`, if it came with one.
fn tokenizer_config(src: &Source) -> serde_json::Map<String, Json> {
    src.side_files
        .iter()
        .find(|(n, _)| n == "tokenizer_config.json")
        .and_then(|(_, bytes)| serde_json::from_slice::<Json>(bytes).ok())
        .and_then(|v| v.as_object().cloned())
        .unwrap_or_default()
}

/// Text that tells the known pre-tokenizers apart: digit runs, contractions, letters after
/// punctuation, whitespace runs, newlines, non-Latin scripts and a decomposed accent (NFC).
const PROBE: &str = "Hello, y'all! I'm 12345 years old...\n\n  spaces\tand\ttabs \r\nÉcole e\u{301}cole 東京 123abc 3.14 don't WE'LL ①②\n   \n";

/// The `tokenizer.ggml.pre` whose pre-tokenizer splits text as this tokenizer's does: each known
/// one is put in place of the tokenizer's own and must give the same ids on [`PROBE`].
fn pre_tokenizer_name(tok: &Tokenizer, spec: &Json) -> Result<&'static str> {
    let want = tok
        .encode(PROBE, false)
        .map_err(|e| Error::Tokenizer(e.to_string()))?;
    for pre in KNOWN_PRE {
        let (normalizer, pre_tokenizer) = pre_tokenizer_spec(pre).expect("known");
        let mut candidate = spec.clone();
        candidate["normalizer"] = normalizer;
        candidate["pre_tokenizer"] = pre_tokenizer;
        let Ok(other) = candidate.to_string().parse::<Tokenizer>() else {
            continue;
        };
        if other
            .encode(PROBE, false)
            .is_ok_and(|e| e.get_ids() == want.get_ids())
        {
            return Ok(pre);
        }
    }
    Err(unsupported(format!(
        "its tokenizer splits text in a way none of the pre-tokenizers llama.cpp names and Tunesmith knows does ({}), so llama.cpp would tokenise differently; export it as hf and convert that folder with llama.cpp's convert_hf_to_gguf.py",
        KNOWN_PRE.join(", ")
    )))
}

/// Every tensor under its llama.cpp name in llama.cpp's layout, f32.
fn tensors(src: &Source, arch: &str) -> Result<Vec<(String, Tensor)>> {
    let mut out = Vec::new();
    match &src.config {
        ModelConfig::Gpt2(c) => {
            for (gguf, ours) in [
                ("token_embd.weight", "wte.weight"),
                ("position_embd.weight", "wpe.weight"),
                ("output_norm.weight", "ln_f.weight"),
                ("output_norm.bias", "ln_f.bias"),
                ("output.weight", "lm_head.weight"),
            ] {
                if let Some(t) = src.weights.get(ours) {
                    if gguf != "output.weight" || !c.tied() {
                        out.push((gguf.to_string(), t.clone()));
                    }
                }
            }
            for l in 0..c.n_layer {
                for (module, ours) in GPT2_MODULES {
                    for suffix in ["weight", "bias"] {
                        let t = weight(src, &format!("h.{l}.{ours}.{suffix}"))?;
                        // HF's Conv1D is (in, out); llama.cpp's matrices are (out, in).
                        let t = if suffix == "weight" && !module.ends_with("norm") {
                            t.t()?.contiguous()?
                        } else {
                            t
                        };
                        out.push((format!("blk.{l}.{module}.{suffix}"), t));
                    }
                }
            }
        }
        ModelConfig::Llama(c) => {
            out.push((
                "token_embd.weight".into(),
                weight(src, "model.embed_tokens.weight")?,
            ));
            if let Some(factors) = rope_factors(c)? {
                let n = factors.len();
                out.push((
                    "rope_freqs.weight".into(),
                    Tensor::from_vec(factors, n, &candle_core::Device::Cpu)?,
                ));
            }
            for l in 0..c.num_hidden_layers {
                for (module, ours) in LLAMA_MODULES {
                    for suffix in ["weight", "bias"] {
                        let key = format!("model.layers.{l}.{ours}.{suffix}");
                        let Some(t) = src.weights.get(&key) else {
                            if suffix == "weight" {
                                weight(src, &key)?;
                            }
                            continue;
                        };
                        // llama.cpp's llama architecture wants the two rotary halves of each q/k
                        // head interleaved (convert_hf_to_gguf.py's `permute`).
                        let heads = match module {
                            "attn_q" if arch == "llama" => Some(c.num_attention_heads),
                            "attn_k" if arch == "llama" => Some(c.kv_heads()),
                            _ => None,
                        };
                        let t = match heads {
                            Some(h) => permute(t, h)?,
                            None => t.clone(),
                        };
                        out.push((format!("blk.{l}.{module}.{suffix}"), t));
                    }
                }
            }
            out.push((
                "output_norm.weight".into(),
                weight(src, "model.norm.weight")?,
            ));
            if !c.tie_word_embeddings {
                out.push(("output.weight".into(), weight(src, "lm_head.weight")?));
            }
        }
    }
    Ok(out)
}

fn weight(src: &Source, name: &str) -> Result<Tensor> {
    src.weights
        .get(name)
        .cloned()
        .ok_or_else(|| unsupported(format!("its weight `{name}` is missing")))
}

/// Llama 3.1's rope scaling as llama.cpp carries it: one divisor per rotary frequency.
fn rope_factors(c: &crate::model::llama_config::LlamaConfig) -> Result<Option<Vec<f32>>> {
    if let Some(f) = &c.rope_freq_factors {
        return Ok(Some(f.iter().map(|&x| x as f32).collect()));
    }
    if !matches!(
        c.rope().map_err(|e| unsupported(e.to_string()))?,
        crate::model::llama_config::RopeScaling::Llama3 { .. }
    ) {
        return Ok(None);
    }
    let scaled = c.inv_freq().map_err(|e| unsupported(e.to_string()))?;
    let mut plain = c.clone();
    plain.rope_scaling = None;
    plain.rope_parameters = None;
    let base = plain.inv_freq().map_err(|e| unsupported(e.to_string()))?;
    Ok(Some(
        base.iter()
            .zip(&scaled)
            .map(|(b, s)| (b / s) as f32)
            .collect(),
    ))
}

/// `convert_hf_to_gguf.py`'s `permute` of q/k rows (or biases) for `heads` heads: within each
/// head, the first and second rotary halves are interleaved.
fn permute(t: &Tensor, heads: usize) -> candle_core::Result<Tensor> {
    let rows = t.dim(0)?;
    let half = rows / heads / 2;
    let rest: Vec<usize> = t.dims()[1..].to_vec();
    let mut shape = vec![heads, 2, half];
    shape.extend(&rest);
    t.reshape(shape)?
        .transpose(1, 2)?
        .contiguous()?
        .reshape(t.dims())
}

/// The type llama.cpp's `llama-quantize` gives a tensor for `quant` (`llama_tensor_get_type` for
/// the types here): norms, biases and positions stay f32; Q4_K_M gives the head (or the tied
/// embedding) Q6_K, attn_v and ffn_down Q6_K in the first and last eighth of layers and every
/// third between, GPT-2's fused attn_qkv Q5_K, and Q4_K elsewhere; rows too short for a block
/// fall back as llama.cpp does (Q4_K → Q5_0, Q5_K → Q5_1, Q6_K → Q8_0, then F16).
pub fn tensor_type(
    name: &str,
    dims: &[usize],
    quant: Quant,
    layers: usize,
    tied: bool,
) -> GgmlDType {
    let matrix = dims.len() == 2
        && name.ends_with(".weight")
        && !name.contains("_norm.")
        && name != "position_embd.weight"
        && name != "rope_freqs.weight";
    if !matrix {
        return GgmlDType::F32;
    }
    let cols = dims[1];
    let wanted = match quant {
        Quant::F32 => return GgmlDType::F32,
        Quant::F16 => return GgmlDType::F16,
        Quant::Q8_0 => GgmlDType::Q8_0,
        Quant::Q4KM => {
            let layer = name
                .strip_prefix("blk.")
                .and_then(|r| r.split('.').next())
                .and_then(|n| n.parse::<usize>().ok());
            let more_bits = |i: usize| {
                let n = layers;
                i < n / 8 || i >= 7 * n / 8 || (i as isize - (n / 8) as isize).rem_euclid(3) == 2
            };
            let is_output = name == "output.weight" || (tied && name == "token_embd.weight");
            if is_output {
                // The head: Q6_K, or Q8_0 where its rows do not fill K-blocks.
                return if cols.is_multiple_of(256) {
                    GgmlDType::Q6K
                } else if cols.is_multiple_of(32) {
                    GgmlDType::Q8_0
                } else {
                    GgmlDType::F16
                };
            }
            if name.ends_with(".attn_v.weight") || name.ends_with(".ffn_down.weight") {
                if layer.is_some_and(more_bits) {
                    GgmlDType::Q6K
                } else {
                    GgmlDType::Q4K
                }
            } else if name.ends_with(".attn_qkv.weight") {
                GgmlDType::Q5K
            } else {
                GgmlDType::Q4K
            }
        }
    };
    if cols.is_multiple_of(wanted.block_size()) {
        return wanted;
    }
    let fallback = match wanted {
        GgmlDType::Q4K => GgmlDType::Q5_0,
        GgmlDType::Q5K => GgmlDType::Q5_1,
        GgmlDType::Q6K => GgmlDType::Q8_0,
        _ => GgmlDType::F16,
    };
    if cols.is_multiple_of(fallback.block_size()) {
        fallback
    } else {
        GgmlDType::F16
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The types `llama-quantize --allow-requantize SmolLM2-135M-Instruct.Q8_0.gguf … Q4_K_M`
    /// gave SmolLM2-135M's tensors (30 layers, 576 wide, tied head), read back with gguf-py.
    #[test]
    fn q4_k_m_follows_llama_quantize() {
        let t = |name: &str, cols: usize| tensor_type(name, &[100, cols], Quant::Q4KM, 30, true);
        assert_eq!(t("token_embd.weight", 576), GgmlDType::Q8_0);
        assert_eq!(t("token_embd.weight", 512), GgmlDType::Q6K);
        assert_eq!(t("blk.0.attn_q.weight", 576), GgmlDType::Q5_0);
        assert_eq!(t("blk.0.attn_q.weight", 512), GgmlDType::Q4K);
        for (layer, more) in [
            (0, true),
            (2, true),
            (3, false),
            (4, false),
            (5, true),
            (8, true),
            (9, false),
            (25, false),
            (26, true),
            (29, true),
        ] {
            let want = if more { GgmlDType::Q6K } else { GgmlDType::Q4K };
            assert_eq!(
                t(&format!("blk.{layer}.attn_v.weight"), 512),
                want,
                "layer {layer}"
            );
            assert_eq!(
                t(&format!("blk.{layer}.ffn_down.weight"), 512),
                want,
                "layer {layer}"
            );
        }
        assert_eq!(t("blk.2.ffn_down.weight", 1536), GgmlDType::Q6K);
        // Every layer of the real file: attn_v (576 wide) and ffn_down (1536 wide).
        let more = [0, 1, 2, 5, 8, 11, 14, 17, 20, 23, 26, 27, 28, 29];
        for l in 0..30 {
            let (v, down) = if more.contains(&l) {
                (GgmlDType::Q8_0, GgmlDType::Q6K)
            } else {
                (GgmlDType::Q5_0, GgmlDType::Q4K)
            };
            assert_eq!(t(&format!("blk.{l}.attn_v.weight"), 576), v, "layer {l}");
            assert_eq!(
                t(&format!("blk.{l}.ffn_down.weight"), 1536),
                down,
                "layer {l}"
            );
            assert_eq!(t(&format!("blk.{l}.attn_q.weight"), 576), GgmlDType::Q5_0);
        }
        assert_eq!(t("blk.4.ffn_down.weight", 1536), GgmlDType::Q4K);
        assert_eq!(t("blk.0.attn_norm.weight", 576), GgmlDType::F32);
        assert_eq!(
            tensor_type("blk.0.attn_q.bias", &[64], Quant::Q4KM, 30, true),
            GgmlDType::F32
        );
        assert_eq!(t("blk.0.attn_qkv.weight", 768), GgmlDType::Q5K);
        assert_eq!(t("blk.0.attn_q.weight", 100), GgmlDType::F16);
        assert_eq!(t("position_embd.weight", 768), GgmlDType::F32);
        assert_eq!(
            tensor_type("blk.0.attn_q.weight", &[64, 64], Quant::Q8_0, 2, true),
            GgmlDType::Q8_0
        );
        assert_eq!(
            tensor_type("blk.0.attn_q.weight", &[64, 64], Quant::F16, 2, true),
            GgmlDType::F16
        );
    }
}
