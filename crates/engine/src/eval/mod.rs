//! Evaluation: loss and perplexity of a model on text.

pub mod perplexity;

pub use perplexity::{evaluate_text, loss_on_masked_tokens, loss_on_tokens, EvalResult};
