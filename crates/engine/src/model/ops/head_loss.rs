//! The LM head and the cross-entropy as one op, chunked over rows, with no `(N, vocab)` tensor.
//!
//! `cross_entropy(hidden · headᵀ)` materialises the logits, `N × 50257` floats (206 MB for a batch
//! of 1024 positions), and its backward pass another buffer as large for their gradient, both
//! mapped fresh from the kernel (and zeroed by it) every step. Here the logits of a chunk of rows
//! go into one bounded buffer. Each chunk's gradient is formed as soon as its rows' log Σ exp is
//! known (exp taken once, the softmax scaled in place) and multiplied out at once into `dhidden`
//! and, added chunk after chunk, `dhead`: the backward work is done during the forward pass, and
//! backward only scales by the incoming gradient. Masked rows (prompt tokens) are left out before
//! the products. Chunks are as large as the budget allows: each one re-reads the whole head (gemm
//! packs it again), so 125-row chunks ran `small` about 10 % slower than 500-row ones.

use std::sync::{Arc, Mutex};

use candle_core::{bail, CpuStorage, CustomOp2, DType, Layout, Shape, Tensor};
use rayon::prelude::*;
use tunesmith_gemm::{matmul, Mat, MatMut};

use super::{activation, cross_entropy, fused, linear, shape_err, simd_run, slice, IGNORE_INDEX};

/// Bytes of logits computed at once: up to 667 rows of GPT-2's vocabulary.
const CHUNK_BYTES: usize = 128 << 20;

/// Mean next-token cross-entropy of the logits `hidden · headᵀ` (`hidden: (N, C)`, `head: (V, C)`,
/// a tied or untied LM head) against `targets` (one per row; [`IGNORE_INDEX`] rows left out).
/// Gradients reach `hidden` and `head` where they are tracked and `train` is set; with `train`
/// unset (evaluation) none are computed. Equal to `cross_entropy(&linear(hidden, head,
/// true)?, targets)`, which it falls back to off the CPU or in other dtypes.
pub fn head_cross_entropy(
    hidden: &Tensor,
    head: &Tensor,
    targets: &[u32],
    train: bool,
    scratch: &HeadScratch,
) -> candle_core::Result<Tensor> {
    head_cross_entropy_chunked(hidden, head, targets, train, scratch, CHUNK_BYTES)
}

/// The buffer a model's [`head_cross_entropy`] computes its logits in, kept from one step to the
/// next: a fresh one of 100 MB is mapped from the kernel and zeroed by it every time (`perf`
/// showed page clearing at 8 % of a SmolLM2 LoRA step). It lives as long as the model.
#[derive(Clone, Default)]
pub struct HeadScratch(Arc<Mutex<Vec<f32>>>);

impl HeadScratch {
    /// A buffer of `len` floats: the kept one when it is large enough (contents unspecified).
    fn take(&self, len: usize) -> Vec<f32> {
        let mut buf = std::mem::take(&mut *self.0.lock().unwrap_or_else(|e| e.into_inner()));
        if buf.capacity() < len {
            buf = Vec::new();
        }
        buf.resize(len, 0.0);
        buf
    }

    /// Keeps `buf` for the next call.
    fn keep(&self, buf: Vec<f32>) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = buf;
    }
}

/// [`head_cross_entropy`] with logits computed `chunk_bytes` at a time (at least one row).
pub(super) fn head_cross_entropy_chunked(
    hidden: &Tensor,
    head: &Tensor,
    targets: &[u32],
    train: bool,
    scratch: &HeadScratch,
    chunk_bytes: usize,
) -> candle_core::Result<Tensor> {
    let (n, c) = hidden.dims2()?;
    let (v, c2) = head.dims2()?;
    if c != c2 {
        bail!("LM head: hidden states are {c} wide but the head's rows are {c2}");
    }
    if !fused(hidden) || !fused(head) || n == 0 || c == 0 {
        return cross_entropy(&linear(hidden, head, true)?, targets);
    }
    let count = super::cross_entropy::check_targets(n, v, targets)?;
    hidden.contiguous()?.apply_op2(
        &head.contiguous()?,
        HeadLoss {
            targets: targets.to_vec(),
            count,
            want_dh: train && hidden.track_op(),
            want_dw: train && head.track_op(),
            chunk_bytes,
            scratch: scratch.clone(),
            grads: Mutex::new(None),
        },
    )
}

/// Rows of logits per chunk for `rows` kept rows over a vocabulary of `vocab`: chunks of equal
/// size, as few as `chunk_bytes` allows (every chunk's products re-read the whole head, which gemm
/// packs again), none of them a small remainder.
fn chunk_rows(rows: usize, vocab: usize, chunk_bytes: usize) -> usize {
    if rows == 0 {
        return 0;
    }
    let most = (chunk_bytes / (4 * vocab.max(1))).clamp(1, rows);
    rows.div_ceil(rows.div_ceil(most))
}

/// Floats of the logits buffer for `rows` positions over a vocabulary of `vocab` (the training
/// memory estimate).
pub(crate) fn logits_floats(rows: usize, vocab: usize) -> usize {
    chunk_rows(rows, vocab, CHUNK_BYTES) * vocab
}

struct HeadLoss {
    targets: Vec<u32>,
    count: usize,
    want_dh: bool,
    want_dw: bool,
    chunk_bytes: usize,
    scratch: HeadScratch,
    /// Gradients of the mean loss, formed by the forward pass, taken by the backward one.
    grads: Mutex<Option<Grads>>,
}

struct Grads {
    dh: Option<Vec<f32>>,
    dw: Option<Vec<f32>>,
}

impl HeadLoss {
    /// Σ of the kept rows' losses, and the gradients of their mean that were asked for.
    fn run(
        &self,
        h: &[f32],
        w: &[f32],
        (n, c, v): (usize, usize, usize),
        grads: bool,
    ) -> candle_core::Result<(f64, Grads)> {
        let (want_dh, want_dw) = (grads && self.want_dh, grads && self.want_dw);
        let kept: Vec<usize> = (0..n)
            .filter(|&i| self.targets[i] != IGNORE_INDEX)
            .collect();
        let k = kept.len();
        // The kept rows, gathered when some are masked.
        let gathered: Vec<f32>;
        let hk: &[f32] = if k == n {
            h
        } else {
            gathered = kept
                .iter()
                .flat_map(|&i| &h[i * c..(i + 1) * c])
                .copied()
                .collect();
            &gathered
        };
        let targets: Vec<u32> = kept.iter().map(|&i| self.targets[i]).collect();
        let scale = 1.0 / self.count as f32;
        let wt = Mat::rows(w, v, c).map_err(shape_err)?;
        let rows_per_chunk = chunk_rows(k, v, self.chunk_bytes);
        let mut logits = self.scratch.take(rows_per_chunk * v);
        let mut dh = if want_dh { vec![0f32; k * c] } else { vec![] };
        let mut dw = if want_dw { vec![0f32; v * c] } else { vec![] };
        let mut total = 0f64;
        for start in (0..k).step_by(rows_per_chunk) {
            let rows = rows_per_chunk.min(k - start);
            let hc = Mat::rows(&hk[start * c..(start + rows) * c], rows, c).map_err(shape_err)?;
            let lc = &mut logits[..rows * v];
            matmul(
                MatMut::rows(lc, rows, v).map_err(shape_err)?,
                hc,
                wt.t(),
                false,
                1.0,
            )
            .map_err(shape_err)?;
            let losses: Vec<f32> = lc
                .par_chunks_mut(v)
                .zip(&targets[start..start + rows])
                .map(|(row, &t)| simd_run(RowLoss(row, t as usize, grads.then_some(scale))))
                .collect();
            total += losses.iter().map(|&l| l as f64).sum::<f64>();
            if !grads {
                continue;
            }
            let g = Mat::rows(lc, rows, v).map_err(shape_err)?;
            if want_dh {
                let out = MatMut::rows(&mut dh[start * c..(start + rows) * c], rows, c);
                matmul(out.map_err(shape_err)?, g, wt, false, 1.0).map_err(shape_err)?;
            }
            if want_dw {
                let out = MatMut::rows(&mut dw, v, c).map_err(shape_err)?;
                matmul(out, g.t(), hc, start > 0, 1.0).map_err(shape_err)?;
            }
        }
        self.scratch.keep(logits);
        // Masked rows get no gradient: scatter the kept rows' back into place.
        let dh = want_dh.then(|| {
            if k == n {
                dh
            } else {
                let mut full = vec![0f32; n * c];
                for (j, &i) in kept.iter().enumerate() {
                    full[i * c..(i + 1) * c].copy_from_slice(&dh[j * c..(j + 1) * c]);
                }
                full
            }
        });
        Ok((
            total,
            Grads {
                dh,
                dw: want_dw.then_some(dw),
            },
        ))
    }
}

impl CustomOp2 for HeadLoss {
    fn name(&self) -> &'static str {
        "tunesmith-head-cross-entropy"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (h, w) = (slice(s1, l1)?, slice(s2, l2)?);
        let ((n, c), (v, _)) = (l1.shape().dims2()?, l2.shape().dims2()?);
        let grads = self.want_dh || self.want_dw;
        let (total, g) = self.run(h, w, (n, c, v), grads)?;
        if grads {
            *self.grads.lock().unwrap_or_else(|e| e.into_inner()) = Some(g);
        }
        Ok((
            CpuStorage::F32(vec![(total / self.count as f64) as f32]),
            Shape::from(()),
        ))
    }

    fn bwd(
        &self,
        h: &Tensor,
        w: &Tensor,
        _loss: &Tensor,
        g: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let g = g.to_dtype(DType::F32)?.to_scalar::<f32>()?;
        let kept = self.grads.lock().unwrap_or_else(|e| e.into_inner()).take();
        // Formed by the forward pass, unless this backward runs a second time.
        let grads = match kept {
            Some(grads) => grads,
            None => {
                let (h, w) = (h.contiguous()?, w.contiguous()?);
                let (hs, hl) = h.storage_and_layout();
                let (ws, wl) = w.storage_and_layout();
                let (candle_core::Storage::Cpu(hs), candle_core::Storage::Cpu(ws)) = (&*hs, &*ws)
                else {
                    bail!("LM head: expected CPU tensors");
                };
                let (n, c) = hl.shape().dims2()?;
                let v = wl.shape().dims2()?.0;
                self.run(slice(hs, hl)?, slice(ws, wl)?, (n, c, v), true)?.1
            }
        };
        let wrap = |grad: Option<Vec<f32>>, like: &Tensor| -> candle_core::Result<Option<Tensor>> {
            grad.map(|mut d| {
                if g != 1.0 {
                    d.par_iter_mut().for_each(|x| *x *= g);
                }
                Tensor::from_vec(d, like.shape(), like.device())
            })
            .transpose()
        };
        Ok((wrap(grads.dh, h)?, wrap(grads.dw, w)?))
    }
}

simd_kernel!(
    /// One row's loss, `log Σ exp(row) − row[t]`; with `Some(scale)` the row is replaced by the
    /// gradient of `scale ·` that loss: `scale · (softmax(row) − onehot(t))`, exp taken once.
    RowLoss<'a>(row: &'a mut [f32], t: usize, scale: Option<f32>) -> f32 {
        let picked = row[t];
        let max = activation::max(row);
        match scale {
            None => max + activation::sum_exp(row, max).ln() - picked,
            Some(scale) => {
                let sum = exp_in_place(row, max);
                let factor = scale / sum;
                for x in row.iter_mut() {
                    *x *= factor;
                }
                row[t] -= scale;
                max + sum.ln() - picked
            }
        }
    }
);

/// `x ← exp(x − shift)` for each element; returns their sum (eight lanes, then the rest).
#[inline(always)]
fn exp_in_place(x: &mut [f32], shift: f32) -> f32 {
    let mut lanes = [0f32; 8];
    let mut chunks = x.chunks_exact_mut(8);
    for c in &mut chunks {
        for (l, v) in lanes.iter_mut().zip(c) {
            *v = activation::exp(*v - shift);
            *l += *v;
        }
    }
    let mut rest = 0f32;
    for v in chunks.into_remainder() {
        *v = activation::exp(*v - shift);
        rest += *v;
    }
    lanes.iter().sum::<f32>() + rest
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_are_equal_within_the_budget_and_cover_every_row() {
        assert_eq!(chunk_rows(0, 50257, CHUNK_BYTES), 0);
        assert_eq!(logits_floats(0, 50257), 0);
        // 128 MiB holds 667 rows of 50257: 1024 rows go in two chunks of 512, 512 rows in one.
        assert_eq!(chunk_rows(1024, 50257, CHUNK_BYTES), 512);
        assert_eq!(chunk_rows(512, 50257, CHUNK_BYTES), 512);
        for (rows, vocab, budget) in [(8192, 151936, CHUNK_BYTES), (23, 40, 800), (7, 1 << 20, 1)] {
            let r = chunk_rows(rows, vocab, budget);
            assert!(
                r >= 1 && (r == 1 || 4 * r * vocab <= budget),
                "{rows} {vocab}: {r}"
            );
            let chunks = rows.div_ceil(r);
            assert!(rows > (chunks - 1) * r, "no empty chunk");
            assert_eq!(chunks, rows.div_ceil((budget / (4 * vocab)).clamp(1, rows)));
        }
    }
}
