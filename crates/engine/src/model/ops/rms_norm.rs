//! RMS norm over the last dimension (Llama's norm), with its backward in x and w.

use candle_core::{bail, CpuStorage, CustomOp2, Layout, Shape, Tensor, D};
use rayon::prelude::*;

use super::{fused, last_dim, simd_run, slice, with_data, SEQUENTIAL_BELOW};

/// `x / sqrt(mean(x²) + eps) ⊙ w` over the last dimension, differentiable in x and w. The mean is
/// taken in f32, as transformers' `LlamaRMSNorm` does.
pub fn rms_norm(x: &Tensor, w: &Tensor, eps: f64) -> candle_core::Result<Tensor> {
    if fused(x) && fused(w) {
        x.contiguous()?
            .apply_op2(&w.contiguous()?, RmsNorm { eps: eps as f32 })
    } else {
        let ms = x.sqr()?.mean_keepdim(D::Minus1)?;
        x.broadcast_div(&(ms + eps)?.sqrt()?)?.broadcast_mul(w)
    }
}

struct RmsNorm {
    eps: f32,
}

/// 1 / sqrt(mean(x²) + eps) of one row.
#[inline(always)]
fn rstd(x: &[f32], eps: f32) -> f32 {
    let ms = x.iter().map(|v| v * v).sum::<f32>() / x.len() as f32;
    1.0 / (ms + eps).sqrt()
}

impl CustomOp2 for RmsNorm {
    fn name(&self) -> &'static str {
        "tunesmith-rms-norm"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (x, w) = (slice(s1, l1)?, slice(s2, l2)?);
        let n = last_dim(l1.shape())?;
        if w.len() != n {
            bail!("rms norm: weight length {} vs width {n}", w.len());
        }
        let mut y = vec![0f32; x.len()];
        let row = |(y, x): (&mut [f32], &[f32])| simd_run(NormRow(y, x, w, self.eps));
        if x.len() < SEQUENTIAL_BELOW {
            y.chunks_mut(n).zip(x.chunks(n)).for_each(row);
        } else {
            y.par_chunks_mut(n).zip(x.par_chunks(n)).for_each(row);
        }
        Ok((CpuStorage::F32(y), l1.shape().clone()))
    }

    // x̂ = x·r, ĝ = g⊙w: dx = r·(ĝ − x̂·mean(ĝ⊙x̂)), dw = Σ g⊙x̂.
    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _y: &Tensor,
        g: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let n = last_dim(x.shape())?;
        let eps = self.eps;
        let (dx, dw) = with_data(x, |x| {
            with_data(w, |w| {
                with_data(g, |g| {
                    let mut dx = vec![0f32; x.len()];
                    // Rows are processed in chunks; each chunk keeps a partial dw.
                    let rows_per_chunk = (x.len() / n)
                        .div_ceil(rayon::current_num_threads() * 4)
                        .max(1);
                    let partials: Vec<Vec<f32>> = dx
                        .par_chunks_mut(n * rows_per_chunk)
                        .zip(
                            x.par_chunks(n * rows_per_chunk)
                                .zip(g.par_chunks(n * rows_per_chunk)),
                        )
                        .map(|(dx, (x, g))| simd_run(NormBackward(dx, x, g, w, eps)))
                        .collect();
                    let mut dw = vec![0f32; n];
                    for p in partials {
                        dw.iter_mut().zip(p).for_each(|(a, b)| *a += b);
                    }
                    (dx, dw)
                })
            })
        })???;
        let dev = x.device();
        Ok((
            Some(Tensor::from_vec(dx, x.shape(), dev)?),
            Some(Tensor::from_vec(dw, w.shape(), dev)?),
        ))
    }
}

simd_kernel!(
    /// One row: `y = x·r·w`.
    NormRow<'a>(y: &'a mut [f32], x: &'a [f32], w: &'a [f32], eps: f32) -> () {
        let r = rstd(x, eps);
        for i in 0..w.len() {
            y[i] = x[i] * r * w[i];
        }
    }
);

simd_kernel!(
    /// A chunk of whole rows: their `dx`, and the chunk's partial `dw`.
    NormBackward<'a>(
        dx: &'a mut [f32],
        x: &'a [f32],
        g: &'a [f32],
        w: &'a [f32],
        eps: f32,
    ) -> Vec<f32> {
        let n = w.len();
        let mut dw = vec![0f32; n];
        for ((dx, x), g) in dx.chunks_mut(n).zip(x.chunks(n)).zip(g.chunks(n)) {
            let r = rstd(x, eps);
            let mut sgx = 0f32;
            for i in 0..n {
                let xhat = x[i] * r;
                sgx += g[i] * w[i] * xhat;
                dw[i] += g[i] * xhat;
            }
            let mgx = sgx / n as f32;
            for i in 0..n {
                dx[i] = r * (g[i] * w[i] - x[i] * r * mgx);
            }
        }
        dw
    }
);
