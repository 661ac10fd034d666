//! Decoding through GGUF's 8- and 4-bit blocks (Q8_0, Q4_0, Q4_1): one position times the
//! blocks, multiplied in integers.
//!
//! A decode step reads every weight once, so its speed is the rate at which the blocks stream
//! through the cores. candle's quantised product rounds the activations to 8 bits and multiplies
//! in integers too, but one weight at a time, one row per pass, converting each block's f16 scale
//! out of line, on its own thread pool, whose threads spin next to rayon's; and its Q4_1 kernel
//! is scalar (a Q4_1 file used to be re-quantised to Q8_0 as it loaded, 8.5 bits a weight
//! instead of 5). Its tiled AVX-512 VNNI Q8_0 kernel (rows a multiple of 256 wide: SmolLM2's down
//! projection) streams faster than this one in isolation, but calling it woke that pool, whose
//! spinning thread then took a third of a 2-core decode profile, and decoding was slower than
//! with this kernel for every weight. Two earlier attempts here that widened Q8_0 blocks to f32
//! against unrounded activations were slower than candle's kernel (20–34 against 40–47
//! tokens/s): the work per byte has to stay integer. This one hands the bands of a layer's
//! projections that share an input to rayon's threads at once, reads four rows per pass against
//! one load of the rounded activations, and asks for each row's bytes ahead of reading them.

use candle_core::quantized::QTensor;
use candle_core::{Device, Tensor};
use rayon::prelude::*;

use super::decode::band_rows;
use super::dequantize::{f16_to_f32, Format, BLOCK};
use super::{fused, simd_run, with_data};

/// `x: (N, K)` times each quantised weight `(V_i, K)` transposed → `(N, V_i)`, for decoding (one
/// position per sequence, or a few sequences stepped together). Each row of `x` is rounded to
/// 8-bit blocks of 32 as llama.cpp and candle round it (scale `max|x|/127`, kept in f16; nearest
/// integer), and each output row is computed alone, so a row's result does not depend on the
/// others. `None` when it does not apply (another block type, another device, a `K` that is not
/// whole blocks, a tracked `x`): the caller takes candle's product.
pub fn quantized_matvec_many(
    x: &Tensor,
    ws: &[&QTensor],
) -> candle_core::Result<Option<Vec<Tensor>>> {
    let (n, k) = x.dims2()?;
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
            dot_rows(f, &rounded.row(i, k), rows, out);
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

/// Whether this CPU runs [`quantized_matvec_many`] with vector instructions (AVX2); elsewhere it
/// takes a portable kernel left to the compiler.
pub fn has_vector_quantized_kernels() -> bool {
    #[cfg(target_arch = "x86_64")]
    if pulp::x86::V3::try_new().is_some() {
        return true;
    }
    false
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
        let inv = if scale != 0.0 { 1.0 / scale } else { 0.0 };
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

/// `out[r] = x · row r` for the quantised `rows` (one per output): AVX2's integer multiply-adds
/// where the CPU has them, else the portable kernel.
fn dot_rows(f: Format, x: &RoundedRow, rows: &[u8], out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if let Some(simd) = pulp::x86::V3::try_new() {
        use avx2::{DotRows, Q4_0, Q4_1, Q8_0};
        return match f {
            Format::Q8_0 => pulp::Simd::vectorize(simd, DotRows::<Q8_0>::new(simd, x, rows, out)),
            Format::Q4_0 => pulp::Simd::vectorize(simd, DotRows::<Q4_0>::new(simd, x, rows, out)),
            Format::Q4_1 => pulp::Simd::vectorize(simd, DotRows::<Q4_1>::new(simd, x, rows, out)),
        };
    }
    simd_run(DotRowsPortable(f, x, rows, out))
}

simd_kernel!(
    /// [`dot_rows`] in plain integer arithmetic, one row at a time (left to the compiler).
    DotRowsPortable<'a>(f: Format, x: &'a RoundedRow<'a>, rows: &'a [u8], out: &'a mut [f32]) -> () {
        let bytes = f.bytes();
        for (o, row) in out.iter_mut().zip(rows.chunks_exact(x.d.len() * bytes)) {
            let mut sum = 0f32;
            let blocks = row.chunks_exact(bytes).zip(x.q.chunks_exact(BLOCK));
            for ((block, xq), (&xd, &xs)) in blocks.zip(x.d.iter().zip(x.s)) {
                let d = f16_to_f32(u16::from_le_bytes([block[0], block[1]]));
                let (dot, offset) = match f {
                    Format::Q8_0 => (dot_i8(&block[2..], xq), 0.0),
                    Format::Q4_0 => (dot_nibbles(&block[2..], xq), -8.0 * d),
                    Format::Q4_1 => (
                        dot_nibbles(&block[4..], xq),
                        f16_to_f32(u16::from_le_bytes([block[2], block[3]])),
                    ),
                };
                sum += d * xd * dot as f32 + offset * xs;
            }
            *o = sum;
        }
    }
);

#[inline(always)]
fn dot_i8(w: &[u8], x: &[i8]) -> i32 {
    w.iter()
        .zip(x)
        .map(|(&w, &x)| i32::from(w as i8) * i32::from(x))
        .sum()
}

/// Σ q·x for a 4-bit block's 16 bytes: low nibbles against `x[..16]`, high ones against `x[16..]`.
#[inline(always)]
fn dot_nibbles(w: &[u8], x: &[i8]) -> i32 {
    let (lo, hi) = x.split_at(BLOCK / 2);
    w.iter()
        .zip(lo.iter().zip(hi))
        .map(|(&w, (&l, &h))| i32::from(w & 15) * i32::from(l) + i32::from(w >> 4) * i32::from(h))
        .sum()
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::marker::PhantomData;

    use pulp::bytemuck::cast;
    use pulp::x86::V3;
    use std::arch::x86_64::{__m128, __m128i, __m256, __m256i};

    use super::super::decode::Prefetch;
    use super::{half_bits_scaled, RoundedRow, BLOCK, HALF_RESCALE};

    /// What differs between the block formats.
    pub(super) trait Kind {
        /// Bytes per block.
        const BYTES: usize;
        /// Whether a block adds `offset × (the activations' block sum)`.
        const OFFSET: bool;
        /// The block's 32 products `q·x`, summed in eight lanes, as f32 (exact).
        fn products(simd: V3, b: &[u8], x: __m256i) -> __m256;
        /// Four blocks' offsets, given their scales `d`.
        fn offsets(simd: V3, b: [&[u8]; 4], d: __m128) -> __m128;
        /// One block's offset, given its scale `d`.
        fn offset(b: &[u8], d: f32) -> f32;
    }

    /// The f16 at byte `at` of a block.
    #[inline(always)]
    fn half(b: &[u8], at: usize) -> f32 {
        half_bits_scaled(u16::from_le_bytes([b[at], b[at + 1]])) * HALF_RESCALE
    }

    pub(super) struct Q8_0;
    pub(super) struct Q4_0;
    pub(super) struct Q4_1;

    impl Kind for Q8_0 {
        const BYTES: usize = 2 + BLOCK;
        const OFFSET: bool = false;

        /// As llama.cpp multiplies 8-bit blocks with AVX2: `|w|` (unsigned) times `x` with `w`'s
        /// signs (`vpmaddubsw`, pairs into i16, at most 2·128·127), then pairs of those into i32
        /// (`vpmaddwd` by ones): one 32-byte load and no shuffles, where widening to i16 first
        /// took two loads that each needed the shuffle port.
        #[inline(always)]
        fn products(simd: V3, b: &[u8], x: __m256i) -> __m256 {
            let w: __m256i = cast(<[u8; 32]>::try_from(&b[2..]).expect("32 bytes"));
            let abs = simd.avx2._mm256_sign_epi8(w, w);
            pairs_to_f32(simd, abs, simd.avx2._mm256_sign_epi8(x, w))
        }

        #[inline(always)]
        fn offsets(simd: V3, _: [&[u8]; 4], _: __m128) -> __m128 {
            simd.sse._mm_setzero_ps()
        }

        #[inline(always)]
        fn offset(_: &[u8], _: f32) -> f32 {
            0.0
        }
    }

    impl Kind for Q4_0 {
        const BYTES: usize = 2 + BLOCK / 2;
        const OFFSET: bool = true;

        #[inline(always)]
        fn products(simd: V3, b: &[u8], x: __m256i) -> __m256 {
            pairs_to_f32(simd, nibbles(simd, &b[2..]), x)
        }

        #[inline(always)]
        fn offsets(simd: V3, _: [&[u8]; 4], d: __m128) -> __m128 {
            simd.sse._mm_mul_ps(d, simd.sse._mm_set1_ps(-8.0))
        }

        #[inline(always)]
        fn offset(_: &[u8], d: f32) -> f32 {
            -8.0 * d
        }
    }

    impl Kind for Q4_1 {
        const BYTES: usize = 4 + BLOCK / 2;
        const OFFSET: bool = true;

        #[inline(always)]
        fn products(simd: V3, b: &[u8], x: __m256i) -> __m256 {
            pairs_to_f32(simd, nibbles(simd, &b[4..]), x)
        }

        #[inline(always)]
        fn offsets(simd: V3, b: [&[u8]; 4], _: __m128) -> __m128 {
            halves(simd, b, 2)
        }

        #[inline(always)]
        fn offset(b: &[u8], _: f32) -> f32 {
            half(b, 2)
        }
    }

    /// A 4-bit block's 16 bytes as 32 unsigned bytes: the low nibbles (values 0–15) in the low
    /// half, the high ones (16–31) in the high half.
    #[inline(always)]
    fn nibbles(simd: V3, b: &[u8]) -> __m256i {
        let q: __m128i = cast(<[u8; 16]>::try_from(b).expect("16 bytes"));
        let mask = simd.sse2._mm_set1_epi8(0x0f);
        let lo = simd.sse2._mm_and_si128(q, mask);
        let hi = simd
            .sse2
            ._mm_and_si128(simd.sse2._mm_srli_epi16::<4>(q), mask);
        simd.avx._mm256_set_m128i(hi, lo)
    }

    /// Σ of unsigned `w` times signed `x` in eight i32 lanes (`vpmaddubsw`, then `vpmaddwd` by
    /// ones), as f32. No i16 pair overflows: |w| ≤ 128 and |x| ≤ 127.
    #[inline(always)]
    fn pairs_to_f32(simd: V3, w: __m256i, x: __m256i) -> __m256 {
        let pairs = simd.avx2._mm256_maddubs_epi16(w, x);
        let quads = simd
            .avx2
            ._mm256_madd_epi16(pairs, simd.avx._mm256_set1_epi16(1));
        simd.avx._mm256_cvtepi32_ps(quads)
    }

    /// The four blocks' f16 values at byte `at`, converted together (see [`half_bits_scaled`]).
    #[inline(always)]
    fn halves(simd: V3, b: [&[u8]; 4], at: usize) -> __m128 {
        let h: __m128i = cast(b.map(|b| u32::from(u16::from_le_bytes([b[at], b[at + 1]]))));
        let magnitude = simd.sse2._mm_and_si128(h, simd.sse2._mm_set1_epi32(0x7fff));
        let sign = simd.sse2._mm_and_si128(h, simd.sse2._mm_set1_epi32(0x8000));
        let bits = simd.sse2._mm_or_si128(
            simd.sse2._mm_slli_epi32::<13>(magnitude),
            simd.sse2._mm_slli_epi32::<16>(sign),
        );
        simd.sse._mm_mul_ps(
            simd.sse2._mm_castsi128_ps(bits),
            simd.sse._mm_set1_ps(HALF_RESCALE),
        )
    }

    /// [`super::dot_rows`] with AVX2 for the blocks `K`: per block, the 32 products are summed
    /// into eight i32 lanes ([`Kind::products`]), converted once and added, times the two scales,
    /// into eight f32 lanes per row; a 4-bit block's offset times the activations' block sum goes
    /// into a fifth accumulator. Four rows per pass share each load of the activations, and their
    /// four scales (and offsets) are converted together.
    pub(super) struct DotRows<'a, K> {
        simd: V3,
        x: &'a RoundedRow<'a>,
        rows: &'a [u8],
        out: &'a mut [f32],
        kind: PhantomData<K>,
    }

    impl<'a, K> DotRows<'a, K> {
        pub(super) fn new(
            simd: V3,
            x: &'a RoundedRow<'a>,
            rows: &'a [u8],
            out: &'a mut [f32],
        ) -> Self {
            DotRows {
                simd,
                x,
                rows,
                out,
                kind: PhantomData,
            }
        }
    }

    impl<K: Kind> pulp::WithSimd for DotRows<'_, K> {
        type Output = ();

        #[inline(always)]
        fn with_simd<S: pulp::Simd>(self, _: S) {
            let DotRows {
                simd, x, rows, out, ..
            } = self;
            let row_bytes = x.d.len() * K::BYTES;
            let xq: Vec<__m256i> =
                x.q.chunks_exact(BLOCK)
                    .map(|b| cast(<[i8; 32]>::try_from(b).expect("32 values")))
                    .collect();
            let each_x = || xq.iter().zip(x.d.iter().zip(x.s));
            let fetch = |b: &[u8]| {
                let ahead = b.as_ptr().wrapping_add(Prefetch::AHEAD);
                simd.sse._mm_prefetch::<3>(ahead.cast());
            };
            let mut quads = out.chunks_exact_mut(4);
            let mut groups = rows.chunks_exact(4 * row_bytes);
            for (o, g) in (&mut quads).zip(&mut groups) {
                let (r0, rest) = g.split_at(row_bytes);
                let (r1, rest) = rest.split_at(row_bytes);
                let (r2, r3) = rest.split_at(row_bytes);
                let mut acc = [simd.avx._mm256_setzero_ps(); 4];
                let mut offset = simd.sse._mm_setzero_ps();
                let blocks = (r0.chunks_exact(K::BYTES))
                    .zip(r1.chunks_exact(K::BYTES))
                    .zip(r2.chunks_exact(K::BYTES))
                    .zip(r3.chunks_exact(K::BYTES))
                    .zip(each_x());
                for ((((b0, b1), b2), b3), (&xq, (&xd, &xs))) in blocks {
                    let b = [b0, b1, b2, b3];
                    let dw = halves(simd, b, 0);
                    let d: [f32; 4] = cast(simd.sse._mm_mul_ps(dw, simd.sse._mm_set1_ps(xd)));
                    for r in 0..4 {
                        fetch(b[r]);
                        let p = K::products(simd, b[r], xq);
                        let d = simd.avx._mm256_set1_ps(d[r]);
                        acc[r] = simd.fma._mm256_fmadd_ps(d, p, acc[r]);
                    }
                    if K::OFFSET {
                        let xs = simd.sse._mm_set1_ps(xs);
                        offset = simd.fma._mm_fmadd_ps(K::offsets(simd, b, dw), xs, offset);
                    }
                }
                let offset: [f32; 4] = cast(offset);
                for ((o, acc), offset) in o.iter_mut().zip(acc).zip(offset) {
                    *o = sum(acc) + offset;
                }
            }
            let rest = groups.remainder().chunks_exact(row_bytes);
            for (o, row) in quads.into_remainder().iter_mut().zip(rest) {
                let mut acc = simd.avx._mm256_setzero_ps();
                let mut offset = 0f32;
                for (b, (&xq, (&xd, &xs))) in row.chunks_exact(K::BYTES).zip(each_x()) {
                    fetch(b);
                    let d = half(b, 0);
                    let scale = simd.avx._mm256_set1_ps(d * xd);
                    acc = simd
                        .fma
                        ._mm256_fmadd_ps(scale, K::products(simd, b, xq), acc);
                    if K::OFFSET {
                        offset += K::offset(b, d) * xs;
                    }
                }
                *o = sum(acc) + offset;
            }
        }
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
    use candle_core::quantized::GgmlDType;
    use candle_core::Module;

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
    fn portable_kernel_agrees_with_the_vector_one() {
        let (k, v) = (96, 11);
        let x = rand(&[1, k], 40);
        let r = with_data(&x, round_blocks).unwrap();
        for dtype in FORMATS {
            let q = quantized(v, k, 41, dtype);
            let data = q.data().unwrap();
            let mut out = vec![0f32; v];
            let f = Format::of(dtype).unwrap();
            simd_run(DotRowsPortable(f, &r.row(0, k), &data, &mut out));
            let portable = Tensor::new(out, &Device::Cpu).unwrap();
            close(&portable, &reference(&x, &q), 1e-5);
        }
    }

    #[test]
    fn quantized_matvec_is_close_to_candles_product() {
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
        // Decoders stepped together must sample what each samples alone: the same bits per row.
        let xs = rand(&[3, 2048], 70);
        for dtype in FORMATS {
            let q = quantized(300, 2048, 71, dtype);
            let together = one(&xs, &q);
            assert_eq!(together.dims(), &[3, 300]);
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
