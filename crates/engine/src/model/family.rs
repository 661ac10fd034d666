//! The one model interface over both families. Training, generation and evaluation hold a
//! [`Model`] and a [`ModelConfig`] and never ask which family they have; everything that differs
//! (weight names, HF key prefixes, which weights are "the layers", what decays) is answered here.

use std::path::Path;

use candle_core::{DType, Device, Tensor};

use super::config::Gpt2Config;
use super::gpt2::{self, Gpt2};
use super::layers::{DropoutRng, KvCache, QWeights, Weights};
use super::llama::{self, Llama};
use super::llama_config::{ids_of, LlamaConfig, LLAMA_TYPES};
use super::lora::LoraRuntime;
use super::ops;
use crate::{Error, Result};

/// A model's `config.json`, by family.
#[derive(Debug, Clone, PartialEq)]
pub enum ModelConfig {
    Gpt2(Gpt2Config),
    Llama(LlamaConfig),
}

impl From<Gpt2Config> for ModelConfig {
    fn from(c: Gpt2Config) -> Self {
        ModelConfig::Gpt2(c)
    }
}

impl From<LlamaConfig> for ModelConfig {
    fn from(c: LlamaConfig) -> Self {
        ModelConfig::Llama(c)
    }
}

impl ModelConfig {
    /// Parses a HF `config.json` by its `model_type`, validated.
    pub fn from_json(v: serde_json::Value) -> Result<Self> {
        let kind = v
            .get("model_type")
            .and_then(|t| t.as_str())
            .unwrap_or("gpt2")
            .to_string();
        let parse_err = |e: serde_json::Error| {
            Error::config("config.json", format!("is not a valid {kind} config ({e})"))
        };
        let cfg = if kind == "gpt2" {
            ModelConfig::Gpt2(serde_json::from_value(v).map_err(parse_err)?)
        } else if LLAMA_TYPES.contains(&kind.as_str()) {
            ModelConfig::Llama(serde_json::from_value(v).map_err(parse_err)?)
        } else {
            return Err(Error::config(
                "model_type",
                format!(
                    "is `{kind}`; Tunesmith supports gpt2, {}",
                    LLAMA_TYPES.join(", ")
                ),
            ));
        };
        cfg.validate()?;
        Ok(cfg)
    }

    /// Reads and validates a HF `config.json`.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let v: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| Error::model(path, format!("it is not valid JSON ({e})")))?;
        Self::from_json(v).map_err(|e| Error::model(path, e.to_string()))
    }

    pub fn validate(&self) -> Result<()> {
        match self {
            ModelConfig::Gpt2(c) => c.validate(),
            ModelConfig::Llama(c) => c.validate(),
        }
    }

    pub fn model_type(&self) -> &str {
        match self {
            ModelConfig::Gpt2(c) => &c.model_type,
            ModelConfig::Llama(c) => &c.model_type,
        }
    }

    pub fn vocab_size(&self) -> usize {
        match self {
            ModelConfig::Gpt2(c) => c.vocab_size,
            ModelConfig::Llama(c) => c.vocab_size,
        }
    }

    /// Width of the hidden states (`n_embd` / `hidden_size`).
    pub fn width(&self) -> usize {
        match self {
            ModelConfig::Gpt2(c) => c.n_embd,
            ModelConfig::Llama(c) => c.hidden_size,
        }
    }

    /// The longest sequence the model takes, in tokens.
    pub fn context(&self) -> usize {
        match self {
            ModelConfig::Gpt2(c) => c.n_positions,
            // Mistral's sliding-window attention is not implemented: within the window it is the
            // same as full attention, so the context stops there.
            ModelConfig::Llama(c) => match c.extra.get("sliding_window").and_then(|w| w.as_u64()) {
                Some(w)
                    if c.model_type == "mistral" && (w as usize) < c.max_position_embeddings =>
                {
                    w as usize
                }
                _ => c.max_position_embeddings,
            },
        }
    }

    pub fn num_params(&self) -> usize {
        match self {
            ModelConfig::Gpt2(c) => c.num_params(),
            ModelConfig::Llama(c) => c.num_params(),
        }
    }

    /// Names and shapes of every weight, in a stable order.
    pub fn weight_shapes(&self) -> Vec<(String, Vec<usize>)> {
        match self {
            ModelConfig::Gpt2(c) => gpt2::weight_shapes(c),
            ModelConfig::Llama(c) => llama::weight_shapes(c),
        }
    }

    /// Fresh seeded weights for this architecture.
    pub fn init_weights(&self, seed: u64, device: &Device) -> Result<Weights> {
        Ok(match self {
            ModelConfig::Gpt2(c) => gpt2::init_weights(c, seed, device)?,
            ModelConfig::Llama(c) => llama::init_weights(c, seed, device)?,
        })
    }

    /// Sets every dropout probability the model uses in training to `p`.
    pub fn set_dropout(&mut self, p: f32) {
        match self {
            ModelConfig::Gpt2(c) => (c.embd_pdrop, c.attn_pdrop, c.resid_pdrop) = (p, p, p),
            ModelConfig::Llama(c) => (c.attention_dropout, c.tunesmith_resid_dropout) = (p, p),
        }
    }

    /// Records the tokenizer's end-of-text id as the model's. GPT-2 uses it as both bos and eos;
    /// a Llama-family model keeps the ids it came with and takes this one only when it has none.
    pub fn set_end_token(&mut self, eot: Option<u32>) {
        match self {
            ModelConfig::Gpt2(c) => {
                c.eos_token_id = eot.or(c.eos_token_id);
                c.bos_token_id = c.eos_token_id;
            }
            ModelConfig::Llama(c) => {
                if c.eos_token_id.is_none() {
                    c.eos_token_id = eot.map(|e| e.into());
                }
            }
        }
    }

    /// Ids that end a reply: the config's eos (one or several).
    pub fn eos_ids(&self) -> Vec<u32> {
        match self {
            ModelConfig::Gpt2(c) => c.eos_token_id.into_iter().collect(),
            ModelConfig::Llama(c) => c.eos_ids(),
        }
    }

    /// Adds the eos ids of a `generation_config.json` (chat models list their end-of-turn ids
    /// there) to the config's own.
    pub fn merge_generation_eos(&mut self, generation: &serde_json::Value) {
        let extra = ids_of(generation.get("eos_token_id"));
        if let ModelConfig::Llama(c) = self {
            let mut ids = c.eos_ids();
            for id in extra {
                if !ids.contains(&id) {
                    ids.push(id);
                }
            }
            if !ids.is_empty() {
                c.eos_token_id = Some(if ids.len() == 1 {
                    ids[0].into()
                } else {
                    ids.into()
                });
            }
        }
    }

    /// JSON for `config.json`, HF-loadable.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            ModelConfig::Gpt2(c) => c.to_json(),
            ModelConfig::Llama(c) => c.to_json(),
        }
    }

    /// Whether a weight belongs to the transformer blocks (what "only train the layers" trains).
    pub fn is_block_weight(&self, name: &str) -> bool {
        match self {
            ModelConfig::Gpt2(_) => name.starts_with("h."),
            ModelConfig::Llama(_) => name.starts_with("model.layers."),
        }
    }

    /// Whether AdamW decays a weight: matrices, not biases, norms, embeddings or LoRA adapters
    /// (decay would pull an adapter back towards the base model; PEFT's recipes train them
    /// without).
    pub fn decays(&self, name: &str, rank: usize) -> bool {
        rank == 2
            && !super::lora::is_adapter(name)
            && !matches!(
                name,
                "wte.weight" | "wpe.weight" | "model.embed_tokens.weight"
            )
    }

    /// Our name for a tensor in a HF weights file, or `None` for tensors that carry nothing (old
    /// causal-mask and rotary buffers, the copy of a tied head).
    pub fn our_name(&self, hf: &str) -> Option<String> {
        match self {
            ModelConfig::Gpt2(c) => {
                let name = hf.strip_prefix("transformer.").unwrap_or(hf);
                let skip = (name == "lm_head.weight" && c.tied())
                    || name.ends_with(".attn.bias")
                    || name.ends_with(".attn.masked_bias");
                (!skip).then(|| name.to_string())
            }
            ModelConfig::Llama(c) => {
                let skip = (hf == "lm_head.weight" && c.tie_word_embeddings)
                    || hf.ends_with("rotary_emb.inv_freq");
                (!skip).then(|| hf.to_string())
            }
        }
    }

    /// The name transformers expects for one of our tensors.
    pub fn hf_name(&self, ours: &str) -> String {
        match self {
            // HF keeps GPT-2's head outside the `transformer` module.
            ModelConfig::Gpt2(_) if ours != "lm_head.weight" => format!("transformer.{ours}"),
            _ => ours.to_string(),
        }
    }
}

/// The network itself, by family.
enum Net {
    Gpt2(Gpt2),
    Llama(Llama),
}

/// A causal language model of either family, built over named weights.
pub struct Model {
    cfg: ModelConfig,
    net: Net,
    /// The loss's logits buffer, reused from step to step.
    head_scratch: ops::HeadScratch,
    /// Whether a decode step's products all run on rayon's pool (f32 weights, or quantised ones
    /// that our kernels read), so that its workers may spin through a step (`device::on_pool`).
    spin_decode: bool,
}

impl Model {
    /// Builds the model over `weights` (plain tensors for inference, `Var`s for training).
    pub fn new(weights: &Weights, cfg: &ModelConfig) -> candle_core::Result<Self> {
        Self::with_lora(weights, cfg, None)
    }

    /// [`Model::new`] whose projections use the LoRA adapters found in `weights`.
    pub fn with_lora(
        weights: &Weights,
        cfg: &ModelConfig,
        lora: Option<LoraRuntime>,
    ) -> candle_core::Result<Self> {
        Self::build(weights, None, cfg, lora)
    }

    /// A model for inference whose projections found in `quantized` stay quantised (Llama family;
    /// GPT-2 takes dense weights only).
    pub fn quantized(
        weights: &Weights,
        quantized: &QWeights,
        cfg: &ModelConfig,
    ) -> candle_core::Result<Self> {
        Self::build(weights, Some(quantized), cfg, None)
    }

    fn build(
        weights: &Weights,
        quantized: Option<&QWeights>,
        cfg: &ModelConfig,
        lora: Option<LoraRuntime>,
    ) -> candle_core::Result<Self> {
        let net = match cfg {
            ModelConfig::Gpt2(c) => Net::Gpt2(Gpt2::new(weights, c, lora)?),
            ModelConfig::Llama(c) => Net::Llama(Llama::new(weights, c, lora, quantized)?),
        };
        let spin_decode =
            quantized.is_none_or(|q| q.values().all(|t| ops::quantized_kernels_read(t.dtype())));
        Ok(Model {
            cfg: cfg.clone(),
            net,
            head_scratch: Default::default(),
            spin_decode,
        })
    }

    pub fn config(&self) -> &ModelConfig {
        &self.cfg
    }

    pub fn device(&self) -> &Device {
        match &self.net {
            Net::Gpt2(m) => m.device(),
            Net::Llama(m) => m.device(),
        }
    }

    /// Final hidden states `(B·T, C)` for token ids `(B, T)`, positions starting after the cached
    /// ones. `rng` enables dropout (training).
    pub fn hidden(
        &self,
        ids: &Tensor,
        cache: Option<&mut KvCache>,
        rng: Option<&mut DropoutRng>,
    ) -> candle_core::Result<Tensor> {
        match &self.net {
            Net::Gpt2(m) => m.hidden(ids, cache, rng),
            Net::Llama(m) => m.hidden(ids, cache, rng),
        }
    }

    /// The number of transformer blocks.
    pub fn n_blocks(&self) -> usize {
        match &self.net {
            Net::Gpt2(m) => m.n_blocks(),
            Net::Llama(m) => m.n_blocks(),
        }
    }

    /// The first block's input `(B·T, C)` for ids `(B, T)` from position 0 (training): what
    /// [`Model::hidden`] computes before its blocks, drawing the same dropout masks.
    pub fn embed_tokens(
        &self,
        ids: &Tensor,
        mut rng: Option<&mut DropoutRng>,
    ) -> candle_core::Result<Tensor> {
        match &self.net {
            Net::Gpt2(m) => m.embed_tokens(ids, &mut rng),
            Net::Llama(m) => m.embed_tokens(ids, &mut rng),
        }
    }

    /// Block `i` on `x: (B·T, C)` for a batch of shape `bt`, positions from 0, no cache.
    pub fn block(
        &self,
        i: usize,
        x: &Tensor,
        bt: (usize, usize),
        mut rng: Option<&mut DropoutRng>,
    ) -> candle_core::Result<Tensor> {
        match &self.net {
            Net::Gpt2(m) => m.block(i, x, bt, &mut rng),
            Net::Llama(m) => m.block(i, x, bt, &mut rng),
        }
    }

    /// The norm after the last block; `final_norm(block(n−1, …(embed_tokens(ids))))` is
    /// `hidden(ids)`.
    pub fn final_norm(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        match &self.net {
            Net::Gpt2(m) => m.final_norm(x),
            Net::Llama(m) => m.final_norm(x),
        }
    }

    /// Logits `(N, V)` for hidden states `(N, C)`.
    pub fn logits(&self, hidden: &Tensor) -> candle_core::Result<Tensor> {
        match &self.net {
            Net::Gpt2(m) => m.logits(hidden),
            Net::Llama(m) => m.logits(hidden),
        }
    }

    /// Full-sequence logits `(B, T, V)`.
    pub fn forward(&self, ids: &Tensor) -> candle_core::Result<Tensor> {
        let (b, t) = ids.dims2()?;
        self.logits(&self.hidden(ids, None, None)?)?
            .reshape((b, t, self.cfg.vocab_size()))
    }

    /// Mean cross-entropy of next-token prediction; `targets` has one id per row of `hidden`
    /// (`ops::IGNORE_INDEX` to skip a position). Differentiable: its gradients are formed along
    /// with the value (see `ops::head_cross_entropy`), so use [`Model::eval_loss`] where no
    /// backward pass follows.
    pub fn loss(&self, hidden: &Tensor, targets: &[u32]) -> candle_core::Result<Tensor> {
        self.head_loss(hidden, targets, true)
    }

    /// [`Model::loss`] without gradients, for evaluation (on the CPU in f32, a third of the fused
    /// head's work). A backward pass through it gives the head and the hidden states no gradient.
    pub fn eval_loss(&self, hidden: &Tensor, targets: &[u32]) -> candle_core::Result<Tensor> {
        self.head_loss(hidden, targets, false)
    }

    /// A dense head goes through the fused head and loss (gradients only when `train`); a
    /// quantised one, never trained, through its logits and the plain cross-entropy.
    fn head_loss(
        &self,
        hidden: &Tensor,
        targets: &[u32],
        train: bool,
    ) -> candle_core::Result<Tensor> {
        let head = match &self.net {
            Net::Gpt2(m) => m.dense_head(),
            Net::Llama(m) => m.dense_head(),
        };
        match head {
            Some(w) => ops::head_cross_entropy(hidden, w, targets, train, &self.head_scratch),
            None => ops::cross_entropy(&self.logits(hidden)?, targets),
        }
    }

    /// Logits `(N, V)` (f32) of one new token for each of `N` sequences, each continuing its own
    /// cache: several samples decoded together, every weight read once for all of them.
    pub fn step_rows(
        &self,
        ids: &[u32],
        caches: &mut [&mut KvCache],
    ) -> candle_core::Result<Tensor> {
        if ids.len() != caches.len() {
            candle_core::bail!("step_rows: {} ids for {} caches", ids.len(), caches.len());
        }
        crate::device::on_pool(self.device(), self.spin_decode, || match &self.net {
            Net::Gpt2(m) => m.step_rows(ids, caches),
            Net::Llama(m) => m.step_rows(ids, caches),
        })?
        .to_dtype(DType::F32)
    }

    /// Feeds `ids` (one sequence) through the cache and returns the logits of the last position (V);
    /// an error when `ids` is empty.
    pub fn step(&self, ids: &[u32], cache: &mut KvCache) -> candle_core::Result<Tensor> {
        if ids.is_empty() {
            candle_core::bail!("step: no token to feed");
        }
        // A decoded token's many small kernels start from a pool worker; a prompt's few large ones
        // stay on the caller's thread (and its memory in the caller's malloc arena, see `on_pool`).
        if ids.len() == 1 {
            crate::device::on_pool(self.device(), self.spin_decode, || {
                self.step_here(ids, cache)
            })
        } else {
            self.step_here(ids, cache)
        }
    }

    /// [`Model::step`] on the calling thread.
    fn step_here(&self, ids: &[u32], cache: &mut KvCache) -> candle_core::Result<Tensor> {
        let t = Tensor::from_slice(ids, (1, ids.len()), self.device())?;
        let h = self.hidden(&t, Some(cache), None)?;
        let last = h.narrow(0, ids.len() - 1, 1)?;
        let logits = match &self.net {
            Net::Gpt2(m) => m.next_logits(&last)?,
            Net::Llama(m) => m.next_logits(&last)?,
        };
        logits.squeeze(0)?.to_dtype(DType::F32)
    }
}
