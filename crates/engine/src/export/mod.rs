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
        matches!(self, Quant::F16 | Quant::Q8_0 | Quant::Q4KM)
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
    // An export that fails its check never replaces what `out` held: it is kept beside it as
    // NAME.mismatch, for a bug report.
    let place = |v: &Verification| {
        if v.passed() {
            cfg.out.clone()
        } else {
            mismatch_path(&cfg.out)
        }
    };
    let (out, files, verification) = match cfg.format {
        ExportFormat::Gguf => {
            let (verification, out) = in_temp_file(
                &cfg.out,
                cancel,
                |tmp| {
                    gguf::write(&src, quant, &name, tmp, cancel, sink)?;
                    checking(sink);
                    check(tmp, None)
                },
                place,
            )?;
            let report = verify::report_path(cfg.format, &out);
            fsutil::write_json(&report, &verification)?;
            let files = vec![file_name(&out), file_name(&report)];
            (out, files, verification)
        }
        ExportFormat::Ollama | ExportFormat::Hf | ExportFormat::Peft => {
            let ((files, verification), out) = in_temp_dir(
                &cfg.out,
                cancel,
                |tmp| {
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
                },
                |(_, v)| place(v),
            )?;
            (out, files, verification)
        }
        ExportFormat::Job => unreachable!("handled above"),
    };
    sink.emit(Event::Log {
        level: if verification.passed() {
            LogLevel::Info
        } else {
            LogLevel::Warn
        },
        message: if verification.passed() {
            verification.summary.clone()
        } else {
            format!(
                "{} It was kept at {} for a bug report; {} was left as it was.",
                verification.summary,
                out.display(),
                cfg.out.display()
            )
        },
    });
    let next_step = (cfg.format == ExportFormat::Ollama && verification.passed())
        .then(|| ollama::create_command(&name, &out));
    Ok(ExportReport {
        format: cfg.format,
        bytes: size_of(&out),
        out,
        files,
        verification: Some(verification),
        next_step,
    })
}

/// Where an export that failed its check is kept: `NAME.mismatch.gguf` or `NAME.mismatch/`.
fn mismatch_path(out: &Path) -> PathBuf {
    let stem = out
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    match out.extension() {
        Some(ext)
            if out
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("gguf")) =>
        {
            out.with_file_name(format!("{stem}.mismatch.{}", ext.to_string_lossy()))
        }
        _ => {
            let name = out
                .file_name()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            out.with_file_name(format!("{name}.mismatch"))
        }
    }
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
    // --force replaces an earlier export, never a folder of the user's own (a typo such as
    // `--out ~/Documents` must not empty it).
    let ours = ["verification.json", "settings.json"]
        .iter()
        .any(|f| out.join(f).is_file());
    if !empty && !ours {
        return Err(Error::file(
            out,
            "holds files Tunesmith did not export (it has no verification.json), so --force does not replace it; choose a new folder, or empty it yourself",
        ));
    }
    check_not_source(cfg)
}

/// Refuses an `out` that is the model being exported (or its adapter's base) or holds it, or
/// that would replace something inside it: the export would destroy what it is read from. A new
/// file or folder inside the model's folder is fine (llama.cpp's converter writes there too).
fn check_not_source(cfg: &ExportConfig) -> Result<()> {
    let out = &cfg.out;
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
    let exists = out.symlink_metadata().is_ok();
    for src in sources {
        if src.starts_with(out) || (exists && out.starts_with(&src)) {
            return Err(Error::file(
                out,
                format!(
                    "is the model being exported, holds it, or is a file inside it ({}); choose a place elsewhere",
                    src.display()
                ),
            ));
        }
    }
    Ok(())
}

/// `out` as an absolute path whose folder is resolved as the system resolves it (symbolic links,
/// `.` and `..`), so that the temporary and replaced names built beside it are siblings of the
/// export and never a parent folder, and comparisons with the model's place are exact. The last
/// component is kept as given (a link there is replaced, not what it points to). A path that
/// names no file or folder of its own (`.`, `..`, `/`), or the folder the command runs in or one
/// above it, is refused: an export with `--force` replaces what is there.
fn out_path(out: &Path) -> Result<PathBuf> {
    use std::path::Component;
    let refuse = || {
        Error::file(
            out,
            "names this folder or one above it; give a new file or folder name for the export, such as exports/my-model",
        )
    };
    let Some(Component::Normal(name)) = out.components().next_back() else {
        return Err(refuse());
    };
    let abs = std::path::absolute(out).map_err(|e| Error::io(out, e))?;
    let parent = abs.parent().ok_or_else(refuse)?;
    // The nearest folder that exists, resolved; the rest appended as named.
    let mut existing = parent.to_path_buf();
    let mut rest = Vec::new();
    while existing.symlink_metadata().is_err() {
        match (existing.file_name(), existing.parent()) {
            (Some(n), Some(p)) => {
                rest.push(n.to_os_string());
                existing = p.to_path_buf();
            }
            _ => break,
        }
    }
    let mut clean = std::fs::canonicalize(&existing).unwrap_or(existing);
    for part in rest.iter().rev() {
        if part == ".." {
            return Err(Error::file(
                out,
                "goes up (..) from a folder that does not exist; give the path without ..",
            ));
        }
        if part != "." {
            clean.push(part);
        }
    }
    clean.push(name);
    let here = std::env::current_dir()
        .ok()
        .map(|d| absolute(&d))
        .unwrap_or_default();
    if here.starts_with(&clean) {
        return Err(refuse());
    }
    Ok(clean)
}

/// Builds a folder under a temporary sibling name and, when complete and not stopped, puts it
/// in place of the path `place` picks from the result (`out`, or beside it); returns the result
/// and that path.
pub(crate) fn in_temp_dir<T>(
    out: &Path,
    cancel: &CancelToken,
    fill: impl FnOnce(&Path) -> Result<T>,
    place: impl FnOnce(&T) -> PathBuf,
) -> Result<(T, PathBuf)> {
    fsutil::sweep_stale_siblings(out);
    let tmp = fsutil::temp_sibling(out);
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
    }
    std::fs::create_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
    let result = fill(&tmp).and_then(|value| {
        if cancel.is_cancelled() {
            return Err(Error::Cancelled);
        }
        let dest = place(&value);
        fsutil::replace_dir(&tmp, &dest).map(|_| (value, dest))
    });
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    result
}

/// Writes a file under a temporary sibling name that keeps its extension (the loaders go by it)
/// and, when complete and not stopped, renames it to the path `place` picks.
fn in_temp_file<T>(
    out: &Path,
    cancel: &CancelToken,
    fill: impl FnOnce(&Path) -> Result<T>,
    place: impl FnOnce(&T) -> PathBuf,
) -> Result<(T, PathBuf)> {
    fsutil::sweep_stale_siblings(out);
    let stem = out
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let ext = out
        .extension()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = out.with_file_name(format!(".{stem}.tmp-{}.{ext}", std::process::id()));
    let result = fill(&tmp).and_then(|value| {
        if cancel.is_cancelled() {
            return Err(Error::Cancelled);
        }
        let dest = place(&value);
        std::fs::rename(&tmp, &dest)
            .map(|_| (value, dest.clone()))
            .map_err(|e| Error::io(&dest, e))
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
    // Ollama takes names of up to 80 characters in a part.
    let clean: String = clean
        .trim_matches(|c: char| !c.is_ascii_alphanumeric())
        .chars()
        .take(60)
        .collect();
    let clean = clean
        .trim_end_matches(|c: char| !c.is_ascii_alphanumeric())
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A failed export is kept beside the target under a name that says so, never in its place.
    #[test]
    fn a_mismatch_is_kept_beside_the_target() {
        let dir = Path::new("/data/exports");
        assert_eq!(
            mismatch_path(&dir.join("book.gguf")),
            dir.join("book.mismatch.gguf")
        );
        assert_eq!(
            mismatch_path(&dir.join("book-hf")),
            dir.join("book-hf.mismatch")
        );
        assert_eq!(mismatch_path(&dir.join("v1.2")), dir.join("v1.2.mismatch"));
    }
}
