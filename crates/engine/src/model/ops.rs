//! Differentiable building blocks with fused CPU kernels.
//!
//! candle's own fused `softmax_last_dim`, `layer_norm` and `rms_norm` record no backward, so a model
//! built on them trains only its head (candle issues #2168, #3011). Each op here has a fused,
//! multi-threaded CPU forward *and* a hand-written backward (candle `CustomOp`); on other devices it
//! falls back to a composition of differentiable candle ops with the same maths.

use candle_core::{
    bail, CpuStorage, CustomOp1, CustomOp3, DType, Device, Layout, Shape, Storage, Tensor, D,
};
use rayon::prelude::*;

/// Target id that contributes nothing to the loss (masked prompt tokens, padding).
pub const IGNORE_INDEX: u32 = u32::MAX;

/// Below this many elements, waking the thread pool costs more than the work.
const SEQUENTIAL_BELOW: usize = 1 << 15;

fn fused(t: &Tensor) -> bool {
    matches!(t.device(), Device::Cpu) && t.dtype() == DType::F32
}

/// Borrows the f32 data of a CPU tensor as one contiguous slice.
fn slice<'a>(s: &'a CpuStorage, l: &Layout) -> candle_core::Result<&'a [f32]> {
    let data = s.as_slice::<f32>()?;
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&data[a..b]),
        None => bail!("fused op expects a contiguous tensor"),
    }
}

/// Runs `f` over the contiguous f32 data of a CPU tensor.
fn with_data<R>(t: &Tensor, f: impl FnOnce(&[f32]) -> R) -> candle_core::Result<R> {
    let t = t.contiguous()?;
    let (storage, layout) = t.storage_and_layout();
    match &*storage {
        Storage::Cpu(s) => Ok(f(slice(s, layout)?)),
        _ => bail!("expected a CPU tensor"),
    }
}

fn last_dim(shape: &Shape) -> candle_core::Result<usize> {
    match shape.dims().last() {
        Some(&d) if d > 0 => Ok(d),
        _ => bail!("fused op needs a non-empty last dimension"),
    }
}

// ---------------------------------------------------------------------------------------------
// Softmax over the last dimension.

/// Softmax over the last dimension, differentiable.
pub fn softmax_last_dim(x: &Tensor) -> candle_core::Result<Tensor> {
    if fused(x) {
        x.contiguous()?.apply_op1(Softmax)
    } else {
        candle_nn::ops::softmax(x, D::Minus1)
    }
}

struct Softmax;

impl CustomOp1 for Softmax {
    fn name(&self) -> &'static str {
        "tunesmith-softmax"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = slice(s, l)?;
        let n = last_dim(l.shape())?;
        let mut y = vec![0f32; x.len()];
        let row = |(y, x): (&mut [f32], &[f32])| {
            let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let mut sum = 0f32;
            for (y, &x) in y.iter_mut().zip(x) {
                *y = (x - max).exp();
                sum += *y;
            }
            let inv = 1.0 / sum;
            y.iter_mut().for_each(|y| *y *= inv);
        };
        if x.len() < SEQUENTIAL_BELOW {
            y.chunks_mut(n).zip(x.chunks(n)).for_each(row);
        } else {
            y.par_chunks_mut(n).zip(x.par_chunks(n)).for_each(row);
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
                    .for_each(|(dx, (y, g))| {
                        let dot: f32 = y.iter().zip(g).map(|(y, g)| y * g).sum();
                        for ((dx, y), g) in dx.iter_mut().zip(y).zip(g) {
                            *dx = y * (g - dot);
                        }
                    });
                dx
            })
        })??;
        Ok(Some(Tensor::from_vec(dx, y.shape(), y.device())?))
    }
}

// ---------------------------------------------------------------------------------------------
// Layer norm over the last dimension.

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
        let row = |(y, x): (&mut [f32], &[f32])| {
            let (mean, rstd) = row_stats(x, self.eps);
            for i in 0..n {
                y[i] = (x[i] - mean) * rstd * w[i] + b[i];
            }
        };
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
                        .map(|(dx, (x, g))| {
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
                        })
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

// ---------------------------------------------------------------------------------------------
// Logits of one position during decoding.

/// `x: (1, C)` times `w: (V, C)` transposed → `(1, V)`: the LM head for a single decoding position.
/// A decode step is bound by reading the `V × C` embedding, so this streams each row once, in
/// parallel, instead of a general matmul. No gradient (inference only).
pub fn matvec_rows(x: &Tensor, w: &Tensor) -> candle_core::Result<Tensor> {
    let (n, c) = x.dims2()?;
    let (v, c2) = w.dims2()?;
    if n != 1 || c != c2 || !fused(x) || !fused(w) || !w.is_contiguous() {
        return x.matmul(&w.t()?);
    }
    let out = with_data(x, |x| {
        with_data(w, |w| {
            let mut out = vec![0f32; v];
            out.par_chunks_mut(512)
                .enumerate()
                .for_each(|(chunk, out)| {
                    for (k, o) in out.iter_mut().enumerate() {
                        let row = &w[(chunk * 512 + k) * c..(chunk * 512 + k + 1) * c];
                        *o = dot(x, row);
                    }
                });
            out
        })
    })??;
    Tensor::from_vec(out, (1, v), x.device())
}

/// `x: (1, K)` times `w: (K, N)` → `(1, N)` for one decoding position through a HF Conv1D: each
/// thread owns a slice of output columns and streams the weight rows once. Falls back to a matmul
/// when gradients are tracked or the shapes differ.
pub fn vecmat(x: &Tensor, w: &Tensor) -> candle_core::Result<Tensor> {
    let (n, k) = x.dims2()?;
    let (k2, cols) = w.dims2()?;
    if n != 1
        || k != k2
        || !fused(x)
        || !fused(w)
        || !w.is_contiguous()
        || x.track_op()
        || w.track_op()
    {
        return x.matmul(w);
    }
    const COLS: usize = 256;
    let out = with_data(x, |x| {
        with_data(w, |w| {
            let mut out = vec![0f32; cols];
            let block = |(chunk, out): (usize, &mut [f32])| {
                let start = chunk * COLS;
                for (i, &xi) in x.iter().enumerate() {
                    let row = &w[i * cols + start..i * cols + start + out.len()];
                    for (o, &r) in out.iter_mut().zip(row) {
                        *o += xi * r;
                    }
                }
            };
            if w.len() < SEQUENTIAL_BELOW * 4 {
                out.chunks_mut(COLS).enumerate().for_each(block);
            } else {
                out.par_chunks_mut(COLS).enumerate().for_each(block);
            }
            out
        })
    })??;
    Tensor::from_vec(out, (1, cols), x.device())
}

/// Dot product with eight independent accumulators so the compiler vectorises it.
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}

// ---------------------------------------------------------------------------------------------
// Cross-entropy over logits.

/// Mean next-token cross-entropy of `logits: (N, V)` against `targets` (length N); positions whose
/// target is [`IGNORE_INDEX`] are left out of both the sum and the count. Returns a scalar.
pub fn cross_entropy(logits: &Tensor, targets: &[u32]) -> candle_core::Result<Tensor> {
    let (n, v) = logits.dims2()?;
    if n != targets.len() {
        bail!(
            "cross entropy: {n} rows of logits but {} targets",
            targets.len()
        );
    }
    if let Some(&t) = targets
        .iter()
        .find(|&&t| t != IGNORE_INDEX && t as usize >= v)
    {
        bail!("cross entropy: target id {t} is outside the vocabulary of {v}");
    }
    let count = targets.iter().filter(|&&t| t != IGNORE_INDEX).count();
    if count == 0 {
        bail!("cross entropy: every target is masked");
    }
    if fused(logits) {
        logits.contiguous()?.apply_op1(CrossEntropy {
            targets: targets.to_vec(),
            count,
        })
    } else {
        // Masked positions point at class 0 and are zeroed by the weight.
        let ids: Vec<u32> = targets
            .iter()
            .map(|&t| if t == IGNORE_INDEX { 0 } else { t })
            .collect();
        let keep: Vec<f32> = targets
            .iter()
            .map(|&t| (t != IGNORE_INDEX) as u8 as f32)
            .collect();
        let dev = logits.device();
        let ids = Tensor::from_vec(ids, n, dev)?;
        let keep = Tensor::from_vec(keep, n, dev)?;
        let logp = candle_nn::ops::log_softmax(logits, 1)?;
        let picked = logp.gather(&ids.unsqueeze(1)?, 1)?.squeeze(1)?;
        (picked * keep)?.sum_all()?.affine(-1.0 / count as f64, 0.0)
    }
}

struct CrossEntropy {
    targets: Vec<u32>,
    count: usize,
}

/// log Σ exp over a row, stable.
fn logsumexp(x: &[f32]) -> f32 {
    let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f32 = x.iter().map(|v| (v - max).exp()).sum();
    max + sum.ln()
}

impl CustomOp1 for CrossEntropy {
    fn name(&self) -> &'static str {
        "tunesmith-cross-entropy"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = slice(s, l)?;
        let v = last_dim(l.shape())?;
        let total: f64 = x
            .par_chunks(v)
            .zip(self.targets.par_iter())
            .filter(|(_, &t)| t != IGNORE_INDEX)
            .map(|(row, &t)| (logsumexp(row) - row[t as usize]) as f64)
            .sum();
        Ok((
            CpuStorage::F32(vec![(total / self.count as f64) as f32]),
            Shape::from(()),
        ))
    }

    // d loss / d logits = g · (softmax − onehot) / count, zero on ignored rows.
    fn bwd(&self, x: &Tensor, _res: &Tensor, g: &Tensor) -> candle_core::Result<Option<Tensor>> {
        let scale = g.to_dtype(DType::F32)?.to_scalar::<f32>()? / self.count as f32;
        let v = last_dim(x.shape())?;
        let dx = with_data(x, |x| {
            let mut dx = vec![0f32; x.len()];
            dx.par_chunks_mut(v)
                .zip(x.par_chunks(v).zip(self.targets.par_iter()))
                .for_each(|(dx, (row, &t))| {
                    if t == IGNORE_INDEX {
                        return;
                    }
                    let lse = logsumexp(row);
                    for (d, &r) in dx.iter_mut().zip(row) {
                        *d = (r - lse).exp() * scale;
                    }
                    dx[t as usize] -= scale;
                });
            dx
        })?;
        Ok(Some(Tensor::from_vec(dx, x.shape(), x.device())?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Var;

    fn rand(shape: &[usize], seed: u64) -> Tensor {
        let mut r = crate::rng::Rng::new(seed);
        let n: usize = shape.iter().product();
        Tensor::from_vec(
            (0..n).map(|_| r.normal()).collect::<Vec<f32>>(),
            shape,
            &Device::Cpu,
        )
        .unwrap()
    }

    fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
        (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar()
            .unwrap()
    }

    /// Gradients of `loss(op(x))` for the fused op and the reference composition agree.
    fn check_grads(
        inputs: &[Tensor],
        fused: impl Fn(&[Tensor]) -> Tensor,
        reference: impl Fn(&[Tensor]) -> Tensor,
    ) {
        let weights = rand(fused(inputs).dims(), 99);
        let run = |f: &dyn Fn(&[Tensor]) -> Tensor| {
            let vars: Vec<Var> = inputs
                .iter()
                .map(|t| Var::from_tensor(t).unwrap())
                .collect();
            let ts: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().clone()).collect();
            let out = f(&ts);
            let loss = if out.rank() == 0 {
                out.clone()
            } else {
                (&out * &weights).unwrap().sum_all().unwrap()
            };
            let grads = loss.backward().unwrap();
            let gs: Vec<Tensor> = vars.iter().map(|v| grads.get(v).unwrap().clone()).collect();
            (out, gs)
        };
        let (out_a, ga) = run(&fused);
        let (out_b, gb) = run(&reference);
        assert!(max_diff(&out_a, &out_b) < 1e-5, "forward differs");
        for (a, b) in ga.iter().zip(&gb) {
            assert!(
                max_diff(a, b) < 1e-4,
                "gradient differs by {}",
                max_diff(a, b)
            );
        }
    }

    #[test]
    fn softmax_matches_reference_with_gradient() {
        check_grads(
            &[rand(&[3, 5, 17], 1)],
            |t| softmax_last_dim(&t[0]).unwrap(),
            |t| candle_nn::ops::softmax(&t[0], D::Minus1).unwrap(),
        );
    }

    #[test]
    fn layer_norm_matches_reference_with_gradient() {
        let (x, w, b) = (rand(&[4, 6, 24], 2), rand(&[24], 3), rand(&[24], 4));
        let reference = |t: &[Tensor]| {
            let mean = t[0].mean_keepdim(D::Minus1).unwrap();
            let xc = t[0].broadcast_sub(&mean).unwrap();
            let var = xc.sqr().unwrap().mean_keepdim(D::Minus1).unwrap();
            let xhat = xc
                .broadcast_div(&(var + 1e-5).unwrap().sqrt().unwrap())
                .unwrap();
            xhat.broadcast_mul(&t[1])
                .unwrap()
                .broadcast_add(&t[2])
                .unwrap()
        };
        check_grads(
            &[x, w, b],
            |t| layer_norm(&t[0], &t[1], &t[2], 1e-5).unwrap(),
            reference,
        );
    }

    #[test]
    fn cross_entropy_matches_reference_with_gradient_and_mask() {
        let targets = [3u32, IGNORE_INDEX, 0, 9, 9, 1];
        let reference = |t: &[Tensor]| {
            let logp = candle_nn::ops::log_softmax(&t[0], 1).unwrap();
            let rows: Vec<Tensor> = targets
                .iter()
                .enumerate()
                .filter(|(_, &c)| c != IGNORE_INDEX)
                .map(|(i, &c)| logp.get(i).unwrap().get(c as usize).unwrap())
                .collect();
            (Tensor::stack(&rows, 0).unwrap().mean_all().unwrap() * -1.0).unwrap()
        };
        check_grads(
            &[rand(&[6, 10], 5)],
            |t| cross_entropy(&t[0], &targets).unwrap(),
            reference,
        );
    }

    #[test]
    fn vecmat_matches_matmul() {
        let (x, w) = (rand(&[1, 45], 8), rand(&[45, 700], 9));
        assert!(max_diff(&vecmat(&x, &w).unwrap(), &x.matmul(&w).unwrap()) < 1e-4);
    }

    #[test]
    fn matvec_matches_matmul() {
        let (x, w) = (rand(&[1, 37], 6), rand(&[1100, 37], 7));
        let want = x.matmul(&w.t().unwrap()).unwrap();
        assert!(max_diff(&matvec_rows(&x, &w).unwrap(), &want) < 1e-4);
    }

    #[test]
    fn cross_entropy_value_by_hand() {
        // Uniform logits over 4 classes: loss = ln 4.
        let x = Tensor::zeros((2, 4), DType::F32, &Device::Cpu).unwrap();
        let l: f32 = cross_entropy(&x, &[1, 2]).unwrap().to_scalar().unwrap();
        assert!((l - 4f32.ln()).abs() < 1e-6);
        assert!(cross_entropy(&x, &[IGNORE_INDEX, IGNORE_INDEX]).is_err());
        assert!(cross_entropy(&x, &[7, 0]).is_err());
    }
}
