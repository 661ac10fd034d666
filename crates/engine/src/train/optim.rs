//! AdamW with decoupled weight decay, owned here because candle's keeps its moments private and so
//! cannot be checkpointed. The CPU update is one fused, parallel pass per parameter.

use std::collections::HashMap;

use candle_core::{backprop::GradStore, DType, Device, Tensor, Var};
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
    m: Tensor,
    v: Tensor,
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
                let m = var.zeros_like()?;
                let v = var.zeros_like()?;
                Ok(Param {
                    name,
                    var,
                    decay,
                    m,
                    v,
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
                sum += g
                    .sqr()?
                    .sum_all()?
                    .to_dtype(DType::F64)?
                    .to_scalar::<f64>()?;
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
            if matches!(p.var.device(), Device::Cpu) {
                fused_update(p, g, grad_scale, hp, wd, bc1, bc2)?;
            } else {
                let g = (g * grad_scale)?;
                p.m = ((&p.m * hp.beta1)? + (&g * (1.0 - hp.beta1))?)?;
                p.v = ((&p.v * hp.beta2)? + (g.sqr()? * (1.0 - hp.beta2))?)?;
                let update = ((&p.m / bc1)? / ((&p.v / bc2)?.sqrt()? + hp.eps)?)?;
                let decayed = (p.var.as_tensor() * (1.0 - hp.lr * wd))?;
                p.var.set(&(decayed - (update * hp.lr)?)?)?;
            }
        }
        Ok(())
    }

    /// Moments as named tensors, for `optimizer.safetensors`.
    pub fn state_tensors(&self) -> HashMap<String, Tensor> {
        let mut out = HashMap::new();
        for p in &self.params {
            out.insert(format!("m.{}", p.name), p.m.clone());
            out.insert(format!("v.{}", p.name), p.v.clone());
        }
        out
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
            p.m = m;
            p.v = v;
        }
        self.t = t;
        Ok(())
    }
}

fn cpu_vec(t: &Tensor) -> Result<Vec<f32>> {
    Ok(t.flatten_all()?.to_vec1::<f32>()?)
}

/// m ← β1·m + (1−β1)·g; v ← β2·v + (1−β2)·g²; p ← p·(1−lr·wd) − lr·m̂/(√v̂ + ε), in one pass.
fn fused_update(
    p: &mut Param,
    g: &Tensor,
    scale: f64,
    hp: AdamWParams,
    wd: f64,
    bc1: f64,
    bc2: f64,
) -> Result<()> {
    let (g, mut m, mut v, mut w) = (
        cpu_vec(g)?,
        cpu_vec(&p.m)?,
        cpu_vec(&p.v)?,
        cpu_vec(p.var.as_tensor())?,
    );
    let (b1, b2, eps) = (hp.beta1 as f32, hp.beta2 as f32, hp.eps as f32);
    let (lr, decay, scale) = (hp.lr as f32, (1.0 - hp.lr * wd) as f32, scale as f32);
    let (ibc1, ibc2) = ((1.0 / bc1) as f32, (1.0 / bc2) as f32);
    const CHUNK: usize = 1 << 14;
    w.par_chunks_mut(CHUNK)
        .zip(m.par_chunks_mut(CHUNK))
        .zip(v.par_chunks_mut(CHUNK))
        .zip(g.par_chunks(CHUNK))
        .for_each(|(((w, m), v), g)| {
            for i in 0..w.len() {
                let gi = g[i] * scale;
                m[i] = b1 * m[i] + (1.0 - b1) * gi;
                v[i] = b2 * v[i] + (1.0 - b2) * gi * gi;
                let update = (m[i] * ibc1) / ((v[i] * ibc2).sqrt() + eps);
                w[i] = w[i] * decay - lr * update;
            }
        });
    let shape = p.var.shape().clone();
    let dev = p.var.device().clone();
    p.m = Tensor::from_vec(m, &shape, &dev)?;
    p.v = Tensor::from_vec(v, &shape, &dev)?;
    p.var.set(&Tensor::from_vec(w, &shape, &dev)?)?;
    Ok(())
}

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
        let state = opt.state_tensors();
        let mut opt2 = AdamW::new(vec![("w".into(), var.clone(), true)]).unwrap();
        opt2.load_state(&state, opt.t).unwrap();
        assert_eq!(opt2.t, 1);
        assert_eq!(
            opt2.params[0].m.to_vec1::<f32>().unwrap(),
            opt.params[0].m.to_vec1::<f32>().unwrap()
        );
    }
}
