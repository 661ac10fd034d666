//! One file per command verb.

mod bench;
mod bench_serve;
mod download;
mod eval;
mod export;
mod generate;
mod prepare;
mod score;
mod serve;
mod train;

use std::sync::atomic::AtomicBool;

use anyhow::Result;
use tunesmith_engine::{names, CancelToken, Error, Event, ProgressSink};

use crate::args::{Command, ModelArgs};
use crate::sink::{JsonSink, TermSink};

/// Set when the error has already been shown (as a JSON `failed` event or by the terminal sink).
pub static ERROR_REPORTED: AtomicBool = AtomicBool::new(false);

pub fn run(command: Command) -> Result<()> {
    match command {
        Command::Prepare(a) => prepare::run(a),
        Command::Train(a) => train::run(a),
        Command::Generate(a) => generate::run(a),
        Command::Eval(a) => eval::run(a),
        Command::Score(a) => score::run(a),
        Command::Download(a) => download::run(a),
        Command::Bench(a) => bench::run(a),
        Command::Serve(a) => serve::run(a),
        Command::Export(a) => export::run(a),
    }
}

/// A sink for `--json` or the terminal.
pub enum Sink {
    Json(JsonSink),
    Term(TermSink),
}

impl Sink {
    pub fn new(json: bool) -> Self {
        if json {
            Sink::Json(JsonSink)
        } else {
            Sink::Term(TermSink::default())
        }
    }
}

impl ProgressSink for Sink {
    fn emit(&mut self, event: Event) {
        match self {
            Sink::Json(s) => s.emit(event),
            Sink::Term(s) => s.emit(event),
        }
    }
}

/// Ctrl-C asks the job to stop at its next step boundary; a second Ctrl-C quits at once.
/// The last folder of `--out` becomes the run's or dataset's name (the app lists it): it follows
/// the same rule as names typed in the app, so a folder made here also works there and on Windows.
pub fn check_out_name(out: &std::path::Path) -> tunesmith_engine::Result<()> {
    let name = out.file_name().and_then(|n| n.to_str()).ok_or_else(|| {
        Error::config(
            "--out",
            "must end in a folder name, for example `runs/my-notes`",
        )
    })?;
    names::validate_name("--out", name).map(|_| ())
}

pub fn cancel_on_ctrl_c() -> CancelToken {
    let token = CancelToken::new();
    let t = token.clone();
    let _ = ctrlc::set_handler(move || {
        if t.is_cancelled() {
            std::process::exit(130);
        }
        eprintln!("\nstopping at the next step boundary (press Ctrl-C again to quit at once)…");
        t.cancel();
    });
    token
}

/// Ends a job's event stream with `finished` or `failed`, always last.
pub fn finish<T: serde::Serialize>(
    sink: &mut Sink,
    result: tunesmith_engine::Result<T>,
) -> Result<T> {
    match result {
        Ok(v) => {
            sink.emit(Event::Finished {
                summary: serde_json::to_value(&v)?,
            });
            Ok(v)
        }
        Err(e) => {
            sink.emit(Event::Failed {
                kind: e.kind().into(),
                message: e.to_string(),
            });
            ERROR_REPORTED.store(true, std::sync::atomic::Ordering::SeqCst);
            Err(e.into())
        }
    }
}

/// Resolves `--model` (a hub id is downloaded, reported to `sink`) and loads it with `--base` and
/// `--dtype`.
pub fn load_model(
    m: &ModelArgs,
    dev: &tunesmith_engine::device::Device,
    sink: &mut impl ProgressSink,
) -> Result<tunesmith_engine::model::load::LoadedModel> {
    let dir = tunesmith_engine::source::resolve(&m.model, sink)?;
    Ok(tunesmith_engine::model::load::load_dir_with(
        &dir,
        m.base.as_deref(),
        m.dtype == "f32",
        dev,
    )?)
}
