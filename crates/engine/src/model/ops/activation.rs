//! Activations with fused CPU kernels: GPT-2's tanh GELU and Llama's SwiGLU (`silu(gate) · up`),
//! one pass forward and one pass backward each. candle's own backward for these composes about a
//! dozen full-size temporaries (`powf`, `tanh`, affine maps, products) per layer, and its scalar
//! `expf`/`tanhf`/`powf` calls were 8 % of a GPT-2 training step.
//!
//! [`exp`] is a branch-free polynomial exp the compiler turns into vector instructions, for these
//! kernels, the softmax and the cross-entropy.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Shape, Tensor};
use rayon::prelude::*;

use super::{fused, simd_run, slice, with_data, SEQUENTIAL_BELOW};

/// eˣ to within 2 ulp for x in [−87, 88]; 0 below (where eˣ < 1.7·10⁻³⁸), e⁸⁸ above; NaN stays
/// NaN. Cephes' `expf` reduction and polynomial, without branches or table lookups so that a loop
/// over a slice vectorises.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    // ln 2 split in two so that n·LN2_HI is exact.
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // Adding 1.5·2²³ rounds to an integer, which the low bits of the sum then hold.
    const ROUND: f32 = 12_582_912.0;
    const ROUND_BITS: i32 = 0x4B40_0000;
    let xc = x.clamp(-87.0, 88.0);
    let shifted = xc * LOG2E + ROUND;
    let n = shifted - ROUND;
    let r = xc - n * LN2_HI - n * LN2_LO;
    let mut p = 1.987_569_1e-4f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 0.5;
    let poly = p * r * r + r + 1.0;
    let two_n = f32::from_bits((((shifted.to_bits() as i32) - ROUND_BITS + 127) << 23) as u32);
    let y = poly * two_n;
    if x < -87.0 {
        0.0
    } else {
        y
    }
}

/// Σ of a slice in eight lanes (vectorises; a single running sum does not).
#[inline(always)]
pub fn sum(x: &[f32]) -> f32 {
    let mut lanes = [0f32; 8];
    let chunks = x.chunks_exact(8);
    let rest: f32 = chunks.remainder().iter().sum();
    for c in chunks {
        for (l, v) in lanes.iter_mut().zip(c) {
            *l += v;
        }
    }
    lanes.iter().sum::<f32>() + rest
}

/// The largest element, in eight lanes (−∞ for an empty slice; NaN if any element is NaN).
#[inline(always)]
pub fn max(x: &[f32]) -> f32 {
    let mut lanes = [f32::NEG_INFINITY; 8];
    let mut nan = false;
    let chunks = x.chunks_exact(8);
    let rest = chunks.remainder();
    for c in chunks {
        for (l, &v) in lanes.iter_mut().zip(c) {
            nan |= v.is_nan();
            *l = if v > *l { v } else { *l };
        }
    }
    let m = rest.iter().chain(&lanes).fold(f32::NEG_INFINITY, |m, &v| {
        nan |= v.is_nan();
        if v > m {
            v
        } else {
            m
        }
    });
    if nan {
        f32::NAN
    } else {
        m
    }
}

/// Σ exp(x − shift) over a slice, in eight lanes.
#[inline(always)]
pub fn sum_exp(x: &[f32], shift: f32) -> f32 {
    let mut lanes = [0f32; 8];
    let chunks = x.chunks_exact(8);
    let rest: f32 = chunks.remainder().iter().map(|&v| exp(v - shift)).sum();
    for c in chunks {
        for (l, &v) in lanes.iter_mut().zip(c) {
            *l += exp(v - shift);
        }
    }
    lanes.iter().sum::<f32>() + rest
}

const SQRT_2_OVER_PI: f32 = 0.797_884_6;
const GELU_C: f32 = 0.044_715;

/// ½(1 + tanh u) = σ(2u) = 1/(1 + e⁻²ᵘ): no cancellation where tanh u is near −1.
#[inline(always)]
fn half_one_plus_tanh(u: f32) -> f32 {
    1.0 / (1.0 + exp(-2.0 * u))
}

/// GELU with the tanh approximation (GPT-2's `gelu_new`), differentiable.
pub fn gelu_tanh(x: &Tensor) -> candle_core::Result<Tensor> {
    if fused(x) {
        x.contiguous()?.apply_op1(GeluTanh)
    } else {
        x.gelu()
    }
}

/// `silu(gate) · up`, Llama's gated MLP activation, differentiable in both.
pub fn swiglu(gate: &Tensor, up: &Tensor) -> candle_core::Result<Tensor> {
    if fused(gate) && fused(up) && gate.shape() == up.shape() {
        gate.contiguous()?.apply_op2(&up.contiguous()?, SwiGlu)
    } else {
        gate.silu()? * up
    }
}

/// Maps `f` over `x` into a new vector, on the thread pool when it is large.
#[inline(always)]
fn gelu_forward(x: &[f32]) -> Vec<f32> {
    let mut y = vec![0f32; x.len()];
    let run = |(y, x): (&mut [f32], &[f32])| simd_run(GeluForward(y, x));
    if x.len() < SEQUENTIAL_BELOW {
        run((&mut y, x));
    } else {
        y.par_chunks_mut(CHUNK)
            .zip(x.par_chunks(CHUNK))
            .for_each(run);
    }
    y
}

simd_kernel!(
    GeluForward<'a>(y: &'a mut [f32], x: &'a [f32]) -> () {
        for (y, &x) in y.iter_mut().zip(x) {
            *y = x * half_one_plus_tanh(SQRT_2_OVER_PI * (x + GELU_C * x * x * x));
        }
    }
);

simd_kernel!(
    // With s = ½(1 + tanh u) = σ(2u), u = k(x + c·x³): y = x·s and
    // d/dx = s + x·2s(1 − s)·k(1 + 3c·x²)  (since ½(1 − tanh²u) = 2s(1 − s)).
    GeluBackward<'a>(dx: &'a mut [f32], x: &'a [f32], g: &'a [f32]) -> () {
        for ((dx, &x), &g) in dx.iter_mut().zip(x).zip(g) {
            let s = half_one_plus_tanh(SQRT_2_OVER_PI * (x + GELU_C * x * x * x));
            let du = SQRT_2_OVER_PI * (1.0 + 3.0 * GELU_C * x * x);
            *dx = g * (s + x * 2.0 * s * (1.0 - s) * du);
        }
    }
);

simd_kernel!(
    SwiGluForward<'a>(y: &'a mut [f32], gate: &'a [f32], up: &'a [f32]) -> () {
        for ((y, &g), &u) in y.iter_mut().zip(gate).zip(up) {
            *y = g * sigmoid(g) * u;
        }
    }
);

simd_kernel!(
    // s = σ(gate): d/dgate = g·up·s(1 + gate(1 − s)), d/dup = g·gate·s.
    SwiGluBackward<'a>(
        dg: &'a mut [f32],
        du: &'a mut [f32],
        gate: &'a [f32],
        up: &'a [f32],
        g: &'a [f32],
    ) -> () {
        for i in 0..dg.len() {
            let (x, u, gr) = (gate[i], up[i], g[i]);
            let s = sigmoid(x);
            dg[i] = gr * u * s * (1.0 + x * (1.0 - s));
            du[i] = gr * x * s;
        }
    }
);

/// Elements per parallel task (a few L1 caches' worth).
const CHUNK: usize = 1 << 13;

struct GeluTanh;

impl CustomOp1 for GeluTanh {
    fn name(&self) -> &'static str {
        "tunesmith-gelu-tanh"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let y = gelu_forward(slice(s, l)?);
        Ok((CpuStorage::F32(y), l.shape().clone()))
    }

    // With s = ½(1 + tanh u) = σ(2u), u = k(x + c·x³): y = x·s and
    // d/dx = s + x·2s(1 − s)·k(1 + 3c·x²)  (since ½(1 − tanh²u) = 2s(1 − s)).
    fn bwd(&self, x: &Tensor, _y: &Tensor, g: &Tensor) -> candle_core::Result<Option<Tensor>> {
        let dx = with_data(x, |x| {
            with_data(g, |g| {
                let mut dx = vec![0f32; x.len()];
                let run =
                    |((dx, x), g): ((&mut [f32], &[f32]), &[f32])| simd_run(GeluBackward(dx, x, g));
                if x.len() < SEQUENTIAL_BELOW {
                    run(((&mut dx, x), g));
                } else {
                    dx.par_chunks_mut(CHUNK)
                        .zip(x.par_chunks(CHUNK))
                        .zip(g.par_chunks(CHUNK))
                        .for_each(run);
                }
                dx
            })
        })??;
        Ok(Some(Tensor::from_vec(dx, x.shape(), x.device())?))
    }
}

struct SwiGlu;

#[inline(always)]
fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + exp(-x))
}

impl CustomOp2 for SwiGlu {
    fn name(&self) -> &'static str {
        "tunesmith-swiglu"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (gate, up) = (slice(s1, l1)?, slice(s2, l2)?);
        let mut y = vec![0f32; gate.len()];
        let run =
            |((y, gate), up): ((&mut [f32], &[f32]), &[f32])| simd_run(SwiGluForward(y, gate, up));
        if gate.len() < SEQUENTIAL_BELOW {
            run(((&mut y, gate), up));
        } else {
            y.par_chunks_mut(CHUNK)
                .zip(gate.par_chunks(CHUNK))
                .zip(up.par_chunks(CHUNK))
                .for_each(run);
        }
        Ok((CpuStorage::F32(y), l1.shape().clone()))
    }

    // s = σ(gate): d/dgate = g·up·s(1 + gate(1 − s)), d/dup = g·gate·s.
    fn bwd(
        &self,
        gate: &Tensor,
        up: &Tensor,
        _y: &Tensor,
        g: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let (dgate, dup) = with_data(gate, |gate| {
            with_data(up, |up| {
                with_data(g, |g| {
                    let mut dgate = vec![0f32; gate.len()];
                    let mut dup = vec![0f32; gate.len()];
                    type Args<'a> = (
                        ((&'a mut [f32], &'a mut [f32]), &'a [f32]),
                        (&'a [f32], &'a [f32]),
                    );
                    let run = |(((dg, du), gate), (up, g)): Args| {
                        simd_run(SwiGluBackward(dg, du, gate, up, g))
                    };
                    if gate.len() < SEQUENTIAL_BELOW {
                        run((((&mut dgate, &mut dup), gate), (up, g)));
                    } else {
                        dgate
                            .par_chunks_mut(CHUNK)
                            .zip(dup.par_chunks_mut(CHUNK))
                            .zip(gate.par_chunks(CHUNK))
                            .zip(up.par_chunks(CHUNK).zip(g.par_chunks(CHUNK)))
                            .for_each(run);
                    }
                    (dgate, dup)
                })
            })
        })???;
        let (shape, dev) = (gate.shape(), gate.device());
        Ok((
            Some(Tensor::from_vec(dgate, shape, dev)?),
            Some(Tensor::from_vec(dup, shape, dev)?),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_is_within_two_ulp_of_std_and_saturates() {
        let mut worst = 0f32;
        let mut x = -87.0f32;
        while x < 88.0 {
            let (got, want) = (exp(x), x.exp());
            worst = worst.max((got - want).abs() / want);
            x += 0.001_3;
        }
        assert!(worst < 2.5e-7, "relative error {worst}");
        assert_eq!(exp(0.0), 1.0);
        assert_eq!(exp(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp(-1000.0), 0.0);
        assert!(exp(f32::INFINITY).is_finite() && exp(100.0) > 1e38);
        assert!(exp(f32::NAN).is_nan());
    }

    #[test]
    fn lane_reductions_match_plain_ones() {
        let x: Vec<f32> = (0..1003)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) / 7.0)
            .collect();
        let plain: f32 = x.iter().sum();
        assert!((sum(&x) - plain).abs() < 1e-3);
        assert_eq!(max(&x), x.iter().copied().fold(f32::NEG_INFINITY, f32::max));
        assert_eq!(
            max(&x[..3]),
            x[..3].iter().copied().fold(f32::NEG_INFINITY, f32::max)
        );
        assert_eq!(max(&[]), f32::NEG_INFINITY);
        let mut with_nan = x.clone();
        with_nan[500] = f32::NAN;
        assert!(max(&with_nan).is_nan());
        let se: f32 = x.iter().map(|v| (v - 3.0).exp()).sum();
        assert!((sum_exp(&x, 3.0) - se).abs() / se < 1e-5);
    }
}
