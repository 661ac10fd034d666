//! The AVX2 kernels of `quant_matvec` (x86-64; pulp's safe intrinsics).

use std::marker::PhantomData;

use pulp::bytemuck::cast;
use pulp::x86::V3;
use std::arch::x86_64::{__m128, __m128i, __m256, __m256i};

use super::super::decode::PREFETCH_AHEAD;
use super::{half_bits_scaled, Format, RoundedRow, BLOCK, HALF_RESCALE};

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

const _: () = assert!(Q8_0::BYTES == Format::Q8_0.bytes());
const _: () = assert!(Q4_0::BYTES == Format::Q4_0.bytes());
const _: () = assert!(Q4_1::BYTES == Format::Q4_1.bytes());

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
    pub(super) fn new(simd: V3, x: &'a RoundedRow<'a>, rows: &'a [u8], out: &'a mut [f32]) -> Self {
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
        let each_x = || {
            let q = x.q.chunks_exact(BLOCK);
            q.map(|b| cast::<[i8; 32], __m256i>(b.try_into().expect("32 values")))
                .zip(x.d.iter().zip(x.s))
        };
        let fetch = |b: &[u8]| {
            let ahead = b.as_ptr().wrapping_add(PREFETCH_AHEAD);
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
            for ((((b0, b1), b2), b3), (xq, (&xd, &xs))) in blocks {
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
            for (b, (xq, (&xd, &xs))) in row.chunks_exact(K::BYTES).zip(each_x()) {
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
