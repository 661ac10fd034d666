//! Loss and perplexity. Loss is the mean next-token cross-entropy over every predicted position,
//! the text cut into consecutive windows of the model's context length (each window predicts its
//! own tokens 2..n from 1..n−1), so the number matches Hugging Face transformers on the same text.

use serde::{Deserialize, Serialize};
use tokenizers::Tokenizer;

use crate::data::batches::learned_units;
use crate::data::tokenizer;
use crate::model::Model;
use crate::progress::{CancelToken, Event, ProgressSink};
use crate::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct EvalResult {
    pub loss: f64,
    pub perplexity: f64,
    /// Tokens in the text.
    pub tokens: usize,
}

/// Evaluates `text` (tokenised without special tokens).
pub fn evaluate_text(
    model: &Model,
    tok: &Tokenizer,
    text: &str,
    cancel: &CancelToken,
    sink: &mut impl ProgressSink,
) -> Result<EvalResult> {
    let ids = tokenizer::encode(tok, text)?;
    if ids.len() < 2 {
        return Err(Error::Data(format!(
            "the text has {} token(s); at least 2 are needed to measure a loss",
            ids.len()
        )));
    }
    let n_ctx = model.config().context();
    let (loss, _) = loss_on_tokens(model, &ids, n_ctx, usize::MAX, cancel, sink)?;
    Ok(EvalResult {
        loss,
        perplexity: loss.exp(),
        tokens: ids.len(),
    })
}

/// Mean loss over consecutive windows of `window` tokens (at most `max_windows` of them); returns
/// the loss and the number of predicted positions.
pub fn loss_on_tokens(
    model: &Model,
    ids: &[u32],
    window: usize,
    max_windows: usize,
    cancel: &CancelToken,
    sink: &mut impl ProgressSink,
) -> Result<(f64, usize)> {
    loss_on_masked_tokens(model, ids, None, None, window, max_windows, cancel, sink)
}

/// As [`loss_on_tokens`], counting only targets whose `mask` byte is not 0 (the completions of
/// supervised pairs, not their prompts). With a mask, each example (a unit ending with `eot`) is
/// scored on its own, cut into windows only when it is longer than one, as training sees it:
/// an answer is never predicted from the tail of the example before it.
#[allow(clippy::too_many_arguments)]
pub fn loss_on_masked_tokens(
    model: &Model,
    ids: &[u32],
    mask: Option<&[u8]>,
    eot: Option<u32>,
    window: usize,
    max_windows: usize,
    cancel: &CancelToken,
    sink: &mut impl ProgressSink,
) -> Result<(f64, usize)> {
    let units: Vec<(usize, usize)> = match mask {
        Some(m) => learned_units(ids, m, eot).collect(),
        None => vec![(0, ids.len())],
    };
    let windows: Vec<(usize, &[u32])> = units
        .into_iter()
        .flat_map(|(s, e)| {
            ids[s..e]
                .chunks(window)
                .enumerate()
                .map(move |(i, w)| (s + i * window, w))
        })
        .filter(|(_, w)| w.len() >= 2)
        .take(max_windows)
        .collect();
    let (mut total, mut count) = (0f64, 0usize);
    for (i, (start, w)) in windows.iter().enumerate() {
        if cancel.is_cancelled() {
            return Err(Error::Cancelled);
        }
        let n = w.len() - 1;
        let targets: Vec<u32> = match mask {
            Some(m) => (1..=n)
                .map(|j| {
                    if m[start + j] == 0 {
                        crate::model::ops::IGNORE_INDEX
                    } else {
                        w[j]
                    }
                })
                .collect(),
            None => w[1..].to_vec(),
        };
        let learned = targets
            .iter()
            .filter(|&&t| t != crate::model::ops::IGNORE_INDEX)
            .count();
        if learned == 0 {
            continue;
        }
        let input = candle_core::Tensor::from_slice(&w[..n], (1, n), model.device())?;
        let hidden = model.hidden(&input, None, None)?;
        let loss: f32 = model.eval_loss(&hidden, &targets)?.to_scalar()?;
        total += loss as f64 * learned as f64;
        count += learned;
        sink.emit(Event::Progress {
            stage: "evaluate".into(),
            done: i as u64 + 1,
            total: windows.len() as u64,
            unit: "windows".into(),
        });
    }
    if count == 0 {
        return Err(Error::Data(
            "there is no text to evaluate (fewer than 2 tokens)".into(),
        ));
    }
    Ok((total / count as f64, count))
}
