//! Text generation with a KV cache: each new token costs one position. Pieces of text are streamed
//! through the event sink as soon as they are valid UTF-8 and cannot be part of a stop string.

pub mod decoder;
pub mod sampling;
pub mod stream;

use serde::{Deserialize, Serialize};
use tokenizers::Tokenizer;

use crate::chat::{self, ChatTemplate, Message};
use crate::model::Model;
use crate::progress::{CancelToken, Event, ProgressSink};
use crate::{Error, Result};
pub use decoder::{DecodeOptions, Decoder};
pub use sampling::SamplingParams;

/// Settings for `generate`. Saved with chats; validated before anything runs.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct GenerateConfig {
    pub prompt: String,
    pub max_new_tokens: usize,
    pub temperature: f64,
    pub top_k: usize,
    pub top_p: f64,
    pub repetition_penalty: f64,
    /// Generation ends before the first occurrence of any of these strings.
    pub stop: Vec<String>,
    /// Number of independent samples.
    pub n: usize,
    pub seed: u64,
    /// End at the model's end-of-text token.
    pub stop_at_eot: bool,
    /// The end-of-text token is not sampled before this many new tokens, so a small model that
    /// would end its turn at once still says something (0 = no minimum).
    pub min_new_tokens: usize,
    /// A conversation to reply to instead of `prompt`: [`generate_chat`] renders it with the
    /// model's chat template (or the plain transcript for a model without one).
    pub messages: Option<Vec<Message>>,
}

impl Default for GenerateConfig {
    fn default() -> Self {
        GenerateConfig {
            prompt: String::new(),
            max_new_tokens: 100,
            temperature: 0.8,
            top_k: 40,
            top_p: 1.0,
            repetition_penalty: 1.0,
            stop: Vec::new(),
            n: 1,
            seed: 42,
            stop_at_eot: true,
            min_new_tokens: 0,
            messages: None,
        }
    }
}

impl GenerateConfig {
    pub fn validate(&self) -> Result<()> {
        if !(self.temperature >= 0.0 && self.temperature.is_finite()) {
            return Err(Error::config("temperature", "must be 0 (greedy) or more"));
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return Err(Error::config("top_p", "must be above 0 and at most 1"));
        }
        if !(self.repetition_penalty > 0.0 && self.repetition_penalty.is_finite()) {
            return Err(Error::config(
                "repetition_penalty",
                "must be above 0 (1 = off)",
            ));
        }
        if self.n == 0 {
            return Err(Error::config("n", "must be at least 1"));
        }
        if self.max_new_tokens == 0 {
            return Err(Error::config("max_new_tokens", "must be at least 1"));
        }
        if self.min_new_tokens > self.max_new_tokens {
            return Err(Error::config(
                "min_new_tokens",
                "must not be more than max_new_tokens",
            ));
        }
        Ok(())
    }

    pub fn sampling(&self) -> SamplingParams {
        SamplingParams {
            temperature: self.temperature,
            top_k: self.top_k,
            top_p: self.top_p,
            repetition_penalty: self.repetition_penalty,
        }
    }
}

/// One finished sample.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Generation {
    /// The continuation only (not the prompt), cut before any stop string.
    pub text: String,
    /// The generated token ids.
    pub tokens: Vec<u32>,
    /// The prompt as the model was given it (a conversation rendered with its template).
    pub prompt: String,
    /// The ids the model was given as the prompt (the end of it when it was longer than the
    /// model's context).
    pub prompt_ids: Vec<u32>,
    /// Why the sample ended.
    pub finish_reason: FinishReason,
}

/// Why a sample ended: `stop` (a stop string or end-of-text), `length` (`max_new_tokens` reached)
/// or `cancelled`; OpenAI's words.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FinishReason {
    Stop,
    Length,
    Cancelled,
}

/// [`generate`] for `cfg.messages` when set: the conversation is rendered with `template` (the
/// model's own; the plain transcript when `None`, ending where the model starts the next user
/// turn) and replied to.
pub fn generate_chat(
    model: &Model,
    tok: &Tokenizer,
    template: Option<&ChatTemplate>,
    cfg: &GenerateConfig,
    cancel: &CancelToken,
    sink: &mut impl ProgressSink,
) -> Result<Vec<Generation>> {
    generate(model, tok, &with_chat_prompt(template, cfg)?, cancel, sink)
}

/// `cfg` with `messages` (when set) rendered into its prompt: with `template`, or as the plain
/// transcript (which then also stops where the model starts the next user turn).
pub fn with_chat_prompt(
    template: Option<&ChatTemplate>,
    cfg: &GenerateConfig,
) -> Result<GenerateConfig> {
    let mut cfg = cfg.clone();
    if let Some(messages) = &cfg.messages {
        cfg.prompt = chat::render(template, messages, true)?;
        if template.is_none() && !cfg.stop.iter().any(|s| s == chat::TRANSCRIPT_STOP) {
            cfg.stop.push(chat::TRANSCRIPT_STOP.to_string());
        }
    }
    Ok(cfg)
}

/// Generates `cfg.n` samples one after another.
pub fn generate(
    model: &Model,
    tok: &Tokenizer,
    cfg: &GenerateConfig,
    cancel: &CancelToken,
    sink: &mut impl ProgressSink,
) -> Result<Vec<Generation>> {
    (0..cfg.n)
        .map(|i| generate_one(model, tok, cfg, i as u64, cancel, sink))
        .collect()
}

/// Generates sample number `index` (its own seeded stream), emitting `Token` events.
pub fn generate_one(
    model: &Model,
    tok: &Tokenizer,
    cfg: &GenerateConfig,
    index: u64,
    cancel: &CancelToken,
    sink: &mut impl ProgressSink,
) -> Result<Generation> {
    let mut decoder = Decoder::new(model, tok, cfg, index, DecodeOptions::default())?;
    loop {
        if cancel.is_cancelled() {
            decoder.cancel();
        }
        let Some(token) = decoder.next()? else { break };
        if !token.text.is_empty() {
            sink.emit(Event::Token { text: token.text });
        }
    }
    let (generation, rest) = decoder.finish();
    if !rest.is_empty() {
        sink.emit(Event::Token { text: rest });
    }
    Ok(generation)
}
