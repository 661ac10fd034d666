//! One sample, one token at a time: the state of a generation between tokens, so that a caller
//! (the CLI's loop, the server's worker interleaving several requests) decides when to take the
//! next token, and can read each token's log-probability on the way.

use tokenizers::Tokenizer;

use super::sampling::{self, SamplingParams};
use super::stream::TextStream;
use super::{FinishReason, GenerateConfig, Generation};
use crate::data::tokenizer;
use crate::model::{KvCache, Model};
use crate::rng::Rng;
use crate::{Error, Result};

/// What OpenAI's API adds to our sampling settings.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DecodeOptions {
    /// Report each token's log-probability and, with `Some(k)`, the `k` most likely
    /// alternatives (OpenAI's `logprobs`; `Some(0)` gives the token's own only).
    pub logprobs: Option<usize>,
    /// Subtracted once from the logit of every token already generated (OpenAI's
    /// `presence_penalty`).
    pub presence_penalty: f32,
    /// Subtracted from a token's logit once per time it was generated (`frequency_penalty`).
    pub frequency_penalty: f32,
    /// Added to these tokens' logits at every step (`logit_bias`; -100 bans a token).
    pub logit_bias: Vec<(u32, f32)>,
}

/// One generated token.
#[derive(Debug, Clone, PartialEq)]
pub struct Token {
    pub id: u32,
    /// The text this token completes (empty while a UTF-8 character or a possible stop string
    /// is still open; it then comes with a later token or at the end).
    pub text: String,
    /// Natural log of the token's probability under the model (before temperature and
    /// penalties, as OpenAI reports it); 0 when not asked for.
    pub logprob: f32,
    /// The most likely tokens at this position with their log-probabilities, most likely first.
    pub top: Vec<(u32, f32)>,
}

pub struct Decoder<'a> {
    model: &'a Model,
    tok: &'a Tokenizer,
    cfg: GenerateConfig,
    options: DecodeOptions,
    params: SamplingParams,
    ends: Vec<u32>,
    context: Vec<u32>,
    pending: Vec<u32>,
    prompt_ids: Vec<u32>,
    rng: Rng,
    cache: KvCache,
    stream: TextStream<'a>,
    tokens: Vec<u32>,
    counts: std::collections::HashMap<u32, u32>,
    finish: Option<FinishReason>,
}

impl<'a> Decoder<'a> {
    /// Sample number `index` (its own seeded stream) of `cfg`'s prompt; the prompt is read at the
    /// first [`Decoder::next`].
    pub fn new(
        model: &'a Model,
        tok: &'a Tokenizer,
        cfg: &GenerateConfig,
        index: u64,
        options: DecodeOptions,
    ) -> Result<Self> {
        cfg.validate()?;
        let ids = tokenizer::encode(tok, &cfg.prompt)?;
        Self::with_prompt_ids(model, tok, cfg, ids, index, options)
    }

    /// [`Decoder::new`] for a prompt already tokenised (`ids` is `cfg.prompt` encoded), so that a
    /// caller who measured the prompt does not encode it again.
    pub fn with_prompt_ids(
        model: &'a Model,
        tok: &'a Tokenizer,
        cfg: &GenerateConfig,
        ids: Vec<u32>,
        index: u64,
        options: DecodeOptions,
    ) -> Result<Self> {
        cfg.validate()?;
        let eot = tokenizer::eot_id(tok);
        // A reply ends at end-of-text or at any of the model's own end ids (chat models end a
        // turn with one of several).
        let mut ends: Vec<u32> = eot.into_iter().collect();
        ends.extend(model.config().eos_ids());
        let mut context = ids;
        if context.is_empty() {
            // An empty prompt starts a fresh document, the way GPT-2 was trained.
            context.push(
                eot.ok_or_else(|| Error::config("prompt", "is empty; type some text to continue"))?,
            );
        }
        let n_ctx = model.config().context();
        // The prompt is fed whole first (its end, when longer than the context); afterwards
        // only the newest token.
        let pending = context[context.len().saturating_sub(n_ctx)..].to_vec();
        Ok(Decoder {
            model,
            tok,
            params: cfg.sampling(),
            rng: Rng::derive(cfg.seed, "generate", &[index]),
            stream: TextStream::new(tok, &cfg.stop),
            cfg: cfg.clone(),
            options,
            ends,
            prompt_ids: pending.clone(),
            pending,
            context,
            cache: KvCache::default(),
            tokens: Vec::new(),
            counts: Default::default(),
            finish: None,
        })
    }

    /// The ids the model is given as the prompt.
    pub fn prompt_ids(&self) -> &[u32] {
        &self.prompt_ids
    }

    /// Why generation ended, once it has.
    pub fn finished(&self) -> Option<FinishReason> {
        self.finish
    }

    /// Ends generation early (the sample's finish reason becomes `cancelled`).
    pub fn cancel(&mut self) {
        self.finish.get_or_insert(FinishReason::Cancelled);
    }

    /// The next token, or `None` once generation has ended (end-of-text, a stop string,
    /// `max_new_tokens`, or [`Decoder::cancel`]).
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Result<Option<Token>> {
        if self.due().is_none() {
            return Ok(None);
        }
        self.step_alone()
    }

    /// Before a step: `None` once generation has ended, else how many ids the step feeds (1, or
    /// the prompt). A full context restarts the cache on its most recent half.
    fn due(&mut self) -> Option<usize> {
        if self.finish.is_some() {
            return None;
        }
        if self.tokens.len() >= self.cfg.max_new_tokens {
            self.finish = Some(FinishReason::Length);
            return None;
        }
        let n_ctx = self.model.config().context();
        if self.cache.len() + self.pending.len() > n_ctx {
            self.cache.clear();
            // At least the newest token (a context of 1 keeps just it).
            let keep = (n_ctx / 2).max(1);
            self.pending = self.context[self.context.len() - keep..].to_vec();
        }
        Some(self.pending.len())
    }

    /// A due step through the model alone.
    fn step_alone(&mut self) -> Result<Option<Token>> {
        let logits = self
            .model
            .step(&self.pending, &mut self.cache)?
            .to_vec1::<f32>()?;
        self.take(logits)
    }

    /// One step of each of several samples (of one model, as a server decodes its clients'):
    /// those feeding one token go through the model together, every weight read once for all of
    /// them ([`Model::step_rows`]); those reading their prompt go alone. Each sample gets what
    /// [`Decoder::next`] would have given it. If the shared step fails, each sample's cache is put
    /// back and it steps alone, so a failure stays with the sample that causes it.
    pub fn step_all(decoders: &mut [&mut Decoder<'a>]) -> Vec<Result<Option<Token>>> {
        let mut out: Vec<Option<Result<Option<Token>>>> = decoders.iter().map(|_| None).collect();
        let mut rows = Vec::new();
        for (i, d) in decoders.iter_mut().enumerate() {
            match d.due() {
                None => out[i] = Some(Ok(None)),
                Some(1) => rows.push(i),
                Some(_) => out[i] = Some(guarded(|| d.step_alone())),
            }
        }
        let shared = rows.len() > 1
            && rows
                .iter()
                .all(|&i| std::ptr::eq(decoders[i].model, decoders[rows[0]].model));
        if shared {
            let model = decoders[rows[0]].model;
            let ids: Vec<u32> = rows.iter().map(|&i| decoders[i].pending[0]).collect();
            let saved: Vec<KvCache> = rows.iter().map(|&i| decoders[i].cache.clone()).collect();
            let logits = guarded(|| {
                let mut caches: Vec<&mut KvCache> = decoders
                    .iter_mut()
                    .enumerate()
                    .filter(|(i, _)| rows.contains(i))
                    .map(|(_, d)| &mut d.cache)
                    .collect();
                Ok(model.step_rows(&ids, &mut caches)?.to_vec2::<f32>()?)
            });
            match logits {
                Ok(rows_logits) => {
                    for (&i, l) in rows.iter().zip(rows_logits) {
                        out[i] = Some(guarded(|| decoders[i].take(l)));
                    }
                }
                Err(_) => {
                    for (&i, cache) in rows.iter().zip(saved) {
                        decoders[i].cache = cache;
                        out[i] = Some(guarded(|| decoders[i].step_alone()));
                    }
                }
            }
        } else {
            for &i in &rows {
                out[i] = Some(guarded(|| decoders[i].step_alone()));
            }
        }
        out.into_iter()
            .map(|o| o.expect("every sample stepped"))
            .collect()
    }

    /// Picks the next token from the step's logits.
    fn take(&mut self, mut logits: Vec<f32>) -> Result<Option<Token>> {
        logits.truncate(
            self.tok
                .get_vocab_size(true)
                .min(self.model.config().vocab_size()),
        );
        let raw = self.options.logprobs.map(|k| (k, logits.clone()));
        if self.tokens.len() < self.cfg.min_new_tokens {
            for &e in &self.ends {
                if let Some(l) = logits.get_mut(e as usize) {
                    *l = f32::NEG_INFINITY;
                }
            }
        }
        self.apply_penalties(&mut logits);
        let next = sampling::sample(&mut logits, &self.context, &self.params, &mut self.rng);
        if self.cfg.stop_at_eot && self.ends.contains(&next) {
            self.finish = Some(FinishReason::Stop);
            return Ok(None);
        }
        self.context.push(next);
        self.tokens.push(next);
        *self.counts.entry(next).or_default() += 1;
        self.pending = vec![next];
        let text = self.stream.push(next)?;
        if self.stream.stopped() {
            self.finish = Some(FinishReason::Stop);
        }
        let (logprob, top) = match raw {
            Some((k, raw)) => log_probs(&raw, next, k),
            None => (0.0, Vec::new()),
        };
        Ok(Some(Token {
            id: next,
            text,
            logprob,
            top,
        }))
    }

    /// The sample, once generation has ended, with the text still held back (an unfinished
    /// character or stop-string prefix that turned out not to be one).
    pub fn finish(mut self) -> (Generation, String) {
        let rest = self.stream.finish();
        let generation = Generation {
            text: self.stream.text().to_string(),
            tokens: self.tokens,
            prompt: self.cfg.prompt,
            prompt_ids: self.prompt_ids,
            finish_reason: self.finish.unwrap_or(FinishReason::Length),
        };
        (generation, rest)
    }

    fn apply_penalties(&self, logits: &mut [f32]) {
        let (p, f) = (
            self.options.presence_penalty,
            self.options.frequency_penalty,
        );
        if p != 0.0 || f != 0.0 {
            for (&id, &count) in &self.counts {
                if let Some(l) = logits.get_mut(id as usize) {
                    *l -= p + f * count as f32;
                }
            }
        }
        for &(id, bias) in &self.options.logit_bias {
            if let Some(l) = logits.get_mut(id as usize) {
                *l += bias;
            }
        }
    }
}

/// `f()`, with a panic turned into an error (a crash in the model fails one step, not the caller).
fn guarded<T>(f: impl FnOnce() -> Result<T>) -> Result<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|_| {
        Err(Error::Data(
            "the model crashed while generating; try again, and report it if it happens again"
                .into(),
        ))
    })
}

/// The log-probability of `chosen` and the `k` most likely tokens under `logits` (log-softmax).
pub fn log_probs(logits: &[f32], chosen: u32, k: usize) -> (f32, Vec<(u32, f32)>) {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f64 = logits.iter().map(|&l| ((l - max) as f64).exp()).sum();
    let log_z = max + sum.ln() as f32;
    let mut top: Vec<(u32, f32)> = Vec::new();
    if k > 0 {
        let mut idx: Vec<u32> = (0..logits.len() as u32).collect();
        let k = k.min(idx.len());
        idx.select_nth_unstable_by(k - 1, |&a, &b| {
            logits[b as usize]
                .total_cmp(&logits[a as usize])
                .then(a.cmp(&b))
        });
        idx.truncate(k);
        idx.sort_unstable_by(|&a, &b| {
            logits[b as usize]
                .total_cmp(&logits[a as usize])
                .then(a.cmp(&b))
        });
        top = idx
            .into_iter()
            .map(|i| (i, logits[i as usize] - log_z))
            .collect();
    }
    let chosen = logits
        .get(chosen as usize)
        .map_or(f32::NEG_INFINITY, |l| l - log_z);
    (chosen, top)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_probs_are_a_log_softmax() {
        let logits = [1.0f32, 3.0, 2.0, -1.0];
        let z: f32 = logits.iter().map(|l| l.exp()).sum();
        let (lp, top) = log_probs(&logits, 2, 2);
        assert!((lp - (2.0f32.exp() / z).ln()).abs() < 1e-6);
        assert_eq!(top.iter().map(|t| t.0).collect::<Vec<_>>(), vec![1, 2]);
        assert!((top[0].1 - (3.0f32.exp() / z).ln()).abs() < 1e-6);
        let total: f32 = logits.iter().map(|l| (l - z.ln()).exp()).sum();
        assert!((total - 1.0).abs() < 1e-6);
    }
}
