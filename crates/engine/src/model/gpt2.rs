//! GPT-2 in candle: the same maths as Hugging Face's `GPT2LMHeadModel`, written for training.
//!
//! Weights keep HF's names (without the `transformer.` prefix) and HF's Conv1D layout — `(in, out)`,
//! used as `x @ W + b` — so a checkpoint is a HF model directory as it stands. The LM head is tied to
//! `wte` unless the config sets `tie_word_embeddings: false`; then it is `lm_head.weight`, `(V, C)`. Activations stay 2-D `(B·T, C)` between layers so every projection is one large matmul.

use candle_core::{Device, Tensor};

use super::config::Gpt2Config;
use super::layers::{
    self, dropout, dropout_seed, get, start_positions, DropoutRng, EmbeddingForward, Init, KvCache,
    LayerKv, Weights,
};
use super::lora::{Adapter, LoraRuntime};
use super::ops;

/// The names and shapes every GPT-2 of this config has, in a stable order.
pub fn weight_shapes(cfg: &Gpt2Config) -> Vec<(String, Vec<usize>)> {
    let (c, inner) = (cfg.n_embd, cfg.inner());
    let mut v = vec![
        ("wte.weight".to_string(), vec![cfg.vocab_size, c]),
        ("wpe.weight".to_string(), vec![cfg.n_positions, c]),
    ];
    for i in 0..cfg.n_layer {
        let p = |s: &str| format!("h.{i}.{s}");
        v.extend([
            (p("ln_1.weight"), vec![c]),
            (p("ln_1.bias"), vec![c]),
            (p("attn.c_attn.weight"), vec![c, 3 * c]),
            (p("attn.c_attn.bias"), vec![3 * c]),
            (p("attn.c_proj.weight"), vec![c, c]),
            (p("attn.c_proj.bias"), vec![c]),
            (p("ln_2.weight"), vec![c]),
            (p("ln_2.bias"), vec![c]),
            (p("mlp.c_fc.weight"), vec![c, inner]),
            (p("mlp.c_fc.bias"), vec![inner]),
            (p("mlp.c_proj.weight"), vec![inner, c]),
            (p("mlp.c_proj.bias"), vec![c]),
        ]);
    }
    v.push(("ln_f.weight".to_string(), vec![c]));
    v.push(("ln_f.bias".to_string(), vec![c]));
    if !cfg.tied() {
        v.push(("lm_head.weight".to_string(), vec![cfg.vocab_size, c]));
    }
    v
}

/// GPT-2's initialisation: N(0, 0.02) for matrices and embeddings, N(0, 0.02/√(2·n_layer)) for the
/// residual projections, zero biases, unit norms. Seeded, so a from-scratch run is reproducible.
pub fn init_weights(cfg: &Gpt2Config, seed: u64, device: &Device) -> candle_core::Result<Weights> {
    layers::init_weights(weight_shapes(cfg), seed, device, |name| {
        if name.contains("ln_") {
            Init::Fill(if name.ends_with("weight") { 1.0 } else { 0.0 })
        } else if name.ends_with("bias") {
            Init::Fill(0.0)
        } else if name.ends_with("c_proj.weight") {
            Init::Normal(0.02 / (2.0 * cfg.n_layer as f32).sqrt())
        } else {
            Init::Normal(0.02)
        }
    })
}

struct Norm {
    w: Tensor,
    b: Tensor,
    eps: f64,
}

impl Norm {
    fn new(w: &Weights, p: &str, cfg: &Gpt2Config) -> candle_core::Result<Self> {
        let c = cfg.n_embd;
        Ok(Norm {
            w: get(w, &format!("{p}.weight"), &[c])?,
            b: get(w, &format!("{p}.bias"), &[c])?,
            eps: cfg.layer_norm_epsilon,
        })
    }

    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        ops::layer_norm(x, &self.w, &self.b, self.eps)
    }
}

/// HF's Conv1D: `x @ W + b` with `W: (in, out)`, plus its LoRA adapter when it has one.
struct Conv1D {
    w: Tensor,
    b: Tensor,
    lora: Option<Adapter>,
}

impl Conv1D {
    fn new(
        w: &Weights,
        p: &str,
        n_in: usize,
        n_out: usize,
        lora: Option<LoraRuntime>,
    ) -> candle_core::Result<Self> {
        Ok(Conv1D {
            w: get(w, &format!("{p}.weight"), &[n_in, n_out])?,
            b: get(w, &format!("{p}.bias"), &[n_out])?,
            lora: Adapter::find(w, p, n_in, n_out, lora)?,
        })
    }

    // x: (N, in) -> (N, out)
    fn forward(
        &self,
        x: &Tensor,
        rng: &mut Option<&mut DropoutRng>,
    ) -> candle_core::Result<Tensor> {
        if let Some(lora) = &self.lora {
            let base = ops::FrozenBase {
                w: &self.w,
                transposed: false,
                bias: Some(&self.b),
            };
            if let Some(y) = lora.fused(x, &base, rng)? {
                return Ok(y);
            }
        }
        Adapter::add(&self.lora, self.forward_base(x)?, x, rng)
    }

    fn forward_base(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        // One row (a decode step) takes the streaming kernel; batches take the matmul.
        if x.dim(0)? == 1 {
            ops::vecmat(x, &self.w)?.broadcast_add(&self.b)
        } else {
            ops::linear_bias(x, &self.w, &self.b)
        }
    }
}

struct Attention {
    c_attn: Conv1D,
    c_proj: Conv1D,
    n_head: usize,
    /// Multiplies q·k: 1/√d, and 1/(layer+1) with `scale_attn_by_inverse_layer_idx`.
    scale: f64,
    attn_pdrop: f32,
    resid_pdrop: f32,
}

impl Attention {
    // x: (B·T, C) -> (B·T, C)
    fn forward(
        &self,
        x: &Tensor,
        (b, t): (usize, usize),
        cache: Option<&mut Option<LayerKv>>,
        rng: &mut Option<&mut DropoutRng>,
    ) -> candle_core::Result<Tensor> {
        let c = x.dim(1)?;
        let (h, d) = (self.n_head, c / self.n_head);
        let qkv = self.c_attn.forward(x, rng)?;
        if cache.is_none() {
            // Whole sequences (training, evaluation): one op over q, k and v where `c_attn` put
            // them (`ops::causal_attention_packed`), the weights' dropout inside.
            let shape = ops::Heads {
                batch: b,
                time: t,
                q_heads: h,
                kv_heads: h,
                dim: d,
            };
            let drop = dropout_seed(self.attn_pdrop, rng);
            let y = ops::causal_attention_packed(&qkv, shape, self.scale as f32, drop)?;
            let out = self.c_proj.forward(&y, rng)?;
            return dropout(&out, self.resid_pdrop, rng);
        }
        // qkv: (B·T, 3C) -> (3, B, H, T, D)
        let qkv = qkv.reshape((b, t, 3, h, d))?.permute((2, 0, 3, 1, 4))?;
        let y = self.attend(
            qkv.get(0)?.contiguous()?,
            qkv.get(1)?.contiguous()?,
            qkv.get(2)?.contiguous()?,
            cache,
            rng,
        )?;
        let out = self.c_proj.forward(&y, rng)?;
        dropout(&out, self.resid_pdrop, rng)
    }

    /// One new token of each of several sequences: row `i` of `x: (N, C)` continues the sequence
    /// of `caches[i]`. The projections take all rows in one product; attention reads each row's
    /// own cache. No dropout (decoding).
    fn forward_rows(
        &self,
        x: &Tensor,
        caches: &mut [&mut Option<LayerKv>],
    ) -> candle_core::Result<Tensor> {
        let c = x.dim(1)?;
        let (h, d) = (self.n_head, c / self.n_head);
        let mut none: Option<&mut DropoutRng> = None;
        let qkv = self.c_attn.forward(x, &mut none)?;
        let mut ys = Vec::with_capacity(caches.len());
        for (i, cache) in caches.iter_mut().enumerate() {
            let row = qkv
                .narrow(0, i, 1)?
                .reshape((1, 1, 3, h, d))?
                .permute((2, 0, 3, 1, 4))?;
            ys.push(self.attend(
                row.get(0)?.contiguous()?,
                row.get(1)?.contiguous()?,
                row.get(2)?.contiguous()?,
                Some(cache),
                &mut none,
            )?);
        }
        self.c_proj.forward(&Tensor::cat(&ys, 0)?, &mut none)
    }

    /// Attention of `q: (B, H, T, D)` over the cached and new `k`, `v`, the new ones appended to
    /// `cache`; `(B·T, C)`.
    fn attend(
        &self,
        q: Tensor,
        mut k: Tensor,
        mut v: Tensor,
        cache: Option<&mut Option<LayerKv>>,
        rng: &mut Option<&mut DropoutRng>,
    ) -> candle_core::Result<Tensor> {
        if let Some(cache) = cache {
            (k, v) = LayerKv::append(cache, &k, &v)?;
        }
        if rng.is_none() {
            // A decode step (one position of one sequence; `decode_attention` declines anything
            // else): one kernel over the cache as it lies.
            if let Some(y) = ops::decode_attention(&q, &k, &v, self.scale)? {
                return Ok(y);
            }
        }
        let drop = dropout_seed(self.attn_pdrop, rng);
        ops::attention_of_heads(&q, &k, &v, self.scale, drop)
    }
}

fn attention_scale(cfg: &Gpt2Config, layer: usize) -> f64 {
    let flag = |k: &str, default: bool| {
        cfg.extra
            .get(k)
            .and_then(|v| v.as_bool())
            .unwrap_or(default)
    };
    let mut scale = 1.0;
    if flag("scale_attn_weights", true) {
        scale /= (cfg.head_dim() as f64).sqrt();
    }
    if flag("scale_attn_by_inverse_layer_idx", false) {
        scale /= (layer + 1) as f64;
    }
    scale
}

struct Mlp {
    c_fc: Conv1D,
    c_proj: Conv1D,
    activation: String,
    resid_pdrop: f32,
}

impl Mlp {
    fn forward(
        &self,
        x: &Tensor,
        rng: &mut Option<&mut DropoutRng>,
    ) -> candle_core::Result<Tensor> {
        let hidden = self.c_fc.forward(x, rng)?;
        let hidden = match self.activation.as_str() {
            "gelu" => hidden.gelu_erf()?,
            "relu" => hidden.relu()?,
            // gelu_new / gelu_pytorch_tanh / gelu_fast: the tanh approximation
            _ => ops::gelu_tanh(&hidden)?,
        };
        let out = self.c_proj.forward(&hidden, rng)?;
        dropout(&out, self.resid_pdrop, rng)
    }
}

struct Block {
    ln_1: Norm,
    attn: Attention,
    ln_2: Norm,
    mlp: Mlp,
}

impl Block {
    fn new(
        w: &Weights,
        i: usize,
        cfg: &Gpt2Config,
        lora: Option<LoraRuntime>,
    ) -> candle_core::Result<Self> {
        let (c, inner) = (cfg.n_embd, cfg.inner());
        let p = |s: &str| format!("h.{i}.{s}");
        Ok(Block {
            ln_1: Norm::new(w, &p("ln_1"), cfg)?,
            attn: Attention {
                c_attn: Conv1D::new(w, &p("attn.c_attn"), c, 3 * c, lora)?,
                c_proj: Conv1D::new(w, &p("attn.c_proj"), c, c, lora)?,
                n_head: cfg.n_head,
                scale: attention_scale(cfg, i),
                attn_pdrop: cfg.attn_pdrop,
                resid_pdrop: cfg.resid_pdrop,
            },
            ln_2: Norm::new(w, &p("ln_2"), cfg)?,
            mlp: Mlp {
                c_fc: Conv1D::new(w, &p("mlp.c_fc"), c, inner, lora)?,
                c_proj: Conv1D::new(w, &p("mlp.c_proj"), inner, c, lora)?,
                activation: cfg.activation_function.clone(),
                resid_pdrop: cfg.resid_pdrop,
            },
        })
    }

    fn forward(
        &self,
        x: &Tensor,
        bt: (usize, usize),
        cache: Option<&mut Option<LayerKv>>,
        rng: &mut Option<&mut DropoutRng>,
    ) -> candle_core::Result<Tensor> {
        let x = (x + self.attn.forward(&self.ln_1.forward(x)?, bt, cache, rng)?)?;
        &x + self.mlp.forward(&self.ln_2.forward(&x)?, rng)?
    }

    /// [`Attention::forward_rows`] through the whole block.
    fn forward_rows(
        &self,
        x: &Tensor,
        caches: &mut [&mut Option<LayerKv>],
    ) -> candle_core::Result<Tensor> {
        let x = (x + self.attn.forward_rows(&self.ln_1.forward(x)?, caches)?)?;
        &x + self.mlp.forward(&self.ln_2.forward(&x)?, &mut None)?
    }
}

/// GPT-2 with its LM head tied to the token embedding (or its own, when untied).
pub struct Gpt2 {
    cfg: Gpt2Config,
    wte: Tensor,
    /// `(V, C)`: `wte` itself when tied.
    head: Tensor,
    wpe: Tensor,
    blocks: Vec<Block>,
    ln_f: Norm,
}

impl Gpt2 {
    /// Builds the model over `weights` (plain tensors for inference, `Var`s for training); the
    /// LoRA adapters among them are used when `lora` is given.
    pub fn new(
        weights: &Weights,
        cfg: &Gpt2Config,
        lora: Option<LoraRuntime>,
    ) -> candle_core::Result<Self> {
        let c = cfg.n_embd;
        let wte = get(weights, "wte.weight", &[cfg.vocab_size, c])?;
        let head = if cfg.tied() {
            wte.clone()
        } else {
            get(weights, "lm_head.weight", &[cfg.vocab_size, c])?
        };
        Ok(Gpt2 {
            cfg: cfg.clone(),
            wte,
            head,
            wpe: get(weights, "wpe.weight", &[cfg.n_positions, c])?,
            blocks: (0..cfg.n_layer)
                .map(|i| Block::new(weights, i, cfg, lora))
                .collect::<Result<_, _>>()?,
            ln_f: Norm::new(weights, "ln_f", cfg)?,
        })
    }

    pub fn config(&self) -> &Gpt2Config {
        &self.cfg
    }

    pub fn device(&self) -> &Device {
        self.wte.device()
    }

    /// Final hidden states for token ids `(B, T)`, positions starting after the cached ones.
    /// Returns `(B·T, C)`. `rng` enables dropout (training).
    pub fn hidden(
        &self,
        ids: &Tensor,
        mut cache: Option<&mut KvCache>,
        mut rng: Option<&mut DropoutRng>,
    ) -> candle_core::Result<Tensor> {
        let (b, t) = ids.dims2()?;
        let offset = start_positions(&mut cache, self.blocks.len(), t, self.cfg.n_positions)?;
        let mut x = self.embed_at(ids, offset, &mut rng)?;
        for (i, block) in self.blocks.iter().enumerate() {
            let layer_cache = cache.as_mut().map(|c| &mut c.layers[i]);
            x = block.forward(&x, (b, t), layer_cache, &mut rng)?;
        }
        self.final_norm(&x)
    }

    /// Logits `(N, V)` of one new token for each of `N` sequences, each with its own cache (and so
    /// its own position): the projections and the head see all `N` rows in one product each.
    pub fn step_rows(
        &self,
        ids: &[u32],
        caches: &mut [&mut KvCache],
    ) -> candle_core::Result<Tensor> {
        let n = ids.len();
        let mut positions = Vec::with_capacity(n);
        for c in caches.iter_mut() {
            let offset = start_positions(
                &mut Some(&mut **c),
                self.blocks.len(),
                1,
                self.cfg.n_positions,
            )?;
            positions.push(offset as u32);
        }
        let dev = self.device();
        let tok = self
            .wte
            .embedding_forward(&Tensor::from_slice(ids, n, dev)?)?;
        let pos = self
            .wpe
            .embedding_forward(&Tensor::from_vec(positions, n, dev)?)?;
        let mut x = (tok + pos)?;
        for (l, block) in self.blocks.iter().enumerate() {
            let mut layer: Vec<&mut Option<LayerKv>> =
                caches.iter_mut().map(|c| &mut c.layers[l]).collect();
            x = block.forward_rows(&x, &mut layer)?;
        }
        self.final_norm(&x)?.matmul(&self.head.t()?)
    }

    /// Token plus position embeddings `(B·T, C)` for ids `(B, T)` at positions from `offset`,
    /// with embedding dropout: the input of the first block.
    fn embed_at(
        &self,
        ids: &Tensor,
        offset: usize,
        rng: &mut Option<&mut DropoutRng>,
    ) -> candle_core::Result<Tensor> {
        let (b, t) = ids.dims2()?;
        let tok = self.wte.embedding_forward(&ids.flatten_all()?)?; // (B·T, C)
        let pos = Tensor::arange(offset as u32, (offset + t) as u32, ids.device())?;
        let pos = self.wpe.embedding_forward(&pos)?; // (T, C)
        let x = tok.reshape((b, t, self.cfg.n_embd))?.broadcast_add(&pos)?;
        dropout(
            &x.reshape((b * t, self.cfg.n_embd))?,
            self.cfg.embd_pdrop,
            rng,
        )
    }

    /// The block input for ids `(B, T)` from position 0 (training).
    pub(crate) fn embed_tokens(
        &self,
        ids: &Tensor,
        rng: &mut Option<&mut DropoutRng>,
    ) -> candle_core::Result<Tensor> {
        self.embed_at(ids, 0, rng)
    }

    pub(crate) fn n_blocks(&self) -> usize {
        self.blocks.len()
    }

    /// Block `i` alone on `x: (B·T, C)`, no cache (training).
    pub(crate) fn block(
        &self,
        i: usize,
        x: &Tensor,
        bt: (usize, usize),
        rng: &mut Option<&mut DropoutRng>,
    ) -> candle_core::Result<Tensor> {
        self.blocks[i].forward(x, bt, None, rng)
    }

    /// The layer norm after the last block.
    pub(crate) fn final_norm(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        self.ln_f.forward(x)
    }

    /// Logits `(N, V)` for hidden states `(N, C)`.
    pub fn logits(&self, hidden: &Tensor) -> candle_core::Result<Tensor> {
        ops::linear(hidden, &self.head, true)
    }

    /// The head `(V, C)` as a plain matrix (the fused loss multiplies by it).
    pub(crate) fn dense_head(&self) -> Option<&Tensor> {
        Some(&self.head)
    }

    /// Logits `(1, V)` for one position while decoding (no gradient).
    pub(crate) fn next_logits(&self, hidden: &Tensor) -> candle_core::Result<Tensor> {
        ops::matvec_rows(hidden, &self.head)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    /// Whole sequences take the one-op attention; a prompt with a KV cache still takes the
    /// composition of candle ops. With dropout on, both give the same output and leave the
    /// dropout stream in the same state (the same draws, in the same order).
    #[test]
    fn one_op_attention_matches_the_composition_with_dropout_and_draws_alike() {
        let mut cfg = Gpt2Config::preset("tiny", 64, 80).unwrap();
        (cfg.attn_pdrop, cfg.resid_pdrop) = (0.2, 0.1);
        let model = Gpt2::new(&init_weights(&cfg, 3, &Device::Cpu).unwrap(), &cfg, None).unwrap();
        let (b, t) = (2, 70);
        let x = Tensor::randn(0f32, 1.0, (b * t, cfg.n_embd), &Device::Cpu).unwrap();
        let attn = &model.blocks[1].attn;
        let (mut one, mut composed) = (DropoutRng(Rng::new(5)), DropoutRng(Rng::new(5)));
        let fused = attn.forward(&x, (b, t), None, &mut Some(&mut one)).unwrap();
        let mut cache = None;
        let plain = attn
            .forward(&x, (b, t), Some(&mut cache), &mut Some(&mut composed))
            .unwrap();
        let diff = (fused - plain)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(diff < 1e-4, "outputs differ by {diff}");
        assert_eq!(one.0.next_u64(), composed.0.next_u64());
    }
}
