//! Forward and backward passes of one optimiser step over its micro-batches.
//!
//! The step's loss is the mean over every learned target of all its micro-batches, not the mean of
//! the micro-batches' means: with masked prompts the micro-batches learn different numbers of
//! targets, and averaging their means would weigh a target in a sparse micro-batch more than one
//! in a full one. So micro-batch `m`'s mean loss is scaled by `learned_m / learned_total` before its
//! backward pass, and the summed gradients are those of one batch holding all the micro-batches.

use candle_core::backprop::GradStore;
use candle_core::{Device, Tensor};

use super::optim::Param;
use crate::data::batches::Batch;
use crate::model::DropoutRng;
use crate::model::Model;
use crate::rng::Rng;
use crate::{Error, Result};

/// Gradients of the step's loss with respect to `params`, and that loss. Dropout masks come from
/// `(seed, step, micro)`, so a resumed run draws the same ones. `recompute` keeps only each
/// block's input through the forward pass and recomputes the rest during the backward pass
/// ([`super::recompute`]): the same gradients in far less memory.
pub fn accumulate(
    model: &Model,
    params: &[Param],
    batches: &[Batch],
    seed: u64,
    step: u64,
    recompute: bool,
    device: &Device,
) -> Result<(GradStore, f32)> {
    let total: usize = batches.iter().map(Batch::learned).sum();
    if total == 0 {
        return Err(Error::Data(
            "a training step had no target to learn (every token was a prompt); use a larger block_size".into(),
        ));
    }
    let mut grads: Option<GradStore> = None;
    let mut loss_sum = 0f64;
    for (micro, batch) in batches.iter().enumerate() {
        let learned = batch.learned();
        if learned == 0 {
            continue;
        }
        let ids = Tensor::from_slice(&batch.inputs, (batch.batch, batch.block), device)?;
        let mut drop = DropoutRng(Rng::derive(seed, "dropout", &[step, micro as u64]));
        let weight = learned as f64 / total as f64;
        let (mean, g) = if recompute {
            super::recompute::loss_and_grads(
                model,
                &ids,
                &batch.targets,
                weight,
                &mut drop,
                params,
            )?
        } else {
            let hidden = model.hidden(&ids, None, Some(&mut drop))?;
            let mean = model.loss(&hidden, &batch.targets)?;
            (mean.to_scalar::<f32>()?, (mean * weight)?.backward()?)
        };
        loss_sum += mean as f64 * weight;
        let mut g = g;
        detach_all(&mut g);
        grads = Some(match grads {
            None => g,
            Some(mut acc) => {
                for p in params {
                    if let (Some(a), Some(b)) = (acc.get(&p.var), g.get(&p.var)) {
                        let sum = (a + b)?;
                        acc.insert(&p.var, sum);
                    }
                }
                acc
            }
        });
    }
    Ok((grads.expect("a batch learns"), loss_sum as f32))
}

/// Detaches every gradient in `grads`. candle's gradients keep references to the forward tensors
/// they were computed from, so a kept gradient keeps its whole forward pass in memory: through the
/// optimiser step, and through the next micro-batch's forward and backward passes.
pub(crate) fn detach_all(grads: &mut GradStore) {
    let ids: Vec<_> = grads.get_ids().copied().collect();
    for id in ids {
        if let Some(t) = grads.get_id(id).map(Tensor::detach) {
            grads.insert_id(id, t);
        }
    }
}
