//! Forwards engine events to the page over a per-job `Channel`, at most ~10 messages a second.
//! Frequent events (steps, progress) replace each other while waiting; tokens are merged so no
//! text is lost; everything else (evals, samples, checkpoints, logs, the final event) flushes what
//! waits and goes at once, so the last message is always delivered.

use std::time::{Duration, Instant};

use tauri::ipc::Channel;
use tunesmith_engine::{Event, ProgressSink};

const INTERVAL: Duration = Duration::from_millis(100);

pub struct ChannelSink {
    channel: Channel<Event>,
    last_sent: Option<Instant>,
    pending: Option<Event>,
}

impl ChannelSink {
    pub fn new(channel: Channel<Event>) -> Self {
        ChannelSink {
            channel,
            last_sent: None,
            pending: None,
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

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

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
