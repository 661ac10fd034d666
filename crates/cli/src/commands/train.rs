//! `tunesmith train`.

use anyhow::Result;
use tunesmith_engine::train::{self, Restore};
use tunesmith_engine::{device, Error};

use super::{cancel_on_ctrl_c, check_out_name, finish, Sink};
use crate::args::TrainArgs;

pub fn run(args: TrainArgs) -> Result<()> {
    let mut sink = Sink::new(args.json);
    let restore = match args.restore_from.as_deref() {
        None | Some("latest") => Restore::Latest,
        Some("fresh") => Restore::Fresh,
        Some(n) => Restore::From(n.parse().map_err(|_| Error::Config {
            field: "restore_from".into(),
            message: format!("is `{n}`; use latest, fresh or a checkpoint's step number"),
        })?),
    };
    let result = check_out_name(&args.out)
        .and_then(|()| {
            args.resolve().map_err(|e| Error::Config {
                field: "arguments".into(),
                message: format!("{e:#}"),
            })
        })
        .and_then(|cfg| {
            let dev = device::select(&args.device)?;
            let cancel = cancel_on_ctrl_c();
            train::train(&cfg, &args.out, restore, &dev, &cancel, &mut sink)
        });
    let summary = finish(&mut sink, result)?;
    if !args.json {
        eprintln!(
            "{}: {} of {} steps; final loss {}; model saved in {}",
            summary.status,
            summary.steps,
            summary.total_steps,
            summary.final_loss.map_or("-".into(), |l| format!("{l:.4}")),
            summary
                .checkpoint
                .as_ref()
                .map_or("-".into(), |p| p.display().to_string())
        );
    }
    Ok(())
}
