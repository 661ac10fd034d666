//! Decoding through GGUF's 8- and 4-bit blocks (Q8_0, Q4_0, Q4_1): one position times the
//! blocks, multiplied in integers, with AVX2.
//!
//! A decode step reads every weight once, so its speed is the rate at which the blocks stream
//! through the cores. candle's quantised product rounds the activations to 8 bits and multiplies
//! in integers too, but one weight at a time, one row per pass, converting each block's f16 scale
//! out of line, on its own thread pool, whose threads spin next to rayon's; and its Q4_1 kernel
//! is scalar (a Q4_1 file was re-quantised to Q8_0 as it loaded: 8.5 bits a weight instead of 5).
//! candle's tiled AVX-512 VNNI Q8_0 kernel (rows a multiple of 256 wide) was tried for the weights
//! it takes and left out: calling it woke that pool, whose spinning thread then took a third of
//! a 2-core decode profile. Without AVX2 (an ARM laptop, say) candle's NEON kernels serve.
//! Measurements: README, "Issue 11".

use candle_core::quantized::QTensor;
use candle_core::{Device, Tensor};
use rayon::prelude::*;

use super::decode::band_rows;
use super::dequantize::{Format, BLOCK};
use super::{fused, with_data};

/// `x: (N, K)` times each quantised weight `(V_i, K)` transposed → `(N, V_i)`: decoding (one
/// position per sequence, or a few sequences stepped together), and any rows through a weight
/// too large to expand to f32 for the call (see `Proj::forward_t`). Each row of `x` is rounded
/// to 8-bit blocks of 32 as llama.cpp and candle round it (scale `max|x|/127`, kept in f16;
/// nearest integer; like theirs, a NaN counts as 0 and an infinity makes its block NaN), and each
/// output row is computed alone, so a row's result does not depend on the others. The layer's
/// weights that share `x` go to rayon's threads together, in bands, four rows per pass against
/// one load of the rounded activations. `None` when it does not apply (no AVX2, another block
/// type or device, a `K` that is not whole blocks, a tracked `x`): the caller takes candle's
/// product.
pub fn quantized_matvec_many(
    x: &Tensor,
    ws: &[&QTensor],
) -> candle_core::Result<Option<Vec<Tensor>>> {
    #[cfg(target_arch = "x86_64")]
    let Some(simd) = pulp::x86::V3::try_new() else {
        return Ok(None);
    };
    #[cfg(not(target_arch = "x86_64"))]
    return Ok(None);
    let Ok((n, k)) = x.dims2() else {
        return Ok(None);
    };
    let formats: Option<Vec<Format>> = ws.iter().map(|w| Format::of(w.dtype())).collect();
    let applies = n > 0
        && k > 0
        && k % BLOCK == 0
        && fused(x)
        && !x.track_op()
        && ws.iter().all(|w| {
            matches!(w.device(), Device::Cpu)
                && matches!(w.shape().dims(), &[v, k2] if v > 0 && k2 == k)
        });
    let Some(formats) = formats.filter(|_| applies) else {
        return Ok(None);
    };
    let rounded = with_data(x, round_blocks)?;
    let data = ws
        .iter()
        .zip(&formats)
        .map(|(w, f)| f.bytes_of(w))
        .collect::<candle_core::Result<Vec<_>>>()?;
    let mut outs: Vec<Vec<f32>> = ws
        .iter()
        .map(|w| vec![0f32; n * w.shape().dims()[0]])
        .collect();
    // Each band of weight rows with its outputs for every row of x, which it reads while the
    // band is still in cache: several rows of x take bands of at most 256 KB.
    let mut bands: Vec<Band> = Vec::new();
    for ((out, bytes), &f) in outs.iter_mut().zip(&data).zip(&formats) {
        let v = out.len() / n;
        let row_bytes = k / BLOCK * f.bytes();
        let mut band = band_rows(v, k);
        if n > 1 {
            band = band.min(((256 << 10) / row_bytes / 4).max(1) * 4);
        }
        let first = bands.len();
        bands.extend(
            bytes
                .chunks(band * row_bytes)
                .map(|rows| (f, rows, Vec::with_capacity(n))),
        );
        for row in out.chunks_mut(v) {
            for (j, o) in row.chunks_mut(band).enumerate() {
                bands[first + j].2.push(o);
            }
        }
    }
    bands.into_par_iter().for_each(|(f, rows, outs)| {
        for (i, out) in outs.into_iter().enumerate() {
            dot_rows(simd, f, &rounded.row(i, k), rows, out);
        }
    });
    outs.into_iter()
        .map(|out| {
            let v = out.len() / n;
            Tensor::from_vec(out, (n, v), x.device())
        })
        .collect::<candle_core::Result<Vec<_>>>()
        .map(Some)
}

/// Whether this CPU runs [`quantized_matvec_many`] (it needs AVX2); elsewhere candle's kernels
/// serve.
pub fn has_vector_quantized_kernels() -> bool {
    #[cfg(target_arch = "x86_64")]
    return pulp::x86::V3::try_new().is_some();
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// Whether [`quantized_matvec_many`] multiplies blocks of `dtype` on this CPU.
pub fn quantized_kernels_read(dtype: candle_core::quantized::GgmlDType) -> bool {
    Format::of(dtype).is_some() && has_vector_quantized_kernels()
}

/// A band of one weight's rows (its format and bytes) with its outputs for each row of x.
type Band<'a> = (Format, &'a [u8], Vec<&'a mut [f32]>);

/// Activations rounded to 8-bit blocks of 32, all rows one after another.
struct Rounded {
    /// The values, in [-127, 127].
    q: Vec<i8>,
    /// Each block's scale.
    d: Vec<f32>,
    /// Each block's scale times the sum of its values (the 4-bit formats' offsets multiply it).
    s: Vec<f32>,
}

/// One row of [`Rounded`].
struct RoundedRow<'a> {
    q: &'a [i8],
    d: &'a [f32],
    s: &'a [f32],
}

impl Rounded {
    fn row(&self, i: usize, k: usize) -> RoundedRow<'_> {
        let blocks = k / BLOCK;
        RoundedRow {
            q: &self.q[i * k..(i + 1) * k],
            d: &self.d[i * blocks..(i + 1) * blocks],
            s: &self.s[i * blocks..(i + 1) * blocks],
        }
    }
}

/// `x` rounded to 8-bit blocks of 32. A block of zeros has scale 0 and values 0.
fn round_blocks(x: &[f32]) -> Rounded {
    let blocks = x.len() / BLOCK;
    let mut r = Rounded {
        q: vec![0i8; x.len()],
        d: vec![0f32; blocks],
        s: vec![0f32; blocks],
    };
    let each =
        r.q.chunks_exact_mut(BLOCK)
            .zip(r.d.iter_mut().zip(r.s.iter_mut()));
    for ((q, (d, s)), x) in each.zip(x.chunks_exact(BLOCK)) {
        let amax = x.iter().fold(0f32, |m, v| m.max(v.abs()));
        let scale = amax / 127.0;
        // A scale that is 0 in f16 gives values 0 (for a tiny one, 1/scale would overflow and
        // the values leave [-127, 127]).
        let inv = if half::f16::from_f32(scale).to_f32() != 0.0 {
            1.0 / scale
        } else {
            0.0
        };
        for (q, &v) in q.iter_mut().zip(x) {
            *q = (v * inv).round() as i8;
        }
        // The values are rounded against the f32 scale and multiplied by its f16 rounding, as
        // llama.cpp's and candle's 8-bit activation blocks hold it. Their Q8_1 blocks (for the
        // 4-bit formats) keep the block sum in f16 as well; here it stays exact.
        *d = half::f16::from_f32(scale).to_f32();
        *s = *d * q.iter().map(|&v| i32::from(v)).sum::<i32>() as f32;
    }
    r
}

/// `out[r] = x · row r` for the quantised `rows` (one per output), with AVX2's integer
/// multiply-adds.
#[cfg(target_arch = "x86_64")]
fn dot_rows(simd: pulp::x86::V3, f: Format, x: &RoundedRow, rows: &[u8], out: &mut [f32]) {
    use avx2::{DotRows, Q4_0, Q4_1, Q8_0};
    match f {
        Format::Q8_0 => pulp::Simd::vectorize(simd, DotRows::<Q8_0>::new(simd, x, rows, out)),
        Format::Q4_0 => pulp::Simd::vectorize(simd, DotRows::<Q4_0>::new(simd, x, rows, out)),
        Format::Q4_1 => pulp::Simd::vectorize(simd, DotRows::<Q4_1>::new(simd, x, rows, out)),
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2;

/// A finite f16's bits moved into an f32's (sign to sign, exponent and mantissa to the low end
/// of the f32's exponent and mantissa): times [`HALF_RESCALE`] (2¹¹²) this is the f16's value,
/// exactly, subnormals included, without a branch. Infinities and NaNs come out finite (a GGUF
/// scale is finite).
#[inline(always)]
fn half_bits_scaled(h: u16) -> f32 {
    let h = u32::from(h);
    f32::from_bits(((h & 0x8000) << 16) | ((h & 0x7fff) << 13))
}

/// 2¹¹²: the f16 exponent bias (15) moved to f32's (127).
const HALF_RESCALE: f32 = f32::from_bits((127 + 112) << 23);

#[cfg(test)]
mod tests {
    use super::super::dequantize::f16_to_f32;
    use super::super::tests::rand;
    use super::*;
    use candle_core::quantized::GgmlDType;
    use candle_core::Module;

    /// The kernels need AVX2; without it every call declines (and candle serves).
    fn no_avx2() -> bool {
        let absent = !has_vector_quantized_kernels();
        if absent {
            let x = rand(&[1, 32], 1);
            let q = quantized(4, 32, 2, GgmlDType::Q8_0);
            assert!(quantized_matvec_many(&x, &[&q]).unwrap().is_none());
            eprintln!("skipped: this CPU has no AVX2");
        }
        absent
    }

    const FORMATS: [GgmlDType; 3] = [GgmlDType::Q8_0, GgmlDType::Q4_0, GgmlDType::Q4_1];

    /// The product these kernels stand for, in f64: candle's expansion of the weights times the
    /// rounded `x`.
    fn reference(x: &Tensor, q: &QTensor) -> Vec<f64> {
        let r = with_data(x, round_blocks).unwrap();
        let xr: Vec<f64> =
            r.q.iter()
                .enumerate()
                .map(|(i, &v)| f64::from(v) * f64::from(r.d[i / BLOCK]))
                .collect();
        let w = q
            .dequantize(&Device::Cpu)
            .unwrap()
            .to_vec2::<f32>()
            .unwrap();
        w.iter()
            .map(|row| row.iter().zip(&xr).map(|(&a, b)| f64::from(a) * b).sum())
            .collect()
    }

    fn quantized(v: usize, k: usize, seed: u64, dtype: GgmlDType) -> QTensor {
        QTensor::quantize(&rand(&[v, k], seed), dtype).unwrap()
    }

    fn one(x: &Tensor, q: &QTensor) -> Tensor {
        quantized_matvec_many(x, &[q])
            .unwrap()
            .expect("applies")
            .remove(0)
    }

    /// Each of `got` within `tol` of `want`, relative to the largest of `want`.
    fn close(got: &Tensor, want: &[f64], tol: f64) {
        let got = got.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(got.len(), want.len());
        let scale = 1.0 + want.iter().fold(0f64, |m, w| m.max(w.abs()));
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            assert!(
                (f64::from(*g) - w).abs() <= tol * scale,
                "row {i}: {g} vs {w}"
            );
        }
    }

    #[test]
    fn quantized_matvec_is_the_rounded_product() {
        if no_avx2() {
            return;
        }
        // Each format; row counts that are and are not whole groups of four, in one band and in
        // several; one block and many.
        for dtype in FORMATS {
            for (k, v, seed) in [(32, 1, 3), (64, 7, 5), (576, 1538, 7), (1536, 9, 9)] {
                let x = rand(&[1, k], seed);
                let q = quantized(v, k, seed + 1, dtype);
                close(&one(&x, &q), &reference(&x, &q), 1e-5);
            }
        }
    }

    #[test]
    fn half_scales_convert_exactly_without_a_branch() {
        for h in 0..=u16::MAX {
            let want = f16_to_f32(h);
            if want.is_finite() {
                let got = half_bits_scaled(h) * HALF_RESCALE;
                assert_eq!(got.to_bits(), want.to_bits(), "{h:#06x}");
            }
        }
    }

    #[test]
    fn quantized_matvec_is_close_to_candles_product() {
        if no_avx2() {
            return;
        }
        // The same rounding of x; the sums are taken in another order, and for the 4-bit formats
        // candle keeps each block's sum of x in f16.
        let x = rand(&[1, 576], 50);
        for dtype in FORMATS {
            let q = quantized(200, 576, 51, dtype);
            let ours = one(&x, &q);
            let candle = candle_core::quantized::QMatMul::from_qtensor(q)
                .unwrap()
                .forward(&x)
                .unwrap();
            let want: Vec<f64> = candle
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap()
                .into_iter()
                .map(f64::from)
                .collect();
            let tol = if dtype == GgmlDType::Q8_0 { 1e-5 } else { 2e-3 };
            close(&ours, &want, tol);
        }
    }

    #[test]
    fn rows_stepped_together_are_each_row_alone() {
        if no_avx2() {
            return;
        }
        // Decoders stepped together must sample what each samples alone: the same bits per row.
        let xs = rand(&[3, 2048], 70);
        for dtype in FORMATS {
            let q = quantized(301, 2048, 71, dtype);
            let together = one(&xs, &q);
            assert_eq!(together.dims(), &[3, 301]);
            for i in 0..3 {
                let x = xs.narrow(0, i, 1).unwrap();
                let alone = one(&x, &q);
                let row = together.narrow(0, i, 1).unwrap();
                assert_eq!(
                    row.to_vec2::<f32>().unwrap(),
                    alone.to_vec2::<f32>().unwrap()
                );
                close(&alone, &reference(&x, &q), 1e-5);
            }
        }
    }

    #[test]
    fn several_weights_are_each_alone_and_others_are_declined() {
        if no_avx2() {
            return;
        }
        let x = rand(&[1, 64], 60);
        let qs = [
            quantized(5, 64, 61, GgmlDType::Q8_0),
            quantized(130, 64, 62, GgmlDType::Q4_1),
        ];
        let many = quantized_matvec_many(&x, &[&qs[0], &qs[1]])
            .unwrap()
            .unwrap();
        for (y, q) in many.iter().zip(&qs) {
            assert_eq!(
                y.to_vec2::<f32>().unwrap(),
                one(&x, q).to_vec2::<f32>().unwrap()
            );
        }
        // Zeros round to a zero scale and give zeros.
        let zeros = Tensor::zeros((1, 64), candle_core::DType::F32, &Device::Cpu).unwrap();
        assert!(one(&zeros, &qs[0]).to_vec2::<f32>().unwrap()[0]
            .iter()
            .all(|&v| v == 0.0));
        // Another block type, a mismatched width or a tracked x go to candle.
        let q4k = quantized(4, 256, 63, GgmlDType::Q4K);
        let x256 = rand(&[1, 256], 64);
        assert!(quantized_matvec_many(&x256, &[&q4k]).unwrap().is_none());
        assert!(quantized_matvec_many(&rand(&[1, 96], 65), &[&qs[0]])
            .unwrap()
            .is_none());
        let var = candle_core::Var::from_tensor(&x).unwrap();
        assert!(quantized_matvec_many(var.as_tensor(), &[&qs[0]])
            .unwrap()
            .is_none());
    }
}
