//! `tunesmith export`: writes the export, reloads it and prints how the check went.

use std::path::PathBuf;

use anyhow::Result;
use tunesmith_engine::export::{self, ExportConfig, ExportFormat};

use super::{cancel_on_ctrl_c, finish, Sink};
use crate::args::ExportArgs;

pub fn run(args: ExportArgs) -> Result<()> {
    let mut sink = Sink::new(args.json);
    let format: ExportFormat = args.format.parse()?;
    let result = (|| {
        // A run folder is what a job repeats; every other format exports its latest checkpoint.
        let run = (format == ExportFormat::Job).then(|| PathBuf::from(&args.model));
        let model = match &run {
            Some(r) => r.clone(),
            None => tunesmith_engine::source::resolve(&args.model, &mut sink)?,
        };
        let cfg = ExportConfig {
            model,
            base: args.base.clone(),
            format,
            out: args.out.clone(),
            quant: args.quant.as_deref().map(str::parse).transpose()?,
            force: args.force,
            name: args.name.clone(),
            system: args.system.clone(),
            run,
        };
        export::export(&cfg, &cancel_on_ctrl_c(), &mut sink)
    })();
    let report = finish(&mut sink, result)?;
    if !args.json {
        println!(
            "wrote {} ({:.1} MB): {}",
            report.out.display(),
            report.bytes as f64 / 1e6,
            report.files.join(", ")
        );
        if let Some(v) = &report.verification {
            println!("{}", v.summary);
        }
        if let Some(next) = &report.next_step {
            println!("next: {next}");
        }
    }
    if report.verification.as_ref().is_some_and(|v| !v.passed()) {
        // The report is out (a JSON `finished` event, or the summary above); the exit status
        // tells scripts not to use the export.
        if args.json {
            super::ERROR_REPORTED.store(true, std::sync::atomic::Ordering::SeqCst);
        }
        anyhow::bail!(
            "the export at {} failed its check against the model; do not use it",
            report.out.display()
        );
    }
    Ok(())
}
