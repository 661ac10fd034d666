//! Scoring outputs against references: the corpus figures (BLEU and chrF as sacrebleu, ROUGE as
//! rouge-score, exact match) and each example's own. Used by `tunesmith score` on outputs made
//! elsewhere and by evaluation on held-out pairs, so both give the same numbers under the same
//! JSON keys.

use std::path::Path;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::{bleu, chrf, rouge};
use crate::{Error, Result};

/// A figure to report.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Metric {
    /// Masked loss and perplexity of the references given the prompts (needs a model).
    Loss,
    Bleu,
    Rouge,
    Chrf,
    Exact,
}

impl Metric {
    pub const ALL: [Metric; 5] = [
        Metric::Loss,
        Metric::Bleu,
        Metric::Rouge,
        Metric::Chrf,
        Metric::Exact,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Metric::Loss => "loss",
            Metric::Bleu => "bleu",
            Metric::Rouge => "rouge",
            Metric::Chrf => "chrf",
            Metric::Exact => "exact",
        }
    }

    /// `loss,bleu,rouge`: a comma-separated list, each named once.
    pub fn parse_list(s: &str) -> Result<Vec<Metric>> {
        let mut out = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let m: Metric = part.parse()?;
            if !out.contains(&m) {
                out.push(m);
            }
        }
        if out.is_empty() {
            return Err(Error::config(
                "metrics",
                "is empty; name some of loss, bleu, rouge, chrf, exact",
            ));
        }
        Ok(out)
    }
}

impl FromStr for Metric {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Metric::ALL
            .into_iter()
            .find(|m| m.as_str() == s.to_ascii_lowercase())
            .ok_or_else(|| {
                Error::config(
                    "metrics",
                    format!("has `{s}`; choose from loss, bleu, rouge, chrf, exact"),
                )
            })
    }
}

/// One example's scores.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExampleScore {
    /// The prompt (evaluation on pairs; absent when scoring files).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt: Option<String>,
    pub reference: String,
    pub output: String,
    /// sacrebleu's sentence BLEU (0–100).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bleu: Option<f64>,
    /// sacrebleu's sentence chrF (0–100).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chrf: Option<f64>,
    /// rouge-score F1 (0–1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rouge1: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rouge2: Option<f64>,
    #[serde(rename = "rougeL", skip_serializing_if = "Option::is_none")]
    pub rouge_l: Option<f64>,
    /// The output equals the reference (surrounding whitespace aside).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exact: Option<bool>,
    /// Share of the output's tokens copied verbatim from the training set (0–1), when checked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub copied: Option<f64>,
    /// The output cut into copied and new pieces (for highlighting), when checked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub copied_segments: Option<Vec<super::copied::Segment>>,
}

/// Corpus figures and the examples.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ScoreReport {
    /// Corpus BLEU (0–100), sacrebleu's default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bleu: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bleu_signature: Option<String>,
    /// Mean ROUGE F1 over the examples (0–1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rouge1: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rouge2: Option<f64>,
    #[serde(rename = "rougeL", skip_serializing_if = "Option::is_none")]
    pub rouge_l: Option<f64>,
    /// Whether ROUGE stemmed words (rouge-score's `use_stemmer`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rouge_stemmer: Option<bool>,
    /// Corpus chrF (0–100), sacrebleu's default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chrf: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chrf_signature: Option<String>,
    /// Share of outputs equal to their reference (0–100).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exact: Option<f64>,
    /// Mean loss of the references given their prompts (nats per token).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub loss: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub perplexity: Option<f64>,
    /// Share of all output tokens copied verbatim (spans of `copied_min_tokens` or more) from
    /// the training set (0–1), when the run's training set was at hand.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub copied: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub copied_min_tokens: Option<usize>,
    pub examples: Vec<ExampleScore>,
    /// Things the user should know about how the numbers were made.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub notes: Vec<String>,
}

/// Scores `outputs` against `references` (same length) on the text metrics in `metrics`
/// (`loss` is left to the caller, which has the model).
pub fn score_texts(
    outputs: &[String],
    references: &[String],
    prompts: Option<&[String]>,
    metrics: &[Metric],
    stem: bool,
) -> ScoreReport {
    let has = |m| metrics.contains(&m);
    let hyps: Vec<&str> = outputs.iter().map(String::as_str).collect();
    let refs: Vec<&str> = references.iter().map(String::as_str).collect();
    let n = hyps.len().min(refs.len());
    let mut report = ScoreReport::default();
    let mut rouge_sum = rouge::Rouge::default();
    let mut exact = 0usize;
    for i in 0..n {
        let (h, r) = (hyps[i], refs[i]);
        let rg = has(Metric::Rouge).then(|| rouge::score(r, h, stem));
        if let Some(rg) = rg {
            rouge_sum.rouge1 += rg.rouge1;
            rouge_sum.rouge2 += rg.rouge2;
            rouge_sum.rouge_l += rg.rouge_l;
        }
        let same = h.trim() == r.trim();
        exact += usize::from(same);
        report.examples.push(ExampleScore {
            prompt: prompts.and_then(|p| p.get(i).cloned()),
            reference: r.to_string(),
            output: h.to_string(),
            bleu: has(Metric::Bleu).then(|| bleu::sentence_bleu(h, r)),
            chrf: has(Metric::Chrf).then(|| chrf::sentence_chrf(h, r)),
            rouge1: rg.map(|x| x.rouge1),
            rouge2: rg.map(|x| x.rouge2),
            rouge_l: rg.map(|x| x.rouge_l),
            exact: has(Metric::Exact).then_some(same),
            copied: None,
            copied_segments: None,
        });
    }
    let mean = |x: f64| if n == 0 { 0.0 } else { x / n as f64 };
    if has(Metric::Bleu) {
        report.bleu = Some(bleu::corpus_bleu(&hyps[..n], &refs[..n]).score);
        report.bleu_signature = Some(bleu::signature());
    }
    if has(Metric::Chrf) {
        report.chrf = Some(chrf::corpus_chrf(&hyps[..n], &refs[..n]));
        report.chrf_signature = Some(chrf::signature());
    }
    if has(Metric::Rouge) {
        report.rouge1 = Some(mean(rouge_sum.rouge1));
        report.rouge2 = Some(mean(rouge_sum.rouge2));
        report.rouge_l = Some(mean(rouge_sum.rouge_l));
        report.rouge_stemmer = Some(stem);
    }
    if has(Metric::Exact) {
        report.exact = Some(mean(exact as f64 * 100.0));
    }
    report
}

/// The lines of a text file (one output or reference each, as sacrebleu's command line reads
/// them: the line break off, a Windows `\r` too).
pub fn read_lines(path: &Path) -> Result<Vec<String>> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let text = String::from_utf8(bytes)
        .map_err(|_| Error::file(path, "is not UTF-8 text; save it as UTF-8"))?;
    if text.is_empty() {
        return Err(Error::file(path, "is empty; it needs one line per example"));
    }
    let body = text.strip_suffix('\n').unwrap_or(&text);
    Ok(body
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l).to_string())
        .collect())
}

/// Scores two line files against each other.
pub fn score_files(
    hypotheses: &Path,
    references: &Path,
    metrics: &[Metric],
    stem: bool,
) -> Result<ScoreReport> {
    if metrics.contains(&Metric::Loss) {
        return Err(Error::config(
            "metrics",
            "has loss, which needs the model and the prompts; use `tunesmith eval --pairs` for it, or leave it out here",
        ));
    }
    let hyps = read_lines(hypotheses)?;
    let refs = read_lines(references)?;
    if hyps.len() != refs.len() {
        return Err(Error::Data(format!(
            "{} has {} lines but {} has {}; each output needs the reference on the same line",
            hypotheses.display(),
            hyps.len(),
            references.display(),
            refs.len()
        )));
    }
    Ok(score_texts(&hyps, &refs, None, metrics, stem))
}
