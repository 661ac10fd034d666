//! A frozen projection and its LoRA adapter as one differentiable op:
//! `y = x·Wᵀ (+ b) + s·(dropout(x)·Aᵀ)·Bᵀ`, with gradients for `x`, `A` and `B` only.
//!
//! Written as candle ops, this keeps six tensors per projection until the backward pass: the
//! base output, the dropout mask and masked input, the adapter's output before and after
//! scaling, and the sum, each `(N, in)` or `(N, out)`, for every projection of every layer. PEFT
//! keeps the masked input and a one-byte mask. This op keeps nothing but its output and its
//! arguments (the input is the previous op's output, kept anyway): the mask is a seed (see
//! [`super::dropout_seeded`]) and the
//! rank-`r` product is recomputed in the backward pass (`N·in·r` multiply-adds, negligible).

use candle_core::{bail, CpuStorage, CustomOp3, DType, Layout, Shape, Storage, Tensor};

use tunesmith_gemm::{matmul, Mat, MatMut};

use super::fused;

/// The frozen part of the projection.
pub struct FrozenBase<'a> {
    pub w: &'a Tensor,
    /// `W: (out, in)` (nn.Linear) rather than `(in, out)` (GPT-2's Conv1D).
    pub transposed: bool,
    pub bias: Option<&'a Tensor>,
}

/// `x·W(ᵀ) + b + scale·(x ⊙ mask)·Aᵀ·Bᵀ` for `x: (N, in)`, `A: (r, in)`, `B: (out, r)`; `mask`
/// is dropout's (seed, p) as [`super::dropout_seeded`] takes them, `None` without dropout. `None` when this op does not apply (another device or dtype, a trained `W`):
/// the caller composes candle ops instead.
pub fn lora_linear(
    x: &Tensor,
    base: &FrozenBase,
    a: &Tensor,
    b: &Tensor,
    scale: f64,
    mask: Option<(u64, f32)>,
) -> candle_core::Result<Option<Tensor>> {
    if !applies(x, base, a, b) {
        return Ok(None);
    }
    let op = LoraLinear {
        w: base.w.contiguous()?,
        transposed: base.transposed,
        bias: base.bias.map(|b| b.contiguous()).transpose()?,
        scale,
        mask,
    };
    x.contiguous()?
        .apply_op3(&a.contiguous()?, &b.contiguous()?, op)
        .map(Some)
}

/// Whether [`lora_linear`] handles these tensors: f32 on the CPU, a frozen base, 2-D input.
pub fn applies(x: &Tensor, base: &FrozenBase, a: &Tensor, b: &Tensor) -> bool {
    [x, base.w, a, b].iter().all(|t| fused(t))
        && base.bias.is_none_or(fused)
        && !base.w.track_op()
        && base.bias.is_none_or(|b| !b.track_op())
        && x.rank() == 2
}

struct LoraLinear {
    w: Tensor,
    transposed: bool,
    bias: Option<Tensor>,
    scale: f64,
    mask: Option<(u64, f32)>,
}

impl LoraLinear {
    /// `x ⊙ mask` as plain data, or `None` without dropout.
    fn masked(&self, x: &[f32]) -> Option<Vec<f32>> {
        let (seed, p) = self.mask?;
        Some(super::dropout::masked(x, p, seed))
    }
}

impl CustomOp3 for LoraLinear {
    fn name(&self) -> &'static str {
        "tunesmith-lora-linear"
    }

    fn cpu_fwd(
        &self,
        sx: &CpuStorage,
        lx: &Layout,
        sa: &CpuStorage,
        la: &Layout,
        sb: &CpuStorage,
        lb: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (n, k) = lx.shape().dims2()?;
        let (r, ka) = la.shape().dims2()?;
        let (out, rb) = lb.shape().dims2()?;
        if ka != k || rb != r {
            bail!("lora linear: x ({n}, {k}), A ({r}, {ka}), B ({out}, {rb}) do not fit");
        }
        // Base: x·Wᵀ or x·W.
        let (w_storage, w_layout) = self.w.storage_and_layout();
        let Storage::Cpu(ws) = &*w_storage else {
            bail!("lora linear: W is not on the CPU");
        };
        let (y, y_shape) = super::linear::cpu_matmul(sx, lx, ws, w_layout, self.transposed)?;
        drop(w_storage);
        if y_shape.dims2()?.1 != out {
            bail!("lora linear: W gives {y_shape:?} but B has {out} outputs");
        }
        let CpuStorage::F32(mut y) = y else {
            bail!("lora linear: expected f32");
        };
        // Adapter: h = s·(x ⊙ mask)·Aᵀ, then y += h·Bᵀ in y's own buffer (no (N, out) product
        // to allocate and add).
        let x = super::slice(sx, lx)?;
        let masked = self.masked(x);
        let u = masked.as_deref().unwrap_or(x);
        let (a, bm) = (super::slice(sa, la)?, super::slice(sb, lb)?);
        let mut h = vec![0f32; n * r];
        let e = super::shape_err;
        let (hv, uv) = (
            MatMut::rows(&mut h, n, r).map_err(e)?,
            Mat::rows(u, n, k).map_err(e)?,
        );
        let at = Mat::rows(a, r, k).map_err(e)?.t();
        matmul(hv, uv, at, false, self.scale as f32).map_err(e)?;
        let (yv, hv) = (
            MatMut::rows(&mut y, n, out).map_err(e)?,
            Mat::rows(&h, n, r).map_err(e)?,
        );
        matmul(yv, hv, Mat::rows(bm, out, r).map_err(e)?.t(), true, 1.0).map_err(e)?;
        if let Some(bias) = &self.bias {
            let (storage, layout) = bias.storage_and_layout();
            let Storage::Cpu(s) = &*storage else {
                bail!("lora linear: the bias is not on the CPU");
            };
            let b = super::slice(s, layout)?;
            if b.len() != out {
                bail!(
                    "lora linear: the bias has {} entries for {out} outputs",
                    b.len()
                );
            }
            super::linear::add_bias(&mut y, b);
        }
        Ok((CpuStorage::F32(y), Shape::from((n, out))))
    }

    // u = x ⊙ m, h = s·u·Aᵀ, y = x·Wᵀ + h·Bᵀ:
    // dB = gᵀ·h, dh = s·g·B, dA = dhᵀ·u, dx = g·W + (dh·A) ⊙ m.
    fn bwd(
        &self,
        x: &Tensor,
        a: &Tensor,
        b: &Tensor,
        _y: &Tensor,
        g: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        // What needs no gradient gets none (the first layer's input, frozen adapters).
        let wanted = (x.track_op(), a.track_op(), b.track_op());
        // Detached, so that the gradients hold no reference to the forward pass's tensors.
        let (x, a, b) = (&x.detach(), &a.detach(), &b.detach());
        let drop = |t: &Tensor| match self.mask {
            Some((seed, p)) => super::dropout_seeded(t, p, seed),
            None => Ok(t.clone()),
        };
        let u = drop(x)?;
        let h = (u.matmul(&a.t()?)? * self.scale)?;
        let db = g.t()?.matmul(&h)?;
        let dh = (g.matmul(b)? * self.scale)?;
        let da = dh.t()?.matmul(&u)?;
        let dx = if wanted.0 {
            let du = dh.matmul(a)?;
            let du = drop(&du)?;
            let base = if self.transposed {
                g.matmul(&self.w)?
            } else {
                g.matmul(&self.w.t()?)?
            };
            Some((base + du)?)
        } else {
            None
        };
        debug_assert!(dx.as_ref().is_none_or(|d| d.dtype() == DType::F32));
        Ok((dx, wanted.1.then_some(da), wanted.2.then_some(db)))
    }
}
