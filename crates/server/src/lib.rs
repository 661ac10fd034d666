//! `tunesmith serve`: an OpenAI-compatible HTTP API over one loaded model (axum on tokio).
//!
//! The HTTP side runs on its own tokio runtime thread; the model lives on one worker thread
//! ([`worker`]) that decodes the queued samples in turn. Used by the CLI and by the app's Serve
//! switch; nothing here does ML work of its own.

pub mod api;
pub mod error;
mod guard;
mod prepare;
mod reply;
mod routes;
pub mod worker;

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::thread::JoinHandle;

use tunesmith_engine::model::load::LoadedModel;

pub use error::ApiError;

/// How the server listens and what it accepts.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub host: String,
    /// 0 picks a free port (see [`Server::addr`]).
    pub port: u16,
    /// When set, every `/v1` request must carry `Authorization: Bearer <key>`.
    pub api_key: Option<String>,
    /// The model's name in `/v1/models` and in responses; requests naming another get 404.
    pub model_name: String,
    /// Samples that may wait beyond those being decoded; more are refused with 429.
    pub queue: usize,
    /// Larger request bodies are refused with 413.
    pub max_body_bytes: usize,
}

impl ServeConfig {
    pub fn new(model_name: &str) -> Self {
        ServeConfig {
            host: "127.0.0.1".into(),
            port: 8080,
            api_key: None,
            model_name: model_name.into(),
            queue: 64,
            max_body_bytes: 4 << 20,
        }
    }

    /// Whether the address is reachable only from this computer.
    pub fn is_local(&self) -> bool {
        matches!(self.host.as_str(), "127.0.0.1" | "localhost" | "::1")
    }
}

/// What the handlers share.
pub(crate) struct State {
    worker: worker::Worker,
    preparer: prepare::Preparer,
    config: ServeConfig,
    created: u64,
}

/// A running server; [`Server::stop`] (or dropping it) shuts it down.
pub struct Server {
    addr: SocketAddr,
    shutdown: Option<tokio::sync::watch::Sender<bool>>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    /// Binds the address (an error names it when it is taken) and starts serving `model`.
    pub fn start(model: LoadedModel, config: ServeConfig) -> std::io::Result<Server> {
        let listener = TcpListener::bind((config.host.as_str(), config.port)).map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!("cannot listen on {}:{}: {e}", config.host, config.port),
            )
        })?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let preparer = prepare::Preparer {
            tokenizer: model.tokenizer.clone(),
            template: model.template.clone(),
            context: model.config.context(),
        };
        let state = Arc::new(State {
            preparer,
            worker: worker::Worker::start(model, config.queue.max(1))?,
            config,
            created: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        });
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("tunesmith-serve-http")
            .enable_all()
            .build()?;
        let (tx, mut rx) = tokio::sync::watch::channel(false);
        let mut forced = rx.clone();
        let thread = std::thread::Builder::new()
            .name("tunesmith-serve".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let listener = match tokio::net::TcpListener::from_std(listener) {
                        Ok(l) => l,
                        Err(e) => {
                            eprintln!("tunesmith serve: {e}");
                            return;
                        }
                    };
                    let app = routes::router(state);
                    let served = axum::serve(listener, app).with_graceful_shutdown(async move {
                        let _ = rx.changed().await;
                    });
                    // Open streams get a moment to end, then are cut.
                    let deadline = async move {
                        let _ = forced.changed().await;
                        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
                    };
                    tokio::select! {
                        served = served => if let Err(e) = served {
                            eprintln!("tunesmith serve: {e}");
                        },
                        _ = deadline => {}
                    }
                });
                // Streams still open are not waited for.
                runtime.shutdown_background();
            })?;
        Ok(Server {
            addr,
            shutdown: Some(tx),
            thread: Some(thread),
        })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Whether it is still serving (false once stopped, or after a fatal error).
    pub fn is_running(&self) -> bool {
        self.thread.as_ref().is_some_and(|t| !t.is_finished())
    }

    /// Blocks until the server ends (it ends only when stopped or on an error).
    pub fn wait(mut self) {
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }

    /// Stops accepting connections and shuts down.
    pub fn stop(mut self) {
        self.shut_down();
    }

    fn shut_down(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(true);
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shut_down();
    }
}
