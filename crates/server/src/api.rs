//! OpenAI's request bodies for `/v1/completions` and `/v1/chat/completions`, read strictly: an
//! unknown field is an error that names it (a typo would otherwise be silently ignored), and every
//! value is checked before anything is queued.

use serde::Deserialize;
use serde_json::Value;
use tunesmith_engine::chat::{self, Message};
use tunesmith_engine::generate::{DecodeOptions, GenerateConfig};

use crate::error::ApiError;

/// A prompt: one string or several (each gets its own choices), as OpenAI accepts.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Prompt {
    One(String),
    Many(Vec<String>),
}

/// `stop`: one string or up to four.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Stop {
    One(String),
    Many(Vec<String>),
}

/// The sampling fields both endpoints share.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompletionRequest {
    pub model: Option<String>,
    pub prompt: Prompt,
    pub max_tokens: Option<i64>,
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub n: Option<i64>,
    pub stop: Option<Stop>,
    pub seed: Option<i64>,
    pub stream: Option<bool>,
    pub stream_options: Option<Value>,
    pub echo: Option<bool>,
    pub logprobs: Option<i64>,
    pub presence_penalty: Option<f64>,
    pub frequency_penalty: Option<f64>,
    pub logit_bias: Option<serde_json::Map<String, Value>>,
    /// Accepted and ignored.
    pub user: Option<Value>,
    pub best_of: Option<Value>,
    pub suffix: Option<Value>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChatRequest {
    pub model: Option<String>,
    pub messages: Vec<Value>,
    pub max_tokens: Option<i64>,
    pub max_completion_tokens: Option<i64>,
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub n: Option<i64>,
    pub stop: Option<Stop>,
    pub seed: Option<i64>,
    pub stream: Option<bool>,
    pub stream_options: Option<Value>,
    pub presence_penalty: Option<f64>,
    pub frequency_penalty: Option<f64>,
    pub logprobs: Option<bool>,
    pub top_logprobs: Option<i64>,
    pub logit_bias: Option<serde_json::Map<String, Value>>,
    /// Accepted and ignored.
    pub user: Option<Value>,
}

/// What one request asks the model worker for: `n` samples of each prompt.
#[derive(Debug, Clone)]
pub struct Work {
    pub prompts: Vec<GenerateConfig>,
    pub n: usize,
    pub options: DecodeOptions,
    pub stream: bool,
    pub echo: bool,
    /// Whether the final usage chunk is streamed (`stream_options.include_usage`).
    pub include_usage: bool,
}

/// OpenAI's defaults: 16 new tokens for completions, temperature 1, top_p 1.
const DEFAULT_COMPLETION_TOKENS: usize = 16;

struct Common {
    max_tokens: Option<i64>,
    temperature: Option<f64>,
    top_p: Option<f64>,
    n: Option<i64>,
    stop: Option<Stop>,
    seed: Option<i64>,
    presence_penalty: Option<f64>,
    frequency_penalty: Option<f64>,
    logprobs: Option<usize>,
    logit_bias: Option<serde_json::Map<String, Value>>,
    stream: bool,
    stream_options: Option<Value>,
}

impl Common {
    fn into_work(
        self,
        max_tokens_field: &str,
        default_max: Option<usize>,
        prompts: Vec<GenerateConfig>,
        echo: bool,
    ) -> Result<Work, ApiError> {
        // No limit: the rest of the context (`usize::MAX` is cut to it once the prompt's length
        // is known); a limit past the context is cut the same way.
        let max_new_tokens = match self
            .max_tokens
            .map(|m| m as i128)
            .or(default_max.map(|d| d as i128))
        {
            None => usize::MAX,
            Some(m) if m >= 1 => m as usize,
            Some(_) => return Err(ApiError::invalid(max_tokens_field, "must be at least 1")),
        };
        let temperature = self.temperature.unwrap_or(1.0);
        if !(0.0..=2.0).contains(&temperature) {
            return Err(ApiError::invalid("temperature", "must be between 0 and 2"));
        }
        let top_p = self.top_p.unwrap_or(1.0);
        if !(top_p > 0.0 && top_p <= 1.0) {
            return Err(ApiError::invalid("top_p", "must be above 0 and at most 1"));
        }
        let n = match self.n {
            None => 1,
            Some(n) if (1..=128).contains(&n) => n as usize,
            Some(_) => return Err(ApiError::invalid("n", "must be between 1 and 128")),
        };
        let stop = match self.stop {
            None => Vec::new(),
            Some(Stop::One(s)) => vec![s],
            Some(Stop::Many(v)) => v,
        };
        if stop.len() > 4 {
            return Err(ApiError::invalid("stop", "may hold at most 4 strings"));
        }
        if stop.iter().any(String::is_empty) {
            return Err(ApiError::invalid(
                "stop",
                "must not contain an empty string",
            ));
        }
        let penalty = |name: &str, v: Option<f64>| match v.unwrap_or(0.0) {
            p if (-2.0..=2.0).contains(&p) => Ok(p as f32),
            _ => Err(ApiError::invalid(name, "must be between -2 and 2")),
        };
        let options = DecodeOptions {
            logprobs: self.logprobs,
            presence_penalty: penalty("presence_penalty", self.presence_penalty)?,
            frequency_penalty: penalty("frequency_penalty", self.frequency_penalty)?,
            logit_bias: logit_bias(self.logit_bias)?,
        };
        // Any 64-bit integer, as OpenAI takes it.
        let seed = self.seed.map(|s| s as u64);
        let include_usage = self
            .stream_options
            .as_ref()
            .and_then(|o| o.get("include_usage"))
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let prompts = prompts
            .into_iter()
            .map(|p| GenerateConfig {
                max_new_tokens,
                temperature,
                top_k: 0,
                top_p,
                repetition_penalty: 1.0,
                stop: stop.clone(),
                n: 1,
                // Without a seed each request samples afresh, as OpenAI's API does.
                seed: seed.unwrap_or_else(fresh_seed),
                stop_at_eot: true,
                min_new_tokens: 0,
                ..p
            })
            .collect();
        Ok(Work {
            prompts,
            n,
            options,
            stream: self.stream,
            echo,
            include_usage,
        })
    }
}

/// `{"token id": bias}` with biases from -100 to 100, as OpenAI takes them.
fn logit_bias(map: Option<serde_json::Map<String, Value>>) -> Result<Vec<(u32, f32)>, ApiError> {
    map.unwrap_or_default()
        .into_iter()
        .map(|(k, v)| {
            let id = k.parse::<u32>().map_err(|_| {
                ApiError::invalid(
                    "logit_bias",
                    format!("has the key `{k}`; keys are token ids"),
                )
            })?;
            match v.as_f64() {
                Some(b) if (-100.0..=100.0).contains(&b) => Ok((id, b as f32)),
                _ => Err(ApiError::invalid(
                    "logit_bias",
                    format!("for {k} must be a number from -100 to 100"),
                )),
            }
        })
        .collect()
}

/// A seed for a request that gave none.
fn fresh_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.finish()
}

impl CompletionRequest {
    pub fn into_work(self) -> Result<Work, ApiError> {
        let prompts = match self.prompt {
            Prompt::One(p) => vec![p],
            Prompt::Many(v) if v.is_empty() => {
                return Err(ApiError::invalid("prompt", "must not be an empty list"))
            }
            Prompt::Many(v) => v,
        };
        let logprobs = match self.logprobs {
            None => None,
            Some(k) if (0..=5).contains(&k) => Some(k as usize),
            Some(_) => return Err(ApiError::invalid("logprobs", "must be between 0 and 5")),
        };
        let common = Common {
            max_tokens: self.max_tokens,
            temperature: self.temperature,
            top_p: self.top_p,
            n: self.n,
            stop: self.stop,
            seed: self.seed,
            presence_penalty: self.presence_penalty,
            frequency_penalty: self.frequency_penalty,
            logprobs,
            logit_bias: self.logit_bias,
            stream: self.stream.unwrap_or(false),
            stream_options: self.stream_options,
        };
        let prompts = prompts
            .into_iter()
            .map(|prompt| GenerateConfig {
                prompt,
                ..GenerateConfig::default()
            })
            .collect();
        common.into_work(
            "max_tokens",
            Some(DEFAULT_COMPLETION_TOKENS),
            prompts,
            self.echo.unwrap_or(false),
        )
    }
}

impl ChatRequest {
    /// Without a limit, a reply may use the rest of the context.
    pub fn into_work(self) -> Result<Work, ApiError> {
        let messages = parse_messages(&self.messages)?;
        let logprobs = match (self.logprobs.unwrap_or(false), self.top_logprobs) {
            (false, None) => None,
            (false, Some(_)) => {
                return Err(ApiError::invalid("top_logprobs", "needs `logprobs: true`"))
            }
            (true, None) => Some(0),
            (true, Some(k)) if (0..=20).contains(&k) => Some(k as usize),
            (true, Some(_)) => {
                return Err(ApiError::invalid(
                    "top_logprobs",
                    "must be between 0 and 20",
                ))
            }
        };
        let (field, max_tokens) = match (self.max_completion_tokens, self.max_tokens) {
            (Some(m), _) => ("max_completion_tokens", Some(m)),
            (None, m) => ("max_tokens", m),
        };
        let common = Common {
            max_tokens,
            temperature: self.temperature,
            top_p: self.top_p,
            n: self.n,
            stop: self.stop,
            seed: self.seed,
            presence_penalty: self.presence_penalty,
            frequency_penalty: self.frequency_penalty,
            logprobs,
            logit_bias: self.logit_bias,
            stream: self.stream.unwrap_or(false),
            stream_options: self.stream_options,
        };
        let prompt = GenerateConfig {
            messages: Some(messages),
            ..GenerateConfig::default()
        };
        common.into_work(field, None, vec![prompt], false)
    }
}

/// Chat messages: `content` is a string or a list of `{"type": "text", "text": …}` parts.
fn parse_messages(raw: &[Value]) -> Result<Vec<Message>, ApiError> {
    if raw.is_empty() {
        return Err(ApiError::invalid(
            "messages",
            "must hold at least one message",
        ));
    }
    let flattened: Vec<Value> = raw
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let mut m = m.clone();
            // OpenAI's newer name for the system role.
            if m.get("role").and_then(Value::as_str) == Some("developer") {
                m["role"] = Value::String("system".into());
            }
            if let Some(parts) = m.get("content").and_then(Value::as_array) {
                let mut text = String::new();
                for part in parts {
                    match (part.get("type").and_then(Value::as_str), part.get("text")) {
                        (Some("text"), Some(Value::String(t))) => text.push_str(t),
                        _ => {
                            return Err(ApiError::invalid(
                                &format!("messages[{i}].content"),
                                "parts must be {\"type\": \"text\", \"text\": …}; this model reads text only",
                            ))
                        }
                    }
                }
                m["content"] = Value::String(text);
            }
            Ok(m)
        })
        .collect::<Result<_, _>>()?;
    let messages = chat::parse_messages(&Value::Array(flattened))
        .map_err(|e| ApiError::invalid("messages", e.to_string()))?;
    for (i, m) in messages.iter().enumerate() {
        if !matches!(m.role.as_str(), "system" | "user" | "assistant") {
            return Err(ApiError::invalid(
                &format!("messages[{i}].role"),
                format!("is `{}`; use system, user or assistant", m.role),
            ));
        }
    }
    Ok(messages)
}

/// Reads a JSON body as `T`, turning serde's message (which names an unknown or mistyped field)
/// into a 400.
pub fn parse_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        ApiError::new(
            axum::http::StatusCode::BAD_REQUEST,
            format!("the request body is not valid: {e}"),
        )
    })
}
