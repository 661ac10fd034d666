//! `tunesmith eval`: loss and perplexity of a model on a text file, or its answers to held-out
//! prompts scored against their references; with several models, a comparison table.

use std::path::Path;

use anyhow::{bail, Context, Result};
use tunesmith_engine::eval::copied::{self, CopyIndex};
use tunesmith_engine::eval::{
    evaluate_pairs, evaluate_text, read_pairs, run_split_examples, EvalExample, Metric,
    PairEvalConfig, ScoreReport,
};
use tunesmith_engine::model::load::{load_dir_with, LoadedModel};
use tunesmith_engine::runs::RunDir;
use tunesmith_engine::{device, source, Error, NullSink};

use super::{cancel_on_ctrl_c, score::print_summary};
use crate::args::EvalArgs;

pub fn run(args: EvalArgs) -> Result<()> {
    let dev = device::select(&args.device)?;
    if let Some(data) = &args.data {
        return text_loss(&args, data, &dev);
    }
    let metrics = Metric::parse_list(&args.metrics)?;
    let cfg = PairEvalConfig {
        metrics,
        rouge_stemmer: args.rouge_stemmer,
        max_new_tokens: args.max_new_tokens,
        temperature: args.temperature,
        top_p: args.top_p,
        top_k: args.top_k,
        seed: args.seed,
        limit: args.limit,
    };
    let cancel = cancel_on_ctrl_c();
    let mut reports = Vec::new();
    let mut file_notes = Vec::new();
    let from_file = match &args.pairs {
        Some(p) => {
            let (examples, notes) = read_pairs(p)?;
            file_notes = notes;
            Some(examples)
        }
        None => None,
    };
    for name in &args.models {
        let dir = source::resolve(name, &mut NullSink)?;
        let loaded = load_dir_with(&dir, args.base.as_deref(), false, &dev)?;
        let examples: Vec<EvalExample> = match &from_file {
            Some(e) => e.clone(),
            None => own_pairs(name, &loaded)?,
        };
        if !args.json {
            eprintln!(
                "{name}: answering {} examples…",
                examples.len().min(args.limit.unwrap_or(usize::MAX))
            );
        }
        // A run's answers are checked for text copied from its own training set.
        let copies = if RunDir::is_run(Path::new(name)) {
            let dir = RunDir::new(name).dataset();
            dir.join("train.tokens")
                .is_file()
                .then(|| CopyIndex::for_dataset(&dir, copied::DEFAULT_MIN_TOKENS))
                .transpose()?
        } else {
            None
        };
        let mut report = evaluate_pairs(
            &loaded,
            &examples,
            &cfg,
            copies.as_ref(),
            &cancel,
            &mut NullSink,
        )
        .with_context(|| format!("evaluating {name}"))?;
        report.notes.splice(0..0, file_notes.iter().cloned());
        reports.push((name.clone(), report));
    }
    if args.json {
        if let [(_, only)] = &reports[..] {
            println!("{}", serde_json::to_string(only)?);
        } else {
            let all: Vec<_> = reports
                .iter()
                .map(|(m, r)| serde_json::json!({"model": m, "report": r}))
                .collect();
            println!(
                "{}",
                serde_json::to_string(&serde_json::json!({ "models": all }))?
            );
        }
        return Ok(());
    }
    if let [(_, only)] = &reports[..] {
        print_summary(only);
    } else {
        print_table(&reports);
    }
    Ok(())
}

/// The validation pairs of the run `name` names.
fn own_pairs(name: &str, m: &LoadedModel) -> Result<Vec<EvalExample>> {
    let path = Path::new(name);
    if !RunDir::is_run(path) {
        bail!(
            "give --pairs FILE.jsonl (held-out examples) or --data FILE.txt: {name} is not a run folder, so it has no validation pairs of its own"
        );
    }
    Ok(run_split_examples(
        &RunDir::new(path).dataset(),
        &m.tokenizer,
    )?)
}

fn text_loss(args: &EvalArgs, data: &Path, dev: &device::Device) -> Result<()> {
    let [name] = &args.models[..] else {
        bail!("--data measures one model at a time; give one --model");
    };
    let bytes = std::fs::read(data).map_err(|e| Error::io(data, e))?;
    let text = String::from_utf8(bytes)
        .map_err(|_| Error::file(data, "is not UTF-8 text; save it as UTF-8 plain text"))?;
    let dir = source::resolve(name, &mut NullSink)?;
    let loaded = load_dir_with(&dir, args.base.as_deref(), false, dev)?;
    let r = evaluate_text(
        &loaded.model,
        &loaded.tokenizer,
        &text,
        &cancel_on_ctrl_c(),
        &mut NullSink,
    )
    .with_context(|| format!("evaluating {}", data.display()))?;
    if args.json {
        println!("{}", serde_json::to_string(&r)?);
    } else {
        println!(
            "loss: {:.6}\nperplexity: {:.4}\ntokens: {}",
            r.loss, r.perplexity, r.tokens
        );
    }
    Ok(())
}

/// Models side by side, the best figure of each row marked.
fn print_table(reports: &[(String, ScoreReport)]) {
    type Get = fn(&ScoreReport) -> Option<f64>;
    let rows: [(&str, Get, bool); 8] = [
        ("BLEU", |r| r.bleu, true),
        ("chrF2", |r| r.chrf, true),
        ("ROUGE-1", |r| r.rouge1, true),
        ("ROUGE-2", |r| r.rouge2, true),
        ("ROUGE-L", |r| r.rouge_l, true),
        ("exact %", |r| r.exact, true),
        ("copied", |r| r.copied, false),
        ("perplexity", |r| r.perplexity, false),
    ];
    let width = reports
        .iter()
        .map(|(m, _)| m.len())
        .max()
        .unwrap_or(8)
        .max(10);
    print!("{:12}", "");
    for (m, _) in reports {
        print!("  {m:>width$}");
    }
    println!();
    for (label, get, higher) in rows {
        let values: Vec<Option<f64>> = reports.iter().map(|(_, r)| get(r)).collect();
        if values.iter().all(Option::is_none) {
            continue;
        }
        let best = values
            .iter()
            .flatten()
            .copied()
            .fold(None, |b: Option<f64>, v| match b {
                Some(b) if (higher && b >= v) || (!higher && b <= v) => Some(b),
                _ => Some(v),
            });
        // A tie marks no one.
        let unique = values.iter().filter(|v| **v == best).count() == 1;
        print!("{label:12}");
        for v in &values {
            let cell = match v {
                Some(x) if Some(*x) == best && unique => format!("*{x:.4}"),
                Some(x) => format!("{x:.4}"),
                None => "-".into(),
            };
            print!("  {cell:>width$}");
        }
        println!();
    }
    println!("(* the better figure; perplexity and copied: lower is better)");
}
