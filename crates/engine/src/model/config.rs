//! GPT-2 hyperparameters in Hugging Face's `config.json` shape, with the presets Tunesmith offers
//! for training from scratch. Unknown fields are kept so a config round-trips unchanged.

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// A GPT-2 architecture. Field names follow HF `GPT2Config`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Gpt2Config {
    #[serde(default = "default_model_type")]
    pub model_type: String,
    pub vocab_size: usize,
    #[serde(default = "default_n_positions")]
    pub n_positions: usize,
    pub n_embd: usize,
    pub n_layer: usize,
    pub n_head: usize,
    /// MLP width; `None` means 4 × `n_embd`.
    #[serde(default)]
    pub n_inner: Option<usize>,
    #[serde(default = "default_activation")]
    pub activation_function: String,
    #[serde(default = "default_pdrop")]
    pub resid_pdrop: f32,
    #[serde(default = "default_pdrop")]
    pub embd_pdrop: f32,
    #[serde(default = "default_pdrop")]
    pub attn_pdrop: f32,
    #[serde(default = "default_eps")]
    pub layer_norm_epsilon: f64,
    #[serde(default)]
    pub bos_token_id: Option<u32>,
    #[serde(default)]
    pub eos_token_id: Option<u32>,
    /// Fields we do not interpret, kept for round-tripping.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

fn default_model_type() -> String {
    "gpt2".into()
}
fn default_n_positions() -> usize {
    1024
}
fn default_activation() -> String {
    "gelu_new".into()
}
fn default_pdrop() -> f32 {
    0.1
}
fn default_eps() -> f64 {
    1e-5
}

/// A dropout probability read from a `config.json`: from 0 up to, not including, 1. At 1 or more
/// every activation would be dropped, and the memory estimate assumes attention's weights are
/// never kept (`ops::causal_attention` handles any p below 1 inside the op).
pub(crate) fn check_dropout(field: &str, p: f32) -> Result<()> {
    if (0.0..1.0).contains(&p) {
        Ok(())
    } else {
        Err(Error::config(
            field,
            format!("is {p}; a dropout probability must be at least 0 and below 1"),
        ))
    }
}

/// Sizes offered for training from scratch.
pub const SCRATCH_PRESETS: &[&str] = &["tiny", "small", "base"];

impl Gpt2Config {
    /// A from-scratch architecture: `tiny` (4 layers, 4 heads, 256 wide, ≈ 3M + embeddings),
    /// `small` (6, 6, 384), `base` (12, 12, 768: the GPT-2 124M shape).
    pub fn preset(name: &str, vocab_size: usize, n_positions: usize) -> Result<Self> {
        let (n_layer, n_head, n_embd) = match name {
            "tiny" => (4, 4, 256),
            "small" => (6, 6, 384),
            "base" | "gpt2" => (12, 12, 768),
            other => {
                return Err(Error::config(
                    "scratch",
                    format!("must be one of tiny, small or base, not `{other}`"),
                ))
            }
        };
        let cfg = Gpt2Config {
            model_type: default_model_type(),
            vocab_size,
            n_positions,
            n_embd,
            n_layer,
            n_head,
            n_inner: None,
            activation_function: default_activation(),
            resid_pdrop: 0.1,
            embd_pdrop: 0.1,
            attn_pdrop: 0.1,
            layer_norm_epsilon: 1e-5,
            bos_token_id: None,
            eos_token_id: None,
            extra: Default::default(),
        };
        cfg.validate()?;
        Ok(cfg)
    }

    /// Whether the LM head is the token embedding (HF's `tie_word_embeddings`, true unless the
    /// config says otherwise). An untied model carries its own `lm_head.weight`.
    pub fn tied(&self) -> bool {
        self.extra
            .get("tie_word_embeddings")
            .and_then(|v| v.as_bool())
            .unwrap_or(true)
    }

    pub fn inner(&self) -> usize {
        self.n_inner.unwrap_or(4 * self.n_embd)
    }

    pub fn head_dim(&self) -> usize {
        self.n_embd / self.n_head
    }

    pub fn validate(&self) -> Result<()> {
        let bad = |field: &str, msg: &str| Err(Error::config(field, msg.to_string()));
        if self.model_type != "gpt2" {
            return Err(Error::config(
                "model_type",
                format!("is `{}`, not gpt2", self.model_type),
            ));
        }
        if self.vocab_size == 0 {
            return bad("vocab_size", "must be at least 1");
        }
        if self.n_layer == 0 || self.n_head == 0 || self.n_embd == 0 || self.n_positions == 0 {
            return bad(
                "n_layer/n_head/n_embd/n_positions",
                "must all be at least 1",
            );
        }
        if !self.n_embd.is_multiple_of(self.n_head) {
            return bad("n_embd", "must be divisible by n_head");
        }
        if !matches!(
            self.activation_function.as_str(),
            "gelu_new" | "gelu" | "gelu_pytorch_tanh" | "gelu_fast" | "relu"
        ) {
            return Err(Error::config(
                "activation_function",
                format!("`{}` is not supported", self.activation_function),
            ));
        }
        check_dropout("resid_pdrop", self.resid_pdrop)?;
        check_dropout("embd_pdrop", self.embd_pdrop)?;
        check_dropout("attn_pdrop", self.attn_pdrop)?;
        Ok(())
    }

    /// Parameter count (an untied head counts once more the size of the token embedding).
    pub fn num_params(&self) -> usize {
        let c = self.n_embd;
        let per_layer = 2 * 2 * c
            + (c * 3 * c + 3 * c)
            + (c * c + c)
            + 2 * (c * self.inner())
            + self.inner()
            + c;
        let head = if self.tied() { 0 } else { self.vocab_size * c };
        self.vocab_size * c + head + self.n_positions * c + self.n_layer * per_layer + 2 * c
    }

    /// JSON for `config.json`, HF-loadable.
    pub fn to_json(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(self).expect("config serialises");
        v["architectures"] = serde_json::json!(["GPT2LMHeadModel"]);
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_and_param_count() {
        // GPT-2 124M: 124,439,808 parameters with tied head.
        let cfg = Gpt2Config::preset("base", 50257, 1024).unwrap();
        assert_eq!(cfg.num_params(), 124_439_808);
        assert!(Gpt2Config::preset("huge", 10, 10).is_err());
    }

    #[test]
    fn validation_names_the_field() {
        let mut cfg = Gpt2Config::preset("tiny", 100, 64).unwrap();
        cfg.n_head = 3;
        let e = cfg.validate().unwrap_err().to_string();
        assert!(e.contains("n_embd"), "{e}");
    }

    #[test]
    fn dropout_probabilities_are_checked() {
        for (field, p) in [
            ("attn_pdrop", 1.0),
            ("resid_pdrop", -0.1),
            ("embd_pdrop", f32::NAN),
        ] {
            let mut cfg = Gpt2Config::preset("tiny", 100, 64).unwrap();
            match field {
                "attn_pdrop" => cfg.attn_pdrop = p,
                "resid_pdrop" => cfg.resid_pdrop = p,
                _ => cfg.embd_pdrop = p,
            }
            let e = cfg.validate().unwrap_err().to_string();
            assert!(e.contains(field) && e.contains("below 1"), "{e}");
        }
        let mut cfg = Gpt2Config::preset("tiny", 100, 64).unwrap();
        cfg.attn_pdrop = 0.0;
        cfg.validate().unwrap();
    }

    #[test]
    fn unknown_fields_round_trip() {
        let json = r#"{"vocab_size":10,"n_embd":8,"n_layer":1,"n_head":2,"foo":[1,2]}"#;
        let cfg: Gpt2Config = serde_json::from_str(json).unwrap();
        assert_eq!(cfg.to_json()["foo"], serde_json::json!([1, 2]));
        assert_eq!(cfg.n_positions, 1024);
    }
}
