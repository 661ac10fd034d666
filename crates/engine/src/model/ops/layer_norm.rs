//! Layer norm over the last dimension, with its backward in x, w and b.

use candle_core::{bail, CpuStorage, CustomOp3, Layout, Shape, Tensor, D};
use rayon::prelude::*;

use super::{fused, last_dim, simd_run, slice, with_data, SEQUENTIAL_BELOW};

/// `(x − mean) / sqrt(var + eps) ⊙ w + b` over the last dimension, differentiable in x, w and b.
pub fn layer_norm(x: &Tensor, w: &Tensor, b: &Tensor, eps: f64) -> candle_core::Result<Tensor> {
    if fused(x) {
        x.contiguous()?.apply_op3(
            &w.contiguous()?,
            &b.contiguous()?,
            LayerNorm { eps: eps as f32 },
        )
    } else {
        let mean = x.mean_keepdim(D::Minus1)?;
        let xc = x.broadcast_sub(&mean)?;
        let var = xc.sqr()?.mean_keepdim(D::Minus1)?;
        let xhat = xc.broadcast_div(&(var + eps)?.sqrt()?)?;
        xhat.broadcast_mul(w)?.broadcast_add(b)
    }
}

struct LayerNorm {
    eps: f32,
}

/// Per-row mean and 1/std.
#[inline(always)]
fn row_stats(x: &[f32], eps: f32) -> (f32, f32) {
    let n = x.len() as f32;
    let mean = x.iter().sum::<f32>() / n;
    let var = x.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / n;
    (mean, 1.0 / (var + eps).sqrt())
}

impl CustomOp3 for LayerNorm {
    fn name(&self) -> &'static str {
        "tunesmith-layer-norm"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (x, w, b) = (slice(s1, l1)?, slice(s2, l2)?, slice(s3, l3)?);
        let n = last_dim(l1.shape())?;
        if w.len() != n || b.len() != n {
            bail!(
                "layer norm: weight/bias length {} / {} vs width {n}",
                w.len(),
                b.len()
            );
        }
        let mut y = vec![0f32; x.len()];
        let row = |(y, x): (&mut [f32], &[f32])| simd_run(NormRow(y, x, w, b, self.eps));
        if x.len() < SEQUENTIAL_BELOW {
            y.chunks_mut(n).zip(x.chunks(n)).for_each(row);
        } else {
            y.par_chunks_mut(n).zip(x.par_chunks(n)).for_each(row);
        }
        Ok((CpuStorage::F32(y), l1.shape().clone()))
    }

    // x̂ = (x−μ)·r, ĝ = g⊙w: dx = r·(ĝ − mean(ĝ) − x̂·mean(ĝ⊙x̂)), dw = Σ g⊙x̂, db = Σ g.
    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _b: &Tensor,
        _y: &Tensor,
        g: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let n = last_dim(x.shape())?;
        let eps = self.eps;
        let (dx, dw, db) = with_data(x, |x| {
            with_data(w, |w| {
                with_data(g, |g| {
                    let mut dx = vec![0f32; x.len()];
                    // Rows are processed in chunks; each chunk keeps partial dw/db sums.
                    let rows_per_chunk = (x.len() / n)
                        .div_ceil(rayon::current_num_threads() * 4)
                        .max(1);
                    let partials: Vec<(Vec<f32>, Vec<f32>)> = dx
                        .par_chunks_mut(n * rows_per_chunk)
                        .zip(
                            x.par_chunks(n * rows_per_chunk)
                                .zip(g.par_chunks(n * rows_per_chunk)),
                        )
                        .map(|(dx, (x, g))| simd_run(NormBackward(dx, x, g, w, eps)))
                        .collect();
                    let mut dw = vec![0f32; n];
                    let mut db = vec![0f32; n];
                    for (pw, pb) in partials {
                        dw.iter_mut().zip(pw).for_each(|(a, b)| *a += b);
                        db.iter_mut().zip(pb).for_each(|(a, b)| *a += b);
                    }
                    (dx, dw, db)
                })
            })
        })???;
        let dev = x.device();
        Ok((
            Some(Tensor::from_vec(dx, x.shape(), dev)?),
            Some(Tensor::from_vec(dw, w.shape(), dev)?),
            Some(Tensor::from_vec(db, w.shape(), dev)?),
        ))
    }
}

simd_kernel!(
    /// One row: `y = (x − μ)·r·w + b`.
    NormRow<'a>(y: &'a mut [f32], x: &'a [f32], w: &'a [f32], b: &'a [f32], eps: f32) -> () {
        let (mean, rstd) = row_stats(x, eps);
        for i in 0..w.len() {
            y[i] = (x[i] - mean) * rstd * w[i] + b[i];
        }
    }
);

simd_kernel!(
    /// A chunk of whole rows: their `dx`, and the chunk's partial `dw`, `db`.
    NormBackward<'a>(
        dx: &'a mut [f32],
        x: &'a [f32],
        g: &'a [f32],
        w: &'a [f32],
        eps: f32,
    ) -> (Vec<f32>, Vec<f32>) {
        let n = w.len();
        let mut dw = vec![0f32; n];
        let mut db = vec![0f32; n];
        for ((dx, x), g) in dx.chunks_mut(n).zip(x.chunks(n)).zip(g.chunks(n)) {
            let (mean, rstd) = row_stats(x, eps);
            let (mut sg, mut sgx) = (0f32, 0f32);
            for i in 0..n {
                let xhat = (x[i] - mean) * rstd;
                let gh = g[i] * w[i];
                sg += gh;
                sgx += gh * xhat;
                dw[i] += g[i] * xhat;
                db[i] += g[i];
            }
            let (mg, mgx) = (sg / n as f32, sgx / n as f32);
            for i in 0..n {
                let xhat = (x[i] - mean) * rstd;
                dx[i] = rstd * (g[i] * w[i] - mg - xhat * mgx);
            }
        }
        (dw, db)
    }
);
