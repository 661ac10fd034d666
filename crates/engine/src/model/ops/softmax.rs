//! Softmax over the last dimension, with its backward.

use candle_core::{CpuStorage, CustomOp1, Layout, Shape, Tensor, D};
use rayon::prelude::*;

use super::{activation, dot, fused, last_dim, simd_run, slice, with_data, SEQUENTIAL_BELOW};

/// Softmax over the last dimension, differentiable.
pub fn softmax_last_dim(x: &Tensor) -> candle_core::Result<Tensor> {
    if fused(x) {
        x.contiguous()?.apply_op1(Softmax { causal_t: None })
    } else {
        candle_nn::ops::softmax(x, D::Minus1)
    }
}

/// Causal attention weights from scores `(…, T, Tk)` whose rows are `T` queries at the last `T`
/// of `Tk` positions: query `i` sees keys `0..=Tk−T+i`, the rest get weight 0. The same as adding
/// [`crate::model::layers`]' causal mask and taking the softmax, without the mask or the masked
/// copy of the scores (two `T²` tensors per layer that training would keep).
pub fn causal_softmax(scores: &Tensor) -> candle_core::Result<Tensor> {
    let dims = scores.dims();
    let (t, tk) = match dims {
        [.., t, tk] => (*t, *tk),
        _ => candle_core::bail!("causal softmax needs (…, T, Tk) scores, got {dims:?}"),
    };
    if t > tk {
        candle_core::bail!("causal softmax: {t} queries but only {tk} keys");
    }
    if t == 1 {
        return softmax_last_dim(scores);
    }
    if fused(scores) {
        scores
            .contiguous()?
            .apply_op1(Softmax { causal_t: Some(t) })
    } else {
        // In the scores' dtype: an f32 mask cannot be added to f16, bf16 or f64 scores.
        let mask =
            crate::model::layers::causal_mask(t, tk, scores.device())?.to_dtype(scores.dtype())?;
        candle_nn::ops::softmax(&scores.broadcast_add(&mask)?, D::Minus1)
    }
}

/// `y = softmax(x)` for one row.
#[inline(always)]
pub(super) fn softmax_row(y: &mut [f32], x: &[f32]) {
    let max = activation::max(x);
    for (y, &x) in y.iter_mut().zip(x) {
        *y = activation::exp(x - max);
    }
    let inv = 1.0 / activation::sum(y);
    y.iter_mut().for_each(|y| *y *= inv);
}

/// `causal_t`: rows are groups of this many queries, masked causally (see [`causal_softmax`]).
struct Softmax {
    causal_t: Option<usize>,
}

impl CustomOp1 for Softmax {
    fn name(&self) -> &'static str {
        "tunesmith-softmax"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = slice(s, l)?;
        let n = last_dim(l.shape())?;
        let mut y = vec![0f32; x.len()];
        let causal = self.causal_t;
        // Row `r` sees its first `visible(r)` entries; the rest stay 0.
        let visible = |r: usize| match causal {
            Some(t) => n - t + r % t + 1,
            None => n,
        };
        let row = |(r, (y, x)): (usize, (&mut [f32], &[f32]))| {
            simd_run(SoftmaxRow(&mut y[..visible(r)], &x[..visible(r)]))
        };
        if x.len() < SEQUENTIAL_BELOW {
            y.chunks_mut(n).zip(x.chunks(n)).enumerate().for_each(row);
        } else {
            y.par_chunks_mut(n)
                .zip(x.par_chunks(n))
                .enumerate()
                .for_each(row);
        }
        Ok((CpuStorage::F32(y), l.shape().clone()))
    }

    // dx = y ⊙ (g − Σ g⊙y)
    fn bwd(&self, _x: &Tensor, y: &Tensor, g: &Tensor) -> candle_core::Result<Option<Tensor>> {
        let n = last_dim(y.shape())?;
        let dx = with_data(y, |y| {
            with_data(g, |g| {
                let mut dx = vec![0f32; y.len()];
                dx.par_chunks_mut(n)
                    .zip(y.par_chunks(n).zip(g.par_chunks(n)))
                    .for_each(|(dx, (y, g))| simd_run(SoftmaxBackward(dx, y, g)));
                dx
            })
        })??;
        Ok(Some(Tensor::from_vec(dx, y.shape(), y.device())?))
    }
}

simd_kernel!(
    SoftmaxRow<'a>(y: &'a mut [f32], x: &'a [f32]) -> () {
        softmax_row(y, x)
    }
);

simd_kernel!(
    /// `dx = y ⊙ (g − Σ g⊙y)` for one row.
    SoftmaxBackward<'a>(dx: &'a mut [f32], y: &'a [f32], g: &'a [f32]) -> () {
        let dot = dot(y, g);
        for ((dx, y), g) in dx.iter_mut().zip(y).zip(g) {
            *dx = y * (g - dot);
        }
    }
);
