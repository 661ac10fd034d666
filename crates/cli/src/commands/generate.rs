//! `tunesmith generate`: the continuation only on stdout, samples separated by `====`. With
//! `--messages`, the conversation is rendered with the model's chat template and the reply is
//! generated; with `--json`, one object per sample, holding the exact prompt ids too.

use std::io::Write;

use anyhow::{Context, Result};
use tunesmith_engine::chat;
use tunesmith_engine::generate::{self, generate_one};
use tunesmith_engine::{device, NullSink};

use super::{cancel_on_ctrl_c, Sink};
use crate::args::GenerateArgs;

pub fn run(args: GenerateArgs) -> Result<()> {
    let mut cfg = args.resolve();
    cfg.validate()?;
    let messages = match &args.messages {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the messages file {}", path.display()))?;
            let json: serde_json::Value = serde_json::from_str(&text)
                .with_context(|| format!("{} is not valid JSON", path.display()))?;
            Some(chat::parse_messages(&json).with_context(|| format!("in {}", path.display()))?)
        }
        None => None,
    };
    let dev = device::select(&args.device)?;
    let mut term = Sink::new(false);
    let loaded = if args.json {
        super::load_model(&args.source, &dev, &mut NullSink)?
    } else {
        super::load_model(&args.source, &dev, &mut term)?
    };
    cfg.messages = messages;
    let cfg = generate::with_chat_prompt(loaded.template.as_ref(), &cfg)?;
    let cancel = cancel_on_ctrl_c();
    for i in 0..cfg.n {
        if args.json {
            let g = generate_one(
                &loaded.model,
                &loaded.tokenizer,
                &cfg,
                i as u64,
                &cancel,
                &mut NullSink,
            )?;
            let mut out = std::io::stdout().lock();
            writeln!(out, "{}", serde_json::to_string(&g)?)?;
        } else {
            if i > 0 {
                println!("\n====");
            }
            generate_one(
                &loaded.model,
                &loaded.tokenizer,
                &cfg,
                i as u64,
                &cancel,
                &mut term,
            )?;
        }
    }
    if !args.json {
        println!();
    }
    Ok(())
}
