//! Decoding kernels: one position times a weight matrix, streamed (no gradient).

use candle_core::{bail, Storage, Tensor};
use rayon::prelude::*;

use super::{dot, fused, simd_run, slice, with_data, SEQUENTIAL_BELOW};

/// `x: (1, C)` times `w: (V, C)` transposed → `(1, V)`: a projection (or the LM head) for a single
/// decoding position. A decode step is bound by reading the weights, so this streams each row
/// once: the rows are split into equal bands, a few per thread (a 512-row band apiece left one
/// thread with 512 rows of a 576-row projection and the other with 64), and each band is read in
/// order, a row at a time ([`DotRows`]). Tracked tensors (training) take the plain matmul.
pub fn matvec_rows(x: &Tensor, w: &Tensor) -> candle_core::Result<Tensor> {
    let mut out = matvec_rows_many(x, &[w])?;
    Ok(out.remove(0))
}

/// [`matvec_rows`] for several weights `(V_i, C)` that take the same `x` (a layer's query, key and
/// value projections, or its gate and up projections), with the bands of all of them handed to
/// the threads at once: one wake-up of the thread pool instead of one per weight, which is a large
/// part of a small model's decode step. Each weight is read as [`matvec_rows`] reads it alone, so
/// the results are the same to the bit. No gradient: tracked tensors take the plain matmul.
pub fn matvec_rows_many(x: &Tensor, ws: &[&Tensor]) -> candle_core::Result<Vec<Tensor>> {
    let (n, c) = x.dims2()?;
    let mut shapes = Vec::with_capacity(ws.len());
    for w in ws {
        shapes.push(w.dims2()?);
    }
    let streams = n == 1
        && c > 0
        && fused(x)
        && !x.track_op()
        && ws.iter().all(|w| !w.track_op())
        && ws
            .iter()
            .zip(&shapes)
            .all(|(w, &(v, c2))| c2 == c && v > 0 && fused(w) && w.is_contiguous());
    if !streams {
        return ws.iter().map(|w| x.matmul(&w.t()?)).collect();
    }
    let guards: Vec<_> = ws.iter().map(|w| w.storage_and_layout()).collect();
    let weights = guards
        .iter()
        .map(|(storage, layout)| match &**storage {
            Storage::Cpu(s) => slice(s, layout),
            _ => bail!("expected a CPU tensor"),
        })
        .collect::<candle_core::Result<Vec<&[f32]>>>()?;
    let mut outs: Vec<Vec<f32>> = shapes.iter().map(|&(v, _)| vec![0f32; v]).collect();
    with_data(x, |x| {
        let mut bands: Vec<(&[f32], &mut [f32])> = Vec::new();
        for ((out, w), &(v, _)) in outs.iter_mut().zip(&weights).zip(&shapes) {
            let band = band_rows(v, c);
            bands.extend(w.chunks(band * c).zip(out.chunks_mut(band)));
        }
        bands
            .into_par_iter()
            .for_each(|(rows, out)| simd_run(DotRows(x, rows, out)));
    })?;
    outs.into_iter()
        .map(|out| {
            let v = out.len();
            Tensor::from_vec(out, (1, v), x.device())
        })
        .collect()
}

/// Rows per band of [`matvec_rows_many`] (and of the quantised products) for `v` rows of `c`
/// columns: four bands per thread (so a thread that starts late still gets a share), a multiple
/// of four rows (the quantised kernels' pass), and none
/// smaller than [`SEQUENTIAL_BELOW`] weights (below that, handing a band to another thread costs
/// more than reading it).
pub(super) fn band_rows(v: usize, c: usize) -> usize {
    let bands = rayon::current_num_threads() * 4;
    let least = (SEQUENTIAL_BELOW / c).max(1);
    v.div_ceil(bands).max(least).next_multiple_of(4)
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
    /// Rows per band.
    const BAND: usize = 64;
    let out = with_data(x, |x| {
        with_data(w, |w| {
            let band = |(x, w): (&[f32], &[f32])| {
                let mut partial = vec![0f32; cols];
                simd_run(Columns(x, w, &mut partial));
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

/// Σ `data`, read once by the pool's threads in 4 MiB bands: how fast this machine streams f32
/// from memory, which bounds a decode step (every weight is read once per token). For
/// `tunesmith bench`, over a buffer far larger than the caches.
pub fn sum_streamed(data: &[f32]) -> f32 {
    data.par_chunks(1 << 20).map(|c| simd_run(Sum(c))).sum()
}

simd_kernel!(
    /// Σ `x` in sixty-four lanes (four AVX-512 vectors, eight AVX2 ones) of independent sums, so
    /// that the loads, not the adds, set the pace.
    Sum<'a>(x: &'a [f32]) -> f32 {
        let mut lanes = [0f32; 64];
        let mut chunks = x.chunks_exact(64);
        for c in &mut chunks {
            for l in 0..64 {
                lanes[l] += c[l];
            }
        }
        lanes.iter().sum::<f32>() + chunks.remainder().iter().sum::<f32>()
    }
);

simd_kernel!(
    AddInto<'a>(out: &'a mut [f32], p: &'a [f32]) -> () {
        for (o, v) in out.iter_mut().zip(p) {
            *o += v;
        }
    }
);

simd_kernel!(
    /// `out[r] = x · rows[r]` for the row-major `rows` (one per output), a row at a time with
    /// sixty-four independent sums, so that the band is read as one sequential stream, which the
    /// hardware prefetcher follows to its end (`x` stays in the first-level cache). Four rows side
    /// by side, one load of `x` serving four rows and each row's bytes asked for ahead, read
    /// 19–24 GB/s on 576- and 768-wide rows where this reads 26–30 GB/s (2 threads, AMD EPYC;
    /// the machine's plain streaming sum 33–43 GB/s in the same runs).
    DotRows<'a>(x: &'a [f32], rows: &'a [f32], out: &'a mut [f32]) -> () {
        let c = x.len();
        let body = c / 64 * 64;
        let (xb, xt) = x.split_at(body);
        for (o, w) in out.iter_mut().zip(rows.chunks_exact(c)) {
            let (wb, wt) = w.split_at(body);
            let mut acc = [0f32; 64];
            for (xs, ws) in xb.chunks_exact(64).zip(wb.chunks_exact(64)) {
                for l in 0..64 {
                    acc[l] += xs[l] * ws[l];
                }
            }
            *o = acc.iter().sum::<f32>() + dot(xt, wt);
        }
    }
);

simd_kernel!(
    /// `out += x @ w` for the row-major `w: (x.len(), out.len())`, a row at a time: the rows are
    /// read as one sequential stream while `out` stays in the first-level cache. Four rows per
    /// pass (one load and store of `out` per four multiply-adds, but four streams a row apart)
    /// read GPT-2's twelve layers of Conv1D weights 7–17 % more slowly (medians of fifteen
    /// interleaved passes, three runs).
    Columns<'a>(x: &'a [f32], w: &'a [f32], out: &'a mut [f32]) -> () {
        let cols = out.len();
        for (&xi, row) in x.iter().zip(w.chunks_exact(cols)) {
            for (o, &r) in out.iter_mut().zip(row) {
                *o += xi * r;
            }
        }
    }
);

/// How far ahead of a streaming read the quantised products ask for memory (`prefetcht0`, in
/// `quant_matvec`), so that the cores do not wait on each line's first touch. Streaming 145 MB of
/// Q8_0 weights on two cores: 6–9 GB/s without, 9–13 with 1 KB ahead, 9–15 with 2 or 4 KB. The
/// f32 products read their rows in order instead, which the hardware prefetcher follows (asking
/// ahead as well made no difference there).
pub(super) const PREFETCH_AHEAD: usize = 2048;

#[cfg(test)]
mod tests {
    use super::super::tests::{max_diff, rand};
    use super::*;

    #[test]
    fn matvec_matches_matmul() {
        // Widths below, at and past the kernel's sixty-four columns (with a tail); row counts
        // that are and are not whole groups of four (the bands'), in one band and in several.
        for (c, v, seed) in [
            (37, 1100, 6),
            (16, 3, 20),
            (5, 2, 22),
            (576, 1538, 24),
            (100, 9, 26),
        ] {
            let (x, w) = (rand(&[1, c], seed), rand(&[v, c], seed + 1));
            let want = x.matmul(&w.t().unwrap()).unwrap();
            assert!(max_diff(&matvec_rows(&x, &w).unwrap(), &want) < 1e-4);
        }
    }

    #[test]
    fn streamed_sum_adds_every_element() {
        // Several 4 MiB bands, a band that is not whole, and a tail shorter than the 64 lanes;
        // integer values, so the sum is exact whatever the order.
        let n = 3 * (1 << 20) + 64 * 5 + 7;
        let data: Vec<f32> = (0..n).map(|i| (i % 3) as f32).collect();
        let want: f64 = data.iter().map(|&v| v as f64).sum();
        assert_eq!(sum_streamed(&data) as f64, want);
        assert_eq!(sum_streamed(&[]), 0.0);
    }

    #[test]
    fn matvec_many_is_each_matvec() {
        let x = rand(&[1, 72], 30);
        let ws = [
            rand(&[576, 72], 31),
            rand(&[3, 72], 32),
            rand(&[1021, 72], 33),
        ];
        let refs: Vec<&Tensor> = ws.iter().collect();
        let many = matvec_rows_many(&x, &refs).unwrap();
        assert_eq!(many.len(), 3);
        for (y, w) in many.iter().zip(&ws) {
            // Bit for bit what the weight gives alone, and the product it stands for.
            let alone = matvec_rows(&x, w).unwrap();
            assert_eq!(y.to_vec2::<f32>().unwrap(), alone.to_vec2::<f32>().unwrap());
            assert!(max_diff(y, &x.matmul(&w.t().unwrap()).unwrap()) < 1e-4);
        }
        // A strided weight, several rows of x or a tracked weight take the plain matmul, with the
        // same answer (the tracked one stays on the gradient's path).
        let strided = rand(&[72, 40], 34).t().unwrap();
        let y = matvec_rows_many(&x, &[&ws[1], &strided]).unwrap();
        assert!(max_diff(&y[1], &x.matmul(&strided.t().unwrap()).unwrap()) < 1e-4);
        let x2 = rand(&[2, 72], 35);
        let y = matvec_rows_many(&x2, &refs).unwrap();
        assert!(max_diff(&y[2], &x2.matmul(&ws[2].t().unwrap()).unwrap()) < 1e-4);
        let var = candle_core::Var::from_tensor(&ws[0]).unwrap();
        let y = matvec_rows_many(&x, &[var.as_tensor()]).unwrap().remove(0);
        assert!(y.track_op());
        assert!(matvec_rows_many(&x, &[]).unwrap().is_empty());
    }
}
