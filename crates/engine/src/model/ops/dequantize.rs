//! GGUF's 8- and 4-bit block formats (Q8_0, Q4_0, Q4_1), and their expansion to f32 for a
//! prompt's many rows, in parallel.
//!
//! A 512-token prompt through a quantised file multiplies each projection by 512 rows; expanding
//! the weight and taking the f32 matrix kernel beats candle's quantised dot products 3–4× (see
//! `Proj::forward_t`), and candle's own `dequantize` runs on one thread: this one on all of them
//! took SmolLM2-135M's Q8_0 512-token prompt from a median of 424 to 500 tokens/s (six
//! interleaved runs). Decoding's few rows take `quant_matvec`'s integer kernels instead.

use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Tensor};
use rayon::prelude::*;

use super::simd_run;

/// Values per block, in every format here.
pub(super) const BLOCK: usize = 32;

/// The block formats read here. Each block starts with its f16 scale `d`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Format {
    /// `d`, then 32 signed bytes `q`: `w = d·q`.
    Q8_0,
    /// `d`, then 16 bytes of 4-bit `q` (low nibbles are values 0–15, high ones 16–31):
    /// `w = d·(q − 8)`.
    Q4_0,
    /// `d`, an f16 minimum `m`, then 16 bytes of 4-bit `q` as in Q4_0: `w = d·q + m`.
    Q4_1,
}

impl Format {
    pub(super) fn of(dtype: GgmlDType) -> Option<Self> {
        match dtype {
            GgmlDType::Q8_0 => Some(Format::Q8_0),
            GgmlDType::Q4_0 => Some(Format::Q4_0),
            GgmlDType::Q4_1 => Some(Format::Q4_1),
            _ => None,
        }
    }

    /// Bytes per block.
    pub(super) const fn bytes(self) -> usize {
        match self {
            Format::Q8_0 => 2 + BLOCK,
            Format::Q4_0 => 2 + BLOCK / 2,
            Format::Q4_1 => 4 + BLOCK / 2,
        }
    }

    /// The quantised `q`'s bytes, checked against its `(rows, k)` shape.
    pub(super) fn bytes_of(self, q: &QTensor) -> candle_core::Result<std::borrow::Cow<'_, [u8]>> {
        let data = q.data()?;
        let (rows, k) = q.shape().dims2()?;
        if data.len() != rows * k / BLOCK * self.bytes() {
            candle_core::bail!(
                "{self:?} weight holds {} bytes for {rows} rows of {k}",
                data.len()
            );
        }
        Ok(data)
    }
}

/// The quantised matrix `q: (M, K)` expanded to f32, in parallel (candle's `dequantize` runs on
/// one thread). `None` for other block types, other devices, or rows that are not whole blocks.
pub fn dequantize_parallel(q: &QTensor) -> candle_core::Result<Option<Tensor>> {
    let &[m, k] = q.shape().dims() else {
        return Ok(None);
    };
    let Some(f) = Format::of(q.dtype()) else {
        return Ok(None);
    };
    if !matches!(q.device(), Device::Cpu) || k % BLOCK != 0 {
        return Ok(None);
    }
    let data = f.bytes_of(q)?;
    let mut out = vec![0f32; m * k];
    const BLOCKS_PER_TASK: usize = 1024;
    out.par_chunks_mut(BLOCKS_PER_TASK * BLOCK)
        .zip(data.par_chunks(BLOCKS_PER_TASK * f.bytes()))
        .for_each(|(out, data)| simd_run(DequantizeBlocks(f, out, data)));
    Ok(Some(Tensor::from_vec(out, (m, k), &Device::Cpu)?))
}

simd_kernel!(
    /// Blocks of format `f` expanded into `out` (32 values per block), as candle expands them.
    DequantizeBlocks<'a>(f: Format, out: &'a mut [f32], data: &'a [u8]) -> () {
        for (out, block) in out.chunks_exact_mut(BLOCK).zip(data.chunks_exact(f.bytes())) {
            let d = f16_to_f32(u16::from_le_bytes([block[0], block[1]]));
            match f {
                Format::Q8_0 => {
                    for (o, &v) in out.iter_mut().zip(&block[2..]) {
                        *o = d * f32::from(v as i8);
                    }
                }
                Format::Q4_0 | Format::Q4_1 => {
                    let (m, q) = match f {
                        Format::Q4_1 => {
                            (f16_to_f32(u16::from_le_bytes([block[2], block[3]])), &block[4..])
                        }
                        _ => (0.0, &block[2..]),
                    };
                    let (lo, hi) = out.split_at_mut(BLOCK / 2);
                    for ((l, h), &v) in lo.iter_mut().zip(hi).zip(q) {
                        if f == Format::Q4_1 {
                            *l = f32::from(v & 15) * d + m;
                            *h = f32::from(v >> 4) * d + m;
                        } else {
                            *l = (f32::from(v & 15) - 8.0) * d;
                            *h = (f32::from(v >> 4) - 8.0) * d;
                        }
                    }
                }
            }
        }
    }
);

/// An IEEE half-precision value's bits as f32 (exact; GGUF's scales are finite).
#[inline(always)]
pub(super) fn f16_to_f32(h: u16) -> f32 {
    let sign = u32::from(h & 0x8000) << 16;
    let exp = u32::from(h >> 10) & 0x1f;
    let mantissa = u32::from(h) & 0x3ff;
    let magnitude = match exp {
        // Subnormal (or zero): mantissa × 2⁻²⁴.
        0 => mantissa as f32 * f32::from_bits(0x3380_0000),
        // Infinity or NaN.
        0x1f => f32::from_bits(0x7f80_0000 | (mantissa << 13)),
        // Rebias the exponent from 15 to 127.
        _ => f32::from_bits(((exp + 112) << 23) | (mantissa << 13)),
    };
    f32::from_bits(magnitude.to_bits() | sign)
}

#[cfg(test)]
mod tests {
    use super::super::tests::rand;
    use super::*;

    /// Every f16 bit pattern as a Q8_0 scale times 1, expanded by candle (through the `half`
    /// crate): our conversion gives the same f32 bits.
    #[test]
    fn half_floats_convert_exactly() {
        use candle_core::quantized::QStorage;
        let mut data = Vec::with_capacity(65536 * Format::Q8_0.bytes());
        for bits in 0..=u16::MAX {
            data.extend_from_slice(&bits.to_le_bytes());
            data.push(1);
            data.extend_from_slice(&[0; BLOCK - 1]);
        }
        let storage =
            QStorage::from_data(std::borrow::Cow::Owned(data), &Device::Cpu, GgmlDType::Q8_0)
                .unwrap();
        let q = QTensor::new(storage, (65536, BLOCK)).unwrap();
        let reference = q
            .dequantize(&Device::Cpu)
            .unwrap()
            .to_vec2::<f32>()
            .unwrap();
        for (bits, row) in (0..=u16::MAX).zip(reference) {
            let ours = f16_to_f32(bits);
            if row[0].is_nan() {
                assert!(ours.is_nan(), "{bits:#06x}");
            } else {
                assert_eq!(ours.to_bits(), row[0].to_bits(), "{bits:#06x}");
            }
        }
    }

    #[test]
    fn dequantises_as_candle_does() {
        let dev = Device::Cpu;
        let w = rand(&[37, 2048], 80);
        for dtype in [GgmlDType::Q8_0, GgmlDType::Q4_0, GgmlDType::Q4_1] {
            let q = QTensor::quantize(&w, dtype).unwrap();
            let ours = dequantize_parallel(&q).unwrap().expect("applies");
            let candle = q.dequantize(&dev).unwrap();
            assert_eq!(
                ours.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
                candle.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
                "{dtype:?}"
            );
        }
    }

    #[test]
    fn other_block_types_are_left_to_candle() {
        let w = rand(&[4, 256], 81);
        let q = QTensor::quantize(&w, GgmlDType::Q4K).unwrap();
        assert!(dequantize_parallel(&q).unwrap().is_none());
    }
}
