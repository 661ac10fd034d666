//! The verified hand-off: an export is reloaded with Tunesmith's own loaders and continues three
//! fixed prompts greedily beside the model it came from. Identical continuations are `verified`;
//! otherwise the first difference is reported, with how often the export picks the model's next
//! token when fed the model's own continuation (quantised exports round the weights, so small
//! differences are expected there and nowhere else).

use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};
use tokenizers::Tokenizer;

use super::{ExportFormat, Quant, CHECK_PROMPTS};
use crate::generate::{generate_one, GenerateConfig};
use crate::model::load::{self, Source};
use crate::model::Model;
use crate::progress::{CancelToken, NullSink};
use crate::{Error, Result};

/// Tokens continued per prompt.
pub const CHECK_TOKENS: usize = 20;

/// The outcome, written beside the export as JSON.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Verification {
    /// Every prompt continued exactly as the model continues it.
    pub verified: bool,
    /// Verified; close (a rounded export that agrees as well as its rounding allows); or mismatch.
    pub outcome: Outcome,
    /// One plain sentence or two for the user.
    pub summary: String,
    /// The weights type of the export.
    pub quant: Quant,
    /// How often the export's top next token is the model's, along the model's continuations.
    pub agreement: f64,
    pub prompts: Vec<PromptCheck>,
}

/// The verdict.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Verified,
    Close,
    Mismatch,
}

impl Verification {
    /// Whether the export can be used: verified, or close for a rounded export.
    pub fn passed(&self) -> bool {
        self.outcome != Outcome::Mismatch
    }
}

/// The least share of next tokens a rounded export must pick as the model does to count as close.
/// Measured (60 tokens each): SmolLM2-135M-Instruct Q8_0 97 %, Q4_K_M 88 %; a SmolLM2 LoRA run at
/// Q4_K_M 87 %; the 256-wide test model at Q4_K_M 97 %. A damaged tensor, a wrong layout or a
/// wrong tokenizer falls to a few per cent, so the bars leave room for rounding and no more.
pub fn min_agreement(quant: Quant) -> f64 {
    match quant {
        Quant::F32 => 1.0,
        // Half precision can flip a near-tie between two tokens, and nothing more.
        Quant::F16 => 0.95,
        Quant::Q8_0 => 0.85,
        Quant::Q4KM => 0.7,
    }
}

/// One prompt continued by both.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PromptCheck {
    pub prompt: String,
    /// The model's continuation.
    pub model: String,
    /// The export's continuation.
    pub export: String,
    /// The first new token where they part (none when identical).
    pub first_difference: Option<usize>,
    /// The export's tokenizer split the prompt differently.
    pub tokenizer_differs: bool,
}

/// Where the outcome is written: `verification.json` in an export folder, `NAME.verification.json`
/// beside a file.
pub fn report_path(format: ExportFormat, out: &Path) -> PathBuf {
    match format {
        ExportFormat::Gguf => {
            let stem = out
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            out.with_file_name(format!("{stem}.verification.json"))
        }
        _ => out.join("verification.json"),
    }
}

/// Reloads the export at `export` (a GGUF file, a model folder, or an adapter folder over `base`)
/// and checks it against `src`.
pub fn verify(
    src: &Source,
    export: &Path,
    base: Option<&Path>,
    quant: Quant,
    device: &Device,
    cancel: &CancelToken,
) -> Result<Verification> {
    let model = Model::new(&src.weights, &src.config)?;
    let loaded = load::load_dir_with(export, base, false, device).map_err(|e| {
        Error::Data(format!(
            "the export was written but Tunesmith cannot load it back ({e}); do not use it"
        ))
    })?;
    compare(
        &model,
        &src.tokenizer,
        &loaded.model,
        &loaded.tokenizer,
        quant,
        cancel,
    )
}

/// Greedy continuations of [`CHECK_PROMPTS`] by `model` and `export`, compared.
pub fn compare(
    model: &Model,
    tok: &Tokenizer,
    export: &Model,
    export_tok: &Tokenizer,
    quant: Quant,
    cancel: &CancelToken,
) -> Result<Verification> {
    let mut prompts = Vec::new();
    let (mut agree, mut total) = (0usize, 0usize);
    for prompt in CHECK_PROMPTS {
        let want_ids = crate::data::tokenizer::encode(tok, prompt)?;
        let got_ids = crate::data::tokenizer::encode(export_tok, prompt)?;
        let room = model.config().context().saturating_sub(want_ids.len() + 1);
        let cfg = GenerateConfig {
            prompt: prompt.to_string(),
            max_new_tokens: CHECK_TOKENS.min(room).max(1),
            temperature: 0.0,
            stop_at_eot: false,
            ..GenerateConfig::default()
        };
        let a = generate_one(model, tok, &cfg, 0, cancel, &mut NullSink)?;
        let b = generate_one(export, export_tok, &cfg, 0, cancel, &mut NullSink)?;
        if cancel.is_cancelled() {
            return Err(Error::Cancelled);
        }
        let first_difference = (a.tokens != b.tokens).then(|| {
            a.tokens
                .iter()
                .zip(&b.tokens)
                .position(|(x, y)| x != y)
                .unwrap_or(a.tokens.len().min(b.tokens.len()))
        });
        let (k, n) = teacher_forced_agreement(export, &a.prompt_ids, &a.tokens)?;
        agree += k;
        total += n;
        prompts.push(PromptCheck {
            prompt: prompt.to_string(),
            model: a.text,
            export: b.text,
            first_difference,
            tokenizer_differs: want_ids != got_ids,
        });
    }
    let agreement = if total == 0 {
        1.0
    } else {
        agree as f64 / total as f64
    };
    let verified = prompts
        .iter()
        .all(|p| p.first_difference.is_none() && !p.tokenizer_differs);
    let outcome = if verified {
        Outcome::Verified
    } else if quant.is_lossy()
        && !prompts.iter().any(|p| p.tokenizer_differs)
        && agreement >= min_agreement(quant)
    {
        Outcome::Close
    } else {
        Outcome::Mismatch
    };
    let summary = summary(&prompts, outcome, agreement, quant);
    Ok(Verification {
        verified,
        outcome,
        summary,
        quant,
        agreement,
        prompts,
    })
}

/// How many of `continuation`'s tokens `model` ranks first when fed `prompt` and the tokens before.
fn teacher_forced_agreement(
    model: &Model,
    prompt: &[u32],
    continuation: &[u32],
) -> Result<(usize, usize)> {
    if continuation.is_empty() || prompt.is_empty() {
        return Ok((0, 0));
    }
    let mut ids = prompt.to_vec();
    ids.extend(&continuation[..continuation.len() - 1]);
    let t = Tensor::from_slice(&ids, (1, ids.len()), model.device())?;
    let logits = model.forward(&t)?.squeeze(0)?;
    let picks: Vec<u32> = logits
        .narrow(0, prompt.len() - 1, continuation.len())?
        .argmax(1)?
        .to_vec1()?;
    let agree = picks
        .iter()
        .zip(continuation)
        .filter(|(a, b)| a == b)
        .count();
    Ok((agree, continuation.len()))
}

fn summary(prompts: &[PromptCheck], outcome: Outcome, agreement: f64, quant: Quant) -> String {
    let n = prompts.len();
    if outcome == Outcome::Verified {
        return format!(
            "Verified: reloaded, the export continues all {n} test prompts exactly as the model does ({CHECK_TOKENS} tokens each, greedy)."
        );
    }
    let same = prompts
        .iter()
        .filter(|p| p.first_difference.is_none())
        .count();
    let first = prompts
        .iter()
        .enumerate()
        .find(|(_, p)| p.first_difference.is_some() || p.tokenizer_differs)
        .map(|(i, p)| {
            if p.tokenizer_differs {
                format!(
                    "its tokenizer splits test prompt {} ({:?}) differently",
                    i + 1,
                    p.prompt
                )
            } else {
                format!(
                    "test prompt {} ({:?}) parts at new token {}: the model says {:?}, the export {:?}",
                    i + 1,
                    p.prompt,
                    p.first_difference.unwrap_or(0) + 1,
                    p.model,
                    p.export
                )
            }
        })
        .unwrap_or_default();
    let pct = (agreement * 100.0).round();
    if outcome == Outcome::Close {
        format!(
            "Close: the {} export continues {same} of {n} test prompts exactly as the model does and picks the model's next token {pct}% of the time; {} rounds the weights, so small differences are expected. First difference: {first}.",
            quant.label(),
            quant.label()
        )
    } else {
        format!(
            "Mismatch: the export does not behave like the model ({same} of {n} test prompts continued alike, {pct}% of next tokens agree{}); {first}. Do not use this export; report the problem.",
            if quant.is_lossy() {
                format!(", where {} should reach {}%", quant.label(), (min_agreement(quant) * 100.0).round())
            } else {
                String::new()
            }
        )
    }
}
