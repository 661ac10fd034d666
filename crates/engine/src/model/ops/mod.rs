//! Differentiable building blocks with fused CPU kernels.
//!
//! candle's own fused `softmax_last_dim`, `layer_norm`, `rms_norm` and `rope` record no backward, so a model
//! built on them trains only its head (candle issues #2168, #3011). Each op here has a fused,
//! multi-threaded CPU forward *and* a hand-written backward (candle `CustomOp`); on other devices it
//! falls back to a composition of differentiable candle ops with the same maths.

use candle_core::{bail, CpuStorage, DType, Device, Layout, Shape, Storage, Tensor};

/// Target id that contributes nothing to the loss (masked prompt tokens, padding).
pub const IGNORE_INDEX: u32 = u32::MAX;

/// Below this many elements, waking the thread pool costs more than the work.
pub(super) const SEQUENTIAL_BELOW: usize = 1 << 15;

/// Defines a kernel for [`simd_run`], which runs it with the CPU's wider vector instructions
/// (AVX2 with FMA, or AVX-512, where the CPU has them; checked at run time) although the build
/// targets baseline x86-64 (SSE2). `simd_kernel!(Name<'a>(x: &'a [f32], …) -> R { body })` makes
/// `struct Name<'a>(…)` implementing `pulp::WithSimd` with the body `#[inline(always)]`, so the body
/// and the `#[inline(always)]` helpers it calls are compiled inside each of pulp's target-feature
/// variants. A closure handed to `pulp::Arch::dispatch` is not enough: pulp calls it from three
/// places (AVX-512, AVX2, baseline), so LLVM compiled the larger ones once, out of line, for the
/// baseline, and they ran on 128-bit SSE2 registers (seen in the disassembly of the decode
/// matrix-vector products, the cross-entropy backward, AdamW, layer norm and softmax). Run a
/// kernel inside each parallel task: the features do not cross into other threads.
macro_rules! simd_kernel {
    ($(#[$m:meta])* $name:ident<'a>($($arg:ident: $ty:ty),* $(,)?) -> $out:ty $body:block) => {
        $(#[$m])*
        struct $name<'a>($($ty),*);

        impl pulp::WithSimd for $name<'_> {
            type Output = $out;
            #[inline(always)]
            fn with_simd<S: pulp::Simd>(self, _: S) -> $out {
                let $name($($arg),*) = self;
                $body
            }
        }
    };
}
pub(crate) use simd_kernel;

/// Runs a [`simd_kernel!`] with the widest vector instructions this CPU has.
#[inline(always)]
pub(crate) fn simd_run<K: pulp::WithSimd>(kernel: K) -> K::Output {
    pulp::Arch::new().dispatch(kernel)
}

pub(super) fn fused(t: &Tensor) -> bool {
    matches!(t.device(), Device::Cpu) && t.dtype() == DType::F32
}

/// Borrows the f32 data of a CPU tensor as one contiguous slice.
pub(super) fn slice<'a>(s: &'a CpuStorage, l: &Layout) -> candle_core::Result<&'a [f32]> {
    let data = s.as_slice::<f32>()?;
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&data[a..b]),
        None => bail!("fused op expects a contiguous tensor"),
    }
}

/// Σ a·b in eight lanes, so that the compiler vectorises it (inside a [`simd_kernel!`]).
#[inline(always)]
pub(super) fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let rest: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(a, b)| a * b)
        .sum();
    for (a, b) in ca.zip(cb) {
        for i in 0..8 {
            lanes[i] += a[i] * b[i];
        }
    }
    lanes.iter().sum::<f32>() + rest
}

/// Runs `f` over the contiguous f32 data of a CPU tensor.
pub(super) fn with_data<R>(t: &Tensor, f: impl FnOnce(&[f32]) -> R) -> candle_core::Result<R> {
    let t = t.contiguous()?;
    let (storage, layout) = t.storage_and_layout();
    match &*storage {
        Storage::Cpu(s) => Ok(f(slice(s, layout)?)),
        _ => bail!("expected a CPU tensor"),
    }
}

/// tunesmith-gemm's refusal (a shape or view that does not fit) as a candle error.
pub(super) fn shape_err(e: tunesmith_gemm::ShapeError) -> candle_core::Error {
    candle_core::Error::Msg(e.to_string())
}

pub(super) fn last_dim(shape: &Shape) -> candle_core::Result<usize> {
    match shape.dims().last() {
        Some(&d) if d > 0 => Ok(d),
        _ => bail!("fused op needs a non-empty last dimension"),
    }
}

pub(crate) mod activation;
mod attention;
mod cross_entropy;
mod decode;
mod decode_attention;
mod dequantize;
mod dropout;
pub(crate) mod head_loss;
mod layer_norm;
mod linear;
pub(crate) mod lora_linear;
mod quant_matvec;
mod rms_norm;
mod rope;
mod softmax;

pub use activation::{gelu_tanh, swiglu};
pub use attention::{
    attention_of_heads, causal_attention, causal_attention_packed, AttentionDropout, Heads,
};
pub use cross_entropy::cross_entropy;
pub use decode::{matvec_rows, matvec_rows_many, sum_streamed, vecmat};
pub use decode_attention::decode_attention;
pub use dequantize::dequantize_parallel;
pub use dropout::dropout_seeded;
pub use head_loss::{head_cross_entropy, HeadScratch};
pub use layer_norm::layer_norm;
pub use linear::{linear, linear_bias};
pub use lora_linear::{lora_linear, FrozenBase};
pub use quant_matvec::{
    has_vector_quantized_kernels, quantized_kernels_read, quantized_matvec_many,
};
pub use rms_norm::rms_norm;
pub use rope::{rope, rope_rows};
pub use softmax::{causal_softmax, softmax_last_dim};

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use candle_core::{Var, D};

    pub(super) fn rand(shape: &[usize], seed: u64) -> Tensor {
        let mut r = crate::rng::Rng::new(seed);
        let n: usize = shape.iter().product();
        Tensor::from_vec(
            (0..n).map(|_| r.normal()).collect::<Vec<f32>>(),
            shape,
            &Device::Cpu,
        )
        .unwrap()
    }

    pub(crate) fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
        max_abs(&(a - b).unwrap())
    }

    /// The largest |element| of `t`.
    pub(crate) fn max_abs(t: &Tensor) -> f32 {
        t.abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar()
            .unwrap()
    }

    /// Gradients of `loss(op(x))` for the fused op and the reference composition agree.
    pub(super) fn check_grads(
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
    fn linear_matches_matmul_with_the_gradients_asked_for() {
        let (x, w) = (rand(&[7, 5], 20), rand(&[3, 5], 21));
        let w_in_out = w.t().unwrap().contiguous().unwrap();
        // Frozen weight: x's gradient only.
        check_grads(
            std::slice::from_ref(&x),
            |t| linear(&t[0], &w, true).unwrap(),
            |t| t[0].matmul(&w.t().unwrap()).unwrap(),
        );
        check_grads(
            std::slice::from_ref(&x),
            |t| linear(&t[0], &w_in_out, false).unwrap(),
            |t| t[0].matmul(&w_in_out).unwrap(),
        );
        // Trained weight, in either layout: both gradients, as candle's matmul gives them.
        check_grads(
            &[x.clone(), w.clone()],
            |t| linear(&t[0], &t[1], true).unwrap(),
            |t| t[0].matmul(&t[1].t().unwrap()).unwrap(),
        );
        check_grads(
            &[x.clone(), w_in_out.clone()],
            |t| linear(&t[0], &t[1], false).unwrap(),
            |t| t[0].matmul(&t[1]).unwrap(),
        );
        // Only x's gradient is kept for a frozen weight; candle's matmul also keeps one for it.
        let v = Var::from_tensor(&x).unwrap();
        let kept = |y: Tensor| y.sum_all().unwrap().backward().unwrap().get_ids().count();
        assert_eq!(kept(linear(v.as_tensor(), &w, true).unwrap()), 1);
        assert!(kept(v.as_tensor().matmul(&w.t().unwrap()).unwrap()) > 1);
        // A trained weight under a constant input: the weight's gradient alone, in its layout.
        let wv = Var::from_tensor(&w).unwrap();
        let g = linear(&x, wv.as_tensor(), true)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        assert_eq!(g.get(&wv).unwrap().dims(), &[3, 5]);
        assert!(g.get(&x).is_none());
        // With both trained, the gradients are plain data: a gradient that recorded its product
        // would keep the forward tensors it came from (and candle's zeros it was summed into).
        let g = linear(v.as_tensor(), wv.as_tensor(), true)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        assert!(!g.get(&wv).unwrap().track_op());
        assert!(!g.get(&v).unwrap().track_op());
    }

    #[test]
    fn linear_bias_matches_matmul_plus_bias_with_gradient() {
        // Small, and large enough for the thread pool.
        for (n, k, out, seed) in [(5, 7, 3, 70), (300, 64, 130, 71)] {
            check_grads(
                &[
                    rand(&[n, k], seed),
                    rand(&[k, out], seed + 1),
                    rand(&[out], seed + 2),
                ],
                |t| linear_bias(&t[0], &t[1], &t[2]).unwrap(),
                |t| t[0].matmul(&t[1]).unwrap().broadcast_add(&t[2]).unwrap(),
            );
        }
        // A frozen weight and bias: only x gets a gradient.
        let (w, b) = (rand(&[4, 6], 73), rand(&[6], 74));
        let v = Var::from_tensor(&rand(&[3, 4], 75)).unwrap();
        let grads = linear_bias(v.as_tensor(), &w, &b)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        assert_eq!(grads.get_ids().count(), 1);
        // Input without a gradient (a first layer's features): W and b get theirs, as the
        // composition gives them.
        let x = rand(&[3, 4], 76);
        let (w, b) = (
            Var::from_tensor(&rand(&[4, 6], 77)).unwrap(),
            Var::from_tensor(&rand(&[6], 78)).unwrap(),
        );
        let grads_of = |y: Tensor| y.sqr().unwrap().sum_all().unwrap().backward().unwrap();
        let fused = grads_of(linear_bias(&x, w.as_tensor(), b.as_tensor()).unwrap());
        let plain = grads_of(
            x.matmul(w.as_tensor())
                .unwrap()
                .broadcast_add(b.as_tensor())
                .unwrap(),
        );
        assert_eq!(fused.get_ids().count(), 2);
        for v in [&w, &b] {
            let (f, p) = (fused.get(v).unwrap(), plain.get(v).unwrap());
            let diff = (f - p).unwrap().abs().unwrap().flatten_all().unwrap();
            assert!(diff.max(0).unwrap().to_scalar::<f32>().unwrap() < 1e-4);
        }
    }

    #[test]
    fn causal_attention_matches_the_composition_with_gradient() {
        // 70 positions cross a block of queries, 130 make three (the last of two rows); grouped
        // heads (4 over 2, nine over three as SmolLM2's) and plain ones (3 over 3); with and
        // without dropout of the weights (the composition drops them out with `dropout_seeded`).
        for (b, t, h, kv, d) in [
            (2, 70, 4, 2, 8),
            (1, 5, 3, 3, 4),
            (2, 1, 2, 1, 6),
            (1, 130, 9, 3, 4),
        ] {
            let heads = Heads {
                batch: b,
                time: t,
                q_heads: h,
                kv_heads: kv,
                dim: d,
            };
            let inputs = [
                rand(&[b * t, h * d], 40),
                rand(&[b * t, kv * d], 41),
                rand(&[b * t, kv * d], 42),
            ];
            let scale = 1.0 / (d as f32).sqrt();
            for drop in [None, Some((0.3, 7))] {
                check_grads(
                    &inputs,
                    |x| causal_attention(&x[0], &x[1], &x[2], heads, scale, drop).unwrap(),
                    |x| attention::composed(&x[0], &x[1], &x[2], heads, scale, drop).unwrap(),
                );
            }
            // Every weight dropped: nothing comes through.
            let [q, k, v] = &inputs;
            let none = causal_attention(q, k, v, heads, scale, Some((1.0, 7))).unwrap();
            assert_eq!(max_abs(&none), 0.0);
        }
        // Shapes that do not fit are refused with what was expected.
        let heads = Heads {
            batch: 1,
            time: 4,
            q_heads: 3,
            kv_heads: 2,
            dim: 2,
        };
        let x = rand(&[4, 6], 1);
        let err = causal_attention(&x, &rand(&[4, 4], 2), &rand(&[4, 4], 3), heads, 1.0, None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("3 query heads cannot share 2"), "{err}");
    }

    #[test]
    fn packed_attention_reads_q_k_v_side_by_side_with_gradient() {
        let (b, t, h, d) = (2, 70, 3, 4);
        let heads = Heads {
            batch: b,
            time: t,
            q_heads: h,
            kv_heads: h,
            dim: d,
        };
        let c = h * d;
        for drop in [None, Some((0.1, 11))] {
            check_grads(
                &[rand(&[b * t, 3 * c], 60)],
                |x| causal_attention_packed(&x[0], heads, 0.37, drop).unwrap(),
                |x| {
                    let part = |i: usize| x[0].narrow(1, i * c, c).unwrap().contiguous().unwrap();
                    attention::composed(&part(0), &part(1), &part(2), heads, 0.37, drop).unwrap()
                },
            );
            // The path other devices and dtypes take (q, k and v narrowed out, then the
            // composition), here through f64: the same values, and the same mask, and the
            // gradient comes back in the packed layout.
            check_grads(
                &[rand(&[b * t, 3 * c], 61)],
                |x| causal_attention_packed(&x[0], heads, 0.37, drop).unwrap(),
                |x| {
                    let wide = x[0].to_dtype(DType::F64).unwrap();
                    let y = causal_attention_packed(&wide, heads, 0.37, drop).unwrap();
                    assert_eq!(y.dtype(), DType::F64);
                    y.to_dtype(DType::F32).unwrap()
                },
            );
        }
        let err = causal_attention_packed(&rand(&[b * t, 2 * c], 1), heads, 1.0, None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("side by side"), "{err}");
    }

    #[test]
    fn rope_rows_matches_rope_on_split_heads_with_gradient() {
        let (b, t, n, d) = (2, 5, 3, 8);
        let (cos, sin) = (rand(&[t, d / 2], 50), rand(&[t, d / 2], 51));
        check_grads(
            &[rand(&[b * t, n * d], 52)],
            |x| rope_rows(&x[0], &cos, &sin, n).unwrap(),
            |x| {
                let split = x[0].reshape((b, t, n, d)).unwrap().transpose(1, 2).unwrap();
                let split = split.contiguous().unwrap();
                rope(&split, &cos, &sin)
                    .unwrap()
                    .transpose(1, 2)
                    .unwrap()
                    .reshape((b * t, n * d))
                    .unwrap()
            },
        );
        let err = rope_rows(&rand(&[7, n * d], 1), &cos, &sin, n).unwrap_err();
        assert!(err.to_string().contains("T dividing"), "{err}");
    }

    #[test]
    fn causal_softmax_matches_mask_plus_softmax_with_gradient() {
        // 3 queries at the end of 5 positions, and a square block; (B, H, T, Tk).
        for (t, tk) in [(3, 5), (4, 4)] {
            check_grads(
                &[rand(&[2, 3, t, tk], 30)],
                |x| causal_softmax(&x[0]).unwrap(),
                |x| {
                    let mask = crate::model::layers::causal_mask(t, tk, &Device::Cpu).unwrap();
                    candle_nn::ops::softmax(&x[0].broadcast_add(&mask).unwrap(), D::Minus1).unwrap()
                },
            );
        }
    }

    #[test]
    fn lora_linear_matches_its_composition_with_gradient() {
        let (n, k, out, r) = (6, 10, 7, 3);
        let (x, a, b) = (rand(&[n, k], 40), rand(&[r, k], 41), rand(&[out, r], 42));
        let bias = rand(&[out], 43);
        let (p, seed) = (0.3f32, 44u64);
        let ones = Tensor::ones((n, k), DType::F32, &Device::Cpu).unwrap();
        let mask = dropout_seeded(&ones, p, seed).unwrap();
        let keep: Vec<f32> = mask.flatten_all().unwrap().to_vec1().unwrap();
        assert!(keep.contains(&0.0) && keep.iter().any(|&m| m > 0.0));
        for (transposed, with_bias, dropout) in [
            (true, true, true),
            (false, true, false),
            (true, false, true),
        ] {
            let w = if transposed {
                rand(&[out, k], 45)
            } else {
                rand(&[k, out], 45)
            };
            let base = FrozenBase {
                w: &w,
                transposed,
                bias: with_bias.then_some(&bias),
            };
            let m = dropout.then_some((seed, p));
            check_grads(
                &[x.clone(), a.clone(), b.clone()],
                |t| {
                    lora_linear(&t[0], &base, &t[1], &t[2], 2.5, m)
                        .unwrap()
                        .unwrap()
                },
                |t| {
                    let y = if transposed {
                        t[0].matmul(&w.t().unwrap())
                    } else {
                        t[0].matmul(&w)
                    }
                    .unwrap();
                    let y = if with_bias {
                        y.broadcast_add(&bias).unwrap()
                    } else {
                        y
                    };
                    let u = if dropout {
                        (&t[0] * &mask).unwrap()
                    } else {
                        t[0].clone()
                    };
                    let h = (u.matmul(&t[1].t().unwrap()).unwrap() * 2.5).unwrap();
                    (y + h.matmul(&t[2].t().unwrap()).unwrap()).unwrap()
                },
            );
        }
        // A bias of the wrong length is an error, not a read past it.
        let (w, short) = (rand(&[out, k], 45), rand(&[out - 1], 46));
        let base = FrozenBase {
            w: &w,
            transposed: true,
            bias: Some(&short),
        };
        let err = lora_linear(&x, &base, &a, &b, 2.5, None).unwrap_err();
        assert!(err.to_string().contains("6 entries for 7 outputs"), "{err}");
    }

    #[test]
    fn gelu_tanh_matches_candles_gelu_with_gradient() {
        // Wide enough for the parallel path; spread over where tanh saturates.
        let x = (rand(&[3, 40_000], 50) * 3.0).unwrap();
        check_grads(
            &[x],
            |t| gelu_tanh(&t[0]).unwrap(),
            |t| t[0].gelu().unwrap(),
        );
        check_grads(
            &[rand(&[5, 7], 51)],
            |t| gelu_tanh(&t[0]).unwrap(),
            |t| t[0].gelu().unwrap(),
        );
    }

    #[test]
    fn swiglu_matches_silu_times_up_with_gradient() {
        for (shape, seed) in [(vec![4, 9], 52), (vec![2, 50_000], 53)] {
            let gate = (rand(&shape, seed) * 4.0).unwrap();
            check_grads(
                &[gate, rand(&shape, seed + 10)],
                |t| swiglu(&t[0], &t[1]).unwrap(),
                |t| (t[0].silu().unwrap() * &t[1]).unwrap(),
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
    fn rms_norm_matches_reference_with_gradient() {
        let (x, w) = (rand(&[4, 6, 24], 12), rand(&[24], 13));
        let reference = |t: &[Tensor]| {
            let ms = t[0].sqr().unwrap().mean_keepdim(D::Minus1).unwrap();
            let r = (ms + 1e-6).unwrap().sqrt().unwrap();
            t[0].broadcast_div(&r)
                .unwrap()
                .broadcast_mul(&t[1])
                .unwrap()
        };
        check_grads(
            &[x, w],
            |t| rms_norm(&t[0], &t[1], 1e-6).unwrap(),
            reference,
        );
    }

    #[test]
    fn rope_matches_reference_with_gradient() {
        // (B, H, T, D) with tables for T positions; angles as the model makes them.
        let (b, h, t, d) = (2, 3, 5, 8);
        let angles: Vec<f32> = (0..t)
            .flat_map(|p| (0..d / 2).map(move |i| p as f32 * 10f32.powf(-(i as f32) / 2.0)))
            .collect();
        let cos = Tensor::from_vec(
            angles.iter().map(|a| a.cos()).collect(),
            (t, d / 2),
            &Device::Cpu,
        )
        .unwrap();
        let sin = Tensor::from_vec(
            angles.iter().map(|a| a.sin()).collect(),
            (t, d / 2),
            &Device::Cpu,
        )
        .unwrap();
        // transformers' form: x·cos + rotate_half(x)·sin over the full width.
        let reference = |t: &[Tensor]| {
            let half = d / 2;
            let x1 = t[0].narrow(D::Minus1, 0, half).unwrap();
            let x2 = t[0].narrow(D::Minus1, half, half).unwrap();
            let rot = Tensor::cat(&[&x2.neg().unwrap(), &x1], D::Minus1).unwrap();
            let c = Tensor::cat(&[&cos, &cos], D::Minus1).unwrap();
            let s = Tensor::cat(&[&sin, &sin], D::Minus1).unwrap();
            (t[0].broadcast_mul(&c).unwrap() + rot.broadcast_mul(&s).unwrap()).unwrap()
        };
        check_grads(
            &[rand(&[b, h, t, d], 14)],
            |t| rope(&t[0], &cos, &sin).unwrap(),
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
        // One band, and several on the thread pool with a short last band (301 rows: four of
        // 64, then 45).
        for (k, seed) in [(45, 8), (301, 10)] {
            let (x, w) = (rand(&[1, k], seed), rand(&[k, 700], seed + 1));
            assert!(max_diff(&vecmat(&x, &w).unwrap(), &x.matmul(&w).unwrap()) < 1e-4);
        }
        // Zero-width weights fall back to the matmul instead of panicking.
        let empty = Tensor::zeros((45, 0), DType::F32, &Device::Cpu).unwrap();
        assert_eq!(vecmat(&rand(&[1, 45], 8), &empty).unwrap().dims(), [1, 0]);
        let bias = Tensor::zeros(0, DType::F32, &Device::Cpu).unwrap();
        let y = linear_bias(&rand(&[3, 45], 8), &empty, &bias).unwrap();
        assert_eq!(y.dims(), [3, 0]);
    }

    #[test]
    fn cross_entropy_backward_twice_gives_the_same_gradient() {
        // The second backward pass cannot reuse the forward's stored log Σ exp (it was taken).
        let targets = [2u32, IGNORE_INDEX, 0];
        let v = Var::from_tensor(&rand(&[3, 7], 60)).unwrap();
        let loss = cross_entropy(v.as_tensor(), &targets).unwrap();
        let first = loss.backward().unwrap().get(&v).unwrap().clone();
        let second = loss.backward().unwrap().get(&v).unwrap().clone();
        assert!(max_diff(&first, &second) < 1e-7);
        // The masked row gets no gradient.
        let row: Vec<f32> = first.get(1).unwrap().to_vec1().unwrap();
        assert!(row.iter().all(|&g| g == 0.0));
    }

    #[test]
    fn head_cross_entropy_matches_matmul_then_cross_entropy_with_gradients() {
        let (n, c, v) = (23, 6, 40);
        let (h, w) = (rand(&[n, c], 80), rand(&[v, c], 81));
        let all: Vec<u32> = (0..n as u32).map(|i| (i * 7) % v as u32).collect();
        let mut masked = all.clone();
        for i in [0, 1, 2, 9, 22] {
            masked[i] = IGNORE_INDEX;
        }
        // One chunk, and chunks of 5 rows with a ragged last one (4·v·5 bytes).
        for targets in [&all, &masked] {
            for chunk in [usize::MAX / 2, 4 * v * 5] {
                check_grads(
                    &[h.clone(), w.clone()],
                    |t| {
                        head_loss::head_cross_entropy_chunked(
                            &t[0],
                            &t[1],
                            targets,
                            true,
                            &HeadScratch::default(),
                            chunk,
                        )
                        .unwrap()
                    },
                    |t| cross_entropy(&t[0].matmul(&t[1].t().unwrap()).unwrap(), targets).unwrap(),
                );
            }
        }
    }

    #[test]
    fn head_cross_entropy_scales_by_the_upstream_gradient_and_skips_untracked_or_eval_gradients() {
        let (h, w) = (rand(&[9, 4], 82), rand(&[11, 4], 83));
        let targets: Vec<u32> = vec![3, IGNORE_INDEX, 0, 10, 5, 5, 1, IGNORE_INDEX, 2];
        let (hv, wv) = (Var::from_tensor(&h).unwrap(), Var::from_tensor(&w).unwrap());
        // One buffer for every call below, left holding a larger call's logits: the calls must
        // not depend on what it holds.
        let scratch = HeadScratch::default();
        let big = rand(&[30, 4], 84);
        head_cross_entropy(&h, &big, &[29; 9], false, &scratch).unwrap();
        let grads_of = |loss: Tensor| {
            let g = loss.backward().unwrap();
            (g.get(&hv).cloned(), g.get(&wv).cloned())
        };
        let plain = |t: &Tensor| cross_entropy(&t.matmul(&wv.t().unwrap()).unwrap(), &targets);
        let (want_h, want_w) = grads_of((plain(hv.as_tensor()).unwrap() * 0.3).unwrap());
        let (want_h, want_w) = (want_h.unwrap(), want_w.unwrap());
        let fused =
            head_cross_entropy(hv.as_tensor(), wv.as_tensor(), &targets, true, &scratch).unwrap();
        let (got_h, got_w) = grads_of((fused.clone() * 0.3).unwrap());
        assert!(max_diff(&got_h.unwrap(), &want_h) < 1e-6);
        assert!(max_diff(&got_w.unwrap(), &want_w) < 1e-6);
        // A second backward through the same op recomputes the same gradients.
        let (again_h, _) = grads_of((fused * 0.3).unwrap());
        assert!(max_diff(&again_h.unwrap(), &want_h) < 1e-6);
        // Only the head tracked (hidden states from a frozen network): its gradient alone.
        let head_only = head_cross_entropy(&h, wv.as_tensor(), &targets, true, &scratch).unwrap();
        let g = (head_only * 0.3).unwrap().backward().unwrap();
        assert!(max_diff(g.get(&wv).unwrap(), &want_w) < 1e-6);
        assert_eq!(g.get_ids().count(), 1);
        // A frozen head gets no gradient; the hidden states still do.
        let frozen = head_cross_entropy(hv.as_tensor(), &w, &targets, true, &scratch).unwrap();
        let g = frozen.backward().unwrap();
        assert!(g.get(&hv).is_some());
        assert_eq!(g.get_ids().count(), 1);
        // Evaluation: the same value, no gradient formed.
        let eval =
            head_cross_entropy(hv.as_tensor(), wv.as_tensor(), &targets, false, &scratch).unwrap();
        let want: f32 = plain(&h).unwrap().to_scalar().unwrap();
        assert!((eval.to_scalar::<f32>().unwrap() - want).abs() < 1e-6);
        let (none_h, none_w) = grads_of(eval);
        assert!(none_h.is_none() && none_w.is_none());
        // The same checks on targets as the plain cross-entropy.
        let every_masked = vec![IGNORE_INDEX; 9];
        assert!(head_cross_entropy(&h, &w, &every_masked, true, &scratch).is_err());
        assert!(head_cross_entropy(&h, &w, &[11; 9], true, &scratch).is_err());
        assert!(head_cross_entropy(&h, &w, &[1; 8], true, &scratch).is_err());
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
