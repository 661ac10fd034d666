//! A safe f32 matrix product over slices: `dst = [dst +] scale · a · b`.
//!
//! The engine has no `unsafe` and candle's matmul always allocates a fresh output. The fused LM
//! head and cross-entropy needs to write products into rows of an existing buffer and to add a
//! product into an existing gradient (`dW += dLᵀ·h`, chunk after chunk) without allocating the
//! `(N, vocab)` logits. This crate checks every view against its slice, then calls the `gemm`
//! crate, which candle's CPU backend already uses for its own matmuls.

use std::fmt;

/// A read-only strided view of a matrix: element `(r, c)` is `data[r·row_stride + c·col_stride]`.
#[derive(Clone, Copy, Debug)]
pub struct Mat<'a> {
    data: &'a [f32],
    rows: usize,
    cols: usize,
    row_stride: usize,
    col_stride: usize,
}

impl<'a> Mat<'a> {
    /// A row-major `(rows, cols)` matrix at the start of `data`.
    pub fn rows(data: &'a [f32], rows: usize, cols: usize) -> Result<Self, ShapeError> {
        Self::strided(data, rows, cols, cols, 1)
    }

    /// Any strided view; fails when an element would fall outside `data`.
    pub fn strided(
        data: &'a [f32],
        rows: usize,
        cols: usize,
        row_stride: usize,
        col_stride: usize,
    ) -> Result<Self, ShapeError> {
        check_bounds("matrix", data.len(), rows, cols, row_stride, col_stride)?;
        Ok(Self {
            data,
            rows,
            cols,
            row_stride,
            col_stride,
        })
    }

    /// The transpose (a view: nothing is copied).
    pub fn t(self) -> Self {
        Self {
            rows: self.cols,
            cols: self.rows,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
            ..self
        }
    }

    pub fn shape(&self) -> (usize, usize) {
        (self.rows, self.cols)
    }
}

/// A writable row-major matrix: row `r` starts at `data[r·row_stride]` and its `cols` elements
/// are adjacent, so no two elements share a place (what makes parallel writes sound).
#[derive(Debug)]
pub struct MatMut<'a> {
    data: &'a mut [f32],
    rows: usize,
    cols: usize,
    row_stride: usize,
}

impl<'a> MatMut<'a> {
    /// A row-major `(rows, cols)` matrix at the start of `data`.
    pub fn rows(data: &'a mut [f32], rows: usize, cols: usize) -> Result<Self, ShapeError> {
        Self::with_row_stride(data, rows, cols, cols)
    }

    /// Rows `row_stride` apart (`row_stride ≥ cols`): a block of columns of a wider matrix.
    pub fn with_row_stride(
        data: &'a mut [f32],
        rows: usize,
        cols: usize,
        row_stride: usize,
    ) -> Result<Self, ShapeError> {
        if rows > 1 && row_stride < cols {
            return Err(ShapeError(format!(
                "output rows {row_stride} apart would overlap their {cols} columns"
            )));
        }
        check_bounds("output", data.len(), rows, cols, row_stride, 1)?;
        Ok(Self {
            data,
            rows,
            cols,
            row_stride,
        })
    }
}

/// Why a product was refused: shapes that do not match or a view outside its slice.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShapeError(String);

impl fmt::Display for ShapeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "matrix product: {}", self.0)
    }
}

impl std::error::Error for ShapeError {}

/// Checks that the last element of a `(rows, cols)` view lies inside `len`, with no overflow and
/// strides that fit the `isize` gemm takes.
fn check_bounds(
    what: &str,
    len: usize,
    rows: usize,
    cols: usize,
    row_stride: usize,
    col_stride: usize,
) -> Result<(), ShapeError> {
    if rows == 0 || cols == 0 {
        return Ok(());
    }
    let last = (rows - 1)
        .checked_mul(row_stride)
        .zip((cols - 1).checked_mul(col_stride))
        .and_then(|(a, b)| a.checked_add(b));
    match last {
        Some(last)
            if last < len && isize::try_from(row_stride.max(col_stride).max(len)).is_ok() =>
        {
            Ok(())
        }
        _ => Err(ShapeError(format!(
            "a ({rows}, {cols}) {what} with strides ({row_stride}, {col_stride}) does not fit \
             in {len} elements"
        ))),
    }
}

/// `dst = scale · a · b`, or `dst += scale · a · b` when `accumulate`. Runs on rayon's pool.
pub fn matmul(
    dst: MatMut<'_>,
    a: Mat<'_>,
    b: Mat<'_>,
    accumulate: bool,
    scale: f32,
) -> Result<(), ShapeError> {
    let threads = rayon::current_num_threads();
    product(dst, a, b, accumulate, scale, threads)
}

/// [`matmul`] on the calling thread alone: for small products that are themselves one of many
/// parallel tasks (a head's attention), where splitting each again costs more than it gains.
pub fn matmul_here(
    dst: MatMut<'_>,
    a: Mat<'_>,
    b: Mat<'_>,
    accumulate: bool,
    scale: f32,
) -> Result<(), ShapeError> {
    product(dst, a, b, accumulate, scale, 1)
}

fn product(
    dst: MatMut<'_>,
    a: Mat<'_>,
    b: Mat<'_>,
    accumulate: bool,
    scale: f32,
    threads: usize,
) -> Result<(), ShapeError> {
    let (m, k) = a.shape();
    let (k2, n) = b.shape();
    if k != k2 || dst.rows != m || dst.cols != n {
        return Err(ShapeError(format!(
            "({m}, {k}) · ({k2}, {n}) into ({}, {})",
            dst.rows, dst.cols
        )));
    }
    if m == 0 || n == 0 {
        return Ok(());
    }
    if k == 0 {
        if !accumulate {
            for r in 0..m {
                let start = r * dst.row_stride;
                dst.data[start..start + n].fill(0.0);
            }
        }
        return Ok(());
    }
    let parallelism = if threads > 1 {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    };
    // The strides fit in isize: checked when each view was made.
    let s = |x: usize| x as isize;
    // SAFETY: every element gemm touches lies inside its slice: for each view the last element,
    // `(rows−1)·row_stride + (cols−1)·col_stride`, was checked against the slice's length, and the
    // shapes were checked to agree above (m, n, k all non-zero here). `dst` is a unique borrow, so
    // it overlaps neither input, and its rows are `row_stride ≥ cols` apart with unit column
    // stride, so distinct (row, col) pairs are distinct elements and gemm's threads never write
    // the same place. The pointers stay valid for the call: the borrows outlive it.
    #[allow(unsafe_code)]
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.data.as_mut_ptr(),
            1,
            s(dst.row_stride),
            accumulate,
            a.data.as_ptr(),
            s(a.col_stride),
            s(a.row_stride),
            b.data.as_ptr(),
            s(b.col_stride),
            s(b.row_stride),
            1.0,
            scale,
            false,
            false,
            false,
            parallelism,
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The product by its definition, in f64.
    fn naive(a: &Mat, b: &Mat) -> Vec<f64> {
        let ((m, k), n) = (a.shape(), b.shape().1);
        let at = |v: &Mat, r: usize, c: usize| v.data[r * v.row_stride + c * v.col_stride] as f64;
        let mut out = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                out[i * n + j] = (0..k).map(|p| at(a, i, p) * at(b, p, j)).sum();
            }
        }
        out
    }

    fn data(len: usize, seed: u32) -> Vec<f32> {
        (0..len)
            .map(|i| {
                ((i as u32).wrapping_mul(2654435761).wrapping_add(seed) >> 16) as f32 / 65536.0
                    - 0.5
            })
            .collect()
    }

    #[test]
    fn products_match_the_definition_for_plain_transposed_and_strided_views() {
        let (m, k, n) = (37, 29, 45);
        let a = data(m * k, 1);
        let bt = data(n * k, 2);
        // b is given transposed (n, k), read as (k, n).
        let (va, vb) = (
            Mat::rows(&a, m, k).unwrap(),
            Mat::rows(&bt, n, k).unwrap().t(),
        );
        let want = naive(&va, &vb);
        // Into columns 3.. of a wider (m, n + 5) buffer, then added to itself at scale 0.5.
        let wide = n + 5;
        let mut out = vec![7.0f32; m * wide];
        let dst = MatMut::with_row_stride(&mut out[3..], m, n, wide).unwrap();
        matmul(dst, va, vb, false, 2.0).unwrap();
        for i in 0..m {
            assert_eq!(
                &out[i * wide..i * wide + 3],
                &[7.0; 3],
                "left of the block untouched"
            );
            for j in 0..n {
                let got = out[i * wide + 3 + j] as f64;
                assert!((got - 2.0 * want[i * n + j]).abs() < 1e-4, "({i}, {j})");
            }
        }
        let dst = MatMut::with_row_stride(&mut out[3..], m, n, wide).unwrap();
        matmul(dst, va, vb, true, -0.5).unwrap();
        for i in 0..m {
            for j in 0..n {
                let got = out[i * wide + 3 + j] as f64;
                assert!((got - 1.5 * want[i * n + j]).abs() < 1e-4, "({i}, {j})");
            }
        }
        // The same product on this thread alone.
        let mut here = vec![0f32; m * n];
        matmul_here(MatMut::rows(&mut here, m, n).unwrap(), va, vb, false, 1.0).unwrap();
        for (got, want) in here.iter().zip(&want) {
            assert!((*got as f64 - want).abs() < 1e-4);
        }
    }

    #[test]
    fn large_products_on_the_thread_pool_ignore_what_the_output_held() {
        // Large enough for gemm's packing and threads; `b` read through a transposed view (row
        // stride 1), as the head's weight gradient reads the logits.
        let (m, k, n) = (130, 257, 190);
        let a = data(m * k, 3);
        let bt = data(n * k, 4);
        let (va, vb) = (
            Mat::rows(&a, m, k).unwrap(),
            Mat::rows(&bt, n, k).unwrap().t(),
        );
        let want = naive(&va, &vb);
        let mut out = vec![f32::NAN; m * n];
        matmul(MatMut::rows(&mut out, m, n).unwrap(), va, vb, false, 1.0).unwrap();
        for (g, w) in out.iter().zip(&want) {
            assert!((*g as f64 - w).abs() < 1e-3, "{g} vs {w}");
        }
    }

    #[test]
    fn a_single_output_row_may_have_any_row_stride() {
        let mut out = vec![5.0f32; 3];
        let dst = MatMut::with_row_stride(&mut out, 1, 3, 0).unwrap();
        let (a, b) = (Mat::rows(&[], 1, 0).unwrap(), Mat::rows(&[], 0, 3).unwrap());
        matmul(dst, a, b, false, 1.0).unwrap();
        assert_eq!(out, vec![0.0; 3]);
        let (a, b) = ([2.0f32], [1.0f32, 2.0, 3.0]);
        let (a, b) = (Mat::rows(&a, 1, 1).unwrap(), Mat::rows(&b, 1, 3).unwrap());
        let mut out = vec![1.0f32; 3];
        matmul(
            MatMut::with_row_stride(&mut out, 1, 3, 0).unwrap(),
            a,
            b,
            true,
            1.0,
        )
        .unwrap();
        assert_eq!(out, vec![3.0, 5.0, 7.0]);
    }

    #[test]
    fn an_empty_inner_dimension_zeroes_or_keeps_the_output() {
        let mut out = vec![3.0f32; 6];
        let (a, b) = (Mat::rows(&[], 2, 0).unwrap(), Mat::rows(&[], 0, 3).unwrap());
        matmul(MatMut::rows(&mut out, 2, 3).unwrap(), a, b, true, 1.0).unwrap();
        assert_eq!(out, vec![3.0; 6]);
        matmul(MatMut::rows(&mut out, 2, 3).unwrap(), a, b, false, 1.0).unwrap();
        assert_eq!(out, vec![0.0; 6]);
    }

    #[test]
    fn views_outside_their_slices_and_mismatched_shapes_are_refused() {
        let v = vec![0f32; 12];
        assert!(Mat::rows(&v, 3, 5).is_err());
        assert!(Mat::strided(&v, 2, 2, 11, 1).is_err());
        assert!(Mat::strided(&v, 2, 2, usize::MAX, 1).is_err());
        assert!(Mat::strided(&v, 4, 3, 3, 1).is_ok());
        let mut o = vec![0f32; 12];
        assert!(
            MatMut::with_row_stride(&mut o, 3, 4, 3).is_err(),
            "overlapping rows"
        );
        assert!(
            MatMut::with_row_stride(&mut o, 2, 4, 9).is_err(),
            "past the end"
        );
        let a = Mat::rows(&v, 3, 4).unwrap();
        let err = matmul(MatMut::rows(&mut o, 3, 4).unwrap(), a, a, false, 1.0).unwrap_err();
        assert!(err.to_string().contains("(3, 4) · (3, 4)"), "{err}");
    }
}
