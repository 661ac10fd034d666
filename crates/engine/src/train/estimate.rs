//! Before training, an estimate of how long the run will take and how much memory it will need
//! on this machine, measured: the run's own data and model are prepared and a few real steps
//! taken (in a scratch folder that is removed afterwards), timed, and the process's peak memory
//! over them read. A formula alone misses what this machine's CPU, allocator and threads do.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::setup::{self, Prepared};
use super::trainer::Trainer;
use crate::device::Device;
use crate::progress::{CancelToken, Event, ProgressSink};
use crate::runs::RunDir;
use crate::settings::TrainConfig;
use crate::{Error, Result};

/// Steps taken to measure; the first (allocations, caches warming) is not timed.
const STEPS: u64 = 4;

/// What the run will take.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Estimate {
    /// Seconds per optimiser step, measured.
    pub secs_per_step: f64,
    /// Steps the run will take.
    pub steps: u64,
    /// The whole run, validation passes included, in seconds.
    pub total_secs: f64,
    /// Memory the run adds to this process at its peak, measured (where the system reports it).
    /// The computer's memory only: a GPU's own memory is not measured.
    pub peak_bytes: Option<u64>,
    /// This machine's memory, and what is free now.
    pub machine_total_bytes: Option<u64>,
    pub machine_available_bytes: Option<u64>,
    /// Whether the peak fits in the free memory.
    pub fits: bool,
    /// The estimate in words: "about 25 minutes, about 3.1 GB of 16 GB".
    pub summary: String,
}

impl Estimate {
    /// The number of steps that fill `minutes` at the measured pace (validation included).
    pub fn steps_for_minutes(&self, minutes: f64) -> u64 {
        let per_step = self.total_secs / self.steps.max(1) as f64;
        ((minutes * 60.0) / per_step.max(1e-9)).floor().max(1.0) as u64
    }
}

/// Measures `cfg` on `device`, preparing it in a scratch folder under `scratch_parent` (the
/// data folder: a system temp folder may be memory, which would count against the run).
/// Progress of the preparation goes to `sink`.
pub fn estimate(
    cfg: &TrainConfig,
    device: &Device,
    scratch_parent: &Path,
    cancel: &CancelToken,
    sink: &mut impl ProgressSink,
) -> Result<Estimate> {
    cfg.validate()?;
    let scratch = Scratch::new(scratch_parent)?;
    let run = RunDir::new(scratch.0.clone());
    let timed = TrainConfig {
        steps: Some(STEPS),
        epochs: None,
        eval_every: 0,
        sample_every: 0,
        save_every: 0,
        early_stop_patience: None,
        log_every: 1,
        ..cfg.clone()
    };
    // Memory freed by earlier work goes back first, so the peak counts this run's own.
    tunesmith_malloc::release_freed_memory();
    let baseline = crate::memory::resident_bytes();
    crate::memory::reset_peak();
    let Prepared {
        model_cfg,
        side_files,
        lora_base,
        tok,
        weights,
        data,
        state,
    } = setup::prepare_fresh(&timed, &run, device, cancel, sink)?;
    let steps = cfg.total_steps(data.train.len());
    let mut trainer = Trainer::start(
        &timed,
        &run,
        &data,
        model_cfg,
        side_files,
        lora_base,
        tok,
        weights,
        state,
        device,
        &mut crate::progress::NullSink,
    )?;
    let mut secs = Vec::new();
    let per_step = timed.tokens_per_step() as f64;
    let stopped = trainer.run(cancel, &mut |e: Event| {
        if let Event::TrainStep {
            step,
            tokens_per_sec,
            ..
        } = e
        {
            if step > 1 && tokens_per_sec > 0.0 {
                secs.push(per_step / tokens_per_sec);
            }
        }
    })?;
    if stopped {
        return Err(Error::Cancelled);
    }
    let peak = crate::memory::peak_rss_bytes()
        .zip(baseline)
        .map(|(p, b)| p.saturating_sub(b));
    drop(trainer);
    secs.sort_by(f64::total_cmp);
    let secs_per_step = secs.get(secs.len() / 2).copied().unwrap_or(0.0);
    // Validation reads `eval_windows` windows forward only (about a third of a training step's
    // work per sequence) at each check and at the end.
    let checks = steps.checked_div(cfg.eval_every).unwrap_or(0) + 1;
    let rows = (cfg.batch_size * cfg.grad_accum).max(1) as f64;
    let eval_secs = checks as f64 * cfg.eval_windows as f64 * secs_per_step / rows / 3.0;
    let total_secs = secs_per_step * steps as f64 + eval_secs;
    let machine = crate::memory::system();
    let fits = match (peak, machine) {
        (Some(p), Some(m)) => p <= m.available_bytes,
        _ => true,
    };
    let memory = match (peak, machine) {
        (Some(p), Some(m)) => format!(
            ", about {:.1} GB of the {:.1} GB free",
            p as f64 / 1e9,
            m.available_bytes as f64 / 1e9
        ),
        (Some(p), None) => format!(", about {:.1} GB", p as f64 / 1e9),
        _ => String::new(),
    };
    let summary = format!(
        "about {} for {steps} steps ({:.2} s a step){memory}{}",
        describe_secs(total_secs),
        secs_per_step,
        if fits {
            ""
        } else {
            "; that is more memory than is free: close other programs, or lower the batch size or context length"
        }
    );
    Ok(Estimate {
        secs_per_step,
        steps,
        total_secs,
        peak_bytes: peak,
        machine_total_bytes: machine.map(|m| m.total_bytes),
        machine_available_bytes: machine.map(|m| m.available_bytes),
        fits,
        summary,
    })
}

/// "40 seconds", "25 minutes", "3.5 hours".
pub fn describe_secs(s: f64) -> String {
    if s < 90.0 {
        format!("{:.0} seconds", s.max(1.0))
    } else if s < 90.0 * 60.0 {
        format!("{:.0} minutes", s / 60.0)
    } else {
        format!("{:.1} hours", s / 3600.0)
    }
}

/// A scratch run folder, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(parent: &Path) -> Result<Self> {
        // Folders of estimates whose process was killed are removed first.
        for e in std::fs::read_dir(parent).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let pid = name
                .strip_prefix("tunesmith-estimate-")
                .and_then(|r| r.split('-').next());
            if pid.is_some_and(crate::fsutil::process_gone) {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let dir = parent.join(format!("tunesmith-estimate-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        Ok(Scratch(dir))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
