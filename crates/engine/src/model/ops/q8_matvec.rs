//! Decoding through GGUF's Q8_0 weights: one position times 8-bit blocks, multiplied in integers.
//!
//! A decode step reads every weight once, so its speed is the rate at which the blocks stream
//! through the cores. candle's Q8_0 product rounds the activations to 8 bits and multiplies in
//! integers too, but one weight at a time, one row per pass, converting each block's f16 scale
//! out of line, on its own thread pool, whose threads spin next to rayon's. Its tiled AVX-512
//! VNNI kernel (rows a multiple of 256 wide: SmolLM2's down projection) streams faster than
//! this one in isolation, but calling it woke that pool, whose spinning thread then took a third
//! of a 2-core decode profile, and the decode was slower than with this kernel for every weight.
//! Two earlier attempts here that widened the blocks to f32 against unrounded activations were
//! slower than candle's kernel (20–34 against 40–47 tokens/s): the work per byte has to stay
//! integer. This one hands the bands of a layer's projections that share an input to rayon's
//! threads at once, reads four rows per pass against one load of the rounded activations, and
//! asks for each row's bytes ahead of reading them.

use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Tensor};
use rayon::prelude::*;

use super::decode::band_rows;
use super::q8_dequantize::{f16_to_f32, BLOCK, BLOCK_BYTES};
use super::{fused, simd_run, with_data};

/// `x: (N, K)` times each Q8_0 weight `(V_i, K)` transposed → `(N, V_i)`, for decoding (one
/// position per sequence, or a few sequences stepped together). Each row of `x` is rounded to
/// 8-bit blocks of 32 as llama.cpp and candle round it (scale `max|x|/127`, kept in f16; nearest
/// integer), and each output row is computed alone, so a row's result does not depend on the
/// others. `None` when it does not apply (another block type, another device, a `K` that is not
/// whole blocks, a tracked `x`): the caller takes candle's product.
pub fn q8_0_matvec_many(x: &Tensor, ws: &[&QTensor]) -> candle_core::Result<Option<Vec<Tensor>>> {
    let (n, k) = x.dims2()?;
    let applies = n > 0
        && k > 0
        && k % BLOCK == 0
        && fused(x)
        && !x.track_op()
        && ws.iter().all(|w| {
            w.dtype() == GgmlDType::Q8_0
                && matches!(w.device(), Device::Cpu)
                && matches!(w.shape().dims(), &[v, k2] if v > 0 && k2 == k)
        });
    if !applies {
        return Ok(None);
    }
    let (xq, xd) = with_data(x, quantize)?;
    let data = ws
        .iter()
        .map(|w| w.data())
        .collect::<candle_core::Result<Vec<_>>>()?;
    let (blocks, row_bytes) = (k / BLOCK, k / BLOCK * BLOCK_BYTES);
    let mut outs = Vec::with_capacity(ws.len());
    for (w, bytes) in ws.iter().zip(&data) {
        let v = w.shape().dims()[0];
        if bytes.len() != v * row_bytes {
            candle_core::bail!(
                "Q8_0 weight holds {} bytes for {v} rows of {k}",
                bytes.len()
            );
        }
        outs.push(vec![0f32; n * v]);
    }
    // Each band of weight rows with its outputs for every row of x, which it reads while the
    // band is still in cache: several rows of x take bands of at most 256 KB.
    let mut bands: Vec<(&[u8], Vec<&mut [f32]>)> = Vec::new();
    for (out, bytes) in outs.iter_mut().zip(&data) {
        let v = out.len() / n;
        let mut band = band_rows(v, k);
        if n > 1 {
            band = band.min(((256 << 10) / row_bytes / 4).max(1) * 4);
        }
        let first = bands.len();
        bands.extend(
            bytes
                .chunks(band * row_bytes)
                .map(|rows| (rows, Vec::with_capacity(n))),
        );
        for row in out.chunks_mut(v) {
            for (j, o) in row.chunks_mut(band).enumerate() {
                bands[first + j].1.push(o);
            }
        }
    }
    bands.into_par_iter().for_each(|(rows, outs)| {
        let xs = xq.chunks_exact(k).zip(xd.chunks_exact(blocks));
        for (out, (xq, xd)) in outs.into_iter().zip(xs) {
            dot_rows(xq, xd, rows, out);
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

/// Each row of `x` rounded to 8-bit blocks of 32: the values (in [-127, 127]) and each block's
/// scale. A block of zeros has scale 0 and values 0.
fn quantize(x: &[f32]) -> (Vec<i8>, Vec<f32>) {
    let mut q = vec![0i8; x.len()];
    let mut d = vec![0f32; x.len() / BLOCK];
    for ((q, d), x) in q
        .chunks_exact_mut(BLOCK)
        .zip(d.iter_mut())
        .zip(x.chunks_exact(BLOCK))
    {
        let amax = x.iter().fold(0f32, |m, v| m.max(v.abs()));
        let scale = amax / 127.0;
        let inv = if scale != 0.0 { 1.0 / scale } else { 0.0 };
        for (q, &v) in q.iter_mut().zip(x) {
            *q = (v * inv).round() as i8;
        }
        // The values are rounded against the f32 scale and multiplied by its f16 rounding, as
        // llama.cpp's and candle's Q8_0 blocks do.
        *d = half::f16::from_f32(scale).to_f32();
    }
    (q, d)
}

/// `out[r] = x · row r` for the Q8_0 `rows` (one per output): AVX2's integer multiply-adds where
/// the CPU has them, else the portable kernel.
fn dot_rows(xq: &[i8], xd: &[f32], rows: &[u8], out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if let Some(simd) = pulp::x86::V3::try_new() {
        return pulp::Simd::vectorize(
            simd,
            avx2::DotRows {
                simd,
                xq,
                xd,
                rows,
                out,
            },
        );
    }
    simd_run(DotRowsPortable(xq, xd, rows, out))
}

simd_kernel!(
    /// [`dot_rows`] in plain integer arithmetic, one row at a time (left to the compiler).
    DotRowsPortable<'a>(xq: &'a [i8], xd: &'a [f32], rows: &'a [u8], out: &'a mut [f32]) -> () {
        let row_bytes = xd.len() * BLOCK_BYTES;
        for (o, row) in out.iter_mut().zip(rows.chunks_exact(row_bytes)) {
            let mut sum = 0f32;
            let blocks = row.chunks_exact(BLOCK_BYTES).zip(xq.chunks_exact(BLOCK)).zip(xd);
            for ((block, xq), &xd) in blocks {
                let d = f16_to_f32(u16::from_le_bytes([block[0], block[1]]));
                let mut dot = 0i32;
                for (&w, &x) in block[2..].iter().zip(xq) {
                    dot += i32::from(w as i8) * i32::from(x);
                }
                sum += d * xd * dot as f32;
            }
            *o = sum;
        }
    }
);

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use pulp::bytemuck::cast;
    use pulp::x86::V3;
    use std::arch::x86_64::{__m128i, __m256, __m256i};

    use super::{half_bits_scaled, BLOCK, BLOCK_BYTES, HALF_RESCALE};

    /// Bytes ahead of each row's reading position that are asked for (`prefetcht0`): the cores
    /// otherwise waited on each line's first read. On two cores, streaming 145 MB of weights:
    /// 6–9 GB/s without, 9–13 with 1 KB ahead, 9–15 with 2 or 4 KB.
    const PREFETCH: usize = 2048;

    /// [`super::dot_rows`] with AVX2: per block, the 32 products are summed into eight i32 lanes
    /// ([`products`]), converted once and added, times the two scales, into eight f32 lanes per
    /// row. Four rows per pass share each load of the activations, and their four f16 scales
    /// are converted together.
    pub(super) struct DotRows<'a> {
        pub simd: V3,
        pub xq: &'a [i8],
        pub xd: &'a [f32],
        pub rows: &'a [u8],
        pub out: &'a mut [f32],
    }

    impl pulp::WithSimd for DotRows<'_> {
        type Output = ();

        #[inline(always)]
        fn with_simd<S: pulp::Simd>(self, _: S) {
            let DotRows {
                simd,
                xq,
                xd,
                rows,
                out,
            } = self;
            let row_bytes = xd.len() * BLOCK_BYTES;
            let x: Vec<__m256i> = xq
                .chunks_exact(BLOCK)
                .map(|b| cast(<[i8; 32]>::try_from(b).expect("32 values")))
                .collect();
            let mut quads = out.chunks_exact_mut(4);
            let mut groups = rows.chunks_exact(4 * row_bytes);
            for (o, g) in (&mut quads).zip(&mut groups) {
                let (r0, rest) = g.split_at(row_bytes);
                let (r1, rest) = rest.split_at(row_bytes);
                let (r2, r3) = rest.split_at(row_bytes);
                let mut acc = [simd.avx._mm256_setzero_ps(); 4];
                let blocks = (r0.chunks_exact(BLOCK_BYTES))
                    .zip(r1.chunks_exact(BLOCK_BYTES))
                    .zip(r2.chunks_exact(BLOCK_BYTES))
                    .zip(r3.chunks_exact(BLOCK_BYTES))
                    .zip(x.iter().zip(xd));
                for ((((b0, b1), b2), b3), (&x, &xd)) in blocks {
                    let d = scales(simd, [b0, b1, b2, b3], xd);
                    for (r, b) in [b0, b1, b2, b3].into_iter().enumerate() {
                        let p = products(simd, b, x);
                        let d = simd.avx._mm256_set1_ps(d[r]);
                        acc[r] = simd.fma._mm256_fmadd_ps(d, p, acc[r]);
                    }
                }
                for (o, acc) in o.iter_mut().zip(acc) {
                    *o = sum(acc);
                }
            }
            let rest = groups.remainder().chunks_exact(row_bytes);
            for (o, row) in quads.into_remainder().iter_mut().zip(rest) {
                let mut acc = simd.avx._mm256_setzero_ps();
                for (b, (&x, &xd)) in row.chunks_exact(BLOCK_BYTES).zip(x.iter().zip(xd)) {
                    let d = half_bits_scaled(u16::from_le_bytes([b[0], b[1]])) * HALF_RESCALE;
                    let d = simd.avx._mm256_set1_ps(d * xd);
                    acc = simd.fma._mm256_fmadd_ps(d, products(simd, b, x), acc);
                }
                *o = sum(acc);
            }
        }
    }

    /// The four blocks' f16 scales times `xd`, converted together (see [`half_bits_scaled`]).
    #[inline(always)]
    fn scales(simd: V3, b: [&[u8]; 4], xd: f32) -> [f32; 4] {
        let h: __m128i = cast(b.map(|b| u32::from(u16::from_le_bytes([b[0], b[1]]))));
        let magnitude = simd.sse2._mm_and_si128(h, simd.sse2._mm_set1_epi32(0x7fff));
        let sign = simd.sse2._mm_and_si128(h, simd.sse2._mm_set1_epi32(0x8000));
        let bits = simd.sse2._mm_or_si128(
            simd.sse2._mm_slli_epi32::<13>(magnitude),
            simd.sse2._mm_slli_epi32::<16>(sign),
        );
        let d = simd.sse._mm_mul_ps(
            simd.sse2._mm_castsi128_ps(bits),
            simd.sse._mm_set1_ps(HALF_RESCALE),
        );
        cast(simd.sse._mm_mul_ps(d, simd.sse._mm_set1_ps(xd)))
    }

    /// The block's 32 products, summed in eight lanes, as f32 (exact: at most 32·127·128). As
    /// llama.cpp multiplies 8-bit blocks with AVX2: `|w|` (unsigned) times `x` with `w`'s signs
    /// (`vpmaddubsw`, pairs into i16, at most 2·128·127), then pairs of those into i32 (`vpmaddwd`
    /// by ones): one 32-byte load and no shuffles, where widening to i16 first took two loads
    /// that each needed the shuffle port.
    #[inline(always)]
    fn products(simd: V3, b: &[u8], x: __m256i) -> __m256 {
        simd.sse
            ._mm_prefetch::<3>(b.as_ptr().wrapping_add(PREFETCH).cast());
        let w: __m256i = cast(<[u8; 32]>::try_from(&b[2..BLOCK_BYTES]).expect("32 bytes"));
        let pairs = simd.avx2._mm256_maddubs_epi16(
            simd.avx2._mm256_sign_epi8(w, w),
            simd.avx2._mm256_sign_epi8(x, w),
        );
        let quads = simd
            .avx2
            ._mm256_madd_epi16(pairs, simd.avx._mm256_set1_epi16(1));
        simd.avx._mm256_cvtepi32_ps(quads)
    }

    #[inline(always)]
    fn sum(acc: __m256) -> f32 {
        cast::<__m256, [f32; 8]>(acc).iter().sum()
    }
}

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
    use super::super::tests::rand;
    use super::*;
    use candle_core::Module;

    /// The product these kernels stand for, in f64: the expanded weights times the rounded `x`.
    fn reference(x: &Tensor, q: &QTensor) -> Vec<f64> {
        let (xq, xd) = with_data(x, quantize).unwrap();
        let xr: Vec<f64> = xq
            .iter()
            .enumerate()
            .map(|(i, &v)| f64::from(v) * f64::from(xd[i / BLOCK]))
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

    fn q8(v: usize, k: usize, seed: u64) -> QTensor {
        QTensor::quantize(&rand(&[v, k], seed), GgmlDType::Q8_0).unwrap()
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
    fn q8_matvec_is_the_rounded_product() {
        // Row counts that are and are not whole groups of four, in one band and in several; one
        // block and many.
        for (k, v, seed) in [(32, 1, 3), (64, 7, 5), (576, 1538, 7), (1536, 9, 9)] {
            let x = rand(&[1, k], seed);
            let q = q8(v, k, seed + 1);
            let y = q8_0_matvec_many(&x, &[&q])
                .unwrap()
                .expect("applies")
                .remove(0);
            close(&y, &reference(&x, &q), 1e-5);
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
    fn portable_kernel_agrees_with_the_vector_one() {
        let (k, v) = (96, 11);
        let x = rand(&[1, k], 40);
        let q = q8(v, k, 41);
        let (xq, xd) = with_data(&x, quantize).unwrap();
        let data = q.data().unwrap();
        let mut out = vec![0f32; v];
        simd_run(DotRowsPortable(&xq, &xd, &data, &mut out));
        close(
            &Tensor::new(out, &Device::Cpu).unwrap(),
            &reference(&x, &q),
            1e-5,
        );
    }

    #[test]
    fn q8_matvec_is_close_to_candles_product() {
        // The same rounding of x; the sums are taken in another order.
        let x = rand(&[1, 576], 50);
        let q = q8(200, 576, 51);
        let ours = q8_0_matvec_many(&x, &[&q]).unwrap().unwrap().remove(0);
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
        close(&ours, &want, 1e-5);
    }

    #[test]
    fn rows_stepped_together_are_each_row_alone() {
        // Decoders stepped together must sample what each samples alone: the same bits per row.
        let xs = rand(&[3, 2048], 70);
        let q = q8(300, 2048, 71);
        let together = q8_0_matvec_many(&xs, &[&q]).unwrap().unwrap().remove(0);
        assert_eq!(together.dims(), &[3, 300]);
        for i in 0..3 {
            let x = xs.narrow(0, i, 1).unwrap();
            let alone = q8_0_matvec_many(&x, &[&q]).unwrap().unwrap().remove(0);
            let row = together.narrow(0, i, 1).unwrap();
            assert_eq!(
                row.to_vec2::<f32>().unwrap(),
                alone.to_vec2::<f32>().unwrap()
            );
            close(&alone, &reference(&x, &q), 1e-5);
        }
    }

    #[test]
    fn several_weights_are_each_alone_and_others_are_declined() {
        let x = rand(&[1, 64], 60);
        let qs = [q8(5, 64, 61), q8(130, 64, 62)];
        let many = q8_0_matvec_many(&x, &[&qs[0], &qs[1]]).unwrap().unwrap();
        for (y, q) in many.iter().zip(&qs) {
            let alone = q8_0_matvec_many(&x, &[q]).unwrap().unwrap().remove(0);
            assert_eq!(y.to_vec2::<f32>().unwrap(), alone.to_vec2::<f32>().unwrap());
        }
        // Zeros round to a zero scale and give zeros.
        let zeros = Tensor::zeros((1, 64), candle_core::DType::F32, &Device::Cpu).unwrap();
        let y = q8_0_matvec_many(&zeros, &[&qs[0]])
            .unwrap()
            .unwrap()
            .remove(0);
        assert!(y.to_vec2::<f32>().unwrap()[0].iter().all(|&v| v == 0.0));
        // Another block type, a mismatched width or a tracked x go to candle.
        let q4 = QTensor::quantize(&rand(&[4, 64], 63), GgmlDType::Q4_0).unwrap();
        assert!(q8_0_matvec_many(&x, &[&qs[0], &q4]).unwrap().is_none());

        assert!(q8_0_matvec_many(&rand(&[1, 96], 65), &[&qs[0]])
            .unwrap()
            .is_none());
        let var = candle_core::Var::from_tensor(&x).unwrap();
        assert!(q8_0_matvec_many(var.as_tensor(), &[&qs[0]])
            .unwrap()
            .is_none());
    }
}
