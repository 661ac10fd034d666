//! One micro-batch's loss and gradients with activation recomputation per block ("gradient
//! checkpointing"): the forward pass keeps only each block's input, and the backward pass runs
//! each block forward again, last block first, just before taking its gradients.
//!
//! Without it, autograd keeps every intermediate of every block until the backward pass reaches
//! it: at block 512 that is gigabytes per sequence for a 0.5B model (attention scores are
//! `heads × T²` per layer). With it, memory holds `(layers + 1)` block inputs of `(B·T, C)` plus
//! one block's intermediates, for about a third more compute (one extra forward pass).
//!
//! The gradients are those of the plain pass: each block's dropout draws restart from the stream
//! state saved before that block, so the recomputed block draws the masks the first pass drew.

use candle_core::backprop::GradStore;
use candle_core::{Tensor, Var};

use super::optim::Param;
use crate::model::{DropoutRng, Model};
use crate::Result;

/// `weight × mean loss` differentiated with respect to `params`, and the unweighted mean loss.
pub fn loss_and_grads(
    model: &Model,
    ids: &Tensor,
    targets: &[u32],
    weight: f64,
    drop: &mut DropoutRng,
    params: &[Param],
) -> Result<(f32, GradStore)> {
    let bt = ids.dims2()?;
    let n = model.n_blocks();
    // The embedding output keeps its (small) graph: the token table may be trained.
    let embedded = model.embed_tokens(ids, Some(&mut *drop))?;
    let mut inputs = Vec::with_capacity(n + 1);
    inputs.push(embedded.detach());
    let mut states = Vec::with_capacity(n);
    for i in 0..n {
        states.push(drop.clone());
        // `detach` drops the block's graph, and with it every intermediate.
        let y = model.block(i, &inputs[i], bt, Some(&mut *drop))?.detach();
        inputs.push(y);
    }
    let last = Var::from_tensor(&inputs[n])?;
    inputs.truncate(n);
    let mean = model.loss(&model.final_norm(last.as_tensor())?, targets)?;
    let loss = mean.to_scalar::<f32>()?;
    let mut grads = (mean * weight)?.backward()?;
    super::step::detach_all(&mut grads);
    let mut upstream = take(&mut grads, last.as_tensor())?;
    while let Some(x) = inputs.pop() {
        let i = inputs.len();
        let x = Var::from_tensor(&x)?;
        let mut rng = states[i].clone();
        let y = model.block(i, x.as_tensor(), bt, Some(&mut rng))?;
        // d(Σ y ⊙ g)/dy = g: the block's backward with the gradient arriving at its output.
        let mut block_grads = (y * &upstream)?.sum_all()?.backward()?;
        upstream = take(&mut block_grads, x.as_tensor())?;
        merge(&mut grads, &block_grads, params)?;
    }
    if embedded.track_op() {
        let g = (embedded * &upstream)?.sum_all()?.backward()?;
        merge(&mut grads, &g, params)?;
    }
    Ok((loss, grads))
}

/// The gradient of a block input (always one: every block's output depends on its input),
/// detached: candle's gradients keep references to the forward tensors they were computed from,
/// and this one feeds the next block's backward pass, which would chain every block's
/// intermediates together again.
fn take(grads: &mut GradStore, t: &Tensor) -> Result<Tensor> {
    grads
        .remove(t)
        .map(|g| g.detach())
        .ok_or_else(|| crate::Error::Data("a block's input got no gradient".into()))
}

/// Adds `extra`'s parameter gradients into `acc` (detached, see [`take`]).
fn merge(acc: &mut GradStore, extra: &GradStore, params: &[Param]) -> Result<()> {
    for p in params {
        if let Some(b) = extra.get(&p.var) {
            let sum = match acc.get(&p.var) {
                Some(a) => (a + b)?,
                None => b.clone(),
            };
            acc.insert(&p.var, sum.detach());
        }
    }
    Ok(())
}
