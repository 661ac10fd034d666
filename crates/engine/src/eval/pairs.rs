//! Evaluation on held-out examples: each prompt answered by the model (greedy unless told
//! otherwise), the answer scored against the reference, and the references' masked loss given
//! their prompts. Examples come from a pairs file (prompt/completion or chat JSONL, read as
//! `prepare` reads it) or from a run's own validation split.

use std::path::Path;

use serde::{Deserialize, Serialize};
use tokenizers::Tokenizer;

use super::copied::CopyIndex;

use super::score::{score_texts, Metric, ScoreReport};
use crate::chat;
use crate::data::dataset::{self, encode_unit};
use crate::data::import::structured;
use crate::data::tokenizer;
use crate::data::unit::Unit;
use crate::generate::decoder::{DecodeOptions, Decoder};
use crate::generate::GenerateConfig;
use crate::model::load::LoadedModel;
use crate::progress::{CancelToken, Event, ProgressSink};
use crate::{Error, Result};

/// One held-out example, as the model sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct EvalExample {
    /// The prompt as shown to the user (the plain prompt, or the last user turn of a chat).
    pub prompt: String,
    pub reference: String,
    /// The unit it came from, rendered for each model with that model's tokenizer and template.
    pub unit: Unit,
    /// For a run's own validation examples: the ids and learning mask exactly as the run
    /// tokenised them (already in its chat template), used instead of rendering `unit` again.
    pub encoded: Option<(Vec<u32>, Vec<u8>)>,
}

/// How to answer.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct PairEvalConfig {
    pub metrics: Vec<Metric>,
    /// ROUGE with rouge-score's Porter stemmer.
    pub rouge_stemmer: bool,
    /// New tokens per answer; by default twice the reference's length plus 16 (at most 512).
    pub max_new_tokens: Option<usize>,
    /// 0 answers greedily.
    pub temperature: f64,
    pub top_p: f64,
    pub top_k: usize,
    pub seed: u64,
    /// Only the first N examples.
    pub limit: Option<usize>,
}

impl Default for PairEvalConfig {
    fn default() -> Self {
        PairEvalConfig {
            metrics: vec![
                Metric::Loss,
                Metric::Bleu,
                Metric::Rouge,
                Metric::Chrf,
                Metric::Exact,
            ],
            rouge_stemmer: false,
            max_new_tokens: None,
            temperature: 0.0,
            top_p: 1.0,
            top_k: 0,
            seed: 42,
            limit: None,
        }
    }
}

/// The pairs of a JSONL file (`{"prompt","completion"}` or `{"messages": [...]}` lines, one
/// example per assistant reply). Broken lines and lines that are not pairs are skipped, each
/// named by line number in the returned notes; a file with no pair at all is refused.
pub fn read_pairs(path: &Path) -> Result<(Vec<EvalExample>, Vec<String>)> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let text = String::from_utf8(bytes)
        .map_err(|_| Error::file(path, "is not UTF-8 text; save it as UTF-8"))?;
    if text.trim().is_empty() {
        return Err(Error::file(
            path,
            "is empty; it needs one {\"prompt\": …, \"completion\": …} or {\"messages\": […]} line per example",
        ));
    }
    let imported = structured::jsonl(path, &text)?;
    let mut notes = imported.warnings;
    for s in &imported.sections {
        notes.push(format!(
            "{}: skipped: not a prompt/completion pair or a chat (it has no reference answer)",
            s.location
        ));
    }
    if imported.examples.is_empty() {
        return Err(Error::file(
            path,
            format!(
                "has no examples to evaluate ({}); each line needs {{\"prompt\": …, \"completion\": …}} or {{\"messages\": […]}} with an assistant reply",
                notes.first().map_or("no lines", String::as_str)
            ),
        ));
    }
    let source = path.display().to_string();
    let examples = imported
        .examples
        .into_iter()
        .map(|e| {
            let shown = e
                .messages
                .as_ref()
                .and_then(|m| m.iter().rev().find(|m| m.role == "user"))
                .map_or_else(|| e.prompt.clone(), |m| m.content.clone());
            EvalExample {
                encoded: None,
                prompt: shown,
                reference: e.completion.clone(),
                unit: Unit::Pair {
                    source: format!("{source} {}", e.location),
                    prompt: e.prompt,
                    completion: e.completion,
                    messages: e.messages,
                },
            }
        })
        .collect();
    Ok((examples, notes))
}

/// A run's validation split as examples: each unit of `val.tokens` (ended by the end-of-text
/// token) with its mask, the masked part the reference. They keep their ids: they are for models
/// with the run's tokenizer (its checkpoints and the model it was fine-tuned from). A run trained on running text has no
/// references to compare answers with, so it is refused with what to give instead.
pub fn run_split_examples(dataset_dir: &Path, tok: &Tokenizer) -> Result<Vec<EvalExample>> {
    let mask_path = dataset_dir.join("val.mask");
    if !mask_path.is_file() {
        return Err(Error::file(
            dataset_dir,
            "holds running text, not prompt/answer pairs, so there are no reference answers to score; give --pairs FILE.jsonl, or measure loss and perplexity with --data",
        ));
    }
    let ids = dataset::read_tokens(&dataset_dir.join("val.tokens"))?;
    let mask = std::fs::read(&mask_path).map_err(|e| Error::io(&mask_path, e))?;
    let eot = tokenizer::eot_id(tok);
    let text = |ids: &[u32]| -> Result<String> {
        tok.decode(ids, true)
            .map(|s| s.trim().to_string())
            .map_err(|e| Error::Tokenizer(format!("could not decode tokens ({e})")))
    };
    let mut out = Vec::new();
    let mut start = 0;
    for end in 0..=ids.len() {
        if end < ids.len() && Some(ids[end]) != eot {
            continue;
        }
        let (unit, m) = (
            &ids[start..end],
            &mask[start.min(mask.len())..end.min(mask.len())],
        );
        start = end + 1;
        let Some(cut) = m.iter().position(|&x| x == 1) else {
            continue;
        };
        if cut == 0 || cut >= unit.len() {
            continue;
        }
        let (prompt, reference) = (text(&unit[..cut])?, text(&unit[cut..])?);
        out.push(EvalExample {
            encoded: Some((unit.to_vec(), m.to_vec())),
            prompt: prompt.clone(),
            reference: reference.clone(),
            unit: Unit::Pair {
                source: format!("{} (validation)", dataset_dir.display()),
                prompt,
                completion: reference,
                messages: None,
            },
        });
    }
    if out.is_empty() {
        return Err(Error::file(
            dataset_dir,
            "has no validation pairs; give --pairs FILE.jsonl",
        ));
    }
    Ok(out)
}

/// Answers and scores every example with `m`; with `copies` (the index of the training set the
/// model learned from), also how much of each answer it copied from there.
pub fn evaluate_pairs(
    m: &LoadedModel,
    examples: &[EvalExample],
    cfg: &PairEvalConfig,
    copies: Option<&CopyIndex>,
    cancel: &CancelToken,
    sink: &mut impl ProgressSink,
) -> Result<ScoreReport> {
    let examples = &examples[..cfg.limit.unwrap_or(usize::MAX).min(examples.len())];
    let template = m.template.as_ref();
    let eot = tokenizer::eot_id(&m.tokenizer);
    let context = m.model.config().context();
    let mut outputs = Vec::with_capacity(examples.len());
    let mut copied = Vec::with_capacity(examples.len());
    let (mut all_ids, mut all_mask) = (Vec::new(), Vec::new());
    let mut truncated = 0;
    for (i, ex) in examples.iter().enumerate() {
        if cancel.is_cancelled() {
            return Err(Error::Cancelled);
        }
        sink.emit(Event::Progress {
            stage: "answer".into(),
            done: i as u64,
            total: examples.len() as u64,
            unit: "examples".into(),
        });
        // A run's own examples are given as it tokenised them (rendering their text again would
        // wrap a chat template in the template a second time).
        let (ids, mask) = match &ex.encoded {
            Some(e) => e.clone(),
            None => encode_unit(&ex.unit, &m.tokenizer, template)?,
        };
        let cut = mask.iter().position(|&x| x == 1).unwrap_or(ids.len());
        let mut prompt_ids = ids[..cut].to_vec();
        if prompt_ids.len() + 1 >= context {
            // Keep the prompt's end: the question sits there.
            prompt_ids.drain(..prompt_ids.len() + 2 - context);
            truncated += 1;
        }
        let wanted = cfg
            .max_new_tokens
            .unwrap_or(((ids.len() - cut) * 2 + 16).min(512));
        let gen = GenerateConfig {
            prompt: String::new(),
            max_new_tokens: wanted.min(context - prompt_ids.len()).max(1),
            temperature: cfg.temperature,
            top_p: cfg.top_p,
            top_k: cfg.top_k,
            seed: cfg.seed,
            stop_at_eot: true,
            stop: match (&ex.unit, template) {
                (
                    Unit::Pair {
                        messages: Some(_), ..
                    },
                    None,
                ) => {
                    vec![chat::TRANSCRIPT_STOP.to_string()]
                }
                _ => Vec::new(),
            },
            ..GenerateConfig::default()
        };
        let mut decoder = Decoder::with_prompt_ids(
            &m.model,
            &m.tokenizer,
            &gen,
            prompt_ids,
            0,
            DecodeOptions::default(),
        )?;
        while decoder.next()?.is_some() {
            if cancel.is_cancelled() {
                return Err(Error::Cancelled);
            }
        }
        let (generation, _) = decoder.finish();
        let output = generation.text.trim().to_string();
        if let Some(index) = copies {
            let r = super::copied::check_text(index, &m.tokenizer, &output)?;
            copied.push((r.share, r.tokens, r.segments));
        }
        outputs.push(output);
        all_ids.extend_from_slice(&ids);
        all_mask.extend_from_slice(&mask);
        if let Some(e) = eot {
            all_ids.push(e);
            all_mask.push(1);
        }
    }
    let references: Vec<String> = examples.iter().map(|e| e.reference.clone()).collect();
    let prompts: Vec<String> = examples.iter().map(|e| e.prompt.clone()).collect();
    let mut report = score_texts(
        &outputs,
        &references,
        Some(&prompts),
        &cfg.metrics,
        cfg.rouge_stemmer,
    );
    if copies.is_some() {
        for (ex, (share, _, segments)) in report.examples.iter_mut().zip(&copied) {
            ex.copied = Some(*share);
            ex.copied_segments = Some(segments.clone());
        }
        let tokens: usize = copied.iter().map(|(_, n, _)| n).sum();
        let copied_tokens: f64 = copied.iter().map(|(s, n, _)| s * *n as f64).sum();
        report.copied = Some(if tokens == 0 {
            0.0
        } else {
            copied_tokens / tokens as f64
        });
        report.copied_min_tokens = copies.map(CopyIndex::min_tokens);
    }
    if cfg.metrics.contains(&Metric::Loss) {
        let (loss, _) = super::loss_on_masked_tokens(
            &m.model,
            &all_ids,
            Some(&all_mask),
            eot,
            context,
            usize::MAX,
            cancel,
            sink,
        )?;
        report.loss = Some(loss);
        report.perplexity = Some(loss.exp());
    }
    let chats = examples.iter().any(|e| {
        matches!(
            &e.unit,
            Unit::Pair {
                messages: Some(_),
                ..
            }
        )
    });
    if chats && template.is_none() {
        report.notes.push(
            "the model has no chat template, so the chat examples were given to it as the plain User:/Assistant: transcript".into(),
        );
    }
    if truncated > 0 {
        report.notes.push(format!(
            "{truncated} prompt(s) were longer than the model's context of {context} tokens; their beginnings were cut"
        ));
    }
    Ok(report)
}
