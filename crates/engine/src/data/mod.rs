//! Data: reading documents, tokenizers, token datasets and batches.

pub mod batches;
pub mod chunk;
pub mod clean;
pub mod dataset;
pub mod dedupe;
pub mod import;
pub mod inspect;
pub mod pii;
pub mod prepare;
pub mod tokenizer;
pub mod unit;
