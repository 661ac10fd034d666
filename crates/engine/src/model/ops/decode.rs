//! Decoding kernels: one position times a weight matrix, streamed (no gradient).

use candle_core::Tensor;
use rayon::prelude::*;

use super::{fused, simd_run, with_data, SEQUENTIAL_BELOW};

/// `x: (1, C)` times `w: (V, C)` transposed → `(1, V)`: the LM head for a single decoding position.
/// A decode step is bound by reading the `V × C` embedding, so this streams each row once, in
/// parallel, instead of a general matmul. No gradient (inference only).
pub fn matvec_rows(x: &Tensor, w: &Tensor) -> candle_core::Result<Tensor> {
    let (n, c) = x.dims2()?;
    let (v, c2) = w.dims2()?;
    if n != 1 || c != c2 || c == 0 || !fused(x) || !fused(w) || !w.is_contiguous() {
        return x.matmul(&w.t()?);
    }
    let out = with_data(x, |x| {
        with_data(w, |w| {
            let mut out = vec![0f32; v];
            out.par_chunks_mut(512)
                .enumerate()
                .for_each(|(chunk, out)| {
                    let rows = &w[chunk * 512 * c..(chunk * 512 + out.len()) * c];
                    simd_run(DotRows(x, rows, out));
                });
            out
        })
    })??;
    Tensor::from_vec(out, (1, v), x.device())
}

/// `x: (1, K)` times `w: (K, N)` → `(1, N)` for one decoding position through a HF Conv1D. The
/// weight is read as it lies, whole rows in order: each task takes a band of rows and sums
/// `x[i]·w[i, :]` into its own partial output, and the partials are added in band order (so the
/// result does not depend on the threads). Handing each thread a slice of output columns instead
/// read every row in pieces, a stride apart, which streamed memory more slowly. Falls back to a
/// matmul off the CPU, for other dtypes, a strided `w`, empty or mismatched shapes, and when
/// gradients are tracked.
pub fn vecmat(x: &Tensor, w: &Tensor) -> candle_core::Result<Tensor> {
    let (n, k) = x.dims2()?;
    let (k2, cols) = w.dims2()?;
    if n != 1
        || k != k2
        || k == 0
        || cols == 0
        || !fused(x)
        || !fused(w)
        || !w.is_contiguous()
        || x.track_op()
        || w.track_op()
    {
        return x.matmul(w);
    }
    /// Rows per band: a multiple of the kernel's four.
    const BAND: usize = 64;
    let out = with_data(x, |x| {
        with_data(w, |w| {
            let band = |(x, w): (&[f32], &[f32])| {
                let mut partial = vec![0f32; cols];
                simd_run(Columns(x, w, cols, 0, &mut partial));
                partial
            };
            let partials: Vec<Vec<f32>> = if w.len() < SEQUENTIAL_BELOW * 4 {
                x.chunks(BAND)
                    .zip(w.chunks(BAND * cols))
                    .map(band)
                    .collect()
            } else {
                x.par_chunks(BAND)
                    .zip(w.par_chunks(BAND * cols))
                    .map(band)
                    .collect()
            };
            let mut partials = partials.into_iter();
            let mut out = partials.next().unwrap_or_else(|| vec![0f32; cols]);
            for p in partials {
                simd_run(AddInto(&mut out, &p));
            }
            out
        })
    })??;
    Tensor::from_vec(out, (1, cols), x.device())
}

simd_kernel!(
    AddInto<'a>(out: &'a mut [f32], p: &'a [f32]) -> () {
        for (o, v) in out.iter_mut().zip(p) {
            *o += v;
        }
    }
);

simd_kernel!(
    /// `out[r] = x · rows[r]` for the row-major `rows` (one per output).
    DotRows<'a>(x: &'a [f32], rows: &'a [f32], out: &'a mut [f32]) -> () {
        for (o, row) in out.iter_mut().zip(rows.chunks_exact(x.len())) {
            *o = dot(x, row);
        }
    }
);

simd_kernel!(
    /// `out += x @ w[:, start..start + out.len()]` for the row-major `w: (x.len(), cols)`: four
    /// rows per pass, one load and store of the accumulators per four multiply-adds.
    Columns<'a>(x: &'a [f32], w: &'a [f32], cols: usize, start: usize, out: &'a mut [f32]) -> () {
        let len = out.len();
        let row = |i: usize| &w[i * cols + start..i * cols + start + len];
        let mut i = 0;
        while i + 4 <= x.len() {
            let (r0, r1, r2, r3) = (row(i), row(i + 1), row(i + 2), row(i + 3));
            let (x0, x1, x2, x3) = (x[i], x[i + 1], x[i + 2], x[i + 3]);
            for j in 0..len {
                out[j] += x0 * r0[j] + x1 * r1[j] + x2 * r2[j] + x3 * r3[j];
            }
            i += 4;
        }
        for (i, &xi) in x.iter().enumerate().skip(i) {
            for (o, &r) in out.iter_mut().zip(row(i)) {
                *o += xi * r;
            }
        }
    }
);

/// Dot product with eight independent accumulators so the compiler vectorises it.
#[inline(always)]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}
