//! Pieces both model families share: the weight map, dropout with reproducible masks, the KV cache,
//! the causal mask and a differentiable embedding lookup.

use std::collections::HashMap;

use candle_core::quantized::QMatMul;
use candle_core::{Device, Module, Tensor};

use crate::rng::Rng;

/// Quantised projection weights kept as they are in a GGUF file (`(out, in)`, our names), for
/// inference: a 4-bit file takes 4-bit memory.
pub type QWeights = HashMap<String, std::sync::Arc<candle_core::quantized::QTensor>>;

/// From this many rows of input a quantised projection multiplies in f32 (see [`Proj::forward_t`]).
const DEQUANTIZE_FROM_ROWS: usize = 32;

/// A projection's weight `(out, in)`: dense, or quantised (multiplied by candle's quantised matmul,
/// no gradient).
pub(crate) enum Proj {
    Dense(Tensor),
    Quant(candle_core::quantized::QMatMul),
}

impl Proj {
    /// `w` from the quantised weights when they hold it, else the dense `(out, in)` one.
    pub(crate) fn find(
        w: &Weights,
        q: Option<&QWeights>,
        name: &str,
        shape: &[usize],
    ) -> candle_core::Result<Self> {
        if let Some(t) = q.and_then(|q| q.get(name)) {
            if t.shape().dims() != shape {
                candle_core::bail!(
                    "weight `{name}` has shape {:?}, expected {shape:?}",
                    t.shape().dims()
                );
            }
            return Ok(Proj::Quant(candle_core::quantized::QMatMul::from_arc(
                t.clone(),
            )?));
        }
        Ok(Proj::Dense(get(w, name, shape)?))
    }

    /// `x @ Wᵀ` for `x: (N, in)`.
    pub(crate) fn forward_t(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        match self {
            // One row (a decode step, no gradient) streams the weight rows; batches take the matmul.
            Proj::Dense(w) if x.dim(0)? == 1 && !w.track_op() && !x.track_op() => {
                super::ops::matvec_rows(x, w)
            }
            Proj::Dense(w) => super::ops::frozen_matmul(x, w, true),
            // A prompt's many rows: expanding the weight to f32 for this call and taking the f32
            // matrix kernel is 3–4× faster than candle's row-by-row quantised dot products (the
            // expansion is read once per call; decoding's single rows keep the quantised kernel).
            Proj::Quant(QMatMul::QTensor(q)) if x.dim(0)? >= DEQUANTIZE_FROM_ROWS => {
                super::ops::frozen_matmul(x, &q.dequantize(x.device())?, true)
            }
            Proj::Quant(q) => q.forward(x),
        }
    }
}

/// Named weight tensors in HF layout, prefix-free (`h.0.attn.c_attn.weight`, `wte.weight`, …).
pub type Weights = HashMap<String, Tensor>;

/// Dropout masks for one micro-batch, drawn in a fixed order from a derived stream so that a resumed
/// run repeats them exactly. `None` wherever the model runs in evaluation mode.
#[derive(Clone)]
pub struct DropoutRng(pub Rng);

pub(crate) fn dropout(
    x: &Tensor,
    p: f32,
    rng: &mut Option<&mut DropoutRng>,
) -> candle_core::Result<Tensor> {
    let Some(rng) = rng.as_mut() else {
        return Ok(x.clone());
    };
    if p <= 0.0 {
        return Ok(x.clone());
    }
    let scale = 1.0 / (1.0 - p);
    let mask: Vec<f32> = (0..x.elem_count())
        .map(|_| if rng.0.next_f32() >= p { scale } else { 0.0 })
        .collect();
    x.mul(&Tensor::from_vec(mask, x.shape(), x.device())?)
}

/// How [`init_weights`] fills one weight.
pub(crate) enum Init {
    Fill(f32),
    Normal(f32),
}

/// Weights of the given names and shapes, each filled as `rule` says for its name; weight `i`
/// draws from its own stream `(seed, "init", i)`, so a from-scratch run is reproducible.
pub(crate) fn init_weights(
    shapes: Vec<(String, Vec<usize>)>,
    seed: u64,
    device: &Device,
    rule: impl Fn(&str) -> Init,
) -> candle_core::Result<Weights> {
    let mut out = Weights::new();
    for (idx, (name, shape)) in shapes.into_iter().enumerate() {
        let n: usize = shape.iter().product();
        let data: Vec<f32> = match rule(&name) {
            Init::Fill(v) => vec![v; n],
            Init::Normal(std) => {
                let mut rng = Rng::derive(seed, "init", &[idx as u64]);
                (0..n).map(|_| rng.normal() * std).collect()
            }
        };
        out.insert(name, Tensor::from_vec(data, shape, device)?);
    }
    Ok(out)
}

pub(crate) fn get(w: &Weights, name: &str, shape: &[usize]) -> candle_core::Result<Tensor> {
    let t = w
        .get(name)
        .ok_or_else(|| candle_core::Error::Msg(format!("missing weight `{name}`")))?;
    if t.dims() != shape {
        candle_core::bail!(
            "weight `{name}` has shape {:?}, expected {shape:?}",
            t.dims()
        );
    }
    Ok(t.clone())
}

/// Per-layer keys and values of the tokens seen so far, for decoding one token at a time. Cloning
/// shares the tensors (a snapshot to go back to).
#[derive(Default, Clone)]
pub struct KvCache {
    pub(crate) layers: Vec<Option<(Tensor, Tensor)>>,
}

impl KvCache {
    /// Number of positions already cached.
    pub fn len(&self) -> usize {
        match self.layers.first() {
            Some(Some((k, _))) => k.dim(2).unwrap_or(0),
            _ => 0,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn clear(&mut self) {
        self.layers.clear()
    }
}

/// Where `t` new positions start (after the cached ones), refused past the model's `context`; the
/// cache gets a slot per layer.
pub(crate) fn start_positions(
    cache: &mut Option<&mut KvCache>,
    n_layers: usize,
    t: usize,
    context: usize,
) -> candle_core::Result<usize> {
    let offset = cache.as_ref().map_or(0, |c| c.len());
    if offset + t > context {
        candle_core::bail!(
            "sequence of {} tokens is longer than the model's context of {context}",
            offset + t
        );
    }
    if let Some(c) = cache.as_mut() {
        c.layers.resize(n_layers, None);
    }
    Ok(offset)
}

/// 0 where query `i` (at absolute position `offset + i`) may see key `j`, −∞ elsewhere. (T, Tk)
pub(crate) fn causal_mask(t: usize, tk: usize, device: &Device) -> candle_core::Result<Tensor> {
    let offset = tk - t;
    let mask: Vec<f32> = (0..t)
        .flat_map(|i| {
            (0..tk).map(move |j| {
                if j <= offset + i {
                    0.0
                } else {
                    f32::NEG_INFINITY
                }
            })
        })
        .collect();
    Tensor::from_vec(mask, (t, tk), device)
}

/// Embedding lookup that keeps the gradient path (`index_select` has a backward in candle).
pub(crate) trait EmbeddingForward {
    fn embedding_forward(&self, ids: &Tensor) -> candle_core::Result<Tensor>;
}

impl EmbeddingForward for Tensor {
    fn embedding_forward(&self, ids: &Tensor) -> candle_core::Result<Tensor> {
        candle_nn::Embedding::new(self.clone(), self.dim(1)?).forward(ids)
    }
}
