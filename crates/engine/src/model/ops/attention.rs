//! Causal self-attention over whole sequences (training, evaluation) as one op, with its backward.
//!
//! As a composition of candle ops (split into heads, scale, `QKᵀ`, causal softmax, `·V`, merge the
//! heads) a layer's attention is about twenty recorded ops. candle's backward pass gives each of
//! them a zeroed gradient buffer and an add, several the size of the `(B·H, T, T)` scores, and
//! keeps every layer's scores and weights until the step ends. This op reads `q`, `k` and `v` in
//! the projections' own `(B·T, heads·D)` layout, writes its output in the layout the output
//! projection reads, works a head at a time on the thread pool, skips the masked half of each
//! head's products a block of queries at a time, and keeps nothing: the backward pass recomputes
//! each head's weights (one more `QKᵀ` product, a small share of the layer's work).

use candle_core::{bail, CpuStorage, CustomOp1, CustomOp3, Layout, Shape, Tensor};
use rayon::prelude::*;
use tunesmith_gemm::{matmul_here, Mat, MatMut};

use super::dropout::Dropout;
use super::{activation, causal_softmax, dot, shape_err, simd_run, slice, with_data};

/// Queries per product: the masked part of the scores is skipped a block at a time.
const BLOCK: usize = 64;

/// The shape of an attention call: `batch` sequences of `time` positions, `q_heads` query heads
/// sharing `kv_heads` key/value heads (grouped-query attention; equal for GPT-2), each `dim` wide.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Heads {
    pub batch: usize,
    pub time: usize,
    pub q_heads: usize,
    pub kv_heads: usize,
    pub dim: usize,
}

impl Heads {
    fn check(&self, q: &Tensor, k: &Tensor, v: &Tensor) -> candle_core::Result<()> {
        let Heads {
            batch: b,
            time: t,
            q_heads: h,
            kv_heads: kv,
            dim: d,
        } = *self;
        if h == 0 || kv == 0 || h % kv != 0 || d == 0 {
            bail!("attention: {h} query heads cannot share {kv} key/value heads of width {d}");
        }
        let want_q = [b * t, h * d];
        let want_kv = [b * t, kv * d];
        if q.dims() != want_q || k.dims() != want_kv || v.dims() != want_kv {
            bail!(
                "attention over {self:?} needs q {want_q:?} and k, v {want_kv:?}, got {:?}, {:?}, {:?}",
                q.dims(),
                k.dims(),
                v.dims()
            );
        }
        Ok(())
    }
}

/// Dropout of the attention weights: probability and seed, the mask being the one
/// [`super::dropout_seeded`] draws over the `(B, H, T, T)` weights with that seed.
pub type AttentionDropout = Option<(f32, u64)>;

/// Causal self-attention: `q: (B·T, H·D)` and `k, v: (B·T, KV·D)`, rows in (sequence, position)
/// order as the projections give them; query head `h` reads key/value head `h / (H / KV)`, and
/// position `i` sees positions `0..=i` of its own sequence. The weights are dropped out as
/// `dropout` says. Returns `(B·T, H·D)`, the heads side by side per row. Differentiable in all
/// three inputs.
pub fn causal_attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    heads: Heads,
    scale: f32,
    dropout: AttentionDropout,
) -> candle_core::Result<Tensor> {
    heads.check(q, k, v)?;
    match CausalAttention::new(heads, scale, dropout) {
        Some(op) if super::fused(q) && super::fused(k) && super::fused(v) => q
            .contiguous()?
            .apply_op3(&k.contiguous()?, &v.contiguous()?, op),
        _ => composed(q, k, v, heads, scale, dropout),
    }
}

/// [`causal_attention`] of the three parts of one `(B·T, 3·H·D)` product, each row `[q | k | v]`
/// (GPT-2's `c_attn`), read where they lie; its gradient comes back in the same layout.
pub fn causal_attention_packed(
    qkv: &Tensor,
    heads: Heads,
    scale: f32,
    dropout: AttentionDropout,
) -> candle_core::Result<Tensor> {
    let c = heads.q_heads * heads.dim;
    if c == 0 || heads.q_heads != heads.kv_heads || qkv.dims() != [heads.batch * heads.time, 3 * c]
    {
        bail!(
            "attention over {heads:?} needs q, k and v of as many heads side by side, \
             ({}, {}), got {:?}",
            heads.batch * heads.time,
            3 * c,
            qkv.dims()
        );
    }
    match CausalAttention::new(heads, scale, dropout) {
        Some(op) if super::fused(qkv) => qkv.contiguous()?.apply_op1(op),
        _ => {
            let part = |i: usize| qkv.narrow(1, i * c, c);
            causal_attention(&part(0)?, &part(1)?, &part(2)?, heads, scale, dropout)
        }
    }
}

/// The same attention as a composition of candle ops (other devices, dropout probabilities of
/// 1 or more, and the tests' reference).
pub(super) fn composed(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    s: Heads,
    scale: f32,
    dropout: AttentionDropout,
) -> candle_core::Result<Tensor> {
    let (b, t, d) = (s.batch, s.time, s.dim);
    let split = |x: &Tensor, n: usize| x.reshape((b, t, n, d))?.transpose(1, 2)?.contiguous();
    attention_of_heads(
        &split(q, s.q_heads)?,
        &split(k, s.kv_heads)?,
        &split(v, s.kv_heads)?,
        scale as f64,
        dropout,
    )
}

/// Causal attention of heads already apart, as a composition of candle ops: `q: (B, H, T, D)`
/// (contiguous) over `k, v: (B, KV, Tk, D)`, the `T` queries being the last of the `Tk`
/// positions (a prompt after a KV cache), query head `h` reading key/value head `h / (H / KV)`;
/// `(B·T, H·D)`. The weights are dropped out with [`super::dropout_seeded`] when `dropout` says.
/// The models' cached paths and [`composed`] share it.
pub fn attention_of_heads(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    scale: f64,
    dropout: AttentionDropout,
) -> candle_core::Result<Tensor> {
    let (b, h, t, d) = q.dims4()?;
    let (kv, tk) = (k.dim(1)?, k.dim(2)?);
    if kv == 0 || h % kv != 0 {
        bail!("{h} query heads cannot share {kv} key/value heads");
    }
    let rep = h / kv;
    // Grouped-query attention without copying k and v: the `rep` query heads that share a
    // key/value head are stacked along the time axis, (B, KV, rep·T, D). The scale goes on q,
    // (rep·T, D), rather than on the (rep·T, Tk) scores.
    let q = q.reshape((b, kv, rep * t, d))?;
    let scores = (q * scale)?.matmul(&k.t()?)?.reshape((b, h, t, tk))?;
    let mut weights = causal_softmax(&scores)?;
    if let Some((p, seed)) = dropout {
        weights = super::dropout_seeded(&weights, p, seed)?;
    }
    weights
        .reshape((b, kv, rep * t, tk))?
        .matmul(v)?
        .reshape((b, h, t, d))?
        .transpose(1, 2)?
        .reshape((b * t, h * d))
}

struct CausalAttention {
    heads: Heads,
    scale: f32,
    dropout: Option<Dropout>,
}

impl CausalAttention {
    /// `None` for a dropout probability the fused op does not take (1 or more, or not a
    /// number: the composition handles them as `dropout_seeded` does); 0 or less drops nothing.
    fn new(heads: Heads, scale: f32, dropout: AttentionDropout) -> Option<Self> {
        let dropout = match dropout {
            Some((p, _)) if p.is_nan() || p >= 1.0 => return None,
            Some((p, seed)) if p > 0.0 => Some(Dropout::new(p, seed)),
            _ => None,
        };
        Some(CausalAttention {
            heads,
            scale,
            dropout,
        })
    }

    /// Where row `i` of query head `j` of sequence `b` starts in the `(B, H, T, T)` weights: the
    /// index the dropout mask is drawn at.
    fn mask_start(&self, b: usize, j: usize, i: usize) -> usize {
        let s = self.heads;
        ((b * s.q_heads + j) * s.time + i) * s.time
    }
}

/// Where q, k or v lies in its buffer: rows `stride` apart, head 0 of row 0 at `offset`.
#[derive(Clone, Copy)]
struct Src<'a> {
    data: &'a [f32],
    stride: usize,
    offset: usize,
}

/// q, k, v, and for the backward pass the output's gradient.
type Srcs<'a> = (Src<'a>, Src<'a>, Src<'a>);

/// A key/value head's gradients: each of its query heads' `(T, D)` dQ, then its dK and dV.
type GroupGrads = (Vec<Vec<f32>>, Vec<f32>, Vec<f32>);

/// Rows `r0..r1` of head `j` of sequence `b`: `(r1 − r0, D)`.
fn head_rows(
    x: Src<'_>,
    s: Heads,
    (b, j): (usize, usize),
    r0: usize,
    r1: usize,
) -> candle_core::Result<Mat<'_>> {
    let start = (b * s.time + r0) * x.stride + x.offset + j * s.dim;
    Mat::strided(&x.data[start..], r1 - r0, s.dim, x.stride, 1).map_err(shape_err)
}

/// Rows `i0..i1` of a row-major matrix `cols` wide, writable.
fn rows_mut(x: &mut [f32], cols: usize, i0: usize, i1: usize) -> candle_core::Result<MatMut<'_>> {
    MatMut::rows(&mut x[i0 * cols..i1 * cols], i1 - i0, cols).map_err(shape_err)
}

/// The first `rows` rows and `cols` columns of a row-major matrix `stride` wide: a block of
/// queries' weights over the keys they see.
fn block(x: &[f32], stride: usize, rows: usize, cols: usize) -> candle_core::Result<Mat<'_>> {
    Mat::strided(x, rows, cols, stride, 1).map_err(shape_err)
}

/// [`block`], writable.
fn block_mut(
    x: &mut [f32],
    stride: usize,
    rows: usize,
    cols: usize,
) -> candle_core::Result<MatMut<'_>> {
    MatMut::with_row_stride(x, rows, cols, stride).map_err(shape_err)
}

/// The blocks of queries: `(i0, i1)` ranges of at most [`BLOCK`] positions.
fn blocks(t: usize) -> impl Iterator<Item = (usize, usize)> {
    (0..t)
        .step_by(BLOCK)
        .map(move |i0| (i0, (i0 + BLOCK).min(t)))
}

impl CausalAttention {
    /// Queries `i0..i1` of head `j` of sequence `b`: their attention weights into the rows of
    /// `p: (≥ i1 − i0, T)`, row `i − i0` the softmax of query `i`'s scores over positions `0..=i`
    /// and zero from there to column `i1`; the columns beyond are neither written nor read. A
    /// block at a time, so a task holds `BLOCK × T` weights, not `T × T`.
    fn weights(
        &self,
        (q, k): (Src<'_>, Src<'_>),
        (b, j): (usize, usize),
        (i0, i1): (usize, usize),
        p: &mut [f32],
    ) -> candle_core::Result<()> {
        let s = self.heads;
        let t = s.time;
        let g = j / (s.q_heads / s.kv_heads);
        let qb = head_rows(q, s, (b, j), i0, i1)?;
        let kb = head_rows(k, s, (b, g), 0, i1)?;
        matmul_here(block_mut(p, t, i1 - i0, i1)?, qb, kb.t(), false, self.scale)
            .map_err(shape_err)?;
        for i in i0..i1 {
            let row = (i - i0) * t;
            let (seen, masked) = p[row..row + i1].split_at_mut(i + 1);
            simd_run(SoftmaxInPlace(seen));
            masked.fill(0.0);
        }
        Ok(())
    }

    /// Multiplies rows `i0..i1` of head `j`'s block (laid out as [`Self::weights`] lays it
    /// out) by the dropout mask, each over the positions its query sees.
    fn drop_rows(&self, x: &mut [f32], (b, j): (usize, usize), (i0, i1): (usize, usize)) {
        if let Some(mask) = &self.dropout {
            let t = self.heads.time;
            for i in i0..i1 {
                let row = (i - i0) * t;
                mask.scale_in_place(&mut x[row..row + i + 1], self.mask_start(b, j, i));
            }
        }
    }

    /// Query head `j` of sequence `b`: its `(T, D)` output.
    fn head_forward(
        &self,
        (q, k, v): Srcs<'_>,
        b: usize,
        j: usize,
    ) -> candle_core::Result<Vec<f32>> {
        let s = self.heads;
        let (t, d, g) = (s.time, s.dim, j / (s.q_heads / s.kv_heads));
        let mut p = vec![0f32; BLOCK.min(t) * t];
        let mut y = vec![0f32; t * d];
        for (i0, i1) in blocks(t) {
            self.weights((q, k), (b, j), (i0, i1), &mut p)?;
            self.drop_rows(&mut p, (b, j), (i0, i1));
            let vb = head_rows(v, s, (b, g), 0, i1)?;
            let pb = block(&p, t, i1 - i0, i1)?;
            matmul_here(rows_mut(&mut y, d, i0, i1)?, pb, vb, false, 1.0).map_err(shape_err)?;
        }
        Ok(y)
    }

    /// Key/value head `g` of sequence `b` and the query heads that read it: each query head's
    /// `(T, D)` dQ, then the group's dK and dV (its query heads' contributions added in order).
    fn group_backward(
        &self,
        (q, k, v): Srcs<'_>,
        dy: Src<'_>,
        b: usize,
        g: usize,
    ) -> candle_core::Result<GroupGrads> {
        let s = self.heads;
        let (t, d) = (s.time, s.dim);
        let rep = s.q_heads / s.kv_heads;
        let block_len = BLOCK.min(t) * t;
        let (mut p, mut ds) = (vec![0f32; block_len], vec![0f32; block_len]);
        // The dropped-out weights, when there is dropout (else `p` serves).
        let mut dropped = vec![0f32; if self.dropout.is_some() { block_len } else { 0 }];
        let (mut dk, mut dv) = (vec![0f32; t * d], vec![0f32; t * d]);
        let mut dqs = Vec::with_capacity(rep);
        for j in g * rep..(g + 1) * rep {
            let mut dq = vec![0f32; t * d];
            for (i0, i1) in blocks(t) {
                let rows = i1 - i0;
                self.weights((q, k), (b, j), (i0, i1), &mut p)?;
                let dyb = head_rows(dy, s, (b, j), i0, i1)?;
                let qb = head_rows(q, s, (b, j), i0, i1)?;
                let kb = head_rows(k, s, (b, g), 0, i1)?;
                let vb = head_rows(v, s, (b, g), 0, i1)?;
                // dV[..i1] += P'[i0..i1, ..i1]ᵀ · dY[i0..i1], P' the dropped-out weights.
                let pb = if self.dropout.is_some() {
                    dropped[..rows * t].copy_from_slice(&p[..rows * t]);
                    self.drop_rows(&mut dropped, (b, j), (i0, i1));
                    block(&dropped, t, rows, i1)?
                } else {
                    block(&p, t, rows, i1)?
                };
                matmul_here(rows_mut(&mut dv, d, 0, i1)?, pb.t(), dyb, true, 1.0)
                    .map_err(shape_err)?;
                // dP' = dY · Vᵀ, dP = dP' through the mask, then dS = P ⊙ (dP − Σ dP⊙P) row by
                // row, in place.
                matmul_here(block_mut(&mut ds, t, rows, i1)?, dyb, vb.t(), false, 1.0)
                    .map_err(shape_err)?;
                self.drop_rows(&mut ds, (b, j), (i0, i1));
                for i in i0..i1 {
                    let row = (i - i0) * t;
                    let (seen, masked) = ds[row..row + i1].split_at_mut(i + 1);
                    simd_run(SoftmaxBackwardInPlace(seen, &p[row..row + i + 1]));
                    masked.fill(0.0);
                }
                // dQ[i0..i1] = scale · dS · K[..i1];  dK[..i1] += scale · dSᵀ · Q[i0..i1]
                let dsb = block(&ds, t, rows, i1)?;
                matmul_here(rows_mut(&mut dq, d, i0, i1)?, dsb, kb, false, self.scale)
                    .map_err(shape_err)?;
                matmul_here(rows_mut(&mut dk, d, 0, i1)?, dsb.t(), qb, true, self.scale)
                    .map_err(shape_err)?;
            }
            dqs.push(dq);
        }
        Ok((dqs, dk, dv))
    }

    /// Every head's `(T, D)` output, ordered (sequence, head).
    fn forward(&self, srcs: Srcs<'_>) -> candle_core::Result<Vec<Vec<f32>>> {
        let (b, h) = (self.heads.batch, self.heads.q_heads);
        (0..b * h)
            .into_par_iter()
            .map(|u| self.head_forward(srcs, u / h, u % h))
            .collect()
    }

    /// Every query head's dQ, ordered (sequence, head), and every key/value head's dK and dV,
    /// ordered (sequence, key/value head).
    #[allow(clippy::type_complexity)]
    fn backward(
        &self,
        srcs: Srcs<'_>,
        dy: Src<'_>,
    ) -> candle_core::Result<(Vec<Vec<f32>>, Vec<Vec<f32>>, Vec<Vec<f32>>)> {
        let (b, kv) = (self.heads.batch, self.heads.kv_heads);
        // One task per key/value head: its query heads add into its dK and dV.
        let parts: Vec<GroupGrads> = (0..b * kv)
            .into_par_iter()
            .map(|u| self.group_backward(srcs, dy, u / kv, u % kv))
            .collect::<candle_core::Result<_>>()?;
        let mut dqs = Vec::with_capacity(b * self.heads.q_heads);
        let (mut dks, mut dvs) = (Vec::with_capacity(b * kv), Vec::with_capacity(b * kv));
        for (dq, dk, dv) in parts {
            dqs.extend(dq);
            dks.push(dk);
            dvs.push(dv);
        }
        Ok((dqs, dks, dvs))
    }
}

/// A contiguous `(B·T, n·D)` buffer as a source.
fn plain(data: &[f32], n: usize, d: usize) -> Src<'_> {
    Src {
        data,
        stride: n * d,
        offset: 0,
    }
}

impl CustomOp3 for CausalAttention {
    fn name(&self) -> &'static str {
        "tunesmith-causal-attention"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let s = self.heads;
        let (h, kv, d) = (s.q_heads, s.kv_heads, s.dim);
        let srcs = (
            plain(slice(s1, l1)?, h, d),
            plain(slice(s2, l2)?, kv, d),
            plain(slice(s3, l3)?, kv, d),
        );
        let y = merge(&self.forward(srcs)?, s, h);
        Ok((CpuStorage::F32(y), l1.shape().clone()))
    }

    fn bwd(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        _y: &Tensor,
        g: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let s = self.heads;
        let (h, kv, d) = (s.q_heads, s.kv_heads, s.dim);
        let (dq, dk, dv) = with_data(q, |q| {
            with_data(k, |k| {
                with_data(v, |v| {
                    with_data(g, |g| {
                        let srcs = (plain(q, h, d), plain(k, kv, d), plain(v, kv, d));
                        self.backward(srcs, plain(g, h, d))
                    })?
                })?
            })?
        })??;
        // An input that needs no gradient (a frozen first layer's keys, say) gets none kept.
        let grad = |x: &Tensor, parts: Vec<Vec<f32>>, n: usize| {
            x.track_op()
                .then(|| Tensor::from_vec(merge(&parts, s, n), x.shape(), x.device()))
                .transpose()
        };
        Ok((grad(q, dq, h)?, grad(k, dk, kv)?, grad(v, dv, kv)?))
    }
}

impl CustomOp1 for CausalAttention {
    fn name(&self) -> &'static str {
        "tunesmith-causal-attention-packed"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let s = self.heads;
        let c = s.q_heads * s.dim;
        let y = merge(&self.forward(packed(slice(s1, l1)?, c))?, s, s.q_heads);
        Ok((CpuStorage::F32(y), Shape::from((s.batch * s.time, c))))
    }

    fn bwd(&self, qkv: &Tensor, _y: &Tensor, g: &Tensor) -> candle_core::Result<Option<Tensor>> {
        let s = self.heads;
        let (h, c) = (s.q_heads, s.q_heads * s.dim);
        let (dq, dk, dv) = with_data(qkv, |qkv| {
            with_data(g, |g| self.backward(packed(qkv, c), plain(g, h, s.dim)))?
        })??;
        let mut out = vec![0f32; s.batch * s.time * 3 * c];
        for (i, parts) in [dq, dk, dv].iter().enumerate() {
            merge_into(&mut out, 3 * c, i * c, parts, s, h);
        }
        Ok(Some(Tensor::from_vec(out, qkv.shape(), qkv.device())?))
    }
}

/// q, k and v side by side in each row of a `(B·T, 3·C)` buffer.
fn packed(data: &[f32], c: usize) -> Srcs<'_> {
    let part = |i: usize| Src {
        data,
        stride: 3 * c,
        offset: i * c,
    };
    (part(0), part(1), part(2))
}

/// Per-head `(T, D)` matrices of `n` heads, ordered (sequence, head), side by side per row:
/// `(B·T, n·D)`.
fn merge(heads: &[Vec<f32>], s: Heads, n: usize) -> Vec<f32> {
    let mut out = vec![0f32; s.batch * s.time * n * s.dim];
    merge_into(&mut out, n * s.dim, 0, heads, s, n);
    out
}

/// [`merge`] into columns `offset..offset + n·D` of rows `stride` apart.
fn merge_into(
    out: &mut [f32],
    stride: usize,
    offset: usize,
    heads: &[Vec<f32>],
    s: Heads,
    n: usize,
) {
    debug_assert_eq!(heads.len(), s.batch * n);
    let (t, d) = (s.time, s.dim);
    out.par_chunks_mut(stride).enumerate().for_each(|(r, row)| {
        let (b, i) = (r / t, r % t);
        let row = &mut row[offset..offset + n * d];
        for (j, part) in row.chunks_mut(d).enumerate() {
            part.copy_from_slice(&heads[b * n + j][i * d..(i + 1) * d]);
        }
    });
}

simd_kernel!(
    /// `x = softmax(x)`.
    SoftmaxInPlace<'a>(x: &'a mut [f32]) -> () {
        let max = activation::max(x);
        for x in x.iter_mut() {
            *x = activation::exp(*x - max);
        }
        let inv = 1.0 / activation::sum(x);
        x.iter_mut().for_each(|x| *x *= inv);
    }
);

simd_kernel!(
    /// `dp = p ⊙ (dp − Σ dp⊙p)`: a softmax's backward pass, in place.
    SoftmaxBackwardInPlace<'a>(dp: &'a mut [f32], p: &'a [f32]) -> () {
        let dot = dot(dp, p);
        for (dp, p) in dp.iter_mut().zip(p) {
            *dp = p * (*dp - dot);
        }
    }
);
