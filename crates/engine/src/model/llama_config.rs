//! Llama-family hyperparameters (`model_type` llama, qwen2, mistral) in Hugging Face's
//! `config.json` shape, and the rotary-embedding frequencies they imply. Unknown fields are kept so
//! a config round-trips unchanged.

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// The `model_type`s this family covers.
pub const LLAMA_TYPES: &[&str] = &["llama", "qwen2", "mistral"];

/// A Llama-family architecture. Field names and defaults follow transformers' `LlamaConfig`
/// (Qwen2 and Mistral differ only in the defaults noted).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LlamaConfig {
    pub model_type: String,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    /// Grouped-query attention: `None` means one key/value head per query head.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_key_value_heads: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head_dim: Option<usize>,
    #[serde(default = "default_act")]
    pub hidden_act: String,
    #[serde(default = "default_positions")]
    pub max_position_embeddings: usize,
    #[serde(default = "default_eps")]
    pub rms_norm_eps: f64,
    /// `None`: 10000, or `rope_parameters.rope_theta`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rope_theta: Option<f64>,
    /// The published configs' form (`rope_type`/`type`, `factor`, …); transformers 5 writes
    /// `rope_parameters` instead, holding `rope_theta` too. Either is read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rope_scaling: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rope_parameters: Option<serde_json::Value>,
    /// Llama: biases on q, k, v and o. (Qwen2 always has q/k/v biases and no o bias.)
    #[serde(default)]
    pub attention_bias: bool,
    #[serde(default)]
    pub mlp_bias: bool,
    #[serde(default)]
    pub tie_word_embeddings: bool,
    #[serde(default)]
    pub attention_dropout: f32,
    /// Tunesmith's residual dropout for training (transformers' Llama has none; 0 by default).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub tunesmith_resid_dropout: f32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bos_token_id: Option<serde_json::Value>,
    /// One id or a list (chat models end a turn with several).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eos_token_id: Option<serde_json::Value>,
    /// Fields we do not interpret, kept for round-tripping.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
    /// One divisor per rotary frequency, as GGUF files of Llama 3.1+ carry their rope scaling
    /// (`rope_freqs.weight`); not part of config.json.
    #[serde(skip)]
    pub rope_freq_factors: Option<Vec<f64>>,
}

fn is_zero(x: &f32) -> bool {
    *x == 0.0
}
fn default_act() -> String {
    "silu".into()
}
fn default_positions() -> usize {
    2048
}
fn default_eps() -> f64 {
    1e-6
}

/// How positions are stretched beyond the trained context (`rope_scaling`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RopeScaling {
    None,
    /// Positions divided by `factor`.
    Linear {
        factor: f64,
    },
    /// Llama 3.1's frequency-dependent scaling.
    Llama3 {
        factor: f64,
        low_freq_factor: f64,
        high_freq_factor: f64,
        original_max_position_embeddings: f64,
    },
}

impl LlamaConfig {
    pub fn head_dim(&self) -> usize {
        self.head_dim
            .unwrap_or(self.hidden_size / self.num_attention_heads.max(1))
    }

    pub fn kv_heads(&self) -> usize {
        self.num_key_value_heads.unwrap_or(self.num_attention_heads)
    }

    /// Whether q, k and v have biases (Qwen2 always; Llama with `attention_bias`).
    pub fn qkv_bias(&self) -> bool {
        self.model_type == "qwen2" || self.attention_bias
    }

    /// Whether the output projection has a bias (Llama with `attention_bias`; never Qwen2).
    pub fn o_bias(&self) -> bool {
        self.model_type != "qwen2" && self.attention_bias
    }

    pub fn validate(&self) -> Result<()> {
        let bad = |field: &str, msg: String| Err(Error::config(field, msg));
        if !LLAMA_TYPES.contains(&self.model_type.as_str()) {
            return bad(
                "model_type",
                format!(
                    "is `{}`, not one of {}",
                    self.model_type,
                    LLAMA_TYPES.join(", ")
                ),
            );
        }
        if self.vocab_size == 0
            || self.hidden_size == 0
            || self.intermediate_size == 0
            || self.num_hidden_layers == 0
            || self.num_attention_heads == 0
            || self.max_position_embeddings == 0
        {
            return bad(
                "vocab_size/hidden_size/intermediate_size/num_hidden_layers/num_attention_heads",
                "must all be at least 1".into(),
            );
        }
        let kv = self.kv_heads();
        if kv == 0 || !self.num_attention_heads.is_multiple_of(kv) {
            return bad(
                "num_key_value_heads",
                format!(
                    "is {kv}; it must divide num_attention_heads ({})",
                    self.num_attention_heads
                ),
            );
        }
        if self.head_dim() == 0 || !self.head_dim().is_multiple_of(2) {
            return bad(
                "head_dim",
                format!("is {}; it must be even", self.head_dim()),
            );
        }
        if self.head_dim.is_none() && !self.hidden_size.is_multiple_of(self.num_attention_heads) {
            return bad(
                "hidden_size",
                "must be divisible by num_attention_heads".into(),
            );
        }
        if self.hidden_act != "silu" {
            return bad(
                "hidden_act",
                format!("`{}` is not supported (only silu)", self.hidden_act),
            );
        }
        if self
            .extra
            .get("use_sliding_window")
            .and_then(|v| v.as_bool())
            == Some(true)
        {
            return bad(
                "use_sliding_window",
                "is true; sliding-window attention is not supported".into(),
            );
        }
        super::config::check_dropout("attention_dropout", self.attention_dropout)?;
        super::config::check_dropout("tunesmith_resid_dropout", self.tunesmith_resid_dropout)?;
        self.rope()?;
        Ok(())
    }

    /// The rotary base: `rope_parameters.rope_theta` when given, else `rope_theta`.
    pub fn theta(&self) -> f64 {
        self.rope_parameters
            .as_ref()
            .and_then(|p| p.get("rope_theta"))
            .and_then(|t| t.as_f64())
            .or(self.rope_theta)
            .unwrap_or(10000.0)
    }

    /// The parsed `rope_parameters` or `rope_scaling`, refusing the types we do not implement.
    pub fn rope(&self) -> Result<RopeScaling> {
        let Some(v) = self
            .rope_parameters
            .as_ref()
            .or(self.rope_scaling.as_ref())
            .filter(|v| !v.is_null())
        else {
            return Ok(RopeScaling::None);
        };
        let kind = v
            .get("rope_type")
            .or_else(|| v.get("type"))
            .and_then(|t| t.as_str())
            .unwrap_or("default");
        let num = |k: &str| {
            v.get(k).and_then(|x| x.as_f64()).ok_or_else(|| {
                Error::config(
                    "rope_scaling",
                    format!("of type {kind} needs a number `{k}`"),
                )
            })
        };
        match kind {
            "default" => Ok(RopeScaling::None),
            "linear" => Ok(RopeScaling::Linear {
                factor: num("factor")?,
            }),
            "llama3" => Ok(RopeScaling::Llama3 {
                factor: num("factor")?,
                low_freq_factor: num("low_freq_factor")?,
                high_freq_factor: num("high_freq_factor")?,
                original_max_position_embeddings: num("original_max_position_embeddings")?,
            }),
            other => Err(Error::config(
                "rope_scaling",
                format!("type `{other}` is not supported (default, linear and llama3 are)"),
            )),
        }
    }

    /// Inverse frequencies of the rotary embedding, one per pair of dimensions, computed as
    /// transformers' `ROPE_INIT_FUNCTIONS` do (the linear factor is applied here too, which is the
    /// same as dividing the positions).
    pub fn inv_freq(&self) -> Result<Vec<f64>> {
        let d = self.head_dim();
        if let Some(factors) = &self.rope_freq_factors {
            if factors.len() != d / 2 {
                return Err(Error::config(
                    "rope_freqs",
                    format!("has {} factors for {} frequencies", factors.len(), d / 2),
                ));
            }
            return Ok((0..d / 2)
                .map(|i| 1.0 / self.theta().powf((2 * i) as f64 / d as f64) / factors[i])
                .collect());
        }
        let base: Vec<f64> = (0..d / 2)
            .map(|i| 1.0 / self.theta().powf((2 * i) as f64 / d as f64))
            .collect();
        Ok(match self.rope()? {
            RopeScaling::None => base,
            RopeScaling::Linear { factor } => base.iter().map(|f| f / factor).collect(),
            RopeScaling::Llama3 {
                factor,
                low_freq_factor,
                high_freq_factor,
                original_max_position_embeddings: old,
            } => {
                let low_wavelen = old / low_freq_factor;
                let high_wavelen = old / high_freq_factor;
                base.iter()
                    .map(|&f| {
                        let wavelen = 2.0 * std::f64::consts::PI / f;
                        if wavelen < high_wavelen {
                            f
                        } else if wavelen > low_wavelen {
                            f / factor
                        } else {
                            let smooth = (old / wavelen - low_freq_factor)
                                / (high_freq_factor - low_freq_factor);
                            (1.0 - smooth) * f / factor + smooth * f
                        }
                    })
                    .collect()
            }
        })
    }

    /// End-of-sequence ids named by the config (one or a list).
    pub fn eos_ids(&self) -> Vec<u32> {
        ids_of(self.eos_token_id.as_ref())
    }

    /// Parameter count (an untied head counts once more the size of the token embedding).
    pub fn num_params(&self) -> usize {
        let (c, i, d) = (self.hidden_size, self.intermediate_size, self.head_dim());
        let (h, kv) = (self.num_attention_heads, self.kv_heads());
        let qkv_b = if self.qkv_bias() { (h + 2 * kv) * d } else { 0 };
        let o_b = if self.o_bias() { c } else { 0 };
        let mlp_b = if self.mlp_bias { 2 * i + c } else { 0 };
        let per_layer = 2 * c + c * (h + 2 * kv) * d + qkv_b + h * d * c + o_b + 3 * c * i + mlp_b;
        let head = if self.tie_word_embeddings {
            0
        } else {
            self.vocab_size * c
        };
        self.vocab_size * c + head + self.num_hidden_layers * per_layer + c
    }

    /// JSON for `config.json`, HF-loadable.
    pub fn to_json(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(self).expect("config serialises");
        if v.get("architectures").is_none() {
            let arch = match self.model_type.as_str() {
                "qwen2" => "Qwen2ForCausalLM",
                "mistral" => "MistralForCausalLM",
                _ => "LlamaForCausalLM",
            };
            v["architectures"] = serde_json::json!([arch]);
        }
        v
    }
}

/// Token ids from a config value that is one id or a list of them.
pub fn ids_of(v: Option<&serde_json::Value>) -> Vec<u32> {
    match v {
        Some(serde_json::Value::Number(n)) => n.as_u64().map(|x| x as u32).into_iter().collect(),
        Some(serde_json::Value::Array(a)) => a
            .iter()
            .filter_map(|x| x.as_u64().map(|x| x as u32))
            .collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn smollm2_135m() -> LlamaConfig {
        serde_json::from_value(serde_json::json!({
            "model_type": "llama", "vocab_size": 49152, "hidden_size": 576,
            "intermediate_size": 1536, "num_hidden_layers": 30, "num_attention_heads": 9,
            "num_key_value_heads": 3, "max_position_embeddings": 8192, "rms_norm_eps": 1e-5,
            "rope_theta": 100000, "tie_word_embeddings": true, "eos_token_id": 2,
            "torch_dtype": "bfloat16"
        }))
        .unwrap()
    }

    #[test]
    fn smollm2_shape_and_param_count() {
        let cfg = smollm2_135m();
        cfg.validate().unwrap();
        assert_eq!(cfg.head_dim(), 64);
        // SmolLM2-135M: 134,515,008 parameters.
        assert_eq!(cfg.num_params(), 134_515_008);
        assert_eq!(cfg.to_json()["torch_dtype"], "bfloat16");
        assert_eq!(cfg.eos_ids(), vec![2]);
    }

    #[test]
    fn unsupported_rope_and_bad_heads_name_the_field() {
        let mut cfg = smollm2_135m();
        cfg.rope_scaling = Some(serde_json::json!({"rope_type": "yarn", "factor": 4.0}));
        let e = cfg.validate().unwrap_err().to_string();
        assert!(e.contains("rope_scaling") && e.contains("yarn"), "{e}");
        let mut cfg = smollm2_135m();
        cfg.num_key_value_heads = Some(2);
        let e = cfg.validate().unwrap_err().to_string();
        assert!(e.contains("num_key_value_heads"), "{e}");
        let mut cfg = smollm2_135m();
        cfg.attention_dropout = 1.0;
        let e = cfg.validate().unwrap_err().to_string();
        assert!(
            e.contains("attention_dropout") && e.contains("below 1"),
            "{e}"
        );
    }
}
