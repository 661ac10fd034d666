//! How the CLI shows engine events: progress bars on stderr, or one JSON object per line on stdout.

use std::io::Write;

use indicatif::{ProgressBar, ProgressStyle};
use tunesmith_engine::train::doctor::Remedy;
use tunesmith_engine::{Event, LogLevel, ProgressSink};

/// `--json`: every event as one line on stdout; nothing else is printed there.
pub struct JsonSink;

impl ProgressSink for JsonSink {
    fn emit(&mut self, event: Event) {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(
            out,
            "{}",
            serde_json::to_string(&event).expect("events serialise")
        );
        let _ = out.flush();
    }
}

/// Human output: bars and messages on stderr; generated text on stdout.
#[derive(Default)]
pub struct TermSink {
    bar: Option<ProgressBar>,
    stage: String,
}

impl TermSink {
    fn bar(&mut self, stage: &str, total: u64, template: &str) -> &ProgressBar {
        if self.stage != stage || self.bar.is_none() {
            if let Some(b) = self.bar.take() {
                b.finish_and_clear();
            }
            let b = ProgressBar::new(total);
            b.set_style(ProgressStyle::with_template(template).expect("valid template"));
            self.bar = Some(b);
            self.stage = stage.to_string();
        }
        self.bar.as_ref().expect("set above")
    }

    fn println(&self, line: String) {
        match &self.bar {
            Some(b) => b.println(line),
            None => eprintln!("{line}"),
        }
    }

    pub fn finish(&mut self) {
        if let Some(b) = self.bar.take() {
            b.finish();
        }
    }
}

impl ProgressSink for TermSink {
    fn emit(&mut self, event: Event) {
        match event {
            Event::Progress {
                stage,
                done,
                total,
                unit,
            } => {
                let template = if unit == "bytes" {
                    "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}"
                } else {
                    "{msg} [{bar:30}] {pos}/{len}"
                };
                let b = self.bar(&stage, total, template);
                b.set_length(total);
                b.set_position(done);
                b.set_message(stage);
            }
            Event::TrainStep {
                step,
                total,
                loss,
                lr,
                tokens_per_sec,
                eta_secs,
                ..
            } => {
                let b = self.bar("train", total, "train [{bar:30}] {pos}/{len} {msg}");
                b.set_length(total);
                b.set_position(step);
                b.set_message(format!(
                    "loss {loss:.4} lr {lr:.2e} {tokens_per_sec:.0} tok/s eta {}",
                    fmt_secs(eta_secs)
                ));
            }
            Event::Eval {
                step,
                val_loss,
                perplexity,
            } => self.println(format!(
                "step {step}: validation loss {val_loss:.4}, perplexity {perplexity:.2}"
            )),
            Event::Sample { step, text } => {
                self.println(format!("--- sample at step {step} ---\n{text}\n---"))
            }
            Event::Checkpoint { step, path } => self.println(format!("step {step}: saved {path}")),
            Event::Finding {
                message, remedy, ..
            } => {
                let fix = match remedy {
                    Some(Remedy::ResumeFrom { step, lr }) => format!(
                        "\n  to do it: tunesmith train --out RUN --restore-from {} --lr {lr:.2e}",
                        step.map_or("latest".to_string(), |s| s.to_string())
                    ),
                    Some(Remedy::FewerSteps { steps, .. }) => {
                        format!("\n  to do it: train again with --steps {steps}")
                    }
                    Some(Remedy::StopKeepBest { step }) => format!(
                        "\n  to do it: press Ctrl-C; the best model (step {step}) is kept and used"
                    ),
                    None => String::new(),
                };
                self.println(format!("doctor: {message}{fix}"))
            }
            Event::Token { text } => {
                let mut out = std::io::stdout().lock();
                let _ = out.write_all(text.as_bytes());
                let _ = out.flush();
            }
            Event::Log { level, message } => self.println(match level {
                LogLevel::Warn => format!("warning: {message}"),
                _ => message,
            }),
            Event::Finished { .. } => self.finish(),
            Event::Failed { message, .. } => {
                self.finish();
                eprintln!("error: {message}");
            }
            _ => {}
        }
    }
}

fn fmt_secs(s: f64) -> String {
    let s = s.max(0.0) as u64;
    if s >= 3600 {
        format!("{}h{:02}m", s / 3600, s / 60 % 60)
    } else {
        format!("{}m{:02}s", s / 60, s % 60)
    }
}
