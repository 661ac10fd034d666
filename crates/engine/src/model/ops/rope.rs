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
            Rope {
                inverse: false,
                per_position: 1,
            },
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
/// so its gradient. `x` is a sequence of `D`-wide vectors whose positions advance every
/// `per_position` vectors (1 for `(B, H, T, D)`; the head count for rows of side-by-side heads).
struct Rope {
    inverse: bool,
    per_position: usize,
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
        /// Vectors per task on the pool.
        const VECTORS: usize = 64;
        let (x, cos, sin) = (slice(s1, l1)?, slice(s2, l2)?, slice(s3, l3)?);
        let (t, half) = l2.shape().dims2()?;
        let (d, per) = (2 * half, self.per_position);
        let sign = if self.inverse { -1.0 } else { 1.0 };
        let mut y = vec![0f32; x.len()];
        let chunk = |(c, (y, x)): (usize, (&mut [f32], &[f32]))| {
            let vectors = y.chunks_exact_mut(d).zip(x.chunks_exact(d));
            for (i, (y, x)) in vectors.enumerate() {
                let p = ((c * VECTORS + i) / per) % t;
                rotate(
                    y,
                    x,
                    &cos[p * half..][..half],
                    &sin[p * half..][..half],
                    sign,
                );
            }
        };
        if x.len() < SEQUENTIAL_BELOW {
            y.chunks_mut(VECTORS * d)
                .zip(x.chunks(VECTORS * d))
                .enumerate()
                .for_each(chunk);
        } else {
            y.par_chunks_mut(VECTORS * d)
                .zip(x.par_chunks(VECTORS * d))
                .enumerate()
                .for_each(chunk);
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
        let inverse = Rope {
            inverse: !self.inverse,
            per_position: self.per_position,
        };
        Ok((
            Some(g.contiguous()?.apply_op3(cos, sin, inverse)?),
            None,
            None,
        ))
    }
}

/// `y` = `x` (one head's vector at one position) rotated by the angles of `cos` and `sin`, or
/// by the opposite angles when `sign` is −1.
#[inline(always)]
fn rotate(y: &mut [f32], x: &[f32], cos: &[f32], sin: &[f32], sign: f32) {
    let half = cos.len();
    for i in 0..half {
        let (a, b, si) = (x[i], x[i + half], sign * sin[i]);
        y[i] = a * cos[i] - b * si;
        y[i + half] = b * cos[i] + a * si;
    }
}

/// [`rope`] for `x: (B·T, n·D)`, `n` heads side by side in each row as a projection gives them
/// (row `r` is position `r mod T`), so that attention can read the heads where they lie
/// ([`super::causal_attention`]) with no split into `(B, n, T, D)` and no copy.
pub fn rope_rows(
    x: &Tensor,
    cos: &Tensor,
    sin: &Tensor,
    heads: usize,
) -> candle_core::Result<Tensor> {
    let (rows, width) = x.dims2()?;
    let (t, half) = cos.dims2()?;
    if heads == 0
        || half == 0
        || width != heads * 2 * half
        || sin.dims() != [t, half]
        || t == 0
        || rows % t != 0
    {
        bail!(
            "rope: x {:?} of {heads} heads needs cos/sin tables of shape (T, D/2) with T dividing \
             its rows, got {:?} and {:?}",
            x.dims(),
            cos.dims(),
            sin.dims()
        );
    }
    if fused(x) && fused(cos) && fused(sin) {
        x.contiguous()?.apply_op3(
            &cos.contiguous()?,
            &sin.contiguous()?,
            Rope {
                inverse: false,
                per_position: heads,
            },
        )
    } else {
        let d = 2 * half;
        let split = x.reshape((rows / t, t, heads, d))?.transpose(1, 2)?;
        rope(&split, cos, sin)?
            .transpose(1, 2)?
            .reshape((rows, width))
    }
}
