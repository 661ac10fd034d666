//! `tunesmith prepare --input PATH... --out DATASET_DIR`: documents to a training set and its
//! health report (printed as text, or as the `finished` event's summary with `--json`).

use anyhow::Result;
use tunesmith_engine::data::prepare::{self, DatasetManifest, PrepareOptions};
use tunesmith_engine::data::tokenizer;
use tunesmith_engine::source;

use super::{check_out_name, finish, Sink};
use crate::args::PrepareArgs;

pub fn run(args: PrepareArgs) -> Result<()> {
    let mut sink = Sink::new(args.json);
    let opts = PrepareOptions {
        val_frac: args.val_frac,
        seed: args.seed,
        chunk_tokens: args.chunk_tokens,
        overlap: args.overlap,
        dedupe: !args.no_dedupe,
        near_dup_threshold: args.near_dup_threshold,
        scrub_pii: args.scrub_pii,
        pair_columns: args
            .pair_columns
            .as_ref()
            .map(|c| (c[0].clone(), c[1].clone())),
        ..Default::default()
    };
    let result = (|| -> tunesmith_engine::Result<DatasetManifest> {
        check_out_name(&args.out)?;
        let collected = prepare::collect(&args.input, &opts, &mut sink)?;
        let (tok, name) = match &args.tokenizer {
            Some(src) => {
                let dir = source::resolve(src, &mut sink)?;
                (tokenizer::load(&dir)?, src.clone())
            }
            None => {
                let texts: Vec<String> = collected.units.iter().map(|u| u.full_text()).collect();
                (
                    tokenizer::train_bpe(texts.iter(), args.vocab_size)?,
                    format!("trained byte-level BPE ({} tokens)", args.vocab_size),
                )
            }
        };
        prepare::write(&args.out, collected, &opts, &tok, &name, &mut sink)
    })();
    let report = finish(&mut sink, result.map(|m| m.report))?;
    if !args.json {
        print_report(&report);
        println!("dataset written to {}", args.out.display());
    }
    Ok(())
}

fn print_report(r: &prepare::Report) {
    for f in &r.files {
        match &f.error {
            Some(e) => println!("  ✗ {}: {e}", f.path),
            None => {
                println!(
                    "  ✓ {} ({}): {} words, {} tokens{}{}",
                    f.path,
                    f.kind,
                    f.words,
                    f.tokens,
                    f.language
                        .as_ref()
                        .map(|l| format!(", {l}"))
                        .unwrap_or_default(),
                    if f.duplicates_dropped > 0 {
                        format!(", {} duplicates dropped", f.duplicates_dropped)
                    } else {
                        String::new()
                    }
                );
                for w in &f.warnings {
                    println!("      ! {w}");
                }
            }
        }
    }
    println!(
        "{} documents, {} examples, {} tokens ({} train, {} validation), {:.0} % duplicated, {:.2} tokens per word",
        r.documents, r.examples, r.tokens, r.train_tokens, r.val_tokens, r.duplicate_share * 100.0, r.tokens_per_word
    );
    println!(
        "suggested steps: Quick {}, Balanced {}, Thorough {}",
        r.suggestions.quick_steps, r.suggestions.balanced_steps, r.suggestions.thorough_steps
    );
    for w in &r.warnings {
        println!("! {w}");
    }
}
