//! Turning a request's prompts into token ids, off the model thread (a 4 MiB prompt takes the
//! tokenizer a while, and the model thread serves everyone): each prompt rendered (a
//! conversation with the chat template) and encoded once, however many samples it has, and
//! checked against the context.

use std::sync::Arc;

use tokenizers::Tokenizer;
use tunesmith_engine::chat::ChatTemplate;
use tunesmith_engine::data::tokenizer;
use tunesmith_engine::generate::{self, GenerateConfig};

use crate::error::ApiError;

/// What the model thread needs for the samples of one prompt.
pub struct Prepared {
    /// The settings, with the prompt rendered and `max_new_tokens` cut to what the prompt leaves
    /// of the context (so that no sample runs on forever).
    pub cfg: GenerateConfig,
    pub ids: Arc<Vec<u32>>,
}

/// The model's side of preparing prompts, shared by the handlers.
pub struct Preparer {
    pub tokenizer: Tokenizer,
    pub template: Option<ChatTemplate>,
    pub context: usize,
}

impl Preparer {
    pub fn prepare(&self, prompts: &[GenerateConfig]) -> Result<Vec<Prepared>, ApiError> {
        prompts.iter().map(|p| self.one(p)).collect()
    }

    fn one(&self, cfg: &GenerateConfig) -> Result<Prepared, ApiError> {
        let mut cfg = generate::with_chat_prompt(self.template.as_ref(), cfg)
            .map_err(|e| ApiError::invalid("messages", e.to_string()))?;
        let ids = tokenizer::encode(&self.tokenizer, &cfg.prompt)
            .map_err(|e| ApiError::invalid("prompt", e.to_string()))?;
        let context = self.context;
        if ids.len() >= context {
            return Err(ApiError::invalid(
                "prompt",
                format!(
                    "is {} tokens long; this model reads at most {context} (prompt and reply together)",
                    ids.len()
                ),
            ));
        }
        // An empty prompt is one token (end of text) to the model.
        cfg.max_new_tokens = cfg.max_new_tokens.min(context - ids.len().max(1));
        Ok(Prepared {
            cfg,
            ids: Arc::new(ids),
        })
    }
}
