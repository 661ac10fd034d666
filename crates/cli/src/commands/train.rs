//! `tunesmith train`.

use anyhow::Result;
use tunesmith_engine::train::estimate::estimate;
use tunesmith_engine::train::{self, Restore};
use tunesmith_engine::{device, Error, ProgressSink};

use super::{cancel_on_ctrl_c, check_out_name, finish, Sink};
use crate::args::TrainArgs;

pub fn run(args: TrainArgs) -> Result<()> {
    let mut sink = Sink::new(args.json);
    if args.estimate {
        return only_estimate(&args, &mut sink);
    }
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
        .and_then(|mut cfg| {
            let dev = device::select(&args.device)?;
            let cancel = cancel_on_ctrl_c();
            if let Some(minutes) = args.minutes {
                if !(minutes > 0.0 && minutes.is_finite()) {
                    return Err(Error::config(
                        "minutes",
                        format!("is {minutes}; give a number of minutes above 0"),
                    ));
                }
                let e = estimate(&cfg, &dev, &scratch_parent(), &cancel, &mut sink)?;
                let steps = e.steps_for_minutes(minutes);
                sink.log(format!(
                    "measured {:.2} s a step: {steps} steps fill about {minutes} minutes",
                    e.secs_per_step
                ));
                (cfg.steps, cfg.epochs) = (Some(steps), None);
            }
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

/// `--estimate`: a few measured steps, the run's time and memory, nothing trained.
fn only_estimate(args: &TrainArgs, sink: &mut Sink) -> Result<()> {
    let result = args
        .resolve()
        .map_err(|e| Error::Config {
            field: "arguments".into(),
            message: format!("{e:#}"),
        })
        .and_then(|cfg| {
            let dev = device::select(&args.device)?;
            estimate(&cfg, &dev, &scratch_parent(), &cancel_on_ctrl_c(), sink)
        });
    let e = finish(sink, result)?;
    if !args.json {
        println!("{}", e.summary);
    }
    Ok(())
}

/// Where the estimate prepares its scratch run: the data folder's `tmp`.
fn scratch_parent() -> std::path::PathBuf {
    let dir = tunesmith_engine::paths::home().join("tmp");
    let _ = std::fs::create_dir_all(&dir);
    dir
}
