//! AdamW with decoupled weight decay, owned here because candle's keeps its moments private and so
//! cannot be checkpointed. The CPU update is one fused, parallel pass per parameter that writes the
//! weight in place (no copies of weights, gradients or moments).

use std::collections::HashMap;
use std::sync::Mutex;

use candle_core::{
    backprop::GradStore, CpuStorage, DType, Device, InplaceOp2, Layout, Tensor, Var,
};
use rayon::prelude::*;

use crate::{Error, Result};

/// Hyperparameters of one update.
#[derive(Debug, Clone, Copy)]
pub struct AdamWParams {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
}

/// One trainable parameter and its moments.
pub struct Param {
    pub name: String,
    pub var: Var,
    pub decay: bool,
    moments: Moments,
}

/// First and second moments: plain vectors for a CPU parameter (updated in place), tensors on
/// other devices.
enum Moments {
    Cpu { m: Vec<f32>, v: Vec<f32> },
    Device { m: Tensor, v: Tensor },
}

impl Moments {
    fn zeros(var: &Var) -> Result<Self> {
        Ok(if is_cpu_f32(var) {
            let n = var.elem_count();
            Moments::Cpu {
                m: vec![0.0; n],
                v: vec![0.0; n],
            }
        } else {
            Moments::Device {
                m: var.zeros_like()?,
                v: var.zeros_like()?,
            }
        })
    }

    fn tensors(&self, var: &Var) -> Result<(Tensor, Tensor)> {
        Ok(match self {
            Moments::Cpu { m, v } => (
                Tensor::from_slice(m, var.shape(), var.device())?,
                Tensor::from_slice(v, var.shape(), var.device())?,
            ),
            Moments::Device { m, v } => (m.clone(), v.clone()),
        })
    }
}

fn is_cpu_f32(t: &Tensor) -> bool {
    matches!(t.device(), Device::Cpu) && t.dtype() == DType::F32
}

/// A parameter for [`AdamW::new`]: name, variable, whether weight decay applies.
pub type ParamSpec = (String, Var, bool);

pub struct AdamW {
    pub params: Vec<Param>,
    /// Number of updates taken (bias correction).
    pub t: u64,
}

impl AdamW {
    /// `params`: (name, variable, whether weight decay applies).
    pub fn new(params: Vec<ParamSpec>) -> Result<Self> {
        let params = params
            .into_iter()
            .map(|(name, var, decay)| {
                let moments = Moments::zeros(&var)?;
                Ok(Param {
                    name,
                    var,
                    decay,
                    moments,
                })
            })
            .collect::<Result<_>>()?;
        Ok(AdamW { params, t: 0 })
    }

    /// Global L2 norm of the gradients of all parameters.
    pub fn grad_norm(&self, grads: &GradStore) -> Result<f64> {
        let mut sum = 0f64;
        for p in &self.params {
            if let Some(g) = grads.get(&p.var) {
                sum += if is_cpu_f32(g) {
                    // Read in place: no g² tensor per parameter.
                    let g = g.contiguous()?;
                    let (storage, layout) = g.storage_and_layout();
                    match &*storage {
                        // Chunk sums added in order: the same norm on every run and resume.
                        candle_core::Storage::Cpu(s) => cpu_slice(s, layout)?
                            .par_chunks(CHUNK)
                            .map(|c| c.iter().map(|&x| (x as f64) * (x as f64)).sum::<f64>())
                            .collect::<Vec<f64>>()
                            .into_iter()
                            .sum(),
                        _ => unreachable!("checked to be a CPU tensor"),
                    }
                } else {
                    g.sqr()?
                        .sum_all()?
                        .to_dtype(DType::F64)?
                        .to_scalar::<f64>()?
                };
            }
        }
        Ok(sum.sqrt())
    }

    /// Applies one update with gradients multiplied by `grad_scale` (clipping, accumulation).
    pub fn step(&mut self, grads: &GradStore, grad_scale: f64, hp: AdamWParams) -> Result<()> {
        self.t += 1;
        let bc1 = 1.0 - hp.beta1.powi(self.t as i32);
        let bc2 = 1.0 - hp.beta2.powi(self.t as i32);
        for p in &mut self.params {
            let Some(g) = grads.get(&p.var) else { continue };
            let wd = if p.decay { hp.weight_decay } else { 0.0 };
            match &mut p.moments {
                Moments::Cpu { m, v } if is_cpu_f32(g) => {
                    let update = FusedUpdate {
                        moments: Mutex::new((m, v)),
                        scale: grad_scale as f32,
                        b1: hp.beta1 as f32,
                        b2: hp.beta2 as f32,
                        eps: hp.eps as f32,
                        lr: hp.lr as f32,
                        decay: (1.0 - hp.lr * wd) as f32,
                        ibc1: (1.0 / bc1) as f32,
                        ibc2: (1.0 / bc2) as f32,
                    };
                    p.var.as_tensor().inplace_op2(&g.contiguous()?, &update)?;
                }
                Moments::Cpu { .. } => {
                    return Err(Error::Data(format!(
                        "the gradient of `{}` is not an f32 CPU tensor like its parameter",
                        p.name
                    )))
                }
                Moments::Device { m, v } => {
                    let g = (g * grad_scale)?;
                    *m = ((&*m * hp.beta1)? + (&g * (1.0 - hp.beta1))?)?;
                    *v = ((&*v * hp.beta2)? + (g.sqr()? * (1.0 - hp.beta2))?)?;
                    let update = ((&*m / bc1)? / ((&*v / bc2)?.sqrt()? + hp.eps)?)?;
                    let decayed = (p.var.as_tensor() * (1.0 - hp.lr * wd))?;
                    p.var.set(&(decayed - (update * hp.lr)?)?)?;
                }
            }
        }
        Ok(())
    }

    /// Moments as named tensors, for `optimizer.safetensors`.
    pub fn state_tensors(&self) -> Result<HashMap<String, Tensor>> {
        let mut out = HashMap::new();
        for p in &self.params {
            // A CPU parameter's moments are copied out (a checkpoint is rare next to steps).
            let (m, v) = p.moments.tensors(&p.var)?;
            out.insert(format!("m.{}", p.name), m);
            out.insert(format!("v.{}", p.name), v);
        }
        Ok(out)
    }

    /// Restores moments saved by [`Self::state_tensors`].
    pub fn load_state(&mut self, tensors: &HashMap<String, Tensor>, t: u64) -> Result<()> {
        for p in &mut self.params {
            let get = |k: String| {
                tensors.get(&k).cloned().ok_or_else(|| {
                    Error::Data(format!("the checkpoint's optimizer state lacks `{k}`; resume from another checkpoint or start fresh"))
                })
            };
            let (m, v) = (get(format!("m.{}", p.name))?, get(format!("v.{}", p.name))?);
            if m.dims() != p.var.dims() || v.dims() != p.var.dims() {
                return Err(Error::Data(format!(
                    "the checkpoint's optimizer state for `{}` has the wrong shape",
                    p.name
                )));
            }
            p.moments = if is_cpu_f32(&p.var) {
                Moments::Cpu {
                    m: m.flatten_all()?.to_dtype(DType::F32)?.to_vec1()?,
                    v: v.flatten_all()?.to_dtype(DType::F32)?.to_vec1()?,
                }
            } else {
                Moments::Device { m, v }
            };
        }
        self.t = t;
        Ok(())
    }
}

/// Elements per parallel task.
const CHUNK: usize = 1 << 14;

fn cpu_slice<'a>(s: &'a CpuStorage, l: &Layout) -> candle_core::Result<&'a [f32]> {
    match (s, l.contiguous_offsets()) {
        (CpuStorage::F32(d), Some((a, b))) => Ok(&d[a..b]),
        _ => candle_core::bail!("expected a contiguous f32 tensor"),
    }
}

/// m ← β1·m + (1−β1)·g; v ← β2·v + (1−β2)·g²; p ← p·(1−lr·wd) − lr·m̂/(√v̂ + ε), in one pass that
/// writes the weight where it lies (an in-place op on the weight, reading the gradient).
struct FusedUpdate<'a> {
    moments: Mutex<(&'a mut Vec<f32>, &'a mut Vec<f32>)>,
    scale: f32,
    b1: f32,
    b2: f32,
    eps: f32,
    lr: f32,
    decay: f32,
    ibc1: f32,
    ibc2: f32,
}

impl InplaceOp2 for FusedUpdate<'_> {
    fn name(&self) -> &'static str {
        "tunesmith-adamw"
    }

    fn cpu_fwd(
        &self,
        s1: &mut CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<()> {
        let g = cpu_slice(s2, l2)?;
        let w = match (s1, l1.contiguous_offsets()) {
            (CpuStorage::F32(d), Some((a, b))) => &mut d[a..b],
            _ => candle_core::bail!("AdamW expects a contiguous f32 weight"),
        };
        let mut guard = self.moments.lock().unwrap_or_else(|e| e.into_inner());
        let (m, v) = &mut *guard;
        if w.len() != g.len() || m.len() != w.len() || v.len() != w.len() {
            candle_core::bail!("AdamW: weight, gradient and moments differ in size");
        }
        let Self {
            scale,
            b1,
            b2,
            eps,
            lr,
            decay,
            ibc1,
            ibc2,
            ..
        } = *self;
        w.par_chunks_mut(CHUNK)
            .zip(m.par_chunks_mut(CHUNK))
            .zip(v.par_chunks_mut(CHUNK))
            .zip(g.par_chunks(CHUNK))
            .for_each(|(((w, m), v), g)| {
                let k = [scale, b1, b2, eps, lr, decay, ibc1, ibc2];
                crate::model::ops::simd_run(AdamWChunk(w, m, v, g, k));
            });
        Ok(())
    }
}

crate::model::ops::simd_kernel!(
    /// One chunk of the AdamW update, in place; `k` = scale, β₁, β₂, ε, lr, decay factor and the
    /// two inverse bias corrections.
    AdamWChunk<'a>(
        w: &'a mut [f32],
        m: &'a mut [f32],
        v: &'a mut [f32],
        g: &'a [f32],
        k: [f32; 8],
    ) -> () {
        let [scale, b1, b2, eps, lr, decay, ibc1, ibc2] = k;
        for i in 0..w.len() {
            let gi = g[i] * scale;
            m[i] = b1 * m[i] + (1.0 - b1) * gi;
            v[i] = b2 * v[i] + (1.0 - b2) * gi * gi;
            let update = (m[i] * ibc1) / ((v[i] * ibc2).sqrt() + eps);
            w[i] = w[i] * decay - lr * update;
        }
    }
);

#[cfg(test)]
mod tests {
    use super::*;

    /// One AdamW step by hand: p=1, g=0.5, lr=0.1, wd=0.1 → m̂=g, v̂=g² → update = 1.
    #[test]
    fn first_step_matches_hand_computation() {
        let var = Var::from_vec(vec![1.0f32, -2.0], 2, &Device::Cpu).unwrap();
        let loss = (var.as_tensor() * 0.5).unwrap().sum_all().unwrap(); // dL/dp = 0.5
        let grads = loss.backward().unwrap();
        let mut opt = AdamW::new(vec![("w".into(), var.clone(), true)]).unwrap();
        let hp = AdamWParams {
            lr: 0.1,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.1,
        };
        opt.step(&grads, 1.0, hp).unwrap();
        let w = var.as_tensor().to_vec1::<f32>().unwrap();
        assert!((w[0] - (1.0 * 0.99 - 0.1)).abs() < 1e-6, "{w:?}");
        assert!((w[1] - (-2.0 * 0.99 - 0.1)).abs() < 1e-6, "{w:?}");
        assert!((opt.grad_norm(&grads).unwrap() - (0.5f64 * 0.5 * 2.0).sqrt()).abs() < 1e-6);
        // State round-trips.
        let state = opt.state_tensors().unwrap();
        let mut opt2 = AdamW::new(vec![("w".into(), var.clone(), true)]).unwrap();
        opt2.load_state(&state, opt.t).unwrap();
        assert_eq!(opt2.t, 1);
        assert_eq!(
            opt2.state_tensors().unwrap()["m.w"]
                .to_vec1::<f32>()
                .unwrap(),
            state["m.w"].to_vec1::<f32>().unwrap()
        );
        // v = (1 − β2)·g² after one step.
        for v in state["v.w"].to_vec1::<f32>().unwrap() {
            assert!((v - 0.00025).abs() < 1e-8, "{v}");
        }
    }

    /// Several steps of the in-place update on a parameter large enough for the thread pool
    /// against AdamW's formula in f64; and saving the moments after step 2, loading them into a
    /// fresh optimiser and taking step 3 gives the same weights bit for bit.
    #[test]
    fn in_place_steps_follow_the_formula_and_resume_exactly() {
        let n = 3 * CHUNK + 17;
        let hp = AdamWParams {
            lr: 0.01,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.1,
        };
        let start: Vec<f32> = (0..n).map(|i| ((i % 97) as f32 - 48.0) / 50.0).collect();
        let grad = |step: usize| -> Vec<f32> {
            (0..n)
                .map(|i| (((i * 31 + step * 7) % 53) as f32 - 26.0) / 13.0)
                .collect()
        };
        let step_with = |opt: &mut AdamW, var: &Var, step: usize| {
            let g = Tensor::from_vec(grad(step), n, &Device::Cpu).unwrap();
            let grads = (var.as_tensor() * &g)
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap();
            opt.step(&grads, 0.5, hp).unwrap();
        };
        let var = Var::from_vec(start.clone(), n, &Device::Cpu).unwrap();
        let mut opt = AdamW::new(vec![("w".into(), var.clone(), true)]).unwrap();
        let (mut w, mut m, mut v) = (
            start.iter().map(|&x| x as f64).collect::<Vec<f64>>(),
            vec![0f64; n],
            vec![0f64; n],
        );
        for step in 1..=3usize {
            step_with(&mut opt, &var, step);
            let (bc1, bc2) = (
                1.0 - 0.9f64.powi(step as i32),
                1.0 - 0.999f64.powi(step as i32),
            );
            for (i, g) in grad(step).into_iter().enumerate() {
                let g = g as f64 * 0.5;
                m[i] = 0.9 * m[i] + 0.1 * g;
                v[i] = 0.999 * v[i] + 0.001 * g * g;
                w[i] =
                    w[i] * (1.0 - 0.01 * 0.1) - 0.01 * (m[i] / bc1) / ((v[i] / bc2).sqrt() + 1e-8);
            }
        }
        let got = var.as_tensor().to_vec1::<f32>().unwrap();
        for i in 0..n {
            assert!(
                (got[i] as f64 - w[i]).abs() < 1e-5,
                "element {i}: {} vs {}",
                got[i],
                w[i]
            );
        }
        // Resume: the state after step 2, then step 3, in a fresh optimiser.
        let var_a = Var::from_vec(start.clone(), n, &Device::Cpu).unwrap();
        let mut a = AdamW::new(vec![("w".into(), var_a.clone(), true)]).unwrap();
        for step in 1..=2 {
            step_with(&mut a, &var_a, step);
        }
        let saved = a.state_tensors().unwrap();
        // A copy: `Var::from_tensor` of a variable would share its storage, which the in-place
        // update then writes twice.
        let var_b =
            Var::from_vec(var_a.as_tensor().to_vec1::<f32>().unwrap(), n, &Device::Cpu).unwrap();
        let mut b = AdamW::new(vec![("w".into(), var_b.clone(), true)]).unwrap();
        b.load_state(&saved, a.t).unwrap();
        step_with(&mut a, &var_a, 3);
        step_with(&mut b, &var_b, 3);
        assert_eq!(
            var_a.as_tensor().to_vec1::<f32>().unwrap(),
            var_b.as_tensor().to_vec1::<f32>().unwrap()
        );
        assert_eq!(var_a.as_tensor().to_vec1::<f32>().unwrap(), got);
    }
}
