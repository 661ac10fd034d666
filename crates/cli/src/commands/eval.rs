//! `tunesmith eval`: loss and perplexity of a model on a text file.

use anyhow::{Context, Result};
use tunesmith_engine::eval::evaluate_text;
use tunesmith_engine::{device, CancelToken, Error, NullSink};

use crate::args::EvalArgs;

pub fn run(args: EvalArgs) -> Result<()> {
    let dev = device::select(&args.device)?;
    let bytes = std::fs::read(&args.data).map_err(|e| Error::io(&args.data, e))?;
    let text = String::from_utf8(bytes)
        .map_err(|_| Error::file(&args.data, "is not UTF-8 text; save it as UTF-8 plain text"))?;
    let loaded = super::load_model(&args.source, &dev, &mut NullSink)?;
    let r = evaluate_text(
        &loaded.model,
        &loaded.tokenizer,
        &text,
        &CancelToken::new(),
        &mut NullSink,
    )
    .with_context(|| format!("evaluating {}", args.data.display()))?;
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
