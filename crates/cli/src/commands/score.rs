//! `tunesmith score`: outputs made elsewhere against references, one line each.

use anyhow::Result;
use tunesmith_engine::eval::{score_files, Metric, ScoreReport};

use crate::args::ScoreArgs;

pub fn run(args: ScoreArgs) -> Result<()> {
    let metrics = Metric::parse_list(&args.metrics)?;
    let report = score_files(
        &args.hypotheses,
        &args.references,
        &metrics,
        args.rouge_stemmer,
    )?;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print_summary(&report);
    }
    Ok(())
}

/// The corpus figures, a line each, with the signatures that say how they were made.
pub fn print_summary(r: &ScoreReport) {
    if let Some(b) = r.bleu {
        println!(
            "BLEU   {b:6.2}   ({})",
            r.bleu_signature.as_deref().unwrap_or_default()
        );
    }
    if let Some(c) = r.chrf {
        println!(
            "chrF2  {c:6.2}   ({})",
            r.chrf_signature.as_deref().unwrap_or_default()
        );
    }
    if let (Some(r1), Some(r2), Some(rl)) = (r.rouge1, r.rouge2, r.rouge_l) {
        let stem = if r.rouge_stemmer == Some(true) {
            ", Porter-stemmed"
        } else {
            ""
        };
        println!(
            "ROUGE  1 {r1:.4}  2 {r2:.4}  L {rl:.4}   (F1, mean over {} examples{stem})",
            r.examples.len()
        );
    }
    if let Some(e) = r.exact {
        println!("exact  {e:6.2} %");
    }
    if let Some(c) = r.copied {
        println!(
            "copied {:5.1} %   (of the answers' tokens, in spans of {}+ tokens found verbatim in the training set)",
            c * 100.0,
            r.copied_min_tokens.unwrap_or_default()
        );
    }
    if let (Some(l), Some(p)) = (r.loss, r.perplexity) {
        println!("loss   {l:.4}   perplexity {p:.3}   (of the references given the prompts)");
    }
    for n in &r.notes {
        println!("note: {n}");
    }
}
