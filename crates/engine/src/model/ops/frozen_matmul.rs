//! A matmul by a frozen weight: the gradient flows to the activations only.
//!
//! candle's `matmul` backward always computes and keeps the gradient of both sides. With LoRA (or a
//! frozen token table under a tied head) that is a weight-sized gradient per projection that no one
//! reads: a third of the backward pass's matmul work, and the whole model's size again in memory
//! until the step ends. This op records `x` alone as differentiable.

use candle_core::backend::BackendStorage;
use candle_core::{bail, CpuStorage, CustomOp2, Layout, Shape, Tensor};

use super::fused;

/// `x @ Wᵀ` (`transposed`, `W: (out, in)`, nn.Linear) or `x @ W` (`W: (in, out)`, Conv1D) for
/// `x: (N, in)`. When `W` is not being trained, only `x` gets a gradient.
pub fn frozen_matmul(x: &Tensor, w: &Tensor, transposed: bool) -> candle_core::Result<Tensor> {
    let plain = || {
        if transposed {
            x.matmul(&w.t()?)
        } else {
            x.matmul(w)
        }
    };
    // Without a gradient to x, or with one wanted for W, candle's own matmul is the right op.
    if w.track_op() || !x.track_op() || !fused(x) || !fused(w) || x.rank() != 2 || w.rank() != 2 {
        return plain();
    }
    x.contiguous()?
        .apply_op2(&w.contiguous()?, FrozenMatmul { transposed })
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

/// The matmul, recorded with a backward for `x` alone.
struct FrozenMatmul {
    transposed: bool,
}

impl CustomOp2 for FrozenMatmul {
    fn name(&self) -> &'static str {
        "tunesmith-frozen-matmul"
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
        _x: &Tensor,
        w: &Tensor,
        _y: &Tensor,
        g: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let dx = if self.transposed {
            g.matmul(w)?
        } else {
            g.matmul(&w.t()?)?
        };
        Ok((Some(dx), None))
    }
}
