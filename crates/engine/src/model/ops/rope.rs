//! Rotary position embedding in transformers' "rotate half" layout, with its backward.

use candle_core::{bail, CpuStorage, CustomOp3, Layout, Shape, Tensor, D};
use rayon::prelude::*;

use super::{fused, slice, SEQUENTIAL_BELOW};

/// Rotates `x: (B, H, T, D)` by the angles whose cosines and sines are `cos, sin: (T, D/2)`:
/// for `i < D/2`, `y[i] = x[i]·cos − x[i+D/2]·sin` and `y[i+D/2] = x[i+D/2]·cos + x[i]·sin`
/// (transformers' `apply_rotary_pos_emb`). Differentiable in x; the tables are constants.
pub fn rope(x: &Tensor, cos: &Tensor, sin: &Tensor) -> candle_core::Result<Tensor> {
    let (_, _, t, d) = x.dims4()?;
    if d % 2 != 0 || cos.dims() != [t, d / 2] || sin.dims() != [t, d / 2] {
        bail!(
            "rope: x {:?} needs cos/sin tables of shape ({t}, {}), got {:?}",
            x.dims(),
            d / 2,
            cos.dims()
        );
    }
    if fused(x) && fused(cos) && fused(sin) {
        x.contiguous()?.apply_op3(
            &cos.contiguous()?,
            &sin.contiguous()?,
            Rope { inverse: false },
        )
    } else {
        let half = d / 2;
        let (x1, x2) = (
            x.narrow(D::Minus1, 0, half)?,
            x.narrow(D::Minus1, half, half)?,
        );
        let y1 = (x1.broadcast_mul(cos)? - x2.broadcast_mul(sin)?)?;
        let y2 = (x2.broadcast_mul(cos)? + x1.broadcast_mul(sin)?)?;
        Tensor::cat(&[y1, y2], D::Minus1)
    }
}

/// The rotation, or (`inverse`) the rotation by the opposite angles, which is its transpose and
/// so its gradient.
struct Rope {
    inverse: bool,
}

impl CustomOp3 for Rope {
    fn name(&self) -> &'static str {
        "tunesmith-rope"
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
        let (x, cos, sin) = (slice(s1, l1)?, slice(s2, l2)?, slice(s3, l3)?);
        let dims = l1.shape().dims();
        let (t, d) = (dims[2], dims[3]);
        let half = d / 2;
        let sign = if self.inverse { -1.0 } else { 1.0 };
        let mut y = vec![0f32; x.len()];
        // One chunk is one head's (T, D) matrix.
        let head = |(y, x): (&mut [f32], &[f32])| {
            for p in 0..t {
                let (c, s) = (&cos[p * half..][..half], &sin[p * half..][..half]);
                let (x, y) = (&x[p * d..][..d], &mut y[p * d..][..d]);
                for i in 0..half {
                    let (a, b, si) = (x[i], x[i + half], sign * s[i]);
                    y[i] = a * c[i] - b * si;
                    y[i + half] = b * c[i] + a * si;
                }
            }
        };
        if x.len() < SEQUENTIAL_BELOW {
            y.chunks_mut(t * d).zip(x.chunks(t * d)).for_each(head);
        } else {
            y.par_chunks_mut(t * d)
                .zip(x.par_chunks(t * d))
                .for_each(head);
        }
        Ok((CpuStorage::F32(y), l1.shape().clone()))
    }

    fn bwd(
        &self,
        _x: &Tensor,
        cos: &Tensor,
        sin: &Tensor,
        _y: &Tensor,
        g: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let dx = g.contiguous()?.apply_op3(
            cos,
            sin,
            Rope {
                inverse: !self.inverse,
            },
        )?;
        Ok((Some(dx), None, None))
    }
}
