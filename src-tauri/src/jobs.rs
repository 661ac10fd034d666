//! One heavy job at a time (training, generation, download) on its own named thread, with a cancel
//! token. A second start while one runs is refused with a `busy` error that says what is running.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tunesmith_engine::CancelToken;

use crate::error::{CommandError, CommandResult};

struct Job {
    id: String,
    kind: &'static str,
    cancel: CancelToken,
    done: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

#[derive(Default)]
pub struct JobRegistry {
    current: Mutex<Option<Job>>,
}

impl JobRegistry {
    /// Runs `work` on a thread named after `kind`, then `announce` with its result; refused while
    /// another job is running. The job counts as finished *before* `announce` runs, so a page that
    /// hears "finished" and at once starts the next job (chat after training, the second half of a
    /// comparison) is never told that Tunesmith is still busy.
    pub fn start<R: Send + 'static>(
        &self,
        id: &str,
        kind: &'static str,
        work: impl FnOnce(CancelToken) -> R + Send + 'static,
        announce: impl FnOnce(R) + Send + 'static,
    ) -> CommandResult<()> {
        let mut current = self.current.lock().expect("job registry lock");
        if let Some(job) = current.as_ref().filter(|j| !j.done.load(Ordering::SeqCst)) {
            return Err(CommandError::new(
                "busy",
                format!(
                    "Tunesmith is already busy ({}). Wait for it to finish or stop it first.",
                    describe(job.kind)
                ),
            ));
        }
        let cancel = CancelToken::new();
        let done = Arc::new(AtomicBool::new(false));
        let (c, d) = (cancel.clone(), done.clone());
        let handle = std::thread::Builder::new()
            .name(format!("tunesmith-{kind}"))
            .spawn(move || {
                // Marked done even if `work` panics, so one crash does not block every later job.
                let guard = DoneOnDrop(d);
                let result = work(c);
                drop(guard);
                announce(result);
            })
            .map_err(|e| {
                CommandError::new("internal", format!("could not start a worker thread ({e})"))
            })?;
        *current = Some(Job {
            id: id.to_string(),
            kind,
            cancel,
            done,
            handle: Some(handle),
        });
        Ok(())
    }

    /// Asks the job `id` to stop at its next step boundary. False if no such job runs.
    pub fn cancel(&self, id: &str) -> bool {
        let current = self.current.lock().expect("job registry lock");
        match current.as_ref() {
            Some(j) if j.id == id && !j.done.load(Ordering::SeqCst) => {
                j.cancel.cancel();
                true
            }
            _ => false,
        }
    }

    /// The kind of the running job, if any.
    pub fn running(&self) -> Option<&'static str> {
        let current = self.current.lock().expect("job registry lock");
        current
            .as_ref()
            .filter(|j| !j.done.load(Ordering::SeqCst))
            .map(|j| j.kind)
    }

    /// Cancels whatever runs and waits (up to `timeout`) for it to save and finish.
    pub fn stop_all(&self, timeout: Duration) -> bool {
        let handle = {
            let mut current = self.current.lock().expect("job registry lock");
            current.as_mut().and_then(|j| {
                j.cancel.cancel();
                j.handle.take()
            })
        };
        let Some(handle) = handle else { return true };
        let start = Instant::now();
        while !handle.is_finished() {
            if start.elapsed() > timeout {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = handle.join();
        true
    }
}

struct DoneOnDrop(Arc<AtomicBool>);

impl Drop for DoneOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

fn describe(kind: &str) -> &'static str {
    match kind {
        "train" => "a training run is in progress",
        "generate" => "the model is writing a reply",
        "download" => "a model is downloading",
        _ => "another job is running",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_job_at_a_time_and_cancel_reaches_it() {
        let jobs = JobRegistry::default();
        jobs.start(
            "a",
            "train",
            |cancel| {
                while !cancel.is_cancelled() {
                    std::thread::sleep(Duration::from_millis(5));
                }
            },
            |_| {},
        )
        .unwrap();
        let e = jobs.start("b", "generate", |_| {}, |_| {}).unwrap_err();
        assert_eq!(e.kind, "busy");
        assert!(e.message.contains("training run"));
        assert_eq!(jobs.running(), Some("train"));
        assert!(!jobs.cancel("b"));
        assert!(jobs.cancel("a"));
        assert!(jobs.stop_all(Duration::from_secs(5)));
        assert_eq!(jobs.running(), None);
        jobs.start("c", "generate", |_| {}, |_| {}).unwrap();
    }

    #[test]
    fn the_next_job_can_start_as_soon_as_the_end_is_announced() {
        let jobs = Arc::new(JobRegistry::default());
        let (tx, rx) = std::sync::mpsc::channel();
        let registry = jobs.clone();
        jobs.start(
            "train",
            "train",
            |_| 7,
            move |result| {
                // What the page does on hearing "finished": start the next job at once.
                let next = registry.start("chat", "generate", |_| {}, |_| {});
                tx.send((result, next.map_err(|e| e.message))).unwrap();
            },
        )
        .unwrap();
        let (result, next) = rx.recv_timeout(Duration::from_secs(5)).unwrap();
        assert_eq!(result, 7);
        assert_eq!(next, Ok(()));
    }

    #[test]
    fn a_job_that_panics_does_not_block_the_next() {
        let jobs = JobRegistry::default();
        jobs.start("a", "train", |_| panic!("boom"), |_: ()| {})
            .unwrap();
        assert!(jobs.stop_all(Duration::from_secs(5)));
        jobs.start("b", "generate", |_| {}, |_| {}).unwrap();
    }
}
