//! GGUF files (llama.cpp, Ollama, LM Studio) as a model source: the architecture (llama, qwen2,
//! gpt2) from the metadata, the weights dequantised to f32 under our names (llama.cpp's q/k row
//! permutation undone, GPT-2's projections back in Conv1D layout), the tokenizer rebuilt from
//! `tokenizer.ggml.*` with the pre-tokenizer `tokenizer.ggml.pre` names, and the chat template from
//! `tokenizer.chat_template`.

use std::collections::HashMap;
use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use candle_core::quantized::gguf_file::{Content, Value};
use candle_core::quantized::{GgmlDType, QStorage, QTensor};
use candle_core::{DType, Device, Tensor};
use serde_json::json;
use tokenizers::Tokenizer;

use super::config::Gpt2Config;
use super::family::ModelConfig;
use super::layers::{QWeights, Weights};
use super::llama_config::LlamaConfig;
use crate::chat::ChatTemplate;
use crate::{Error, Result};

/// Architectures read from GGUF.
pub const GGUF_ARCHITECTURES: [&str; 3] = ["llama", "qwen2", "gpt2"];

/// Whether `path` names a GGUF file (by its extension).
pub fn is_gguf(path: &Path) -> bool {
    path.is_file()
        && path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("gguf"))
}

/// Everything a GGUF file holds, ready to build a model from.
pub struct GgufModel {
    pub config: ModelConfig,
    pub weights: Weights,
    /// Projections kept quantised (empty when dequantising everything).
    pub quantized: QWeights,
    pub tokenizer: Tokenizer,
    pub template: Option<ChatTemplate>,
}

/// llama.cpp's names of the tensor types candle cannot read, for the error message.
fn ggml_type_name(id: u32) -> String {
    let name = match id {
        16 => "IQ2_XXS",
        17 => "IQ2_XS",
        18 => "IQ3_XXS",
        19 => "IQ1_S",
        20 => "IQ4_NL",
        21 => "IQ3_S",
        22 => "IQ2_S",
        23 => "IQ4_XS",
        24 => "I8",
        25 => "I16",
        26 => "I32",
        27 => "I64",
        28 => "F64",
        29 => "IQ1_M",
        34 => "TQ1_0",
        35 => "TQ2_0",
        39 => "MXFP4",
        _ => return format!("type {id}"),
    };
    name.to_string()
}

/// Reads a GGUF file whole, dequantising every tensor to f32 (what training needs).
pub fn read(path: &Path, device: &Device) -> Result<GgufModel> {
    read_with(path, device, false)
}

/// Reads a GGUF file; with `keep_quantized`, the quantised projections of a Llama-family model stay
/// quantised (for chat: a 4-bit file takes 4-bit memory), everything else is dequantised to f32.
pub fn read_with(path: &Path, device: &Device, keep_quantized: bool) -> Result<GgufModel> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let mut reader = BufReader::new(file);
    let content = Content::read(&mut reader).map_err(|e| {
        let msg = e.to_string();
        if let Some(id) = msg
            .strip_prefix("unknown dtype for tensor ")
            // Only the leading digits: a backtrace may follow (RUST_BACKTRACE).
            .and_then(|s| {
                let digits: String = s.chars().take_while(|c| c.is_ascii_digit()).collect();
                digits.parse::<u32>().ok()
            })
        {
            Error::model(
                path,
                format!(
                    "it holds tensors quantised as {}, which Tunesmith cannot read; use a file quantised as Q4_0, Q4_1, Q4_K, Q5_K, Q6_K, Q8_0, F16, BF16 or F32",
                    ggml_type_name(id)
                ),
            )
        } else {
            Error::model(
                path,
                format!("it is not a GGUF file, or it is damaged or incomplete ({msg}); download it again"),
            )
        }
    })?;
    let meta = Meta {
        path,
        map: &content.metadata,
    };
    let arch = meta.string("general.architecture")?;
    if !GGUF_ARCHITECTURES.contains(&arch.as_str()) {
        return Err(Error::model(
            path,
            format!(
                "its architecture is `{arch}`; Tunesmith reads GGUF models of the {} architectures",
                GGUF_ARCHITECTURES.join(", ")
            ),
        ));
    }
    let tokenizer = build_tokenizer(&meta)?;
    let keep_quantized = keep_quantized && arch != "gpt2";
    let mut raw = HashMap::new();
    let mut quantized = QWeights::new();
    for name in content.tensor_infos.keys() {
        let q = content.tensor(&mut reader, name, device).map_err(|e| {
            Error::model(
                path,
                format!("its tensor `{name}` cannot be read ({e}); the file is damaged or incomplete, download it again"),
            )
        })?;
        let dense = matches!(q.dtype(), GgmlDType::F32 | GgmlDType::F16 | GgmlDType::BF16);
        if keep_quantized && !dense && q.shape().rank() == 2 && is_projection(name) {
            let heads = meta_heads(&meta, &arch, name)?;
            let ours = llama_our_name(name).ok_or_else(|| {
                Error::model(path, format!("it holds an unexpected tensor `{name}`"))
            })?;
            if name == "token_embd.weight" {
                // The lookup needs the table dense; the (tied) head multiplies it quantised.
                raw.insert(name.clone(), q.dequantize(device)?.to_dtype(DType::F32)?);
            }
            let q = match heads {
                Some(h) => unpermute_rows(&q, h, device)?,
                None => q,
            };
            quantized.insert(ours, std::sync::Arc::new(fast_kernel(q, device)?));
            continue;
        }
        raw.insert(name.clone(), q.dequantize(device)?.to_dtype(DType::F32)?);
    }
    let vocab = raw
        .get("token_embd.weight")
        .map(|t| t.dim(0))
        .transpose()?
        .ok_or_else(|| Error::model(path, "it has no token_embd.weight tensor"))?;
    let config = model_config(&meta, &arch, vocab, &raw)?;
    let weights = rename_weights(&config, raw, &quantized).map_err(|e| Error::model(path, e))?;
    let template = meta
        .opt_string("tokenizer.chat_template")
        .map(|source| ChatTemplate::new(source, special_tokens(&meta), path.to_path_buf()));
    Ok(GgufModel {
        config,
        weights,
        quantized,
        tokenizer,
        template,
    })
}

/// One tensor of a GGUF file by its llama.cpp name, dequantised to f32 in the file's own layout
/// (for checks against other readers).
pub fn read_tensor(path: &Path, name: &str, device: &Device) -> Result<Tensor> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let mut reader = BufReader::new(file);
    let content = Content::read(&mut reader).map_err(|e| Error::model(path, e.to_string()))?;
    let q = content
        .tensor(&mut reader, name, device)
        .map_err(|e| Error::model(path, e.to_string()))?;
    Ok(q.dequantize(device)?)
}

/// Typed access to the metadata with errors that name the file and the key.
struct Meta<'a> {
    path: &'a Path,
    map: &'a HashMap<String, Value>,
}

impl Meta<'_> {
    fn get(&self, key: &str) -> Result<&Value> {
        self.map
            .get(key)
            .ok_or_else(|| Error::model(self.path, format!("its metadata has no `{key}`")))
    }
    fn bad(&self, key: &str, e: candle_core::Error) -> Error {
        Error::model(self.path, format!("its metadata `{key}` is unusable ({e})"))
    }
    fn string(&self, key: &str) -> Result<String> {
        self.get(key)?
            .to_string()
            .cloned()
            .map_err(|e| self.bad(key, e))
    }
    fn opt_string(&self, key: &str) -> Option<String> {
        self.map.get(key).and_then(|v| v.to_string().ok().cloned())
    }
    fn usize(&self, key: &str) -> Result<usize> {
        let v = self.get(key)?;
        v.to_u32()
            .map(|x| x as usize)
            .or_else(|_| v.to_u64().map(|x| x as usize))
            .or_else(|_| v.to_i32().map(|x| x as usize))
            .map_err(|e| self.bad(key, e))
    }
    fn opt_usize(&self, key: &str) -> Option<usize> {
        self.map
            .contains_key(key)
            .then(|| self.usize(key).ok())
            .flatten()
    }
    fn f64(&self, key: &str) -> Result<f64> {
        let v = self.get(key)?;
        v.to_f32()
            .map(f64::from)
            .or_else(|_| v.to_f64())
            .map_err(|e| self.bad(key, e))
    }
    fn opt_f64(&self, key: &str) -> Option<f64> {
        self.map
            .contains_key(key)
            .then(|| self.f64(key).ok())
            .flatten()
    }
    fn strings(&self, key: &str) -> Result<Vec<String>> {
        self.get(key)?
            .to_vec()
            .map_err(|e| self.bad(key, e))?
            .iter()
            .map(|v| v.to_string().cloned().map_err(|e| self.bad(key, e)))
            .collect()
    }
    fn ints(&self, key: &str) -> Result<Vec<i64>> {
        self.get(key)?
            .to_vec()
            .map_err(|e| self.bad(key, e))?
            .iter()
            .map(|v| {
                v.to_i32()
                    .map(i64::from)
                    .or_else(|_| v.to_u32().map(i64::from))
                    .or_else(|_| v.to_i64())
                    .map_err(|e| self.bad(key, e))
            })
            .collect()
    }
}

fn model_config(
    meta: &Meta,
    arch: &str,
    vocab: usize,
    raw: &HashMap<String, Tensor>,
) -> Result<ModelConfig> {
    let k = |s: &str| format!("{arch}.{s}");
    let mut eos: Vec<u32> = Vec::new();
    for key in [
        "tokenizer.ggml.eos_token_id",
        "tokenizer.ggml.eot_token_id",
        "tokenizer.ggml.eom_token_id",
    ] {
        if let Some(id) = meta.opt_usize(key) {
            if !eos.contains(&(id as u32)) {
                eos.push(id as u32);
            }
        }
    }
    let bos = meta
        .opt_usize("tokenizer.ggml.bos_token_id")
        .map(|b| b as u32);
    let cfg = if arch == "gpt2" {
        let mut c = Gpt2Config::preset("tiny", vocab, 64)?;
        c.n_embd = meta.usize(&k("embedding_length"))?;
        c.n_layer = meta.usize(&k("block_count"))?;
        c.n_head = meta.usize(&k("attention.head_count"))?;
        c.n_positions = meta.usize(&k("context_length"))?;
        c.n_inner = meta.opt_usize(&k("feed_forward_length"));
        c.layer_norm_epsilon = meta.f64(&k("attention.layer_norm_epsilon"))?;
        c.eos_token_id = eos.first().copied();
        c.bos_token_id = bos;
        if raw.contains_key("output.weight") {
            c.extra.insert("tie_word_embeddings".into(), false.into());
        }
        ModelConfig::Gpt2(c)
    } else {
        let rope_scaling = match meta.opt_string(&k("rope.scaling.type")).as_deref() {
            None | Some("none") => None,
            Some("linear") => {
                Some(json!({"type": "linear", "factor": meta.f64(&k("rope.scaling.factor"))?}))
            }
            Some(other) => {
                return Err(Error::model(
                    meta.path,
                    format!("its rope scaling `{other}` is not supported (linear is)"),
                ))
            }
        };
        let v = json!({
            "model_type": arch,
            "vocab_size": vocab,
            "hidden_size": meta.usize(&k("embedding_length"))?,
            "intermediate_size": meta.usize(&k("feed_forward_length"))?,
            "num_hidden_layers": meta.usize(&k("block_count"))?,
            "num_attention_heads": meta.usize(&k("attention.head_count"))?,
            "num_key_value_heads": meta.opt_usize(&k("attention.head_count_kv")),
            "head_dim": meta.opt_usize(&k("attention.key_length")),
            "max_position_embeddings": meta.usize(&k("context_length"))?,
            "rms_norm_eps": meta.f64(&k("attention.layer_norm_rms_epsilon"))?,
            "rope_theta": meta.opt_f64(&k("rope.freq_base")).unwrap_or(10000.0),
            "rope_scaling": rope_scaling,
            "attention_bias": arch == "llama" && raw.contains_key("blk.0.attn_output.bias"),
            "tie_word_embeddings": !raw.contains_key("output.weight"),
            "bos_token_id": bos,
            "eos_token_id": if eos.len() == 1 { json!(eos[0]) } else { json!(eos) },
        });
        let mut c: LlamaConfig = serde_json::from_value(strip_nulls(v))
            .map_err(|e| Error::model(meta.path, format!("its metadata is inconsistent ({e})")))?;
        if let Some(f) = raw.get("rope_freqs.weight") {
            // Llama 3.1's rope scaling, written as one divisor per frequency. Written back as the
            // `llama3` rope_scaling it came from when that reproduces it (so a checkpoint's
            // config.json keeps it), else kept as the divisors.
            let factors: Vec<f64> = f.to_vec1::<f32>()?.into_iter().map(f64::from).collect();
            match llama3_scaling(&c, &factors) {
                Some(scaling) => c.rope_scaling = Some(scaling),
                None => c.rope_freq_factors = Some(factors),
            }
        }
        ModelConfig::Llama(c)
    };
    cfg.validate()
        .map_err(|e| Error::model(meta.path, e.to_string()))?;
    Ok(cfg)
}

/// The `llama3` rope_scaling (Llama 3.1 and 3.2 use low 1, high 4 over an original context of
/// 8192) whose frequencies equal the base ones divided by `factors`, if one does.
fn llama3_scaling(cfg: &LlamaConfig, factors: &[f64]) -> Option<serde_json::Value> {
    let factor = factors.iter().copied().fold(f64::MIN, f64::max);
    let mut plain = cfg.clone();
    plain.rope_scaling = None;
    let base = plain.inv_freq().ok()?;
    let scaling = json!({"rope_type": "llama3", "factor": factor, "low_freq_factor": 1.0,
        "high_freq_factor": 4.0, "original_max_position_embeddings": 8192});
    let mut scaled = plain;
    scaled.rope_scaling = Some(scaling.clone());
    let got = scaled.inv_freq().ok()?;
    let fits = factors.len() == base.len()
        && base
            .iter()
            .zip(factors)
            .zip(&got)
            .all(|((b, f), g)| ((b / f - g) / g).abs() < 1e-5);
    fits.then_some(scaling)
}

fn strip_nulls(v: serde_json::Value) -> serde_json::Value {
    match v {
        serde_json::Value::Object(m) => m.into_iter().filter(|(_, v)| !v.is_null()).collect(),
        other => other,
    }
}

/// llama.cpp's tensor names onto ours, in our layouts.
fn rename_weights(
    cfg: &ModelConfig,
    raw: HashMap<String, Tensor>,
    quantized: &QWeights,
) -> std::result::Result<Weights, String> {
    let mut out = Weights::new();
    for (name, t) in raw {
        if name == "rope_freqs.weight" {
            continue;
        }
        let (ours, t) = match cfg {
            ModelConfig::Gpt2(_) => gpt2_name(&name, t)?,
            ModelConfig::Llama(c) => llama_name(&name, t, c)?,
        };
        out.insert(ours, t);
    }
    let missing: Vec<String> = cfg
        .weight_shapes()
        .into_iter()
        .filter(|(n, s)| {
            let dense_ok = out.get(n).is_some_and(|t| t.dims() == s.as_slice());
            let quant_ok = quantized
                .get(n)
                .is_some_and(|t| t.shape().dims() == s.as_slice());
            !dense_ok && !quant_ok
        })
        .map(|(n, _)| n)
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "its tensors do not make a complete model ({} missing or of the wrong shape, e.g. {})",
            missing.len(),
            missing
                .iter()
                .take(3)
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    Ok(out)
}

fn llama_name(
    name: &str,
    t: Tensor,
    cfg: &LlamaConfig,
) -> std::result::Result<(String, Tensor), String> {
    let ours = llama_our_name(name).ok_or(format!("it holds an unexpected tensor `{name}`"))?;
    // llama.cpp interleaves the two rotary halves of each q/k head for the llama architecture.
    let heads = match block_parts(name).map(|(_, module, _)| module) {
        Some("attn_q") if cfg.model_type == "llama" => Some(cfg.num_attention_heads),
        Some("attn_k") if cfg.model_type == "llama" => Some(cfg.kv_heads()),
        _ => None,
    };
    let t = match heads {
        Some(h) => unpermute(&t, h).map_err(|e| e.to_string())?,
        None => t,
    };
    Ok((ours, t))
}

/// `blk.N.MODULE.SUFFIX` as `(N, MODULE, SUFFIX)`.
fn block_parts(name: &str) -> Option<(usize, &str, &str)> {
    let rest = name.strip_prefix("blk.")?;
    let (n, rest) = rest.split_once('.')?;
    let (module, suffix) = rest.rsplit_once('.')?;
    Some((n.parse().ok()?, module, suffix))
}

/// llama.cpp's block modules of the Llama family and their HF names (`model.layers.N.` + name).
pub const LLAMA_MODULES: [(&str, &str); 9] = [
    ("attn_norm", "input_layernorm"),
    ("ffn_norm", "post_attention_layernorm"),
    ("attn_q", "self_attn.q_proj"),
    ("attn_k", "self_attn.k_proj"),
    ("attn_v", "self_attn.v_proj"),
    ("attn_output", "self_attn.o_proj"),
    ("ffn_gate", "mlp.gate_proj"),
    ("ffn_up", "mlp.up_proj"),
    ("ffn_down", "mlp.down_proj"),
];

/// llama.cpp's block modules of GPT-2 and our names (`h.N.` + name).
pub const GPT2_MODULES: [(&str, &str); 6] = [
    ("attn_norm", "ln_1"),
    ("ffn_norm", "ln_2"),
    ("attn_qkv", "attn.c_attn"),
    ("attn_output", "attn.c_proj"),
    ("ffn_up", "mlp.c_fc"),
    ("ffn_down", "mlp.c_proj"),
];

/// Our (HF) name for a llama.cpp tensor of the Llama family.
fn llama_our_name(name: &str) -> Option<String> {
    match name {
        "token_embd.weight" => return Some("model.embed_tokens.weight".into()),
        "output_norm.weight" => return Some("model.norm.weight".into()),
        "output.weight" => return Some("lm_head.weight".into()),
        _ => {}
    }
    let (l, module, suffix) = block_parts(name)?;
    let (_, ours) = LLAMA_MODULES.iter().find(|(g, _)| *g == module)?;
    Some(format!("model.layers.{l}.{ours}.{suffix}"))
}

/// Whether a llama.cpp tensor is a matrix a quantised matmul can take.
fn is_projection(name: &str) -> bool {
    name == "token_embd.weight"
        || name == "output.weight"
        || [
            ".attn_q.weight",
            ".attn_k.weight",
            ".attn_v.weight",
            ".attn_output.weight",
            ".ffn_gate.weight",
            ".ffn_up.weight",
            ".ffn_down.weight",
        ]
        .iter()
        .any(|s| name.ends_with(s))
}

/// The head count whose q/k rows llama.cpp permuted, for a llama-architecture tensor.
fn meta_heads(meta: &Meta, arch: &str, name: &str) -> Result<Option<usize>> {
    if arch != "llama" {
        return Ok(None);
    }
    let h = meta.usize(&format!("{arch}.attention.head_count"))?;
    Ok(if name.ends_with(".attn_q.weight") {
        Some(h)
    } else if name.ends_with(".attn_k.weight") {
        Some(
            meta.opt_usize(&format!("{arch}.attention.head_count_kv"))
                .unwrap_or(h),
        )
    } else {
        None
    })
}

/// `q` in a type with SIMD kernels (ours for Q8_0, Q4_0 and Q4_1, see
/// `ops::quantized_matvec_many`; candle's for the k-quants). Q5_0 and Q5_1 have only scalar
/// ones in candle: they are re-quantised to Q8_0, whose 8-bit blocks hold their 5-bit values to
/// within 1/254 of each block's largest value (the activations are rounded to 8 bits for the
/// product anyway). Such a tensor takes 8.5 bits per weight instead of 6, still a quarter of f32.
/// Q4_1 is re-quantised too, except on a CPU with AVX2, where our kernel reads it and its 5
/// bits per weight stay 5.
fn fast_kernel(q: QTensor, device: &Device) -> Result<QTensor> {
    let slow = match q.dtype() {
        GgmlDType::Q5_0 | GgmlDType::Q5_1 => true,
        GgmlDType::Q4_1 => !(device.is_cpu() && crate::model::ops::has_vector_quantized_kernels()),
        _ => false,
    };
    if !slow
        || q.shape()
            .dims()
            .last()
            .is_none_or(|k| k % GgmlDType::Q8_0.block_size() != 0)
    {
        return Ok(q);
    }
    Ok(QTensor::quantize(&q.dequantize(device)?, GgmlDType::Q8_0)?)
}

/// [`unpermute`] on a quantised matrix: whole rows (each a run of blocks) are moved.
fn unpermute_rows(q: &QTensor, heads: usize, device: &Device) -> Result<QTensor> {
    let dims = q.shape().dims().to_vec();
    let data = q.data()?;
    let rows = dims[0];
    let row_bytes = data.len() / rows;
    let (d, half) = (rows / heads, rows / heads / 2);
    let mut out = Vec::with_capacity(data.len());
    for h in 0..heads {
        for t in 0..2 {
            for j in 0..half {
                let src = h * d + j * 2 + t;
                out.extend_from_slice(&data[src * row_bytes..(src + 1) * row_bytes]);
            }
        }
    }
    let storage = QStorage::from_data(std::borrow::Cow::Owned(out), device, q.dtype())?;
    Ok(QTensor::new(storage, dims)?)
}

/// Undoes `convert_hf_to_gguf.py`'s `permute` of q/k rows (or biases) for `heads` heads.
fn unpermute(t: &Tensor, heads: usize) -> candle_core::Result<Tensor> {
    let rows = t.dim(0)?;
    let half = rows / heads / 2;
    let rest: Vec<usize> = t.dims()[1..].to_vec();
    let mut shape = vec![heads, half, 2];
    shape.extend(&rest);
    t.reshape(shape)?
        .transpose(1, 2)?
        .contiguous()?
        .reshape(t.dims())
}

fn gpt2_name(name: &str, t: Tensor) -> std::result::Result<(String, Tensor), String> {
    let plain = match name {
        "token_embd.weight" => Some("wte.weight"),
        "position_embd.weight" => Some("wpe.weight"),
        "output_norm.weight" => Some("ln_f.weight"),
        "output_norm.bias" => Some("ln_f.bias"),
        "output.weight" => Some("lm_head.weight"),
        _ => None,
    };
    if let Some(n) = plain {
        return Ok((n.to_string(), t));
    }
    let (l, module, suffix) =
        block_parts(name).ok_or(format!("it holds an unexpected tensor `{name}`"))?;
    let (_, ours) = GPT2_MODULES
        .iter()
        .find(|(g, _)| *g == module)
        .ok_or(format!("it holds an unexpected tensor `{name}`"))?;
    // GGUF stores projections as (out, in); HF's Conv1D is (in, out).
    let t = if suffix == "weight" && t.rank() == 2 && !module.ends_with("norm") {
        t.t()
            .and_then(|t| t.contiguous())
            .map_err(|e| e.to_string())?
    } else {
        t
    };
    Ok((format!("h.{l}.{ours}.{suffix}"), t))
}

/// Pre-tokenizer regexes of the tokenizers llama.cpp names (`llama-vocab.cpp`), as the original
/// `tokenizer.json` files write them.
const QWEN2_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const LLAMA3_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// The `tokenizer.ggml.pre` names Tunesmith reads and writes, in the order an export tries them.
pub const KNOWN_PRE: [&str; 4] = ["gpt-2", "smollm", "qwen2", "llama-bpe"];

/// The normaliser and pre-tokenizer (in `tokenizer.json`'s shape) that the pre-tokenizer llama.cpp
/// calls `pre` stands for; `None` for names Tunesmith does not know.
pub fn pre_tokenizer_spec(pre: &str) -> Option<(serde_json::Value, serde_json::Value)> {
    let byte_level = |regex: bool| json!({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": regex});
    let split = |pattern: &str| json!({"type": "Split", "pattern": {"Regex": pattern}, "behavior": "Isolated", "invert": false});
    Some(match pre {
        "gpt-2" | "gpt2" | "default" => (json!(null), byte_level(true)),
        "smollm" | "starcoder" | "refact" => (
            json!(null),
            json!({"type": "Sequence", "pretokenizers": [
                {"type": "Digits", "individual_digits": true}, byte_level(true)]}),
        ),
        "qwen2" => (
            json!({"type": "NFC"}),
            json!({"type": "Sequence", "pretokenizers": [split(QWEN2_SPLIT), byte_level(false)]}),
        ),
        "llama-bpe" | "llama3" => (
            json!(null),
            json!({"type": "Sequence", "pretokenizers": [split(LLAMA3_SPLIT), byte_level(false)]}),
        ),
        _ => return None,
    })
}

/// A byte-level BPE tokenizer (`tokenizer.ggml.model` = `gpt2`) from the metadata, shaped like the
/// `tokenizer.json` the model was converted from.
fn build_tokenizer(meta: &Meta) -> Result<Tokenizer> {
    let kind = meta.string("tokenizer.ggml.model")?;
    if kind != "gpt2" {
        return Err(Error::model(
            meta.path,
            format!("its tokenizer is of type `{kind}`; Tunesmith rebuilds byte-level BPE tokenizers (`gpt2`) from GGUF, such as those of SmolLM2, Qwen2.5, Llama 3 and GPT-2"),
        ));
    }
    let pre = meta
        .opt_string("tokenizer.ggml.pre")
        .unwrap_or_else(|| "gpt-2".into());
    let Some((normalizer, pre_tokenizer)) = pre_tokenizer_spec(&pre) else {
        return Err(Error::model(
            meta.path,
            format!("its pre-tokenizer `{pre}` is not one Tunesmith knows (gpt-2, smollm, qwen2, llama-bpe)"),
        ));
    };
    let tokens = meta.strings("tokenizer.ggml.tokens")?;
    let types = meta
        .ints("tokenizer.ggml.token_type")
        .unwrap_or_else(|_| vec![1; tokens.len()]);
    let merges = meta.strings("tokenizer.ggml.merges").unwrap_or_default();
    let vocab: serde_json::Map<String, serde_json::Value> = tokens
        .iter()
        .enumerate()
        .map(|(i, t)| (t.clone(), json!(i)))
        .collect();
    // Control (3) and user-defined (4) tokens are matched whole, as the original's added tokens.
    let added: Vec<serde_json::Value> = tokens
        .iter()
        .zip(&types)
        .enumerate()
        .filter(|(_, (_, &ty))| ty == 3 || ty == 4)
        .map(|(i, (t, &ty))| {
            json!({"id": i, "content": t, "single_word": false, "lstrip": false,
            "rstrip": false, "normalized": false, "special": ty == 3})
        })
        .collect();
    let spec = json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added,
        "normalizer": normalizer,
        "pre_tokenizer": pre_tokenizer,
        "post_processor": null,
        "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
        "model": {"type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null,
            "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false,
            // Llama 3's tokenizer takes a whole pre-token that is in the vocabulary as it is.
            "ignore_merges": matches!(pre.as_str(), "llama-bpe" | "llama3"),
            "vocab": vocab, "merges": merges},
    });
    spec.to_string().parse::<Tokenizer>().map_err(|e| {
        Error::model(
            meta.path,
            format!("its tokenizer could not be rebuilt ({e})"),
        )
    })
}

/// `bos_token` and `eos_token` for the chat template, as text.
fn special_tokens(meta: &Meta) -> serde_json::Map<String, serde_json::Value> {
    let mut out = serde_json::Map::new();
    let Ok(tokens) = meta.strings("tokenizer.ggml.tokens") else {
        return out;
    };
    for (key, name) in [
        ("tokenizer.ggml.bos_token_id", "bos_token"),
        ("tokenizer.ggml.eos_token_id", "eos_token"),
        ("tokenizer.ggml.unknown_token_id", "unk_token"),
        ("tokenizer.ggml.padding_token_id", "pad_token"),
    ] {
        if let Some(t) = meta.opt_usize(key).and_then(|i| tokens.get(i)) {
            out.insert(name.into(), t.clone().into());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Q5_0 (no SIMD kernel in candle) is re-quantised to Q8_0 without losing its values; types
    /// with fast kernels (Q4_1 where ours have AVX2) are kept as they are.
    #[test]
    fn slow_quantisations_become_q8_0_to_within_its_step() {
        let dev = Device::Cpu;
        let mut rng = crate::rng::Rng::new(5);
        let data: Vec<f32> = (0..8 * 64).map(|_| rng.normal()).collect();
        let t = Tensor::from_vec(data, (8, 64), &dev).unwrap();
        let q50 = QTensor::quantize(&t, GgmlDType::Q5_0).unwrap();
        let want = q50.dequantize(&dev).unwrap();
        let fast = fast_kernel(q50, &dev).unwrap();
        assert_eq!(fast.dtype(), GgmlDType::Q8_0);
        let got = fast.dequantize(&dev).unwrap();
        let err: f32 = (&got - &want)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar()
            .unwrap();
        let top: f32 = want.abs().unwrap().max_all().unwrap().to_scalar().unwrap();
        assert!(err <= top / 254.0 + 1e-6, "{err} of {top}");
        let q41 = QTensor::quantize(&t, GgmlDType::Q4_1).unwrap();
        let kept = if crate::model::ops::has_vector_quantized_kernels() {
            GgmlDType::Q4_1
        } else {
            GgmlDType::Q8_0
        };
        assert_eq!(fast_kernel(q41, &dev).unwrap().dtype(), kept);
        let q80 = QTensor::quantize(&t, GgmlDType::Q8_0).unwrap();
        assert_eq!(fast_kernel(q80, &dev).unwrap().dtype(), GgmlDType::Q8_0);
        let q4k = QTensor::quantize(
            &Tensor::zeros((2, 256), DType::F32, &dev).unwrap(),
            GgmlDType::Q4K,
        )
        .unwrap();
        assert_eq!(fast_kernel(q4k, &dev).unwrap().dtype(), GgmlDType::Q4K);
    }

    /// Llama 3.2's rope scaling survives the trip through llama.cpp's rope_freqs divisors.
    #[test]
    fn llama3_scaling_is_recovered_from_rope_freqs() {
        let mut c: LlamaConfig = serde_json::from_value(json!({
            "model_type": "llama", "vocab_size": 10, "hidden_size": 128, "intermediate_size": 8,
            "num_hidden_layers": 1, "num_attention_heads": 2, "rope_theta": 500000.0,
            "rope_scaling": {"rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0,
                "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}
        }))
        .unwrap();
        let scaled = c.inv_freq().unwrap();
        let want = c.rope_scaling.take().unwrap();
        let base = c.inv_freq().unwrap();
        let factors: Vec<f64> = base.iter().zip(&scaled).map(|(b, s)| b / s).collect();
        assert_eq!(llama3_scaling(&c, &factors), Some(want));
        let mut odd = factors.clone();
        odd[3] *= 1.5;
        assert_eq!(llama3_scaling(&c, &odd), None);
    }
}
