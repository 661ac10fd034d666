//! Pieces both model families share: the weight map, dropout with reproducible masks, the KV cache,
//! the causal mask and a differentiable embedding lookup.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use candle_core::quantized::{QMatMul, QTensor};
use candle_core::{Device, Module, Tensor};

use crate::rng::Rng;

/// Quantised projection weights kept as they are in a GGUF file (`(out, in)`, our names), for
/// inference: a 4-bit file takes 4-bit memory.
pub type QWeights = HashMap<String, std::sync::Arc<candle_core::quantized::QTensor>>;

/// From this many rows of input a quantised projection multiplies in f32 (see [`Proj::forward_t`]).
const DEQUANTIZE_FROM_ROWS: usize = 32;
/// ... when its f32 copy, held for the call, takes at most 64 MiB: a large vocabulary's head
/// (a 128k × 2048 table is 1 GiB in f32) keeps the quantised kernel, so that a 4-bit file still
/// takes 4-bit memory.
const DEQUANTIZE_UP_TO: usize = 16 << 20;

/// A projection's weight `(out, in)`: dense, or quantised (multiplied by our integer kernels for
/// Q8_0, Q4_0 and Q4_1 on an AVX2 CPU, else by candle's quantised matmul; no gradient).
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

    /// [`Proj::forward_t`] of each of `projs` on the same `x`: a decode step's single row through
    /// dense weights goes through them together ([`super::ops::matvec_rows_many`]), and so do
    /// decoding's few rows through Q8_0, Q4_0 and Q4_1 weights
    /// ([`super::ops::quantized_matvec_many`]).
    pub(crate) fn forward_t_many(projs: &[&Proj], x: &Tensor) -> candle_core::Result<Vec<Tensor>> {
        let dense: Option<Vec<&Tensor>> = projs
            .iter()
            .map(|p| match p {
                Proj::Dense(w) => Some(w),
                Proj::Quant(_) => None,
            })
            .collect();
        if let Some(ws) = dense {
            if decode_row(x, &ws)? {
                return super::ops::matvec_rows_many(x, &ws);
            }
        }
        let quantised: Option<Vec<&QTensor>> = projs
            .iter()
            .map(|p| match p {
                Proj::Quant(QMatMul::QTensor(q)) => Some(&**q),
                _ => None,
            })
            .collect();
        // A prompt's many rows take the expanded weights, one projection at a time.
        if let Some(qs) = quantised.filter(|_| x.dim(0).is_ok_and(|n| n < DEQUANTIZE_FROM_ROWS)) {
            if let Some(ys) = super::ops::quantized_matvec_many(x, &qs)? {
                return Ok(ys);
            }
        }
        projs.iter().map(|p| p.forward_t(x)).collect()
    }

    /// `x @ Wᵀ` for `x: (N, in)`.
    pub(crate) fn forward_t(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        match self {
            // One row (a decode step, no gradient) streams the weight rows; batches take the matmul.
            Proj::Dense(w) if decode_row(x, &[w])? => super::ops::matvec_rows(x, w),
            Proj::Dense(w) => super::ops::linear(x, w, true),
            // A prompt's many rows: expanding the weight to f32 for this call and taking the f32
            // matrix kernel is 3–4× faster than candle's row-by-row quantised dot products (the
            // expansion is read once per call; decoding's single rows keep the quantised kernel).
            Proj::Quant(QMatMul::QTensor(q))
                if x.dim(0)? >= DEQUANTIZE_FROM_ROWS
                    && q.shape().elem_count() <= DEQUANTIZE_UP_TO =>
            {
                let w = match super::ops::dequantize_parallel(q)? {
                    Some(w) => w,
                    None => q.dequantize(x.device())?,
                };
                super::ops::linear(x, &w, true)
            }
            // Decoding's few rows (or any number through a weight too large to expand) through
            // Q8_0, Q4_0 or Q4_1 blocks: our integer kernels (see `ops::quantized_matvec_many`);
            // other block types, shapes and CPUs without AVX2 take candle's.
            Proj::Quant(m @ QMatMul::QTensor(q)) => {
                match super::ops::quantized_matvec_many(x, &[&**q])? {
                    Some(mut y) => Ok(y.remove(0)),
                    None => m.forward(x),
                }
            }
            Proj::Quant(q) => q.forward(x),
        }
    }
}

/// Whether `x` is a decode step's single row through the dense `ws` without gradients, which the
/// streamed matrix-vector product serves (anything else takes the matmul).
fn decode_row(x: &Tensor, ws: &[&Tensor]) -> candle_core::Result<bool> {
    Ok(x.dim(0)? == 1 && !x.track_op() && ws.iter().all(|w| !w.track_op()))
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
    match dropout_seed(p, rng) {
        Some((p, seed)) => super::ops::dropout_seeded(x, p, seed),
        None => Ok(x.clone()),
    }
}

/// The probability and seed of a dropout site that drops anything (training, `p > 0`): one draw
/// from the stream seeds the whole mask (see `ops::dropout_seeded`), taken here, in the order of
/// the sites; `None` draws nothing.
pub(crate) fn dropout_seed(p: f32, rng: &mut Option<&mut DropoutRng>) -> Option<(f32, u64)> {
    let rng = rng.as_mut()?;
    // A NaN draws too and reaches `dropout_seeded`, which refuses it.
    (p > 0.0 || p.is_nan()).then(|| (p, rng.0.next_u64()))
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
/// shares the buffers (a snapshot to go back to; see [`LayerKv`]).
#[derive(Default, Clone)]
pub struct KvCache {
    pub(crate) layers: Vec<Option<LayerKv>>,
}

impl KvCache {
    /// Number of positions already cached.
    pub fn len(&self) -> usize {
        match self.layers.first() {
            Some(Some(l)) => l.len,
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

/// Positions a layer's buffers grow by (at least; they double).
const KV_CHUNK: usize = 256;

/// One layer's keys and values, `(B, heads, len, D)`, at the front of buffers with room to grow:
/// a new token's are written in place after them. (Concatenating copied the whole cache at every
/// token, so a reply's cost grew with the square of its length.)
///
/// Clones share the buffers. Each clone only reads its own first `len` positions and appends after
/// them, so a snapshot stays valid while the original goes on; if a buffer is still shared and
/// something has written past this clone's end (two continuations of one snapshot), the append
/// copies to a buffer of its own first.
#[derive(Clone)]
pub(crate) struct LayerKv {
    k: Tensor,
    v: Tensor,
    len: usize,
    /// The furthest position any holder of these buffers has written.
    written: Arc<AtomicUsize>,
}

impl LayerKv {
    /// Appends `k`, `v`: `(B, heads, T, D)` to `slot`'s cache (starting one if empty); the keys and
    /// values of every position so far, views of the buffers.
    pub(crate) fn append(
        slot: &mut Option<LayerKv>,
        k: &Tensor,
        v: &Tensor,
    ) -> candle_core::Result<(Tensor, Tensor)> {
        let t = k.dim(2)?;
        let (k, v) = (k.contiguous()?, v.contiguous()?);
        let len = slot.as_ref().map_or(0, |c| c.len);
        let old_cap = slot.as_ref().map_or(0, |c| c.k.dim(2).unwrap_or(0));
        let full = len + t > old_cap;
        // Positions len..len+t are claimed in one atomic step, so that of two holders of a shared
        // buffer (even on two threads) only the first to claim them writes there in place; a sole
        // holder may write over what a discarded continuation had claimed.
        let sole = slot
            .as_ref()
            .is_some_and(|c| Arc::strong_count(&c.written) == 1);
        let claimed = !full
            && slot.as_ref().is_some_and(|c| {
                sole || c
                    .written
                    .compare_exchange(len, len + t, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
            });
        if !claimed {
            // A buffer of its own: twice as large only when this one is full.
            let cap = if full {
                (len + t).max(2 * old_cap)
            } else {
                old_cap
            }
            .next_multiple_of(KV_CHUNK);
            let grown = |new: &Tensor, old: Option<&Tensor>| -> candle_core::Result<Tensor> {
                let (b, h, _, d) = new.dims4()?;
                let buf = Tensor::zeros((b, h, cap, d), new.dtype(), new.device())?;
                if let Some(old) = old {
                    buf.slice_set(&old.narrow(2, 0, len)?.contiguous()?, 2, 0)?;
                }
                Ok(buf)
            };
            let old = slot.take();
            *slot = Some(LayerKv {
                k: grown(&k, old.as_ref().map(|c| &c.k))?,
                v: grown(&v, old.as_ref().map(|c| &c.v))?,
                len,
                written: Arc::new(AtomicUsize::new(len)),
            });
        }
        let c = slot.as_mut().expect("a cache was just made");
        c.k.slice_set(&k, 2, len)?;
        c.v.slice_set(&v, 2, len)?;
        c.len = len + t;
        if sole {
            // Nobody else reads this buffer: what a discarded continuation wrote is gone.
            c.written.store(c.len, Ordering::Release);
        } else {
            c.written.fetch_max(c.len, Ordering::AcqRel);
        }
        Ok((c.k.narrow(2, 0, c.len)?, c.v.narrow(2, 0, c.len)?))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ops::tests::{max_abs, max_diff};

    fn kv(seed: f32, t: usize) -> Tensor {
        // (1, 2, t, 3): values that name their seed and position.
        let data: Vec<f32> = (0..2 * t * 3).map(|i| seed * 1000.0 + i as f32).collect();
        Tensor::from_vec(data, (1, 2, t, 3), &Device::Cpu).unwrap()
    }

    fn values(t: &Tensor) -> Vec<f32> {
        t.flatten_all().unwrap().to_vec1().unwrap()
    }

    #[test]
    fn appending_equals_concatenating_past_a_buffer_growth() {
        let mut slot = None;
        let mut want = kv(1.0, 5);
        LayerKv::append(&mut slot, &want, &want).unwrap();
        // 300 single positions: the buffer grows past KV_CHUNK on the way.
        for i in 0..300 {
            let new = kv(2.0 + i as f32, 1);
            want = Tensor::cat(&[&want, &new], 2).unwrap();
            let (k, v) = LayerKv::append(&mut slot, &new, &new).unwrap();
            assert_eq!(values(&k), values(&want));
            assert_eq!(values(&v), values(&want));
        }
        assert_eq!(slot.as_ref().unwrap().len, 305);
    }

    #[test]
    fn a_snapshot_survives_the_original_going_on_and_two_continuations_stay_apart() {
        let mut slot = None;
        LayerKv::append(&mut slot, &kv(1.0, 4), &kv(1.0, 4)).unwrap();
        let snapshot = slot.clone();
        // The original goes on in place (the buffer is shared, but nothing lies past its end).
        let (a, _) = LayerKv::append(&mut slot, &kv(2.0, 1), &kv(2.0, 1)).unwrap();
        // A second continuation of the snapshot must not write over the first one's position.
        let mut other = snapshot.clone();
        let (b, _) = LayerKv::append(&mut other, &kv(3.0, 1), &kv(3.0, 1)).unwrap();
        // The second one copied what it holds to a buffer of the same size.
        assert_eq!(
            other.as_ref().unwrap().k.dim(2).unwrap(),
            slot.as_ref().unwrap().k.dim(2).unwrap()
        );
        let first = Tensor::cat(&[&kv(1.0, 4), &kv(2.0, 1)], 2).unwrap();
        let second = Tensor::cat(&[&kv(1.0, 4), &kv(3.0, 1)], 2).unwrap();
        assert_eq!(values(&a), values(&first));
        assert_eq!(values(&b), values(&second));
        let (a2, _) = LayerKv::append(&mut slot, &kv(4.0, 1), &kv(4.0, 1)).unwrap();
        assert_eq!(
            values(&a2.narrow(2, 0, 5).unwrap()),
            values(&first),
            "the first continuation was overwritten"
        );
        let (s, _) = {
            let c = snapshot.as_ref().unwrap();
            (c.k.narrow(2, 0, c.len).unwrap(), ())
        };
        assert_eq!(values(&s), values(&kv(1.0, 4)));
    }

    /// Once the only holder writes over what a discarded continuation had claimed, the claim is
    /// forgotten: a later snapshot's original still goes on in place instead of copying.
    #[test]
    fn a_discarded_continuation_does_not_force_copies_later() {
        let mut slot = None;
        LayerKv::append(&mut slot, &kv(1.0, 4), &kv(1.0, 4)).unwrap();
        {
            let mut discarded = slot.clone();
            LayerKv::append(&mut discarded, &kv(9.0, 3), &kv(9.0, 3)).unwrap();
        }
        LayerKv::append(&mut slot, &kv(2.0, 1), &kv(2.0, 1)).unwrap();
        let snapshot = slot.clone();
        let (k, _) = LayerKv::append(&mut slot, &kv(3.0, 1), &kv(3.0, 1)).unwrap();
        let want = Tensor::cat(&[&kv(1.0, 4), &kv(2.0, 1), &kv(3.0, 1)], 2).unwrap();
        assert_eq!(values(&k), values(&want));
        let (a, b) = (slot.as_ref().unwrap(), snapshot.as_ref().unwrap());
        assert!(
            Arc::ptr_eq(&a.written, &b.written),
            "the original copied its cache"
        );
    }

    /// A prompt's rows through a quantised projection: the f32 path gives the product with the
    /// expanded weight; fewer rows (our integer kernel) and the f32 path both stay within
    /// quantisation error of candle's quantised kernel.
    #[test]
    fn many_rows_through_a_quantised_projection() {
        use candle_core::quantized::{GgmlDType, QTensor};
        let (out, inp) = (96, 64);
        let mut rng = crate::rng::Rng::new(9);
        let w: Vec<f32> = (0..out * inp).map(|_| rng.normal()).collect();
        let w = Tensor::from_vec(w, (out, inp), &Device::Cpu).unwrap();
        let q = Arc::new(QTensor::quantize(&w, GgmlDType::Q8_0).unwrap());
        let proj = Proj::Quant(QMatMul::from_arc(q.clone()).unwrap());
        let dense = q.dequantize(&Device::Cpu).unwrap();
        for rows in [DEQUANTIZE_FROM_ROWS - 1, DEQUANTIZE_FROM_ROWS + 8] {
            let x: Vec<f32> = (0..rows * inp).map(|_| rng.normal()).collect();
            let x = Tensor::from_vec(x, (rows, inp), &Device::Cpu).unwrap();
            let got = proj.forward_t(&x).unwrap();
            let exact = x.matmul(&dense.t().unwrap()).unwrap();
            let quantised = QMatMul::from_arc(q.clone()).unwrap().forward(&x).unwrap();
            let scale = max_abs(&exact);
            assert!(
                max_diff(&got, &quantised) < 0.02 * scale,
                "{rows} rows: far from the quantised kernel"
            );
            if rows >= DEQUANTIZE_FROM_ROWS {
                assert!(
                    max_diff(&got, &exact) < 1e-4 * scale,
                    "{rows} rows: not the expanded product"
                );
            }
        }
    }
}
