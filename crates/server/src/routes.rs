//! The HTTP routes: authentication, body limits and reading, then the hand-off to the worker and
//! to [`crate::reply`] for the response.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State as St};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;
use tokio::sync::mpsc;

use crate::api::{parse_body, ChatRequest, CompletionRequest, Work};
use crate::error::ApiError;
use crate::reply::{self, Kind};
use crate::worker::{Sample, Update};
use crate::State;

pub fn router(state: Arc<State>) -> Router {
    let limit = state.config.max_body_bytes;
    Router::new()
        .route("/health", get(health))
        .route("/v1/models", get(models))
        .route("/v1/models/{*id}", get(model))
        .route("/v1/completions", post(completions))
        .route("/v1/chat/completions", post(chat_completions))
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::guard::guard,
        ))
        .layer(DefaultBodyLimit::max(limit))
        .with_state(state)
}

/// 200 with the load while the model thread runs; 503 once it has stopped (a crash that escaped
/// the per-sample guard), so a supervisor knows to restart the server.
async fn health(St(state): St<Arc<State>>) -> (StatusCode, Json<serde_json::Value>) {
    let load = state.worker.load();
    if !load.alive.load(Ordering::SeqCst) {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({
                "status": "error",
                "model": state.config.model_name,
                "message": "the model has stopped working; restart the server",
            })),
        );
    }
    (
        StatusCode::OK,
        Json(json!({
            "status": "ok",
            "model": state.config.model_name,
            "active": load.active.load(Ordering::SeqCst),
            "waiting": load.waiting.load(Ordering::SeqCst),
        })),
    )
}

async fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "no such endpoint; this server offers /v1/completions, /v1/chat/completions and /v1/models",
    )
}

/// Checks the bearer token when the server has a key.
fn authorize(state: &State, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(key) = &state.config.api_key else {
        return Ok(());
    };
    let given = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if given.is_some_and(|g| constant_time_eq(g.as_bytes(), key.as_bytes())) {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "missing or wrong API key: send `Authorization: Bearer <key>` with the key the server was started with",
        ))
    }
}

/// Compares without stopping at the first difference, so timing does not reveal the key.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn model_object(state: &State) -> serde_json::Value {
    json!({
        "id": state.config.model_name,
        "object": "model",
        "created": state.created,
        "owned_by": "tunesmith",
    })
}

async fn models(St(state): St<Arc<State>>, headers: HeaderMap) -> Result<Response, ApiError> {
    authorize(&state, &headers)?;
    Ok(Json(json!({"object": "list", "data": [model_object(&state)]})).into_response())
}

async fn model(
    St(state): St<Arc<State>>,
    headers: HeaderMap,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Result<Response, ApiError> {
    authorize(&state, &headers)?;
    check_model(&state, Some(&id))?;
    Ok(Json(model_object(&state)).into_response())
}

fn check_model(state: &State, asked: Option<&str>) -> Result<(), ApiError> {
    match asked {
        Some(m) if m != state.config.model_name => Err(ApiError {
            status: StatusCode::NOT_FOUND,
            message: format!(
                "the model `{m}` does not exist here; this server serves `{}`",
                state.config.model_name
            ),
            param: Some("model".into()),
        }),
        _ => Ok(()),
    }
}

/// The body, or the limit's 413 (and other read failures) in OpenAI's error shape.
fn body(read: Result<Bytes, BytesRejection>, limit: usize) -> Result<Bytes, ApiError> {
    read.map_err(|e| match e.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the request body is larger than this server accepts ({limit} bytes)"),
        ),
        status => ApiError::new(status, e.body_text()),
    })
}

async fn completions(
    St(state): St<Arc<State>>,
    headers: HeaderMap,
    read: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    authorize(&state, &headers)?;
    let request: CompletionRequest = parse_body(&body(read, state.config.max_body_bytes)?)?;
    check_model(&state, request.model.as_deref())?;
    let work = request.into_work()?;
    respond(state, work, Kind::Completion).await
}

async fn chat_completions(
    St(state): St<Arc<State>>,
    headers: HeaderMap,
    read: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    authorize(&state, &headers)?;
    let request: ChatRequest = parse_body(&body(read, state.config.max_body_bytes)?)?;
    check_model(&state, request.model.as_deref())?;
    let work = request.into_work()?;
    respond(state, work, Kind::Chat).await
}

/// Queues every sample (prompt-major: choice `i` is prompt `i / n`, sample `i % n`) and answers:
/// a stream at once; a whole answer once every sample has started and finished.
async fn respond(state: Arc<State>, work: Work, kind: Kind) -> Result<Response, ApiError> {
    let samples = work.prompts.len() * work.n;
    let most = state.config.queue + crate::worker::ACTIVE;
    if samples > most {
        return Err(ApiError::invalid(
            "n",
            format!("asks for {samples} samples (prompts × n); this server takes at most {most} at once"),
        ));
    }
    // Rendering and tokenising may take a while: not on the async runtime's threads.
    let shared = state.clone();
    let prompts = work.prompts.clone();
    let prepared = tokio::task::spawn_blocking(move || shared.preparer.prepare(&prompts))
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the tokenizer crashed on this prompt",
            )
        })??;
    let mut choices = Vec::new();
    let mut queued = Vec::new();
    for p in &prepared {
        for index in 0..work.n {
            let (tx, rx) = mpsc::unbounded_channel();
            queued.push(Sample {
                cfg: p.cfg.clone(),
                ids: p.ids.clone(),
                index: index as u64,
                options: work.options.clone(),
                updates: tx,
            });
            choices.push(rx);
        }
    }
    state.worker.submit(queued)?;
    let meta = reply::Meta::new(kind, &state.config.model_name, &work);
    if work.stream {
        return Ok(reply::stream(meta, choices));
    }
    let mut started = Vec::new();
    for rx in &mut choices {
        match rx.recv().await {
            Some(Update::Started {
                prompt,
                prompt_tokens,
            }) => started.push((prompt, prompt_tokens)),
            Some(Update::Failed(e)) => return Err(e),
            _ => {
                return Err(ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "the model worker stopped",
                ))
            }
        }
    }
    reply::whole(meta, started, choices).await
}
