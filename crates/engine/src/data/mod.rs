//! Data: reading documents, tokenizers, token datasets and batches.

pub mod dataset;
pub mod inspect;
pub mod text;
pub mod tokenizer;
