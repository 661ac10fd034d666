//! Tunesmith's desktop shell: thin Tauri commands over the engine. Heavy jobs run on named threads
//! owned by the [`jobs::JobRegistry`]; their events reach the page that started them over a
//! per-job channel ([`sink::ChannelSink`]). No ML logic lives here.

mod bindings;
pub mod close;
pub mod commands;
pub mod error;
pub mod jobs;
pub mod models;
pub mod navigation;
pub mod sink;
pub mod state;

use tauri::webview::NewWindowResponse;
use tauri::{Emitter, Manager};

use close::CloseAction;
use state::AppState;

/// How long quitting waits for a stopped run's checkpoint before it exits anyway.
pub const QUIT_WAIT: std::time::Duration = std::time::Duration::from_secs(120);

/// Adds the app's plugins, state, commands and window handling to `builder` (tests pass Tauri's
/// mock builder).
pub fn setup<R: tauri::Runtime>(builder: tauri::Builder<R>, state: AppState) -> tauri::Builder<R> {
    builder
        .plugin(tauri_plugin_dialog::init())
        .plugin(navigation::guard())
        .manage(state)
        .invoke_handler(tauri::generate_handler![
            // app
            commands::app::app_info,
            commands::app::test_hooks,
            commands::app::demo_dataset,
            commands::app::default_train_config,
            // data
            commands::datasets::inspect_files,
            commands::datasets::data_report,
            // training and runs
            commands::training::start_training,
            commands::training::resume_training,
            commands::training::resume_training_from,
            commands::training::estimate_training,
            commands::evaluate::evaluate_run,
            commands::evaluate::check_copied,
            commands::training::stop_job,
            commands::training::current_job,
            commands::training::list_runs,
            commands::training::run_metrics,
            commands::training::rename_run,
            commands::training::delete_run,
            commands::training::stop_and_quit,
            commands::training::keep_training,
            // generation and chats
            commands::generation::generate,
            commands::generation::list_chats,
            commands::generation::save_chat,
            // models
            commands::models::download_model,
            commands::models::training_memory,
            // export and serve
            commands::sharing::export_run,
            commands::sharing::start_serving,
            commands::sharing::stop_serving,
            commands::sharing::serving,
        ])
        .on_window_event(|window, event| {
            // Closing during training asks first (the page answers with `stop_and_quit` or
            // `keep_training`); a second close before it answers stops, saves and quits anyway.
            if let tauri::WindowEvent::CloseRequested { api, .. } = event {
                let state = window.state::<AppState>();
                let training = state.jobs.running() == Some(jobs::JobKind::Train);
                match state.close.requested(training) {
                    CloseAction::Close => {}
                    CloseAction::Wait => api.prevent_close(),
                    CloseAction::Ask => {
                        api.prevent_close();
                        let _ = window.emit("close-requested", ());
                    }
                    CloseAction::StopAndQuit => {
                        api.prevent_close();
                        let _ = window.emit("closing", ());
                        let app = window.app_handle().clone();
                        std::thread::spawn(move || {
                            app.state::<AppState>().jobs.stop_all(QUIT_WAIT);
                            app.exit(0);
                        });
                    }
                }
            }
        })
}

/// Starts the desktop app.
pub fn run() {
    let mut state = AppState::new(tunesmith_engine::paths::home());
    // Only the end-to-end test starts the app with this; it turns on the page's test entry points.
    state.e2e = std::env::var_os("TUNESMITH_E2E").is_some_and(|v| v == "1");
    setup(tauri::Builder::default(), state)
        .setup(|app| {
            // The window is built here (tauri.conf.json has `create: false`) so that it refuses
            // every request to open another window: pop-ups are never part of the app.
            let config = app
                .config()
                .app
                .windows
                .iter()
                .find(|w| w.label == "main")
                .cloned()
                .ok_or("tauri.conf.json has no window labelled `main`")?;
            tauri::WebviewWindowBuilder::from_config(app.handle(), &config)?
                .on_new_window(|_, _| NewWindowResponse::Deny)
                .build()?;
            Ok(())
        })
        .build(tauri::generate_context!())
        .expect("Tunesmith could not start its window")
        .run(|app, event| {
            // The model served from the Runs page stops with the app.
            if let tauri::RunEvent::Exit = event {
                app.state::<AppState>().stop_serving();
            }
        });
}
