//! Products by a weight matrix, recorded as one op each with the backward passes they need.
//!
//! candle's `x.matmul(&w.t())` records two ops, a transpose and a matmul, and its backward pass
//! always computes both sides' gradients. For a trained `(out, in)` weight the matmul's gradient
//! arrives as `xᵀ·g`, `(in, out)`, which the transpose's backward pass adds, strided, into a
//! zeroed `(out, in)` tensor: an element at a time, and one more weight-sized buffer per
//! projection. [`linear`] computes `gᵀ·x` in the weight's own layout. With LoRA (or, where the
//! fused head and loss fall back to this op, a frozen token table under a tied head) the weight is
//! frozen, and no weight-sized gradient is computed or kept at all: a third of the backward pass's
//! matmul work, and the whole model's size again in memory until the step ends.

use candle_core::backend::BackendStorage;
use candle_core::{bail, CpuStorage, CustomOp2, Layout, Shape, Tensor};

use super::fused;

/// `x @ Wᵀ` (`transposed`, `W: (out, in)`, nn.Linear) or `x @ W` (`W: (in, out)`, Conv1D) for
/// `x: (N, in)`, with gradients to whichever of `x` and `W` are tracked (a frozen `W` gets none).
pub fn linear(x: &Tensor, w: &Tensor, transposed: bool) -> candle_core::Result<Tensor> {
    let plain = || {
        if transposed {
            x.matmul(&w.t()?)
        } else {
            x.matmul(w)
        }
    };
    // Without any gradient, candle's own matmul is the right op.
    if !(w.track_op() || x.track_op()) || !fused(x) || !fused(w) || x.rank() != 2 || w.rank() != 2 {
        return plain();
    }
    x.contiguous()?
        .apply_op2(&w.contiguous()?, Linear { transposed })
}

/// `x·Wᵀ` (`transposed`, `W: (out, in)`) or `x·W` (`W: (in, out)`) on CPU storage: `(N, out)`.
pub(super) fn cpu_matmul(
    sx: &CpuStorage,
    lx: &Layout,
    sw: &CpuStorage,
    lw: &Layout,
    transposed: bool,
) -> candle_core::Result<(CpuStorage, Shape)> {
    let (m, k) = lx.shape().dims2()?;
    let (rhs, n) = if transposed {
        let (n, k2) = lw.shape().dims2()?;
        if k2 != k {
            bail!("matmul by a frozen weight: x is (_, {k}) but W is ({n}, {k2})");
        }
        (lw.transpose(0, 1)?, n)
    } else {
        let (k2, n) = lw.shape().dims2()?;
        if k2 != k {
            bail!("matmul by a frozen weight: x is (_, {k}) but W is ({k2}, {n})");
        }
        (lw.clone(), n)
    };
    let y = sx.matmul(sw, (1, m, n, k), lx, &rhs)?;
    Ok((y, Shape::from((m, n))))
}

/// The matmul, recorded with a backward for whichever of `x` and `W` are tracked.
struct Linear {
    transposed: bool,
}

impl CustomOp2 for Linear {
    fn name(&self) -> &'static str {
        "tunesmith-linear"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        cpu_matmul(s1, l1, s2, l2, self.transposed)
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _y: &Tensor,
        g: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let wanted = (x.track_op(), w.track_op());
        // Detached: a gradient computed from a tracked tensor would record the product, and the
        // gradient store's sum would then keep both of its terms (the zeros it starts from and
        // this gradient) until the step ends: three buffers per weight instead of one.
        let (x, w) = (&x.detach(), &w.detach());
        let dx = wanted
            .0
            .then(|| {
                if self.transposed {
                    g.matmul(w)
                } else {
                    g.matmul(&w.t()?)
                }
            })
            .transpose()?;
        // In W's own layout: gᵀ·x is (out, in), xᵀ·g is (in, out).
        let dw = wanted
            .1
            .then(|| {
                if self.transposed {
                    g.t()?.matmul(x)
                } else {
                    x.t()?.matmul(g)
                }
            })
            .transpose()?;
        Ok((dx, dw))
    }
}

/// `x @ W + b` (`W: (in, out)`, GPT-2's Conv1D) for `x: (N, in)` as one op: the bias is added into
/// the product's own buffer, and the backward pass sums the bias gradient in one vectorised pass
/// (candle's broadcast add allocates another `(N, out)` tensor forward and reduces over rows
/// backward). Gradients go to whichever of `x`, `W`, `b` are being tracked.
pub fn linear_bias(x: &Tensor, w: &Tensor, b: &Tensor) -> candle_core::Result<Tensor> {
    if !fused(x)
        || !fused(w)
        || !fused(b)
        || x.rank() != 2
        || w.rank() != 2
        || b.rank() != 1
        || x.dim(0)? == 0
        || w.dim(1)? == 0
    {
        return linear(x, w, false)?.broadcast_add(b);
    }
    x.contiguous()?
        .apply_op3(&w.contiguous()?, &b.contiguous()?, LinearBias)
}

struct LinearBias;

impl candle_core::CustomOp3 for LinearBias {
    fn name(&self) -> &'static str {
        "tunesmith-linear-bias"
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
        let (y, shape) = cpu_matmul(s1, l1, s2, l2, false)?;
        let CpuStorage::F32(mut y) = y else {
            bail!("linear: expected f32");
        };
        let b = super::slice(s3, l3)?;
        let out = shape.dims2()?.1;
        if b.len() != out {
            bail!("linear: the bias has {} entries for {out} outputs", b.len());
        }
        add_bias(&mut y, b);
        Ok((CpuStorage::F32(y), shape))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: &Tensor,
        _y: &Tensor,
        g: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let wanted = (x.track_op(), w.track_op(), b.track_op());
        // Detached, as in `Linear::bwd`.
        let (x, w) = (&x.detach(), &w.detach());
        let dx = wanted.0.then(|| g.matmul(&w.t()?)).transpose()?;
        let dw = wanted.1.then(|| x.t()?.matmul(g)).transpose()?;
        let db = if wanted.2 {
            let out = b.dim(0)?;
            let sums = super::with_data(g, |g| column_sums(g, out))?;
            Some(Tensor::from_vec(sums, out, b.device())?)
        } else {
            None
        };
        Ok((dx, dw, db))
    }
}

/// Adds `b` to every row of the row-major `y` (rows of `b.len()`), on the thread pool when large.
pub(super) fn add_bias(y: &mut [f32], b: &[f32]) {
    if b.is_empty() {
        return;
    }
    let add = |row: &mut [f32]| super::simd_run(AddBias(row, b));
    if y.len() < super::SEQUENTIAL_BELOW {
        y.chunks_mut(b.len()).for_each(add);
    } else {
        use rayon::prelude::*;
        y.par_chunks_mut(b.len()).for_each(add);
    }
}

simd_kernel!(
    AddBias<'a>(row: &'a mut [f32], b: &'a [f32]) -> () {
        for (y, b) in row.iter_mut().zip(b) {
            *y += b;
        }
    }
);

simd_kernel!(
    /// `sums += Σ_rows g[row][start..start + sums.len()]` for the row-major `g: (rows, out)`.
    ColumnSums<'a>(sums: &'a mut [f32], g: &'a [f32], out: usize, start: usize) -> () {
        let len = sums.len();
        for row in g.chunks_exact(out) {
            for (s, v) in sums.iter_mut().zip(&row[start..start + len]) {
                *s += v;
            }
        }
    }
);

/// Σ over the rows of a row-major `(rows, out)` matrix: `(out)`, in blocks of columns on the
/// thread pool (each block's rows added in order, so the sums do not depend on the threads).
fn column_sums(g: &[f32], out: usize) -> Vec<f32> {
    use rayon::prelude::*;
    const COLS: usize = 256;
    let mut sums = vec![0f32; out];
    let block = |(c, s): (usize, &mut [f32])| super::simd_run(ColumnSums(s, g, out, c * COLS));
    if g.len() < super::SEQUENTIAL_BELOW {
        sums.chunks_mut(COLS).enumerate().for_each(block);
    } else {
        sums.par_chunks_mut(COLS).enumerate().for_each(block);
    }
    sums
}
