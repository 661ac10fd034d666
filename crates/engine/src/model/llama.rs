//! The Llama family in candle (Llama 2/3, SmolLM, TinyLlama, Qwen2/2.5, Mistral): the same maths
//! as transformers' `LlamaForCausalLM` / `Qwen2ForCausalLM`, written for training.
//!
//! Weights keep HF's full names (`model.layers.0.self_attn.q_proj.weight`, `lm_head.weight`) and
//! `nn.Linear`'s `(out, in)` layout, so a checkpoint is a HF model folder as it stands. RMSNorm,
//! rotary embeddings (with `linear` / `llama3` scaling), grouped-query attention without copying
//! the key/value heads, SwiGLU MLP, optional q/k/v(/o) biases, tied or untied head. Activations stay
//! 2-D `(B·T, C)` between layers so every projection is one large matmul.

use candle_core::{DType, Device, Tensor};

use super::layers::{
    self, dropout, dropout_seed, get, start_positions, DropoutRng, EmbeddingForward, Init, KvCache,
    LayerKv, Proj, QWeights, Weights,
};
use super::llama_config::LlamaConfig;
use super::lora::{Adapter, LoraRuntime};
use super::ops;

/// The names and shapes every model of this config has, in a stable order.
pub fn weight_shapes(cfg: &LlamaConfig) -> Vec<(String, Vec<usize>)> {
    let (c, i, d) = (cfg.hidden_size, cfg.intermediate_size, cfg.head_dim());
    let (h, kv) = (cfg.num_attention_heads, cfg.kv_heads());
    let mut v = vec![(
        "model.embed_tokens.weight".to_string(),
        vec![cfg.vocab_size, c],
    )];
    for l in 0..cfg.num_hidden_layers {
        let p = |s: &str| format!("model.layers.{l}.{s}");
        v.push((p("input_layernorm.weight"), vec![c]));
        for (name, out) in [("q_proj", h * d), ("k_proj", kv * d), ("v_proj", kv * d)] {
            v.push((p(&format!("self_attn.{name}.weight")), vec![out, c]));
            if cfg.qkv_bias() {
                v.push((p(&format!("self_attn.{name}.bias")), vec![out]));
            }
        }
        v.push((p("self_attn.o_proj.weight"), vec![c, h * d]));
        if cfg.o_bias() {
            v.push((p("self_attn.o_proj.bias"), vec![c]));
        }
        v.push((p("post_attention_layernorm.weight"), vec![c]));
        for (name, shape) in [
            ("gate_proj", vec![i, c]),
            ("up_proj", vec![i, c]),
            ("down_proj", vec![c, i]),
        ] {
            let out = shape[0];
            v.push((p(&format!("mlp.{name}.weight")), shape));
            if cfg.mlp_bias {
                v.push((p(&format!("mlp.{name}.bias")), vec![out]));
            }
        }
    }
    v.push(("model.norm.weight".to_string(), vec![c]));
    if !cfg.tie_word_embeddings {
        v.push(("lm_head.weight".to_string(), vec![cfg.vocab_size, c]));
    }
    v
}

/// transformers' Llama initialisation: N(0, 0.02) for matrices and embeddings, zero biases, unit
/// norms. Seeded, so a run is reproducible.
pub fn init_weights(cfg: &LlamaConfig, seed: u64, device: &Device) -> candle_core::Result<Weights> {
    layers::init_weights(weight_shapes(cfg), seed, device, |name| {
        if name.ends_with("norm.weight") {
            Init::Fill(1.0)
        } else if name.ends_with("bias") {
            Init::Fill(0.0)
        } else {
            Init::Normal(0.02)
        }
    })
}

/// `nn.Linear`: `x @ Wᵀ + b` with `W: (out, in)`, plus its LoRA adapter when it has one.
struct Linear {
    w: Proj,
    b: Option<Tensor>,
    lora: Option<Adapter>,
}

impl Linear {
    fn new(
        w: &Weights,
        p: &str,
        n_out: usize,
        n_in: usize,
        bias: bool,
        lora: Option<LoraRuntime>,
        q: Option<&QWeights>,
    ) -> candle_core::Result<Self> {
        Ok(Linear {
            lora: Adapter::find(w, p, n_in, n_out, lora)?,
            w: Proj::find(w, q, &format!("{p}.weight"), &[n_out, n_in])?,
            b: if bias {
                Some(get(w, &format!("{p}.bias"), &[n_out])?)
            } else {
                None
            },
        })
    }

    // x: (N, in) -> (N, out)
    fn forward(
        &self,
        x: &Tensor,
        rng: &mut Option<&mut DropoutRng>,
    ) -> candle_core::Result<Tensor> {
        if let (Some(lora), Proj::Dense(w)) = (&self.lora, &self.w) {
            let base = ops::FrozenBase {
                w,
                transposed: true,
                bias: self.b.as_ref(),
            };
            if let Some(y) = lora.fused(x, &base, rng)? {
                return Ok(y);
            }
        }
        Adapter::add(&self.lora, self.forward_base(x)?, x, rng)
    }

    /// [`Linear::forward`] of each of `ls` on the same `x`. Without adapters the projections go
    /// through [`Proj::forward_t_many`] (a decode step's row reads all of them in one pass of the
    /// thread pool).
    fn forward_many(
        ls: &[&Linear],
        x: &Tensor,
        rng: &mut Option<&mut DropoutRng>,
    ) -> candle_core::Result<Vec<Tensor>> {
        if ls.iter().any(|l| l.lora.is_some()) {
            return ls.iter().map(|l| l.forward(x, rng)).collect();
        }
        let projs: Vec<&Proj> = ls.iter().map(|l| &l.w).collect();
        Proj::forward_t_many(&projs, x)?
            .into_iter()
            .zip(ls)
            .map(|(y, l)| match &l.b {
                Some(b) => y.broadcast_add(b),
                None => Ok(y),
            })
            .collect()
    }

    fn forward_base(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let y = self.w.forward_t(x)?;
        match &self.b {
            Some(b) => y.broadcast_add(b),
            None => Ok(y),
        }
    }
}

struct Attention {
    q: Linear,
    k: Linear,
    v: Linear,
    o: Linear,
    n_head: usize,
    n_kv: usize,
    head_dim: usize,
    attn_pdrop: f32,
    resid_pdrop: f32,
}

impl Attention {
    // x: (B·T, C) -> (B·T, C); `cos`/`sin`: (T, D/2) for this chunk's positions.
    fn forward(
        &self,
        x: &Tensor,
        (b, t): (usize, usize),
        (cos, sin): (&Tensor, &Tensor),
        cache: Option<&mut Option<LayerKv>>,
        rng: &mut Option<&mut DropoutRng>,
    ) -> candle_core::Result<Tensor> {
        let (h, kv, d) = (self.n_head, self.n_kv, self.head_dim);
        // (B·T, heads·D) -> (B, heads, T, D)
        let heads = |y: Tensor, n: usize| y.reshape((b, t, n, d))?.transpose(1, 2)?.contiguous();
        let [q, k, v]: [Tensor; 3] = Linear::forward_many(&[&self.q, &self.k, &self.v], x, rng)?
            .try_into()
            .expect("three projections");
        if cache.is_none() {
            // Whole sequences (training, evaluation): one op over the heads where the projections
            // put them (`ops::causal_attention`), the weights' dropout inside.
            let shape = ops::Heads {
                batch: b,
                time: t,
                q_heads: h,
                kv_heads: kv,
                dim: d,
            };
            let q = ops::rope_rows(&q, cos, sin, h)?;
            let k = ops::rope_rows(&k, cos, sin, kv)?;
            let scale = 1.0 / (d as f32).sqrt();
            let drop = dropout_seed(self.attn_pdrop, rng);
            let y = ops::causal_attention(&q, &k, &v, shape, scale, drop)?;
            let out = self.o.forward(&y, rng)?;
            return dropout(&out, self.resid_pdrop, rng);
        }
        let q = ops::rope(&heads(q, h)?, cos, sin)?;
        let k = ops::rope(&heads(k, kv)?, cos, sin)?;
        let v = heads(v, kv)?;
        let y = self.attend(q, k, v, cache, rng)?;
        let out = self.o.forward(&y, rng)?;
        dropout(&out, self.resid_pdrop, rng)
    }

    /// One new token of each of several sequences: row `i` of `x: (N, C)` continues the sequence
    /// of `caches[i]` at the position of `rot[i]` (its cos/sin rows). The projections take all rows
    /// in one product; attention reads each row's own cache. No dropout (decoding).
    fn forward_rows(
        &self,
        x: &Tensor,
        rot: &[(Tensor, Tensor)],
        caches: &mut [&mut Option<LayerKv>],
    ) -> candle_core::Result<Tensor> {
        let (h, kv, d) = (self.n_head, self.n_kv, self.head_dim);
        let mut none: Option<&mut DropoutRng> = None;
        let [qs, ks, vs]: [Tensor; 3] =
            Linear::forward_many(&[&self.q, &self.k, &self.v], x, &mut none)?
                .try_into()
                .expect("three projections");
        let mut ys = Vec::with_capacity(caches.len());
        for (i, cache) in caches.iter_mut().enumerate() {
            let heads = |y: &Tensor, n: usize| {
                y.narrow(0, i, 1)?
                    .reshape((1, 1, n, d))?
                    .transpose(1, 2)?
                    .contiguous()
            };
            let (cos, sin) = (&rot[i].0, &rot[i].1);
            let q = ops::rope(&heads(&qs, h)?, cos, sin)?;
            let k = ops::rope(&heads(&ks, kv)?, cos, sin)?;
            ys.push(self.attend(q, k, heads(&vs, kv)?, Some(cache), &mut none)?);
        }
        self.o.forward(&Tensor::cat(&ys, 0)?, &mut none)
    }

    /// Attention of `q: (B, H, T, D)` over the cached and new `k`, `v: (B, KV, T, D)`, the new
    /// ones appended to `cache`; `(B·T, H·D)`.
    fn attend(
        &self,
        q: Tensor,
        mut k: Tensor,
        mut v: Tensor,
        cache: Option<&mut Option<LayerKv>>,
        rng: &mut Option<&mut DropoutRng>,
    ) -> candle_core::Result<Tensor> {
        let d = self.head_dim;
        if let Some(cache) = cache {
            (k, v) = LayerKv::append(cache, &k, &v)?;
        }
        let scale = 1.0 / (d as f64).sqrt();
        if rng.is_none() {
            // A decode step (one position of one sequence; `decode_attention` declines anything
            // else): one kernel over the cache as it lies.
            if let Some(y) = ops::decode_attention(&q, &k, &v, scale)? {
                return Ok(y);
            }
        }
        let drop = dropout_seed(self.attn_pdrop, rng);
        ops::attention_of_heads(&q, &k, &v, scale, drop)
    }
}

struct Mlp {
    gate: Linear,
    up: Linear,
    down: Linear,
    resid_pdrop: f32,
}

impl Mlp {
    fn forward(
        &self,
        x: &Tensor,
        rng: &mut Option<&mut DropoutRng>,
    ) -> candle_core::Result<Tensor> {
        let [gate, up]: [Tensor; 2] = Linear::forward_many(&[&self.gate, &self.up], x, rng)?
            .try_into()
            .expect("two projections");
        let hidden = ops::swiglu(&gate, &up)?;
        let out = self.down.forward(&hidden, rng)?;
        dropout(&out, self.resid_pdrop, rng)
    }
}

struct Block {
    ln_1: Tensor,
    attn: Attention,
    ln_2: Tensor,
    mlp: Mlp,
    eps: f64,
}

impl Block {
    fn new(
        w: &Weights,
        l: usize,
        cfg: &LlamaConfig,
        lora: Option<LoraRuntime>,
        q: Option<&QWeights>,
    ) -> candle_core::Result<Self> {
        let (c, i, d) = (cfg.hidden_size, cfg.intermediate_size, cfg.head_dim());
        let (h, kv) = (cfg.num_attention_heads, cfg.kv_heads());
        let p = |s: &str| format!("model.layers.{l}.{s}");
        let resid_pdrop = cfg.tunesmith_resid_dropout;
        Ok(Block {
            ln_1: get(w, &p("input_layernorm.weight"), &[c])?,
            attn: Attention {
                q: Linear::new(w, &p("self_attn.q_proj"), h * d, c, cfg.qkv_bias(), lora, q)?,
                k: Linear::new(
                    w,
                    &p("self_attn.k_proj"),
                    kv * d,
                    c,
                    cfg.qkv_bias(),
                    lora,
                    q,
                )?,
                v: Linear::new(
                    w,
                    &p("self_attn.v_proj"),
                    kv * d,
                    c,
                    cfg.qkv_bias(),
                    lora,
                    q,
                )?,
                o: Linear::new(w, &p("self_attn.o_proj"), c, h * d, cfg.o_bias(), lora, q)?,
                n_head: h,
                n_kv: kv,
                head_dim: d,
                attn_pdrop: cfg.attention_dropout,
                resid_pdrop,
            },
            ln_2: get(w, &p("post_attention_layernorm.weight"), &[c])?,
            mlp: Mlp {
                gate: Linear::new(w, &p("mlp.gate_proj"), i, c, cfg.mlp_bias, lora, q)?,
                up: Linear::new(w, &p("mlp.up_proj"), i, c, cfg.mlp_bias, lora, q)?,
                down: Linear::new(w, &p("mlp.down_proj"), c, i, cfg.mlp_bias, lora, q)?,
                resid_pdrop,
            },
            eps: cfg.rms_norm_eps,
        })
    }

    fn forward(
        &self,
        x: &Tensor,
        bt: (usize, usize),
        rot: (&Tensor, &Tensor),
        cache: Option<&mut Option<LayerKv>>,
        rng: &mut Option<&mut DropoutRng>,
    ) -> candle_core::Result<Tensor> {
        let a = ops::rms_norm(x, &self.ln_1, self.eps)?;
        let x = (x + self.attn.forward(&a, bt, rot, cache, rng)?)?;
        let m = ops::rms_norm(&x, &self.ln_2, self.eps)?;
        &x + self.mlp.forward(&m, rng)?
    }

    /// [`Attention::forward_rows`] through the whole block.
    fn forward_rows(
        &self,
        x: &Tensor,
        rot: &[(Tensor, Tensor)],
        caches: &mut [&mut Option<LayerKv>],
    ) -> candle_core::Result<Tensor> {
        let a = ops::rms_norm(x, &self.ln_1, self.eps)?;
        let x = (x + self.attn.forward_rows(&a, rot, caches)?)?;
        let m = ops::rms_norm(&x, &self.ln_2, self.eps)?;
        &x + self.mlp.forward(&m, &mut None)?
    }
}

/// A Llama-family causal language model.
pub struct Llama {
    cfg: LlamaConfig,
    embed: Tensor,
    /// `(V, C)`: `embed` itself when tied.
    head: Proj,
    blocks: Vec<Block>,
    norm: Tensor,
    /// Rotary tables `(max_position_embeddings, D/2)`.
    cos: Tensor,
    sin: Tensor,
}

impl Llama {
    /// Builds the model over `weights` (plain tensors for inference, `Var`s for training); the
    /// LoRA adapters among them are used when `lora` is given.
    pub fn new(
        weights: &Weights,
        cfg: &LlamaConfig,
        lora: Option<LoraRuntime>,
        q: Option<&QWeights>,
    ) -> candle_core::Result<Self> {
        cfg.validate()
            .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
        let c = cfg.hidden_size;
        let embed = get(weights, "model.embed_tokens.weight", &[cfg.vocab_size, c])?;
        // A quantised token table also serves as the quantised head of a tied model.
        let head_name = if cfg.tie_word_embeddings {
            "model.embed_tokens.weight"
        } else {
            "lm_head.weight"
        };
        let head = match q.filter(|q| q.contains_key(head_name)) {
            Some(q) => Proj::find(weights, Some(q), head_name, &[cfg.vocab_size, c])?,
            None if cfg.tie_word_embeddings => Proj::Dense(embed.clone()),
            None => Proj::find(weights, None, head_name, &[cfg.vocab_size, c])?,
        };
        let device = embed.device().clone();
        let inv_freq = cfg
            .inv_freq()
            .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
        let n = cfg.max_position_embeddings;
        // Angles in f32, as transformers computes them (inv_freq in f32 times the position).
        let angles: Vec<f32> = (0..n)
            .flat_map(|p| inv_freq.iter().map(move |&f| p as f32 * f as f32))
            .collect();
        let table = |f: fn(f32) -> f32| {
            Tensor::from_vec(
                angles.iter().map(|&a| f(a)).collect::<Vec<f32>>(),
                (n, inv_freq.len()),
                &device,
            )
        };
        Ok(Llama {
            cfg: cfg.clone(),
            head,
            blocks: (0..cfg.num_hidden_layers)
                .map(|l| Block::new(weights, l, cfg, lora, q))
                .collect::<Result<_, _>>()?,
            norm: get(weights, "model.norm.weight", &[c])?,
            cos: table(f32::cos)?,
            sin: table(f32::sin)?,
            embed,
        })
    }

    pub fn config(&self) -> &LlamaConfig {
        &self.cfg
    }

    pub fn device(&self) -> &Device {
        self.embed.device()
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
        let offset = start_positions(
            &mut cache,
            self.blocks.len(),
            t,
            self.cfg.max_position_embeddings,
        )?;
        let cos = self.cos.narrow(0, offset, t)?;
        let sin = self.sin.narrow(0, offset, t)?;
        let mut x = self.embed_tokens(ids, &mut rng)?;
        for (i, block) in self.blocks.iter().enumerate() {
            let layer_cache = cache.as_mut().map(|c| &mut c.layers[i]);
            x = block.forward(&x, (b, t), (&cos, &sin), layer_cache, &mut rng)?;
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
        let mut rot = Vec::with_capacity(n);
        for c in caches.iter_mut() {
            let offset = start_positions(
                &mut Some(&mut **c),
                self.blocks.len(),
                1,
                self.cfg.max_position_embeddings,
            )?;
            rot.push((
                self.cos.narrow(0, offset, 1)?,
                self.sin.narrow(0, offset, 1)?,
            ));
        }
        let ids = Tensor::from_slice(ids, (n, 1), self.device())?;
        let mut x = self.embed_tokens(&ids, &mut None)?;
        for (l, block) in self.blocks.iter().enumerate() {
            let mut layer: Vec<&mut Option<LayerKv>> =
                caches.iter_mut().map(|c| &mut c.layers[l]).collect();
            x = block.forward_rows(&x, &rot, &mut layer)?;
        }
        self.next_logits(&self.final_norm(&x)?)
    }

    /// The token embeddings `(B·T, C)` of ids `(B, T)`: the input of the first block.
    pub(crate) fn embed_tokens(
        &self,
        ids: &Tensor,
        _rng: &mut Option<&mut DropoutRng>,
    ) -> candle_core::Result<Tensor> {
        self.embed.embedding_forward(&ids.flatten_all()?)
    }

    pub(crate) fn n_blocks(&self) -> usize {
        self.blocks.len()
    }

    /// Block `i` alone on `x: (B·T, C)`, positions from 0, no cache (training).
    pub(crate) fn block(
        &self,
        i: usize,
        x: &Tensor,
        (b, t): (usize, usize),
        rng: &mut Option<&mut DropoutRng>,
    ) -> candle_core::Result<Tensor> {
        let cos = self.cos.narrow(0, 0, t)?;
        let sin = self.sin.narrow(0, 0, t)?;
        self.blocks[i].forward(x, (b, t), (&cos, &sin), None, rng)
    }

    /// The norm after the last block: its output is what the head reads.
    pub(crate) fn final_norm(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        ops::rms_norm(x, &self.norm, self.cfg.rms_norm_eps)
    }

    /// Logits `(N, V)` for hidden states `(N, C)`.
    pub fn logits(&self, hidden: &Tensor) -> candle_core::Result<Tensor> {
        match &self.head {
            Proj::Dense(w) => ops::linear(hidden, w, true),
            q => q.forward_t(hidden),
        }
    }

    /// The head `(V, C)` as a plain matrix, `None` when it is quantised.
    pub(crate) fn dense_head(&self) -> Option<&Tensor> {
        match &self.head {
            Proj::Dense(w) => Some(w),
            _ => None,
        }
    }

    /// Logits `(1, V)` for one position while decoding (no gradient).
    pub(crate) fn next_logits(&self, hidden: &Tensor) -> candle_core::Result<Tensor> {
        self.head.forward_t(hidden)?.to_dtype(DType::F32)
    }
}
