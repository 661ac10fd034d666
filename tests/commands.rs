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
use tunesmith_desktop::commands::{evaluate, generation, models, training};
use tunesmith_desktop::jobs::JobKind;
use tunesmith_desktop::state::AppState;
use tunesmith_engine::generate::GenerateConfig;
use tunesmith_engine::runs::{RunDir, RunInfo, RunStatus};
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
    let missing = home.path().join("missing.txt");
    let reports = invoke(
        &webview,
        "inspect_files",
        json!({ "paths": [demo, empty, missing] }),
    )
    .unwrap();
    assert_eq!(reports[0]["status"], "ok");
    assert!(reports[0]["tokensEstimate"].as_u64().unwrap() > 10_000);
    assert_eq!(reports[1]["status"], "error");
    assert!(reports[1]["error"].as_str().unwrap().contains("empty"));
    // A file that cannot be read is reported with its reason, never silently left out.
    assert_eq!(reports.as_array().unwrap().len(), 3, "{reports}");
    assert_eq!(reports[2]["status"], "error");
    assert!(reports[2]["path"]
        .as_str()
        .unwrap()
        .ends_with("missing.txt"));
    let info = invoke(&webview, "app_info", json!({})).unwrap();
    assert!(info["device"].as_str().unwrap().starts_with("cpu"));
}

/// A run.json as training writes it, without training.
fn fake_run(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    RunDir::new(dir)
        .write_info(&RunInfo {
            config: tiny_config(5),
            status: RunStatus::Completed,
            device: "cpu".into(),
            step: 5,
            total_steps: 5,
            best_val_loss: None,
            best_step: None,
            created_unix: 0,
            updated_unix: 0,
            error: None,
        })
        .unwrap();
}

fn chat() -> Value {
    json!({ "id": "c1", "title": "t", "mode": "chat", "messages": [], "updatedUnix": 1 })
}

#[test]
fn only_tunesmiths_own_runs_can_be_read_changed_or_deleted() {
    let home = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let (app, webview) = app(home.path());
    let runs = home.path().join("runs");
    fake_run(&runs.join("mine"));
    // A folder outside the data folder that looks exactly like a run.
    let victim = outside.path().join("victim");
    fake_run(&victim);
    // A folder in the runs folder that is not a run Tunesmith made.
    std::fs::create_dir_all(runs.join("lookalike/checkpoints")).unwrap();

    let mut attempts = vec![
        victim.clone(),
        runs.join("../../")
            .join(outside.path().file_name().unwrap())
            .join("victim"),
        runs.join("mine/../../runs/../").join("runs"),
        home.path().to_path_buf(),
        runs.join("lookalike"),
        runs.join("missing"),
    ];
    #[cfg(unix)]
    {
        // A symlink inside the runs folder that leads out of it.
        std::os::unix::fs::symlink(&victim, runs.join("escape")).unwrap();
        attempts.push(runs.join("escape"));
    }
    for path in &attempts {
        let arg = json!({ "runPath": path });
        let with = |extra: Value| {
            let mut a = arg.clone();
            a.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            a
        };
        for (cmd, args) in [
            ("delete_run", arg.clone()),
            ("rename_run", with(json!({ "newName": "taken" }))),
            ("run_metrics", arg.clone()),
            ("list_chats", arg.clone()),
            ("save_chat", with(json!({ "chat": chat() }))),
        ] {
            let e = invoke(&webview, cmd, args).unwrap_err();
            assert_eq!(e["kind"], "file", "{cmd} {path:?}: {e}");
            let message = e["message"].as_str().unwrap();
            assert!(
                message.contains("Runs page") || message.contains("does not exist"),
                "{cmd} {path:?}: {message}"
            );
        }
        let (ch, _) = capture();
        let e = training::resume_training(app.state(), path.clone(), ch).unwrap_err();
        assert_eq!(e.kind, "file", "{path:?}: {e:?}");
    }
    assert!(
        victim.join("run.json").is_file(),
        "the outside run is untouched"
    );
    assert!(!victim.join("chats").exists());
    assert!(runs.join("lookalike").is_dir());
    assert!(!outside.path().join("taken").exists() && !runs.join("taken").exists());

    // Names: one rule, with errors that name the field.
    for bad in ["../evil", "a/b", "CON", "nul.txt", "C:foo", "dot.", ""] {
        let e = invoke(
            &webview,
            "rename_run",
            json!({ "runPath": runs.join("mine"), "newName": bad }),
        )
        .unwrap_err();
        assert_eq!(e["kind"], "config", "{bad}: {e}");
        assert!(e["message"].as_str().unwrap().contains("`name`"), "{e}");
        let (ch, _) = capture();
        let e = training::start_training(app.state(), bad.into(), tiny_config(2), ch).unwrap_err();
        assert_eq!(e.kind, "config", "{bad}: {e:?}");
    }
    assert!(!home.path().join("evil").exists());

    // Tunesmith's own run still works through every command.
    invoke(
        &webview,
        "save_chat",
        json!({ "runPath": runs.join("mine"), "chat": chat() }),
    )
    .unwrap();
    let chats = invoke(
        &webview,
        "list_chats",
        json!({ "runPath": runs.join("mine") }),
    )
    .unwrap();
    assert_eq!(chats[0]["id"], "c1");
    let renamed = invoke(
        &webview,
        "rename_run",
        json!({ "runPath": runs.join("mine"), "newName": "kept" }),
    )
    .unwrap();
    invoke(
        &webview,
        "delete_run",
        json!({ "runPath": renamed["path"] }),
    )
    .unwrap();
    assert!(!runs.join("kept").exists());
}

#[test]
fn chat_keeps_the_loaded_model_between_messages() {
    let home = tempfile::tempdir().unwrap();
    let (app, _webview) = app(home.path());
    let model = fixtures().join("gpt2-tiny").display().to_string();
    let config = GenerateConfig {
        prompt: "hello".into(),
        max_new_tokens: 4,
        ..Default::default()
    };
    for _ in 0..3 {
        let (ch, events) = capture();
        let out = tauri::async_runtime::block_on(generation::generate(
            app.state(),
            "g".into(),
            model.clone(),
            config.clone(),
            ch,
        ))
        .unwrap();
        assert_eq!(out.len(), 1);
        assert!(matches!(
            events.lock().unwrap().last(),
            Some(Event::Finished { .. })
        ));
    }
    assert_eq!(app.state::<AppState>().models.loads(), 1);
}

#[test]
fn a_reloaded_page_re_attaches_to_the_running_training() {
    let home = tempfile::tempdir().unwrap();
    let (app, webview) = app(home.path());
    assert_eq!(
        invoke(
            &webview,
            "current_job",
            json!({ "kind": "train", "onEvent": "__CHANNEL__:7" })
        )
        .unwrap(),
        Value::Null
    );
    let (ch, events) = capture();
    let started =
        training::start_training(app.state(), "live".into(), tiny_config(400), ch).unwrap();
    wait_for(
        &events,
        |e| matches!(e, Event::TrainStep { step, .. } if *step >= 2),
    );
    // Downloads are jobs too: refused while training runs.
    let (dl, _) = capture();
    let busy = tauri::async_runtime::block_on(models::download_model(
        app.state(),
        "d".into(),
        "gpt2".into(),
        dl,
    ))
    .unwrap_err();
    assert_eq!(busy.kind, "busy");

    // The page reloads: its old channel is gone, a new one asks what runs.
    let (ch2, events2) = capture();
    let job = training::current_job(app.state(), JobKind::Train, ch2).unwrap();
    assert_eq!(job.job_id, started.job_id);
    assert_eq!(job.run_path.as_deref(), Some(started.run_path.as_str()));
    assert_eq!(job.name.as_deref(), Some("live"));
    // The latest state (progress, then the newest step) arrives at once, before anything new.
    assert!(
        events2
            .lock()
            .unwrap()
            .iter()
            .take(3)
            .any(|e| matches!(e, Event::TrainStep { .. })),
        "{:?}",
        events2.lock().unwrap()
    );
    let (other, _) = capture();
    assert!(training::current_job(app.state(), JobKind::Download, other).is_none());
    let before = events.lock().unwrap().len();
    training::stop_job(app.state(), job.job_id).unwrap();
    wait_for(&events2, |e| matches!(e, Event::Finished { .. }));
    // Everything after the reload went to the new page only.
    assert_eq!(events.lock().unwrap().len(), before);
    assert!(!events
        .lock()
        .unwrap()
        .iter()
        .any(|e| matches!(e, Event::Finished { .. })));
}

/// Export writes into the data folder's `exports/` and reports the check; the server listens on
/// this computer only, answers OpenAI-style requests, and stops; runs from outside the runs
/// folder are refused by both.
#[test]
fn runs_export_into_the_data_folder_and_serve_on_localhost() {
    use tunesmith_desktop::commands::sharing;
    use tunesmith_engine::export::ExportFormat;
    let home = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let (app, _webview) = app(home.path());
    // A name with a quote and a space: the copyable examples must still be one valid command.
    let run = home.path().join("runs").join("bob's notes");
    tunesmith_engine::train::train(
        &tiny_config(2),
        &run,
        tunesmith_engine::train::Restore::Fresh,
        &tunesmith_engine::device::Device::Cpu,
        &tunesmith_engine::CancelToken::new(),
        &mut tunesmith_engine::NullSink,
    )
    .unwrap();

    let (ch, events) = capture();
    let report = tauri::async_runtime::block_on(sharing::export_run(
        app.state(),
        "x".into(),
        run.clone(),
        ExportFormat::Hf,
        None,
        ch,
    ))
    .unwrap();
    assert_eq!(
        report.out,
        home.path().join("exports").join("bob's notes-hf")
    );
    assert!(report.out.join("model.safetensors").is_file());
    assert!(report.verification.unwrap().verified);
    assert!(matches!(
        events.lock().unwrap().last(),
        Some(Event::Finished { .. })
    ));

    let victim = outside.path().join("victim");
    fake_run(&victim);
    let (ch, _) = capture();
    let e = tauri::async_runtime::block_on(sharing::export_run(
        app.state(),
        "y".into(),
        victim.clone(),
        ExportFormat::Gguf,
        None,
        ch,
    ))
    .unwrap_err();
    assert_eq!(e.kind, "file");
    let e =
        tauri::async_runtime::block_on(sharing::start_serving(app.state(), victim)).unwrap_err();
    assert_eq!(e.kind, "file");
    assert!(!outside.path().join("exports").exists());

    let info = tauri::async_runtime::block_on(sharing::start_serving(app.state(), run)).unwrap();
    assert!(
        info.address.starts_with("http://127.0.0.1:"),
        "{}",
        info.address
    );
    assert!(info.python.contains(&info.address) && info.curl.contains(&info.address));
    assert_eq!(sharing::serving(app.state()), Some(info.clone()));
    let models: Value = ureq::get(&format!("{}/models", info.address))
        .call()
        .unwrap()
        .into_json()
        .unwrap();
    assert_eq!(models["data"][0]["id"], "bob's notes");
    // The curl example runs as shown, where curl is installed.
    match std::process::Command::new("sh")
        .arg("-c")
        .arg(&info.curl)
        .output()
    {
        Ok(out) if out.status.success() && !out.stdout.is_empty() => {
            let reply: Value = serde_json::from_slice(&out.stdout).unwrap();
            assert!(
                reply["choices"][0]["message"]["content"].is_string(),
                "{reply}"
            );
        }
        Ok(out) if String::from_utf8_lossy(&out.stderr).contains("not found") => {
            eprintln!("skipped running the curl example: curl is not installed")
        }
        other => panic!("the curl example failed: {other:?}\n{}", info.curl),
    }
    let reply: Value = ureq::post(&format!("{}/completions", info.address))
        .send_json(json!({ "prompt": "The invoice", "max_tokens": 3 }))
        .unwrap()
        .into_json()
        .unwrap();
    assert!(reply["choices"][0]["text"].is_string(), "{reply}");
    assert!(
        reply["usage"]["completion_tokens"].as_u64().unwrap() <= 3,
        "{reply}"
    );
    sharing::stop_serving(app.state());
    assert_eq!(sharing::serving(app.state()), None);
    assert!(ureq::get(&format!("{}/models", info.address))
        .call()
        .is_err());
}

/// Evaluate: the base model and a checkpoint of a run answer a pairs file, each with its
/// scores; a run outside the runs folder is refused.
#[test]
fn runs_are_evaluated_base_against_checkpoint() {
    use tunesmith_engine::eval::checkpoints::Target;
    let home = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let (app, _webview) = app(home.path());
    let run = home.path().join("runs").join("faq");
    tunesmith_engine::train::train(
        &tiny_config(2),
        &run,
        tunesmith_engine::train::Restore::Fresh,
        &tunesmith_engine::device::Device::Cpu,
        &tunesmith_engine::CancelToken::new(),
        &mut tunesmith_engine::NullSink,
    )
    .unwrap();
    let pairs = outside.path().join("q.jsonl");
    std::fs::write(
        &pairs,
        "{\"prompt\": \"The invoice\", \"completion\": \"is due in thirty days.\"}\n",
    )
    .unwrap();
    let targets = vec![Target::Base, Target::Checkpoint { step: 2 }];
    let (ch, _) = capture();
    let reports = tauri::async_runtime::block_on(evaluate::evaluate_run(
        app.state(),
        "e".into(),
        run.clone(),
        Some(pairs.clone()),
        targets.clone(),
        ch,
    ))
    .unwrap();
    assert_eq!(reports.len(), 2);
    assert!(reports[0].label.starts_with("base model"));
    assert_eq!(reports[1].target, Target::Checkpoint { step: 2 });
    for r in &reports {
        assert_eq!(r.report.examples.len(), 1);
        assert!(r.report.bleu.is_some() && r.report.perplexity.is_some());
        assert!(
            r.report.copied.is_some(),
            "the run's training text is checked"
        );
    }
    // A reply that quotes the training text is found copied; the index stays loaded.
    let corpus = std::fs::read_to_string(fixtures().join("corpus.txt")).unwrap();
    let quote = format!("Zebras juggle. {}", &corpus[200..400]);
    let report =
        tauri::async_runtime::block_on(evaluate::check_copied(app.state(), run.clone(), quote))
            .unwrap()
            .unwrap();
    assert!(report.share > 0.5, "{report:?}");
    assert!(report.segments.iter().any(|s| s.copied));
    assert!(app.state::<AppState>().copies.lock().unwrap().is_some());
    let victim = outside.path().join("victim");
    fake_run(&victim);
    assert_eq!(
        tauri::async_runtime::block_on(evaluate::check_copied(
            app.state(),
            victim.clone(),
            "x".into()
        ))
        .unwrap_err()
        .kind,
        "file"
    );
    let (ch, _) = capture();
    let e = tauri::async_runtime::block_on(evaluate::evaluate_run(
        app.state(),
        "f".into(),
        victim,
        Some(pairs),
        targets,
        ch,
    ))
    .unwrap_err();
    assert_eq!(e.kind, "file");
}
