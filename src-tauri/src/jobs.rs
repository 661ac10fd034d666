//! One heavy job at a time (training, generation, download) on its own named thread, with a cancel
//! token and a shared event sink. A second start while one runs is refused with a `busy` error
//! that says what is running. Every job's stream ends with exactly one `finished` or `failed`, even
//! when the job panics, so the page never waits forever; and a reloaded page can re-attach to the
//! running job's stream ([`JobRegistry::attach`]).

use std::any::Any;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tauri::ipc::Channel;
use tunesmith_engine::{CancelToken, Event, ProgressSink};

use crate::error::{CommandError, CommandResult};
use crate::sink::SharedSink;

/// The kinds of job; serialised as `train`, `generate`, `download` or `export`.
#[cfg_attr(test, derive(ts_rs::TS))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobKind {
    Train,
    Generate,
    Download,
    Export,
    Estimate,
    Evaluate,
}

impl JobKind {
    /// The word used in thread names.
    fn as_str(self) -> &'static str {
        match self {
            JobKind::Train => "train",
            JobKind::Generate => "generate",
            JobKind::Download => "download",
            JobKind::Export => "export",
            JobKind::Estimate => "estimate",
            JobKind::Evaluate => "evaluate",
        }
    }
}

/// What the page needs to know about the running job to show it again after a reload.
#[cfg_attr(test, derive(ts_rs::TS))]
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CurrentJob {
    pub job_id: String,
    pub kind: JobKind,
    /// The run folder a training job writes, if any.
    pub run_path: Option<String>,
    /// The run's name, or the model being downloaded.
    pub name: Option<String>,
}

struct Job {
    info: CurrentJob,
    cancel: CancelToken,
    done: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
    sink: SharedSink,
}

#[derive(Default)]
pub struct JobRegistry {
    current: Mutex<Option<Job>>,
}

impl JobRegistry {
    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Job>> {
        self.current.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// [`JobRegistry::start`] for a command that answers with the job's result: its events still
    /// stream to `channel`, and the command's reply waits (off the async runtime) for the end.
    pub async fn run<T: Serialize + Send + 'static>(
        &self,
        info: CurrentJob,
        channel: Channel<Event>,
        work: impl FnOnce(&CancelToken, &mut SharedSink) -> tunesmith_engine::Result<T> + Send + 'static,
    ) -> CommandResult<T> {
        let kind = info.kind;
        let (tx, rx) = std::sync::mpsc::channel();
        self.start(info, channel, work, move |result| {
            let _ = tx.send(result);
        })?;
        tauri::async_runtime::spawn_blocking(move || rx.recv())
            .await
            .map_err(|e| CommandError::new("internal", e.to_string()))?
            .map_err(|_| {
                CommandError::new(
                    "internal",
                    format!("the {} thread ended unexpectedly", kind.as_str()),
                )
            })?
    }

    /// Runs `work` on a thread named after `info.kind`, its events going to `channel`; refused
    /// while another job is running. When `work` returns (or panics) the job counts as finished,
    /// then its stream ends with `finished` (the result as summary) or `failed`, then `then` gets
    /// the result. Finished comes first so a page that hears "finished" and at once starts the
    /// next job (chat after training, the second half of a comparison) is never told "busy".
    pub fn start<T: Serialize + Send + 'static>(
        &self,
        info: CurrentJob,
        channel: Channel<Event>,
        work: impl FnOnce(&CancelToken, &mut SharedSink) -> tunesmith_engine::Result<T> + Send + 'static,
        then: impl FnOnce(CommandResult<T>) + Send + 'static,
    ) -> CommandResult<()> {
        let mut current = self.lock();
        if let Some(job) = current.as_ref().filter(|j| !j.done.load(Ordering::SeqCst)) {
            return Err(CommandError::new(
                "busy",
                format!(
                    "Tunesmith is already busy ({}). Wait for it to finish or stop it first.",
                    describe(job.info.kind)
                ),
            ));
        }
        let cancel = CancelToken::new();
        let done = Arc::new(AtomicBool::new(false));
        let sink = SharedSink::new(channel);
        let (c, d, mut s) = (cancel.clone(), done.clone(), sink.clone());
        let kind = info.kind;
        let handle = std::thread::Builder::new()
            .name(format!("tunesmith-{}", kind.as_str()))
            .spawn(move || {
                let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| work(&c, &mut s)));
                let result = match outcome {
                    Ok(Ok(v)) => Ok(v),
                    Ok(Err(e)) => Err(CommandError::from_engine(&e)),
                    Err(panic) => Err(crashed(kind, panic.as_ref())),
                };
                // The job's buffers were kept for reuse while it ran; an idle app gives them back
                // (before the next job can start).
                tunesmith_malloc::release_freed_memory();
                d.store(true, Ordering::SeqCst);
                s.emit(match &result {
                    Ok(v) => Event::Finished {
                        summary: serde_json::to_value(v).unwrap_or_default(),
                    },
                    Err(e) => Event::Failed {
                        kind: e.kind.clone(),
                        message: e.message.clone(),
                    },
                });
                s.flush();
                then(result);
            })
            .map_err(|e| {
                CommandError::new("internal", format!("could not start a worker thread ({e})"))
            })?;
        *current = Some(Job {
            info,
            cancel,
            done,
            handle: Some(handle),
            sink,
        });
        Ok(())
    }

    /// Asks the job `id` to stop at its next step boundary. False if no such job runs.
    pub fn cancel(&self, id: &str) -> bool {
        let current = self.lock();
        match current.as_ref() {
            Some(j) if j.info.job_id == id && !j.done.load(Ordering::SeqCst) => {
                j.cancel.cancel();
                true
            }
            _ => false,
        }
    }

    /// The kind of the running job, if any.
    pub fn running(&self) -> Option<JobKind> {
        let current = self.lock();
        current
            .as_ref()
            .filter(|j| !j.done.load(Ordering::SeqCst))
            .map(|j| j.info.kind)
    }

    /// Sends the running job's events to `channel` from now on (its previous page is gone),
    /// starting with its latest state; `None` when no job of `kind` runs.
    pub fn attach(&self, kind: JobKind, channel: Channel<Event>) -> Option<CurrentJob> {
        let current = self.lock();
        let job = current
            .as_ref()
            .filter(|j| !j.done.load(Ordering::SeqCst) && j.info.kind == kind)?;
        job.sink.attach(channel);
        Some(job.info.clone())
    }

    /// Cancels whatever runs and waits (up to `timeout`) for it to save and finish. Every caller
    /// waits, not only the first: a second quit must not exit while the first one's checkpoint is
    /// still being written.
    pub fn stop_all(&self, timeout: Duration) -> bool {
        let (handle, done) = {
            let mut current = self.lock();
            match current.as_mut() {
                Some(j) => {
                    j.cancel.cancel();
                    (j.handle.take(), Some(j.done.clone()))
                }
                None => (None, None),
            }
        };
        let start = Instant::now();
        let finished = || match (&handle, &done) {
            (Some(h), _) => h.is_finished(),
            (None, Some(d)) => d.load(Ordering::SeqCst),
            (None, None) => true,
        };
        while !finished() {
            if start.elapsed() > timeout {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        if let Some(h) = handle {
            let _ = h.join();
        }
        true
    }
}

/// The plain message for a job that crashed: what was lost, what was kept, what to do.
fn crashed(kind: JobKind, panic: &(dyn Any + Send)) -> CommandError {
    let detail = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "no details".into());
    let what = match kind {
        JobKind::Train => "The training stopped because of an internal error. Checkpoints saved before it are kept: continue the run from the Runs page",
        JobKind::Generate => "The model stopped writing because of an internal error. Try sending the message again",
        JobKind::Download => "The download stopped because of an internal error. Try again",
        JobKind::Export => "The export stopped because of an internal error; nothing was left half-written. Try again",
        JobKind::Estimate => "The estimate stopped because of an internal error. Try again, or start the training without it",
        JobKind::Evaluate => "The evaluation stopped because of an internal error. Try again",
    };
    CommandError::new(
        "internal",
        format!("{what}; if it happens again, please report it with this detail: {detail}."),
    )
}

fn describe(kind: JobKind) -> &'static str {
    match kind {
        JobKind::Train => "a training run is in progress",
        JobKind::Generate => "the model is writing a reply",
        JobKind::Download => "a model is downloading",
        JobKind::Export => "a model is being exported",
        JobKind::Estimate => "the time and memory of a run are being measured",
        JobKind::Evaluate => "a model is being evaluated",
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;

    use tauri::ipc::InvokeResponseBody;

    use super::*;

    fn info(id: &str, kind: JobKind) -> CurrentJob {
        CurrentJob {
            job_id: id.into(),
            kind,
            run_path: None,
            name: None,
        }
    }

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

    fn quiet() -> Channel<Event> {
        Channel::new(|_| Ok(()))
    }

    fn nothing(_: &CancelToken, _: &mut SharedSink) -> tunesmith_engine::Result<()> {
        Ok(())
    }

    #[test]
    fn one_job_at_a_time_and_cancel_reaches_it() {
        let jobs = JobRegistry::default();
        jobs.start(
            info("a", JobKind::Train),
            quiet(),
            |cancel, _| {
                while !cancel.is_cancelled() {
                    std::thread::sleep(Duration::from_millis(5));
                }
                Ok(())
            },
            |_| {},
        )
        .unwrap();
        let e = jobs
            .start(info("b", JobKind::Generate), quiet(), nothing, |_| {})
            .unwrap_err();
        assert_eq!(e.kind, "busy");
        assert!(e.message.contains("training run"));
        assert_eq!(jobs.running(), Some(JobKind::Train));
        assert!(!jobs.cancel("b"));
        assert!(jobs.cancel("a"));
        assert!(jobs.stop_all(Duration::from_secs(5)));
        assert_eq!(jobs.running(), None);
        jobs.start(info("c", JobKind::Generate), quiet(), nothing, |_| {})
            .unwrap();
    }

    #[test]
    fn a_second_stop_all_waits_for_the_first_ones_save() {
        let jobs = Arc::new(JobRegistry::default());
        let saving = Arc::new(AtomicBool::new(false));
        let s = saving.clone();
        jobs.start(
            info("t", JobKind::Train),
            quiet(),
            move |cancel, _| {
                while !cancel.is_cancelled() {
                    std::thread::sleep(Duration::from_millis(5));
                }
                // Writing the checkpoint after Stop.
                s.store(true, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(400));
                Ok(())
            },
            |_| {},
        )
        .unwrap();
        let first = {
            let jobs = jobs.clone();
            std::thread::spawn(move || jobs.stop_all(Duration::from_secs(5)))
        };
        // The first caller cancelled and took the thread handle in one step; once the job saves,
        // the second caller has no handle and must still wait for the save.
        while !saving.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(1));
        }
        let start = Instant::now();
        assert!(jobs.stop_all(Duration::from_secs(5)));
        assert!(
            start.elapsed() >= Duration::from_millis(200),
            "returned after {:?}, before the job finished",
            start.elapsed()
        );
        assert_eq!(jobs.running(), None);
        assert!(first.join().unwrap());
    }

    #[test]
    fn the_next_job_can_start_as_soon_as_the_end_is_announced() {
        let jobs = Arc::new(JobRegistry::default());
        let (tx, rx) = mpsc::channel();
        let registry = jobs.clone();
        jobs.start(
            info("train", JobKind::Train),
            quiet(),
            |_, _| Ok(7),
            move |result| {
                // What the page does on hearing "finished": start the next job at once.
                let next =
                    registry.start(info("chat", JobKind::Generate), quiet(), nothing, |_| {});
                tx.send((result, next.map_err(|e| e.message))).unwrap();
            },
        )
        .unwrap();
        let (result, next) = rx.recv_timeout(Duration::from_secs(5)).unwrap();
        assert_eq!(result, Ok(7));
        assert_eq!(next, Ok(()));
    }

    #[test]
    fn a_job_that_panics_still_sends_failed_and_does_not_block_the_next() {
        let jobs = JobRegistry::default();
        let (ch, events) = capture();
        let (tx, rx) = mpsc::channel();
        jobs.start(
            info("a", JobKind::Train),
            ch,
            |_, sink| -> tunesmith_engine::Result<()> {
                sink.log("step 1");
                panic!("index out of bounds")
            },
            move |r| tx.send(r).unwrap(),
        )
        .unwrap();
        let result = rx.recv_timeout(Duration::from_secs(5)).unwrap();
        let e = result.unwrap_err();
        assert_eq!(e.kind, "internal");
        assert!(e.message.contains("Runs page"), "{}", e.message);
        assert!(e.message.contains("index out of bounds"), "{}", e.message);
        let events = events.lock().unwrap().clone();
        assert!(
            matches!(events.last(), Some(Event::Failed { kind, message }) if kind == "internal" && message == &e.message),
            "{events:?}"
        );
        assert_eq!(events.len(), 2, "the log, then failed: {events:?}");
        assert!(jobs.stop_all(Duration::from_secs(5)));
        jobs.start(info("b", JobKind::Generate), quiet(), nothing, |_| {})
            .unwrap();
    }

    #[test]
    fn a_reloaded_page_re_attaches_to_the_running_job_of_its_kind() {
        let jobs = JobRegistry::default();
        let (go_on, wait) = mpsc::channel::<()>();
        let (first, first_events) = capture();
        let mut job = info("t", JobKind::Train);
        job.run_path = Some("/runs/a".into());
        jobs.start(
            job.clone(),
            first,
            move |_, sink| {
                sink.emit(Event::Eval {
                    step: 4,
                    val_loss: 2.5,
                    perplexity: 12.0,
                });
                wait.recv().unwrap();
                sink.log("after the reload");
                Ok(())
            },
            |_| {},
        )
        .unwrap();
        while first_events.lock().unwrap().is_empty() {
            std::thread::sleep(Duration::from_millis(5));
        }
        let (second, events) = capture();
        assert_eq!(jobs.attach(JobKind::Download, quiet()), None);
        assert_eq!(jobs.attach(JobKind::Train, second), Some(job));
        go_on.send(()).unwrap();
        assert!(jobs.stop_all(Duration::from_secs(5)));
        let events = events.lock().unwrap().clone();
        assert!(
            matches!(events[0], Event::Eval { step: 4, .. }),
            "{events:?}"
        );
        assert!(matches!(&events[1], Event::Log { message, .. } if message == "after the reload"));
        assert!(matches!(events[2], Event::Finished { .. }));
        // The old page's channel heard nothing after the reload.
        assert_eq!(first_events.lock().unwrap().len(), 1);
        assert_eq!(
            jobs.attach(JobKind::Train, quiet()),
            None,
            "nothing runs any more"
        );
    }
}
