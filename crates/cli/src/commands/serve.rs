//! `tunesmith serve`: loads the model once and serves it until Ctrl-C.

use anyhow::Result;
use tunesmith_engine::device;
use tunesmith_server::{ServeConfig, Server};

use super::Sink;
use crate::args::ServeArgs;

pub fn run(args: ServeArgs) -> Result<()> {
    let dev = device::select(&args.device)?;
    let loaded = super::load_model(&args.source, &dev, &mut Sink::new(false))?;
    let name = args
        .name
        .clone()
        .unwrap_or_else(|| default_name(&args.source.model));
    let mut config = ServeConfig::new(&name);
    config.host = args.host.clone();
    config.port = args.port;
    config.api_key = api_key(args.api_key.clone());
    config.queue = args.queue;
    if !config.is_local() && config.api_key.is_none() {
        eprintln!(
            "warning: listening on {} without --api-key: anyone who can reach this computer can use the model",
            config.host
        );
    }
    let server = Server::start(loaded, config)?;
    let addr = server.addr();
    eprintln!("serving `{name}` on http://{addr}/v1 (Ctrl-C stops)");
    eprintln!(
        "  curl http://{addr}/v1/completions -H 'Content-Type: application/json' -d '{{\"prompt\": \"Hello\", \"max_tokens\": 20}}'"
    );
    let (tx, rx) = std::sync::mpsc::channel();
    ctrlc::set_handler(move || {
        let _ = tx.send(());
    })?;
    // Ctrl-C, or the server ending on its own (an error it has printed).
    while server.is_running() {
        if rx
            .recv_timeout(std::time::Duration::from_millis(500))
            .is_ok()
        {
            eprintln!("stopping");
            break;
        }
    }
    let failed = !server.is_running();
    server.stop();
    if failed {
        anyhow::bail!("the server stopped unexpectedly (see the message above)");
    }
    Ok(())
}

/// The last part of the source: `runs/my-run` serves as `my-run`, `HuggingFaceTB/SmolLM2-135M` as
/// itself.
fn default_name(source: &str) -> String {
    let path = std::path::Path::new(source);
    if path.exists() {
        if let Some(name) = path.file_stem().and_then(|n| n.to_str()) {
            return name.to_string();
        }
    }
    source.to_string()
}

/// The key as given: an empty one (`TUNESMITH_API_KEY=`) is no key, since it would turn the
/// page checks off and let nobody in.
fn api_key(given: Option<String>) -> Option<String> {
    given.filter(|k| !k.trim().is_empty())
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_empty_key_is_no_key() {
        assert_eq!(super::api_key(Some(" ".into())), None);
        assert_eq!(super::api_key(None), None);
        assert_eq!(super::api_key(Some("k".into())).as_deref(), Some("k"));
    }
}
