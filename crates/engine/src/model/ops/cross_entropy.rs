//! Cross-entropy of logits against next-token targets, masked targets left out.

use candle_core::{bail, CpuStorage, CustomOp1, DType, Layout, Shape, Tensor};
use rayon::prelude::*;

use std::sync::Mutex;

use super::{activation, fused, last_dim, simd_run, slice, with_data, IGNORE_INDEX};

/// Mean next-token cross-entropy of `logits: (N, V)` against `targets` (length N); positions whose
/// target is [`IGNORE_INDEX`] are left out of both the sum and the count. Returns a scalar.
pub fn cross_entropy(logits: &Tensor, targets: &[u32]) -> candle_core::Result<Tensor> {
    let (n, v) = logits.dims2()?;
    let count = check_targets(n, v, targets)?;
    if fused(logits) {
        logits.contiguous()?.apply_op1(CrossEntropy {
            targets: targets.to_vec(),
            count,
            lse: Mutex::new(Vec::new()),
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

/// Checks one target per row, each masked or inside the vocabulary of `v`; returns how many are kept.
pub(super) fn check_targets(n: usize, v: usize, targets: &[u32]) -> candle_core::Result<usize> {
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
    match targets.iter().filter(|&&t| t != IGNORE_INDEX).count() {
        0 => bail!("cross entropy: every target is masked"),
        count => Ok(count),
    }
}

struct CrossEntropy {
    targets: Vec<u32>,
    count: usize,
    /// Each row's log Σ exp, kept by the forward pass for the backward one (one exp pass over the
    /// N × V logits fewer).
    lse: Mutex<Vec<f32>>,
}

/// log Σ exp over a row, stable.
#[inline(always)]
fn logsumexp(x: &[f32]) -> f32 {
    let max = activation::max(x);
    max + activation::sum_exp(x, max).ln()
}

impl CustomOp1 for CrossEntropy {
    fn name(&self) -> &'static str {
        "tunesmith-cross-entropy"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = slice(s, l)?;
        let v = last_dim(l.shape())?;
        // Masked rows cost nothing: no log Σ exp (NaN marks them).
        let lse: Vec<f32> = x
            .par_chunks(v)
            .zip(self.targets.par_iter())
            .map(|(row, &t)| {
                if t == IGNORE_INDEX {
                    f32::NAN
                } else {
                    simd_run(LogSumExp(row))
                }
            })
            .collect();
        let total: f64 = x
            .chunks(v)
            .zip(&self.targets)
            .zip(&lse)
            .filter(|((_, &t), _)| t != IGNORE_INDEX)
            .map(|((row, &t), &lse)| (lse - row[t as usize]) as f64)
            .sum();
        *self.lse.lock().unwrap_or_else(|e| e.into_inner()) = lse;
        Ok((
            CpuStorage::F32(vec![(total / self.count as f64) as f32]),
            Shape::from(()),
        ))
    }

    // d loss / d logits = g · (softmax − onehot) / count, zero on ignored rows.
    fn bwd(&self, x: &Tensor, _res: &Tensor, g: &Tensor) -> candle_core::Result<Option<Tensor>> {
        let scale = g.to_dtype(DType::F32)?.to_scalar::<f32>()? / self.count as f32;
        let v = last_dim(x.shape())?;
        let kept = std::mem::take(&mut *self.lse.lock().unwrap_or_else(|e| e.into_inner()));
        let dx = with_data(x, |x| {
            // The forward pass's log Σ exp, unless this op's backward runs a second time.
            let lse = if kept.len() * v == x.len() {
                kept
            } else {
                x.par_chunks(v).map(|r| simd_run(LogSumExp(r))).collect()
            };
            let mut dx = vec![0f32; x.len()];
            dx.par_chunks_mut(v)
                .zip(
                    x.par_chunks(v)
                        .zip(self.targets.par_iter().zip(lse.par_iter())),
                )
                .for_each(|(dx, (row, (&t, &lse)))| {
                    if t == IGNORE_INDEX {
                        return;
                    }
                    simd_run(ScaledSoftmax(dx, row, lse, scale));
                    dx[t as usize] -= scale;
                });
            dx
        })?;
        Ok(Some(Tensor::from_vec(dx, x.shape(), x.device())?))
    }
}

simd_kernel!(
    /// `dx = exp(row − lse) · scale`: one row's softmax (its log Σ exp known), scaled.
    ScaledSoftmax<'a>(dx: &'a mut [f32], row: &'a [f32], lse: f32, scale: f32) -> () {
        for (d, &r) in dx.iter_mut().zip(row) {
            *d = activation::exp(r - lse) * scale;
        }
    }
);

simd_kernel!(
    /// [`logsumexp`] of one row.
    LogSumExp<'a>(row: &'a [f32]) -> f32 {
        logsumexp(row)
    }
);
