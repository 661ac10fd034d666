//! Responses in OpenAI's shapes: a whole `text_completion` / `chat.completion` object, or a
//! server-sent-event stream of chunks ending with `data: [DONE]`.

use std::convert::Infallible;

use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use tokio::sync::mpsc::{self, UnboundedReceiver};
use tunesmith_engine::generate::FinishReason;

use crate::api::Work;
use crate::error::ApiError;
use crate::worker::Label;
use crate::worker::Update;

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Kind {
    Completion,
    Chat,
}

/// What every response object of one request carries.
pub struct Meta {
    kind: Kind,
    id: String,
    created: u64,
    model: String,
    echo: bool,
    logprobs: bool,
    include_usage: bool,
    /// Samples per prompt: choice `i` is sample `i % n` of prompt `i / n`.
    n: usize,
}

impl Meta {
    pub fn new(kind: Kind, model: &str, work: &Work) -> Meta {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let prefix = match kind {
            Kind::Completion => "cmpl",
            Kind::Chat => "chatcmpl",
        };
        Meta {
            kind,
            id: format!("{prefix}-{:x}{:08x}", now.as_secs(), now.subsec_nanos()),
            created: now.as_secs(),
            model: model.to_string(),
            echo: work.echo,
            logprobs: work.options.logprobs.is_some(),
            include_usage: work.include_usage,
            n: work.n,
        }
    }

    fn object(&self, chunk: bool) -> &'static str {
        match (self.kind, chunk) {
            (Kind::Completion, _) => "text_completion",
            (Kind::Chat, false) => "chat.completion",
            (Kind::Chat, true) => "chat.completion.chunk",
        }
    }

    fn envelope(&self, chunk: bool, choices: Vec<Value>) -> Value {
        json!({
            "id": self.id,
            "object": self.object(chunk),
            "created": self.created,
            "model": self.model,
            "choices": choices,
        })
    }
}

fn finish_word(f: FinishReason) -> &'static str {
    match f {
        FinishReason::Length => "length",
        // A sample is cancelled only when its client has gone; nobody reads this.
        FinishReason::Stop | FinishReason::Cancelled => "stop",
    }
}

fn usage(prompt: usize, completion: usize) -> Value {
    json!({
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    })
}

/// Log-probabilities of one choice, gathered token by token.
#[derive(Default)]
struct Logprobs {
    tokens: Vec<Label>,
    logprobs: Vec<f32>,
    top: Vec<Vec<(Label, f32)>>,
    offsets: Vec<usize>,
}

impl Logprobs {
    fn push(&mut self, label: Label, logprob: f32, top: Vec<(Label, f32)>, offset: usize) {
        self.tokens.push(label);
        self.logprobs.push(logprob);
        self.top.push(top);
        self.offsets.push(offset);
    }

    fn to_json(&self, kind: Kind) -> Value {
        match kind {
            // The legacy shape: parallel lists, top alternatives as {token: logprob}.
            Kind::Completion => json!({
                "tokens": self.tokens.iter().map(|t| &t.text).collect::<Vec<_>>(),
                "token_logprobs": self.logprobs,
                "top_logprobs": self.top.iter().map(|t| {
                    t.iter().map(|(s, l)| (s.text.clone(), json!(l))).collect::<serde_json::Map<_, _>>()
                }).collect::<Vec<_>>(),
                "text_offset": self.offsets,
            }),
            Kind::Chat => json!({
                "content": self.tokens.iter().zip(&self.logprobs).zip(&self.top).map(|((t, l), top)| json!({
                    "token": t.text,
                    "logprob": l,
                    "bytes": t.bytes,
                    "top_logprobs": top.iter().map(|(s, l)| json!({"token": s.text, "logprob": l, "bytes": s.bytes})).collect::<Vec<_>>(),
                })).collect::<Vec<_>>(),
            }),
        }
    }
}

/// Prompt tokens of the request: each prompt once, however many samples it has.
fn prompt_tokens(meta: &Meta, started: &[(String, usize)]) -> usize {
    started
        .iter()
        .step_by(meta.n.max(1))
        .map(|(_, tokens)| tokens)
        .sum()
}

/// Waits for every choice to finish and answers with one object.
pub async fn whole(
    meta: Meta,
    started: Vec<(String, usize)>,
    mut choices: Vec<UnboundedReceiver<Update>>,
) -> Result<Response, ApiError> {
    let mut out = Vec::new();
    let (prompt_total, mut completion_total) = (prompt_tokens(&meta, &started), 0);
    for (index, (rx, (prompt, _))) in choices.iter_mut().zip(started).enumerate() {
        let mut text = if meta.echo { prompt } else { String::new() };
        let mut logprobs = Logprobs::default();
        let finish = loop {
            match rx.recv().await {
                Some(Update::Token { token, label, top }) => {
                    if meta.logprobs {
                        logprobs.push(label, token.logprob, top, text.chars().count());
                    }
                    text.push_str(&token.text);
                }
                Some(Update::Done {
                    finish,
                    rest,
                    completion_tokens,
                }) => {
                    text.push_str(&rest);
                    completion_total += completion_tokens;
                    break finish;
                }
                Some(Update::Failed(e)) => return Err(e),
                Some(Update::Started { .. }) | None => {
                    return Err(ApiError::new(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "the model worker stopped",
                    ))
                }
            }
        };
        let lp = meta.logprobs.then(|| logprobs.to_json(meta.kind));
        out.push(match meta.kind {
            Kind::Completion => json!({
                "text": text,
                "index": index,
                "logprobs": lp,
                "finish_reason": finish_word(finish),
            }),
            Kind::Chat => json!({
                "index": index,
                "message": {"role": "assistant", "content": text},
                "logprobs": lp,
                "finish_reason": finish_word(finish),
            }),
        });
    }
    let mut body = meta.envelope(false, out);
    body["usage"] = usage(prompt_total, completion_total);
    Ok(Json(body).into_response())
}

/// Streams chunks as the worker produces tokens, choices interleaved, then `[DONE]`. Headers go
/// out at once, so a request queued behind others is not left without a byte (keep-alive
/// comments follow while it waits). A client
/// that disconnects drops the stream, and with it every choice's channel: the worker stops them.
pub fn stream(meta: Meta, choices: Vec<UnboundedReceiver<Update>>) -> Response {
    let count = choices.len();
    let (tx, merged) = mpsc::unbounded_channel::<(usize, Update)>();
    for (index, mut rx) in choices.into_iter().enumerate() {
        let tx = tx.clone();
        tokio::spawn(async move {
            while let Some(update) = rx.recv().await {
                let last = matches!(update, Update::Done { .. } | Update::Failed(_));
                if tx.send((index, update)).is_err() || last {
                    break;
                }
            }
        });
    }
    drop(tx);
    let state = StreamState {
        meta,
        merged,
        first: vec![String::new(); count],
        offsets: vec![0; count],
        role_sent: vec![false; count],
        prompt_total: 0,
        completion_total: 0,
        done: false,
    };
    let events = futures_util::stream::unfold(state, |mut st| async move {
        let event = st.next_event().await?;
        Some((Ok::<_, Infallible>(event), st))
    });
    Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response()
}

struct StreamState {
    meta: Meta,
    merged: UnboundedReceiver<(usize, Update)>,
    /// What each choice's first chunk starts with (the echoed prompt), taken once.
    first: Vec<String>,
    /// Characters sent so far per choice (OpenAI's `text_offset` counts characters).
    offsets: Vec<usize>,
    role_sent: Vec<bool>,
    prompt_total: usize,
    completion_total: usize,
    done: bool,
}

impl StreamState {
    async fn next_event(&mut self) -> Option<Event> {
        if self.done {
            return None;
        }
        let Some((index, update)) = self.merged.recv().await else {
            self.done = true;
            if self.meta.include_usage {
                let mut body = self.meta.envelope(true, Vec::new());
                body["usage"] = usage(self.prompt_total, self.completion_total);
                // The usage chunk, then [DONE] on the next poll.
                self.meta.include_usage = false;
                self.done = false;
                return Some(Event::default().data(body.to_string()));
            }
            return Some(Event::default().data("[DONE]"));
        };
        let prefix = std::mem::take(&mut self.first[index]);
        let choice = match update {
            Update::Token { token, label, top } => {
                let mut lp = Logprobs::default();
                if self.meta.logprobs {
                    lp.push(
                        label,
                        token.logprob,
                        top,
                        self.offsets[index] + prefix.chars().count(),
                    );
                }
                let text = prefix + &token.text;
                self.offsets[index] += text.chars().count();
                let lp = self.meta.logprobs.then(|| lp.to_json(self.meta.kind));
                self.chunk(index, text, lp, None)
            }
            Update::Done {
                finish,
                rest,
                completion_tokens,
            } => {
                self.completion_total += completion_tokens;
                self.chunk(index, prefix + &rest, None, Some(finish_word(finish)))
            }
            Update::Failed(e) => {
                // Headers are sent: report in the stream, as OpenAI does, and end it.
                self.done = true;
                return Some(Event::default().data(
                    json!({"error": {"message": e.message, "type": "server_error", "param": e.param, "code": e.status.as_u16().to_string()}})
                        .to_string(),
                ));
            }
            Update::Started {
                prompt,
                prompt_tokens,
            } => {
                // Each prompt counts once, however many samples it has.
                if index % self.meta.n.max(1) == 0 {
                    self.prompt_total += prompt_tokens;
                }
                if self.meta.echo {
                    self.first[index] = prompt;
                }
                return Some(Event::default().comment("started"));
            }
        };
        Some(Event::default().data(self.meta.envelope(true, vec![choice]).to_string()))
    }

    fn chunk(
        &mut self,
        index: usize,
        text: String,
        logprobs: Option<Value>,
        finish: Option<&str>,
    ) -> Value {
        match self.meta.kind {
            Kind::Completion => json!({
                "text": text,
                "index": index,
                "logprobs": logprobs,
                "finish_reason": finish,
            }),
            Kind::Chat => {
                let mut delta = json!({"content": text});
                // The first chunk of each choice names the role, as OpenAI's do.
                if !std::mem::replace(&mut self.role_sent[index], true) {
                    delta["role"] = json!("assistant");
                }
                json!({
                    "index": index,
                    "delta": delta,
                    "logprobs": logprobs,
                    "finish_reason": finish,
                })
            }
        }
    }
}
