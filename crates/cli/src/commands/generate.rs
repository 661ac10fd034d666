//! `tunesmith generate`: the continuation only on stdout, samples separated by `====`.

use std::io::Write;

use anyhow::Result;
use tunesmith_engine::generate::generate_one;
use tunesmith_engine::model::load;
use tunesmith_engine::source;
use tunesmith_engine::{device, NullSink};

use super::{cancel_on_ctrl_c, Sink};
use crate::args::GenerateArgs;

pub fn run(args: GenerateArgs) -> Result<()> {
    let cfg = args.resolve();
    cfg.validate()?;
    let dev = device::select(&args.device)?;
    let mut term = Sink::new(false);
    let dir = if args.json {
        source::resolve(&args.model, &mut NullSink)?
    } else {
        source::resolve(&args.model, &mut term)?
    };
    let loaded = load::load_dir(&dir, &dev)?;
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
