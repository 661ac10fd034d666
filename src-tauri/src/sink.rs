//! Forwards engine events to the page over a per-job `Channel`, at most ~10 messages a second.
//! Frequent events (steps, progress) replace each other while waiting; tokens are merged so no
//! text is lost; everything else (evals, samples, checkpoints, logs, the final event) flushes what
//! waits and goes at once, so the last message is always delivered.
//!
//! The sink also keeps the latest step, progress and evaluation so that a page that reloads while
//! a job runs can re-attach a new channel ([`ChannelSink::attach`]) and at once show where the job
//! is; [`SharedSink`] lets the job thread and the registry reach the same sink.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tauri::ipc::Channel;
use tunesmith_engine::{Event, ProgressSink};

const INTERVAL: Duration = Duration::from_millis(100);

pub struct ChannelSink {
    channel: Channel<Event>,
    last_sent: Option<Instant>,
    pending: Option<Event>,
    /// The newest event of each kind a re-attached page needs, in replay order.
    latest: [Option<Event>; 3],
}

/// Where an event is kept for replay: progress first, then the evaluation, then the step (so the
/// page ends on the newest step). Other events are not replayed.
fn replay_slot(event: &Event) -> Option<usize> {
    match event {
        Event::Progress { .. } => Some(0),
        Event::Eval { .. } => Some(1),
        Event::TrainStep { .. } => Some(2),
        _ => None,
    }
}

impl ChannelSink {
    pub fn new(channel: Channel<Event>) -> Self {
        ChannelSink {
            channel,
            last_sent: None,
            pending: None,
            latest: Default::default(),
        }
    }

    /// Sends from now on to `channel` (a reloaded page), first replaying the latest progress,
    /// evaluation and step. A waiting step or progress is dropped: the replay already holds it.
    pub fn attach(&mut self, channel: Channel<Event>) {
        self.channel = channel;
        if self
            .pending
            .as_ref()
            .is_some_and(|e| replay_slot(e).is_some())
        {
            self.pending = None;
        }
        for event in self.latest.clone().into_iter().flatten() {
            self.send(event);
        }
    }

    fn send(&mut self, event: Event) {
        // A closed page is not an error for the job: it keeps running and saving.
        let _ = self.channel.send(event);
        self.last_sent = Some(Instant::now());
    }

    pub fn flush(&mut self) {
        if let Some(e) = self.pending.take() {
            self.send(e);
        }
    }
}

impl ProgressSink for ChannelSink {
    fn emit(&mut self, event: Event) {
        if let Some(slot) = replay_slot(&event) {
            self.latest[slot] = Some(event.clone());
        }
        let frequent = matches!(
            event,
            Event::TrainStep { .. } | Event::Progress { .. } | Event::Token { .. }
        );
        if !frequent {
            self.flush();
            self.send(event);
            return;
        }
        self.pending = Some(match (self.pending.take(), event) {
            (Some(Event::Token { text: a }), Event::Token { text: b }) => {
                Event::Token { text: a + &b }
            }
            // A newer event of the same kind supersedes the waiting one.
            (Some(old), new) if std::mem::discriminant(&old) == std::mem::discriminant(&new) => new,
            // A different kind: what waits goes first, so nothing is lost and order holds.
            (Some(old), new) => {
                self.send(old);
                new
            }
            (None, new) => new,
        });
        if self.last_sent.is_none_or(|t| t.elapsed() >= INTERVAL) {
            self.flush();
        }
    }
}

impl Drop for ChannelSink {
    fn drop(&mut self) {
        self.flush();
    }
}

/// One job's sink, shared by its thread (which emits) and the registry (which re-attaches pages).
#[derive(Clone)]
pub struct SharedSink(Arc<Mutex<ChannelSink>>);

impl SharedSink {
    pub fn new(channel: Channel<Event>) -> Self {
        SharedSink(Arc::new(Mutex::new(ChannelSink::new(channel))))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ChannelSink> {
        // A panic while holding the lock (in a job) must not silence the job's final event.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn attach(&self, channel: Channel<Event>) {
        self.lock().attach(channel);
    }

    pub fn flush(&self) {
        self.lock().flush();
    }
}

impl ProgressSink for SharedSink {
    fn emit(&mut self, event: Event) {
        self.lock().emit(event);
    }
}

#[cfg(test)]
mod tests {
    use tauri::ipc::InvokeResponseBody;

    use super::*;

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

    #[test]
    fn throttles_steps_merges_tokens_and_always_delivers_the_last() {
        let (ch, got) = capture();
        let mut sink = ChannelSink::new(ch);
        for step in 1..=1000 {
            sink.emit(Event::TrainStep {
                step,
                total: 1000,
                loss: 1.0,
                lr: 0.1,
                tokens_per_sec: 1.0,
                eta_secs: 0.0,
                epoch: 0.0,
            });
        }
        for t in ["he", "llo", " wor", "ld"] {
            sink.emit(Event::Token { text: t.into() });
        }
        sink.emit(Event::Finished {
            summary: serde_json::json!({}),
        });
        let got = got.lock().unwrap();
        let steps: Vec<u64> = got
            .iter()
            .filter_map(|e| match e {
                Event::TrainStep { step, .. } => Some(*step),
                _ => None,
            })
            .collect();
        assert!(steps.len() < 20, "throttled: {} sent", steps.len());
        assert_eq!(steps.last(), Some(&1000));
        let text: String = got
            .iter()
            .filter_map(|e| match e {
                Event::Token { text } => Some(text.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(text, "hello world");
        assert!(matches!(got.last(), Some(Event::Finished { .. })));
    }
}

#[cfg(test)]
mod attach_tests {
    use super::*;

    fn step(step: u64) -> Event {
        Event::TrainStep {
            step,
            total: 100,
            loss: 2.0,
            lr: 0.1,
            tokens_per_sec: 1.0,
            eta_secs: 1.0,
            epoch: 0.0,
        }
    }

    fn capture() -> (Channel<Event>, Arc<Mutex<Vec<Event>>>) {
        let got = Arc::new(Mutex::new(Vec::new()));
        let g = got.clone();
        let ch = Channel::new(move |body| {
            if let tauri::ipc::InvokeResponseBody::Json(s) = body {
                g.lock().unwrap().push(serde_json::from_str(&s).unwrap());
            }
            Ok(())
        });
        (ch, got)
    }

    #[test]
    fn a_new_page_gets_the_latest_state_then_everything_after() {
        let (first, _) = capture();
        let mut sink = SharedSink::new(first);
        sink.emit(Event::Progress {
            stage: "tokenising".into(),
            done: 5,
            total: 5,
            unit: "files".into(),
        });
        sink.emit(Event::Eval {
            step: 10,
            val_loss: 3.0,
            perplexity: 20.0,
        });
        for s in 1..=42 {
            sink.emit(step(s));
        }
        sink.log("not replayed");
        let (second, got) = capture();
        sink.attach(second);
        let replayed = got.lock().unwrap().clone();
        assert!(
            matches!(replayed[0], Event::Progress { done: 5, .. }),
            "{replayed:?}"
        );
        assert!(
            matches!(replayed[1], Event::Eval { step: 10, .. }),
            "{replayed:?}"
        );
        assert_eq!(replayed[2], step(42));
        assert_eq!(replayed.len(), 3);
        sink.emit(Event::Finished {
            summary: serde_json::json!({}),
        });
        assert!(matches!(
            got.lock().unwrap().last(),
            Some(Event::Finished { .. })
        ));
    }
}
