//! The desktop shell's commands on Tauri's mock runtime: real engine, real files, no window.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tauri::ipc::{CallbackFn, Channel, InvokeBody, InvokeResponseBody};
use tauri::test::{
    get_ipc_response, mock_builder, mock_context, noop_assets, MockRuntime, INVOKE_KEY,
};
use tauri::{Manager, WebviewWindow, WebviewWindowBuilder};
use tunesmith_desktop::commands::training;
use tunesmith_desktop::state::AppState;
use tunesmith_engine::train::{ModelSpec, TrainConfig};
use tunesmith_engine::Event;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("crates/engine/tests/fixtures")
}

fn app(home: &Path) -> (tauri::App<MockRuntime>, WebviewWindow<MockRuntime>) {
    let app = tunesmith_desktop::setup(mock_builder(), AppState::new(home.to_path_buf()))
        .build(mock_context(noop_assets()))
        .unwrap();
    let webview = WebviewWindowBuilder::new(&app, "main", Default::default())
        .build()
        .unwrap();
    (app, webview)
}

fn invoke(webview: &WebviewWindow<MockRuntime>, cmd: &str, args: Value) -> Result<Value, Value> {
    get_ipc_response(
        webview,
        tauri::webview::InvokeRequest {
            cmd: cmd.into(),
            callback: CallbackFn(0),
            error: CallbackFn(1),
            url: "tauri://localhost".parse().unwrap(),
            body: InvokeBody::Json(args),
            headers: Default::default(),
            invoke_key: INVOKE_KEY.to_string(),
        },
    )
    .map(|b| b.deserialize::<Value>().unwrap())
}

/// A channel whose events land in a vector.
fn capture() -> (Channel<Event>, Arc<Mutex<Vec<Event>>>) {
    let got = Arc::new(Mutex::new(Vec::new()));
    let g = got.clone();
    let ch = Channel::new(move |body| {
        if let InvokeResponseBody::Json(s) = body {
            g.lock().unwrap().push(serde_json::from_str(&s).unwrap());
        }
        Ok(())
    });
    (ch, got)
}

fn wait_for(events: &Arc<Mutex<Vec<Event>>>, what: impl Fn(&Event) -> bool) {
    let start = Instant::now();
    while !events.lock().unwrap().iter().any(&what) {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "timed out; events: {:?}",
            events.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn tiny_config(steps: u64) -> TrainConfig {
    TrainConfig {
        model: ModelSpec::Source(fixtures().join("gpt2-tiny").display().to_string()),
        data: vec![fixtures().join("corpus.txt")],
        steps: Some(steps),
        batch_size: 4,
        block_size: 32,
        lr: 3e-3,
        warmup: 2,
        eval_every: 5,
        sample_every: 0,
        save_every: 5,
        log_every: 1,
        ..Default::default()
    }
}

#[test]
fn training_starts_streams_stops_resumes_and_lists() {
    let home = tempfile::tempdir().unwrap();
    let (app, webview) = app(home.path());

    // Start a run that would take a while, stop it after a few steps: it saves and says so.
    let (ch, events) = capture();
    let started =
        training::start_training(app.state(), "first".into(), tiny_config(400), ch).unwrap();
    wait_for(
        &events,
        |e| matches!(e, Event::TrainStep { step, .. } if *step >= 3),
    );
    // A second heavy job is refused while this one runs.
    let (ch2, _) = capture();
    let busy =
        training::start_training(app.state(), "second".into(), tiny_config(5), ch2).unwrap_err();
    assert_eq!(busy.kind, "busy");
    invoke(&webview, "stop_job", json!({ "jobId": started.job_id })).unwrap();
    wait_for(&events, |e| {
        matches!(e, Event::Finished { .. } | Event::Failed { .. })
    });
    let last = events.lock().unwrap().last().cloned().unwrap();
    let Event::Finished { summary } = last else {
        panic!("{last:?}")
    };
    assert_eq!(summary["status"], "stopped");
    assert!(events
        .lock()
        .unwrap()
        .iter()
        .any(|e| matches!(e, Event::Checkpoint { .. })));

    // It is listed as stopped and resumable, with its curve on disk.
    let runs = invoke(&webview, "list_runs", json!({})).unwrap();
    assert_eq!(runs[0]["name"], "first");
    assert_eq!(runs[0]["status"], "stopped");
    assert_eq!(runs[0]["resumable"], true);
    let metrics = invoke(
        &webview,
        "run_metrics",
        json!({ "runPath": started.run_path }),
    )
    .unwrap();
    assert!(metrics["steps"].as_array().unwrap().len() >= 3);

    // Resume continues after the saved step.
    let saved = summary["steps"].as_u64().unwrap();
    let (ch3, events3) = capture();
    let resumed =
        training::resume_training(app.state(), PathBuf::from(&started.run_path), ch3).unwrap();
    wait_for(&events3, |e| matches!(e, Event::TrainStep { .. }));
    let first = events3.lock().unwrap().iter().find_map(|e| match e {
        Event::TrainStep { step, .. } => Some(*step),
        _ => None,
    });
    // Steps are throttled on the channel, so the first one shown may be later; none repeats.
    assert!(first.unwrap() > saved, "{first:?} after {saved}");
    let resumed_from = format!("resuming from step {saved}");
    assert!(events3
        .lock()
        .unwrap()
        .iter()
        .any(|e| matches!(e, Event::Log { message, .. } if *message == resumed_from)));
    training::stop_job(app.state(), resumed.job_id).unwrap();
    wait_for(&events3, |e| matches!(e, Event::Finished { .. }));

    // Rename and delete go through the engine's checks.
    let renamed = invoke(
        &webview,
        "rename_run",
        json!({ "runPath": started.run_path, "newName": "renamed" }),
    )
    .unwrap();
    assert_eq!(renamed["name"], "renamed");
    invoke(
        &webview,
        "delete_run",
        json!({ "runPath": renamed["path"] }),
    )
    .unwrap();
    assert_eq!(invoke(&webview, "list_runs", json!({})).unwrap(), json!([]));
}

#[test]
fn errors_are_command_errors_with_a_kind() {
    let home = tempfile::tempdir().unwrap();
    let (_app, webview) = app(home.path());
    let bad = serde_json::to_value(TrainConfig {
        lr: 0.0,
        ..tiny_config(2)
    })
    .unwrap();
    // The channel argument is a page-side callback id; validation fails before it is used.
    let e = invoke(
        &webview,
        "start_training",
        json!({ "name": "x", "config": bad, "onEvent": "__CHANNEL__:7" }),
    )
    .unwrap_err();
    assert_eq!(e["kind"], "config");
    assert!(e["message"].as_str().unwrap().contains("`lr`"));
    let e = invoke(
        &webview,
        "default_train_config",
        json!({ "preset": "turbo" }),
    )
    .unwrap_err();
    assert_eq!(e["kind"], "config");
    let e = invoke(&webview, "delete_run", json!({ "runPath": home.path() })).unwrap_err();
    assert_eq!(e["kind"], "file");
    let e = invoke(&webview, "stop_job", json!({ "jobId": "nothing" })).unwrap_err();
    assert_eq!(e["kind"], "notRunning");
    let q = invoke(
        &webview,
        "default_train_config",
        json!({ "preset": "quick" }),
    )
    .unwrap();
    assert_eq!(q["steps"], 200);
}

#[test]
fn data_page_reports_files_and_the_demo_is_usable() {
    let home = tempfile::tempdir().unwrap();
    let (_app, webview) = app(home.path());
    let demo = invoke(&webview, "demo_dataset", json!({})).unwrap();
    let empty = home.path().join("empty.txt");
    std::fs::write(&empty, "").unwrap();
    let reports = invoke(&webview, "inspect_files", json!({ "paths": [demo, empty] })).unwrap();
    assert_eq!(reports[0]["status"], "ok");
    assert!(reports[0]["tokensEstimate"].as_u64().unwrap() > 10_000);
    assert_eq!(reports[1]["status"], "error");
    assert!(reports[1]["error"].as_str().unwrap().contains("empty"));
    let info = invoke(&webview, "app_info", json!({})).unwrap();
    assert!(info["device"].as_str().unwrap().starts_with("cpu"));
}
