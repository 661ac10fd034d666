//! The model worker: one thread owns the loaded model and serves every request's samples, one
//! token each per step, decoded together (batched: one pass through the model for all samples
//! past their prompt), so a long answer does not hold up a short one queued after it and more
//! clients get more tokens per second. Requests wait in a bounded queue; a request that does not fit is refused at once (429)
//! rather than left hanging. A sample whose client has gone (its channel closed) is dropped at its next token.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc::UnboundedSender;
use tunesmith_engine::generate::decoder::Token;
use tunesmith_engine::generate::{DecodeOptions, Decoder, FinishReason, GenerateConfig};
use tunesmith_engine::model::load::LoadedModel;

use crate::error::ApiError;
use axum::http::StatusCode;

/// One sample to generate.
pub struct Sample {
    /// Its settings, the prompt rendered (see [`crate::prepare`]).
    pub cfg: GenerateConfig,
    /// The prompt's ids.
    pub ids: Arc<Vec<u32>>,
    /// Which sample of the prompt this is (its own seeded stream).
    pub index: u64,
    pub options: DecodeOptions,
    pub updates: UnboundedSender<Update>,
}

/// What the worker tells a request about one of its samples, in this order: `Started` (or
/// `Failed`), any number of `Token`s, then `Done`.
#[derive(Debug)]
pub enum Update {
    Started {
        /// The prompt as given to the model (a conversation rendered with the template).
        prompt: String,
        prompt_tokens: usize,
    },
    Token {
        token: Token,
        /// The token's own text and its alternatives' (only when log-probabilities were asked
        /// for), as OpenAI lists them.
        label: Label,
        top: Vec<(Label, f32)>,
    },
    Done {
        finish: FinishReason,
        /// Text held back until the end (an unfinished stop-string prefix).
        rest: String,
        completion_tokens: usize,
    },
    Failed(ApiError),
}

/// How many samples are decoded together; more wait in the queue.
pub const ACTIVE: usize = 8;

pub struct Worker {
    queue: Sender<Sample>,
    /// Samples that may wait beyond the active ones.
    capacity: usize,
    load: Arc<Load>,
    /// Held while a request's samples are admitted, so that two requests cannot both be let in
    /// on the same free room.
    admit: Mutex<()>,
}

/// How busy the worker is (shown by `/health`).
#[derive(Default)]
pub struct Load {
    /// Samples queued and not yet started.
    pub waiting: AtomicUsize,
    /// Samples being decoded.
    pub active: AtomicUsize,
    /// The model thread is running (false once it has ended, by a crash or at shutdown).
    pub alive: std::sync::atomic::AtomicBool,
}

/// Marks the worker gone when its thread ends, however it ends.
struct Alive<'a>(&'a Load);

impl Drop for Alive<'_> {
    fn drop(&mut self) {
        self.0.alive.store(false, Ordering::SeqCst);
    }
}

impl Worker {
    /// Starts the worker thread over `model`; at most `queue` samples wait beyond the active ones.
    /// The thread ends once the worker is dropped and its last sample is done.
    pub fn start(model: LoadedModel, queue: usize) -> std::io::Result<Worker> {
        let (tx, rx) = mpsc::channel();
        let load = Arc::new(Load::default());
        load.alive.store(true, Ordering::SeqCst);
        let shared = load.clone();
        std::thread::Builder::new()
            .name("tunesmith-serve-model".into())
            .spawn(move || {
                let _alive = Alive(&shared);
                run(&model, rx, &shared)
            })?;
        Ok(Worker {
            queue: tx,
            capacity: queue,
            load,
            admit: Mutex::new(()),
        })
    }

    pub fn load(&self) -> &Load {
        &self.load
    }

    /// Queues a request's samples, all or none: refused with 429 when they do not fit in the
    /// room left (the active slots and the queue).
    pub fn submit(&self, samples: Vec<Sample>) -> Result<(), ApiError> {
        let _admitting = self.admit.lock().unwrap_or_else(|p| p.into_inner());
        let busy =
            self.load.waiting.load(Ordering::SeqCst) + self.load.active.load(Ordering::SeqCst);
        if busy + samples.len() > self.capacity + ACTIVE {
            return Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "the server is busy: too many requests are waiting; retry in a moment",
            ));
        }
        for sample in samples {
            self.load.waiting.fetch_add(1, Ordering::SeqCst);
            if self.queue.send(sample).is_err() {
                self.load.waiting.fetch_sub(1, Ordering::SeqCst);
                return Err(ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the model is not available (the server is stopping)",
                ));
            }
        }
        Ok(())
    }
}

struct Active<'m> {
    decoder: Decoder<'m>,
    updates: UnboundedSender<Update>,
    completion_tokens: usize,
    logprobs: bool,
}

/// One token as OpenAI's logprobs list it: its text, and its bytes (the text alone cannot show a
/// token that is part of a character).
#[derive(Debug)]
pub struct Label {
    pub text: String,
    pub bytes: Vec<u8>,
}

fn token_text(model: &LoadedModel, id: u32) -> Label {
    Label {
        text: model.tokenizer.decode(&[id], false).unwrap_or_default(),
        bytes: tunesmith_engine::data::tokenizer::token_bytes(&model.tokenizer, id),
    }
}

fn run(model: &LoadedModel, queue: Receiver<Sample>, load: &Load) {
    let mut active: VecDeque<Active> = VecDeque::new();
    // Counted as active before it stops counting as waiting, so /health never shows a
    // started sample as neither.
    let begin = |sample| {
        load.active.fetch_add(1, Ordering::SeqCst);
        load.waiting.fetch_sub(1, Ordering::SeqCst);
        let started = begin(model, sample);
        if started.is_none() {
            load.active.fetch_sub(1, Ordering::SeqCst);
        }
        started
    };
    loop {
        load.active.store(active.len(), Ordering::SeqCst);
        // Idle: wait for work; busy: take what has arrived, up to the active limit.
        if active.is_empty() {
            match queue.recv() {
                Ok(sample) => active.extend(begin(sample)),
                Err(_) => return,
            }
        }
        while active.len() < ACTIVE {
            match queue.try_recv() {
                Ok(sample) => active.extend(begin(sample)),
                Err(mpsc::TryRecvError::Empty) => break,
                Err(mpsc::TryRecvError::Disconnected) => {
                    if active.is_empty() {
                        return;
                    }
                    break;
                }
            }
        }
        // Clients that went away: stop spending time on them.
        active.retain(|a| !a.updates.is_closed());
        if active.is_empty() {
            continue;
        }
        // Every active sample takes one step; those past their prompt share one pass through the
        // model (each weight read once for all of them), so more clients get more tokens per
        // second. A failure (or a panic) in the model fails only the sample it comes from.
        let steps = {
            let mut decoders: Vec<&mut Decoder> =
                active.iter_mut().map(|a| &mut a.decoder).collect();
            Decoder::step_all(&mut decoders)
        };
        let mut still = VecDeque::with_capacity(active.len());
        for (mut current, step) in active.drain(..).zip(steps) {
            match step {
                Ok(Some(token)) => {
                    current.completion_tokens += 1;
                    let (label, top) = match current.logprobs {
                        true => (
                            token_text(model, token.id),
                            token
                                .top
                                .iter()
                                .map(|&(id, lp)| (token_text(model, id), lp))
                                .collect(),
                        ),
                        false => (
                            Label {
                                text: String::new(),
                                bytes: Vec::new(),
                            },
                            Vec::new(),
                        ),
                    };
                    let update = Update::Token { token, label, top };
                    if current.updates.send(update).is_ok() {
                        still.push_back(current);
                    }
                }
                Ok(None) => {
                    let completion_tokens = current.completion_tokens;
                    let updates = current.updates;
                    let (generation, rest) = current.decoder.finish();
                    let _ = updates.send(Update::Done {
                        finish: generation.finish_reason,
                        rest,
                        completion_tokens,
                    });
                }
                Err(e) => {
                    let _ = current.updates.send(Update::Failed(ApiError::new(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        format!("generation failed: {e}"),
                    )));
                }
            }
        }
        active = still;
    }
}

/// Makes a sample's decoder and tells its request it started; a sample the model refuses is
/// reported to the request (400) and yields nothing.
fn begin(model: &LoadedModel, sample: Sample) -> Option<Active<'_>> {
    let Sample {
        cfg,
        ids,
        index,
        options,
        updates,
    } = sample;
    let logprobs = options.logprobs.is_some();
    let decoder = Decoder::with_prompt_ids(
        &model.model,
        &model.tokenizer,
        &cfg,
        ids.to_vec(),
        index,
        options,
    );
    match decoder {
        Ok(decoder) => {
            let prompt_tokens = decoder.prompt_ids().len();
            updates
                .send(Update::Started {
                    prompt: cfg.prompt,
                    prompt_tokens,
                })
                .ok()?;
            Some(Active {
                decoder,
                updates,
                completion_tokens: 0,
                logprobs,
            })
        }
        Err(e) => {
            let _ = updates.send(Update::Failed(ApiError::new(
                StatusCode::BAD_REQUEST,
                e.to_string(),
            )));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `/health` learns that the model thread has ended from `alive`, which its end clears.
    #[test]
    fn a_worker_whose_thread_ended_is_not_alive() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../engine/tests/fixtures/gpt2-tiny");
        let model =
            tunesmith_engine::model::load::load_dir(&dir, &tunesmith_engine::device::Device::Cpu)
                .unwrap();
        let worker = Worker::start(model, 4).unwrap();
        let load = worker.load.clone();
        assert!(load.alive.load(Ordering::SeqCst));
        // Its queue closed, the thread ends.
        drop(worker);
        let start = std::time::Instant::now();
        while load.alive.load(Ordering::SeqCst) {
            assert!(start.elapsed() < std::time::Duration::from_secs(10));
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }
}
