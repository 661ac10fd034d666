//! Taking a model out of Tunesmith: a GGUF file (llama.cpp, LM Studio), an Ollama folder, a
//! Hugging Face folder, the LoRA adapter alone (PEFT), or a job folder that reruns the training on
//! GPUs with Hugging Face TRL or Axolotl. Every export is written under a temporary name and
//! renamed when complete, then reloaded with Tunesmith's own loaders and checked against the
//! model it came from ([`verify`]).

pub mod gguf;
pub mod hf;
pub mod job;
pub mod ollama;
pub mod verify;

use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::device::Device;
use crate::model::{load, lora};
use crate::progress::{CancelToken, Event, LogLevel, ProgressSink};
use crate::{fsutil, Error, Result};

pub use verify::Verification;

/// What to write.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExportFormat {
    /// One GGUF file.
    Gguf,
    /// A Hugging Face transformers folder (LoRA merged in).
    Hf,
    /// A folder with the GGUF file and an Ollama `Modelfile`.
    Ollama,
    /// The LoRA adapter alone, in PEFT's layout.
    Peft,
    /// A folder that reruns the training with TRL or Axolotl.
    Job,
}

impl ExportFormat {
    pub const ALL: [ExportFormat; 5] = [
        ExportFormat::Gguf,
        ExportFormat::Hf,
        ExportFormat::Ollama,
        ExportFormat::Peft,
        ExportFormat::Job,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ExportFormat::Gguf => "gguf",
            ExportFormat::Hf => "hf",
            ExportFormat::Ollama => "ollama",
            ExportFormat::Peft => "peft",
            ExportFormat::Job => "job",
        }
    }
}

impl FromStr for ExportFormat {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        ExportFormat::ALL
            .into_iter()
            .find(|f| f.as_str() == s.to_ascii_lowercase())
            .ok_or_else(|| {
                Error::config(
                    "format",
                    format!("is `{s}`; choose gguf, hf, ollama, peft or job"),
                )
            })
    }
}

/// How the weights are stored.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Quant {
    #[serde(rename = "f32")]
    F32,
    #[serde(rename = "f16")]
    F16,
    /// 8-bit blocks: about a quarter of f32, nearly lossless.
    #[serde(rename = "q8_0")]
    Q8_0,
    /// llama.cpp's 4-bit K-quant mixture: about an eighth of f32.
    #[serde(rename = "q4_k_m")]
    Q4KM,
}

impl Quant {
    pub const ALL: [Quant; 4] = [Quant::F32, Quant::F16, Quant::Q8_0, Quant::Q4KM];

    pub fn label(self) -> &'static str {
        match self {
            Quant::F32 => "f32",
            Quant::F16 => "f16",
            Quant::Q8_0 => "q8_0",
            Quant::Q4KM => "q4_k_m",
        }
    }

    /// llama.cpp's `general.file_type` (`llama_ftype`).
    pub fn file_type(self) -> u32 {
        match self {
            Quant::F32 => 0,
            Quant::F16 => 1,
            Quant::Q8_0 => 7,
            Quant::Q4KM => 15,
        }
    }

    /// Whether the weights are rounded to fewer bits than the model has (so a verified hand-off
    /// may see small differences).
    pub fn is_lossy(self) -> bool {
        matches!(self, Quant::Q8_0 | Quant::Q4KM)
    }
}

impl FromStr for Quant {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Quant::ALL
            .into_iter()
            .find(|q| q.label() == s.to_ascii_lowercase())
            .ok_or_else(|| {
                Error::config(
                    "quant",
                    format!("is `{s}`; choose f32, f16, q8_0 or q4_k_m"),
                )
            })
    }
}

/// An export to make.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExportConfig {
    /// The model: a model folder, a checkpoint, an adapter folder or a GGUF file (resolved).
    #[cfg_attr(feature = "ts", ts(type = "string"))]
    pub model: PathBuf,
    /// An adapter's base model, when not where its `adapter_config.json` says.
    #[cfg_attr(feature = "ts", ts(type = "string | null"))]
    pub base: Option<PathBuf>,
    pub format: ExportFormat,
    /// The file (gguf) or folder (the others) to write.
    #[cfg_attr(feature = "ts", ts(type = "string"))]
    pub out: PathBuf,
    /// Weights: gguf and ollama take all four (q8_0 when not given), hf f32 or f16.
    pub quant: Option<Quant>,
    /// Replace an `out` that exists.
    pub force: bool,
    /// The model's name (GGUF `general.name`, the Ollama model); from `out` when not given.
    pub name: Option<String>,
    /// Ollama's default system message.
    pub system: Option<String>,
    /// For `job`: the run folder whose settings and dataset the job repeats.
    #[cfg_attr(feature = "ts", ts(type = "string | null"))]
    pub run: Option<PathBuf>,
}

/// What an export wrote and how its check went.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExportReport {
    pub format: ExportFormat,
    #[cfg_attr(feature = "ts", ts(type = "string"))]
    pub out: PathBuf,
    /// The files written, relative to `out` (or its folder, for one file).
    pub files: Vec<String>,
    #[cfg_attr(feature = "ts", ts(type = "number"))]
    pub bytes: u64,
    /// The reloaded export compared with the model (none for `job`, which holds no weights).
    pub verification: Option<Verification>,
    /// The command that takes the export further (Ollama's `ollama create …`, the job's launch).
    pub next_step: Option<String>,
}

/// The prompts a verified hand-off continues with both models.
pub const CHECK_PROMPTS: [&str; 3] = [
    "The",
    "Once upon a time",
    "Question: What should I do first?\nAnswer:",
];

/// Writes the export `cfg` asks for and checks it.
pub fn export(
    cfg: &ExportConfig,
    cancel: &CancelToken,
    sink: &mut impl ProgressSink,
) -> Result<ExportReport> {
    let quant = check_config(cfg)?;
    check_out(cfg)?;
    if cfg.format == ExportFormat::Job {
        return job::write(cfg, cancel, sink);
    }
    if cfg.format == ExportFormat::Peft && !lora::is_adapter_dir(&cfg.model) {
        return Err(Error::Unsupported {
            format: "PEFT".into(),
            message: format!(
                "{} is not a LoRA adapter (it has no adapter_config.json): the model was fully fine-tuned or is a base model, so there is no adapter to take out; export it as hf or gguf instead",
                cfg.model.display()
            ),
        });
    }
    let device = Device::Cpu;
    sink.emit(Event::Progress {
        stage: "Reading the model".into(),
        done: 0,
        total: 0,
        unit: String::new(),
    });
    let src = load::read_source(&cfg.model, cfg.base.as_deref(), &device)?;
    let name = cfg.name.clone().unwrap_or_else(|| default_name(cfg));
    let (model_path, files) = match cfg.format {
        ExportFormat::Gguf => {
            gguf::write(&src, quant, &name, &cfg.out, cancel, sink)?;
            (cfg.out.clone(), vec![file_name(&cfg.out)])
        }
        ExportFormat::Ollama => {
            let files = in_temp_dir(&cfg.out, |tmp| {
                ollama::write(&src, quant, &name, cfg.system.as_deref(), tmp, cancel, sink)
            })?;
            (cfg.out.join(ollama::GGUF_FILE), files)
        }
        ExportFormat::Hf => {
            let files = in_temp_dir(&cfg.out, |tmp| hf::write(&src, quant, tmp))?;
            (cfg.out.clone(), files)
        }
        ExportFormat::Peft => {
            let files = in_temp_dir(&cfg.out, |tmp| {
                hf::write_adapter(&cfg.model, cfg.base.as_deref(), tmp)
            })?;
            (cfg.out.clone(), files)
        }
        ExportFormat::Job => unreachable!("handled above"),
    };
    if cancel.is_cancelled() {
        return Err(Error::Cancelled);
    }
    sink.emit(Event::Progress {
        stage: "Checking the export".into(),
        done: 0,
        total: CHECK_PROMPTS.len() as u64,
        unit: "prompts".into(),
    });
    let base = match cfg.format {
        ExportFormat::Peft => cfg.base.as_deref(),
        _ => None,
    };
    let verification = verify::verify(&src, &model_path, base, quant, &device)?;
    let report_path = verify::report_path(cfg.format, &cfg.out);
    fsutil::write_json(&report_path, &verification)?;
    sink.emit(Event::Log {
        level: if verification.verified {
            LogLevel::Info
        } else {
            LogLevel::Warn
        },
        message: verification.summary.clone(),
    });
    let mut files = files;
    files.push(file_name(&report_path));
    let next_step =
        (cfg.format == ExportFormat::Ollama).then(|| ollama::create_command(&name, &cfg.out));
    Ok(ExportReport {
        format: cfg.format,
        out: cfg.out.clone(),
        bytes: size_of(&cfg.out),
        files,
        verification: Some(verification),
        next_step,
    })
}

/// The weights type, checked against the format.
fn check_config(cfg: &ExportConfig) -> Result<Quant> {
    match (cfg.format, cfg.quant) {
        (ExportFormat::Gguf | ExportFormat::Ollama, q) => Ok(q.unwrap_or(Quant::Q8_0)),
        (ExportFormat::Hf, None | Some(Quant::F32)) => Ok(Quant::F32),
        (ExportFormat::Hf, Some(Quant::F16)) => Ok(Quant::F16),
        (ExportFormat::Hf, Some(q)) => Err(Error::Unsupported {
            format: "hf".into(),
            message: format!(
                "--quant {} is a llama.cpp block format that transformers' safetensors cannot hold; use f32 or f16 for hf, or export gguf for {}",
                q.label(),
                q.label()
            ),
        }),
        (ExportFormat::Peft | ExportFormat::Job, None) => Ok(Quant::F32),
        (f, Some(q)) => Err(Error::config(
            "quant",
            format!(
                "is {} but a {} export keeps the weights as they are; leave --quant out",
                q.label(),
                f.as_str()
            ),
        )),
    }
}

/// Refuses an `out` that holds something, unless `force`; a GGUF file needs a `.gguf` name.
fn check_out(cfg: &ExportConfig) -> Result<()> {
    let out = &cfg.out;
    if cfg.format == ExportFormat::Gguf {
        if out.is_dir() {
            return Err(Error::file(
                out,
                "is a folder; for --format gguf give the file to write, such as model.gguf",
            ));
        }
        if !out
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("gguf"))
        {
            return Err(Error::file(
                out,
                "a GGUF file's name must end in .gguf (llama.cpp, Ollama and LM Studio look for it); add .gguf",
            ));
        }
        if out.exists() && !cfg.force {
            return Err(Error::file(
                out,
                "already exists; choose another name, or replace it with --force",
            ));
        }
        return Ok(());
    }
    if out.is_file() {
        return Err(Error::file(
            out,
            format!(
                "is a file; a {} export is a folder, give a folder name",
                cfg.format.as_str()
            ),
        ));
    }
    let empty = std::fs::read_dir(out).map_or(true, |mut d| d.next().is_none());
    if !empty && !cfg.force {
        return Err(Error::file(
            out,
            "already exists and is not empty; choose a new folder, or replace it with --force",
        ));
    }
    let (model, out_abs) = (absolute(&cfg.model), absolute(out));
    if model.starts_with(&out_abs) || out_abs.starts_with(&model) {
        return Err(Error::file(
            out,
            "is inside the model being exported (or holds it); choose a folder elsewhere",
        ));
    }
    Ok(())
}

/// Builds a folder under a temporary sibling name and puts it in place of `out` when complete.
pub(crate) fn in_temp_dir(
    out: &Path,
    fill: impl FnOnce(&Path) -> Result<Vec<String>>,
) -> Result<Vec<String>> {
    let tmp = fsutil::temp_sibling(out);
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
    }
    std::fs::create_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
    let result = fill(&tmp).and_then(|files| fsutil::replace_dir(&tmp, out).map(|_| files));
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    result
}

fn absolute(p: &Path) -> PathBuf {
    std::fs::canonicalize(p)
        .or_else(|_| std::path::absolute(p))
        .unwrap_or_else(|_| p.to_path_buf())
}

fn default_name(cfg: &ExportConfig) -> String {
    let stem = cfg
        .out
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "model".into());
    let clean: String = stem
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    let clean = clean.trim_matches(|c| c == '-' || c == '.').to_string();
    if clean.is_empty() {
        "model".into()
    } else {
        clean
    }
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Bytes under `path` (a file, or a folder's files).
pub(crate) fn size_of(path: &Path) -> u64 {
    if path.is_file() {
        return path.metadata().map(|m| m.len()).unwrap_or(0);
    }
    std::fs::read_dir(path)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| size_of(&e.path()))
        .sum()
}
