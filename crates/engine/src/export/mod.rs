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
    let cfg = &ExportConfig {
        out: out_path(&cfg.out)?,
        ..cfg.clone()
    };
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
    let name = cfg.name.clone().unwrap_or_else(|| default_name(cfg));
    if cfg.format == ExportFormat::Ollama {
        ollama::check_name(&name)?;
    }
    let device = Device::Cpu;
    sink.emit(Event::Progress {
        stage: "Reading the model".into(),
        done: 0,
        total: 0,
        unit: String::new(),
    });
    let src = load::read_source(&cfg.model, cfg.base.as_deref(), &device)?;
    // The export is checked under its temporary name and renamed only when written, checked and
    // not stopped: a stop or failure anywhere leaves what was under `out` before.
    let check =
        |path: &Path, base: Option<&Path>| verify::verify(&src, path, base, quant, &device, cancel);
    let (files, verification) = match cfg.format {
        ExportFormat::Gguf => {
            let mut verification = None;
            in_temp_file(&cfg.out, cancel, |tmp| {
                gguf::write(&src, quant, &name, tmp, cancel, sink)?;
                checking(sink);
                verification = Some(check(tmp, None)?);
                Ok(())
            })?;
            let verification = verification.expect("set when written");
            let report = verify::report_path(cfg.format, &cfg.out);
            fsutil::write_json(&report, &verification)?;
            (vec![file_name(&cfg.out), file_name(&report)], verification)
        }
        ExportFormat::Ollama | ExportFormat::Hf | ExportFormat::Peft => {
            in_temp_dir(&cfg.out, cancel, |tmp| {
                let (mut files, base) = match cfg.format {
                    ExportFormat::Ollama => (
                        ollama::write(
                            &src,
                            quant,
                            &name,
                            cfg.system.as_deref(),
                            tmp,
                            cancel,
                            sink,
                        )?,
                        None,
                    ),
                    ExportFormat::Hf => (hf::write(&src, quant, tmp)?, None),
                    _ => (
                        hf::write_adapter(&cfg.model, cfg.base.as_deref(), tmp)?,
                        cfg.base.as_deref(),
                    ),
                };
                let model_path = match cfg.format {
                    ExportFormat::Ollama => tmp.join(ollama::GGUF_FILE),
                    _ => tmp.to_path_buf(),
                };
                checking(sink);
                let verification = check(&model_path, base)?;
                let report = verify::report_path(cfg.format, tmp);
                fsutil::write_json(&report, &verification)?;
                files.push(file_name(&report));
                Ok((files, verification))
            })?
        }
        ExportFormat::Job => unreachable!("handled above"),
    };
    sink.emit(Event::Log {
        level: if verification.passed() {
            LogLevel::Info
        } else {
            LogLevel::Warn
        },
        message: verification.summary.clone(),
    });
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

fn checking(sink: &mut impl ProgressSink) {
    sink.emit(Event::Progress {
        stage: "Checking the export".into(),
        done: 0,
        total: CHECK_PROMPTS.len() as u64,
        unit: "prompts".into(),
    });
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
        return check_not_source(cfg);
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
    check_not_source(cfg)
}

/// Refuses an `out` inside the model being exported (or its adapter's base), or holding it: the
/// export would replace what it is read from.
fn check_not_source(cfg: &ExportConfig) -> Result<()> {
    let out = absolute(&cfg.out);
    let mut sources = vec![absolute(&cfg.model)];
    if lora::is_adapter_dir(&cfg.model) {
        let base = match &cfg.base {
            Some(b) => Some(b.clone()),
            None => lora::read_adapter_config(&cfg.model)
                .ok()
                .and_then(|a| load::find_base(&cfg.model, &a.base).ok()),
        };
        sources.extend(base.map(|b| absolute(&b)));
    }
    for src in sources {
        if src.starts_with(&out) || out.starts_with(&src) {
            return Err(Error::file(
                &cfg.out,
                format!(
                    "is inside the model being exported or holds it ({}); choose a place elsewhere",
                    src.display()
                ),
            ));
        }
    }
    Ok(())
}

/// `out` made absolute with `.` and `..` resolved, so that the temporary and replaced names built
/// beside it are siblings of the export and never a parent folder. A path that names no file or
/// folder of its own (`.`, `..`, `/`), or the folder the command runs in or one above it, is
/// refused: an export with `--force` replaces what is there.
fn out_path(out: &Path) -> Result<PathBuf> {
    use std::path::Component;
    let named = matches!(out.components().next_back(), Some(Component::Normal(_)));
    let abs = std::path::absolute(out).map_err(|e| Error::io(out, e))?;
    let mut clean = PathBuf::new();
    for c in abs.components() {
        match c {
            Component::ParentDir => {
                clean.pop();
            }
            Component::CurDir => {}
            c => clean.push(c),
        }
    }
    let here = std::env::current_dir()
        .ok()
        .map(|d| absolute(&d))
        .unwrap_or_default();
    if !named || clean.file_name().is_none() || here.starts_with(absolute(&clean)) {
        return Err(Error::file(
            out,
            "names this folder or one above it; give a new file or folder name for the export, such as exports/my-model",
        ));
    }
    Ok(clean)
}

/// Builds a folder under a temporary sibling name and puts it in place of `out` when complete and
/// not stopped.
pub(crate) fn in_temp_dir<T>(
    out: &Path,
    cancel: &CancelToken,
    fill: impl FnOnce(&Path) -> Result<T>,
) -> Result<T> {
    let tmp = fsutil::temp_sibling(out);
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
    }
    std::fs::create_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
    let result = fill(&tmp).and_then(|value| {
        if cancel.is_cancelled() {
            return Err(Error::Cancelled);
        }
        fsutil::replace_dir(&tmp, out).map(|_| value)
    });
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    result
}

/// Writes a file under a temporary sibling name that keeps its extension (the loaders go by it)
/// and renames it to `out` when complete and not stopped.
fn in_temp_file(
    out: &Path,
    cancel: &CancelToken,
    fill: impl FnOnce(&Path) -> Result<()>,
) -> Result<()> {
    let stem = out
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let ext = out
        .extension()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = out.with_file_name(format!(".{stem}.tmp-{}.{ext}", std::process::id()));
    let result = fill(&tmp).and_then(|_| {
        if cancel.is_cancelled() {
            return Err(Error::Cancelled);
        }
        std::fs::rename(&tmp, out).map_err(|e| Error::io(out, e))
    });
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
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
    let clean = clean
        .trim_matches(|c: char| !c.is_ascii_alphanumeric())
        .to_string();
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
