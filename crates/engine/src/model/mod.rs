//! Models: the GPT-2 and Llama families behind one interface, layers with differentiable fused
//! ops, loading and saving.

pub mod config;
pub mod family;
pub mod gguf;
pub mod gpt2;
pub mod known;
pub mod layers;
pub mod llama;
pub mod llama_config;
pub mod load;
pub mod lora;
pub mod ops;

pub use config::Gpt2Config;
pub use family::{Model, ModelConfig};
pub use layers::{DropoutRng, KvCache, QWeights, Weights};
pub use llama_config::LlamaConfig;
pub use load::LoadedModel;
