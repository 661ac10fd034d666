//! Dropout whose mask is a hash of (seed, position): drawn in parallel and vectorised, kept as one
//! seed instead of a mask tensor, and recomputed by the backward pass. The element-at-a-time mask
//! (an f32 per element, held for the backward) cost a full-size tensor per dropout site, which
//! for attention is B·H·T² per layer.

use candle_core::{CpuStorage, CustomOp1, Layout, Shape, Tensor};
use rayon::prelude::*;

use super::{fused, simd_run, slice, with_data, SEQUENTIAL_BELOW};

/// `x` with each element kept (times 1/(1−p)) or zeroed, as `seed` decides; differentiable.
/// `p ≤ 0` keeps everything, `p ≥ 1` drops everything.
pub fn dropout_seeded(x: &Tensor, p: f32, seed: u64) -> candle_core::Result<Tensor> {
    if p.is_nan() {
        candle_core::bail!("dropout probability is not a number");
    }
    if p <= 0.0 {
        return Ok(x.clone());
    }
    if p >= 1.0 {
        return x.affine(0.0, 0.0);
    }
    let op = Dropout::new(p, seed);
    if fused(x) {
        x.contiguous()?.apply_op1(op)
    } else {
        x.mul(&op.mask(x)?)
    }
}

/// `x` through the mask [`dropout_seeded`] draws, as plain data.
/// The same edge cases: `p ≤ 0` (or not a number; the backward's [`dropout_seeded`] refuses it)
/// keeps everything, `p ≥ 1` drops everything.
pub(super) fn masked(x: &[f32], p: f32, seed: u64) -> Vec<f32> {
    if p.is_nan() || p <= 0.0 {
        return x.to_vec();
    }
    let mut out = vec![0f32; x.len()];
    if p >= 1.0 {
        return out;
    }
    Dropout::new(p, seed).apply(&mut out, x);
    out
}

/// The mask of one seed: which elements are kept, by index. Also used inside
/// [`super::causal_attention`], which drops out rows of its weights as it forms them.
#[derive(Clone, Copy)]
pub(super) struct Dropout {
    /// An element is kept when its hash is at least this (p · 2³²).
    threshold: u32,
    scale: f32,
    keys: (u32, u32),
}

/// murmur3's 32-bit finaliser: every input bit moves every output bit.
#[inline(always)]
fn mix(mut h: u32) -> u32 {
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^ (h >> 16)
}

impl Dropout {
    /// For `0 < p < 1` (callers handle the rest).
    pub(super) fn new(p: f32, seed: u64) -> Self {
        Dropout {
            threshold: ((p as f64) * 4_294_967_296.0).min(u32::MAX as f64) as u32,
            scale: 1.0 / (1.0 - p),
            keys: (seed as u32, (seed >> 32) as u32),
        }
    }

    /// The factors of a tensor like `x` as a tensor: the plain composition, for other devices and
    /// to test the fused op against.
    fn mask(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let keep: Vec<f32> = (0..x.elem_count()).map(|i| self.factor(i)).collect();
        Tensor::from_vec(keep, x.shape(), x.device())?.to_dtype(x.dtype())
    }

    /// The factor element `i` is multiplied by: 1/(1−p) or 0.
    #[inline(always)]
    fn factor(&self, i: usize) -> f32 {
        let h = mix(
            mix((i as u32) ^ self.keys.0).wrapping_add(self.keys.1 ^ ((i as u64) >> 32) as u32)
        );
        if h >= self.threshold {
            self.scale
        } else {
            0.0
        }
    }

    /// `x[j] ·= factor(start + j)`: a stretch of the elements from index `start`, in place.
    pub(super) fn scale_in_place(&self, x: &mut [f32], start: usize) {
        simd_run(MaskInPlace(x, self, start))
    }

    /// `out[j] = x[j] · factor(start + j)`.
    fn apply(&self, out: &mut [f32], x: &[f32]) {
        const CHUNK: usize = 1 << 13;
        let run = |(c, (out, x)): (usize, (&mut [f32], &[f32]))| {
            let start = c * CHUNK;
            simd_run(ApplyMask(out, x, self, start))
        };
        if x.len() < SEQUENTIAL_BELOW {
            out.chunks_mut(CHUNK)
                .zip(x.chunks(CHUNK))
                .enumerate()
                .for_each(run);
        } else {
            out.par_chunks_mut(CHUNK)
                .zip(x.par_chunks(CHUNK))
                .enumerate()
                .for_each(run);
        }
    }
}

simd_kernel!(
    /// `out[j] = x[j] · factor(start + j)`.
    ApplyMask<'a>(out: &'a mut [f32], x: &'a [f32], mask: &'a Dropout, start: usize) -> () {
        for (j, (o, &x)) in out.iter_mut().zip(x).enumerate() {
            *o = x * mask.factor(start + j);
        }
    }
);

simd_kernel!(
    /// `x[j] ·= factor(start + j)`.
    MaskInPlace<'a>(x: &'a mut [f32], mask: &'a Dropout, start: usize) -> () {
        for (j, x) in x.iter_mut().enumerate() {
            *x *= mask.factor(start + j);
        }
    }
);

impl CustomOp1 for Dropout {
    fn name(&self) -> &'static str {
        "tunesmith-dropout"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = slice(s, l)?;
        let mut y = vec![0f32; x.len()];
        self.apply(&mut y, x);
        Ok((CpuStorage::F32(y), l.shape().clone()))
    }

    // The same mask, recomputed from the seed.
    fn bwd(&self, x: &Tensor, _y: &Tensor, g: &Tensor) -> candle_core::Result<Option<Tensor>> {
        let dx = with_data(g, |g| {
            let mut dx = vec![0f32; g.len()];
            self.apply(&mut dx, g);
            dx
        })?;
        Ok(Some(Tensor::from_vec(dx, x.shape(), x.device())?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    #[test]
    fn keeps_the_expected_share_scaled_and_the_gradient_follows_the_mask() {
        let n = 200_000;
        let x = Var::from_vec(vec![1f32; n], n, &Device::Cpu).unwrap();
        let y = dropout_seeded(x.as_tensor(), 0.1, 7).unwrap();
        let values: Vec<f32> = y.to_vec1().unwrap();
        let kept = values.iter().filter(|&&v| v > 0.0).count() as f64 / n as f64;
        assert!((kept - 0.9).abs() < 0.005, "kept {kept}");
        assert!(values
            .iter()
            .all(|&v| v == 0.0 || (v - 1.0 / 0.9).abs() < 1e-6));
        // d(Σ y·w)/dx = w · mask: zero exactly where the element was dropped.
        let w: Vec<f32> = (0..n).map(|i| (i % 7) as f32 + 1.0).collect();
        let wt = Tensor::from_vec(w.clone(), n, &Device::Cpu).unwrap();
        let grads = (&y * &wt).unwrap().sum_all().unwrap().backward().unwrap();
        let g: Vec<f32> = grads.get(&x).unwrap().to_vec1().unwrap();
        for i in 0..n {
            assert!((g[i] - w[i] * values[i]).abs() < 1e-5, "position {i}");
        }
        // Another seed, another mask; the same seed, the same mask.
        let other: Vec<f32> = dropout_seeded(x.as_tensor(), 0.1, 8)
            .unwrap()
            .to_vec1()
            .unwrap();
        assert_ne!(other, values);
        let again: Vec<f32> = dropout_seeded(x.as_tensor(), 0.1, 7)
            .unwrap()
            .to_vec1()
            .unwrap();
        assert_eq!(again, values);
    }

    #[test]
    fn matches_multiplying_by_its_mask_with_gradient() {
        // Below and above the size where the work goes to the thread pool.
        for (n, p, seed) in [(37, 0.3, 1), (3 * SEQUENTIAL_BELOW + 5, 0.1, 2)] {
            let x: Vec<f32> = (0..n).map(|i| (i % 13) as f32 - 6.0).collect();
            let w: Vec<f32> = (0..n).map(|i| (i % 5) as f32 + 0.5).collect();
            let w = Tensor::from_vec(w, n, &Device::Cpu).unwrap();
            let run = |fused: bool| {
                let v = Var::from_vec(x.clone(), n, &Device::Cpu).unwrap();
                let y = if fused {
                    dropout_seeded(v.as_tensor(), p, seed).unwrap()
                } else {
                    let mask = Dropout::new(p, seed).mask(v.as_tensor()).unwrap();
                    v.as_tensor().mul(&mask).unwrap()
                };
                let g = (&y * &w).unwrap().sum_all().unwrap().backward().unwrap();
                let dx: Vec<f32> = g.get(&v).unwrap().to_vec1().unwrap();
                (y.to_vec1::<f32>().unwrap(), dx)
            };
            assert_eq!(run(true), run(false), "n = {n}");
        }
        // The ends of the range.
        let x = Tensor::new(&[1f32, -2.0, 3.0], &Device::Cpu).unwrap();
        assert_eq!(
            dropout_seeded(&x, 0.0, 3)
                .unwrap()
                .to_vec1::<f32>()
                .unwrap(),
            [1.0, -2.0, 3.0]
        );
        assert_eq!(
            dropout_seeded(&x, 1.0, 3)
                .unwrap()
                .to_vec1::<f32>()
                .unwrap(),
            [0.0; 3]
        );
        assert!(dropout_seeded(&x, f32::NAN, 3).is_err());
        // LoRA's mask on plain data agrees at both ends.
        let data = [1f32, -2.0, 3.0];
        assert_eq!(masked(&data, 0.0, 3), data);
        assert_eq!(masked(&data, 1.0, 3), [0.0; 3]);
    }

    #[test]
    fn neighbouring_positions_are_independent() {
        // Adjacent elements dropped together as often as chance says (p² = 0.25 at p = ½).
        let op = Dropout::new(0.5, 42);
        let n = 100_000;
        let both = (0..n)
            .filter(|&i| op.factor(i) == 0.0 && op.factor(i + 1) == 0.0)
            .count() as f64
            / n as f64;
        assert!((both - 0.25).abs() < 0.01, "{both}");
    }
}
