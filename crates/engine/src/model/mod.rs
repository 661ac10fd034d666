//! Models: GPT-2 config, layers with differentiable fused ops, loading and saving.

pub mod config;
pub mod gpt2;
pub mod load;
pub mod ops;

pub use config::Gpt2Config;
pub use gpt2::{Gpt2, KvCache, Weights};
pub use load::LoadedModel;
