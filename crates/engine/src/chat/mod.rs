//! Turning a conversation into the prompt a model expects: its own chat template when it has one
//! (SmolLM2, Qwen2.5, Llama 3.x, TinyLlama…), otherwise the plain `User:` / `Assistant:`
//! transcript that base models and Tunesmith's own from-scratch models are trained on.

pub mod template;

use serde::{Deserialize, Serialize};

use crate::data::import::structured::{ASSISTANT, USER};
use crate::{Error, Result};
pub use template::ChatTemplate;

/// One turn of a conversation, OpenAI-style: `role` is `system`, `user` or `assistant`.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub role: String,
    pub content: String,
}

impl Message {
    pub fn new(role: &str, content: &str) -> Self {
        Message {
            role: role.into(),
            content: content.into(),
        }
    }
}

/// Reads an OpenAI-style messages array (`[{"role": …, "content": …}]`; content may also be a
/// list of `{"type": "text", "text": …}` parts), naming the first bad entry.
pub fn parse_messages(json: &serde_json::Value) -> Result<Vec<Message>> {
    let list = json
        .as_array()
        .or_else(|| json.get("messages").and_then(|m| m.as_array()))
        .ok_or_else(|| {
            Error::config(
                "messages",
                "must be a list of {\"role\": …, \"content\": …} objects",
            )
        })?;
    let mut out = Vec::with_capacity(list.len());
    for (i, m) in list.iter().enumerate() {
        let at = |msg: &str| Error::config(format!("messages[{i}]"), msg.to_string());
        let role = m
            .get("role")
            .and_then(|r| r.as_str())
            .ok_or_else(|| at("has no \"role\""))?;
        if !matches!(role, "system" | "user" | "assistant") {
            return Err(at(&format!(
                "has role `{role}`; use system, user or assistant"
            )));
        }
        let content = match m.get("content") {
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(serde_json::Value::Array(parts)) => parts
                .iter()
                .filter_map(|p| p.get("text").and_then(|t| t.as_str()))
                .collect::<Vec<_>>()
                .join(""),
            Some(serde_json::Value::Null) | None => String::new(),
            Some(_) => {
                return Err(at(
                    "has a \"content\" that is neither text nor a list of text parts",
                ))
            }
        };
        out.push(Message::new(role, &content));
    }
    if out.is_empty() {
        return Err(Error::config(
            "messages",
            "is empty; give at least one message",
        ));
    }
    Ok(out)
}

/// Where a model chatting through the transcript has finished its turn: it starts the next one.
pub const TRANSCRIPT_STOP: &str = "\nUser:";

/// The `User:` / `Assistant:` transcript (a system message is its first line), ending with the
/// `Assistant:` cue when `add_generation_prompt`. The same text the training data and the app's
/// Chat page use for models without a template.
pub fn transcript(messages: &[Message], add_generation_prompt: bool) -> String {
    let mut lines: Vec<String> = messages
        .iter()
        .map(|m| match m.role.as_str() {
            "user" => format!("{USER} {}", m.content.trim()),
            "assistant" => format!("{ASSISTANT} {}", m.content.trim()),
            _ => m.content.trim().to_string(),
        })
        .collect();
    if add_generation_prompt {
        lines.push(ASSISTANT.to_string());
    }
    lines.join("\n")
}

/// The prompt for `messages`: rendered with `template` when the model has one, else the transcript.
pub fn render(
    template: Option<&ChatTemplate>,
    messages: &[Message],
    add_generation_prompt: bool,
) -> Result<String> {
    match template {
        Some(t) => t.render(messages, add_generation_prompt, &Default::default()),
        None => Ok(transcript(messages, add_generation_prompt)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_parse_with_text_parts_and_bad_entries_are_named() {
        let m = parse_messages(&serde_json::json!([
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": [{"type": "text", "text": "Hi "}, {"type": "text", "text": "there"}]}
        ]))
        .unwrap();
        assert_eq!(m[1], Message::new("user", "Hi there"));
        let e = parse_messages(
            &serde_json::json!([{"role": "user", "content": "x"}, {"role": "tool"}]),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("messages[1]") && e.contains("tool"), "{e}");
        assert!(parse_messages(&serde_json::json!({"messages": []})).is_err());
    }

    #[test]
    fn the_transcript_is_what_training_data_uses() {
        let m = [
            Message::new("system", "Be brief."),
            Message::new("user", " Hi "),
            Message::new("assistant", "Hello."),
            Message::new("user", "Refunds?"),
        ];
        assert_eq!(
            transcript(&m, true),
            "Be brief.\nUser: Hi\nAssistant: Hello.\nUser: Refunds?\nAssistant:"
        );
    }
}
