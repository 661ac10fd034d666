//! Taking a run's model out of the app: exports into the data folder's `exports/`, and one
//! OpenAI-compatible server on this computer (127.0.0.1), which stops with the app.

use std::path::PathBuf;

use serde::Serialize;
use tauri::ipc::Channel;
use tauri::State;
use tunesmith_engine::export::ollama::shell_quote;
use tunesmith_engine::export::{self, ExportConfig, ExportFormat, ExportReport, Quant};
use tunesmith_engine::model::load;
use tunesmith_engine::{device, source, Error, Event, NullSink};
use tunesmith_server::{ServeConfig, Server};

use crate::error::{CommandError, CommandResult};
use crate::jobs::{CurrentJob, JobKind};
use crate::state::AppState;

/// Exports a run's latest checkpoint (or, for `job`, the run) into
/// `exports/<run>-<format>[-<quant>]` in the data folder, replacing an earlier export of the same
/// kind; a job with progress events that `stop_job(job_id)` stops. The report says how the
/// reloaded export compared with the model.
#[tauri::command]
pub async fn export_run(
    state: State<'_, AppState>,
    job_id: String,
    run_path: PathBuf,
    format: ExportFormat,
    quant: Option<Quant>,
    on_event: Channel<Event>,
) -> CommandResult<ExportReport> {
    let run = state.paths.run(&run_path)?;
    let run_name = run
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut name = format!("{run_name}-{}", format.as_str());
    if let (ExportFormat::Gguf | ExportFormat::Ollama, Some(q)) = (format, quant) {
        name.push_str(&format!("-{}", q.label()));
    }
    if format == ExportFormat::Gguf {
        name.push_str(".gguf");
    }
    let out = state.paths.home.join("exports").join(name);
    let info = CurrentJob {
        job_id,
        kind: JobKind::Export,
        run_path: Some(run.display().to_string()),
        name: Some(run_name),
    };
    state
        .jobs
        .run(info, on_event, move |cancel, sink| {
            let model = match format {
                ExportFormat::Job => run.clone(),
                _ => source::resolve(&run.display().to_string(), sink)?,
            };
            let cfg = ExportConfig {
                model,
                base: None,
                format,
                out,
                quant,
                force: true,
                name: None,
                system: None,
                run: Some(run),
            };
            export::export(&cfg, cancel, sink)
        })
        .await
}

/// The running server, as the Runs page shows it.
#[cfg_attr(test, derive(ts_rs::TS))]
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServeInfo {
    pub run_path: String,
    /// The model's name in the API.
    pub model: String,
    /// The base URL an OpenAI client takes (`http://127.0.0.1:PORT/v1`).
    pub address: String,
    /// A copyable example with curl.
    pub curl: String,
    /// A copyable example with the `openai` Python package.
    pub python: String,
}

/// The first free port from 8080, so the address stays the same from one session to the next.
fn free_port() -> CommandResult<u16> {
    (8080..8100)
        .find(|p| std::net::TcpListener::bind(("127.0.0.1", *p)).is_ok())
        .ok_or_else(|| {
            CommandError::new(
                "serve",
                "Ports 8080 to 8099 on this computer are all taken; close the programs using them and try again.",
            )
        })
}

/// Serves a run's latest checkpoint on 127.0.0.1 (replacing the model served before, if any).
#[tauri::command]
pub async fn start_serving(
    state: State<'_, AppState>,
    run_path: PathBuf,
) -> CommandResult<ServeInfo> {
    let run = state.paths.run(&run_path)?;
    let serving = state.serving.clone();
    tauri::async_runtime::spawn_blocking(move || {
        let model = run
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "model".into());
        let dir = source::resolve(&run.display().to_string(), &mut NullSink)?;
        let loaded = load::load_dir(&dir, &device::select("auto")?)?;
        let mut current = serving.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, old)) = current.take() {
            old.stop();
        }
        let mut config = ServeConfig::new(&model);
        config.port = free_port()?;
        let server = Server::start(loaded, config)
            .map_err(|e| Error::io(&run, e))?;
        let address = format!("http://{}/v1", server.addr());
        // The run's name goes into the examples as data: JSON-escaped, and the body shell-quoted.
        let body = serde_json::json!({
            "model": model,
            "messages": [{"role": "user", "content": "Hello"}],
        })
        .to_string();
        let model_literal = serde_json::to_string(&model).unwrap_or_else(|_| "\"model\"".into());
        let info = ServeInfo {
            run_path: run.display().to_string(),
            curl: format!(
                "curl {address}/chat/completions -H 'Content-Type: application/json' \\\n  -d {}",
                shell_quote(&body)
            ),
            python: format!(
                "from openai import OpenAI\n\nclient = OpenAI(base_url=\"{address}\", api_key=\"unused\")\nreply = client.chat.completions.create(\n    model={model_literal},\n    messages=[{{\"role\": \"user\", \"content\": \"Hello\"}}],\n)\nprint(reply.choices[0].message.content)"
            ),
            model,
            address,
        };
        *current = Some((info.clone(), server));
        Ok(info)
    })
    .await
    .map_err(|e| CommandError::new("internal", e.to_string()))?
}

/// Stops the server, if one runs.
#[tauri::command]
pub fn stop_serving(state: State<'_, AppState>) {
    state.stop_serving();
}

/// The running server, if any (a reloaded page shows it again).
#[tauri::command]
pub fn serving(state: State<'_, AppState>) -> Option<ServeInfo> {
    let current = state.serving.lock().unwrap_or_else(|p| p.into_inner());
    current
        .as_ref()
        .filter(|(_, s)| s.is_running())
        .map(|(info, _)| info.clone())
}

pub type Serving = std::sync::Arc<std::sync::Mutex<Option<(ServeInfo, Server)>>>;
